"""``svasim calibrate``: measure the cost table's entries on this host and write a table."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer
from rich import box
from rich.table import Table

from svasim.cli._common import console, fail, parent_must_exist


def calibrate(
    out: Annotated[
        str | None, typer.Option(help="Write the cost table (JSON) here; without it, print it on stdout.")
    ] = None,
    quick: Annotated[bool, typer.Option(help="Fewer and shorter runs (under a second; noisier).")] = False,
    cpu: Annotated[
        int | None, typer.Option(help="CPU to pin the timer to (default: the last one this process may use).")
    ] = None,
) -> None:
    """Time context switches, XSAVE/XRSTOR, a #GP round trip, an uncached line and an atomic.

    Every figure is the median of repeated runs, pinned to one CPU, in TSC cycles; each
    entry of the table names the CPU model, the method and the date (UTC). Entries that
    user space cannot time are listed as not measurable and keep their defaults. Give
    the table to up, demo, compare or replay with --costs.
    """
    from svasim.calibrate import CalibrationError
    from svasim.calibrate import calibrate as measure

    if out:
        parent_must_exist(out)
    try:
        table = measure(quick=quick, cpu=cpu)
    except (CalibrationError, OSError) as e:
        fail(e)
    text = json.dumps(table, indent=2) + "\n"
    if not out:
        typer.echo(text, nl=False)
        return
    try:
        Path(out).write_text(text)
    except OSError as e:
        fail(f"cannot write {out}: {e}")
    console.print(f"{table['host']['cpu_model']}, measured on CPU {table['host']['cpu']}", soft_wrap=True)
    t = Table(box=box.SIMPLE_HEAD)
    t.add_column("entry", no_wrap=True)
    t.add_column("cycles", justify="right", no_wrap=True)
    t.add_column("ns", justify="right", no_wrap=True)
    for name, entry in table["entries"].items():
        t.add_row(name, str(entry["cycles"]), f"{entry['ns']:.1f}")
    console.print(t)
    console.print(f"not measurable here (defaults kept): {', '.join(table['not_measured'])}", soft_wrap=True)
    console.print(f"cost table written to {out}; use it with --costs {out}", soft_wrap=True)


def register(app: typer.Typer) -> None:
    """Add this group's commands to ``app``."""
    app.command()(calibrate)
