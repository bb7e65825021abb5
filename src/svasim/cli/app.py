"""The Typer application: every command group in one ``svasim`` command."""

from __future__ import annotations

import os

import typer

from svasim import __version__
from svasim.cli import calibrate, compare, db, devices, exchange, native, replay, run, sweep, trace
from svasim.cli._common import console

app = typer.Typer(
    help="svasim: a simulator of SVA (ENQCMD, IA32_PASID, VT-d PASID tables, DSA).",
    no_args_is_help=True,
    add_completion=False,
    # A traceback is for bugs; the commands report what the user can fix in one line.
    pretty_exceptions_show_locals=False,
)


@app.command()
def version() -> None:
    """Print the version."""
    console.print(__version__)


for module in (run, replay, compare, exchange, calibrate, sweep, native, devices):
    module.register(app)
app.add_typer(trace.app, name="trace")
app.add_typer(db.app, name="db")


def main() -> None:
    """Entry point of the ``svasim`` command."""
    os.environ.setdefault("GRPC_ENABLE_FORK_SUPPORT", "0")
    # gRPC's core logs a failed bind or connect itself, in lines of its own; the commands
    # say what failed in one line (GRPC_VERBOSITY=ERROR in the environment shows both).
    os.environ.setdefault("GRPC_VERBOSITY", "NONE")
    app()
