"""``svasim sweep``: many runs on Dask distributed, each recorded in the store."""

from __future__ import annotations

import os
from contextlib import ExitStack
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from svasim.cli._common import DEFAULT_DB, DbOpt, console, fail, one_line, open_store, print_table, progress


def sweep(
    definition: Annotated[str, typer.Argument(help="Sweep definition (TOML file), or the name of a shipped one.")],
    workers: Annotated[
        int, typer.Option(help="Worker processes of the local Dask cluster (one thread each).", min=1)
    ] = len(os.sched_getaffinity(0)),
    scheduler: Annotated[
        str | None,
        typer.Option(
            help="Dask scheduler address (tcp://host:8786) instead of a local cluster.", envvar="SVASIM_SCHEDULER"
        ),
    ] = None,
    db: DbOpt = DEFAULT_DB,
    out: Annotated[str, typer.Option(help="Directory for the results file (CSV) and the plots (PNG).")] = "sweep-out",
    costs: Annotated[
        str | None,
        typer.Option(help="Cost table (JSON, e.g. from svasim calibrate) for every run.", envvar="SVASIM_COSTS"),
    ] = None,
    name: Annotated[
        str | None, typer.Option(help="Name of this sweep in the store (default: definition-<id>).")
    ] = None,
) -> None:
    """Run a sweep: the cross product of workloads x policies x cost tables x seeds, and
    explorer seeds, on Dask distributed.

    Each run is recorded in the store (its configuration, and one event with its counters
    and its PASID-management cycles); at the end a summary table is printed and the
    results file and plots are written to --out. A scheduler address runs it on that
    cluster, whose workers then need the store's URL to reach it (PostgreSQL).
    """
    from pathlib import Path

    from svasim.store import new_run_id
    from svasim.sweep import SweepDefinitionError, SweepError, dask_client, load, run, tasks
    from svasim.sweep.report import summary, write_all

    try:
        defn = load(definition, costs=costs)
    except SweepDefinitionError as e:
        fail(e)
    out_dir = Path(out).expanduser()
    if not out_dir.resolve().parent.is_dir():
        fail(f"cannot write to {out}: there is no directory {out_dir.resolve().parent}")
    tag = name or f"{defn.name}-{new_run_id()}"
    if "/" in tag:
        fail(f"--name {tag!r}: a sweep name has no '/'")
    n = len(tasks(defn))
    with ExitStack() as stack:
        try:
            client = stack.enter_context(dask_client(workers, scheduler))
        except OSError as e:
            fail(f"cannot reach the Dask scheduler {scheduler}: {one_line(e)}" if scheduler else e)
        # Opened only once the cluster is there, so a sweep that cannot start creates no store.
        store = open_store(db, create=True)
        stack.callback(store.close)
        shown = store.url.render_as_string(hide_password=True)
        if any(r.name.startswith(f"{tag}/") for r in store.list_runs()):
            fail(f"the store {shown} already has a sweep named {tag!r}; give another --name")
        if store.url.get_backend_name() == "sqlite" and scheduler:
            console.print("SQLite store: this client records every run (the workers do not write it)", style="dim")
        bar = stack.enter_context(progress(f"sweep {defn.name}"))
        task = bar.add_task(f"sweep {defn.name}", total=n)
        try:
            results = run(defn, client, store=store, sweep=tag, on_result=lambda _: bar.advance(task))
        except SweepError as e:
            fail(e)
    rows = summary(defn, results)
    t = Table(
        title=f"sweep {defn.name}: {n} runs; PASID-management cycles (run minus its twin without a PASID)",
        box=box.SIMPLE_HEAD,
    )
    for i, col in enumerate(rows[0]):
        # The explorer column (last) may wrap on a narrow terminal; figures never do.
        t.add_column(col, justify="left" if i < 2 else "right", no_wrap=i < len(rows[0]) - 1)
    for row in rows[1:]:
        t.add_row(*row, style="bold red" if row[7] != "0" else None)
    print_table(t)
    try:
        written = write_all(defn, results, out_dir)
    except (OSError, ValueError) as e:
        fail(f"cannot write the results to {out}: {one_line(e)}")
    console.print(f"{len(results)} runs recorded in {shown} as {tag}/...", soft_wrap=True)
    for p in written:
        console.print(f"written: {p}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(sweep)
