"""Engine creation for the store: SQLite pragmas and transaction control, PostgreSQL as is.

SQLite needs three things that SQLAlchemy does not do by default:

* pragmas on every new DBAPI connection (WAL so that readers never block the writer,
  ``synchronous=NORMAL`` which is safe with WAL and much cheaper than FULL, foreign keys
  so that ``ON DELETE CASCADE`` works, and a busy timeout so that a second process waits
  for the write lock instead of failing at once);
* explicit ``BEGIN``: Python's ``sqlite3`` (before 3.12's ``autocommit``) only opens a
  transaction before DML, so DDL and SELECTs would run outside it. We switch its own
  transaction handling off and emit ``BEGIN`` ourselves from the engine's ``begin`` event;
* ``BEGIN IMMEDIATE`` for writers that read before they write (the sequence reservation):
  a deferred ``BEGIN`` takes the write lock only at the first write, so two processes
  could both start, and one would fail with "database is locked" at its ``UPDATE``
  instead of waiting. A connection asks for it with the execution option
  :data:`SQLITE_BEGIN_OPTION`; see :func:`write_connection`.

An in-memory SQLite database exists per DBAPI connection, so ``sqlite://`` uses a
:class:`~sqlalchemy.pool.StaticPool` (one connection for every thread); callers must
serialise their transactions on such an engine (:class:`~svasim.store.Store` does).
"""

from __future__ import annotations

import logging
import sqlite3
import time
from typing import Any

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import URL, Connection, Engine, make_url
from sqlalchemy.pool import StaticPool

log = logging.getLogger(__name__)

#: Execution option naming the statement that opens a transaction on SQLite
#: (``"BEGIN"`` when absent).
SQLITE_BEGIN_OPTION = "svasim_sqlite_begin"

#: How long (milliseconds) a SQLite connection waits for another writer's lock.
SQLITE_BUSY_TIMEOUT_MS = 10_000

# Per-connection settings. The busy timeout comes first so that what follows waits for
# locks instead of failing. journal_mode is handled apart (see _ensure_wal).
_PRAGMAS = (
    f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}",
    "PRAGMA foreign_keys=ON",
)
# Safe with WAL: a crash loses nothing committed, power loss at most the last commits.
_FILE_PRAGMAS = ("PRAGMA synchronous=NORMAL",)


def _ensure_wal(cursor: Any) -> None:
    """Put the database file in WAL mode (persistent: usually it already is).

    Switching needs an exclusive lock, and SQLite reports "database is locked" at once,
    without its busy handler, when another process holds one (two processes opening a
    new database together, say); so wait and retry here, up to the busy timeout.
    """
    deadline = time.monotonic() + SQLITE_BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            if cursor.execute("PRAGMA journal_mode").fetchone()[0].lower() == "wal":
                return
            mode = cursor.execute("PRAGMA journal_mode=WAL").fetchone()[0].lower()
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)
            continue
        if mode != "wal":  # e.g. a file system without shared memory: works, slower
            log.warning("SQLite database could not use WAL (journal_mode=%s)", mode)
        return


def is_sqlite_memory(url: str | URL) -> bool:
    """Whether ``url`` names a private in-memory SQLite database (``sqlite://``)."""
    u = make_url(url)
    return u.get_backend_name() == "sqlite" and u.database in (None, "", ":memory:")


def create_engine(url: str | URL, **kwargs: Any) -> Engine:
    """Create an engine for the store at ``url`` (SQLite or PostgreSQL).

    Extra keyword arguments go to :func:`sqlalchemy.create_engine`.
    """
    u = make_url(url)
    if u.get_backend_name() != "sqlite":
        return sa.create_engine(u, **kwargs)

    memory = is_sqlite_memory(u)
    connect_args = dict(kwargs.pop("connect_args", {}))
    # Pooled connections move between threads (one at a time); sqlite3 allows that.
    connect_args.setdefault("check_same_thread", False)
    if memory:
        kwargs.setdefault("poolclass", StaticPool)
    engine = sa.create_engine(u, connect_args=connect_args, **kwargs)

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Take transaction control away from the sqlite3 module (see the module doc).
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        try:
            for pragma in _PRAGMAS:
                cursor.execute(pragma)
            if not memory:  # WAL and synchronous mean nothing for a database in memory
                _ensure_wal(cursor)
                for pragma in _FILE_PRAGMAS:
                    cursor.execute(pragma)
        finally:
            cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Connection) -> None:
        conn.exec_driver_sql(conn.get_execution_options().get(SQLITE_BEGIN_OPTION, "BEGIN"))

    return engine


def write_connection(engine: Engine) -> Connection:
    """A new connection whose transactions take the write lock at ``BEGIN`` on SQLite.

    On PostgreSQL this is a plain connection: there the row lock taken by
    ``UPDATE ... RETURNING`` serialises writers of one run.
    """
    conn = engine.connect()
    if engine.dialect.name == "sqlite":
        conn.execution_options(**{SQLITE_BEGIN_OPTION: "BEGIN IMMEDIATE"})
    return conn
