"""Idempotent appends (event origins) and state snapshots.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    """Add ``events.origin``/``origin_seq`` (unique per run) and the ``snapshots`` table."""
    with op.batch_alter_table("events") as batch:
        batch.add_column(sa.Column("origin", sa.String(32), nullable=True))
        batch.add_column(sa.Column("origin_seq", sa.BigInteger(), nullable=True))
    op.create_index(
        "uq_events_run_id_origin_origin_seq", "events", ["run_id", "origin", "origin_seq"], unique=True
    )
    op.create_table(
        "snapshots",
        sa.Column("run_id", sa.String(12), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("state", _json(), nullable=False),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_snapshots_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_snapshots"),
    )


def downgrade() -> None:
    """Remove them again."""
    op.drop_table("snapshots")
    op.drop_index("uq_events_run_id_origin_origin_seq", table_name="events")
    with op.batch_alter_table("events") as batch:
        batch.drop_column("origin_seq")
        batch.drop_column("origin")
