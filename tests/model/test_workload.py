"""Workloads: validation, determinism, and the shipped ones under every policy."""

from __future__ import annotations

import pytest

from svasim.compare import load_workload, shipped_workloads
from svasim.model.policies import policy_names
from svasim.model.workload import Workload, run_workload


def test_shipped_workloads_cover_the_three_realistic_shapes():
    assert set(shipped_workloads()) >= {"mostly-idle-threads", "one-heavy-submitter", "migrating-pool"}


@pytest.mark.parametrize("name", ["mostly-idle-threads", "one-heavy-submitter", "migrating-pool"])
def test_shipped_workloads_run_without_violations_under_every_policy(name):
    wl = load_workload(name)
    for policy in policy_names():
        r = run_workload(wl, policy)
        assert r.counters["invariant_violations"] == 0, (name, policy)
        assert r.counters["context_switches"] > 0


def test_a_workload_run_is_deterministic():
    wl = load_workload("migrating-pool")
    a = run_workload(wl, "linux-5.18")
    b = run_workload(wl, "linux-5.18")
    assert a.counters == b.counters and a.per_thread == b.per_thread


def test_lazy_policy_takes_one_gp_per_submitting_thread_and_eager_none():
    wl = load_workload("one-heavy-submitter")
    lazy = run_workload(wl, "linux-5.18")
    eager = run_workload(wl, "eager-switch-mm")
    assert lazy.counters["gp"] == 3 and lazy.counters["wrmsr.pasid"] == 3
    # Each process opens the WQ on its first run, before its other threads run, so
    # mm_cpumask holds only the opening CPU; smp_call_function_many_cond() (kernel/smp.c)
    # runs the handler there without an IPI.
    assert eager.counters["gp"] == 0 and eager.counters["ipi_sent"] == 0
    assert (
        eager.counters["cache_lines_dirtied"] > run_workload(wl, "eager-switch-mm-cmp").counters["cache_lines_dirtied"]
    )


@pytest.mark.parametrize(
    "data, message",
    [
        ({}, "at least one"),
        ({"process": [{"name": "a", "threads": 0}]}, "threads"),
        ({"process": [{"name": "a", "submitters": 2, "open_wq": True}]}, "more submitters"),
        ({"process": [{"name": "a", "threads": 2, "submitters": 1}]}, "open_wq"),
        ({"process": [{"name": "a", "bogus": 1}]}, "unknown keys"),
        ({"cpus": 0, "process": [{"name": "a"}]}, "cpus"),
        ({"colour": "blue", "process": [{"name": "a"}]}, "unknown workload keys"),
    ],
)
def test_bad_workloads_are_refused_with_the_field_named(data, message):
    with pytest.raises((ValueError, TypeError)) as e:
        Workload.from_dict(data)
    assert message in str(e.value)


def test_an_explicit_schedule_of_switch_events_drives_the_run():
    data = {
        "name": "explicit",
        "cpus": 2,
        "ticks": 3,
        "process": [{"name": "app", "threads": 2, "open_wq": True, "submitters": 2, "enqcmds_per_tick": 1}],
        "switch": [
            {"round": 0, "cpu": 0, "process": "app0", "thread": 0},
            {"round": 1, "cpu": 1, "process": "app0", "thread": 1},
            {"round": 2, "cpu": 1, "process": "app0", "thread": 0},
        ],
    }
    r = run_workload(Workload.from_dict(data), "linux-5.18")
    assert r.counters["context_switches"] == 3
    assert r.counters["enqcmd"] == 3 and r.counters["gp"] == 2  # one fixup per thread


def test_switch_events_naming_missing_threads_or_cpus_are_refused():
    base = {"cpus": 1, "ticks": 2, "process": [{"name": "a"}]}
    with pytest.raises(ValueError, match="cpu 3"):
        Workload.from_dict({**base, "switch": [{"round": 0, "cpu": 3, "process": "a0", "thread": 0}]})
    with pytest.raises(ValueError, match="round order"):
        Workload.from_dict(
            {
                **base,
                "switch": [
                    {"round": 1, "cpu": 0, "process": "a0", "thread": 0},
                    {"round": 0, "cpu": 0, "process": "a0", "thread": 0},
                ],
            }
        )
    wl = Workload.from_dict({**base, "switch": [{"round": 0, "cpu": 0, "process": "zz0", "thread": 0}]})
    with pytest.raises(ValueError, match="lacks"):
        run_workload(wl, "linux-5.18")


def test_longer_time_slices_mean_fewer_context_switches():
    base = {"cpus": 2, "ticks": 40, "process": [{"name": "a", "threads": 4}]}
    short = run_workload(Workload.from_dict(base), "linux-5.18")
    long_ = run_workload(
        Workload.from_dict({**base, "process": [{"name": "a", "threads": 4, "slice_rounds": 4}]}), "linux-5.18"
    )
    assert short.counters["context_switches"] == 80
    assert long_.counters["context_switches"] == 20
