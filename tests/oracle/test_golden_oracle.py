"""The golden runs re-executed input by input: after each one, the fold of what the
fabric recorded equals the state the fabric exports, part by part."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import pytest

from svasim.model.transition import INPUT_KIND
from svasim.replay import Fabric, MemoryRecorder, config_of

from .oracle import PARTS, Oracle

GOLDEN = Path(__file__).resolve().parent.parent / "golden"
RUNS = sorted(GOLDEN.glob("demo-*.jsonl"))


def replay_with_oracle(path: Path, part: str) -> int:
    """Feed the run's inputs one at a time; assert the part holds after each. Returns
    how many inputs were checked."""
    lines = path.read_text().splitlines()
    run = json.loads(lines[0])["run"]
    config, costs = config_of(SimpleNamespace(**run))
    recorder = MemoryRecorder()
    fabric = Fabric(config, costs, recorder, run["id"])
    models = SimpleNamespace(
        kernel=fabric.cores["cpu"].model, iommu=fabric.cores["iommu"].model, accel=fabric.cores["accel"].model
    )
    oracle = Oracle(models, recorder.transitions)
    checked = 0
    for line in lines[1:]:
        event = json.loads(line)
        if event["kind"] != INPUT_KIND:
            continue
        after = event["after"]
        fabric.feed(after["method"], after.get("request") or {}, after.get("request_id"))
        found = oracle.check(f"input {event['seq']} ({after['method']}) of {path.name}", [part])
        assert not found, found[part].describe()
        checked += 1
    return checked


def _cases() -> list:
    return [pytest.param(path, part, id=f"{path.stem}-{part}") for path in RUNS for part in PARTS]


@pytest.mark.parametrize(("path", "part"), _cases())
def test_fold_of_the_golden_run_equals_the_model_after_every_input(path, part):
    assert replay_with_oracle(path, part) > 30


def test_the_oracle_names_a_change_no_transition_recorded():
    from svasim.model.fabric import ModelFabric

    transitions: list = []
    fab = ModelFabric(ncpus=2, sink=transitions.append)
    oracle = Oracle(fab, transitions)
    proc = fab.kernel.create_process(fab.journal(), "app")
    assert not oracle.check("create_process", ["kernel"])
    fab.kernel.cpus[1].pkru = 0xC  # a register write behind the record's back
    fab.kernel.processes[proc.pid].aspace.mmap_top -= 4096
    found = oracle.check("the unrecorded writes", ["kernel"])
    m = found["kernel"]
    assert (m.entity, m.field, m.folded, m.model) == ("cpu/1", "pkru", 0x55555554, 0xC)
    assert "cpu/1.pkru" in m.describe() and "folded: 1431655764" in m.describe()
