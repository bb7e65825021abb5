"""No peer goes on with stale state: a restarted cpu, iommu or accel of a split fabric of
three real ``svasim serve`` processes is refused by the peers that hold its state, where
it used to be handed stale PASIDs and complete MEMMOVEs with wrong bytes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client

from .split import SplitFabric
from .workload import MemmoveWorkload, Refused

HEX12 = set("0123456789abcdef")


@pytest.fixture
def fabric(sqlite_url: str, tmp_path: Path) -> Iterator[SplitFabric]:
    f = SplitFabric(sqlite_url, "split", tmp_path).start_all()
    try:
        yield f
    finally:
        f.stop()


def working(fabric: SplitFabric) -> MemmoveWorkload:
    w = MemmoveWorkload(fabric.address("cpu"), 3)
    w.run(deadline=60)
    assert w.tally.done == 3 and w.tally.successes == 3 and not w.tally.wrong
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


def test_a_restarted_cpu_is_refused_by_the_peers_holding_its_processes_state(fabric: SplitFabric) -> None:
    old = working(fabric)
    fabric.procs["cpu"].kill()
    # On the run it left: refused, in one line that says what to do.
    line = fabric.restart_refused("cpu")
    assert "cannot resume run split" in line and "cpu service" in line and "--run NEWNAME" in line
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


def test_a_restarted_iommu_never_hands_out_a_pasid_the_fabric_still_holds(fabric: SplitFabric) -> None:
    old = working(fabric)
    with Client(fabric.address("iommu")) as c:
        held = [a.pasid for a in c.iommu_state().pasids]
    assert held, "the workload's process has a PASID"
    fabric.procs["iommu"].kill()
    line = fabric.restart_refused("iommu")
    assert "iommu service" in line and "--run NEWNAME" in line
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


def test_a_restarted_accel_is_refused_by_the_cpu_holding_its_wq_files(fabric: SplitFabric) -> None:
    old = working(fabric)
    fabric.procs["accel"].kill()
    line = fabric.restart_refused("accel")
    assert "accel service" in line
    fabric.start("accel", run="split-2")
    with pytest.raises(Refused) as err:
        old.iteration(old.tally.done)
    assert (err.value.code, err.value.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "PEER_RESTARTED")
    with Client(fabric.address("cpu")) as c:
        with pytest.raises(grpc.RpcError) as rpc_err:
            c.cpu.Enqcmd(cpu_pb2.EnqcmdRequest(tid=old.tid, portal_address=old.portal, raw=bytes(64)), timeout=20)
        restarted(rpc_err.value, "accel")
    assert not old.tally.wrong
