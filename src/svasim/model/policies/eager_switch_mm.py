"""Eager loading in switch_mm with an IPI on allocation (Lutomirski, 2020-08-03).

switch_mm_irqs_off() copies ``next->mm->pasid`` into the incoming task's PASID state;
a PASID allocation runs ``on_each_cpu_mask(mm_cpumask(mm), load_mm_pasid, mm, true)``.
The IPI handler is given the mm and acts only when the CPU's current task belongs to it
(the 5.10 handler was given NULL). It writes both the live MSR and the saved state, and
invalidates the CPU's register ownership, so an IPI that lands inside an FPU save or
restore cannot lose the update whichever half of the sequence it interrupts.

``eager-switch-mm`` writes the saved state on every switch; ``eager-switch-mm-cmp``
compares first and writes only when it differs, so the common case does not dirty the
cache line (and keeps the skipped-restore fast path).
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel_state import CpuState, Process, Task, pasid_state
from svasim.model.policy import KernelInterface, PolicyBase


def load_mm_pasid(kernel: KernelInterface, cpu: CpuState, info: int | None, journal: Journal) -> None:
    """The IPI handler: load the PASID of mm ``info`` if ``cpu`` runs one of its threads."""
    cur = kernel.current(cpu)
    mm_id = info or 0
    if cur is None or cur.kthread or cur.pid != mm_id:
        return
    want = pasid_state(kernel.mm(mm_id).pasid)
    # Write both the live MSR and the saved state, and drop register ownership, so an
    # FPU save or restore in progress cannot lose the update.
    if cpu.ia32_pasid != want:
        kernel.wrmsr_pasid(cpu, want, journal, why="load_mm_pasid")
    if cur.xstate["pasid"] != want:
        kernel.set_saved_pasid(cpu, cur, want, journal, why="load_mm_pasid")
    if cur.tif_need_fpu_load:
        cur.last_cpu = -1


@mypyc_attr(native_class=False)
class EagerSwitchMm(PolicyBase):
    """Write the task's PASID state in switch_mm; IPI mm_cpumask on allocation."""

    name = "eager-switch-mm"
    compare_first = False

    def on_switch_mm(self, kernel: KernelInterface, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Copy the mm's PASID into the incoming task's saved state."""
        want = pasid_state(kernel.mm(task.pid).pasid)
        if self.compare_first and task.xstate["pasid"] == want:
            return
        kernel.set_saved_pasid(cpu, task, want, journal, why=self.name)

    def on_pasid_alloc(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Load the new PASID on every CPU running one of the mm's threads."""
        kernel.on_each_cpu_mask(cpu, mm.mm_cpumask, load_mm_pasid, mm.pid, journal)

    def on_pasid_free(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Clear the freed PASID everywhere the mm runs."""
        kernel.on_each_cpu_mask(cpu, mm.mm_cpumask, load_mm_pasid, mm.pid, journal)


@mypyc_attr(native_class=False)
class EagerSwitchMmCmp(EagerSwitchMm):
    """The same, comparing before writing."""

    name = "eager-switch-mm-cmp"
    compare_first = True
