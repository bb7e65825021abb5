"""switch_mm and the TLB: arch/x86/mm/tlb.c.

``switch_mm_irqs_off()`` updates ``mm_cpumask`` for the outgoing and incoming mm,
picks a PCID among the ``TLB_NR_DYN_ASIDS`` dynamic ASIDs of the CPU
(``choose_new_asid()``: a flush when a slot is reused for another mm or the mm's
``tlb_gen`` moved on), writes CR3, loads the LDT (``load_mm_ldt``), and runs the PASID
policy's hook for the incoming user task. Kernel threads keep whatever mm is loaded
(lazy TLB, ``enter_lazy_tlb``).
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel.fpu import Fpu
from svasim.model.kernel.ldt import Ldt
from svasim.model.kernel_state import CpuState, Process, Task

#: TLB_NR_DYN_ASIDS (arch/x86/include/asm/tlbflush.h).
TLB_NR_DYN_ASIDS = 6


@mypyc_attr(native_class=False)
class Tlb(Ldt, Fpu):
    """switch_mm_irqs_off, PCID allocation and local TLB flushes."""

    def _switch_mm_irqs_off(self, journal: Journal, cpu: CpuState, task: Task, nxt: Process) -> bool:
        """PCID, CR3, mm_cpumask, LDT, and the policy's hook; True when CR3 changed."""
        changed = False
        if cpu.loaded_mm != nxt.pid:
            changed = True
            prev_mm = cpu.loaded_mm
            if prev_mm and prev_mm in self.processes:
                old = self.processes[prev_mm]
                old.mm_cpumask &= ~(1 << cpu.id)
                journal.emit(old.entity, "mm.cpumask", None, {"mm_cpumask": old.cpumask_list()})
            nxt.mm_cpumask |= 1 << cpu.id
            journal.emit(nxt.entity, "mm.cpumask", None, {"mm_cpumask": nxt.cpumask_list()})
            self._choose_new_asid(journal, cpu, task, nxt)
            cpu.loaded_mm = nxt.pid
            self.count(cpu, task, "switch_mm")
            self.charge(cpu, task, self.costs.switch_mm, "switch")
            journal.emit(cpu.entity, "cr3.write", {"loaded_mm": prev_mm}, {"loaded_mm": nxt.pid, "cr3": nxt.aspace.pgd})
            prev_ldt = cpu.ldt_gen
            if nxt.ldt_gen or prev_ldt[1]:
                self._load_mm_ldt(cpu, nxt, journal)
        if not task.kthread:
            self.policy.on_switch_mm(self, cpu, task, journal)
        return changed

    def _choose_new_asid(self, journal: Journal, cpu: CpuState, task: Task, mm: Process) -> None:
        """Reuse the mm's ASID on this CPU (flushing if its tlb_gen moved) or take the next slot."""
        for i, (ctx, gen) in enumerate(cpu.asids):
            if ctx == mm.ctx_id:
                if gen != mm.tlb_gen:
                    cpu.asids[i] = (ctx, mm.tlb_gen)
                    self._flush_tlb_local(cpu, task, journal, why="tlb_gen")
                return
        slot = cpu.next_asid
        cpu.next_asid = (slot + 1) % TLB_NR_DYN_ASIDS
        if slot < len(cpu.asids):
            cpu.asids[slot] = (mm.ctx_id, mm.tlb_gen)
        else:
            cpu.asids.append((mm.ctx_id, mm.tlb_gen))
        # A new ASID for this mm on this CPU: its old TLB entries must go.
        self._flush_tlb_local(cpu, task, journal, why=f"asid {slot} reused")

    def _flush_tlb_local(self, cpu: CpuState, task: Task | None, journal: Journal, *, why: str) -> None:
        self.count(cpu, task, "tlb_flush")
        self.charge(cpu, task, self.costs.tlb_flush, "tlb")
        journal.emit(
            cpu.entity,
            "tlb.flush",
            None,
            {"asids": [[ctx, gen] for ctx, gen in cpu.asids], "next_asid": cpu.next_asid},
            detail={"why": why},
        )
