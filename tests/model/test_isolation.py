"""Isolation: a device using a PASID reaches that PASID's address space and nothing else.

These tests try to break it: another process's address in a descriptor, a PASID that was
unbound or freed, a PASID written into the descriptor by hand, a stale translation after
munmap, and the bind/unbind error cases of Linux's iommufd selftests.
"""

from __future__ import annotations

import pytest

from svasim.model.errors import FailedPrecondition
from svasim.model.fabric import ModelFabric
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S

from .helpers import memmove_desc

PAGE = 4096


def two_processes():
    fab = ModelFabric(ncpus=2)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    b = k.create_process(j, "b")
    bufs = {}
    for p, cpu in ((a, 0), (b, 1)):
        buf = k.mmap(j, p.pid, 4 * PAGE, True, True).start
        portal = k.open_wq(j, p.pid, "dsa0", 0)[0]
        k.schedule(j, p.tids[0], cpu)
        bufs[p.pid] = (buf, portal)
    return fab, k, j, a, b, bufs


def run(k, j, tid, portal, desc: bytes, comp: int):
    r = k.enqcmd(j, tid, portal, desc)
    assert r.outcome == "accepted"
    return idxd.unpack_comp(k.wait_completion(j, tid, comp).raw)


def test_a_descriptor_naming_another_processes_address_reaches_nothing_of_it():
    fab, k, j, a, b, bufs = two_processes()
    abuf, aportal = bufs[a.pid]
    only_b = k.mmap(j, b.pid, PAGE, True, True).start  # an address a has not mapped
    k.write_memory(j, b.pid, only_b, b"secret of b" * 10)
    assert a.aspace.find_vma(only_b) is None
    comp = abuf + 3 * PAGE
    rec = run(k, j, a.tids[0], aportal, memmove_desc(only_b, abuf, 64, comp), comp)
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.fault_addr == only_b
    assert k.read_memory(j, a.pid, abuf, 64) == bytes(64)


def test_the_same_virtual_address_in_two_processes_reaches_each_ones_own_memory():
    fab, k, j, a, b, bufs = two_processes()
    abuf, aportal = bufs[a.pid]
    bbuf, bportal = bufs[b.pid]
    assert abuf == bbuf  # same layout, different address spaces
    k.write_memory(j, a.pid, abuf, b"A" * 64)
    k.write_memory(j, b.pid, bbuf, b"B" * 64)
    run(k, j, a.tids[0], aportal, memmove_desc(abuf, abuf + PAGE, 64, abuf + 3 * PAGE), abuf + 3 * PAGE)
    run(k, j, b.tids[0], bportal, memmove_desc(bbuf, bbuf + PAGE, 64, bbuf + 3 * PAGE), bbuf + 3 * PAGE)
    assert k.read_memory(j, a.pid, abuf + PAGE, 64) == b"A" * 64
    assert k.read_memory(j, b.pid, bbuf + PAGE, 64) == b"B" * 64


def test_the_pasid_written_in_a_descriptor_is_replaced_by_enqcmd():
    fab, k, j, a, b, bufs = two_processes()
    abuf, aportal = bufs[a.pid]
    d = idxd.unpack_desc(memmove_desc(abuf, abuf + PAGE, 8, abuf + 3 * PAGE))
    d.pasid = b.pasid  # try to submit as b
    r = k.enqcmd(j, a.tids[0], aportal, idxd.pack_desc(d))
    assert r.outcome == "sigsegv"  # bits 31:0 of the source must be zero: #GP, not a forged PASID


def test_an_unbound_pasid_reaches_nothing():
    fab, k, j, a, b, bufs = two_processes()
    abuf, aportal = bufs[a.pid]
    k.close_wq(j, a.pid, "dsa0", 0)
    k.munmap(j, a.pid, aportal, PAGE)  # unbound; the PASID stays with the mm (no early free)
    tr = fab.iommu.translate(j, "dsa0", a.pasid, abuf, 64, False)
    assert tr.fault == "pasid_not_present" and not tr.translations


def test_a_freed_pasid_reaches_nothing_and_its_reuse_reaches_only_the_new_owner():
    fab = ModelFabric(ncpus=2, early_free=True)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    abuf = k.mmap(j, a.pid, PAGE, True, True).start
    aportal = k.open_wq(j, a.pid, "dsa0", 0)[0]
    old = a.pasid
    k.close_wq(j, a.pid, "dsa0", 0)
    k.munmap(j, a.pid, aportal, PAGE)
    assert old not in fab.iommu.pasid_mm
    assert fab.iommu.translate(j, "dsa0", old, abuf, 8, False).fault == "pasid_not_present"
    c = k.create_process(j, "c")
    k.mmap(j, c.pid, PAGE, True, True)
    k.open_wq(j, c.pid, "dsa0", 0)
    assert c.pasid == old
    entry = fab.iommu.pasid_entry("dsa0", old)
    assert entry.flptr == c.aspace.pgd != a.aspace.pgd


def test_munmap_leaves_no_stale_translation_in_iotlb_or_device_tlb():
    fab, k, j, a, b, bufs = two_processes()
    abuf, aportal = bufs[a.pid]
    victim = k.mmap(j, a.pid, PAGE, True, True).start
    run(k, j, a.tids[0], aportal, memmove_desc(abuf, victim, 64, abuf + 3 * PAGE), abuf + 3 * PAGE)
    dev = fab.accel.devices["dsa0"]
    assert (a.pasid, victim >> 12) in dev.devtlb
    k.munmap(j, a.pid, victim, PAGE)
    assert (a.pasid, victim >> 12) not in dev.devtlb
    assert (a.pasid, victim >> 12) not in fab.iommu.iotlb
    # A new mapping of b may now get the freed frame; a's device access must fault.
    k.mmap(j, b.pid, PAGE, True, True)
    rec = run(k, j, a.tids[0], aportal, memmove_desc(abuf, victim, 64, abuf + 3 * PAGE + 32), abuf + 3 * PAGE + 32)
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.fault_addr == victim


def test_bind_the_same_target_twice_is_fine_a_different_one_is_an_error_and_unbind_needs_a_bind():
    fab = ModelFabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    r1 = fab.iommu.bind(j, "dsa0", a.pid, a.aspace.pgd, 1 << 20)
    r2 = fab.iommu.bind(j, "dsa0", a.pid, a.aspace.pgd, 1 << 20)
    assert r1.pasid == r2.pasid and r1.allocated and not r2.allocated
    with pytest.raises(FailedPrecondition) as e:
        fab.iommu.bind(j, "dsa0", a.pid, a.aspace.pgd + PAGE, 1 << 20)
    assert e.value.reason == "PASID_ATTACHED_ELSEWHERE"
    fab.iommu.unbind(j, "dsa0", a.pid)
    with pytest.raises(FailedPrecondition) as e:
        fab.iommu.unbind(j, "dsa0", a.pid)
    assert e.value.reason == "NOT_BOUND"


def test_a_device_with_fewer_pasids_than_the_mms_pasid_cannot_bind_it():
    from svasim.model.errors import OutOfRange

    fab = ModelFabric()
    k, j = fab.kernel, fab.journal()
    procs = [k.create_process(j, f"p{i}") for i in range(3)]
    for p in procs:
        fab.iommu.bind(j, "big", p.pid, p.aspace.pgd, 1 << 20)
    with pytest.raises(OutOfRange) as e:
        fab.iommu.bind(j, "small", procs[2].pid, procs[2].aspace.pgd, 2)  # PASID 3 >= max_pasids 2
    assert e.value.reason == "PASID_EXCEEDS_DEVICE"
