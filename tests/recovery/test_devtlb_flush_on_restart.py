"""A restarted iommu member flushes its devices' TLBs before it serves
(svasim.recovery.flush_device_tlbs): the flush waits for a device that is down, and a
device that never answers refuses the start with a line that says what to do."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import pytest

from svasim import recovery
from svasim.model.errors import FailedPrecondition
from svasim.model.journal import Journal
from svasim.model.transition import Transition
from svasim.store import RunInfo
from svasim.wiring.grpc_ports import PeerUnavailable


class _Recorder:
    def __init__(self) -> None:
        self.waited: list[Transition] = []

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None:
        self.waited.append(t)


class _Iommu:
    """Fails the flush ``failures`` times as an unreachable device would, then drops one entry."""

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.calls = 0

    def flush_device_tlbs(self, journal: Journal) -> int:
        self.calls += 1
        if self.calls <= self.failures:
            raise PeerUnavailable("PEER_UNAVAILABLE", "accel service at 127.0.0.1:1 failed: UNAVAILABLE")
        journal.emit("devtlb/dsa0/1/0x1000", "devtlb.invalidate", {"pfn": 7, "writable": True}, None)
        return 1


class _Core:
    def __init__(self, failures: int) -> None:
        self.lock = threading.Lock()
        self.iommu = _Iommu(failures)
        self.recorder = _Recorder()
        self.made: list[Transition] = []

    def _sink(self, t: Transition) -> None:
        t.seq = 100 + len(self.made)
        self.made.append(t)


def _start() -> Transition:
    t = Transition("iommu", "service/iommu", "service.start", None, {"rebuilt": "fold"})
    t.seq = 99
    return t


RUN = RunInfo("r1", "r", datetime.now(UTC), {}, "linux-5.18", 0, "0", None, 1)


def test_the_flush_waits_for_a_device_that_is_down_then_commits_what_it_caused() -> None:
    core = _Core(failures=2)
    start = _start()
    assert recovery.flush_device_tlbs(core, start, RUN, wait=10) == 1
    assert core.iommu.calls == 3
    # Caused by the start (so a replay takes it as part of the restart), and committed
    # before the iommu serves.
    assert [t.cause_seq() for t in core.made] == [99]
    assert core.recorder.waited == core.made


def test_a_device_that_stays_unreachable_is_left_to_its_own_restart() -> None:
    """It comes back from its restart with its device TLB empty (svasim.recovery.devtlb_reset)."""
    core = _Core(failures=10**6)
    assert recovery.flush_device_tlbs(core, _start(), RUN, wait=0.3) is None
    assert core.iommu.calls > 1 and not core.made


def test_a_device_that_refuses_refuses_the_start() -> None:
    core = _Core(failures=0)
    core.iommu.flush_device_tlbs = _refuse  # type: ignore[method-assign]
    with pytest.raises(recovery.ResumeRefused) as e:
        recovery.flush_device_tlbs(core, _start(), RUN, wait=5)
    assert "PEER_RESTARTED" in str(e.value)


def _refuse(journal: Journal) -> int:
    raise FailedPrecondition("PEER_RESTARTED", "the accel service restarted")


def test_a_restarted_accel_comes_back_with_its_device_tlb_empty() -> None:
    """A device reset empties its ATS translation cache; the restart records it
    (``restart.reset``, a lifecycle kind: a replay takes it from the record)."""
    state = {
        "devtlb/dsa0/1/0x1000": {"pfn": 7, "writable": True},
        "devtlb/dsa0/1/0x2000": {"pfn": 8, "writable": False},
        "wq/dsa0/0": {"occupancy": 0},
    }
    reset = recovery.devtlb_reset(state)
    assert [t.entity for t in reset] == ["devtlb/dsa0/1/0x1000", "devtlb/dsa0/1/0x2000"]
    assert all(t.kind == recovery.RESET_KIND and t.after is None and recovery.is_lifecycle(t) for t in reset)
    assert reset[0].before == {"pfn": 7, "writable": True}
    assert state == {"wq/dsa0/0": {"occupancy": 0}}
