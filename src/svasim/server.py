"""Assemble and serve a svasim process: store, recorder, cores, wiring, gRPC listeners.

A process has a client listener (``host:port``) offering what a program on the host
could do on real hardware, plus the read-only trace service, health and reflection; and,
when peers elsewhere call it back, a peer listener (``peer_host:peer_port``, loopback by
default, mutual TLS when configured) offering the peer API: host memory for DMA and page
walks, the IOMMU, the device side of the accelerators. A call's listener decides whether
it is a client's (recorded as an input) or a peer's; nothing a caller sends does.

``create_server(config)`` checks the configuration, binds both listeners (so a port in
use fails before anything is created), then opens the store, creates the run, builds
the cores and starts serving; it returns the running :class:`FabricServer` (port 0 binds
a free port, for tests). On a run that has events it first resumes the run
(:mod:`svasim.recovery`): health says NOT_SERVING and every other call is refused with
UNAVAILABLE (reason RECOVERING) until the state is rebuilt, checked and the restart
recorded. Each start has a fresh incarnation, carried to and checked by its peers
(:mod:`svasim.wiring.incarnation`). ``serve(config)`` runs one until SIGTERM or SIGINT and then
stops gracefully: in-flight requests get ``config.grace`` seconds, and everything
recorded is committed before exit.
"""

from __future__ import annotations

import contextlib
import logging
import signal
import threading
from collections.abc import Iterator
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, cast

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from svasim import __version__, recovery
from svasim.config import MODEL_SERVICES, ConfigError, FabricConfig, hostport, load_costs
from svasim.model.accel import Device, default_devices
from svasim.model.costs import CostTable
from svasim.model.errors import SimError
from svasim.model.evl import EventLog
from svasim.model.policies import policy_names
from svasim.rpc.accel import AccelCore, AccelDeviceServicer, AccelServicer
from svasim.rpc.common import ParseRequests, RequestGate
from svasim.rpc.cpu import CpuCore, CpuServicer, HostMemoryServicer
from svasim.rpc.health import HealthWatcher
from svasim.rpc.iommu import IommuCore, IommuDebugServicer, IommuServicer
from svasim.rpc.metrics import FabricMetrics
from svasim.rpc.rpc_errors import to_status
from svasim.rpc.trace import TraceAdminServicer, TraceServicer
from svasim.store import Durability, Recorder, Store
from svasim.store.snapshots import Snapshotter, snapshot_every
from svasim.wiring.grpc_ports import MAX_MESSAGE, GrpcAccelPort, GrpcHostPort, GrpcIommuPort
from svasim.wiring.incarnation import Identity, Incarnations, new_incarnation
from svasim.wiring.local import LocalPort
from svasim.wiring.tls import client_server_credentials, peer_channel_credentials, peer_server_credentials
from svasim_api.accel.v1 import accel_pb2, accel_pb2_grpc
from svasim_api.cpu.v1 import cpu_pb2, cpu_pb2_grpc
from svasim_api.iommu.v1 import iommu_pb2, iommu_pb2_grpc
from svasim_api.trace.v1 import trace_pb2, trace_pb2_grpc

log = logging.getLogger("svasim.server")


def _name(module: Any, service: str) -> str:
    return str(module.DESCRIPTOR.services_by_name[service].full_name)


#: Services of the client listener, by hosted service.
CLIENT_SERVICES = {
    "cpu": [_name(cpu_pb2, "CpuService")],
    "iommu": [_name(iommu_pb2, "IommuDebugService")],
    "accel": [_name(accel_pb2, "AccelService")],
    "trace": [_name(trace_pb2, "TraceService")],
}
#: Services of the peer listener, by hosted service (peers call AccelService's Advance).
PEER_SERVICES = {
    "cpu": [_name(cpu_pb2, "HostMemoryService")],
    "iommu": [_name(iommu_pb2, "IommuService")],
    "accel": [_name(accel_pb2, "AccelDeviceService"), _name(accel_pb2, "AccelService")],
    "trace": [_name(trace_pb2, "TraceAdminService")],
}
#: Every service name a process hosting ``svc`` reports in health, on either listener.
SERVICE_NAMES = {svc: sorted({*CLIENT_SERVICES[svc], *PEER_SERVICES[svc]}) for svc in CLIENT_SERVICES}
#: Worker threads of each listener beyond the client requests the gate lets wait
#: (``max_queued``). Client requests run one at a time per process (the request gate), and
#: peer calls have a pool of their own, so a call-back from a peer never waits for a
#: worker held by a client request. Every request the gate lets wait has a worker, and
#: 16 more answer reads and refusals: so the gate, not a queue inside gRPC, is where
#: requests wait, and its bound is the one that holds. (With 16 workers in all and 32
#: clients on the split fabric, half the calls waited unseen inside gRPC and the other
#: half were refused and retried: 4,240 refusals in 20 s, 57 iterations/s against 77.)
SPARE_WORKERS = 16


def workers(config: FabricConfig) -> int:
    """Worker threads of each of the process's listeners."""
    return config.max_queued + SPARE_WORKERS


GRPC_OPTIONS = [
    ("grpc.max_receive_message_length", MAX_MESSAGE),
    ("grpc.max_send_message_length", MAX_MESSAGE),
    ("grpc.keepalive_time_ms", 30000),
    ("grpc.keepalive_timeout_ms", 10000),
    ("grpc.http2.max_pings_without_data", 0),
    ("grpc.keepalive_permit_without_calls", 1),
    # A second server on a port in use must fail, not share the port (gRPC's default
    # SO_REUSEPORT would spread connections between two runs).
    ("grpc.so_reuseport", 0),
]


class RecoveryGate(grpc.ServerInterceptor):
    """Refuses every call but health and reflection until ``open`` is set: while a process
    rebuilds its state, a request would see (or change) a state that is not yet the run's."""

    ALWAYS = ("/grpc.health.", "/grpc.reflection.")

    def __init__(self) -> None:
        self.open = threading.Event()

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        """The method's handler, or one that refuses with UNAVAILABLE (reason RECOVERING)."""
        handler = continuation(handler_call_details)
        if self.open.is_set() or handler is None or handler_call_details.method.startswith(self.ALWAYS):
            return handler

        def refuse(request: Any, context: grpc.ServicerContext) -> Any:
            context.abort_with_status(
                to_status(
                    Recovering("RECOVERING", "the process is rebuilding the run's state from the store; retry shortly")
                )
            )

        def refuse_stream(request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
            refuse(request, context)
            yield from ()

        de, ser = handler.request_deserializer, handler.response_serializer
        if handler.unary_unary is not None:
            return grpc.unary_unary_rpc_method_handler(refuse, de, ser)
        if handler.unary_stream is not None:
            return grpc.unary_stream_rpc_method_handler(refuse_stream, de, ser)
        if handler.stream_unary is not None:
            return grpc.stream_unary_rpc_method_handler(refuse, de, ser)
        if handler.stream_stream is not None:
            return grpc.stream_stream_rpc_method_handler(refuse_stream, de, ser)
        return handler


class Recovering(SimError):
    """The process is rebuilding its state; the request may be retried."""

    code = "UNAVAILABLE"


class BindError(OSError):
    """A listener's address cannot be bound (in use, or not an address of this host)."""


@dataclass
class FabricServer:
    """A running svasim process."""

    config: FabricConfig
    server: grpc.Server
    port: int
    store: Store
    run_id: str
    recorder: Recorder
    health: health.HealthServicer
    cores: dict[str, Any] = field(default_factory=dict)
    ports: list[Any] = field(default_factory=list)
    peer_server: grpc.Server | None = None
    peer_port: int = 0
    #: This start's incarnation id (carried to peers, recorded on a resume).
    incarnation: str = ""
    #: What the resume did, when this process resumed a run.
    resumed: recovery.Resumed | None = None
    #: What the rebuild by fold did, when this process is a member of a split fabric
    #: that resumed its part of a run.
    rebuilt: recovery.Rebuilt | None = None
    #: The thread keeping the run's snapshots up to date (the trace host's, or svasim up's).
    snapshotter: Snapshotter | None = None
    #: The process's Prometheus metrics and its health watcher.
    metrics: FabricMetrics | None = None
    watcher: HealthWatcher | None = None
    _stopped: bool = False

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        return hostport(self.config.host, self.port)

    @property
    def peer_address(self) -> str:
        """host:port peers connect to; "" when this process has no peer listener."""
        return hostport(self.config.peer_host, self.peer_port) if self.peer_server is not None else ""

    @property
    def metrics_port(self) -> int:
        """Port of the Prometheus endpoint (``/metrics`` on the client host); 0 when off."""
        return self.metrics.port if self.metrics is not None else 0

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: refuse new calls, finish in-flight ones, commit what was recorded."""
        if self._stopped:
            return
        self._stopped = True
        if self.watcher is not None:
            self.watcher.stop()
        if self.snapshotter is not None:
            self.snapshotter.stop()
        self.health.enter_graceful_shutdown()
        g = self.config.grace if grace is None else grace
        # Clients first: their requests in flight may still need the peers' call-backs.
        self.server.stop(g).wait()
        if self.peer_server is not None:
            self.peer_server.stop(g).wait()
        for p in self.ports:
            p.close()
        self.recorder.close()
        self.store.close()
        if self.metrics is not None:
            self.metrics.close()


def fabric_devices(config: FabricConfig) -> list[Device]:
    """The accelerator devices a fabric boots with: their shape (engines, groups, WQs),
    how they run (auto_run, async_page_requests) and their event log (GENCAP evl_support,
    at ``evl_size`` entries, as idxd_init_evl() sets it up)."""
    devices = default_devices(config.engines, config.groups, config.wqs)
    for d in devices:
        d.auto_run = config.auto_run
        d.async_page_requests = config.async_page_requests
        if config.evl:
            d.evl_support = 1
            d.evl = EventLog(config.evl_size)
    return devices


def run_config(config: FabricConfig, costs: CostTable) -> dict[str, Any]:
    """The fabric configuration recorded with the run."""
    return {
        "services": list(config.services),
        "cpus": config.cpus,
        "policy": config.policy,
        "early_free": config.early_free,
        "memory": config.memory,
        "costs": costs.as_dict(),
        "devices": [
            {
                "name": d.name,
                "engines": len(d.engines),
                "groups": len(d.groups),
                "wqs": [
                    {"id": w.id, "mode": w.cfg.mode, "size": w.cfg.wq_size, "threshold": w.cfg.wq_thresh} for w in d.wqs
                ],
                "auto_run": d.auto_run,
                "async_page_requests": d.async_page_requests,
                "evl_support": d.evl_support,
                "evl_size": d.evl.size,
            }
            for d in fabric_devices(config)
        ],
        "iommu": {"prq_entries": config.prq_entries},
    }


def _native_factory() -> Any:
    from svasim.native.host import live_factory

    return live_factory


def build_cores(
    config: FabricConfig, costs: CostTable, recorder: Any, *, incarnations: Incarnations | None = None
) -> tuple[dict[str, Any], list[Any]]:
    """The model-owning cores this process hosts, wired to each other in-process and to
    the peers it does not host over gRPC. Returns (cores by service, gRPC ports).

    With ``incarnations``, every peer call carries this process's incarnation and checks
    the peer's (see :mod:`svasim.wiring.incarnation`)."""
    # One request at a time through this process's client-facing API: a run is then a
    # sequence of whole requests, which is what replay feeds back.
    gate = RequestGate(max_queued=config.max_queued, timeout=config.queue_timeout)
    common = dict(recorder=recorder, gate=gate, durability=config.durability)
    cores: dict[str, Any] = {}
    remote: list[Any] = []
    credentials = peer_channel_credentials(config)

    def port(name: str, grpc_cls: Any) -> Any:
        if name in config.services:
            return LocalPort(lambda: cores[name])
        p = grpc_cls(
            config.peers[name],
            recorder,
            timeout=config.peer_timeout,
            credentials=credentials,
            incarnations=incarnations,
        )
        remote.append(p)
        return p

    if "cpu" in config.services:
        cores["cpu"] = CpuCore(
            accel=port("accel", GrpcAccelPort),
            iommu=port("iommu", GrpcIommuPort),
            ncpus=config.cpus,
            policy=config.policy,
            costs=costs,
            early_free=config.early_free,
            memory_size=config.memory,
            native_factory=_native_factory() if config.native else None,
            **common,
        )
    if "iommu" in config.services:
        cores["iommu"] = IommuCore(
            host=port("cpu", GrpcHostPort),
            ats=port("accel", GrpcAccelPort),
            costs=costs,
            devices=tuple(d.name for d in default_devices()),
            prq_entries=config.prq_entries,
            **common,
        )
    if "accel" in config.services:
        cores["accel"] = AccelCore(
            iommu=port("iommu", GrpcIommuPort),
            host=port("cpu", GrpcHostPort),
            costs=costs,
            devices=fabric_devices(config),
            **common,
        )
    for core in cores.values():
        core.incarnations = incarnations
    return cores, remote


def holds_state(cores: dict[str, Any]) -> Any:
    """``holds(service)``: what the cores of this process hold of ``service``'s state."""

    def holds(service: str) -> str:
        found = [c.holds_state_of(service) for name, c in cores.items() if name != service]
        return "; ".join(f for f in found if f)

    return holds


def _check(config: FabricConfig) -> CostTable:
    config.check()
    if config.policy not in policy_names():
        raise ConfigError(f"unknown PASID policy {config.policy!r}; known: {', '.join(policy_names())}")
    if not 1 <= config.cpus <= 256:
        raise ConfigError(f"cpus must be 1..256, got {config.cpus}")
    return load_costs(config.costs_file) if config.costs_file else CostTable()


def _bind(server: grpc.Server, host: str, port: int, credentials: grpc.ServerCredentials | None, what: str) -> int:
    address = hostport(host, port)
    try:
        bound = (
            server.add_insecure_port(address) if credentials is None else server.add_secure_port(address, credentials)
        )
    except RuntimeError:
        bound = 0
    if bound == 0:
        raise BindError(f"cannot listen on {address} ({what} listener): address in use or not of this host")
    return bound


def _release(server: grpc.Server) -> None:
    # A server that never started keeps its bound port until it is garbage collected;
    # starting and stopping it at once (it serves nothing yet) frees the port now.
    with contextlib.suppress(ValueError):  # it had started
        server.start()
    server.stop(None).wait()


def _serve_health_and_reflection(server: grpc.Server, health_servicer: health.HealthServicer, names: list[str]) -> None:
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)


def create_server(config: FabricConfig) -> FabricServer:
    """Check ``config``, bind the listeners, build the process's services and start them;
    on a run with events, resume it first.

    Raises ConfigError or BindError before anything is created, and
    :class:`svasim.recovery.ResumeRefused` (nothing recorded) for a run this process
    cannot resume; if a later step fails, what was opened (listeners, store, recorder,
    peer channels) is released again.
    """
    costs = _check(config)
    try:
        every = snapshot_every()
    except ValueError as e:
        raise ConfigError(str(e)) from None
    client_credentials = client_server_credentials(config)
    peer_credentials = peer_server_credentials(config)
    peer_port = config.peer_listener_port()
    with contextlib.ExitStack() as undo:
        gate = RecoveryGate()
        # Outermost, so that the calls the recovery gate refuses are counted too.
        metrics = FabricMetrics()
        pool = workers(config)
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=pool, thread_name_prefix="svasim-rpc"),
            options=GRPC_OPTIONS,
            interceptors=[metrics.interceptor("client", workers=pool), gate, ParseRequests()],
        )
        undo.callback(_release, server)
        bound = _bind(server, config.host, config.port, client_credentials, "client")
        peer_server = None
        peer_bound = 0
        if peer_port is not None:
            peer_server = grpc.server(
                futures.ThreadPoolExecutor(max_workers=pool, thread_name_prefix="svasim-peer"),
                options=GRPC_OPTIONS,
                interceptors=[metrics.interceptor("peer", workers=pool), gate, ParseRequests()],
            )
            undo.callback(_release, peer_server)
            peer_bound = _bind(peer_server, config.peer_host, peer_port, peer_credentials, "peer")
        if config.metrics_port is not None:
            try:
                # Over HTTPS with the client listener's certificate when it has one.
                metrics.serve(config.host, config.metrics_port, certfile=config.tls_cert, keyfile=config.tls_key)
            except OSError as e:
                raise BindError(
                    f"cannot listen on {hostport(config.host, config.metrics_port)} (metrics endpoint): "
                    f"{e.strerror or e}"
                ) from None
            undo.callback(metrics.close)

        store = undo.enter_context(Store.open(config.db, migrate=config.migrate))
        meta: dict[str, Any] = dict(
            config=run_config(config, costs), policy=config.policy, seed=config.seed, version=__version__
        )
        run = store.get_or_create_run(config.run, **meta) if config.run else store.create_run(name=None, **meta)
        durability = cast(Durability, config.durability)  # checked by config.check()
        hosted: dict[str, Any] = {}
        incarnations = Incarnations(
            Identity(new_incarnation(), config.services, run.id),
            holds_state(hosted),
            lambda svc, inc, last: recovery.reconcile_check(store, run.id, svc, inc, last),
        )
        # A run with events is resumed: by re-execution when this process hosts the whole
        # fabric; by fold when it hosts an iommu or accel member of a split fabric that
        # has events; by re-execution against the record when it hosts a cpu member.
        whole = all(s in config.services for s in MODEL_SERVICES)
        resuming = run.event_count > 0 and whole
        rebuild = () if whole else recovery.members_to_rebuild(store, run, config.services)
        if resuming or rebuild:
            recovery.check_settings(run, run.config, run_config(config, costs))
        starts = recovery.recorded_starts(store, run.id) if run.event_count > 0 else []
        # A caller naming an earlier start of our services holds state we rebuild; the
        # peers are pinned at what the run last recorded of them.
        incarnations.rebuilt_from = frozenset(
            s.incarnation for s in starts if s.service in config.services and (resuming or s.service in rebuild)
        )
        for s in starts:
            incarnations.pin(s.service, s.incarnation)
        recorder = undo.enter_context(Recorder(store, run.id, durability=durability))
        if resuming:
            from svasim.replay import Fabric  # replay builds its fabrics with build_cores

            recorded = store.events(run.id, limit=None)
            checker = recovery.CheckingRecorder(run, recorded)
            rebuilt = Fabric(config, costs, checker, run.id)
            cores, remote = rebuilt.cores, list[Any]()
            for core in cores.values():
                core.incarnations = incarnations
        else:
            cores, remote = build_cores(config, costs, recorder, incarnations=incarnations)
        hosted.update(cores)
        metrics.set_info(version=__version__, run=run.id, services=",".join(config.services))
        metrics.watch(recorder=recorder, cores=cores)
        for p in remote:
            undo.callback(p.close)

        if "cpu" in cores:
            cpu_pb2_grpc.add_CpuServiceServicer_to_server(CpuServicer(cores["cpu"], run.id), server)
        if "iommu" in cores:
            iommu_pb2_grpc.add_IommuDebugServiceServicer_to_server(IommuDebugServicer(cores["iommu"]), server)
        if "accel" in cores:
            accel_pb2_grpc.add_AccelServiceServicer_to_server(AccelServicer(cores["accel"]), server)
        if "trace" in config.services:
            trace_pb2_grpc.add_TraceServiceServicer_to_server(TraceServicer(store, recorder), server)
        if peer_server is not None:
            if "cpu" in cores:
                cpu_pb2_grpc.add_HostMemoryServiceServicer_to_server(HostMemoryServicer(cores["cpu"]), peer_server)
            if "iommu" in cores:
                iommu_pb2_grpc.add_IommuServiceServicer_to_server(IommuServicer(cores["iommu"]), peer_server)
            if "accel" in cores:
                accel_pb2_grpc.add_AccelDeviceServiceServicer_to_server(
                    AccelDeviceServicer(cores["accel"]), peer_server
                )
                accel_pb2_grpc.add_AccelServiceServicer_to_server(AccelServicer(cores["accel"], peer=True), peer_server)
            if "trace" in config.services:
                trace_pb2_grpc.add_TraceAdminServiceServicer_to_server(TraceAdminServicer(store, recorder), peer_server)

        health_servicer = health.HealthServicer()
        recovering = resuming or bool(rebuild)
        status = health_pb2.HealthCheckResponse.NOT_SERVING if recovering else health_pb2.HealthCheckResponse.SERVING
        for svc in config.services:
            for n in SERVICE_NAMES[svc]:
                health_servicer.set(n, status)
        health_servicer.set("", status)
        _serve_health_and_reflection(server, health_servicer, [n for s in config.services for n in CLIENT_SERVICES[s]])
        if not recovering:
            # Nothing to rebuild: the start is recorded (every start is, the first one
            # too), then the process serves from the first call.
            first = recovery.start_events(config.services, incarnations.incarnation, 0, resumed=False)
            if first:
                recorder.append(first)
                recorder.wait_durable(first[-1])
            gate.open.set()
        if peer_server is not None:
            _serve_health_and_reflection(
                peer_server, health_servicer, [n for s in config.services for n in PEER_SERVICES[s]]
            )
            peer_server.start()
        server.start()
        resumed = None
        folded = None
        done: list[Any] = []
        if resuming:
            resumed = recovery.resume(rebuilt, store, run, recorded, checker)
            for core in cores.values():
                core.recorder = recorder
            # The rest of a request cut short, then the restart: both before any new request.
            done = [
                *resumed.completed,
                *recovery.start_events(config.services, incarnations.incarnation, resumed.after_seq, resumed=True),
            ]
            log.info(
                "resumed run %s: %d inputs re-executed in %.2fs, identical to the record up to seq %d%s",
                run.id,
                resumed.inputs,
                resumed.seconds,
                resumed.after_seq,
                f"; completed the request cut short with {len(resumed.completed)} transitions"
                if resumed.completed
                else "",
            )
        elif rebuild:
            folded = recovery.rebuild_by_fold(store, run, cores, rebuild)
            # What a descriptor cut short by the kill had changed goes back first (it runs
            # again), then the restart.
            done = [
                *folded.rollback,
                *folded.reset,
                *folded.completed,
                *recovery.start_events(
                    config.services, incarnations.incarnation, folded.after_seq, resumed=True, rebuilt=folded.how
                ),
            ]
            if folded.how == "re-execution":
                log.info(
                    "resumed the %s part of run %s by re-executing %d inputs (%d peer states rebuilt from the fold "
                    "on the way) up to seq %d in %.2fs, identical to the record%s",
                    ",".join(rebuild),
                    run.id,
                    folded.inputs,
                    folded.resyncs,
                    folded.after_seq,
                    folded.seconds,
                    f"; completed the request cut short with {len(folded.completed)} transitions"
                    if folded.completed
                    else "",
                )
            else:
                log.info(
                    "resumed the %s part of run %s by fold: %d entities (%d queued descriptors from their inputs) "
                    "from %s up to seq %d in %.2fs, identical to the record's fold%s",
                    ",".join(rebuild),
                    run.id,
                    folded.entities,
                    folded.descriptors,
                    f"the snapshot at seq {folded.snapshot_seq}" if folded.snapshot_seq else "the first event",
                    folded.after_seq,
                    folded.seconds,
                    f"; a descriptor cut short is queued again ({len(folded.rollback)} entities put back)"
                    if folded.rollback
                    else "",
                )
        if done:
            recorder.append(done)
            recorder.wait_durable(done[-1])
        if folded is not None and "iommu" in rebuild and "accel" not in config.services:
            # Devices may cache translations an invalidation cut short by the kill never
            # reached: they drop them before this iommu serves again.
            flushed = recovery.flush_device_tlbs(cores["iommu"], done[-1], run)
            if flushed is None:
                log.warning(
                    "the devices behind the restarted iommu could not be reached to drop their cached "
                    "translations; a device that was down comes back with its device TLB empty"
                )
            else:
                log.info("the devices behind the restarted iommu dropped %d cached translations", flushed)
        if recovering:
            for svc in config.services:
                for n in SERVICE_NAMES[svc]:
                    health_servicer.set(n, health_pb2.HealthCheckResponse.SERVING)
            health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
        snapshotter = None
        if every and ("trace" in config.services or whole):
            snapshotter = Snapshotter(store, run.id, every).start()
            undo.callback(snapshotter.stop)
        # From now on NOT_SERVING while a service cannot work: a peer unreachable, the
        # store unwritable, a call wedged (svasim.rpc.health).
        watcher = HealthWatcher.for_process(config, health_servicer, SERVICE_NAMES, metrics)
        watcher.start()
        gate.open.set()
        undo.pop_all()
    log.info(
        "svasim %s serving %s on %s:%d%s (run %s)",
        __version__,
        ",".join(config.services),
        config.host,
        bound,
        f", peers on {config.peer_host}:{peer_bound}" if peer_server is not None else "",
        run.id,
    )
    return FabricServer(
        config,
        server,
        bound,
        store,
        run.id,
        recorder,
        health_servicer,
        cores,
        remote,
        peer_server,
        peer_bound,
        incarnation=incarnations.incarnation,
        resumed=resumed,
        rebuilt=folded,
        snapshotter=snapshotter,
        metrics=metrics,
        watcher=watcher,
    )


def serve(config: FabricConfig, *, ready: Any = None) -> None:
    """Run until SIGTERM/SIGINT, then stop gracefully."""
    fab = create_server(config)
    stop = threading.Event()

    def on_signal(signum: int, _frame: Any) -> None:
        log.info("signal %d: stopping (grace %.1fs)", signum, config.grace)
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    if ready is not None:
        ready(fab)
    try:
        while not stop.wait(0.5):
            pass
    finally:
        fab.stop()
