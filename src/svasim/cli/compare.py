"""Comparing policies: ``compare`` (a workload, or two recorded runs), ``explore``, ``workloads``."""

from __future__ import annotations

import textwrap
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from svasim.cli._common import (
    DEFAULT_DB,
    CostsOption,
    DbOpt,
    EarlyFreeOption,
    console,
    fail,
    get_run,
    one_line,
    open_store,
    parent_must_exist,
    print_table,
    tracked,
)

#: Width a column header may take before it folds onto more lines (at its hyphens).
_HEADER_WIDTH = 12


def _fold(name: str, width: int) -> str:
    """A policy or run name on lines of at most ``width``, broken after hyphens."""
    parts = name.replace("-", "- ").split(" ")
    return "\n".join(textwrap.wrap(" ".join(parts), width, break_on_hyphens=False, break_long_words=True)).replace(
        "- ", "-"
    )


def side_by_side(title: str, rows: list[list[str]], *, highlight: set[int] | None = None, style: str = "") -> None:
    """Print rows (the first: column names) as tables whose columns all fit the console.

    Names are never cut: a column name folds at its hyphens, and when the columns do not
    fit side by side they are split over several tables, each with the row labels.
    """
    header, body = rows[0], rows[1:]
    label_width = max(len(r[0]) for r in rows)
    widths = []
    for i, name in enumerate(header[1:], start=1):
        cells = max((len(r[i]) for r in body), default=0)
        # In a pipe nothing is narrow: names stay on one line, for grep.
        folded = _fold(name, max(_HEADER_WIDTH, cells)) if console.is_terminal else name
        widths.append((folded, max(cells, *(len(line) for line in folded.splitlines() or [""]))))
    # Without a terminal nothing wraps the output: one table, as wide as it needs.
    natural = label_width + 4 + sum(w + 3 for _, w in widths)
    room = console.width if console.is_terminal else natural
    groups: list[list[int]] = [[]]
    used = label_width + 4
    for i, (_, w) in enumerate(widths, start=1):
        if groups[-1] and used + w + 3 > room:
            groups.append([])
            used = label_width + 4
        groups[-1].append(i)
        used += w + 3
    for n, cols in enumerate(groups):
        t = Table(title=title if n == 0 else None, box=box.SIMPLE_HEAD, width=None)
        t.add_column("", no_wrap=True)
        for i in cols:
            t.add_column(widths[i - 1][0], justify="right", no_wrap=True)
        for k, row in enumerate(body):
            t.add_row(row[0], *(row[i] for i in cols), style=style if highlight and k in highlight else None)
        print_table(t)


def compare(
    runs: Annotated[
        list[str] | None, typer.Argument(help="Two recorded runs (id or name) to compare instead of a workload.")
    ] = None,
    db: DbOpt = DEFAULT_DB,
    workload: Annotated[
        str, typer.Option(help="Workload TOML file, or the name of a shipped one.")
    ] = "one-heavy-submitter",
    policy: Annotated[list[str] | None, typer.Option(help="Policy to include (repeat); default: all.")] = None,
    plot: Annotated[str | None, typer.Option(help="Write a plot here (.png or .svg).")] = None,
    costs: CostsOption = None,
    early_free: EarlyFreeOption = None,
) -> None:
    """Run one workload under several PASID policies and compare them side by side.

    With two run ids, compare those recorded runs instead (events by kind, cycles by
    service), differences highlighted.
    """
    if plot:
        parent_must_exist(plot)
    if runs:
        compare_runs(runs, db, plot)
        return
    from svasim.compare import compare as run_under
    from svasim.compare import load_workload, table
    from svasim.compare import plot as draw
    from svasim.config import load_costs
    from svasim.model.policies import policy_names

    names = policy or policy_names()
    try:
        wl = load_workload(workload)
        table_costs = load_costs(costs) if costs else None
        for n in names:
            if n not in policy_names():
                raise ValueError(f"unknown policy {n!r}; known: {', '.join(policy_names())}")
    except ValueError as e:
        fail(e)
    results = [r for n in tracked(names, f"workload {wl.name}") for r in run_under(wl, [n], table_costs, early_free)]
    rows = table(results)
    broken = {
        k for k, row in enumerate(rows[1:]) if row[0] == "invariant violations" and any(v != "0" for v in row[1:])
    }
    side_by_side(f"workload {wl.name}: {wl.cpus} CPUs, {wl.ticks} rounds", rows, highlight=broken, style="bold red")
    if plot:
        try:
            out = draw(results, plot, f"{wl.name}: PASID policies compared")
        except (OSError, ValueError) as e:
            fail(f"cannot write the plot {plot}: {one_line(e)}")
        console.print(f"plot written to {out}", soft_wrap=True)


def compare_runs(runs: list[str], db: str, plot: str | None) -> None:
    """Compare two recorded runs: their counters side by side, differences highlighted."""
    from svasim.compare import compare_runs as counters
    from svasim.compare import plot_runs

    if len(runs) != 2:
        fail("compare takes exactly two runs (or none, with --workload)")
    store = open_store(db)
    a, b = (get_run(store, r) for r in runs)
    rows = counters(store, a.id, b.id)
    table_rows = [["counter", a.name, b.name, "difference"]]
    table_rows += [[key, str(va), str(vb), f"{vb - va:+d}" if va != vb else ""] for key, va, vb in rows]
    differ = {k for k, (_, va, vb) in enumerate(rows) if va != vb}
    side_by_side(f"{a.name} ({a.policy}) vs {b.name} ({b.policy})", table_rows, highlight=differ, style="bold yellow")
    if plot:
        try:
            out = plot_runs(rows, ((a.name, a.policy), (b.name, b.policy)), plot)
        except (OSError, ValueError) as e:
            fail(f"cannot write the plot {plot}: {one_line(e)}")
        console.print(f"plot written to {out}", soft_wrap=True)


def explore(
    scenario: Annotated[str, typer.Argument(help="ipi-during-kernel-fpu, ipi-on-borrowed-mm or early-free-reuse.")],
    policy: Annotated[list[str] | None, typer.Option(help="Policy (repeat); default: all.")] = None,
    seed: Annotated[list[int] | None, typer.Option(help="Seed (repeat); default: every interleaving point.")] = None,
    db: DbOpt = DEFAULT_DB,
    record_all: Annotated[
        bool, typer.Option("--record-all", help="Record every interleaving, not only those that break an invariant.")
    ] = False,
    costs: CostsOption = None,
    early_free: EarlyFreeOption = None,
) -> None:
    """Explore where an IPI can land in a kernel sequence, and report broken invariants.

    Each interleaving that breaks one (with --record-all, each one) is recorded in the
    store as a run: trace show, export and replay work on it.
    """
    import shlex

    from svasim import __version__
    from svasim.config import load_costs
    from svasim.model.explorer import SCENARIOS, ExploreResult, explore_all
    from svasim.model.explorer import explore as explore_one
    from svasim.model.policies import policy_names
    from svasim.store import RunExistsError, UnknownRunError

    if scenario not in SCENARIOS:
        fail(f"unknown scenario {scenario!r}; known: {', '.join(sorted(SCENARIOS))}")
    names = policy or policy_names()
    bad = [n for n in names if n not in policy_names()]
    if bad:
        fail(f"unknown policy {bad[0]!r}; known: {', '.join(policy_names())}")
    try:
        table = load_costs(costs) if costs else None
    except ValueError as e:
        fail(e)
    explored: list[tuple[str, list[ExploreResult]]] = []
    for name in tracked(names, f"exploring {scenario}"):
        if seed:
            results = [explore_one(scenario, name, s, early_free=early_free, costs=table) for s in seed]
        else:
            results = explore_all(scenario, name, early_free=early_free, costs=table)
        explored.append((name, results))

    # Record before printing anything: a store that cannot be written is an error, and the
    # store is opened (created) only when there is something to record.
    wanted = [r for _, results in explored for r in results if record_all or not r.ok]
    runs: dict[int, tuple[str, bool]] = {}
    if wanted:
        store = open_store(db, create=True)

        def record(r: ExploreResult) -> tuple[str, bool]:
            """The run that records ``r`` (and whether it was there already)."""
            # The model is deterministic: a run of the same name, configuration and
            # events is this interleaving, recorded before; anything else gets a new name.
            n = 1
            while True:
                name = r.run_name if n == 1 else f"{r.run_name}-{n}"
                try:
                    found = store.get_run(name)
                except UnknownRunError:
                    found = None
                if found is None:
                    try:
                        run = store.create_run(
                            name=name, config=r.run_config(), policy=r.policy, seed=r.seed or 0, version=__version__
                        )
                    except RunExistsError:
                        continue  # taken meanwhile by another process: look at it again
                    try:
                        store.append(run.id, r.transitions)
                    except BaseException:
                        store.delete_run(run.id)
                        raise
                    return run.id, False
                if found.name == name and r.is_recorded_as(
                    found.config, [e.as_dict() for e in store.events(found.id, limit=None)]
                ):
                    return found.id, True
                n += 1

        try:
            for r in wanted:
                runs[id(r)] = record(r)
        except Exception as e:  # noqa: BLE001 - any failure to write is the user's to see
            fail(f"cannot record the interleavings in {db}: {one_line(e)}")

    db_arg = "" if db == DEFAULT_DB else f" --db {shlex.quote(db)}"
    any_violation = False
    width = max(len(n) for n in names)
    for name, results in explored:
        broken = [r for r in results if not r.ok]
        any_violation |= bool(broken)
        verdict = "[green]safe[/green]" if not broken else f"[red]{len(broken)} of {len(results)} broken[/red]"
        console.print(f"{name:<{width}} {verdict}")
        for r in results:
            if r.ok and id(r) not in runs:
                continue
            where = f"seed {r.seed}: " if r.seed is not None else ""
            broke = ", ".join(f"{k} ({v})" for k, v in r.violations.items()) or "none"
            outcomes = ", ".join(f"{k} {v}" for k, v in r.outcomes.items())
            console.print(
                f"    {where}point {r.point} ({r.point_name}): invariants broken: {broke}; {outcomes}",
                markup=False,
                soft_wrap=True,
            )
            if id(r) in runs:
                run_id, before = runs[id(r)]
                # The violation's own kind, so the command shows exactly it.
                kinds = sorted({t.kind for t in r.transitions if t.entity.startswith("invariant/")})
                show = f"svasim trace show {run_id}{db_arg}" + (f" --kind {kinds[0]}" if kinds else "")
                again = " (recorded before)" if before else ""
                console.print(f"        run {run_id}{again}: {show}", markup=False, soft_wrap=True)
    if any_violation:
        raise typer.Exit(3)


def workloads() -> None:
    """List the shipped workloads (TOML files that compare runs under each policy)."""
    from svasim.compare import load_workload, shipped_workloads

    for name, path in sorted(shipped_workloads().items()):
        wl = load_workload(str(path))
        console.print(f"[bold]{name}[/bold]: {wl.description}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    for command in (compare, explore, workloads):
        app.command()(command)
