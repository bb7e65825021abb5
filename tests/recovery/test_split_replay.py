"""``svasim replay`` of a split fabric's run whose members were killed and restarted.

The failures one member's kill caused its peers are not the model's: they came from
outside, so the record is their truth. Re-execution (svasim.recovery.verify_split) fails
each call where the record shows it failing and sets a restarted member from the fold of
the record, as the member itself was set; everything else must come out again exactly.
These tests record one such run (a workload of checked MEMMOVEs, the accel killed with
SIGKILL in the middle of it and restarted, then the iommu) and then change the record in
the ways a wrong model or a damaged store would, each of which replay must report.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path

import pytest

from svasim import recovery, replay
from svasim.store import Store

from .procs import run_to_end
from .split import SplitFabric
from .workload import MemmoveWorkload

RUN = "split-replay"


@pytest.fixture(scope="module")
def recorded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A SQLite file holding one split run: 16 checked copies, the accel killed after the
    5th and the iommu after the 10th, each restarted on the run."""
    tmp = tmp_path_factory.mktemp("split-replay")
    db = tmp / "svasim.db"
    fabric = SplitFabric(f"sqlite:///{db}", RUN, tmp).start_all()
    w = MemmoveWorkload(fabric.address("cpu"), 16, timeout=10)
    worker = threading.Thread(target=w.run, kwargs={"new_process_every": 4, "deadline": 90})
    worker.start()
    try:
        for point, victim in ((5, "accel"), (10, "iommu")):
            end = time.monotonic() + 60
            while w.tally.done < point and worker.is_alive():
                assert time.monotonic() < end, f"workload stuck at {w.tally.done}"
                time.sleep(0.002)
            fabric.procs[victim].kill()
            fabric.start(victim)
        worker.join(90)
    finally:
        w.stop.set()
        worker.join(30)
        w.close()
        fabric.stop()
    assert w.tally.done == 16 and not w.tally.wrong, w.tally
    return db


@pytest.fixture
def copy(recorded: Path, tmp_path: Path) -> Path:
    """A copy of the recorded database, for a test to change."""
    out = tmp_path / "copy.db"
    with sqlite3.connect(recorded) as src, sqlite3.connect(out) as dst:
        src.backup(dst)
    return out


def _verify(db: Path) -> replay.ReplayReport:
    with Store.open(f"sqlite:///{db}") as s:
        return replay.verify(s, RUN)


def _one(db: Path, sql: str) -> tuple[int, ...]:
    with sqlite3.connect(db) as conn:
        row = conn.execute(sql).fetchone()
    assert row is not None, sql
    return tuple(row)


def _exec(db: Path, sql: str, *args: object) -> None:
    with sqlite3.connect(db) as conn:
        assert conn.execute(sql, args).rowcount == 1


def test_a_split_run_with_killed_members_replays_identically(recorded: Path) -> None:
    with Store.open(f"sqlite:///{recorded}") as s:
        events = s.events(s.get_run(RUN).id, limit=None)
        assert recovery.is_split_run(events)
        report = replay.verify(s, RUN)
        assert report.ok, report.difference.describe() if report.difference else ""
        assert report.restarts == 2
        # The peers did fail the cpu while down: those refusals are in the record.
        assert any(recovery._peer_failed(e) for e in events)
        assert recovery.verify_run(s, RUN) is None


def test_svasim_replay_of_it_says_so(recorded: Path) -> None:
    out = run_to_end(["replay", RUN, "--db", f"sqlite:///{recorded}"])
    assert out.returncode == 0, out.stdout + out.stderr
    text = " ".join(out.stdout.split())
    assert "split fabric: 2 member restarts" in text
    assert "deterministic" in text


def test_a_changed_peer_result_is_reported_where_it_is(copy: Path) -> None:
    """A completion status the device model would not write (DSA spec 5.8.1: MEMMOVE of
    mapped buffers completes with Success, 0x01)."""
    (seq,) = _one(copy, "SELECT max(seq) FROM events WHERE service = 'accel' AND kind = 'desc.complete'")
    _exec(copy, "UPDATE events SET after = json_set(after, '$.status', 5) WHERE seq = ?", seq)
    report = _verify(copy)
    assert not report.ok
    assert report.difference is not None
    assert report.difference.seq == seq
    assert report.difference.fields == ["after"]
    out = run_to_end(["replay", RUN, "--db", f"sqlite:///{copy}"])
    assert out.returncode == 4, out.stdout + out.stderr
    assert f"seq {seq}" in " ".join(out.stdout.split())
    assert "Traceback" not in out.stderr


def test_a_peer_transition_missing_from_the_record_is_reported(copy: Path) -> None:
    (seq,) = _one(copy, "SELECT max(seq) FROM events WHERE service = 'iommu' AND kind = 'iotlb.fill'")
    _exec(copy, "UPDATE events SET kind = 'iotlb.filled' WHERE seq = ?", seq)
    report = _verify(copy)
    assert not report.ok and report.difference is not None
    assert report.difference.seq == seq


def test_a_failure_the_record_does_not_show_is_not_invented(copy: Path) -> None:
    """A client request refused because a peer was down, recorded as refused by the model
    itself: re-execution fails calls only where the record shows a peer failing them (the
    reason and code of the refusal say so), so it makes the call and departs."""
    (seq,) = _one(
        copy,
        "SELECT min(seq) FROM events WHERE kind = 'request.rejected' "
        "AND json_extract(detail, '$.reason') = 'PEER_UNAVAILABLE'",
    )
    _exec(
        copy,
        "UPDATE events SET detail = json_set(detail, '$.reason', 'WQ_FULL', '$.code', 'RESOURCE_EXHAUSTED') "
        "WHERE seq = ?",
        seq,
    )
    report = _verify(copy)
    assert not report.ok and report.difference is not None
    assert report.difference.seq <= seq
