"""Invalidations cost what is cached, not the size of the range.

A PASID-based IOTLB invalidation (VT-d descriptor type 6, ADDR[63:12] + AM) and a device
TLB invalidation (type 8) name a range of the 64-bit address space, or a whole PASID. The
entries dropped are exactly those cached in the range; a range of 2**62 bytes (2**50
page numbers) answers at once; a range that does not fit in 64 bits cannot be expressed
and is refused.
"""

from __future__ import annotations

import time

import pytest

from svasim.model.errors import InvalidArgument
from svasim.model.fabric import ModelFabric

PAGE = 4096


def filled():
    """An IOMMU and a device whose TLBs cache three pages of PASID 5 and one of PASID 6."""
    fab = ModelFabric(ncpus=1)
    iommu, dev = fab.iommu, fab.accel.devices["dsa0"]
    for pasid, vpn in ((5, 0x10), (5, 0x11), (5, 0x7FFF_FFFF), (6, 0x10)):
        iommu.iotlb[(pasid, vpn)] = (vpn + 0x100, True)
        dev.devtlb[(pasid, vpn)] = (vpn + 0x100, True)
    return fab, iommu, dev


@pytest.mark.parametrize(
    ("address", "length", "left"),
    [
        (0, 2**62, {(6, 0x10)}),  # vpn 0x7fffffff is at 2**43 - 4096, inside
        (0x11000, 2**62, {(5, 0x10), (6, 0x10)}),
        (2**63, 2**62, {(5, 0x10), (5, 0x11), (5, 0x7FFF_FFFF), (6, 0x10)}),
        (0, 2**43 - PAGE, {(5, 0x7FFF_FFFF), (6, 0x10)}),  # ends just before vpn 0x7fffffff
        (0, 2**64, {(6, 0x10)}),
        (0x10800, 1, {(5, 0x11), (5, 0x7FFF_FFFF), (6, 0x10)}),
        (0, 0, {(6, 0x10)}),  # length 0: the whole PASID
    ],
)
def test_range_invalidation_drops_exactly_the_cached_pages_at_once(address, length, left):
    fab, iommu, dev = filled()
    t0 = time.perf_counter()
    iommu.invalidate(fab.journal("iommu"), 5, address, length)
    fab.accel.invalidate_devtlb(fab.journal("accel"), "dsa0", 5, address, length)
    assert time.perf_counter() - t0 < 0.5
    assert set(iommu.iotlb) == left
    assert set(dev.devtlb) == left


@pytest.mark.parametrize(("address", "length"), [(2**64 - PAGE, 2 * PAGE), (1, 2**64), (2**64, 1)])
def test_a_range_beyond_64_bits_is_refused(address, length):
    fab, iommu, dev = filled()
    before = (dict(iommu.iotlb), dict(dev.devtlb))
    with pytest.raises(InvalidArgument):
        iommu.invalidate(fab.journal("iommu"), 5, address, length)
    with pytest.raises(InvalidArgument):
        fab.accel.invalidate_devtlb(fab.journal("accel"), "dsa0", 5, address, length)
    assert (iommu.iotlb, dev.devtlb) == before
