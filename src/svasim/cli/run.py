"""Running a fabric: ``up`` (all services), ``serve`` (some), ``demo``, ``health``."""

from __future__ import annotations

import functools
import inspect
import logging
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Annotated, Any

import typer

from svasim import __version__
from svasim.cli._common import CostsOption, console, fabric_config, fail, one_line, print_table
from svasim.config import ALL_SERVICES, DEFAULT_DB, FabricConfig, parse_services


def _option(name: str, annotation: Any, option: Any) -> inspect.Parameter:
    return inspect.Parameter(
        name, inspect.Parameter.KEYWORD_ONLY, default=None, annotation=Annotated[annotation, option]
    )


#: The options of every command that starts a fabric (``up``, ``serve``): each sets the
#: :class:`~svasim.config.FabricConfig` field of its name, and its environment variable
#: gives the default. Add an option here and both commands have it.
FABRIC_OPTIONS: list[inspect.Parameter] = [
    _option(
        "port",
        int | None,
        typer.Option(min=0, max=65535, help="Port (env SVASIM_PORT, default 50051; 0 = any free one)."),
    ),
    _option("host", str | None, typer.Option(help="Address to bind (env SVASIM_HOST, default 127.0.0.1).")),
    _option("db", str | None, typer.Option(help="Store URL (env SVASIM_DB).")),
    _option(
        "migrate",
        bool | None,
        typer.Option(
            "--migrate/--no-migrate",
            help="Upgrade the store's schema on start (env SVASIM_MIGRATE, default 1); without it the "
            "schema must be current (svasim db upgrade).",
        ),
    ),
    _option(
        "run",
        str | None,
        typer.Option(help="Run name to record into (env SVASIM_RUN); processes of one fabric share it."),
    ),
    _option("policy", str | None, typer.Option(help="PASID policy (env SVASIM_POLICY).")),
    _option("cpus", int | None, typer.Option(min=1, help="Logical CPUs (env SVASIM_CPUS).")),
    _option(
        "engines",
        int | None,
        typer.Option(
            min=1, max=64, help="Engines per accelerator device, all in group 0 (env SVASIM_ENGINES, default 2)."
        ),
    ),
    _option(
        "groups",
        int | None,
        typer.Option(min=1, max=255, help="Groups per accelerator device (env SVASIM_GROUPS, default 4)."),
    ),
    _option(
        "wqs",
        int | None,
        typer.Option(
            min=2, max=255, help="WQs per accelerator device; past two they start unconfigured (env SVASIM_WQS)."
        ),
    ),
    _option(
        "auto_run",
        bool | None,
        typer.Option(
            "--auto-run/--no-auto-run",
            help="A submission runs the engines; off, the devices run only on Advance (env SVASIM_AUTO_RUN, "
            "default 1).",
        ),
    ),
    _option(
        "async_page_requests",
        bool | None,
        typer.Option(
            "--async-page-requests/--no-async-page-requests",
            help="Page requests wait in the IOMMU's page request queue, answered later; the queue can "
            "overflow (env SVASIM_ASYNC_PAGE_REQUESTS, default 0).",
        ),
    ),
    _option(
        "evl",
        bool | None,
        typer.Option("--evl/--no-evl", help="Devices have an event log, GENCAP evl_support (env SVASIM_EVL)."),
    ),
    _option(
        "evl_size",
        int | None,
        typer.Option(
            min=64, max=65535, help="Event log entries at boot, with --evl (env SVASIM_EVL_SIZE, default 64)."
        ),
    ),
    _option(
        "prq_entries",
        int | None,
        typer.Option(
            min=2,
            max=32768,
            help="Entries of the IOMMU's page request queue (env SVASIM_PRQ_ENTRIES, default 2048).",
        ),
    ),
    _option(
        "memory",
        int | None,
        typer.Option(
            min=4096,
            help="Simulated physical memory in bytes, a multiple of 4096 (env SVASIM_MEMORY, default 1 GiB).",
        ),
    ),
    _option(
        "early_free",
        bool | None,
        typer.Option("--early-free/--no-early-free", help="Free PASIDs on the last unbind (env SVASIM_EARLY_FREE)."),
    ),
    _option("durability", str | None, typer.Option(help="commit or batch (env SVASIM_DURABILITY).")),
    _option(
        "costs_file",
        str | None,
        typer.Option(
            "--costs",
            help="Cost table: JSON overrides or a `svasim calibrate` table (env SVASIM_COSTS).",
        ),
    ),
    _option(
        "peer_host",
        str | None,
        typer.Option(help="Address of the peer listener (env SVASIM_PEER_HOST, default 127.0.0.1)."),
    ),
    _option(
        "peer_port",
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the peer listener, for the services of other processes (env SVASIM_PEER_PORT; "
            "default 50052 when peers are elsewhere; 0 = any free one).",
        ),
    ),
    _option(
        "peer_insecure",
        bool | None,
        typer.Option(
            "--peer-insecure/--no-peer-insecure",
            help="Allow a peer listener off loopback without mutual TLS (env SVASIM_PEER_INSECURE).",
        ),
    ),
    _option(
        "peer_tls_cert", str | None, typer.Option(help="PEM certificate for peer mTLS (env SVASIM_PEER_TLS_CERT).")
    ),
    _option("peer_tls_key", str | None, typer.Option(help="PEM key for peer mTLS (env SVASIM_PEER_TLS_KEY).")),
    _option("peer_tls_ca", str | None, typer.Option(help="PEM CA that signs peers (env SVASIM_PEER_TLS_CA).")),
    _option("tls_cert", str | None, typer.Option(help="PEM certificate of the client listener (env SVASIM_TLS_CERT).")),
    _option("tls_key", str | None, typer.Option(help="PEM key of the client listener (env SVASIM_TLS_KEY).")),
    _option(
        "native",
        bool | None,
        typer.Option(
            "--native/--no-native",
            help="Take native processes, real programs of this host under `svasim run-native` (env SVASIM_NATIVE).",
        ),
    ),
    _option(
        "metrics_port",
        int | None,
        typer.Option(
            min=0,
            max=65535,
            help="Port of the Prometheus metrics endpoint (env SVASIM_METRICS_PORT; default none; 0 = any free one).",
        ),
    ),
]


def fabric_options(command: Callable[..., None]) -> Callable[..., None]:
    """Give ``command`` the :data:`FABRIC_OPTIONS`; it receives them as ``fabric``, the
    configuration from the environment with the options given applied."""
    own = [p for p in inspect.signature(command, eval_str=True).parameters.values() if p.name != "fabric"]
    names = [p.name for p in FABRIC_OPTIONS]

    @functools.wraps(command)
    def wrapper(**kwargs: Any) -> None:
        overrides = {n: kwargs.pop(n) for n in names}
        command(fabric=fabric_config(**overrides), **kwargs)

    wrapper.__signature__ = inspect.Signature([*own, *FABRIC_OPTIONS])  # type: ignore[attr-defined]
    wrapper.__annotations__ = {p.name: p.annotation for p in (*own, *FABRIC_OPTIONS)}
    return wrapper


@contextmanager
def start_errors(cfg: FabricConfig) -> Iterator[None]:
    """Report a fabric that fails to start in one line: its store, or what else failed."""
    from sqlalchemy.exc import SQLAlchemyError

    try:
        yield
    except SQLAlchemyError as e:
        fail(f"cannot open store {cfg.db}: {one_line(e)}")
    except Exception as e:  # noqa: BLE001 - a start that fails is reported, not traced back
        fail(f"cannot start the fabric: {one_line(e)}")


def _serve(cfg: FabricConfig) -> None:
    from svasim.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def ready(fab: Any) -> None:
        console.print(
            f"svasim {__version__}: {','.join(cfg.services)} on [bold]{fab.address}[/bold], "
            f"run {fab.run_id}, store {cfg.db}",
            soft_wrap=True,
        )
        if fab.resumed is not None:
            r = fab.resumed
            completed = f", completed the request cut short ({len(r.completed)} transitions)" if r.completed else ""
            console.print(
                f"resumed: {r.inputs} inputs re-executed in {r.seconds:.2f} s, identical to the record up to "
                f"seq {r.after_seq}{completed}",
                soft_wrap=True,
            )

    with start_errors(cfg):
        serve(cfg, ready=ready)


@fabric_options
def up(fabric: FabricConfig) -> None:
    """Start the whole fabric (cpu, iommu, accel, trace) in one process and keep serving."""
    fabric.services = ALL_SERVICES
    _serve(fabric)


@fabric_options
def serve(
    fabric: FabricConfig,
    services: Annotated[
        str, typer.Option(help="Comma-separated subset of cpu,iommu,accel,trace, or all.", envvar="SVASIM_SERVICES")
    ] = "all",
    cpu_addr: Annotated[str | None, typer.Option(help="cpu service address (env SVASIM_CPU_ADDR).")] = None,
    iommu_addr: Annotated[str | None, typer.Option(help="iommu service address (env SVASIM_IOMMU_ADDR).")] = None,
    accel_addr: Annotated[str | None, typer.Option(help="accel service address (env SVASIM_ACCEL_ADDR).")] = None,
) -> None:
    """Start some of the services; the others are reached at their addresses."""
    try:
        fabric.services = parse_services(services)
    except ValueError as e:
        fail(e)
    for name, addr in (("cpu", cpu_addr), ("iommu", iommu_addr), ("accel", accel_addr)):
        if addr:
            fabric.peers[name] = addr
    _serve(fabric)


def demo(
    db: Annotated[str, typer.Option(help="Store URL.", envvar="SVASIM_DB")] = DEFAULT_DB,
    threads: Annotated[int, typer.Option(min=1, max=16, help="Threads of the app process.")] = 3,
    per_thread: Annotated[int, typer.Option(min=1, max=1000, help="Descriptors each thread submits.")] = 4,
    size: Annotated[int, typer.Option(min=1, max=2 << 20, help="Bytes per MEMMOVE.")] = 64 * 1024,
    burst: Annotated[int, typer.Option(min=0, max=1000, help="Descriptors in the burst that fills the WQ.")] = 40,
    costs: CostsOption = None,
) -> None:
    """Run the demo: start the whole fabric on a free port, drive it through gRPC, report, stop."""
    from rich.table import Table

    from svasim.server import create_server
    from svasim_client import Client
    from svasim_client.demo import run_demo

    cfg = fabric_config(services=ALL_SERVICES, port=0, db=db, run="", costs_file=costs)
    with start_errors(cfg):
        fab = create_server(cfg)
    try:
        with Client(fab.address) as client:
            client.wait_ready()
            res = run_demo(client, threads=threads, per_thread=per_thread, size=size, burst=burst)
    finally:
        fab.stop()
    t = Table(title=f"svasim demo: fabric on {fab.address}, {cfg.cpus} CPUs, policy {cfg.policy}")
    t.add_column("what", no_wrap=True)
    t.add_column("count", justify="right", no_wrap=True)
    rows = [
        ("ENQCMD submissions", res.submissions),
        ("  accepted (ZF=0)", res.outcomes.get("accepted", 0)),
        ("  retry (ZF=1, WQ at threshold)", res.outcomes.get("retry", 0)),
        ("  SIGSEGV (real #GP: no PASID)", res.outcomes.get("sigsegv", 0)),
        ("#GP faults taken", res.gp_faults),
        ("#GP fixups that loaded IA32_PASID", res.fixups),
        ("IA32_PASID WRMSRs (store)", res.kinds.get("msr.pasid.write", 0)),
        ("IA32_PASID restored by XRSTORS (store)", res.kinds.get("xstate.restore.pasid", 0)),
        ("descriptors completed (store)", res.kinds.get("desc.complete", 0)),
        ("bytes moved by the device", res.bytes_moved),
        ("bytes verified in destination buffers", res.bytes_verified),
        ("mismatched buffers", res.mismatches),
    ]
    for name, n in rows:
        t.add_row(name, str(n))
    print_table(t)
    statuses = ", ".join(f"{k} x{v}" for k, v in sorted(res.statuses.items()))
    console.print(f"completion records: {statuses}")
    console.print(f"process PASID: {res.pasid}")
    console.print(f"run [bold]{res.run_id}[/bold] in {db}: {res.events} events; see them with", soft_wrap=True)
    # On a line of its own and never wrapped, so that it can be pasted as it is.
    console.print(f"  svasim trace show {res.run_id} --db {db}", soft_wrap=True, markup=False)
    if not res.ok():
        fail("the demo did not behave as expected", code=1)
    console.print("[green]ok[/green]")


def health(
    addr: Annotated[str, typer.Option(help="host:port of a svasim process.", envvar="SVASIM_ADDR")] = "127.0.0.1:50051",
    service: Annotated[str, typer.Option(help="Service name; empty = the server.")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 5.0,
) -> None:
    """Check a server's health (exit 0 when SERVING); used by container health checks."""
    import grpc

    from svasim_client import Client, SvasimError

    try:
        with Client(addr, timeout=timeout) as c:
            try:
                status = c.check_health(service)
            except grpc.RpcError as e:
                raise SvasimError.from_rpc_error(e) from None
    except SvasimError as e:
        if e.code == grpc.StatusCode.NOT_FOUND:
            fail(f"{addr} serves no {service!r} (names look like svasim.cpu.v1.CpuService; empty = the server)", 1)
        fail(f"{addr}: {e.code.name}{': ' + e.message if e.message else ''}", code=1)
    console.print(f"{addr} {service or '(server)'}: {status}")
    if status != "SERVING":
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    for command in (up, serve, demo, health):
        app.command()(command)
