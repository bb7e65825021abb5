"""The recorder: buffered, group-committed writing of a run's transitions.

Services hand every transition the model returns to :meth:`Recorder.append`, which only
buffers them (no I/O on the request path). One background writer thread takes everything
pending at once and writes it with a single :meth:`Store.append` (one transaction, one
executemany): under load, one commit carries the transitions of many requests ("group
commit"), so the cost of a commit is shared instead of paid per transition.

Durability: with ``durability="commit"`` a service calls :meth:`Recorder.wait_durable` on
the last transition of a request before it acknowledges the request, which also tells
the writer not to wait for more work; with ``"batch"`` it acknowledges at once and the
transitions reach the database within about ``flush_interval``.

Order: transitions are committed in the order of the :meth:`append` calls that brought
them (a lock orders calls from different threads), so waiting for a transition also waits
for everything appended before it.
"""

from __future__ import annotations

import logging
import threading
import time
import uuid
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from typing import Literal, TypedDict

from svasim.model.transition import Transition
from svasim.store.closing import Closing
from svasim.store.store import Store, UnknownRunError

log = logging.getLogger(__name__)

Durability = Literal["commit", "batch"]

#: Retry delays after a failed write: doubling from the first to the last.
_BACKOFF_FIRST = 0.01
_BACKOFF_MAX = 1.0

# Errors that describe the batch itself (an unknown run, an invalid cause): retrying is
# unlikely to help, so waiters are told at once rather than when their timeout expires.
_DATA_ERRORS = (ValueError, UnknownRunError)


class RecorderError(RuntimeError):
    """Transitions could not be committed (the store write keeps failing, or closed)."""


class RecorderTimeoutError(RecorderError, TimeoutError):
    """A wait ended at its timeout while the writer was still working (no failure seen)."""


class RecorderStats(TypedDict):
    """Counters of a :class:`Recorder` (transitions, except ``batches`` and ``failures``)."""

    appended: int
    committed: int
    pending: int
    batches: int
    failures: int


class Recorder(Closing):
    """Batching, ordered writer of one run's transitions to a :class:`Store`.

    Thread-safe. Call :meth:`close` when done: transitions still buffered when the
    process exits without it are lost (the writer is a daemon thread).
    """

    #: Batches of transitions that may be appended and not yet committed before
    #: :meth:`append` waits for the writer.
    BACKLOG_BATCHES = 4

    def __init__(
        self,
        store: Store,
        run_id: str,
        *,
        durability: Durability = "commit",
        flush_interval: float = 0.02,
        max_batch: int = 5000,
    ) -> None:
        """Start the writer thread.

        ``flush_interval`` (seconds) is how long pending transitions may wait for more to
        join them when nobody is waiting for them; ``max_batch`` caps the transitions in
        one database transaction (and triggers a write as soon as that many are pending).
        """
        if durability not in ("commit", "batch"):
            raise ValueError(f"durability must be 'commit' or 'batch', not {durability!r}")
        if flush_interval <= 0:
            raise ValueError("flush_interval must be positive")
        if max_batch < 1:
            raise ValueError("max_batch must be at least 1")
        self._store = store
        self._run_id = run_id
        self._durability: Durability = durability
        self._flush_interval = flush_interval
        self._max_batch = max_batch

        self._lock = threading.Lock()
        self._work = threading.Condition(self._lock)  # the writer waits here
        self._done = threading.Condition(self._lock)  # flush / wait_durable wait here
        self._pending: list[Transition] = []
        # This writer's identity and counter: a retried append after an ambiguous commit
        # is recognised by the store and not written twice.
        self._origin = uuid.uuid4().hex[:16]
        self._next_origin_seq = 1
        self._failed_upto = 0  # highest origin_seq of a chunk whose append raised
        # One writer at a time (the background thread, or a waiter writing for itself),
        # so batches commit in the order they were taken.
        self._writing = False
        self._oldest_pending_at = 0.0  # monotonic time the oldest pending one arrived
        self._urgent = False  # a waiter wants the pending transitions written now
        self._idle = False  # the writer sleeps until woken (nothing appended for a while)
        self._appended = 0
        self._committed = 0
        self._batches = 0
        self._failures = 0
        self._last_error: BaseException | None = None
        self._closing = False
        self._stop = threading.Event()  # abandons retries (close timed out)
        #: Wraps every store write, given its size in transitions (metrics time it there).
        self.write_observer: Callable[[int], AbstractContextManager[object]] = lambda n: nullcontext()

        self._thread = threading.Thread(target=self._run, name=f"svasim-recorder-{run_id}", daemon=True)
        self._thread.start()

    @property
    def run_id(self) -> str:
        """The run the transitions are recorded in."""
        return self._run_id

    @property
    def durability(self) -> Durability:
        """``"commit"``: acknowledge only committed work; ``"batch"``: acknowledge at once."""
        return self._durability

    # -- producers -------------------------------------------------------------------

    def append(self, transitions: Sequence[Transition]) -> None:
        """Buffer ``transitions`` for the writer, in order. Never does I/O; waits for the
        writer only when the backlog of uncommitted transitions passes BACKLOG_BATCHES
        batches.

        Raises :class:`RecorderError` once :meth:`close` has been called.
        """
        if not transitions:
            return
        with self._lock:
            if self._closing:
                raise RecorderError(f"recorder of run {self._run_id} is closed")
            was_empty = not self._pending
            if was_empty:
                self._oldest_pending_at = time.monotonic()
            for t in transitions:
                t.origin_seq = self._next_origin_seq
                self._next_origin_seq += 1
            self._pending.extend(transitions)
            self._appended += len(transitions)
            # Wake the writer only when it has something new to decide and would not look
            # soon by itself: it sleeps while nothing has been appended for a while, and a
            # full batch is written without waiting. With commit durability the request's
            # own waiter usually writes the batch (see _await); the writer, looking every
            # flush_interval while appends keep coming, is then never woken per request.
            if (was_empty and (self._idle or self._durability == "batch")) or len(self._pending) >= self._max_batch:
                self._work.notify()
            # Backpressure: with batch durability nobody waits for commits, so a producer
            # faster than the store would grow the backlog without bound. Past
            # BACKLOG_BATCHES batches it waits for the writer (not while writes fail: what
            # is pending is kept and retried, and the failure is reported to waiters).
            limit = self.BACKLOG_BATCHES * self._max_batch
            while (
                self._appended - self._committed > limit
                and self._last_error is None
                and not self._closing
                and not self._stop.is_set()
                and self._thread.is_alive()
            ):
                self._done.wait(0.1)

    # -- waiters ---------------------------------------------------------------------

    def flush(self, timeout: float | None = None) -> None:
        """Block until everything appended before this call is committed.

        Raises :class:`RecorderError` if writes keep failing past ``timeout`` (at once for
        a failure retrying will not fix) and :class:`RecorderTimeoutError` if the writer
        is merely slower than ``timeout``. ``timeout=None`` waits until the write succeeds.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._lock:
            target = self._appended
            self._await(lambda: self._committed >= target, deadline, timeout)

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None:
        """Block until ``t`` (appended to this recorder) is committed.

        Everything appended before ``t`` is committed too. Errors as for :meth:`flush`;
        :class:`ValueError` if ``t`` was never appended here.
        """
        if t.seq is not None:  # already committed: the common case under group commit
            return
        deadline = None if timeout is None else time.monotonic() + timeout

        def committed() -> bool:
            if t.seq is not None:
                return True
            # All that was appended is committed and t has no seq: it never was appended.
            if self._committed == self._appended:
                raise ValueError(f"{t.kind} {t.entity} was not appended to this recorder")
            return False

        with self._lock:
            self._await(committed, deadline, timeout)

    def before_ack(self, t: Transition, timeout: float | None = None) -> None:
        """What a service calls before acknowledging a request whose last transition is ``t``.

        Waits for ``t`` to be committed when ``durability == "commit"``; returns at once
        with ``"batch"``.
        """
        if self._durability == "commit":
            self.wait_durable(t, timeout)

    def _await(
        self,
        done: Callable[[], bool],
        deadline: float | None,
        timeout: float | None,
    ) -> None:
        """Wait (holding ``self._lock``) until ``done()``; asks the writer to hurry."""
        if done():
            return
        if (
            deadline is None
            and not self._writing
            and self._pending
            and self._last_error is None
            and self._thread.is_alive()
        ):
            # Leader/follower group commit: nobody is writing, so this waiter commits
            # everything pending itself rather than handing it to the writer thread and
            # waiting to be woken (two thread switches on every acknowledged request).
            # Only without a deadline: a write cannot be abandoned half way.
            batch, self._pending = self._pending, []
            self._writing = True
            self._lock.release()
            try:
                self._write(batch)
            except Exception:  # noqa: BLE001 - the batch is pending again; the writer retries it
                pass
            finally:
                self._lock.acquire()
                self._writing = False
                # The writer has something to do only if more arrived meanwhile, or to
                # finish a close; otherwise waking it costs the request two thread switches.
                if self._pending or self._closing:
                    self._work.notify()
            if done():
                return
        self._urgent = True
        self._work.notify()
        while not done():
            error = self._last_error
            if error is not None and (isinstance(error, _DATA_ERRORS) or not self._thread.is_alive()):
                raise self._write_error(error)
            if not self._thread.is_alive():
                raise RecorderError(
                    f"recorder of run {self._run_id} has stopped with "
                    f"{self._appended - self._committed} transitions not committed"
                )
            if deadline is None:
                # Woken by each commit and by the writer's end; the slice re-checks the
                # writer's liveness, which its last notification may precede.
                self._done.wait(1.0)
                continue
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                if error is not None:
                    raise self._write_error(error)
                raise RecorderTimeoutError(
                    f"transitions of run {self._run_id} not committed within {timeout} s "
                    f"({self._appended - self._committed} still pending)"
                )
            self._done.wait(remaining)

    def _write_error(self, error: BaseException) -> RecorderError:
        exc = RecorderError(
            f"cannot commit transitions of run {self._run_id}: the store write failed "
            f"{self._failures} time(s), last with {type(error).__name__}: {error}; "
            f"{self._appended - self._committed} transitions are not committed"
        )
        exc.__cause__ = error
        return exc

    # -- the writer ------------------------------------------------------------------

    def _take_batch(self) -> list[Transition] | None:
        """Wait for work and take all of it; None when closing with nothing left.

        While nothing is pending (or a waiter is writing it), the writer looks again every
        ``flush_interval`` as long as appends keep coming, and sleeps until woken once a
        whole interval went by without one: under a steady stream of acknowledged requests
        nobody wakes it per request (their waiters write), yet whatever nobody waits for
        is written within about two intervals.
        """
        with self._lock:
            seen = -1
            while True:
                if self._pending and not self._writing:
                    # Group commit: give a young batch up to flush_interval to grow, unless
                    # someone waits for it, it is full, or the recorder is closing.
                    remaining = self._oldest_pending_at + self._flush_interval - time.monotonic()
                    if (
                        self._urgent
                        or self._closing
                        or self._stop.is_set()
                        or len(self._pending) >= self._max_batch
                        or remaining <= 0
                    ):
                        batch, self._pending = self._pending, []
                        self._urgent = False
                        self._writing = True
                        return batch
                    self._work.wait(remaining)
                    # A waiter may have taken the batch meanwhile and be writing it itself:
                    # what arrived since goes after it, never beside it (its causes may be
                    # in that batch, not committed yet). The loop looks again.
                    continue
                if self._closing and not self._writing:
                    return None
                if self._appended != seen or self._writing:
                    # Appends are coming (or a waiter is writing): look again soon.
                    seen = self._appended
                    self._work.wait(self._flush_interval)
                    continue
                self._idle = True
                try:
                    self._work.wait()
                finally:
                    self._idle = False

    def _write(self, batch: list[Transition]) -> None:
        """Write ``batch`` in chunks of at most max_batch; on failure, put back the rest."""
        for start in range(0, len(batch), self._max_batch):
            chunk = batch[start : start + self._max_batch]
            try:
                # Only a chunk that failed before can have been committed without us
                # hearing of it: only then is the store asked what it already has.
                retry = chunk[0].origin_seq is not None and chunk[0].origin_seq <= self._failed_upto
                with self.write_observer(len(chunk)):
                    self._store.append(self._run_id, chunk, origin=self._origin, retry=retry)
            except Exception as exc:
                self._failed_upto = max(self._failed_upto, chunk[-1].origin_seq or 0)
                with self._lock:
                    # Back in front of what arrived meanwhile: order is kept, and the
                    # retry is not delayed by flush_interval again.
                    self._pending[:0] = batch[start:]
                    self._oldest_pending_at = time.monotonic() - self._flush_interval
                    self._failures += 1
                    self._last_error = exc
                    self._done.notify_all()
                raise
            with self._lock:
                self._committed += len(chunk)
                self._batches += 1
                self._last_error = None
                self._done.notify_all()

    def _run(self) -> None:
        try:
            self._write_until_closed()
        finally:
            # Waiters without a timeout check whether the writer is alive when woken.
            with self._lock:
                self._done.notify_all()

    def _done_writing(self) -> None:
        with self._lock:
            self._writing = False
            self._work.notify()

    def _write_until_closed(self) -> None:
        backoff = _BACKOFF_FIRST
        while not self._stop.is_set():
            batch = self._take_batch()
            if batch is None:
                return
            try:
                self._write(batch)
                self._done_writing()
            except Exception as exc:
                self._done_writing()
                # The batch is pending again; nothing is dropped. Back off so that a
                # database that is down is not hammered.
                log.warning(
                    "recorder of run %s: store write failed (%s: %s); retrying in %.2f s",
                    self._run_id,
                    type(exc).__name__,
                    exc,
                    backoff,
                )
                self._stop.wait(backoff)
                backoff = min(backoff * 2, _BACKOFF_MAX)
            else:
                backoff = _BACKOFF_FIRST

    # -- lifecycle -------------------------------------------------------------------

    def close(self, timeout: float | None = 30.0) -> None:
        """Write everything pending, then stop the writer. Idempotent.

        New appends are refused from the start of the call. If the pending transitions
        cannot be committed within ``timeout`` seconds, the writer is stopped anyway and
        :class:`RecorderError` says how many were lost.
        """
        with self._lock:
            if self._closing:
                already = True
            else:
                already = False
                self._closing = True
                self._work.notify()
        if already:
            self._thread.join(timeout)
            return
        self._thread.join(timeout)
        if self._thread.is_alive():
            self._stop.set()
            with self._lock:
                self._work.notify()
            self._thread.join(timeout=5.0)
        with self._lock:
            lost = self._appended - self._committed
            error = self._last_error
        if lost:
            exc = RecorderError(
                f"recorder of run {self._run_id} closed with {lost} transitions not committed (last error: {error!r})"
            )
            raise exc from error

    def stats(self) -> RecorderStats:
        """A consistent snapshot of the counters."""
        with self._lock:
            return RecorderStats(
                appended=self._appended,
                committed=self._committed,
                pending=self._appended - self._committed,
                batches=self._batches,
                failures=self._failures,
            )
