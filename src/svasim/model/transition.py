"""Transitions: the unit of change every model operation returns.

A transition is one change of one entity. The model creates them; the recorder
(``svasim.store.recorder``) gives each one its global ``seq`` inside the committing
transaction. ``cause`` points at the transition (or recorded input) that led to this
one: another :class:`Transition` object while both are still pending, or the integer
``seq`` of one that is already committed (for example when the cause arrived from a
peer service in gRPC metadata).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

Cause = Union["Transition", int, None]

#: ``kind`` of a recorded client request (an input of the run, fed again on replay).
INPUT_KIND = "input"


@dataclass(eq=False, slots=True)
class Transition:
    """One change of one entity, with its cause and its cost in simulated cycles."""

    service: str
    entity: str
    kind: str
    before: dict[str, Any] | None = None
    after: dict[str, Any] | None = None
    cause: Cause = None
    cycles: int = 0
    #: Facts about the event that are not state of the entity (a #GP's reason, a
    #: retry's cause); recorded and shown, never folded into state.
    detail: dict[str, Any] | None = None
    #: Global sequence number, set by the recorder when the transition is committed.
    seq: int | None = field(default=None)
    #: The recorder's own counter for this transition (idempotent appends).
    origin_seq: int | None = field(default=None)

    def cause_seq(self) -> int | None:
        """The committed sequence number of the cause, or None when there is none."""
        cause = self.cause
        if cause is None:
            return None
        if isinstance(cause, int):
            return cause
        return cause.seq

    @property
    def is_input(self) -> bool:
        """Whether this records a client request rather than a change of state."""
        return self.kind == INPUT_KIND

    def as_dict(self) -> dict[str, Any]:
        """A plain-data view (used by the store, exports and tests)."""
        return {
            "seq": self.seq,
            "service": self.service,
            "entity": self.entity,
            "kind": self.kind,
            "before": self.before,
            "after": self.after,
            "cause": self.cause_seq(),
            "cycles": self.cycles,
            "detail": self.detail,
        }
