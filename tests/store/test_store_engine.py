"""SQLite engine settings: pragmas, explicit BEGIN (IMMEDIATE for writers), memory pool."""

from __future__ import annotations

import sqlite3

import pytest
from sqlalchemy.pool import StaticPool

from svasim.store import Store
from svasim.store.engine import create_engine, write_connection

from .threads import in_threads


def test_sqlite_file_connections_get_wal_normal_sync_foreign_keys_and_busy_timeout(
    sqlite_url: str,
) -> None:
    engine = create_engine(sqlite_url)
    try:
        with engine.connect() as conn:
            pragma = {
                name: conn.exec_driver_sql(f"PRAGMA {name}").scalar()
                for name in ("journal_mode", "synchronous", "foreign_keys", "busy_timeout")
            }
    finally:
        engine.dispose()
    assert pragma == {
        "journal_mode": "wal",
        "synchronous": 1,
        "foreign_keys": 1,
        "busy_timeout": 10000,
    }


def test_sqlite_writers_take_the_write_lock_at_begin(sqlite_url: str, tmp_path) -> None:
    engine = create_engine(sqlite_url)
    other = sqlite3.connect(tmp_path / "svasim.db", timeout=0, isolation_level=None)
    try:
        with engine.connect() as reader, reader.begin():
            reader.exec_driver_sql("SELECT 1").all()
            other.execute("BEGIN IMMEDIATE")  # a plain BEGIN takes no lock
            other.execute("ROLLBACK")
        with write_connection(engine) as writer, writer.begin():
            with pytest.raises(sqlite3.OperationalError, match="locked"):
                other.execute("BEGIN IMMEDIATE")
    finally:
        other.close()
        engine.dispose()


def test_in_memory_sqlite_shares_one_connection_across_threads() -> None:
    with Store.open("sqlite://") as store:
        assert isinstance(store.engine.pool, StaticPool)
        run = store.create_run(name="m", config={}, policy="p", seed=1, version="0")
        assert in_threads(lambda: store.get_run("m").id, [()]) == [run.id]
