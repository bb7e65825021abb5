"""Fixtures shared by all test packages.

Databases:

- ``sqlite_url``: a SQLite file in the test's ``tmp_path``.
- ``pg_url``: the PostgreSQL database at ``$SVASIM_TEST_PG_URL`` (default
  ``postgresql+psycopg://postgres@127.0.0.1:5432/test``), emptied of all tables (including
  ``alembic_version``) before the test. Tests run one at a time against it. If the server
  is unreachable the test is skipped, or fails when ``$CI`` is ``true`` so that CI cannot
  silently stop testing PostgreSQL.
- ``store_url``: both of the above, one test per backend (ids ``sqlite`` and ``postgres``).
- ``store``: a :class:`svasim.store.Store` opened (and migrated) at ``store_url``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import sqlalchemy as sa

from svasim.store import Store

from .required import missing

DEFAULT_PG_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def _pg_unavailable(reason: str) -> None:
    missing(f"PostgreSQL is required in CI: {reason}", f"PostgreSQL unavailable: {reason}")


def _empty_pg(url: str) -> None:
    """Drop every table of the connection's schema, so migrations start from nothing."""
    engine = sa.create_engine(url, connect_args={"connect_timeout": 5})
    try:
        with engine.begin() as conn:
            names = sa.inspect(conn).get_table_names()
            if names:
                quoted = ", ".join(conn.dialect.identifier_preparer.quote(n) for n in names)
                conn.exec_driver_sql(f"DROP TABLE IF EXISTS {quoted} CASCADE")
    finally:
        engine.dispose()


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    """URL of a fresh SQLite database file (created by the first connection)."""
    return f"sqlite:///{tmp_path / 'svasim.db'}"


@pytest.fixture
def pg_url() -> str:
    """URL of the test PostgreSQL database, emptied for this test."""
    url = os.environ.get("SVASIM_TEST_PG_URL", DEFAULT_PG_URL)
    try:
        _empty_pg(url)
    except sa.exc.OperationalError as exc:
        shown = sa.make_url(url).render_as_string(hide_password=True)
        _pg_unavailable(f"cannot connect to {shown}: {exc.orig or exc}")
    return url


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def store_url(request: pytest.FixtureRequest) -> str:
    """A fresh, empty database on each backend in turn."""
    name = "sqlite_url" if request.param == "sqlite" else "pg_url"
    return request.getfixturevalue(name)


@pytest.fixture
def store(store_url: str) -> Iterator[Store]:
    """A migrated :class:`Store` at ``store_url``, closed after the test."""
    s = Store.open(store_url)
    try:
        yield s
    finally:
        s.close()
