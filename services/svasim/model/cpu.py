"""The host: logical CPUs, processes (mm), threads (tasks), memory and kernel paths.

Names follow arch/x86 and mm/: ``switch_mm``, ``mm_cpumask``, ``pasid_activated``,
``try_fixup_enqcmd_gp`` (in the policy). Each public operation takes a
:class:`Journal`, changes state, emits its transitions and charges its cycles to the
CPU that runs it. Nothing here knows about gRPC, databases, threads or the wall clock.
"""

from __future__ import annotations

import zlib
from dataclasses import dataclass, field
from enum import StrEnum

from svasim.model import idxd
from svasim.model.costs import CostTable
from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange
from svasim.model.journal import Journal
from svasim.model.memory import (
    PAGE_SHIFT,
    PAGE_SIZE,
    AddressSpace,
    PhysicalMemory,
    Pte,
    Vma,
    WalkResult,
    page_align_up,
)
from svasim.model.policy import MSR_IA32_PASID_VALID, PASID_MASK, PasidPolicy, make_policy
from svasim.model.ports import STORE_ENQCMD, AccelPort, IommuPort

SIGSEGV = 11
#: Consecutive #GPs on one ENQCMD after which the kernel is declared to loop.
GP_LOOP_LIMIT = 4


class EnqcmdOutcome(StrEnum):
    """What became of one ENQCMD."""

    ACCEPTED = "accepted"
    RETRY = "retry"
    SIGSEGV = "sigsegv"
    PAGE_FAULT_SIGSEGV = "page_fault_sigsegv"


@dataclass(slots=True)
class CpuState:
    """A logical CPU's live registers."""

    id: int
    current: int = 0  # tid, 0 = idle
    ia32_pasid: int = 0
    loaded_mm: int = 0  # the mm whose pgd CR3 holds
    cycles: int = 0

    @property
    def entity(self) -> str:
        return f"cpu/{self.id}"


@dataclass(slots=True)
class Process:
    """A process and its mm (one mm per process; threads share it)."""

    pid: int
    name: str
    aspace: AddressSpace
    pasid: int = 0  # 0 = IOMMU_PASID_INVALID here (PASID 0 is never allocated)
    tids: list[int] = field(default_factory=list)
    mm_cpumask: int = 0  # bit n: CPU n may hold this mm in CR3
    killed: bool = False
    kill_signal: int = 0
    opened: list[tuple[str, int]] = field(default_factory=list)

    @property
    def entity(self) -> str:
        return f"process/{self.pid}"

    def cpumask_list(self) -> list[int]:
        """mm_cpumask as a sorted list of CPU numbers."""
        return [i for i in range(self.mm_cpumask.bit_length()) if self.mm_cpumask >> i & 1]


@dataclass(slots=True)
class Task:
    """A thread (task_struct), with the state saved while it is not running."""

    tid: int
    pid: int
    cpu: int = -1
    pasid_activated: bool = False
    # IA32_PASID as saved in the task's XSAVE buffer (supervisor component 10).
    saved_ia32_pasid: int = 0
    gp_faults: int = 0
    enqcmds: int = 0
    exited: bool = False

    @property
    def entity(self) -> str:
        return f"thread/{self.tid}"


@dataclass(slots=True)
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
class WaitResult:
    """What polling a completion record found."""

    completed: bool
    raw: bytes
    cycles: int


class Kernel:
    """The host's CPUs, processes, threads and memory, and the kernel's paths."""

    def __init__(
        self,
        accel: AccelPort,
        iommu: IommuPort,
        *,
        ncpus: int = 4,
        policy: PasidPolicy | str = "linux-5.18",
        costs: CostTable | None = None,
    ) -> None:
        if ncpus < 1:
            raise ValueError("a fabric needs at least one CPU")
        self.accel = accel
        self.iommu = iommu
        self.policy = make_policy(policy) if isinstance(policy, str) else policy
        self.costs = costs or CostTable()
        self.cpus = [CpuState(i) for i in range(ncpus)]
        self.memory = PhysicalMemory()
        self.processes: dict[int, Process] = {}
        self.tasks: dict[int, Task] = {}
        self.by_pgd: dict[int, Process] = {}
        self.frame_owner: dict[int, int] = {}
        self.next_pid = 1
        self.stats: dict[str, int] = {
            "enqcmd": 0,
            "accepted": 0,
            "retried": 0,
            "gp": 0,
            "gp_fixups": 0,
            "wrmsr_pasid": 0,
            "sigsegv": 0,
            "context_switches": 0,
            "switch_mm": 0,
            "page_faults": 0,
            "invariant_violations": 0,
        }

    # -- lookup ----------------------------------------------------------------------------
    def process(self, pid: int) -> Process:
        """The process, or NotFound."""
        p = self.processes.get(pid)
        if p is None:
            raise NotFound("UNKNOWN_PROCESS", f"no process with pid {pid}", pid=pid)
        return p

    def live_process(self, pid: int) -> Process:
        """The process, which must not have been killed."""
        p = self.process(pid)
        if p.killed:
            raise FailedPrecondition(
                "PROCESS_KILLED",
                f"process {pid} was killed by signal {p.kill_signal}",
                pid=pid,
                signal=p.kill_signal,
            )
        return p

    def task(self, tid: int) -> Task:
        """The thread, or NotFound."""
        t = self.tasks.get(tid)
        if t is None:
            raise NotFound("UNKNOWN_THREAD", f"no thread with tid {tid}", tid=tid)
        return t

    def cpu(self, n: int) -> CpuState:
        """The logical CPU, or NotFound."""
        if not 0 <= n < len(self.cpus):
            raise NotFound("UNKNOWN_CPU", f"no CPU {n}; CPUs are 0..{len(self.cpus) - 1}", cpu=n)
        return self.cpus[n]

    def running_task(self, tid: int) -> tuple[Task, CpuState]:
        """A live thread that is on a CPU now, and that CPU."""
        task = self.task(tid)
        self.live_process(task.pid)
        if task.exited:
            raise FailedPrecondition("THREAD_EXITED", f"thread {tid} has exited", tid=tid)
        if task.cpu < 0:
            raise FailedPrecondition(
                "THREAD_NOT_RUNNING",
                f"thread {tid} is not running on any CPU; Schedule it first",
                tid=tid,
            )
        return task, self.cpus[task.cpu]

    # -- processes and threads -------------------------------------------------------------
    def create_process(self, journal: Journal, name: str = "") -> Process:
        """A new process with an empty mm; the first thread is created with it."""
        pid = self.next_pid
        self.next_pid += 1
        pgd_pfn = self.memory.alloc_frame()
        pgd = pgd_pfn << PAGE_SHIFT
        proc = Process(pid, name or f"proc{pid}", AddressSpace(pgd))
        self.processes[pid] = proc
        self.by_pgd[pgd] = proc
        journal.emit(proc.entity, "process.create", None, {"name": proc.name, "pgd": pgd, "pasid": 0})
        self.create_thread(journal, pid)
        return proc

    def create_thread(self, journal: Journal, pid: int) -> Task:
        """clone(CLONE_VM): the new thread shares the mm; its PASID state starts clear.

        fpu_clone() clears the PASID feature bit in the child's xfeatures, so the
        MSR is not valid in the new thread and ``pasid_activated`` is 0.
        """
        proc = self.live_process(pid)
        tid = self.next_pid
        self.next_pid += 1
        task = Task(tid, pid)
        self.tasks[tid] = task
        proc.tids.append(tid)
        journal.emit(
            task.entity,
            "thread.create",
            None,
            {"pid": pid, "cpu": -1, "pasid_activated": False, "saved_ia32_pasid": 0},
        )
        return task

    # -- memory: user side -----------------------------------------------------------------
    def mmap(self, journal: Journal, pid: int, length: int, writable: bool, populate: bool) -> Vma:
        """Anonymous private mapping, top-down like Linux's default layout."""
        proc = self.live_process(pid)
        if length <= 0:
            raise InvalidArgument("BAD_LENGTH", "mmap length must be positive", length=length)
        if length > (1 << 40):
            raise OutOfRange("LENGTH_TOO_LARGE", f"mmap length {length} exceeds 1 TiB", length=length)
        size = page_align_up(length)
        aspace = proc.aspace
        start = aspace.mmap_top - size
        vma = Vma(start, start + size, writable)
        aspace.insert_vma(vma)
        aspace.mmap_top = start - PAGE_SIZE  # a guard gap keeps mappings apart
        journal.emit(
            f"vma/{pid}/{start:#x}",
            "vma.map",
            None,
            {"start": start, "end": start + size, "writable": writable, "kind": "anon"},
        )
        if populate:
            for va in range(start, start + size, PAGE_SIZE):
                self._fault_in(journal, proc, va)
        return vma

    def munmap(self, journal: Journal, pid: int, address: int, length: int) -> tuple[int, bool]:
        """Unmap whole VMAs in the range (partial unmaps are refused, not split)."""
        proc = self.live_process(pid)
        if address & (PAGE_SIZE - 1) or length <= 0:
            raise InvalidArgument(
                "BAD_RANGE", f"munmap needs a page-aligned address and a positive length ({address:#x}+{length})"
            )
        end = address + page_align_up(length)
        victims = [v for v in proc.aspace.vmas if v.start < end and address < v.end]
        for v in victims:
            if v.start < address or v.end > end:
                raise InvalidArgument(
                    "PARTIAL_UNMAP",
                    f"range {address:#x}-{end:#x} cuts the mapping {v.start:#x}-{v.end:#x}; unmap whole mappings",
                )
        pages = 0
        for v in victims:
            proc.aspace.vmas.remove(v)
            for va in range(v.start, v.end, PAGE_SIZE):
                pte = proc.aspace.ptes.pop(va >> PAGE_SHIFT, None)
                if pte is not None:
                    pages += 1
                    if v.kind == "anon":
                        self.memory.free_frame(pte.pfn)
                        self.frame_owner.pop(pte.pfn, None)
                    journal.emit(f"pte/{pid}/{va:#x}", "pte.unmap", {"pfn": pte.pfn}, None)
            journal.emit(f"vma/{pid}/{v.start:#x}", "vma.unmap", {"start": v.start, "end": v.end}, None)
        invalidated = False
        if victims and proc.pasid:
            # The mmu notifier: PASID-based IOTLB invalidation before munmap returns, so no
            # device can use a stale translation of the freed frames.
            self.iommu.invalidate(journal, proc.pasid, address, end - address)
            invalidated = True
        return pages, invalidated

    def _fault_in(self, journal: Journal, proc: Process, va: int) -> Pte:
        vpn = va >> PAGE_SHIFT
        pte = proc.aspace.ptes.get(vpn)
        if pte is not None:
            return pte
        vma = proc.aspace.find_vma(va)
        assert vma is not None and vma.kind == "anon"
        pfn = self.memory.alloc_frame()
        self.frame_owner[pfn] = proc.pid
        pte = Pte(pfn, vma.writable)
        proc.aspace.ptes[vpn] = pte
        self.stats["page_faults"] += 1
        journal.emit(
            f"pte/{proc.pid}/{vpn << PAGE_SHIFT:#x}",
            "pte.map",
            None,
            {"pfn": pfn, "writable": vma.writable},
            cycles=self.costs.page_fault,
        )
        return pte

    def _user_range(self, proc: Process, address: int, length: int, write: bool) -> None:
        """Check that a user access can succeed before it changes anything."""
        if length < 0 or address < 0:
            raise InvalidArgument("BAD_RANGE", f"bad range {address:#x}+{length}")
        va = address & ~(PAGE_SIZE - 1)
        end = address + length
        while va < end:
            vma = proc.aspace.find_vma(va)
            if vma is None:
                raise OutOfRange(
                    "ADDRESS_NOT_MAPPED",
                    f"address {va:#x} is not mapped in process {proc.pid}",
                    pid=proc.pid,
                    address=hex(va),
                )
            if vma.kind != "anon":
                raise InvalidArgument(
                    "NOT_MEMORY",
                    f"address {va:#x} of process {proc.pid} is a device portal, not memory",
                    address=hex(va),
                )
            if write and not vma.writable:
                raise FailedPrecondition(
                    "READ_ONLY_MAPPING",
                    f"address {va:#x} of process {proc.pid} is mapped read-only",
                    address=hex(va),
                )
            va = vma.end
        if length > (64 << 20):
            raise OutOfRange("ACCESS_TOO_LARGE", f"one access is limited to 64 MiB, got {length}")

    def _user_pages(self, journal: Journal, proc: Process, address: int, length: int) -> list[tuple[int, int]]:
        out = []
        va = address
        end = address + length
        while va < end:
            pte = self._fault_in(journal, proc, va)
            off = va & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - off, end - va)
            out.append(((pte.pfn << PAGE_SHIFT) | off, n))
            va += n
        return out

    def write_memory(self, journal: Journal, pid: int, address: int, data: bytes) -> int:
        """A store by the process (pages fault in on first touch)."""
        proc = self.live_process(pid)
        self._user_range(proc, address, len(data), True)
        pos = 0
        for pa, n in self._user_pages(journal, proc, address, len(data)):
            self.memory.write(pa, data[pos : pos + n])
            pos += n
        journal.emit(
            f"mem/{pid}",
            "mem.write",
            None,
            None,
            cycles=self.costs.user_access_per_line * (-(-len(data) // 64)),
            detail={"address": address, "length": len(data), "crc32": zlib.crc32(data)},
        )
        return len(data)

    def read_memory(self, journal: Journal, pid: int, address: int, length: int) -> bytes:
        """A load by the process (an untouched page reads as zeros once faulted in)."""
        proc = self.live_process(pid)
        self._user_range(proc, address, length, False)
        return b"".join(self.memory.read(pa, n) for pa, n in self._user_pages(journal, proc, address, length))

    # -- memory: device side (HostPort) ----------------------------------------------------
    def walk(self, pgd: int, address: int, length: int, write: bool) -> WalkResult:
        """The IOMMU's first-level walk of the table rooted at ``pgd``."""
        proc = self.by_pgd.get(pgd)
        if proc is None:
            # A table that no mm owns any more: nothing is present.
            return WalkResult([], True, address, False)
        return proc.aspace.walk(address, length, write)

    def dma_read(self, physical: int, length: int) -> bytes:
        """Device read of physical memory."""
        try:
            return self.memory.read(physical, length)
        except ValueError as e:
            raise OutOfRange("BAD_PHYSICAL_ADDRESS", str(e), physical=hex(physical)) from e

    def dma_write(self, journal: Journal, physical: int, data: bytes) -> None:
        """Device write of physical memory."""
        try:
            self.memory.write(physical, data)
        except ValueError as e:
            raise OutOfRange("BAD_PHYSICAL_ADDRESS", str(e), physical=hex(physical)) from e
        owner = self.frame_owner.get(physical >> PAGE_SHIFT, 0)
        journal.emit(
            f"mem/{owner}",
            "dma.write",
            None,
            None,
            detail={"physical": physical, "length": len(data), "crc32": zlib.crc32(data)},
        )

    # -- devices ----------------------------------------------------------------------------
    def open_wq(self, journal: Journal, pid: int, device: str, wq_id: int) -> tuple[int, int, bool, bool]:
        """open() + mmap() of /dev/dsa/wqD.Q: bind, then map the portal page.

        Returns (portal address, PASID, whether the PASID was allocated, shared).
        """
        proc = self.live_process(pid)
        res = self.accel.open_wq(journal, device, wq_id, pid, proc.aspace.pgd)
        if res.pasid_allocated or proc.pasid != res.pasid:
            before = {"pasid": proc.pasid}
            proc.pasid = res.pasid
            journal.emit(proc.entity, "mm.pasid.set", before, {"pasid": res.pasid})
            self.policy.on_pasid_alloc(self, pid, journal)
        aspace = proc.aspace
        start = aspace.mmap_top - PAGE_SIZE
        vma = Vma(start, start + PAGE_SIZE, True, "portal", device, res.portal_offset)
        aspace.insert_vma(vma)
        aspace.mmap_top = start - PAGE_SIZE
        proc.opened.append((device, wq_id))
        journal.emit(
            f"vma/{pid}/{start:#x}",
            "vma.map",
            None,
            {
                "start": start,
                "end": start + PAGE_SIZE,
                "writable": True,
                "kind": "portal",
                "device": device,
                "portal_offset": res.portal_offset,
            },
        )
        return start, res.pasid, res.pasid_allocated, res.shared

    # -- scheduling -------------------------------------------------------------------------
    def schedule(self, journal: Journal, tid: int, cpu_id: int) -> tuple[int, bool, int]:
        """Context switch ``cpu_id`` to thread ``tid``: (prev tid, switched mm, cycles)."""
        task = self.task(tid)
        proc = self.live_process(task.pid)
        if task.exited:
            raise FailedPrecondition("THREAD_EXITED", f"thread {tid} has exited", tid=tid)
        cpu = self.cpu(cpu_id)
        if task.cpu == cpu_id:
            return tid, False, 0
        if task.cpu >= 0:
            # Migration: the thread leaves its old CPU, which goes idle.
            old = self.cpus[task.cpu]
            self._switch_out(journal, old, task)
            old.current = 0
            journal.emit(old.entity, "sched.idle", {"current": tid}, {"current": 0})
        prev_tid = cpu.current
        cost = self.costs.context_switch
        if prev_tid:
            self._switch_out(journal, cpu, self.tasks[prev_tid])
            cost += self.costs.xsaves
        switched = False
        if cpu.loaded_mm != proc.pid:
            switched = True
            self._switch_mm(journal, cpu, proc)
            cost += self.costs.switch_mm
        # XRSTORS of the incoming task's state (its IA32_PASID among it).
        cost += self.costs.xrstors
        if cpu.ia32_pasid != task.saved_ia32_pasid:
            before = {"ia32_pasid": cpu.ia32_pasid}
            cpu.ia32_pasid = task.saved_ia32_pasid
            journal.emit(cpu.entity, "xstate.restore.pasid", before, {"ia32_pasid": cpu.ia32_pasid})
        cpu.current = tid
        task.cpu = cpu_id
        cpu.cycles += cost
        self.stats["context_switches"] += 1
        journal.emit(
            cpu.entity, "sched.switch", {"current": prev_tid}, {"current": tid, "cycles": cpu.cycles}, cycles=cost
        )
        journal.emit(task.entity, "thread.run", {"cpu": -1}, {"cpu": cpu_id})
        return prev_tid, switched, cost

    def _switch_out(self, journal: Journal, cpu: CpuState, prev: Task) -> None:
        # XSAVES: the live IA32_PASID goes into the outgoing task's buffer.
        before = {"cpu": prev.cpu, "saved_ia32_pasid": prev.saved_ia32_pasid}
        prev.saved_ia32_pasid = cpu.ia32_pasid
        prev.cpu = -1
        journal.emit(prev.entity, "thread.switch_out", before, {"cpu": -1, "saved_ia32_pasid": prev.saved_ia32_pasid})

    def _switch_mm(self, journal: Journal, cpu: CpuState, nxt: Process) -> None:
        """switch_mm_irqs_off: CR3 and mm_cpumask."""
        prev_mm = cpu.loaded_mm
        if prev_mm:
            old = self.processes[prev_mm]
            old.mm_cpumask &= ~(1 << cpu.id)
            journal.emit(old.entity, "mm.cpumask", None, {"mm_cpumask": old.cpumask_list()})
        nxt.mm_cpumask |= 1 << cpu.id
        journal.emit(nxt.entity, "mm.cpumask", None, {"mm_cpumask": nxt.cpumask_list()})
        cpu.loaded_mm = nxt.pid
        self.stats["switch_mm"] += 1
        journal.emit(cpu.entity, "cr3.write", {"loaded_mm": prev_mm}, {"loaded_mm": nxt.pid, "cr3": nxt.aspace.pgd})

    # -- the MSR ------------------------------------------------------------------------------
    def wrmsr_pasid(self, cpu: CpuState, value: int, journal: Journal, *, why: str) -> None:
        """WRMSR to IA32_PASID on ``cpu``."""
        before = {"ia32_pasid": cpu.ia32_pasid}
        cpu.ia32_pasid = value
        cpu.cycles += self.costs.wrmsr
        self.stats["wrmsr_pasid"] += 1
        journal.emit(
            cpu.entity, "msr.pasid.write", before, {"ia32_pasid": value}, cycles=self.costs.wrmsr, detail={"why": why}
        )

    # -- ENQCMD ---------------------------------------------------------------------------------
    @staticmethod
    def _enqcmd_gp_reason(cpu: CpuState, dest: int, src: bytes) -> str:
        if dest % 64:
            return "destination not 64-byte aligned"
        if not cpu.ia32_pasid & MSR_IA32_PASID_VALID:
            return "IA32_PASID not valid"
        if int.from_bytes(src[:4], "little"):
            return "source bits 31:0 not zero"
        return ""

    def enqcmd(self, journal: Journal, tid: int, dest: int, src: bytes) -> EnqcmdResult:
        """Execute ENQCMD in a running thread: #GP and its fixup, then the enqueue store."""
        if len(src) != idxd.DSA_DESC_SIZE:
            raise InvalidArgument(
                "BAD_DESCRIPTOR_SIZE",
                f"ENQCMD moves exactly 64 bytes; the descriptor has {len(src)}",
                size=len(src),
            )
        if dest < 0 or dest >= 1 << 64:
            raise InvalidArgument("BAD_ADDRESS", f"destination {dest:#x} is not a 64-bit address")
        task, cpu = self.running_task(tid)
        proc = self.processes[task.pid]
        start = cpu.cycles
        gp = 0
        fixed = False
        self.stats["enqcmd"] += 1
        while True:
            task.enqcmds += 1
            cpu.cycles += self.costs.enqcmd
            reason = self._enqcmd_gp_reason(cpu, dest, src)
            if not reason:
                break
            gp += 1
            task.gp_faults += 1
            self.stats["gp"] += 1
            trap_cost = self.costs.trap_roundtrip + self.costs.gp_handler
            cpu.cycles += trap_cost
            journal.emit(
                task.entity,
                "trap.gp",
                None,
                {"gp_faults": task.gp_faults},
                cycles=trap_cost,
                detail={"insn": "enqcmd", "reason": reason, "cpu": cpu.id},
            )
            if gp >= GP_LOOP_LIMIT:
                self._violation(journal, task, "gp_fixup_loop", f"{gp} #GPs on one ENQCMD")
                return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.SIGSEGV)
            if self.policy.try_fixup_enqcmd_gp(self, task, cpu, journal):
                fixed = True
                self.stats["gp_fixups"] += 1
                continue
            return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.SIGSEGV)
        pasid_sent = cpu.ia32_pasid & PASID_MASK
        # COMMAND = (SRC & ~FFFFFFFFh) | (IA32_PASID & FFFFFh); bit 31 (priv) is 0.
        command = pasid_sent.to_bytes(4, "little") + src[4:]
        vma = proc.aspace.find_vma(dest)
        if vma is None:
            # A #PF on the destination that no mapping resolves.
            journal.emit(task.entity, "trap.pf", None, None, detail={"address": dest, "insn": "enqcmd"})
            return self._sigsegv(journal, proc, task, cpu, gp, fixed, start, EnqcmdOutcome.PAGE_FAULT_SIGSEGV)
        if pasid_sent != proc.pasid:
            self._violation(journal, task, "pasid_mismatch", f"ENQCMD carries PASID {pasid_sent}, mm has {proc.pasid}")
        if vma.kind != "portal":
            # Not an enqueue register: the store is dropped and ZF=1.
            reason = "destination is not an enqueue register"
            self.stats["retried"] += 1
            journal.emit(task.entity, "enqcmd.retry", None, {"enqcmds": task.enqcmds}, detail={"reason": reason})
            return EnqcmdResult(EnqcmdOutcome.RETRY, True, gp, fixed, pasid_sent, reason, cpu.cycles - start)
        offset = vma.portal_offset + (dest - vma.start)
        res = self.accel.submit(journal, vma.device, offset, command, STORE_ENQCMD, cpu.cycles)
        if res.accepted:
            self.stats["accepted"] += 1
            journal.emit(task.entity, "enqcmd.accept", None, {"enqcmds": task.enqcmds}, detail={"pasid": pasid_sent})
            return EnqcmdResult(EnqcmdOutcome.ACCEPTED, False, gp, fixed, pasid_sent, "", cpu.cycles - start)
        self.stats["retried"] += 1
        journal.emit(task.entity, "enqcmd.retry", None, {"enqcmds": task.enqcmds}, detail={"reason": res.retry_reason})
        return EnqcmdResult(EnqcmdOutcome.RETRY, True, gp, fixed, pasid_sent, res.retry_reason, cpu.cycles - start)

    def _violation(self, journal: Journal, task: Task, invariant: str, detail: str) -> None:
        self.stats["invariant_violations"] += 1
        journal.emit(
            f"invariant/{invariant}",
            "invariant.violation",
            None,
            {"violations": self.stats["invariant_violations"]},
            detail={"tid": task.tid, "pid": task.pid, "what": detail},
        )

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
        """Deliver SIGSEGV; its default action kills the whole process."""
        cpu.cycles += self.costs.signal_delivery
        self.stats["sigsegv"] += 1
        journal.emit(
            task.entity, "signal.sigsegv", None, None, cycles=self.costs.signal_delivery, detail={"signal": SIGSEGV}
        )
        self._kill(journal, proc, SIGSEGV)
        return EnqcmdResult(outcome, False, gp, fixed, 0, "", cpu.cycles - start)

    def _kill(self, journal: Journal, proc: Process, sig: int) -> None:
        proc.killed = True
        proc.kill_signal = sig
        for tid in proc.tids:
            t = self.tasks[tid]
            if t.cpu >= 0:
                c = self.cpus[t.cpu]
                c.current = 0
                journal.emit(c.entity, "sched.idle", {"current": tid}, {"current": 0})
            t.cpu = -1
            t.exited = True
            journal.emit(t.entity, "thread.exit", {"exited": False}, {"exited": True, "cpu": -1})
        journal.emit(proc.entity, "process.killed", {"killed": False}, {"killed": True, "signal": sig})

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
        cpu.cycles += self.costs.poll
        if raw[0] == 0:
            adv = self.accel.advance(journal, "", 0)
            cpu.cycles = max(cpu.cycles + self.costs.poll, adv.cycles)
            raw = self.read_memory(journal, proc.pid, address, idxd.DSA_COMP_SIZE)
        return WaitResult(raw[0] != 0, raw, cpu.cycles - start)
