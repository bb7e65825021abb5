"""Workloads generated from a grid point, and the twin of a workload without a PASID.

A grid point is ``processes`` identical processes of ``threads`` threads, of which
``submitters`` use ENQCMD, on ``cpus`` CPUs, each thread keeping its CPU for
``slice_rounds`` rounds. The schedule is written out as explicit switch events (the
workload format's ``[[switch]]``) for two reasons the built-in round robin cannot serve:

- The device is bound late: each process's run queue order puts the threads that never
  submit first, so by the time the first submitter runs and opens the WQ (allocating the
  PASID) the process's other threads are on CPUs. That is the case the 2020 thread argued
  about: threads that already exist when the PASID appears (the IPI to ``mm_cpumask`` of
  the eager designs, the #GP of each thread of the lazy one).
- A ``random`` schedule draws each CPU's next thread from a seed (SplitMix64), so seeds
  give different interleavings of the same workload.

A thread with nothing waiting keeps its CPU (no switch), as ``schedule()`` would.
"""

from __future__ import annotations

import copy
import math
from typing import Any

from svasim.model.rng import SplitMix64
from svasim.sweep.definition import GridPoint

#: Upper bound of a workload's rounds (``Workload.from_dict`` refuses more).
MAX_ROUNDS = 1_000_000


def rounds(point: GridPoint) -> int:
    """Rounds that give each thread about ``slices_per_thread`` time slices."""
    total = point.threads * point.processes
    per_thread = point.slices_per_thread * point.slice_rounds
    return min(MAX_ROUNDS, max(per_thread, math.ceil(total * per_thread / point.cpus)))


def _queue(point: GridPoint) -> list[tuple[str, int]]:
    """Run queue order: per process, the threads that never submit, then the submitters,
    thread 0 (which opens the WQ when no thread submits) last of all."""
    k = point.submitters
    order = [i for i in range(max(k, 1), point.threads)] + list(range(1, k)) + [0]
    return [(f"app{p}", i) for p in range(point.processes) for i in order]


def schedule(point: GridPoint, seed: int = 0) -> list[dict[str, Any]]:
    """The switch events of a grid point: one per CPU per round that runs a thread."""
    queue = _queue(point)
    rng = SplitMix64(seed) if point.schedule == "random" else None
    # What each CPU runs (index into the thread list) and the rounds left of its slice.
    on_cpu: dict[int, tuple[int, int]] = {}
    threads = list(queue)
    order = list(range(len(threads)))
    events: list[dict[str, Any]] = []
    for rnd in range(rounds(point)):
        running = {held[0] for held in on_cpu.values()}
        for cpu in range(point.cpus):
            held = on_cpu.get(cpu)
            if held is not None and held[1] > 0:
                pick = held[0]
                on_cpu[cpu] = (pick, held[1] - 1)
            else:
                if rng is None:
                    first = next((ti for ti in order if ti not in running), None)
                    waiting = [] if first is None else [first]
                else:
                    waiting = [ti for ti in order if ti not in running]
                if not waiting:
                    if held is None:
                        continue
                    pick = held[0]  # nothing else to run: the thread keeps its CPU
                else:
                    pick = waiting[rng.below(len(waiting))] if rng else waiting[0]
                    order.remove(pick)
                    order.append(pick)
                    if held is not None:
                        running.discard(held[0])
                    running.add(pick)
                on_cpu[cpu] = (pick, point.slice_rounds - 1)
            proc, index = threads[pick]
            events.append({"round": rnd, "cpu": cpu, "process": proc, "thread": index})
    return events


def workload(point: GridPoint, seed: int = 0) -> dict[str, Any]:
    """The workload (as ``Workload.from_dict`` takes it) of a grid point."""
    return {
        "name": point.name,
        "description": f"generated: {point.as_dict()}",
        "cpus": point.cpus,
        "ticks": rounds(point),
        "process": [
            {
                "name": "app",
                "count": point.processes,
                "threads": point.threads,
                "open_wq": True,
                "submitters": point.submitters,
                "enqcmds_per_tick": point.enqcmds_per_tick,
            }
        ],
        "switch": schedule(point, seed),
    }


def without_pasid(data: dict[str, Any]) -> dict[str, Any]:
    """The same workload with no process opening the WQ: same threads, same schedule, no
    PASID. What a run costs above its twin is what PASID management costs."""
    twin = copy.deepcopy(data)
    for proc in twin.get("process", []):
        proc["open_wq"] = False
        proc["submitters"] = 0
    return twin
