"""The ``svasim`` command."""

from __future__ import annotations

import json
import logging
import os
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from svasim import __version__
from svasim.config import ALL_SERVICES, DEFAULT_DB, FabricConfig, parse_services

app = typer.Typer(
    help="svasim: a simulator of SVA (ENQCMD, IA32_PASID, VT-d PASID tables, DSA).",
    no_args_is_help=True,
    add_completion=False,
)
trace_app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)
db_app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)
app.add_typer(trace_app, name="trace")
app.add_typer(db_app, name="db")
console = Console()

DbOpt = Annotated[str, typer.Option("--db", envvar="SVASIM_DB", help="SQLAlchemy URL of the store.")]


def _fail(message: str) -> None:
    console.print(f"[red]error:[/red] {message}")
    raise typer.Exit(2)


def _config(**overrides: object) -> FabricConfig:
    cfg = FabricConfig.from_env()
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    return cfg


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


def _serve(cfg: FabricConfig) -> None:
    from svasim.server import serve

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(message)s")

    def ready(fab: object) -> None:
        console.print(
            f"svasim {__version__}: {','.join(cfg.services)} on [bold]{fab.address}[/bold], "  # type: ignore[attr-defined]
            f"run {fab.run_id}, store {cfg.db}"  # type: ignore[attr-defined]
        )

    try:
        serve(cfg, ready=ready)
    except (ValueError, OSError) as e:
        _fail(str(e))


@app.command()
def up(
    port: Annotated[int | None, typer.Option(help="Port (env SVASIM_PORT, default 50051; 0 = any).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (env SVASIM_HOST).")] = None,
    db: Annotated[str | None, typer.Option(help="Store URL (env SVASIM_DB).")] = None,
    run: Annotated[str | None, typer.Option(help="Run name to record into (env SVASIM_RUN).")] = None,
    policy: Annotated[str | None, typer.Option(help="PASID policy (env SVASIM_POLICY).")] = None,
    cpus: Annotated[int | None, typer.Option(help="Logical CPUs (env SVASIM_CPUS).")] = None,
    early_free: Annotated[
        bool | None,
        typer.Option("--early-free/--no-early-free", help="Free PASIDs on the last unbind (env SVASIM_EARLY_FREE)."),
    ] = None,
    durability: Annotated[str | None, typer.Option(help="commit or batch (env SVASIM_DURABILITY).")] = None,
) -> None:
    """Start the whole fabric (cpu, iommu, accel, trace) in one process and keep serving."""
    _serve(
        _config(
            services=ALL_SERVICES,
            port=port,
            host=host,
            db=db,
            run=run,
            policy=policy,
            cpus=cpus,
            durability=durability,
            early_free=early_free,
        )
    )


@app.command()
def serve(
    services: Annotated[
        str, typer.Option(help="Comma-separated subset of cpu,iommu,accel,trace, or all.", envvar="SVASIM_SERVICES")
    ] = "all",
    port: Annotated[int | None, typer.Option(help="Port (env SVASIM_PORT).")] = None,
    host: Annotated[str | None, typer.Option(help="Address to bind (env SVASIM_HOST).")] = None,
    db: Annotated[str | None, typer.Option(help="Store URL (env SVASIM_DB).")] = None,
    run: Annotated[
        str | None, typer.Option(help="Run name (env SVASIM_RUN); processes of one fabric share it.")
    ] = None,
    policy: Annotated[str | None, typer.Option(help="PASID policy (env SVASIM_POLICY).")] = None,
    cpus: Annotated[int | None, typer.Option(help="Logical CPUs (env SVASIM_CPUS).")] = None,
    early_free: Annotated[
        bool | None,
        typer.Option("--early-free/--no-early-free", help="Free PASIDs on the last unbind (env SVASIM_EARLY_FREE)."),
    ] = None,
    durability: Annotated[str | None, typer.Option(help="commit or batch (env SVASIM_DURABILITY).")] = None,
    cpu_addr: Annotated[str | None, typer.Option(help="cpu service address (env SVASIM_CPU_ADDR).")] = None,
    iommu_addr: Annotated[str | None, typer.Option(help="iommu service address (env SVASIM_IOMMU_ADDR).")] = None,
    accel_addr: Annotated[str | None, typer.Option(help="accel service address (env SVASIM_ACCEL_ADDR).")] = None,
) -> None:
    """Start some of the services; the others are reached at their addresses."""
    try:
        svcs = parse_services(services)
    except ValueError as e:
        _fail(str(e))
    cfg = _config(
        services=svcs,
        port=port,
        host=host,
        db=db,
        run=run,
        policy=policy,
        cpus=cpus,
        durability=durability,
        early_free=early_free,
    )
    for name, addr in (("cpu", cpu_addr), ("iommu", iommu_addr), ("accel", accel_addr)):
        if addr:
            cfg.peers[name] = addr
    _serve(cfg)


@app.command()
def demo(
    db: Annotated[str, typer.Option(help="Store URL.", envvar="SVASIM_DB")] = DEFAULT_DB,
    threads: Annotated[int, typer.Option(min=1, max=16, help="Threads of the app process.")] = 3,
    per_thread: Annotated[int, typer.Option(min=1, max=1000, help="Descriptors each thread submits.")] = 4,
    size: Annotated[int, typer.Option(min=1, max=2 << 20, help="Bytes per MEMMOVE.")] = 64 * 1024,
    burst: Annotated[int, typer.Option(min=0, max=1000, help="Descriptors in the burst that fills the WQ.")] = 40,
) -> None:
    """Start the whole fabric on a free port, drive the ENQCMD workload through gRPC, report, stop."""
    from svasim.server import create_server
    from svasim.demo import run_workload
    from svasim_client import Client

    cfg = _config(services=ALL_SERVICES, port=0, db=db, run="")
    try:
        fab = create_server(cfg)
    except (ValueError, OSError) as e:
        _fail(str(e))
    try:
        with Client(fab.address) as client:
            client.wait_ready()
            res = run_workload(client, threads=threads, per_thread=per_thread, size=size, burst=burst)
    finally:
        fab.stop()
    t = Table(title=f"svasim demo: fabric on {fab.address}, {cfg.cpus} CPUs, policy {cfg.policy}")
    t.add_column("what")
    t.add_column("count", justify="right")
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
    console.print(t)
    statuses = ", ".join(f"{k} x{v}" for k, v in sorted(res.statuses.items()))
    console.print(f"completion records: {statuses}")
    console.print(f"process PASID: {res.pasid}")
    console.print(
        f"run [bold]{res.run_id}[/bold] in {db}: {res.events} events (svasim trace show {res.run_id} --db {db})"
    )
    if not res.ok():
        console.print("[red]the workload did not behave as expected[/red]")
        raise typer.Exit(1)
    console.print("[green]ok[/green]")


# -- trace ------------------------------------------------------------------------------------
def _store(db: str):  # type: ignore[no-untyped-def]
    from svasim.store import Store

    try:
        return Store.open(db)
    except Exception as e:  # noqa: BLE001 - any connection failure is the user's to fix
        _fail(f"cannot open store {db}: {e}")


def _run(store, ref: str):  # type: ignore[no-untyped-def]
    try:
        return store.get_run(ref)
    except KeyError:
        _fail(f"no run {ref!r} in the store (svasim trace runs lists them)")


@trace_app.command("runs")
def trace_runs(db: DbOpt = DEFAULT_DB) -> None:
    """List recorded runs."""
    store = _store(db)
    t = Table()
    for col in ("id", "name", "created", "policy", "events"):
        t.add_column(col)
    for r in store.list_runs():
        t.add_row(r.id, r.name, r.created_at.strftime("%Y-%m-%d %H:%M:%S"), r.policy, str(r.event_count))
    console.print(t)


def _hexify(v: object) -> object:
    # Addresses read better in hex; small numbers stay decimal.
    if isinstance(v, bool):
        return v
    if isinstance(v, int) and v >= 0x10000:
        return hex(v)
    if isinstance(v, dict):
        return {k: _hexify(x) for k, x in v.items()}
    if isinstance(v, list):
        return [_hexify(x) for x in v]
    return v


def _short(d: object) -> str:
    """Compact JSON of a transition's fields, addresses in hex."""
    return "-" if d is None else json.dumps(_hexify(d), sort_keys=True, separators=(",", ":"))


@trace_app.command("show")
def trace_show(
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    db: DbOpt = DEFAULT_DB,
    entity: Annotated[str | None, typer.Option(help="Only entities starting with this.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only kinds starting with this.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    from_seq: Annotated[int, typer.Option("--from", help="First seq.")] = 1,
    to_seq: Annotated[int | None, typer.Option("--to", help="Last seq.")] = None,
    limit: Annotated[int, typer.Option(help="At most this many events.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List a run's events in order."""
    store = _store(db)
    r = _run(store, run)
    rows = store.events(
        r.id,
        after_seq=from_seq - 1,
        until_seq=to_seq,
        entity_prefix=entity,
        kind_prefix=kind,
        service=service,
        limit=limit,
    )
    if as_json:
        for e in rows:
            sys.stdout.write(
                json.dumps(
                    e.as_dict(),
                    sort_keys=True,
                )
                + "\n"
            )
        return
    console.print(f"run {r.id} ({r.name}): {len(rows)} events", highlight=False)
    for e in rows:
        after = e.after
        if e.is_input and isinstance(after, dict):
            after = {"method": after.get("method"), **after.get("request", {})}
        cause = f"<-{e.cause}" if e.cause else ""
        cycles = f" +{e.cycles}c" if e.cycles else ""
        detail = f" {_short(e.detail)}" if e.detail else ""
        console.print(
            f"{e.seq:>7} {cause:>8} {e.service:<5} {e.entity:<24} {e.kind:<22} {_short(after)}{detail}{cycles}",
            highlight=False,
            soft_wrap=True,
        )


@trace_app.command("state")
def trace_state(
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    at: Annotated[int | None, typer.Option("--at", help="State after this seq (default: the end).")] = None,
    db: DbOpt = DEFAULT_DB,
    entity: Annotated[str | None, typer.Option(help="Only entities starting with this.")] = None,
) -> None:
    """Print the fabric's state after an event."""
    store = _store(db)
    r = _run(store, run)
    state = store.state_at(r.id, at)
    console.print(f"run {r.id} ({r.name}) state after seq {at if at is not None else 'end'}", highlight=False)
    for name, fields in state.items():
        if entity and not name.startswith(entity):
            continue
        console.print(f"{name:<28} {_short(fields)}", highlight=False, soft_wrap=True)


@trace_app.command("delete")
def trace_delete(run: Annotated[str, typer.Argument(help="Run id or name.")], db: DbOpt = DEFAULT_DB) -> None:
    """Delete a run and its events (runs replayed from it are kept, unlinked)."""
    store = _store(db)
    r = _run(store, run)
    store.delete_run(r.id)
    console.print(f"deleted run {r.id} ({r.name}) and its {r.event_count} events", highlight=False)


@trace_app.command("follow")
def trace_follow(
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    db: DbOpt = DEFAULT_DB,
    from_seq: Annotated[int, typer.Option("--from", help="First seq (default: the next one).")] = 0,
    kind: Annotated[str | None, typer.Option(help="Only kinds starting with this.")] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without new events (default: never).")
    ] = None,
) -> None:
    """Print a live run's events as they are committed."""
    import time

    store = _store(db)
    r = _run(store, run)
    quiet_since = time.monotonic()
    try:
        for rows in store.follow(
            r.id, after_seq=from_seq - 1 if from_seq else r.event_count, kind_prefix=kind, poll=0.1
        ):
            for e in rows:
                console.print(
                    f"{e.seq:>7} {e.service:<5} {e.entity:<24} {e.kind:<22} {_short(e.after)}"
                    + (f" {_short(e.detail)}" if e.detail else ""),
                    highlight=False,
                    soft_wrap=True,
                )
                quiet_since = time.monotonic()
            if not rows and idle_exit is not None and time.monotonic() - quiet_since > idle_exit:
                return
    except KeyboardInterrupt:
        return


@app.command("compare")
def compare_cmd(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Two recorded runs (id or name) to compare instead of a workload.")
    ] = None,
    db: DbOpt = DEFAULT_DB,
    workload: Annotated[
        str, typer.Option(help="Workload TOML file, or the name of a shipped one.")
    ] = "one-heavy-submitter",
    policy: Annotated[list[str] | None, typer.Option(help="Policy to include (repeat); default: all.")] = None,
    plot: Annotated[str | None, typer.Option(help="Write a plot here (.png or .svg).")] = None,
    costs: Annotated[str | None, typer.Option(help="JSON file of cost-table overrides.", envvar="SVASIM_COSTS")] = None,
    early_free: Annotated[
        bool | None,
        typer.Option(
            "--early-free/--no-early-free", help="Free PASIDs on the last unbind (default: each policy's own choice)."
        ),
    ] = None,
) -> None:
    """Run one workload under several PASID policies and compare them side by side.

    With two run ids, compare those recorded runs instead (events by kind, cycles by
    service), differences highlighted.
    """
    if runs:
        _compare_runs(runs, db, plot)
        return
    from svasim.compare import compare, load_workload, table
    from svasim.compare import plot as draw
    from svasim.config import load_costs
    from svasim.model.policy import policy_names

    names = policy or policy_names()
    try:
        wl = load_workload(workload)
        table_costs = load_costs(costs) if costs else None
        for n in names:
            if n not in policy_names():
                raise ValueError(f"unknown policy {n!r}; known: {', '.join(policy_names())}")
    except ValueError as e:
        _fail(str(e))
    results = compare(wl, names, table_costs, early_free)
    rows = table(results)
    t = Table(title=f"workload {wl.name}: {wl.cpus} CPUs, {wl.ticks} rounds")
    for i, h in enumerate(rows[0]):
        t.add_column(h, justify="left" if i == 0 else "right")
    for row in rows[1:]:
        style = "bold red" if row[0] == "invariant violations" and any(v != "0" for v in row[1:]) else None
        t.add_row(*row, style=style)
    console.print(t)
    if plot:
        out = draw(results, plot, f"{wl.name}: PASID policies compared")
        console.print(f"plot written to {out}")


def _compare_runs(runs: list[str], db: str, plot: str | None) -> None:
    from svasim.compare import compare_runs, plot_runs

    if len(runs) != 2:
        _fail("compare takes exactly two runs (or none, with --workload)")
    store = _store(db)
    a, b = (_run(store, r) for r in runs)
    rows = compare_runs(store, a.id, b.id)
    t = Table(title=f"{a.id} ({a.policy}) vs {b.id} ({b.policy})")
    for col, just in (("counter", "left"), (a.name, "right"), (b.name, "right"), ("difference", "right")):
        t.add_column(col, justify=just)  # type: ignore[arg-type]
    for key, va, vb in rows:
        t.add_row(key, str(va), str(vb), f"{vb - va:+d}" if va != vb else "", style="bold yellow" if va != vb else None)
    console.print(t)
    if plot:
        console.print(f"plot written to {plot_runs(rows, (a.name, b.name), plot)}")


@app.command("replay")
def replay_cmd(
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    db: DbOpt = DEFAULT_DB,
    policy: Annotated[str | None, typer.Option(help="What-if: replay under this PASID policy.")] = None,
    cpus: Annotated[int | None, typer.Option(help="What-if: with this many CPUs.")] = None,
    costs: Annotated[str | None, typer.Option(help="What-if: with these cost-table overrides (JSON).")] = None,
    early_free: Annotated[
        bool | None, typer.Option("--early-free/--no-early-free", help="What-if: free PASIDs on the last unbind.")
    ] = None,
    name: Annotated[str | None, typer.Option(help="Name of the what-if run.")] = None,
) -> None:
    """Re-execute a run's inputs on a fresh fabric.

    Without options: check that the same transitions come out (exit 4 and show the first
    difference if not). With --policy/--cpus/--costs/--early-free: record a new run
    linked to this one and compare the two.
    """
    from svasim.config import load_costs
    from svasim.model.policy import policy_names
    from svasim.replay import verify, what_if

    store = _store(db)
    r = _run(store, run)
    if policy is None and cpus is None and costs is None and early_free is None:
        report = verify(store, r.id)
        console.print(
            f"run {r.id}: {report.inputs} inputs re-executed in {report.seconds:.3f} s, "
            f"{report.events} recorded events compared",
            highlight=False,
        )
        if report.ok:
            console.print("[green]deterministic: the replay made exactly the recorded transitions[/green]")
            return
        console.print(f"[red]{report.difference.describe()}[/red]", highlight=False)  # type: ignore[union-attr]
        raise typer.Exit(4)
    if policy is not None and policy not in policy_names():
        _fail(f"unknown policy {policy!r}; known: {', '.join(policy_names())}")
    try:
        table = load_costs(costs) if costs else None
    except ValueError as e:
        _fail(str(e))
    new = what_if(store, r.id, policy=policy, cpus=cpus, costs=table, early_free=early_free, name=name)
    console.print(f"what-if run {new.id} ({new.name}) recorded, linked to {r.id}", highlight=False)
    _compare_runs([r.id, new.id], db, None)


@app.command("explore")
def explore_cmd(
    scenario: Annotated[str, typer.Argument(help="ipi-during-kernel-fpu, ipi-on-borrowed-mm or early-free-reuse.")],
    policy: Annotated[list[str] | None, typer.Option(help="Policy (repeat); default: all.")] = None,
    seed: Annotated[list[int] | None, typer.Option(help="Seed (repeat); default: every interleaving point.")] = None,
) -> None:
    """Explore where an IPI can land in a kernel sequence, and report broken invariants."""
    from svasim.model.explorer import SCENARIOS, explore, explore_all
    from svasim.model.policy import policy_names

    if scenario not in SCENARIOS:
        _fail(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
    names = policy or policy_names()
    bad = [n for n in names if n not in policy_names()]
    if bad:
        _fail(f"unknown policy {bad[0]!r}; known: {', '.join(policy_names())}")
    any_violation = False
    for name in names:
        results = [explore(scenario, name, s) for s in seed] if seed else explore_all(scenario, name)
        broken = [r for r in results if not r.ok]
        any_violation |= bool(broken)
        verdict = "[green]safe[/green]" if not broken else f"[red]{len(broken)} of {len(results)} broken[/red]"
        console.print(f"{name:<24} {verdict}")
        for r in broken:
            where = f"seed {r.seed}: " if r.seed is not None else ""
            console.print(f"    {where}point {r.point} ({r.point_name}): {r.violations} {r.outcomes}", highlight=False)
    if any_violation:
        raise typer.Exit(3)


@app.command("workloads")
def workloads_cmd() -> None:
    """List the shipped workloads."""
    from svasim.compare import load_workload, shipped_workloads

    for name, path in sorted(shipped_workloads().items()):
        wl = load_workload(str(path))
        console.print(f"[bold]{name}[/bold]: {wl.description}", highlight=False)


@app.command("export")
def export_cmd(
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    out: Annotated[str, typer.Option("--out", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="perfetto (Chrome JSON trace) or jsonl.")] = "perfetto",
    db: DbOpt = DEFAULT_DB,
    cycles_per_us: Annotated[int, typer.Option(help="Simulated cycles per microsecond (perfetto).")] = 2000,
) -> None:
    """Export a run: a Chrome/Perfetto trace (open it at ui.perfetto.dev) or versioned JSON Lines."""
    from svasim.exchange import export_jsonl, write_chrome_trace

    store = _store(db)
    r = _run(store, run)
    if fmt == "perfetto":
        n = write_chrome_trace(out, r, store.events(r.id, limit=None), cycles_per_us=cycles_per_us)
        console.print(f"{out}: {n} trace events from run {r.id}", highlight=False)
    elif fmt == "jsonl":
        with open(out, "w") as f:
            n = export_jsonl(store, r.id, f)
        console.print(f"{out}: run {r.id} with {n} events", highlight=False)
    else:
        _fail(f"unknown format {fmt!r}; use perfetto or jsonl")


@app.command("import")
def import_cmd(
    path: Annotated[str, typer.Argument(help="A JSON Lines file from svasim export --format jsonl.")],
    db: DbOpt = DEFAULT_DB,
    name: Annotated[str | None, typer.Option(help="Name of the imported run.")] = None,
) -> None:
    """Import a run exported as JSON Lines (a new run id; the events keep their seqs)."""
    from svasim.exchange import import_jsonl

    store = _store(db)
    try:
        with open(path) as f:
            r = import_jsonl(store, f, name=name)
    except (OSError, ValueError) as e:
        _fail(f"{path}: {e}")
    console.print(f"imported run {r.id} ({r.name}) with {r.event_count} events", highlight=False)


@app.command("import-sched")
def import_sched_cmd(
    trace: Annotated[str, typer.Argument(help="ftrace / trace-cmd sched_switch text (==> or raw -R form).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Workload TOML file to write.")],
    enqcmd: Annotated[
        list[str] | None,
        typer.Option(help="A task (comm or pid) that submits ENQCMDs, optionally =N per run slice (repeat)."),
    ] = None,
    cpus: Annotated[int | None, typer.Option(help="Fold the trace's CPUs onto this many.")] = None,
    name: Annotated[str, typer.Option(help="Workload name.")] = "imported",
) -> None:
    """Turn a Linux scheduling trace into a workload that svasim compare can run."""
    from svasim.exchange import parse_sched_switch, sched_to_workload, workload_to_toml
    from svasim.model.workload import Workload

    tasks: dict[str | int, int] = {}
    for item in enqcmd or []:
        task, _, n = item.partition("=")
        key: str | int = int(task) if task.isdigit() else task
        tasks[key] = int(n) if n else 1
    try:
        with open(trace) as f:
            switches = parse_sched_switch(f.read())
        if not switches:
            raise ValueError("no sched_switch events found")
        data = sched_to_workload(switches, cpus=cpus, enqcmd_tasks=tasks, name=name)
        wl = Workload.from_dict(data)
    except (OSError, ValueError) as e:
        _fail(f"{trace}: {e}")
    with open(out, "w") as f:
        f.write(workload_to_toml(data))
    console.print(
        f"{out}: {len(wl.switches)} switches of {sum(p.threads * p.count for p in wl.processes)} threads "
        f"on {wl.cpus} CPUs (svasim compare --workload {out})",
        highlight=False,
    )


@db_app.command("upgrade")
def db_upgrade(db: DbOpt = DEFAULT_DB) -> None:
    """Apply the Alembic migrations (creates the schema in a new database)."""
    from svasim.store.migrate import current_revision, upgrade

    upgrade(db)
    console.print(f"{db} at revision {current_revision(db)}")


@app.command()
def health(
    addr: Annotated[str, typer.Option(help="host:port of a svasim process.", envvar="SVASIM_ADDR")] = "127.0.0.1:50051",
    service: Annotated[str, typer.Option(help="Service name; empty = the server.")] = "",
    timeout: Annotated[float, typer.Option(help="Seconds to wait.")] = 5.0,
) -> None:
    """Check a server's health (exit 0 when SERVING); used by container health checks."""
    from svasim_client import Client, SvasimError

    try:
        with Client(addr, timeout=timeout) as c:
            status = c.check_health(service)
    except SvasimError as e:
        _fail(f"{addr}: {e}")
    console.print(f"{addr} {service or '(server)'}: {status}")
    if status != "SERVING":
        raise typer.Exit(1)


def main() -> None:
    """Entry point of the ``svasim`` command."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    app()


if __name__ == "__main__":
    main()
