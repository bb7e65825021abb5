"""The context switch: kernel/sched/core.c (``context_switch``) and arch/x86/kernel/process_64.c.

``schedule()`` puts a task on a CPU: a migrating task first leaves its old CPU (its
registers saved there), then ``context_switch()`` runs ``switch_mm_irqs_off()`` for a
user task (a kernel thread enters lazy TLB mode) and ``__switch_to()``:
``switch_fpu_prepare()`` for the outgoing task, ``switch_fpu_finish()`` for the incoming
one (PKRU by ``x86_pkru_load``, XFD), and the inactive GS base
(``__wrgsbase_inactive`` with FSGSBASE, written on every switch). The return to user
mode restores the FPU state lazily.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition, InvalidArgument
from svasim.model.journal import Journal
from svasim.model.kernel.core import changed, task_fields
from svasim.model.kernel.tlb import Tlb
from svasim.model.kernel_state import CpuState, Task


@mypyc_attr(native_class=False)
class ContextSwitch(Tlb):
    """schedule, __switch_to and the per-thread registers it switches."""

    def schedule(self, journal: Journal, tid: int, cpu_id: int) -> tuple[int, bool, int]:
        """Context switch ``cpu_id`` to thread ``tid`` and return to user.

        Returns (prev tid, whether CR3 changed, cycles).
        """
        task = self.task(tid)
        if task.kthread:
            if task.exited:
                raise FailedPrecondition("THREAD_EXITED", f"thread {tid} has exited", tid=tid)
        else:
            self.user_task(tid)
        cpu = self.cpu(cpu_id)
        if task.cpu == cpu_id:
            return tid, False, 0
        with self.kernel_path("switch"):
            return self._context_switch(journal, task, cpu)

    def _context_switch(self, journal: Journal, task: Task, cpu: CpuState) -> tuple[int, bool, int]:
        tid = task.tid
        cpu_id = cpu.id
        start = cpu.cycles
        carried = journal.cycles  # cycles other transitions of this switch carry
        # The switch's own transitions carry what it changed of the CPU and both tasks.
        cpu_was = self.cpu_fields(cpu)
        task_was = task_fields(task)
        if task.cpu >= 0:
            # Migration: the thread leaves its old CPU, which goes idle.
            old = self.cpus[task.cpu]
            old_was = self.cpu_fields(old)
            self._switch_fpu_prepare(old, task, journal)
            old.current = 0
            task.cpu = -1
            journal.emit(
                old.entity, "sched.idle", {"current": tid}, {"current": 0, **changed(old_was, self.cpu_fields(old))}
            )
        prev = self.current(cpu)
        prev_was = task_fields(prev) if prev is not None else {}
        self.charge(cpu, task, self.costs.context_switch, "switch")
        self.count(cpu, task, "context_switches")
        switched = False
        if not task.kthread:
            switched = self._switch_mm_irqs_off(journal, cpu, task, self.processes[task.pid])
        else:
            task.borrowed_mm = 0  # enter_lazy_tlb: CR3 keeps whatever was loaded
        # __switch_to
        if prev is not None:
            self._switch_fpu_prepare(cpu, prev, journal)
            prev.cpu = -1
            journal.emit(
                prev.entity,
                "thread.switch_out",
                {"cpu": cpu.id},
                {"cpu": -1, "saved_ia32_pasid": prev.saved_ia32_pasid, **changed(prev_was, task_fields(prev))},
            )
        cpu.current = tid
        task.cpu = cpu_id
        self._switch_fpu_finish(cpu, task, journal)
        self._switch_gs(cpu, prev, task)
        if not task.kthread:
            self.return_to_user(cpu, task, journal)
        journal.emit(task.entity, "thread.run", {"cpu": -1}, {"cpu": cpu_id, **changed(task_was, task_fields(task))})
        # The switch's own cost: everything charged to the CPU that no other transition
        # of the switch carries (so the cycles of a run's transitions add up).
        journal.emit(
            cpu.entity,
            "sched.switch",
            {"current": prev.tid if prev else 0},
            {"current": tid, "cycles": cpu.cycles, **changed(cpu_was, self.cpu_fields(cpu))},
            cycles=cpu.cycles - start - (journal.cycles - carried),
        )
        self._check_cpumask(journal)
        return prev.tid if prev else 0, switched, cpu.cycles - start

    def _switch_gs(self, cpu: CpuState, prev: Task | None, nxt: Task) -> None:
        """save_fsgs for the outgoing task, then the incoming one's inactive GS base."""
        if prev is not None and not prev.kthread:
            prev.gs_base = cpu.kernel_gs_base
        # __wrgsbase_inactive with FSGSBASE: written on every switch.
        cpu.kernel_gs_base = 0 if nxt.kthread else nxt.gs_base
        self.count(cpu, nxt, "wrgsbase")
        self.charge(cpu, nxt, self.costs.wrgsbase, "switch")

    def write_pkru(self, journal: Journal, tid: int, value: int) -> None:
        """WRPKRU in the running thread."""
        if not 0 <= value < 1 << 32:
            raise InvalidArgument("BAD_PKRU", f"PKRU is 32 bits, got {value:#x}")
        task, cpu = self.running_task(tid)
        cpu.pkru = value
        task.pkru = value
        self.count(cpu, task, "wrpkru")
        self.charge(cpu, task, self.costs.wrpkru, "user")
        journal.emit(task.entity, "pkru.write", None, {"pkru": value}, cycles=self.costs.wrpkru)

    def set_gs_base(self, journal: Journal, tid: int, value: int) -> None:
        """arch_prctl(ARCH_SET_GS) / WRGSBASE in the running thread (the user GS base is
        what the kernel keeps in KERNEL_GS_BASE while in user mode's swapped view)."""
        task, cpu = self.running_task(tid)
        cpu.kernel_gs_base = value
        task.gs_base = value
        journal.emit(task.entity, "gsbase.write", None, {"gs_base": value})
