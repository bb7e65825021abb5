"""The per-mm LDT: arch/x86/kernel/ldt.c.

``modify_ldt()`` installs a new LDT for the mm and broadcasts it with
``on_each_cpu_mask(mm_cpumask(mm), flush_ldt, mm, true)``; ``flush_ldt()`` reloads it on
a CPU that still runs the mm, and ``load_mm_ldt()`` is what switch_mm calls.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel.smp import Smp
from svasim.model.kernel_state import CpuState, Process


def flush_ldt(kernel: Ldt, cpu: CpuState, info: int | None, journal: Journal) -> None:
    """The IPI handler: reload the LDT if ``cpu`` still has mm ``info`` loaded."""
    if cpu.loaded_mm == info and info:
        kernel._load_mm_ldt(cpu, kernel.processes[info], journal)


@mypyc_attr(native_class=False)
class Ldt(Smp):
    """modify_ldt and load_mm_ldt."""

    def modify_ldt(self, journal: Journal, tid: int) -> None:
        """modify_ldt(): a new LDT for the mm, flushed to every CPU in mm_cpumask."""
        task, cpu = self.running_task(tid)
        proc = self.processes[task.pid]
        proc.ldt_gen += 1
        journal.emit(proc.entity, "ldt.modify", None, {"ldt_gen": proc.ldt_gen})
        self.on_each_cpu_mask(cpu, proc.mm_cpumask, flush_ldt, proc.pid, journal)

    def _load_mm_ldt(self, cpu: CpuState, mm: Process, journal: Journal) -> None:
        """LLDT of the mm's current LDT on ``cpu``."""
        cpu.ldt_gen = (mm.pid, mm.ldt_gen)
        cur = self.current(cpu)
        self.count(cpu, cur, "ldt_load")
        self.charge(cpu, cur, self.costs.ldt_load, "switch")
        journal.emit(cpu.entity, "ldt.load", None, {"ldt": [mm.pid, mm.ldt_gen]})
