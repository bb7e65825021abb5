"""The metrics endpoint of a real server, scraped over HTTP after real calls: MEMMOVEs
through the ENQCMD path, refused requests, a request held in flight, a store that
refuses writes. Expected values come from what the test did and what the client saw."""

from __future__ import annotations

import socket
import sqlite3
import threading
import time

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.server import create_server
from svasim_api.errors import SvasimError
from svasim_client import Client

from .scrape import buckets, scrape, value
from .workload import memmoves

CPU = "svasim.cpu.v1.CpuService"


@pytest.fixture
def db(tmp_path) -> str:
    return f"sqlite:///{tmp_path / 'svasim.db'}"


@pytest.fixture
def fab(db):
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, metrics_port=0))
    client = Client(srv.address)
    yield srv, client
    client.close()
    srv.stop(0)


def test_memmoves_through_enqcmd_move_the_request_counters_and_latency_buckets(fab):
    srv, c = fab
    before = scrape(srv.metrics_port)
    assert value(before, "svasim_grpc_server_started_total", grpc_method="Enqcmd") == 0
    memmoves(c, 3)
    after = scrape(srv.metrics_port)
    enqcmd = dict(listener="client", grpc_type="unary", grpc_service=CPU, grpc_method="Enqcmd")
    assert value(after, "svasim_grpc_server_started_total", **enqcmd) == 3
    assert value(after, "svasim_grpc_server_handled_total", **enqcmd, grpc_code="OK") == 3
    assert value(after, "svasim_grpc_server_handled_total", **enqcmd) == 3  # no other code
    assert value(after, "svasim_grpc_server_handled_total", grpc_method="WaitCompletion", grpc_code="OK") == 3
    assert value(after, "svasim_grpc_server_handled_total", grpc_method="ReadMemory", grpc_code="OK") == 3
    assert value(after, "svasim_grpc_server_in_flight", grpc_method="Enqcmd") == 0

    # The histogram: cumulative, ending in +Inf with every call, its sum their total time.
    b = buckets(after, "svasim_grpc_server_handling_seconds", **enqcmd)
    assert b[-1] == (float("inf"), 3)
    assert all(lo[1] <= hi[1] for lo, hi in zip(b, b[1:], strict=False))
    assert value(after, "svasim_grpc_server_handling_seconds_count", **enqcmd) == 3
    assert 0 < value(after, "svasim_grpc_server_handling_seconds_sum", **enqcmd) < 60

    # The work queue: every accepted descriptor completed, none left in the queue, as
    # the accel service's own ListDevices reports.
    wq0 = dict(device="dsa0", wq="0")
    assert value(after, "svasim_wq_accepted_total", **wq0) == 3
    assert value(after, "svasim_wq_completed_total", **wq0) == 3
    [dev] = [d for d in c.devices() if d.name == "dsa0"]
    assert value(after, "svasim_wq_occupancy", **wq0) == dev.wqs[0].occupancy == 0
    assert value(after, "svasim_wq_size", **wq0) == dev.wqs[0].size

    # The recorder: what it says it committed is what the store holds.
    c.flush()
    final = scrape(srv.metrics_port)
    assert value(final, "svasim_recorder_pending_transitions") == 0
    assert value(final, "svasim_recorder_committed_transitions_total") == len(c.events(srv.run_id))
    assert value(final, "svasim_recorder_commit_seconds_count") >= 1
    assert value(final, "svasim_recorder_write_failures_total") == 0
    assert value(final, "svasim_build_info", run=srv.run_id) == 1


def test_refused_requests_are_counted_by_the_code_the_client_got(fab):
    srv, c = fab
    pid = c.create_process("app").pid
    seen: dict[str, int] = {}
    for call in (lambda: c.mmap(pid, 0), lambda: c.mmap(pid, 0), lambda: c.get_process(10**6)):
        with pytest.raises(SvasimError) as e:
            call()
        seen[e.value.code.name] = seen.get(e.value.code.name, 0) + 1
    assert seen == {"INVALID_ARGUMENT": 2, "NOT_FOUND": 1}
    s = scrape(srv.metrics_port)
    assert value(s, "svasim_grpc_server_handled_total", grpc_method="Mmap", grpc_code="INVALID_ARGUMENT") == 2
    assert value(s, "svasim_grpc_server_handled_total", grpc_method="GetProcess", grpc_code="NOT_FOUND") == 1
    assert value(s, "svasim_grpc_server_handled_total", grpc_method="Mmap", grpc_code="OK") == 0
    assert value(s, "svasim_grpc_server_handled_total", grpc_method="CreateProcess", grpc_code="OK") == 1


def test_a_request_held_in_flight_shows_as_busy_worker_and_in_flight_and_wedges_health(fab):
    srv, c = fab
    core = srv.cores["cpu"]
    srv.watcher.wedge_after = 0.3
    got: list[object] = []
    # The cpu model's lock held by the test: a client request gets in and cannot finish,
    # as a request stuck in a long loop would.
    core.lock.acquire()
    try:
        t = threading.Thread(target=lambda: got.append(c.create_process("held")))
        t.start()
        deadline = time.monotonic() + 10
        while value(scrape(srv.metrics_port), "svasim_grpc_server_in_flight", grpc_method="CreateProcess") < 1:
            assert time.monotonic() < deadline, "the request never got in flight"
            time.sleep(0.02)
        s = scrape(srv.metrics_port)
        assert value(s, "svasim_grpc_workers_busy", listener="client") == 1
        assert value(s, "svasim_grpc_workers", listener="client") >= 1
        assert value(s, "svasim_request_gate_waiting") == 0
        assert value(s, "svasim_request_gate_max_queued") == srv.config.max_queued
        # A second request waits for its turn behind the held one.
        t2 = threading.Thread(target=lambda: got.append(c.create_process("queued")))
        t2.start()
        while value(scrape(srv.metrics_port), "svasim_request_gate_waiting") < 1:
            assert time.monotonic() < deadline, "the second request never queued"
            time.sleep(0.02)
        assert value(scrape(srv.metrics_port), "svasim_grpc_workers_busy", listener="client") == 2
        time.sleep(0.35)
        reasons = srv.watcher.check()
        assert any("wedged" in r and "CreateProcess" in r for r in reasons["cpu"])
        assert c.check_health(CPU) == "NOT_SERVING"
        assert c.check_health("") == "NOT_SERVING"
        assert value(scrape(srv.metrics_port), "svasim_health_serving", grpc_service=CPU) == 0
    finally:
        core.lock.release()
    t.join(30)
    t2.join(30)
    assert len(got) == 2  # the held request and the queued one completed once let go
    assert srv.watcher.check()["cpu"] == []
    assert c.check_health(CPU) == "SERVING"
    s = scrape(srv.metrics_port)
    assert value(s, "svasim_grpc_workers_busy", listener="client") == 0
    assert value(s, "svasim_health_serving", grpc_service=CPU) == 1


def test_a_store_that_refuses_writes_is_not_serving_and_loses_nothing(fab, db):
    srv, c = fab
    assert srv.watcher.check()["cpu"] == []
    path = db.removeprefix("sqlite:///")
    block = sqlite3.connect(path, timeout=30)
    # A trigger that aborts every insert of an event: the store is there but unwritable.
    block.execute("CREATE TRIGGER refuse BEFORE INSERT ON events BEGIN SELECT RAISE(ABORT, 'read-only'); END")
    block.commit()
    got: list[object] = []
    t = threading.Thread(target=lambda: got.append(c.create_process("during")))
    try:
        t.start()
        deadline = time.monotonic() + 10
        while not srv.watcher.check()["cpu"]:
            assert time.monotonic() < deadline, "the failed write never showed in health"
            time.sleep(0.05)
        reasons = srv.watcher.check()
        assert all("store unwritable" in " ".join(r) for r in reasons.values())
        assert c.check_health("") == "NOT_SERVING"
        assert not got  # not acknowledged while it is not committed
        assert value(scrape(srv.metrics_port), "svasim_recorder_write_failures_total") >= 1
    finally:
        block.execute("DROP TRIGGER refuse")
        block.commit()
        block.close()
    t.join(30)
    assert len(got) == 1
    deadline = time.monotonic() + 10
    while srv.watcher.check()["cpu"]:
        assert time.monotonic() < deadline, "health never recovered"
        time.sleep(0.05)
    assert c.check_health("") == "SERVING"
    c.flush()
    inputs = [e for e in c.events(srv.run_id) if e.kind == "input"]
    assert any('"during"' in e.after_json for e in inputs)  # acknowledged and recorded


def test_two_servers_in_one_process_keep_their_own_counts(db, tmp_path):
    a = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, metrics_port=0))
    b = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'b.db'}", metrics_port=0))
    try:
        with Client(a.address) as ca:
            for _ in range(2):
                ca.create_process("x")
        with Client(b.address) as cb:
            cb.create_process("y")
        assert a.metrics_port != b.metrics_port
        assert value(scrape(a.metrics_port), "svasim_grpc_server_started_total", grpc_method="CreateProcess") == 2
        assert value(scrape(b.metrics_port), "svasim_grpc_server_started_total", grpc_method="CreateProcess") == 1
    finally:
        a.stop(0)
        b.stop(0)


def test_the_endpoint_is_off_unless_asked_for_and_its_port_is_freed_on_stop(db):
    off = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db))
    try:
        assert off.metrics_port == 0
    finally:
        off.stop(0)
    on = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, metrics_port=0))
    port = on.metrics_port
    assert port > 0 and scrape(port)
    on.stop(0)
    with socket.socket() as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind(("127.0.0.1", port))  # nothing listens there any more


def test_a_metrics_port_in_use_fails_the_start_and_creates_no_run(db, tmp_path):
    from svasim.server import BindError

    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        with pytest.raises(BindError, match=f"{port}.*metrics"):
            create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, metrics_port=port))
    # The client port it had bound is free again and nothing was recorded.
    ok = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, metrics_port=0))
    try:
        with Client(ok.address) as c:
            assert [r.id for r in c.runs()] == [ok.run_id]
    finally:
        ok.stop(0)


def test_a_followed_stream_is_in_flight_until_its_client_cancels_it_and_is_counted_cancelled(fab):
    from svasim_api.trace.v1 import trace_pb2

    srv, c = fab
    c.create_process("x")
    c.flush()
    stream = c.trace.FollowEvents(trace_pb2.FollowEventsRequest(run=srv.run_id, from_seq=1), timeout=30)
    assert next(stream).events  # the committed events arrive
    follow = dict(grpc_type="server_stream", grpc_service="svasim.trace.v1.TraceService", grpc_method="FollowEvents")
    s = scrape(srv.metrics_port)
    assert value(s, "svasim_grpc_server_in_flight", grpc_method="FollowEvents") == 1
    assert value(s, "svasim_grpc_server_started_total", **follow) == 1
    # A follower is not a wedge, however long it stays.
    srv.watcher.wedge_after = 1e-6
    assert srv.watcher.check()["trace"] == []
    stream.cancel()
    deadline = time.monotonic() + 10
    while value(scrape(srv.metrics_port), "svasim_grpc_server_in_flight", grpc_method="FollowEvents") != 0:
        assert time.monotonic() < deadline, "the cancelled stream stayed in flight"
        time.sleep(0.05)
    assert value(scrape(srv.metrics_port), "svasim_grpc_server_handled_total", **follow, grpc_code="CANCELLED") == 1


def test_with_tls_on_the_client_listener_the_endpoint_speaks_https_with_its_certificate(db, tmp_path):
    from svasim.wiring.tls import make_test_ca

    files = make_test_ca(tmp_path / "ca")
    srv = create_server(
        FabricConfig(
            services=ALL_SERVICES,
            port=0,
            db=db,
            metrics_port=0,
            tls_cert=str(files["server"]),
            tls_key=str(files["server-key"]),
        )
    )
    try:
        s = scrape(srv.metrics_port, ca=str(files["ca"]))
        assert value(s, "svasim_build_info", run=srv.run_id) == 1
        with pytest.raises(OSError):  # plain HTTP gets no answer it can parse
            scrape(srv.metrics_port)
    finally:
        srv.stop(0)
