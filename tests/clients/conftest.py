"""Fixtures for the client tests: a live fabric, and a venv holding the Python client alone."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.server import create_server
from tests.clients.tools import CLIENT_DIST


@pytest.fixture
def fabric_address(tmp_path: Path) -> Iterator[str]:
    """host:port of a whole fabric (all services, SQLite store) serving in this process."""
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'fabric.db'}"))
    try:
        yield srv.address
    finally:
        srv.stop(0)


@pytest.fixture(scope="session")
def client_python(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The interpreter of a fresh venv into which only ``clients/python`` was installed.

    The distribution is copied first so that building it leaves nothing in the source
    tree, and installed as a user would (``pip install``, not editable), with the
    machine's pip configuration.
    """
    base = tmp_path_factory.mktemp("client-venv")
    src = base / "svasim-client"
    shutil.copytree(CLIENT_DIST, src, ignore=shutil.ignore_patterns("__pycache__", "*.egg-info", "build"))
    venv = base / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    r = subprocess.run(
        [str(python), "-m", "pip", "install", "-q", str(src)], capture_output=True, text=True, timeout=540
    )
    assert r.returncode == 0, r.stdout + r.stderr
    return python
