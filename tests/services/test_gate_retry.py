"""The request gate's RetryInfo delays: each refused request is given its own later
slot, two average turns after the one refused before it (a freed place goes as often to
the client just answered as to one coming back), so that refused clients come back
spread out at the rate the gate can take them rather than together, to be refused again.
The gate of a saturated fabric is what DESIGN.md's Concurrency section asks for:
RESOURCE_EXHAUSTED with RetryInfo, never a silent wait."""

from __future__ import annotations

import threading
import time

import pytest

from svasim.rpc.common import RequestGate, Saturated


def _saturate(gate: RequestGate) -> tuple[threading.Event, list[threading.Thread]]:
    """One thread holding the turn and ``max_queued`` waiting behind it, until released."""
    release = threading.Event()
    holding = threading.Event()

    def hold() -> None:
        with gate.turn():
            holding.set()
            release.wait(10)

    def wait() -> None:
        try:
            with gate.turn():
                pass
        except Saturated:
            pass

    threads = [threading.Thread(target=hold)]
    threads[0].start()
    assert holding.wait(5)
    for _ in range(gate.max_queued):
        t = threading.Thread(target=wait)
        t.start()
        threads.append(t)
    deadline = time.monotonic() + 5
    while gate.waiting < gate.max_queued:
        assert time.monotonic() < deadline, "the waiters did not queue"
        time.sleep(0.001)
    return release, threads


def _refused(gate: RequestGate) -> float:
    with pytest.raises(Saturated) as e:
        with gate.turn():
            pass
    return e.value.retry_after


def test_refused_requests_are_given_successive_slots_two_turns_apart():
    gate = RequestGate(max_queued=2, timeout=5)
    gate.hold = 0.05  # what the moving average of a turn would be
    release, threads = _saturate(gate)
    try:
        delays = [_refused(gate) for _ in range(6)]
    finally:
        release.set()
        for t in threads:
            t.join(10)
    # The first comes back after the slots of the queue ahead of it (2 waiting, then its
    # own); each later one a slot after the one before (less the time gone by).
    assert delays[0] == pytest.approx(2 * 0.05 * 3, abs=0.02)
    for before, after in zip(delays, delays[1:], strict=False):
        assert after > before
        assert after - before == pytest.approx(2 * 0.05, abs=0.02)


def test_slots_whose_time_has_come_are_forgotten_and_a_delay_is_at_most_5_s():
    gate = RequestGate(max_queued=1, timeout=5)
    gate.hold = 0.01
    release, threads = _saturate(gate)
    try:
        first = [_refused(gate) for _ in range(3)]
        time.sleep(max(first) + 0.02)
        # The refused requests' slots are past: a new refusal starts the schedule again.
        assert _refused(gate) == pytest.approx(2 * 0.01 * 2, abs=0.01)
        gate.hold = 10.0
        assert _refused(gate) == 5.0
    finally:
        release.set()
        for t in threads:
            t.join(10)
