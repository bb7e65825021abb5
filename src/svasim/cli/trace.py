"""``svasim trace``: recorded runs, their events, and the state at any event."""

from __future__ import annotations

import json
import sys
import time
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from svasim.cli._common import (
    DEFAULT_DB,
    DbOpt,
    console,
    err_console,
    fail,
    fields_text,
    get_run,
    open_store,
    print_table,
    progress,
)
from svasim.store import EventRow

app = typer.Typer(help="Inspect recorded runs.", no_args_is_help=True)

RunArg = Annotated[str, typer.Argument(help="Run id or name.")]


def _line(e: EventRow) -> str:
    """One event as ``trace show`` and ``trace follow`` print it."""
    after: object = e.after
    if e.is_input and isinstance(after, dict):
        after = {"method": after.get("method"), **after.get("request", {})}
    cause = f"<-{e.cause}" if e.cause else ""
    detail = f" {fields_text(e.detail)}" if e.detail else ""
    cycles = f" +{e.cycles}c" if e.cycles else ""
    fields = fields_text(after, request=e.is_input)
    return f"{e.seq:>7} {cause:>8} {e.service:<5} {e.entity:<24} {e.kind:<22} {fields}{detail}{cycles}"


def _header() -> str:
    return f"{'seq':>7} {'cause':>8} {'svc':<5} {'entity':<24} {'kind':<22} fields (after) [detail] +cycles"


@app.command("runs")
def runs(db: DbOpt = DEFAULT_DB) -> None:
    """List recorded runs, newest first."""
    store = open_store(db)
    t = Table(box=box.SIMPLE_HEAD, pad_edge=False, show_edge=False)
    # Ids, times and counts are never cut; long names fold onto more lines instead.
    t.add_column("id", no_wrap=True, min_width=12)
    t.add_column("name", overflow="fold")
    t.add_column("created (UTC)", no_wrap=True, min_width=19)
    t.add_column("policy", overflow="fold")
    t.add_column("events", justify="right", no_wrap=True)
    for r in store.list_runs():
        t.add_row(r.id, r.name, r.created_at.strftime("%Y-%m-%d %H:%M:%S"), r.policy, str(r.event_count))
    print_table(t)


@app.command("show")
def show(
    run: RunArg,
    db: DbOpt = DEFAULT_DB,
    entity: Annotated[str | None, typer.Option(help="Only entities starting with this.")] = None,
    kind: Annotated[str | None, typer.Option(help="Only kinds starting with this.")] = None,
    service: Annotated[str | None, typer.Option(help="Only this service.")] = None,
    from_seq: Annotated[int, typer.Option("--from", min=1, help="First seq.")] = 1,
    to_seq: Annotated[int | None, typer.Option("--to", min=1, help="Last seq.")] = None,
    limit: Annotated[int, typer.Option(min=1, help="At most this many events.")] = 200,
    as_json: Annotated[bool, typer.Option("--json", help="One JSON object per line.")] = False,
) -> None:
    """List a run's events in order.

    Each line: seq, cause (<-N: the seq of the event that led to this one), service,
    entity, kind, the entity's new fields, what else happened, and the cost in cycles.
    """
    from svasim.store import SEQ_MAX, EventFilter

    for flag, value in (("--from", from_seq), ("--to", to_seq)):
        if value is not None and value > SEQ_MAX:
            fail(f"{flag} {value} is not a seq (seqs are 1..2**63-1)")
    if to_seq is not None and to_seq < from_seq:
        fail(f"--to {to_seq} is before --from {from_seq}")
    store = open_store(db)
    r = get_run(store, run)
    where = EventFilter(
        after_seq=from_seq - 1, until_seq=to_seq, entity_prefix=entity, kind_prefix=kind, service=service
    )
    # One more than asked for tells whether the listing stops short of the end.
    rows = store.events(r.id, where, limit=limit + 1)
    more, rows = len(rows) > limit, rows[:limit]
    filtered = any(x is not None for x in (entity, kind, service, to_seq)) or from_seq > 1
    stopped = (
        f"stopped at --limit {limit}; more with --from {rows[-1].seq + 1}"
        + (" and the same filters" if filtered else "")
        + " or a larger --limit"
        if more
        else ""
    )
    if as_json:
        for e in rows:
            sys.stdout.write(json.dumps(e.as_dict(), sort_keys=True) + "\n")
        if stopped:  # on stderr, so that stdout stays one JSON object a line
            err_console.print(stopped, soft_wrap=True, markup=False)
        return
    shown = f"{len(rows)} shown" + (" (filtered)" if filtered else "")
    console.print(f"run {r.id} ({r.name}): {r.event_count} events, {shown}; <-N: caused by event N", soft_wrap=True)
    console.print(_header(), soft_wrap=True, markup=False, style="bold")
    for e in rows:
        console.print(_line(e), soft_wrap=True, markup=False)
    if stopped:
        console.print(stopped, soft_wrap=True, markup=False)


@app.command("state")
def state(
    run: RunArg,
    at: Annotated[int | None, typer.Option("--at", help="State after this seq (default: the end).")] = None,
    db: DbOpt = DEFAULT_DB,
    entity: Annotated[str | None, typer.Option(help="Only entities starting with this.")] = None,
) -> None:
    """Print the fabric's state after an event."""
    store = open_store(db)
    r = get_run(store, run)
    if at is not None and not 0 <= at <= r.event_count:
        fail(f"--at {at} is outside run {r.id}, whose events are 1..{r.event_count} (0: before the first)")
    with progress(f"folding run {r.id}") as bar:
        task = bar.add_task(f"folding run {r.id}", total=None)

        def advance(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        fields = store.state_at(r.id, at, progress=advance)
    console.print(f"run {r.id} ({r.name}) state after seq {at if at is not None else r.event_count}")
    for name, values in fields.items():
        if entity and not name.startswith(entity):
            continue
        console.print(f"{name:<28} {fields_text(values)}", soft_wrap=True, markup=False)


@app.command("delete")
def delete(run: RunArg, db: DbOpt = DEFAULT_DB) -> None:
    """Delete a run and its events (runs replayed from it are kept, unlinked)."""
    store = open_store(db)
    r = get_run(store, run)
    store.delete_run(r.id)
    console.print(f"deleted run {r.id} ({r.name}) and its {r.event_count} events")


@app.command("follow")
def follow(
    run: RunArg,
    db: DbOpt = DEFAULT_DB,
    from_seq: Annotated[int, typer.Option("--from", min=0, help="First seq (default: the next one).")] = 0,
    kind: Annotated[str | None, typer.Option(help="Only kinds starting with this.")] = None,
    idle_exit: Annotated[
        float | None, typer.Option(help="Stop after this many seconds without new events (default: never).")
    ] = None,
) -> None:
    """Print a live run's events as they are committed."""
    store = open_store(db)
    r = get_run(store, run)
    quiet_since = time.monotonic()
    try:
        for rows in store.follow(
            r.id, after_seq=from_seq - 1 if from_seq else r.event_count, kind_prefix=kind, poll=0.1
        ):
            for e in rows:
                console.print(_line(e), soft_wrap=True, markup=False)
                quiet_since = time.monotonic()
            if not rows and idle_exit is not None and time.monotonic() - quiet_since > idle_exit:
                return
    except KeyboardInterrupt:
        return
