"""Physical memory is finite: what would need more frames than are free is refused first.

- A writable private mapping is accounted (VM_ACCOUNT) and the heuristic overcommit of
  ``__vm_enough_memory`` (mm/util.c, OVERCOMMIT_GUESS) refuses one of more pages than
  totalram_pages() + swap (no swap here): ENOMEM. A read-only one is not accounted.
- MAP_POPULATE, and a user access that faults pages in, of more pages than are free is
  refused with ENOMEM before anything changes (the fabric has no OOM killer).
"""

from __future__ import annotations

import pytest

from svasim import compiled
from svasim.model.accel import default_devices
from svasim.model.errors import ResourceExhausted
from svasim.model.fabric import ModelFabric
from svasim.model.memory import DEFAULT_MEMORY_SIZE, PhysicalMemory
from svasim_api import idxd

from ..helpers import memmove_desc
from .conftest import PAGE, make_bench
from .test_address_space import refused


def test_default_memory_is_one_gib_of_frames():
    assert DEFAULT_MEMORY_SIZE == 1 << 30
    assert PhysicalMemory().total_frames == (1 << 30) // 4096


@pytest.mark.parametrize("size", [0, -PAGE, PAGE + 1, 1.5, True])
def test_a_memory_size_that_is_not_whole_pages_is_refused(size):
    # The compiled model checks the annotation (an int) before the code does.
    with pytest.raises(TypeError if compiled.active() and type(size) is float else ValueError):
        PhysicalMemory(size)


def test_a_writable_mapping_larger_than_memory_is_refused_and_a_read_only_one_is_not():
    b = make_bench(64 * PAGE)
    pid = b.k.create_process(b.j(), "p").pid
    refused(b, pid, lambda: b.k.mmap(b.j(), pid, 65 * PAGE, True, False), ResourceExhausted, "ENOMEM")
    b.k.mmap(b.j(), pid, 64 * PAGE, True, False)
    b.k.mmap(b.j(), pid, 1 << 40, False, False)


def test_populate_beyond_free_memory_is_enomem_and_changes_nothing():
    b = make_bench(16 * PAGE)
    pid = b.k.create_process(b.j(), "p").pid  # its page-table root takes one frame
    refused(b, pid, lambda: b.k.mmap(b.j(), pid, 16 * PAGE, True, True), ResourceExhausted, "ENOMEM")
    v = b.k.mmap(b.j(), pid, 15 * PAGE, True, True)
    assert b.k.memory.free_frames == 0
    assert len(b.k.processes[pid].aspace.ptes) == 15
    b.k.munmap(b.j(), pid, v.start, v.end - v.start)
    assert b.k.memory.free_frames == 15


def test_a_write_that_would_fault_in_more_pages_than_are_free_is_refused_whole():
    b = make_bench(8 * PAGE)
    pid = b.k.create_process(b.j(), "p").pid
    start = b.k.mmap(b.j(), pid, 8 * PAGE, True, False).start
    b.k.write_memory(b.j(), pid, start, b"x" * (4 * PAGE))  # 4 of the 7 free frames
    # Three pages are free, the write touches three present and four new ones.
    refused(b, pid, lambda: b.k.write_memory(b.j(), pid, start + PAGE, b"y" * 7 * PAGE), ResourceExhausted, "ENOMEM")
    refused(b, pid, lambda: b.k.read_memory(b.j(), pid, start, 8 * PAGE), ResourceExhausted, "ENOMEM")
    # What fits still works, and a rewrite of present pages needs no frame.
    assert b.k.write_memory(b.j(), pid, start + 4 * PAGE, b"z" * (3 * PAGE)) == 3 * PAGE
    assert b.k.memory.free_frames == 0
    assert b.k.write_memory(b.j(), pid, start, b"w" * (7 * PAGE)) == 7 * PAGE
    assert b.k.read_memory(b.j(), pid, start + 6 * PAGE, 2) == b"ww"


def test_a_read_of_physical_memory_beyond_what_exists_fails_before_copying():
    m = PhysicalMemory(4 * PAGE)
    pfn = m.alloc_frame()
    with pytest.raises(ValueError):
        m.read(pfn << 12, 2**62)
    assert m.read(pfn << 12, PAGE) == bytes(PAGE)
    for _ in range(3):
        m.alloc_frame()
    with pytest.raises(ResourceExhausted):
        m.alloc_frame()


def test_making_more_read_only_memory_writable_than_exists_is_refused():
    b = make_bench(64 * PAGE)
    pid = b.k.create_process(b.j(), "p").pid
    big = b.k.mmap(b.j(), pid, 65 * PAGE, False, False).start
    small = b.k.mmap(b.j(), pid, 64 * PAGE, False, False).start
    # mprotect_fixup charges the pages that become writable (security_vm_enough_memory_mm).
    refused(b, pid, lambda: b.k.mprotect(b.j(), pid, big, 65 * PAGE, True), ResourceExhausted, "ENOMEM")
    b.k.mprotect(b.j(), pid, small, 64 * PAGE, True)


def test_the_fabric_is_given_its_memory_size():
    assert ModelFabric(memory_size=16 * PAGE).kernel.memory.total_frames == 16
    assert ModelFabric().kernel.memory.total_frames == (1 << 30) // 4096
    with pytest.raises(ValueError):
        ModelFabric(memory_size=PAGE + 1)


def fill(b, pid: int) -> None:
    """Map and touch every free frame, so the next allocation has none."""
    free = b.k.memory.free_frames
    if free:
        b.k.mmap(b.j(), pid, free * PAGE, True, True)
    assert b.k.memory.free_frames == 0


def test_a_process_created_with_no_free_frame_is_refused_without_using_a_pid():
    b = make_bench(4 * PAGE)
    first = b.k.create_process(b.j(), "first")
    fill(b, first.pid)
    pids, events = set(b.k.processes), len(b.out)
    with pytest.raises(ResourceExhausted) as info:
        b.k.create_process(b.j(), "second")
    assert info.value.metadata["errno"] == "ENOMEM"
    assert set(b.k.processes) == pids and len(b.out) == events
    # With a frame free again, the next process gets the pid a refused one did not take:
    # the first process's pid and its thread's tid were 1 and 2.
    v = first.aspace.vmas[0]
    b.k.munmap(b.j(), first.pid, v.start, v.end - v.start)
    assert b.k.create_process(b.j(), "second").pid == 3


def test_fork_needs_a_frame_for_the_root_and_each_present_page_before_it_copies():
    b = make_bench(8 * PAGE)
    parent = b.k.create_process(b.j(), "parent")  # frame 1: its page-table root
    v = b.k.mmap(b.j(), parent.pid, 3 * PAGE, True, True)  # frames 2-4
    b.k.write_memory(b.j(), parent.pid, v.start, b"parent")
    b.k.mmap(b.j(), parent.pid, 1 << 20, False, False)  # nothing present: copies nothing
    hog = b.k.mmap(b.j(), parent.pid, PAGE, True, True)  # frame 5; three left, the child needs four
    processes, frames, events = set(b.k.processes), len(b.k.memory.frames), len(b.out)
    next_pid = b.k.next_pid
    with pytest.raises(ResourceExhausted) as info:
        b.k.fork(b.j(), parent.tids[0])
    assert info.value.metadata["errno"] == "ENOMEM"
    assert (set(b.k.processes), len(b.k.memory.frames), len(b.out)) == (processes, frames, events)
    assert b.k.next_pid == next_pid
    b.k.munmap(b.j(), parent.pid, hog.start, PAGE)  # the hog's page is not copied either: 1 + 3 of 4 free
    child = b.k.fork(b.j(), parent.tids[0])
    assert b.k.memory.free_frames == 0
    assert b.k.read_memory(b.j(), child.pid, v.start, 6) == b"parent"


def test_exec_with_no_frame_for_the_new_root_is_refused_and_keeps_the_old_mm():
    b = make_bench(4 * PAGE)
    proc = b.k.create_process(b.j(), "p")
    fill(b, proc.pid)
    b.k.write_memory(b.j(), proc.pid, proc.aspace.vmas[0].start, b"kept")
    aspace, events = proc.aspace, len(b.out)
    with pytest.raises(ResourceExhausted) as info:
        b.k.exec(b.j(), proc.tids[0])
    assert info.value.metadata["errno"] == "ENOMEM"
    assert proc.aspace is aspace and len(b.out) == events
    assert b.k.read_memory(b.j(), proc.pid, aspace.vmas[0].start, 4) == b"kept"


def test_a_device_fault_with_no_free_frame_fails_with_a_page_fault_status():
    # iommu_sva_handle_iopf: handle_mm_fault's VM_FAULT_OOM leaves the response INVALID,
    # so a blocking fault ends the descriptor with "page fault, invalid request".
    devices = default_devices()
    devices[0].wqs[0].cfg.block_on_fault = True
    out: list = []
    fab = ModelFabric(ncpus=1, devices=devices, sink=out.append, memory_size=8 * PAGE)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "app")
    src = k.mmap(j, a.pid, PAGE, True, True).start
    comp = k.mmap(j, a.pid, PAGE, True, True).start
    dst = k.mmap(j, a.pid, PAGE, True, False).start
    portal = k.open_wq(j, a.pid, "dsa0", 0)[0]
    k.schedule(j, a.tids[0], 0)
    k.write_memory(j, a.pid, src, b"\x5a" * 64)
    hog = k.mmap(j, a.pid, k.memory.free_frames * PAGE, True, True)
    assert k.memory.free_frames == 0
    desc = memmove_desc(src, dst, 64, comp, flags=int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR | idxd.OpFlag.BOF))
    assert k.enqcmd(j, a.tids[0], portal, desc).outcome == "accepted"
    rec = idxd.unpack_comp(k.wait_completion(j, a.tids[0], comp).raw)
    assert rec.status == idxd.DsaCompStatus.PAGE_FAULT_IR and rec.fault_addr == dst
    assert dst >> 12 not in a.aspace.ptes
    assert [t.detail["response"] for t in out if t.kind == "prq.response"] == ["invalid"]
    # Nothing was lost: with memory free again, the same copy pages the destination in.
    k.munmap(j, a.pid, hog.start, hog.end - hog.start)
    desc = memmove_desc(src, dst, 64, comp + 32, flags=int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR | idxd.OpFlag.BOF))
    assert k.enqcmd(j, a.tids[0], portal, desc).outcome == "accepted"
    assert idxd.unpack_comp(k.wait_completion(j, a.tids[0], comp + 32).raw).status == idxd.DsaCompStatus.SUCCESS
    assert k.read_memory(j, a.pid, dst, 64) == b"\x5a" * 64
