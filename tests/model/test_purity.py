"""The model layer stays pure: no gRPC, database, threads, clock, randomness or I/O."""

from __future__ import annotations

import ast
from pathlib import Path

import svasim.model

FORBIDDEN = {
    "grpc",
    "sqlalchemy",
    "alembic",
    "threading",
    "asyncio",
    "time",
    "datetime",
    "random",
    "socket",
    "os",
    "pathlib",
    "subprocess",
    "svasim.rpc",
    "svasim.store",
    "svasim.wiring",
    "svasim.server",
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text())
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_model_modules_import_nothing_impure():
    root = Path(svasim.model.__file__).parent
    offenders = {}
    paths = sorted(root.rglob("*.py"))
    assert root / "kernel" / "enqcmd.py" in paths  # the packages are searched too
    for path in paths:
        bad = {m for m in imported_modules(path) if any(m == f or m.startswith(f + ".") for f in FORBIDDEN)}
        if bad:
            offenders[str(path.relative_to(root))] = sorted(bad)
    assert offenders == {}
