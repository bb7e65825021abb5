"""Figure 7 of benchmarks/run.py (the ceilings: what a served ENQCMD's parts allow), run
small: its figures come out, and its parts measure what they say (the transitions of a
real NOOP and MEMMOVE ENQCMD, committed behind an input, so many to a transaction)."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType

import pytest

from . import bench as bench_script


@pytest.fixture
def bench(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    return bench_script.load(monkeypatch)


def test_the_ceilings_are_printed_with_their_parts() -> None:
    out = bench_script.run("--only", "ceilings", "--repeats", "1", "--calls", "30")
    assert "ceiling parts (medians): echo round trip" in out
    for name in (
        "ceiling: ENQCMD NOOP round trips/s if a call cost only the echo, the model and one commit",
        "ceiling: MEMMOVE 4 KiB/s on a stream if it cost only the model and its rows",
        "ceiling: replay if re-executing an input cost only the model's ENQCMD",
    ):
        assert name in out
    assert out.count("ratio") == 3


def test_the_model_part_is_a_real_noop_and_a_real_memmove(bench: ModuleType) -> None:
    noop_rate, memmove_rate, noop, memmove = bench.model_requests(5)
    assert noop_rate > 0 and memmove_rate > 0
    # Each request is accepted, and the device completes the one before it: a MEMMOVE's
    # 4 KiB and its completion record reach memory, a NOOP's completion record alone.
    for request in (noop, memmove):
        assert {"enqcmd.accept", "wq.accept", "desc.complete"} <= {t.kind for t in request}

    def writes(request: list) -> list[int]:  # type: ignore[type-arg]
        return sorted(t.detail["length"] for t in request if t.kind == "dma.write")

    assert writes(noop) == [32] and writes(memmove) == [32, 4096]


def test_the_commit_part_writes_each_request_behind_an_input(bench: ModuleType, tmp_path: Path) -> None:
    from svasim.store import Store

    _, _, _, memmove = bench.model_requests(1)
    with Store.open(f"sqlite:///{tmp_path / 'c.db'}") as store:
        assert bench.commit_rate(store, memmove, 8, 4) > 0
        (run,) = store.list_runs()
        events = store.events(run.id, limit=None)
    assert [e.seq for e in events] == list(range(1, 8 * (1 + len(memmove)) + 1))
    assert [e.kind for e in events].count("input") == 8
    assert [e.kind for e in events[1 : 1 + len(memmove)]] == [t.kind for t in memmove]
