"""Linux 5.18 and later: the MSR is loaded lazily by a #GP fixup (arch/x86/kernel/traps.c).

``try_fixup_enqcmd_gp`` fails when the mm has no PASID or when the task already has
``pasid_activated`` (the #GP then had another cause; failing prevents a fixup loop);
otherwise it writes PASID | VALID to the MSR, sets ``pasid_activated`` and lets ENQCMD
run again. The value is then carried in the task's XSAVE state (component 10); new
threads start with it clear (fpu_clone clears the PASID feature bit).
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel_state import CpuState, Task, pasid_state
from svasim.model.policy import KernelInterface, PolicyBase


@mypyc_attr(native_class=False)
class Linux518(PolicyBase):
    """Lazy #GP fixup."""

    name = "linux-5.18"

    def try_fixup_enqcmd_gp(self, kernel: KernelInterface, task: Task, cpu: CpuState, journal: Journal) -> bool:
        """The fixup of exc_general_protection, before normal #GP handling."""
        mm = kernel.mm(task.pid)
        if not mm.pasid or task.pasid_activated:
            return False
        kernel.wrmsr_pasid(cpu, pasid_state(mm.pasid), journal, why="try_fixup_enqcmd_gp")
        task.pasid_activated = True
        journal.emit(task.entity, "thread.pasid_activated", {"pasid_activated": False}, {"pasid_activated": True})
        return True
