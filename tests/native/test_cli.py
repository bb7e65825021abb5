"""``svasim run-native``, as a user runs it: its own fabric, or one serving elsewhere."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from svasim_client import Client
from tests.cli.processes import up

SVASIM = [sys.executable, "-m", "svasim.cli"]


def _run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*SVASIM, *map(str, args)], capture_output=True, text=True, timeout=300)


def test_run_native_starts_a_fabric_and_returns_the_programs_status(tmp_path: Path, probe: Path) -> None:
    db = f"sqlite:///{tmp_path / 'native.db'}"
    r = _run("run-native", "--db", db, "--", probe, "enqcmd", "wq0.0")
    assert r.returncode == 0, r.stderr
    assert "enqcmd form=4 zf=0" in r.stdout
    assert "5 ENQCMD (0 retried)" in r.stderr
    run_id = r.stderr.split("svasim: run ", 1)[1].split()[0]
    # The run is recorded like any other: it replays to the same transitions.
    rep = _run("replay", run_id, "--db", db)
    assert rep.returncode == 0, rep.stdout + rep.stderr
    assert "deterministic" in rep.stdout
    # A program killed by a signal: the shell's 128 + N.
    r = _run("run-native", "-q", "--db", db, "--", probe, "default")
    assert r.returncode == 128 + signal.SIGSEGV
    assert r.stderr == ""


def test_run_native_uses_a_fabric_serving_elsewhere(tmp_path: Path, probe: Path) -> None:
    with up(f"sqlite:///{tmp_path / 'up.db'}", "--native") as (addr, _proc):
        r = _run("run-native", "--addr", addr, "--", probe, "movdir64b", "wq0.1")
        assert r.returncode == 0, r.stderr
        with Client(addr) as c:
            c.flush()
            kinds = [e.kind for e in c.events(c.fabric().run_id)]
        assert kinds.count("movdir64b.posted") == 3


def test_run_native_reports_a_missing_program_in_one_line(tmp_path: Path) -> None:
    r = _run("run-native", "--db", f"sqlite:///{tmp_path / 'x.db'}", "--", tmp_path / "no-such-program")
    assert r.returncode == 2
    assert r.stderr.startswith("error: cannot run ") and r.stderr.count("\n") == 1


def test_run_native_refuses_a_static_program_before_starting_anything(tmp_path: Path) -> None:
    src = tmp_path / "static.c"
    src.write_text("int main(void) { return 0; }\n")
    exe = tmp_path / "static"
    subprocess.run(["cc", "-static", "-o", str(exe), str(src)], check=True)
    db = tmp_path / "x.db"
    r = _run("run-native", "--db", f"sqlite:///{db}", "--", exe)
    assert r.returncode == 2
    assert "statically linked" in r.stderr
    assert not db.exists()
