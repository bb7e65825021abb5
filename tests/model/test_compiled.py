"""The compiled model (svasim.compiled, ``make compiled``): used only when asked for and
only while it matches the sources, and it computes what the interpreted model computes.

``make test`` builds it and runs the model's, the oracle's, the golden, the replay and
the services' tests again with ``SVASIM_COMPILED=1``; these tests check the switch
itself. In CI the build must be there (``make test`` makes it); elsewhere its tests
are skipped until ``make compiled`` has run.
"""

from __future__ import annotations

import json
import logging
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from svasim import compiled

from ..required import missing

#: Runs the three shipped workloads under every policy, and a MEMMOVE loop on a model
#: fabric with every transition kept; prints whether the model is compiled and a
#: digest of everything it computed.
PROGRAM = r"""
import hashlib, json, sys
from svasim import compiled
from svasim.compare import load_workload, shipped_workloads
from svasim.model.fabric import ModelFabric
from svasim.model.policies import policy_names
from svasim.model.workload import run_workload
from svasim_client import memmove_descriptor

h = hashlib.sha256()
for name in sorted(shipped_workloads()):
    for policy in policy_names():
        h.update(repr(run_workload(load_workload(name), policy)).encode())
kept = []
fab = ModelFabric(ncpus=4, sink=kept.append)
k = fab.kernel
procs = [k.create_process(fab.journal(), f"p{i}") for i in range(4)]
for i, p in enumerate(procs):
    k.schedule(fab.journal(), p.tids[0], i)
pid, tid = procs[0].pid, procs[0].tids[0]
src, dst, comp = (k.mmap(fab.journal(), pid, 8192, True, True).start for _ in range(3))
k.write_memory(fab.journal(), pid, src, bytes(range(256)) * 32)
portal = k.open_wq(fab.journal(), pid, "dsa0", 0)[0]
for n in range(50):
    k.enqcmd(fab.journal(), tid, portal, memmove_descriptor(src, dst, 4096 + n, comp))
    k.schedule(fab.journal(), procs[1 + n % 3].tids[0], 0)
    k.schedule(fab.journal(), tid, 0)
assert k.read_memory(fab.journal(), pid, dst, 4096) == (bytes(range(256)) * 32)[:4096]
for t in kept:
    # As the store records it (the compiled model holds a status as the int it is, where
    # the interpreted one may hold the IntEnum member of the same value).
    h.update(json.dumps((t.service, t.entity, t.kind, t.before, t.after, t.cycles, t.detail)).encode())
print(compiled.active(), len(kept), h.hexdigest())
"""


def built() -> None:
    """Skip (fail in CI, where ``make test`` builds it) when the build is missing or stale."""
    reason = compiled.stale_reason()
    if reason:
        missing(
            f"the compiled model is not usable in CI: {reason} (make test runs make compiled)",
            f"the compiled model is not usable: {reason}; run `make compiled`",
        )


def run(value: str) -> list[str]:
    env = dict(os.environ, SVASIM_COMPILED=value)
    out = subprocess.run([sys.executable, "-c", PROGRAM], env=env, capture_output=True, text=True, check=True)
    return out.stdout.split()


def test_the_compiled_model_computes_exactly_what_the_interpreted_one_does() -> None:
    built()
    interpreted, compiled_ = run("0"), run("1")
    assert interpreted[0] == "False" and compiled_[0] == "True"
    assert int(interpreted[1]) > 1000
    assert compiled_[1:] == interpreted[1:]


def test_the_interpreted_model_is_the_default() -> None:
    env = {k: v for k, v in os.environ.items() if k != compiled.ENV}
    code = "from svasim import compiled; print(compiled.active())"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def stale_copy(tmp_path: Path, change: dict[str, object]) -> Path:
    """A build directory whose manifest is the real sources' with ``change`` applied."""
    root = tmp_path / "_compiled"
    root.mkdir(parents=True)
    manifest: dict[str, object] = {"ext_suffix": compiled.ext_suffix(), "shared": "x__mypyc"}
    manifest["sources"] = compiled.sources()
    manifest.update(change)
    (root / compiled.MANIFEST).write_text(json.dumps(manifest))
    (root / f"x__mypyc{compiled.ext_suffix()}").touch()
    return root


def test_a_build_of_other_sources_is_not_used_and_names_what_changed(tmp_path: Path) -> None:
    sources = compiled.sources()
    edited = dict(sources, **{"model/accel.py": "0" * 64})
    assert compiled.stale_reason(stale_copy(tmp_path, {})) == ""
    assert compiled.stale_reason(stale_copy(tmp_path / "a", {"sources": edited})) == (
        "svasim/model/accel.py changed since it was built"
    )
    gone = {k: v for k, v in sources.items() if k not in ("model/iommu.py", "model/memory.py")}
    assert compiled.stale_reason(stale_copy(tmp_path / "b", {"sources": gone})) == (
        "svasim/model/iommu.py and 1 more changed since it was built"
    )
    assert "built for .other.so" in compiled.stale_reason(stale_copy(tmp_path / "c", {"ext_suffix": ".other.so"}))
    assert compiled.stale_reason(stale_copy(tmp_path / "d", {"shared": "y__mypyc"})) == "its shared library is missing"
    assert compiled.stale_reason(tmp_path / "nothing") == "it is not built"


def test_asked_for_but_stale_it_warns_once_and_the_interpreted_model_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    root = stale_copy(tmp_path, {"sources": {"model/accel.py": "0" * 64}})
    monkeypatch.setattr(compiled, "ROOT", root)
    monkeypatch.setenv(compiled.ENV, "1")
    with caplog.at_level(logging.WARNING, logger="svasim.compiled"):
        assert compiled.usable.__wrapped__() is False  # type: ignore[attr-defined]
    assert str(root) not in sys.path
    assert "run `make compiled`" in caplog.text and "svasim/model/" in caplog.text


def test_a_value_other_than_0_or_1_is_warned_about_and_means_interpreted(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setenv(compiled.ENV, "yes")
    with caplog.at_level(logging.WARNING, logger="svasim.compiled"):
        assert compiled.wanted() is False
    assert "must be 0 or 1" in caplog.text


def test_a_stale_build_in_a_process_runs_the_interpreted_model_with_one_line_on_stderr(tmp_path: Path) -> None:
    built()
    # A copy of the sources with one module edited, next to a copy of the build.
    src = tmp_path / "src"
    shutil.copytree(Path(compiled.__file__).parent, src / "svasim", ignore=shutil.ignore_patterns("__pycache__"))
    accel = src / "svasim" / "model" / "accel.py"
    accel.write_text(accel.read_text() + "\n# edited\n")
    env = dict(os.environ, SVASIM_COMPILED="1", PYTHONPATH=str(src))
    code = "from svasim import compiled; import svasim.model.kernel; print(compiled.active(), compiled.__file__)"
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    active, where = out.stdout.split()
    assert active == "False" and where.startswith(str(src))
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "svasim/model/accel.py changed since it was built" in lines[0], out.stderr
