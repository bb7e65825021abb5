"""benchmarks/run.py for the tests of its figures: run as a script, or loaded as a module."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pytest

RUN = Path(__file__).resolve().parents[2] / "benchmarks" / "run.py"


def run(*args: str) -> str:
    """What ``benchmarks/run.py args`` prints (it must exit 0 within 5 minutes)."""
    return subprocess.run(
        [sys.executable, str(RUN), *args], capture_output=True, text=True, timeout=300, check=True
    ).stdout


def load(monkeypatch: pytest.MonkeyPatch) -> ModuleType:
    """benchmarks/run.py as a module, registered for the test's duration."""
    spec = importlib.util.spec_from_file_location("svasim_bench_run", RUN)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module
