"""Memory management: mm/mmap.c, mm/mprotect.c, mm/madvise.c, mm/memory.c, SVA page faults.

- ``mmap()``/``munmap()`` of anonymous private mappings (``do_mmap``, ``do_vmi_munmap``),
  top-down like the default layout; munmap runs the mmu notifier, a PASID-based IOTLB
  invalidation before it returns (``intel_arch_invalidate_secondary_tlbs``), and then
  ``remove_vma()`` drops each unmapped portal's reference on its WQ file.
- ``mprotect()`` (``do_mprotect_pkey``, ``mprotect_fixup``: VMAs split at the range's
  ends, ``change_protection`` of the present PTEs) and ``madvise(MADV_DONTNEED)``
  (``zap_page_range_single``: the pages go, the mapping stays, the next touch gets a
  zeroed page). Like munmap, each invalidates the IOTLB and device TLB for the range
  when a present PTE changed, so no device keeps a stale permission or frame.
- ``handle_mm_fault()``: first touch of an anonymous page (``do_anonymous_page``), from a
  user access or from the IOMMU's page request (``iommu_sva_handle_iopf``).
- User accesses check the range the way ``access_ok`` plus the VMA walk would, before
  anything changes; device accesses (DMA, the IOMMU's page walk) go to physical memory.
"""

from __future__ import annotations

import bisect
import dataclasses
import zlib

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition, InvalidArgument, OutOfRange
from svasim.model.journal import Journal
from svasim.model.kernel.native import NativeMm
from svasim.model.kernel_state import Process
from svasim.model.memory import (
    PAGE_SHIFT,
    PAGE_SIZE,
    ULONG_END,
    Pte,
    Vma,
    WalkResult,
    access_ok,
    check_mmap,
    check_mprotect,
    check_munmap,
    check_range,
    page_align_up,
)

#: MADV_DONTNEED (include/uapi/asm-generic/mman-common.h).
MADV_DONTNEED = 4


@mypyc_attr(native_class=False)
class Mm(NativeMm):
    """Mappings, page faults and memory accesses from the user and the devices."""

    # -- memory: user side -----------------------------------------------------------------
    def mmap(self, journal: Journal, pid: int, length: int, writable: bool, populate: bool) -> Vma:
        """Anonymous private mapping, top-down like Linux's default layout."""
        proc = self.live_process(pid)
        self.refuse_native(proc, "mmap")
        size = check_mmap(proc.aspace, self.memory, length, writable, populate)
        aspace = proc.aspace
        start = aspace.mmap_top - size
        vma = Vma(start, start + size, writable)
        aspace.insert_vma(vma)
        aspace.mmap_top = start - PAGE_SIZE  # a guard gap keeps mappings apart
        journal.emit(
            f"vma/{pid}/{start:#x}",
            "vma.map",
            None,
            {"start": start, "end": start + size, "writable": writable, "kind": "anon"},
        )
        journal.emit(proc.entity, "mm.mmap_top", None, {"mmap_top": aspace.mmap_top})
        if populate:
            for va in range(start, start + size, PAGE_SIZE):
                self._fault_in(journal, proc, va)
        return vma

    def munmap(self, journal: Journal, pid: int, address: int, length: int) -> tuple[int, bool]:
        """Unmap whole VMAs in the range (partial unmaps are refused, not split).

        A WQ portal in the range lets go of its file, whose release (unbind, early free)
        runs if the descriptor was closed already. Returns (pages unmapped, whether the
        IOTLB was invalidated).
        """
        proc = self.live_process(pid)
        end = check_munmap(address, length)
        victims = proc.aspace.overlapping(address, end)
        for v in victims:
            if v.start < address or v.end > end:
                raise InvalidArgument(
                    "PARTIAL_UNMAP",
                    f"range {address:#x}-{end:#x} cuts the mapping {v.start:#x}-{v.end:#x}; unmap whole mappings",
                )
        pages = self._unmap_vmas(journal, proc, victims)
        invalidated = False
        if victims and proc.pasid:
            # The mmu notifier: PASID-based IOTLB invalidation before munmap returns, so no
            # device can use a stale translation of the freed frames.
            self.iommu.invalidate(journal, proc.pasid, address, end - address)
            invalidated = True
        for v in victims:
            self._put_vm_file(journal, proc, v, early_free=self.early_free)
        return pages, invalidated

    def mprotect(self, journal: Journal, pid: int, address: int, length: int, writable: bool) -> tuple[int, bool]:
        """mprotect(PROT_READ or PROT_READ|PROT_WRITE) of anonymous memory.

        The range must be page aligned and wholly mapped (else nothing changes); an empty
        one succeeds doing nothing. Only the present PTEs are visited. Returns (PTEs whose
        permission changed, whether the IOTLB was invalidated).
        """
        proc = self.live_process(pid)
        self.refuse_native(proc, "mprotect")
        if self._empty_range("mprotect", address, length):
            return 0, False
        end, covering = self._mapped_range(proc, address, length, "mprotect")
        if any(v.kind != "anon" for v in covering):
            raise InvalidArgument("NOT_MEMORY", f"mprotect range {address:#x}-{end:#x} covers a device portal")
        check_mprotect(proc.aspace, self.memory, covering, address, end, writable)
        if covering[0].start < address:
            covering[0] = self._split_vma(journal, proc, covering[0], address)
        if covering[-1].end > end:
            self._split_vma(journal, proc, covering[-1], end)
        changed = 0
        for v, present in zip(covering, self._present_by_vma(proc, covering), strict=True):
            if v.writable != writable:
                journal.emit(f"vma/{pid}/{v.start:#x}", "vma.protect", {"writable": v.writable}, {"writable": writable})
                v.writable = writable
            for va, pte in present:
                if pte.writable != writable:
                    pte.writable = writable
                    changed += 1
                    journal.emit(
                        f"pte/{pid}/{va:#x}", "pte.protect", {"writable": not writable}, {"writable": writable}
                    )
        return changed, self._invalidate_secondary_tlbs(journal, proc, address, end, changed)

    def madvise(self, journal: Journal, pid: int, address: int, length: int, advice: int) -> tuple[int, bool]:
        """madvise(MADV_DONTNEED): drop the pages of the range; the mapping stays.

        The range must be page aligned and wholly mapped, and not a portal (VM_PFNMAP:
        EINVAL in Linux); other advice is refused; an empty range succeeds doing nothing.
        Returns (pages dropped, whether the IOTLB was invalidated).
        """
        proc = self.live_process(pid)
        self.refuse_native(proc, "madvise")
        if advice != MADV_DONTNEED:
            raise InvalidArgument(
                "UNSUPPORTED_ADVICE", f"only MADV_DONTNEED ({MADV_DONTNEED}) is modelled, got {advice}", advice=advice
            )
        if self._empty_range("madvise", address, length):
            return 0, False
        end, covering = self._mapped_range(proc, address, length, "madvise")
        if any(v.kind != "anon" for v in covering):
            raise InvalidArgument("NOT_MEMORY", f"madvise range {address:#x}-{end:#x} covers a device portal")
        present = proc.aspace.present(address, end)
        for va, pte in present:
            del proc.aspace.ptes[va >> PAGE_SHIFT]
            self.memory.free_frame(pte.pfn)
            self.frame_owner.pop(pte.pfn, None)
            journal.emit(f"pte/{pid}/{va:#x}", "pte.unmap", {"pfn": pte.pfn}, None, detail={"madvise": "DONTNEED"})
        pages = len(present)
        return pages, self._invalidate_secondary_tlbs(journal, proc, address, end, pages)

    @staticmethod
    def _empty_range(what: str, address: int, length: int) -> bool:
        """Whether an mprotect or madvise of ``length`` 0 has nothing to do.

        Both check the start's alignment (EINVAL) and then return 0 for an empty range
        before looking at the mappings (``do_mprotect_pkey``: ``if (!len) return 0``;
        ``do_madvise``: ``if (end == start) return 0``).
        """
        if length:
            return False
        if address & (PAGE_SIZE - 1) or not 0 <= address < ULONG_END:
            raise InvalidArgument(
                "BAD_RANGE",
                f"{what} needs a page-aligned address ({address:#x})",
                address=hex(address),
                length=hex(length),
                errno="EINVAL",
            )
        return True

    def _mapped_range(self, proc: Process, address: int, length: int, what: str) -> tuple[int, list[Vma]]:
        """The end of a page-aligned range and the VMAs that cover it without a hole."""
        end = check_range(what, address, length)
        covering = proc.aspace.overlapping(address, end)
        # Where each piece of the range starts and where the mapping that covers it does.
        starts = [address] + [v.end for v in covering]
        found = [v.start for v in covering] + [end]
        for va, mapped_from in zip(starts, found, strict=True):
            if va < mapped_from:
                # ENOMEM in Linux: part of the range is not mapped.
                raise OutOfRange(
                    "ADDRESS_NOT_MAPPED",
                    f"address {va:#x} of {what} range {address:#x}-{end:#x} is not mapped in process {proc.pid}",
                    pid=proc.pid,
                    address=hex(va),
                )
        return end, covering

    def _split_vma(self, journal: Journal, proc: Process, vma: Vma, at: int) -> Vma:
        """split_vma: ``vma`` keeps [start, at) and a new mapping takes [at, end); returns it."""
        new = dataclasses.replace(vma, start=at)
        journal.emit(f"vma/{proc.pid}/{vma.start:#x}", "vma.split", {"end": vma.end}, {"end": at})
        vma.end = at
        proc.aspace.insert_vma(new)
        journal.emit(
            f"vma/{proc.pid}/{at:#x}",
            "vma.map",
            None,
            {"start": at, "end": new.end, "writable": new.writable, "kind": new.kind},
            detail={"split_from": vma.start},
        )
        return new

    def _invalidate_secondary_tlbs(self, journal: Journal, proc: Process, start: int, end: int, ptes: int) -> bool:
        """The mmu notifier after PTEs changed: PASID-based IOTLB (and device TLB)
        invalidation of the range, when the mm has a PASID a device may cache."""
        if not ptes or not proc.pasid:
            return False
        self.iommu.invalidate(journal, proc.pasid, start, end - start)
        return True

    @staticmethod
    def _present_by_vma(proc: Process, vmas: list[Vma]) -> list[list[tuple[int, Pte]]]:
        """The present PTEs of each of ``vmas`` (in address order, not overlapping), from
        one look at the page table: the cost is bounded by what is mapped, as a page-table
        walk skips what is not populated, not by the mappings' sizes in pages."""
        if not vmas:
            return []
        present = proc.aspace.present(vmas[0].start, vmas[-1].end)
        addresses = [va for va, _ in present]
        return [present[bisect.bisect_left(addresses, v.start) : bisect.bisect_left(addresses, v.end)] for v in vmas]

    def _unmap_vmas(self, journal: Journal, proc: Process, vmas: list[Vma]) -> int:
        """Remove mappings (in address order) and their PTEs, freeing anonymous frames;
        returns the pages unmapped."""
        gone = {id(v) for v in vmas}
        by_vma = self._present_by_vma(proc, vmas)
        proc.aspace.vmas[:] = [v for v in proc.aspace.vmas if id(v) not in gone]
        pages = 0
        for v, present in zip(vmas, by_vma, strict=True):
            for va, pte in present:
                del proc.aspace.ptes[va >> PAGE_SHIFT]
                if v.kind == "anon":
                    self.memory.free_frame(pte.pfn)
                    self.frame_owner.pop(pte.pfn, None)
                journal.emit(f"pte/{proc.pid}/{va:#x}", "pte.unmap", {"pfn": pte.pfn}, None)
            pages += len(present)
            journal.emit(f"vma/{proc.pid}/{v.start:#x}", "vma.unmap", {"start": v.start, "end": v.end}, None)
        return pages

    def _fault_in(self, journal: Journal, proc: Process, va: int) -> Pte:
        """do_anonymous_page: a zeroed frame for a not-present page of an anonymous VMA."""
        vpn = va >> PAGE_SHIFT
        pte = proc.aspace.ptes.get(vpn)
        if pte is not None:
            return pte
        vma = proc.aspace.find_vma(va)
        assert vma is not None and vma.kind == "anon"
        pfn = self.memory.alloc_frame()
        self.frame_owner[pfn] = proc.pid
        pte = Pte(pfn, vma.writable)
        proc.aspace.ptes[vpn] = pte
        self.count(None, None, "page_faults")
        journal.emit(
            f"pte/{proc.pid}/{vpn << PAGE_SHIFT:#x}",
            "pte.map",
            None,
            {"pfn": pfn, "writable": vma.writable},
            cycles=self.costs.page_fault,
        )
        return pte

    def _user_range(self, proc: Process, address: int, length: int, write: bool) -> None:
        """Check that a user access can succeed before it changes anything."""
        access_ok(address, length)
        va = address & ~(PAGE_SIZE - 1)
        end = address + length
        while va < end:
            vma = proc.aspace.find_vma(va)
            if vma is None:
                raise OutOfRange(
                    "ADDRESS_NOT_MAPPED",
                    f"address {va:#x} is not mapped in process {proc.pid}",
                    pid=proc.pid,
                    address=hex(va),
                )
            if vma.kind != "anon":
                raise InvalidArgument(
                    "NOT_MEMORY",
                    f"address {va:#x} of process {proc.pid} is a device portal, not memory",
                    address=hex(va),
                )
            if write and not vma.writable:
                raise FailedPrecondition(
                    "READ_ONLY_MAPPING",
                    f"address {va:#x} of process {proc.pid} is mapped read-only",
                    address=hex(va),
                )
            va = vma.end
        if length:
            # The pages this access faults in must exist (ENOMEM changes nothing).
            first = address & ~(PAGE_SIZE - 1)
            pages = (page_align_up(address + length) - first) >> PAGE_SHIFT
            self.memory.reserve(pages - len(proc.aspace.present(first, address + length)))

    def _user_pages(self, journal: Journal, proc: Process, address: int, length: int) -> list[tuple[int, int]]:
        """The physical pieces of a checked user range, faulting pages in on first touch."""
        out = []
        va = address
        end = address + length
        while va < end:
            pte = self._fault_in(journal, proc, va)
            off = va & (PAGE_SIZE - 1)
            n = min(PAGE_SIZE - off, end - va)
            out.append(((pte.pfn << PAGE_SHIFT) | off, n))
            va += n
        return out

    def write_memory(self, journal: Journal, pid: int, address: int, data: bytes) -> int:
        """A store by the process (pages fault in on first touch)."""
        proc = self.live_process(pid)
        self.refuse_native(proc, "a store")
        self._user_range(proc, address, len(data), True)
        pos = 0
        for pa, n in self._user_pages(journal, proc, address, len(data)):
            self.memory.write(pa, data[pos : pos + n])
            pos += n
        journal.emit(
            f"mem/{pid}",
            "mem.write",
            None,
            None,
            cycles=self.costs.user_access_per_line * (-(-len(data) // 64)),
            detail={"address": address, "length": len(data), "crc32": zlib.crc32(data)},
        )
        return len(data)

    def read_memory(self, journal: Journal, pid: int, address: int, length: int) -> bytes:
        """A load by the process (an untouched page reads as zeros once faulted in)."""
        proc = self.live_process(pid)
        self.refuse_native(proc, "a load")
        self._user_range(proc, address, length, False)
        return b"".join(self.memory.read(pa, n) for pa, n in self._user_pages(journal, proc, address, length))

    # -- memory: device side (HostPort) ----------------------------------------------------
    def walk(self, journal: Journal, pgd: int, address: int, length: int, write: bool) -> WalkResult:
        """The IOMMU's first-level walk of the table rooted at ``pgd`` (a native
        process's is the program's real one, and the walk is recorded)."""
        proc = self.by_pgd.get(pgd)
        if proc is None:
            # A table that no mm owns any more: nothing is present.
            return WalkResult([], True, address, False)
        if proc.native_pid:
            return self.native_walk(journal, proc, address, length, write)
        return proc.aspace.walk(address, length, write)

    def dma_read(self, journal: Journal, physical: int, length: int) -> bytes:
        """Device read of physical memory (a native process's pages are read, and the
        bytes recorded, through the native window)."""
        native = self.native_at(physical)
        if native is not None:
            return self.native_read(journal, native[0], native[1], length)
        try:
            return self.memory.read(physical, length)
        except ValueError as e:
            raise OutOfRange("BAD_PHYSICAL_ADDRESS", str(e), physical=hex(physical)) from e

    def handle_page_fault(self, journal: Journal, pgd: int, address: int, write: bool) -> bool:
        """An I/O page fault from the IOMMU: handle_mm_fault on the mm bound to ``pgd``.

        Resolves a not-present page of an anonymous mapping (a write needs a writable
        one); anything else (no mapping, a portal, a write to read-only, no free frame)
        fails, and the device gets a page-fault status.
        """
        proc = self.by_pgd.get(pgd)
        self.count(None, None, "iopf")
        if proc is None or proc.killed or proc.exited:
            return False
        if proc.native_pid:
            return self.native_fault(journal, proc, address, write)
        vma = proc.aspace.find_vma(address)
        if vma is None or vma.kind != "anon" or (write and not vma.writable):
            self.count(None, None, "iopf_failed")
            return False
        if address >> PAGE_SHIFT not in proc.aspace.ptes and not self.memory.free_frames:
            # VM_FAULT_OOM: iommu_sva_handle_iopf answers the page request INVALID and the
            # device reports a page fault; nothing changes.
            self.count(None, None, "iopf_failed")
            self.count(None, None, "iopf_oom")
            return False
        self._fault_in(journal, proc, address)
        return True

    def dma_write(self, journal: Journal, physical: int, data: bytes) -> None:
        """Device write of physical memory."""
        native = self.native_at(physical)
        if native is not None:
            self.native_write(journal, native[0], native[1], data)
            return
        try:
            self.memory.write(physical, data)
        except ValueError as e:
            raise OutOfRange("BAD_PHYSICAL_ADDRESS", str(e), physical=hex(physical)) from e
        owner = self.frame_owner.get(physical >> PAGE_SHIFT, 0)
        journal.emit(
            f"mem/{owner}",
            "dma.write",
            None,
            None,
            detail={"physical": physical, "length": len(data), "crc32": zlib.crc32(data)},
        )
