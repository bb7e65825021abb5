"""Traps: arch/x86/kernel/traps.c.

- ``exc_general_protection()``: a user-mode #GP first offers itself to the fixup
  (``try_fixup_enqcmd_gp``, the PASID policy's) and otherwise becomes SIGSEGV, whose
  default action kills the process (``force_sig(SIGSEGV)``).
- ``exc_device_not_available()`` with XFD armed: ``handle_xfd_event()`` reads and clears
  XFD_ERR, checks the process's AMX permission (SIGILL without it), grows the fpstate
  and disarms XFD. Under the hypothetical lazy-resource exception the fault names the
  resource and none of the disambiguation is needed.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel.exit import Exit
from svasim.model.kernel.fpu import Fpu
from svasim.model.kernel_state import CpuState, Process, Task

SIGILL = 4
SIGSEGV = 11


@mypyc_attr(native_class=False)
class Traps(Exit, Fpu):
    """#GP entry, SIGSEGV and the #NM/XFD path."""

    def _take_gp(self, journal: Journal, task: Task, cpu: CpuState, insn: str, reason: str) -> None:
        """A user-mode #GP: the trap round trip and the handler's entry, recorded."""
        task.gp_faults += 1
        self.count(cpu, task, "gp")
        trap_cost = self.costs.trap_roundtrip + self.costs.gp_handler
        self.charge(cpu, task, trap_cost, "trap")
        journal.emit(
            task.entity,
            "trap.gp",
            None,
            {"gp_faults": task.gp_faults},
            cycles=trap_cost,
            detail={"insn": insn, "reason": reason, "cpu": cpu.id},
        )

    def _force_sigsegv(self, journal: Journal, proc: Process, task: Task, cpu: CpuState) -> None:
        """Deliver SIGSEGV; its default action kills the whole process."""
        self.count(cpu, task, "sigsegv")
        self.charge(cpu, task, self.costs.signal_delivery, "signal")
        journal.emit(
            task.entity, "signal.sigsegv", None, None, cycles=self.costs.signal_delivery, detail={"signal": SIGSEGV}
        )
        self._kill(journal, proc, SIGSEGV)

    def use_tile(self, journal: Journal, tid: int) -> str:
        """The running thread executes a tile instruction; returns what happened."""
        task, cpu = self.running_task(tid)
        proc = self.processes[task.pid]
        result = "ok"
        if cpu.xfd_armed:
            trap = "lr" if self.policy.lazy_resource_exception else "nm"
            before = cpu.cycles
            self.count(cpu, task, trap)
            self.charge(cpu, task, self.costs.trap_roundtrip, "trap")
            if trap == "nm":
                # handle_xfd_event: read and clear XFD_ERR before anything else.
                self.count(cpu, task, "rdmsr.xfd_err")
                self.charge(cpu, task, self.costs.rdmsr + self.costs.nm_handler, "trap")
                self.count(cpu, task, "wrmsr.xfd_err")
                self.charge(cpu, task, self.costs.wrmsr, "wrmsr")
            else:
                self.charge(cpu, task, self.costs.lr_handler, "trap")
            journal.emit(
                task.entity, f"trap.{trap}", None, None, cycles=cpu.cycles - before, detail={"resource": "TILE"}
            )
            if not proc.amx_permitted:
                journal.emit(task.entity, "signal.sigill", None, None, detail={"signal": SIGILL})
                self._kill(journal, proc, SIGILL)
                return "sigill"
            task.fpstate_large = True
            self.charge(cpu, task, self.costs.fpstate_grow, "trap")
            cpu.xfd_armed = False
            self.count(cpu, task, "wrmsr.xfd")
            self.charge(cpu, task, self.costs.wrmsr, "wrmsr")
            journal.emit(
                task.entity,
                "fpstate.grow",
                None,
                {"fpstate_large": True},
                cycles=self.costs.fpstate_grow + self.costs.wrmsr,
            )
            result = "grew"
        token = self.next_fp_token
        self.next_fp_token += 1
        cpu.regs["tile"] = token
        task.user_tile = token
        journal.emit("kernel", "fpu.token", None, {"next_fp_token": self.next_fp_token})
        return result
