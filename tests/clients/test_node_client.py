"""The Node.js client (clients/node) drives the ENQCMD path against a real server."""

from __future__ import annotations

import os
import re
import shutil
import subprocess

from tests.clients.tools import ROOT, missing_tool

NODE_DIR = ROOT / "clients" / "node"


def test_node_client_runs_the_enqcmd_path(fabric_address):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        missing_tool("node or clients/node/node_modules missing; run `make install` (cd clients/node && npm install)")
    r = subprocess.run(
        [node, "--test", "test/"],
        cwd=NODE_DIR,
        env={**os.environ, "SVASIM_ADDR": fabric_address},
        capture_output=True,
        text=True,
        timeout=120,
    )
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert re.search(r"^# pass 3$", out, re.M), out
    assert re.search(r"^# skipped 0$", out, re.M), out
