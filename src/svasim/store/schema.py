"""SQLAlchemy models of the store: ``runs`` and their append-only ``events``.

The tables are declared here for queries and for Alembic's autogenerate comparison; they are
created in a database only by the migrations in ``svasim_migrations`` (``alembic upgrade
head``), never by ``metadata.create_all``, so that a database always carries the revision
it was built to.

The write path uses the Core tables (:data:`runs`, :data:`events`) rather than ORM objects:
a batch of thousands of transitions is one ``executemany``, with no identity map to fill.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    DateTime,
    ForeignKey,
    ForeignKeyConstraint,
    Index,
    MetaData,
    String,
    Table,
    text,
)
from sqlalchemy.dialects.postgresql import JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeEngine

#: Constraint names are part of the schema that migrations must reproduce; a convention
#: makes them deterministic instead of backend-generated, so later migrations can refer
#: to (and drop) them by name on both SQLite and PostgreSQL.
NAMING_CONVENTION: dict[str, str] = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def json_type() -> TypeEngine[Any]:
    """JSON on SQLite, JSONB on PostgreSQL (indexable, compact, key order normalised).

    ``none_as_null`` stores Python ``None`` as SQL NULL rather than the JSON ``null``
    literal, so "no before/after" can be queried with ``IS NULL``.
    """
    return JSON(none_as_null=True).with_variant(JSONB(none_as_null=True), "postgresql")


def event_json_type() -> TypeEngine[Any]:
    """JSON on both backends, for the event columns (``before``, ``after``, ``detail``).

    Stored as the text the store wrote: nothing queries inside them on the server, and
    PostgreSQL's ``json`` only checks the text where ``jsonb`` parses it into its binary
    form, about 1.5 us of each appended row (migration 0004). ``None`` is SQL NULL, as in
    :func:`json_type`.
    """
    return JSON(none_as_null=True)


class Base(DeclarativeBase):
    """Declarative base of the store's models (one :class:`MetaData` for Alembic)."""

    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class Run(Base):
    """One simulation run: its configuration and the counter that orders its events."""

    __tablename__ = "runs"

    #: 12 lowercase hex characters from a uuid4 (short enough to type, 48 random bits).
    id: Mapped[str] = mapped_column(String(12), primary_key=True)
    name: Mapped[str] = mapped_column(String, unique=True, nullable=False)
    created_at: Mapped[datetime] = mapped_column(DateTime(timezone=True), nullable=False)
    #: The fabric configuration the run was started with.
    config: Mapped[dict[str, Any]] = mapped_column(json_type(), nullable=False)
    policy: Mapped[str] = mapped_column(String, nullable=False)
    seed: Mapped[int] = mapped_column(BigInteger, nullable=False)
    version: Mapped[str] = mapped_column(String, nullable=False)
    #: The run this one replays (what-if replays); kept when the parent is deleted.
    parent_run_id: Mapped[str | None] = mapped_column(
        String(12), ForeignKey("runs.id", ondelete="SET NULL"), nullable=True
    )
    #: The next global sequence number to hand out. Reserved inside the transaction that
    #: inserts the events (``UPDATE ... RETURNING``), which is what keeps ``seq`` gap-free.
    next_seq: Mapped[int] = mapped_column(BigInteger, nullable=False, server_default=text("1"))


class Event(Base):
    """One recorded transition (or client input) of a run, at its global ``seq``."""

    __tablename__ = "events"
    __table_args__ = (
        # Every event belongs to a run, and goes with it. On SQLite a foreign key; on
        # PostgreSQL, whose foreign key checks each row with a query of its own, triggers
        # that check each statement's runs at once and cascade a run's deletion
        # (migration 0004: they are not declared here, Alembic does not compare them).
        ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_events_run_id_runs", ondelete="CASCADE").ddl_if(
            dialect="sqlite"
        ),
        # One entity's events, on PostgreSQL only: its planner uses this for the resume's
        # lookups of a descriptor; SQLite's never does for a query ending in ORDER BY seq
        # (it scans the primary key), and every index costs each committed row a page
        # write (migration 0003). The seq range is the primary key's.
        Index("ix_events_run_id_entity", "run_id", "entity").ddl_if(dialect="postgresql"),
        # Idempotent appends: a writer's (origin, origin_seq) is recorded once per run.
        # Rows without an origin are not in it (NULLs never conflicted anyway): only the
        # first row of each append names its writer, so it holds one entry per transaction.
        Index(
            "uq_events_run_id_origin_origin_seq",
            "run_id",
            "origin",
            "origin_seq",
            unique=True,
            sqlite_where=text("origin IS NOT NULL"),
            postgresql_where=text("origin IS NOT NULL"),
        ),
    )

    run_id: Mapped[str] = mapped_column(String(12), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    service: Mapped[str] = mapped_column(String, nullable=False)
    entity: Mapped[str] = mapped_column(String, nullable=False)
    kind: Mapped[str] = mapped_column(String, nullable=False)
    before: Mapped[dict[str, Any] | None] = mapped_column(event_json_type(), nullable=True)
    after: Mapped[dict[str, Any] | None] = mapped_column(event_json_type(), nullable=True)
    #: The seq of the transition or input that led to this one.
    cause: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    cycles: Mapped[int] = mapped_column(BigInteger, nullable=False)
    # Event facts that are not entity state (a #GP's reason, a retry's cause): shown by
    # trace tools, never folded into state.
    detail: Mapped[dict[str, Any] | None] = mapped_column(event_json_type(), nullable=True)
    #: The writer (a recorder) that appended the event, and its own counter for it: a
    #: retried append recognises what an earlier, ambiguous attempt already committed.
    #: ``origin`` is on the first row of each append only (the rows after it in seq order
    #: with the next origin_seqs are the same append's); origin_seq is on every row.
    origin: Mapped[str | None] = mapped_column(String(32), nullable=True)
    origin_seq: Mapped[int | None] = mapped_column(BigInteger, nullable=True)


class Snapshot(Base):
    """The folded state of a run after event ``seq``, so a late point need not fold it all."""

    __tablename__ = "snapshots"

    run_id: Mapped[str] = mapped_column(String(12), ForeignKey("runs.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(BigInteger, primary_key=True, autoincrement=False)
    state: Mapped[dict[str, Any]] = mapped_column(json_type(), nullable=False)


metadata: MetaData = Base.metadata
#: Core tables, for the batched write path and the read queries.
runs: Table = Run.__table__  # type: ignore[assignment]
events: Table = Event.__table__  # type: ignore[assignment]
snapshots: Table = Snapshot.__table__  # type: ignore[assignment]
