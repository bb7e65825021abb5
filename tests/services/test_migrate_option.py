"""``--migrate/--no-migrate`` (SVASIM_MIGRATE): a fabric whose store is migrated by a
one-shot ``svasim db upgrade`` never changes the schema itself."""

from __future__ import annotations

import subprocess
import sys

import pytest
import sqlalchemy as sa

from svasim.config import ConfigError, FabricConfig
from svasim.server import create_server
from svasim.store import SchemaNotCurrentError, Store

SVASIM = [sys.executable, "-m", "svasim.cli"]


def test_migrate_defaults_on_and_follows_svasim_migrate(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SVASIM_MIGRATE", raising=False)
    assert FabricConfig.from_env().migrate is True
    monkeypatch.setenv("SVASIM_MIGRATE", "0")
    assert FabricConfig.from_env().migrate is False
    monkeypatch.setenv("SVASIM_MIGRATE", "1")
    assert FabricConfig.from_env().migrate is True
    monkeypatch.setenv("SVASIM_MIGRATE", "no")
    with pytest.raises(ConfigError, match="SVASIM_MIGRATE"):
        FabricConfig.from_env()


def test_without_migrate_an_unmigrated_store_is_refused_and_left_untouched(sqlite_url: str) -> None:
    with pytest.raises(SchemaNotCurrentError):
        create_server(FabricConfig(port=0, db=sqlite_url, migrate=False))
    engine = sa.create_engine(sqlite_url)
    try:
        assert sa.inspect(engine).get_table_names() == []
    finally:
        engine.dispose()


def test_without_migrate_a_migrated_store_serves(sqlite_url: str) -> None:
    Store.open(sqlite_url).close()
    fab = create_server(FabricConfig(port=0, db=sqlite_url, migrate=False))
    fab.stop()


def test_no_migrate_flag_is_a_one_line_error_on_an_unmigrated_store(sqlite_url: str) -> None:
    done = subprocess.run(
        [*SVASIM, "up", "--port", "0", "--db", sqlite_url, "--no-migrate"], capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    errors = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1 and "schema revision" in errors[0], done.stderr
