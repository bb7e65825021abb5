"""Replay by re-execution: a recorded run replays to the same transitions; a changed
record is rejected at its first difference; what-if replays are new linked runs."""

from __future__ import annotations

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.replay import verify, verify_events, what_if
from svasim.server import create_server
from svasim.store import Store
from svasim_client import Client, SvasimError
from svasim_client.demo import run_demo

from .services.fabric_fixtures import running_fabric


def record(db: str, wiring: str = "inprocess") -> str:
    with running_fabric(wiring, db) as fab:
        res = run_demo(fab.cpu, threads=2, per_thread=2, size=4096, burst=12)
        assert res.ok()
        # A refused request and a close/fork belong to the run too.
        with pytest.raises(SvasimError):
            fab.cpu.mmap(999, 4096)
        p = fab.cpu.create_process("late")
        fab.cpu.fork(p.tids[0])
        fab.trace.flush()
        return fab.run_id


@pytest.mark.parametrize("wiring", ["inprocess", "grpc"])
def test_a_recorded_run_replays_to_identical_transitions(tmp_path, wiring):
    db = f"sqlite:///{tmp_path / 'rec.db'}"
    run_id = record(db, wiring)
    report = verify(Store.open(db), run_id)
    assert report.ok, report.difference.describe()
    assert report.inputs > 50 and report.events > 200


def test_a_run_on_postgres_replays(pg_url):
    run_id = record(pg_url)
    assert verify(Store.open(pg_url), run_id).ok


def test_a_tampered_record_is_rejected_with_both_sides_and_the_input(tmp_path):
    db = f"sqlite:///{tmp_path / 'rec.db'}"
    run_id = record(db)
    store = Store.open(db)
    run = store.get_run(run_id)
    events = store.events(run_id, limit=None)
    i = next(i for i, e in enumerate(events) if e.kind == "msr.pasid.write")
    from dataclasses import replace

    events[i] = replace(events[i], after={"ia32_pasid": 0x80000007})
    report = verify_events(run, events)
    assert not report.ok
    d = report.difference
    assert d.seq == events[i].seq and d.fields == ["after"]
    assert d.recorded["after"] == {"ia32_pasid": 0x80000007}
    assert d.replayed["after"]["ia32_pasid"] != 0x80000007
    assert d.input_method == "cpu.Enqcmd" and d.input_seq < d.seq
    assert "departs from the record at seq" in d.describe()


def test_a_truncated_record_is_rejected(tmp_path):
    db = f"sqlite:///{tmp_path / 'rec.db'}"
    run_id = record(db)
    store = Store.open(db)
    events = store.events(run_id, limit=None)
    report = verify_events(store.get_run(run_id), events[:-3])
    assert not report.ok and report.difference.recorded is None


def test_what_if_replays_under_another_policy_as_a_linked_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'rec.db'}"
    run_id = record(db)
    store = Store.open(db)
    outcome = what_if(store, run_id, policy="eager-switch-mm", name="eager")
    new = outcome.run
    assert outcome.refused == 0  # the same inputs are all accepted under another policy
    assert new.parent_run_id == run_id and new.policy == "eager-switch-mm" and new.name == "eager"
    kinds_old = [e.kind for e in store.events(run_id, kind="trap.gp", limit=None)]
    kinds_new = [e.kind for e in store.events(new.id, kind="trap.gp", limit=None)]
    assert len(kinds_new) < len(kinds_old)  # eager loading: only the rogue process faults
    assert store.events(new.id, kind="xstate.pasid.write", limit=None)  # written in switch_mm
    # The what-if run is itself a faithful record of its own re-execution.
    assert verify(store, new.id).ok


def test_replay_of_a_split_fabric_run_works_in_one_process(tmp_path):
    db = f"sqlite:///{tmp_path / 'split.db'}"
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db))
    try:
        with Client(srv.address) as c:
            run_demo(c, threads=1, per_thread=1, size=64, burst=2)
    finally:
        srv.stop(0)
    assert verify(Store.open(db), srv.run_id).ok


def _golden_inputs():
    import json
    from pathlib import Path

    for path in sorted((Path(__file__).parent / "golden").glob("*.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            event = record.get("event") or record
            if event.get("kind") == "input":
                yield event["after"]


def test_recorded_requests_decode_directly_exactly_as_parse_dict_decodes_them():
    from google.protobuf.json_format import ParseDict

    from svasim.replay import REQUESTS, decode_request

    direct = 0
    for after in _golden_inputs():
        _, cls = REQUESTS[after["method"]]
        msg = decode_request(cls, after["request"])
        if msg is not None:
            direct += 1
            assert msg == ParseDict(after["request"], cls()), after
    assert direct > 50  # the direct path is the common one


def test_a_request_the_direct_path_cannot_decode_is_left_to_parse_dict():
    from svasim.replay import REQUESTS, decode_request

    _, cls = REQUESTS["cpu.Enqcmd"]
    assert decode_request(cls, {"tid": "1", "raw": "not base64!"}) is None
    assert decode_request(cls, {"tid": 1.5}) is None
    assert decode_request(cls, {"no_such_field": 1}) is None
    assert decode_request(cls, {"tid": True}) is None
    assert decode_request(cls, {"tid": "7", "portal_address": "18446744073709551615"}) == cls(
        tid=7, portal_address=2**64 - 1
    )
