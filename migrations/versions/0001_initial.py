"""Initial schema: runs and their append-only events.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

# revision identifiers, used by Alembic.
revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[Any]:
    # Spelled out rather than imported from svasim.store.schema: a migration must keep
    # creating what it created on the day it was written, whatever the models become.
    return sa.JSON(none_as_null=True).with_variant(postgresql.JSONB(none_as_null=True), "postgresql")


def upgrade() -> None:
    """Create ``runs`` and ``events``."""
    op.create_table(
        "runs",
        sa.Column("id", sa.String(12), nullable=False),
        sa.Column("name", sa.String(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("config", _json(), nullable=False),
        sa.Column("policy", sa.String(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("version", sa.String(), nullable=False),
        sa.Column("parent_run_id", sa.String(12), nullable=True),
        sa.Column("next_seq", sa.BigInteger(), server_default=sa.text("1"), nullable=False),
        sa.ForeignKeyConstraint(
            ["parent_run_id"],
            ["runs.id"],
            name="fk_runs_parent_run_id_runs",
            ondelete="SET NULL",
        ),
        sa.PrimaryKeyConstraint("id", name="pk_runs"),
        sa.UniqueConstraint("name", name="uq_runs_name"),
    )
    op.create_table(
        "events",
        sa.Column("run_id", sa.String(12), nullable=False),
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("service", sa.String(), nullable=False),
        sa.Column("entity", sa.String(), nullable=False),
        sa.Column("kind", sa.String(), nullable=False),
        sa.Column("before", _json(), nullable=True),
        sa.Column("after", _json(), nullable=True),
        sa.Column("cause", sa.BigInteger(), nullable=True),
        sa.Column("cycles", sa.BigInteger(), nullable=False),
        sa.Column("detail", _json(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["runs.id"], name="fk_events_run_id_runs", ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "seq", name="pk_events"),
    )
    op.create_index("ix_events_run_id_entity", "events", ["run_id", "entity"])
    op.create_index("ix_events_run_id_kind", "events", ["run_id", "kind"])


def downgrade() -> None:
    """Drop ``events`` and ``runs``."""
    op.drop_index("ix_events_run_id_kind", table_name="events")
    op.drop_index("ix_events_run_id_entity", table_name="events")
    op.drop_table("events")
    op.drop_table("runs")
