"""Schema migrations: run Alembic programmatically, without an ``alembic.ini``.

The migration scripts ship as the package ``svasim_migrations``, so they are found with
:func:`importlib.resources.files` wherever the project is installed (editable or not).

:func:`upgrade` runs all pending migrations in ONE transaction, after taking a lock that
serialises concurrent upgrades of the same database (``pg_advisory_xact_lock`` on
PostgreSQL, ``BEGIN IMMEDIATE`` on SQLite): several services starting at once against a
fresh database must not all try to create the tables. The second one waits, then finds
the database at head and does nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from importlib.resources import files
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy import inspect as sa_inspect
from sqlalchemy.engine import URL, Connection, Engine

from svasim.store.engine import create_engine, write_connection

if TYPE_CHECKING:
    from alembic.config import Config

# Alembic is imported where it is used: it costs a fifth of a second, and opening a store
# that is already at SCHEMA_REVISION (every reading command) needs none of it.

#: The revision this code's schema is: the head of ``svasim_migrations`` (a test holds
#: the two equal). A database found at it is opened without loading Alembic.
SCHEMA_REVISION = "0004"

#: Key of the PostgreSQL advisory lock held while migrating ("svasim" in ASCII).
MIGRATION_LOCK_KEY = 0x73766173696D


def script_location() -> str:
    """The directory holding ``env.py`` and ``versions/`` of ``svasim_migrations``."""
    location = files("svasim_migrations")
    # Alembic loads env.py and the versions from the file system; a package imported
    # from a zip file has no directory to give it.
    if not isinstance(location, Path):
        raise RuntimeError(
            f"svasim_migrations is not installed as a directory ({location!r}); Alembic needs its files on disk"
        )
    return str(location)


def alembic_config(connection: Connection | None = None) -> Config:
    """An Alembic :class:`Config` for the store's migrations, built in code.

    With ``connection``, ``env.py`` runs the migrations on it (inside whatever
    transaction the caller holds) instead of opening its own.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", script_location())
    if connection is not None:
        config.attributes["connection"] = connection
    return config


def head_revision() -> str:
    """The revision the code's schema corresponds to (the single head)."""
    from alembic.script import ScriptDirectory

    head = ScriptDirectory.from_config(alembic_config()).get_current_head()
    if head is None:  # pragma: no cover - the package always ships 0001
        raise RuntimeError("svasim_migrations has no revisions")
    return head


@contextmanager
def _engine_for(target: str | URL | Engine) -> Iterator[Engine]:
    """Use ``target`` if it is an engine, else a temporary one for the URL."""
    if isinstance(target, Engine):
        yield target
        return
    engine = create_engine(target)
    try:
        yield engine
    finally:
        engine.dispose()


def lock_for_migration(connection: Connection) -> None:
    """Serialise migrations: call first thing in the migrating transaction.

    On PostgreSQL this takes an advisory lock held until the transaction ends. On SQLite
    the transaction must have been opened with ``BEGIN IMMEDIATE``
    (:func:`~svasim.store.engine.write_connection`), which already is the lock.
    """
    if connection.dialect.name == "postgresql":
        connection.exec_driver_sql(f"SELECT pg_advisory_xact_lock({MIGRATION_LOCK_KEY})")


def upgrade_connection(connection: Connection, revision: str = "head") -> None:
    """Migrate on ``connection`` (from :func:`~svasim.store.engine.write_connection`, not
    in a transaction) in one transaction, committed on success."""
    from alembic import command

    with connection.begin():
        lock_for_migration(connection)
        command.upgrade(alembic_config(connection), revision)


def upgrade(target: str | URL | Engine, revision: str = "head") -> None:
    """Bring the database at ``target`` (a URL or an engine) up to ``revision``.

    Idempotent: a database already at ``revision`` is left as it is.
    """
    with _engine_for(target) as engine, write_connection(engine) as connection:
        upgrade_connection(connection, revision)


def current_revision(target: str | URL | Engine) -> str | None:
    """The revision the database at ``target`` is at, or None if it was never migrated."""
    from alembic.runtime.migration import MigrationContext

    with _engine_for(target) as engine, engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def is_current(engine: Engine) -> bool:
    """Whether the database is at :data:`SCHEMA_REVISION`, read without Alembic.

    False for a database never migrated or at another revision (the caller then asks
    Alembic, which knows what to do about it).
    """
    with engine.connect() as connection:
        if not sa_inspect(connection).has_table("alembic_version"):
            return False
        found = connection.exec_driver_sql("SELECT version_num FROM alembic_version").scalars().all()
    return found == [SCHEMA_REVISION]


def downgrade(target: str | URL | Engine, revision: str) -> None:
    """Take the database at ``target`` back down to ``revision`` (one transaction)."""
    from alembic import command

    with _engine_for(target) as engine, write_connection(engine) as connection, connection.begin():
        lock_for_migration(connection)
        command.downgrade(alembic_config(connection), revision)
