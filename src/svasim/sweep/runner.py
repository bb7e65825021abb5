"""Running a sweep on Dask distributed, every run recorded in one store.

Each run is a pure function of its :class:`RunTask` (the model is deterministic), so the
numbers do not depend on how many workers there are or in what order runs finish. A
workload run depends on the run of its twin without a PASID (one per workload, cost table
and seed), which Dask computes once and hands to every policy's run.

Writes: with SQLite (a file on the client's machine, one writer at a time) the client
records each result as it arrives, so no two processes ever write the file at once. With
PostgreSQL each worker records its own runs, as a cluster would.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svasim.model.costs import CostTable
from svasim.sweep.breakdown import pasid_cycles, per
from svasim.sweep.definition import GridPoint, SweepDefinition

#: Environment variable naming a Dask scheduler (``tcp://host:8786``) to run on.
SCHEDULER_ENV = "SVASIM_SCHEDULER"
#: Kind of the one event that holds a sweep run's results.
RESULT_KIND = "sweep.result"


class SweepError(RuntimeError):
    """A sweep that could not finish: which run failed, and why."""


@dataclass(frozen=True)
class RunTask:
    """One run of a sweep: a workload under a policy, or an explorer scenario."""

    key: str
    kind: str  # "workload" or "explore"
    policy: str
    costs_name: str
    costs: dict[str, int]
    seed: int
    workload: str = ""
    data: dict[str, Any] | None = None
    point: GridPoint | None = None
    scenario: str = ""
    #: None with kind "explore": every interleaving point of the scenario.
    explore_seed: int | None = None

    def config(self, sweep: str) -> dict[str, Any]:
        """What the store records as the run's configuration."""
        cfg: dict[str, Any] = {
            "sweep": sweep,
            "key": self.key,
            "kind": self.kind,
            "policy": self.policy,
            "costs_name": self.costs_name,
            "costs": self.costs,
            "seed": self.seed,
        }
        if self.kind == "workload":
            cfg["workload"] = self.workload
            # A generated workload is recorded by its parameters (its schedule follows).
            cfg["grid"] = self.point.as_dict() if self.point else None
            cfg["workload_toml"] = self.data
        else:
            cfg["scenario"] = self.scenario
            cfg["explore_seed"] = self.explore_seed
        return cfg


@dataclass
class RunResult:
    """What one run gave: its configuration, the model's counters and derived metrics."""

    task: RunTask
    counters: dict[str, int] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    recorded: bool = False

    @property
    def key(self) -> str:
        """The run's key in the sweep."""
        return self.task.key


def workload_data(task: RunTask) -> dict[str, Any]:
    """The workload (``Workload.from_dict`` input) a task runs."""
    from svasim.sweep import generate

    if task.point is not None:
        return generate.workload(task.point, task.seed)
    assert task.data is not None
    return task.data


#: The policy the twin without a PASID runs under. Without a PASID the lazy #GP fixup does
#: nothing at all (no MSR write, the XSAVE component stays in its init state), so its twin is
#: the kernel without PASID work; an eager policy's writes in switch_mm, which happen
#: whether or not the mm has a PASID, then count as what that policy costs.
TWIN_POLICY = "linux-5.18"


def run_twin(task: RunTask) -> dict[str, int]:
    """Counters of the task's workload without a PASID, under :data:`TWIN_POLICY`."""
    from svasim.model.workload import Workload, run_workload
    from svasim.sweep.generate import without_pasid

    wl = Workload.from_dict(without_pasid(workload_data(task)))
    return dict(run_workload(wl, TWIN_POLICY, costs=CostTable.from_mapping(task.costs)).counters)


def _run_workload(task: RunTask, twin: dict[str, int]) -> RunResult:
    from svasim.model.workload import Workload, run_workload

    costs = CostTable.from_mapping(task.costs)
    res = run_workload(Workload.from_dict(workload_data(task)), task.policy, costs=costs)
    counters = dict(sorted(res.counters.items()))
    pasid = pasid_cycles(counters, twin, costs)
    switches, enqcmds = counters.get("context_switches", 0), counters.get("enqcmd", 0)
    metrics = {
        "context_switches": switches,
        "enqcmds": enqcmds,
        "cycles_per_switch": res.cycles_per_switch,
        "cycles_per_enqcmd": res.cycles_per_enqcmd,
        "ipi_cycles": res.ipi_cycles,
        "invariant_violations": counters.get("invariant_violations", 0),
        "pasid": pasid,
        "pasid_per_switch": per(pasid, switches),
        "pasid_per_enqcmd": per(pasid, enqcmds),
        "twin_cycles": twin.get("cycles", 0),
    }
    return RunResult(task, counters, metrics)


def _run_explore(task: RunTask) -> RunResult:
    from svasim.model.explorer import explore, explore_all

    if task.explore_seed is None:
        found = explore_all(task.scenario, task.policy)
    else:
        found = [explore(task.scenario, task.policy, task.explore_seed)]
    violations: dict[str, int] = {}
    for r in found:
        for name, n in r.violations.items():
            violations[name] = violations.get(name, 0) + n
    broken = [{"point": r.point, "name": r.point_name, "violations": r.violations} for r in found if not r.ok]
    metrics = {"interleavings": len(found), "broken": len(broken), "violations": violations, "broken_at": broken}
    return RunResult(task, {}, metrics)


#: Stores opened by this process (a worker keeps its connection pool between runs).
_STORES: dict[str, Any] = {}


def _store(url: str) -> Any:
    from svasim.store import Store

    if url not in _STORES:
        # The client migrated the schema before submitting anything.
        _STORES[url] = Store.open(url, migrate=False)
    return _STORES[url]


def record(store: Any, sweep: str, result: RunResult) -> str:
    """Record one run: its configuration, and one event holding its results. The run's id."""
    from svasim import __version__
    from svasim.model.transition import Transition

    t = result.task
    run = store.create_run(
        name=f"{sweep}/{t.key}", config=t.config(sweep), policy=t.policy, seed=t.seed, version=__version__
    )
    store.append(
        run.id,
        [
            Transition(
                service="sweep",
                entity=f"sweep/{t.kind}",
                kind=RESULT_KIND,
                after={"counters": result.counters, "metrics": result.metrics},
            )
        ],
    )
    result.recorded = True
    return str(run.id)


def recorded(store: Any, sweep: str) -> list[RunResult]:
    """The runs of sweep ``sweep`` as the store holds them, sorted by key."""
    out = []
    for info in store.list_runs():
        if not info.name.startswith(f"{sweep}/") or info.config.get("sweep") != sweep:
            continue
        cfg = info.config
        grid = cfg.get("grid")
        point = GridPoint(**{k: v for k, v in grid.items() if k != "submitters"}) if grid else None
        task = RunTask(
            key=cfg["key"],
            kind=cfg["kind"],
            policy=cfg["policy"],
            costs_name=cfg["costs_name"],
            costs=cfg["costs"],
            seed=cfg["seed"],
            workload=cfg.get("workload", ""),
            data=cfg.get("workload_toml"),
            point=point,
            scenario=cfg.get("scenario", ""),
            explore_seed=cfg.get("explore_seed"),
        )
        events = store.events(info.id, kind=RESULT_KIND, limit=None)
        if len(events) != 1 or events[0].after is None:
            raise SweepError(f"run {info.name} has {len(events)} result events; a sweep run has exactly one")
        after = events[0].after
        out.append(RunResult(task, after["counters"], after["metrics"], recorded=True))
    return sorted(out, key=lambda r: r.key)


def execute(task: RunTask, twin: dict[str, int] | None, store_url: str | None, sweep: str) -> RunResult:
    """Run one task (on a worker); with ``store_url`` the worker records it itself."""
    result = _run_explore(task) if task.kind == "explore" else _run_workload(task, twin or {})
    if store_url:
        record(_store(store_url), sweep, result)
    return result


def _label(name: str, taken: set[str]) -> str:
    label = "default" if name == "default" else Path(name).name
    while label in taken:
        label += "'"
    taken.add(label)
    return label


def tasks(defn: SweepDefinition) -> list[RunTask]:
    """Every run of the sweep, in a fixed order."""
    out: list[RunTask] = []
    taken: set[str] = set()
    labels = [(_label(c.name, taken), c) for c in defn.costs]
    for wl in defn.workloads:
        for label, c in labels:
            for seed in defn.seeds_for(wl):
                for policy in defn.policies:
                    out.append(
                        RunTask(
                            key=f"{wl.name}/{policy}/{label}/s{seed}",
                            kind="workload",
                            policy=policy,
                            costs_name=label,
                            costs=c.table.as_dict(),
                            seed=seed,
                            workload=wl.name,
                            data=wl.data,
                            point=wl.point,
                        )
                    )
    for scenario in defn.explore_scenarios:
        for policy in defn.policies:
            for s in defn.explore_seeds if defn.explore_seeds is not None else [None]:
                out.append(
                    RunTask(
                        key=f"explore/{scenario}/{policy}/" + ("all" if s is None else f"s{s}"),
                        kind="explore",
                        policy=policy,
                        costs_name="default",
                        costs=CostTable().as_dict(),
                        seed=0 if s is None else s,
                        scenario=scenario,
                        explore_seed=s,
                    )
                )
    return out


def _work(task: RunTask) -> int:
    """About how many thread runs a task simulates (its twin's included)."""
    from svasim.sweep.generate import rounds

    if task.point is not None:
        return 2 * rounds(task.point) * task.point.cpus
    if task.data is not None:
        return 2 * int(task.data.get("ticks", 100)) * int(task.data.get("cpus", 4))
    return 1


@contextmanager
def dask_client(workers: int = 2, scheduler: str | None = None) -> Iterator[Any]:
    """A Dask client: on the scheduler at ``scheduler``, else on a local cluster of
    ``workers`` processes with one thread each (the model holds the GIL)."""
    from distributed import Client, LocalCluster

    if scheduler:
        with Client(scheduler, timeout="10s") as client:
            yield client
        return
    if workers < 1:
        raise ValueError(f"--workers must be at least 1, got {workers}")
    with (
        LocalCluster(
            n_workers=workers,
            threads_per_worker=1,
            processes=True,
            dashboard_address=":0",  # any free port: two sweeps on one host do not collide
            silence_logs=logging.ERROR,
        ) as cluster,
        Client(cluster) as client,
    ):
        yield client


def run(
    defn: SweepDefinition,
    client: Any,
    *,
    store: Any,
    sweep: str,
    on_result: Callable[[RunResult], None] | None = None,
) -> list[RunResult]:
    """Run every task of ``defn`` on ``client`` and record each in ``store``.

    Returns the results sorted by key. A failed run raises :class:`SweepError` naming it,
    after the runs that finished before it are recorded.
    """
    from distributed import as_completed

    # Longest first, so no long run starts last while the other workers sit idle.
    todo = sorted(tasks(defn), key=_work, reverse=True)
    url = store.url.render_as_string(hide_password=False)
    # SQLite: one writer, this process. Anything else: each worker writes its own runs.
    worker_url = None if store.url.get_backend_name() == "sqlite" else url
    token = os.urandom(4).hex()
    twins: dict[tuple[str, str, int], Any] = {}
    futures = {}
    for i, t in enumerate(todo):
        twin = None
        if t.kind == "workload":
            tk = (t.workload, t.costs_name, t.seed)
            if tk not in twins:
                twins[tk] = client.submit(run_twin, t, key=f"svasim-twin-{token}-{i}", pure=False)
            twin = twins[tk]
        fut = client.submit(execute, t, twin, worker_url, sweep, key=f"svasim-run-{token}-{i}", pure=False)
        futures[fut] = t
    results: list[RunResult] = []
    try:
        for fut in as_completed(list(futures)):
            t = futures[fut]
            try:
                result = fut.result()
            except Exception as e:  # noqa: BLE001 - a run's failure, whatever it is, names the run
                raise SweepError(f"run {t.key} failed: {type(e).__name__}: {e}") from e
            if not result.recorded:
                record(store, sweep, result)
            results.append(result)
            if on_result is not None:
                on_result(result)
    finally:
        for fut in futures:
            if not fut.done():
                fut.cancel()
    return sorted(results, key=lambda r: r.key)
