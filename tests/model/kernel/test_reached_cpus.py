"""The end of a kernel operation records what changed on the CPUs the operation reached
and in the tasks it touched or that ran there (``KernelCore.leave_op``), not on every CPU:
its cost no longer grows with the number of CPUs. These pin that it records exactly what a
look at every CPU records."""

from __future__ import annotations

import pytest

from svasim import compiled
from svasim.compare import load_workload, shipped_workloads
from svasim.model import workload as workload_mod
from svasim.model.fabric import ModelFabric
from svasim.model.journal import Journal
from svasim.model.kernel import core
from svasim.model.policies import policy_names

#: These tests replace the kernel's own functions, which the compiled model calls directly.
interpreted_only = pytest.mark.skipif(compiled.active(), reason="replaces functions the compiled model calls directly")

NCPUS = 64


def busy_fabric() -> tuple[ModelFabric, list[int], list[int]]:
    """64 CPUs, each running a thread of its own process with a page mapped."""
    fab = ModelFabric(ncpus=NCPUS)
    k = fab.kernel
    pids, buffers = [], []
    for i in range(NCPUS):
        proc = k.create_process(fab.journal(), f"p{i}")
        k.schedule(fab.journal(), proc.tids[0], i)
        pids.append(proc.pid)
        buffers.append(k.mmap(fab.journal(), proc.pid, 4096, True, True).start)
    return fab, pids, buffers


@interpreted_only
def test_an_operation_that_reaches_no_cpu_looks_at_none(monkeypatch: pytest.MonkeyPatch) -> None:
    fab, pids, buffers = busy_fabric()
    looked: list[int] = []
    real = core._cpu_sig
    monkeypatch.setattr(core, "_cpu_sig", lambda c: looked.append(c.id) or real(c))
    fab.kernel.write_memory(fab.journal(), pids[9], buffers[9], b"x" * 64)
    assert looked == []
    j = fab.journal()
    fab.kernel.schedule(j, fab.kernel.processes[pids[9]].tids[0], 3)  # from CPU 9 to CPU 3
    assert sorted(set(looked)) == [3, 9]
    assert {t.entity for t in j.transitions if t.kind == "cpu.state"} <= {"cpu/3", "cpu/9"}
    assert fab.kernel.cpus.touched == {} and fab.kernel.touched == set()


def test_a_task_changed_through_a_lookup_is_recorded_though_its_cpu_was_not_reached() -> None:
    fab, pids, _ = busy_fabric()
    k = fab.kernel
    tid = k.processes[pids[40]].tids[0]
    j = fab.journal()
    k.enter_op(j)
    k.tasks[tid].gp_faults += 1  # as a kernel path on another CPU would
    k.leave_op(j)
    assert [(t.entity, t.kind, t.after) for t in j.transitions] == [(f"thread/{tid}", "thread.state", {"gp_faults": 1})]


def _every_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    """leave_op as it was: every CPU looked at (an unreached CPU's current thread is the
    one it ran at entry)."""
    real = core.KernelCore.leave_op

    def leave_op(self: core.KernelCore, journal: object) -> None:
        if self.depth == 1:
            for c in list.__iter__(self.cpus):
                self.cpus.touched.setdefault(c.id, c.current)
        real(self, journal)  # type: ignore[arg-type]

    monkeypatch.setattr(core.KernelCore, "leave_op", leave_op)


@interpreted_only
@pytest.mark.parametrize("name", sorted(shipped_workloads()))
@pytest.mark.parametrize("policy", policy_names())
def test_every_shipped_workload_records_what_a_look_at_every_cpu_records(
    name: str, policy: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    wl = load_workload(name)
    seen: list[list[tuple[str, str, object, object]]] = []
    for reference in (False, True):
        out: list[tuple[str, str, object, object]] = []

        def journal(service: str, _sink: object, _out: list = out) -> Journal:
            return Journal(service, lambda t: _out.append((t.entity, t.kind, t.before, t.after)))

        with monkeypatch.context() as m:
            m.setattr(workload_mod, "Journal", journal)
            if reference:
                _every_cpu(m)
            workload_mod.run_workload(wl, policy)
        seen.append(out)
    assert seen[0] == seen[1] and len(seen[0]) > 100
