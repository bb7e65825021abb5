"""Running fabrics for service tests: all services in one process, or split over gRPC."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import grpc

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.server import FabricServer, create_server
from svasim_client import Client


def free_port() -> int:
    """A port that was free a moment ago (for servers that must know each other's port)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def free_ports(n: int) -> list[int]:
    """``n`` distinct ports that were free a moment ago (held together while chosen, so
    no two are the same)."""
    socks = [socket.socket() for _ in range(n)]
    try:
        for s in socks:
            s.bind(("127.0.0.1", 0))
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def connect(address: str, ca: str = "") -> Client:
    """A client of ``address``: over TLS checked against the CA file ``ca``, if given."""
    if not ca:
        return Client(address)
    creds = grpc.ssl_channel_credentials(root_certificates=Path(ca).read_bytes())
    return Client(address, channel=grpc.secure_channel(address, creds))


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
    #: Peer listener address of the process hosting each model service.
    peer_addresses: dict[str, str]

    def close(self) -> None:
        for c in {id(c): c for c in (self.cpu, self.iommu, self.accel, self.trace)}.values():
            c.close()
        for s in self.servers:
            s.stop(0)


@contextmanager
def running_fabric(
    wiring: str,
    db: str,
    *,
    durability: str = "commit",
    cpus: int = 4,
    tls: dict[str, str] | None = None,
    client_ca: str = "",
) -> Iterator[RunningFabric]:
    """A fabric wired ``inprocess`` (one server) or ``grpc`` (one server per service).

    ``tls``: FabricConfig TLS fields (``peer_tls_*``, ``tls_*``) given to every server;
    ``client_ca``: the CA the clients check the client listeners' certificates against.
    """
    tls = tls or {}
    if wiring == "inprocess":
        srv = create_server(
            FabricConfig(services=ALL_SERVICES, port=0, peer_port=0, db=db, durability=durability, cpus=cpus, **tls)
        )
        c = connect(srv.address, client_ca)
        peer_addresses = dict.fromkeys(("cpu", "iommu", "accel"), srv.peer_address)
        fab = RunningFabric([srv], c, c, c, c, db, srv.run_id, peer_addresses)
    elif wiring == "grpc":
        chosen = free_ports(6)
        ports = dict(zip(("cpu", "iommu", "accel"), chosen[:3], strict=True))
        peer_ports = dict(zip(("cpu", "iommu", "accel"), chosen[3:], strict=True))
        addrs = {name: f"127.0.0.1:{p}" for name, p in ports.items()}
        # Peers reach each other on their peer listeners, never on the client ports.
        peer_addrs = {name: f"127.0.0.1:{p}" for name, p in peer_ports.items()}
        run = f"split-{ports['cpu']}"
        servers = []
        for name, services in (("iommu", ("iommu",)), ("accel", ("accel",)), ("cpu", ("cpu", "trace"))):
            peers = {k: v for k, v in peer_addrs.items() if k != name}
            servers.append(
                create_server(
                    FabricConfig(
                        services=services,
                        port=ports[name],
                        peer_port=peer_ports[name],
                        db=db,
                        run=run,
                        peers=peers,
                        durability=durability,
                        cpus=cpus,
                        **tls,
                    )
                )
            )
        fab = RunningFabric(
            servers,
            connect(addrs["cpu"], client_ca),
            connect(addrs["iommu"], client_ca),
            connect(addrs["accel"], client_ca),
            connect(addrs["cpu"], client_ca),
            db,
            servers[-1].run_id,
            peer_addrs,
        )
    else:
        raise ValueError(wiring)
    try:
        yield fab
    finally:
        fab.close()
