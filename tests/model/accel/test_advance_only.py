"""A device that runs only when told (``auto_run`` off): submissions queue, Advance runs.

With the engines stopped a test fills a WQ exactly: a shared WQ's limited portal takes
``wq_thresh`` descriptors and then ENQCMD gets retry (ZF=1); a dedicated WQ takes
``wq_size`` and then MOVDIR64B's descriptor is dropped (a posted write cannot be told;
recorded as a software error, UNVERIFIED as in the first round).
"""

from __future__ import annotations

from svasim.model.accel import WQ_MODE_SHARED
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S
from svasim_api.idxd import DsaOpcode as Op

from ...oracle.oracle import Oracle
from ..test_accel_ops import Dsa


def stopped(mode: str | None = None) -> tuple[Dsa, Oracle]:
    d = Dsa() if mode is None else Dsa(mode)
    d.fab.accel.set_run_options(d.j, "dsa0", auto_run=False)
    return d, Oracle(d.fab, d.transitions)


def test_a_stopped_dedicated_wq_fills_to_wq_size_and_drops_the_next_movdir64b():
    dsa, oracle = stopped()
    wq = dsa.device.wqs[1]
    descs = [dsa.desc(Op.NOOP) for _ in range(wq.cfg.wq_size + 1)]
    for d in descs:
        assert dsa.submit(d)  # MOVDIR64B never hears
    assert len(wq.queue) == wq.cfg.wq_size and dsa.device.swerr == 1
    assert not dsa.completes() and not oracle.check("filled")
    r = dsa.fab.accel.advance(dsa.j, "dsa0", 0)
    assert r.executed == wq.cfg.wq_size
    assert [dsa.record(d.completion_addr).status for d in descs[:-1]] == [S.SUCCESS] * wq.cfg.wq_size
    assert dsa.record(descs[-1].completion_addr).status == 0
    assert not oracle.check("advanced")


def test_a_stopped_shared_wq_answers_retry_at_the_threshold_until_advance_frees_a_slot():
    dsa, oracle = stopped(WQ_MODE_SHARED)
    wq = dsa.device.wqs[0]
    accepted = [dsa.submit(dsa.desc(Op.NOOP)) for _ in range(wq.cfg.wq_thresh)]
    assert all(accepted) and len(wq.queue) == wq.cfg.wq_thresh
    assert not dsa.submit(dsa.desc(Op.NOOP))  # ZF=1: retry
    assert wq.retried == 1 and not dsa.completes()
    dsa.fab.accel.advance(dsa.j, "dsa0", 0)
    assert len(wq.queue) == 0 and len(dsa.completes()) == wq.cfg.wq_thresh
    assert dsa.submit(dsa.desc(Op.NOOP))
    assert not oracle.check("after retry")


def test_advance_to_a_cycle_runs_only_what_starts_by_then():
    dsa, oracle = stopped()
    for _ in range(4):
        assert dsa.submit(dsa.desc(Op.NOOP))
    first = dsa.fab.accel.advance(dsa.j, "dsa0", 1)
    # Two engines: the first two start at once (and, in this model, complete at their
    # dispatch); the other two wait for an engine to be free.
    assert first.executed == 2 and len(dsa.device.wqs[1].queue) == 2
    # An engine's completion is its busy_until, not a queue entry (Accel._run).
    assert not dsa.device.events.pending() and all(b > 1 for b in dsa.device.engines)
    rest = dsa.fab.accel.advance(dsa.j, "dsa0", 0)
    assert rest.executed == 2 and not dsa.device.wqs[1].queue
    assert not oracle.check("advanced")


def test_turning_auto_run_back_on_makes_the_next_submission_run_the_device():
    dsa, oracle = stopped()
    assert dsa.submit(dsa.desc(Op.NOOP))
    dsa.fab.accel.set_run_options(dsa.j, "dsa0", auto_run=True)
    late = idxd.pack_desc(dsa.desc(Op.NOOP))
    assert dsa.fab.accel.submit(dsa.j, "dsa0", dsa.offset, late, "movdir64b", 10**9).accepted
    assert len(dsa.completes()) == 1
    assert not oracle.check("auto_run again")


def test_a_completion_poll_does_not_run_a_device_that_runs_only_when_told():
    # WaitCompletion spins on the record while the thread's time passes; a device that
    # runs only when told (auto_run off) is not told by a poll: the descriptor waits in
    # its WQ, the device's clock stays, until Advance.
    dsa, oracle = stopped()
    d = dsa.desc(Op.NOOP)
    assert dsa.submit(d)
    clock = dsa.device.now
    w = dsa.k.wait_completion(dsa.j, dsa.tid, d.completion_addr)
    assert not w.completed and w.raw[0] == 0
    assert len(dsa.device.wqs[1].queue) == 1 and dsa.device.now == clock and not dsa.completes()
    assert not oracle.check("polled")
    dsa.fab.accel.advance(dsa.j, "dsa0", 0)
    w = dsa.k.wait_completion(dsa.j, dsa.tid, d.completion_addr)
    assert w.completed and w.raw[0] == S.SUCCESS
    assert not oracle.check("advanced")


def test_a_completion_poll_runs_a_device_that_runs_by_itself():
    dsa = Dsa()
    oracle = Oracle(dsa.fab, dsa.transitions)
    dsa.device.auto_run = True
    d = dsa.desc(Op.NOOP)
    assert dsa.submit(d)
    w = dsa.k.wait_completion(dsa.j, dsa.tid, d.completion_addr)
    assert w.completed and w.raw[0] == S.SUCCESS and not dsa.device.wqs[1].queue
    assert not oracle.check("polled")
