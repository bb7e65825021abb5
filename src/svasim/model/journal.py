"""The journal an operation writes its transitions to, as they happen.

Transitions are handed on (to the recorder) the moment they are emitted rather than
at the end of the operation, because an operation may call a peer service half way
and the peer's transitions must come after their cause in the global order.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from svasim.model.transition import Cause, Transition

Sink = Callable[[Transition], None]


class Journal:
    """Collects one operation's transitions and forwards each one to ``sink``.

    Each transition's default cause is the one emitted just before it (or, for the
    first, the operation's own cause), which makes an operation a causal chain.
    """

    __slots__ = ("service", "sink", "last", "transitions", "cycles")

    def __init__(self, service: str, sink: Sink | None = None, cause: Cause = None) -> None:
        self.service = service
        self.sink = sink
        self.last: Cause = cause
        self.transitions: list[Transition] = []
        self.cycles = 0

    def emit(
        self,
        entity: str,
        kind: str,
        before: dict[str, Any] | None = None,
        after: dict[str, Any] | None = None,
        *,
        cycles: int = 0,
        cause: Cause = None,
        detail: dict[str, Any] | None = None,
    ) -> Transition:
        """Record one change of one entity and return it."""
        cause = self.last if cause is None else cause
        if isinstance(cause, Transition) and cause.seq is not None:
            # Committed: named by its seq. Held as an object, a cause keeps its own causes
            # alive, and through a descriptor's accept (the cause of its completion, whose
            # transitions cause the next accept) the whole history of a run.
            cause = cause.seq
        # Positional: the dataclass's field order (service, entity, kind, before, after,
        # cause, cycles, detail); this runs for every transition of the fabric.
        t = Transition(self.service, entity, kind, before, after, cause, cycles, detail)
        self.transitions.append(t)
        self.cycles += cycles
        self.last = t
        if self.sink is not None:
            self.sink(t)
        return t

    def follow(self, cause: Cause) -> None:
        """Continue the chain from ``cause`` (the last transition a peer made)."""
        if cause is not None:
            self.last = cause

    def child(self, service: str) -> Journal:
        """A journal for a peer's part of this operation, caused by our last transition."""
        return Journal(service, self.sink, self.last)
