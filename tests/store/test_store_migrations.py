"""The schema comes from the Alembic migrations, and matches the SQLAlchemy models."""

from __future__ import annotations

import multiprocessing
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from svasim.store import SchemaNotCurrentError, Store, current_revision, head_revision, upgrade
from svasim.store.engine import create_engine
from svasim.store.migrate import script_location
from svasim.store.schema import metadata


def test_script_location_is_the_installed_migrations_package() -> None:
    location = Path(script_location())
    assert (location / "env.py").is_file()
    assert (location / "script.py.mako").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()


def test_upgrade_creates_the_schema_and_is_idempotent(store_url: str) -> None:
    assert current_revision(store_url) is None
    upgrade(store_url)
    upgrade(store_url)  # a database at head is left alone
    assert current_revision(store_url) == head_revision() == "0002"
    engine = create_engine(store_url)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names()) == {"alembic_version", "runs", "events", "snapshots"}
        assert inspector.get_pk_constraint("events")["constrained_columns"] == ["run_id", "seq"]
        indexes = {ix["name"]: ix["column_names"] for ix in inspector.get_indexes("events")}
        assert indexes["ix_events_run_id_entity"] == ["run_id", "entity"]
        assert indexes["ix_events_run_id_kind"] == ["run_id", "kind"]
        assert indexes["uq_events_run_id_origin_origin_seq"] == ["run_id", "origin", "origin_seq"]
    finally:
        engine.dispose()


def test_migrated_schema_matches_the_models(store_url: str) -> None:
    upgrade(store_url)
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True, "compare_server_default": True})
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_json_columns_are_jsonb_on_postgres_and_json_on_sqlite(store_url: str) -> None:
    upgrade(store_url)
    engine = create_engine(store_url)
    try:
        columns = {c["name"]: c["type"] for c in sa.inspect(engine).get_columns("events")}
        expected = "JSONB" if engine.dialect.name == "postgresql" else "JSON"
        assert type(columns["after"]).__name__ == expected
    finally:
        engine.dispose()


def test_open_without_migrate_refuses_an_unmigrated_database(store_url: str) -> None:
    with pytest.raises(SchemaNotCurrentError, match="migrate=True"):
        Store.open(store_url, migrate=False)
    Store.open(store_url).close()
    Store.open(store_url, migrate=False).close()


def _upgrade_in_process(url: str, start: Any) -> None:
    start.wait(60)  # both processes imported everything: race from here
    upgrade(url)


def test_concurrent_upgrades_of_a_fresh_database_both_succeed(store_url: str) -> None:
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(2)
    procs = [ctx.Process(target=_upgrade_in_process, args=(store_url, start)) for _ in range(2)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0]
    assert current_revision(store_url) == head_revision()


def test_migrations_downgrade_to_the_first_revision_and_back(store_url: str) -> None:
    from svasim.store.migrate import downgrade

    upgrade(store_url)
    downgrade(store_url, "0001")
    assert current_revision(store_url) == "0001"
    upgrade(store_url)
    assert current_revision(store_url) == "0002"


def test_the_revision_opened_without_alembic_is_the_head_of_the_migrations() -> None:
    from svasim.store.migrate import SCHEMA_REVISION

    assert SCHEMA_REVISION == head_revision()


def test_opening_a_current_store_does_not_load_alembic(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'current.db'}"
    Store.open(url).close()
    # A fresh interpreter: this one has imported Alembic already.
    code = (
        "import sys\n"
        "from svasim.store import Store\n"
        f"Store.open({url!r}, create=False).close()\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'alembic'))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True, text=True).stdout
    assert out.strip() == "[]"


def test_a_store_at_another_revision_is_still_migrated(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0001")
    Store.open(url).close()
    assert current_revision(url) == head_revision()
