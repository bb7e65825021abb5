"""PASID policies: how the kernel gets an mm's PASID into a thread's IA32_PASID MSR.

Every policy implements :class:`PasidPolicy`; the kernel calls its hooks at the points
Linux does. The invariant all of them must keep (checked by the kernel on every
submission, never by the policy itself): the PASID an ENQCMD carries is the submitting
thread's mm's current PASID.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from svasim.model.journal import Journal

if TYPE_CHECKING:  # pragma: no cover
    from svasim.model.cpu import CpuState, Kernel, Task

#: MSR_IA32_PASID and its valid bit (arch/x86/include/asm/msr-index.h).
MSR_IA32_PASID = 0xD93
MSR_IA32_PASID_VALID = 1 << 31
PASID_MASK = 0xFFFFF


class PasidPolicy(Protocol):
    """The hooks a PASID policy provides."""

    name: str

    def try_fixup_enqcmd_gp(self, kernel: Kernel, task: Task, cpu: CpuState, journal: Journal) -> bool:
        """Called by the #GP handler for a user-mode #GP; True means re-execute."""
        ...

    def on_pasid_alloc(self, kernel: Kernel, mm: int, journal: Journal) -> None:
        """Called after the mm's PASID was allocated (first bind)."""
        ...


class Linux518:
    """Linux 5.18 and later: lazy load by the #GP fixup (arch/x86/kernel/traps.c).

    ``try_fixup_enqcmd_gp`` fails when the mm has no PASID or when the task already
    has ``pasid_activated`` (then the #GP had another cause, and failing prevents a
    fixup loop); otherwise it writes PASID | VALID to the MSR, sets
    ``pasid_activated`` and lets ENQCMD run again. The value is then carried in the
    task's XSAVE state (component 10) across context switches.
    """

    name = "linux-5.18"

    def try_fixup_enqcmd_gp(self, kernel: Kernel, task: Task, cpu: CpuState, journal: Journal) -> bool:
        """The fixup of exc_general_protection, before normal #GP handling."""
        mm = kernel.processes[task.pid]
        if not mm.pasid or task.pasid_activated:
            return False
        kernel.wrmsr_pasid(cpu, mm.pasid | MSR_IA32_PASID_VALID, journal, why="try_fixup_enqcmd_gp")
        before = {"pasid_activated": False}
        task.pasid_activated = True
        journal.emit(f"thread/{task.tid}", "thread.pasid_activated", before, {"pasid_activated": True})
        return True

    def on_pasid_alloc(self, kernel: Kernel, mm: int, journal: Journal) -> None:
        """Nothing: threads load the MSR lazily on their first ENQCMD."""


POLICIES: dict[str, type] = {Linux518.name: Linux518}


def make_policy(name: str) -> PasidPolicy:
    """The policy of that name; ValueError lists the known ones."""
    cls = POLICIES.get(name)
    if cls is None:
        raise ValueError(f"unknown PASID policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    policy: PasidPolicy = cls()
    return policy
