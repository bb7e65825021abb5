"""JSON Lines export/import: round trips on both backends, and refusals that say why."""

from __future__ import annotations

import io
import json
from typing import Any

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.exchange import export_jsonl, import_jsonl
from svasim.exchange.jsonl import EVENT_KEYS, FORMAT, VERSION
from svasim.model.transition import INPUT_KIND, Transition
from svasim.server import create_server
from svasim.store.store import RunExistsError, Store, UnknownRunError
from svasim_client import Client
from svasim_client.demo import run_demo


def export_text(store: Store, run_id: str) -> str:
    out = io.StringIO()
    export_jsonl(store, run_id, out)
    return out.getvalue()


def event_lines(text: str) -> list[str]:
    return text.splitlines()[1:]


def header(text: str) -> dict[str, Any]:
    return json.loads(text.splitlines()[0])


def record_demo(db: str) -> str:
    """Record a small demo on a real fabric (all services) into ``db``; its run id."""
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db))
    try:
        with Client(srv.address) as client:
            run_demo(client, threads=2, per_thread=2, size=4096, burst=10)
    finally:
        srv.stop(0)
    return srv.run_id


@pytest.fixture(scope="module")
def recorded_export(tmp_path_factory) -> str:
    """The export of a run recorded by a real fabric (SQLite) driving the demo."""
    db = f"sqlite:///{tmp_path_factory.mktemp('jsonl') / 'run.db'}"
    run_id = record_demo(db)
    with Store.open(db) as store:
        return export_text(store, run_id)


def hand_made_run(store: Store, name: str = "hand") -> str:
    """A run with what real logs hold: inputs, causes, nested objects, None, non-ASCII."""
    run = store.create_run(name=name, config={"cpus": 2, "costs": {"wrmsr": 200}}, policy="p", seed=7, version="v")
    inp = Transition("cpu", "client", INPUT_KIND, None, {"method": "cpu.CreateProcess", "request": {"name": "app"}})
    proc = Transition("cpu", "process/1", "process.create", None, {"name": "äpp ✓", "pgd": 1 << 40}, cause=inp)
    # Keys in an order JSONB would not keep, nesting, lists, a removal (after None).
    odd = Transition(
        "cpu",
        "thread/2",
        "trap.gp",
        None,
        {"zeta": 1, "alpha": {"y": [3, {"b": 1, "a": 2}], "x": None}},
        cause=proc,
        cycles=810,
        detail={"reason": 'quote " and \\ backslash', "cpu": 0},
    )
    gone = Transition("cpu", "process/1", "process.exit", {"name": "app"}, None, cause=odd)
    store.append(run.id, [inp, proc, odd])
    store.append(run.id, [gone])
    store.append(run.id, [Transition("accel", "wq/dsa0/0", "wq.accept", {"occupancy": 0}, {"occupancy": 1}, cause=2)])
    return run.id


def test_export_format(store):
    run_id = hand_made_run(store)
    text = export_text(store, run_id)
    head = header(text)
    assert head["format"] == FORMAT and head["version"] == VERSION and head["events"] == 5
    run = store.get_run(run_id)
    assert head["run"] == {
        "id": run.id,
        "name": "hand",
        "created_at": run.created_at.isoformat(),
        "config": {"costs": {"wrmsr": 200}, "cpus": 2},
        "policy": "p",
        "seed": 7,
        "version": "v",
        "parent_run_id": None,
    }
    events = [json.loads(line) for line in event_lines(text)]
    assert [list(e) for e in events] == [list(EVENT_KEYS)] * 5
    assert [e["seq"] for e in events] == [1, 2, 3, 4, 5]
    assert [e["cause"] for e in events] == [None, 1, 2, 3, 2]
    assert events[2]["after"] == {"alpha": {"x": None, "y": [3, {"a": 2, "b": 1}]}, "zeta": 1}
    assert '"alpha":{"x":null,"y":[3,{"a":2,"b":1}]},"zeta":1' in event_lines(text)[2]  # nested keys sorted
    assert "äpp ✓" in text  # UTF-8 as is
    assert export_text(store, "hand") == text  # by name too


def test_round_trip_of_a_hand_made_run(store):
    run_id = hand_made_run(store)
    first = export_text(store, run_id)
    imported = import_jsonl(store, io.StringIO(first))
    assert imported.id != run_id and imported.name == "hand-import-1"
    assert imported.event_count == 5 and imported.seed == 7 and imported.config == store.get_run(run_id).config
    again = export_text(store, imported.id)
    assert event_lines(again) == event_lines(first)
    assert store.state_at(imported.id) == store.state_at(run_id)


def test_round_trip_of_a_recorded_run(store, recorded_export):
    # Recorded on SQLite, imported into this backend, exported from it: same event lines.
    imported = import_jsonl(store, io.StringIO(recorded_export))
    original = header(recorded_export)["run"]
    assert imported.name == original["name"] and imported.id != original["id"]
    assert imported.event_count == header(recorded_export)["events"] > 100
    again = export_text(store, imported.id)
    assert event_lines(again) == event_lines(recorded_export)
    head = header(again)["run"]
    assert {k: v for k, v in head.items() if k not in ("id", "created_at")} == {
        k: v for k, v in original.items() if k not in ("id", "created_at")
    }
    # Importing once more needs a new name; an explicit name is used as given.
    second = import_jsonl(store, io.StringIO(again))
    third = import_jsonl(store, io.StringIO(again))
    named = import_jsonl(store, io.StringIO(again), name="mine")
    assert (second.name, third.name, named.name) == (
        f"{original['name']}-import-1",
        f"{original['name']}-import-2",
        "mine",
    )
    with pytest.raises(RunExistsError):
        import_jsonl(store, io.StringIO(again), name="mine")
    assert event_lines(export_text(store, named.id)) == event_lines(recorded_export)


def test_parent_is_kept_only_when_it_is_in_the_store(store):
    parent = hand_made_run(store, "parent")
    child = store.create_run(name="child", config={}, policy="p", seed=0, version="v", parent_run_id=parent)
    text = export_text(store, child.id)
    assert import_jsonl(store, io.StringIO(text)).parent_run_id == parent
    store.delete_run(parent)
    assert import_jsonl(store, io.StringIO(text)).parent_run_id is None


def test_export_of_an_unknown_run(sqlite_url):
    with Store.open(sqlite_url) as store, pytest.raises(UnknownRunError):
        export_text(store, "nope")


# -- refusals ------------------------------------------------------------------------------


def good_text(store: Store) -> str:
    return export_text(store, hand_made_run(store))


def replace_line(text: str, index: int, new: str | None) -> str:
    lines = text.splitlines()
    if new is None:
        del lines[index]
    else:
        lines[index] = new
    return "\n".join(lines) + "\n"


def edit_event(text: str, index: int, **changes: Any) -> str:
    obj = json.loads(text.splitlines()[index])
    obj.update(changes)
    return replace_line(text, index, json.dumps(obj))


def edit_header(text: str, **changes: Any) -> str:
    return edit_event(text, 0, **changes)


@pytest.mark.parametrize(
    "mangle, message",
    [
        (lambda t: "", "line 1: empty input"),
        (lambda t: replace_line(t, 0, "{not json"), "line 1: not valid JSON"),
        (lambda t: replace_line(t, 0, "[1, 2]"), "line 1: expected a JSON object"),
        (lambda t: edit_header(t, format="chrome-trace"), "not an svasim run export (format 'chrome-trace'"),
        (lambda t: edit_header(t, version=VERSION + 1), f"format version {VERSION + 1} is newer"),
        (lambda t: edit_header(t, version="1"), "format version must be a positive integer"),
        (lambda t: edit_header(t, run={"name": "x"}), "run.config must be a dict"),
        (lambda t: edit_header(t, events=99), "announces 99 events but the file has 5"),
        (lambda t: replace_line(t, 3, '{"seq": 3, "service": "cpu"'), "line 4: not valid JSON"),
        (lambda t: replace_line(t, 3, None), "line 4: seq 4 where 3 was expected"),
        (lambda t: edit_event(t, 2, seq=7), "line 3: seq 7 where 2 was expected"),
        (lambda t: edit_event(t, 1, seq=0), "line 2: seq 0 where 1 was expected"),
        (lambda t: edit_event(t, 2, extra=1), "line 3: an event needs exactly"),
        (lambda t: edit_event(t, 2, cycles=-1), "line 3: cycles must be a non-negative integer"),
        (lambda t: edit_event(t, 2, cause=2), "line 3: cause must be null or the seq of an earlier event"),
        (lambda t: edit_event(t, 2, after=[1]), "line 3: after must be an object or null"),
        (lambda t: edit_event(t, 2, kind=""), "line 3: kind must be a non-empty string"),
    ],
)
def test_refusals_name_the_problem_and_leave_nothing_behind(sqlite_url, mangle, message):
    with Store.open(sqlite_url) as store:
        text = mangle(good_text(store))
        before = [r.id for r in store.list_runs()]
        with pytest.raises(ValueError) as exc:
            import_jsonl(store, io.StringIO(text))
        assert message in str(exc.value)
        assert [r.id for r in store.list_runs()] == before  # a partial import is removed


def test_a_disordered_file_is_refused_even_past_the_first_batch(sqlite_url):
    # Events beyond the first append batch: the run is partly written when the error is
    # found, and removed.
    with Store.open(sqlite_url) as store:
        run = store.create_run(name="big", config={}, policy="p", seed=0, version="v")
        store.append(run.id, [Transition("cpu", f"cpu/{i % 4}", "tick", None, {"n": i}) for i in range(4500)])
        text = export_text(store, run.id)
        lines = text.splitlines()
        lines[4200], lines[4201] = lines[4201], lines[4200]
        with pytest.raises(ValueError, match="line 4201: seq 4201 where 4200 was expected"):
            import_jsonl(store, io.StringIO("\n".join(lines)))
        assert [r.name for r in store.list_runs()] == ["big"]
        copy = import_jsonl(store, io.StringIO(text))
        assert copy.event_count == 4500 and event_lines(export_text(store, copy.id)) == event_lines(text)


def test_blank_lines_are_ignored(sqlite_url):
    with Store.open(sqlite_url) as store:
        text = good_text(store)
        spaced = text.replace("\n", "\n\n")
        assert import_jsonl(store, io.StringIO(spaced)).event_count == 5
