"""Chrome JSON / Perfetto export: structure, the time rule, and a real recorded run."""

from __future__ import annotations

import json
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import pytest

from svasim.exchange import to_chrome_trace, write_chrome_trace
from svasim.store.store import EventRow, RunInfo, Store

from .test_jsonl import record_demo

RUN = RunInfo(
    id="0123456789ab",
    name="hand-built",
    created_at=datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
    config={},
    policy="linux-5.18",
    seed=0,
    version="test",
    parent_run_id=None,
    next_seq=1,
)


def check_chrome_trace(trace: dict[str, Any]) -> None:
    """What the Perfetto UI needs to load the trace and draw it as intended."""
    assert set(trace) == {"traceEvents", "displayTimeUnit", "metadata"}
    assert trace["displayTimeUnit"] == "ns"
    assert json.loads(json.dumps(trace)) == trace  # plain JSON values only
    process_names: dict[int, str] = {}
    thread_names: dict[int, str] = {}
    pid_of_tid: dict[int, int] = {}
    for ev in trace["traceEvents"]:
        assert ev["ph"] in {"M", "X", "C", "i"}, ev
        assert isinstance(ev["pid"], int) and isinstance(ev["tid"], int), ev
        assert isinstance(ev["name"], str) and ev["name"], ev
        if ev["ph"] == "M":
            assert ev["name"] in {"process_name", "thread_name", "process_sort_index", "thread_sort_index"}
            if ev["name"] == "process_name":
                process_names[ev["pid"]] = ev["args"]["name"]
            elif ev["name"] == "thread_name":
                thread_names[ev["tid"]] = ev["args"]["name"]
            continue
        assert isinstance(ev["ts"], float) and ev["ts"] >= 0, ev
        if ev["ph"] == "X":
            assert isinstance(ev["dur"], float) and ev["dur"] >= 0, ev
        elif ev["ph"] == "i":
            assert ev["s"] == "t"
        elif ev["ph"] == "C":
            assert ev["tid"] == ev["pid"]
            assert all(isinstance(v, int) for v in ev["args"].values())
        # A tid is one thread: viewers take a tid under a second pid for a new thread.
        assert pid_of_tid.setdefault(ev["tid"], ev["pid"]) == ev["pid"], ev
    for ev in trace["traceEvents"]:
        assert ev["pid"] in process_names, ev
        if ev["ph"] in ("X", "i"):
            assert ev["tid"] in thread_names, ev
    assert not set(process_names) & set(thread_names)  # pids and lane tids never clash
    # Slices of one lane nest properly (no partial overlaps).
    lanes: dict[int, list[tuple[float, float]]] = {}
    for ev in trace["traceEvents"]:
        if ev["ph"] == "X":
            lanes.setdefault(ev["tid"], []).append((ev["ts"], ev["ts"] + ev["dur"]))
    for spans in lanes.values():
        stack: list[float] = []
        for start, end in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and start >= stack[-1] - 1e-9:
                stack.pop()
            assert not stack or end <= stack[-1] + 1e-9, (start, end, stack)
            stack.append(end)


def names(trace: dict[str, Any], meta: str) -> dict[int, str]:
    key = "pid" if meta == "process_name" else "tid"
    return {ev[key]: ev["args"]["name"] for ev in trace["traceEvents"] if ev["ph"] == "M" and ev["name"] == meta}


def slices(trace: dict[str, Any], process: str, lane: str | None = None) -> list[dict[str, Any]]:
    pids = {p for p, n in names(trace, "process_name").items() if n == process}
    tids = names(trace, "thread_name")
    return [
        ev
        for ev in trace["traceEvents"]
        if ev["ph"] == "X" and ev["pid"] in pids and (lane is None or tids[ev["tid"]] == lane)
    ]


class Log:
    """Hand-built events, numbered as the store would number them."""

    def __init__(self) -> None:
        self.rows: list[EventRow] = []

    def add(
        self,
        entity: str,
        kind: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        *,
        cycles: int = 0,
        detail: dict[str, Any] | None = None,
        cause: int | None = None,
    ) -> int:
        seq = len(self.rows) + 1
        service = "accel" if entity.startswith(("wq/", "desc/")) else "cpu"
        self.rows.append(EventRow(RUN.id, seq, service, entity, kind, before, after, cause, cycles, detail))
        return seq


@pytest.fixture
def hand_built() -> list[EventRow]:
    log = Log()
    log.add("process/1", "process.create", None, {"name": "app"})
    log.add("thread/2", "thread.create", None, {"pid": 1, "cpu": -1})
    log.add("thread/3", "thread.create", None, {"pid": 1, "cpu": -1})
    log.add("cpu/0", "cr3.write", {"loaded_mm": 0}, {"loaded_mm": 1})
    log.add("cpu/0", "sched.switch", {"current": 0}, {"current": 2, "cycles": 5000})  # cost not recorded
    log.add("thread/2", "thread.run", {"cpu": -1}, {"cpu": 0})
    log.add("thread/2", "trap.gp", None, {"gp_faults": 1}, cycles=800, detail={"cpu": 0, "reason": "IA32_PASID"})
    log.add("cpu/0", "msr.pasid.write", {"ia32_pasid": 0}, {"ia32_pasid": 1 << 31 | 1}, cycles=200)
    accept = log.add("wq/dsa0/0", "wq.accept", {"occupancy": 0}, {"occupancy": 1}, detail={"desc": 1, "pasid": 1})
    log.add("thread/2", "enqcmd.accept", None, {"enqcmds": 1}, cause=accept)
    log.add(
        "desc/dsa0/1",
        "desc.complete",
        None,
        {"wq": 0, "engine": 1, "opcode": 3, "pasid": 1, "status": 1, "bytes": 4096, "start": 7000, "end": 9000},
        cycles=2000,
    )
    log.add("cpu/1", "sched.switch", {"current": 0}, {"current": 3, "cycles": 4000})
    log.add("thread/3", "thread.run", {"cpu": -1}, {"cpu": 1})
    log.add("cpu/1", "ipi.send", None, None, detail={"from": 0, "handler": "update_pasid", "arg": 1})
    log.add("cpu/1", "ipi.handle", None, None, cycles=700, detail={"handler": "update_pasid", "current": 3})
    log.add("thread/3", "trap.nm", None, None, detail={"resource": "TILE"})
    log.add("wq/dsa0/0", "wq.retry", None, {"retried": 1}, detail={"reason": "wq full"})
    log.add("invariant/pasid_sent", "invariant.violation", None, {"violations": 1}, detail={"tid": 3, "what": "x"})
    log.add("thread/2", "thread.switch_out", {"cpu": 0}, {"cpu": -1})
    log.add("cpu/0", "sched.switch", {"current": 2}, {"current": 3, "cycles": 12000}, cycles=1500)  # a migration
    log.add("thread/3", "thread.run", {"cpu": -1}, {"cpu": 0})
    log.add("invariant/other", "invariant.violation", None, {"violations": 1}, detail={"tid": 0, "what": "y"})
    return log.rows


def test_hand_built_run_gets_its_tracks_and_names(hand_built):
    trace = to_chrome_trace(RUN, hand_built)
    check_chrome_trace(trace)
    assert names(trace, "process_name") == {
        1: "cpu 0",
        2: "cpu 1",
        1001: "device dsa0",
        2001: "wq dsa0/0",
        3001: "invariants",
    }
    lanes = set(names(trace, "thread_name").values())
    assert {"context switch", "running", "traps", "ENQCMD", "IPI", "kernel", "engine 1", "retries"} <= lanes
    assert trace["metadata"]["svasim-run"]["id"] == RUN.id
    assert trace["metadata"]["cycles_per_us"] == 2000


def test_cpu_time_follows_switch_clocks_and_event_cycles(hand_built):
    trace = to_chrome_trace(RUN, hand_built)  # 2000 cycles per microsecond
    sw = [(ev["name"], ev["ts"], ev["dur"]) for ev in slices(trace, "cpu 0", "context switch")]
    # No recorded cost: the first switch spans the CPU's time up to its clock (0..5000);
    # the second has its recorded 1500 cycles and ends at its clock, 12000.
    assert sw == [("switch to 2", 0.0, 2.5), ("switch to 3", 5.25, 0.75)]
    assert slices(trace, "cpu 0", "context switch")[0]["args"]["cost"].startswith("not recorded")
    assert slices(trace, "cpu 0", "context switch")[1]["args"]["cost_cycles"] == 1500
    # The #GP is charged to the CPU its detail names, at the cursor after the switch;
    # the WRMSR follows it.
    gp = slices(trace, "cpu 0", "traps")
    assert [(ev["name"], ev["ts"], ev["dur"]) for ev in gp] == [("#GP", 2.5, 0.4)]
    assert gp[0]["args"]["seq"] == 7 and gp[0]["args"]["tid"] == 2
    wrmsr = slices(trace, "cpu 0", "kernel")
    assert ("WRMSR IA32_PASID", 2.9, 0.1) in [(ev["name"], ev["ts"], ev["dur"]) for ev in wrmsr]
    enq = slices(trace, "cpu 0", "ENQCMD")
    assert [(ev["name"], ev["ts"]) for ev in enq] == [("ENQCMD", 3.0)]
    # What runs: thread 2 from its switch-in to the start of the next switch on cpu 0;
    # thread 3 on cpu 1 until it migrates to cpu 0, then on cpu 0 to the end.
    run0 = [(ev["name"], ev["ts"], ev["dur"]) for ev in slices(trace, "cpu 0", "running")]
    assert run0 == [("thread 2 (app)", 2.5, 2.75), ("thread 3 (app)", 6.0, 0.0)]
    run1 = [(ev["name"], ev["ts"]) for ev in slices(trace, "cpu 1", "running")]
    assert run1 == [("thread 3 (app)", 2.0)]


def test_traps_ipis_and_violations_land_on_the_right_cpu(hand_built):
    trace = to_chrome_trace(RUN, hand_built)
    # #NM has no cpu in its detail: it goes where thread 3 runs (cpu 1), after the IPI.
    nm = slices(trace, "cpu 1", "traps")
    assert [(ev["name"], ev["ts"]) for ev in nm] == [("#NM (TILE)", 2.35)]
    sent = slices(trace, "cpu 0", "IPI")
    assert [ev["name"] for ev in sent] == ["IPI to cpu 1: update_pasid"]
    handled = slices(trace, "cpu 1", "IPI")
    assert [(ev["name"], ev["ts"], ev["dur"]) for ev in handled] == [("IPI update_pasid", 2.0, 0.35)]
    instants = [ev for ev in trace["traceEvents"] if ev["ph"] == "i"]
    by_name = {ev["name"]: ev for ev in instants}
    assert by_name["violation: pasid_sent"]["pid"] == 2  # thread 3 ran on cpu 1
    assert by_name["violation: other"]["pid"] == 3001  # no thread to charge
    assert by_name["retry"]["pid"] == 2001


def test_descriptors_and_wq_occupancy(hand_built):
    trace = to_chrome_trace(RUN, hand_built, cycles_per_us=1000)
    desc = slices(trace, "device dsa0", "engine 1")
    assert [(ev["name"], ev["ts"], ev["dur"]) for ev in desc] == [("MEMMOVE", 7.0, 2.0)]
    assert desc[0]["args"]["seq"] == 11 and desc[0]["args"]["desc"] == "1"
    counters = [(ev["ts"], ev["args"]["queued"]) for ev in trace["traceEvents"] if ev["ph"] == "C"]
    # +1 when accepted (at the submitter's cursor, 6000), -1 when an engine takes it (7000).
    assert counters == [(6.0, 1), (7.0, 0)]


def test_cycles_per_us_must_be_positive():
    with pytest.raises(ValueError, match="cycles_per_us"):
        to_chrome_trace(RUN, [], cycles_per_us=0)


def test_no_events_is_an_empty_but_valid_trace():
    trace = to_chrome_trace(RUN, [])
    check_chrome_trace(trace)
    assert trace["traceEvents"] == []


# -- a real run ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def recorded(tmp_path_factory) -> tuple[RunInfo, list[EventRow]]:
    """A run recorded by a real fabric (all services, SQLite) driving the demo."""
    db = f"sqlite:///{tmp_path_factory.mktemp('perfetto') / 'run.db'}"
    run_id = record_demo(db)
    with Store.open(db) as store:
        return store.get_run(run_id), store.events(run_id, limit=None)


def test_real_run_exports_a_loadable_trace(recorded, tmp_path):
    run, events = recorded
    path = tmp_path / "run.json"
    count = write_chrome_trace(path, run, events)
    trace = json.loads(path.read_text(encoding="utf-8"))
    assert trace == to_chrome_trace(run, events)  # the file is the dict, through JSON
    assert count == len(trace["traceEvents"])
    check_chrome_trace(trace)
    procs = set(names(trace, "process_name").values())
    assert {"cpu 0", "cpu 1", "device dsa0", "wq dsa0/0"} <= procs


def test_real_run_has_a_slice_per_switch_trap_and_descriptor(recorded):
    run, events = recorded
    trace = to_chrome_trace(run, events)
    kinds = Counter(e.kind for e in events)
    assert kinds["sched.switch"] > 0 and kinds["trap.gp"] > 0 and kinds["desc.complete"] > 0
    xs = [ev for ev in trace["traceEvents"] if ev["ph"] == "X"]
    tids = names(trace, "thread_name")
    lane = Counter(tids[ev["tid"]] for ev in xs)
    assert lane["context switch"] == kinds["sched.switch"]
    assert lane["traps"] == kinds["trap.gp"] + kinds["trap.nm"] + kinds["trap.lr"] + kinds["trap.pf"]
    assert lane["ENQCMD"] == kinds["enqcmd.accept"] + kinds["enqcmd.retry"]
    descs = [ev for ev in xs if tids[ev["tid"]].startswith("engine ")]
    assert len(descs) == kinds["desc.complete"]
    for ev in descs:
        e = next(e for e in events if e.seq == ev["args"]["seq"])
        assert e.after is not None
        assert ev["ts"] == e.after["start"] / 2000 and ev["dur"] == (e.after["end"] - e.after["start"]) / 2000
    switches = [e for e in events if e.kind == "sched.switch"]
    names_seen = {ev["name"] for ev in xs if tids[ev["tid"]] == "context switch"}
    assert names_seen == {f"switch to {e.after['current']}" for e in switches if e.after}
    # A switch ends at the CPU clock it recorded.
    ends = {ev["args"]["seq"]: ev["ts"] + ev["dur"] for ev in xs if tids[ev["tid"]] == "context switch"}
    for e in switches:
        assert e.after is not None
        assert ends[e.seq] == pytest.approx(e.after["cycles"] / 2000)


def test_real_run_counts_wq_occupancy(recorded):
    run, events = recorded
    trace = to_chrome_trace(run, events)
    counters = [ev for ev in trace["traceEvents"] if ev["ph"] == "C"]
    accepted = sum(1 for e in events if e.kind == "wq.accept")
    completed = sum(1 for e in events if e.kind == "desc.complete")
    assert len(counters) == accepted + completed
    values = [ev["args"]["queued"] for ev in sorted(counters, key=lambda ev: ev["ts"])]
    assert max(values) >= 1 and min(values) >= 0
    assert values[-1] == accepted - completed  # what is still queued at the end
    assert all(ev["name"] == "occupancy" for ev in counters)
    assert {ev["pid"] for ev in counters} == {2001}
