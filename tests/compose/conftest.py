"""The docker tooling under test, loaded from scripts/docker (it is a script, not a package)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def load_script(name: str):
    """Import scripts/docker/NAME.py as a module."""
    spec = importlib.util.spec_from_file_location(f"svasim_docker_{name}", ROOT / "scripts" / "docker" / f"{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="session")
def stack():
    """scripts/docker/stack.py."""
    return load_script("stack")


@pytest.fixture(scope="session")
def requirements():
    """scripts/docker/requirements.py."""
    return load_script("requirements")
