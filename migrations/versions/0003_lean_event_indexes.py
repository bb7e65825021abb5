"""Lean event indexes: fewer index pages written per committed transaction.

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-01

Each secondary index on ``events`` is one more B-tree page to change for every row, and
the entity and kind indexes are the expensive ones: the rows of one transaction name many
different entities and kinds, so their index entries land on as many different pages
(on SQLite, each a 4 KiB frame appended to the WAL at every commit). Measured on SQLite,
a 13-row transaction took about 300 us with both indexes and about 90 us without.

* ``ix_events_run_id_kind`` goes on both backends. SQLite's planner never picks it for the
  store's equality filters, which all end in ``ORDER BY seq`` (it scans the primary key
  ``(run_id, seq)`` instead, sort-free); what filters by kind is either seq-bounded
  (``svasim.recovery._last_of_kind`` pages back in windows) or reads the whole run anyway
  (replay's inputs).
* ``ix_events_run_id_entity`` goes on SQLite, for the same reason (``EXPLAIN QUERY PLAN``
  of ``entity = ? ... ORDER BY seq`` uses the primary key; only a ``GLOB`` prefix filter
  used it, and that one is a ``LIMIT``-ed scan in seq order that stops early). PostgreSQL's
  planner does use it for one entity's events (the resume's lookups of a descriptor's
  ``desc.queue``), so it stays there.
* ``uq_events_run_id_origin_origin_seq`` becomes partial, ``WHERE origin IS NOT NULL``:
  rows appended without an origin were never constrained by it (NULLs are distinct in a
  unique index) and now cost it nothing; the idempotence lookup (``origin = ?``) implies
  the condition, so both planners still use it.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ORIGIN_INDEX = "uq_events_run_id_origin_origin_seq"
_ORIGIN_COLUMNS = ["run_id", "origin", "origin_seq"]


def upgrade() -> None:
    """Drop the kind index (and the entity index on SQLite); make the origin index partial."""
    op.drop_index("ix_events_run_id_kind", table_name="events")
    if op.get_bind().dialect.name == "sqlite":
        op.drop_index("ix_events_run_id_entity", table_name="events")
    op.drop_index(_ORIGIN_INDEX, table_name="events")
    where = sa.text("origin IS NOT NULL")
    op.create_index(_ORIGIN_INDEX, "events", _ORIGIN_COLUMNS, unique=True, sqlite_where=where, postgresql_where=where)


def downgrade() -> None:
    """Put back the indexes of revision 0002."""
    op.drop_index(_ORIGIN_INDEX, table_name="events")
    op.create_index(_ORIGIN_INDEX, "events", _ORIGIN_COLUMNS, unique=True)
    if op.get_bind().dialect.name == "sqlite":
        op.create_index("ix_events_run_id_entity", "events", ["run_id", "entity"])
    op.create_index("ix_events_run_id_kind", "events", ["run_id", "kind"])
