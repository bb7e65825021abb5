"""Linux scheduling traces (ftrace ``sched_switch``) as svasim workloads.

Three steps, each a pure function:

1. :func:`parse_sched_switch` reads the text of a trace into :class:`SchedSwitch` records.
   It accepts

   - ftrace's own text (``/sys/kernel/tracing/trace``, ``trace-cmd report``, ``perf
     script`` of the tracepoint), in the form the kernel's ``TP_printk`` gives it::

         comm-pid [cpu] flags ts: sched_switch: prev_comm=.. prev_pid=.. prev_prio=..
             prev_state=S ==> next_comm=.. next_pid=.. next_prio=..

     with or without the flags column (``d..2.``) and with or without the Android /
     systrace tgid column (``(  959)``, or ``(-----)`` when unknown);
   - the raw form of ``trace-cmd report -R``: the same ``key=value`` pairs with a numeric
     ``prev_state`` and no ``==>``, after a ``version = 6`` / ``cpus=N`` header;
   - the short form of trace-cmd's sched_switch plugin (``trace-cmd report`` without
     ``-R``): ``prev_comm:prev_pid [prio] S ==> next_comm:next_pid [prio]``.

   A task name (comm) may contain spaces, dashes and colons: the ``comm-pid`` prefix is
   split at the LAST dash followed by the pid, the ``key=value`` body at the next known
   key, the plugin form at the last colon before the pid. Lines that are not a
   sched_switch (headers, other events, truncated lines) are skipped. The result is
   sorted by timestamp, stably (equal timestamps keep their order in the text).

2. :func:`sched_to_workload` turns the switches into a workload dict for
   :meth:`svasim.model.workload.Workload.from_dict` whose ``[[switch]]`` list replays
   the trace's schedule; see its docstring for the mapping rules (CPUs, processes,
   threads, idle, rounds).

3. :func:`workload_to_toml` writes any such dict as a TOML workload file.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

__all__ = [
    "MAX_ROUNDS",
    "SchedSwitch",
    "parse_sched_switch",
    "sched_to_workload",
    "workload_to_toml",
]

#: The most rounds (``ticks``) a workload may have (the limit of ``Workload.from_dict``).
MAX_ROUNDS = 1_000_000
# ``Workload.from_dict`` accepts 1..256 CPUs.
_MAX_CPUS = 256


@dataclass(frozen=True, slots=True)
class SchedSwitch:
    """One ``sched_switch`` event: CPU ``cpu`` stopped running ``prev`` and runs ``next``.

    ``prev_state`` is the letter form the kernel prints (``R``, ``S``, ``D``, ``R+``,
    ``D|W``, ...); numeric states of raw traces are converted to it. ``prev_tgid`` is the
    thread group (process) of the task that was running, when the trace has a tgid
    column, else None. pid 0 is the idle task (``swapper/N``).
    """

    #: Timestamp in nanoseconds (exact: parsed from the decimal text, not a float).
    ts_ns: int
    cpu: int
    prev_comm: str
    prev_pid: int
    prev_prio: int
    prev_state: str
    next_comm: str
    next_pid: int
    next_prio: int
    prev_tgid: int | None = None

    @property
    def ts(self) -> float:
        """Timestamp in seconds (for display; order by :attr:`ts_ns`)."""
        return self.ts_ns / 1e9


# -- parsing -------------------------------------------------------------------------------

# "comm-pid [cpu] flags ts: sched_switch: body". The greedy ``comm`` makes the split happen
# at the LAST "-<digits>" that is followed by the rest of a valid prefix, so task names
# with dashes (even "worker-3") keep them. The tgid column holds digits or dashes.
_PREFIX = re.compile(
    r"^\s*(?P<comm>.+)-(?P<pid>\d+)\s+"
    r"(?:\(\s*(?P<tgid>\d+|-+)\s*\)\s+)?"
    r"\[(?P<cpu>\d+)\]\s+"
    r"(?:(?P<flags>[^\s\[\]:]+)\s+)?"
    r"(?P<ts>\d+(?:\.\d+)?):\s+"
    r"sched_switch:\s+(?P<body>.*?)\s*$"
)

# The TP_printk form (with "==>") and the raw -R form (without), in one pattern. Each comm
# runs lazily up to the next known key, so it may contain spaces.
_KEYVALUE = re.compile(
    r"^prev_comm=(?P<prev_comm>.*?) prev_pid=(?P<prev_pid>-?\d+) prev_prio=(?P<prev_prio>-?\d+) "
    r"prev_state=(?P<prev_state>\S+)\s+(?:==>\s+)?"
    r"next_comm=(?P<next_comm>.*?) next_pid=(?P<next_pid>-?\d+) next_prio=(?P<next_prio>-?\d+)$"
)

# trace-cmd's sched_switch plugin: "prev_comm:prev_pid [prio] S ==> next_comm:next_pid [prio]".
_PLUGIN = re.compile(
    r"^(?P<prev_comm>.+):(?P<prev_pid>-?\d+) \[(?P<prev_prio>-?\d+)\] (?P<prev_state>\S+) ==> "
    r"(?P<next_comm>.+):(?P<next_pid>-?\d+) \[(?P<next_prio>-?\d+)\]$"
)

# The task states of a numeric prev_state, as include/trace/events/sched.h prints them
# since Linux 4.14 (TASK_REPORT): bit -> letter; TASK_REPORT_MAX (0x100) adds "+"
# (preempted while runnable); no bit set is "R".
_STATE_BITS = ((0x01, "S"), (0x02, "D"), (0x04, "T"), (0x08, "t"), (0x10, "X"), (0x20, "Z"), (0x40, "P"), (0x80, "I"))
_STATE_PREEMPTED = 0x100


def _state_letters(raw: str) -> str:
    """The letter form of a prev_state: numbers (raw traces) converted, letters kept."""
    try:
        value = int(raw, 0)
    except ValueError:
        return raw
    letters = "|".join(letter for bit, letter in _STATE_BITS if value & bit) or "R"
    return letters + ("+" if value & _STATE_PREEMPTED else "")


def _ts_ns(text: str) -> int:
    # Exact decimal -> ns: a float would round 9-digit fractions of large timestamps.
    whole, _, frac = text.partition(".")
    return int(whole) * 1_000_000_000 + int((frac + "000000000")[:9])


def _parse_line(line: str) -> SchedSwitch | None:
    if "sched_switch:" not in line:  # the cheap test first: most lines of a trace are not
        return None
    m = _PREFIX.match(line)
    if m is None:
        return None
    body = m["body"]
    b = _KEYVALUE.match(body) or _PLUGIN.match(body)
    if b is None:
        return None
    tgid = m["tgid"]
    return SchedSwitch(
        ts_ns=_ts_ns(m["ts"]),
        cpu=int(m["cpu"]),
        prev_comm=b["prev_comm"],
        prev_pid=int(b["prev_pid"]),
        prev_prio=int(b["prev_prio"]),
        prev_state=_state_letters(b["prev_state"]),
        next_comm=b["next_comm"],
        next_pid=int(b["next_pid"]),
        next_prio=int(b["next_prio"]),
        prev_tgid=int(tgid) if tgid is not None and tgid.isdigit() else None,
    )


def parse_sched_switch(text: str) -> list[SchedSwitch]:
    """The ``sched_switch`` events of a trace's text, sorted by timestamp (stable).

    See the module docstring for the accepted forms. Lines that are not a complete
    sched_switch event are skipped, so a whole ``trace`` file (headers, other events)
    can be given as it is. An empty result means the text had no sched_switch line.
    """
    found = [s for s in map(_parse_line, text.splitlines()) if s is not None]
    # Per-CPU buffers merged by hand, or concatenated files, may be out of order; sorted()
    # is stable, so events with equal timestamps keep their order in the text.
    return sorted(found, key=lambda s: s.ts_ns)


# -- trace -> workload ---------------------------------------------------------------------


@dataclass
class _Task:
    pid: int
    comm: str
    comms: set[str]
    first: int  # index of its first switch-in event (its order of appearance)


def _check_int(value: Any, what: str, low: int, high: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < low or (high is not None and value > high):
        bound = f"in {low}..{high}" if high is not None else f">= {low}"
        raise ValueError(f"{what} must be an integer {bound}, got {value!r}")
    return value


def sched_to_workload(
    switches: Iterable[SchedSwitch],
    *,
    cpus: int | None = None,
    enqcmd_tasks: Mapping[str | int, int] | None = None,
    name: str = "imported",
    max_rounds: int | None = None,
) -> dict[str, Any]:
    """A workload dict (for ``Workload.from_dict``) whose schedule replays ``switches``.

    Mapping rules:

    - **CPUs**: the trace's CPUs (every CPU with a sched_switch line) are renumbered
      compactly in ascending order (trace CPUs 0, 2, 5 become 0, 1, 2); with ``cpus``
      given, trace CPU ``c`` becomes ``c % cpus`` and the workload has ``cpus`` CPUs.
    - **Idle**: pid 0 (``swapper/N``, ``<idle>``) is not a task. A switch to it means
      the CPU goes idle; the model has no idle task, so it is dropped and the CPU keeps
      its last thread loaded (as Linux keeps the mm loaded in lazy TLB mode).
    - **Tasks**: every pid switched in at least once becomes a thread. Threads are
      grouped into processes by tgid when the trace has a tgid column (systrace /
      ``record-tgid``; the tgid of a task is learnt from lines it is the ``prev`` of),
      otherwise each pid is a process of its own. A process is named
      ``<comm>[<tgid>]`` after its leader's comm (or its first thread's), so its
      instance in the schedule is ``<comm>[<tgid>]0``.
    - **ENQCMD**: ``enqcmd_tasks`` maps tasks, by comm (str: every pid that had that
      comm) or by pid (int), to the ENQCMDs they execute each time they run, from their
      first switch-in on. Their processes open dsa0's shared WQ; they are their
      processes' first threads (the model makes a process's first ``submitters``
      threads submit; whichever of them runs first opens the WQ). The model has one
      ENQCMD count per process, so submitters of one process must be given the same
      count.
    - **Switches**: each switch-in of a task becomes one ``[[switch]]`` event, in time
      order. A switch-in that the model would not see as a context switch is dropped:
      the task is already the CPU's current thread (it only went idle in between, or
      two trace CPUs fold onto one with ``cpus``). So every switch event is exactly one
      context switch of the model (a migration included).
    - **Rounds**: the n-th switch event (from 0) gets ``round = n`` and the workload has
      one round per switch event. When there are more switch events than ``max_rounds``
      (default and ceiling: :data:`MAX_ROUNDS`, the workload limit), they are bucketed
      proportionally: ``round = n * max_rounds // count``, which keeps time order and
      puts consecutive switches in the same round. Rounds only number the schedule (the
      model applies the events in list order); PKRU users see the round's parity.

    Raises ValueError for an unusable trace (no switch to any task, more than 256
    CPUs without ``cpus``) or an ``enqcmd_tasks`` entry that names no switched-in task.
    """
    ordered = sorted(switches, key=lambda s: s.ts_ns)
    if cpus is not None:
        _check_int(cpus, "cpus", 1, _MAX_CPUS)
    if max_rounds is not None:
        _check_int(max_rounds, "max_rounds", 1, MAX_ROUNDS)
    wanted = dict(enqcmd_tasks or {})
    for key, each in wanted.items():
        if isinstance(key, bool) or not isinstance(key, str | int):
            raise ValueError(f"enqcmd_tasks keys are comms (str) or pids (int), got {key!r}")
        _check_int(each, f"enqcmd_tasks[{key!r}] (ENQCMDs each time the task runs)", 1)

    trace_cpus = sorted({s.cpu for s in ordered})
    if cpus is None:
        if len(trace_cpus) > _MAX_CPUS:
            raise ValueError(
                f"the trace has {len(trace_cpus)} CPUs and a workload at most {_MAX_CPUS}: "
                "pass cpus=N to fold them onto N simulated CPUs"
            )
        cpu_map = {c: i for i, c in enumerate(trace_cpus)}
        ncpus = max(1, len(trace_cpus))
    else:
        cpu_map = {c: c % cpus for c in trace_cpus}
        ncpus = cpus

    # What each pid was called, and its tgid where the trace says.
    comms: dict[int, list[str]] = {}
    tgid_of: dict[int, int] = {}
    for s in ordered:
        for pid, comm in ((s.prev_pid, s.prev_comm), (s.next_pid, s.next_comm)):
            seen = comms.setdefault(pid, [])
            if comm not in seen:
                seen.append(comm)
        if s.prev_tgid is not None and s.prev_pid > 0:
            tgid_of.setdefault(s.prev_pid, s.prev_tgid)

    # Replay the schedule against a mirror of what the model will hold: which thread is
    # current on each simulated CPU and where each thread is current.
    current: dict[int, int] = {}  # sim CPU -> pid
    where: dict[int, int] = {}  # pid -> sim CPU
    events: list[tuple[int, int]] = []  # (sim CPU, pid)
    tasks: dict[int, _Task] = {}
    for s in ordered:
        pid = s.next_pid
        if pid <= 0:
            continue  # the CPU goes idle; the model keeps its thread loaded
        cpu = cpu_map[s.cpu]
        if where.get(pid) == cpu:
            continue  # already current there: the model would not switch
        old = where.get(pid)
        if old is not None:
            del current[old]  # a migration: its old CPU goes idle in the model
        prev = current.get(cpu)
        if prev is not None:
            del where[prev]
        current[cpu] = pid
        where[pid] = cpu
        if pid not in tasks:
            tasks[pid] = _Task(pid, comms[pid][0], set(comms[pid]), len(events))
        events.append((cpu, pid))
    if not events:
        raise ValueError(
            f"the trace has no switch to a task ({len(ordered)} sched_switch events, all to idle or none): "
            "nothing to run"
        )

    # ENQCMD submitters, by comm or pid.
    per_tick: dict[int, int] = {}
    for key, n in wanted.items():
        hits = [t.pid for t in tasks.values() if (t.pid == key if isinstance(key, int) else key in t.comms)]
        if not hits:
            in_trace = key in comms if isinstance(key, int) else any(key in c for c in comms.values())
            known = ", ".join(f"{t.comm}({t.pid})" for t in list(tasks.values())[:8])
            raise ValueError(
                f"enqcmd_tasks names {key!r}, which "
                + ("never runs in the trace (it is never switched in)" if in_trace else "is no task of the trace")
                + f"; tasks that run: {known}{', ...' if len(tasks) > 8 else ''}"
            )
        for pid in hits:
            per_tick[pid] = n

    # Processes, in order of first appearance; threads: submitters first (see above),
    # then the leader, then by first appearance.
    groups: dict[int, list[_Task]] = {}
    for t in sorted(tasks.values(), key=lambda t: t.first):
        groups.setdefault(tgid_of.get(t.pid, t.pid), []).append(t)
    processes: list[dict[str, Any]] = []
    slot: dict[int, tuple[str, int]] = {}  # pid -> (process instance, thread index)
    for tgid, members in groups.items():
        members.sort(key=lambda t: (t.pid not in per_tick, t.pid != tgid, t.first))
        leader = comms[tgid][0] if tgid in comms else members[0].comm
        pname = f"{leader}[{tgid}]"
        spec: dict[str, Any] = {"name": pname, "threads": len(members)}
        submitters = [t for t in members if t.pid in per_tick]
        if submitters:
            counts = sorted({per_tick[t.pid] for t in submitters})
            if len(counts) > 1:
                who = ", ".join(f"{t.comm}({t.pid})={per_tick[t.pid]}" for t in submitters)
                raise ValueError(
                    f"process {pname} has submitters with different ENQCMD counts ({who}); "
                    "the model has one count per process: give them the same"
                )
            spec.update(open_wq=True, submitters=len(submitters), enqcmds_per_tick=counts[0])
        processes.append(spec)
        for index, t in enumerate(members):
            slot[t.pid] = (pname + "0", index)  # the model names instances name + index

    limit = min(max_rounds or MAX_ROUNDS, MAX_ROUNDS)
    count = len(events)
    schedule = []
    for n, (cpu, pid) in enumerate(events):
        process, thread = slot[pid]
        rnd = n if count <= limit else n * limit // count
        schedule.append({"round": rnd, "cpu": cpu, "process": process, "thread": thread})
    nthreads = len(tasks)
    return {
        "name": name,
        "description": (
            f"Imported from a Linux sched_switch trace: {len(ordered)} sched_switch events on "
            f"{len(trace_cpus)} CPUs, {count} context switches of {nthreads} tasks in "
            f"{len(processes)} processes."
        ),
        "cpus": ncpus,
        "ticks": min(count, limit),
        "process": processes,
        "switch": schedule,
    }


# -- TOML ----------------------------------------------------------------------------------

_BARE_KEY = re.compile(r"^[A-Za-z0-9_-]+$")
_ESCAPES = {"\\": "\\\\", '"': '\\"', "\b": "\\b", "\t": "\\t", "\n": "\\n", "\f": "\\f", "\r": "\\r"}


def _toml_str(s: str) -> str:
    out = []
    for ch in s:
        esc = _ESCAPES.get(ch)
        if esc is not None:
            out.append(esc)
        elif ord(ch) < 0x20 or ord(ch) == 0x7F:  # other control characters must be escaped
            out.append(f"\\u{ord(ch):04X}")
        else:
            out.append(ch)
    return '"' + "".join(out) + '"'


def _toml_key(k: Any) -> str:
    if not isinstance(k, str):
        raise ValueError(f"TOML keys are strings, got {k!r}")
    return k if _BARE_KEY.match(k) else _toml_str(k)


def _toml_value(v: Any, where: str) -> str:
    if isinstance(v, bool):  # before int: bool is an int
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if math.isnan(v):
            return "nan"
        if math.isinf(v):
            return "inf" if v > 0 else "-inf"
        return repr(v)
    if isinstance(v, str):
        return _toml_str(v)
    if isinstance(v, Mapping):
        items = ", ".join(f"{_toml_key(k)} = {_toml_value(x, f'{where}.{k}')}" for k, x in v.items())
        return "{ " + items + " }" if items else "{}"
    if isinstance(v, Sequence):
        return "[" + ", ".join(_toml_value(x, f"{where}[{i}]") for i, x in enumerate(v)) + "]"
    if v is None:
        raise ValueError(f"{where} is None, which TOML cannot express: drop the key")
    raise ValueError(f"{where} is a {type(v).__name__}, which TOML cannot express")


def _is_table_list(v: Any) -> bool:
    return isinstance(v, list) and bool(v) and all(isinstance(x, Mapping) for x in v)


def workload_to_toml(data: Mapping[str, Any], *, inline_lists: Sequence[str] = ("switch",)) -> str:
    """``data`` (a workload dict, or any dict of TOML-expressible values) as TOML text.

    Plain values come first (TOML needs them before any table), then sub-dicts as
    ``[table]`` sections, then lists of dicts as ``[[array of tables]]``, each in the
    dict's order. Lists of dicts named in ``inline_lists`` (the schedule, by default)
    are written instead as an array with one inline table per line, which keeps a long
    schedule readable. ``tomllib.loads`` of the result gives ``data`` back. Raises
    ValueError for values TOML cannot express (None, other objects).
    """
    plain: list[str] = []
    inline: list[str] = []
    tables: list[str] = []
    for key, value in data.items():
        k = _toml_key(key)
        if _is_table_list(value) and key in inline_lists:
            rows = "".join(f"  {_toml_value(row, f'{key}[{i}]')},\n" for i, row in enumerate(value))
            inline.append(f"{k} = [\n{rows}]\n")
        elif _is_table_list(value):
            for i, row in enumerate(value):
                body = "".join(f"{_toml_key(rk)} = {_toml_value(rv, f'{key}[{i}].{rk}')}\n" for rk, rv in row.items())
                tables.append(f"[[{k}]]\n{body}")
        elif isinstance(value, Mapping):
            body = "".join(f"{_toml_key(rk)} = {_toml_value(rv, f'{key}.{rk}')}\n" for rk, rv in value.items())
            tables.append(f"[{k}]\n{body}")
        else:
            plain.append(f"{k} = {_toml_value(value, key)}\n")
    parts = ["".join(plain)] if plain else []
    parts += inline + tables
    return "\n".join(parts)
