"""Workloads: processes, threads and what they do, run on the model under a policy.

A workload is plain data (a TOML file, see ``svasim/data/workloads/``):

    name = "one-heavy-submitter"
    cpus = 4
    ticks = 400                 # scheduling rounds; each CPU runs one thread per round
    [[process]]
    name = "app"
    count = 2                   # identical processes
    threads = 6
    open_wq = true              # the process opens dsa0's shared WQ (gets a PASID)
    submitters = 1              # how many of its threads use ENQCMD
    enqcmds_per_tick = 8        # ENQCMDs a submitter executes each time it runs
    migrate = true              # threads may run on any CPU; false pins them
    amx_threads = 0             # threads that use AMX tiles (need permission first)
    pkru_threads = 0            # threads that change PKRU each time they run
    slice_rounds = 1            # rounds a thread keeps its CPU before it is switched out

The scheduler is a deterministic round robin over a global run queue (or per-CPU
queues for pinned threads): every round, each CPU takes the next thread that is not
already running. A workload may instead give its schedule as a list of switch events
(what a recorded trace gives), applied in order, and then nothing else runs:

    [[switch]]
    round = 0
    cpu = 1
    process = "app0"            # process instance: name + index
    thread = 2                  # thread index within it

Each thread, when it runs, touches its SIMD registers, then does its ENQCMDs, tile and
PKRU work. A process with ``open_wq`` opens the WQ on the first run of its first thread
or of any of its submitters, whichever comes first (the PASID is then allocated while
other threads may be on CPUs), so every run of a submitter submits.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from svasim.model.costs import CostTable
from svasim.model.fabric import ModelFabric
from svasim.model.journal import Journal
from svasim_api import idxd

PROCESS_KEYS = {
    "slice_rounds",
    "name",
    "count",
    "threads",
    "open_wq",
    "submitters",
    "enqcmds_per_tick",
    "migrate",
    "amx_threads",
    "pkru_threads",
}
TOP_KEYS = {"name", "description", "cpus", "ticks", "process", "early_free", "switch"}
SWITCH_KEYS = {"round", "cpu", "process", "thread"}


@dataclass(frozen=True)
class SwitchEvent:
    """One context switch of an explicit schedule."""

    round: int
    cpu: int
    process: str
    thread: int


@dataclass
class ProcessSpec:
    """One kind of process in a workload."""

    name: str
    count: int = 1
    threads: int = 1
    open_wq: bool = False
    submitters: int = 0
    enqcmds_per_tick: int = 1
    migrate: bool = True
    amx_threads: int = 0
    pkru_threads: int = 0
    slice_rounds: int = 1


@dataclass
class Workload:
    """A whole workload."""

    name: str
    cpus: int
    ticks: int
    processes: list[ProcessSpec]
    description: str = ""
    early_free: bool | None = None
    switches: list[SwitchEvent] = field(default_factory=list)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Workload:
        """Validate and build; every mistake is a ValueError naming the field."""
        unknown = set(data) - TOP_KEYS
        if unknown:
            raise ValueError(f"unknown workload keys {sorted(unknown)}; known: {sorted(TOP_KEYS)}")
        procs = []
        for i, p in enumerate(data.get("process", [])):
            bad = set(p) - PROCESS_KEYS
            if bad:
                raise ValueError(f"process[{i}]: unknown keys {sorted(bad)}; known: {sorted(PROCESS_KEYS)}")
            spec = ProcessSpec(**p)
            for k in ("count", "threads", "slice_rounds"):
                if not isinstance(getattr(spec, k), int) or getattr(spec, k) < 1:
                    raise ValueError(f"process[{i}].{k} must be a positive integer")
            for k in ("submitters", "amx_threads", "pkru_threads", "enqcmds_per_tick"):
                v = getattr(spec, k)
                if not isinstance(v, int) or v < 0:
                    raise ValueError(f"process[{i}].{k} must be a non-negative integer")
            if spec.submitters > spec.threads or spec.amx_threads > spec.threads:
                raise ValueError(f"process[{i}]: more submitters or AMX threads than threads")
            if spec.submitters and not spec.open_wq:
                raise ValueError(f"process[{i}]: submitters need open_wq = true")
            procs.append(spec)
        if not procs:
            raise ValueError("a workload needs at least one [[process]]")
        cpus = data.get("cpus", 4)
        ticks = data.get("ticks", 100)
        if not isinstance(cpus, int) or not 1 <= cpus <= 256:
            raise ValueError("cpus must be an integer in 1..256")
        if not isinstance(ticks, int) or not 1 <= ticks <= 1_000_000:
            raise ValueError("ticks must be an integer in 1..1000000")
        switches = []
        for i, ev in enumerate(data.get("switch", [])):
            bad = set(ev) - SWITCH_KEYS
            missing = SWITCH_KEYS - set(ev)
            if bad or missing:
                raise ValueError(
                    f"switch[{i}]: keys must be {sorted(SWITCH_KEYS)} "
                    f"(unknown {sorted(bad)}, missing {sorted(missing)})"
                )
            sw = SwitchEvent(int(ev["round"]), int(ev["cpu"]), str(ev["process"]), int(ev["thread"]))
            if not 0 <= sw.cpu < cpus:
                raise ValueError(f"switch[{i}].cpu {sw.cpu} is not a CPU of this workload (0..{cpus - 1})")
            if not 0 <= sw.round < ticks:
                raise ValueError(f"switch[{i}].round {sw.round} is outside 0..{ticks - 1}")
            switches.append(sw)
        if any(a.round > b.round for a, b in zip(switches, switches[1:], strict=False)):
            raise ValueError("switch events must be in round order")
        return cls(
            str(data.get("name", "workload")),
            cpus,
            ticks,
            procs,
            str(data.get("description", "")),
            data.get("early_free"),
            switches,
        )


@dataclass
class WorkloadResult:
    """Counters of one run of a workload under one policy."""

    workload: str
    policy: str
    counters: Counter[str] = field(default_factory=Counter)
    per_cpu: dict[str, Counter[str]] = field(default_factory=dict)
    per_thread: dict[str, Counter[str]] = field(default_factory=dict)

    @property
    def cycles_per_switch(self) -> float:
        """Modelled cycles spent in the context-switch path per context switch."""
        n = self.counters["context_switches"]
        return self.counters["path.switch"] / n if n else 0.0

    @property
    def cycles_per_enqcmd(self) -> float:
        """Modelled cycles per ENQCMD, traps and fixups included."""
        n = self.counters["enqcmd"]
        return self.counters["path.enqcmd"] / n if n else 0.0

    @property
    def ipi_cycles(self) -> int:
        """Cycles spent sending and taking IPIs."""
        return int(self.counters["path.ipi"] + self.counters["cycles.ipi"] - self.counters["path.ipi"])


def run_workload(
    wl: Workload, policy: str, *, costs: CostTable | None = None, early_free: bool | None = None
) -> WorkloadResult:
    """Run ``wl`` under ``policy`` on a fresh model fabric; deterministic."""
    fab = ModelFabric(
        ncpus=wl.cpus, policy=policy, costs=costs, early_free=wl.early_free if early_free is None else early_free
    )
    k = fab.kernel
    j = Journal("cpu", None)
    threads: list[dict[str, Any]] = []
    for spec in wl.processes:
        for n in range(spec.count):
            proc = k.create_process(j, f"{spec.name}{n}")
            tids = [proc.tids[0]] + [k.create_thread(j, proc.pid).tid for _ in range(spec.threads - 1)]
            comp = 0
            if spec.open_wq:
                comp = k.mmap(j, proc.pid, 4096, True, True).start
            if spec.amx_threads:
                k.request_amx(j, proc.pid)
            for i, tid in enumerate(tids):
                threads.append(
                    {
                        "tid": tid,
                        "pid": proc.pid,
                        "submit": i < spec.submitters,
                        "amx": i < spec.amx_threads,
                        "pkru": i < spec.pkru_threads,
                        "n": spec.enqcmds_per_tick,
                        "pin": None if spec.migrate else len(threads) % wl.cpus,
                        "comp": comp,
                        "process": proc.name,
                        "index": i,
                        "slice": spec.slice_rounds,
                    }
                )
            if spec.open_wq:
                threads[-len(tids)]["open_first"] = True
    noop: dict[int, bytes] = {}
    portals: dict[int, int] = {}

    def run_thread(t: dict[str, Any], cpu: int, tick: int) -> None:
        tid = t["tid"]
        k.schedule(j, tid, cpu)
        k.use_fpu(j, tid)
        if (t.get("open_first") or t["submit"]) and t["pid"] not in portals:
            # A submitter that runs before the process's first thread opens it itself.
            portals[t["pid"]] = k.open_wq(j, t["pid"], "dsa0", 0)[0]
        if t["pkru"]:
            k.write_pkru(j, tid, 0x55555554 ^ (tick & 1) << 2)
        if t["amx"] and k.use_tile(j, tid) == "sigill":
            return
        if t["submit"]:
            desc = noop.get(t["comp"])
            if desc is None:
                desc = noop[t["comp"]] = idxd.pack_desc(
                    idxd.DsaHwDesc(
                        opcode=idxd.DsaOpcode.NOOP,
                        flags=int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR),
                        completion_addr=t["comp"],
                    )
                )
            for _ in range(t["n"]):
                r = k.enqcmd(j, tid, portals[t["pid"]], desc)
                if r.outcome not in ("accepted", "retry"):
                    break

    if wl.switches:
        by_name = {(t["process"], t["index"]): t for t in threads}
        for ev in wl.switches:
            t = by_name.get((ev.process, ev.thread))
            if t is None:
                raise ValueError(f"switch event names {ev.process} thread {ev.thread}, which the workload lacks")
            if not k.tasks[t["tid"]].exited:
                run_thread(t, ev.cpu, ev.round)
    else:
        queue = list(range(len(threads)))
        # What each CPU runs and for how many more rounds it keeps it (its time slice).
        on_cpu: dict[int, tuple[int, int]] = {}
        for tick in range(wl.ticks):
            running: set[int] = set()
            for cpu in range(wl.cpus):
                held = on_cpu.get(cpu)
                if held is not None and held[1] > 0 and not k.tasks[threads[held[0]]["tid"]].exited:
                    ti, left = held
                    on_cpu[cpu] = (ti, left - 1)
                    running.add(ti)
                    run_thread(threads[ti], cpu, tick)
                    continue
                pick = None
                for qi, ti in enumerate(queue):
                    t = threads[ti]
                    if ti in running or k.tasks[t["tid"]].exited:
                        continue
                    if t["pin"] is not None and t["pin"] != cpu:
                        continue
                    pick = qi
                    break
                if pick is None:
                    continue
                ti = queue.pop(pick)
                queue.append(ti)
                running.add(ti)
                on_cpu[cpu] = (ti, threads[ti]["slice"] - 1)
                run_thread(threads[ti], cpu, tick)
    res = WorkloadResult(wl.name, policy, Counter(k.stats))
    res.per_cpu = {name: c for name, c in sorted(k.counters.items()) if name.startswith("cpu/")}
    res.per_thread = {name: c for name, c in sorted(k.counters.items()) if name.startswith("thread/")}
    return res
