"""Host physical memory and per-mm page tables.

Physical memory is a set of 4 KiB frames handed out by a deterministic bump allocator
(frame numbers never depend on anything but the order of requests). Each mm has a top
level page-table frame (its ``pgd``, what CR3 and a PASID entry's first-level pointer
hold) and a page table. The radix levels are not materialised: the table is a map from
virtual page number to PTE, which gives the same answers as a 4-level walk.

The limits of the modelled machine are Linux's on x86-64 with 4-level paging: user
addresses below ``TASK_SIZE_MAX``, nothing mapped below ``MMAP_MIN_ADDR``, at most
``DEFAULT_MAX_MAP_COUNT`` mappings per mm, and a fixed amount of physical memory
(``PhysicalMemory(size=...)``, 1 GiB unless configured). Work on a range is bounded by
what is mapped in it: :meth:`AddressSpace.present` visits present PTEs, never every page
number of the range.
"""

from __future__ import annotations

import bisect
from dataclasses import dataclass, field

from svasim.model.errors import InvalidArgument, OutOfRange, ResourceExhausted

PAGE_SHIFT = 12
PAGE_SIZE = 1 << PAGE_SHIFT
PAGE_MASK = ~(PAGE_SIZE - 1)
#: Where top-down mmap starts (below a gap left for a stack), like Linux's mmap_base.
MMAP_BASE = 0x0000_7F00_0000_0000
#: First physical frame handed out (frames below are "firmware").
FIRST_PFN = 0x100
#: TASK_SIZE_MAX with 4-level paging: ``(1 << 47) - PAGE_SIZE``, the end of the user
#: address space (arch/x86/include/asm/page_64_types.h; the guard page below the
#: non-canonical hole is never mapped).
TASK_SIZE_MAX = (1 << 47) - PAGE_SIZE
#: vm.mmap_min_addr: the lowest address mmap hands out (CONFIG_DEFAULT_MMAP_MIN_ADDR;
#: mm/Kconfig suggests 65536 for x86, which is what distributions ship).
MMAP_MIN_ADDR = 0x10000
#: vm.max_map_count: DEFAULT_MAX_MAP_COUNT = USHRT_MAX - MAPCOUNT_ELF_CORE_MARGIN
#: (include/linux/mm.h): mmap and split_vma fail with ENOMEM beyond it.
DEFAULT_MAX_MAP_COUNT = 65535 - 5
#: Simulated physical memory unless configured otherwise.
DEFAULT_MEMORY_SIZE = 1 << 30


#: Where a 64-bit ``unsigned long`` wraps: a range reaching it has overflowed.
ULONG_END = 1 << 64
#: The longest single user access (read or write of memory) one request may make.
USER_ACCESS_MAX = 64 << 20


def page_align_up(n: int) -> int:
    """Round ``n`` up to a whole number of pages."""
    return (n + PAGE_SIZE - 1) & PAGE_MASK


# -- argument checks of the memory system calls, made before anything changes -------------
def check_mmap(aspace: AddressSpace, memory: PhysicalMemory, length: int, writable: bool, populate: bool) -> int:
    """do_mmap's checks of an anonymous private mapping; returns its page-aligned size.

    - ``!len``: EINVAL;
    - ``PAGE_ALIGN(len)`` of 0 (overflow) or beyond ``TASK_SIZE - mmap_min_addr``
      (get_unmapped_area): ENOMEM;
    - ``mm->map_count > sysctl_max_map_count``: ENOMEM;
    - no room left between ``mmap_min_addr`` and the lowest mapping (vm_unmapped_area):
      ENOMEM (the model hands out addresses top-down and never reuses a freed range);
    - a writable private mapping is accounted (VM_ACCOUNT), and the heuristic overcommit
      (``__vm_enough_memory``, OVERCOMMIT_GUESS, no swap) refuses one larger than all of
      memory: ENOMEM;
    - MAP_POPULATE of more pages than are free: ENOMEM (the model refuses what Linux would
      answer with the OOM killer).
    """
    if length <= 0:
        raise InvalidArgument("BAD_LENGTH", "mmap length must be positive", length=length, errno="EINVAL")
    size = page_align_up(length)
    if size >= ULONG_END or size > TASK_SIZE_MAX - MMAP_MIN_ADDR:
        raise ResourceExhausted(
            "LENGTH_TOO_LARGE",
            f"mmap length {length:#x} exceeds the user address space ({TASK_SIZE_MAX - MMAP_MIN_ADDR:#x})",
            length=length,
            errno="ENOMEM",
        )
    if len(aspace.vmas) > aspace.max_map_count:
        raise ResourceExhausted(
            "MAP_COUNT_EXCEEDED",
            f"the mm has {len(aspace.vmas)} mappings, more than max_map_count {aspace.max_map_count}",
            errno="ENOMEM",
        )
    if aspace.mmap_top - size < MMAP_MIN_ADDR:
        raise ResourceExhausted(
            "ADDRESS_SPACE_EXHAUSTED",
            f"no {size:#x} bytes of free address space between {MMAP_MIN_ADDR:#x} and {aspace.mmap_top:#x}",
            length=length,
            errno="ENOMEM",
        )
    pages = size >> PAGE_SHIFT
    if writable and pages > memory.total_frames:
        raise ResourceExhausted(
            "OVERCOMMIT_REFUSED",
            f"a writable mapping of {pages} pages exceeds the {memory.total_frames} pages of memory",
            pages=pages,
            errno="ENOMEM",
        )
    if populate:
        memory.reserve(pages)
    return size


def check_munmap(address: int, length: int) -> int:
    """__do_munmap's checks; returns the end of the page-aligned range.

    ``offset_in_page(start) || start > TASK_SIZE || len > TASK_SIZE - start``: EINVAL,
    and so is a length that rounds to nothing (``start == end``).
    """
    if (
        address & (PAGE_SIZE - 1)
        or address < 0
        or length <= 0
        or address > TASK_SIZE_MAX
        or (length > TASK_SIZE_MAX - address)
    ):
        raise InvalidArgument(
            "BAD_RANGE",
            f"munmap needs a page-aligned address and a positive length within the user address space "
            f"({address:#x}+{length:#x})",
            address=hex(address),
            length=hex(length),
            errno="EINVAL",
        )
    return address + page_align_up(length)


def check_range(what: str, address: int, length: int) -> int:
    """The checks mprotect (do_mprotect_pkey) and madvise (do_madvise) make of a range
    before looking at the mappings; returns the end of the page-aligned range.

    An unaligned start is EINVAL for both. A range that wraps past the end of the 64-bit
    address space is ENOMEM for mprotect (``end <= start``) and EINVAL for madvise
    (``len_in && !len`` or ``end < start``). A length of 0, which Linux accepts and does
    nothing with, is refused here as a request that cannot mean anything.
    """
    if address & (PAGE_SIZE - 1) or address < 0 or length <= 0:
        raise InvalidArgument(
            "BAD_RANGE",
            f"{what} needs a page-aligned address and a positive length ({address:#x}+{length:#x})",
            address=hex(address),
            length=hex(length),
            errno="EINVAL",
        )
    end = address + page_align_up(length)
    if end >= ULONG_END:
        message = f"{what} range {address:#x}+{length:#x} wraps past the end of the address space"
        if what == "madvise":
            raise InvalidArgument("BAD_RANGE", message, address=hex(address), length=hex(length), errno="EINVAL")
        # Nothing is mapped across the end of the address space: ENOMEM, as for a hole.
        raise OutOfRange("ADDRESS_NOT_MAPPED", message, address=hex(address), length=hex(length), errno="ENOMEM")
    return end


def check_mprotect(
    aspace: AddressSpace, memory: PhysicalMemory, covering: list[Vma], start: int, end: int, writable: bool
) -> None:
    """mprotect_fixup's checks of a wholly mapped range, for all of it before any change.

    - split_vma refuses when ``mm->map_count >= sysctl_max_map_count`` (ENOMEM), for each
      of the (at most two) splits at the range's ends;
    - making private memory writable charges it (``security_vm_enough_memory_mm``): more
      read-only pages than all of memory is ENOMEM, as for a writable mmap.
    """
    splits = int(covering[0].start < start) + int(covering[-1].end > end)
    if splits and len(aspace.vmas) + splits - 1 >= aspace.max_map_count:
        raise ResourceExhausted(
            "MAP_COUNT_EXCEEDED",
            f"splitting would take the mm's {len(aspace.vmas)} mappings past max_map_count {aspace.max_map_count}",
            errno="ENOMEM",
        )
    if writable:
        pages = sum(min(v.end, end) - max(v.start, start) for v in covering if not v.writable) >> PAGE_SHIFT
        if pages > memory.total_frames:
            raise ResourceExhausted(
                "OVERCOMMIT_REFUSED",
                f"making {pages} pages writable exceeds the {memory.total_frames} pages of memory",
                pages=pages,
                errno="ENOMEM",
            )


def access_ok(address: int, length: int) -> None:
    """access_ok: a user access lies wholly below TASK_SIZE_MAX (EFAULT otherwise), and one
    access is at most USER_ACCESS_MAX bytes (the model's bound on a request's work)."""
    if length < 0 or address < 0:
        raise InvalidArgument("BAD_RANGE", f"bad range {address:#x}+{length}", errno="EINVAL")
    if length > USER_ACCESS_MAX:
        raise OutOfRange(
            "ACCESS_TOO_LARGE", f"one access is limited to {USER_ACCESS_MAX >> 20} MiB, got {length}", length=length
        )
    if address + length > TASK_SIZE_MAX:
        raise OutOfRange(
            "BAD_ADDRESS",
            f"range {address:#x}+{length:#x} is not in the user address space (below {TASK_SIZE_MAX:#x})",
            address=hex(address),
            errno="EFAULT",
        )


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
    #: vm.max_map_count for this mm.
    max_map_count: int = DEFAULT_MAX_MAP_COUNT

    def find_vma(self, address: int) -> Vma | None:
        """The mapping that contains ``address``, if any."""
        i = bisect.bisect_right(self.vmas, address, key=lambda v: v.start) - 1
        if i >= 0 and self.vmas[i].contains(address):
            return self.vmas[i]
        return None

    def overlapping(self, start: int, end: int) -> list[Vma]:
        """The mappings that overlap ``[start, end)``, in address order."""
        first = bisect.bisect_right(self.vmas, start, key=lambda v: v.start) - 1
        if first < 0 or self.vmas[first].end <= start:
            first += 1
        last = bisect.bisect_left(self.vmas, end, key=lambda v: v.start)
        return self.vmas[first:last]

    def present(self, start: int, end: int) -> list[tuple[int, Pte]]:
        """The present PTEs of ``[start, end)`` as (virtual address, PTE), in address order.

        The cost is bounded by what is mapped, not by the size of the range: a range of
        more pages than there are PTEs is answered from the PTEs.
        """
        first, last = start >> PAGE_SHIFT, (end + PAGE_SIZE - 1) >> PAGE_SHIFT
        if last - first <= len(self.ptes):
            found = [(vpn, self.ptes.get(vpn)) for vpn in range(first, last)]
            return [(vpn << PAGE_SHIFT, pte) for vpn, pte in found if pte is not None]
        return [(vpn << PAGE_SHIFT, pte) for vpn, pte in sorted(self.ptes.items()) if first <= vpn < last]

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
    """Frames of host memory, allocated on demand and zero-filled, ``size`` bytes of them."""

    def __init__(self, size: int = DEFAULT_MEMORY_SIZE) -> None:
        if isinstance(size, bool) or not isinstance(size, int) or size < PAGE_SIZE or size % PAGE_SIZE:
            raise ValueError(f"memory size must be a positive multiple of {PAGE_SIZE} bytes, got {size!r}")
        self.size = size
        #: totalram_pages(): how many frames may exist at once.
        self.total_frames = size // PAGE_SIZE
        self.frames: dict[int, bytearray] = {}
        self.next_pfn = FIRST_PFN

    @property
    def free_frames(self) -> int:
        """Frames that can still be allocated."""
        return self.total_frames - len(self.frames)

    def reserve(self, frames: int) -> None:
        """Check that ``frames`` frames can be allocated, before a request changes anything:
        ResourceExhausted (ENOMEM) otherwise."""
        if frames > self.free_frames:
            raise ResourceExhausted(
                "OUT_OF_MEMORY",
                f"{frames} pages needed, {self.free_frames} of {self.total_frames} free",
                needed=frames,
                free=self.free_frames,
                errno="ENOMEM",
            )

    def alloc_frame(self) -> int:
        """A new zeroed frame's number (ResourceExhausted when memory is full)."""
        self.reserve(1)
        pfn = self.next_pfn
        self.next_pfn += 1
        self.frames[pfn] = bytearray(PAGE_SIZE)
        return pfn

    def free_frame(self, pfn: int) -> None:
        """Return a frame (its number is not reused, which keeps runs comparable)."""
        self.frames.pop(pfn, None)

    def read(self, physical: int, length: int) -> bytes:
        """Read bytes; a read of a frame that does not exist is a bus error (ValueError),
        found before anything is copied (so a huge length costs no more than the frames
        that exist)."""
        off = physical & (PAGE_SIZE - 1)
        if 0 < length <= PAGE_SIZE - off:
            # Within one frame (the common case): one copy, no assembly.
            frame = self.frames.get(physical >> PAGE_SHIFT)
            if frame is None:
                raise ValueError(f"physical address {physical:#x} is not backed by memory")
            return bytes(memoryview(frame)[off : off + length])
        end = physical + length
        pfn = physical >> PAGE_SHIFT
        last = (end - 1) >> PAGE_SHIFT
        while length > 0 and pfn <= last:
            if pfn not in self.frames:
                raise ValueError(f"physical address {max(physical, pfn << PAGE_SHIFT):#x} is not backed by memory")
            pfn += 1
        out = bytearray()
        pa = physical
        while pa < end:
            frame = self.frames[pa >> PAGE_SHIFT]
            off = pa & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - off, end - pa)
            out += frame[off : off + n]
            pa += n
        return bytes(out)

    def write(self, physical: int, data: bytes) -> None:
        """Write bytes; every frame touched must exist (checked before any byte changes)."""
        off = physical & (PAGE_SIZE - 1)
        if 0 < len(data) <= PAGE_SIZE - off:
            # Within one frame (the common case).
            frame = self.frames.get(physical >> PAGE_SHIFT)
            if frame is None:
                raise ValueError(f"physical address {physical & ~(PAGE_SIZE - 1):#x} is not backed by memory")
            frame[off : off + len(data)] = data
            return
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
