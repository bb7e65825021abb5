"""The trace service: paging, time travel, following a live run, deleting runs."""

from __future__ import annotations

import base64
import json
import threading

import grpc
import pytest

from svasim_api.errors import error_info
from svasim_api.trace.v1 import trace_pb2
from svasim_client import Client, SvasimError

from .fabric_fixtures import running_fabric


@pytest.fixture
def fab(tmp_path):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        yield f


def test_list_events_pages_with_tokens_bound_to_their_filters(fab):
    c = fab.cpu
    p = c.create_process("a")
    for _ in range(5):
        c.mmap(p.pid, 4096, populate=True)
    c.flush()
    r1 = c.trace.ListEvents(trace_pb2.ListEventsRequest(run=fab.run_id, page_size=4))
    assert [e.seq for e in r1.events] == [1, 2, 3, 4] and r1.next_page_token
    r2 = c.trace.ListEvents(trace_pb2.ListEventsRequest(run=fab.run_id, page_size=4, page_token=r1.next_page_token))
    assert [e.seq for e in r2.events] == [5, 6, 7, 8]
    with pytest.raises(grpc.RpcError) as e:
        c.trace.ListEvents(
            trace_pb2.ListEventsRequest(run=fab.run_id, page_size=4, kind_prefix="pte", page_token=r1.next_page_token)
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    everything = c.events(fab.run_id)
    assert [e.seq for e in everything] == list(range(1, len(everything) + 1))
    vmas = c.events(fab.run_id, kind_prefix="vma.")
    assert len(vmas) == 5 and all(json.loads(e.after_json)["kind"] == "anon" for e in vmas)


def test_follow_streams_events_of_a_live_run_as_they_are_committed(fab):
    c = fab.cpu
    got = []
    done = threading.Event()

    def follow():
        for e in c.follow(fab.run_id, from_seq=1, timeout=10):
            got.append(e)
            if e.kind == "process.create" and json.loads(e.after_json)["name"] == "last":
                done.set()
                return

    t = threading.Thread(target=follow)
    t.start()
    c.create_process("first")
    c.create_process("last")
    assert done.wait(10)
    t.join(10)
    seqs = [e.seq for e in got]
    assert seqs == list(range(1, len(seqs) + 1))
    assert {e.kind for e in got} >= {"input", "process.create", "thread.create"}


def test_unknown_runs_and_bad_page_sizes_are_clear_errors(fab):
    with pytest.raises(SvasimError) as e:
        fab.cpu.events("nosuchrun")
    assert e.value.code == grpc.StatusCode.NOT_FOUND and e.value.reason == "UNKNOWN_RUN"
    with pytest.raises(grpc.RpcError) as e2:
        fab.cpu.trace.ListEvents(trace_pb2.ListEventsRequest(run=fab.run_id, page_size=5000))
    assert e2.value.code() == grpc.StatusCode.INVALID_ARGUMENT


def test_delete_run_removes_it_and_its_events_but_not_the_live_run(fab):
    from svasim.model.transition import Transition
    from svasim.store import Store

    store = Store.open(fab.db)
    old = store.create_run(name="old", config={}, policy="linux-5.18", seed=0, version="t")
    store.append(old.id, [Transition("cpu", "x/1", "x.set", None, {"v": 1})])
    # Deleting changes the record: an act of the peer (admin) listener, not of clients.
    with pytest.raises(SvasimError) as e:
        fab.cpu.delete_run("old")
    assert e.value.code == grpc.StatusCode.UNIMPLEMENTED
    admin = Client(fab.peer_addresses["cpu"])
    try:
        assert admin.delete_run("old") == 1
        assert "old" not in [r.name for r in fab.cpu.runs()]
        with pytest.raises(SvasimError) as e:
            admin.delete_run(fab.run_id)
        assert e.value.reason == "RUN_IS_LIVE"
    finally:
        admin.close()


def _reason(e: grpc.RpcError) -> str:
    info = error_info(e)
    assert info is not None, "the refusal carries no ErrorInfo"
    return info.reason


@pytest.mark.parametrize(
    "fields",
    [{"from_seq": 2**63}, {"to_seq": 2**63}, {"from_seq": 2**64 - 1}, {"to_seq": 2**64 - 1}],
    ids=["from-2^63", "to-2^63", "from-max", "to-max"],
)
def test_list_events_with_a_seq_no_event_can_have_is_invalid_argument(fab, fields):
    with pytest.raises(grpc.RpcError) as e:
        fab.cpu.trace.ListEvents(trace_pb2.ListEventsRequest(run=fab.run_id, **fields), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(e.value) == "SEQ_OUT_OF_RANGE"


def test_a_page_token_carrying_a_seq_beyond_2_63_is_invalid_argument(fab):
    c = fab.cpu
    p = c.create_process("a")
    for _ in range(3):
        c.mmap(p.pid, 4096)
    c.flush()
    token = c.trace.ListEvents(trace_pb2.ListEventsRequest(run=fab.run_id, page_size=2)).next_page_token
    assert token
    # Forge the token's position (its encoding is base64 JSON) and keep its filter binding.
    data = json.loads(base64.urlsafe_b64decode(token))
    data["a"] = 2**63
    forged = base64.urlsafe_b64encode(json.dumps(data).encode()).decode()
    with pytest.raises(grpc.RpcError) as e:
        c.trace.ListEvents(trace_pb2.ListEventsRequest(run=fab.run_id, page_size=2, page_token=forged), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(e.value) == "BAD_PAGE_TOKEN"


def test_follow_from_a_seq_beyond_2_63_is_invalid_argument(fab):
    with pytest.raises(grpc.RpcError) as e:
        for _ in fab.cpu.trace.FollowEvents(trace_pb2.FollowEventsRequest(run=fab.run_id, from_seq=2**63), timeout=5):
            pass
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert _reason(e.value) == "SEQ_OUT_OF_RANGE"


def test_get_state_without_at_seq_is_the_state_after_the_last_event(fab):
    c = fab.cpu
    p = c.create_process("a")
    c.mmap(p.pid, 8192, populate=True)
    c.flush()
    last = c.events(fab.run_id)[-1].seq
    now = c.trace.GetState(trace_pb2.GetStateRequest(run=fab.run_id), timeout=10)
    at_last = c.trace.GetState(trace_pb2.GetStateRequest(run=fab.run_id, at_seq=last), timeout=10)
    assert now.at_seq == last
    assert list(now.entities) == list(at_last.entities) and len(now.entities) > 0
    with pytest.raises(grpc.RpcError) as e:
        c.trace.GetState(trace_pb2.GetStateRequest(run=fab.run_id, at_seq=last + 10**6), timeout=10)
    assert e.value.code() == grpc.StatusCode.OUT_OF_RANGE and _reason(e.value) == "SEQ_PAST_END"
    with pytest.raises(grpc.RpcError) as e:
        c.trace.GetState(trace_pb2.GetStateRequest(run=fab.run_id, at_seq=2**63), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT and _reason(e.value) == "SEQ_OUT_OF_RANGE"
