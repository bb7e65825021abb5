"""Work on a mapping costs what is present in it, not its size in pages.

A read-only private mapping is not accounted, so it may span most of the 128 TiB user
address space while a handful of its pages are present (faulted in by reads). Linux walks
page tables, which skip what is not populated (``zap_pte_range`` and ``change_pte_range``
only visit present tables); the model's equivalent is to visit the PTEs that exist. Each
test counts the page-table lookups an operation makes on a 1 TiB mapping with two
present pages, and allows a few thousand.
"""

from __future__ import annotations

from .conftest import make_bench

TIB = 1 << 40
#: Lookups allowed: far more than the present pages, far fewer than 2**28 page numbers.
LOOKUPS = 10_000


class Exhausted(Exception):
    """More page-table lookups than the operation may make."""


class CountingPtes(dict):
    """A page table that counts its lookups and stops the operation past LOOKUPS."""

    lookups = 0

    def _tick(self) -> None:
        self.lookups += 1
        if self.lookups > LOOKUPS:
            raise Exhausted(f"more than {LOOKUPS} page-table lookups")

    def get(self, key, default=None):
        self._tick()
        return super().get(key, default)

    def pop(self, key, *default):
        self._tick()
        return super().pop(key, *default)

    def __getitem__(self, key):
        self._tick()
        return super().__getitem__(key)

    def __contains__(self, key):
        self._tick()
        return super().__contains__(key)


def sparse(length: int = TIB, writable: bool = False):
    """A process with a mapping (1 TiB read-only unless told) whose first and last pages
    are present."""
    b = make_bench()
    proc = b.k.create_process(b.j(), "sparse")
    v = b.k.mmap(b.j(), proc.pid, length, writable, False)
    b.k.read_memory(b.j(), proc.pid, v.start, 8)
    b.k.read_memory(b.j(), proc.pid, v.end - 8, 8)
    assert len(proc.aspace.ptes) == 2
    proc.aspace.ptes = CountingPtes(proc.aspace.ptes)
    return b, proc, v


def test_a_user_access_to_a_sparse_mapping_is_bounded():
    b, proc, v = sparse()
    assert b.k.read_memory(b.j(), proc.pid, v.start + TIB // 2, 16) == bytes(16)


def test_munmap_of_a_sparse_mapping_is_bounded():
    b, proc, v = sparse()
    assert b.k.munmap(b.j(), proc.pid, v.start, TIB)[0] == 2


def test_mprotect_of_a_sparse_mapping_is_bounded():
    b, proc, v = sparse()
    # Already read-only: no PTE changes, so nothing to invalidate.
    assert b.k.mprotect(b.j(), proc.pid, v.start, TIB, False) == (0, False)


def test_mprotect_read_only_of_a_sparse_writable_mapping_changes_its_two_ptes_boundedly():
    # 512 MiB writable (within the 1 GiB of memory it is accounted against): 2**17 pages.
    b, proc, v = sparse(512 << 20, True)
    assert b.k.mprotect(b.j(), proc.pid, v.start, 512 << 20, False) == (2, False)
    assert [pte.writable for pte in dict.values(proc.aspace.ptes)] == [False, False]


def test_madvise_dontneed_of_a_sparse_mapping_is_bounded():
    b, proc, v = sparse()
    assert b.k.madvise(b.j(), proc.pid, v.start, TIB, 4)[0] == 2


def test_fork_of_a_sparse_mapping_is_bounded():
    b, proc, v = sparse()
    child = b.k.fork(b.j(), proc.tids[0])
    assert sorted(child.aspace.ptes) == [v.start >> 12, (v.end >> 12) - 1]
    assert [(c.start, c.end) for c in child.aspace.vmas] == [(v.start, v.end)]


def test_exit_of_a_sparse_mapping_is_bounded():
    b, proc, v = sparse()
    frames = len(b.k.memory.frames)
    b.k.exit_thread(b.j(), proc.tids[0])
    assert proc.exited
    assert proc.aspace.vmas == [] and not proc.aspace.ptes
    assert len(b.k.memory.frames) == frames - 2
