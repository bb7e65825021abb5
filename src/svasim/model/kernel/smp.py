"""Cross-CPU function calls: kernel/smp.c.

``on_each_cpu_mask(mask, func, info, wait=true)`` runs ``func(info)`` on every CPU of
the mask and waits for all of them. ``smp_call_function_many_cond()`` takes the sending
CPU out of the mask it sends IPIs to and, when that CPU was in the mask, runs the
function there directly with interrupts off (``SCF_RUN_LOCAL``): a CPU never sends an
IPI to itself. The function is a Python callable, as in Linux: each user passes its own
handler (``flush_ldt`` from arch/x86/kernel/ldt.c, a PASID policy's ``update_pasid`` or
``load_mm_pasid``).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Self

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel.core import KernelCore
from svasim.model.kernel_state import CpuState


@mypyc_attr(native_class=False)
class Smp(KernelCore):
    """IPIs: on_each_cpu_mask and the handler's run on the target CPU."""

    def on_each_cpu_mask(
        self,
        sender: CpuState,
        mask: int,
        func: Callable[[Self, CpuState, int | None, Journal], None],
        info: int | None,
        journal: Journal,
    ) -> None:
        """Run ``func(kernel, cpu, info, journal)`` on every CPU of ``mask`` and wait.

        The handler runs on each other target in whatever context it is in at that
        moment: between two steps of a kernel sequence on the target's CPU when one is
        there (:mod:`svasim.model.kernel.sequences`; ``ipi.handle`` records the point). On the sender
        it runs last, directly, after the IPIs are sent, as smp_call_function_many_cond()
        does; that costs no IPI.
        """
        for n in range(len(self.cpus)):
            if not mask >> n & 1 or n == sender.id:
                continue
            target = self.cpus[n]
            self.count(sender, self.current(sender), "ipi_sent")
            self.charge(sender, self.current(sender), self.costs.ipi_send, "ipi")
            journal.emit(
                target.entity,
                "ipi.send",
                None,
                None,
                cycles=self.costs.ipi_send,
                detail={"from": sender.id, "handler": func.__name__, "arg": info},
            )
            with self.kernel_path("ipi"):
                self._ipi_handle(target, func, info, journal)
        if mask >> sender.id & 1:
            journal.emit(
                sender.entity,
                "smp.call_local",
                None,
                None,
                detail={"handler": func.__name__, "arg": info, "current": sender.current},
            )
            func(self, sender, info, journal)

    def _ipi_handle(
        self,
        cpu: CpuState,
        func: Callable[[Self, CpuState, int | None, Journal], None],
        info: int | None,
        journal: Journal,
    ) -> None:
        """The call-function interrupt on ``cpu``: entry, the handler, exit."""
        cur = self.current(cpu)
        self.count(cpu, cur, "ipi_received")
        self.charge(cpu, cur, self.costs.ipi_receive, "ipi")
        journal.emit(
            cpu.entity,
            "ipi.handle",
            None,
            None,
            cycles=self.costs.ipi_receive,
            detail={"handler": func.__name__, "arg": info, "current": cpu.current, "at": cpu.in_sequence},
        )
        func(self, cpu, info, journal)
