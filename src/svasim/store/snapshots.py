"""Periodic snapshots of a run being recorded, so that a resume folds only the events
after the latest one.

A snapshot is the fold of a run's events up to a seq (the ``snapshots`` table, written
by :meth:`svasim.store.Store.state_at` whenever a fold passes a multiple of
``Store.snapshot_every``). Reading the state of a late point leaves them behind, but a
run nobody reads would have none; :class:`Snapshotter` is the reader that keeps them
coming while a process records: a thread that, each time the run has grown past a
multiple of ``every``, folds to the end, which stores the snapshots on the way. It
keeps the state it folded to in memory (the state, not the history: its size does not
grow with the run) and folds each event once, from the database, so that what it
stores is what was committed, whoever the writers of the run are. It reads from its
own connection, so the recorder never waits for it.

``SVASIM_SNAPSHOT_EVERY`` sets ``every`` (events; 0 turns the thread off). Memory
contents are not in a snapshot: a snapshot is a fold, and the fold keeps a digest of
each write, not the bytes (:mod:`svasim.model.state`).
"""

from __future__ import annotations

import logging
import os
import threading

from svasim.store.engine import is_sqlite_memory
from svasim.store.store import State, Store

log = logging.getLogger("svasim.store.snapshots")

#: Events between two snapshots when SVASIM_SNAPSHOT_EVERY does not say.
DEFAULT_EVERY = 10_000
ENV = "SVASIM_SNAPSHOT_EVERY"


def snapshot_every(default: int = DEFAULT_EVERY) -> int:
    """Events between snapshots: ``$SVASIM_SNAPSHOT_EVERY``, else ``default``; ValueError
    for a value that is not a non-negative integer."""
    text = os.environ.get(ENV, "").strip()
    if not text:
        return default
    try:
        n = int(text)
    except ValueError:
        raise ValueError(f"{ENV} must be a number of events, got {text!r}") from None
    if n < 0:
        raise ValueError(f"{ENV} must be 0 (off) or more, got {n}")
    return n


class Snapshotter:
    """Keeps the snapshots of one run up to date while it is recorded (a daemon thread)."""

    def __init__(self, store: Store, run_id: str, every: int, *, poll: float = 1.0) -> None:
        self.store = store
        self.run_id = run_id
        self.every = every
        self.poll = poll
        self.taken = 0
        # The state after event _seq (None: not folded yet), kept between steps.
        self._state: State | None = None
        self._seq = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="svasim-snapshots", daemon=True)
        if every > 0:
            store.snapshot_every = every

    def start(self) -> Snapshotter:
        """Start the thread (nothing happens when ``every`` is 0, nor for a database in
        memory: its one shared connection is the recorder's, and it goes with the process)."""
        if self.every > 0 and not is_sqlite_memory(self.store.url):
            self._thread.start()
        return self

    def step(self) -> bool:
        """Fold up to the end when a snapshot is due (the run has passed a multiple of
        ``every`` since the last fold); whether one was."""
        last = self.store.last_seq(self.run_id)
        if self._state is None:
            latest = self.store.latest_snapshot_seq(self.run_id)
            if last // self.every <= latest // self.every:
                return False
            # The first fold starts from the latest snapshot; later ones from memory.
            self._state = self.store.state_at(self.run_id, last)
            self._seq = last
        else:
            if last // self.every <= self._seq // self.every:
                return False
            self._seq = self.store.fold_forward(self.run_id, self._state, self._seq, last)
        self.taken += 1
        return True

    def _run(self) -> None:
        while not self._stop.wait(self.poll):
            try:
                self.step()
            except Exception:  # a snapshot is an optimisation: never stop the process for one
                log.warning("snapshot of run %s failed; the next one is tried later", self.run_id, exc_info=True)

    def stop(self) -> None:
        """Stop the thread and wait for it."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)
