"""Golden runs, stored with the tests, must replay to exactly what they recorded.

Regenerate them with ``python scripts/make_golden.py`` when a change of behaviour is
intended (the failure message shows the first difference to judge that by).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from svasim.exchange import import_jsonl
from svasim.replay import verify
from svasim.store import Store

GOLDEN = Path(__file__).resolve().parent / "golden"
RUNS = sorted(p for p in GOLDEN.glob("demo-*.jsonl"))


def load(path: Path, tmp_path: Path) -> tuple[Store, str]:
    store = Store.open(f"sqlite:///{tmp_path / 'golden.db'}")
    with path.open() as f:
        run = import_jsonl(store, f)
    return store, run.id


def test_there_are_golden_runs_for_several_policies():
    assert len(RUNS) >= 3


@pytest.mark.parametrize("path", RUNS, ids=[p.stem for p in RUNS])
def test_golden_run_replays_exactly(path, tmp_path):
    store, run_id = load(path, tmp_path)
    report = verify(store, run_id)
    assert report.ok, (
        f"{path.name}: {report.difference.describe()}\n(regenerate with scripts/make_golden.py if intended)"
    )
    assert report.inputs > 30


def test_the_deliberately_nondeterministic_run_is_rejected_where_it_was_changed(tmp_path):
    store, run_id = load(GOLDEN / "nondeterministic.jsonl", tmp_path)
    report = verify(store, run_id)
    assert not report.ok
    d = report.difference
    assert d.recorded["kind"] == "msr.pasid.write" and d.fields == ["after"]
    assert d.input_method == "cpu.Enqcmd"
