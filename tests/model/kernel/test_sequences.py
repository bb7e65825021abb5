"""Interruptible kernel sequences on the cpu's event queue: kernel_fpu_begin ... kernel_fpu_end.

Rules:

- arch/x86/kernel/fpu/core.c ``kernel_fpu_begin_mask()``: ``fpregs_lock()`` (before 6.8
  ``preempt_disable()``), ``in_kernel_fpu`` set (``WARN_ON_FPU`` if it already was: not
  reentrant), then, only if ``TIF_NEED_FPU_LOAD`` is clear, ``set_thread_flag()`` and
  ``save_fpregs_to_fpstate()``, then ``__cpu_invalidate_fpregs_state()``;
  ``kernel_fpu_end()`` clears ``in_kernel_fpu`` and ``fpregs_unlock()``. Preemption is
  off throughout, hard interrupts are not.
- kernel/smp.c ``smp_call_function_many_cond()``: an IPI runs its handler on the target
  CPU in whatever context it is in, here between two steps of the sequence.
- The queue is keyed ``(time, priority, insertion counter)`` as SimPy's
  ``Environment.schedule``/``step`` order theirs (simpy/core.py).
"""

from __future__ import annotations

import pytest

from svasim.model.costs import CostTable
from svasim.model.errors import FailedPrecondition, InvalidArgument, SimError
from svasim.model.explorer import explore_point
from svasim.model.fabric import ModelFabric
from svasim.model.kernel.fpu import KERNEL_FP_TOKEN
from svasim.model.kernel.sequences import KERNEL_FPU, STEP_KIND
from svasim.model.state import export_state
from svasim.model.transition import Transition
from svasim_api import idxd
from tests.oracle.oracle import Oracle

XSAVES = 37
XRSTORS = 53
POINTS = ["kernel_fpu_begin:entry", "kernel_fpu_begin:tif_set", "kernel_fpu_begin:saved", "kernel_fpu:in_use"]


def fabric(policy: str = "linux-5.18"):
    costs = CostTable.from_mapping({"xsaves": XSAVES, "xrstors": XRSTORS})
    out: list[Transition] = []
    fab = ModelFabric(ncpus=2, policy=policy, costs=costs, sink=out.append)
    return fab, out


def app(fab, threads: int = 2):
    """A process with ``threads`` threads, thread i running on CPU i."""
    k, j = fab.kernel, fab.journal()
    proc = k.create_process(j, "app")
    tids = [proc.tids[0]] + [k.create_thread(j, proc.pid, proc.tids[0]).tid for _ in range(threads - 1)]
    for cpu, tid in enumerate(tids):
        k.schedule(j, tid, cpu)
        k.use_fpu(j, tid)
    return proc, tids


def noop(comp: int) -> bytes:
    flags = int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR)
    return idxd.pack_desc(idxd.DsaHwDesc(opcode=idxd.DsaOpcode.NOOP, flags=flags, completion_addr=comp))


def test_the_steps_fire_spaced_by_what_each_charged_and_end_with_the_return_to_user():
    fab, out = fabric()
    k, j = fab.kernel, fab.journal()
    _, (t1, t2) = app(fab)
    cpu = k.cpus[1]
    t0 = cpu.cycles
    user_fp = k.tasks[t2].user_fp
    entry = k.start_sequence(j, t2, "kernel_fpu")
    assert (entry.time, entry.kind) == (t0, STEP_KIND)
    assert entry.args == {"cpu": 1, "sequence": "kernel_fpu", "step": 0, "tid": t2}
    assert cpu.in_sequence == POINTS[0] and k.sequence_point(k.tasks[t2]) == POINTS[0]
    fired = [k.advance_cpu(j, steps=1)[0] for _ in range(4)]
    assert [(f.step, f.point) for f in fired] == [(0, POINTS[1]), (1, POINTS[2]), (2, POINTS[3]), (3, "")]
    # Setting the flag costs nothing, the save costs XSAVES: the next steps come that much later.
    assert [f.time for f in fired] == [t0, t0, t0 + XSAVES, t0 + XSAVES]
    assert k.advance_cpu(j) == [] and len(k.events) == 0 and k.events.now == t0 + XSAVES
    # kernel_fpu_end and the return to user mode: XRSTORS gives the thread its registers back.
    assert cpu.in_sequence == "" and cpu.regs["fp"] == user_fp and cpu.fpregs_owner == t2
    assert cpu.cycles == t0 + XSAVES + XRSTORS
    assert not k.tasks[t2].tif_need_fpu_load
    kinds = [t.kind for t in out if t.entity == "evq/cpu"]
    assert kinds == ["event.schedule"] + ["event.fire", "event.schedule"] * 3 + ["event.fire"]


def test_with_tif_need_fpu_load_already_set_the_save_is_skipped():
    """core.c: set_thread_flag and save_fpregs_to_fpstate run only when the flag is clear
    (it stays set after an earlier kernel_fpu_end in the same syscall)."""
    fab, _ = fabric()
    k, j = fab.kernel, fab.journal()
    _, (t1, t2) = app(fab)
    k.tasks[t2].tif_need_fpu_load = True
    saves = k.stats["xsaves"]
    k.start_sequence(j, t2, "kernel_fpu")
    fired = k.advance_cpu(j)
    assert [(f.step, f.name, f.point) for f in fired] == [
        (2, "__cpu_invalidate_fpregs_state", POINTS[3]),
        (3, "kernel_fpu_end", ""),
    ]
    assert k.stats["xsaves"] == saves


def test_the_generator_runs_the_same_table_through_the_same_points():
    fab, _ = fabric()
    k, j = fab.kernel, fab.journal()
    _, (t1, t2) = app(fab)
    seen = []
    for point in k.kernel_fpu_section(j, t2):
        seen.append(point)
        assert k.cpus[1].in_sequence == point
        assert k.cpus[1].regs["fp"] == (KERNEL_FP_TOKEN if point == POINTS[3] else k.tasks[t2].user_fp)
    assert seen == POINTS == KERNEL_FPU.points()
    assert k.cpus[1].in_sequence == "" and len(k.events) == 0


def test_two_cpus_fire_in_time_order_and_at_one_time_in_the_order_they_were_scheduled():
    fab, _ = fabric()
    k, j = fab.kernel, fab.journal()
    _, (t1, t2) = app(fab)
    t0 = k.cpus[0].cycles
    assert k.cpus[1].cycles == t0
    # Same clocks: CPU 1's sequence was scheduled first, so at each time its step comes first.
    k.start_sequence(j, t2, "kernel_fpu")
    k.start_sequence(j, t1, "kernel_fpu")
    fired = [(f.time - t0, f.cpu, f.step) for f in k.advance_cpu(j)]
    assert fired == [(0, 1, 0), (0, 0, 0), (0, 1, 1), (0, 0, 1), (37, 1, 2), (37, 0, 2), (37, 1, 3), (37, 0, 3)]
    # CPU 0 five cycles ahead (a WRPKRU): its steps come after CPU 1's of the same stretch.
    fab, _ = fabric()
    k, j = fab.kernel, fab.journal()
    _, (t1, t2) = app(fab)
    k.costs = CostTable.from_mapping({"xsaves": XSAVES, "xrstors": XRSTORS, "wrpkru": 5})
    k.write_pkru(j, t1, k.tasks[t1].pkru)
    t0 = k.cpus[1].cycles
    k.start_sequence(j, t1, "kernel_fpu")
    k.start_sequence(j, t2, "kernel_fpu")
    fired = [(f.time - t0, f.cpu, f.step) for f in k.advance_cpu(j)]
    assert fired == [(0, 1, 0), (0, 1, 1), (5, 0, 0), (5, 0, 1), (37, 1, 2), (37, 1, 3), (42, 0, 2), (42, 0, 3)]
    assert all(c.in_sequence == "" for c in k.cpus)


def test_advance_until_fires_only_what_is_due():
    fab, _ = fabric()
    k, j = fab.kernel, fab.journal()
    _, (t1, t2) = app(fab)
    t0 = k.start_sequence(j, t2, "kernel_fpu").time
    assert [f.step for f in k.advance_cpu(j, until=t0)] == [0, 1]
    assert k.cpus[1].in_sequence == POINTS[2] and k.events.peek() == t0 + XSAVES
    assert k.advance_cpu(j, until=t0 + XSAVES - 1) == []
    assert [f.step for f in k.advance_cpu(j, until=t0 + XSAVES)] == [2, 3]


def refused(fab, out, fn, *args) -> SimError:
    """Run a request that must be refused; it changes nothing and records nothing."""
    before, n = export_state(fab), len(out)
    with pytest.raises(SimError) as e:
        fn(fab.journal(), *args)
    assert export_state(fab) == before and len(out) == n
    return e.value


@pytest.mark.parametrize("fired", range(4))
def test_inside_the_sequence_what_linux_cannot_do_is_refused_and_changes_nothing(fired):
    fab, out = fabric()
    k, j = fab.kernel, fab.journal()
    proc, (t1, t2) = app(fab)
    other = k.create_process(j, "other").tids[0]
    k.start_sequence(j, t2, "kernel_fpu")
    k.advance_cpu(j, steps=fired)
    point = k.cpus[1].in_sequence
    # Preemption is off: the thread is neither switched out nor migrated.
    for tid, cpu in ((other, 1), (t2, 0), (t1, 1)):
        e = refused(fab, out, k.schedule, tid, cpu)
        assert isinstance(e, FailedPrecondition) and e.reason == "PREEMPTION_DISABLED"
        assert e.metadata["tid"] == str(t2) and e.metadata["point"] == point
    # What the thread itself would execute: it is in the kernel.
    for fn, args in (
        (k.exit_thread, (t2,)),
        (k.enqcmd, (t2, 0x1000, noop(0))),
        (k.use_fpu, (t2,)),
        (k.write_pkru, (t2, 0)),
        (k.fork, (t2,)),
        (k.exec, (t2,)),
        (k.exec, (t1,)),  # de_thread would wait for it
        (k.start_sequence, (t2, "kernel_fpu")),  # kernel_fpu_begin is not reentrant
    ):
        e = refused(fab, out, fn, *args)
        assert e.reason == "THREAD_IN_SEQUENCE", (fn.__name__, e.reason)
    with pytest.raises(SimError, match="inside a kernel sequence"):
        next(k.kernel_fpu_section(j, t2))
    # The other CPU goes on; the same thread on its own CPU is no switch at all.
    assert k.schedule(j, t2, 1) == (t2, False, 0)
    k.schedule(j, other, 0)
    k.advance_cpu(j)
    assert k.cpus[1].in_sequence == ""
    k.exit_thread(j, t2)


def test_bad_requests_are_refused_with_their_reasons():
    fab, out = fabric()
    k, j = fab.kernel, fab.journal()
    proc, (t1, t2) = app(fab)
    idle = k.create_thread(j, proc.pid, t1).tid
    e = refused(fab, out, k.start_sequence, t2, "nowhere")
    assert isinstance(e, InvalidArgument) and e.reason == "UNKNOWN_SEQUENCE"
    assert refused(fab, out, k.start_sequence, idle, "kernel_fpu").reason == "THREAD_NOT_RUNNING"
    assert refused(fab, out, k.start_sequence, 999, "kernel_fpu").reason == "UNKNOWN_THREAD"
    assert refused(fab, out, k.advance_cpu, -1).reason == "BAD_ADVANCE"
    assert refused(fab, out, k.advance_cpu, None, -5).reason == "BAD_ADVANCE"


def test_a_fatal_signal_inside_the_sequence_cancels_its_pending_step():
    """kernel/signal.c: another thread's SIGSEGV kills the process (do_group_exit); the
    model ends the thread at once, so its next step is cancelled from the queue."""
    fab, out = fabric()
    k, j = fab.kernel, fab.journal()
    oracle = Oracle(fab, out)
    proc, (t1, t2) = app(fab)
    k.start_sequence(j, t2, "kernel_fpu")
    k.advance_cpu(j, steps=1)
    # ENQCMD with no PASID and no portal: #GP, no fixup, SIGSEGV.
    k.enqcmd(j, t1, 0x1000, noop(0))
    assert k.processes[proc.pid].killed and k.tasks[t2].exited
    assert len(k.events) == 0 and k.cpus[1].in_sequence == ""
    assert [t.kind for t in out if t.entity == "evq/cpu"][-1] == "event.cancel"
    assert k.advance_cpu(j) == []
    assert not oracle.check("the kill")


@pytest.mark.parametrize("policy", ["linux-5.10", "linux-5.18", "eager-switch-mm"])
@pytest.mark.parametrize("at", range(5))
def test_an_ipi_landing_at_each_point_runs_between_two_steps_as_the_explorer_finds(policy, at):
    """The PASID allocation on CPU 0 sends its IPI to CPU 1 (mm_cpumask) while CPU 1 is at
    point ``at`` of kernel_fpu; only linux-5.10's update_pasid after the flag is set
    loses the PASID (the revert of commit 9bfecd058339)."""
    fab, out = fabric(policy)
    k, j = fab.kernel, fab.journal()
    oracle = Oracle(fab, out)
    proc, (t1, t2) = app(fab)
    comp = k.mmap(j, proc.pid, 4096, True, True).start
    k.start_sequence(j, t2, "kernel_fpu")
    k.advance_cpu(j, steps=at)
    point = k.cpus[1].in_sequence
    assert point == (POINTS[at] if at < 4 else "")
    mark = len(out)
    portal = k.open_wq(j, proc.pid, "dsa0", 0)[0]
    handled = [t for t in out[mark:] if t.kind == "ipi.handle" and t.entity == "cpu/1"]
    if policy != "linux-5.18":  # 5.18 sends no IPI: the #GP fixup loads the MSR lazily
        assert handled and all(t.detail["at"] == point for t in handled)
    assert not oracle.check(f"the IPI at {point or 'the end'}")
    k.advance_cpu(j)
    outcomes = {label: str(k.enqcmd(j, tid, portal, noop(comp + slot)).outcome) for label, tid, slot in
                (("T1", t1, 0), ("T2", t2, 32)) if not k.tasks[tid].exited}  # fmt: skip
    violations = {n.removeprefix("violation."): v for n, v in k.stats.items() if n.startswith("violation.") and v}
    explored = explore_point("ipi-during-kernel-fpu", policy, at)
    assert (violations, outcomes) == (explored.violations, explored.outcomes)
    assert explored.point_name == (point or "after the section")
    assert bool(violations) == (policy == "linux-5.10" and at == 1)
    assert not oracle.check("the drain")
