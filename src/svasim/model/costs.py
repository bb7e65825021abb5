"""The cost table: every simulated cost in cycles, each with its source.

Every default carries where it comes from, or says that no source was found. A run
may override any entry (``CostTable.from_mapping`` / ``load``); unknown names are an
error rather than silently ignored, so a typo cannot go unnoticed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any


@dataclass(frozen=True, slots=True)
class CostTable:
    """Costs in CPU cycles (device costs in the same clock, for one timeline)."""

    # WRMSR is serializing; ~100-300 cycles is a rule of thumb (reference §5 [NEWS], low
    # confidence). No authoritative figure was found.
    wrmsr: int = 200
    # #GP round trip: ~440 cycles user->kernel plus ~270 kernel->user measured through #PF
    # on a bare-metal Xeon E5 v3 (reference §5 [XPERF], medium confidence).
    trap_roundtrip: int = 710
    # The #GP handler's own work before the fixup decides (exc_general_protection up to
    # try_fixup_enqcmd_gp). No source found; a small estimate.
    gp_handler: int = 100
    # Delivering SIGSEGV after a real #GP (signal frame setup). No source found.
    signal_delivery: int = 2000
    # ENQCMD: a non-posted 64-byte store that waits for the device's answer. No source
    # found; estimated as one uncached round trip to a PCIe device (~0.5 us at 2 GHz).
    enqcmd: int = 1000
    # Context switch between threads of one process: ~1.07 us at ~2 GHz (reference §5
    # [CTX-BLOG], low confidence).
    context_switch: int = 2140
    # Extra for switch_mm (CR3 write, mm_cpumask update) between processes: the 2.4 us vs
    # 1.07 us difference in the same source (reference §5 [CTX-BLOG], low confidence).
    switch_mm: int = 2660
    # XSAVES / XRSTORS of a thread's state. No source found (reference §5).
    xsaves: int = 150
    xrstors: int = 150
    # A user read or write of one cache line through the page tables. No source found.
    user_access_per_line: int = 4
    # First touch of a page (page fault, zeroed frame). No source found; of the order of
    # the #PF round trip above plus zeroing a page.
    page_fault: int = 1500
    # munmap of a range with a PASID: PASID-based IOTLB invalidation and its wait. No
    # source found.
    iotlb_invalidate: int = 1000
    # Polling a completion record once (a cache-line read). No source found.
    poll: int = 50
    # Device: fixed cost of fetching, decoding and completing one descriptor. No source
    # found; estimated at ~0.25 us at 2 GHz.
    desc_overhead: int = 500
    # Device: bytes moved per CPU cycle by one engine (~30 GB/s at 2 GHz is the public
    # figure for a DSA device; taken per engine here). Low confidence.
    engine_bytes_per_cycle: int = 15
    # IOMMU: one first-level page walk on an IOTLB miss (4 memory reads). No source found.
    iotlb_miss: int = 400
    # RDMSR (XFD_ERR in the #NM handler). No source found; taken as half a WRMSR.
    rdmsr: int = 100
    # WRPKRU: "slightly expensive" (arch/x86/kernel/process_64.c, reference §5); no number
    # found. Estimated below a WRMSR since it is not serializing in the same way.
    wrpkru: int = 50
    # WRGSBASE of the inactive GS base with FSGSBASE (__wrgsbase_inactive: SWAPGS, WRGSBASE,
    # SWAPGS). No source found.
    wrgsbase: int = 30
    # Loading an LDT (LLDT plus descriptor setup in load_mm_ldt). No source found.
    ldt_load: int = 300
    # Full non-global TLB flush when a PCID is reused for another mm, and the refills that
    # follow. No source found.
    tlb_flush: int = 1000
    # Sending one IPI (APIC ICR write) and the sender's wait for completion in
    # on_each_cpu_mask(..., wait=true): ~1-3 us round trip (reference §5 [AMIT17][NEWS],
    # low confidence); 1.5 us at 2 GHz.
    ipi_send: int = 3000
    # Taking an IPI on the receiving CPU (interrupt entry and exit around the handler).
    # No source found; of the order of the trap round trip.
    ipi_receive: int = 700
    # The #NM handler's own work for XFD (handle_xfd_event: reads/clears XFD_ERR, checks
    # permission); its MSR accesses are charged separately. No source found.
    nm_handler: int = 200
    # Growing a task's fpstate for AMX (vzalloc of ~11 KiB). No source found.
    fpstate_grow: int = 5000
    # Handler of the hypothetical lazy-resource exception: the fault names the resource, so
    # there is no disambiguation. No source found (no such hardware exists).
    lr_handler: int = 40
    # Writing one cache line the context-switch path would otherwise only read (a dirty
    # line to write back later). No source found.
    cache_line_dirty: int = 20
    # Saving or restoring the 8 KiB of AMX tile data in XSAVES/XRSTORS. No source found.
    tile_xstate: int = 500
    # Device: one page request and its page group response, host fault handling
    # included (the engine waits). No source found; of the order of an I/O page fault,
    # several microseconds.
    page_request: int = 10000

    def as_dict(self) -> dict[str, int]:
        """All entries by name."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, overrides: dict[str, Any]) -> CostTable:
        """The defaults with ``overrides`` applied; unknown names or non-integers fail."""
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown cost entries {unknown}; known: {sorted(known)}")
        for name, value in overrides.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"cost {name!r} must be a non-negative integer, got {value!r}")
        return cls(**overrides)
