"""The host: logical CPUs, processes (mm), threads (tasks), memory and kernel paths.

Names follow arch/x86 and mm/: ``switch_mm_irqs_off``, ``mm_cpumask``,
``TIF_NEED_FPU_LOAD``, ``fpu_fpregs_owner_ctx``, ``pasid_activated``. Each public
operation takes a :class:`Journal`, changes state, emits its transitions and charges
its cycles to the CPU that runs it (and to counters per CPU, per thread and per run).
Nothing here knows about gRPC, databases, threads or the wall clock.

Per-thread and per-mm state follows Linux's switching rules:

- FPU/SIMD xstate: saved by XSAVES in ``switch_fpu_prepare``; ``TIF_NEED_FPU_LOAD`` is
  set for the incoming task and the registers are restored on return to user, skipped
  when the task comes back to the CPU whose registers it still owns.
- IA32_PASID: part of the xstate (component 10); how it gets there is the policy's.
- PKRU: eager in ``__switch_to`` (``x86_pkru_load``), written only when it differs.
- CR3/PCID: ``switch_mm_irqs_off`` with 6 dynamic ASIDs per CPU (a TLB flush when a slot
  is reused for another mm); ``mm_cpumask`` kept up to date; kernel threads borrow the
  previous mm (lazy TLB).
- LDT: per mm, loaded in switch_mm; a change is broadcast by IPI to ``mm_cpumask``.
- AMX TILE: permission per process (``ARCH_REQ_XCOMP_PERM``); XFD armed until the first
  tile instruction takes #NM and the fpstate grows (SIGILL without permission); tile
  data is not inherited across fork.
- KERNEL_GS_BASE: eager in ``__switch_to`` (FSGSBASE: ``__wrgsbase_inactive``).
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

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
from svasim.model.policy import MSR_IA32_PASID_VALID, PASID_MASK, PasidPolicy, make_policy, pasid_state
from svasim.model.ports import STORE_ENQCMD, STORE_ENQCMDS, STORE_MOVDIR64B, AccelPort, IommuPort

SIGILL = 4
SIGSEGV = 11
#: Consecutive #GPs on one ENQCMD after which the kernel is declared to loop.
GP_LOOP_LIMIT = 4
#: TLB_NR_DYN_ASIDS (arch/x86/include/asm/tlbflush.h).
TLB_NR_DYN_ASIDS = 6
#: init_pkru_value: every key but 0 access-disabled (arch/x86/mm/pkeys.c).
INIT_PKRU = 0x55555554
#: arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA).
ARCH_REQ_XCOMP_PERM = 0x1023
XFEATURE_XTILEDATA = 18
#: Register contents after kernel_fpu_begin: the kernel's own SIMD values.
KERNEL_FP_TOKEN = -1


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


def new_xstate() -> dict[str, Any]:
    """An XSAVE buffer in its init state: components by name."""
    return {"fp": 0, "pasid": 0, "tile": 0}


@dataclass(slots=True)
class CpuState:
    """A logical CPU's live registers and switching state."""

    id: int
    current: int = 0  # tid, 0 = idle
    # Live xstate registers: SIMD contents (a token), IA32_PASID, tile data (a token).
    regs: dict[str, Any] = field(default_factory=new_xstate)
    fpregs_owner: int = 0  # fpu_fpregs_owner_ctx: tid whose state the registers hold
    pkru: int = INIT_PKRU
    kernel_gs_base: int = 0
    xfd_armed: bool = True  # IA32_XFD bit 18
    loaded_mm: int = 0  # cpu_tlbstate.loaded_mm: the mm whose pgd CR3 holds
    asids: list[tuple[int, int]] = field(default_factory=list)  # (mm ctx_id, tlb_gen)
    next_asid: int = 0
    ldt_gen: tuple[int, int] = (0, 0)  # (mm, ldt generation) loaded
    cycles: int = 0
    # The interruptible point a kernel sequence on this CPU is at (for the explorer).
    in_sequence: str = ""

    @property
    def entity(self) -> str:
        return f"cpu/{self.id}"

    @property
    def ia32_pasid(self) -> int:
        """The live IA32_PASID MSR."""
        return int(self.regs["pasid"])

    @ia32_pasid.setter
    def ia32_pasid(self, value: int) -> None:
        self.regs["pasid"] = value


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
    exited: bool = False
    opened: list[tuple[str, int]] = field(default_factory=list)
    ctx_id: int = 0  # mm->context.ctx_id: never reused
    tlb_gen: int = 1
    ldt_gen: int = 0  # 0: no LDT
    amx_permitted: bool = False

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
    pid: int  # 0 for a kernel thread
    cpu: int = -1
    pasid_activated: bool = False
    xstate: dict[str, Any] = field(default_factory=new_xstate)
    tif_need_fpu_load: bool = True
    last_cpu: int = -1  # fpu->last_cpu
    pkru: int = INIT_PKRU
    gs_base: int = 0
    fpstate_large: bool = False  # the fpstate grew for AMX tile data
    gp_faults: int = 0
    enqcmds: int = 0
    exited: bool = False
    kthread: bool = False
    borrowed_mm: int = 0  # kthread_use_mm
    # What the thread's user code last put in its registers: checked on return to user.
    user_fp: int = 0
    user_tile: int = 0

    @property
    def entity(self) -> str:
        return f"thread/{self.tid}"

    @property
    def saved_ia32_pasid(self) -> int:
        """IA32_PASID as saved in the task's XSAVE buffer (supervisor component 10)."""
        return int(self.xstate["pasid"])


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
        early_free: bool | None = None,
    ) -> None:
        if ncpus < 1:
            raise ValueError("a fabric needs at least one CPU")
        if ncpus > 256:
            raise ValueError("at most 256 CPUs")
        self.accel = accel
        self.iommu = iommu
        self.policy = make_policy(policy) if isinstance(policy, str) else policy
        # Free the PASID on the last unbind (5.10 did) rather than at mm teardown.
        self.early_free = bool(getattr(self.policy, "early_free", False)) if early_free is None else early_free
        self.costs = costs or CostTable()
        self.cpus = [CpuState(i) for i in range(ncpus)]
        self.memory = PhysicalMemory()
        self.processes: dict[int, Process] = {}
        self.tasks: dict[int, Task] = {}
        self.by_pgd: dict[int, Process] = {}
        self.frame_owner: dict[int, int] = {}
        self.next_pid = 1
        self.next_ctx_id = 1
        self.next_fp_token = 1
        self.counters: dict[str, Counter[str]] = {}
        self.stats: Counter[str] = Counter()
        # The kernel path being executed, for per-path cycle totals (cycles per context
        # switch, per ENQCMD).
        self.path = "other"

    # -- accounting ----------------------------------------------------------------------
    def count(self, cpu: CpuState | None, task: Task | None, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` of the run, the CPU and the thread."""
        self.stats[name] += n
        if cpu is not None:
            self.counters.setdefault(cpu.entity, Counter())[name] += n
        if task is not None:
            self.counters.setdefault(task.entity, Counter())[name] += n

    def charge(self, cpu: CpuState, task: Task | None, cycles: int, what: str) -> int:
        """Charge modelled cycles to a CPU (and its current thread), by category."""
        if cycles:
            cpu.cycles += cycles
            self.count(cpu, task, "cycles", cycles)
            self.count(cpu, task, f"cycles.{what}", cycles)
            self.count(cpu, task, f"path.{self.path}", cycles)
        return cycles

    def _enter(self, path: str) -> str:
        outer, self.path = self.path, path
        return outer

    def _current(self, cpu: CpuState) -> Task | None:
        return self.tasks.get(cpu.current) if cpu.current else None

    # -- lookup ----------------------------------------------------------------------------
    def process(self, pid: int) -> Process:
        """The process, or NotFound."""
        p = self.processes.get(pid)
        if p is None:
            raise NotFound("UNKNOWN_PROCESS", f"no process with pid {pid}", pid=pid)
        return p

    def live_process(self, pid: int) -> Process:
        """The process, which must not have been killed or have exited."""
        p = self.process(pid)
        if p.killed:
            raise FailedPrecondition(
                "PROCESS_KILLED",
                f"process {pid} was killed by signal {p.kill_signal}",
                pid=pid,
                signal=p.kill_signal,
            )
        if p.exited:
            raise FailedPrecondition("PROCESS_EXITED", f"process {pid} has exited", pid=pid)
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

    def user_task(self, tid: int) -> Task:
        """A live user thread (not a kernel thread)."""
        task = self.task(tid)
        if task.kthread:
            raise FailedPrecondition("KERNEL_THREAD", f"thread {tid} is a kernel thread", tid=tid)
        self.live_process(task.pid)
        if task.exited:
            raise FailedPrecondition("THREAD_EXITED", f"thread {tid} has exited", tid=tid)
        return task

    def running_task(self, tid: int) -> tuple[Task, CpuState]:
        """A live user thread that is on a CPU now, and that CPU."""
        task = self.user_task(tid)
        if task.cpu < 0:
            raise FailedPrecondition(
                "THREAD_NOT_RUNNING",
                f"thread {tid} is not running on any CPU; Schedule it first",
                tid=tid,
            )
        return task, self.cpus[task.cpu]

    # -- processes and threads -------------------------------------------------------------
    def _new_mm(self, journal: Journal, name: str) -> Process:
        pid = self.next_pid
        self.next_pid += 1
        pgd = self.memory.alloc_frame() << PAGE_SHIFT
        proc = Process(pid, name or f"proc{pid}", AddressSpace(pgd), ctx_id=self.next_ctx_id)
        self.next_ctx_id += 1
        self.processes[pid] = proc
        self.by_pgd[pgd] = proc
        journal.emit(proc.entity, "process.create", None, {"name": proc.name, "pgd": pgd, "pasid": 0})
        return proc

    def _new_task(self, journal: Journal, proc: Process, *, like: Task | None = None, keep_pasid: bool = False) -> Task:
        tid = self.next_pid
        self.next_pid += 1
        task = Task(tid, proc.pid)
        if like is not None:
            # The child's registers are a copy of the parent's user state.
            task.xstate = dict(like.xstate)
            if like.cpu >= 0 and not like.tif_need_fpu_load:
                task.xstate.update(self.cpus[like.cpu].regs)
            task.pkru = like.pkru
            task.gs_base = like.gs_base
            task.user_fp = like.user_fp
            # Tile data is never inherited (the child's fpstate is the default size).
            task.xstate["tile"] = 0
            if not keep_pasid:
                # fpu_clone clears XFEATURE_PASID in the child's xfeatures.
                task.xstate["pasid"] = 0
            else:
                task.pasid_activated = like.pasid_activated
        self.tasks[tid] = task
        proc.tids.append(tid)
        journal.emit(
            task.entity,
            "thread.create",
            None,
            {
                "pid": proc.pid,
                "cpu": -1,
                "pasid_activated": task.pasid_activated,
                "saved_ia32_pasid": task.saved_ia32_pasid,
            },
        )
        return task

    def create_process(self, journal: Journal, name: str = "") -> Process:
        """A new process with an empty mm and its first thread."""
        proc = self._new_mm(journal, name)
        self._new_task(journal, proc)
        return proc

    def create_thread(self, journal: Journal, pid: int, parent_tid: int = 0) -> Task:
        """clone(CLONE_VM): the new thread shares the mm.

        Its PASID state starts clear (fpu_clone clears the feature bit), except under a
        policy whose kernel copied the whole state (5.10).
        """
        proc = self.live_process(pid)
        parent = self.task(parent_tid) if parent_tid else None
        if parent is not None and parent.pid != pid:
            raise InvalidArgument("WRONG_PARENT", f"thread {parent_tid} is not in process {pid}")
        return self._new_task(journal, proc, like=parent, keep_pasid=self.policy.clone_keeps_pasid)

    def create_kthread(self, journal: Journal, name: str = "kworker") -> Task:
        """A kernel thread: no mm of its own, borrows one in lazy TLB mode."""
        tid = self.next_pid
        self.next_pid += 1
        task = Task(tid, 0, kthread=True)
        self.tasks[tid] = task
        journal.emit(task.entity, "thread.create", None, {"pid": 0, "kthread": True, "name": name, "cpu": -1})
        return task

    def fork(self, journal: Journal, tid: int) -> Process:
        """fork(): a new mm with a copy of the memory; the PASID is not inherited.

        Portal mappings are VM_DONTCOPY and stay behind; AMX permission is inherited,
        tile contents are not; the LDT is copied.
        """
        parent = self.user_task(tid)
        pproc = self.processes[parent.pid]
        child = self._new_mm(journal, pproc.name)
        child.amx_permitted = pproc.amx_permitted
        child.ldt_gen = pproc.ldt_gen
        for vma in pproc.aspace.vmas:
            if vma.kind != "anon":
                continue
            copy = Vma(vma.start, vma.end, vma.writable)
            child.aspace.insert_vma(copy)
            journal.emit(
                f"vma/{child.pid}/{vma.start:#x}",
                "vma.map",
                None,
                {"start": vma.start, "end": vma.end, "writable": vma.writable, "kind": "anon"},
            )
            for va in range(vma.start, vma.end, PAGE_SIZE):
                pte = pproc.aspace.ptes.get(va >> PAGE_SHIFT)
                if pte is None:
                    continue
                new = self._fault_in(journal, child, va)
                self.memory.write(new.pfn << PAGE_SHIFT, self.memory.read(pte.pfn << PAGE_SHIFT, PAGE_SIZE))
        child.aspace.mmap_top = pproc.aspace.mmap_top
        self._new_task(journal, child, like=parent, keep_pasid=False)
        journal.emit(child.entity, "process.fork", None, {"parent": pproc.pid, "pasid": 0})
        return child

    def exec(self, journal: Journal, tid: int) -> Process:
        """execve(): a fresh mm (the old one, and its PASID, dropped), a reset xstate."""
        task = self.user_task(tid)
        proc = self.processes[task.pid]
        for other in list(proc.tids):
            if other != tid and not self.tasks[other].exited:
                self._exit_task(journal, self.tasks[other])  # de_thread
        self._release_mm(journal, proc, keep_process=True)
        pgd = self.memory.alloc_frame() << PAGE_SHIFT
        proc.aspace = AddressSpace(pgd)
        self.by_pgd[pgd] = proc
        proc.ctx_id = self.next_ctx_id
        self.next_ctx_id += 1
        proc.ldt_gen = 0
        proc.amx_permitted = False  # UNVERIFIED: xstate permissions reset on execve
        task.xstate = new_xstate()
        task.pasid_activated = False
        task.fpstate_large = False
        task.user_fp = task.user_tile = 0
        task.pkru = INIT_PKRU
        if task.cpu >= 0:
            cpu = self.cpus[task.cpu]
            cpu.regs = new_xstate()
            cpu.fpregs_owner = tid
            task.tif_need_fpu_load = False
            cpu.pkru = INIT_PKRU
            self._switch_mm(journal, cpu, task, proc)
        journal.emit(proc.entity, "process.exec", None, {"pgd": pgd, "pasid": 0})
        return proc

    def exit_thread(self, journal: Journal, tid: int) -> None:
        """The thread exits; the last one takes the mm (and its PASID) with it."""
        task = self.task(tid)
        if task.exited:
            raise FailedPrecondition("THREAD_EXITED", f"thread {tid} has exited", tid=tid)
        self._exit_task(journal, task)
        if task.kthread:
            return
        proc = self.processes[task.pid]
        if all(self.tasks[t].exited for t in proc.tids):
            proc.exited = True
            self._release_mm(journal, proc, keep_process=False)
            journal.emit(proc.entity, "process.exit", {"exited": False}, {"exited": True})

    def _exit_task(self, journal: Journal, task: Task) -> None:
        if task.cpu >= 0:
            cpu = self.cpus[task.cpu]
            cpu.current = 0
            if cpu.fpregs_owner == task.tid:
                cpu.fpregs_owner = 0
            journal.emit(cpu.entity, "sched.idle", {"current": task.tid}, {"current": 0})
        task.cpu = -1
        task.exited = True
        journal.emit(task.entity, "thread.exit", {"exited": False}, {"exited": True, "cpu": -1})

    def _release_mm(self, journal: Journal, proc: Process, *, keep_process: bool) -> None:
        """Drop an mm: close its device files, unmap everything, free its PASID."""
        # The files close: each WQ's release, the last one per device unbinding.
        while proc.opened:
            device, wq_id = proc.opened.pop()
            unbind = not any(d == device for d, _ in proc.opened)
            self.accel.close_wq(journal, device, wq_id, proc.pid, unbind, False)
        for vma in list(proc.aspace.vmas):
            self._unmap_vma(journal, proc, vma)
        if proc.pasid:
            old = proc.pasid
            self.iommu.drop_mm(journal, proc.pid)  # mm_pasid_drop in __mmdrop
            proc.pasid = 0
            journal.emit(proc.entity, "mm.pasid.drop", {"pasid": old}, {"pasid": 0})
        for c in self.cpus:
            if c.loaded_mm == proc.pid:
                c.loaded_mm = 0
        proc.mm_cpumask = 0
        self.by_pgd.pop(proc.aspace.pgd, None)

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
            pages += self._unmap_vma(journal, proc, v)
        invalidated = False
        if victims and proc.pasid:
            # The mmu notifier: PASID-based IOTLB invalidation before munmap returns, so no
            # device can use a stale translation of the freed frames.
            self.iommu.invalidate(journal, proc.pasid, address, end - address)
            invalidated = True
        return pages, invalidated

    def _unmap_vma(self, journal: Journal, proc: Process, v: Vma) -> int:
        proc.aspace.vmas.remove(v)
        pages = 0
        for va in range(v.start, v.end, PAGE_SIZE):
            pte = proc.aspace.ptes.pop(va >> PAGE_SHIFT, None)
            if pte is not None:
                pages += 1
                if v.kind == "anon":
                    self.memory.free_frame(pte.pfn)
                    self.frame_owner.pop(pte.pfn, None)
                journal.emit(f"pte/{proc.pid}/{va:#x}", "pte.unmap", {"pfn": pte.pfn}, None)
        journal.emit(f"vma/{proc.pid}/{v.start:#x}", "vma.unmap", {"start": v.start, "end": v.end}, None)
        return pages

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
        self.count(None, None, "page_faults")
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

    def handle_page_fault(self, journal: Journal, pgd: int, address: int, write: bool) -> bool:
        """An I/O page fault from the IOMMU: handle_mm_fault on the mm bound to ``pgd``.

        Resolves a not-present page of an anonymous mapping (a write needs a writable
        one); anything else (no mapping, a portal, a write to read-only) fails.
        """
        proc = self.by_pgd.get(pgd)
        self.count(None, None, "iopf")
        if proc is None or proc.killed or proc.exited:
            return False
        vma = proc.aspace.find_vma(address)
        if vma is None or vma.kind != "anon" or (write and not vma.writable):
            self.count(None, None, "iopf_failed")
            return False
        self._fault_in(journal, proc, address)
        return True

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
        if proc.pasid != res.pasid:
            before = {"pasid": proc.pasid}
            proc.pasid = res.pasid
            journal.emit(proc.entity, "mm.pasid.set", before, {"pasid": res.pasid})
            self.policy.on_pasid_alloc(self, self._acting_cpu(proc), proc, journal)
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

    def close_wq(self, journal: Journal, pid: int, device: str, wq_id: int) -> tuple[int, bool]:
        """close() of a shared WQ's file: unbind (iommu_sva_unbind_device).

        The portal stays mapped until munmap, as in Linux. The PASID stays with the mm
        unless early free is on and this was the mm's last binding; then it is freed,
        may be reused by another process, and the policy is told. Returns (PASID, freed).
        """
        proc = self.live_process(pid)
        if (device, wq_id) not in proc.opened:
            raise FailedPrecondition(
                "WQ_NOT_OPEN", f"process {pid} has not opened {device} WQ {wq_id}", device=device, wq=wq_id
            )
        proc.opened.remove((device, wq_id))
        # Another file of the same device keeps the binding.
        unbind = not any(d == device for d, _ in proc.opened)
        last = not proc.opened
        pasid, freed = self.accel.close_wq(journal, device, wq_id, pid, unbind, self.early_free and last)
        if not unbind:
            return proc.pasid, False
        if freed:
            proc.pasid = 0
            journal.emit(proc.entity, "mm.pasid.set", {"pasid": pasid}, {"pasid": 0})
            self.policy.on_pasid_free(self, self._acting_cpu(proc), proc, journal)
        return pasid, freed

    def _acting_cpu(self, proc: Process) -> CpuState:
        # The CPU the syscall runs on: one running a thread of the process, else CPU 0.
        for c in self.cpus:
            t = self._current(c)
            if t is not None and t.pid == proc.pid:
                return c
        return self.cpus[0]

    # -- IPIs ---------------------------------------------------------------------------------
    def on_each_cpu_mask(self, sender: CpuState, mask: int, handler: str, arg: int | None, journal: Journal) -> None:
        """Run ``handler`` on every CPU of ``mask`` and wait (on_each_cpu_mask(..., true)).

        The handler runs on each target in whatever context it is in at that moment: the
        interleaving explorer decides what that moment is, by suspending a kernel
        sequence on the target at one of its interruptible points.
        """
        for n in range(len(self.cpus)):
            if not mask >> n & 1:
                continue
            target = self.cpus[n]
            self.count(sender, self._current(sender), "ipi_sent")
            self.charge(sender, self._current(sender), self.costs.ipi_send, "ipi")
            journal.emit(
                target.entity,
                "ipi.send",
                None,
                None,
                cycles=self.costs.ipi_send,
                detail={"from": sender.id, "handler": handler, "arg": arg},
            )
            self._ipi_receive(target, handler, arg, journal)

    def _ipi_receive(self, cpu: CpuState, handler: str, arg: int | None, journal: Journal) -> None:
        outer = self._enter("ipi")
        try:
            self._ipi_handle(cpu, handler, arg, journal)
        finally:
            self.path = outer

    def _ipi_handle(self, cpu: CpuState, handler: str, arg: int | None, journal: Journal) -> None:
        cur = self._current(cpu)
        self.count(cpu, cur, "ipi_received")
        self.charge(cpu, cur, self.costs.ipi_receive, "ipi")
        journal.emit(
            cpu.entity,
            "ipi.handle",
            None,
            None,
            cycles=self.costs.ipi_receive,
            detail={"handler": handler, "arg": arg, "current": cpu.current, "at": cpu.in_sequence},
        )
        if handler == "update_pasid":
            self.update_pasid(cpu, journal)
        elif handler == "load_mm_pasid":
            self._load_mm_pasid(cpu, arg or 0, journal)
        elif handler == "flush_ldt":
            if cpu.loaded_mm == arg and arg:
                self._load_ldt(cpu, self.processes[arg], journal)
        else:
            raise ValueError(f"unknown IPI handler {handler}")

    def update_pasid(self, cpu: CpuState, journal: Journal) -> None:
        """Linux 5.10's update_pasid(), acting on whatever is current on ``cpu``."""
        cur = self._current(cpu)
        if cur is None:
            return
        mm_id = cur.borrowed_mm if cur.kthread else cur.pid
        if not mm_id:
            return  # !current->mm
        if cur.kthread:
            # The NULL-argument IPI acts on a kernel thread that borrowed the mm.
            self.violation(
                journal,
                cur,
                "ipi_acted_on_kthread",
                f"update_pasid ran for kernel thread {cur.tid} on borrowed mm {mm_id}",
            )
        want = pasid_state(self.processes[mm_id].pasid)
        if not cur.tif_need_fpu_load:
            if cpu.ia32_pasid != want:
                self.wrmsr_pasid(cpu, want, journal, why="update_pasid")
        elif cur.xstate["pasid"] != want:
            # __fpu_invalidate_fpregs_state, then edit the buffer.
            cur.last_cpu = -1
            self.set_saved_pasid(cpu, cur, want, journal, why="update_pasid")

    def _load_mm_pasid(self, cpu: CpuState, mm_id: int, journal: Journal) -> None:
        """The eager policy's IPI handler: only for the mm it was sent for."""
        cur = self._current(cpu)
        if cur is None or cur.kthread or cur.pid != mm_id:
            return
        want = pasid_state(self.processes[mm_id].pasid)
        # Write both the live MSR and the saved state, and drop register ownership, so an
        # FPU save or restore in progress cannot lose the update.
        if cpu.ia32_pasid != want:
            self.wrmsr_pasid(cpu, want, journal, why="load_mm_pasid")
        if cur.xstate["pasid"] != want:
            self.set_saved_pasid(cpu, cur, want, journal, why="load_mm_pasid")
        if cur.tif_need_fpu_load:
            cur.last_cpu = -1

    # -- the MSR and saved state --------------------------------------------------------------
    def wrmsr_pasid(self, cpu: CpuState, value: int, journal: Journal, *, why: str) -> None:
        """WRMSR to IA32_PASID on ``cpu``."""
        before = {"ia32_pasid": cpu.ia32_pasid}
        cpu.ia32_pasid = value
        cur = self._current(cpu)
        self.count(cpu, cur, "wrmsr.pasid")
        self.charge(cpu, cur, self.costs.wrmsr, "wrmsr")
        journal.emit(
            cpu.entity, "msr.pasid.write", before, {"ia32_pasid": value}, cycles=self.costs.wrmsr, detail={"why": why}
        )

    def set_saved_pasid(self, cpu: CpuState, task: Task, value: int, journal: Journal, *, why: str) -> None:
        """Write the PASID component of a task's XSAVE buffer (dirtying its cache line)."""
        before = {"saved_ia32_pasid": task.xstate["pasid"]}
        task.xstate["pasid"] = value
        self.count(cpu, task, "cache_lines_dirtied")
        self.charge(cpu, task, self.costs.cache_line_dirty, "switch")
        if task.cpu == cpu.id and cpu.fpregs_owner == task.tid and task.tif_need_fpu_load:
            # The registers are stale now: force the XRSTORS on return to user.
            task.last_cpu = -1
        journal.emit(task.entity, "xstate.pasid.write", before, {"saved_ia32_pasid": value}, detail={"why": why})

    # -- scheduling -------------------------------------------------------------------------
    def schedule(self, journal: Journal, tid: int, cpu_id: int) -> tuple[int, bool, int]:
        """Context switch ``cpu_id`` to thread ``tid`` and return to user.

        Returns (prev tid, whether CR3 changed, cycles).
        """
        task = self.task(tid)
        if task.kthread:
            if task.exited:
                raise FailedPrecondition("THREAD_EXITED", f"thread {tid} has exited", tid=tid)
        else:
            self.user_task(tid)
        cpu = self.cpu(cpu_id)
        if task.cpu == cpu_id:
            return tid, False, 0
        outer = self._enter("switch")
        try:
            return self._schedule(journal, task, cpu)
        finally:
            self.path = outer

    def _schedule(self, journal: Journal, task: Task, cpu: CpuState) -> tuple[int, bool, int]:
        tid = task.tid
        cpu_id = cpu.id
        start = cpu.cycles
        carried = journal.cycles  # cycles other transitions of this switch carry
        if task.cpu >= 0:
            # Migration: the thread leaves its old CPU, which goes idle.
            old = self.cpus[task.cpu]
            self._switch_fpu_prepare(old, task, journal)
            old.current = 0
            task.cpu = -1
            journal.emit(old.entity, "sched.idle", {"current": tid}, {"current": 0})
        prev = self._current(cpu)
        self.charge(cpu, task, self.costs.context_switch, "switch")
        self.count(cpu, task, "context_switches")
        switched = False
        if not task.kthread:
            switched = self._switch_mm(journal, cpu, task, self.processes[task.pid])
        else:
            task.borrowed_mm = 0  # enter_lazy_tlb: CR3 keeps whatever was loaded
        # __switch_to
        if prev is not None:
            self._switch_fpu_prepare(cpu, prev, journal)
            prev.cpu = -1
            journal.emit(
                prev.entity,
                "thread.switch_out",
                {"cpu": cpu.id},
                {"cpu": -1, "saved_ia32_pasid": prev.saved_ia32_pasid},
            )
        cpu.current = tid
        task.cpu = cpu_id
        self._switch_fpu_finish(cpu, task, journal)
        self._switch_gs(cpu, prev, task, journal)
        journal.emit(task.entity, "thread.run", {"cpu": -1}, {"cpu": cpu_id})
        if not task.kthread:
            self.return_to_user(cpu, task, journal)
        # The switch's own cost: everything charged to the CPU that no other transition
        # of the switch carries (so the cycles of a run's transitions add up).
        journal.emit(
            cpu.entity,
            "sched.switch",
            {"current": prev.tid if prev else 0},
            {"current": tid, "cycles": cpu.cycles},
            cycles=cpu.cycles - start - (journal.cycles - carried),
        )
        self._check_cpumask(journal, cpu)
        return prev.tid if prev else 0, switched, cpu.cycles - start

    def _switch_mm(self, journal: Journal, cpu: CpuState, task: Task, nxt: Process) -> bool:
        """switch_mm_irqs_off: PCID, CR3, mm_cpumask, LDT, and the policy's hook."""
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
            self._choose_asid(journal, cpu, task, nxt)
            cpu.loaded_mm = nxt.pid
            self.count(cpu, task, "switch_mm")
            self.charge(cpu, task, self.costs.switch_mm, "switch")
            journal.emit(cpu.entity, "cr3.write", {"loaded_mm": prev_mm}, {"loaded_mm": nxt.pid, "cr3": nxt.aspace.pgd})
            prev_ldt = cpu.ldt_gen
            if nxt.ldt_gen or prev_ldt[1]:
                self._load_ldt(cpu, nxt, journal)
        if not task.kthread:
            self.policy.on_switch_mm(self, cpu, task, journal)
        return changed

    def _choose_asid(self, journal: Journal, cpu: CpuState, task: Task, mm: Process) -> None:
        for i, (ctx, gen) in enumerate(cpu.asids):
            if ctx == mm.ctx_id:
                if gen != mm.tlb_gen:
                    cpu.asids[i] = (ctx, mm.tlb_gen)
                    self._tlb_flush(cpu, task, journal, why="tlb_gen")
                return
        slot = cpu.next_asid
        cpu.next_asid = (slot + 1) % TLB_NR_DYN_ASIDS
        if slot < len(cpu.asids):
            cpu.asids[slot] = (mm.ctx_id, mm.tlb_gen)
        else:
            cpu.asids.append((mm.ctx_id, mm.tlb_gen))
        # A new ASID for this mm on this CPU: its old TLB entries must go.
        self._tlb_flush(cpu, task, journal, why=f"asid {slot} reused")

    def _tlb_flush(self, cpu: CpuState, task: Task | None, journal: Journal, *, why: str) -> None:
        self.count(cpu, task, "tlb_flush")
        self.charge(cpu, task, self.costs.tlb_flush, "tlb")
        journal.emit(cpu.entity, "tlb.flush", None, None, detail={"why": why})

    def _load_ldt(self, cpu: CpuState, mm: Process, journal: Journal) -> None:
        cpu.ldt_gen = (mm.pid, mm.ldt_gen)
        cur = self._current(cpu)
        self.count(cpu, cur, "ldt_load")
        self.charge(cpu, cur, self.costs.ldt_load, "switch")
        journal.emit(cpu.entity, "ldt.load", None, {"ldt": [mm.pid, mm.ldt_gen]})

    def _xsave_cost(self, task: Task) -> int:
        return self.costs.xsaves + (self.costs.tile_xstate if task.fpstate_large else 0)

    def _switch_fpu_prepare(self, cpu: CpuState, prev: Task, journal: Journal) -> None:
        """XSAVES the outgoing user task's registers, if they are live."""
        if prev.kthread or prev.tif_need_fpu_load or cpu.fpregs_owner != prev.tid:
            return
        self._xsaves(cpu, prev, journal)
        prev.tif_need_fpu_load = True
        prev.last_cpu = cpu.id
        prev.pkru = cpu.pkru  # x86_pkru_load saves the outgoing PKRU

    def _xsaves(self, cpu: CpuState, task: Task, journal: Journal) -> None:
        before = {"saved_ia32_pasid": task.xstate["pasid"]}
        task.xstate.update(cpu.regs)
        self.count(cpu, task, "xsaves")
        self.charge(cpu, task, self._xsave_cost(task), "xsave")
        journal.emit(task.entity, "xstate.save", before, {"saved_ia32_pasid": task.xstate["pasid"]})

    def _switch_fpu_finish(self, cpu: CpuState, nxt: Task, journal: Journal) -> None:
        """Mark the incoming task's registers for a lazy restore; PKRU and XFD now."""
        nxt.tif_need_fpu_load = True
        want_pkru = INIT_PKRU if nxt.kthread else nxt.pkru
        if cpu.pkru != want_pkru:
            cpu.pkru = want_pkru
            self.count(cpu, nxt, "wrpkru")
            self.charge(cpu, nxt, self.costs.wrpkru, "switch")
        want_xfd = not nxt.fpstate_large
        if not nxt.kthread and cpu.xfd_armed != want_xfd:
            cpu.xfd_armed = want_xfd
            self.count(cpu, nxt, "wrmsr.xfd")
            self.charge(cpu, nxt, self.costs.wrmsr, "wrmsr")
        self.policy.on_switch_fpu_finish(self, cpu, nxt, journal)

    def _switch_gs(self, cpu: CpuState, prev: Task | None, nxt: Task, journal: Journal) -> None:
        if prev is not None and not prev.kthread:
            prev.gs_base = cpu.kernel_gs_base
        # __wrgsbase_inactive with FSGSBASE: written on every switch.
        cpu.kernel_gs_base = 0 if nxt.kthread else nxt.gs_base
        self.count(cpu, nxt, "wrgsbase")
        self.charge(cpu, nxt, self.costs.wrgsbase, "switch")

    def return_to_user(self, cpu: CpuState, task: Task, journal: Journal) -> None:
        """exit_to_user_mode: switch_fpu_return, then the state invariants."""
        if task.tif_need_fpu_load:
            if cpu.fpregs_owner == task.tid and task.last_cpu == cpu.id:
                self.count(cpu, task, "fpu_restore_skipped")
            else:
                before = {"ia32_pasid": cpu.ia32_pasid}
                cpu.regs.update(task.xstate)
                cpu.fpregs_owner = task.tid
                self.count(cpu, task, "xrstors")
                self.charge(cpu, task, self._xsave_cost(task), "xsave")
                if before["ia32_pasid"] != cpu.ia32_pasid:
                    journal.emit(cpu.entity, "xstate.restore.pasid", before, {"ia32_pasid": cpu.ia32_pasid})
            task.tif_need_fpu_load = False
        self._check_user_state(journal, cpu, task)

    # -- invariants --------------------------------------------------------------------------
    def violation(self, journal: Journal, task: Task | None, invariant: str, what: str) -> None:
        """Record a broken invariant (never silently)."""
        cpu = self.cpus[task.cpu] if task is not None and task.cpu >= 0 else None
        self.count(cpu, task, "invariant_violations")
        self.count(None, None, f"violation.{invariant}")
        journal.emit(
            f"invariant/{invariant}",
            "invariant.violation",
            None,
            {"violations": self.stats[f"violation.{invariant}"]},
            detail={"tid": task.tid if task else 0, "pid": task.pid if task else 0, "what": what},
        )

    def _check_user_state(self, journal: Journal, cpu: CpuState, task: Task) -> None:
        """FPU, PKRU and TILE state of a thread is never lost or leaked across a switch."""
        if cpu.regs["fp"] != task.user_fp:
            self.violation(
                journal, task, "fpu_state", f"SIMD registers hold {cpu.regs['fp']}, thread wrote {task.user_fp}"
            )
        if cpu.pkru != task.pkru:
            self.violation(journal, task, "pkru_state", f"PKRU {cpu.pkru:#x}, thread set {task.pkru:#x}")
        if cpu.regs["tile"] != task.user_tile:
            self.violation(journal, task, "tile_state", f"tiles hold {cpu.regs['tile']}, thread wrote {task.user_tile}")

    def _check_cpumask(self, journal: Journal, cpu: CpuState) -> None:
        """mm_cpumask covers every CPU whose CR3 holds the mm."""
        for c in self.cpus:
            if c.loaded_mm and c.loaded_mm in self.processes:
                mm = self.processes[c.loaded_mm]
                if not mm.mm_cpumask >> c.id & 1:
                    self.violation(
                        journal,
                        self._current(c),
                        "mm_cpumask",
                        f"CPU {c.id} holds mm {mm.pid} in CR3 but is not in its mm_cpumask",
                    )

    # -- user-state operations -----------------------------------------------------------------
    def use_fpu(self, journal: Journal, tid: int) -> int:
        """The running thread writes its SIMD registers (a fresh value each time)."""
        task, cpu = self.running_task(tid)
        token = self.next_fp_token
        self.next_fp_token += 1
        cpu.regs["fp"] = token
        task.user_fp = token
        return token

    def write_pkru(self, journal: Journal, tid: int, value: int) -> None:
        """WRPKRU in the running thread."""
        if not 0 <= value < 1 << 32:
            raise InvalidArgument("BAD_PKRU", f"PKRU is 32 bits, got {value:#x}")
        task, cpu = self.running_task(tid)
        cpu.pkru = value
        task.pkru = value
        self.count(cpu, task, "wrpkru")
        self.charge(cpu, task, self.costs.wrpkru, "user")
        journal.emit(task.entity, "pkru.write", None, {"pkru": value}, cycles=self.costs.wrpkru)

    def set_gs_base(self, journal: Journal, tid: int, value: int) -> None:
        """arch_prctl(ARCH_SET_GS) / WRGSBASE in the running thread (the user GS base is
        what the kernel keeps in KERNEL_GS_BASE while in user mode's swapped view)."""
        task, cpu = self.running_task(tid)
        cpu.kernel_gs_base = value
        task.gs_base = value
        journal.emit(task.entity, "gsbase.write", None, {"gs_base": value})

    def request_amx(self, journal: Journal, pid: int) -> None:
        """arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) for the process."""
        proc = self.live_process(pid)
        proc.amx_permitted = True
        journal.emit(proc.entity, "xcomp_perm", None, {"amx_permitted": True})

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
        return result

    def modify_ldt(self, journal: Journal, tid: int) -> None:
        """modify_ldt(): a new LDT for the mm, flushed to every CPU in mm_cpumask."""
        task, cpu = self.running_task(tid)
        proc = self.processes[task.pid]
        proc.ldt_gen += 1
        journal.emit(proc.entity, "ldt.modify", None, {"ldt_gen": proc.ldt_gen})
        self.on_each_cpu_mask(cpu, proc.mm_cpumask, "flush_ldt", proc.pid, journal)

    def kthread_use_mm(self, journal: Journal, tid: int, pid: int) -> None:
        """A running kernel thread adopts a user mm (kthread_use_mm)."""
        task = self.task(tid)
        if not task.kthread or task.cpu < 0:
            raise FailedPrecondition("NOT_RUNNING_KTHREAD", f"thread {tid} is not a running kernel thread")
        proc = self.live_process(pid)
        cpu = self.cpus[task.cpu]
        task.borrowed_mm = pid
        if cpu.loaded_mm != pid:
            self._switch_mm(journal, cpu, task, proc)
        journal.emit(task.entity, "kthread.use_mm", None, {"borrowed_mm": pid})

    def kthread_unuse_mm(self, journal: Journal, tid: int) -> None:
        """The kernel thread gives the mm back (CR3 stays, lazy TLB)."""
        task = self.task(tid)
        task.borrowed_mm = 0
        journal.emit(task.entity, "kthread.unuse_mm", None, {"borrowed_mm": 0})

    def kernel_fpu_section(self, journal: Journal, tid: int) -> Iterator[str]:
        """A syscall that uses SIMD in the kernel: kernel_fpu_begin() ... kernel_fpu_end().

        A generator: it yields at each point where an interrupt may land (IRQs stay
        enabled; fpregs_lock only disables bottom halves and preemption). The caller
        (the interleaving explorer) decides what runs at each point; ``run_to_end``
        runs it without interruption.
        """
        task, cpu = self.running_task(tid)
        cpu.in_sequence = "kernel_fpu_begin:entry"
        yield cpu.in_sequence
        if not task.tif_need_fpu_load:
            task.tif_need_fpu_load = True  # set_thread_flag(TIF_NEED_FPU_LOAD)
            cpu.in_sequence = "kernel_fpu_begin:tif_set"
            yield cpu.in_sequence
            self._xsaves(cpu, task, journal)  # save_fpregs_to_fpstate
            task.last_cpu = cpu.id
            cpu.in_sequence = "kernel_fpu_begin:saved"
            yield cpu.in_sequence
        cpu.fpregs_owner = 0  # __cpu_invalidate_fpregs_state
        cpu.regs["fp"] = KERNEL_FP_TOKEN
        cpu.in_sequence = "kernel_fpu:in_use"
        yield cpu.in_sequence
        cpu.in_sequence = ""
        self.return_to_user(cpu, task, journal)

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
        outer = self._enter("enqcmd")
        try:
            return self._enqcmd(journal, task, cpu, dest, src)
        finally:
            self.path = outer

    def _enqcmd(self, journal: Journal, task: Task, cpu: CpuState, dest: int, src: bytes) -> EnqcmdResult:
        proc = self.processes[task.pid]
        start = cpu.cycles
        carried = journal.cycles

        def own() -> int:
            # The instruction's own cycles: what no trap or MSR transition carries.
            return cpu.cycles - start - (journal.cycles - carried)

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
            journal.emit(
                task.entity, "enqcmd.retry", None, {"enqcmds": task.enqcmds}, cycles=own(), detail={"reason": reason}
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
                cycles=own(),
                detail={"pasid": pasid_sent},
            )
            return EnqcmdResult(EnqcmdOutcome.ACCEPTED, False, gp, fixed, pasid_sent, "", cpu.cycles - start)
        self.count(cpu, task, "enqcmd_retry")
        journal.emit(
            task.entity,
            "enqcmd.retry",
            None,
            {"enqcmds": task.enqcmds},
            cycles=own(),
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
        outer = self._enter("movdir64b")
        try:
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
        finally:
            self.path = outer

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
        self.count(cpu, task, "sigsegv")
        self.charge(cpu, task, self.costs.signal_delivery, "signal")
        journal.emit(
            task.entity, "signal.sigsegv", None, None, cycles=self.costs.signal_delivery, detail={"signal": SIGSEGV}
        )
        end = cpu.cycles
        self._kill(journal, proc, SIGSEGV)
        return EnqcmdResult(outcome, False, gp, fixed, 0, "", end - start)

    def _kill(self, journal: Journal, proc: Process, sig: int) -> None:
        for tid in proc.tids:
            t = self.tasks[tid]
            if not t.exited:
                self._exit_task(journal, t)
        proc.killed = True
        proc.kill_signal = sig
        journal.emit(proc.entity, "process.killed", {"killed": False}, {"killed": True, "signal": sig})
        self._release_mm(journal, proc, keep_process=False)

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
            adv = self.accel.advance(journal, "", 0)
            self.charge(cpu, task, self.costs.poll, "poll")
            if adv.cycles > cpu.cycles:
                self.charge(cpu, task, adv.cycles - cpu.cycles, "poll")
            raw = self.read_memory(journal, proc.pid, address, idxd.DSA_COMP_SIZE)
        return WaitResult(raw[0] != 0, raw, cpu.cycles - start)
