"""Sweep definitions: what they cross, and a one-line error naming each mistake."""

from __future__ import annotations

import subprocess
import sys

import pytest

from svasim.sweep import SweepDefinitionError, parse, shipped_sweeps, tasks
from svasim.sweep.definition import load

GRID = {
    "threads": [1, 4],
    "submit_fraction": [0.0, 1.0],
    "cpus": [2],
    "slice_rounds": [1],
}


def test_the_cross_product_runs_every_workload_under_every_policy_cost_table_and_seed(tmp_path):
    costs = tmp_path / "slow-msr.json"
    costs.write_text('{"wrmsr": 900}')
    defn = parse(
        {
            "name": "x",
            "policies": ["linux-5.18", "eager-switch-mm"],
            "costs": ["default", "slow-msr.json"],
            "workloads": ["one-heavy-submitter", "mostly-idle-threads"],
            "grid": {**GRID, "schedule": "random"},
            "seeds": [3, 4, 5],
        },
        root=tmp_path,
    )
    runs = tasks(defn)
    # Two shipped workloads (no randomness: one seed), a 2x2 cross grid with random
    # schedules (three seeds), two policies, two cost tables.
    assert len(runs) == (2 * 1 + 4 * 3) * 2 * 2
    assert len({r.key for r in runs}) == len(runs)
    assert {r.costs["wrmsr"] for r in runs} == {200, 900}
    assert {r.seed for r in runs if r.point is not None} == {3, 4, 5}


def test_a_star_grid_varies_one_axis_at_a_time_through_the_base_point():
    defn = parse(
        {
            "grid": {
                "design": "star",
                "threads": [1, 4, 16],
                "submit_fraction": [0.0, 0.5],
                "cpus": [2, 8],
                "slice_rounds": [1],
                "base": {"threads": 4, "submit_fraction": 0.5, "cpus": 2},
            },
            "policies": ["linux-5.18"],
        }
    )
    # base, plus 2 other thread counts, 1 other fraction, 1 other CPU count.
    assert len(defn.workloads) == 1 + 2 + 1 + 1
    assert [p.threads for p in defn.grid.slice_of("threads")] == [1, 4, 16]


def test_every_shipped_sweep_is_valid_and_runs_all_five_policies():
    shipped = shipped_sweeps()
    assert {"pasid-2020", "pasid-2020-quick"} <= set(shipped)
    for name in shipped:
        defn = load(name)
        assert len(defn.policies) == 5
        assert tasks(defn)


@pytest.mark.parametrize(
    ("data", "named"),
    [
        ({"policies": ["linux-5.18", "linux-9.9"], "workloads": ["one-heavy-submitter"]}, "'linux-9.9'"),
        ({"workloads": ["no-such-workload"]}, "'no-such-workload'"),
        ({"policies": [], "workloads": ["one-heavy-submitter"]}, "policies is empty"),
        ({"grid": {**GRID, "threads": []}}, "grid.threads is empty"),
        ({"grid": {**GRID, "cpus": [0]}}, "grid.cpus"),
        ({"grid": {**GRID, "submit_fraction": [1.5]}}, "grid.submit_fraction"),
        ({"grid": {**GRID, "base": {"threads": 3}}}, "grid.base.threads"),
        ({"seeds": [], "workloads": ["one-heavy-submitter"]}, "seeds is empty"),
        ({"explore": {"scenarios": ["nowhere"]}}, "'nowhere'"),
        ({"costs": ["missing.json"], "workloads": ["one-heavy-submitter"]}, "missing.json"),
        ({"workload": ["one-heavy-submitter"]}, "unknown sweep keys ['workload']"),
        ({"name": "only-a-name"}, "runs nothing"),
        ({"workloads": ["one-heavy-submitter", "twin.toml"]}, "two workloads are named 'one-heavy-submitter'"),
    ],
)
def test_a_bad_definition_is_an_error_naming_the_problem(tmp_path, data, named):
    (tmp_path / "twin.toml").write_text('name = "one-heavy-submitter"\n[[process]]\nname = "a"\n')
    with pytest.raises(SweepDefinitionError) as e:
        parse(data, root=tmp_path)
    assert named in str(e.value)
    assert "\n" not in str(e.value)


def test_the_command_refuses_a_bad_definition_in_one_line_and_records_nothing(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('policies = ["linux-5.18", "eager-everything"]\nworkloads = ["one-heavy-submitter"]\n')
    db = tmp_path / "s.db"
    r = subprocess.run(
        [
            sys.executable,
            "-m",
            "svasim.cli",
            "sweep",
            str(bad),
            "--db",
            f"sqlite:///{db}",
            "--out",
            str(tmp_path / "o"),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert r.returncode != 0
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "eager-everything" in lines[0], r.stderr
    assert not db.exists()
