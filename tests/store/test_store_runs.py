"""Runs: creation, lookup, listing, deletion, and get-or-create under races."""

from __future__ import annotations

import multiprocessing
import re
import threading
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from svasim.model.transition import Transition
from svasim.store import RunExistsError, RunInfo, Store, StoreNotFoundError, UnknownRunError

from .threads import in_threads

RUN_ARGS: dict[str, Any] = {
    "config": {"cpus": 4, "devices": ["dsa0"]},
    "policy": "linux-5.18",
    "seed": 7,
}


def _run(store: Store, name: str | None = None, **kw: Any) -> RunInfo:
    return store.create_run(name=name, version="0.1.0", **{**RUN_ARGS, **kw})


def test_create_run_stores_its_settings_and_defaults_the_name(store: Store) -> None:
    before = datetime.now(UTC)
    run = _run(store)
    assert re.fullmatch(r"[0-9a-f]{12}", run.id)
    assert run.name == f"run-{run.id}"
    assert run.config == RUN_ARGS["config"]
    assert (run.policy, run.seed, run.version) == ("linux-5.18", 7, "0.1.0")
    assert run.parent_run_id is None
    assert run.next_seq == 1 and run.event_count == 0
    assert run.created_at.tzinfo is not None
    assert before - timedelta(seconds=5) <= run.created_at <= datetime.now(UTC)


def test_create_run_refuses_a_taken_name(store: Store) -> None:
    _run(store, "baseline")
    with pytest.raises(RunExistsError, match="baseline"):
        _run(store, "baseline")


def test_create_run_with_parent_links_them_and_rejects_unknown_parents(store: Store) -> None:
    parent = _run(store, "parent")
    child = _run(store, "what-if", parent_run_id=parent.id, policy="eager-switch-mm")
    assert child.parent_run_id == parent.id
    with pytest.raises(UnknownRunError):
        _run(store, "orphan", parent_run_id="000000000000")


def test_get_run_finds_by_id_or_name_and_raises_a_clear_key_error(store: Store) -> None:
    run = _run(store, "named")
    assert store.get_run(run.id) == run
    assert store.get_run("named") == run
    with pytest.raises(KeyError) as info:
        store.get_run("nope")
    assert str(info.value) == "no run with id or name 'nope'"


def test_get_run_prefers_the_id_when_a_name_looks_like_another_id(store: Store) -> None:
    first = _run(store)
    second = _run(store, first.id)  # named like the first run's id
    assert store.get_run(first.id).id == first.id
    assert store.get_run(second.id).name == first.id


def test_list_runs_gives_exact_event_counts(store: Store) -> None:
    a, _ = _run(store, "a"), _run(store, "b")
    store.append(a.id, [Transition("cpu", "cpu/0", "k") for _ in range(5)])
    store.append(a.id, [Transition("cpu", "cpu/0", "k") for _ in range(2)])
    runs = {r.name: r for r in store.list_runs()}
    assert set(runs) == {"a", "b"}
    assert runs["a"].event_count == len(store.events(a.id)) == 7
    assert runs["b"].event_count == 0


def test_delete_run_removes_its_events_and_only_its_events(store: Store) -> None:
    a, b = _run(store, "a"), _run(store, "b")
    child = _run(store, "child", parent_run_id=a.id)
    store.append(a.id, [Transition("cpu", "cpu/0", "k") for _ in range(3)])
    store.append(b.id, [Transition("cpu", "cpu/0", "k")])
    store.delete_run(a.id)
    with pytest.raises(UnknownRunError):
        store.get_run(a.id)
    assert store.events(a.id) == []
    with store.engine.connect() as conn:
        left = conn.exec_driver_sql("SELECT run_id, seq FROM events").all()
    assert [tuple(r) for r in left] == [(b.id, 1)]
    assert store.get_run(child.id).parent_run_id is None
    with pytest.raises(UnknownRunError):
        store.delete_run(a.id)


def test_get_or_create_run_creates_once_then_returns_the_same_run(store: Store) -> None:
    first = store.get_or_create_run("shared", version="1", **RUN_ARGS)
    again = store.get_or_create_run("shared", version="2", **RUN_ARGS)
    assert again == first
    assert again.version == "1"


def test_get_or_create_run_race_between_threads_yields_one_run(store: Store) -> None:
    barrier = threading.Barrier(8)

    def racer() -> str:
        barrier.wait()
        return store.get_or_create_run("race", version="1", **RUN_ARGS).id

    ids = in_threads(racer, [()] * 8)
    assert len(ids) == 8 and len(set(ids)) == 1
    assert [r.name for r in store.list_runs()] == ["race"]


def _get_or_create_in_process(url: str, start: Any, out: Any) -> None:
    store = Store.open(url, migrate=False)
    try:
        start.wait(60)  # all processes set up: race from here
        run = store.get_or_create_run("race", version="1", **RUN_ARGS)
        out.put(run.id)
    finally:
        store.close()


def test_get_or_create_run_race_between_processes_yields_one_run(store: Store) -> None:
    url = store.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    start, out = ctx.Barrier(3), ctx.Queue()
    procs = [ctx.Process(target=_get_or_create_in_process, args=(url, start, out)) for _ in range(3)]
    for p in procs:
        p.start()
    ids = [out.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(60)
    assert [p.exitcode for p in procs] == [0, 0, 0]
    assert len(set(ids)) == 1
    assert [r.id for r in store.list_runs()] == ids[:1]


def test_list_runs_lists_the_newest_first(store: Store) -> None:
    names = [_run(store, f"r{i}").name for i in range(4)]
    assert [r.name for r in store.list_runs()] == names[::-1]


def test_opening_without_create_refuses_a_missing_sqlite_file_and_creates_nothing(tmp_path: Any) -> None:
    path = tmp_path / "typo.db"
    with pytest.raises(StoreNotFoundError, match="no store"):
        Store.open(f"sqlite:///{path}", create=False)
    assert not path.exists()
    with pytest.raises(StoreNotFoundError):
        Store.open("sqlite://", create=False)


def test_opening_without_create_refuses_a_database_that_is_not_a_store(store_url: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(store_url)
    with engine.begin() as conn:  # a database, but nothing of svasim in it
        conn.exec_driver_sql("CREATE TABLE unrelated (x INTEGER)")
    engine.dispose()
    with pytest.raises(StoreNotFoundError, match="no svasim schema"):
        Store.open(store_url, create=False)
    Store.open(store_url).close()  # an ordinary open migrates it
    with Store.open(store_url, create=False) as store:
        assert store.list_runs() == []
