"""A client can match its requests to the record: a request id goes into the input event,
and every state-changing reply names the seq of its input."""

from __future__ import annotations

import json

import grpc
import pytest

from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import error_info

from .fabric_fixtures import running_fabric

RID = "svasim-request-id"
SEQ = "svasim-input-seq"


@pytest.fixture(params=["inprocess-commit", "grpc-commit", "inprocess-batch"])
def fab(request, tmp_path):
    wiring, durability = request.param.split("-")
    with running_fabric(wiring, f"sqlite:///{tmp_path / 'svasim.db'}", durability=durability) as f:
        yield f


def inputs_by_seq(fab) -> dict[int, dict]:
    fab.trace.flush()
    return {e.seq: json.loads(e.after_json) for e in fab.trace.events(fab.run_id, kind_prefix="input")}


def test_a_named_request_is_recorded_with_its_id_and_answered_with_its_input_seq(fab):
    stub = fab.cpu.cpu
    reply, call = stub.CreateProcess.with_call(
        cpu_pb2.CreateProcessRequest(name="app"), metadata=((RID, "job-7/step 1"),), timeout=10
    )
    seq = int(dict(call.trailing_metadata())[SEQ])
    inp = inputs_by_seq(fab)[seq]
    assert inp["method"] == "cpu.CreateProcess" and inp["request_id"] == "job-7/step 1"
    assert inp["request"] == {"name": "app"}
    # What the request did comes after its input and is caused by it.
    fab.trace.flush()
    caused = [e for e in fab.trace.events(fab.run_id) if e.cause == seq]
    assert [e.entity for e in caused] == [f"process/{reply.process.pid}"]


def test_a_refused_request_still_names_its_input(fab):
    with pytest.raises(grpc.RpcError) as e:
        fab.cpu.cpu.Mmap(cpu_pb2.MmapRequest(pid=999, length=4096), metadata=((RID, "bad-mmap"),), timeout=10)
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    assert error_info(e.value).reason == "UNKNOWN_PROCESS"
    seq = int(dict(e.value.trailing_metadata())[SEQ])
    assert inputs_by_seq(fab)[seq]["request_id"] == "bad-mmap"
    rejected = [x for x in fab.trace.events(fab.run_id, kind_prefix="request.rejected") if x.cause == seq]
    assert len(rejected) == 1


def test_successive_requests_get_increasing_input_seqs(fab):
    seqs = []
    for i in range(3):
        _, call = fab.cpu.cpu.CreateProcess.with_call(
            cpu_pb2.CreateProcessRequest(name=f"p{i}"), metadata=((RID, f"r{i}"),), timeout=10
        )
        seqs.append(int(dict(call.trailing_metadata())[SEQ]))
    assert seqs == sorted(seqs) and len(set(seqs)) == 3
    recorded = inputs_by_seq(fab)
    assert [recorded[s]["request_id"] for s in seqs] == ["r0", "r1", "r2"]


def test_a_request_id_too_long_is_invalid_argument_and_records_nothing(fab):
    fab.trace.flush()
    before = len(fab.trace.events(fab.run_id))
    with pytest.raises(grpc.RpcError) as e:
        fab.cpu.cpu.CreateProcess(cpu_pb2.CreateProcessRequest(name="x"), metadata=((RID, "x" * 129),), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(e.value).reason == "BAD_REQUEST_ID"
    fab.trace.flush()
    assert len(fab.trace.events(fab.run_id)) == before


def test_an_unnamed_request_is_answered_with_its_input_seq_when_it_is_committed(fab):
    _, call = fab.cpu.cpu.CreateProcess.with_call(cpu_pb2.CreateProcessRequest(name="anon"), timeout=10)
    got = dict(call.trailing_metadata()).get(SEQ)
    if fab.servers[0].config.durability == "batch":
        # Not committed yet when answered, so it has no seq; naming the request asks for one.
        assert got is None
    else:
        assert inputs_by_seq(fab)[int(got)]["request"] == {"name": "anon"}


def test_reads_carry_no_input_seq(fab):
    _, call = fab.cpu.cpu.GetFabric.with_call(cpu_pb2.GetFabricRequest(), metadata=((RID, "look"),), timeout=10)
    assert SEQ not in dict(call.trailing_metadata())


def test_a_run_whose_requests_were_named_replays_exactly(fab):
    from svasim.replay import verify
    from svasim.store import Store

    c = fab.cpu
    p = c.cpu.CreateProcess(cpu_pb2.CreateProcessRequest(name="app"), metadata=((RID, "a"),), timeout=10).process
    c.cpu.Mmap(cpu_pb2.MmapRequest(pid=p.pid, length=8192, populate=True), metadata=((RID, "b"),), timeout=10)
    with pytest.raises(grpc.RpcError):
        c.cpu.Mmap(cpu_pb2.MmapRequest(pid=999, length=4096), metadata=((RID, "c"),), timeout=10)
    c.create_process("unnamed")
    c.flush()
    store = Store.open(fab.db)
    try:
        report = verify(store, fab.run_id)
    finally:
        store.close()
    assert report.ok, report.difference.describe()
    assert report.inputs == 4
