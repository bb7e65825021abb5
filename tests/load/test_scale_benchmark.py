"""The scale benchmark's workload (benchmarks/scale.py), at a small size: many threads
of many processes switched on every CPU in turn, with ENQCMDs; what it records is a run
like any other, which replays to the same transitions."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from types import ModuleType

from svasim.replay import verify
from svasim.store import Store

SCALE = Path(__file__).resolve().parents[2] / "benchmarks" / "scale.py"


def _scale() -> ModuleType:
    spec = importlib.util.spec_from_file_location("svasim_bench_scale", SCALE)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_scale_workload_switches_every_thread_and_its_run_replays(tmp_path):
    db = f"sqlite:///{tmp_path / 'scale.db'}"
    r = _scale().child(3000, db, 4, 3, 5, 2)
    assert r["threads"] == 15
    assert r["events"] >= 3000
    assert r["switches"] > r["threads"] and r["enqcmds"] > 0
    # Not peak >= start: the kernel updates VmHWM from per-thread RSS counters lazily.
    assert r["peak"] > 0 and r["start"] > 0
    with Store.open(db) as store:
        report = verify(store, r["run"])
    assert report.ok, report.difference.describe() if report.difference else ""
    assert report.events == r["setup_events"] + r["events"]
