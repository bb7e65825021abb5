"""Alembic environment of the svasim store (package ``svasim_migrations``).

Normally run through :func:`svasim.store.migrate.upgrade`, which passes an open
connection (inside a locked transaction) in ``config.attributes["connection"]``. Without
one, the URL comes from the main option ``sqlalchemy.url``; in offline mode (``--sql``)
the SQL is written out instead of executed.
"""

from __future__ import annotations

from alembic import context
from sqlalchemy.engine import Connection

from svasim.store.engine import create_engine, write_connection
from svasim.store.migrate import lock_for_migration
from svasim.store.schema import metadata

config = context.config
target_metadata = metadata


def _configure(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode (copy and move the table) lets
        # later migrations be written once for both backends.
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    """Emit the migrations as SQL for the URL's dialect."""
    context.configure(
        url=config.get_main_option("sqlalchemy.url"),
        target_metadata=target_metadata,
        literal_binds=True,
        dialect_opts={"paramstyle": "named"},
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    """Run the migrations on the given connection, or on one to ``sqlalchemy.url``."""
    connection = config.attributes.get("connection")
    if connection is not None:
        # The caller owns the transaction (and the lock that serialises upgrades).
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return

    url = config.get_main_option("sqlalchemy.url")
    if not url:
        raise RuntimeError("svasim_migrations: set sqlalchemy.url or pass a connection")
    engine = create_engine(url)
    try:
        with write_connection(engine) as conn, conn.begin():
            lock_for_migration(conn)
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
