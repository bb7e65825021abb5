#!/usr/bin/env python3
"""Memory against run length: peak RSS of a recording process for runs of 10^4, 10^5, 10^6 events.

Each run is recorded by a fresh process (so its peak is its own), in two ways:

* ``store``: the recorder and the store alone, fed transitions like those of an accepted
  descriptor, 7 per request, each request waited for as ``commit`` durability does;
* ``fabric``: the whole fabric in one process (model, servicers, recorder, store), fed
  unary MEMMOVEs of 4 KiB as a client would send them, ``commit`` durability.

The baseline of each row is the same process's RSS before it recorded anything, so the
figure is the growth: flat in run length means state only, not history. A last column
gives the RSS of ``Store.state_at`` of the run's last event, read in a fresh process.

Usage: python benchmarks/memory.py [--quick] [--events N ...]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

PER_REQUEST = 7


def rss_kib() -> int:
    """The current resident set size of this process, in KiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def peak_kib() -> int:
    """The peak resident set size of this process so far, in KiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


class InProcessClient:
    """What :class:`run.MemmoveLoop` needs of a client, calling the servicers directly."""

    def __init__(self, servicers: dict[str, Any]) -> None:
        from svasim.replay import ReplayContext

        self.cpu = servicers["cpu"]
        self.ctx = ReplayContext()

    def create_process(self, name: str) -> Any:
        """CreateProcess."""
        from svasim_api.cpu.v1 import cpu_pb2

        return self.cpu.CreateProcess(cpu_pb2.CreateProcessRequest(name=name), self.ctx).process

    def mmap(self, pid: int, length: int, *, populate: bool = False) -> int:
        """Mmap."""
        from svasim_api.cpu.v1 import cpu_pb2

        req = cpu_pb2.MmapRequest(pid=pid, length=length, writable=True, populate=populate)
        return self.cpu.Mmap(req, self.ctx).address

    def write(self, pid: int, address: int, data: bytes) -> None:
        """WriteMemory."""
        from svasim_api.cpu.v1 import cpu_pb2

        self.cpu.WriteMemory(cpu_pb2.WriteMemoryRequest(pid=pid, address=address, data=data), self.ctx)

    def open_wq(self, pid: int) -> Any:
        """OpenWorkQueue of dsa0/0."""
        from svasim_api.cpu.v1 import cpu_pb2

        return self.cpu.OpenWorkQueue(cpu_pb2.OpenWorkQueueRequest(pid=pid, device="dsa0", wq_id=0), self.ctx)

    def schedule(self, tid: int, cpu: int) -> None:
        """Schedule."""
        from svasim_api.cpu.v1 import cpu_pb2

        self.cpu.Schedule(cpu_pb2.ScheduleRequest(tid=tid, cpu=cpu), self.ctx)

    def enqcmd(self, tid: int, portal: int, descriptor: bytes) -> Any:
        """Enqcmd."""
        from svasim_api.cpu.v1 import cpu_pb2

        return self.cpu.Enqcmd(cpu_pb2.EnqcmdRequest(tid=tid, portal_address=portal, raw=descriptor), self.ctx)


def child_store(events: int, db: str) -> dict[str, Any]:
    """Record ``events`` synthetic transitions through a Recorder; the RSS figures."""
    from svasim.model.transition import Transition
    from svasim.store import Recorder, Store

    store = Store.open(db)
    run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
    rec = Recorder(store, run.id, durability="commit")
    start = rss_kib()
    t0 = time.perf_counter()
    for r in range(events // PER_REQUEST):
        cause = None
        batch = []
        for k in range(PER_REQUEST):
            t = Transition("accel", f"desc/{r % 4096}", "desc.state", {"state": k}, {"state": k + 1, "n": r}, cause, 10)
            batch.append(t)
            cause = t
        rec.append(batch)
        rec.before_ack(batch[-1])
    rec.close()
    seconds = time.perf_counter() - t0
    store.close()
    return {"start": start, "peak": peak_kib(), "events": events, "seconds": seconds, "run": run.id}


def child_fabric(events: int, db: str) -> dict[str, Any]:
    """Record a fabric run of about ``events`` events driven by unary MEMMOVEs; the RSS figures."""
    from run import MemmoveLoop

    from svasim.config import ALL_SERVICES, FabricConfig
    from svasim.model.costs import CostTable
    from svasim.replay import Fabric
    from svasim.server import run_config
    from svasim.store import Recorder, Store

    store = Store.open(db)
    config = FabricConfig(services=ALL_SERVICES, db=db, durability="commit")
    costs = CostTable()
    run = store.create_run(
        name=None, config=run_config(config, costs), policy=config.policy, seed=config.seed, version="bench"
    )
    rec = Recorder(store, run.id, durability="commit")
    fabric = Fabric(config, costs, rec, run.id)
    loop = MemmoveLoop(InProcessClient(fabric.servicers), slots=64)
    start = rss_kib()
    t0 = time.perf_counter()
    while rec.stats()["appended"] < events:
        for _ in range(256):
            loop.enqcmd_memmove()
    recorded = rec.stats()["appended"]
    rec.close()
    seconds = time.perf_counter() - t0
    store.close()
    return {"start": start, "peak": peak_kib(), "events": recorded, "seconds": seconds, "run": run.id}


def child_state(db: str, run_id: str) -> dict[str, Any]:
    """The state at the last event of a run, in a fresh process: the RSS figures."""
    from svasim.store import Store

    store = Store.open(db)
    start = rss_kib()
    t0 = time.perf_counter()
    state = store.state_at(run_id)
    seconds = time.perf_counter() - t0
    store.close()
    return {"start": start, "peak": peak_kib(), "entities": len(state), "seconds": seconds}


def run_child(args: list[str]) -> dict[str, Any]:
    """One measurement in a fresh process, pinned to CPU 1 where there are two."""
    pin = ["taskset", "-c", "1"] if (os.cpu_count() or 1) >= 2 else []
    out = subprocess.run(
        [*pin, sys.executable, __file__, "--child", *args], check=True, capture_output=True, text=True
    ).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    """Measure and print the table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="10^4 and 10^5 events only")
    parser.add_argument("--events", type=int, nargs="+", help="run lengths (default 10^4 10^5 10^6)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        kind, *rest = args.child
        if kind == "state":
            result = child_state(rest[0], rest[1])
        else:
            result = (child_store if kind == "store" else child_fabric)(int(rest[0]), rest[1])
        print(json.dumps(result))
        return 0
    lengths = args.events or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    print("peak RSS against run length (MiB; growth = peak - RSS before recording)")
    print(f"{'recorder':<8} {'events':>10} {'before':>8} {'peak':>8} {'growth':>8} {'events/s':>9}   state_at peak")
    first: dict[str, float] = {}
    with tempfile.TemporaryDirectory() as d:
        for kind in ("store", "fabric"):
            for n in lengths:
                db = f"sqlite:///{Path(d) / f'{kind}-{n}.db'}"
                r = run_child([kind, str(n), db])
                s = run_child(["state", db, r["run"]])
                growth = (r["peak"] - r["start"]) / 1024
                first.setdefault(kind, growth)
                print(
                    f"{kind:<8} {r['events']:>10,} {r['start'] / 1024:>8.1f} {r['peak'] / 1024:>8.1f} "
                    f"{growth:>8.1f} {r['events'] / r['seconds']:>9,.0f}   {s['peak'] / 1024:.1f} "
                    f"({s['entities']} entities)",
                    flush=True,
                )
    return 0


if __name__ == "__main__":
    sys.exit(main())
