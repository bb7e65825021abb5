"""Mprotect, Madvise(MADV_DONTNEED) and CreateThread from a parent thread through the gRPC
API, on both wirings: what accel-config's fault tests do between submissions (they protect
or drop pages of buffers and completion records with mprotect(PROT_NONE) or
madvise(MADV_DONTNEED), test/dsa_test.c), and what clone() gives a new thread."""

from __future__ import annotations

import grpc
import pytest

from svasim_client import SvasimError, completion_record, memmove_descriptor

from .fabric_fixtures import running_fabric

PAGE = 4096
MADV_DONTNEED = 4  # include/uapi/asm-generic/mman-common.h
DSA_COMP_SUCCESS = 0x01  # include/uapi/linux/idxd.h
DSA_COMP_PAGE_FAULT_NOBOF = 0x03


@pytest.fixture(params=["inprocess", "grpc"])
def fab(request, tmp_path):
    with running_fabric(request.param, f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        yield f


def _app(fab):
    c = fab.cpu
    p = c.create_process("app")
    src = c.mmap(p.pid, 2 * PAGE, populate=True)
    dst = c.mmap(p.pid, 2 * PAGE, populate=True)
    comp = c.mmap(p.pid, PAGE, populate=True)
    wq = c.open_wq(p.pid, "dsa0", 0)
    tid = p.tids[0]
    c.schedule(tid, 0)
    return c, p, tid, src, dst, comp, wq


def _memmove(c, tid, wq, src, dst, n, comp):
    # Software clears the record before it submits (the device writes a non-zero status).
    c.write(c.get_thread(tid).pid, comp, bytes(32))
    r = c.enqcmd(tid, wq.portal_address, memmove_descriptor(src, dst, n, comp))
    assert not r.zf
    return completion_record(c.wait_completion(tid, comp).raw)


def test_madvise_dontneed_drops_the_pages_so_the_device_faults_on_them(fab):
    c, p, tid, src, dst, comp, wq = _app(fab)
    c.write(p.pid, src, b"\x5a" * (2 * PAGE))
    assert _memmove(c, tid, wq, src, dst, 2 * PAGE, comp).status == DSA_COMP_SUCCESS
    r = c.madvise(p.pid, dst + PAGE, PAGE, MADV_DONTNEED)
    assert r.pages == 1 and r.iotlb_invalidated
    # Without block on fault the device stops at the dropped page: a partial completion.
    rec = _memmove(c, tid, wq, src, dst, 2 * PAGE, comp)
    assert rec.status == DSA_COMP_PAGE_FAULT_NOBOF
    assert rec.bytes_completed == PAGE and rec.fault_addr == dst + PAGE


def test_mprotect_read_only_makes_a_device_write_fault_and_read_write_restores_it(fab):
    c, p, tid, src, dst, comp, wq = _app(fab)
    c.write(p.pid, src, b"\xa5" * PAGE)
    assert _memmove(c, tid, wq, src, dst, PAGE, comp).status == DSA_COMP_SUCCESS
    r = c.mprotect(p.pid, dst, 2 * PAGE, False)
    assert r.ptes_changed == 2 and r.iotlb_invalidated
    rec = _memmove(c, tid, wq, src, dst, PAGE, comp)
    assert rec.status == DSA_COMP_PAGE_FAULT_NOBOF and rec.status_write  # bit 7: the access was a write
    c.mprotect(p.pid, dst, 2 * PAGE, True)
    assert _memmove(c, tid, wq, src, dst, PAGE, comp).status == DSA_COMP_SUCCESS


def test_mprotect_of_an_unaligned_address_is_einval_and_changes_nothing(fab):
    c, p, *_ = _app(fab)
    with pytest.raises(SvasimError) as e:
        c.mprotect(p.pid, 123, PAGE, False)
    assert e.value.code == grpc.StatusCode.INVALID_ARGUMENT


def test_a_thread_cloned_from_a_parent_starts_with_its_pasid_state_clear(fab):
    # fpu_clone() clears the PASID feature of the child (5.18+): each thread takes its own
    # first #GP (reference §2.5).
    c, p, tid, src, dst, comp, wq = _app(fab)
    assert _memmove(c, tid, wq, src, dst, 64, comp).status == DSA_COMP_SUCCESS
    child = c.create_thread(p.pid, parent_tid=tid)
    assert child.tid != tid
    c.schedule(child.tid, 1)
    r = c.enqcmd(child.tid, wq.portal_address, memmove_descriptor(src, dst, 64, comp))
    assert r.gp_faults == 1


def test_a_parent_from_another_process_is_refused(fab):
    c = fab.cpu
    a = c.create_process("a")
    b = c.create_process("b")
    with pytest.raises(SvasimError) as e:
        c.create_thread(a.pid, parent_tid=b.tids[0])
    assert e.value.reason == "WRONG_PARENT"
