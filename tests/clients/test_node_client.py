"""The Node.js client (clients/node) drives the ENQCMD path against a real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.server import create_server

NODE_DIR = Path(__file__).resolve().parent.parent.parent / "clients" / "node"


def test_node_client_runs_the_enqcmd_path(tmp_path):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        msg = "node or clients/node/node_modules missing; run `make install` (cd clients/node && npm install)"
        if os.environ.get("CI") == "true":
            pytest.fail(msg)
        pytest.skip(msg)
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'n.db'}"))
    try:
        r = subprocess.run(
            [node, "--test", "test/"],
            cwd=NODE_DIR,
            env={**os.environ, "SVASIM_ADDR": srv.address},
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        srv.stop(0)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"^# pass 2$", out, re.M), out
    assert re.search(r"^# skipped 0$", out, re.M), out
