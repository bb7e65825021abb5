"""VT-d in scalable mode, for SVA: PASID allocation, PASID tables, translation, IOTLB.

Names follow drivers/iommu/intel and drivers/iommu/iommu-sva.c. One PASID per mm,
shared by every device the mm binds (iommu_sva_bind_device); the PASID lives until the
mm is dropped, not until the last unbind. Each device has a PASID directory indexed by
``pasid >> 6`` whose entries point at 64-entry PASID tables indexed by ``pasid & 0x3f``
(tables allocated lazily, as the driver does).
"""

from __future__ import annotations

import struct
from collections.abc import Mapping
from dataclasses import dataclass, field

from svasim.model.costs import CostTable
from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange
from svasim.model.journal import Journal
from svasim.model.memory import PAGE_SHIFT, PAGE_SIZE
from svasim.model.ports import (
    FAULT_NOT_PRESENT,
    FAULT_PASID_NOT_PRESENT,
    FAULT_PASID_OUT_OF_RANGE,
    FAULT_PROTECTION,
    PRG_RESPONSE_FAILURE,
    PRG_RESPONSE_INVALID,
    PRG_RESPONSE_SUCCESS,
    AtsPort,
    BindResult,
    HostPort,
    TranslateResult,
    Translation,
)

#: IOMMU_NO_PASID: DMA without a PASID uses PASID 0, which is never allocated.
IOMMU_NO_PASID = 0
#: IOMMU_FIRST_GLOBAL_PASID.
IOMMU_FIRST_GLOBAL_PASID = 1
#: PASID_MAX: 20-bit PASIDs.
PASID_MAX = 0x100000
#: PGTT values of a PASID entry.
PASID_ENTRY_PGTT_FL_ONLY = 1
PASID_ENTRY_PGTT_SL_ONLY = 2
PASID_ENTRY_PGTT_NESTED = 3
PASID_ENTRY_PGTT_PT = 4
#: Page request queue: 0x1000 << PRQ_ORDER bytes of 32-byte descriptors (PRQ_ORDER 4 in
#: Linux v6.x: 2048 entries; intel_svm_enable_prq writes PRQ_ORDER into PQA_REG.PQS, and
#: a PQS of X gives 2^(X + 8) entries: 12th Gen Core datasheet vol. 2, PQA_REG).
PRQ_ORDER = 4
PRQ_ENTRIES = (0x1000 << PRQ_ORDER) // 32
#: Smallest and largest PRQ the PQS field can describe: 2^8 .. 2^15 entries. Smaller rings
#: are allowed here (down to 2) so that tests can fill one; real hardware has none.
PRQ_MIN_ENTRIES = 2
PRQ_MAX_ENTRIES = 1 << 15
#: The size of a page request descriptor (``struct page_req_dsc``, drivers/iommu/intel/prq.c).
PRQ_DESC_SIZE = 32


#: Addresses an invalidation descriptor can name: ADDR[63:12] of a 64-bit space.
ADDRESS_SPACE_END = 1 << 64


def check_invalidation_range(address: int, length: int) -> None:
    """A range an invalidation descriptor can express (within the 64-bit address space),
    else InvalidArgument; length 0 means the whole PASID."""
    if address < 0 or length < 0 or address + length > ADDRESS_SPACE_END:
        raise InvalidArgument(
            "BAD_RANGE",
            f"invalidation range {address:#x}+{length:#x} does not fit in the 64-bit address space",
            address=hex(address),
            length=hex(length),
        )


def cached_pages(tlb: Mapping[tuple[int, int], object], pasid: int, address: int, length: int) -> list[tuple[int, int]]:
    """The keys ``(pasid, vpn)`` of a TLB cached for ``[address, address+length)`` (all of
    the PASID when ``length`` is 0), in the TLB's order. The cost is bounded by what is
    cached: a range of more pages than the TLB holds is answered from its entries."""
    if length == 0:
        return [k for k in tlb if k[0] == pasid]
    first = address >> PAGE_SHIFT
    last = (address + length - 1) >> PAGE_SHIFT
    if last - first < len(tlb):
        return [(pasid, vpn) for vpn in range(first, last + 1) if (pasid, vpn) in tlb]
    return [k for k in tlb if k[0] == pasid and first <= k[1] <= last]


@dataclass(slots=True)
class PasidEntry:
    """The fields of a scalable-mode PASID-table entry that matter for SVA."""

    present: bool
    pgtt: int
    flptr: int  # first-level page-table pointer: the mm's pgd
    mm: int

    def raw(self) -> bytes:
        """The 64-byte entry: P at bit 0, PGTT at 8:6, FLPTR at 191:140 (4 KiB aligned)."""
        qw0 = (1 if self.present else 0) | (self.pgtt & 0x7) << 6
        # Bits 191:140 hold FLPTR[63:12]: bit 140 is bit 12 of qword 2.
        qw2 = self.flptr & ~0xFFF
        return struct.pack("<8Q", qw0, 0, qw2, 0, 0, 0, 0, 0)


@dataclass(slots=True)
class PageRequest:
    """One page request descriptor in the PRQ (``struct page_req_dsc``): who asked, for
    which page of which PASID, reading or writing, and its page request group index."""

    device: str
    pasid: int
    address: int
    write: bool
    prg_index: int

    def fields(self) -> dict[str, object]:
        """As the record keeps it (``prq_entry/<slot>``)."""
        return {
            "device": self.device,
            "pasid": self.pasid,
            "address": self.address,
            "write": self.write,
            "prg_index": self.prg_index,
        }


@dataclass(slots=True)
class PageRequestPosted:
    """What a device learns when it sends a page request: the PRQ slot it was written at,
    or, if it was not queued, the response it gets at once (``response`` non-empty)."""

    slot: int
    prg_index: int
    response: str = ""
    overflow: bool = False


@dataclass(slots=True)
class IommuDevice:
    """A device behind the IOMMU, with its PASID directory."""

    name: str
    max_pasids: int
    # pasid_dir[pasid >> 6][pasid & 0x3f]: tables created on first use.
    pasid_dir: dict[int, dict[int, PasidEntry]] = field(default_factory=dict)

    def entry(self, pasid: int) -> PasidEntry | None:
        """The PASID entry, if its table exists and the entry is set."""
        table = self.pasid_dir.get(pasid >> 6)
        return None if table is None else table.get(pasid & 0x3F)


class Iommu:
    """The IOMMU's state and operations."""

    def __init__(self, host: HostPort, costs: CostTable | None = None, ats: AtsPort | None = None) -> None:
        self.host = host
        # Devices' TLBs (ATS): invalidated with the IOTLB, so no device keeps a stale entry.
        self.ats = ats
        self.costs = costs or CostTable()
        self.devices: dict[str, IommuDevice] = {}
        self.mm_pasid: dict[int, int] = {}
        self.pasid_mm: dict[int, int] = {}
        self.mm_pgd: dict[int, int] = {}
        # IOTLB: (pasid, vpn) -> (pfn, writable). Tagged by PASID alone: each SVA mm has
        # one domain, so the domain id adds nothing here.
        self.iotlb: dict[tuple[int, int], tuple[int, bool]] = {}
        self.stats = {
            "translations": 0,
            "iotlb_hits": 0,
            "iotlb_misses": 0,
            "invalidations": 0,
            "page_requests": 0,
            "prg_success": 0,
            "prg_invalid": 0,
            "prg_failure": 0,
            "prq_overflows": 0,
        }
        #: The PRQ ring: PQA_REG.PQS's number of 32-byte descriptors.
        self.prq_entries = PRQ_ENTRIES
        #: Requests in the ring that the host has not answered yet (PQT - PQH).
        self.prq_outstanding = 0
        self.next_prg_index = 0
        #: The requests in the ring, by slot (the tail index they were written at).
        self.prq: dict[int, PageRequest] = {}
        #: PQT: the slot the next request is written at (counted, not wrapped).
        self.prq_tail = 0
        #: PRS_REG.PRO: the ring overflowed; set by hardware, cleared by software
        #: (prq_event_thread) once it has drained the ring.
        self.prq_pro = False

    # -- PASID allocation (the IDA over [1, PASID_MAX - 1]) --------------------------------
    def _alloc_pasid(self, limit: int) -> int:
        # Lowest free id, like ida_alloc_range: deterministic, and reuse is visible.
        pasid = IOMMU_FIRST_GLOBAL_PASID
        while pasid in self.pasid_mm:
            pasid += 1
        if pasid >= limit:
            raise OutOfRange(
                "PASID_SPACE_EXHAUSTED",
                f"no free PASID below {limit:#x}",
                limit=limit,
            )
        return pasid

    def bind(self, journal: Journal, device: str, mm: int, pgd: int, max_pasids: int) -> BindResult:
        """iommu_sva_bind_device: allocate the mm's PASID if needed and set the entry."""
        if max_pasids <= 0:
            raise FailedPrecondition(
                "DEVICE_NO_PASID", f"device {device} has no PASID support (max_pasids 0)", device=device
            )
        if max_pasids > PASID_MAX:
            raise InvalidArgument(
                "MAX_PASIDS_TOO_LARGE",
                f"max_pasids {max_pasids} exceeds the 20-bit PASID space",
                max_pasids=max_pasids,
            )
        if pgd == 0 or pgd & (PAGE_SIZE - 1):
            raise InvalidArgument("BAD_PGD", f"pgd {pgd:#x} is not a page-aligned table address")
        dev = self.devices.get(device)
        if dev is not None and dev.max_pasids != max_pasids:
            raise FailedPrecondition(
                "DEVICE_MAX_PASIDS_CHANGED",
                f"device {device} was first bound with max_pasids {dev.max_pasids}, not {max_pasids}",
            )
        pasid = self.mm_pasid.get(mm)
        allocated = pasid is None
        if pasid is None:
            pasid = self._alloc_pasid(max_pasids)
        elif pasid >= max_pasids:
            # -EOVERFLOW in iommu_sva_bind_device: the mm's PASID does not fit this device.
            raise OutOfRange(
                "PASID_EXCEEDS_DEVICE",
                f"mm {mm} has PASID {pasid}, beyond device {device}'s max_pasids {max_pasids}",
                pasid=pasid,
                device=device,
            )
        if dev is None:
            dev = self.devices[device] = IommuDevice(device, max_pasids)
            journal.emit(f"iommu_device/{device}", "iommu_device.probe", None, {"max_pasids": max_pasids})
        existing = dev.entry(pasid)
        if existing is not None and existing.present:
            if existing.flptr != pgd:
                # Attaching the PASID to a different target is an error (iommufd:
                # EINVAL, replace must be used); the same target again is fine.
                raise FailedPrecondition(
                    "PASID_ATTACHED_ELSEWHERE",
                    f"PASID {pasid} of device {device} is attached to table {existing.flptr:#x}, not {pgd:#x}",
                    pasid=pasid,
                    device=device,
                )
            # Binding the same mm again is fine (the SVA handle is refcounted).
            return BindResult(pasid, False)
        if allocated:
            self.mm_pasid[mm] = pasid
            self.pasid_mm[pasid] = mm
            self.mm_pgd[mm] = pgd
            journal.emit(f"pasid/{pasid}", "pasid.alloc", None, {"mm": mm, "pgd": pgd, "state": "allocated"})
        entry = PasidEntry(True, PASID_ENTRY_PGTT_FL_ONLY, pgd, mm)
        dev.pasid_dir.setdefault(pasid >> 6, {})[pasid & 0x3F] = entry
        journal.emit(
            f"pasid_entry/{device}/{pasid}",
            "pasid_entry.set",
            None,
            {"present": True, "pgtt": entry.pgtt, "flptr": pgd, "mm": mm},
        )
        return BindResult(pasid, allocated)

    def unbind(self, journal: Journal, device: str, mm: int, free_if_unused: bool = False) -> tuple[int, bool]:
        """iommu_sva_unbind_device: clear the entry; the PASID stays with the mm.

        With ``free_if_unused`` (early free, as 5.10 did on the last unbind) the PASID is
        freed when no device entry uses it any more. Returns (PASID, freed).
        """
        pasid = self.mm_pasid.get(mm)
        dev = self.devices.get(device)
        entry = dev.entry(pasid) if dev is not None and pasid is not None else None
        if pasid is None or dev is None or entry is None:
            raise FailedPrecondition("NOT_BOUND", f"mm {mm} is not bound to device {device}", mm=mm, device=device)
        del dev.pasid_dir[pasid >> 6][pasid & 0x3F]
        journal.emit(f"pasid_entry/{device}/{pasid}", "pasid_entry.clear", {"present": True}, None)
        # The device's own TLB is dropped by its driver's release path, which called us.
        self._drop_iotlb(journal, pasid, 0, 0)
        if free_if_unused and not any(d.entry(pasid) is not None for d in self.devices.values()):
            self.drop_mm(journal, mm)
            return pasid, True
        return pasid, False

    def drop_mm(self, journal: Journal, mm: int) -> int | None:
        """mm_pasid_drop at __mmdrop: clear every device entry and free the PASID."""
        pasid = self.mm_pasid.pop(mm, None)
        if pasid is None:
            return None
        for name, dev in self.devices.items():
            if dev.entry(pasid) is not None:
                del dev.pasid_dir[pasid >> 6][pasid & 0x3F]
                journal.emit(f"pasid_entry/{name}/{pasid}", "pasid_entry.clear", {"present": True}, None)
        self._drop_iotlb(journal, pasid, 0, 0)
        # Devices already dropped their TLBs when their files of this mm were released.
        del self.pasid_mm[pasid]
        self.mm_pgd.pop(mm, None)
        journal.emit(f"pasid/{pasid}", "pasid.free", {"mm": mm, "state": "allocated"}, None)
        return pasid

    def pasid_entry(self, device: str, pasid: int) -> PasidEntry:
        """The entry for inspection; NotFound when the device or entry does not exist."""
        dev = self.devices.get(device)
        if dev is None:
            raise NotFound("UNKNOWN_DEVICE", f"device {device} has never been bound", device=device)
        entry = dev.entry(pasid)
        if entry is None:
            raise NotFound(
                "PASID_ENTRY_NOT_PRESENT",
                f"device {device} has no entry for PASID {pasid}",
                device=device,
                pasid=pasid,
            )
        return entry

    # -- translation -----------------------------------------------------------------------
    def translate(
        self, journal: Journal, device: str, pasid: int, address: int, length: int, write: bool
    ) -> TranslateResult:
        """Translate a range for a PASID-tagged request, up to the first fault."""
        if length < 0 or address < 0:
            raise InvalidArgument("BAD_RANGE", f"bad range {address:#x}+{length}")
        self.stats["translations"] += 1
        dev = self.devices.get(device)
        if dev is None or pasid >= dev.max_pasids:
            return TranslateResult(fault=FAULT_PASID_OUT_OF_RANGE, fault_address=address)
        entry = dev.entry(pasid)
        if entry is None or not entry.present:
            # An unbound or freed PASID reaches nothing.
            return TranslateResult(fault=FAULT_PASID_NOT_PRESENT, fault_address=address)
        result = TranslateResult()
        va = address
        end = address + length
        while va < end:
            vpn = va >> PAGE_SHIFT
            hit = self.iotlb.get((pasid, vpn))
            if hit is None:
                result.iotlb_misses += 1
                walked = self.host.walk(journal, entry.flptr, va, end - va, write)
                for ext in walked.extents:
                    for i in range(0, ((ext.address + ext.length - 1) >> PAGE_SHIFT) - (ext.address >> PAGE_SHIFT) + 1):
                        key = (pasid, (ext.address >> PAGE_SHIFT) + i)
                        old = self.iotlb.get(key)
                        self.iotlb[key] = (
                            (ext.physical >> PAGE_SHIFT) + i,
                            ext.writable,
                        )
                        if self.iotlb[key] != old:
                            journal.emit(
                                f"iotlb/{pasid}/{key[1] << PAGE_SHIFT:#x}",
                                "iotlb.fill",
                                None,
                                {"pfn": self.iotlb[key][0], "writable": ext.writable},
                            )
                if not walked.extents:
                    result.fault = FAULT_PROTECTION if walked.protection else FAULT_NOT_PRESENT
                    result.fault_address = walked.fault_address
                    break
                hit = self.iotlb[(pasid, vpn)]
            else:
                result.iotlb_hits += 1
            pfn, writable = hit
            if write and not writable:
                result.fault = FAULT_PROTECTION
                result.fault_address = va
                break
            n = min(PAGE_SIZE - (va & (PAGE_SIZE - 1)), end - va)
            pa = (pfn << PAGE_SHIFT) | (va & (PAGE_SIZE - 1))
            last = result.translations[-1] if result.translations else None
            if last is not None and last.physical + last.length == pa:
                last.length += n
            else:
                result.translations.append(Translation(va, pa, n))
            va += n
        self.stats["iotlb_hits"] += result.iotlb_hits
        self.stats["iotlb_misses"] += result.iotlb_misses
        return result

    def _invalidate_devices(self, journal: Journal, devices: list[str], pasid: int, address: int, length: int) -> None:
        if self.ats is None:
            return
        for name in sorted(devices):
            self.ats.invalidate_devtlb(journal, name, pasid, address, length)

    def flush_device_tlbs(self, journal: Journal) -> int:
        """Invalidate every device TLB entry of every allocated PASID, on every device
        behind this IOMMU (descriptor type 8 per PASID, the whole PASID); returns the
        entries dropped.

        An IOMMU that restarts does this before it serves: an invalidation its previous
        incarnation began (its own IOTLB entries dropped and recorded) may have died
        before the device-TLB call, so a device could still hold a translation the IOMMU
        no longer does. Dropping cached translations is always allowed (a device TLB is a
        cache: PCIe ATS invalidation), so the flush is safe whatever the previous
        incarnation got to.
        """
        if self.ats is None:
            return 0
        dropped = 0
        for name in sorted(self.devices):
            for pasid in sorted(self.pasid_mm):
                dropped += self.ats.invalidate_devtlb(journal, name, pasid, 0, 0)
        return dropped

    def _drop_iotlb(self, journal: Journal, pasid: int, address: int, length: int) -> int:
        keys = cached_pages(self.iotlb, pasid, address, length)
        for k in keys:
            pfn, writable = self.iotlb.pop(k)
            journal.emit(
                f"iotlb/{k[0]}/{k[1] << PAGE_SHIFT:#x}", "iotlb.drop", {"pfn": pfn, "writable": writable}, None
            )
        return len(keys)

    def invalidate(self, journal: Journal, pasid: int, address: int, length: int) -> int:
        """PASID-based IOTLB invalidation (descriptor type 6): a range, or all of a PASID.

        The work is bounded by the entries cached, whatever the size of the range.
        """
        if not 0 <= pasid < PASID_MAX:
            raise InvalidArgument("BAD_PASID", f"PASID {pasid} is not a 20-bit value", pasid=pasid)
        check_invalidation_range(address, length)
        dropped = self._drop_iotlb(journal, pasid, address, length)
        # Then the device TLBs of every device using this PASID (descriptor type 8).
        users = [n for n, d in self.devices.items() if d.entry(pasid) is not None]
        self._invalidate_devices(journal, users, pasid, address, length)
        self.stats["invalidations"] += 1
        journal.emit(
            f"iotlb/{pasid}",
            "iotlb.invalidate",
            None,
            None,
            cycles=self.costs.iotlb_invalidate,
            detail={"address": address, "length": length, "dropped": dropped},
        )
        return dropped

    # -- page requests (PRI) ----------------------------------------------------------------
    def prq_fields(self) -> dict[str, object]:
        """The PRQ's registers as the record keeps them (entity ``prq``)."""
        return {
            "outstanding": self.prq_outstanding,
            "next_prg_index": self.next_prg_index,
            "entries": self.prq_entries,
            "tail": self.prq_tail,
            "pro": self.prq_pro,
        }

    def set_prq_entries(self, journal: Journal, entries: int) -> None:
        """Resize the page request queue (PQA_REG.PQS); only while it is empty, as
        intel_svm_enable_prq sets it before page requests are enabled."""
        if not PRQ_MIN_ENTRIES <= entries <= PRQ_MAX_ENTRIES:
            raise InvalidArgument(
                "BAD_PRQ_SIZE",
                f"PRQ size {entries} must be {PRQ_MIN_ENTRIES}..{PRQ_MAX_ENTRIES} descriptors",
                entries=entries,
            )
        if self.prq_outstanding:
            raise FailedPrecondition(
                "PRQ_BUSY", f"the PRQ holds {self.prq_outstanding} requests; it can be resized only when empty"
            )
        before = {"entries": self.prq_entries}
        self.prq_entries = entries
        journal.emit("prq", "prq.config", before, self.prq_fields())

    def _prq_full(self) -> bool:
        # A ring: the tail may not catch up with the head, so it holds entries - 1 requests
        # (qemu's vtd_pri_request_page: overflow when the new tail would equal the head).
        return self.prq_outstanding >= self.prq_entries - 1

    def prq_post(self, journal: Journal, device: str, pasid: int, address: int, write: bool) -> PageRequestPosted:
        """A device's page request, written into the PRQ for the host to answer later
        (:meth:`page_response`).

        VT-d 7.5 as qemu's PRI model follows it (hw/i386/intel_iommu.c,
        vtd_pri_request_page): while PRS_REG.PRO is set, or when the ring is full (which
        sets PRO), the request is not written. What the device then hears is UNVERIFIED
        here: no source at hand quotes the specification's answer; the model answers
        SUCCESS at once (an auto-response, so the device translates again, faults again
        and sends a new request later), which is what a device needs to make progress
        once software has drained the ring and cleared PRO (prq_event_thread).
        """
        self.stats["page_requests"] += 1
        prg = self.next_prg_index
        self.next_prg_index = (prg + 1) % 512  # prg_index is 9 bits
        page = address & ~(PAGE_SIZE - 1)
        detail = {"device": device, "pasid": pasid, "address": page, "write": write, "prg_index": prg, "lpig": True}
        if self.prq_pro or self._prq_full():
            self.stats["prq_overflows"] += 1
            before = {"pro": self.prq_pro}
            self.prq_pro = True
            journal.emit("prq", "prq.overflow", before, self.prq_fields(), detail=detail)
            self.stats["prg_success"] += 1
            return PageRequestPosted(-1, prg, PRG_RESPONSE_SUCCESS, overflow=True)
        slot = self.prq_tail
        self.prq_tail += 1
        self.prq[slot] = PageRequest(device, pasid, page, write, prg)
        self.prq_outstanding += 1
        journal.emit(f"prq_entry/{slot}", "prq.queue", None, self.prq[slot].fields())
        journal.emit("prq", "prq.request", None, self.prq_fields(), detail={**detail, "slot": slot})
        return PageRequestPosted(slot, prg)

    def page_response(self, journal: Journal, device: str, slot: int) -> str:
        """The host answers the request in ``slot``: prq_event_thread reads it, the I/O
        page fault path (iommu_sva_handle_iopf -> handle_mm_fault) runs, and a page group
        response goes back. Once the ring is empty PRO is cleared (prq_event_thread:
        ``if (head == tail) writel(DMA_PRS_PRO, ...)``)."""
        req = self.prq.get(slot)
        if req is None or req.device != device:
            raise NotFound("NO_PAGE_REQUEST", f"no page request of {device} in PRQ slot {slot}", slot=slot)
        del self.prq[slot]
        self.prq_outstanding -= 1
        journal.emit(f"prq_entry/{slot}", "prq.dequeue", req.fields(), None)
        dev = self.devices.get(device)
        entry = dev.entry(req.pasid) if dev is not None and req.pasid < dev.max_pasids else None
        if entry is None or not entry.present:
            code, why = PRG_RESPONSE_INVALID, "no PASID entry"
        elif self.host.handle_page_fault(journal, entry.flptr, req.address, req.write):
            code, why = PRG_RESPONSE_SUCCESS, ""
        else:
            code, why = PRG_RESPONSE_INVALID, "handle_mm_fault failed"
        if self.prq_pro and not self.prq_outstanding:
            self.prq_pro = False
        return self._respond(journal, device, req.pasid, req.prg_index, code, why)

    def page_request(self, journal: Journal, device: str, pasid: int, address: int, write: bool) -> str:
        """A device's page request: queued, handled by the host's I/O page fault path
        (iommu_sva_handle_iopf -> handle_mm_fault on the bound mm), answered with a page
        group response. A request for a PASID the device has no entry for is answered
        INVALID without bothering the host; a full queue (only asynchronous requests,
        :meth:`prq_post`, can fill it) sets PRO and answers FAILURE: a device waiting
        synchronously cannot wait for the ring to drain (UNVERIFIED)."""
        self.stats["page_requests"] += 1
        prg = self.next_prg_index
        self.next_prg_index = (prg + 1) % 512  # prg_index is 9 bits
        page = address & ~(PAGE_SIZE - 1)
        if self.prq_pro or self._prq_full():
            # Only a ring that asynchronous requests filled can be full here.
            self.stats["prq_overflows"] += 1
            before = {"pro": self.prq_pro}
            self.prq_pro = True
            detail = {"device": device, "pasid": pasid, "address": page, "write": write, "prg_index": prg}
            journal.emit("prq", "prq.overflow", before, self.prq_fields(), detail=detail)
            return self._respond(journal, device, pasid, prg, PRG_RESPONSE_FAILURE, "page request queue full")
        journal.emit(
            "prq",
            "prq.request",
            None,
            {"outstanding": self.prq_outstanding + 1, "next_prg_index": self.next_prg_index},
            detail={"device": device, "pasid": pasid, "address": page, "write": write, "prg_index": prg, "lpig": True},
        )
        dev = self.devices.get(device)
        entry = dev.entry(pasid) if dev is not None and pasid < dev.max_pasids else None
        if entry is None or not entry.present:
            return self._respond(journal, device, pasid, prg, PRG_RESPONSE_INVALID, "no PASID entry")
        self.prq_outstanding += 1
        try:
            ok = self.host.handle_page_fault(journal, entry.flptr, page, write)
        finally:
            self.prq_outstanding -= 1
        if ok:
            return self._respond(journal, device, pasid, prg, PRG_RESPONSE_SUCCESS, "")
        return self._respond(journal, device, pasid, prg, PRG_RESPONSE_INVALID, "handle_mm_fault failed")

    def _respond(self, journal: Journal, device: str, pasid: int, prg: int, code: str, why: str) -> str:
        self.stats[f"prg_{code}"] += 1
        journal.emit(
            "prq",
            "prq.response",
            None,
            self.prq_fields(),
            detail={"device": device, "pasid": pasid, "prg_index": prg, "response": code, "why": why},
        )
        return code
