"""Resuming a run: a process started on a run that has events rebuilds its state from them.

The whole fabric in one process (``svasim up --run NAME``) rebuilds by deterministic
re-execution: the recorded inputs are fed, in seq order, to fresh cores, and every
transition they make is checked against the recorded one at the same seq (the first
difference refuses the resume, naming both sides). Folding alone cannot rebuild the
fabric: memory contents, the device's queues and the kernel's caches are state the
record holds only as effects; and snapshots are folds, so they cannot shorten a
re-execution either.

A run whose last client request was cut short (the process was killed while serving it)
ends in the middle of that request's transitions; re-execution makes the rest, and they
are recorded as the completion of that request: its input was recorded, so it happened
(the client that never got its answer may find it by its ``svasim-request-id``).

The restart itself is recorded, once everything else is, as one ``service.start`` event
per hosted service (entity ``service/<name>``, with the incarnation, the svasim version,
the services of the process and the seq it resumed after). These events are not
transitions of the model: a replay skips them (:data:`LIFECYCLE_KINDS`).

A process hosting only some of the services of a split fabric cannot re-execute its
part alone (every input runs through all three services), and the folds of the iommu
and accel services do not yet cover their whole state, so it refuses to start on a run
that has events of its services rather than start empty. The whole fabric in one process
can resume a split fabric's run: its record is the same sequence of whole requests.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Any

from svasim import __version__
from svasim.config import MODEL_SERVICES
from svasim.model.transition import INPUT_KIND, Transition
from svasim.store import EventRow, RunInfo, Store

#: Kinds of the events that record a process's life, not a change of model state.
LIFECYCLE_KINDS = frozenset({"service.start"})
#: Fields of a transition that re-execution must reproduce exactly.
COMPARED = ("service", "entity", "kind", "before", "after", "cause", "cycles", "detail")
#: Settings of a run that decide what re-execution computes.
MODEL_SETTINGS = ("cpus", "memory", "policy", "early_free", "costs", "devices")


class ResumeRefused(RuntimeError):
    """The run cannot be resumed by this process; the message says why and what to do."""


def new_run_hint(run: RunInfo, who: str = "") -> str:
    """The advice that ends every refusal."""
    return f"start a new run with --run NEWNAME{who} (run {run.name} stays as it is, for replay and inspection)"


def is_lifecycle(event: Any) -> bool:
    """Whether ``event`` records a process's start rather than a model transition."""
    return event.kind in LIFECYCLE_KINDS


def _norm(value: Any) -> Any:
    # What the store gives back: JSON types (tuples become lists).
    return None if value is None else json.loads(json.dumps(value))


def _fields(t: Transition | EventRow) -> dict[str, Any]:
    if isinstance(t, Transition):
        return {
            "service": t.service,
            "entity": t.entity,
            "kind": t.kind,
            "before": _norm(t.before),
            "after": _norm(t.after),
            "cause": t.cause_seq(),
            "cycles": t.cycles,
            "detail": _norm(t.detail),
        }
    return {k: getattr(t, k) for k in COMPARED}


class Divergence(ResumeRefused):
    """Re-execution made a transition other than the recorded one."""


class CheckingRecorder:
    """A recorder for re-execution: each transition must be the next recorded event; it
    takes that event's seq. Transitions past the end of the record are kept in ``tail``."""

    def __init__(self, run: RunInfo, events: list[EventRow]) -> None:
        self.run = run
        self.events = [e for e in events if not is_lifecycle(e)]
        self.next = 0
        self.tail: list[Transition] = []
        self.divergence: str | None = None
        self.last_input: EventRow | None = None

    def append(self, transitions: list[Transition]) -> None:
        """Check and number ``transitions``."""
        for t in transitions:
            if self.divergence is not None:
                return
            if self.next >= len(self.events):
                if t.is_input:
                    self.divergence = f"re-execution made an input at seq {self._end() + 1}, past the record"
                self.tail.append(t)
                continue
            rec = self.events[self.next]
            if rec.is_input:
                self.last_input = rec
            made, recorded = _fields(t), _fields(rec)
            if made != recorded:
                differ = [k for k in COMPARED if made[k] != recorded[k]]
                where = (
                    f" (after input {self.last_input.seq}: {self._method(self.last_input)})" if self.last_input else ""
                )
                self.divergence = (
                    f"re-execution departs from the record at seq {rec.seq}{where} in {', '.join(differ)}: "
                    f"recorded {json.dumps({k: recorded[k] for k in differ}, sort_keys=True)}, "
                    f"re-executed {json.dumps({k: made[k] for k in differ}, sort_keys=True)}"
                )
                return
            t.seq = rec.seq
            self.next += 1

    def _end(self) -> int:
        return self.events[-1].seq if self.events else 0

    @staticmethod
    def _method(e: EventRow) -> str:
        return str((e.after or {}).get("method"))

    def flush(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class Resumed:
    """What a resume did."""

    run_id: str
    #: The seq of the last event recorded before this start.
    after_seq: int
    inputs: int
    #: Transitions recorded to complete a client request the previous process was serving.
    completed: list[Transition]
    seconds: float


def check_settings(run: RunInfo, recorded: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a resume by a process whose model settings differ from the run's."""
    if run.version != __version__:
        raise ResumeRefused(
            f"cannot resume run {run.name}: it was recorded by svasim {run.version}, this is {__version__}, "
            f"and re-execution is checked only within one version; {new_run_hint(run)}"
        )
    differ = [k for k in MODEL_SETTINGS if _norm(recorded.get(k)) != _norm(current.get(k))]
    if differ:
        shown = ", ".join(f"{k} {recorded.get(k)!r} (this start: {current.get(k)!r})" for k in differ if k != "costs")
        if "costs" in differ:
            shown = ", ".join(x for x in (shown, "another cost table") if x)
        raise ResumeRefused(
            f"cannot resume run {run.name}: it was recorded with {shown}; start with the run's settings, or "
            f"{new_run_hint(run)}"
        )


def events_of(store: Store, run: RunInfo, services: tuple[str, ...]) -> int:
    """How many events of ``services`` the run has (stops counting at the first)."""
    return sum(len(store.events(run.id, service=svc, limit=1)) for svc in services)


def refuse_partial(store: Store, run: RunInfo, services: tuple[str, ...]) -> None:
    """Refuse to start a part of a split fabric empty on a run with events of its services."""
    model = tuple(s for s in services if s in MODEL_SERVICES)
    if not model or run.event_count == 0:
        return
    held = [s for s in model if events_of(store, run, (s,))]
    if held:
        raise ResumeRefused(
            f"cannot resume run {run.name}: it has events of the {', '.join(held)} service"
            f"{'s' if len(held) > 1 else ''}, and a process hosting only {', '.join(services)} cannot rebuild "
            f"their state (its inputs run through every service); stop the fabric and resume it whole with "
            f"svasim up --run {run.name}, or {new_run_hint(run, ' for every process of the fabric')}"
        )


def resume(fabric: Any, store: Store, run: RunInfo, events: list[EventRow], checker: CheckingRecorder) -> Resumed:
    """Re-execute the recorded inputs of ``run`` on ``fabric`` (a :class:`svasim.replay.Fabric`
    whose cores record into ``checker``); ResumeRefused at the first difference."""
    from svasim.replay import ReplayInputError

    started = time.perf_counter()
    fed = 0
    for e in events:
        if e.kind != INPUT_KIND:
            continue
        after = e.after if isinstance(e.after, dict) else {}
        rid = after.get("request_id")
        try:
            fabric.feed(str(after.get("method")), after.get("request") or {}, rid if isinstance(rid, str) else None)
        except ReplayInputError as err:
            raise ResumeRefused(f"cannot resume run {run.name}: seq {e.seq}: {err}; {new_run_hint(run)}") from None
        fed += 1
        if checker.divergence is not None:
            break
    if checker.divergence is None and checker.next < len(checker.events):
        missing = checker.events[checker.next]
        checker.divergence = (
            f"the record has transitions re-execution does not make, from seq {missing.seq} "
            f"({missing.kind} of {missing.entity})"
        )
    if checker.divergence is not None:
        raise Divergence(f"cannot resume run {run.name}: {checker.divergence}; {new_run_hint(run)}")
    after_seq = events[-1].seq if events else 0
    return Resumed(run.id, after_seq, fed, checker.tail, time.perf_counter() - started)


def start_events(services: tuple[str, ...], incarnation: str, after_seq: int, *, resumed: bool) -> list[Transition]:
    """The ``service.start`` events of a process's start."""
    return [
        Transition(
            svc,
            f"service/{svc}",
            "service.start",
            None,
            {
                "incarnation": incarnation,
                "version": __version__,
                "services": list(services),
                "resumed_after_seq": after_seq if resumed else 0,
            },
        )
        for svc in services
        if svc in MODEL_SERVICES
    ]


def verify_run(store: Store, run_ref: str) -> str | None:
    """Re-execute a whole run (its restarts included) and compare: None if identical, else
    the first difference (a check for tests and tools, as ``svasim replay`` but skipping
    :data:`LIFECYCLE_KINDS`)."""
    from svasim.replay import Fabric, config_of

    run = store.get_run(run_ref)
    events = store.events(run.id, limit=None)
    config, costs = config_of(run)
    checker = CheckingRecorder(run, events)
    fabric = Fabric(config, costs, checker, run.id)
    try:
        resumed = resume(fabric, store, run, events, checker)
    except ResumeRefused as e:
        return str(e)
    if resumed.completed:
        return f"re-execution makes {len(resumed.completed)} transitions past the end of the record"
    return None


__all__ = [
    "LIFECYCLE_KINDS",
    "CheckingRecorder",
    "Divergence",
    "ResumeRefused",
    "Resumed",
    "check_settings",
    "is_lifecycle",
    "refuse_partial",
    "resume",
    "start_events",
    "verify_run",
]
