"""The store: runs and their append-only, gap-free event log.

Every transition of a run gets a global ``seq`` (1, 2, 3, ...). The numbers are handed out
by the database inside the transaction that inserts the rows, from the run's ``next_seq``
counter::

    BEGIN                                            -- BEGIN IMMEDIATE on SQLite
    UPDATE runs SET next_seq = next_seq + n WHERE id = :id RETURNING next_seq
    INSERT INTO events ... (n rows, one executemany)
    COMMIT

The ``UPDATE`` takes the run's row lock on PostgreSQL (SQLite's ``BEGIN IMMEDIATE`` takes
the database write lock), so concurrent writers of one run, in any number of threads or
processes, are serialised from the reservation to the commit. A writer that rolls back
returns its numbers with it, so the sequence never has gaps, and no wall clock is involved.

State at a point is rebuilt by :func:`fold`, a pure function over events in seq order.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from dataclasses import dataclass, fields, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Protocol

import orjson
from sqlalchemy import Text, delete, insert, or_, select, type_coerce, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, Row, make_url
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from svasim.model.transition import INPUT_KIND, Transition
from svasim.store import migrate as _migrate
from svasim.store.closing import Closing
from svasim.store.engine import create_engine, is_sqlite_memory, write_connection
from svasim.store.schema import events as events_table
from svasim.store.schema import runs as runs_table
from svasim.store.schema import snapshots as snapshots_table

#: Entity name -> its fields, as rebuilt by :func:`fold`.
State = dict[str, dict[str, Any]]

# Rows read per round trip when streaming a run's log (state_at).
_STREAM_CHUNK = 2000
# Snapshots a fold holds before it writes them (each is a copy of the whole state).
_SNAPSHOTS_HELD = 4


class UnknownRunError(KeyError):
    """No run has the given id (or name)."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; show the message as written.
        return str(self.args[0]) if self.args else ""


class RunExistsError(ValueError):
    """A run with that name already exists."""


class SchemaNotCurrentError(RuntimeError):
    """The database is not at the schema revision this code needs."""


class StoreNotFoundError(RuntimeError):
    """No store at the URL: the database does not exist or was never migrated."""


#: The largest seq the store can hold: seqs are signed 64-bit BIGINT columns.
SEQ_MAX = 2**63 - 1


class SeqOutOfRangeError(ValueError):
    """A seq given to a query is outside 0 .. 2**63-1, so no event can have it."""


def check_seq(name: str, value: int) -> int:
    """``value`` if it can be a seq bound (0 .. :data:`SEQ_MAX`), else :class:`SeqOutOfRangeError`.

    The check is here rather than in the driver, which would raise an OverflowError
    that says nothing about which argument was wrong.
    """
    if not 0 <= value <= SEQ_MAX:
        raise SeqOutOfRangeError(f"{name} is {value}; a seq is between 0 and {SEQ_MAX} (2**63-1)")
    return value


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events of a run a query reads: ``after_seq < seq <= until_seq``, and names.

    ``entity``, ``kind`` and ``service`` match exact values; ``entity_prefix`` and
    ``kind_prefix`` match case-sensitive name prefixes. None (or an empty prefix) matches
    everything. Seqs outside 0 .. 2**63-1 raise :class:`SeqOutOfRangeError`.
    """

    after_seq: int = 0
    until_seq: int | None = None
    entity: str | None = None
    entity_prefix: str | None = None
    kind: str | None = None
    kind_prefix: str | None = None
    service: str | None = None

    def __post_init__(self) -> None:
        check_seq("after_seq", self.after_seq)
        if self.until_seq is not None:
            check_seq("until_seq", self.until_seq)

    def but(self, **changes: Any) -> EventFilter:
        """A copy with ``changes`` (EventFilter fields; an unknown name is a TypeError)."""
        return replace(self, **changes) if changes else self


@dataclass(frozen=True, slots=True)
class RunInfo:
    """A run as stored (a copy; it does not follow later changes)."""

    id: str
    name: str
    created_at: datetime
    config: dict[str, Any]
    policy: str
    seed: int
    version: str
    parent_run_id: str | None
    #: The seq the next appended transition will get.
    next_seq: int

    @property
    def event_count(self) -> int:
        """Number of events recorded.

        Exact without counting rows: seqs are gap-free from 1 and events are only ever
        deleted with their run.
        """
        return self.next_seq - 1


@dataclass(frozen=True, slots=True)
class EventRow:
    """One recorded event (a committed :class:`~svasim.model.transition.Transition`)."""

    run_id: str
    seq: int
    service: str
    entity: str
    kind: str
    before: dict[str, Any] | None
    after: dict[str, Any] | None
    #: The seq of the event that caused this one.
    cause: int | None
    cycles: int
    #: What happened, beyond the entity's new fields (never folded into state).
    detail: dict[str, Any] | None = None

    @property
    def is_input(self) -> bool:
        """Whether this records a client request (replayed as input) rather than a change."""
        return self.kind == INPUT_KIND

    def as_transition(self) -> Transition:
        """The event as the model's :class:`Transition` (committed: seq and cause are ints)."""
        return Transition(**{name: getattr(self, name) for name in _TRANSITION_FIELDS})

    def as_dict(self) -> dict[str, Any]:
        """The event as plain data (no run id): what exports and ``trace show --json`` print."""
        return self.as_transition().as_dict()


class FoldableEvent(Protocol):
    """What :func:`fold` reads from an event (EventRow, Transition and rows all qualify)."""

    @property
    def entity(self) -> str: ...

    @property
    def kind(self) -> str: ...

    @property
    def before(self) -> dict[str, Any] | None: ...

    @property
    def after(self) -> dict[str, Any] | None: ...


def fold(events: Iterable[FoldableEvent], state: State | None = None) -> State:
    """Apply ``events`` (in seq order) to ``state`` and return the resulting state.

    Pure: ``state`` is not modified (its entity dicts are copied, so a snapshot can be
    folded forward many times). Inputs are skipped; an event with ``after`` None and
    ``before`` not None removes its entity; any other event merges ``after`` into its
    entity, creating it if needed. Field values are shared with the events, not copied:
    treat them as read-only. Entities come out sorted by name, so that no insertion order
    leaks into results.
    """
    result: State = {name: dict(fields) for name, fields in state.items()} if state else {}
    for event in events:
        if event.kind == INPUT_KIND:
            continue
        after = event.after
        if after is None and event.before is not None:
            result.pop(event.entity, None)
            continue
        fields = result.get(event.entity)
        if fields is None:
            result[event.entity] = dict(after) if after else {}
        elif after:
            fields.update(after)
    return dict(sorted(result.items()))


#: JSON as the store wrote it before orjson: compact, without the cycle check (transitions
#: are trees). Still the fallback for what orjson refuses (integers beyond 64 bits, lone
#: surrogates), so anything json encoded is still stored, as the same JSON value.
_encode_json_std = json.JSONEncoder(separators=(",", ":"), check_circular=False).encode
_orjson_dumps = orjson.dumps
_ORJSON_OPTIONS = orjson.OPT_NON_STR_KEYS  # int keys become strings, as with json


def _encode_json(value: Any) -> str:
    """``value`` as compact JSON text, the same JSON value as :data:`_encode_json_std`
    gives (orjson leaves non-ASCII characters unescaped, which decodes the same).

    One difference: orjson writes a NaN or infinite float as ``null`` where json writes
    ``NaN`` (not JSON; PostgreSQL refuses it). The model's fields are integers,
    strings and containers of them; no float of theirs is NaN.
    """
    try:
        return _orjson_dumps(value, option=_ORJSON_OPTIONS).decode()
    except TypeError:
        return _encode_json_std(value)


# Stored JSON, decoded by the decoder's own entry point: it skips json.loads' checks for
# surrounding whitespace, which the store never writes.
_raw_decode_json = json.JSONDecoder().raw_decode


def new_run_id() -> str:
    """A fresh run id: 12 lowercase hex characters of a uuid4."""
    return uuid.uuid4().hex[:12]


def _utc(value: datetime) -> datetime:
    # SQLite gives back naive datetimes; PostgreSQL gives them in the session's zone.
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def _run_info(row: Row[Any]) -> RunInfo:
    return RunInfo(
        id=row.id,
        name=row.name,
        created_at=_utc(row.created_at),
        config=row.config,
        policy=row.policy,
        seed=row.seed,
        version=row.version,
        parent_run_id=row.parent_run_id,
        next_seq=row.next_seq,
    )


#: The fields an EventRow shares with the events table, and with a Transition.
_EVENT_ROW_FIELDS = tuple(f.name for f in fields(EventRow))
_TRANSITION_FIELDS = tuple(n for n in _EVENT_ROW_FIELDS if n != "run_id")


#: The columns of an EventRow, in its field order; JSON ones read as their text.
_EVENT_ROW_COLUMNS = tuple(
    type_coerce(events_table.c[name], Text) if name in ("before", "after", "detail") else events_table.c[name]
    for name in _EVENT_ROW_FIELDS
)


def _glob_escape(prefix: str) -> str:
    # In a GLOB pattern only * ? [ are special; a bracket expression makes them literal.
    return prefix.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


class Store(Closing):
    """Access to the runs and events in one database (SQLite or PostgreSQL).

    Thread-safe: every method uses its own connection and transaction. Open it with
    :meth:`open`; close it with :meth:`close` (or use it as a context manager).
    """

    def __init__(self, engine: Engine) -> None:
        """Wrap an engine made by :func:`svasim.store.engine.create_engine`.

        Prefer :meth:`open`, which also migrates the schema.
        """
        self._engine = engine
        self._dialect = engine.dialect.name
        if self._dialect not in ("sqlite", "postgresql"):
            raise ValueError(f"unsupported database {self._dialect!r}: svasim stores runs in SQLite or PostgreSQL")
        # Reserve n seqs of a run: the row lock (the write lock on SQLite) that orders
        # writers, taken by the statement that hands out the numbers.
        mark = "?" if self._dialect == "sqlite" else "%s"
        self._reserve_sql = f"UPDATE runs SET next_seq = next_seq + {mark} WHERE id = {mark} RETURNING next_seq"
        # An in-memory SQLite database is ONE connection shared by all threads; its
        # transactions must not interleave, so they take turns. Elsewhere each call has
        # its own pooled connection and the database does the locking.
        self._serial: AbstractContextManager[Any] = threading.RLock() if is_sqlite_memory(engine.url) else nullcontext()
        #: Work counters (events folded to rebuild states), for benchmarks and tests.
        self.stats: Counter[str] = Counter()
        # Connections the append path keeps between transactions (see _take_writer).
        self._writers: list[Any] = []
        self._writers_lock = threading.Lock()
        self._closed = False

    @classmethod
    def open(cls, url: str | URL, *, migrate: bool = True, create: bool = True) -> Store:
        """Open the store at ``url``, migrating its schema to head unless ``migrate`` is False.

        With ``migrate=False`` the database must already be at head
        (:class:`SchemaNotCurrentError` otherwise). With ``create=False`` it must already
        be a store: a SQLite file that does not exist, or a database that was never
        migrated, is :class:`StoreNotFoundError`, and nothing is created.
        """
        u = make_url(url)
        shown = u.render_as_string(hide_password=True)
        if not create and u.get_backend_name() == "sqlite":
            # Connecting would create the file; look first.
            if is_sqlite_memory(u) or not Path(u.database or "").is_file():
                raise StoreNotFoundError(f"no store at {shown}: no such database file")
        engine = create_engine(u)
        try:
            if _migrate.is_current(engine):
                return cls(engine)  # the common case, at no cost of Alembic
            if not create and _migrate.current_revision(engine) is None:
                raise StoreNotFoundError(f"no store at {shown}: the database has no svasim schema")
            if migrate:
                _migrate.upgrade(engine)
            else:
                current, head = _migrate.current_revision(engine), _migrate.head_revision()
                if current != head:
                    raise SchemaNotCurrentError(
                        f"database {shown} is at "
                        f"schema revision {current!r}, this code needs {head!r}; "
                        "open it with migrate=True or run svasim.store.migrate.upgrade()"
                    )
        except BaseException:
            engine.dispose()
            raise
        return cls(engine)

    @property
    def engine(self) -> Engine:
        """The SQLAlchemy engine (for tests and tools; writes should go through the store)."""
        return self._engine

    @property
    def url(self) -> URL:
        """The database URL."""
        return self._engine.url

    def close(self) -> None:
        """Close the pooled connections. Idempotent."""
        with self._writers_lock:
            self._closed = True
            kept, self._writers = self._writers, []
        for raw in kept:
            raw.close()
        self._engine.dispose()

    # -- connections -----------------------------------------------------------------

    @contextmanager
    def _write(self) -> Iterator[Connection]:
        """A transaction that may write: BEGIN IMMEDIATE on SQLite, committed on success."""
        with self._serial, write_connection(self._engine) as conn, conn.begin():
            yield conn

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        with self._serial, self._engine.connect() as conn:
            yield conn

    def _insert(self) -> Any:
        # INSERT ... ON CONFLICT is dialect-specific syntax in SQLAlchemy.
        if self._dialect == "postgresql":
            return postgresql.insert(runs_table)
        if self._dialect == "sqlite":
            return sqlite.insert(runs_table)
        raise ValueError(f"unsupported database {self._dialect!r}: svasim stores runs in SQLite or PostgreSQL")

    # -- runs ------------------------------------------------------------------------

    @staticmethod
    def _run_values(name: str | None, settings: dict[str, Any]) -> dict[str, Any]:
        """The row of a new run: a fresh id, ``name`` (default ``run-<id>``), ``settings``
        (config, policy, seed, version, parent_run_id) and an empty log."""
        run_id = new_run_id()
        return {
            "id": run_id,
            "name": name if name is not None else f"run-{run_id}",
            "created_at": datetime.now(UTC),
            **settings,
            "next_seq": 1,
        }

    def _check_parent(self, conn: Connection, parent_run_id: str | None) -> None:
        if parent_run_id is None:
            return
        found = conn.execute(select(runs_table.c.id).where(runs_table.c.id == parent_run_id))
        if found.first() is None:
            raise UnknownRunError(f"parent run {parent_run_id!r} does not exist")

    def create_run(
        self,
        *,
        name: str | None,
        config: dict[str, Any],
        policy: str,
        seed: int,
        version: str,
        parent_run_id: str | None = None,
    ) -> RunInfo:
        """Create a run; ``name`` defaults to ``run-<id>``.

        Raises :class:`RunExistsError` if the name is taken and :class:`UnknownRunError`
        if ``parent_run_id`` does not exist.
        """
        settings = {
            "config": config,
            "policy": policy,
            "seed": seed,
            "version": version,
            "parent_run_id": parent_run_id,
        }
        for _ in range(3):  # a retry only on the (2**-48) chance of an id collision
            values = self._run_values(name, settings)
            try:
                with self._write() as conn:
                    self._check_parent(conn, parent_run_id)
                    if name is not None:
                        taken = conn.execute(select(runs_table.c.id).where(runs_table.c.name == name)).first()
                        if taken is not None:
                            raise RunExistsError(f"a run named {name!r} already exists (id {taken.id})")
                    conn.execute(insert(runs_table).values(values))
            except IntegrityError:
                # Lost a race for the name against another process (the check above saw
                # nothing), or an id collision: look again.
                if name is not None and self._find_run(name, by_name_only=True) is not None:
                    raise RunExistsError(f"a run named {name!r} already exists") from None
                continue
            return self.get_run(values["id"])
        raise RuntimeError("could not allocate a unique run id")  # pragma: no cover

    def get_or_create_run(
        self,
        name: str,
        *,
        config: dict[str, Any],
        policy: str,
        seed: int,
        version: str,
        parent_run_id: str | None = None,
    ) -> RunInfo:
        """The run named ``name``, created with these settings if it does not exist.

        Safe when several processes race: the row is inserted with ``INSERT ... ON
        CONFLICT DO NOTHING`` and then read back, so all of them get the same run. When
        the run exists, the other arguments are ignored (they are not compared).
        """
        settings = {
            "config": config,
            "policy": policy,
            "seed": seed,
            "version": version,
            "parent_run_id": parent_run_id,
        }
        for _ in range(3):
            values = self._run_values(name, settings)
            with self._write() as conn:
                self._check_parent(conn, parent_run_id)
                # Under READ COMMITTED (PostgreSQL) the INSERT waits for a concurrent
                # inserter of the same name to commit, and the SELECT, a new statement,
                # then sees its row. SQLite's write lock serialises the two outright.
                conn.execute(self._insert().values(values).on_conflict_do_nothing())
                row = conn.execute(select(runs_table).where(runs_table.c.name == name)).first()
            if row is not None:
                return _run_info(row)
            # Nothing inserted and no such name: the random id collided. Try another.
        raise RuntimeError("could not allocate a unique run id")  # pragma: no cover

    def _find_run(self, id_or_name: str, *, by_name_only: bool = False) -> RunInfo | None:
        cond: ColumnElement[bool] = runs_table.c.name == id_or_name
        if not by_name_only:
            cond = or_(runs_table.c.id == id_or_name, cond)
        with self._read() as conn:
            rows = conn.execute(select(runs_table).where(cond)).all()
        if not rows:
            return None
        # A name may look like another run's id; the id wins.
        return _run_info(min(rows, key=lambda r: r.id != id_or_name))

    def get_run(self, id_or_name: str) -> RunInfo:
        """The run with this id, or else with this name (:class:`UnknownRunError` if none)."""
        run = self._find_run(id_or_name)
        if run is None:
            raise UnknownRunError(f"no run with id or name {id_or_name!r}")
        return run

    def list_runs(self) -> list[RunInfo]:
        """All runs, newest first, each with its :attr:`RunInfo.event_count`."""
        with self._read() as conn:
            rows = conn.execute(select(runs_table).order_by(runs_table.c.created_at.desc(), runs_table.c.id)).all()
        return [_run_info(r) for r in rows]

    def delete_run(self, run_id: str) -> None:
        """Delete a run and all its events (:class:`UnknownRunError` if there is none).

        Runs replaying it keep existing, with ``parent_run_id`` set to NULL.
        """
        with self._write() as conn:
            # The foreign key (SQLite) or its trigger (PostgreSQL, migration 0004) cascades
            # too; deleting explicitly keeps this correct on a SQLite connection opened
            # without PRAGMA foreign_keys.
            conn.execute(delete(events_table).where(events_table.c.run_id == run_id))
            conn.execute(update(runs_table).where(runs_table.c.parent_run_id == run_id).values(parent_run_id=None))
            result = conn.execute(delete(runs_table).where(runs_table.c.id == run_id))
            if result.rowcount == 0:
                raise UnknownRunError(f"no run with id {run_id!r}")

    # -- the write path --------------------------------------------------------------

    def append(
        self,
        run_id: str,
        transitions: Sequence[Transition],
        *,
        origin: str | None = None,
        retry: bool = True,
    ) -> None:
        """Record ``transitions`` at the end of the run's log, in list order, atomically.

        One transaction reserves ``len(transitions)`` consecutive seqs, resolves causes
        (a :class:`Transition` in this batch or already committed, or an int seq), inserts
        all rows in one statement (executemany on SQLite, COPY on PostgreSQL) and commits.
        Only then does every transition get its ``seq``: if anything fails, none has one
        and the run's counter is unchanged.

        With ``origin`` (a writer's id) every transition must carry its ``origin_seq``;
        the append is then idempotent: transitions this writer already committed (an
        earlier attempt whose commit went through but whose answer was lost) are not
        written again, they only get their seqs back. They must lead the batch. A writer
        that knows this is its first attempt passes ``retry=False`` to skip that lookup
        (the unique index on the origin still refuses a duplicate).

        Raises :class:`UnknownRunError` for an unknown run and :class:`ValueError` for a
        transition already committed or given twice, a cause that is pending but not in
        this batch, or a cause not ordered before its effect.
        """
        if origin is not None and any(t.origin_seq is None for t in transitions):
            raise ValueError("an append with an origin needs origin_seq on every transition")
        if origin is not None and retry and transitions:
            transitions = self._skip_committed(run_id, transitions, origin)
        n = len(transitions)
        if n == 0:
            return
        position = {id(t): i for i, t in enumerate(transitions)}
        if len(position) != n:
            raise ValueError("the same Transition object appears twice in one append")

        # Resolve what does not depend on the reserved seqs before taking any lock, so the
        # transaction (and the lock it holds) lasts no longer than the writes themselves.
        # Causes are either absolute seqs or indexes into this batch (kept apart by sign:
        # an index i is stored as -1 - i).
        causes: list[int | None] = []
        for i, t in enumerate(transitions):
            if t.seq is not None:
                raise ValueError(f"transition {i} ({t.kind} {t.entity}) is already at seq {t.seq}")
            cause = t.cause
            if cause is None or isinstance(cause, int):
                if cause is not None and cause < 1:
                    raise ValueError(f"transition {i} has cause seq {cause}; seqs start at 1")
                causes.append(cause)
            else:
                j = position.get(id(cause))
                if j is not None:
                    if j >= i:
                        raise ValueError(
                            f"transition {i} ({t.kind} {t.entity}) comes before its cause "
                            f"(transition {j} of the same batch)"
                        )
                    causes.append(-1 - j)
                elif cause.seq is not None:
                    causes.append(cause.seq)
                else:
                    raise ValueError(
                        f"transition {i} ({t.kind} {t.entity}) is caused by "
                        f"{cause.kind} {cause.entity}, which is neither committed nor in "
                        "this batch; append the cause first"
                    )
        if self._dialect == "sqlite":
            first = self._insert_rows(run_id, transitions, causes, origin)
        else:
            first = self._copy_rows(run_id, transitions, causes, origin)
        # Committed (the with-block exited without an exception): now, and only now, the
        # seqs are real.
        for i, t in enumerate(transitions):
            t.seq = first + i

    def _reserve(self, cursor: Any, run_id: str, n: int) -> int:
        """Reserve ``n`` seqs of the run (taking its row lock); the first of them."""
        cursor.execute(self._reserve_sql, (n, run_id))
        reserved = cursor.fetchone()
        if reserved is None:
            raise UnknownRunError(f"no run with id {run_id!r}")
        return int(reserved[0]) - n

    @staticmethod
    def _cause_seq(i: int, seq: int, first: int, cause_ref: int) -> int:
        """The seq of a cause resolved by :meth:`append`, checked to come before ``seq``."""
        cause_seq = first - 1 - cause_ref if cause_ref < 0 else cause_ref
        if cause_seq >= seq:
            raise ValueError(f"transition {i} at seq {seq} names cause seq {cause_seq}, which is not before it")
        return cause_seq

    def _insert_rows(
        self, run_id: str, transitions: Sequence[Transition], causes: list[int | None], origin: str | None
    ) -> int:
        """SQLite: one executemany of rows built before the write lock is taken (the insert
        runs in this process, so nothing overlaps it). Returns the first seq."""
        # Rows are built once, as the driver takes them (JSON already encoded, None as SQL
        # NULL): per-row parameter processing in SQLAlchemy costs more than the insert.
        # Columns in the order of _EVENT_COLUMNS; seq and cause are filled in below.
        enc = _encode_json
        rows = [
            [
                run_id,
                0,
                t.service,
                t.entity,
                t.kind,
                None if t.before is None else enc(t.before),
                None if t.after is None else enc(t.after),
                None,
                t.cycles,
                None if t.detail is None else enc(t.detail),
                origin if i == 0 else None,  # the head names the writer (see _skip_committed)
                t.origin_seq,
            ]
            for i, t in enumerate(transitions)
        ]
        with self._raw_write() as cursor:
            first = seq = self._reserve(cursor, run_id, len(rows))
            for i, (row, cause_ref) in enumerate(zip(rows, causes, strict=True)):
                row[1] = seq
                if cause_ref is not None:
                    row[7] = self._cause_seq(i, seq, first, cause_ref)
                seq += 1
            cursor.executemany(self._INSERT_SQL, rows)
        return first

    def _copy_rows(
        self, run_id: str, transitions: Sequence[Transition], causes: list[int | None], origin: str | None
    ) -> int:
        """PostgreSQL: one COPY, each row encoded as it is streamed. The server parses and
        indexes the rows already sent while the next ones are encoded here, so the
        encoding costs the transaction nothing when the server is the slower of the two
        (as it is: it writes three index entries per row). Returns the first seq."""
        enc = _encode_json
        with self._raw_write() as cursor:
            first = seq = self._reserve(cursor, run_id, len(transitions))
            # COPY streams the rows in one statement: no per-row statement or binding.
            with cursor.copy(self._COPY_SQL) as copy:
                write_row = copy.write_row
                for i, (t, cause_ref) in enumerate(zip(transitions, causes, strict=True)):
                    before, after, detail = t.before, t.after, t.detail
                    write_row(
                        (
                            run_id,
                            seq,
                            t.service,
                            t.entity,
                            t.kind,
                            None if before is None else enc(before),
                            None if after is None else enc(after),
                            None if cause_ref is None else self._cause_seq(i, seq, first, cause_ref),
                            t.cycles,
                            None if detail is None else enc(detail),
                            origin if i == 0 else None,  # the head names the writer
                            t.origin_seq,
                        )
                    )
                    seq += 1
        return first

    @contextmanager
    def _raw_write(self) -> Iterator[Any]:
        """A write transaction on the driver's own connection, committed on success.

        The append path: one reservation and one bulk insert need none of SQLAlchemy's
        statement handling, whose per-transaction cost is larger than theirs on a unary
        request. ``BEGIN IMMEDIATE`` on SQLite as in :meth:`_write`; psycopg opens the
        transaction itself. The driver's errors are raised as SQLAlchemy's, like those of
        every other write, and a connection the database dropped leaves the pool.
        """
        dbapi_error = self._engine.dialect.loaded_dbapi.Error
        with self._serial:
            raw = self._take_writer()
            cursor = None
            kept = False
            try:
                cursor = raw.cursor()
                if self._dialect == "sqlite":
                    cursor.execute("BEGIN IMMEDIATE")
                yield cursor
                raw.commit()
                kept = True
            except BaseException as e:
                try:
                    raw.rollback()
                except dbapi_error:
                    pass  # the connection is gone; invalidated below
                if isinstance(e, dbapi_error):
                    dropped = self._engine.dialect.is_disconnect(e, raw.dbapi_connection, cursor)
                    if dropped:
                        raw.invalidate(e)
                    raise DBAPIError.instance(
                        None, None, e, dbapi_error, connection_invalidated=dropped, dialect=self._engine.dialect
                    ) from e
                raise
            finally:
                if cursor is not None:
                    try:
                        cursor.close()
                    except dbapi_error:
                        kept = False
                self._give_back_writer(raw, kept)

    #: Pooled connections the append path keeps checked out between its transactions.
    _WRITERS_KEPT = 4

    def _take_writer(self) -> Any:
        """A pooled DBAPI connection for an append: one kept from an earlier append, else
        a new checkout. Kept ones skip the pool's checkout and its reset on return (a
        rollback), about 50 us of a small transaction on SQLite (cProfile, 13-row appends)."""
        with self._writers_lock:
            if self._writers:
                return self._writers.pop()
        return self._engine.raw_connection()

    def _give_back_writer(self, raw: Any, reusable: bool) -> None:
        """Keep ``raw`` for the next append when it ended cleanly (committed, no
        transaction open), else return it to the pool, which resets or discards it."""
        if reusable:
            with self._writers_lock:
                if not self._closed and len(self._writers) < self._WRITERS_KEPT:
                    self._writers.append(raw)
                    return
        raw.close()

    _EVENT_COLUMNS = (
        "run_id",
        "seq",
        "service",
        "entity",
        "kind",
        "before",
        "after",
        "cause",
        "cycles",
        "detail",
        "origin",
        "origin_seq",
    )
    _INSERT_SQL = f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}) VALUES ({', '.join('?' * len(_EVENT_COLUMNS))})"
    _COPY_SQL = f"COPY events ({', '.join(_EVENT_COLUMNS)}) FROM STDIN"

    def _skip_committed(self, run_id: str, transitions: Sequence[Transition], origin: str) -> Sequence[Transition]:
        """A retried append: give back their seqs to the transitions an earlier attempt
        committed (they lead the batch) and return the rest, still to be written.

        Only the first row of an append (its head) names the writer in ``origin``; every
        row keeps its ``origin_seq``. So the unique index on the origin holds one entry
        per transaction, not one per row (about 1.4 us of each row's insert on
        PostgreSQL). A committed transaction is found by its head, and its other rows are
        the ones that follow the head in seq order with no origin and the next
        origin_seqs: a transaction's seqs are consecutive, every writer's transaction
        starts with a head, and one written without an origin has no origin_seq.
        """
        c = events_table.c
        lo, hi = transitions[0].origin_seq, transitions[-1].origin_seq
        assert lo is not None and hi is not None  # checked by append
        done: dict[int, int] = {}
        with self._read() as conn:
            heads = conn.execute(
                select(c.origin_seq, c.seq).where(c.run_id == run_id, c.origin == origin, c.origin_seq.between(lo, hi))
            ).all()
            for head_oseq, head_seq in heads:
                done[int(head_oseq)] = int(head_seq)
                rest = conn.execute(
                    select(c.seq, c.origin, c.origin_seq)
                    .where(c.run_id == run_id, c.seq > head_seq, c.seq <= head_seq + (hi - head_oseq))
                    .order_by(c.seq)
                ).all()
                for k, (seq, row_origin, oseq) in enumerate(rest, start=1):
                    if row_origin is not None or oseq != head_oseq + k or seq != head_seq + k:
                        break
                    done[int(oseq)] = int(seq)
        head = transitions[: len(done)]
        if any(t.origin_seq not in done for t in head):
            raise ValueError(f"origin {origin}: the committed part of a retried append is not its head")
        for t in head:
            t.seq = done[t.origin_seq]  # type: ignore[index]  # committed long ago: real seqs
        return transitions[len(done) :]

    # -- reading ---------------------------------------------------------------------

    def _filters(self, run_id: str, where: EventFilter) -> list[ColumnElement[bool]]:
        c = events_table.c
        conds: list[ColumnElement[bool]] = [c.run_id == run_id]
        if where.after_seq:
            conds.append(c.seq > where.after_seq)
        if where.until_seq is not None:
            conds.append(c.seq <= where.until_seq)
        if where.entity is not None:
            conds.append(c.entity == where.entity)
        if where.entity_prefix:
            conds.append(self._startswith(c.entity, where.entity_prefix))
        if where.kind is not None:
            conds.append(c.kind == where.kind)
        if where.kind_prefix:
            conds.append(self._startswith(c.kind, where.kind_prefix))
        if where.service is not None:
            conds.append(c.service == where.service)
        return conds

    def _startswith(self, column: Any, prefix: str) -> ColumnElement[bool]:
        if self._dialect == "sqlite":
            # SQLite's LIKE ignores ASCII case ("CPU/" would match "cpu/3"); GLOB does not.
            return column.op("GLOB")(_glob_escape(prefix) + "*")
        return column.startswith(prefix, autoescape=True)

    def events(
        self, run_id: str, where: EventFilter | None = None, /, *, limit: int | None = 1000, **criteria: Any
    ) -> list[EventRow]:
        """Events of a run in seq order that pass ``where``, with ``criteria`` (keyword
        fields of :class:`EventFilter`) applied on top.

        ``limit`` caps the number returned (None: no cap). Page through a long log by
        passing the last seq seen as ``after_seq``. Raises :class:`SeqOutOfRangeError`
        for a seq bound no event can have.
        """
        where = (where or EventFilter()).but(**criteria)
        query = select(*_EVENT_ROW_COLUMNS).where(*self._filters(run_id, where)).order_by(events_table.c.seq)
        if limit is not None:
            query = query.limit(limit)
        decode = _raw_decode_json
        out: list[EventRow] = []
        with self._read() as conn:
            # JSON columns come as text (SQLite) and are decoded here, once, without the
            # JSON type's per-value processing; PostgreSQL's driver hands them decoded.
            for run, seq, service, entity, kind, before, after, cause, cycles, detail in conn.execute(query):
                out.append(
                    EventRow(
                        run,
                        seq,
                        service,
                        entity,
                        kind,
                        decode(before)[0] if type(before) is str else before,
                        decode(after)[0] if type(after) is str else after,
                        cause,
                        cycles,
                        decode(detail)[0] if type(detail) is str else detail,
                    )
                )
        return out

    def last_seq(self, run_id: str) -> int:
        """The seq of the run's last event (0 for a run without events); by id only.

        Raises :class:`UnknownRunError`.
        """
        with self._read() as conn:
            return self._last_seq(conn, run_id)

    @staticmethod
    def _last_seq(conn: Connection, run_id: str) -> int:
        next_seq = conn.execute(select(runs_table.c.next_seq).where(runs_table.c.id == run_id)).scalar_one_or_none()
        if next_seq is None:
            raise UnknownRunError(f"no run with id {run_id!r}")
        return int(next_seq) - 1

    def follow(
        self,
        run_id: str,
        where: EventFilter | None = None,
        /,
        *,
        poll: float = 0.05,
        limit: int = 1000,
        active: Callable[[], bool] = lambda: True,
        **criteria: Any,
    ) -> Iterator[list[EventRow]]:
        """Events of a live run that pass ``where`` and ``criteria`` (as for :meth:`events`),
        in batches, as they are committed.

        An empty batch means a poll found nothing new (the caller may stop then); the
        generator ends when ``active()`` turns false. The end of the log is read before
        each query, so a filtered follower skips the range it scanned without skipping
        what was committed meanwhile. ``until_seq`` is ignored: a follower has no end.
        """
        where = (where or EventFilter()).but(**criteria)
        after = where.after_seq
        while active():
            last = self.last_seq(run_id)
            rows = self.events(run_id, where.but(after_seq=after, until_seq=last), limit=limit)
            after = rows[-1].seq if len(rows) == limit else last
            yield rows
            if not rows:
                time.sleep(poll)

    #: A snapshot is kept every this many events when a state is rebuilt past it.
    snapshot_every = 10_000

    def state_at(
        self, run_id: str, seq: int | None = None, *, progress: Callable[[int, int], None] | None = None
    ) -> State:
        """The fabric state after event ``seq`` (None: after the last), entities sorted.

        Starts from the latest snapshot at or before ``seq`` and folds only the events
        after it (streamed in chunks). Folding past a multiple of ``snapshot_every``
        stores a snapshot there, so a later request for a late point is fast; snapshots
        never go stale because the log is append-only. ``progress(folded, total)`` is
        called as chunks are read. A ``seq`` past the end is the end; raises
        :class:`UnknownRunError` and :class:`SeqOutOfRangeError`.
        """
        if seq is not None:
            check_seq("seq", seq)
        sc = snapshots_table.c
        with self._read() as conn:
            last = self._last_seq(conn, run_id)
            until = last if seq is None else min(seq, last)
            snap = conn.execute(
                select(sc.seq, sc.state).where(sc.run_id == run_id, sc.seq <= until).order_by(sc.seq.desc()).limit(1)
            ).first()
            start, state = (int(snap[0]), dict(snap[1])) if snap is not None else (0, {})
            state = {name: dict(f) for name, f in state.items()}
            new_snapshots = self._fold_range(conn, run_id, start, until, state, progress)
        if new_snapshots:
            self._save_snapshots(run_id, new_snapshots)
        self.stats["events_folded"] += until - start
        return dict(sorted(state.items()))

    def fold_forward(self, run_id: str, state: State, after_seq: int, until_seq: int | None = None) -> int:
        """Fold the events ``after_seq < seq <= until_seq`` (None: to the end) into ``state``,
        in place, and return the seq it now stands at.

        ``state`` must be the state after ``after_seq`` (from :meth:`state_at`, or an
        earlier call); it is left unsorted. Snapshots due on the way are stored, as
        :meth:`state_at` does. For a reader that follows a run and keeps its state in
        memory (:class:`svasim.store.snapshots.Snapshotter`): each event is read once, and
        no snapshot is decoded. Raises :class:`UnknownRunError` and :class:`SeqOutOfRangeError`.
        """
        check_seq("after_seq", after_seq)
        if until_seq is not None:
            check_seq("until_seq", until_seq)
        with self._read() as conn:
            last = self._last_seq(conn, run_id)
            until = last if until_seq is None else min(until_seq, last)
            if until <= after_seq:
                return after_seq
            new_snapshots = self._fold_range(conn, run_id, after_seq, until, state, None)
        if new_snapshots:
            self._save_snapshots(run_id, new_snapshots)
        self.stats["events_folded"] += until - after_seq
        return until

    def _fold_range(
        self,
        conn: Connection,
        run_id: str,
        start: int,
        until: int,
        state: State,
        progress: Callable[[int, int], None] | None,
    ) -> list[tuple[int, State]]:
        """Fold the events ``start < seq <= until`` into ``state`` in place, as :func:`fold`
        does; return the snapshots to keep (at multiples of ``snapshot_every``).

        The hot loop of a late state: the driver's own cursor, streamed, reading only what
        a fold needs (``before`` only as "is it NULL"), each ``after`` decoded once and
        nothing else converted. PostgreSQL's driver hands JSON back decoded.
        """
        if self._dialect == "sqlite":
            cursor = conn.connection.cursor()
            mark = "?"
        else:
            # A server-side cursor, so a long run is not read into memory at once.
            cursor = conn.connection.driver_connection.cursor(name=f"svasim_fold_{uuid.uuid4().hex[:8]}")  # type: ignore[union-attr]
            cursor.itersize = _STREAM_CHUNK
            mark = "%s"
        every = self.snapshot_every
        snapshots: list[tuple[int, State]] = []
        # One shared connection (a database in memory) cannot write while it reads.
        midway = not is_sqlite_memory(self._engine.url)
        decode = _raw_decode_json
        try:
            cursor.execute(
                "SELECT seq, entity, kind, before IS NULL, after FROM events"
                f" WHERE run_id = {mark} AND seq > {mark} AND seq <= {mark} ORDER BY seq",
                (run_id, start, until),
            )
            while rows := cursor.fetchmany(_STREAM_CHUNK):
                for seq, entity, kind, no_before, after in rows:
                    if kind != INPUT_KIND:
                        if after is None:
                            if no_before:
                                if entity not in state:
                                    state[entity] = {}
                            else:
                                state.pop(entity, None)
                        else:
                            if type(after) is str:
                                after = decode(after)[0]
                            entry = state.get(entity)
                            if entry is None:
                                state[entity] = dict(after)
                            else:
                                entry.update(after)
                    if seq % every == 0:
                        # A copy: the fold goes on changing ``state``.
                        snapshots.append((seq, {name: dict(f) for name, f in sorted(state.items())}))
                        if len(snapshots) >= _SNAPSHOTS_HELD and midway:
                            # Written as the fold goes, so a long fold holds a few states,
                            # not one per snapshot_every events of the run.
                            self._save_snapshots(run_id, snapshots)
                            snapshots = []
                if progress is not None:
                    progress(rows[-1][0] - start, until - start)
        finally:
            cursor.close()
        return snapshots

    def latest_snapshot_seq(self, run_id: str, seq: int | None = None) -> int:
        """The seq of the latest snapshot at or before ``seq`` (None: any); 0 for none."""
        sc = snapshots_table.c
        query = select(sc.seq).where(sc.run_id == run_id)
        if seq is not None:
            query = query.where(sc.seq <= seq)
        with self._read() as conn:
            found = conn.execute(query.order_by(sc.seq.desc()).limit(1)).scalar_one_or_none()
        return int(found) if found is not None else 0

    def fold_events_for_test(self, run_id: str, seq: int) -> State:
        """The state after ``seq`` folded from the first event, ignoring snapshots (a
        reference for tests and benchmarks)."""
        return fold(self.events(run_id, until_seq=seq, limit=None))

    def _save_snapshots(self, run_id: str, snaps: list[tuple[int, State]]) -> None:
        """Store snapshots; one already there (another reader was first) is fine."""
        try:
            with self._write() as conn:
                existing = set(
                    conn.execute(
                        select(snapshots_table.c.seq).where(
                            snapshots_table.c.run_id == run_id, snapshots_table.c.seq.in_([q for q, _ in snaps])
                        )
                    ).scalars()
                )
                rows = [{"run_id": run_id, "seq": q, "state": st} for q, st in snaps if q not in existing]
                if rows:
                    conn.execute(insert(snapshots_table), rows)
        except IntegrityError:
            pass  # a concurrent reader stored the same snapshot first
