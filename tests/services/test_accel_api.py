"""The accelerator's API over gRPC: WQ configuration, MOVDIR64B, ENQCMDS, block on fault."""

from __future__ import annotations

import grpc
import pytest

from svasim_api import idxd
from svasim_api.accel.v1 import accel_pb2
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import SvasimError, memmove_descriptor, noop_descriptor

from .fabric_fixtures import running_fabric


@pytest.fixture(params=["inprocess", "grpc"])
def fab(request, tmp_path):
    with running_fabric(request.param, f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        yield f


def test_configuring_an_enabled_wq_is_refused_and_a_disabled_one_takes_the_change(fab):
    a = fab.accel
    with pytest.raises(SvasimError) as e:
        a.configure_wq("dsa0", 0, size=8)
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and e.value.reason == "WQ_ENABLED"
    a.disable_wq("dsa0", 0)
    wq = a.configure_wq("dsa0", 0, size=8, threshold=4, priority=3, op_config=0x8, max_xfer_shift=12)
    assert (wq.size, wq.threshold, wq.priority, wq.op_config, wq.max_xfer_shift) == (8, 4, 3, 0x8, 12)
    assert not wq.enabled
    assert a.enable_wq("dsa0", 0).enabled


@pytest.mark.parametrize(
    "fields, reason",
    [
        ({"size": 0}, "BAD_WQ_SIZE"),
        ({"size": 1000}, "BAD_WQ_SIZE"),
        ({"threshold": 17}, "BAD_WQ_THRESHOLD"),
        ({"priority": 16}, "BAD_WQ_PRIORITY"),
        ({"op_config": 1 << 63}, "OP_CONFIG_NOT_IN_OPCAP"),
        ({"max_batch_shift": 11}, "BAD_MAX_BATCH_SHIFT"),
        ({"mode": accel_pb2.WQ_MODE_UNSPECIFIED}, "BAD_WQ_MODE"),
    ],
)
def test_bad_wq_configurations_are_invalid_arguments_and_change_nothing(fab, fields, reason):
    a = fab.accel
    a.disable_wq("dsa0", 0)
    before = a.devices()[0].wqs[0]
    with pytest.raises(SvasimError) as e:
        a.configure_wq("dsa0", 0, **fields)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT and e.value.reason == reason
    assert a.devices()[0].wqs[0] == before


def test_a_wq_with_open_files_cannot_be_disabled(fab):
    c = fab.cpu
    p = c.create_process("a")
    wq = c.open_wq(p.pid, "dsa0", 0)
    with pytest.raises(SvasimError) as e:
        fab.accel.disable_wq("dsa0", 0)
    assert e.value.reason == "WQ_BUSY"
    # The portal mapping holds the file too (vma->vm_file = get_file(file), mm/mmap.c):
    # the file is released only after both close(fd) and munmap of the portal.
    c.close_wq(p.pid, "dsa0", 0)
    with pytest.raises(SvasimError) as e:
        fab.accel.disable_wq("dsa0", 0)
    assert e.value.reason == "WQ_BUSY"
    c.munmap(p.pid, wq.portal_address, 4096)
    assert not fab.accel.disable_wq("dsa0", 0).enabled


def test_movdir64b_to_a_dedicated_wq_is_posted_and_runs_with_the_wqcfg_pasid(fab):
    c = fab.cpu
    p = c.create_process("a")
    buf = c.mmap(p.pid, 3 * 4096, populate=True)
    c.write(p.pid, buf, b"dedicated" * 10)
    wq = c.open_wq(p.pid, "dsa0", 1)
    assert not wq.shared
    c.schedule(p.tids[0], 0)
    r = c.movdir64b(p.tids[0], wq.portal_address, memmove_descriptor(buf, buf + 4096, 90, buf + 8192))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_POSTED and r.gp_faults == 0  # no #GP: MOVDIR64B needs no MSR
    w = c.wait_completion(p.tids[0], buf + 8192)
    assert w.record.status == idxd.DsaCompStatus.SUCCESS
    assert c.read(p.pid, buf + 4096, 90) == b"dedicated" * 10
    other = c.create_process("b")
    with pytest.raises(SvasimError) as e:
        c.open_wq(other.pid, "dsa0", 1)
    assert e.value.reason == "WQ_BUSY"  # a dedicated WQ has one opener


def test_enqcmd_to_a_dedicated_wq_and_movdir64b_to_memory(fab):
    c = fab.cpu
    p = c.create_process("a")
    buf = c.mmap(p.pid, 4096, populate=True)
    wq = c.open_wq(p.pid, "dsa0", 1)
    c.schedule(p.tids[0], 0)
    r = c.enqcmd(p.tids[0], wq.portal_address, noop_descriptor(buf))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_RETRY and "dedicated" in r.retry_reason
    data = bytes(range(64))
    assert c.movdir64b(p.tids[0], buf + 64, data).outcome == cpu_pb2.ENQCMD_OUTCOME_STORED
    assert c.read(p.pid, buf + 64, 64) == data


def test_enqcmds_from_a_kernel_thread_is_accepted_and_from_user_space_is_a_gp(fab):
    c = fab.cpu
    p = c.create_process("user")
    buf = c.mmap(p.pid, 4096, populate=True)
    wq = c.open_wq(p.pid, "dsa0", 0)
    kw = c.create_kthread("idxd-kernel")
    c.schedule(kw.tid, 1)
    d = idxd.unpack_desc(noop_descriptor(buf))
    d.pasid = wq.pasid  # the kernel names the PASID itself
    r = c.enqcmds(kw.tid, idxd.pack_desc(d))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED and not r.zf
    fab.accel.advance()
    assert idxd.unpack_comp(c.read(p.pid, buf, 32)).status == idxd.DsaCompStatus.SUCCESS
    d.rsvd = 1  # bits 30:20 of the source
    assert c.enqcmds(kw.tid, idxd.pack_desc(d)).outcome == cpu_pb2.ENQCMD_OUTCOME_KERNEL_GP
    c.schedule(p.tids[0], 0)
    r = c.enqcmds(p.tids[0], noop_descriptor(buf))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_SIGSEGV


def test_block_on_fault_pages_in_through_the_iommu_and_the_host(fab):
    c = fab.cpu
    p = c.create_process("a")
    src = c.mmap(p.pid, 4096, populate=True)
    dst = c.mmap(p.pid, 8192)  # not populated
    comp = c.mmap(p.pid, 4096, populate=True)
    c.write(p.pid, src, b"z" * 4096)
    wq = c.open_wq(p.pid, "dsa0", 0)
    c.schedule(p.tids[0], 0)
    flags = int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR | idxd.OpFlag.BOF)
    c.enqcmd(p.tids[0], wq.portal_address, memmove_descriptor(src, dst + 2048, 4096, comp, flags=flags))
    assert c.wait_completion(p.tids[0], comp).record.status == idxd.DsaCompStatus.SUCCESS
    assert c.read(p.pid, dst + 2048, 4096) == b"z" * 4096
    state = fab.iommu.iommu_state()
    assert state.page_requests == 2 and state.prg_success == 2
    assert fab.accel.devices()[0].page_requests == 2
