"""When client requests pile up, the fabric says RESOURCE_EXHAUSTED with a RetryInfo at
once rather than making callers wait silently; what it refused changed nothing."""

from __future__ import annotations

import threading
import time

import grpc
import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.server import create_server
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import SvasimError, error_info, retry_delay

from .fabric_fixtures import connect


@pytest.fixture
def slow_fabric(tmp_path, monkeypatch):
    srv = create_server(
        FabricConfig(
            services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'svasim.db'}", max_queued=2, queue_timeout=0.4
        )
    )
    kernel = srv.cores["cpu"].kernel
    original = kernel.create_process

    def slow(journal, name, native_pid=0):
        time.sleep(0.15)
        return original(journal, name, native_pid)

    monkeypatch.setattr(kernel, "create_process", slow)
    try:
        yield srv
    finally:
        srv.stop(0)


def test_saturation_is_resource_exhausted_with_retry_info_and_refused_requests_change_nothing(slow_fabric):
    c = connect(slow_fabric.address)
    results: list[object] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        try:
            r = c.cpu.CreateProcess(cpu_pb2.CreateProcessRequest(name=f"p{i}"), timeout=30)
            out: object = r.process.pid
        except grpc.RpcError as e:
            out = e
        with lock:
            results.append(out)

    threads = [threading.Thread(target=one, args=(i,)) for i in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    pids = [r for r in results if isinstance(r, int)]
    refused = [r for r in results if isinstance(r, grpc.RpcError)]
    assert pids and refused, results
    for e in refused:
        assert e.code() == grpc.StatusCode.RESOURCE_EXHAUSTED, (e.code(), e.details())
        assert error_info(e).reason == "FABRIC_BUSY"
        delay = retry_delay(e)
        assert delay is not None and delay > 0
        # The Python client's error carries it too, so a caller can honour it.
        assert SvasimError.from_rpc_error(e).retry_delay == delay
    # Every acknowledged request is in the record; no refused one is.
    c.flush()
    inputs = c.events(slow_fabric.run_id, kind_prefix="input")
    assert len(inputs) == len(pids)
    assert sorted(pids) == sorted(p.pid for p in (c.get_process(pid) for pid in pids))
    # Once the burst is over, requests go through again.
    assert c.create_process("after").pid > 0
    c.close()


def test_every_request_the_gate_lets_wait_has_a_worker(tmp_path):
    """The gate is where requests wait: the pool holds max_queued waiting requests and 16
    more workers, so a waiting request never sits unseen in a queue inside gRPC."""
    from svasim.server import SPARE_WORKERS, workers

    assert FabricConfig().max_queued == 32
    assert workers(FabricConfig()) == 32 + SPARE_WORKERS == 48
    assert workers(FabricConfig(max_queued=0)) == SPARE_WORKERS


def test_a_gate_bound_past_the_limit_is_refused_before_anything_starts(tmp_path):
    from svasim.config import MAX_QUEUED_LIMIT, ConfigError

    with pytest.raises(ConfigError, match="max_queued must be at most 4096"):
        create_server(FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'x.db'}", max_queued=4097))
    assert MAX_QUEUED_LIMIT == 4096
    assert not (tmp_path / "x.db").exists()
