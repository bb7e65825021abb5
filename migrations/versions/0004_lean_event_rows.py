"""Lean event rows on PostgreSQL: JSON text instead of JSONB, statement-level run checks.

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01

What an appended row costs PostgreSQL beyond its primary key, measured with psycopg COPY of
the benchmark's rows (batches of 1000, server CPU time per row): the foreign key to
``runs`` about 3.6 us (a row-level trigger that runs ``SELECT ... FOR KEY SHARE`` on the
run for every row), JSONB parsing of ``before``/``after``/``detail`` about 1.5 us, the
origin index about 1.4 us and the entity index about 1.2 us, against about 3 us for a
row of a primary-key-only table with JSON columns. Nothing queries inside the JSON
columns on the server (no JSON operator appears in any query of the store); they are
written, read back whole and tested for ``IS NULL``. So, on PostgreSQL only:

* ``events.before``, ``after`` and ``detail`` become ``json``: the server checks the text
  is JSON and stores it as written, as SQLite does (keys keep their order; a ``\\u0000``
  escape, which JSONB refuses, is accepted). ``runs.config`` and ``snapshots.state`` are
  not on the append path and stay JSONB.
* The foreign key ``fk_events_run_id_runs`` is replaced by triggers that keep what it
  promised, once per statement instead of once per row: an insert (or update) of
  ``events`` naming a run that does not exist fails with ``foreign_key_violation``
  (after locking the statement's runs ``FOR KEY SHARE``, as the foreign key does, so a
  concurrent delete cannot slip in between); deleting a run deletes its events (the
  cascade); changing a run's id while it has events fails. The store's append already
  holds the run's row lock from its seq reservation, so the check finds it at once.

The indexes stay: the entity index serves the resume's per-entity queries and the origin
index the idempotence lookup and its guarantee. SQLite keeps its foreign key and its JSON
columns (its JSON is text already); nothing changes there.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0004"
down_revision: str | Sequence[str] | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_JSON_COLUMNS = ("before", "after", "detail")
_FK = "fk_events_run_id_runs"

_TRIGGERS = (
    # The runs named by a statement's new rows exist (and stay, until the transaction ends).
    """
    CREATE OR REPLACE FUNCTION svasim_events_run_exists() RETURNS trigger LANGUAGE plpgsql AS $$
    DECLARE
        missing text;
    BEGIN
        PERFORM 1 FROM runs WHERE id IN (SELECT DISTINCT run_id FROM new_events) FOR KEY SHARE;
        SELECT n.run_id INTO missing
            FROM (SELECT DISTINCT run_id FROM new_events) AS n
            LEFT JOIN runs AS r ON r.id = n.run_id
            WHERE r.id IS NULL
            LIMIT 1;
        IF FOUND THEN
            RAISE EXCEPTION 'insert or update on table "events" violates its reference to "runs"'
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Key (run_id)=(%s) is not present in table "runs".', missing);
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER events_run_exists_insert AFTER INSERT ON events"
    " REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION svasim_events_run_exists()",
    "CREATE TRIGGER events_run_exists_update AFTER UPDATE ON events"
    " REFERENCING NEW TABLE AS new_events FOR EACH STATEMENT EXECUTE FUNCTION svasim_events_run_exists()",
    # ON DELETE CASCADE.
    """
    CREATE OR REPLACE FUNCTION svasim_runs_delete_events() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        DELETE FROM events WHERE run_id = OLD.id;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER runs_delete_events AFTER DELETE ON runs FOR EACH ROW EXECUTE FUNCTION svasim_runs_delete_events()",
    # ON UPDATE NO ACTION: a run with events keeps its id.
    """
    CREATE OR REPLACE FUNCTION svasim_runs_keep_id() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        IF EXISTS (SELECT 1 FROM events WHERE run_id = OLD.id) THEN
            RAISE EXCEPTION 'update on table "runs" violates the reference to it from "events"'
                USING ERRCODE = 'foreign_key_violation',
                      DETAIL = format('Key (id)=(%s) is still referenced from table "events".', OLD.id);
        END IF;
        RETURN NULL;
    END $$
    """,
    "CREATE TRIGGER runs_keep_id AFTER UPDATE OF id ON runs FOR EACH ROW"
    " WHEN (OLD.id IS DISTINCT FROM NEW.id) EXECUTE FUNCTION svasim_runs_keep_id()",
)

_DROP_TRIGGERS = (
    "DROP TRIGGER runs_keep_id ON runs",
    "DROP FUNCTION svasim_runs_keep_id()",
    "DROP TRIGGER runs_delete_events ON runs",
    "DROP FUNCTION svasim_runs_delete_events()",
    "DROP TRIGGER events_run_exists_update ON events",
    "DROP TRIGGER events_run_exists_insert ON events",
    "DROP FUNCTION svasim_events_run_exists()",
)


def upgrade() -> None:
    """On PostgreSQL: JSON columns of ``events`` as ``json``; the foreign key as triggers."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for column in _JSON_COLUMNS:
        op.alter_column(
            "events",
            column,
            type_=sa.JSON(none_as_null=True),
            existing_type=postgresql.JSONB(none_as_null=True),
            existing_nullable=True,
            postgresql_using=f"{column}::json",
        )
    op.drop_constraint(_FK, "events", type_="foreignkey")
    for statement in _TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    """Put back the JSONB columns and the foreign key of revision 0003."""
    if op.get_bind().dialect.name != "postgresql":
        return
    for statement in _DROP_TRIGGERS:
        op.execute(statement)
    op.create_foreign_key(_FK, "events", "runs", ["run_id"], ["id"], ondelete="CASCADE")
    for column in _JSON_COLUMNS:
        op.alter_column(
            "events",
            column,
            type_=postgresql.JSONB(none_as_null=True),
            existing_type=sa.JSON(none_as_null=True),
            existing_nullable=True,
            postgresql_using=f"{column}::jsonb",
        )
