#!/usr/bin/env python3
"""Sweep throughput on Dask distributed: runs per second with 2 workers against 1 worker.

The same sweep (generated workloads x the five policies, each run recorded in a SQLite
store) runs on a LocalCluster of one worker process and then of two; cluster start-up and
the workers' first import are left out of the timing. The figure is the ratio of the two
rates, measured in the same run (2.0 would be perfect scaling on a machine with 2 CPUs).

Usage: python benchmarks/sweep_bench.py [--quick] [--repeats N]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path


def definition(quick: bool) -> dict:
    """A sweep of generated workloads: every combination of the axes, all five policies."""
    return {
        "name": "bench",
        "policies": "all",
        "grid": {
            "design": "cross",
            "threads": [16, 64] if quick else [16, 64, 128],
            "submit_fraction": [0.25, 1.0],
            "cpus": [4, 8],
            "slice_rounds": [1],
            "slices_per_thread": 2 if quick else 4,
        },
    }


def rate(workers: int, defn: object, tmp: Path, repeats: int) -> tuple[float, int]:
    """Median runs per second of ``defn`` on a LocalCluster of ``workers`` processes."""
    from svasim.store import Store
    from svasim.sweep import dask_client, run, tasks

    n = len(tasks(defn))
    rates = []
    with dask_client(workers=workers) as client:
        # Every worker imports the model before the clock starts.
        client.run(lambda: __import__("svasim.sweep.runner").sweep.runner.tasks)
        for i in range(repeats):
            store = Store.open(f"sqlite:///{tmp / f'w{workers}-{i}.db'}")
            try:
                t0 = time.perf_counter()
                run(defn, client, store=store, sweep=f"bench{i}")
                rates.append(n / (time.perf_counter() - t0))
            finally:
                store.close()
    return statistics.median(rates), n


def main() -> int:
    """Measure and print the figure."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CI-sized sweep")
    parser.add_argument("--repeats", type=int, default=3, help="measurements per worker count (median printed)")
    args = parser.parse_args()
    from svasim.sweep import parse

    defn = parse(definition(args.quick))
    cpus = len(os.sched_getaffinity(0))
    with tempfile.TemporaryDirectory() as d:
        one, n = rate(1, defn, Path(d), args.repeats)
        two, _ = rate(2, defn, Path(d), args.repeats)
    print(f"sweep throughput ({n} runs, each recorded; {cpus} CPUs; median of {args.repeats}):")
    print(f"  1 worker   {one:7.1f} runs/s (baseline)")
    print(f"  2 workers  {two:7.1f} runs/s  = {two / one:.2f}x the 1-worker rate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
