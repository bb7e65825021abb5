"""The kernel's own state, its accounting, its lookups and its invariant checks.

Every other module of the kernel model builds on :class:`KernelCore`: the CPUs, the
processes (mm) and tasks, physical memory, the peers (accelerator, IOMMU), the PASID
policy, and the counters that charge modelled cycles to a CPU, its current thread and
the kernel path being run. The invariant checks are the simulator's, not Linux's: they
record, never silently, a state that a correct kernel could not reach.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from typing import Any

from mypy_extensions import mypyc_attr

from svasim.model.costs import CostTable
from svasim.model.errors import FailedPrecondition, NotFound
from svasim.model.journal import Journal
from svasim.model.kernel_state import CpuState, Process, Task, WqFile
from svasim.model.memory import DEFAULT_MEMORY_SIZE, PhysicalMemory
from svasim.model.policies import make_policy
from svasim.model.policy import PasidPolicy
from svasim.model.ports import AccelPort, IommuPort


def task_fields(task: Task) -> dict[str, Any]:
    """A task's state as its transitions record it: where it runs and what it saved."""
    return {
        "pid": task.pid,
        "cpu": task.cpu,
        "kthread": task.kthread,
        "exited": task.exited,
        "pasid_activated": task.pasid_activated,
        "saved_ia32_pasid": task.saved_ia32_pasid,
        "saved_fp": task.xstate["fp"],
        "saved_tile": task.xstate["tile"],
        "tif_need_fpu_load": task.tif_need_fpu_load,
        "last_cpu": task.last_cpu,
        "pkru": task.pkru,
        "gs_base": task.gs_base,
        "fpstate_large": task.fpstate_large,
        "gp_faults": task.gp_faults,
        "enqcmds": task.enqcmds,
        "borrowed_mm": task.borrowed_mm,
        "user_fp": task.user_fp,
        "user_tile": task.user_tile,
    }


def process_fields(proc: Process) -> dict[str, Any]:
    """A process and its mm as its transitions record them (mappings, PTEs and files
    are entities of their own)."""
    fields: dict[str, Any] = {
        "name": proc.name,
        "pgd": proc.aspace.pgd,
        "pasid": proc.pasid,
        "mm_cpumask": proc.cpumask_list(),
        "killed": proc.killed,
        "signal": proc.kill_signal,
        "exited": proc.exited,
        "ctx_id": proc.ctx_id,
        "tlb_gen": proc.tlb_gen,
        "ldt_gen": proc.ldt_gen,
        "amx_permitted": proc.amx_permitted,
        "mmap_top": proc.aspace.mmap_top,
    }
    if proc.native_pid:
        fields["native_pid"] = proc.native_pid
        fields["native_slot"] = proc.native_slot
    return fields


def _task_sig(t: Task) -> tuple[Any, ...]:
    # Everything task_fields reads, cheaply: compared before the fields are built.
    return (t.cpu, t.exited, t.pasid_activated, t.xstate["pasid"], t.xstate["fp"], t.xstate["tile"],
            t.tif_need_fpu_load, t.last_cpu, t.pkru, t.gs_base, t.fpstate_large, t.gp_faults, t.enqcmds,
            t.borrowed_mm, t.user_fp, t.user_tile)  # fmt: skip


def _cpu_sig(c: CpuState) -> tuple[Any, ...]:
    # Everything cpu_fields reads but the loaded mm's pgd, which only cr3.write changes.
    return (c.current, c.regs["pasid"], c.regs["fp"], c.regs["tile"], c.fpregs_owner, c.pkru, c.kernel_gs_base,
            c.xfd_armed, c.loaded_mm, tuple(c.asids), c.next_asid, c.ldt_gen, c.cycles, c.in_sequence)  # fmt: skip


def file_fields(file: WqFile) -> dict[str, Any]:
    """An open WQ file: the WQ it opens, its descriptor and its references."""
    return {"device": file.device, "wq": file.wq_id, "fd": file.fd, "fd_open": file.fd_open, "f_count": file.f_count}


def changed(old: dict[str, Any], new: dict[str, Any]) -> dict[str, Any]:
    """The fields of ``new`` whose value is not the one in ``old``."""
    return {k: v for k, v in new.items() if old.get(k, _ABSENT) != v}


#: A value no field holds (what ``changed`` compares an absent field as).
_ABSENT = object()


@mypyc_attr(native_class=False)
class TrackedCpus(list[CpuState]):
    """The CPUs, noting each one an operation reaches (by index or by iterating) and the
    thread it ran when first reached, so that the end of the operation looks at those
    CPUs only, not at every CPU (each look costs about 1.5 us: 64 CPUs cost a 4-CPU
    write_memory its time four times over). Nothing changes a CPU without reaching it
    through this list first, so what was current there at that moment is what was current
    when the operation began."""

    __slots__ = ("touched",)

    def __init__(self, cpus: Any = ()) -> None:
        super().__init__(cpus)
        #: CPU id -> the tid current there when the operation first reached it.
        self.touched: dict[int, int] = {}

    def __getitem__(self, i: Any) -> Any:
        got = list.__getitem__(self, i)
        touched = self.touched
        for cpu in got if type(got) is list else (got,):
            if cpu.id not in touched:
                touched[cpu.id] = cpu.current
        return got

    def __iter__(self) -> Any:
        touched = self.touched
        for cpu in list.__iter__(self):
            if cpu.id not in touched:
                touched[cpu.id] = cpu.current
            yield cpu

    def read_only(self) -> Iterator[CpuState]:
        """Every CPU, not noted as reached: for a reader that changes none (a check)."""
        return list.__iter__(self)


@mypyc_attr(native_class=False)
class TrackedTasks(dict[int, Task]):
    """The tasks by tid, noting each tid an operation looks up (``[]`` and ``get``), so
    that the end of the operation compares those tasks, and the ones running on the CPUs
    it reached, with what the record holds of them. Iterating over every task is for
    readers of the whole state (:mod:`svasim.model.state`), not for operations."""

    __slots__ = ("touched",)

    def __init__(self, touched: set[int]) -> None:
        super().__init__()
        self.touched = touched

    def __getitem__(self, tid: int) -> Task:
        self.touched.add(tid)
        return dict.__getitem__(self, tid)

    def get(self, tid: int, default: Any = None) -> Any:  # type: ignore[override]
        self.touched.add(tid)
        return dict.get(self, tid, default)


class _KernelPath:
    """The context of :meth:`KernelCore.kernel_path` (a class: cheaper than a generator)."""

    __slots__ = ("kernel", "path", "outer")

    def __init__(self, kernel: KernelCore, path: str) -> None:
        self.kernel = kernel
        self.path = path
        self.outer = ""

    def __enter__(self) -> None:
        self.outer, self.kernel.path = self.kernel.path, self.path

    def __exit__(self, *exc: object) -> None:
        self.kernel.path = self.outer


@mypyc_attr(native_class=False)
class KernelCore:
    """State, accounting and lookups shared by every part of the kernel model."""

    def __init__(
        self,
        accel: AccelPort,
        iommu: IommuPort,
        *,
        ncpus: int = 4,
        policy: PasidPolicy | str = "linux-5.18",
        costs: CostTable | None = None,
        early_free: bool | None = None,
        memory_size: int = DEFAULT_MEMORY_SIZE,
    ) -> None:
        if ncpus < 1:
            raise ValueError("a fabric needs at least one CPU")
        if ncpus > 256:
            raise ValueError("at most 256 CPUs")
        self.accel = accel
        self.iommu = iommu
        self.policy = make_policy(policy) if isinstance(policy, str) else policy
        # Free the PASID on the last unbind (5.10 did) rather than at mm teardown.
        self.early_free = self.policy.early_free if early_free is None else early_free
        self.costs = costs or CostTable()
        self.cpus = TrackedCpus(CpuState(i) for i in range(ncpus))
        # Every frame of the fabric's host memory: page tables, anonymous pages.
        self.memory = PhysicalMemory(memory_size)
        self.processes: dict[int, Process] = {}
        # Tids an operation touched: looked up, or named by it (exec, fpu).
        self.touched: set[int] = set()
        self.tasks: dict[int, Task] = TrackedTasks(self.touched)
        self.by_pgd: dict[int, Process] = {}
        self.frame_owner: dict[int, int] = {}
        # Native processes (svasim.model.kernel.native): fabric pid -> the real process's
        # memory, and the slots of the physical window through which devices reach them.
        self.native_mem: dict[int, Any] = {}
        self.native_slot_pid: dict[int, int] = {}
        self.next_pid = 1
        self.next_ctx_id = 1
        self.next_fp_token = 1
        self.counters: dict[str, Counter[str]] = {}
        self.stats: Counter[str] = Counter()
        # The kernel path being executed, for per-path cycle totals (cycles per context
        # switch, per ENQCMD).
        self.path = "other"
        # What the record says of each CPU and of the tasks that ran, so that the end of
        # an operation records whatever it changed there (registers, clocks, xstate) in
        # one transition per entity rather than one per register write.
        self.recorded_cpus = [self.cpu_fields(c) for c in self.cpus]
        self.cpu_sigs = [_cpu_sig(c) for c in self.cpus]
        self.task_sigs: dict[int, tuple[Any, ...]] = {}
        self.recorded_memory = self.memory_fields()
        self.recorded_tasks: dict[int, dict[str, Any]] = {}
        self.depth = 0
        self.entry_mark = 0

    # -- the record of per-CPU and per-task state ----------------------------------------------
    def cpu_fields(self, cpu: CpuState) -> dict[str, Any]:
        """A logical CPU's registers, switching state and clock as transitions record them,
        and the point of the kernel sequence it is in ("" for none)."""
        mm = self.processes.get(cpu.loaded_mm) if cpu.loaded_mm else None
        return {
            "current": cpu.current,
            "ia32_pasid": cpu.ia32_pasid,
            "fp": cpu.regs["fp"],
            "tile": cpu.regs["tile"],
            "fpregs_owner": cpu.fpregs_owner,
            "pkru": cpu.pkru,
            "kernel_gs_base": cpu.kernel_gs_base,
            "xfd_armed": cpu.xfd_armed,
            "loaded_mm": cpu.loaded_mm,
            "cr3": mm.aspace.pgd if mm is not None else 0,
            "asids": [[ctx, gen] for ctx, gen in cpu.asids],
            "next_asid": cpu.next_asid,
            "ldt": list(cpu.ldt_gen),
            "cycles": cpu.cycles,
            "in_sequence": cpu.in_sequence,
        }

    def memory_fields(self) -> dict[str, Any]:
        """Physical memory's allocator as transitions record it (contents are not: each
        write records the CRC32 of what it wrote, and re-execution rebuilds the bytes)."""
        return {"next_pfn": self.memory.next_pfn, "frames": len(self.memory.frames)}

    def task_created(self, task: Task) -> dict[str, Any]:
        """The fields a new task's creation records (and the record now holds)."""
        fields = task_fields(task)
        self.recorded_tasks[task.tid] = fields
        return dict(fields)

    def enter_op(self, journal: Journal) -> None:
        """An operation of the kernel begins (operations nest: peers call back)."""
        if self.depth == 0:
            self.entry_mark = len(journal.transitions)
        self.depth += 1

    def leave_op(self, journal: Journal) -> None:
        """An operation ends: the outermost one records what changed on the CPUs it reached
        and in the tasks it touched or that ran there, that no transition recorded yet."""
        self.depth -= 1
        if self.depth:
            return
        cpus, tasks = self.cpus, self.tasks
        at_entry = cpus.touched
        reached = sorted(at_entry)
        cpu_at = list.__getitem__
        tids = {tid for tid in at_entry.values() if tid} | self.touched
        for i in reached:
            current = cpu_at(cpus, i).current
            if current:
                tids.add(current)
        # What this operation's own transitions recorded is in the record already.
        for t in journal.transitions[self.entry_mark :]:
            if not t.after or not t.entity.startswith(("cpu/", "thread/")):
                continue
            kind, _, n = t.entity.partition("/")
            if kind == "cpu" and n.isdigit() and int(n) < len(cpus):
                self.recorded_cpus[int(n)].update(t.after)
            elif kind == "thread" and n.isdigit() and int(n) in self.recorded_tasks:
                self.recorded_tasks[int(n)].update(t.after)
        for tid in sorted(tids):
            task = dict.get(tasks, tid)
            if task is None:
                continue
            sig = _task_sig(task)
            if self.task_sigs.get(tid) == sig:
                continue
            self.task_sigs[tid] = sig
            now = task_fields(task)
            old = self.recorded_tasks.get(tid, {})
            # Equal as a whole (the op's own transitions recorded the change): no diff.
            diff = changed(old, now) if now != old else None
            if diff:
                self.recorded_tasks[tid] = now
                journal.emit(task.entity, "thread.state", None, diff)
        for i in reached:
            c = cpu_at(cpus, i)
            sig = _cpu_sig(c)
            if self.cpu_sigs[i] == sig:
                continue
            self.cpu_sigs[i] = sig
            now = self.cpu_fields(c)
            diff = changed(self.recorded_cpus[i], now)
            if diff:
                self.recorded_cpus[i] = now
                journal.emit(c.entity, "cpu.state", None, diff)
        at_entry.clear()
        self.touched.clear()
        recorded, memory = self.recorded_memory, self.memory
        if recorded.get("next_pfn") == memory.next_pfn and recorded.get("frames") == len(memory.frames):
            return  # neither of the two fields memory_fields records changed (the common case)
        now = self.memory_fields()
        diff = changed(recorded, now)
        if diff:
            self.recorded_memory = now
            journal.emit("memory", "memory.frames", None, diff)

    # -- accounting ----------------------------------------------------------------------
    def count(self, cpu: CpuState | None, task: Task | None, name: str, n: int = 1) -> None:
        """Add ``n`` to counter ``name`` of the run, the CPU and the thread."""
        self._add(cpu, task, (name,), n)

    def charge(self, cpu: CpuState, task: Task | None, cycles: int, what: str) -> int:
        """Charge modelled cycles to a CPU (and its current thread), by category."""
        if cycles:
            cpu.cycles += cycles
            # The three counters in one pass (every instruction charges).
            self._add(cpu, task, ("cycles", f"cycles.{what}", f"path.{self.path}"), cycles)
        return cycles

    def _add(self, cpu: CpuState | None, task: Task | None, names: tuple[str, ...], n: int) -> None:
        """Add ``n`` to each of ``names`` of the run, the CPU and the thread."""
        stats = self.stats
        for name in names:
            stats[name] += n
        counters = self.counters
        for owner in (cpu, task):
            if owner is not None:
                c = counters.get(owner.entity)
                if c is None:
                    c = counters[owner.entity] = Counter()
                for name in names:
                    c[name] += n

    def kernel_path(self, path: str) -> _KernelPath:
        """Charge the cycles of the enclosed code to ``path`` (paths nest)."""
        return _KernelPath(self, path)

    # -- lookup ----------------------------------------------------------------------------
    def current(self, cpu: CpuState) -> Task | None:
        """``current`` on ``cpu``: the task it runs, or None when idle."""
        return self.tasks.get(cpu.current) if cpu.current else None

    def mm(self, pid: int) -> Process:
        """The mm of process ``pid`` (which must exist)."""
        return self.processes[pid]

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

    def _check_cpumask(self, journal: Journal) -> None:
        """mm_cpumask covers every CPU whose CR3 holds the mm."""
        for c in self.cpus.read_only():
            if c.loaded_mm and c.loaded_mm in self.processes:
                mm = self.processes[c.loaded_mm]
                if not mm.mm_cpumask >> c.id & 1:
                    self.violation(
                        journal,
                        self.current(c),
                        "mm_cpumask",
                        f"CPU {c.id} holds mm {mm.pid} in CR3 but is not in its mm_cpumask",
                    )
