"""``svasim replay``: re-execute a run's inputs, to check it or to ask what if."""

from __future__ import annotations

from typing import Annotated

import typer

from svasim.cli._common import DEFAULT_DB, DbOpt, console, fail, get_run, open_store, progress, warn
from svasim.cli.compare import compare_runs


def replay(
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    db: DbOpt = DEFAULT_DB,
    policy: Annotated[str | None, typer.Option(help="What-if: replay under this PASID policy.")] = None,
    cpus: Annotated[int | None, typer.Option(min=1, help="What-if: with this many CPUs.")] = None,
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
    from svasim.model.policies import policy_names
    from svasim.replay import ReplayInputError, verify, what_if

    store = open_store(db)
    r = get_run(store, run)
    if policy is None and cpus is None and costs is None and early_free is None:
        try:
            with progress(f"replaying run {r.id}") as bar:
                task = bar.add_task(f"replaying run {r.id}", total=None)
                report = verify(store, r.id, progress=lambda done, total: bar.update(task, completed=done, total=total))
        except ReplayInputError as e:
            fail(e)
        console.print(
            f"run {r.id}: {report.inputs} inputs re-executed in {report.seconds:.3f} s, "
            f"{report.events} recorded events compared",
            soft_wrap=True,
        )
        if report.restarts:
            console.print(
                f"split fabric: {report.restarts} member restarts; the failures they caused and the states they "
                "were rebuilt with are taken from the record",
                soft_wrap=True,
            )
        if report.ok:
            console.print("[green]deterministic: the replay made exactly the recorded transitions[/green]")
            return
        console.print(report.difference.describe(), style="red", markup=False)  # type: ignore[union-attr]
        raise typer.Exit(4)
    if policy is not None and policy not in policy_names():
        fail(f"unknown policy {policy!r}; known: {', '.join(policy_names())}")
    try:
        table = load_costs(costs) if costs else None
    except ValueError as e:
        fail(e)
    try:
        with progress(f"what-if replay of run {r.id}") as bar:
            task = bar.add_task(f"what-if replay of run {r.id}", total=None)
            outcome = what_if(
                store,
                r.id,
                policy=policy,
                cpus=cpus,
                costs=table,
                early_free=early_free,
                name=name,
                progress=lambda done, total: bar.update(task, completed=done, total=total),
            )
    except ReplayInputError as e:
        fail(e)
    new = outcome.run
    console.print(f"what-if run {new.id} ({new.name}) recorded, linked to {r.id}", soft_wrap=True)
    if outcome.refused:
        warn(
            f"{outcome.refused} of {outcome.inputs} inputs were refused in the what-if run (they were accepted "
            f"in run {r.id}): the two runs did different work, so compare their counters with care"
        )
    compare_runs([r.id, new.id], db, None)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(replay)
