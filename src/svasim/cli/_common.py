"""What every command group shares: consoles, one-line errors, the store, number formats."""

from __future__ import annotations

import json
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from svasim.config import DEFAULT_DB, FabricConfig

if TYPE_CHECKING:
    from rich.progress import Progress
    from rich.table import Table

    from svasim.store import RunInfo, Store

#: Results go to stdout; errors, warnings and progress bars to stderr, so a pipe gets
#: only the results.
console = Console(highlight=False)
err_console = Console(stderr=True, highlight=False)

DbOpt = Annotated[str, typer.Option("--db", envvar="SVASIM_DB", help="SQLAlchemy URL of the store.")]

__all__ = ["DEFAULT_DB", "DbOpt", "console", "err_console"]


#: The cost table of a model run: overrides or a `svasim calibrate` table.
CostsOption = Annotated[
    str | None,
    typer.Option(help="Cost table: JSON overrides or a `svasim calibrate` table.", envvar="SVASIM_COSTS"),
]
#: Early PASID free, or each policy's own choice.
EarlyFreeOption = Annotated[
    bool | None,
    typer.Option(
        "--early-free/--no-early-free", help="Free PASIDs on the last unbind (default: each policy's own choice)."
    ),
]


def print_table(table: Table) -> None:
    """Print a table: fitted to a terminal, at its natural width in a pipe (where nothing
    would wrap it, and a cut id could not be pasted)."""
    if console.is_terminal:
        console.print(table)
    else:
        Console(width=console.measure(table, options=console.options.update_width(10_000)).maximum).print(table)


def one_line(e: BaseException | str) -> str:
    """An exception's message on one line: drivers and SQLAlchemy add lines of background."""
    text = str(e) if not isinstance(e, KeyError) or not e.args else str(e.args[0])
    lines = [ln.strip() for ln in text.splitlines() if ln.strip() and not ln.strip().startswith("(Background on")]
    return "; ".join(lines) or type(e).__name__


def fail(message: str | BaseException, code: int = 2) -> NoReturn:
    """Print ``error: message`` as one line on stderr and exit with ``code``."""
    err_console.print(f"[red]error:[/red] {escape(one_line(message))}", soft_wrap=True)
    raise typer.Exit(code)


def warn(message: str) -> None:
    """Print ``warning: message`` as one line on stderr."""
    err_console.print(f"[yellow]warning:[/yellow] {escape(message)}", soft_wrap=True)


def fabric_config(**overrides: object) -> FabricConfig:
    """The configuration from the environment, with the options given on the command line.

    A malformed environment variable (``SVASIM_PORT=abc``) is a one-line error.
    """
    try:
        cfg = FabricConfig.from_env()
    except (KeyError, ValueError) as e:
        fail(f"in the environment: {one_line(e)}")
    for k, v in overrides.items():
        if v is not None:
            setattr(cfg, k, v)
    if not 0 <= cfg.port <= 65535:
        fail(f"port {cfg.port} is not a TCP port (0..65535; 0 = any free one)")
    return cfg


def open_store(db: str, *, create: bool = False) -> Store:
    """The store at ``db``; only commands that record may ``create`` a new one.

    Reading commands refuse a URL that names no store, so a typo is an error rather than
    a new, empty database.
    """
    from svasim.store import Store, StoreNotFoundError

    try:
        return Store.open(db, create=create)
    except StoreNotFoundError as e:
        fail(f"{e} (is the URL right? svasim demo, up or serve record into a new store)")
    except Exception as e:  # noqa: BLE001 - any failure to open is the user's to fix
        fail(f"cannot open store {db}: {one_line(e)}")


def get_run(store: Store, ref: str) -> RunInfo:
    """The run with this id or name, or a one-line error."""
    from svasim.store import UnknownRunError

    try:
        return store.get_run(ref)
    except UnknownRunError:
        fail(f"no run {ref!r} in the store (svasim trace runs lists them)")


# -- numbers ---------------------------------------------------------------------------------
#: Fields that hold addresses, registers or masks: shown in hex. Every other integer
#: (counts, cycles, ids, sizes) is shown in decimal, whatever its size.
HEX_FIELDS = frozenset(
    {
        "address",
        "start",
        "end",
        "cr3",
        "pgd",
        "flptr",
        "physical",
        "pfn",
        "ia32_pasid",
        "saved_ia32_pasid",
        "mm_cpumask",
        "crc32",
        "pkru",
        "xfd",
        "kernel_gs_base",
    }
)


def is_hex_field(name: str) -> bool:
    """Whether a field named ``name`` holds an address, a register or a mask."""
    return name in HEX_FIELDS or name.endswith(("_addr", "_address"))


def _plain(value: Any, name: str = "", *, digits_are_ints: bool = False) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v, k, digits_are_ints=digits_are_ints) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v, name, digits_are_ints=digits_are_ints) for v in value]
    # Protobuf JSON carries 64-bit integers as strings of digits.
    if digits_are_ints and isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and is_hex_field(name):
        return hex(value)
    return value


def fields_text(fields: object, *, request: bool = False) -> str:
    """Compact JSON of an event's fields: addresses in hex, everything else in decimal.

    With ``request`` the fields are a recorded client request, whose 64-bit integers
    protobuf JSON wrote as strings: they are shown as the numbers they are.
    """
    if fields is None:
        return "-"
    return json.dumps(_plain(fields, digits_are_ints=request), sort_keys=True, separators=(",", ":"))


# -- progress --------------------------------------------------------------------------------
T = TypeVar("T")


@contextmanager
def progress(description: str) -> Iterator[Progress]:
    """A Rich progress bar on stderr when it is a terminal; nothing in a pipe."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
        disable=not err_console.is_terminal,
    )
    with bar:
        yield bar


def tracked(items: Sequence[T], description: str) -> Iterator[T]:
    """Iterate over ``items`` with a progress bar (see :func:`progress`)."""
    with progress(description) as bar:
        task = bar.add_task(description, total=len(items))
        for item in items:
            yield item
            bar.advance(task)


def parent_must_exist(path: str) -> None:
    """Fail at once when ``path`` cannot be written: its directory does not exist."""
    parent = Path(path).expanduser().resolve().parent
    if not parent.is_dir():
        fail(f"cannot write {path}: there is no directory {parent}")
