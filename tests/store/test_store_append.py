"""The write path: gap-free consecutive seqs, causes, atomicity, concurrent writers."""

from __future__ import annotations

import multiprocessing
import threading
from typing import Any

import pytest
import sqlalchemy as sa

from svasim.model.transition import Transition
from svasim.store import RunInfo, Store, UnknownRunError

from .threads import in_threads


def _run(store: Store) -> RunInfo:
    return store.create_run(name=None, config={}, policy="linux-5.18", seed=1, version="0")


def _t(entity: str = "cpu/0", kind: str = "msr.pasid.write", **kw: Any) -> Transition:
    return Transition("cpu", entity, kind, **kw)


def _next_seq(store: Store, run_id: str) -> int:
    return store.get_run(run_id).next_seq


def test_seqs_are_consecutive_and_gap_free_across_appends(store: Store) -> None:
    run = _run(store)
    batches = [[_t(after={"i": i}) for i in range(n)] for n in (1, 5, 3, 100)]
    for batch in batches:
        store.append(run.id, batch)
    seqs = [t.seq for batch in batches for t in batch]
    assert seqs == list(range(1, 110))
    assert [e.seq for e in store.events(run.id)] == seqs
    assert [e.after for e in store.events(run.id)] == [t.after for b in batches for t in b]
    assert _next_seq(store, run.id) == 110


def test_runs_have_independent_sequences(store: Store) -> None:
    a, b = _run(store), _run(store)
    store.append(a.id, [_t(), _t()])
    batch = [_t()]
    store.append(b.id, batch)
    assert batch[0].seq == 1


def test_append_of_nothing_does_nothing(store: Store) -> None:
    run = _run(store)
    store.append(run.id, [])
    assert _next_seq(store, run.id) == 1


def test_rows_keep_every_field(store: Store) -> None:
    run = _run(store)
    t = Transition(
        "iommu",
        "pasid/7",
        "pasid.alloc",
        before=None,
        after={"mm": 3, "bits": [1, 2], "nested": {"a": None}},
        cycles=2**40,
    )
    store.append(run.id, [t])
    (row,) = store.events(run.id)
    assert (row.run_id, row.seq, row.service, row.entity, row.kind) == (
        run.id,
        1,
        "iommu",
        "pasid/7",
        "pasid.alloc",
    )
    assert row.before is None
    assert row.after == {"mm": 3, "bits": [1, 2], "nested": {"a": None}}
    assert (row.cause, row.cycles, row.is_input) == (None, 2**40, False)


def test_before_and_after_none_are_stored_as_sql_null(store: Store) -> None:
    run = _run(store)
    store.append(run.id, [_t(before=None, after=None), _t(before={}, after={})])
    with store.engine.connect() as conn:
        nulls = conn.exec_driver_sql("SELECT seq FROM events WHERE before IS NULL AND after IS NULL").all()
    assert [r.seq for r in nulls] == [1]


def test_causes_resolve_to_seqs_for_pending_committed_and_int_causes(store: Store) -> None:
    run = _run(store)
    store.append(run.id, [_t(), _t()])  # seqs 1, 2
    committed = _t()
    store.append(run.id, [committed])  # seq 3
    root = _t(kind="input")
    batch = [
        root,  # 4
        _t(cause=root),  # 5: pending object in this batch
        _t(cause=committed),  # 6: a Transition committed earlier
        _t(cause=2),  # 7: an int seq (e.g. from gRPC metadata)
        _t(),  # 8: no cause
    ]
    batch.append(_t(cause=batch[1]))  # 9: chain inside the batch
    store.append(run.id, batch)
    causes = {e.seq: e.cause for e in store.events(run.id, after_seq=3)}
    assert causes == {4: None, 5: 4, 6: 3, 7: 2, 8: None, 9: 5}
    assert [t.cause_seq() for t in batch] == [None, 4, 3, 2, None, 5]


@pytest.mark.parametrize(
    "make_batch, message",
    [
        (lambda: [_t(cause=_t())], "neither committed nor in this batch"),
        (lambda: (lambda t: [_t(cause=t), t])(_t()), "comes before its cause"),
        (lambda: (lambda t: [t, t])(_t()), "appears twice"),
        (lambda: [_t(cause=0)], "seqs start at 1"),
        (lambda: [_t(cause=10**6)], "not before it"),
    ],
    ids=["pending-cause-elsewhere", "cause-after-effect", "duplicate", "zero", "future-int"],
)
def test_invalid_causes_are_value_errors_and_change_nothing(store: Store, make_batch: Any, message: str) -> None:
    run = _run(store)
    store.append(run.id, [_t()])
    batch = make_batch()
    with pytest.raises(ValueError, match=message):
        store.append(run.id, batch)
    assert all(t.seq is None for t in batch)
    assert _next_seq(store, run.id) == 2


def test_appending_a_committed_transition_again_is_an_error(store: Store) -> None:
    run = _run(store)
    t = _t()
    store.append(run.id, [t])
    with pytest.raises(ValueError, match="already at seq 1"):
        store.append(run.id, [t])


def test_append_to_an_unknown_run_fails_without_setting_seqs(store: Store) -> None:
    run = _run(store)
    batch = [_t(), _t()]
    with pytest.raises(UnknownRunError, match="no run with id 'ffffffffffff'"):
        store.append("ffffffffffff", batch)
    assert all(t.seq is None for t in batch)
    assert _next_seq(store, run.id) == 1


def test_failed_insert_rolls_back_the_reservation(store: Store) -> None:
    run = _run(store)
    store.append(run.id, [_t()])
    # The seqs are reserved first, then the INSERT fails on the NOT NULL entity.
    batch = [_t(), _t(entity=None), _t()]  # type: ignore[arg-type]
    with pytest.raises(sa.exc.IntegrityError):
        store.append(run.id, batch)
    assert all(t.seq is None for t in batch)
    assert _next_seq(store, run.id) == 2
    retry = [_t(), _t()]
    store.append(run.id, retry)
    assert [t.seq for t in retry] == [2, 3]


class _CommitFails:
    """A pooled driver connection whose COMMIT fails (everything else passes through)."""

    def __init__(self, raw: Any) -> None:
        self._raw = raw

    def commit(self) -> None:
        raise RuntimeError("disk on fire")

    def __getattr__(self, name: str) -> Any:
        return getattr(self._raw, name)


def test_failed_commit_leaves_no_seq_and_no_gap(store: Store, monkeypatch: pytest.MonkeyPatch) -> None:
    run = _run(store)
    store.append(run.id, [_t()])
    # The append path keeps its connection between transactions; wrap the one it takes.
    real = store._take_writer
    monkeypatch.setattr(store, "_take_writer", lambda: _CommitFails(real()))
    batch = [_t(), _t()]
    with pytest.raises(RuntimeError, match="disk on fire"):
        store.append(run.id, batch)
    monkeypatch.undo()
    assert store._writers == []  # a connection whose transaction failed is not kept
    assert all(t.seq is None for t in batch)
    assert _next_seq(store, run.id) == 2
    store.append(run.id, batch)
    assert [t.seq for t in batch] == [2, 3]
    assert [e.seq for e in store.events(run.id)] == [1, 2, 3]


def test_appends_reuse_their_connection_and_close_gives_it_back(store: Store) -> None:
    run = _run(store)
    store.append(run.id, [_t()])
    kept = list(store._writers)
    assert len(kept) == 1
    store.append(run.id, [_t(), _t()])
    assert store._writers == kept  # the same connection, not a new checkout
    store.close()
    assert store._writers == []
    batch = [_t()]
    store.append(run.id, batch)  # a closed store's engine still opens connections
    assert batch[0].seq == 4
    assert store._writers == []  # but keeps none


WORKERS, BATCHES, SIZE = 4, 25, 8


def _append_batches(store: Store, run_id: str, worker: int) -> None:
    for b in range(BATCHES):
        batch = [_t(entity=f"w{worker}", after={"w": worker, "b": b, "i": i}) for i in range(SIZE)]
        for i in range(1, SIZE):
            batch[i].cause = batch[i - 1]
        store.append(run_id, batch)
        assert [t.seq for t in batch] == list(range(batch[0].seq, batch[0].seq + SIZE))  # type: ignore[operator]


def _check_one_sequence(store: Store, run_id: str) -> None:
    """One gap-free sequence, each batch contiguous and in list order, causes inside it."""
    total = WORKERS * BATCHES * SIZE
    rows = store.events(run_id, limit=None)
    assert [r.seq for r in rows] == list(range(1, total + 1))
    assert store.get_run(run_id).next_seq == total + 1
    by_batch: dict[tuple[int, int], list[Any]] = {}
    for r in rows:
        by_batch.setdefault((r.after["w"], r.after["b"]), []).append(r)
    assert len(by_batch) == WORKERS * BATCHES
    for batch in by_batch.values():
        assert [r.after["i"] for r in batch] == list(range(SIZE))
        assert [r.seq for r in batch] == list(range(batch[0].seq, batch[0].seq + SIZE))
        assert [r.cause for r in batch[1:]] == [r.seq for r in batch[:-1]]


def test_threads_appending_concurrently_share_one_gap_free_sequence(store: Store) -> None:
    run = _run(store)
    barrier = threading.Barrier(WORKERS)

    def worker(w: int) -> None:
        barrier.wait()
        _append_batches(store, run.id, w)

    in_threads(worker, [(w,) for w in range(WORKERS)])
    _check_one_sequence(store, run.id)


def test_threads_on_an_in_memory_sqlite_store_share_one_sequence() -> None:
    with Store.open("sqlite://") as store:
        run = _run(store)
        in_threads(_append_batches, [(store, run.id, w) for w in range(WORKERS)])
        _check_one_sequence(store, run.id)


def _append_in_process(url: str, run_id: str, worker: int, start: Any) -> None:
    store = Store.open(url, migrate=False)
    try:
        start.wait(60)  # all processes are set up: contend from here
        _append_batches(store, run_id, worker)
    finally:
        store.close()


def test_processes_appending_concurrently_share_one_gap_free_sequence(store: Store) -> None:
    run = _run(store)
    url = store.url.render_as_string(hide_password=False)
    ctx = multiprocessing.get_context("spawn")
    start = ctx.Barrier(WORKERS)
    procs = [ctx.Process(target=_append_in_process, args=(url, run.id, w, start)) for w in range(WORKERS)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(120)
    assert [p.exitcode for p in procs] == [0] * WORKERS
    _check_one_sequence(store, run.id)


def test_fields_json_can_hold_come_back_as_the_same_values(store: Store) -> None:
    # orjson encodes the common case; what it refuses (integers past 64 bits, lone
    # surrogates) goes through json, so every value json stored is still stored.
    run = _run(store)
    fields = [
        {"addr": 2**64 - 1, "neg": -(2**63), "s": "é ü 🙂", "nested": {"l": [1, [2, None]], "t": True}},
        {"big": 2**70, "k": 1},
    ]
    if store.engine.dialect.name == "sqlite":  # PostgreSQL's JSONB refuses a lone surrogate
        fields.append({"lone": "\ud800", "k": 2})
    store.append(run.id, [_t(after=f) for f in fields] + [_t(after={3: "int key"})])
    assert [e.after for e in store.events(run.id)] == [*fields, {"3": "int key"}]
