"""PASID policies: how the kernel gets an mm's PASID into a thread's IA32_PASID MSR.

Every policy implements :class:`PasidPolicy`, each in its own module under
``svasim.model.policies``; the kernel calls its hooks at the points Linux (or the
proposal it models) does. The invariant all of them must keep is checked by the kernel
on every submission, never by the policy: the PASID an ENQCMD carries is the
submitting thread's mm's current PASID.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Protocol

from svasim.model.journal import Journal

if TYPE_CHECKING:  # pragma: no cover
    from svasim.model.cpu import CpuState, Kernel, Process, Task

#: MSR_IA32_PASID and its valid bit (arch/x86/include/asm/msr-index.h).
MSR_IA32_PASID = 0xD93
MSR_IA32_PASID_VALID = 1 << 31
PASID_MASK = 0xFFFFF


def pasid_state(pasid: int) -> int:
    """The MSR / xstate value for an mm PASID: PASID | VALID, or 0 for none."""
    return pasid | MSR_IA32_PASID_VALID if pasid else 0


class PasidPolicy(Protocol):
    """The hooks a PASID policy provides (see :class:`PolicyBase` for the defaults)."""

    name: str
    #: fpu_clone keeps the parent's PASID state in a new thread (5.10) or clears it (5.18+).
    clone_keeps_pasid: bool
    #: ENQCMD with an invalid MSR raises a fault naming the resource instead of #GP.
    lazy_resource_exception: bool

    def try_fixup_enqcmd_gp(self, kernel: Kernel, task: Task, cpu: CpuState, journal: Journal) -> bool:
        """Called by the #GP handler for a user-mode #GP; True means re-execute."""
        ...

    def on_pasid_alloc(self, kernel: Kernel, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Called on ``cpu`` after the mm's PASID was allocated (first bind)."""
        ...

    def on_pasid_free(self, kernel: Kernel, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Called on ``cpu`` after the mm's PASID was freed early (last unbind)."""
        ...

    def on_switch_mm(self, kernel: Kernel, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Called in switch_mm_irqs_off for the incoming user task."""
        ...

    def on_switch_fpu_finish(self, kernel: Kernel, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Called at the end of switch_fpu_finish for the incoming task."""
        ...


class PolicyBase:
    """Defaults: nothing happens at any hook, and there is no #GP fixup."""

    name = "base"
    clone_keeps_pasid = False
    lazy_resource_exception = False

    def try_fixup_enqcmd_gp(self, kernel: Kernel, task: Task, cpu: CpuState, journal: Journal) -> bool:
        """No fixup: every #GP is real."""
        return False

    def on_pasid_alloc(self, kernel: Kernel, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Nothing."""

    def on_pasid_free(self, kernel: Kernel, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Nothing."""

    def on_switch_mm(self, kernel: Kernel, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Nothing."""

    def on_switch_fpu_finish(self, kernel: Kernel, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Nothing."""


def policy_names() -> list[str]:
    """Names of every policy, sorted."""
    from svasim.model.policies import POLICIES

    return sorted(POLICIES)


def make_policy(name: str) -> PasidPolicy:
    """The policy of that name; ValueError lists the known ones."""
    from svasim.model.policies import POLICIES

    cls = POLICIES.get(name)
    if cls is None:
        raise ValueError(f"unknown PASID policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    policy: PasidPolicy = cls()
    return policy
