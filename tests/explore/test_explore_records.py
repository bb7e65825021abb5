"""``svasim explore`` records each interleaving that breaks an invariant as a run.

The defect explored is the one that got Linux 5.10's PASID IPI reverted (commit
9bfecd058339, Gleixner): ``fpregs_lock()`` is only ``local_bh_disable()``, so the IPI
that ``load_pasid()`` sends to ``mm_cpumask`` can land in the middle of an FPU update.
``kernel_fpu_begin()`` sets ``TIF_NEED_FPU_LOAD`` and then saves the registers with
``save_fpregs_to_fpstate()``; an ``update_pasid()`` between the two sees the flag set,
edits the XSAVE buffer, and the save that follows writes the stale MSR over it. The
section's interruptible points are, in kernel order: at entry (0), after the flag is
set (1), after the save (2), with the kernel using the FPU (3), and after the section
(4); only point 1 loses the PASID.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

from svasim.model.explorer import rerun
from svasim.store import Store

SCENARIO = "ipi-during-kernel-fpu"
#: Where the IPI breaks linux-5.10 (see the module docstring) and what that point is called.
BREAKING_POINT = (1, "kernel_fpu_begin:tif_set")
#: The section has four interruptible points, and "after the section" is a fifth choice.
CHOICES = 5


def svasim(*args: str, cwd: str | None = None) -> subprocess.CompletedProcess:
    """``svasim ARGS`` as a user runs it, in a pipe."""
    env = {k: v for k, v in os.environ.items() if k not in ("SVASIM_DB", "SVASIM_COSTS")}
    return subprocess.run(
        [sys.executable, "-m", "svasim.cli", *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=cwd,
        env={**env, "COLUMNS": "200"},
    )


def splitmix64(seed: int) -> int:
    """The first output of Vigna's SplitMix64 (prng.di.unimi.it/splitmix64.c) for ``seed``."""
    mask = (1 << 64) - 1
    z = (seed + 0x9E3779B97F4A7C15) & mask
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & mask
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & mask
    return z ^ (z >> 31)


def run_ids(stdout: str) -> list[str]:
    return re.findall(r"^\s+run ([0-9a-f]{12})\b", stdout, flags=re.M)


@pytest.fixture(scope="module")
def broken(tmp_path_factory):
    """linux-5.10 explored at every point, recorded into a fresh SQLite store."""
    db = f"sqlite:///{tmp_path_factory.mktemp('explore') / 'svasim.db'}"
    r = svasim("explore", SCENARIO, "--policy", "linux-5.10", "--db", db)
    ids = run_ids(r.stdout)
    return db, r, ids


def test_linux_5_10_breaks_at_the_point_after_tif_need_fpu_load_and_says_so(broken):
    _, r, ids = broken
    assert r.returncode == 3, r.stdout + r.stderr  # an invariant broke
    point, name = BREAKING_POINT
    assert f"1 of {CHOICES} broken" in r.stdout
    assert f"point {point} ({name}): invariants broken: pasid_lost (1)" in r.stdout
    assert len(ids) == 1
    assert f"svasim trace show {ids[0]} --db " in r.stdout and "--kind invariant.violation" in r.stdout


def test_the_recorded_run_holds_its_configuration_and_the_violation_caused_by_the_ipi(broken):
    db, _, (run_id,) = broken
    with Store.open(db, create=False) as store:
        run = store.get_run(run_id)
        events = store.events(run_id, limit=None)
    assert run.name == f"explore-{SCENARIO}-linux-5.10-p{BREAKING_POINT[0]}"
    assert run.policy == "linux-5.10"
    assert run.config["explore"]["scenario"] == SCENARIO
    assert (run.config["explore"]["point"], run.config["explore"]["point_name"]) == BREAKING_POINT
    assert run.config["early_free"] is None and run.config["costs"]["ipi_send"] > 0
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert all(e.cause is None or e.cause < e.seq for e in events)
    (violation,) = [e for e in events if e.kind == "invariant.violation"]
    assert violation.entity == "invariant/pasid_lost"
    # Walking the causes back from the violation reaches the moment the IPI was placed.
    by_seq = {e.seq: e for e in events}
    chain, e = [], violation
    while e.cause is not None:
        e = by_seq[e.cause]
        chain.append(e.kind)
    assert "explore.point" in chain and "pasid.alloc" in chain
    (mark,) = [e for e in events if e.kind == "explore.point"]
    assert (mark.after["point"], mark.after["name"]) == BREAKING_POINT
    # The IPI itself is in the record, on the CPU in the FPU section.
    assert any(e.kind.startswith("ipi") for e in events)


def test_trace_show_and_perfetto_export_work_on_the_recorded_run(broken, tmp_path):
    db, _, (run_id,) = broken
    r = svasim("trace", "show", run_id, "--db", db, "--kind", "invariant.violation")
    assert r.returncode == 0, r.stderr
    assert "invariant/pasid_lost" in r.stdout and "1 shown" in r.stdout
    out = tmp_path / "trace.json"
    r = svasim("export", run_id, "--db", db, "--format", "perfetto", "-o", str(out))
    assert r.returncode == 0, r.stderr
    trace = json.loads(out.read_text())
    names = [e.get("name") for e in trace["traceEvents"]]
    assert "violation: pasid_lost" in names


def test_the_recorded_events_are_what_the_interleaving_makes_again(broken):
    db, _, (run_id,) = broken
    with Store.open(db, create=False) as store:
        run = store.get_run(run_id)
        recorded = [e.as_dict() for e in store.events(run_id, limit=None)]
    again = rerun(run.config)
    assert again.violations == {"pasid_lost": 1}
    assert again.is_recorded_as(run.config, recorded)


def test_replay_of_the_recorded_run_is_identical(broken):
    db, _, (run_id,) = broken
    r = svasim("replay", run_id, "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "deterministic" in r.stdout


def test_seeds_name_the_point_they_hit_and_one_interleaving_is_recorded_once(tmp_path):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    hits = [s for s in range(100) if splitmix64(s) % CHOICES == BREAKING_POINT[0]][:2]
    miss = next(s for s in range(100) if splitmix64(s) % CHOICES != BREAKING_POINT[0])
    args = ["explore", SCENARIO, "--policy", "linux-5.10", "--db", db]
    r = svasim(*args, *(a for s in [*hits, miss] for a in ("--seed", str(s))))
    assert r.returncode == 3, r.stdout + r.stderr
    point, name = BREAKING_POINT
    for s in hits:
        assert f"seed {s}: point {point} ({name})" in r.stdout
    assert f"seed {miss}:" not in r.stdout  # a safe interleaving is not recorded, nor listed
    ids = run_ids(r.stdout)
    assert len(ids) == 2 and ids[0] == ids[1] and "(recorded before)" in r.stdout
    # Exploring it again finds the same run rather than adding one.
    again = svasim(*args, "--seed", str(hits[0]))
    assert run_ids(again.stdout) == ids[:1]
    with Store.open(db, create=False) as store:
        assert [x.id for x in store.list_runs()] == ids[:1]


def test_a_safe_policy_records_nothing_unless_asked_to_record_all(tmp_path):
    path = tmp_path / "svasim.db"
    db = f"sqlite:///{path}"
    r = svasim("explore", SCENARIO, "--policy", "linux-5.18", "--db", db)
    assert r.returncode == 0 and "safe" in r.stdout and run_ids(r.stdout) == []
    assert not path.exists()  # nothing to record: no store is created
    r = svasim("explore", SCENARIO, "--policy", "linux-5.18", "--db", db, "--record-all")
    assert r.returncode == 0, r.stdout + r.stderr
    assert len(set(run_ids(r.stdout))) == CHOICES
    with Store.open(db, create=False) as store:
        runs = store.list_runs()
        assert sorted(x.name for x in runs) == [f"explore-{SCENARIO}-linux-5.18-p{p}" for p in range(CHOICES)]
        assert all(not store.events(x.id, kind="invariant.violation", limit=None) for x in runs)


def test_the_default_store_is_svasim_db_and_svasim_db_in_the_environment_wins(tmp_path):
    r = svasim("explore", SCENARIO, "--policy", "linux-5.10", cwd=str(tmp_path))
    assert r.returncode == 3 and (tmp_path / "svasim.db").exists()
    (run_id,) = run_ids(r.stdout)
    assert f"svasim trace show {run_id} --kind invariant.violation" in r.stdout  # no --db needed
    other = tmp_path / "other.db"
    env_run = subprocess.run(
        [sys.executable, "-m", "svasim.cli", "explore", SCENARIO, "--policy", "linux-5.10"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=str(tmp_path),
        env={**os.environ, "SVASIM_DB": f"sqlite:///{other}"},
    )
    assert env_run.returncode == 3 and other.exists()


def test_bad_input_is_one_line_and_creates_no_store(tmp_path):
    path = tmp_path / "svasim.db"
    db = f"sqlite:///{path}"
    r = svasim("explore", "nowhere", "--db", db)
    assert r.returncode == 2 and "unknown scenario 'nowhere'" in r.stderr
    costs = tmp_path / "costs.json"
    costs.write_text('{"no_such_cost": 1}')
    r = svasim("explore", SCENARIO, "--policy", "linux-5.10", "--db", db, "--costs", str(costs))
    assert r.returncode == 2 and "no_such_cost" in r.stderr
    assert not path.exists()


def test_costs_and_early_free_are_recorded_with_the_run(tmp_path):
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    costs = tmp_path / "costs.json"
    costs.write_text('{"ipi_send": 4321}')
    r = svasim("explore", SCENARIO, "--policy", "linux-5.10", "--db", db, "--costs", str(costs), "--no-early-free")
    assert r.returncode == 3, r.stdout + r.stderr
    (run_id,) = run_ids(r.stdout)
    with Store.open(db, create=False) as store:
        run = store.get_run(run_id)
        events = store.events(run_id, limit=None)
    assert run.config["costs"]["ipi_send"] == 4321 and run.config["early_free"] is False
    assert rerun(run.config).is_recorded_as(run.config, [e.as_dict() for e in events])
