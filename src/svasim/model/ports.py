"""The interfaces through which one part of the fabric reaches another.

The model calls its peers only through these. ``svasim.wiring`` provides two
implementations of each: a direct in-process call and a gRPC stub. Every method that
can change a peer's state takes the caller's :class:`Journal`, so the peer's
transitions are caused by the caller's last one and the caller continues from the
peer's last one.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

from svasim.model.journal import Journal
from svasim.model.memory import WalkResult

# Store kinds, as the accelerator sees an incoming 64-byte store.
STORE_ENQCMD = "enqcmd"
STORE_ENQCMDS = "enqcmds"
STORE_MOVDIR64B = "movdir64b"

# Page group response codes (VT-d page-group response descriptor, bits 15:12).
PRG_RESPONSE_SUCCESS = "success"  # 0x0
PRG_RESPONSE_INVALID = "invalid"  # 0x1
PRG_RESPONSE_FAILURE = "failure"  # 0xF

# Fault reasons of a translation.
FAULT_NONE = ""
FAULT_NOT_PRESENT = "not_present"
FAULT_PROTECTION = "protection"
FAULT_PASID_NOT_PRESENT = "pasid_not_present"
FAULT_PASID_OUT_OF_RANGE = "pasid_out_of_range"


@dataclass(slots=True)
class OpenResult:
    """What opening a work queue gives the host."""

    pasid: int
    pasid_allocated: bool
    portal_offset: int
    shared: bool


@dataclass(slots=True)
class SubmitResult:
    """The device's answer to an enqueue store."""

    accepted: bool
    retry_reason: str = ""
    occupancy: int = 0


@dataclass(slots=True)
class AdvanceResult:
    """How far the devices ran."""

    executed: int
    cycles: int


@dataclass(slots=True)
class BindResult:
    """The PASID an mm got from a bind."""

    pasid: int
    allocated: bool


@dataclass(slots=True)
class Translation:
    """A translated run of contiguous addresses."""

    address: int
    physical: int
    length: int


@dataclass(slots=True)
class TranslateResult:
    """Translations up to the first fault, and why translation stopped."""

    translations: list[Translation] = field(default_factory=list)
    fault: str = FAULT_NONE
    fault_address: int = 0
    iotlb_hits: int = 0
    iotlb_misses: int = 0

    @property
    def covered(self) -> int:
        """Bytes translated from the first address on."""
        return sum(t.length for t in self.translations)


class AccelPort(Protocol):
    """The accelerator service, as the host sees it."""

    def open_wq(self, journal: Journal, device: str, wq_id: int, mm: int, pgd: int) -> OpenResult:
        """The idxd character device's open: bind the mm and return the portal."""
        ...

    def close_wq(
        self, journal: Journal, device: str, wq_id: int, mm: int, unbind: bool, free_if_unused: bool
    ) -> tuple[int, bool]:
        """The idxd cdev's release; unbinds the mm when it was its last file on the device."""
        ...

    def submit(
        self, journal: Journal, device: str, portal_offset: int, command: bytes, kind: str, cycles: int
    ) -> SubmitResult:
        """An enqueue (or posted) 64-byte store at a portal."""
        ...

    def advance(self, journal: Journal, device: str, until_cycles: int, poll: bool = False) -> AdvanceResult:
        """Run the engines up to a cycle (0: until idle); with ``poll`` (a thread's
        completion poll) only the devices that run by themselves (``auto_run``)."""
        ...


class AtsPort(Protocol):
    """Devices with a device TLB, as the IOMMU reaches them to invalidate it."""

    def invalidate_devtlb(self, journal: Journal, device: str, pasid: int, address: int, length: int) -> int:
        """Drop a device's cached translations of a PASID's range (all of it if length is 0)."""
        ...


class IommuPort(Protocol):
    """The IOMMU, as devices and the host see it."""

    def bind(self, journal: Journal, device: str, mm: int, pgd: int, max_pasids: int) -> BindResult:
        """iommu_sva_bind_device."""
        ...

    def unbind(self, journal: Journal, device: str, mm: int, free_if_unused: bool) -> tuple[int, bool]:
        """iommu_sva_unbind_device; frees the PASID too when asked and nothing else is bound.

        Returns (PASID, freed)."""
        ...

    def drop_mm(self, journal: Journal, mm: int) -> int | None:
        """mm_pasid_drop at __mmdrop: free the mm's PASID, if it has one."""
        ...

    def translate(
        self, journal: Journal, device: str, pasid: int, address: int, length: int, write: bool
    ) -> TranslateResult:
        """A PASID-tagged DMA translation of a range."""
        ...

    def invalidate(self, journal: Journal, pasid: int, address: int, length: int) -> int:
        """PASID-based IOTLB invalidation; returns the entries dropped."""
        ...

    def page_request(self, journal: Journal, device: str, pasid: int, address: int, write: bool) -> str:
        """A page request (PRI) for one page; returns the page group response code."""
        ...

    def prq_post(self, journal: Journal, device: str, pasid: int, address: int, write: bool) -> Any:
        """A page request written into the PRQ, answered later by :meth:`page_response`
        (a :class:`svasim.model.iommu.PageRequestPosted`: the slot, or the response the
        device gets at once when the PRQ could not take the request; typed Any because
        the IOMMU model imports this module)."""
        ...

    def page_response(self, journal: Journal, device: str, slot: int) -> str:
        """The host answers the page request in a PRQ slot; returns the response code."""
        ...


class HostPort(Protocol):
    """Host memory, as the IOMMU and devices reach it."""

    def walk(self, journal: Journal, pgd: int, address: int, length: int, write: bool) -> WalkResult:
        """Walk the first-level page table rooted at ``pgd`` (a native process's walk is
        recorded: its page table is outside the fabric)."""
        ...

    def dma_read(self, journal: Journal, physical: int, length: int) -> bytes:
        """Read physical memory (a native process's bytes are recorded)."""
        ...

    def dma_write(self, journal: Journal, physical: int, data: bytes) -> None:
        """Write physical memory."""
        ...

    def handle_page_fault(self, journal: Journal, pgd: int, address: int, write: bool) -> bool:
        """handle_mm_fault on the mm whose table is ``pgd``, for an I/O page fault."""
        ...


@dataclass(slots=True)
class NativeWalk:
    """What a native process's page table holds for a range, up to the first page that
    is not present (or, for a write, not writable): ``runs`` of (address, length,
    writable) from the first address on."""

    runs: list[tuple[int, int, bool]] = field(default_factory=list)
    faulted: bool = False
    fault_address: int = 0
    protection: bool = False


class NativeMemory(Protocol):
    """A real process's address space, as the kernel model reaches it for devices."""

    def walk(self, address: int, length: int, write: bool) -> NativeWalk:
        """The process's mappings and present pages over ``[address, address+length)``."""
        ...

    def read(self, address: int, length: int) -> bytes:
        """Read the process's memory (an address it no longer maps raises OSError)."""
        ...

    def write(self, address: int, data: bytes) -> None:
        """Write the process's memory, the first byte last (a completion record's status)."""
        ...

    def fault(self, address: int, write: bool) -> bool:
        """Fault a page in as handle_mm_fault would; False when the mapping forbids it."""
        ...

    def close(self) -> None:
        """The process is no longer reached."""
        ...
