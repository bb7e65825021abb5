"""Moving runs and traces in and out: ``export``, ``import``, ``import-sched``."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Annotated, BinaryIO

import typer

from svasim.cli._common import DEFAULT_DB, DbOpt, console, fail, get_run, open_store, parent_must_exist, progress


def export(
    run: Annotated[str, typer.Argument(help="Run id or name.")],
    out: Annotated[str, typer.Option("--out", "-o", help="File to write.")],
    fmt: Annotated[str, typer.Option("--format", help="perfetto (Chrome JSON trace) or jsonl.")] = "perfetto",
    db: DbOpt = DEFAULT_DB,
    cycles_per_us: Annotated[int, typer.Option(min=1, help="Simulated cycles per microsecond (perfetto).")] = 2000,
) -> None:
    """Export a run: a Chrome/Perfetto trace (open it at ui.perfetto.dev) or versioned JSON Lines."""
    from svasim.exchange import export_jsonl, write_chrome_trace

    if fmt not in ("perfetto", "jsonl"):
        fail(f"unknown format {fmt!r}; use perfetto or jsonl")
    parent_must_exist(out)
    store = open_store(db)
    r = get_run(store, run)
    if fmt == "perfetto":
        n = write_chrome_trace(out, r, store.events(r.id, limit=None), cycles_per_us=cycles_per_us)
        console.print(f"{out}: {n} trace events from run {r.id}", soft_wrap=True)
        return
    with open(out, "w") as f, progress(f"exporting run {r.id}") as bar:
        task = bar.add_task(f"exporting run {r.id}", total=r.event_count)
        n = export_jsonl(store, r.id, f, progress=lambda done: bar.update(task, completed=done))
    console.print(f"{out}: run {r.id} with {n} events", soft_wrap=True)


def import_run(
    path: Annotated[str, typer.Argument(help="A JSON Lines file from svasim export --format jsonl.")],
    db: DbOpt = DEFAULT_DB,
    name: Annotated[str | None, typer.Option(help="Name of the imported run.")] = None,
) -> None:
    """Import a run exported as JSON Lines (a new run id; the events keep their seqs)."""
    import os

    from svasim.exchange import import_jsonl

    try:
        size = os.path.getsize(path)
    except OSError as e:
        fail(f"{path}: {e.strerror or e}")
    store = open_store(db, create=True)
    try:
        with open(path, "rb") as raw, progress(f"importing {path}") as bar:
            task = bar.add_task(f"importing {path}", total=size)
            f = _Counting(raw, lambda done: bar.update(task, completed=done))
            r = import_jsonl(store, f, name=name)
    except (OSError, ValueError) as e:
        fail(f"{path}: {e}")
    console.print(f"imported run {r.id} ({r.name}) with {r.event_count} events", soft_wrap=True)


class _Counting:
    """Lines of a binary file as text, telling ``seen`` how many bytes were read so far."""

    def __init__(self, raw: BinaryIO, seen: Callable[[int], object]) -> None:
        self._raw = raw
        self._seen = seen
        self._done = 0

    def __iter__(self) -> Iterator[str]:
        told = 0
        for line in self._raw:
            self._done += len(line)
            if self._done - told >= 1 << 16:  # a bar moved per line would cost more than the import
                self._seen(self._done)
                told = self._done
            yield line.decode("utf-8")
        self._seen(self._done)


def import_sched(
    trace: Annotated[str, typer.Argument(help="ftrace / trace-cmd sched_switch text (==> or raw -R form).")],
    out: Annotated[str, typer.Option("--out", "-o", help="Workload TOML file to write.")],
    enqcmd: Annotated[
        list[str] | None,
        typer.Option(help="A task (comm or pid) that submits ENQCMDs, optionally =N per run slice (repeat)."),
    ] = None,
    cpus: Annotated[int | None, typer.Option(min=1, help="Fold the trace's CPUs onto this many.")] = None,
    name: Annotated[str, typer.Option(help="Workload name.")] = "imported",
) -> None:
    """Turn a Linux scheduling trace into a workload that svasim compare can run."""
    from svasim.exchange import parse_sched_switch, sched_to_workload, workload_to_toml
    from svasim.model.workload import Workload

    tasks: dict[str | int, int] = {}
    for item in enqcmd or []:
        task, _, n = item.partition("=")
        if n and not n.isdigit():
            fail(f"--enqcmd {item}: the count after = is a whole number")
        key: str | int = int(task) if task.isdigit() else task
        tasks[key] = int(n) if n else 1
    parent_must_exist(out)
    try:
        with open(trace) as f:
            switches = parse_sched_switch(f.read())
        if not switches:
            raise ValueError("no sched_switch events found")
        data = sched_to_workload(switches, cpus=cpus, enqcmd_tasks=tasks, name=name)
        wl = Workload.from_dict(data)
    except (OSError, ValueError) as e:
        fail(f"{trace}: {e}")
    with open(out, "w") as f:
        f.write(workload_to_toml(data))
    console.print(
        f"{out}: {len(wl.switches)} switches of {sum(p.threads * p.count for p in wl.processes)} threads "
        f"on {wl.cpus} CPUs; run it with",
        soft_wrap=True,
    )
    console.print(f"  svasim compare --workload {out}", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(export)
    app.command("import")(import_run)
    app.command("import-sched")(import_sched)
