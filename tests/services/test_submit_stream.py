"""CpuService.Submit: pipelined ENQCMD/MOVDIR64B/ENQCMDS over one bidirectional stream.

What is pinned here: results come back in order with their tags; each submission is
recorded as the input its unary call records, so the run is the run the unary calls make
and replays identically; a refused submission gets its own rich error, changes nothing,
and the stream goes on; with ``commit`` durability a result is sent only once its
transitions are committed, and a group of submissions shares its commits; the server
stops reading a stream whose window is full (backpressure).
"""

from __future__ import annotations

import itertools
import threading
import time

import grpc
import pytest

from svasim.model.transition import INPUT_KIND
from svasim.replay import verify
from svasim.rpc import submit
from svasim.store import Store
from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import (
    SvasimError,
    enqcmd_submission,
    enqcmds_submission,
    memmove_descriptor,
    movdir64b_submission,
    noop_descriptor,
    submission_error,
)

from .fabric_fixtures import running_fabric

SIZE = 4096
SLOTS = 16


@pytest.fixture(
    params=["inprocess", "grpc", pytest.param("inprocess-postgres", marks=pytest.mark.postgres)],
)
def fab(request, tmp_path):
    """The fabric in one process and split over gRPC (SQLite), and in one process on PostgreSQL."""
    wiring, _, backend = request.param.partition("-")
    db = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'svasim.db'}"
    with running_fabric(wiring, db) as f:
        yield f


class App:
    """A process with a source buffer, a ring of destinations and completion records, an
    open shared WQ, and its first thread running on CPU 0."""

    def __init__(self, c):
        self.c = c
        proc = c.create_process("app")
        self.pid, self.tid = proc.pid, proc.tids[0]
        self.src = c.mmap(self.pid, SIZE, populate=True)
        self.dst = c.mmap(self.pid, SIZE * SLOTS, populate=True)
        self.comp = c.mmap(self.pid, 32 * SLOTS, populate=True)
        self.pattern = bytes((i * 13 + 5) & 0xFF for i in range(SIZE))
        c.write(self.pid, self.src, self.pattern)
        self.wq = c.open_wq(self.pid)
        c.schedule(self.tid, 0)

    def memmove(self, slot):
        return memmove_descriptor(self.src, self.dst + SIZE * slot, SIZE, self.comp + 32 * slot)


def test_streamed_memmoves_complete_in_order_with_their_tags_and_the_bytes_land(fab):
    app = App(fab.cpu)
    subs = [
        enqcmd_submission(app.tid, app.wq.portal_address, app.memmove(i % SLOTS), tag=1000 + i, wait_completion=i >= 40)
        for i in range(40 + SLOTS)
    ]
    results = list(fab.cpu.submit_stream(subs, window=24, per_message=5))
    assert [r.tag for r in results] == [s.tag for s in subs]
    assert all(not r.HasField("error") for r in results)
    assert all(r.enqcmd.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED and not r.enqcmd.zf for r in results)
    # The first ENQCMD of the thread takes the #GP and its fixup, as a unary one does.
    assert results[0].enqcmd.gp_faults == 1 and results[0].enqcmd.fixup_loaded_msr
    assert results[0].enqcmd.pasid_sent == app.wq.pasid
    waited = results[40:]
    assert all(r.completion.completed and r.completion.record.status == idxd.DsaCompStatus.SUCCESS for r in waited)
    assert all(not r.HasField("completion") for r in results[:40])
    assert fab.cpu.read(app.pid, app.dst, SIZE * SLOTS) == app.pattern * SLOTS
    # commit durability: every result names its committed input, in increasing order.
    seqs = [r.input_seq for r in results]
    assert all(seqs) and seqs == sorted(seqs)


def test_a_streamed_run_records_one_input_per_submission_and_replays_identically(fab, tmp_path):
    app = App(fab.cpu)
    kt = fab.cpu.create_kthread("kworker/stream")
    fab.cpu.schedule(kt.tid, 1)
    subs = [enqcmd_submission(app.tid, app.wq.portal_address, app.memmove(i), tag=i) for i in range(8)]
    subs.append(enqcmd_submission(app.tid, app.wq.portal_address, app.memmove(8), tag=8, wait_completion=True))
    # ENQCMDS from a kernel thread with the process's PASID, and a MOVDIR64B to a
    # shared WQ's portal (the device drops it: a shared WQ takes only ENQCMD/ENQCMDS).
    desc = bytearray(noop_descriptor(app.comp + 32 * 9))
    desc[0:4] = (app.wq.pasid | 1 << 31).to_bytes(4, "little")
    subs.append(enqcmds_submission(kt.tid, bytes(desc), tag=9))
    subs.append(movdir64b_submission(app.tid, app.wq.portal_address, noop_descriptor(app.comp + 32 * 10), tag=10))
    subs.append(enqcmd_submission(app.tid + 999, app.wq.portal_address, app.memmove(11), tag=11))  # refused
    results = list(fab.cpu.submit_stream(subs, per_message=3))
    assert [r.tag for r in results] == list(range(12))
    assert results[8].completion.completed
    assert results[9].enqcmds.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    assert results[10].HasField("movdir64b")
    assert submission_error(results[11]).reason == "UNKNOWN_THREAD"
    fab.trace.flush()
    with Store.open(fab.db) as store:
        inputs = [e for e in store.events(fab.run_id, kind=INPUT_KIND, limit=None)]
        methods = [e.after["method"] for e in inputs if e.seq >= results[0].input_seq]
        assert methods == ["cpu.Enqcmd"] * 9 + ["cpu.WaitCompletion", "cpu.Enqcmds", "cpu.Movdir64b", "cpu.Enqcmd"]
        assert [
            e.seq for e in inputs if e.seq >= results[0].input_seq and e.after["method"] != "cpu.WaitCompletion"
        ] == [r.input_seq for r in results]
        report = verify(store, fab.run_id)
    assert report.ok, report.difference.describe()


def _unary_then_streamed(c, streamed: bool):
    app = App(c)
    descs = [app.memmove(i % SLOTS) for i in range(20)] + [bytes(64), noop_descriptor(app.comp)]
    if streamed:
        subs = [enqcmd_submission(app.tid, app.wq.portal_address, d, tag=i) for i, d in enumerate(descs)]
        subs.append(enqcmd_submission(app.tid, app.wq.portal_address, noop_descriptor(app.comp), wait_completion=True))
        return [r.enqcmd for r in c.submit_stream(subs, per_message=7)]
    out = [c.enqcmd(app.tid, app.wq.portal_address, d) for d in descs]
    out.append(c.enqcmd(app.tid, app.wq.portal_address, noop_descriptor(app.comp)))
    c.wait_completion(app.tid, app.comp)
    return out


def test_a_stream_makes_exactly_the_transitions_its_unary_calls_make(tmp_path):
    runs = []
    for streamed in (False, True):
        db = f"sqlite:///{tmp_path / f'{streamed}.db'}"
        with running_fabric("inprocess", db) as f:
            replies = _unary_then_streamed(f.cpu, streamed)
            f.trace.flush()
            run_id = f.run_id
        with Store.open(db) as store:
            events = store.events(run_id, limit=None)
        first = next(e.seq for e in events if e.kind == INPUT_KIND)
        runs.append(
            (
                replies,
                [
                    (e.seq - first, e.service, e.entity, e.kind, e.before, e.after, e.cause and e.cause - first,
                     e.cycles, e.detail)
                    for e in events
                    if e.seq >= first
                ],
            )
        )  # fmt: skip
    (unary_replies, unary_events), (stream_replies, stream_events) = runs
    assert stream_replies == unary_replies
    assert stream_events == unary_events


def test_a_bad_submission_gets_its_own_error_changes_nothing_and_the_stream_goes_on(fab):
    app = App(fab.cpu)
    other = fab.cpu.create_thread(app.pid)  # never scheduled: not running
    portal = app.wq.portal_address
    subs = [
        enqcmd_submission(app.tid, portal, app.memmove(0), tag=0),
        cpu_pb2.Submission(tag=1, enqcmd=cpu_pb2.EnqcmdRequest(tid=app.tid, portal_address=portal, raw=b"short")),
        cpu_pb2.Submission(tag=2),  # no instruction
        enqcmd_submission(other.tid, portal, app.memmove(3), tag=3),
        enqcmd_submission(app.tid, portal, app.memmove(4), tag=4, wait_completion=True),
    ]
    before = fab.cpu.counters()["run"]
    results = list(fab.cpu.submit_stream(subs, per_message=2))
    assert [r.tag for r in results] == [0, 1, 2, 3, 4]
    errors = [submission_error(r) for r in results]
    assert errors[0] is None and errors[4] is None
    assert (errors[1].code, errors[1].reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_DESCRIPTOR_SIZE")
    assert (errors[2].code, errors[2].reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MISSING_INSTRUCTION")
    assert (errors[3].code, errors[3].reason) == (grpc.StatusCode.FAILED_PRECONDITION, "THREAD_NOT_RUNNING")
    assert errors[3].metadata["tid"] == str(other.tid) and results[3].error.domain == "svasim.dev"
    assert not any(results[i].HasField("enqcmd") for i in (1, 2, 3))
    # Refused before it was recorded: no input; refused by the model: recorded as rejected.
    assert results[1].input_seq == 0 and results[2].input_seq == 0 and results[3].input_seq > 0
    assert results[4].completion.record.status == idxd.DsaCompStatus.SUCCESS
    after = fab.cpu.counters()["run"]
    assert after.get("enqcmd", 0) - before.get("enqcmd", 0) == 2
    assert fab.cpu.get_thread(other.tid).enqcmds == 0
    assert fab.cpu.read(app.pid, app.dst + SIZE * 3, SIZE) == bytes(SIZE)
    fab.trace.flush()
    with Store.open(fab.db) as store:
        rejected = store.events(fab.run_id, kind="request.rejected", limit=None)
    assert [e.detail["reason"] for e in rejected] == ["THREAD_NOT_RUNNING"]


def test_a_message_with_too_many_submissions_is_refused_item_by_item(fab):
    app = App(fab.cpu)
    sub = enqcmd_submission(app.tid, app.wq.portal_address, noop_descriptor(app.comp))
    big = cpu_pb2.SubmitRequest(submissions=[sub] * (submit.MAX_PER_MESSAGE + 1))
    small = cpu_pb2.SubmitRequest(submissions=[sub])
    responses = list(fab.cpu.cpu.Submit(iter([big, small]), timeout=30))
    assert len(responses) == 2
    assert {r.error.reason for r in responses[0].results} == {"TOO_MANY_SUBMISSIONS"}
    assert responses[1].results[0].enqcmd.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED


def test_commit_durability_sends_a_result_only_once_its_transitions_are_committed(tmp_path):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    with running_fabric("inprocess", db) as f:
        app = App(f.cpu)
        recorder = f.servers[0].recorder
        batches = recorder.stats()["batches"]
        subs = [enqcmd_submission(app.tid, app.wq.portal_address, app.memmove(i % SLOTS), tag=i) for i in range(256)]
        with Store.open(db) as reader:
            for r in f.cpu.submit_stream(subs, window=256, per_message=64):
                # Read through a connection of its own: what the result names is already there.
                assert reader.events(f.run_id, after_seq=r.input_seq - 1, limit=1)[0].seq == r.input_seq
        stats = recorder.stats()
        # Group commit: 256 submissions (about 13 transitions each) took far fewer transactions.
        assert stats["pending"] == 0
        assert stats["batches"] - batches <= 64


def test_batch_durability_streams_too_and_names_inputs_it_knows_committed(tmp_path):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}", durability="batch") as f:
        app = App(f.cpu)
        subs = [enqcmd_submission(app.tid, app.wq.portal_address, app.memmove(i), tag=i) for i in range(SLOTS)]
        # The device runs on the next submission or a wait: the last one waits for its record.
        subs[-1].wait_completion = True
        results = list(f.cpu.submit_stream(subs))
        assert all(r.enqcmd.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED for r in results)
        assert f.cpu.read(app.pid, app.dst, SIZE * SLOTS) == app.pattern * SLOTS


def test_the_server_stops_reading_a_stream_whose_window_is_full():
    taken = itertools.count()

    def endless():
        while True:
            next(taken)
            yield cpu_pb2.SubmitRequest()

    window = submit._Window(endless(), 4)
    try:
        time.sleep(0.3)
        # Four messages wait in the window and the reader holds a fifth it cannot put.
        assert next(taken) == 5
        time.sleep(0.2)
        assert next(taken) == 6
    finally:
        window.close()


def test_a_client_that_does_not_read_its_results_is_held_back_by_flow_control(tmp_path):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        app = App(f.cpu)
        sub = enqcmd_submission(app.tid, app.wq.portal_address, noop_descriptor(app.comp))
        message = cpu_pb2.SubmitRequest(submissions=[sub] * 64)
        sent = itertools.count()
        stop = threading.Event()

        def requests():
            while not stop.is_set():
                next(sent)
                yield message

        call = f.cpu.cpu.Submit(requests(), timeout=60)  # never read
        try:
            # The stall comes once the server's window and the transport's buffers are
            # full, which takes longer the faster the server runs what it reads: wait for
            # it (up to 30 s), then check that it holds for a second.
            deadline = time.monotonic() + 30
            first = next(sent)
            while True:
                time.sleep(1.0)
                now = next(sent)
                if now - first <= 2 or time.monotonic() > deadline:
                    break
                first = now
            first = next(sent)
            time.sleep(1.0)
            second = next(sent)
        finally:
            stop.set()
            call.cancel()
        # The sender stalls: what it sent stops growing (the server stopped reading).
        assert second - first <= 2
        executed = f.cpu.get_thread(app.tid).enqcmds
        assert executed < first * 64
        # The fabric is still serving others, and the cancelled stream left the gate free.
        assert f.cpu.enqcmd(app.tid, app.wq.portal_address, noop_descriptor(app.comp)).outcome == 1


def test_a_stream_on_a_saturated_gate_gets_retryable_errors_and_nothing_runs(tmp_path, monkeypatch):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        app = App(f.cpu)
        gate = f.servers[0].cores["cpu"].gate
        monkeypatch.setattr(gate, "timeout", 0.2)
        held = threading.Event()
        release = threading.Event()

        def hold():
            with gate.turn():
                held.set()
                release.wait(5)

        t = threading.Thread(target=hold)
        t.start()
        held.wait(5)
        try:
            subs = [enqcmd_submission(app.tid, app.wq.portal_address, app.memmove(0), tag=7)]
            (r,) = list(f.cpu.submit_stream(subs))
        finally:
            release.set()
            t.join()
        err = submission_error(r)
        assert err.code == grpc.StatusCode.RESOURCE_EXHAUSTED and err.reason == "FABRIC_BUSY"
        assert err.retry_delay and err.retry_delay > 0
        assert f.cpu.get_thread(app.tid).enqcmds == 0


def test_closing_the_result_generator_early_cancels_the_stream(tmp_path):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        app = App(f.cpu)
        endless = (
            enqcmd_submission(app.tid, app.wq.portal_address, noop_descriptor(app.comp), tag=i)
            for i in itertools.count()
        )
        results = f.cpu.submit_stream(endless, window=32, per_message=8)
        got = [next(results).tag for _ in range(10)]
        results.close()
        assert got == list(range(10))
        # The fabric goes on serving.
        assert f.cpu.enqcmd(app.tid, app.wq.portal_address, noop_descriptor(app.comp)).outcome == 1


def test_a_stream_refused_as_a_whole_raises_svasim_error(tmp_path):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        app = App(f.cpu)
        subs = [enqcmd_submission(app.tid, app.wq.portal_address, noop_descriptor(app.comp))]
        with pytest.raises(ValueError):
            list(f.cpu.submit_stream(subs, window=0))
        endless = itertools.repeat(subs[0])
        got = 0
        with pytest.raises(SvasimError) as e:
            for _ in f.cpu.submit_stream(endless, timeout=0.5):
                got += 1
        assert e.value.code == grpc.StatusCode.DEADLINE_EXCEEDED and got > 0


def test_bytes_that_are_not_a_submit_request_end_the_stream_with_malformed_message(tmp_path):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        app = App(f.cpu)
        good = cpu_pb2.SubmitRequest(
            submissions=[enqcmd_submission(app.tid, app.wq.portal_address, noop_descriptor(app.comp), tag=1)]
        ).SerializeToString()
        call = f.cpu.channel.stream_stream(
            "/svasim.cpu.v1.CpuService/Submit", response_deserializer=cpu_pb2.SubmitResponse.FromString
        )
        got = []
        with pytest.raises(grpc.RpcError) as e:
            for r in call(iter([good, b"\xff\xff\xff"]), timeout=10):
                got.append(r)
        err = SvasimError.from_rpc_error(e.value)
        assert (err.code, err.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "MALFORMED_MESSAGE")
        # What came before the bad message was answered.
        assert [r.results[0].tag for r in got] == [1]


def test_the_fold_of_a_streamed_run_is_the_state_the_models_export():
    # The oracle (tests/oracle) over a stream served in-process: every change the
    # streamed submissions made, refused ones included, is a recorded transition.
    from types import SimpleNamespace

    from svasim.config import ALL_SERVICES, FabricConfig
    from svasim.model.costs import CostTable
    from svasim.replay import Fabric, MemoryRecorder, ReplayContext
    from tests.oracle.oracle import Oracle

    recorder = MemoryRecorder()
    fabric = Fabric(
        FabricConfig(services=ALL_SERVICES, cpus=2, policy="linux-5.18", seed=3, durability="commit"),
        CostTable(),
        recorder,
    )
    cores = fabric.cores
    models = SimpleNamespace(kernel=cores["cpu"].kernel, iommu=cores["iommu"].iommu, accel=cores["accel"].accel)
    oracle = Oracle(models, recorder.transitions)
    cpu, ctx = fabric.servicers["cpu"], ReplayContext()
    proc = cpu.CreateProcess(cpu_pb2.CreateProcessRequest(name="o"), ctx).process
    tid = proc.tids[0]
    buf = cpu.Mmap(cpu_pb2.MmapRequest(pid=proc.pid, length=4 * SIZE, writable=True, populate=True), ctx).address
    portal = cpu.OpenWorkQueue(cpu_pb2.OpenWorkQueueRequest(pid=proc.pid, device="dsa0"), ctx).portal_address
    cpu.Schedule(cpu_pb2.ScheduleRequest(tid=tid, cpu=0), ctx)
    subs = [
        enqcmd_submission(tid, portal, memmove_descriptor(buf, buf + SIZE, 512, buf + 3 * SIZE + 32 * i), tag=i)
        for i in range(6)
    ]
    subs.insert(2, enqcmd_submission(tid + 50, portal, noop_descriptor(buf + 3 * SIZE)))  # refused, recorded
    subs.append(enqcmd_submission(tid, portal, noop_descriptor(buf + 3 * SIZE + 512), wait_completion=True))
    messages = [cpu_pb2.SubmitRequest(submissions=subs[:3]), cpu_pb2.SubmitRequest(submissions=subs[3:])]
    responses = list(submit.serve_submit(cpu, iter(messages), ctx))
    assert [len(r.results) for r in responses] == [3, 5]
    assert oracle.check("a Submit stream") == {}


@pytest.mark.parametrize("cls", [cpu_pb2.EnqcmdRequest, cpu_pb2.Movdir64bRequest])
@pytest.mark.parametrize("tid", [0, 1, 2**32, 2**64 - 1])
@pytest.mark.parametrize("portal", [0, 0x7F0000001000, 2**64 - 64])
@pytest.mark.parametrize("raw", [b"", bytes(64), bytes(range(64)), b"\xff" * 10])
def test_a_streamed_input_records_the_body_its_unary_call_records(cls, tid, portal, raw):
    from google.protobuf.json_format import MessageToDict

    req = cls(tid=tid, portal_address=portal, raw=raw)
    assert submit.request_record(req) == MessageToDict(req, preserving_proto_field_name=True)
    desc = cls(tid=tid, portal_address=portal, desc={"opcode": 3, "xfer_size": 4096})
    assert submit.request_record(desc) == MessageToDict(desc, preserving_proto_field_name=True)
