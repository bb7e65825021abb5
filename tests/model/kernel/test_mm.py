"""mprotect and madvise(MADV_DONTNEED) on a process's memory, and what a device sees after.

Rules:
- mm/mprotect.c (``do_mprotect_pkey``): the start must be page aligned (EINVAL) and the
  whole range mapped (ENOMEM); ``mprotect_fixup`` splits a VMA at the range's ends and
  ``change_protection`` rewrites the present PTEs.
- mm/madvise.c (``madvise_dontneed_single_vma`` -> ``zap_page_range_single``): the pages
  of the range go and the mapping stays; the next touch of a private anonymous page
  gets a zero-filled page. VM_PFNMAP mappings (a portal) are refused (EINVAL).
- Both run the mmu notifier: the IOMMU's translations of the range (IOTLB and device
  TLB) are invalidated, as for munmap, so the device faults instead of using a stale
  permission or a freed frame (Documentation/arch/x86/sva.rst: the IOMMU shares the
  CPU page tables).
"""

from __future__ import annotations

import pytest

from svasim.model.errors import FailedPrecondition, InvalidArgument, OutOfRange
from svasim.model.fabric import ModelFabric
from svasim_api import idxd

from ..helpers import memmove_desc

PAGE = 4096
#: MADV_DONTNEED (include/uapi/asm-generic/mman-common.h).
MADV_DONTNEED = 4


def app():
    out: list = []
    fab = ModelFabric(ncpus=1, sink=out.append)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "app")
    buf = k.mmap(j, a.pid, 4 * PAGE, True, True).start
    comp = k.mmap(j, a.pid, PAGE, True, True).start
    portal = k.open_wq(j, a.pid, "dsa0", 0)[0]
    k.schedule(j, a.tids[0], 0)
    return fab, out, k, j, a, buf, comp, portal


def copy(k, j, a, portal, src, dst, comp, n=64):
    r = k.enqcmd(j, a.tids[0], portal, memmove_desc(src, dst, n, comp))
    assert r.outcome == "accepted"
    return idxd.unpack_comp(k.wait_completion(j, a.tids[0], comp).raw)


def test_mprotect_of_a_middle_page_splits_the_mapping_and_the_device_can_no_longer_write_it():
    fab, out, k, j, a, buf, comp, portal = app()
    assert copy(k, j, a, portal, buf, buf + PAGE, comp).status == idxd.DsaCompStatus.SUCCESS
    assert (a.pasid, (buf + PAGE) >> 12) in fab.accel.devices["dsa0"].devtlb
    changed, invalidated = k.mprotect(j, a.pid, buf + PAGE, PAGE, False)
    assert changed == 1 and invalidated
    spans = [(v.start - buf, v.end - buf, v.writable) for v in a.aspace.vmas if buf <= v.start < buf + 4 * PAGE]
    assert spans == [(0, PAGE, True), (PAGE, 2 * PAGE, False), (2 * PAGE, 4 * PAGE, True)]
    assert (a.pasid, (buf + PAGE) >> 12) not in fab.accel.devices["dsa0"].devtlb
    rec = copy(k, j, a, portal, buf, buf + PAGE, comp + 32)
    assert rec.status == idxd.DsaCompStatus.PAGE_FAULT_NOBOF and rec.status_write
    assert rec.fault_addr == buf + PAGE
    # The CPU may still read it, and not write it.
    assert k.read_memory(j, a.pid, buf + PAGE, 8) == bytes(8)
    with pytest.raises(FailedPrecondition) as e:
        k.write_memory(j, a.pid, buf + PAGE, b"x")
    assert e.value.reason == "READ_ONLY_MAPPING"
    # Writable again: the device's write goes through.
    k.mprotect(j, a.pid, buf + PAGE, PAGE, True)
    assert copy(k, j, a, portal, buf, buf + PAGE, comp + 64).status == idxd.DsaCompStatus.SUCCESS


def test_madvise_dontneed_drops_the_pages_the_cpu_reads_zeros_and_the_device_faults():
    fab, out, k, j, a, buf, comp, portal = app()
    k.write_memory(j, a.pid, buf, b"secret" * 10)
    assert copy(k, j, a, portal, buf, buf + PAGE, comp).status == idxd.DsaCompStatus.SUCCESS
    pages, invalidated = k.madvise(j, a.pid, buf, PAGE, MADV_DONTNEED)
    assert pages == 1 and invalidated
    assert a.aspace.find_vma(buf) is not None  # the mapping stays
    assert (a.pasid, buf >> 12) not in fab.iommu.iotlb
    rec = copy(k, j, a, portal, buf, buf + 2 * PAGE, comp + 32)
    assert rec.status == idxd.DsaCompStatus.PAGE_FAULT_NOBOF and rec.fault_addr == buf
    assert k.read_memory(j, a.pid, buf, 60) == bytes(60)  # a fresh zeroed page


def test_madvise_of_pages_never_touched_drops_nothing_and_invalidates_nothing():
    fab, out, k, j, a, buf, comp, portal = app()
    lazy = k.mmap(j, a.pid, PAGE, True, False).start
    assert k.madvise(j, a.pid, lazy, PAGE, MADV_DONTNEED) == (0, False)


@pytest.mark.parametrize(
    "call, reason",
    [
        (lambda k, j, a, buf, portal: k.mprotect(j, a.pid, buf + 1, PAGE, False), "BAD_RANGE"),
        # The start's alignment is checked before an empty range is accepted.
        (lambda k, j, a, buf, portal: k.mprotect(j, a.pid, buf + 1, 0, False), "BAD_RANGE"),
        (lambda k, j, a, buf, portal: k.madvise(j, a.pid, buf + 8, 0, MADV_DONTNEED), "BAD_RANGE"),
        (lambda k, j, a, buf, portal: k.madvise(j, a.pid, buf, 0, 3), "UNSUPPORTED_ADVICE"),
        (lambda k, j, a, buf, portal: k.mprotect(j, a.pid, buf + 3 * PAGE, 3 * PAGE, False), "ADDRESS_NOT_MAPPED"),
        (lambda k, j, a, buf, portal: k.mprotect(j, a.pid, portal, PAGE, False), "NOT_MEMORY"),
        (lambda k, j, a, buf, portal: k.madvise(j, a.pid, buf, PAGE, 3), "UNSUPPORTED_ADVICE"),
        (lambda k, j, a, buf, portal: k.madvise(j, a.pid, portal, PAGE, MADV_DONTNEED), "NOT_MEMORY"),
        (lambda k, j, a, buf, portal: k.madvise(j, a.pid, buf - PAGE, PAGE, MADV_DONTNEED), "ADDRESS_NOT_MAPPED"),
    ],
)
def test_bad_ranges_are_refused_and_change_nothing(call, reason):
    fab, out, k, j, a, buf, comp, portal = app()
    vmas = [(v.start, v.end, v.writable) for v in a.aspace.vmas]
    ptes = dict(a.aspace.ptes)
    n = len(out)
    with pytest.raises((InvalidArgument, OutOfRange)) as e:
        call(k, j, a, buf, portal)
    assert e.value.reason == reason
    assert [(v.start, v.end, v.writable) for v in a.aspace.vmas] == vmas
    assert a.aspace.ptes == ptes and len(out) == n


@pytest.mark.parametrize("where", ["buf", "portal", "unmapped"])
def test_an_empty_mprotect_or_madvise_succeeds_and_does_nothing(where):
    # do_mprotect_pkey: "if (!len) return 0" after the alignment check; do_madvise:
    # "if (end == start) return 0" -- whatever is (or is not) mapped at the start.
    fab, out, k, j, a, buf, comp, portal = app()
    address = {"buf": buf, "portal": portal, "unmapped": 0x10000}[where]
    vmas = [(v.start, v.end, v.writable) for v in a.aspace.vmas]
    ptes = {vpn: (p.pfn, p.writable) for vpn, p in a.aspace.ptes.items()}
    n = len(out)
    assert k.mprotect(j, a.pid, address, 0, False) == (0, False)
    assert k.madvise(j, a.pid, address, 0, MADV_DONTNEED) == (0, False)
    assert [(v.start, v.end, v.writable) for v in a.aspace.vmas] == vmas
    assert {vpn: (p.pfn, p.writable) for vpn, p in a.aspace.ptes.items()} == ptes
    assert len(out) == n, [t.kind for t in out[n:]]
