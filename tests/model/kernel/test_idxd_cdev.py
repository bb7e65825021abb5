"""The WQ portal mapping holds the WQ's file.

Rule (Linux mm/mmap.c, ``mmap_region()``: ``vma->vm_file = get_file(file)``; ``remove_vma()``
drops it with ``fput``): an mmap holds a reference on its file, so an idxd WQ's release
(``idxd_cdev_release``, drivers/dma/idxd/cdev.c) and the SVA unbind it does run only
after both close(fd) and munmap of the portal, in either order. A PASID's early free
(5.10) therefore waits for both too.
"""

from __future__ import annotations

import pytest

from svasim.model.errors import FailedPrecondition
from svasim.model.fabric import ModelFabric
from svasim_api import idxd

from ..helpers import memmove_desc

PAGE = 4096


def app(early_free: bool = False):
    out: list = []
    fab = ModelFabric(ncpus=2, early_free=early_free, sink=out.append)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "app")
    buf = k.mmap(j, a.pid, 2 * PAGE, True, True).start
    portal, pasid = k.open_wq(j, a.pid, "dsa0", 0)[:2]
    k.schedule(j, a.tids[0], 0)
    return fab, out, k, j, a, buf, portal, pasid


def releases(out: list) -> int:
    return sum(1 for t in out if t.kind == "file.release")


def test_after_close_the_portal_still_submits_and_the_device_still_translates():
    fab, out, k, j, a, buf, portal, pasid = app()
    k.write_memory(j, a.pid, buf, b"held" * 16)
    assert k.close_wq(j, a.pid, "dsa0", 0) == (pasid, False)
    assert releases(out) == 0
    assert fab.iommu.pasid_entry("dsa0", pasid).present
    r = k.enqcmd(j, a.tids[0], portal, memmove_desc(buf, buf + 64, 64, buf + PAGE))
    assert r.outcome == "accepted"
    rec = idxd.unpack_comp(k.wait_completion(j, a.tids[0], buf + PAGE).raw)
    assert rec.status == idxd.DsaCompStatus.SUCCESS
    assert k.read_memory(j, a.pid, buf + 64, 64) == b"held" * 16


@pytest.mark.parametrize("order", ["close-then-munmap", "munmap-then-close"])
def test_the_release_and_unbind_come_with_the_second_of_close_and_munmap(order):
    fab, out, k, j, a, buf, portal, pasid = app()
    first, second = (
        (lambda: k.close_wq(j, a.pid, "dsa0", 0), lambda: k.munmap(j, a.pid, portal, PAGE))
        if order == "close-then-munmap"
        else (lambda: k.munmap(j, a.pid, portal, PAGE), lambda: k.close_wq(j, a.pid, "dsa0", 0))
    )
    first()
    assert releases(out) == 0 and fab.iommu.pasid_entry("dsa0", pasid).present
    second()
    assert releases(out) == 1
    assert fab.iommu.translate(j, "dsa0", pasid, buf, 8, False).fault == "pasid_not_present"
    assert a.pasid == pasid  # without early free the PASID stays with the mm (sva.rst)


def test_early_free_waits_for_both_close_and_munmap():
    fab, out, k, j, a, buf, portal, pasid = app(early_free=True)
    k.close_wq(j, a.pid, "dsa0", 0)
    assert a.pasid == pasid and pasid in fab.iommu.pasid_mm
    k.munmap(j, a.pid, portal, PAGE)
    assert a.pasid == 0 and pasid not in fab.iommu.pasid_mm


def test_a_second_close_is_refused_and_changes_nothing():
    fab, out, k, j, a, buf, portal, pasid = app()
    k.close_wq(j, a.pid, "dsa0", 0)
    n = len(out)
    with pytest.raises(FailedPrecondition) as e:
        k.close_wq(j, a.pid, "dsa0", 0)
    assert e.value.reason == "WQ_NOT_OPEN" and len(out) == n


def test_two_opens_of_one_wq_are_two_files_each_held_by_its_own_portal():
    fab, out, k, j, a, buf, portal, pasid = app()
    portal2 = k.open_wq(j, a.pid, "dsa0", 0)[0]
    k.close_wq(j, a.pid, "dsa0", 0)
    k.close_wq(j, a.pid, "dsa0", 0)
    k.munmap(j, a.pid, portal, PAGE)
    # One file released; the other is still held by its mapping, and keeps the binding.
    assert releases(out) == 1 and fab.iommu.pasid_entry("dsa0", pasid).present
    k.munmap(j, a.pid, portal2, PAGE)
    assert releases(out) == 2
    assert fab.iommu.translate(j, "dsa0", pasid, buf, 8, False).fault == "pasid_not_present"


def test_exit_releases_a_file_whose_descriptor_was_closed_but_portal_kept():
    fab, out, k, j, a, buf, portal, pasid = app()
    k.close_wq(j, a.pid, "dsa0", 0)
    k.exit_thread(j, a.tids[0])
    assert releases(out) == 1 and a.exited
    assert pasid not in fab.iommu.pasid_mm  # mm_pasid_drop in __mmdrop
    # The release (the device's drain and unbind) comes before any page of the mm is freed.
    kinds = [t.kind for t in out]
    assert kinds.index("file.release") < kinds.index("pte.unmap")
