"""Prometheus metrics of one svasim process, scraped over HTTP.

Every process keeps its metrics in a registry of its own (two servers in one test
process never share a counter) and serves it on ``host:metrics_port``. What it exports:

- per gRPC method and listener (``client``/``peer``), from a server interceptor:
  ``svasim_grpc_server_started_total``, ``svasim_grpc_server_handled_total`` (by
  ``grpc_code``, so errors are counted by code), the latency histogram
  ``svasim_grpc_server_handling_seconds`` and ``svasim_grpc_server_in_flight``; the names
  and labels follow go-grpc-prometheus, which Grafana dashboards for gRPC expect;
- the worker pool of each listener: ``svasim_grpc_workers`` (size) and
  ``svasim_grpc_workers_busy`` (a synchronous gRPC server holds one worker per call in
  flight, streams included);
- the request gate (client requests run one at a time, the others wait, up to a bound):
  ``svasim_request_gate_waiting`` and ``svasim_request_gate_max_queued``;
- the recorder: ``svasim_recorder_pending_transitions`` (the queue depth),
  ``svasim_recorder_committed_transitions_total``, ``svasim_recorder_write_failures_total``
  and the histogram ``svasim_recorder_commit_seconds`` of each store write;
- every work queue of every device: ``svasim_wq_occupancy``, ``svasim_wq_size`` and its
  accepted/retried/completed counters, read from the accel core at scrape time;
- ``svasim_health_serving`` per health service name, as the health watcher set it.

The endpoint speaks HTTPS with the client listener's certificate when that listener uses
TLS. The interceptor also keeps the start time of every call in flight, which is how the
health watcher (:mod:`svasim.rpc.health`) tells a wedged service.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple

import grpc
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, Info, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

#: Latency buckets of a gRPC call, in seconds: a Python gRPC call costs a few hundred
#: microseconds, a call that waits on peers and commits tens of milliseconds.
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)
#: Buckets of one store write (a group commit), in seconds.
COMMIT_BUCKETS = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)

_METHOD_LABELS = ("listener", "grpc_type", "grpc_service", "grpc_method")


def wrapped_once(made: dict[str, tuple[Any, Any]], method: str, handler: Any, wrap: Callable[[Any, str], Any]) -> Any:
    """``wrap(handler, method)``, made once per handler of a method and kept in ``made``
    (method -> (the handler, its wrapper)): a method's handler is the same object from
    call to call, so an interceptor need not wrap it on every call; another handler for
    the same method (a refusal while the process recovers, say) is wrapped anew."""
    found = made.get(method)
    if found is not None and found[0] is handler:
        return found[1]
    wrapped = wrap(handler, method)
    made[method] = (handler, wrapped)
    return wrapped


class InFlight(NamedTuple):
    """A call being served: where, what, and since when (``time.monotonic()`` seconds)."""

    listener: str
    grpc_service: str
    grpc_method: str
    started: float
    #: The call answers with a stream (it may rightly last as long as its client wants).
    streaming: bool


def split_method(full: str) -> tuple[str, str]:
    """``"/svasim.cpu.v1.CpuService/Enqcmd"`` -> ("svasim.cpu.v1.CpuService", "Enqcmd")."""
    service, _, method = full.lstrip("/").rpartition("/")
    return (service or "unknown", method or "unknown")


class _Method:
    """The metrics of one method on one listener, looked up once (a call then touches no
    label dictionary but that of its status code)."""

    def __init__(self, metrics: FabricMetrics, listener: str, grpc_type: str, full_method: str) -> None:
        service, method = split_method(full_method)
        self.metrics = metrics
        self.listener, self.service, self.method = listener, service, method
        self.labels = (listener, grpc_type, service, method)
        self.started = metrics.started.labels(*self.labels)
        self.handling = metrics.handling.labels(*self.labels)
        self.in_flight = metrics.in_flight.labels(listener, service, method)
        self._handled: dict[grpc.StatusCode, Any] = {}

    def handled(self, code: grpc.StatusCode) -> Any:
        """The counter of calls that ended with ``code``."""
        child = self._handled.get(code)
        if child is None:
            child = self._handled[code] = self.metrics.handled.labels(*self.labels, code.name)
        return child


@dataclass
class _Call:
    """Bookkeeping of one call; :meth:`finish` runs once, whichever path ends the call."""

    method: _Method
    token: int
    started: float
    _done: bool = False

    def finish(self, code: grpc.StatusCode) -> None:
        m = self.method
        with m.metrics._lock:
            if self._done:
                return
            self._done = True
            m.metrics._in_flight.pop(self.token, None)
        m.handled(code).inc()
        m.handling.observe(time.monotonic() - self.started)
        m.in_flight.dec()


class _WriteTimer:
    """Times one store write (a class, not a generator: every acknowledged request makes one)."""

    __slots__ = ("metrics", "start")

    def __init__(self, metrics: FabricMetrics) -> None:
        self.metrics = metrics
        self.start = 0.0

    def __enter__(self) -> None:
        self.start = time.monotonic()

    def __exit__(self, kind: type[BaseException] | None, *rest: object) -> None:
        m = self.metrics
        m._last_write_ok = kind is None
        m.commit_seconds.observe(time.monotonic() - self.start)


class FabricMetrics:
    """The metrics of one svasim process: a registry, the interceptors that feed it, and
    the collectors that read the recorder and the accelerators when it is scraped."""

    def __init__(self) -> None:
        """Make the registry and the metrics the interceptors feed."""
        self.registry = CollectorRegistry()
        self._lock = threading.Lock()
        self._in_flight: dict[int, InFlight] = {}
        self._tokens = itertools.count(1)
        self._workers: dict[str, int] = {}
        self._last_write_ok: bool | None = None
        self._http: Any = None
        self._http_thread: threading.Thread | None = None
        r = self.registry
        self.started = Counter(
            "svasim_grpc_server_started", "gRPC calls started on the server.", _METHOD_LABELS, registry=r
        )
        self.handled = Counter(
            "svasim_grpc_server_handled",
            "gRPC calls completed on the server, by status code.",
            (*_METHOD_LABELS, "grpc_code"),
            registry=r,
        )
        self.handling = Histogram(
            "svasim_grpc_server_handling_seconds",
            "Time from the start of a gRPC call to its status, in seconds.",
            _METHOD_LABELS,
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.in_flight = Gauge(
            "svasim_grpc_server_in_flight",
            "gRPC calls being served now.",
            ("listener", "grpc_service", "grpc_method"),
            registry=r,
        )
        self.commit_seconds = Histogram(
            "svasim_recorder_commit_seconds",
            "Duration of one store write of the recorder (a group commit), in seconds, failed ones included.",
            buckets=COMMIT_BUCKETS,
            registry=r,
        )
        self.health_serving = Gauge(
            "svasim_health_serving",
            "1 while the health service reports SERVING for the service name, 0 otherwise.",
            ("grpc_service",),
            registry=r,
        )
        self._info = Info("svasim_build", "The svasim process: version, run, hosted services.", registry=r)
        r.register(_PoolCollector(self))

    def set_info(self, **fields: str) -> None:
        """Label ``svasim_build_info`` with ``fields`` (version, run, services)."""
        self._info.info(fields)

    # -- the interceptor ----------------------------------------------------------------

    def interceptor(self, listener: str, *, workers: int) -> grpc.ServerInterceptor:
        """The interceptor of one listener, whose server has ``workers`` worker threads."""
        self._workers[listener] = workers
        return MetricsInterceptor(self, listener)

    def _begin(self, method: _Method, *, streaming: bool) -> _Call:
        method.started.inc()
        method.in_flight.inc()
        now = time.monotonic()
        with self._lock:
            token = next(self._tokens)
            self._in_flight[token] = InFlight(method.listener, method.service, method.method, now, streaming)
        return _Call(method, token, now)

    def calls_in_flight(self) -> list[InFlight]:
        """The calls being served now, oldest first."""
        with self._lock:
            calls = list(self._in_flight.values())
        return sorted(calls, key=lambda c: c.started)

    def busy_workers(self, listener: str) -> int:
        """Worker threads of ``listener`` serving a call now."""
        with self._lock:
            return sum(1 for c in self._in_flight.values() if c.listener == listener)

    def watch(self, *, recorder: Any, cores: Mapping[str, Any]) -> None:
        """Export what a process's recorder and cores hold: the recorder's queue and
        commits, the request gate's queue, and the accel core's work queues."""
        self.watch_recorder(recorder)
        if "accel" in cores:
            self.watch_accel(cores["accel"])
        # The cores of a process share one gate.
        gate = next((c.gate for c in cores.values() if getattr(c, "gate", None) is not None), None)
        if gate is not None:
            self.registry.register(_GateCollector(gate))

    # -- the recorder -------------------------------------------------------------------

    def watch_recorder(self, recorder: Any) -> None:
        """Export ``recorder``'s queue depth and counters, and time its store writes.

        The commit histogram needs the recorder's ``write_observer`` hook; without it
        (an older recorder) only the counters are exported.
        """
        self.registry.register(_RecorderCollector(recorder))
        if hasattr(recorder, "write_observer"):
            recorder.write_observer = self.observe_write

    def observe_write(self, transitions: int) -> _WriteTimer:
        """Time one store write of ``transitions`` transitions and note whether it failed
        (a ``with`` block around the write)."""
        return _WriteTimer(self)

    @property
    def last_write_ok(self) -> bool | None:
        """Whether the recorder's last store write succeeded; None before the first."""
        return self._last_write_ok

    # -- the accelerators ---------------------------------------------------------------

    def watch_accel(self, core: Any) -> None:
        """Export the work queues of the devices of an accel core (``core.accel.devices``)."""
        self.registry.register(_WqCollector(core))

    # -- the endpoint -------------------------------------------------------------------

    def serve(self, host: str, port: int, *, certfile: str = "", keyfile: str = "") -> int:
        """Serve the registry over HTTP on ``host:port`` (0 picks a free port); returns the port.

        With ``certfile`` and ``keyfile`` (PEM, the client listener's), over HTTPS. Raises
        OSError (the address in use, say) without leaving anything open.
        """
        server, thread = start_http_server(
            port, addr=host, registry=self.registry, certfile=certfile or None, keyfile=keyfile or None
        )
        self._http, self._http_thread = server, thread
        return int(server.server_port)

    @property
    def port(self) -> int:
        """Port of the HTTP endpoint; 0 when it is not served."""
        return int(self._http.server_port) if self._http is not None else 0

    def close(self) -> None:
        """Stop the HTTP endpoint and free its port. Idempotent."""
        server, self._http = self._http, None
        if server is not None:
            server.shutdown()
            server.server_close()
        if self._http_thread is not None:
            self._http_thread.join(5.0)
            self._http_thread = None


class MetricsInterceptor(grpc.ServerInterceptor):
    """Counts, times and tracks every call of one listener, unary and streaming alike."""

    def __init__(self, metrics: FabricMetrics, listener: str) -> None:
        self._metrics = metrics
        self._listener = listener
        self._methods: dict[tuple[str, str], _Method] = {}
        # method -> (the handler it had, the handler made of it).
        self._made: dict[str, tuple[grpc.RpcMethodHandler, grpc.RpcMethodHandler]] = {}

    def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], grpc.RpcMethodHandler | None],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler | None:
        """The method's handler, wrapped so that each call is counted and timed."""
        handler = continuation(handler_call_details)
        if handler is None:  # an unknown method: gRPC answers UNIMPLEMENTED itself
            return None
        # Wrapped once per handler: an inner interceptor may hand out another handler from
        # one call to the next (a refusal while the process recovers, say), which is then
        # wrapped anew; the same handler again gets the same wrapper.
        return wrapped_once(self._made, handler_call_details.method, handler, self._wrap)

    def _method(self, grpc_type: str, method: str) -> _Method:
        """The metrics of ``method``, looked up once (a race only builds the same twice)."""
        key = (grpc_type, method)
        found = self._methods.get(key)
        if found is None:
            found = self._methods[key] = _Method(self._metrics, self._listener, grpc_type, method)
        return found

    def _wrap(self, handler: grpc.RpcMethodHandler, method: str) -> grpc.RpcMethodHandler:
        m = self._metrics
        if handler.unary_unary or handler.stream_unary:
            behaviour: Callable[..., Any] = handler.unary_unary or handler.stream_unary  # type: ignore[assignment]
            grpc_type = "unary" if handler.unary_unary else "client_stream"
            unary_method = self._method(grpc_type, method)

            def unary(request: Any, context: grpc.ServicerContext) -> Any:
                call = m._begin(unary_method, streaming=False)
                try:
                    reply = behaviour(request, context)
                except BaseException:
                    call.finish(_code(context, grpc.StatusCode.UNKNOWN))
                    raise
                call.finish(_code(context, grpc.StatusCode.OK))
                return reply

            factory = (
                grpc.unary_unary_rpc_method_handler if handler.unary_unary else grpc.stream_unary_rpc_method_handler
            )
            return factory(unary, handler.request_deserializer, handler.response_serializer)

        streamer: Callable[..., Iterator[Any]] = handler.unary_stream or handler.stream_stream  # type: ignore[assignment]
        grpc_type = "server_stream" if handler.unary_stream else "bidi_stream"
        stream_method = self._method(grpc_type, method)

        def stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            call = m._begin(stream_method, streaming=True)
            # A stream the client cancels is never iterated to its end: the call's
            # termination callback closes the books then.
            context.add_callback(lambda: call.finish(_code(context, grpc.StatusCode.CANCELLED)))
            try:
                yield from streamer(request, context)
            except BaseException as e:
                if not isinstance(e, GeneratorExit):
                    call.finish(_code(context, grpc.StatusCode.UNKNOWN))
                raise
            call.finish(_code(context, grpc.StatusCode.OK))

        factory = (
            grpc.unary_stream_rpc_method_handler if handler.unary_stream else grpc.stream_stream_rpc_method_handler
        )
        return factory(stream, handler.request_deserializer, handler.response_serializer)


def _code(context: grpc.ServicerContext, default: grpc.StatusCode) -> grpc.StatusCode:
    """The status the call ends with: what the handler set or aborted with, else ``default``."""
    # ServicerContext.code() is missing from the type stubs, and from contexts of old grpcio.
    read = getattr(context, "code", None)
    code = read() if read is not None else None
    return code if isinstance(code, grpc.StatusCode) else default


class _PoolCollector(Collector):
    """Worker pool size and use of each listener, at scrape time."""

    def __init__(self, metrics: FabricMetrics) -> None:
        self._metrics = metrics

    def collect(self) -> Iterable[Metric]:
        size = GaugeMetricFamily(
            "svasim_grpc_workers", "Worker threads of the listener's gRPC server.", labels=["listener"]
        )
        busy = GaugeMetricFamily(
            "svasim_grpc_workers_busy", "Worker threads of the listener serving a call now.", labels=["listener"]
        )
        for listener, workers in sorted(self._metrics._workers.items()):
            size.add_metric([listener], workers)
            busy.add_metric([listener], self._metrics.busy_workers(listener))
        return [size, busy]


class _GateCollector(Collector):
    """The queue of client requests waiting for their turn (the request gate), at scrape time."""

    def __init__(self, gate: Any) -> None:
        self._gate = gate

    def collect(self) -> Iterable[Metric]:
        waiting = GaugeMetricFamily(
            "svasim_request_gate_waiting", "Client requests waiting for their turn through the process."
        )
        waiting.add_metric([], self._gate.waiting)
        limit = GaugeMetricFamily(
            "svasim_request_gate_max_queued", "Client requests that may wait before more are refused (saturation)."
        )
        limit.add_metric([], self._gate.max_queued)
        return [waiting, limit]


class _RecorderCollector(Collector):
    """The recorder's queue depth and counters, at scrape time."""

    def __init__(self, recorder: Any) -> None:
        self._recorder = recorder

    def collect(self) -> Iterable[Metric]:
        stats = self._recorder.stats()
        pending = GaugeMetricFamily(
            "svasim_recorder_pending_transitions", "Transitions appended and not yet committed (the queue depth)."
        )
        pending.add_metric([], stats["pending"])
        committed = CounterMetricFamily(
            "svasim_recorder_committed_transitions", "Transitions committed to the store by this process."
        )
        committed.add_metric([], stats["committed"])
        batches = CounterMetricFamily("svasim_recorder_batches", "Store writes (group commits) that succeeded.")
        batches.add_metric([], stats["batches"])
        failures = CounterMetricFamily("svasim_recorder_write_failures", "Store writes that failed (and were retried).")
        failures.add_metric([], stats["failures"])
        return [pending, committed, batches, failures]


class _WqCollector(Collector):
    """Occupancy and counters of every WQ of an accel core, at scrape time.

    Read without the core's lock, so that a scrape never waits behind a request (or a
    wedged one): a copy of the device list and the length of a deque are atomic in
    CPython, and a count a request is changing is at worst one scrape early.
    """

    def __init__(self, core: Any) -> None:
        self._core = core

    def collect(self) -> Iterable[Metric]:
        labels = ["device", "wq"]
        occupancy = GaugeMetricFamily("svasim_wq_occupancy", "Descriptors in the work queue.", labels=labels)
        size = GaugeMetricFamily("svasim_wq_size", "Entries of the work queue (WQCFG wq_size).", labels=labels)
        enabled = GaugeMetricFamily("svasim_wq_enabled", "1 while the work queue is enabled.", labels=labels)
        accepted = CounterMetricFamily("svasim_wq_accepted", "Descriptors the work queue accepted.", labels=labels)
        retried = CounterMetricFamily(
            "svasim_wq_retried", "Submissions the work queue refused (retry, ZF=1).", labels=labels
        )
        completed = CounterMetricFamily(
            "svasim_wq_completed", "Descriptors of the work queue completed.", labels=labels
        )
        devices = list(self._core.accel.devices.values())
        for dev in sorted(devices, key=lambda d: d.name):
            for wq in list(dev.wqs):
                key = [dev.name, str(wq.id)]
                occupancy.add_metric(key, len(wq.queue))
                size.add_metric(key, wq.cfg.wq_size)
                enabled.add_metric(key, 1 if wq.cfg.enabled else 0)
                accepted.add_metric(key, wq.accepted)
                retried.add_metric(key, wq.retried)
                completed.add_metric(key, wq.completed)
        return [occupancy, size, enabled, accepted, retried, completed]
