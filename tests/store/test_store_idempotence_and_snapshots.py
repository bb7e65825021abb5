"""Idempotent appends and snapshot-backed time travel, on both backends."""

from __future__ import annotations

from svasim.model.transition import Transition
from svasim.store import Recorder, Store
from svasim.store.snapshots import Snapshotter


def chain(n: int, start: int = 1) -> list[Transition]:
    out: list[Transition] = []
    prev = None
    for i in range(n):
        t = Transition("cpu", f"thing/{i % 7}", "thing.set", None, {"v": start + i}, prev, 1)
        t.origin_seq = start + i
        out.append(t)
        prev = t
    return out


def new_run(store: Store) -> str:
    return store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="test").id


def test_a_retried_append_whose_commit_went_through_is_not_written_twice(store):
    run = new_run(store)
    batch = chain(5)
    store.append(run, batch, origin="w1")
    seqs = [t.seq for t in batch]
    for t in batch:  # the writer never learnt that the commit succeeded
        t.seq = None
    store.append(run, batch, origin="w1")
    assert [t.seq for t in batch] == seqs
    assert [e.seq for e in store.events(run)] == [1, 2, 3, 4, 5]


def test_a_retry_that_grew_appends_only_its_new_tail(store):
    run = new_run(store)
    first = chain(3)
    store.append(run, first, origin="w1")
    for t in first:
        t.seq = None
    more = chain(2, start=4)
    more[0].cause = first[-1]
    store.append(run, first + more, origin="w1")
    events = store.events(run)
    assert [e.seq for e in events] == [1, 2, 3, 4, 5]
    assert events[3].cause == 3 and [t.seq for t in more] == [4, 5]


def test_other_writers_origins_do_not_collide(store):
    run = new_run(store)
    store.append(run, chain(3), origin="w1")
    store.append(run, chain(3), origin="w2")
    assert len(store.events(run)) == 6


def _origins(store: Store, run: str) -> list[tuple[int, str | None, int | None]]:
    import sqlalchemy as sa

    e = sa.table("events", sa.column("run_id"), sa.column("seq"), sa.column("origin"), sa.column("origin_seq"))
    with store._engine.connect() as conn:
        q = sa.select(e.c.seq, e.c.origin, e.c.origin_seq).where(e.c.run_id == run).order_by(e.c.seq)
        return [tuple(r) for r in conn.execute(q)]


def test_only_the_head_of_an_append_names_its_writer(store):
    """One index entry per transaction, not per row: the head row has the origin, every
    row its origin_seq."""
    run = new_run(store)
    store.append(run, chain(3), origin="w1")
    store.append(run, [Transition("cpu", "x/1", "x.set", None, {"v": 1}, None, 1)])  # no origin at all
    store.append(run, chain(2, start=4), origin="w1")
    assert _origins(store, run) == [
        (1, "w1", 1), (2, None, 2), (3, None, 3), (4, None, None), (5, "w1", 4), (6, None, 5)
    ]  # fmt: skip


def test_a_retry_finds_its_committed_rows_among_other_writers_appends(store):
    """The rows of a committed append are its head and the rows right after it with the
    next origin_seqs; another writer's append, or one without an origin, ends them."""
    run = new_run(store)
    first, second = chain(3), chain(2, start=4)
    store.append(run, first, origin="w1")
    store.append(run, chain(2), origin="w2")  # w2's origin_seqs 1, 2 follow w1's rows
    store.append(run, second, origin="w1")
    store.append(run, [Transition("cpu", "x/1", "x.set", None, {"v": 1}, None, 1)])
    seqs = [t.seq for t in first + second]
    assert seqs == [1, 2, 3, 6, 7]
    for t in first + second:  # neither commit was heard of
        t.seq = None
    tail = chain(1, start=6)
    store.append(run, first + second + tail, origin="w1")
    assert [t.seq for t in first + second] == seqs
    assert tail[0].seq == 9 and len(store.events(run)) == 9


def test_a_retry_over_rows_that_each_name_their_writer_finds_them_all(store):
    """Rows written before only the head named the writer (every row has its origin) are
    each a head of their own: a retry still finds every one."""
    import sqlalchemy as sa

    run = new_run(store)
    batch = chain(4)
    store.append(run, batch, origin="w1")
    e = sa.table("events", sa.column("run_id"), sa.column("origin"))
    with store._engine.begin() as conn:
        conn.execute(sa.update(e).where(e.c.run_id == run).values(origin="w1"))
    assert [o for _, o, _ in _origins(store, run)] == ["w1"] * 4
    seqs = [t.seq for t in batch]
    for t in batch:
        t.seq = None
    tail = chain(1, start=5)
    store.append(run, batch + tail, origin="w1")
    assert [t.seq for t in batch] == seqs and tail[0].seq == 5


def test_recorder_appends_carry_its_origin(store):
    run = new_run(store)
    rec = Recorder(store, run)
    ts = chain(10)
    for t in ts:
        t.origin_seq = None
    rec.append(ts)
    rec.flush()
    rec.close()
    assert [t.origin_seq for t in ts] == list(range(1, 11))


def test_state_at_a_late_point_folds_from_the_latest_snapshot(store):
    store.snapshot_every = 100
    run = new_run(store)
    for i in range(0, 1000, 250):
        store.append(run, chain(250, start=i + 1))
    full = store.state_at(run)
    folded_first = store.stats["events_folded"]
    assert folded_first == 1000
    assert full == Store.fold_events_for_test(store, run, 1000)
    again = store.state_at(run, 950)
    assert store.stats["events_folded"] - folded_first == 50  # from the snapshot at 900
    plain = Store.fold_events_for_test(store, run, 950)
    assert again == plain


def test_state_at_every_point_matches_a_fold_from_the_start(store):
    store.snapshot_every = 7
    run = new_run(store)
    store.append(run, chain(40))
    for seq in (1, 6, 7, 8, 21, 40):
        assert store.state_at(run, seq) == Store.fold_events_for_test(store, run, seq)


def test_a_filtered_follower_skips_what_it_scanned_but_not_what_came_meanwhile(store):
    run = new_run(store)
    store.append(run, chain(5))
    polls = []
    hit = Transition("cpu", "special/1", "special.set", None, {"v": 1})

    def active() -> bool:
        polls.append(1)
        if len(polls) == 2:
            store.append(run, [hit])  # committed between two polls
        return len(polls) <= 3

    batches = list(store.follow(run, after_seq=0, kind_prefix="special", poll=0, active=active))
    assert [[e.seq for e in b] for b in batches] == [[], [6], []]


def test_the_snapshotter_folds_each_event_once_from_the_state_it_keeps(store):
    run = new_run(store)
    snapper = Snapshotter(store, run, 100)
    store.append(run, chain(99))
    assert not snapper.step(), "no multiple of 100 reached yet"
    store.append(run, chain(131, start=100))  # to 230
    assert snapper.step() and not snapper.step()
    assert store.stats["events_folded"] == 230
    # Deletions and creations too, so the kept state is more than a running update.
    gone = Transition("cpu", "thing/3", "thing.free", {"v": 1}, None, None, 1)
    born = Transition("cpu", "other/1", "other.new", None, {"w": 2}, None, 1)
    gone.origin_seq, born.origin_seq = 231, 232
    store.append(run, [gone, born])
    store.append(run, chain(170, start=233))  # to 402
    assert snapper.step()
    assert store.stats["events_folded"] == 402, "the second fold starts where the first ended"
    assert [store.latest_snapshot_seq(run, q) for q in (150, 250, 350, 402)] == [100, 200, 300, 400]
    for seq in (100, 200, 300, 400):
        snap = store.state_at(run, seq)  # from its own snapshot: nothing left to fold
        assert snap == Store.fold_events_for_test(store, run, seq)
    assert store.stats["events_folded"] == 402
    assert snapper.taken == 2


def test_fold_forward_from_a_state_matches_a_fold_from_the_start(store):
    run = new_run(store)
    store.append(run, chain(50))
    state = store.state_at(run, 20)
    assert store.fold_forward(run, state, 20, 35) == 35
    assert dict(sorted(state.items())) == Store.fold_events_for_test(store, run, 35)
    assert store.fold_forward(run, state, 35) == 50  # None: to the end
    assert store.fold_forward(run, state, 50) == 50  # nothing new
    assert dict(sorted(state.items())) == Store.fold_events_for_test(store, run, 50)
