"""The event queue (svasim.model.events) and the device clock it drives.

The key is SimPy's: ``Environment.schedule`` pushes ``(now + delay, priority, eid,
event)`` and ``step`` pops the smallest (simpy/core.py), so entries due at once come out
by priority, then in the order they were scheduled.
"""

from __future__ import annotations

import json

import pytest

from svasim.model.errors import InvalidArgument
from svasim.model.events import NORMAL, URGENT, EventQueue
from svasim.model.journal import Journal
from svasim.model.transition import Transition
from svasim.store.store import fold
from svasim_api.idxd import DsaOpcode as Op

from ..test_accel_ops import Dsa


def journal(out: list[Transition]) -> Journal:
    return Journal("accel", out.append)


def test_entries_due_at_once_come_out_by_priority_then_in_insertion_order():
    out: list[Transition] = []
    j = journal(out)
    q = EventQueue("dev")
    q.schedule(j, 10, "b", priority=NORMAL)
    q.schedule(j, 10, "c", priority=NORMAL)
    q.schedule(j, 5, "a", priority=NORMAL)
    q.schedule(j, 10, "urgent", priority=URGENT)
    fired = [q.pop(j).kind for _ in range(4)]
    assert fired == ["a", "urgent", "b", "c"]
    assert q.now == 10 and q.peek() is None


def test_an_entry_in_the_past_is_refused():
    out: list[Transition] = []
    j = journal(out)
    q = EventQueue("dev")
    q.schedule(j, 7, "x")
    q.pop(j)
    with pytest.raises(InvalidArgument) as e:
        q.schedule(j, 6, "late")
    assert e.value.reason == "EVENT_IN_THE_PAST"


def test_the_fold_of_the_queue_transitions_is_the_queue():
    out: list[Transition] = []
    j = journal(out)
    q = EventQueue("dev")
    boot = {q.entity: q.fields()}
    for t, kind in ((30, "x"), (10, "y"), (20, "z")):
        q.schedule(j, t, kind, {"engine": t // 10})
    q.pop(j)

    def stored(t: Transition):  # noqa: ANN202
        from types import SimpleNamespace

        return SimpleNamespace(entity=t.entity, kind=t.kind, before=t.before, after=json.loads(json.dumps(t.after)))

    folded = fold([stored(t) for t in out], boot)
    assert folded[q.entity] == json.loads(json.dumps(q.fields()))
    assert [e[3] for e in folded[q.entity]["pending"]] == ["z", "x"]


def test_an_engine_completion_is_its_busy_until_and_the_clock_reaches_it_when_run_until_idle():
    # Nothing happens when an engine's work ends (its record was written when it ran),
    # so the completion is no queue entry: dispatch reads busy_until, and running until
    # idle takes the clock to the last engine's end.
    dsa = Dsa()
    dsa.device.auto_run = False
    buf = dsa.buf(4096)
    assert dsa.submit(dsa.desc(Op.MEMMOVE, src_addr=buf, dst_addr=buf + 2048, xfer_size=64))
    dsa.fab.accel.advance(dsa.j, "dsa0", 1)
    assert not dsa.device.events.pending() and dsa.device.now == 1
    end = max(dsa.device.engines)
    assert end > 1
    assert not [t for t in dsa.transitions if t.kind in ("event.schedule", "event.fire")]
    dsa.fab.accel.advance(dsa.j, "dsa0", 0)
    assert not dsa.device.events.pending() and dsa.device.now == end


def test_a_page_group_response_is_a_queue_entry_that_fires_when_the_device_runs_past_it():
    dsa = Dsa()
    dsa.device.auto_run = False
    dsa.device.async_page_requests = True
    src = dsa.buf(4096)
    dst = dsa.buf(4096, populate=False)
    assert dsa.submit(dsa.desc(Op.MEMMOVE, flags=0xE, src_addr=src, dst_addr=dst, xfer_size=64))
    dsa.fab.accel.advance(dsa.j, "dsa0", 1)
    pending = dsa.device.events.pending()
    assert [e.kind for e in pending] == ["page.response"] and pending[0].priority == URGENT
    kinds = [t.kind for t in dsa.transitions if t.entity == dsa.device.events.entity]
    assert kinds == ["event.schedule"]
    dsa.fab.accel.advance(dsa.j, "dsa0", 0)
    assert not dsa.device.events.pending() and not dsa.device.blocked
    kinds = [t.kind for t in dsa.transitions if t.entity == dsa.device.events.entity]
    assert kinds == ["event.schedule", "event.fire"]


def test_the_same_inputs_give_the_same_transitions():
    def run() -> list[tuple[str, str, str]]:
        dsa = Dsa()
        dsa.device.async_page_requests = True
        src = dsa.buf(4096)
        dst = dsa.buf(3 * 4096, populate=False)
        for i in range(3):
            dsa.submit(dsa.desc(Op.MEMMOVE, flags=0xE, src_addr=src, dst_addr=dst + i * 4096, xfer_size=64))
        dsa.drain()
        return [(t.entity, t.kind, json.dumps(t.after, sort_keys=True)) for t in dsa.transitions]

    assert run() == run()
