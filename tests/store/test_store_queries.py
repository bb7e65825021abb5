"""Reading a run: event filters, and state at any point by folding."""

from __future__ import annotations

from typing import Any

import pytest

from svasim.model.transition import Transition
from svasim.store import EventFilter, EventRow, SeqOutOfRangeError, Store, UnknownRunError, fold


def _log(store: Store) -> str:
    """A small run exercising every filter; returns its id."""
    run = store.create_run(name=None, config={}, policy="linux-5.18", seed=1, version="0")
    store.append(
        run.id,
        [
            Transition("cpu", "client", "input", after={"rpc": "Enqcmd"}),  # 1
            Transition("cpu", "cpu/0", "msr.pasid.write", after={"pasid": 7}),  # 2
            Transition("cpu", "cpu/1", "msr.pasid.write", after={"pasid": 8}),  # 3
            Transition("cpu", "cpu/10", "trap.gp", after={"rip": 16}),  # 4
            Transition("iommu", "pasid/7", "pasid.alloc", after={"mm": 1}),  # 5
            Transition("accel", "wq/dsa0/1", "wq.accept", after={"n": 1}),  # 6
            Transition("cpu", "a_b/1", "x%y", after={}),  # 7: LIKE wildcards in names
            Transition("cpu", "axb/1", "xzy", after={}),  # 8
            Transition("cpu", "CPU/9", "msr.pasid.write", after={}),  # 9: upper case
        ],
    )
    return run.id


def _seqs(rows: list[EventRow]) -> list[int]:
    return [r.seq for r in rows]


@pytest.mark.parametrize(
    "filters, expected",
    [
        ({}, [1, 2, 3, 4, 5, 6, 7, 8, 9]),
        ({"after_seq": 3}, [4, 5, 6, 7, 8, 9]),
        ({"until_seq": 3}, [1, 2, 3]),
        ({"after_seq": 2, "until_seq": 4}, [3, 4]),
        ({"limit": 2, "after_seq": 4}, [5, 6]),
        ({"entity": "cpu/1"}, [3]),
        ({"entity_prefix": "cpu/1"}, [3, 4]),
        ({"entity_prefix": "cpu/"}, [2, 3, 4]),  # case-sensitive: not CPU/9
        ({"entity_prefix": "a_b"}, [7]),  # _ is not a wildcard
        ({"kind": "msr.pasid.write"}, [2, 3, 9]),
        ({"kind_prefix": "msr."}, [2, 3, 9]),
        ({"kind_prefix": "x%"}, [7]),  # % is not a wildcard
        ({"service": "iommu"}, [5]),
        ({"service": "cpu", "kind_prefix": "trap."}, [4]),
        ({"entity_prefix": "cpu/", "kind": "msr.pasid.write", "until_seq": 2}, [2]),
        ({"entity": "nothing"}, []),
    ],
)
def test_events_filters(store: Store, filters: dict[str, Any], expected: list[int]) -> None:
    run_id = _log(store)
    assert _seqs(store.events(run_id, **filters)) == expected


def test_events_are_a_run_s_own_and_limit_none_returns_all(store: Store) -> None:
    a, b = _log(store), _log(store)
    rows = store.events(b, limit=None)
    assert {r.run_id for r in rows} == {b}
    assert len(rows) == 9 and a != b
    assert store.events("000000000000") == []


def test_event_rows_are_frozen_and_know_inputs(store: Store) -> None:
    run_id = _log(store)
    first, second = store.events(run_id, limit=2)
    assert first.is_input and not second.is_input
    with pytest.raises(AttributeError):
        first.seq = 5  # type: ignore[misc]


def _ev(entity: str, kind: str = "k", before: Any = None, after: Any = None) -> EventRow:
    return EventRow("r", 0, "s", entity, kind, before, after, None, 0)


def test_fold_merges_removes_skips_inputs_and_sorts() -> None:
    events = [
        _ev("thread/2", after={"pasid": 0}),
        _ev("cpu/0", after={"pasid": 7, "pkru": 0}),
        _ev("cpu/0", before={"pasid": 7}, after={"pasid": 8}),
        _ev("client", kind="input", after={"rpc": "Clone"}),
        _ev("thread/1", after={"pasid": 0}),
        _ev("thread/2", before={"pasid": 0}, after=None),  # removed
        _ev("wq/0", before=None, after=None),  # a change with no fields: exists, empty
    ]
    state = fold(events)
    assert state == {"cpu/0": {"pasid": 8, "pkru": 0}, "thread/1": {"pasid": 0}, "wq/0": {}}
    assert list(state) == ["cpu/0", "thread/1", "wq/0"]


def test_fold_does_not_modify_the_state_it_starts_from() -> None:
    snapshot = {"cpu/0": {"pasid": 7}, "thread/1": {"tid": 1}}
    later = fold([_ev("cpu/0", after={"pasid": 9}), _ev("thread/1", before={"tid": 1})], snapshot)
    assert later == {"cpu/0": {"pasid": 9}}
    assert snapshot == {"cpu/0": {"pasid": 7}, "thread/1": {"tid": 1}}


def test_fold_accepts_transitions() -> None:
    assert fold([Transition("cpu", "cpu/0", "k", after={"a": 1})]) == {"cpu/0": {"a": 1}}


def test_state_at_any_point_including_removal(store: Store) -> None:
    run = store.create_run(name=None, config={}, policy="p", seed=1, version="0")
    store.append(
        run.id,
        [
            Transition("cpu", "client", "input", after={"rpc": "Exec"}),  # 1
            Transition("cpu", "thread/42", "thread.create", after={"pasid": 0}),  # 2
            Transition("cpu", "cpu/0", "msr.pasid.write", after={"pasid": 7}),  # 3
            Transition("cpu", "thread/42", "msr.pasid.load", before={"pasid": 0}, after={"pasid": 7}),  # 4
            Transition("cpu", "thread/42", "thread.exit", before={"pasid": 7}, after=None),  # 5
        ],
    )
    assert store.state_at(run.id, 0) == {}
    assert store.state_at(run.id, 1) == {}
    assert store.state_at(run.id, 2) == {"thread/42": {"pasid": 0}}
    assert store.state_at(run.id, 4) == {"cpu/0": {"pasid": 7}, "thread/42": {"pasid": 7}}
    assert list(store.state_at(run.id, 4)) == ["cpu/0", "thread/42"]
    assert store.state_at(run.id, 5) == {"cpu/0": {"pasid": 7}}
    assert store.state_at(run.id) == store.state_at(run.id, 5) == store.state_at(run.id, 99)
    assert store.state_at(run.id) == fold(store.events(run.id, limit=None))


def test_state_at_streams_long_logs(store: Store) -> None:
    run = store.create_run(name=None, config={}, policy="p", seed=1, version="0")
    store.append(run.id, [Transition("cpu", f"cpu/{i % 3}", "k", after={"i": i}) for i in range(5000)])
    assert store.state_at(run.id) == {
        "cpu/0": {"i": 4998},
        "cpu/1": {"i": 4999},
        "cpu/2": {"i": 4997},
    }
    assert store.state_at(run.id, 3) == {"cpu/0": {"i": 0}, "cpu/1": {"i": 1}, "cpu/2": {"i": 2}}


def test_state_at_an_unknown_run_is_a_key_error(store: Store) -> None:
    with pytest.raises(UnknownRunError):
        store.state_at("000000000000")


def test_an_event_filter_object_and_keywords_select_the_same_events(store: Store) -> None:
    run_id = _log(store)
    where = EventFilter(entity_prefix="cpu/", until_seq=3)
    assert (
        _seqs(store.events(run_id, where)) == _seqs(store.events(run_id, entity_prefix="cpu/", until_seq=3)) == [2, 3]
    )
    # Keywords refine a given filter.
    assert _seqs(store.events(run_id, where, kind="msr.pasid.write", after_seq=2)) == [3]
    with pytest.raises(TypeError):
        store.events(run_id, kind_suffix="write")


# A seq is a signed 64-bit BIGINT: 2**63 - 1 is the largest, independent of the code's constant.
BIGINT_MAX = 9_223_372_036_854_775_807


@pytest.mark.parametrize("bound", ["after_seq", "until_seq"])
def test_seq_bounds_past_a_bigint_are_a_clear_value_error(store: Store, bound: str) -> None:
    run_id = _log(store)
    assert _seqs(store.events(run_id, **{bound: BIGINT_MAX})) == ([] if bound == "after_seq" else list(range(1, 10)))
    for bad in (BIGINT_MAX + 1, 2**64, -1):
        with pytest.raises(SeqOutOfRangeError, match=bound):
            store.events(run_id, **{bound: bad})
    assert issubclass(SeqOutOfRangeError, ValueError)


def test_state_at_a_seq_past_a_bigint_is_a_clear_value_error(store: Store) -> None:
    run_id = _log(store)
    assert store.state_at(run_id, BIGINT_MAX) == store.state_at(run_id)
    for bad in (BIGINT_MAX + 1, -5):
        with pytest.raises(SeqOutOfRangeError):
            store.state_at(run_id, bad)


def test_last_seq_is_the_seq_of_the_last_event(store: Store) -> None:
    run_id = _log(store)
    assert store.last_seq(run_id) == 9
    empty = store.create_run(name=None, config={}, policy="p", seed=0, version="0")
    assert store.last_seq(empty.id) == 0
    with pytest.raises(UnknownRunError):
        store.last_seq("000000000000")


def test_state_at_reports_progress_over_a_long_log(store: Store) -> None:
    run = store.create_run(name=None, config={}, policy="p", seed=0, version="0")
    store.append(run.id, [Transition("cpu", f"cpu/{i % 3}", "k", after={"i": i}) for i in range(5000)])
    seen: list[tuple[int, int]] = []
    store.state_at(run.id, 4500, progress=lambda done, total: seen.append((done, total)))
    assert seen and all(total == 4500 for _, total in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen) and seen[-1][0] <= 4500


#: Values a text-format COPY or a JSON encoder could get wrong: quotes, backslashes,
#: tabs, newlines, COPY's own markers, non-ASCII, nesting, big integers, empty containers.
AWKWARD = {
    "quote": 'say "hi"',
    "backslash": "C:\\dsa\\wq0.0",
    "copy_markers": "\\N\t\\.\n",
    "control": "a\tb\nc\rd\x01",
    "unicode": "pasid \u2192 mm \U0001f600",
    "nested": {"list": [1, [2, 3], {"k": None}], "empty": {}, "none": None},
    "big": 2**62,
    "negative": -(2**40),
    "float": 0.1,
    "flag": True,
}


def test_awkward_json_values_come_back_as_they_went_in(store: Store) -> None:
    run = store.create_run(name=None, config={}, policy="p", seed=0, version="0")
    store.append(
        run.id,
        [
            Transition("cpu", "thread/1", "k", before={"x": "\\N"}, after=AWKWARD, detail={"why": 'a "b"\\'}),
            Transition("cpu", "thread/2", "k", after={"tab\tkey": "v", "": 0}),
        ],
    )
    first, second = store.events(run.id)
    assert first.before == {"x": "\\N"}
    assert first.after == AWKWARD
    assert first.detail == {"why": 'a "b"\\'}
    assert second.after == {"tab\tkey": "v", "": 0}
    assert store.state_at(run.id) == {"thread/1": AWKWARD, "thread/2": {"tab\tkey": "v", "": 0}}


def test_a_long_fold_keeps_a_snapshot_at_every_multiple_and_later_folds_start_there(store: Store) -> None:
    store.snapshot_every = 10
    run = store.create_run(name=None, config={}, policy="p", seed=0, version="0")
    ts = [Transition("cpu", f"cpu/{i % 4}", "k", after={"i": i}) for i in range(195)]
    ts.append(Transition("cpu", "cpu/1", "gone", before={"i": 1}, after=None))
    ts += [Transition("cpu", "cpu/9", "k", after={"i": i}) for i in range(4)]
    store.append(run.id, ts)
    store.state_at(run.id)
    with store.engine.connect() as conn:
        seqs = conn.exec_driver_sql("SELECT seq FROM snapshots ORDER BY seq").scalars().all()
    assert seqs == list(range(10, 201, 10))
    folded = store.stats["events_folded"]
    for seq in (9, 10, 11, 195, 196, 199, 200):
        # From the snapshot at or before seq: at most snapshot_every - 1 events folded.
        assert store.state_at(run.id, seq) == fold(ts[:seq])
        assert store.stats["events_folded"] - folded == seq % 10
        folded = store.stats["events_folded"]
