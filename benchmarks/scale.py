#!/usr/bin/env python3
"""Scale: 64 CPUs and 10,000 threads, peak RSS against run length (10^4, 10^5, 10^6 events).

Each run is recorded by a fresh process (so its peak is its own): the whole fabric in that
process (model, servicers, recorder, SQLite store), set up with ``--cpus`` logical CPUs
and ``--processes`` processes of ``--threads-per-process`` threads (64 x 100 x 100 by
default: 10,000 threads), each process with a 4 KiB page of completion records and the
shared WQ dsa0/0 open. The setup ends with one round in which every thread runs and
submits once (its first ENQCMD takes the #GP fixup), so that the state a thread has
exists before the run is measured. Then, until the run has recorded the asked number of
events past the setup: the threads are scheduled in turn, thread ``k`` on CPU
``k % cpus`` (so every switch changes mm: switch_mm, PASID and FPU state, the PCID
cache), and every ``--submit-every``-th one executes ENQCMD of a NOOP descriptor whose
completion record is its own.

The setup is acknowledged at once (``batch`` durability); the measured run with
``--durability`` (``commit`` by default: each request waits for its commit, as the
benchmarks of ``run.py`` do). The baseline of each row is the process's RSS once the
setup is committed, so the growth is what the run added: flat in run length means state
only, not history. ``max pending`` is the most transitions the recorder held not yet
committed at once: with ``batch`` a writer slower than the model lets that backlog, and
the RSS, grow with the run.

Usage: python benchmarks/scale.py [--quick] [--events N ...] [--cpus 64] [--processes 100]
       [--threads-per-process 100] [--submit-every 4] [--durability commit|batch]
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

#: Default sizes: 64 CPUs, 100 x 100 = 10,000 threads.
CPUS = 64
PROCESSES = 100
THREADS_PER_PROCESS = 100


def rss_kib() -> int:
    """The current resident set size of this process, in KiB."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * (os.sysconf("SC_PAGE_SIZE") // 1024)


def peak_kib() -> int:
    """The peak resident set size of this process since :func:`reset_peak` (VmHWM), in KiB."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1])
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def reset_peak() -> bool:
    """Start the peak RSS afresh (``echo 5 > /proc/self/clear_refs``, Linux 4.0 and later:
    Documentation/admin-guide/mm/soft-dirty.rst); False where that is refused."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return True


def child(
    events: int, db: str, cpus: int, processes: int, per_process: int, submit_every: int, durability: str = "commit"
) -> dict[str, Any]:
    """Set the fabric up, run it for ``events`` events past the setup; the RSS figures."""
    from svasim.config import ALL_SERVICES, FabricConfig
    from svasim.model.costs import CostTable
    from svasim.replay import Fabric, ReplayContext
    from svasim.server import run_config
    from svasim.store import Recorder, Store
    from svasim_api.cpu.v1 import cpu_pb2
    from svasim_client import noop_descriptor

    store = Store.open(db)
    # The setup is acknowledged at once (batch); the measured run with ``durability``.
    config = FabricConfig(services=ALL_SERVICES, db=db, durability="batch", cpus=cpus)
    costs = CostTable()
    run = store.create_run(
        name=None, config=run_config(config, costs), policy=config.policy, seed=config.seed, version="bench"
    )
    rec = Recorder(store, run.id, durability="batch")
    fabric = Fabric(config, costs, rec, run.id)
    cpu = fabric.servicers["cpu"]
    ctx = ReplayContext()
    t0 = time.perf_counter()
    threads: list[tuple[int, int, bytes]] = []  # (tid, portal address, NOOP descriptor)
    for p in range(processes):
        proc = cpu.CreateProcess(cpu_pb2.CreateProcessRequest(name=f"scale{p}"), ctx).process
        comp = cpu.Mmap(cpu_pb2.MmapRequest(pid=proc.pid, length=4096, writable=True, populate=True), ctx).address
        portal = cpu.OpenWorkQueue(cpu_pb2.OpenWorkQueueRequest(pid=proc.pid, device="dsa0", wq_id=0), ctx)
        tids = [proc.tids[0]]
        while len(tids) < per_process:
            tids.append(cpu.CreateThread(cpu_pb2.CreateThreadRequest(pid=proc.pid), ctx).thread.tid)
        # 32-byte records, 128 to the page: threads beyond that share one.
        threads += [(tid, portal.portal_address, noop_descriptor(comp + 32 * (i % 128))) for i, tid in enumerate(tids)]
    # One round in which every thread runs and submits: its first ENQCMD takes the #GP
    # fixup, and the per-thread and per-CPU state the run keeps (saved xstate, counters,
    # what the record holds of each) now exists, so what grows later is history.
    for k, (tid, portal_address, desc) in enumerate(threads):
        cpu.Schedule(cpu_pb2.ScheduleRequest(tid=tid, cpu=k % cpus), ctx)
        cpu.Enqcmd(cpu_pb2.EnqcmdRequest(tid=tid, portal_address=portal_address, raw=desc), ctx)
    setup_seconds = time.perf_counter() - t0
    rec.flush()
    for core in fabric.cores.values():
        core.durability = durability
    setup_events = rec.stats()["appended"]
    # The setup's own peak (its backlog of batch-acknowledged transitions) is not the run's.
    peak_reset = reset_peak()
    start = rss_kib()
    t0 = time.perf_counter()
    k = switches = enqcmds = retries = max_pending = 0
    target = setup_events + events
    while (stats := rec.stats())["appended"] < target:
        # What the recorder holds not yet committed: the one thing of the run's history a
        # process keeps (until it is written).
        max_pending = max(max_pending, stats["pending"])
        for _ in range(256):
            tid, portal_address, desc = threads[k % len(threads)]
            cpu.Schedule(cpu_pb2.ScheduleRequest(tid=tid, cpu=k % cpus), ctx)
            switches += 1
            if k % submit_every == 0:
                r = cpu.Enqcmd(cpu_pb2.EnqcmdRequest(tid=tid, portal_address=portal_address, raw=desc), ctx)
                enqcmds += 1
                retries += r.outcome != cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
            k += 1
    rec.flush()
    recorded = rec.stats()["appended"] - setup_events
    seconds = time.perf_counter() - t0
    rec.close()
    store.close()
    return {
        "start": start,
        # VmHWM lags the RSS a little (the kernel syncs per-thread counters lazily).
        "peak": max(peak_kib(), rss_kib()),
        "events": recorded,
        "setup_events": setup_events,
        "setup_seconds": setup_seconds,
        "seconds": seconds,
        "threads": len(threads),
        "switches": switches,
        "enqcmds": enqcmds,
        "retries": retries,
        "max_pending": max_pending,
        "peak_reset": peak_reset,
        "run": run.id,
    }


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
    parser.add_argument("--events", type=int, nargs="+", help="run lengths past the setup (default 10^4 10^5 10^6)")
    parser.add_argument("--cpus", type=int, default=CPUS)
    parser.add_argument("--processes", type=int, default=PROCESSES)
    parser.add_argument("--threads-per-process", type=int, default=THREADS_PER_PROCESS)
    parser.add_argument("--submit-every", type=int, default=4, help="every N-th switch is followed by an ENQCMD")
    parser.add_argument(
        "--durability",
        choices=("commit", "batch"),
        default="commit",
        help="commit: each request waits for its commit (the default); batch: acknowledged at once",
    )
    parser.add_argument("--child", nargs=7, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        n, db, cpus, procs, per, every, durability = args.child
        print(json.dumps(child(int(n), db, int(cpus), int(procs), int(per), int(every), durability)))
        return 0
    if min(args.cpus, args.processes, args.threads_per_process, args.submit_every) < 1:
        parser.error("sizes must be positive")
    lengths = args.events or ([10_000, 100_000] if args.quick else [10_000, 100_000, 1_000_000])
    sizes = [str(n) for n in (args.cpus, args.processes, args.threads_per_process, args.submit_every)]
    sizes.append(args.durability)
    print(
        f"scale: {args.cpus} CPUs, {args.processes * args.threads_per_process:,} threads in {args.processes} "
        f"processes, ENQCMD every {args.submit_every} switches, {args.durability} durability; peak RSS "
        "against run length (MiB; growth = peak - RSS after the setup)"
    )
    header = ("events", "setup ev", "setup s", "after setup", "peak", "growth", "events/s", "max pending")
    widths = (10, 9, 8, 11, 8, 8, 9, 11)
    print(" ".join(f"{h:>{w}}" for h, w in zip(header, widths, strict=True)))
    growths: list[float] = []
    with tempfile.TemporaryDirectory() as d:
        for n in lengths:
            db = Path(d) / f"scale-{n}.db"
            r = run_child([str(n), f"sqlite:///{db}", *sizes])
            growth = (r["peak"] - r["start"]) / 1024
            growths.append(growth)
            cells = (
                f"{r['events']:,}",
                f"{r['setup_events']:,}",
                f"{r['setup_seconds']:.1f}",
                f"{r['start'] / 1024:.1f}",
                f"{r['peak'] / 1024:.1f}",
                f"{growth:.1f}",
                f"{r['events'] / r['seconds']:,.0f}",
                f"{r['max_pending']:,}",
            )
            note = "" if r["peak_reset"] else "   (peak since start: /proc/self/clear_refs refused)"
            print(" ".join(f"{c:>{w}}" for c, w in zip(cells, widths, strict=True)) + note, flush=True)
            for path in db.parent.glob(db.name + "*"):
                path.unlink()
    if len(growths) > 1:
        print(f"growth of the longest run less that of the shortest: {growths[-1] - growths[0]:+.1f} MiB")
    return 0


if __name__ == "__main__":
    sys.exit(main())
