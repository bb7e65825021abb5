"""Helpers of the client tests: where things are, and how to run a tool or an isolated Python."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent.parent
CLIENT_DIST = ROOT / "clients" / "python"


def missing_tool(message: str) -> None:
    """Skip the test, or fail it in CI, where every client tool must be present."""
    if os.environ.get("CI") == "true":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def run_isolated(python: Path, args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``python -I args`` (no PYTHONPATH, no user site, no cwd on sys.path) in ``cwd``."""
    return subprocess.run(
        [str(python), "-I", *args],
        cwd=cwd,
        env={"PATH": os.environ.get("PATH", ""), **env},
        capture_output=True,
        text=True,
        timeout=300,
    )
