"""``svasim run-native``: run an unmodified DSA program against the simulated device."""

from __future__ import annotations

from typing import Annotated

import typer

from svasim.cli._common import DEFAULT_DB, err_console, fabric_config, fail, one_line
from svasim.config import ALL_SERVICES


def run_native(
    argv: Annotated[list[str], typer.Argument(metavar="-- PROGRAM [ARGS]...", help="The program and its arguments.")],
    addr: Annotated[
        str | None,
        typer.Option(help="Use the fabric serving at host:port (its client listener) instead of starting one."),
    ] = None,
    db: Annotated[str, typer.Option(help="Store URL of the fabric started here.", envvar="SVASIM_DB")] = DEFAULT_DB,
    policy: Annotated[str | None, typer.Option(help="PASID policy of the fabric started here.")] = None,
    cpus: Annotated[int | None, typer.Option(min=1, help="Logical CPUs of the fabric started here.")] = None,
    engines: Annotated[
        int | None, typer.Option(min=1, help="Engines per device of the fabric started here (env SVASIM_ENGINES).")
    ] = None,
    wqs: Annotated[
        int | None, typer.Option(min=1, help="WQs per device of the fabric started here (env SVASIM_WQS).")
    ] = None,
    module_tools: Annotated[
        bool,
        typer.Option(
            "--module-tools",
            help="Put stand-ins for lsmod, rmmod and modprobe first on the program's PATH (rmmod idxd disables "
            "every device), for test scripts that reload the driver.",
        ),
    ] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print nothing but the program's output.")] = False,
) -> None:
    """Run PROGRAM as a process of the fabric; exit with its exit status.

    The program sees /sys/bus/dsa, /sys/module/idxd and /dev/dsa as the idxd driver shows
    the fabric's devices; its WQ opens bind through the fabric, and every ENQCMD and
    MOVDIR64B at a portal is the fabric's, from a thread of its process (the PASID, the
    #GP fixup and the device's answer are simulated). It must be dynamically linked
    (the bridge is a preload library). The device reaches the program's own memory
    (process_vm_readv/writev): its data and completion records land where the program
    looks for them, and the record keeps what it read, so the run replays without it.
    """
    from svasim.native import BuildError
    from svasim.native import run_native as run
    from svasim.native.run import StaticProgramError

    cfg = (
        None
        if addr
        else fabric_config(
            services=ALL_SERVICES, port=0, db=db, policy=policy, cpus=cpus, engines=engines, wqs=wqs, native=True
        )
    )
    try:
        result = run(argv, addr=addr, config=cfg, module_tools=module_tools)
    except (BuildError, StaticProgramError) as e:
        fail(e)
    except FileNotFoundError as e:
        fail(f"cannot run {argv[0]}: {e.strerror}")
    except PermissionError as e:
        fail(f"cannot run {argv[0]}: {e.strerror}")
    except Exception as e:  # noqa: BLE001 - a fabric that cannot start is reported in one line
        fail(f"run-native: {one_line(e)}")
    if not quiet:
        c = result.counters
        where = addr or db
        err_console.print(
            f"svasim: run {result.run_id} ({where}): {c.processes} processes, {c.opens} WQ opens, "
            f"{c.enqcmds} ENQCMD ({c.retries} retried), {c.movdir64bs} MOVDIR64B; exit status {result.returncode}",
            soft_wrap=True,
            markup=False,
        )
    raise typer.Exit(result.returncode)


def register(app: typer.Typer) -> None:
    """Add ``run-native`` to ``app``."""
    app.command(
        "run-native",
        context_settings={"allow_interspersed_args": False, "ignore_unknown_options": True},
    )(run_native)
