"""The sweep on a real Dask LocalCluster: every run in the store, the same numbers on any
number of workers."""

from __future__ import annotations

import pytest

from svasim.store import Store
from svasim.sweep import dask_client, parse, run, tasks
from svasim.sweep.runner import RESULT_KIND, recorded

SMALL = {
    "name": "small",
    "policies": ["linux-5.18", "eager-switch-mm", "linux-5.10"],
    "workloads": ["one-heavy-submitter"],
    "seeds": [1, 2],
    "grid": {
        "threads": [2, 6],
        "submit_fraction": [0.5],
        "cpus": [2, 4],
        "slice_rounds": [1],
        "schedule": "random",
        "slices_per_thread": 2,
    },
    "explore": {"scenarios": ["ipi-on-borrowed-mm"], "seeds": "all"},
}


def _numbers(results):
    return {r.key: (r.counters, r.metrics) for r in results}


def test_every_run_is_recorded_with_its_configuration_and_results(two_workers, sqlite_url):
    defn = parse(SMALL)
    store = Store.open(sqlite_url)
    try:
        results = run(defn, two_workers, store=store, sweep="s1")
        expected = tasks(defn)
        # 1 shipped workload + 4 grid points x 2 seeds, 3 policies; 1 scenario x 3 policies.
        assert len(expected) == (1 + 4 * 2) * 3 + 3
        assert sorted(r.key for r in results) == sorted(t.key for t in expected)
        runs = {r.name: r for r in store.list_runs()}
        assert len(runs) == len(expected)
        for r in results:
            info = runs[f"s1/{r.key}"]
            assert info.policy == r.task.policy and info.seed == r.task.seed
            assert info.config["key"] == r.key and info.config["costs"]["wrmsr"] == 200
            (event,) = store.events(info.id, limit=None)
            assert event.kind == RESULT_KIND
            assert event.after["counters"] == r.counters
        assert _numbers(recorded(store, "s1")) == _numbers(results)
        # linux-5.10's IPI reaches a kernel thread on a borrowed mm in one of three places.
        (borrowed,) = [r for r in results if r.key == "explore/ipi-on-borrowed-mm/linux-5.10/all"]
        assert (borrowed.metrics["interleavings"], borrowed.metrics["broken"]) == (3, 1)
    finally:
        store.close()


def test_one_worker_and_two_workers_give_identical_numbers(two_workers, tmp_path):
    defn = parse(SMALL)
    out = {}
    for n, client_cm in ((1, dask_client(workers=1)), (2, None)):
        store = Store.open(f"sqlite:///{tmp_path / f'w{n}.db'}")
        try:
            if client_cm is None:
                out[n] = run(defn, two_workers, store=store, sweep="d")
            else:
                with client_cm as client:
                    out[n] = run(defn, client, store=store, sweep="d")
        finally:
            store.close()
    assert _numbers(out[1]) == _numbers(out[2])
    # Different seeds gave different random schedules (the seeds do something).
    by_key = _numbers(out[2])
    a = by_key["t6-s50pc-c4-q1-p2/linux-5.18/default/s1"][0]
    b = by_key["t6-s50pc-c4-q1-p2/linux-5.18/default/s2"][0]
    assert a != b


@pytest.mark.postgres
def test_with_postgresql_the_workers_record_their_own_runs(two_workers, pg_url):
    defn = parse({**SMALL, "seeds": [1], "explore": {"scenarios": ["ipi-on-borrowed-mm"], "seeds": [0]}})
    store = Store.open(pg_url)
    try:
        results = run(defn, two_workers, store=store, sweep="pg")
        assert len({r.key for r in recorded(store, "pg")}) == len(results) == len(tasks(defn))
        assert _numbers(recorded(store, "pg")) == _numbers(results)
    finally:
        store.close()
