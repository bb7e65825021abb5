"""PASID policies: how the kernel gets an mm's PASID into a thread's IA32_PASID MSR.

A policy implements :class:`PasidPolicy`, in its own module under
``svasim.model.policies`` (whose registry names them all); the kernel calls its hooks
at the points Linux (or the proposal it models) does. A policy sees the kernel only
through :class:`KernelInterface`: the handful of operations a policy may perform. The
invariant every policy must keep is checked by the kernel on every submission, never
by the policy: the PASID an ENQCMD carries is the submitting thread's mm's current
PASID.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, Self

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel_state import CpuState, Process, Task


@mypyc_attr(native_class=False)
class KernelInterface(Protocol):
    """The kernel operations a policy (and the IPI handler it sends) may call."""

    def current(self, cpu: CpuState) -> Task | None:
        """``current`` on ``cpu``: the task it runs, or None when idle."""
        ...

    def mm(self, pid: int) -> Process:
        """The mm of process ``pid``."""
        ...

    def wrmsr_pasid(self, cpu: CpuState, value: int, journal: Journal, *, why: str) -> None:
        """WRMSR to IA32_PASID on ``cpu``."""
        ...

    def set_saved_pasid(self, cpu: CpuState, task: Task, value: int, journal: Journal, *, why: str) -> None:
        """Write the PASID component of ``task``'s XSAVE buffer."""
        ...

    def on_each_cpu_mask(
        self,
        sender: CpuState,
        mask: int,
        func: Callable[[Self, CpuState, int | None, Journal], None],
        info: int | None,
        journal: Journal,
    ) -> None:
        """Run ``func(kernel, cpu, info, journal)`` on every CPU of ``mask`` and wait."""
        ...

    def violation(self, journal: Journal, task: Task | None, invariant: str, what: str) -> None:
        """Record a broken invariant."""
        ...


@mypyc_attr(native_class=False)
class PasidPolicy(Protocol):
    """The hooks a PASID policy provides (see :class:`PolicyBase` for the defaults)."""

    name: str
    #: fpu_clone keeps the parent's PASID state in a new thread (5.10) or clears it (5.18+).
    clone_keeps_pasid: bool
    #: ENQCMD with an invalid MSR raises a fault naming the resource instead of #GP.
    lazy_resource_exception: bool
    #: The PASID is freed on the mm's last unbind (5.10) rather than at mm teardown.
    early_free: bool

    def try_fixup_enqcmd_gp(self, kernel: KernelInterface, task: Task, cpu: CpuState, journal: Journal) -> bool:
        """Called by the #GP handler for a user-mode #GP; True means re-execute."""
        ...

    def on_pasid_alloc(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Called on ``cpu`` after the mm's PASID was allocated (first bind)."""
        ...

    def on_pasid_free(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Called on ``cpu`` after the mm's PASID was freed early (last unbind)."""
        ...

    def on_switch_mm(self, kernel: KernelInterface, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Called in switch_mm_irqs_off for the incoming user task."""
        ...

    def on_switch_fpu_finish(self, kernel: KernelInterface, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Called at the end of switch_fpu_finish for the incoming task."""
        ...


@mypyc_attr(native_class=False)
class PolicyBase:
    """Defaults: nothing happens at any hook, and there is no #GP fixup."""

    name = "base"
    clone_keeps_pasid = False
    lazy_resource_exception = False
    early_free = False

    def try_fixup_enqcmd_gp(self, kernel: KernelInterface, task: Task, cpu: CpuState, journal: Journal) -> bool:
        """No fixup: every #GP is real."""
        return False

    def on_pasid_alloc(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Nothing."""

    def on_pasid_free(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """Nothing."""

    def on_switch_mm(self, kernel: KernelInterface, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Nothing."""

    def on_switch_fpu_finish(self, kernel: KernelInterface, cpu: CpuState, task: Task, journal: Journal) -> None:
        """Nothing."""
