"""Databases for the recovery tests.

Their svasim processes outlive a single connection and are killed at random points, so
each PostgreSQL test gets a database of its own (created on the server of
``$SVASIM_TEST_PG_URL``, dropped after), which no other test can empty under it.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from ..conftest import DEFAULT_PG_URL, _pg_unavailable


@pytest.fixture
def own_pg_url() -> Iterator[str]:
    """URL of a new, empty PostgreSQL database, dropped after the test."""
    base = sa.make_url(os.environ.get("SVASIM_TEST_PG_URL", DEFAULT_PG_URL))
    name = f"svasim_recovery_{secrets.token_hex(4)}"
    admin = sa.create_engine(base, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 5})
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    except sa.exc.OperationalError as exc:
        admin.dispose()
        _pg_unavailable(f"cannot create a database on {base.render_as_string(hide_password=True)}: {exc.orig}")
    try:
        yield base.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        admin.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def crash_store(request: pytest.FixtureRequest) -> str:
    """A fresh database on each backend in turn, PostgreSQL's of this test alone."""
    return request.getfixturevalue("sqlite_url" if request.param == "sqlite" else "own_pg_url")
