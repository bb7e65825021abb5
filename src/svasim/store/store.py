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
from dataclasses import dataclass
from datetime import UTC, datetime
from types import TracebackType
from typing import Any, Protocol, Self

from sqlalchemy import bindparam, delete, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, Engine, Row
from sqlalchemy.exc import IntegrityError
from sqlalchemy.sql.elements import ColumnElement

from svasim.model.transition import INPUT_KIND, Transition
from svasim.store import migrate as _migrate
from svasim.store.engine import create_engine, is_sqlite_memory, write_connection
from svasim.store.schema import events as events_table
from svasim.store.schema import runs as runs_table
from svasim.store.schema import snapshots as snapshots_table

#: Entity name -> its fields, as rebuilt by :func:`fold`.
State = dict[str, dict[str, Any]]

# Rows read per round trip when streaming a run's log (state_at).
_STREAM_CHUNK = 2000


class UnknownRunError(KeyError):
    """No run has the given id (or name)."""

    def __str__(self) -> str:
        # KeyError's str() is the repr of its argument; show the message as written.
        return str(self.args[0]) if self.args else ""


class RunExistsError(ValueError):
    """A run with that name already exists."""


class SchemaNotCurrentError(RuntimeError):
    """The database is not at the schema revision this code needs."""


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

    def as_dict(self) -> dict[str, Any]:
        """The event as plain data (no run id): what exports and ``trace show --json`` print."""
        return {
            "seq": self.seq,
            "service": self.service,
            "entity": self.entity,
            "kind": self.kind,
            "before": self.before,
            "after": self.after,
            "cause": self.cause,
            "cycles": self.cycles,
            "detail": self.detail,
        }


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


#: Reserve n seqs of a run: built once (statement construction is not free on the
#: request path), bound per append.
_RESERVE = (
    update(runs_table)
    .where(runs_table.c.id == bindparam("rid"))
    .values(next_seq=runs_table.c.next_seq + bindparam("n"))
    .returning(runs_table.c.next_seq)
)


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


def _event_row(row: Row[Any]) -> EventRow:
    return EventRow(
        run_id=row.run_id,
        seq=row.seq,
        service=row.service,
        entity=row.entity,
        kind=row.kind,
        before=row.before,
        after=row.after,
        cause=row.cause,
        cycles=row.cycles,
        detail=row.detail,
    )


def _glob_escape(prefix: str) -> str:
    # In a GLOB pattern only * ? [ are special; a bracket expression makes them literal.
    return prefix.replace("[", "[[]").replace("*", "[*]").replace("?", "[?]")


class Store:
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
        # An in-memory SQLite database is ONE connection shared by all threads; its
        # transactions must not interleave, so they take turns. Elsewhere each call has
        # its own pooled connection and the database does the locking.
        self._serial: AbstractContextManager[Any] = threading.RLock() if is_sqlite_memory(engine.url) else nullcontext()
        #: Work counters (events folded to rebuild states), for benchmarks and tests.
        self.stats: Counter[str] = Counter()

    @classmethod
    def open(cls, url: str | URL, *, migrate: bool = True) -> Store:
        """Open the store at ``url``, migrating its schema to head unless ``migrate`` is False.

        With ``migrate=False`` the database must already be at head
        (:class:`SchemaNotCurrentError` otherwise).
        """
        engine = create_engine(url)
        try:
            if migrate:
                _migrate.upgrade(engine)
            else:
                current, head = _migrate.current_revision(engine), _migrate.head_revision()
                if current != head:
                    raise SchemaNotCurrentError(
                        f"database {engine.url.render_as_string(hide_password=True)} is at "
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
        self._engine.dispose()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

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

    def _run_values(
        self,
        *,
        run_id: str,
        name: str | None,
        config: dict[str, Any],
        policy: str,
        seed: int,
        version: str,
        parent_run_id: str | None,
    ) -> dict[str, Any]:
        return {
            "id": run_id,
            "name": name if name is not None else f"run-{run_id}",
            "created_at": datetime.now(UTC),
            "config": config,
            "policy": policy,
            "seed": seed,
            "version": version,
            "parent_run_id": parent_run_id,
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
        for _ in range(3):  # a retry only on the (2**-48) chance of an id collision
            values = self._run_values(
                run_id=new_run_id(),
                name=name,
                config=config,
                policy=policy,
                seed=seed,
                version=version,
                parent_run_id=parent_run_id,
            )
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
        for _ in range(3):
            values = self._run_values(
                run_id=new_run_id(),
                name=name,
                config=config,
                policy=policy,
                seed=seed,
                version=version,
                parent_run_id=parent_run_id,
            )
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
        rows.sort(key=lambda r: r.id != id_or_name)
        return _run_info(rows[0])

    def get_run(self, id_or_name: str) -> RunInfo:
        """The run with this id, or else with this name (:class:`UnknownRunError` if none)."""
        run = self._find_run(id_or_name)
        if run is None:
            raise UnknownRunError(f"no run with id or name {id_or_name!r}")
        return run

    def list_runs(self) -> list[RunInfo]:
        """All runs, oldest first, each with its :attr:`RunInfo.event_count`."""
        with self._read() as conn:
            rows = conn.execute(select(runs_table).order_by(runs_table.c.created_at, runs_table.c.id)).all()
        return [_run_info(r) for r in rows]

    def delete_run(self, run_id: str) -> None:
        """Delete a run and all its events (:class:`UnknownRunError` if there is none).

        Runs replaying it keep existing, with ``parent_run_id`` set to NULL.
        """
        with self._write() as conn:
            # The foreign key cascades too; deleting explicitly keeps this correct on a
            # SQLite connection opened without PRAGMA foreign_keys.
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
        all rows in one executemany and commits. Only then does every transition get its
        ``seq``: if anything fails, none has one and the run's counter is unchanged.

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
        rows: list[dict[str, Any]] = []
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
            rows.append(
                {
                    "run_id": run_id,
                    "seq": 0,
                    "service": t.service,
                    "entity": t.entity,
                    "kind": t.kind,
                    "before": t.before,
                    "after": t.after,
                    "cause": None,
                    "cycles": t.cycles,
                    "detail": t.detail,
                    "origin": origin,
                    "origin_seq": t.origin_seq,
                }
            )

        with self._write() as conn:
            next_seq = conn.execute(_RESERVE, {"rid": run_id, "n": n}).scalar_one_or_none()
            if next_seq is None:
                raise UnknownRunError(f"no run with id {run_id!r}")
            first = next_seq - n
            for i, (row, cause_ref) in enumerate(zip(rows, causes, strict=True)):
                seq = first + i
                row["seq"] = seq
                if cause_ref is not None:
                    cause_seq = first - 1 - cause_ref if cause_ref < 0 else cause_ref
                    if cause_seq >= seq:
                        raise ValueError(
                            f"transition {i} at seq {seq} names cause seq {cause_seq}, which is not before it"
                        )
                    row["cause"] = cause_seq
            self._insert_events(conn, rows)
        # Committed (the with-block exited without an exception): now, and only now, the
        # seqs are real.
        for i, t in enumerate(transitions):
            t.seq = first + i

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
    _JSON_COLUMNS = frozenset({"before", "after", "detail"})

    def _insert_events(self, conn: Connection, rows: list[dict[str, Any]]) -> None:
        """The one executemany of an append.

        On SQLite the rows go to the driver directly (JSON serialised here, None as SQL
        NULL, exactly as the JSON column type would): per-row parameter processing in the
        ORM layer costs more than the insert itself on the request path.
        """
        if self._dialect != "sqlite":
            conn.execute(insert(events_table), rows)
            return
        cols = self._EVENT_COLUMNS
        sql = f"INSERT INTO events ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
        dumps = json.dumps
        params = [
            tuple((None if r[c] is None else dumps(r[c])) if c in self._JSON_COLUMNS else r[c] for c in cols)
            for r in rows
        ]
        conn.exec_driver_sql(sql, params)

    def _skip_committed(self, run_id: str, transitions: Sequence[Transition], origin: str) -> Sequence[Transition]:
        """A retried append: give back their seqs to the transitions an earlier attempt
        committed (they lead the batch) and return the rest, still to be written."""
        c = events_table.c
        with self._read() as conn:
            found = conn.execute(
                select(c.origin_seq, c.seq).where(
                    c.run_id == run_id,
                    c.origin == origin,
                    c.origin_seq.between(transitions[0].origin_seq, transitions[-1].origin_seq),
                )
            ).all()
        done = {int(o): int(q) for o, q in found}
        head = transitions[: len(done)]
        if any(t.origin_seq not in done for t in head):
            raise ValueError(f"origin {origin}: the committed part of a retried append is not its head")
        for t in head:
            t.seq = done[t.origin_seq]  # type: ignore[index]  # committed long ago: real seqs
        return transitions[len(done) :]

    # -- reading ---------------------------------------------------------------------

    def _filters(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        until_seq: int | None = None,
        entity: str | None = None,
        entity_prefix: str | None = None,
        kind: str | None = None,
        kind_prefix: str | None = None,
        service: str | None = None,
    ) -> list[ColumnElement[bool]]:
        c = events_table.c
        conds: list[ColumnElement[bool]] = [c.run_id == run_id]
        if after_seq:
            conds.append(c.seq > after_seq)
        if until_seq is not None:
            conds.append(c.seq <= until_seq)
        if entity is not None:
            conds.append(c.entity == entity)
        if entity_prefix:
            conds.append(self._startswith(c.entity, entity_prefix))
        if kind is not None:
            conds.append(c.kind == kind)
        if kind_prefix:
            conds.append(self._startswith(c.kind, kind_prefix))
        if service is not None:
            conds.append(c.service == service)
        return conds

    def _startswith(self, column: Any, prefix: str) -> ColumnElement[bool]:
        if self._dialect == "sqlite":
            # SQLite's LIKE ignores ASCII case ("CPU/" would match "cpu/3"); GLOB does not.
            return column.op("GLOB")(_glob_escape(prefix) + "*")
        return column.startswith(prefix, autoescape=True)

    def events(
        self,
        run_id: str,
        *,
        after_seq: int = 0,
        until_seq: int | None = None,
        entity: str | None = None,
        entity_prefix: str | None = None,
        kind: str | None = None,
        kind_prefix: str | None = None,
        service: str | None = None,
        limit: int | None = 1000,
    ) -> list[EventRow]:
        """Events of a run in seq order, with ``after_seq < seq <= until_seq``.

        The other arguments filter on exact values or (``*_prefix``) case-sensitive name
        prefixes; ``limit`` caps the number returned (None: no cap). Page through a long
        log by passing the last seq seen as ``after_seq``.
        """
        conds = self._filters(
            run_id,
            after_seq=after_seq,
            until_seq=until_seq,
            entity=entity,
            entity_prefix=entity_prefix,
            kind=kind,
            kind_prefix=kind_prefix,
            service=service,
        )
        query = select(events_table).where(*conds).order_by(events_table.c.seq)
        if limit is not None:
            query = query.limit(limit)
        with self._read() as conn:
            return [_event_row(r) for r in conn.execute(query)]

    def follow(
        self,
        run_id: str,
        *,
        after_seq: int,
        kind_prefix: str | None = None,
        entity_prefix: str | None = None,
        poll: float = 0.05,
        limit: int = 1000,
        active: Callable[[], bool] = lambda: True,
    ) -> Iterator[list[EventRow]]:
        """Events of a live run after ``after_seq``, in batches, as they are committed.

        An empty batch means a poll found nothing new (the caller may stop then); the
        generator ends when ``active()`` turns false. The end of the log is read before
        each query, so a filtered follower skips the range it scanned without skipping
        what was committed meanwhile.
        """
        after = after_seq
        while active():
            last = self.get_run(run_id).event_count
            rows = self.events(
                run_id,
                after_seq=after,
                until_seq=last,
                kind_prefix=kind_prefix,
                entity_prefix=entity_prefix,
                limit=limit,
            )
            after = rows[-1].seq if len(rows) == limit else last
            yield rows
            if not rows:
                time.sleep(poll)

    #: A snapshot is kept every this many events when a state is rebuilt past it.
    snapshot_every = 10_000

    def state_at(self, run_id: str, seq: int | None = None) -> State:
        """The fabric state after event ``seq`` (None: after the last), entities sorted.

        Starts from the latest snapshot at or before ``seq`` and folds only the events
        after it (streamed in chunks). Folding past a multiple of ``snapshot_every``
        stores a snapshot there, so a later request for a late point is fast; snapshots
        never go stale because the log is append-only. Raises :class:`UnknownRunError`.
        """
        c = events_table.c
        sc = snapshots_table.c
        with self._read() as conn:
            run = conn.execute(select(runs_table.c.next_seq).where(runs_table.c.id == run_id)).first()
            if run is None:
                raise UnknownRunError(f"no run with id {run_id!r}")
            last = int(run[0]) - 1
            until = last if seq is None else min(seq, last)
            snap = conn.execute(
                select(sc.seq, sc.state).where(sc.run_id == run_id, sc.seq <= until).order_by(sc.seq.desc()).limit(1)
            ).first()
            start, state = (int(snap[0]), dict(snap[1])) if snap is not None else (0, {})
            query = (
                select(c.seq, c.entity, c.kind, c.before, c.after)
                .where(*self._filters(run_id, after_seq=start, until_seq=until))
                .order_by(c.seq)
            )
            rows = conn.execution_options(yield_per=_STREAM_CHUNK).execute(query)
            new_snapshots: list[tuple[int, State]] = []
            every = self.snapshot_every
            chunk: list[Any] = []
            for row in rows:
                chunk.append(row)
                if row.seq % every == 0:
                    state = fold(chunk, state)
                    chunk = []
                    new_snapshots.append((row.seq, state))
            state = fold(chunk, state) if chunk else dict(sorted(state.items()))
        if new_snapshots:
            self._save_snapshots(run_id, new_snapshots)
        self.stats["events_folded"] += until - start
        return state

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
