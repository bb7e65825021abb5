"""Assemble and serve a svasim process: store, recorder, cores, wiring, gRPC server.

``create_server(config)`` builds and starts everything and returns the running
:class:`FabricServer` (port 0 binds a free port, for tests); ``serve(config)`` runs
one until SIGTERM or SIGINT and then stops gracefully: in-flight requests get
``config.grace`` seconds, and everything recorded is committed before exit.
"""

from __future__ import annotations

import logging
import signal
import threading
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha import reflection

from svasim import __version__
from svasim.accel.v1 import accel_pb2, accel_pb2_grpc
from svasim.config import FabricConfig, load_costs
from svasim.cpu.v1 import cpu_pb2, cpu_pb2_grpc
from svasim.iommu.v1 import iommu_pb2, iommu_pb2_grpc
from svasim.model.accel import default_devices
from svasim.model.costs import CostTable
from svasim.model.policy import policy_names
from svasim.rpc.cores import AccelCore, CpuCore, IommuCore
from svasim.rpc.servicers import (
    AccelServicer,
    CpuServicer,
    HostMemoryServicer,
    IommuServicer,
    TraceServicer,
)
from svasim.store import Recorder, Store
from svasim.trace.v1 import trace_pb2, trace_pb2_grpc
from svasim.wiring.grpc_ports import GrpcAccelPort, GrpcHostPort, GrpcIommuPort
from svasim.wiring.local import LocalPort

log = logging.getLogger("svasim.server")

SERVICE_NAMES = {
    "cpu": [
        cpu_pb2.DESCRIPTOR.services_by_name["CpuService"].full_name,
        cpu_pb2.DESCRIPTOR.services_by_name["HostMemoryService"].full_name,
    ],
    "iommu": [iommu_pb2.DESCRIPTOR.services_by_name["IommuService"].full_name],
    "accel": [accel_pb2.DESCRIPTOR.services_by_name["AccelService"].full_name],
    "trace": [trace_pb2.DESCRIPTOR.services_by_name["TraceService"].full_name],
}
MAX_MESSAGE = 80 * 1024 * 1024


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
    _stopped: bool = False

    @property
    def address(self) -> str:
        """host:port clients connect to."""
        return f"{self.config.host}:{self.port}"

    def stop(self, grace: float | None = None) -> None:
        """Graceful stop: refuse new calls, finish in-flight ones, commit what was recorded."""
        if self._stopped:
            return
        self._stopped = True
        self.health.enter_graceful_shutdown()
        self.server.stop(self.config.grace if grace is None else grace).wait()
        for p in self.ports:
            p.close()
        self.recorder.close()
        self.store.close()


def run_config(config: FabricConfig, costs: CostTable) -> dict[str, Any]:
    """The fabric configuration recorded with the run."""
    return {
        "services": list(config.services),
        "cpus": config.cpus,
        "policy": config.policy,
        "early_free": config.early_free,
        "costs": costs.as_dict(),
        "devices": [
            {
                "name": d.name,
                "engines": len(d.engines),
                "wqs": [
                    {"id": w.id, "mode": w.cfg.mode, "size": w.cfg.wq_size, "threshold": w.cfg.wq_thresh} for w in d.wqs
                ],
            }
            for d in default_devices()
        ],
    }


def build_cores(config: FabricConfig, costs: CostTable, recorder: Any) -> tuple[dict[str, Any], list[Any]]:
    """The model-owning cores this process hosts, wired to each other in-process and to
    the peers it does not host over gRPC. Returns (cores by service, gRPC ports)."""
    # One request at a time through this process's client-facing API: a run is then a
    # sequence of whole requests, which is what replay feeds back.
    request_lock = threading.RLock()
    common = dict(recorder=recorder, request_lock=request_lock, durability=config.durability)
    cores: dict[str, Any] = {}
    remote: list[Any] = []

    def port(name: str, grpc_cls: Any) -> Any:
        if name in config.services:
            return LocalPort(lambda: cores[name])
        p = grpc_cls(config.peers[name], recorder, timeout=config.peer_timeout)
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
            **common,
        )
    if "iommu" in config.services:
        cores["iommu"] = IommuCore(
            host=port("cpu", GrpcHostPort), ats=port("accel", GrpcAccelPort), costs=costs, **common
        )
    if "accel" in config.services:
        cores["accel"] = AccelCore(
            iommu=port("iommu", GrpcIommuPort), host=port("cpu", GrpcHostPort), costs=costs, **common
        )
    return cores, remote


def create_server(config: FabricConfig) -> FabricServer:
    """Build the process's services on a started gRPC server."""
    missing = config.missing_peers()
    if missing:
        raise ValueError(
            f"services {', '.join(config.services)} need {', '.join(missing)}: host them too "
            f"(--services) or give their addresses (--{missing[0]}-addr / SVASIM_{missing[0].upper()}_ADDR)"
        )
    costs = load_costs(config.costs_file) if config.costs_file else CostTable()
    if config.policy not in policy_names():
        raise ValueError(f"unknown PASID policy {config.policy!r}; known: {', '.join(policy_names())}")
    store = Store.open(config.db)
    meta = dict(config=run_config(config, costs), policy=config.policy, seed=config.seed, version=__version__)
    run = store.get_or_create_run(config.run, **meta) if config.run else store.create_run(name=None, **meta)
    recorder = Recorder(store, run.id, durability=config.durability)
    cores, remote = build_cores(config, costs, recorder)
    server = grpc.server(
        futures.ThreadPoolExecutor(max_workers=16, thread_name_prefix="svasim-rpc"),
        options=[
            ("grpc.max_receive_message_length", MAX_MESSAGE),
            ("grpc.max_send_message_length", MAX_MESSAGE),
            ("grpc.keepalive_time_ms", 30000),
            ("grpc.keepalive_timeout_ms", 10000),
            ("grpc.http2.max_pings_without_data", 0),
            ("grpc.keepalive_permit_without_calls", 1),
        ],
    )
    if "cpu" in cores:
        cpu_pb2_grpc.add_CpuServiceServicer_to_server(CpuServicer(cores["cpu"], run.id), server)
        cpu_pb2_grpc.add_HostMemoryServiceServicer_to_server(HostMemoryServicer(cores["cpu"]), server)
    if "iommu" in cores:
        iommu_pb2_grpc.add_IommuServiceServicer_to_server(IommuServicer(cores["iommu"]), server)
    if "accel" in cores:
        accel_pb2_grpc.add_AccelServiceServicer_to_server(AccelServicer(cores["accel"]), server)
    if "trace" in config.services:
        trace_pb2_grpc.add_TraceServiceServicer_to_server(TraceServicer(store, recorder), server)

    health_servicer = health.HealthServicer()
    health_pb2_grpc.add_HealthServicer_to_server(health_servicer, server)
    names = [n for svc in config.services for n in SERVICE_NAMES[svc]]
    for n in names:
        health_servicer.set(n, health_pb2.HealthCheckResponse.SERVING)
    health_servicer.set("", health_pb2.HealthCheckResponse.SERVING)
    reflection.enable_server_reflection([*names, health.SERVICE_NAME, reflection.SERVICE_NAME], server)

    bound = server.add_insecure_port(f"{config.host}:{config.port}")
    if bound == 0:
        raise OSError(f"cannot listen on {config.host}:{config.port}")
    server.start()
    log.info(
        "svasim %s serving %s on %s:%d (run %s)", __version__, ",".join(config.services), config.host, bound, run.id
    )
    return FabricServer(config, server, bound, store, run.id, recorder, health_servicer, cores, remote)


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
