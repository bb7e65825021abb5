"""Advance-only devices and asynchronous page requests over the real API, on both wirings.

SetRunOptions (accel) switches a device to run only when told and to send its page
requests into the IOMMU's page request queue; GetIommu shows the queue (PQA_REG.PQS
size, what is outstanding, PRS_REG.PRO) and its overflow count. In the split fabric the
device reaches the PRQ through IommuService.PostPageRequest / RespondPageRequest.
"""

from __future__ import annotations

import grpc
import pytest

from svasim.model.iommu import PRQ_ENTRIES
from svasim_api import idxd
from svasim_api.accel.v1 import accel_pb2
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import error_info
from svasim_client import memmove_descriptor

from .fabric_fixtures import running_fabric


@pytest.fixture(params=["inprocess", "grpc"])
def fab(request, tmp_path):
    with running_fabric(request.param, f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        yield f


def set_run_options(fab, **fields) -> accel_pb2.Device:  # noqa: ANN001, ANN003
    return fab.accel.accel.SetRunOptions(accel_pb2.SetRunOptionsRequest(device="dsa0", **fields)).device


def test_a_stopped_device_queues_until_advance_and_page_requests_wait_in_the_prq(fab):
    dev = set_run_options(fab, auto_run=False, async_page_requests=True)
    assert dev.auto_run is False and dev.async_page_requests is True
    c = fab.cpu
    p = c.create_process("a")
    src = c.mmap(p.pid, 4096, populate=True)
    dst = c.mmap(p.pid, 8192)  # not populated: two page requests
    comp = c.mmap(p.pid, 4096, populate=True)
    c.write(p.pid, src, b"q" * 4096)
    wq = c.open_wq(p.pid, "dsa0", 0)
    c.schedule(p.tids[0], 0)
    flags = int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR | idxd.OpFlag.BOF)
    r = c.enqcmd(p.tids[0], wq.portal_address, memmove_descriptor(src, dst + 2048, 4096, comp, flags=flags))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    d = fab.accel.devices()[0]
    assert d.wqs[0].occupancy == 1 and d.pending_events == 0  # nothing ran
    assert c.read(p.pid, comp, 1) == b"\x00"
    fab.accel.advance("dsa0")
    assert idxd.unpack_comp(c.read(p.pid, comp, 32)).status == idxd.DsaCompStatus.SUCCESS
    assert c.read(p.pid, dst + 2048, 4096) == b"q" * 4096
    state = fab.iommu.iommu_state()
    assert state.page_requests == 2 and state.prg_success == 2
    assert (state.prq_entries, state.prq_outstanding, state.prq_overflow, state.prq_overflows) == (
        PRQ_ENTRIES,
        0,
        False,
        0,
    )
    d = fab.accel.devices()[0]
    assert d.page_requests == 2 and d.pending_events == 0 and d.blocked_engines == 0


def test_run_options_of_an_unknown_device_are_not_found(fab):
    with pytest.raises(grpc.RpcError) as e:
        fab.accel.accel.SetRunOptions(accel_pb2.SetRunOptionsRequest(device="dsa9", auto_run=False))
    assert e.value.code() == grpc.StatusCode.NOT_FOUND
    info = error_info(e.value)
    assert info is not None and info.reason == "UNKNOWN_DEVICE"


def test_the_event_log_is_readable_and_sized_only_where_the_device_allows(fab):
    r = fab.accel.accel.GetEventLog(accel_pb2.GetEventLogRequest(device="dsa0"))
    assert list(r.entries) == [] and r.device.evl_size == 0
    with pytest.raises(grpc.RpcError) as e:
        fab.accel.accel.SetEventLogSize(accel_pb2.SetEventLogSizeRequest(device="dsa0", size=64))
    info = error_info(e.value)
    # dsa0 reports no event log in GENCAP (evl_support 0).
    assert e.value.code() == grpc.StatusCode.FAILED_PRECONDITION and info is not None
    assert info.reason == "EVL_NOT_SUPPORTED"
    with pytest.raises(grpc.RpcError) as e2:
        fab.accel.accel.SetEventLogSize(accel_pb2.SetEventLogSizeRequest(device="dsa0", size=3))
    assert e2.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    consumed = fab.accel.accel.GetEventLog(accel_pb2.GetEventLogRequest(device="dsa0", consume=True))
    assert list(consumed.entries) == []


def test_a_completion_poll_leaves_a_device_that_runs_only_when_told_to_advance(fab):
    # WaitCompletion lets the thread's time pass, but a device with auto_run off runs
    # only on Advance: over both wirings (in the split fabric the poll's Advance to the
    # accel peer says it is a poll) the descriptor stays queued and the record unwritten.
    set_run_options(fab, auto_run=False)
    c = fab.cpu
    p = c.create_process("a")
    comp = c.mmap(p.pid, 4096, populate=True)
    wq = c.open_wq(p.pid, "dsa0", 0)
    c.schedule(p.tids[0], 0)
    noop = idxd.pack_desc(idxd.DsaHwDesc(opcode=idxd.DsaOpcode.NOOP, flags=0xC, completion_addr=comp))
    assert c.enqcmd(p.tids[0], wq.portal_address, noop).outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    w = c.wait_completion(p.tids[0], comp)
    assert not w.completed and w.raw[0] == 0
    assert fab.accel.devices()[0].wqs[0].occupancy == 1
    fab.accel.advance("dsa0")
    w = c.wait_completion(p.tids[0], comp)
    assert w.completed and w.record.status == idxd.DsaCompStatus.SUCCESS
