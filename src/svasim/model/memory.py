"""Host physical memory and per-mm page tables.

Physical memory is a set of 4 KiB frames handed out by a deterministic bump allocator
(frame numbers never depend on anything but the order of requests). Each mm has a top
level page-table frame (its ``pgd``, what CR3 and a PASID entry's first-level pointer
hold) and a page table. The radix levels are not materialised: the table is a map from
virtual page number to PTE, which gives the same answers as a 4-level walk.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
#: Highest user address + 1 on x86-64 with 4-level paging.
TASK_SIZE = 0x0000_7FFF_FFFF_F000
#: Where top-down mmap starts (below a gap left for a stack), like Linux's mmap_base.
MMAP_BASE = 0x0000_7F00_0000_0000
#: First physical frame handed out (frames below are "firmware").
FIRST_PFN = 0x100


def page_align_up(n: int) -> int:
    """Round ``n`` up to a whole number of pages."""
    return (n + PAGE_SIZE - 1) & PAGE_MASK


@dataclass(slots=True)
class Pte:
    """A present page-table entry."""

    pfn: int
    writable: bool


@dataclass(slots=True)
class Vma:
    """A mapping: anonymous memory, or a device portal page (VM_IO | VM_PFNMAP)."""

    start: int
    end: int
    writable: bool
    kind: str = "anon"  # "anon" or "portal"
    device: str = ""
    portal_offset: int = 0

    def contains(self, address: int) -> bool:
        """Whether ``address`` lies inside the mapping."""
        return self.start <= address < self.end


@dataclass(slots=True)
class Extent:
    """Contiguous virtual pages backed by contiguous physical pages."""

    address: int
    physical: int
    length: int
    writable: bool


@dataclass(slots=True)
class WalkResult:
    """What a page-table walk found, up to the first fault."""

    extents: list[Extent]
    faulted: bool = False
    fault_address: int = 0
    protection: bool = False

    @property
    def covered(self) -> int:
        """Bytes translated from the first address on."""
        return sum(e.length for e in self.extents)


@dataclass(slots=True)
class AddressSpace:
    """An mm's mappings and page table."""

    pgd: int
    vmas: list[Vma] = field(default_factory=list)  # sorted by start
    ptes: dict[int, Pte] = field(default_factory=dict)  # vpn -> pte
    mmap_top: int = MMAP_BASE

    def find_vma(self, address: int) -> Vma | None:
        """The mapping that contains ``address``, if any."""
        starts = [v.start for v in self.vmas]
        i = bisect.bisect_right(starts, address) - 1
        if i >= 0 and self.vmas[i].contains(address):
            return self.vmas[i]
        return None

    def insert_vma(self, vma: Vma) -> None:
        """Add a mapping, keeping the list sorted."""
        bisect.insort(self.vmas, vma, key=lambda v: v.start)

    def walk(self, address: int, length: int, write: bool) -> WalkResult:
        """Translate ``[address, address+length)`` up to the first fault."""
        extents: list[Extent] = []
        va = address
        end = address + length
        while va < end:
            pte = self.ptes.get(va >> PAGE_SHIFT)
            if pte is None:
                return WalkResult(extents, True, va, False)
            if write and not pte.writable:
                return WalkResult(extents, True, va, True)
            n = min(PAGE_SIZE - (va & (PAGE_SIZE - 1)), end - va)
            pa = (pte.pfn << PAGE_SHIFT) | (va & (PAGE_SIZE - 1))
            last = extents[-1] if extents else None
            if last and last.physical + last.length == pa and last.writable == pte.writable:
                last.length += n
            else:
                extents.append(Extent(va, pa, n, pte.writable))
            va += n
        return WalkResult(extents)


class PhysicalMemory:
    """Frames of host memory, allocated on demand and zero-filled."""

    def __init__(self) -> None:
        self.frames: dict[int, bytearray] = {}
        self.next_pfn = FIRST_PFN

    def alloc_frame(self) -> int:
        """A new zeroed frame's number."""
        pfn = self.next_pfn
        self.next_pfn += 1
        self.frames[pfn] = bytearray(PAGE_SIZE)
        return pfn

    def free_frame(self, pfn: int) -> None:
        """Return a frame (its number is not reused, which keeps runs comparable)."""
        self.frames.pop(pfn, None)

    def read(self, physical: int, length: int) -> bytes:
        """Read bytes; a read of a frame that does not exist is a bus error (ValueError)."""
        out = bytearray()
        pa = physical
        end = physical + length
        while pa < end:
            frame = self.frames.get(pa >> PAGE_SHIFT)
            if frame is None:
                raise ValueError(f"physical address {pa:#x} is not backed by memory")
            off = pa & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - off, end - pa)
            out += frame[off : off + n]
            pa += n
        return bytes(out)

    def write(self, physical: int, data: bytes) -> None:
        """Write bytes; every frame touched must exist (checked before any byte changes)."""
        end = physical + len(data)
        for pfn in range(physical >> PAGE_SHIFT, ((end - 1) >> PAGE_SHIFT) + 1 if data else 0):
            if pfn not in self.frames:
                raise ValueError(f"physical address {pfn << PAGE_SHIFT:#x} is not backed by memory")
        pa = physical
        pos = 0
        while pos < len(data):
            frame = self.frames[pa >> PAGE_SHIFT]
            off = pa & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - off, len(data) - pos)
            frame[off : off + n] = data[pos : pos + n]
            pa += n
            pos += n
