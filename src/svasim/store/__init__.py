"""The store layer: runs and their gap-free event log (SQLite or PostgreSQL).

- :class:`Store`: runs, the transactional write path (:meth:`Store.append`), queries and
  state at any event (:func:`fold`).
- :class:`Recorder`: what services use to record transitions: buffered, group-committed,
  ordered, with an optional wait for durability.
- :mod:`svasim.store.migrate`: the schema, created and upgraded only by the Alembic
  migrations in ``svasim_migrations``.
"""

from svasim.store.migrate import current_revision, head_revision, upgrade
from svasim.store.recorder import (
    Durability,
    Recorder,
    RecorderError,
    RecorderStats,
    RecorderTimeoutError,
)
from svasim.store.store import (
    SEQ_MAX,
    EventFilter,
    EventRow,
    RunExistsError,
    RunInfo,
    SchemaNotCurrentError,
    SeqOutOfRangeError,
    State,
    Store,
    StoreNotFoundError,
    UnknownRunError,
    fold,
    new_run_id,
)

__all__ = [
    "SEQ_MAX",
    "Durability",
    "EventFilter",
    "EventRow",
    "Recorder",
    "RecorderError",
    "RecorderStats",
    "RecorderTimeoutError",
    "RunExistsError",
    "RunInfo",
    "SchemaNotCurrentError",
    "SeqOutOfRangeError",
    "State",
    "Store",
    "StoreNotFoundError",
    "UnknownRunError",
    "current_revision",
    "fold",
    "head_revision",
    "new_run_id",
    "upgrade",
]
