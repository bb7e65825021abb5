#!/usr/bin/env python3
"""Resume time: a run of 10^6 events resumed from its latest snapshot, against
re-executing all its inputs; and the oracle's cost per event.

One run is recorded by the whole fabric in one process (model, servicers, recorder,
SQLite store), fed unary MEMMOVEs of 4 KiB as a client sends them. On that same run:

* ``re-execute``: what ``svasim up --run NAME`` does, every recorded input fed again to
  fresh cores, each transition checked against the record (:func:`svasim.recovery.resume`,
  reading the log included);
* ``fold, no snapshot``: what ``svasim serve --services iommu,accel --run NAME`` does on
  a run without snapshots: the fold of every event, the models set from it and checked
  (:func:`svasim.recovery.rebuild_by_fold`); folding stores the snapshots it passes, as
  the recording process's snapshot thread would have (:mod:`svasim.store.snapshots`);
* ``fold, from snapshot``: the same rebuild once the snapshots exist: the latest one and
  the events after it;
* ``re-execute, cpu member alone``: what ``svasim serve --services cpu,trace --run NAME``
  does (:func:`svasim.recovery.rebuild_cpu`): every input fed again to a scratch fabric
  whose peers must make the recorded transitions, and the kernel checked against the fold.

The ratio is re-execution time over the resume time from the snapshot. The oracle's cost
is that of ``tests/oracle``: after every input of a MEMMOVE workload, the record folded
onto the boot state and compared with the models' export, entity by entity; per event
folded, and as a ratio to the cost of executing the same inputs without it.

Usage: python benchmarks/resume.py [--quick] [--events N] [--every N]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(ROOT))


def record(db: str, events: int) -> tuple[str, int, int]:
    """A run of about ``events`` events of checked MEMMOVEs; (run id, events, inputs)."""
    from memory import InProcessClient
    from run import MemmoveLoop

    from svasim.config import ALL_SERVICES, FabricConfig
    from svasim.model.costs import CostTable
    from svasim.replay import Fabric
    from svasim.server import run_config
    from svasim.store import Recorder, Store

    with Store.open(db) as store:
        config = FabricConfig(services=ALL_SERVICES, db=db, durability="batch")
        costs = CostTable()
        run = store.create_run(
            name="resume-bench",
            config=run_config(config, costs),
            policy=config.policy,
            seed=config.seed,
            version=__import__("svasim").__version__,
        )
        rec = Recorder(store, run.id, durability="batch")
        fabric = Fabric(config, costs, rec, run.id)
        loop = MemmoveLoop(InProcessClient(fabric.servicers), slots=64)
        while rec.stats()["appended"] < events:
            for _ in range(256):
                loop.enqcmd_memmove()
        rec.close()
        info = store.get_run(run.id)
        inputs = len(store.events(run.id, kind="input", limit=None))
    return run.id, info.event_count, inputs


def reexecute(db: str, run_id: str) -> float:
    """Seconds to resume the run by re-executing it whole, as ``svasim up`` does."""
    from svasim import recovery
    from svasim.replay import Fabric, config_of
    from svasim.store import Store

    with Store.open(db) as store:
        t0 = time.perf_counter()
        run = store.get_run(run_id)
        events = store.events(run.id, limit=None)
        config, costs = config_of(run)
        checker = recovery.CheckingRecorder(run, events)
        fabric = Fabric(config, costs, checker, run.id)
        done = recovery.resume(fabric, store, run, events, checker)
        seconds = time.perf_counter() - t0
    if done.completed:
        raise SystemExit("re-execution made transitions past the record")
    return seconds


def member_rebuild(db: str, run_id: str, every: int) -> tuple[float, int]:
    """Seconds to rebuild the iommu and accel members by fold; and the snapshot used."""
    from svasim import recovery
    from svasim.config import FabricConfig
    from svasim.model.costs import CostTable
    from svasim.server import build_cores
    from svasim.store import Store

    members = ("iommu", "accel")
    with Store.open(db) as store:
        store.snapshot_every = every
        config = FabricConfig(port=0, db=db, services=members, peers={"cpu": "127.0.0.1:9"})
        cores, remote = build_cores(config, CostTable(), None)
        for p in remote:
            p.close()
        t0 = time.perf_counter()
        done = recovery.rebuild_by_fold(store, store.get_run(run_id), cores, members)
        seconds = time.perf_counter() - t0
    return seconds, done.snapshot_seq


def cpu_rebuild(db: str, run_id: str) -> float:
    """Seconds to rebuild the cpu member by re-execution against the record."""
    from svasim import recovery
    from svasim.config import FabricConfig
    from svasim.model.costs import CostTable
    from svasim.server import build_cores
    from svasim.store import Store

    with Store.open(db) as store:
        config = FabricConfig(port=0, db=db, services=("cpu",), peers={"iommu": "127.0.0.1:9", "accel": "127.0.0.1:9"})
        cores, remote = build_cores(config, CostTable(), None)
        for p in remote:
            p.close()
        t0 = time.perf_counter()
        done = recovery.rebuild_cpu(store, store.get_run(run_id), cores["cpu"])
        seconds = time.perf_counter() - t0
    if done.completed:
        raise SystemExit("the cpu's re-execution made transitions past the record")
    return seconds


def oracle_cost(iterations: int) -> tuple[float, float, int]:
    """(seconds of oracle checks per event, checked/unchecked time ratio, events) over
    ``iterations`` MEMMOVE submissions, one check after each input."""
    from memory import InProcessClient
    from run import MemmoveLoop

    from svasim.config import ALL_SERVICES, FabricConfig
    from svasim.model.costs import CostTable
    from svasim.replay import Fabric, MemoryRecorder
    from tests.oracle.oracle import Oracle

    def fabric() -> tuple[Any, MemoryRecorder, MemmoveLoop]:
        recorder = MemoryRecorder()
        fab = Fabric(FabricConfig(services=ALL_SERVICES, durability="batch"), CostTable(), recorder, "oracle")
        return fab, recorder, MemmoveLoop(InProcessClient(fab.servicers), slots=64)

    _, _, plain = fabric()
    t0 = time.perf_counter()
    for _ in range(iterations):
        plain.enqcmd_memmove()
    unchecked = time.perf_counter() - t0

    fab, recorder, loop = fabric()
    models = SimpleNamespace(
        kernel=fab.cores["cpu"].model, iommu=fab.cores["iommu"].model, accel=fab.cores["accel"].model
    )
    oracle = Oracle(models, recorder.transitions)
    oracle.sync()
    start = len(recorder.transitions)
    checking = 0.0
    t0 = time.perf_counter()
    for i in range(iterations):
        loop.enqcmd_memmove()
        c0 = time.perf_counter()
        found = oracle.check(f"submission {i}")
        checking += time.perf_counter() - c0
        if found:
            raise SystemExit(next(iter(found.values())).describe())
    checked = time.perf_counter() - t0
    events = len(recorder.transitions) - start
    return checking / max(1, events), checked / unchecked, events


def main() -> int:
    """Measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a run of 20,000 events (CI size)")
    parser.add_argument("--events", type=int, help="run length (default 10^6, --quick 2*10^4)")
    parser.add_argument("--every", type=int, default=10_000, help="events between snapshots (default 10,000)")
    args = parser.parse_args()
    events = args.events or (20_000 if args.quick else 1_000_000)
    every = min(args.every, max(1, events // 4))
    with tempfile.TemporaryDirectory() as d:
        db = f"sqlite:///{Path(d) / 'resume.db'}"
        t0 = time.perf_counter()
        run_id, recorded, inputs = record(db, events)
        took = time.perf_counter() - t0
        print(f"recorded {recorded:,} events ({inputs:,} inputs) in {took:.1f} s; snapshots every {every:,}")
        scratch, _ = member_rebuild(db, run_id, every)
        snap, at = member_rebuild(db, run_id, every)
        full = reexecute(db, run_id)
        cpu = cpu_rebuild(db, run_id)
    print(f"{'resume':<34} {'seconds':>9} {'events/s':>12}")
    print(f"{'re-execute every input (up)':<34} {full:>9.2f} {recorded / full:>12,.0f}")
    print(f"{'re-execute, cpu member alone':<34} {cpu:>9.2f} {recorded / cpu:>12,.0f}")
    print(f"{'fold, no snapshot (iommu+accel)':<34} {scratch:>9.2f} {recorded / scratch:>12,.0f}")
    print(f"{f'fold, from snapshot at {at:,}':<34} {snap:>9.3f} {recorded / snap:>12,.0f}")
    print(f"ratio re-execution / resume from snapshot: {full / snap:,.0f}x (same run of {recorded:,} events)")
    per_event, slowdown, checked = oracle_cost(200 if args.quick else 2000)
    print(
        f"oracle (fold == export after every input): {per_event * 1e6:.1f} us per event over {checked:,} events; "
        f"{slowdown:.1f}x the time of the same inputs unchecked"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
