"""The submission instructions as a thread executes them: ENQCMD, ENQCMDS, MOVDIR64B.

Semantics from the SDM's ENQCMD/ENQCMDS/MOVDIR64B pages: ENQCMD raises #GP when
IA32_PASID[31] is clear, when the source's bits 31:0 are not zero or when the
destination is not 64-byte aligned; otherwise it sends
``COMMAND = (SRC & ~FFFFFFFFh) | (IA32_PASID & FFFFFh)`` as a non-posted store and
gets ZF=0 (accepted) or ZF=1 (retry; also for a destination that is not an enqueue
register). The #GP goes through ``exc_general_protection()`` (traps.c) and the PASID
policy's fixup. ENQCMDS is CPL0 only and takes the PASID and privilege bit from the
source. MOVDIR64B is a posted 64-byte store with no status. Every submission is checked
against the invariant of the PASID policies: the PASID sent is the mm's current one.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition, InvalidArgument
from svasim.model.journal import Journal
from svasim.model.kernel.mm import Mm
from svasim.model.kernel.traps import Traps
from svasim.model.kernel_state import MSR_IA32_PASID_VALID, PASID_MASK, CpuState, Process, Task, pasid_state
from svasim.model.ports import STORE_ENQCMD, STORE_ENQCMDS, STORE_MOVDIR64B
from svasim_api import idxd

#: Consecutive #GPs on one ENQCMD after which the kernel is declared to loop.
GP_LOOP_LIMIT = 4


@mypyc_attr(native_class=False)
class EnqcmdOutcome(StrEnum):
    """What became of one ENQCMD."""

    ACCEPTED = "accepted"
    RETRY = "retry"
    SIGSEGV = "sigsegv"
    PAGE_FAULT_SIGSEGV = "page_fault_sigsegv"
    #: A #GP in kernel mode (ENQCMDS with reserved source bits): an oops in Linux.
    KERNEL_GP = "kernel_gp"
    #: MOVDIR64B: the posted store went to a portal (no status comes back).
    POSTED = "posted"
    #: MOVDIR64B to ordinary memory: a 64-byte direct store.
    STORED = "stored"


@dataclass(slots=True)
@mypyc_attr(native_class=False)
class EnqcmdResult:
    """The architectural result of one ENQCMD."""

    outcome: EnqcmdOutcome
    zf: bool = False
    gp_faults: int = 0
    fixup_loaded_msr: bool = False
    pasid_sent: int = 0
    retry_reason: str = ""
    cycles: int = 0


@dataclass(slots=True)
@mypyc_attr(native_class=False)
class WaitResult:
    """What polling a completion record found."""

    completed: bool
    raw: bytes
    cycles: int


def _own_cycles(cpu: CpuState, start: int, journal: Journal, carried: int) -> int:
    """An instruction's own cycles since ``start``: what no trap or MSR transition of
    ``journal`` (which carried ``carried`` cycles at the start) carries. A function, not a
    closure: the compiled model (svasim.compiled) cannot build closures in these classes."""
    return cpu.cycles - start - (journal.cycles - carried)


@mypyc_attr(native_class=False)
class Enqcmd(Traps, Mm):
    """ENQCMD, ENQCMDS, MOVDIR64B and polling a completion record."""

    @staticmethod
    def _enqcmd_gp_reason(cpu: CpuState, dest: int, src: bytes) -> str:
        if dest % 64:
            return "destination not 64-byte aligned"
        if not cpu.ia32_pasid & MSR_IA32_PASID_VALID:
            return "IA32_PASID not valid"
        if int.from_bytes(src[:4], "little"):
            return "source bits 31:0 not zero"
        return ""

    def _sigsegv(
        self,
        journal: Journal,
        proc: Process,
        task: Task,
        cpu: CpuState,
        gp: int,
        fixed: bool,
        start: int,
        outcome: EnqcmdOutcome,
    ) -> EnqcmdResult:
        """The instruction ends in SIGSEGV: deliver it and report the result."""
        self._force_sigsegv(journal, proc, task, cpu)
        return EnqcmdResult(outcome, False, gp, fixed, 0, "", cpu.cycles - start)

    def enqcmd(self, journal: Journal, tid: int, dest: int, src: bytes) -> EnqcmdResult:
        """Execute ENQCMD in a running thread: faults and their handling, then the store."""
        if len(src) != idxd.DSA_DESC_SIZE:
            raise InvalidArgument(
                "BAD_DESCRIPTOR_SIZE",
                f"ENQCMD moves exactly 64 bytes; the descriptor has {len(src)}",
                size=len(src),
            )
        if dest < 0 or dest >= 1 << 64:
            raise InvalidArgument("BAD_ADDRESS", f"destination {dest:#x} is not a 64-bit address")
        task, cpu = self.running_task(tid)
        with self.kernel_path("enqcmd"):
            return self._enqcmd(journal, task, cpu, dest, src)

    def _enqcmd(self, journal: Journal, task: Task, cpu: CpuState, dest: int, src: bytes) -> EnqcmdResult:
        proc = self.processes[task.pid]
        start = cpu.cycles
        carried = journal.cycles

        gp = 0
        fixed = False
        self.count(cpu, task, "enqcmd")
        while True:
            task.enqcmds += 1
            self.charge(cpu, task, self.costs.enqcmd, "enqcmd")
            reason = self._enqcmd_gp_reason(cpu, dest, src)
            if not reason:
                break
            if reason == "IA32_PASID not valid" and self.policy.lazy_resource_exception:
                # The fault names the resource: load it, or it is a real fault.
                self.count(cpu, task, "lr")
                self.charge(cpu, task, self.costs.trap_roundtrip + self.costs.lr_handler, "trap")
                journal.emit(task.entity, "trap.lr", None, None, detail={"resource": "PASID", "cpu": cpu.id})
                if proc.pasid and not fixed:
                    self.wrmsr_pasid(cpu, pasid_state(proc.pasid), journal, why="lazy_resource_exception")
                    fixed = True
                    continue
                return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.SIGSEGV)
            gp += 1
            self._take_gp(journal, task, cpu, "enqcmd", reason)
            if gp >= GP_LOOP_LIMIT:
                self.violation(journal, task, "gp_fixup_loop", f"{gp} #GPs on one ENQCMD")
                return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.SIGSEGV)
            if self.policy.try_fixup_enqcmd_gp(self, task, cpu, journal):
                fixed = True
                self.count(cpu, task, "gp_fixups")
                continue
            if reason == "IA32_PASID not valid" and proc.pasid:
                # The process has a PASID, yet this thread's MSR is not valid and nothing
                # will load it: the PASID state was lost on the way to this thread.
                self.violation(
                    journal,
                    task,
                    "pasid_lost",
                    f"thread {task.tid} of a process with PASID {proc.pasid} has an invalid IA32_PASID",
                )
            return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.SIGSEGV)
        pasid_sent = cpu.ia32_pasid & PASID_MASK
        # COMMAND = (SRC & ~FFFFFFFFh) | (IA32_PASID & FFFFFh); bit 31 (priv) is 0.
        command = pasid_sent.to_bytes(4, "little") + src[4:]
        vma = proc.aspace.find_vma(dest)
        if vma is None:
            journal.emit(task.entity, "trap.pf", None, None, detail={"address": dest, "insn": "enqcmd"})
            return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.PAGE_FAULT_SIGSEGV)
        if pasid_sent != proc.pasid:
            owner = next((p for p in self.processes.values() if p.pasid == pasid_sent and p is not proc), None)
            if owner is not None:
                self.violation(
                    journal,
                    task,
                    "pasid_of_another_process",
                    f"ENQCMD carries PASID {pasid_sent}, which belongs to process {owner.pid}; "
                    f"the submitter's mm has {proc.pasid or 'none'}",
                )
            else:
                self.violation(
                    journal,
                    task,
                    "pasid_mismatch",
                    f"ENQCMD carries PASID {pasid_sent}, the mm has {proc.pasid or 'none'}",
                )
        if vma.kind != "portal":
            reason = "destination is not an enqueue register"
            self.count(cpu, task, "enqcmd_retry")
            own = _own_cycles(cpu, start, journal, carried)
            journal.emit(
                task.entity, "enqcmd.retry", None, {"enqcmds": task.enqcmds}, cycles=own, detail={"reason": reason}
            )
            return EnqcmdResult(EnqcmdOutcome.RETRY, True, gp, fixed, pasid_sent, reason, cpu.cycles - start)
        offset = vma.portal_offset + (dest - vma.start)
        res = self.accel.submit(journal, vma.device, offset, command, STORE_ENQCMD, cpu.cycles)
        if res.accepted:
            self.count(cpu, task, "enqcmd_accepted")
            journal.emit(
                task.entity,
                "enqcmd.accept",
                None,
                {"enqcmds": task.enqcmds},
                cycles=_own_cycles(cpu, start, journal, carried),
                detail={"pasid": pasid_sent},
            )
            return EnqcmdResult(EnqcmdOutcome.ACCEPTED, False, gp, fixed, pasid_sent, "", cpu.cycles - start)
        self.count(cpu, task, "enqcmd_retry")
        journal.emit(
            task.entity,
            "enqcmd.retry",
            None,
            {"enqcmds": task.enqcmds},
            cycles=_own_cycles(cpu, start, journal, carried),
            detail={"reason": res.retry_reason},
        )
        return EnqcmdResult(EnqcmdOutcome.RETRY, True, gp, fixed, pasid_sent, res.retry_reason, cpu.cycles - start)

    def movdir64b(self, journal: Journal, tid: int, dest: int, src: bytes) -> EnqcmdResult:
        """MOVDIR64B in a running thread: a posted 64-byte store; no status comes back.

        To a portal it is a submission to a dedicated WQ (the device takes the PASID from
        WQCFG); to memory it is a direct store. A misaligned destination raises #GP, which
        goes through the same #GP handler as ENQCMD's (its fixup does not decode the
        instruction).
        """
        if len(src) != idxd.DSA_DESC_SIZE:
            raise InvalidArgument("BAD_DESCRIPTOR_SIZE", f"MOVDIR64B moves exactly 64 bytes, not {len(src)}")
        task, cpu = self.running_task(tid)
        proc = self.processes[task.pid]
        with self.kernel_path("movdir64b"):
            start = cpu.cycles
            gp = 0
            fixed = False
            while True:
                self.charge(cpu, task, self.costs.enqcmd, "movdir64b")
                if dest % 64 == 0:
                    break
                gp += 1
                self._take_gp(journal, task, cpu, "movdir64b", "destination not 64-byte aligned")
                if gp < GP_LOOP_LIMIT and self.policy.try_fixup_enqcmd_gp(self, task, cpu, journal):
                    fixed = True
                    continue
                return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.SIGSEGV)
            vma = proc.aspace.find_vma(dest)
            if vma is None or (vma.kind == "anon" and not vma.writable):
                journal.emit(task.entity, "trap.pf", None, None, detail={"address": dest, "insn": "movdir64b"})
                return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.PAGE_FAULT_SIGSEGV)
            if vma.kind == "anon":
                self.write_memory(journal, proc.pid, dest, src)
                return EnqcmdResult(EnqcmdOutcome.STORED, False, gp, fixed, 0, "", cpu.cycles - start)
            offset = vma.portal_offset + (dest - vma.start)
            self.accel.submit(journal, vma.device, offset, src, STORE_MOVDIR64B, cpu.cycles)
            self.count(cpu, task, "movdir64b")
            journal.emit(task.entity, "movdir64b.posted", None, None, detail={"device": vma.device, "offset": offset})
            return EnqcmdResult(EnqcmdOutcome.POSTED, False, gp, fixed, 0, "", cpu.cycles - start)

    def enqcmds(self, journal: Journal, tid: int, device: str, portal_offset: int, src: bytes) -> EnqcmdResult:
        """ENQCMDS in a running kernel thread: the PASID and privilege come from the source.

        From user mode it raises #GP (CPL > 0), which the #GP handler may try to fix up
        before it turns into SIGSEGV; a source with bits 30:20 set raises #GP in the
        kernel (an oops in Linux). The kernel's portal mapping is given as the device and
        the offset in its portal space.
        """
        if len(src) != idxd.DSA_DESC_SIZE:
            raise InvalidArgument("BAD_DESCRIPTOR_SIZE", f"ENQCMDS moves exactly 64 bytes, not {len(src)}")
        task = self.task(tid)
        if not task.kthread:
            task, cpu = self.running_task(tid)
            proc = self.processes[task.pid]
            start = cpu.cycles
            self._take_gp(journal, task, cpu, "enqcmds", "CPL > 0")
            return self._sigsegv(journal, proc, task, cpu, 1, False, start, EnqcmdOutcome.SIGSEGV)
        if task.exited or task.cpu < 0:
            raise FailedPrecondition("THREAD_NOT_RUNNING", f"kernel thread {tid} is not running on any CPU", tid=tid)
        cpu = self.cpus[task.cpu]
        start = cpu.cycles
        self.charge(cpu, task, self.costs.enqcmd, "enqcmd")
        dword0 = int.from_bytes(src[:4], "little")
        if dword0 & 0x7FF00000:
            journal.emit(
                task.entity,
                "trap.gp",
                None,
                None,
                detail={"insn": "enqcmds", "reason": "source bits 30:20 set", "cpu": cpu.id},
            )
            return EnqcmdResult(EnqcmdOutcome.KERNEL_GP, False, 1, False, 0, "", cpu.cycles - start)
        res = self.accel.submit(journal, device, portal_offset, src, STORE_ENQCMDS, cpu.cycles)
        pasid = dword0 & PASID_MASK
        kind = "enqcmds.accept" if res.accepted else "enqcmds.retry"
        journal.emit(
            task.entity,
            kind,
            None,
            None,
            detail={"pasid": pasid, "priv": bool(dword0 >> 31), "reason": res.retry_reason},
        )
        outcome = EnqcmdOutcome.ACCEPTED if res.accepted else EnqcmdOutcome.RETRY
        return EnqcmdResult(outcome, not res.accepted, 0, False, pasid, res.retry_reason, cpu.cycles - start)

    # -- polling ------------------------------------------------------------------------------
    def wait_completion(self, journal: Journal, tid: int, address: int) -> WaitResult:
        """Spin on a completion record until its status byte is set or the devices idle."""
        task, cpu = self.running_task(tid)
        proc = self.processes[task.pid]
        if address % idxd.DSA_COMP_ALIGN:
            raise InvalidArgument(
                "UNALIGNED_COMPLETION_RECORD",
                f"completion record address {address:#x} is not 32-byte aligned",
            )
        self._user_range(proc, address, idxd.DSA_COMP_SIZE, False)
        start = cpu.cycles
        raw = self.read_memory(journal, proc.pid, address, idxd.DSA_COMP_SIZE)
        self.charge(cpu, task, self.costs.poll, "poll")
        if raw[0] == 0:
            # The devices that run by themselves run while the thread spins; one that
            # runs only when told (auto_run off) waits for Advance.
            adv = self.accel.advance(journal, "", 0, True)
            self.charge(cpu, task, self.costs.poll, "poll")
            if adv.cycles > cpu.cycles:
                self.charge(cpu, task, adv.cycles - cpu.cycles, "poll")
            raw = self.read_memory(journal, proc.pid, address, idxd.DSA_COMP_SIZE)
        return WaitResult(raw[0] != 0, raw, cpu.cycles - start)
