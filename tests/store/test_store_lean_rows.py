"""Migration 0004: event JSON as ``json`` and the run reference as statement-level checks.

What the foreign key ``fk_events_run_id_runs`` promised must still hold on both backends
(SQL:2016 Part 2, 11.8 <referential constraint definition>: a referencing row needs its
referenced row; ``ON DELETE CASCADE`` deletes the referencing rows; ``NO ACTION`` on
update refuses to orphan them). SQLite keeps the foreign key (https://sqlite.org/foreignkeys.html);
PostgreSQL checks it with triggers (https://www.postgresql.org/docs/15/sql-createtrigger.html,
``REFERENCING NEW TABLE`` transition relations of ``FOR EACH STATEMENT`` triggers).
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from svasim.model.transition import Transition
from svasim.store import RunInfo, Store, current_revision, upgrade
from svasim.store.engine import create_engine
from svasim.store.migrate import downgrade


def _run(store: Store) -> RunInfo:
    return store.create_run(name=None, config={}, policy="linux-5.18", seed=1, version="0")


def _t(entity: str = "cpu/0", kind: str = "msr.pasid.write", **kw: Any) -> Transition:
    return Transition("cpu", entity, kind, **kw)


def _raw_event(conn: sa.Connection, run_id: str, seq: int) -> None:
    conn.execute(
        sa.text(
            "INSERT INTO events (run_id, seq, service, entity, kind, after, cycles)"
            " VALUES (:run, :seq, 'cpu', 'cpu/0', 'k', '{}', 0)"
        ),
        {"run": run_id, "seq": seq},
    )


def test_an_event_of_no_run_is_refused_as_a_foreign_key_would(store: Store) -> None:
    """A row naming a run that does not exist, written past the store (raw SQL), is an
    integrity error and nothing is written, as with the foreign key of revision 0003."""
    run = _run(store)
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        _raw_event(conn, run.id, 1)  # this one is fine: the statement that follows is not
        _raw_event(conn, "nosuchrun000", 1)
    assert store.events(run.id) == []
    with store.engine.begin() as conn:
        _raw_event(conn, run.id, 1)
    assert [e.seq for e in store.events(run.id)] == [1]


def test_moving_events_to_no_run_is_refused(store: Store) -> None:
    run = _run(store)
    store.append(run.id, [_t()])
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE events SET run_id = 'nosuchrun000' WHERE run_id = :run"), {"run": run.id})
    assert [e.seq for e in store.events(run.id)] == [1]


def test_deleting_a_run_row_deletes_its_events(store: Store) -> None:
    """ON DELETE CASCADE: a run deleted with plain SQL (not :meth:`Store.delete_run`)
    leaves no event behind; another run's events stay."""
    a, b = _run(store), _run(store)
    store.append(a.id, [_t(), _t()])
    store.append(b.id, [_t()])
    with store.engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM runs WHERE id = :run"), {"run": a.id})
        left = conn.execute(sa.text("SELECT run_id, seq FROM events ORDER BY run_id, seq")).all()
    assert [tuple(r) for r in left] == [(b.id, 1)]


def test_a_run_with_events_keeps_its_id(store: Store) -> None:
    run, empty = _run(store), _run(store)
    store.append(run.id, [_t()])
    with pytest.raises(sa.exc.IntegrityError), store.engine.begin() as conn:
        conn.execute(sa.text("UPDATE runs SET id = 'renamed00000' WHERE id = :run"), {"run": run.id})
    with store.engine.begin() as conn:  # a run without events may change it
        conn.execute(sa.text("UPDATE runs SET id = 'renamed00000' WHERE id = :run"), {"run": empty.id})
    assert store.get_run(run.id).event_count == 1


@pytest.mark.postgres
def test_a_run_deleted_while_an_append_holds_it_takes_the_append_s_events_along(pg_url: str) -> None:
    """The cascade sees rows committed while it waited: an append holds the run's row
    lock from its reservation (``UPDATE runs ... RETURNING``) to its commit; a concurrent
    delete of the run waits for it (PostgreSQL 15 docs, 13.2.1 Read Committed: the
    waiting ``DELETE`` goes on with the updated row) and its cascade, a new statement with
    a new snapshot, then deletes the events that append committed."""
    with Store.open(pg_url) as store:
        run = _run(store)
        holder = store.engine.raw_connection()
        try:
            cur = holder.cursor()
            cur.execute("UPDATE runs SET next_seq = next_seq + 1 WHERE id = %s RETURNING next_seq", (run.id,))
            cur.execute(
                "INSERT INTO events (run_id, seq, service, entity, kind, cycles)"
                " VALUES (%s, 1, 'cpu', 'cpu/0', 'k', 0)",
                (run.id,),
            )
            deleter = threading.Thread(target=store.delete_run, args=(run.id,))
            deleter.start()
            _wait_until_blocked(store, holder.driver_connection.info.backend_pid)  # type: ignore[union-attr]
            holder.commit()
            deleter.join(60)
            assert not deleter.is_alive()
        finally:
            holder.close()
        with store.engine.connect() as conn:
            assert conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one() == 0
            assert conn.execute(sa.text("SELECT count(*) FROM runs")).scalar_one() == 0


def _wait_until_blocked(store: Store, holder_pid: int) -> None:
    """Wait (no deadline of its own; the test's join has one) until some backend waits for
    a lock ``holder_pid`` holds (pg_blocking_pids, PostgreSQL 15 docs, 9.26)."""
    event = threading.Event()
    with store.engine.connect() as conn:
        for _ in range(6000):
            found = conn.execute(
                sa.text("SELECT count(*) FROM pg_stat_activity WHERE :pid = ANY (pg_blocking_pids(pid))"),
                {"pid": holder_pid},
            ).scalar_one()
            if found:
                return
            conn.rollback()
            event.wait(0.01)
    raise AssertionError("the delete never waited for the append's lock")


def test_event_json_comes_back_as_written(store: Store) -> None:
    """``json`` keeps the text the store wrote (PostgreSQL 15 docs, 8.14: ``json`` stores
    an exact copy, ``jsonb`` reorders keys and refuses ``\\u0000``): keys in their order,
    and a NUL character, on both backends alike."""
    run = _run(store)
    after = {"zeta": 1, "alpha": {"y": [3, {"b": 1, "a": 2}]}, "mid": "a\x00b"}
    detail = {"reason": "z", "cpu": 0}
    store.append(run.id, [_t(before={"b": 0, "a": 0}, after=after, detail=detail)])
    (row,) = store.events(run.id)
    assert list(row.after or {}) == ["zeta", "alpha", "mid"]
    assert row.after == after
    assert list(row.after["alpha"]["y"][1]) == ["b", "a"]
    assert list(row.before or {}) == ["b", "a"]
    assert list(row.detail or {}) == ["reason", "cpu"]
    assert store.state_at(run.id) == {"cpu/0": after}


@pytest.fixture
def old_store_with_events(store_url: str) -> Iterator[tuple[str, str]]:
    """A database at revision 0003 holding one run with events."""
    upgrade(store_url, "0003")
    engine = create_engine(store_url)
    try:
        with engine.begin() as conn:
            conn.exec_driver_sql(
                "INSERT INTO runs (id, name, created_at, config, policy, seed, version, next_seq)"
                " VALUES ('0123456789ab', 'old', CURRENT_TIMESTAMP, '{}', 'linux-5.18', 0, 'test', 3)"
            )
            conn.exec_driver_sql(
                "INSERT INTO events (run_id, seq, service, entity, kind, before, after, cycles, detail) VALUES"
                " ('0123456789ab', 1, 'cpu', 'cpu/0', 'cpu.set', NULL, '{\"v\": 1, \"a\": [1, 2]}', 1, NULL),"
                " ('0123456789ab', 2, 'cpu', 'cpu/0', 'cpu.set', '{\"v\": 1}', NULL, 1, '{\"why\": \"x\"}')"
            )
    finally:
        engine.dispose()
    yield store_url, "0123456789ab"


def _reference(engine: sa.Engine) -> tuple[set[str], list[str]]:
    """The JSON types of the event columns and the foreign keys of ``events``."""
    inspector = sa.inspect(engine)
    types = {type(c["type"]).__name__ for c in inspector.get_columns("events") if c["name"] in ("before", "after")}
    return types, [str(fk["name"]) for fk in inspector.get_foreign_keys("events")]


def test_migration_0004_keeps_the_events_and_downgrades(old_store_with_events: tuple[str, str]) -> None:
    """Upgrade from 0003 with events in the table, use it, and go back: the values stay,
    and 0003's column types and foreign key come back."""
    url, run_id = old_store_with_events
    pg = sa.make_url(url).get_backend_name() == "postgresql"
    engine = create_engine(url)
    try:
        assert _reference(engine) == ({"JSONB" if pg else "JSON"}, ["fk_events_run_id_runs"])
        with Store.open(url) as store:  # migrates 0003 -> 0004
            assert current_revision(url) == "0004"
            assert _reference(engine) == ({"JSON"}, [] if pg else ["fk_events_run_id_runs"])
            rows = store.events(run_id)
            assert [(e.before, e.after, e.detail) for e in rows] == [
                (None, {"v": 1, "a": [1, 2]}, None),
                ({"v": 1}, None, {"why": "x"}),
            ]
            store.append(run_id, [_t(after={"v": 3})])
            assert store.state_at(run_id) == {"cpu/0": {"v": 3}}
        downgrade(url, "0003")
        assert current_revision(url) == "0003"
        assert _reference(engine) == ({"JSONB" if pg else "JSON"}, ["fk_events_run_id_runs"])
        with engine.connect() as conn:
            after = conn.execute(sa.text("SELECT after FROM events ORDER BY seq")).scalars().all()
            if pg:  # the triggers went with the revision
                names = conn.execute(sa.text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal")).scalars()
                assert list(names) == []
        assert [a if pg or a is None else json.loads(a) for a in after] == [
            {"v": 1, "a": [1, 2]},
            None,
            {"v": 3},
        ]
        upgrade(url)
        assert current_revision(url) == "0004"
    finally:
        engine.dispose()


@pytest.mark.postgres
def test_postgres_plans_of_the_per_entity_and_origin_queries_use_their_indexes(pg_url: str) -> None:
    """EXPLAIN (PostgreSQL 15 docs, 14.1) of the queries the resume runs per entity
    (svasim.recovery ``cut_short_rollback``, ``_fold_entity``, ``_Descriptors``: entity
    with kind ``desc.queue``, entity up to a seq) and of the idempotence lookup
    (``Store._skip_committed``): index scans, not a scan of the run."""
    with Store.open(pg_url) as store:
        run = _run(store)
        batch: list[Transition] = []
        origin_seq = 0
        for i in range(6000):
            entity = f"desc/dsa0/{i}"
            batch += [_t(entity, "desc.queue", after={"i": i}), _t(f"wq/dsa0/{i % 4}", "wq.accept", after={"i": i})]
            batch += [_t(entity, "desc.complete", after={"s": 1})]
            if len(batch) >= 900:
                for t in batch:
                    origin_seq += 1
                    t.origin_seq = origin_seq
                store.append(run.id, batch, origin="w", retry=False)
                batch = []
        with store.engine.connect() as conn:
            conn.exec_driver_sql("ANALYZE events")
            c = sa.table("events", sa.column("run_id"), sa.column("seq"), sa.column("entity"), sa.column("kind"))
            o = sa.table("events", sa.column("run_id"), sa.column("seq"), sa.column("origin"), sa.column("origin_seq"))
            queries = {
                "ix_events_run_id_entity": [
                    sa.select(c.c.seq)
                    .where(c.c.run_id == run.id, c.c.entity == "desc/dsa0/77", c.c.kind == "desc.queue")
                    .order_by(c.c.seq),
                    sa.select(c.c.seq)
                    .where(c.c.run_id == run.id, c.c.entity == "desc/dsa0/77", c.c.seq <= 17000)
                    .order_by(c.c.seq),
                ],
                "uq_events_run_id_origin_origin_seq": [
                    sa.select(o.c.origin_seq, o.c.seq).where(
                        o.c.run_id == run.id, o.c.origin == "w", o.c.origin_seq.between(901, 1800)
                    )
                ],
            }
            for index, selects in queries.items():
                for q in selects:
                    plan = "\n".join(conn.execute(sa.text("EXPLAIN " + _sql(q, conn))).scalars())
                    assert f"using {index}" in plan.lower() or f"on {index}" in plan.lower(), plan
                    assert "Seq Scan" not in plan, plan


def _sql(query: Any, conn: sa.Connection) -> str:
    return str(query.compile(dialect=conn.dialect, compile_kwargs={"literal_binds": True}))


@pytest.mark.parametrize(
    "bad, error",
    [
        (lambda: _t(cause=10**6), ValueError),  # a cause seq not before its effect
        (lambda: _t(after={"x": object()}), TypeError),  # no JSON for it
    ],
    ids=["future-cause", "unencodable"],
)
def test_a_row_refused_midway_through_a_batch_leaves_nothing_written(store: Store, bad: Any, error: type) -> None:
    """Rows are encoded as they stream on PostgreSQL (``COPY ... FROM STDIN``, PostgreSQL
    15 docs, COPY: a failed COPY writes no row): one refused after hundreds were sent
    rolls the whole append back, seqs and counter included, and the next append goes on
    from where the log was."""
    run = _run(store)
    store.append(run.id, [_t()])
    batch = [_t(after={"i": i}) for i in range(700)] + [bad()] + [_t() for _ in range(5)]
    with pytest.raises(error):
        store.append(run.id, batch)
    assert all(t.seq is None for t in batch)
    assert store.get_run(run.id).next_seq == 2
    assert [e.seq for e in store.events(run.id, limit=None)] == [1]
    again = [_t(after={"i": i}, cause=1) for i in range(3)]
    store.append(run.id, again)
    assert [t.seq for t in again] == [2, 3, 4]
    assert [e.cause for e in store.events(run.id, limit=None)] == [None, 1, 1, 1]
