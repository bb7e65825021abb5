"""mmap, munmap, mprotect and madvise check addresses and lengths as Linux does, first.

Rules (x86-64, 4-level paging):
- TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE = 0x7ffffffff000
  (arch/x86/include/asm/page_64_types.h); nothing is mapped at or above it, nor below
  vm.mmap_min_addr (65536 as x86 distributions set CONFIG_DEFAULT_MMAP_MIN_ADDR).
- do_mmap (mm/mmap.c): ``!len`` is EINVAL; ``PAGE_ALIGN(len)`` that overflows to 0, or a
  length beyond ``TASK_SIZE - mmap_min_addr`` (get_unmapped_area), is ENOMEM; so is
  ``mm->map_count > sysctl_max_map_count`` (DEFAULT_MAX_MAP_COUNT = USHRT_MAX - 5 =
  65530, include/linux/mm.h), and an address space with no room left.
- __do_munmap: ``offset_in_page(start) || start > TASK_SIZE || len > TASK_SIZE - start``
  is EINVAL, and so is a length that rounds to nothing.
- do_mprotect_pkey (mm/mprotect.c): an unaligned start is EINVAL; ``end <= start`` after
  ``PAGE_ALIGN`` (a wrap) is ENOMEM. do_madvise (mm/madvise.c): the same wrap is EINVAL.
- access_ok: a user access beyond TASK_SIZE_MAX is EFAULT.
A refused call changes nothing and records nothing; ENOMEM is RESOURCE_EXHAUSTED.
"""

from __future__ import annotations

import time

import pytest

from svasim.model import memory
from svasim.model.errors import InvalidArgument, OutOfRange, ResourceExhausted, SimError

from .conftest import PAGE, Bench

TASK_SIZE_MAX = 0x7FFF_FFFF_F000
MMAP_MIN_ADDR = 65536
TIB = 1 << 40
MADV_DONTNEED = 4


def snapshot(b: Bench, pid: int) -> tuple:
    a = b.k.processes[pid].aspace
    return ([(v.start, v.end, v.writable) for v in a.vmas], dict(a.ptes), a.mmap_top, len(b.k.memory.frames))


def refused(b: Bench, pid: int, call, error: type[SimError], errno: str | None) -> SimError:
    """Run ``call`` expecting ``error`` (with that Linux errno), and nothing changed."""
    before, events = snapshot(b, pid), len(b.out)
    with pytest.raises(error) as info:
        call()
    assert snapshot(b, pid) == before
    assert len(b.out) == events, [t.kind for t in b.out[events:]]
    if errno is not None:
        assert info.value.metadata.get("errno") == errno
    return info.value


def test_the_modelled_limits_are_linux_x86_64_ones():
    assert memory.TASK_SIZE_MAX == TASK_SIZE_MAX
    assert memory.MMAP_MIN_ADDR == MMAP_MIN_ADDR
    assert memory.DEFAULT_MAX_MAP_COUNT == 65530


def test_127_mappings_of_a_tib_end_in_enomem_never_below_mmap_min_addr(bench):
    b = bench
    pid = b.k.create_process(b.j(), "big").pid
    mapped = []
    with pytest.raises(ResourceExhausted) as info:
        for _ in range(127):
            # Read-only private mappings are not accounted, so only the address space limits them.
            mapped.append(b.k.mmap(b.j(), pid, TIB, False, False))
    assert info.value.metadata["errno"] == "ENOMEM"
    assert 100 < len(mapped) < 127
    for v in mapped:
        assert MMAP_MIN_ADDR <= v.start < v.end <= TASK_SIZE_MAX
    spans = sorted((v.start, v.end) for v in mapped)
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:], strict=False))
    # ... and the refusal recorded nothing, changed nothing.
    refused(b, pid, lambda: b.k.mmap(b.j(), pid, TIB, False, False), ResourceExhausted, "ENOMEM")


@pytest.mark.parametrize(
    ("length", "error", "errno"),
    [
        (0, InvalidArgument, "EINVAL"),
        (-1, InvalidArgument, "EINVAL"),
        (2**64 - 1, ResourceExhausted, "ENOMEM"),  # PAGE_ALIGN overflows
        (2**63, ResourceExhausted, "ENOMEM"),
        (TASK_SIZE_MAX, ResourceExhausted, "ENOMEM"),  # more than TASK_SIZE - mmap_min_addr
        (TASK_SIZE_MAX - MMAP_MIN_ADDR + 1, ResourceExhausted, "ENOMEM"),
    ],
)
def test_mmap_length_checks(bench, length, error, errno):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    refused(b, pid, lambda: b.k.mmap(b.j(), pid, length, False, False), error, errno)


def test_mmap_beyond_max_map_count_is_enomem(bench):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    b.k.processes[pid].aspace.max_map_count = 3
    # do_mmap refuses only once map_count > max_map_count: the mm may hold max + 1.
    for _ in range(4):
        b.k.mmap(b.j(), pid, PAGE, True, False)
    refused(b, pid, lambda: b.k.mmap(b.j(), pid, PAGE, True, False), ResourceExhausted, "ENOMEM")


def test_mprotect_split_beyond_max_map_count_is_enomem(bench):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    start = b.k.mmap(b.j(), pid, 3 * PAGE, True, True).start
    b.k.processes[pid].aspace.max_map_count = 2
    # Protecting the middle page needs two splits: the second would find map_count 2 >= 2.
    refused(b, pid, lambda: b.k.mprotect(b.j(), pid, start + PAGE, PAGE, False), ResourceExhausted, "ENOMEM")
    # One split (the first page) is allowed: map_count 1 < 2.
    b.k.mprotect(b.j(), pid, start, PAGE, False)
    assert len(b.k.processes[pid].aspace.vmas) == 2


@pytest.mark.parametrize(
    ("address", "length"),
    [
        (MMAP_MIN_ADDR + 1, PAGE),  # offset_in_page(start)
        (2**64 - PAGE, 2**63),  # start > TASK_SIZE
        (TASK_SIZE_MAX + PAGE, PAGE),
        (MMAP_MIN_ADDR, TASK_SIZE_MAX - MMAP_MIN_ADDR + 1),  # len > TASK_SIZE - start
        (MMAP_MIN_ADDR, 2**64 - 1),
        (MMAP_MIN_ADDR, 0),  # PAGE_ALIGN(0): start == end
    ],
)
def test_munmap_range_checks_are_einval(bench, address, length):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    b.k.mmap(b.j(), pid, PAGE, True, True)
    refused(b, pid, lambda: b.k.munmap(b.j(), pid, address, length), InvalidArgument, "EINVAL")


def test_munmap_of_the_whole_address_space_costs_what_is_mapped(bench):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    for _ in range(3):
        b.k.mmap(b.j(), pid, 2 * PAGE, True, True)
    t0 = time.perf_counter()
    # 2**47 bytes: 2**35 page numbers, six of them mapped.
    pages, _ = b.k.munmap(b.j(), pid, MMAP_MIN_ADDR, TASK_SIZE_MAX - MMAP_MIN_ADDR)
    assert time.perf_counter() - t0 < 1.0
    assert pages == 6
    assert b.k.processes[pid].aspace.vmas == []


def test_mprotect_and_madvise_ranges_that_wrap(bench):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    start = b.k.mmap(b.j(), pid, PAGE, True, True).start
    wrap = 2**64 - start
    refused(b, pid, lambda: b.k.mprotect(b.j(), pid, start + 1, PAGE, False), InvalidArgument, "EINVAL")
    # PAGE_ALIGN(len) wraps: end <= start is ENOMEM for mprotect, EINVAL for madvise.
    refused(b, pid, lambda: b.k.mprotect(b.j(), pid, start, wrap, False), OutOfRange, "ENOMEM")
    refused(b, pid, lambda: b.k.mprotect(b.j(), pid, start, 2**64 - 1, False), OutOfRange, "ENOMEM")
    refused(b, pid, lambda: b.k.madvise(b.j(), pid, start, wrap, MADV_DONTNEED), InvalidArgument, "EINVAL")
    refused(b, pid, lambda: b.k.madvise(b.j(), pid, start, 2**64 - 1, MADV_DONTNEED), InvalidArgument, "EINVAL")
    refused(b, pid, lambda: b.k.madvise(b.j(), pid, start + 8, PAGE, MADV_DONTNEED), InvalidArgument, "EINVAL")
    # Beyond TASK_SIZE_MAX nothing is mapped: ENOMEM.
    refused(b, pid, lambda: b.k.mprotect(b.j(), pid, TASK_SIZE_MAX, PAGE, False), OutOfRange, None)


@pytest.mark.parametrize(
    ("address", "length"),
    [(TASK_SIZE_MAX - 8, 16), (TASK_SIZE_MAX, 1), (2**63, 8), (2**64 - 8, 8)],
)
def test_user_access_beyond_task_size_is_efault(bench, address, length):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    refused(b, pid, lambda: b.k.write_memory(b.j(), pid, address, b"\0" * length), OutOfRange, "EFAULT")
    refused(b, pid, lambda: b.k.read_memory(b.j(), pid, address, length), OutOfRange, "EFAULT")


def test_one_access_is_bounded_before_the_mappings_are_walked(bench):
    b = bench
    pid = b.k.create_process(b.j(), "p").pid
    err = refused(b, pid, lambda: b.k.read_memory(b.j(), pid, MMAP_MIN_ADDR, 2**46), OutOfRange, None)
    assert err.reason == "ACCESS_TOO_LARGE"


def test_present_and_overlapping_visit_what_is_mapped():
    a = memory.AddressSpace(pgd=PAGE)
    for start in (0x10000, 0x20000, 0x30000):
        a.insert_vma(memory.Vma(start, start + 2 * PAGE, True))
    for va in (0x10000, 0x21000, 0x30000):
        a.ptes[va >> 12] = memory.Pte(va >> 12, True)
    t0 = time.perf_counter()
    assert [va for va, _ in a.present(0, 2**64)] == [0x10000, 0x21000, 0x30000]
    assert time.perf_counter() - t0 < 0.5
    assert [va for va, _ in a.present(0x11000, 0x30000)] == [0x21000]
    assert [va for va, _ in a.present(0x10000, 0x10001)] == [0x10000]
    assert [v.start for v in a.overlapping(0x11000, 0x30001)] == [0x10000, 0x20000, 0x30000]
    assert [v.start for v in a.overlapping(0x12000, 0x20000)] == []
    assert [v.start for v in a.overlapping(0, 2**64)] == [0x10000, 0x20000, 0x30000]


@pytest.mark.parametrize(("room", "fits"), [(0, False), (PAGE, False), (2 * PAGE, True)])
def test_a_wq_portal_is_never_mapped_below_mmap_min_addr(bench, room, fits):
    b = bench
    proc = b.k.create_process(b.j(), "p")
    # One read-only mapping takes the address space down to MMAP_MIN_ADDR + room; a guard
    # page stays below it, so the portal page fits only when room is two pages.
    b.k.mmap(b.j(), proc.pid, proc.aspace.mmap_top - MMAP_MIN_ADDR - room, False, False)
    if not fits:
        refused(b, proc.pid, lambda: b.k.open_wq(b.j(), proc.pid, "dsa0", 0), ResourceExhausted, "ENOMEM")
        assert proc.pasid == 0 and proc.files == []
        return
    portal = b.k.open_wq(b.j(), proc.pid, "dsa0", 0)[0]
    assert portal == MMAP_MIN_ADDR and proc.pasid
