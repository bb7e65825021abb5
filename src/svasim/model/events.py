"""A deterministic event queue: the one place where a service's simulated time advances.

Entries are ordered by the key ``(time, priority, eid)``, as SimPy's environment orders
its queue (``simpy/core.py``: ``Environment.schedule`` pushes
``(self._now + delay, priority, next(self._eid), event)`` on a heap, ``step`` pops the
smallest and sets ``_now`` to its time). ``eid`` is an insertion counter, so two entries
due at the same time with the same priority come out in the order they were scheduled,
whatever Python's heap does with equal keys: the order is a function of the inputs alone.
Time is integer cycles; an entry can never be scheduled in the past.

The pending entries are model state. Every change of the queue is recorded on one entity
(``evq/<owner>``) by an ``event.schedule`` or ``event.fire`` transition whose ``after``
holds the whole pending list (sorted by key) and the insertion counter, so the fold of the record is
the queue. Only what acts when it fires is an entry: a device's queue holds its page group
responses, at most one per engine (an engine's completion changes nothing when it comes,
so it is the engine's ``busy_until``, not an entry: see ``Accel._run``). The queues stay
that short, so recording the list whole is cheap and keeps the fold trivial.

The cpu service has one queue too (``evq/cpu``, :mod:`svasim.model.kernel.sequences`):
its interruptible kernel sequences (``kernel_fpu``: kernel_fpu_begin ... kernel_fpu_end)
are explicit step tables, and the next step of each is an entry, so a point between two
steps is a time and recorded state, not a place in suspended code. ``StartSequence``
schedules a sequence's first step, ``AdvanceCpu`` fires entries, and whatever another CPU
does in between (an IPI that lands on the CPU in the sequence) happens at that point;
each request still runs whole, as replay requires. Its entries carry the CPU and the
thread; at most one per CPU is pending. Its clock is recorded with its entries (no CPU
owns it: each keeps cycles of its own).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import Any

from mypy_extensions import mypyc_attr

from svasim.model.errors import InvalidArgument
from svasim.model.journal import Journal

#: Priorities, lowest first, as SimPy's ``URGENT`` (0) and ``NORMAL`` (1): at one instant a
#: page group response is delivered before an engine's completion is noted.
URGENT = 0
NORMAL = 1


@dataclass(frozen=True, slots=True)
class Event:
    """One scheduled entry: when, in which order, what, and its arguments."""

    time: int
    priority: int
    eid: int
    kind: str
    args: dict[str, Any] = field(default_factory=dict)

    @property
    def key(self) -> tuple[int, int, int]:
        """The total order of the queue."""
        return (self.time, self.priority, self.eid)

    def fields(self) -> list[Any]:
        """The entry as the record keeps it: ``[time, priority, eid, kind, args]`` (``args``
        is sorted once, when scheduled, and never changed)."""
        return [self.time, self.priority, self.eid, self.kind, self.args]


@mypyc_attr(native_class=False)
class EventQueue:
    """A heap of :class:`Event`, with its clock (``now``) and its insertion counter."""

    __slots__ = ("owner", "now", "next_eid", "_heap")

    def __init__(self, owner: str) -> None:
        self.owner = owner
        self.now = 0
        self.next_eid = 1
        self._heap: list[tuple[tuple[int, int, int], Event]] = []

    @property
    def entity(self) -> str:
        """The entity the queue's transitions name."""
        return f"evq/{self.owner}"

    def __len__(self) -> int:
        return len(self._heap)

    def pending(self) -> list[Event]:
        """The entries not yet fired, in the order they will fire."""
        return [e for _, e in sorted(self._heap)]

    def peek(self) -> int | None:
        """The time of the next entry, None if there is none."""
        return self._heap[0][0][0] if self._heap else None

    def fields(self) -> dict[str, Any]:
        """The queue's state as :func:`svasim.model.state.export_state` names it."""
        # The clock is not here: the owner records it with the rest of its own clock.
        return {"next_eid": self.next_eid, "pending": [e.fields() for e in self.pending()]}

    def _record(self, journal: Journal, kind: str, event: Event) -> None:
        journal.emit(self.entity, kind, None, self.fields(), detail={"eid": event.eid, "kind": event.kind})

    def schedule(
        self, journal: Journal, time: int, kind: str, args: dict[str, Any] | None = None, *, priority: int = NORMAL
    ) -> Event:
        """Add an entry due at ``time`` (not before ``now``)."""
        if time < self.now:
            raise InvalidArgument(
                "EVENT_IN_THE_PAST", f"{self.owner}: cannot schedule {kind} at {time}, the clock is at {self.now}"
            )
        event = Event(time, priority, self.next_eid, kind, dict(sorted(args.items())) if args else {})
        self.next_eid += 1
        heapq.heappush(self._heap, (event.key, event))
        self._record(journal, "event.schedule", event)
        return event

    def pop(self, journal: Journal) -> Event:
        """Remove the next entry and advance the clock to its time (SimPy's ``step``)."""
        _, event = heapq.heappop(self._heap)
        self.now = max(self.now, event.time)
        self._record(journal, "event.fire", event)
        return event

    def advance_to(self, time: int) -> None:
        """Let the clock run to ``time`` with nothing due before it (recorded by the
        caller with the rest of its clock)."""
        nxt = self.peek()
        if nxt is not None and nxt < time:
            raise AssertionError(f"{self.owner}: advancing to {time} past an entry due at {nxt}")
        self.now = max(self.now, time)
