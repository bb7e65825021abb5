"""The schema comes from the Alembic migrations, and matches the SQLAlchemy models."""

from __future__ import annotations

import contextlib
import multiprocessing
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects.sqlite import dialect as sqlite_dialect

from svasim.store import SchemaNotCurrentError, Store, current_revision, head_revision, upgrade
from svasim.store.engine import create_engine
from svasim.store.migrate import script_location
from svasim.store.schema import events, metadata


def test_script_location_is_the_installed_migrations_package() -> None:
    location = Path(script_location())
    assert (location / "env.py").is_file()
    assert (location / "script.py.mako").is_file()
    assert (location / "versions" / "0001_initial.py").is_file()


def test_upgrade_creates_the_schema_and_is_idempotent(store_url: str) -> None:
    assert current_revision(store_url) is None
    upgrade(store_url)
    upgrade(store_url)  # a database at head is left alone
    assert current_revision(store_url) == head_revision() == "0004"
    engine = create_engine(store_url)
    try:
        inspector = sa.inspect(engine)
        assert set(inspector.get_table_names()) == {"alembic_version", "runs", "events", "snapshots"}
        assert inspector.get_pk_constraint("events")["constrained_columns"] == ["run_id", "seq"]
        indexes = {ix["name"]: ix for ix in inspector.get_indexes("events")}
        # Migration 0003: the entity index on PostgreSQL only, no kind index, and the
        # origin index partial (rows without an origin are not in it).
        expected = {"uq_events_run_id_origin_origin_seq": ["run_id", "origin", "origin_seq"]}
        if engine.dialect.name == "postgresql":
            expected["ix_events_run_id_entity"] = ["run_id", "entity"]
        assert {name: ix["column_names"] for name, ix in indexes.items()} == expected
        origin = indexes["uq_events_run_id_origin_origin_seq"]
        assert origin["unique"]
        where = origin.get("dialect_options", {}).get(f"{engine.dialect.name}_where")
        assert where is not None and "origin IS NOT NULL" in str(where)
    finally:
        engine.dispose()


def _for_dialect(conn: Any) -> Any:
    """An Alembic ``include_object`` that leaves out indexes and constraints the models
    create only on another backend (``ddl_if(dialect=...)``), which autogenerate does not read."""

    def include(obj: Any, _name: Any, type_: str, _reflected: bool, _compare_to: Any) -> bool:
        ddl_if = getattr(obj, "_ddl_if", None)
        if type_ in ("index", "foreign_key_constraint") and ddl_if is not None and ddl_if.dialect is not None:
            return conn.dialect.name == ddl_if.dialect
        return True

    return include


def test_migrated_schema_matches_the_models(store_url: str) -> None:
    upgrade(store_url)
    engine = create_engine(store_url)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(
                conn,
                opts={"compare_type": True, "compare_server_default": True, "include_object": _for_dialect(conn)},
            )
            assert compare_metadata(context, metadata) == []
    finally:
        engine.dispose()


def test_event_json_columns_are_json_and_the_others_jsonb_on_postgres(store_url: str) -> None:
    """Migration 0004: the event columns are ``json`` (stored as written) on both backends;
    ``runs.config`` and ``snapshots.state`` stay JSONB on PostgreSQL."""
    upgrade(store_url)
    engine = create_engine(store_url)
    try:
        inspector = sa.inspect(engine)
        columns = {c["name"]: c["type"] for c in inspector.get_columns("events")}
        assert {type(columns[n]).__name__ for n in ("before", "after", "detail")} == {"JSON"}
        expected = "JSONB" if engine.dialect.name == "postgresql" else "JSON"
        assert type({c["name"]: c["type"] for c in inspector.get_columns("runs")}["config"]).__name__ == expected
        assert type({c["name"]: c["type"] for c in inspector.get_columns("snapshots")}["state"]).__name__ == expected
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
    assert current_revision(store_url) == "0004"


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


def test_an_old_store_with_events_comes_forward_and_still_refuses_duplicate_origins(store_url: str) -> None:
    from svasim.model.transition import Transition

    upgrade(store_url, "0002")
    with _opened_at_0002(store_url) as engine:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO runs (id, name, created_at, config, policy, seed, version, next_seq)"
                " VALUES ('0123456789ab', 'old', CURRENT_TIMESTAMP, '{}', 'linux-5.18', 0, 'test', 3)"
            )
            conn.exec_driver_sql(
                "INSERT INTO events (run_id, seq, service, entity, kind, after, cycles, origin, origin_seq) VALUES"
                " ('0123456789ab', 1, 'cpu', 'cpu/0', 'cpu.set', '{\"v\": 1}', 1, 'w', 1),"
                " ('0123456789ab', 2, 'cpu', 'cpu/0', 'cpu.set', '{\"v\": 2}', 1, NULL, NULL)"
            )
    with Store.open(store_url) as store:  # migrates 0002 -> head
        assert current_revision(store_url) == head_revision()
        assert [e.after for e in store.events("0123456789ab")] == [{"v": 1}, {"v": 2}]
        again = Transition("cpu", "cpu/0", "cpu.set", None, {"v": 1}, None, 1)
        again.origin_seq = 1
        with pytest.raises(sa.exc.IntegrityError):  # the partial unique index holds
            store.append("0123456789ab", [again], origin="w", retry=False)
        store.append("0123456789ab", [again], origin="w")  # a retry: recognised, not rewritten
        assert again.seq == 1
        assert store.state_at("0123456789ab") == {"cpu/0": {"v": 2}}


@contextlib.contextmanager
def _opened_at_0002(url: str) -> Iterator[sa.engine.Engine]:
    engine = create_engine(url)
    try:
        yield engine
    finally:
        engine.dispose()


def test_the_stores_queries_on_sqlite_use_the_primary_key_or_the_origin_index(sqlite_url: str) -> None:
    """EXPLAIN QUERY PLAN (https://sqlite.org/eqp.html) of what the store runs: no plan
    needs an index migration 0003 dropped."""
    with Store.open(sqlite_url) as store:
        run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="test").id
        plans = []
        with store.engine.connect() as conn:
            for where in (
                [events.c.kind == "desc.queue"],
                [events.c.entity == "desc/dsa0/1", events.c.kind == "desc.queue"],
                [events.c.entity == "desc/dsa0/1", events.c.seq <= 10],
                [events.c.service == "accel", events.c.kind == "x", events.c.seq > 1, events.c.seq <= 9],
                [store._startswith(events.c.entity, "cpu/")],
            ):
                q = sa.select(events.c.seq).where(events.c.run_id == run, *where).order_by(events.c.seq).limit(9)
                plans.append(" ".join(str(r[3]) for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {_sql(q)}"))))
            origin = sa.select(events.c.seq).where(
                events.c.run_id == run, events.c.origin == "w", events.c.origin_seq.between(1, 5)
            )
            origin_plan = " ".join(str(r[3]) for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {_sql(origin)}")))
    assert all("sqlite_autoindex_events_1" in p and "TEMP B-TREE" not in p for p in plans), plans
    assert "uq_events_run_id_origin_origin_seq" in origin_plan


def _sql(query: Any) -> str:
    return str(query.compile(dialect=sqlite_dialect(), compile_kwargs={"literal_binds": True}))
