"""``svasim db``: the store's schema."""

from __future__ import annotations

import typer

from svasim.cli._common import DEFAULT_DB, DbOpt, console, fail

app = typer.Typer(help="Manage the store's schema.", no_args_is_help=True)


@app.command("upgrade")
def upgrade(db: DbOpt = DEFAULT_DB) -> None:
    """Apply the Alembic migrations (creates the schema in a new database)."""
    from svasim.store.migrate import current_revision
    from svasim.store.migrate import upgrade as migrate

    try:
        migrate(db)
        revision = current_revision(db)
    except Exception as e:  # noqa: BLE001 - a URL or a database the user can fix
        fail(f"cannot upgrade {db}: {e}")
    console.print(f"{db} at revision {revision}", soft_wrap=True)
