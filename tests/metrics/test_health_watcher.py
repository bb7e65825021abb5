"""The health watcher against real gRPC servers: a peer that stops answering, holds, and
streams that are not wedges. Statuses are read over gRPC, as an orchestrator reads them."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from concurrent import futures

import grpc
import pytest
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from svasim.rpc.health import HealthWatcher, PeerProbe
from svasim.rpc.metrics import FabricMetrics

CPU = "svasim.cpu.v1.CpuService"
TRACE = "svasim.trace.v1.TraceService"
NAMES = {"cpu": [CPU], "trace": [TRACE]}


def health_server(
    port: int = 0, *, interceptors: tuple = (), handlers: tuple = ()
) -> tuple[grpc.Server, health.HealthServicer, int]:
    """A gRPC server with the standard health service (and ``handlers``) on 127.0.0.1:port."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4), interceptors=interceptors, handlers=handlers)
    servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(servicer, server)
    bound = server.add_insecure_port(f"127.0.0.1:{port}")
    server.start()
    return server, servicer, bound


def status(port: int, service: str) -> str:
    """The status name a health client of 127.0.0.1:port reads for ``service``."""
    with grpc.insecure_channel(f"127.0.0.1:{port}") as ch:
        reply = health_pb2_grpc.HealthStub(ch).Check(health_pb2.HealthCheckRequest(service=service), timeout=5)
    return health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)


@pytest.fixture
def watched() -> Iterator[tuple[health.HealthServicer, int]]:
    """The health service a watcher sets, served on a port of its own."""
    server, servicer, port = health_server()
    yield servicer, port
    server.stop(0)


def test_a_peer_that_stops_answering_fails_only_the_services_that_need_it_until_it_is_back(watched):
    servicer, port = watched
    peer, _peer_health, peer_port = health_server()
    probe = PeerProbe("iommu", f"127.0.0.1:{peer_port}", timeout=0.5)
    watcher = HealthWatcher(servicer, NAMES, probes=[probe], needs={"cpu": ["iommu"]})
    try:
        assert watcher.check() == {"cpu": [], "trace": []}
        assert (status(port, CPU), status(port, TRACE), status(port, "")) == ("SERVING", "SERVING", "SERVING")

        peer.stop(0)
        reasons = watcher.check()
        assert len(reasons["cpu"]) == 1 and "iommu" in reasons["cpu"][0] and "unreachable" in reasons["cpu"][0]
        assert reasons["trace"] == []
        assert status(port, CPU) == "NOT_SERVING"
        assert status(port, TRACE) == "SERVING"
        assert status(port, "") == "NOT_SERVING"  # the server as a whole cannot do all its work

        peer, _peer_health, _ = health_server(peer_port)
        deadline = time.monotonic() + 10
        while watcher.check()["cpu"] and time.monotonic() < deadline:
            time.sleep(0.1)
        assert (status(port, CPU), status(port, "")) == ("SERVING", "SERVING")
    finally:
        watcher.stop()
        peer.stop(0)


def test_a_peer_that_answers_not_serving_is_reachable(watched):
    # Two peers that each followed the other's status would stay NOT_SERVING for ever
    # once both had been down: only an answer matters.
    servicer, port = watched
    peer, peer_health, peer_port = health_server()
    peer_health.set("", health_pb2.HealthCheckResponse.NOT_SERVING)
    watcher = HealthWatcher(
        servicer, NAMES, probes=[PeerProbe("iommu", f"127.0.0.1:{peer_port}")], needs={"cpu": ["iommu"]}
    )
    try:
        assert watcher.check()["cpu"] == []
        assert status(port, CPU) == "SERVING"
    finally:
        watcher.stop()
        peer.stop(0)


def test_a_hold_makes_every_service_not_serving_until_released(watched):
    servicer, port = watched
    watcher = HealthWatcher(servicer, NAMES)
    watcher.check()
    watcher.hold("recovery", "rebuilding state from the store")
    assert status(port, CPU) == status(port, TRACE) == status(port, "") == "NOT_SERVING"
    assert watcher.problems() == {
        "cpu": ["rebuilding state from the store"],
        "trace": ["rebuilding state from the store"],
    }
    watcher.release("recovery")
    assert status(port, CPU) == status(port, TRACE) == status(port, "") == "SERVING"


def test_a_store_whose_last_write_failed_fails_every_service(watched):
    servicer, port = watched
    ok = [True]
    watcher = HealthWatcher(servicer, NAMES, store_ok=lambda: ok[0])
    assert watcher.check() == {"cpu": [], "trace": []}
    ok[0] = False
    reasons = watcher.check()
    assert all("store unwritable" in r[0] for r in reasons.values())
    assert status(port, CPU) == status(port, TRACE) == "NOT_SERVING"
    ok[0] = True
    watcher.check()
    assert status(port, CPU) == status(port, TRACE) == "SERVING"


def test_a_unary_call_in_flight_past_the_threshold_is_a_wedge_and_a_stream_is_not(watched):
    servicer, port = watched
    metrics = FabricMetrics()
    # A unary method whose calls block until the test opens the gate: a real call in flight.
    gate = threading.Event()

    def blocked(request, context):
        gate.wait(10)
        return b""

    cpu = grpc.method_handlers_generic_handler(CPU, {"GetFabric": grpc.unary_unary_rpc_method_handler(blocked)})
    interceptor = metrics.interceptor("client", workers=4)
    server, served, served_port = health_server(interceptors=(interceptor,), handlers=(cpu,))
    served.set("", health_pb2.HealthCheckResponse.SERVING)
    later = [0.0]
    names = {"cpu": [CPU], "health": ["grpc.health.v1.Health"]}
    watcher = HealthWatcher(
        servicer, names, in_flight=metrics.calls_in_flight, clock=lambda: time.monotonic() + later[0], wedge_after=30
    )
    channel = grpc.insecure_channel(f"127.0.0.1:{served_port}")
    try:
        stream = health_pb2_grpc.HealthStub(channel).Watch(health_pb2.HealthCheckRequest(service=""))
        assert next(stream).status == health_pb2.HealthCheckResponse.SERVING
        [call] = metrics.calls_in_flight()
        assert (call.grpc_service, call.grpc_method, call.streaming) == ("grpc.health.v1.Health", "Watch", True)
        later[0] = 3600.0  # an hour on: a follower may stay that long
        assert watcher.check() == {"cpu": [], "health": []}
        stream.cancel()

        # The same age for a unary call is a wedge of its service.
        future = channel.unary_unary("/svasim.cpu.v1.CpuService/GetFabric").future(b"", timeout=10)
        deadline = time.monotonic() + 5
        while not any(c.grpc_method == "GetFabric" for c in metrics.calls_in_flight()) and time.monotonic() < deadline:
            time.sleep(0.01)
        reasons = watcher.check()
        assert len(reasons["cpu"]) == 1 and "wedged" in reasons["cpu"][0] and "GetFabric" in reasons["cpu"][0]
        assert status(port, CPU) == "NOT_SERVING" and status(port, "") == "NOT_SERVING"
        gate.set()
        future.result()
        assert watcher.check()["cpu"] == []
        assert status(port, CPU) == "SERVING"
    finally:
        channel.close()
        watcher.stop()
        server.stop(0)
