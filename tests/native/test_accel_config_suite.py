"""Intel's accel-config test suite, unmodified, against the simulated device.

Debian's ``accel-config-test`` (3.5.3) ships ``dsa_user_test_runner.sh``: it reloads the
idxd driver (``rmmod``/``modprobe``, here svasim's stand-ins: ``run-native
--module-tools``), loads ``configs/2g2q_user_1.conf`` (a shared and a dedicated WQ in two
groups of two engines each), enables the device and its WQs, and runs ``dsa_test`` 476
times: opcodes 0x0-0x20 and the DIF opcodes 0x12-0x15, 1 B to 2 MiB, both WQ modes,
block on fault on and off, single descriptors and batches of 16. ``dsa_test`` checks the
completion record and every byte of its output itself. The runner, ``dsa_test`` and the
configuration are Debian's, run as installed.

The packages are installed here when missing (as root, with apt-get). Set
``SVASIM_NATIVE_SUITE=0`` to leave the suite out of a run (it is never skipped in CI).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from .. import accel_config

#: dsa_test invocations of the runner: (10 opcodes + 9 batched) x 2 modes x 5 sizes, and
#: (4 DIF opcodes, single and batched) x 2 modes x 3 sizes, each with BOF on and off.
INVOCATIONS = 2 * ((10 + 9) * 2 * 5 + 4 * 2 * 2 * 3)

pytestmark = pytest.mark.skipif(
    os.environ.get("SVASIM_NATIVE_SUITE") == "0" and os.environ.get("CI") != "true",
    reason="SVASIM_NATIVE_SUITE=0",
)


@pytest.fixture(scope="module")
def suite() -> Path:
    """The installed runner, installed from Debian's packages when it is missing."""
    accel_config.installed(required=True)
    return accel_config.RUNNER


def run_suite(runner: Path, db: Path, **env: str) -> tuple[subprocess.CompletedProcess[str], float]:
    """The runner under ``svasim run-native`` with a fabric of 4 engines per device."""
    argv = [sys.executable, "-m", "svasim.cli", "run-native", "--module-tools", "--engines", "4"]
    argv += ["--db", f"sqlite:///{db}", "--", str(runner)]
    start = time.monotonic()
    r = subprocess.run(argv, env={**os.environ, **env}, capture_output=True, text=True, timeout=3600)
    return r, time.monotonic() - start


def test_the_unmodified_dsa_user_test_runner_passes_every_invocation(suite: Path, tmp_path: Path) -> None:
    r, seconds = run_suite(suite, tmp_path / "suite.db")
    tail = "\n".join((r.stdout + r.stderr).splitlines()[-30:])
    assert r.returncode == 0, tail
    invocations = sum(1 for ln in r.stderr.splitlines() if ln.startswith("+ /usr/libexec/accel-config/test/dsa_test "))
    assert invocations == INVOCATIONS, tail
    # Every dsa_test run ended with its own verdict: the last one the runner's exit.
    assert "test/dsa_user_test_runner.sh: failed" not in r.stdout
    # Each dsa_test opened its WQ through the fabric, and the device read its memory.
    assert f"{INVOCATIONS} WQ opens" in r.stderr.splitlines()[-1], r.stderr.splitlines()[-1]
    with sqlite3.connect(tmp_path / "suite.db") as conn:
        events = conn.execute("select count(*) from events").fetchone()[0]
        reads = conn.execute("select count(*) from events where kind = 'native.read'").fetchone()[0]
    assert reads > INVOCATIONS
    print(f"\naccel-config suite: {invocations} dsa_test runs passed in {seconds:.0f} s, {events:,} events recorded")


def test_a_corrupted_byte_in_the_devices_output_makes_the_runner_fail(suite: Path, tmp_path: Path) -> None:
    # The first data write into each program gets one bit flipped: the first MEMMOVE's
    # own check must catch it, and the runner stops there.
    r, _ = run_suite(suite, tmp_path / "bad.db", SVASIM_NATIVE_CORRUPT="1")
    assert r.returncode != 0
    assert "test/dsa_user_test_runner.sh: failed at line" in r.stdout
    failed = [ln for ln in r.stderr.splitlines() if ln.startswith("+ /usr/libexec/accel-config/test/dsa_test ")][-1]
    assert "-o 0x3" in failed, failed
