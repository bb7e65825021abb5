"""No peer goes on with stale state, and a member that can rebuild its state from the
record comes back: in a split fabric of three real ``svasim serve`` processes, a
restarted iommu or accel resumes its part of the run by fold, a restarted cpu by
re-executing its inputs, and its peers reconcile with its new incarnation; a member
started on another run is refused by the peers that hold its state (where it used to be handed stale PASIDs and
complete MEMMOVEs with wrong bytes)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from svasim.store import Store
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client, memmove_descriptor

from .split import SplitFabric
from .workload import SUCCESS, MemmoveWorkload, Refused, pattern

HEX12 = set("0123456789abcdef")


@pytest.fixture
def fabric(sqlite_url: str, tmp_path: Path) -> Iterator[SplitFabric]:
    f = SplitFabric(sqlite_url, "split", tmp_path).start_all()
    try:
        yield f
    finally:
        f.stop()


def working(fabric: SplitFabric, iterations: int = 3) -> MemmoveWorkload:
    w = MemmoveWorkload(fabric.address("cpu"), iterations)
    w.run(deadline=60)
    assert w.tally.done == iterations and w.tally.successes == iterations and not w.tally.wrong
    return w


def restarted(err: Refused | grpc.RpcError, service: str) -> None:
    """``err`` is PEER_RESTARTED for ``service``, naming both incarnations."""
    from svasim_api.errors import error_info

    assert isinstance(err, grpc.RpcError)
    assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
    info = error_info(err)
    assert info is not None and info.reason == "PEER_RESTARTED", err.details()
    assert info.metadata["service"] == service
    old, new = info.metadata["known_incarnation"], info.metadata["incarnation"]
    assert old != new and len(old) == len(new) == 12 and set(old + new) <= HEX12
    assert "--run NEWNAME" in (err.details() or "")


def starts(fabric: SplitFabric, service: str) -> list:
    with Store.open(fabric.db) as s:
        run = s.get_run(fabric.run)
        return [e for e in s.events(run.id, kind="service.start", limit=None) if e.service == service]


def test_a_restarted_cpu_resumes_by_re_execution_and_its_peers_reconcile(fabric: SplitFabric) -> None:
    old = working(fabric)
    with Client(fabric.address("cpu")) as c:
        before = c.cpu.GetProcess(cpu_pb2.GetProcessRequest(pid=old.pid)).process
    assert before.pasid, "the workload's process has a PASID"
    fabric.procs["cpu"].kill()
    fabric.start("cpu")
    assert "resumed the cpu part of run" in fabric.procs["cpu"].output()
    start = starts(fabric, "cpu")[-1]
    assert start.after["rebuilt"] == "re-execution" and start.after["resumed_after_seq"] == start.seq - 1
    with Client(fabric.address("cpu")) as c:
        assert c.cpu.GetProcess(cpu_pb2.GetProcessRequest(pid=old.pid)).process == before, "the process came back"
        # A new process is numbered after the old one and gets a PASID nobody holds.
        p = c.create_process("newcomer")
        assert p.pid > old.pid
        c.mmap(p.pid, 4096, populate=True)
        opened = c.cpu.OpenWorkQueue(cpu_pb2.OpenWorkQueueRequest(pid=p.pid, device="dsa0", wq_id=0), timeout=20)
        assert opened.pasid != before.pasid
    # The same process goes on (its memory, page tables and PASID rebuilt), every byte right.
    old.iterations = old.tally.done + 5
    old.run(deadline=30)
    assert old.tally.done == old.iterations and not old.tally.wrong, old.tally
    for peer in ("accel", "iommu"):
        assert (
            "the cpu service restarted" in fabric.procs[peer].output() and "reconciled" in fabric.procs[peer].output()
        )


def test_a_cpu_started_on_another_run_is_refused_by_the_peers_holding_its_processes_state(fabric: SplitFabric) -> None:
    old = working(fabric)
    fabric.procs["cpu"].kill()
    # Started empty on a new run, it numbers its processes from 1 again; the iommu still
    # holds the old pid 1's PASID and the accel its WQ clients and device TLB entries.
    fabric.start("cpu", run="split-2")
    with Client(fabric.address("cpu")) as c:
        p = c.create_process("heir")
        assert p.pid == old.pid
        c.mmap(p.pid, 4096, populate=True)
        with pytest.raises(grpc.RpcError) as err:
            c.cpu.OpenWorkQueue(cpu_pb2.OpenWorkQueueRequest(pid=p.pid, device="dsa0", wq_id=0), timeout=20)
        restarted(err.value, "cpu")
    # The ten MEMMOVEs: refused, never a SUCCESS over stale translations.
    w = MemmoveWorkload(fabric.address("cpu"), 10)
    w.run(resetup_after=3, deadline=8)
    assert w.tally.successes == 0 and not w.tally.wrong
    assert w.tally.refusals[("FAILED_PRECONDITION", "PEER_RESTARTED")] > 0


def test_a_restarted_iommu_resumes_by_fold_and_never_hands_out_a_pasid_the_fabric_holds(
    fabric: SplitFabric,
) -> None:
    old = working(fabric)
    with Client(fabric.address("iommu")) as c:
        held = sorted(a.pasid for a in c.iommu_state().pasids)
    assert held, "the workload's process has a PASID"
    fabric.procs["iommu"].kill()
    fabric.start("iommu")
    assert "resumed the iommu part of run" in fabric.procs["iommu"].output()
    start = starts(fabric, "iommu")[-1]
    assert start.after["rebuilt"] == "fold" and start.after["resumed_after_seq"] == start.seq - 1
    with Client(fabric.address("iommu")) as c:
        assert sorted(a.pasid for a in c.iommu_state().pasids) == held, "the bindings came back"
    # The cpu and the accel hold its PASIDs and translations: they reconcile, and the
    # workload goes on with every byte right.
    old.iterations = old.tally.done + 5
    old.run(deadline=30)
    assert old.tally.done == old.iterations and not old.tally.wrong, old.tally
    with Client(fabric.address("cpu")) as c:
        p = c.create_process("newcomer")
        c.mmap(p.pid, 4096, populate=True)
        opened = c.cpu.OpenWorkQueue(cpu_pb2.OpenWorkQueueRequest(pid=p.pid, device="dsa0", wq_id=0), timeout=20)
        assert opened.pasid not in held
    assert "reconciled" in fabric.procs["cpu"].output()


def test_an_iommu_started_on_another_run_is_refused_by_the_peers_holding_its_state(fabric: SplitFabric) -> None:
    old = working(fabric)
    fabric.procs["iommu"].kill()
    fabric.start("iommu", run="split-2")
    with Client(fabric.address("cpu")) as c:
        p = c.create_process("newcomer")
        c.mmap(p.pid, 4096, populate=True)
        with pytest.raises(grpc.RpcError) as err:
            c.cpu.OpenWorkQueue(cpu_pb2.OpenWorkQueueRequest(pid=p.pid, device="dsa0", wq_id=0), timeout=20)
        restarted(err.value, "iommu")
    with Client(fabric.address("iommu")) as c:
        assert list(c.iommu_state().pasids) == [], "the new iommu allocated nothing"
    # The old process goes on: whatever completes is right, or it is refused.
    old.iterations = old.tally.done + 5
    old.run(deadline=8)
    assert not old.tally.wrong


def test_a_restarted_accel_resumes_its_queued_descriptor_and_the_cpu_reconciles(fabric: SplitFabric) -> None:
    old = working(fabric)
    # One MEMMOVE queued and not yet run when the accel dies.
    i = old.tally.done
    want = pattern(i, old.size)
    old.call("WriteMemory", cpu_pb2.WriteMemoryRequest(pid=old.pid, address=old.src, data=want))
    old.call("WriteMemory", cpu_pb2.WriteMemoryRequest(pid=old.pid, address=old.comp, data=bytes(32)))
    desc = memmove_descriptor(old.src, old.dst, old.size, old.comp)
    r = old.call("Enqcmd", cpu_pb2.EnqcmdRequest(tid=old.tid, portal_address=old.portal, raw=desc))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    fabric.procs["accel"].kill()
    fabric.start("accel")
    output = fabric.procs["accel"].output()
    assert "resumed the accel part of run" in output and "1 queued descriptors from their inputs" in output
    w = old.call("WaitCompletion", cpu_pb2.WaitCompletionRequest(tid=old.tid, completion_addr=old.comp))
    assert w.completed and w.raw[0] == SUCCESS
    got = old.call("ReadMemory", cpu_pb2.ReadMemoryRequest(pid=old.pid, address=old.dst, length=old.size)).data
    assert got == want, "the descriptor queued before the kill ran after the restart"
    old.iterations = old.tally.done + 4
    old.run(deadline=30)
    assert old.tally.done == old.iterations and not old.tally.wrong, old.tally


def test_an_accel_started_on_another_run_is_refused_by_the_cpu_holding_its_wq_files(fabric: SplitFabric) -> None:
    old = working(fabric)
    fabric.procs["accel"].kill()
    fabric.start("accel", run="split-2")
    with pytest.raises(Refused) as err:
        old.iteration(old.tally.done)
    assert (err.value.code, err.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PEER_RESTARTED")
    with Client(fabric.address("cpu")) as c:
        with pytest.raises(grpc.RpcError) as rpc_err:
            c.cpu.Enqcmd(cpu_pb2.EnqcmdRequest(tid=old.tid, portal_address=old.portal, raw=bytes(64)), timeout=20)
        restarted(rpc_err.value, "accel")
    assert not old.tally.wrong
