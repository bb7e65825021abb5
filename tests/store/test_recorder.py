"""The recorder: buffered appends, group commit, order, durability waits, failures."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator, Sequence
from typing import Any

import pytest

from svasim.model.transition import Transition
from svasim.store import Recorder, RecorderError, RecorderTimeoutError, RunInfo, Store

from .threads import in_threads


@pytest.fixture
def run(store: Store) -> RunInfo:
    return store.create_run(name=None, config={}, policy="linux-5.18", seed=1, version="0")


@pytest.fixture
def recorder(store: Store, run: RunInfo) -> Iterator[Recorder]:
    rec = Recorder(store, run.id)
    try:
        yield rec
    finally:
        rec.close(timeout=5)


def _t(i: int = 0, **kw: Any) -> Transition:
    return Transition("cpu", "cpu/0", "msr.pasid.write", after={"i": i}, **kw)


def _slow_and_flaky(
    monkeypatch: pytest.MonkeyPatch, store: Store, *, delay: float = 0.0, failures: int = 0
) -> list[int]:
    """Make store.append slower and fail its first ``failures`` calls; returns call sizes."""
    real = store.append
    calls: list[int] = []

    def append(
        run_id: str, transitions: Sequence[Transition], *, origin: str | None = None, retry: bool = True
    ) -> None:
        calls.append(len(transitions))
        time.sleep(delay)
        if len(calls) <= failures:
            raise ConnectionError(f"database away (call {len(calls)})")
        real(run_id, transitions, origin=origin, retry=retry)

    monkeypatch.setattr(store, "append", append)
    return calls


def test_recorder_group_commits_10000_transitions_from_4_threads(
    store: Store, run: RunInfo, recorder: Recorder
) -> None:
    def producer(w: int) -> None:
        for i in range(2500):  # one transition per call: the worst case for batching
            recorder.append([_t(w * 10_000 + i)])

    in_threads(producer, [(w,) for w in range(4)])
    recorder.flush(timeout=60)
    stats = recorder.stats()
    assert stats["appended"] == stats["committed"] == 10_000
    assert stats["pending"] == 0 and stats["failures"] == 0
    assert stats["batches"] <= 10_000 // 50, stats  # far fewer commits than transitions
    rows = store.events(run.id, limit=None)
    assert [r.seq for r in rows] == list(range(1, 10_001))


def test_waiters_in_many_threads_share_commits(store: Store, run: RunInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    calls = _slow_and_flaky(monkeypatch, store, delay=0.02)
    with Recorder(store, run.id, flush_interval=1.0) as rec:

        def request(w: int) -> None:
            for i in range(10):
                t = _t(w * 100 + i)
                rec.append([t])
                rec.wait_durable(t, timeout=30)
                assert t.seq is not None

        in_threads(request, [(w,) for w in range(8)])
        assert rec.stats()["committed"] == 80
    # Waiters do not wait for flush_interval (1 s) and commits carry several requests.
    assert len(calls) <= 40, calls


def test_appends_are_committed_in_append_order_across_threads(store: Store, run: RunInfo, recorder: Recorder) -> None:
    order: list[Transition] = []
    lock = threading.Lock()

    def producer(w: int) -> None:
        for i in range(300):
            batch = [_t(w * 1000 + i), _t(w * 1000 + i)]
            with lock:  # the order of append calls, as the recorder sees it
                recorder.append(batch)
                order.extend(batch)

    in_threads(producer, [(w,) for w in range(4)])
    recorder.flush(timeout=60)
    assert [t.seq for t in order] == list(range(1, len(order) + 1))


def test_append_only_buffers_and_flush_makes_everything_visible(store: Store, store_url: str, run: RunInfo) -> None:
    with Recorder(store, run.id, flush_interval=60) as rec:
        batch = [_t(i) for i in range(100)]
        rec.append(batch)
        time.sleep(0.05)
        # Within flush_interval and with nobody waiting, nothing is written yet.
        assert all(t.seq is None for t in batch)
        assert rec.stats()["committed"] == 0
        rec.flush(timeout=30)
        assert [t.seq for t in batch] == list(range(1, 101))
        with Store.open(store_url, migrate=False) as fresh:
            assert len(fresh.events(run.id, limit=None)) == 100


def test_pending_transitions_are_written_within_the_flush_interval(store: Store, run: RunInfo) -> None:
    with Recorder(store, run.id, flush_interval=0.01) as rec:
        t = _t()
        rec.append([t])
        deadline = time.monotonic() + 10
        while t.seq is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert t.seq == 1


def test_wait_durable_returns_once_the_row_is_visible_to_a_fresh_store(
    store: Store, store_url: str, run: RunInfo
) -> None:
    with Recorder(store, run.id, flush_interval=60) as rec:
        first, last = _t(1), _t(2, cause=None)
        rec.append([first])
        rec.append([last])
        rec.wait_durable(last, timeout=30)
        with Store.open(store_url, migrate=False) as fresh:
            rows = fresh.events(run.id)
        assert [(r.seq, r.after) for r in rows] == [(1, {"i": 1}), (2, {"i": 2})]
        assert (first.seq, last.seq) == (1, 2)
        rec.wait_durable(last, timeout=0)  # already committed: returns at once


def test_wait_durable_for_a_transition_never_appended_is_a_value_error(
    recorder: Recorder,
) -> None:
    recorder.append([_t()])
    with pytest.raises(ValueError, match="not appended"):
        recorder.wait_durable(_t(), timeout=30)


def test_before_ack_waits_only_with_commit_durability(
    store: Store, run: RunInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_and_flaky(monkeypatch, store, delay=0.3)
    with Recorder(store, run.id, durability="batch") as rec:
        t = _t()
        rec.append([t])
        rec.before_ack(t, timeout=30)
        assert t.seq is None  # acknowledged before it is durable: that is "batch"
    assert t.seq == 1  # close() wrote it
    with Recorder(store, run.id, durability="commit") as rec:
        t = _t()
        rec.append([t])
        rec.before_ack(t, timeout=30)
        assert t.seq == 2


def test_a_failed_write_is_retried_and_keeps_the_order(
    store: Store, run: RunInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _slow_and_flaky(monkeypatch, store, failures=3)
    with Recorder(store, run.id) as rec:
        first = [_t(i) for i in range(5)]
        rec.append(first)
        time.sleep(0.05)  # let the first write fail at least once
        second = [_t(i) for i in range(5, 8)]
        rec.append(second)
        rec.flush(timeout=30)
        stats = rec.stats()
    assert stats["failures"] == 3 and stats["committed"] == 8
    assert [t.seq for t in first + second] == list(range(1, 9))
    assert len(calls) >= 4
    assert [r.after["i"] for r in store.events(run.id)] == list(range(8))


def test_a_persistent_failure_reaches_waiters_as_a_clear_error(
    store: Store, run: RunInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    _slow_and_flaky(monkeypatch, store, failures=10**9)
    rec = Recorder(store, run.id)
    t = _t()
    rec.append([t])
    with pytest.raises(RecorderError, match="database away") as info:
        rec.wait_durable(t, timeout=0.3)
    assert isinstance(info.value.__cause__, ConnectionError)
    with pytest.raises(RecorderError, match="database away"):
        rec.flush(timeout=0.1)
    assert t.seq is None
    with pytest.raises(RecorderError, match="1 transitions not committed"):
        rec.close(timeout=0.3)
    rec.close()  # idempotent


def test_a_batch_that_can_never_be_written_fails_waiters_at_once(store: Store) -> None:
    rec = Recorder(store, "ffffffffffff")  # no such run
    rec.append([_t()])
    started = time.monotonic()
    with pytest.raises(RecorderError, match="no run with id 'ffffffffffff'"):
        rec.flush()  # no timeout: still does not hang
    assert time.monotonic() - started < 10
    with pytest.raises(RecorderError):
        rec.close(timeout=0.2)


def test_a_slow_writer_is_a_timeout_not_a_failure(store: Store, run: RunInfo, monkeypatch: pytest.MonkeyPatch) -> None:
    _slow_and_flaky(monkeypatch, store, delay=0.5)
    with Recorder(store, run.id) as rec:
        rec.append([_t()])
        with pytest.raises(RecorderTimeoutError):
            rec.flush(timeout=0.05)


def test_close_writes_what_is_pending_stops_the_writer_and_is_idempotent(store: Store, run: RunInfo) -> None:
    rec = Recorder(store, run.id, flush_interval=60)
    rec.append([_t(i) for i in range(10)])
    rec.close()
    assert rec.stats() == {
        "appended": 10,
        "committed": 10,
        "pending": 0,
        "batches": 1,
        "failures": 0,
    }
    assert store.get_run(run.id).event_count == 10
    rec.close()
    with pytest.raises(RecorderError, match="closed"):
        rec.append([_t()])


def test_large_backlogs_are_written_in_transactions_of_at_most_max_batch(
    store: Store, run: RunInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = _slow_and_flaky(monkeypatch, store)
    with Recorder(store, run.id, max_batch=100, flush_interval=60) as rec:
        rec.append([_t(i) for i in range(250)])
        rec.flush(timeout=30)
    assert calls == [100, 100, 50]


def test_recorder_works_on_an_in_memory_sqlite_store() -> None:
    with Store.open("sqlite://") as store:
        run = store.create_run(name=None, config={}, policy="p", seed=1, version="0")
        with Recorder(store, run.id) as rec:
            in_threads(lambda: [rec.append([_t()]) for _ in range(500)], [()] * 4)
            rec.flush(timeout=30)
        assert store.get_run(run.id).event_count == 2000


def test_invalid_settings_are_rejected(store: Store, run: RunInfo) -> None:
    with pytest.raises(ValueError, match="durability"):
        Recorder(store, run.id, durability="sometimes")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="flush_interval"):
        Recorder(store, run.id, flush_interval=0)
    with pytest.raises(ValueError, match="max_batch"):
        Recorder(store, run.id, max_batch=0)


def test_a_commit_whose_answer_was_lost_is_not_written_twice_on_retry(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store commits, then the connection drops before the recorder hears it."""
    run = store.create_run(name=None, config={}, policy="p", seed=0, version="t")
    real = store.append
    calls = []

    def append(
        run_id: str, transitions: Sequence[Transition], *, origin: str | None = None, retry: bool = True
    ) -> None:
        calls.append(len(transitions))
        real(run_id, transitions, origin=origin, retry=retry)
        if len(calls) == 1:
            for t in transitions:
                t.seq = None  # the answer never arrived
            raise ConnectionError("connection reset after commit")

    monkeypatch.setattr(store, "append", append)
    rec = Recorder(store, run.id, flush_interval=0.001)
    ts = [_t(i) for i in range(5)]
    rec.append(ts)
    rec.flush(timeout=30)
    rec.close()
    assert len(calls) >= 2
    events = store.events(run.id)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert [t.seq for t in ts] == [1, 2, 3, 4, 5]


def test_a_failed_check_in_a_worker_thread_fails_the_test() -> None:
    """The helper the threaded tests use re-raises what a worker raised."""

    def worker(i: int) -> int:
        assert i != 2, "worker 2 saw a bad seq"
        return i

    assert in_threads(worker, [(0,), (1,)]) == [0, 1]
    with pytest.raises(AssertionError, match="worker 2"):
        in_threads(worker, [(i,) for i in range(4)])


def test_a_waiter_writing_for_itself_never_overlaps_the_writer_thread(
    store: Store, run: RunInfo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The writer thread lets a young batch grow for flush_interval; a waiter that finds
    # nobody writing meanwhile writes the pending transitions itself. When the writer
    # wakes during that write it must not take what arrived since and write it too: its
    # transitions' causes would not be committed yet (the store refuses such a batch),
    # and the log's order would be up to two racing transactions.
    real = store.append
    writing = threading.Lock()
    overlaps: list[int] = []

    def append(run_id: str, transitions: Sequence[Transition], **kw: Any) -> None:
        if not writing.acquire(blocking=False):
            overlaps.append(len(transitions))
            writing.acquire()
        try:
            time.sleep(0.3)  # longer than flush_interval: the writer wakes mid-write
            real(run_id, transitions, **kw)
        finally:
            writing.release()

    monkeypatch.setattr(store, "append", append)
    rec = Recorder(store, run.id, flush_interval=0.1)
    try:
        first = _t(0)
        rec.append([first])  # wakes the writer, which waits up to 0.1 s for more
        waiter = threading.Thread(target=rec.wait_durable, args=(first,))
        waiter.start()  # finds nobody writing: writes [first] itself for 0.3 s
        time.sleep(0.05)
        second = _t(1, cause=first)
        rec.append([second])  # arrives while the waiter writes
        rec.wait_durable(second, timeout=10)
        waiter.join(10)
    finally:
        rec.close(timeout=10)
    assert overlaps == []
    assert second.seq == first.seq + 1 and second.seq is not None
    assert [e.after for e in store.events(run.id, limit=None)] == [{"i": 0}, {"i": 1}]


def test_a_producer_faster_than_the_store_waits_once_the_backlog_passes_its_bound(store: Store, run: RunInfo) -> None:
    # Batch durability acknowledges at once; without a bound a fast producer would hold
    # every uncommitted transition in memory (benchmarks/scale.py saw 145,030 of them).
    gate = threading.Event()
    real = store.append

    def slow_append(*args: Any, **kw: Any) -> Any:
        gate.wait(10)
        return real(*args, **kw)

    store.append = slow_append  # type: ignore[method-assign]
    rec = Recorder(store, run.id, durability="batch", max_batch=10)
    done = threading.Event()

    def produce() -> None:
        for i in range(100):
            rec.append([_t(i)])
        done.set()

    t = threading.Thread(target=produce)
    t.start()
    assert not done.wait(0.5)  # held back: the store has committed nothing yet
    stats = rec.stats()
    assert stats["appended"] - stats["committed"] <= Recorder.BACKLOG_BATCHES * 10 + 1
    gate.set()
    assert done.wait(10)
    t.join()
    rec.close()
    assert rec.stats()["committed"] == 100


def test_acknowledged_requests_one_after_another_never_wake_the_writer(store: Store, run: RunInfo) -> None:
    """Leader/follower group commit: a request's own waiter writes its transitions, and
    the writer thread, looking by itself while appends keep coming, is not woken for them
    (each wake-up would cost the request two thread switches)."""
    rec = Recorder(store, run.id, flush_interval=60)
    wakes: list[int] = []
    real_notify = rec._work.notify

    def notify(n: int = 1) -> None:
        wakes.append(n)
        real_notify(n)

    rec._work.notify = notify  # type: ignore[method-assign]
    try:
        for i in range(200):
            inp = _t(i)
            rec.append([inp])
            rec.append([_t(i, cause=inp)])
            last = _t(i, cause=inp)
            rec.append([last])
            rec.wait_durable(last)
            assert last.seq == 3 * (i + 1)
    finally:
        rec._work.notify = real_notify  # type: ignore[method-assign]
        rec.close(timeout=10)
    assert len(wakes) <= 1  # at most the first append, if the writer was asleep by then


def test_what_nobody_waits_for_is_written_while_requests_keep_coming(store: Store, run: RunInfo) -> None:
    """The writer is not woken per request, yet a transition nobody waits for (with commit
    durability) is still written by the writer within a few flush intervals."""
    with Recorder(store, run.id, flush_interval=0.01) as rec:
        for i in range(20):
            t = _t(i)
            rec.append([t])
            rec.wait_durable(t)
        lone = _t(99)
        rec.append([lone])
        deadline = time.monotonic() + 10
        while lone.seq is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert lone.seq == 21


def test_a_writer_asleep_is_woken_by_the_next_append(store: Store, run: RunInfo) -> None:
    """Once a whole flush interval went by without an append the writer sleeps until
    woken; the next append wakes it, so batch durability still commits on its own."""
    with Recorder(store, run.id, durability="batch", flush_interval=0.01) as rec:
        first = _t(1)
        rec.append([first])
        deadline = time.monotonic() + 10
        while (first.seq is None or not rec._idle) and time.monotonic() < deadline:
            time.sleep(0.005)
        assert first.seq == 1 and rec._idle
        second = _t(2)
        rec.append([second])
        while second.seq is None and time.monotonic() < deadline:
            time.sleep(0.005)
        assert second.seq == 2
