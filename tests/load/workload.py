"""The load workload: clients each running MEMMOVEs of 4 KiB through ENQCMD and
WaitCompletion in a loop, every destination byte checked, a RESOURCE_EXHAUSTED refusal
retried after the delay its RetryInfo gives.

The calls go through the raw stubs of a :class:`~svasim_client.Client`, as the
RetryInfo is in the call's rich status and a refusal must be told apart from a failure.
"""

from __future__ import annotations

import statistics
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import grpc

from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import retry_delay as api_retry_delay
from svasim_client import Client, completion_record, memmove_descriptor

SIZE = 4096
#: Per-call deadline: long enough for a loaded 2-core host, short enough to see a wedge.
CALL_TIMEOUT = 60.0

T = TypeVar("T")


class MissingRetryInfo(AssertionError):
    """A RESOURCE_EXHAUSTED refusal that did not say when to retry."""


def retry_delay(e: grpc.RpcError) -> float:
    """The RetryInfo delay (seconds) of a refused call; MissingRetryInfo when it has none."""
    delay = api_retry_delay(e)
    if delay is not None:
        return delay
    raise MissingRetryInfo(f"RESOURCE_EXHAUSTED without a RetryInfo: {e.details()}")  # type: ignore[attr-defined]


@dataclass
class ClientResult:
    """What one client did."""

    iterations: int = 0
    latencies: list[float] = field(default_factory=list)
    exhausted: int = 0  # RESOURCE_EXHAUSTED refusals, each retried
    wq_full: int = 0  # ENQCMD answered retry (ZF=1): the shared WQ was full
    wrong_bytes: int = 0
    errors: list[str] = field(default_factory=list)

    def call(self, fn: Callable[..., T], request: Any) -> T:
        """``fn(request)``, retried after the RetryInfo delay while the fabric refuses it as saturated."""
        while True:
            try:
                return fn(request, timeout=CALL_TIMEOUT)
            except grpc.RpcError as e:
                if e.code() != grpc.StatusCode.RESOURCE_EXHAUSTED:  # type: ignore[attr-defined]
                    raise
                self.exhausted += 1
                time.sleep(retry_delay(e))


def run_client(address: str, index: int, cpu: int, stop: float, result: ClientResult) -> None:
    """One client on the cpu service at ``address``: its own process, buffers and CPU,
    MEMMOVEs until ``stop`` (time.monotonic()), at least one however slow the host."""
    c = Client(address, timeout=CALL_TIMEOUT)
    cpus = c.cpu
    try:
        proc = result.call(cpus.CreateProcess, cpu_pb2.CreateProcessRequest(name=f"load{index}")).process
        pid, tid = proc.pid, proc.tids[0]

        def mmap() -> int:
            req = cpu_pb2.MmapRequest(pid=pid, length=SIZE, writable=True, populate=True)
            return result.call(cpus.Mmap, req).address

        src, dst, comp = mmap(), mmap(), mmap()
        wq = result.call(cpus.OpenWorkQueue, cpu_pb2.OpenWorkQueueRequest(pid=pid, device="dsa0", wq_id=0))
        result.call(cpus.Schedule, cpu_pb2.ScheduleRequest(tid=tid, cpu=cpu))
        desc = memmove_descriptor(src, dst, SIZE, comp)
        n = 0
        while n == 0 or time.monotonic() < stop:
            # A pattern of this client and iteration: a stale or misdirected copy shows.
            data = bytes((index * 131 + n * 7 + k) & 0xFF for k in range(SIZE))
            began = time.monotonic()
            result.call(cpus.WriteMemory, cpu_pb2.WriteMemoryRequest(pid=pid, address=src, data=data))
            result.call(cpus.WriteMemory, cpu_pb2.WriteMemoryRequest(pid=pid, address=comp, data=bytes(32)))
            req = cpu_pb2.EnqcmdRequest(tid=tid, portal_address=wq.portal_address, raw=desc)
            if result.call(cpus.Enqcmd, req).outcome != cpu_pb2.ENQCMD_OUTCOME_ACCEPTED:
                result.wq_full += 1
                continue
            done = result.call(cpus.WaitCompletion, cpu_pb2.WaitCompletionRequest(tid=tid, completion_addr=comp))
            status = completion_record(done.raw).status
            if not done.completed or status != idxd.DsaCompStatus.SUCCESS:
                result.errors.append(f"client {index}: iteration {n} completed={done.completed} status={status}")
                return
            got = result.call(cpus.ReadMemory, cpu_pb2.ReadMemoryRequest(pid=pid, address=dst, length=SIZE)).data
            wrong = sum(a != b for a, b in zip(got, data, strict=False)) + abs(len(got) - len(data))
            if wrong:
                result.wrong_bytes += wrong
                result.errors.append(f"client {index}: iteration {n}: {wrong} wrong bytes")
                return
            result.latencies.append(time.monotonic() - began)
            n += 1
            result.iterations = n
    except Exception as e:  # noqa: BLE001 - every failure is reported by the caller
        result.errors.append(f"client {index}: {e!r}")
    finally:
        c.close()


@dataclass
class LoadResult:
    """The clients' results and the wall time they took."""

    clients: list[ClientResult]
    seconds: float
    wedged: int  # clients still running long after the end

    @property
    def iterations(self) -> int:
        """MEMMOVEs completed and checked, all clients."""
        return sum(r.iterations for r in self.clients)

    @property
    def errors(self) -> list[str]:
        """Every failure other than a RESOURCE_EXHAUSTED refusal."""
        return [e for r in self.clients for e in r.errors]

    def latency(self, q: float) -> float:
        """The ``q`` quantile (0 < q < 1) of iteration latency, in seconds."""
        lat = sorted(x for r in self.clients for x in r.latencies)
        if len(lat) < 2:
            return lat[0] if lat else float("nan")
        return statistics.quantiles(lat, n=1000, method="inclusive")[round(q * 1000) - 1]


def run_load(address: str, clients: int, seconds: float, join_timeout: float = 300.0) -> LoadResult:
    """``clients`` concurrent clients of the cpu service at ``address`` for ``seconds``;
    client ``i`` runs on CPU ``i`` (the fabric needs at least ``clients`` CPUs)."""
    results = [ClientResult() for _ in range(clients)]
    began = time.monotonic()
    stop = began + seconds
    threads = [
        threading.Thread(target=run_client, args=(address, i, i, stop, results[i]), daemon=True) for i in range(clients)
    ]
    for t in threads:
        t.start()
    end = stop + join_timeout
    for t in threads:
        t.join(max(0.0, end - time.monotonic()))
    wedged = sum(t.is_alive() for t in threads)
    return LoadResult(results, time.monotonic() - began, wedged)
