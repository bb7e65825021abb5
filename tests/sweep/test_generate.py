"""Generated workloads: a schedule a scheduler could produce, the late bind, the twin."""

from __future__ import annotations

from collections import Counter, defaultdict

from svasim.model.workload import Workload, run_workload
from svasim.sweep.definition import GridPoint
from svasim.sweep.generate import schedule, without_pasid, workload


def point(**kw) -> GridPoint:
    values = {
        "threads": 6,
        "submit_fraction": 1 / 3,
        "cpus": 3,
        "slice_rounds": 1,
        "processes": 2,
        "slices_per_thread": 3,
        "enqcmds_per_tick": 1,
        "schedule": "round-robin",
    }
    values.update(kw)
    return GridPoint(**values)


def _slices(events: list[dict]) -> Counter:
    """Time slices per thread: runs that do not continue the same CPU's previous round."""
    last: dict[int, tuple] = {}
    out: Counter = Counter()
    for ev in events:
        who = (ev["process"], ev["thread"])
        if last.get(ev["cpu"]) != (who, ev["round"] - 1):
            out[who] += 1
        last[ev["cpu"]] = (who, ev["round"])
    return out


def test_each_round_runs_a_thread_on_at_most_one_cpu_and_a_cpu_runs_at_most_one_thread():
    for p in (point(), point(schedule="random"), point(slice_rounds=3), point(threads=1, cpus=8)):
        by_round = defaultdict(list)
        for ev in schedule(p, seed=7):
            by_round[ev["round"]].append(ev)
        for evs in by_round.values():
            assert len({e["cpu"] for e in evs}) == len(evs)
            assert len({(e["process"], e["thread"]) for e in evs}) == len(evs)


def test_every_thread_gets_its_time_slices_and_keeps_its_cpu_for_slice_rounds():
    p = point(slice_rounds=2)
    events = schedule(p)
    slices = _slices(events)
    assert set(slices) == {(f"app{i}", t) for i in range(2) for t in range(6)}
    assert min(slices.values()) >= p.slices_per_thread
    runs = Counter((e["process"], e["thread"]) for e in events)
    # A slice of two rounds: a thread runs twice per slice (the last one may be cut short).
    assert all(runs[t] >= 2 * slices[t] - 1 for t in slices)


def test_the_first_submitter_runs_after_the_threads_that_never_submit():
    # Six threads, two submitters (0 and 1): the four others are on CPUs first, so the WQ is
    # opened (and the PASID allocated) while threads of the same mm run elsewhere.
    events = [e for e in schedule(point()) if e["process"] == "app0"]
    first = {}
    for i, e in enumerate(events):
        first.setdefault(e["thread"], i)
    assert max(first[t] for t in (2, 3, 4, 5)) < min(first[0], first[1])


def test_a_random_schedule_depends_on_its_seed_alone():
    p = point(schedule="random", threads=8)
    assert schedule(p, 1) == schedule(p, 1)
    assert schedule(p, 1) != schedule(p, 2)


def test_the_twin_has_the_same_schedule_and_no_pasid():
    data = workload(point())
    twin = without_pasid(data)
    assert twin["switch"] == data["switch"]
    assert data["process"][0]["open_wq"]  # the original is untouched
    res = run_workload(Workload.from_dict(twin), "eager-switch-mm")
    c = res.counters
    assert c["enqcmd"] == 0 and c["wrmsr.pasid"] == 0 and c["gp"] == 0 and c["ipi_sent"] == 0
    assert c["context_switches"] == run_workload(Workload.from_dict(data), "linux-5.18").counters["context_switches"]
