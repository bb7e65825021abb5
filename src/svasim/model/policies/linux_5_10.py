"""Linux 5.10 to 5.13: IPI on allocation plus update_pasid() in the FPU switch path.

Commit 20f0afd1fb3d: ``load_pasid()`` sets ``mm->pasid`` and runs
``on_each_cpu_mask(mm_cpumask(mm), _load_pasid, NULL, true)``; ``update_pasid()`` runs in
that IPI and at the end of ``switch_fpu_finish()``. It acts on ``current`` whatever it
is: with ``TIF_NEED_FPU_LOAD`` clear it writes the MSR, otherwise it edits the XSAVE
buffer. There is no #GP fixup; a thread whose MSR is not valid gets SIGSEGV. The PASID
was freed on the last unbind (``ioasid_free`` then ``load_pasid(mm, PASID_DISABLED)``).

Its defects, reproduced faithfully (commit 9bfecd058339 disabled ENQCMD for them):
the IPI can land inside an FPU save sequence, because ``fpregs_lock()`` only disables
bottom halves, and its edit of the buffer is then overwritten by the XSAVES that
follows; and, given NULL, it acts on whatever runs there, including a kernel thread
that borrowed the mm.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel_state import CpuState, Process, Task, pasid_state
from svasim.model.policy import KernelInterface, PolicyBase


def update_pasid(kernel: KernelInterface, cpu: CpuState, info: int | None, journal: Journal) -> None:
    """Linux 5.10's update_pasid(), acting on whatever is current on ``cpu`` (``info`` is NULL)."""
    cur = kernel.current(cpu)
    if cur is None:
        return
    mm_id = cur.borrowed_mm if cur.kthread else cur.pid
    if not mm_id:
        return  # !current->mm
    if cur.kthread:
        # The NULL-argument IPI acts on a kernel thread that borrowed the mm.
        kernel.violation(
            journal,
            cur,
            "ipi_acted_on_kthread",
            f"update_pasid ran for kernel thread {cur.tid} on borrowed mm {mm_id}",
        )
    want = pasid_state(kernel.mm(mm_id).pasid)
    if not cur.tif_need_fpu_load:
        if cpu.ia32_pasid != want:
            kernel.wrmsr_pasid(cpu, want, journal, why="update_pasid")
    elif cur.xstate["pasid"] != want:
        # __fpu_invalidate_fpregs_state, then edit the buffer.
        cur.last_cpu = -1
        kernel.set_saved_pasid(cpu, cur, want, journal, why="update_pasid")


@mypyc_attr(native_class=False)
class Linux510(PolicyBase):
    """update_pasid() in switch_fpu_finish and in the allocation IPI."""

    name = "linux-5.10"
    clone_keeps_pasid = True
    early_free = True

    def on_pasid_alloc(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """load_pasid(): IPI mm_cpumask with a NULL argument."""
        kernel.on_each_cpu_mask(cpu, mm.mm_cpumask, update_pasid, None, journal)

    def on_pasid_free(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """load_pasid(mm, PASID_DISABLED) after ioasid_free."""
        kernel.on_each_cpu_mask(cpu, mm.mm_cpumask, update_pasid, None, journal)

    def on_switch_fpu_finish(self, kernel: KernelInterface, cpu: CpuState, task: Task, journal: Journal) -> None:
        """update_pasid() for the incoming task."""
        update_pasid(kernel, cpu, None, journal)
