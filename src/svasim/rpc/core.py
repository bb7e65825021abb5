"""Service cores: one model behind a lock, with its transitions going to the recorder.

A core is what a gRPC servicer and an in-process peer both call. It records client
requests as inputs, runs the model with a :class:`Journal` whose transitions flow to the
recorder as they are made, and, when durability is asked for, waits until they are
committed before the request is acknowledged.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from svasim.model.errors import SimError
from svasim.model.journal import Journal
from svasim.model.transition import INPUT_KIND, Cause, Transition

R = TypeVar("R")

DURABILITY_COMMIT = "commit"
DURABILITY_BATCH = "batch"


class RecorderLike(Protocol):
    """What a core needs of the recorder (svasim.store.Recorder)."""

    def append(self, transitions: list[Transition]) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None: ...


class ServiceCore:
    """Common request handling of the cpu, iommu and accel cores."""

    service = ""

    def __init__(
        self,
        *,
        recorder: RecorderLike,
        request_lock: threading.RLock | threading.Lock,
        durability: str = DURABILITY_COMMIT,
    ) -> None:
        if durability not in (DURABILITY_COMMIT, DURABILITY_BATCH):
            raise ValueError(f"durability must be {DURABILITY_COMMIT!r} or {DURABILITY_BATCH!r}")
        self.recorder = recorder
        self.request_lock = request_lock
        self.durability = durability
        # Guards the model. Peers of the same process may call in on the same thread, so
        # the cpu core releases it around its outbound calls (see svasim.wiring.local).
        self.lock = threading.Lock()

    def _sink(self, t: Transition) -> None:
        self.recorder.append([t])

    def client_call(self, method: str, request: dict[str, Any], fn: Callable[[Journal], R]) -> R:
        """Run a state-changing client request: record it as an input, then run it.

        A refused request is recorded too (``request.rejected``), so that a replay
        can check it is refused again; the model itself changed nothing.
        """
        with self.request_lock:
            inp = Transition(self.service, "client", INPUT_KIND, None, {"method": method, "request": request})
            self.recorder.append([inp])
            journal = Journal(self.service, self._sink, inp)
            try:
                with self.lock:
                    result = fn(journal)
            except SimError as e:
                journal.emit(
                    "client",
                    "request.rejected",
                    None,
                    None,
                    detail={"method": method, "code": e.code, "reason": e.reason},
                )
                self._wait(journal.last)
                raise
        self._wait(journal.last)
        return result

    def client_read(self, fn: Callable[[], R]) -> R:
        """Run a request that changes nothing (not recorded)."""
        with self.request_lock, self.lock:
            return fn()

    def peer_call(self, cause: Cause, fn: Callable[[Journal], R]) -> tuple[R, Cause]:
        """Run a peer's request caused by ``cause``; returns the result and our last transition."""
        journal = Journal(self.service, self._sink, cause)
        with self.lock:
            result = fn(journal)
        return result, journal.last

    def peer_read(self, fn: Callable[[], R]) -> R:
        """Run a peer's request that changes nothing."""
        with self.lock:
            return fn()

    def _wait(self, last: Cause) -> None:
        if self.durability == DURABILITY_COMMIT and isinstance(last, Transition):
            self.recorder.wait_durable(last)
