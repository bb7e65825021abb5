"""StartSequence and AdvanceCpu over the real API: kernel_fpu interrupted by another CPU.

Rules: arch/x86/kernel/fpu/core.c ``kernel_fpu_begin_mask()`` / ``kernel_fpu_end()``
(preemption off from ``fpregs_lock()`` to ``kernel_fpu_end()``, ``in_kernel_fpu`` not
reentrant), kernel/smp.c ``smp_call_function_many_cond()`` (the IPI's handler runs on the
CPU in the sequence, between two steps). The requests are client inputs, so replay
re-executes them: a run with a sequence cut by another CPU's OpenWorkQueue replays to
identical transitions.
"""

from __future__ import annotations

import json

import grpc
import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.replay import verify
from svasim.server import create_server
from svasim.store import Store
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client, SvasimError, memmove_descriptor

from .fabric_fixtures import running_fabric

POINTS = ["kernel_fpu_begin:entry", "kernel_fpu_begin:tif_set", "kernel_fpu_begin:saved", "kernel_fpu:in_use"]


@pytest.fixture(params=["inprocess", "grpc"])
def fab(request, tmp_path):
    with running_fabric(request.param, f"sqlite:///{tmp_path / 'svasim.db'}", cpus=2) as f:
        yield f


def two_threads(c):  # noqa: ANN001, ANN201
    """A process with thread T1 on CPU 0 and T2 on CPU 1."""
    p = c.create_process("app")
    t1 = p.tids[0]
    t2 = c.create_thread(p.pid, t1).tid
    c.schedule(t1, 0)
    c.schedule(t2, 1)
    return p, t1, t2


def test_a_sequence_cut_by_another_cpus_pasid_allocation_runs_and_replays(fab):
    c = fab.cpu
    p, t1, t2 = two_threads(c)
    started = c.start_sequence(t2, "kernel_fpu")
    assert started.point == POINTS[0]
    assert (started.first.cpu, started.first.tid, started.first.step) == (1, t2, 0)
    assert c.get_thread(t2).sequence_point == POINTS[0] and c.get_thread(t1).sequence_point == ""
    r = c.advance_cpu(steps=1)
    assert [(f.cpu, f.tid, f.step, f.point) for f in r.fired] == [(1, t2, 0, POINTS[1])]
    assert [(e.cpu, e.step) for e in r.pending] == [(1, 1)] and r.now == r.fired[0].time
    # CPU 0 allocates the PASID while T2 is at tif_set.
    wq = c.open_wq(p.pid, "dsa0", 0)
    assert wq.pasid_allocated
    rest = c.advance_cpu()
    assert [f.point for f in rest.fired] == POINTS[2:] + [""] and not rest.pending
    assert c.get_thread(t2).sequence_point == ""
    fab.trace.flush()
    events = fab.trace.events(fab.run_id)
    queue = [e.kind for e in events if e.entity == "evq/cpu"]
    assert queue[0] == "event.schedule" and queue.count("event.fire") == 4
    with Store.open(fab.db) as store:
        report = verify(store, fab.run_id)
    assert report.ok, report.difference.describe()


def test_bad_requests_get_their_codes_and_reasons_and_change_nothing(fab):
    c = fab.cpu
    p, t1, t2 = two_threads(c)
    idle = c.create_thread(p.pid, t1).tid
    cases = [
        (lambda: c.start_sequence(t2, "nowhere"), grpc.StatusCode.INVALID_ARGUMENT, "UNKNOWN_SEQUENCE"),
        (lambda: c.start_sequence(999, "kernel_fpu"), grpc.StatusCode.NOT_FOUND, "UNKNOWN_THREAD"),
        (lambda: c.start_sequence(idle, "kernel_fpu"), grpc.StatusCode.FAILED_PRECONDITION, "THREAD_NOT_RUNNING"),
    ]
    for call, code, reason in cases:
        with pytest.raises(SvasimError) as e:
            call()
        assert (e.value.code, e.value.reason) == (code, reason)
    assert not c.advance_cpu().fired  # nothing was scheduled
    c.start_sequence(t2, "kernel_fpu")
    inside = [
        (lambda: c.schedule(idle, 1), "PREEMPTION_DISABLED"),
        (lambda: c.schedule(t2, 0), "PREEMPTION_DISABLED"),
        (lambda: c.exit_thread(t2), "THREAD_IN_SEQUENCE"),
        (lambda: c.start_sequence(t2, "kernel_fpu"), "THREAD_IN_SEQUENCE"),
        (lambda: c.enqcmd(t2, 0x1000, bytes(64)), "THREAD_IN_SEQUENCE"),
    ]
    for call, reason in inside:
        with pytest.raises(SvasimError) as e:
            call()
        assert (e.value.code, e.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, reason)
        assert e.value.metadata["tid"] == str(t2)
    pending = c.advance_cpu(steps=0, until_cycles=1)  # nothing due that early
    assert not pending.fired and [e.step for e in pending.pending] == [0]
    assert len(c.advance_cpu().fired) == 4
    fab.trace.flush()
    with Store.open(fab.db) as store:
        assert verify(store, fab.run_id).ok


def test_linux_5_10s_ipi_at_tif_set_loses_the_pasid_over_the_api_and_the_run_replays(tmp_path):
    """The defect the explorer finds (commit 9bfecd058339 reverted it), driven by a client:
    update_pasid() lands on CPU 1 after set_thread_flag(TIF_NEED_FPU_LOAD) and before
    save_fpregs_to_fpstate(), which then writes the stale MSR over the XSAVE buffer."""
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, cpus=2, policy="linux-5.10"))
    try:
        with Client(srv.address) as c:
            p, t1, t2 = two_threads(c)
            comp = c.mmap(p.pid, 4096, populate=True)
            c.start_sequence(t2, "kernel_fpu")
            assert [f.point for f in c.advance_cpu(steps=1).fired] == [POINTS[1]]
            wq = c.open_wq(p.pid, "dsa0", 0)  # CPU 0: the PASID, and its IPI to CPU 1
            assert c.get_thread(t2).sequence_point == POINTS[1]
            c.advance_cpu()
            r = c.enqcmd(t2, wq.portal_address, memmove_descriptor(comp, comp + 64, 8, comp + 128))
            assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_SIGSEGV
            c.flush()
            events = c.events(srv.run_id)
    finally:
        srv.stop(0)
    (ipi,) = [e for e in events if e.kind == "ipi.handle"]
    assert ipi.entity == "cpu/1" and json.loads(ipi.detail_json)["at"] == POINTS[1]
    assert any(e.kind == "invariant.violation" and e.entity == "invariant/pasid_lost" for e in events)
    with Store.open(db) as store:
        report = verify(store, srv.run_id)
    assert report.ok, report.difference.describe()


def test_a_restart_in_the_middle_of_a_sequence_resumes_it_where_it_was(tmp_path):
    """The queue is state the cpu rebuilds by re-executing the run's inputs: after a
    restart the thread is still at its point and the rest of its steps still fire."""
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    config = FabricConfig(services=ALL_SERVICES, port=0, db=db, cpus=2, run="seq")
    srv = create_server(config)
    try:
        with Client(srv.address) as c:
            p, t1, t2 = two_threads(c)
            c.start_sequence(t2, "kernel_fpu")
            c.advance_cpu(steps=2)
            pending = list(c.advance_cpu(steps=0, until_cycles=1).pending)
    finally:
        srv.stop(0)
    srv = create_server(config)
    try:
        assert srv.resumed is not None
        with Client(srv.address) as c:
            assert c.get_thread(t2).sequence_point == POINTS[2]
            with pytest.raises(SvasimError, match="PREEMPTION_DISABLED"):
                c.schedule(t1, 1)
            rest = c.advance_cpu()
            assert [(f.time, f.step) for f in rest.fired] == [(e.time, e.step) for e in pending] + [
                (pending[0].time, 3)
            ]
            assert c.get_thread(t2).sequence_point == ""
    finally:
        srv.stop(0)
    with Store.open(db) as store:
        assert verify(store, srv.run_id).ok
