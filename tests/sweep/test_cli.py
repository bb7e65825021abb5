"""``svasim sweep`` as a user runs it."""

from __future__ import annotations

import os
import subprocess
import sys

from svasim.store import Store
from svasim.sweep import load, tasks


def test_the_quick_study_runs_on_a_scheduler_records_every_run_and_writes_its_plots(two_workers, tmp_path):
    db = f"sqlite:///{tmp_path / 's.db'}"
    out = tmp_path / "out"
    env = {**os.environ, "COLUMNS": "250", "SVASIM_SCHEDULER": two_workers.scheduler.address}
    r = subprocess.run(
        [sys.executable, "-m", "svasim.cli", "sweep", "pasid-2020-quick", "--db", db, "--out", str(out), "--name", "q"],
        capture_output=True,
        text=True,
        timeout=300,
        env=env,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    # A pipe gets no progress bar, only the results.
    assert r.stderr == ""
    for policy in ("linux-5.18", "eager-switch-mm", "eager-switch-mm-cmp", "linux-5.10", "lazy-resource-exception"):
        assert policy in r.stdout
    assert "broken: ipi-during-kernel-fpu" in r.stdout  # linux-5.10, as Gleixner found
    n = len(tasks(load("pasid-2020-quick")))
    store = Store.open(db, create=False)
    try:
        assert len([x for x in store.list_runs() if x.name.startswith("q/")]) == n
    finally:
        store.close()
    written = sorted(p.name for p in out.iterdir())
    assert written == [
        "pasid-2020-quick-per-enqcmd.png",
        "pasid-2020-quick-per-switch.png",
        "pasid-2020-quick-totals.png",
        "pasid-2020-quick.csv",
    ]
    assert (out / "pasid-2020-quick-per-switch.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_an_unreachable_scheduler_is_a_one_line_error_and_creates_no_store(tmp_path):
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "svasim.cli",
            "sweep",
            "pasid-2020-quick",
            "--scheduler",
            "tcp://127.0.0.1:9",
            "--db",
            f"sqlite:///{tmp_path / 's.db'}",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "scheduler" in lines[0], r.stderr
    assert not (tmp_path / "s.db").exists()
