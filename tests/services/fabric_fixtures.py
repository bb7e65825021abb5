"""Running fabrics for service tests: all services in one process, or split over gRPC."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.server import FabricServer, create_server
from svasim_client import Client


def free_port() -> int:
    """A port that was free a moment ago (for servers that must know each other's port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class RunningFabric:
    """Clients for each service of a running fabric, and its servers."""

    servers: list[FabricServer]
    cpu: Client
    iommu: Client
    accel: Client
    trace: Client
    db: str
    run_id: str

    def close(self) -> None:
        for c in {id(c): c for c in (self.cpu, self.iommu, self.accel, self.trace)}.values():
            c.close()
        for s in self.servers:
            s.stop(0)


@contextmanager
def running_fabric(wiring: str, db: str, *, durability: str = "commit", cpus: int = 4) -> Iterator[RunningFabric]:
    """A fabric wired ``inprocess`` (one server) or ``grpc`` (one server per service)."""
    if wiring == "inprocess":
        srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, durability=durability, cpus=cpus))
        c = Client(srv.address)
        fab = RunningFabric([srv], c, c, c, c, db, srv.run_id)
    elif wiring == "grpc":
        ports = {name: free_port() for name in ("cpu", "iommu", "accel")}
        addrs = {name: f"127.0.0.1:{p}" for name, p in ports.items()}
        run = f"split-{ports['cpu']}"
        servers = []
        for name, services in (("iommu", ("iommu",)), ("accel", ("accel",)), ("cpu", ("cpu", "trace"))):
            peers = {k: v for k, v in addrs.items() if k != name}
            servers.append(
                create_server(
                    FabricConfig(
                        services=services,
                        port=ports[name],
                        db=db,
                        run=run,
                        peers=peers,
                        durability=durability,
                        cpus=cpus,
                    )
                )
            )
        fab = RunningFabric(
            servers,
            Client(addrs["cpu"]),
            Client(addrs["iommu"]),
            Client(addrs["accel"]),
            Client(addrs["cpu"]),
            db,
            servers[-1].run_id,
        )
    else:
        raise ValueError(wiring)
    try:
        yield fab
    finally:
        fab.close()
