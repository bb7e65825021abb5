"""Linux sched_switch traces: parsing every form, the workload mapping, TOML, and replay."""

from __future__ import annotations

import dataclasses
import random
import tomllib
from pathlib import Path

import pytest

from svasim.exchange import SchedSwitch, parse_sched_switch, sched_to_workload, workload_to_toml
from svasim.model.policies import policy_names
from svasim.model.workload import Workload, run_workload

DATA = Path(__file__).parent / "data"
SAMPLES = ["ftrace-tgid.txt", "ftrace.txt", "trace-cmd-raw.txt", "trace-cmd-report.txt"]
# The submitters of the sample traces: by comm and by pid.
ENQCMD = {"dsa-worker-1": 4, 3126: 4}


def sample(name: str) -> str:
    return (DATA / name).read_text(encoding="utf-8")


def without_tgid(switches: list[SchedSwitch]) -> list[SchedSwitch]:
    return [dataclasses.replace(s, prev_tgid=None) for s in switches]


def switched_in(switches: list[SchedSwitch]) -> list[int]:
    """The pids of the switch-ins that are context switches: tasks (not idle), less
    resumes of the task a CPU last ran (it only idled in between). Valid for traces where
    a task's next switch-in elsewhere follows its switch-out, as in the samples."""
    last: dict[int, int] = {}
    pids = []
    for s in switches:
        if s.next_pid == 0:
            continue
        if last.get(s.cpu) != s.next_pid:
            pids.append(s.next_pid)
        last[s.cpu] = s.next_pid
    return pids


def expected_context_switches(switches: list[SchedSwitch]) -> int:
    return len(switched_in(switches))


# -- parsing -------------------------------------------------------------------------------


def test_every_sample_parses_to_the_same_switches():
    parsed = {name: parse_sched_switch(sample(name)) for name in SAMPLES}
    reference = without_tgid(parsed["ftrace.txt"])
    assert len(reference) == 41
    for name, switches in parsed.items():
        assert without_tgid(switches) == reference, name
    # Only the systrace form knows tgids (of the task switched out).
    tgids = {s.prev_pid: s.prev_tgid for s in parsed["ftrace-tgid.txt"] if s.prev_pid}
    assert tgids[1012] == 959 and tgids[2417] == 2400 and tgids[3125] == 3121 and tgids[1203] == 1190
    assert all(s.prev_tgid is None for s in parsed["ftrace-tgid.txt"] if s.prev_pid == 0)  # "(-----)"
    assert all(s.prev_tgid is None for name in SAMPLES[1:] for s in parsed[name])


def test_fields_of_one_line_in_each_form():
    want = SchedSwitch(
        ts_ns=2187_400_093_000,
        cpu=1,
        prev_comm="surfaceflinger",
        prev_pid=959,
        prev_prio=97,
        prev_state="S",
        next_comm="binder:959_2",
        next_pid=1012,
        next_prio=120,
    )
    lines = [
        "  surfaceflinger-959   (  959) [001] d..3   2187.400093: sched_switch: prev_comm=surfaceflinger prev_pid=959 "
        "prev_prio=97 prev_state=S ==> next_comm=binder:959_2 next_pid=1012 next_prio=120",
        "  surfaceflinger-959     [001] d..2.   2187.400093: sched_switch: prev_comm=surfaceflinger prev_pid=959 "
        "prev_prio=97 prev_state=S ==> next_comm=binder:959_2 next_pid=1012 next_prio=120",
        "  surfaceflinger-959   [001]   2187.400093: sched_switch: prev_comm=surfaceflinger prev_pid=959 "
        "prev_prio=97 prev_state=S ==> next_comm=binder:959_2 next_pid=1012 next_prio=120",
        "  surfaceflinger-959   [001] 2187.400093: sched_switch:         prev_comm=surfaceflinger prev_pid=959 "
        "prev_prio=97 prev_state=1 next_comm=binder:959_2 next_pid=1012 next_prio=120",
        "  surfaceflinger-959   [001] 2187.400093: sched_switch:   "
        "surfaceflinger:959 [97] S ==> binder:959_2:1012 [120]",
    ]
    got = [parse_sched_switch(line) for line in lines]
    assert got[0] == [dataclasses.replace(want, prev_tgid=959)]
    assert got[1:] == [[want]] * 4
    assert got[0][0].ts == pytest.approx(2187.400093)


def test_comm_with_spaces_dashes_and_colons():
    text = (
        "    dsa-worker-1-3125  [003] d..2.  10.000001: sched_switch: prev_comm=dsa-worker-1 prev_pid=3125 "
        "prev_prio=120 prev_state=S ==> next_comm=Web Content next_pid=2400 next_prio=120\n"
        "     Web Content-2400  [003] d..2.  10.000002: sched_switch: prev_comm=Web Content prev_pid=2400 "
        "prev_prio=120 prev_state=R+ ==> next_comm=rs:main Q:Reg next_pid=1203 next_prio=120\n"
        "   rs:main Q:Reg-1203  [003] 10.000003: sched_switch: rs:main Q:Reg:1203 [120] D ==> a-b-7 c:7:3126 [120]\n"
    )
    s = parse_sched_switch(text)
    assert [(x.prev_comm, x.prev_pid, x.next_comm, x.next_pid) for x in s] == [
        ("dsa-worker-1", 3125, "Web Content", 2400),
        ("Web Content", 2400, "rs:main Q:Reg", 1203),
        ("rs:main Q:Reg", 1203, "a-b-7 c:7", 3126),
    ]
    assert [x.prev_state for x in s] == ["S", "R+", "D"]


@pytest.mark.parametrize(
    "raw, letters",
    [("0", "R"), ("1", "S"), ("2", "D"), ("256", "R+"), ("0x80", "I"), ("130", "D|I"), ("257", "S+"), ("X", "X")],
)
def test_numeric_states_of_raw_traces_become_letters(raw, letters):
    line = (
        f"  a-1 [000] 1.0: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state={raw} "
        "next_comm=b next_pid=2 next_prio=120"
    )
    assert [s.prev_state for s in parse_sched_switch(line)] == [letters]


def test_unsorted_input_is_sorted_stably():
    text = sample("ftrace-tgid.txt")
    lines = text.splitlines()
    shuffled = lines[:]
    random.Random(1).shuffle(shuffled)
    assert parse_sched_switch("\n".join(shuffled)) == parse_sched_switch(text)
    # Equal timestamps keep their order in the text.
    same_ts = (
        "  a-1 [002] 5.000000: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S "
        "next_comm=b next_pid=2 next_prio=120\n"
        "  c-3 [000] 5.000000: sched_switch: prev_comm=c prev_pid=3 prev_prio=120 prev_state=S "
        "next_comm=d next_pid=4 next_prio=120\n"
        "  e-5 [001] 4.999999: sched_switch: prev_comm=e prev_pid=5 prev_prio=120 prev_state=S "
        "next_comm=f next_pid=6 next_prio=120\n"
    )
    assert [s.cpu for s in parse_sched_switch(same_ts)] == [1, 2, 0]


def test_garbage_lines_are_skipped():
    good = (
        "  a-1 [000] d..2. 1.000000: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S "
        "==> next_comm=b next_pid=2 next_prio=120"
    )
    garbage = [
        "# tracer: nop",
        "version = 6",
        "cpus=4",
        "CPU 3 is empty",
        "##### CPU 2 buffer started ####",
        "",
        "  a-1 [000] d..2. 1.000001: sched_wakeup: comm=b pid=2 prio=120 target_cpu=000",
        "  a-1 [000] d..2. 1.000002: sched_switch: prev_comm=a prev_pid=1 prev_pri",  # truncated
        "  a-1 [000] d..2. 1.000003: sched_switch: something else entirely",
        "sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S ==> next_comm=b next_pid=2 next_prio=120",
        "\x00\xff binary junk",
    ]
    assert len(parse_sched_switch("\n".join([*garbage, good, *garbage]))) == 1
    assert parse_sched_switch("\n".join(garbage)) == []
    # The sample files hold such lines too: a truncated last line, other events, headers.
    assert len(parse_sched_switch(sample("ftrace.txt"))) == 41


# -- workloads -----------------------------------------------------------------------------


def test_tasks_map_to_processes_by_tgid_when_known():
    switches = parse_sched_switch(sample("ftrace-tgid.txt"))
    data = sched_to_workload(switches, enqcmd_tasks=ENQCMD, name="android")
    wl = Workload.from_dict(data)
    assert wl.name == "android" and wl.cpus == 4
    procs = {p["name"]: p for p in data["process"]}
    assert list(procs) == [
        "dsa-bench[3121]",
        "surfaceflinger[959]",
        "Web Content[2400]",
        "rcu_preempt[16]",
        "rs:main Q:Reg[1190]",  # its leader never runs: named after the thread that does
        "kworker/1:2[88]",
    ]
    assert procs["dsa-bench[3121]"] == {
        "name": "dsa-bench[3121]",
        "threads": 3,
        "open_wq": True,
        "submitters": 2,
        "enqcmds_per_tick": 4,
    }
    assert procs["surfaceflinger[959]"] == {"name": "surfaceflinger[959]", "threads": 2}
    # Each switch event is one switch-in of the trace, in order; the submitters are the
    # first threads of their process (the model's rule), then the leader.
    pids = switched_in(switches)
    assert len(data["switch"]) == len(pids) == 34
    slot = {pid: (sw["process"], sw["thread"]) for pid, sw in zip(pids, data["switch"], strict=True)}
    assert slot[3125] == ("dsa-bench[3121]0", 0) and slot[3126] == ("dsa-bench[3121]0", 1)
    assert slot[3121] == ("dsa-bench[3121]0", 2)
    assert slot[959] == ("surfaceflinger[959]0", 0) and slot[1012] == ("surfaceflinger[959]0", 1)
    assert data["ticks"] == 34 and [sw["round"] for sw in data["switch"]] == list(range(34))


def test_without_tgid_every_pid_is_a_process():
    data = sched_to_workload(parse_sched_switch(sample("ftrace.txt")), enqcmd_tasks=ENQCMD)
    Workload.from_dict(data)
    assert len(data["process"]) == 10 and all(p["threads"] == 1 for p in data["process"])
    submitting = {p["name"] for p in data["process"] if p.get("submitters")}
    assert submitting == {"dsa-worker-1[3125]", "dsa-worker-2[3126]"}


def test_idle_is_not_a_task_and_a_resume_after_idle_is_no_switch():
    text = (
        "  <idle>-0 [000] 1.000000: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R "
        "==> next_comm=a next_pid=10 next_prio=120\n"
        "  a-10 [000] 1.000001: sched_switch: prev_comm=a prev_pid=10 prev_prio=120 prev_state=S "
        "==> next_comm=swapper/0 next_pid=0 next_prio=120\n"
        "  <idle>-0 [000] 1.000002: sched_switch: prev_comm=swapper/0 prev_pid=0 prev_prio=120 prev_state=R "
        "==> next_comm=a next_pid=10 next_prio=120\n"
        "  a-10 [000] 1.000003: sched_switch: prev_comm=a prev_pid=10 prev_prio=120 prev_state=S "
        "==> next_comm=b next_pid=11 next_prio=120\n"
        "  <idle>-0 [005] 1.000004: sched_switch: prev_comm=swapper/5 prev_pid=0 prev_prio=120 prev_state=R "
        "==> next_comm=a next_pid=10 next_prio=120\n"
    )
    data = sched_to_workload(parse_sched_switch(text))
    assert [p["name"] for p in data["process"]] == ["a[10]", "b[11]"]
    assert data["cpus"] == 2  # trace CPUs 0 and 5, renumbered compactly
    assert [(sw["cpu"], sw["process"]) for sw in data["switch"]] == [(0, "a[10]0"), (0, "b[11]0"), (1, "a[10]0")]
    for policy in policy_names():
        assert run_workload(Workload.from_dict(data), policy).counters["context_switches"] == 3


def test_every_switch_in_of_a_submitter_submits_even_when_a_non_leader_runs_first():
    # A task named in enqcmd_tasks executes its ENQCMDs each time it is switched in
    # (sched_to_workload's contract); the leader of its thread group (tgid 200) running
    # later than another submitter of the group (201) must not cost that one its ENQCMDs.
    def line(comm: str, pid: int, tgid: str, cpu: int, ts: str, nxt: str, npid: int) -> str:
        return (
            f"  {comm}-{pid} ({tgid}) [{cpu:03d}] d..3 {ts}: sched_switch: prev_comm={comm} prev_pid={pid} "
            f"prev_prio=120 prev_state=S ==> next_comm={nxt} next_pid={npid} next_prio=120\n"
        )

    text = (
        line("<idle>", 0, "-----", 0, "1.000000", "worker", 201)
        + line("<idle>", 0, "-----", 1, "1.000001", "app", 200)
        + line("worker", 201, "  200", 0, "1.000002", "other", 300)
        + line("app", 200, "  200", 1, "1.000003", "worker", 201)
        + line("other", 300, "  300", 0, "1.000004", "app", 200)
    )
    data = sched_to_workload(parse_sched_switch(text), enqcmd_tasks={200: 1, 201: 1})
    app = next(p for p in data["process"] if p["name"] == "app[200]")
    assert app["threads"] == 2 and app["submitters"] == 2
    # The first switch event is the non-leader (thread 1), before the leader (thread 0).
    assert [(sw["process"], sw["thread"]) for sw in data["switch"][:2]] == [("app[200]0", 1), ("app[200]0", 0)]
    submitter_switch_ins = sum(1 for sw in data["switch"] if sw["process"] == "app[200]0")
    assert submitter_switch_ins == 4
    for policy in policy_names():
        r = run_workload(Workload.from_dict(data), policy)
        assert r.counters["enqcmd"] == submitter_switch_ins, policy
        assert r.counters["enqcmd_accepted"] == submitter_switch_ins, policy
        assert r.counters["invariant_violations"] == 0, policy


@pytest.mark.parametrize("name", SAMPLES)
def test_imported_workloads_run_under_every_policy(name):
    switches = parse_sched_switch(sample(name))
    data = sched_to_workload(switches, enqcmd_tasks=ENQCMD)
    wl = Workload.from_dict(tomllib.loads(workload_to_toml(data)))
    for policy in policy_names():
        r = run_workload(wl, policy)
        assert r.counters["invariant_violations"] == 0, policy
        assert r.counters["context_switches"] == len(data["switch"]) == expected_context_switches(switches), policy
        assert r.counters["enqcmd"] > 0, policy


def test_cpus_fold_the_trace_modulo():
    switches = parse_sched_switch(sample("ftrace-tgid.txt"))
    data = sched_to_workload(switches, cpus=2, enqcmd_tasks=ENQCMD)
    assert data["cpus"] == 2 and {sw["cpu"] for sw in data["switch"]} == {0, 1}
    # Folding CPUs 0/2 and 1/3 together changes which switch-ins are real switches.
    folded = [dataclasses.replace(s, cpu=s.cpu % 2) for s in switches]
    assert len(data["switch"]) == expected_context_switches(folded)
    for policy in policy_names():
        r = run_workload(Workload.from_dict(data), policy)
        assert r.counters["invariant_violations"] == 0
        assert r.counters["context_switches"] == len(data["switch"])


def test_rounds_are_bucketed_when_capped():
    switches = parse_sched_switch(sample("ftrace.txt"))
    data = sched_to_workload(switches, max_rounds=5)
    rounds = [sw["round"] for sw in data["switch"]]
    assert data["ticks"] == 5 and len(rounds) == 34
    assert rounds == sorted(rounds) and rounds[0] == 0 and rounds[-1] == 4
    assert [rounds.count(r) for r in range(5)] == [7, 7, 7, 7, 6]  # n * 5 // 34
    Workload.from_dict(data)
    assert sched_to_workload(switches, max_rounds=100)["ticks"] == 34  # not stretched


def test_enqcmd_tasks_by_comm_or_pid_are_the_same():
    switches = parse_sched_switch(sample("ftrace-tgid.txt"))
    by_comm = sched_to_workload(switches, enqcmd_tasks={"dsa-worker-1": 2, "dsa-worker-2": 2})
    by_pid = sched_to_workload(switches, enqcmd_tasks={3125: 2, 3126: 2})
    assert by_comm == by_pid


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"enqcmd_tasks": {"nosuch": 1}}, "'nosuch', which is no task of the trace"),
        ({"enqcmd_tasks": {99999: 1}}, "99999, which is no task of the trace"),
        ({"enqcmd_tasks": {"dsa-worker-1": 0}}, "must be an integer >= 1"),
        ({"enqcmd_tasks": {"dsa-worker-1": 2, 3126: 3}}, "different ENQCMD counts"),
        ({"enqcmd_tasks": {1.5: 1}}, "keys are comms (str) or pids (int)"),
        ({"cpus": 0}, "cpus must be an integer in 1..256"),
        ({"max_rounds": 0}, "max_rounds must be an integer"),
    ],
)
def test_bad_arguments_are_refused_with_a_reason(kwargs, message):
    switches = parse_sched_switch(sample("ftrace-tgid.txt"))
    with pytest.raises(ValueError) as exc:
        sched_to_workload(switches, **kwargs)
    assert message in str(exc.value)


def test_a_task_that_never_runs_cannot_submit():
    # In this excerpt "x" (959) only ever switches out: it never runs in the model.
    text = (
        "  x-959 [000] 1.0: sched_switch: prev_comm=x prev_pid=959 prev_prio=120 prev_state=S "
        "==> next_comm=y next_pid=960 next_prio=120\n"
    )
    with pytest.raises(ValueError, match="never runs in the trace"):
        sched_to_workload(parse_sched_switch(text), enqcmd_tasks={"x": 1})


def test_a_trace_of_idle_only_is_refused():
    text = (
        "  a-1 [000] 1.0: sched_switch: prev_comm=a prev_pid=1 prev_prio=120 prev_state=S "
        "==> next_comm=swapper/0 next_pid=0 next_prio=120\n"
    )
    with pytest.raises(ValueError, match="no switch to a task"):
        sched_to_workload(parse_sched_switch(text))
    with pytest.raises(ValueError, match="no switch to a task"):
        sched_to_workload([])


# -- TOML ----------------------------------------------------------------------------------


def test_toml_round_trips_an_imported_workload():
    data = sched_to_workload(parse_sched_switch(sample("ftrace-tgid.txt")), enqcmd_tasks=ENQCMD)
    text = workload_to_toml(data)
    assert tomllib.loads(text) == data
    assert "[[process]]" in text and "switch = [\n" in text
    assert text.index("switch = [") < text.index("[[process]]")  # plain keys before tables
    # One switch per line.
    assert sum(1 for line in text.splitlines() if line.startswith("  { round = ")) == len(data["switch"])


def test_toml_escapes_and_general_shapes():
    data = {
        "name": 'quote " back \\ tab \t nl \n del \x7f bell \x07 ünï ✓',
        "cpus": 2,
        "ratio": 0.25,
        "flag": False,
        "list": [1, 2, 3],
        "empty": [],
        "weird key": "x",
        "table": {"a": 1, "nested": {"b": "c"}},
        "process": [{"name": "p q", "threads": 2, "inner": [{"k": 1}]}, {"name": "r"}],
        "switch": [{"round": 0, "cpu": 1, "process": 'a"0', "thread": 0}],
    }
    text = workload_to_toml(data)
    assert tomllib.loads(text) == data
    assert tomllib.loads(workload_to_toml(data, inline_lists=())) == data  # [[switch]] tables


@pytest.mark.parametrize("bad", [{"name": None}, {"process": [{"name": None}]}, {"x": object()}, {1: 2}])
def test_toml_refuses_what_it_cannot_express(bad):
    with pytest.raises(ValueError):
        workload_to_toml(bad)
