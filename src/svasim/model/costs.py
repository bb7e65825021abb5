"""The cost table: every simulated cost in cycles, each with its source.

Every default carries where it comes from, or says that no source was found. A run
may override any entry (``CostTable.from_mapping`` / ``load``); unknown names are an
error rather than silently ignored, so a typo cannot go unnoticed.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

#: The ``format`` of a table written by ``svasim calibrate`` (svasim/calibrate/table.py):
#: ``entries`` maps names to ``{"cycles", "cpu_model", "method", "date", ...}``, and
#: ``not_measured`` names the entries left at their defaults, each with the reason.
CALIBRATED_FORMAT = "svasim-costs/1"
_CALIBRATED_KEYS = {"format", "host", "entries", "not_measured"}
_ENTRY_FIELDS = ("cpu_model", "method", "date")


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
    # XSAVES of a thread's state when it is switched out (switch_fpu_prepare, and
    # kernel_fpu_begin), and XRSTORS when it returns to user mode on a CPU whose registers
    # it does not own (switch_fpu_return). No source found for either (reference §5).
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
    # Full non-global TLB flush when a PCID is reused for another mm. __flush_tlb() (a CR3
    # write), cache hot: 124 cycles on a Haswell Xeon (D. Hansen, "Re: [PATCH 0/3] TLB flush
    # multiple pages per IPI v5", linux-mm, 2015-06-09, Message-ID 55775749.3090004@intel.com;
    # 108 on a Westmere Xeon in the same message). The refills that follow are not included:
    # "difficult to measure" (I. Molnar, same thread, Message-ID 20150608195237.GA15429@gmail.com).
    tlb_flush: int = 124
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
    # Saving or restoring the PASID state component (supervisor component 10, the 8 bytes
    # of IA32_PASID) in XSAVES/XRSTORS. The init optimisation skips a component in its
    # init state (IA32_PASID 0; SDM Vol. 1 13.5.8 and 13.6), so only a non-zero PASID is
    # charged. No source found for the figure; taken as one more cache line written.
    xstate_pasid: int = 20
    # Device: one page request and its page group response, host fault handling
    # included (the engine waits). No source found; of the order of an I/O page fault,
    # several microseconds.
    page_request: int = 10000

    def as_dict(self) -> dict[str, int]:
        """All entries by name."""
        return asdict(self)

    @classmethod
    def from_mapping(cls, overrides: dict[str, Any]) -> CostTable:
        """The defaults with ``overrides`` applied; unknown names or non-integers fail.

        ``overrides`` is either a flat mapping of name -> cycles, or a calibrated table
        (``"format": "svasim-costs/1"``, see :data:`CALIBRATED_FORMAT`).
        """
        if "format" in overrides:
            overrides = cls._calibrated_overrides(overrides)
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(overrides) - known)
        if unknown:
            raise ValueError(f"unknown cost entries {unknown}; known: {sorted(known)}")
        for name, value in overrides.items():
            if not isinstance(value, int) or isinstance(value, bool) or value < 0:
                raise ValueError(f"cost {name!r} must be a non-negative integer, got {value!r}")
        return cls(**overrides)

    @classmethod
    def _calibrated_overrides(cls, table: dict[str, Any]) -> dict[str, int]:
        """The name -> cycles of a calibrated table, after checking its every field."""
        if table.get("format") != CALIBRATED_FORMAT:
            raise ValueError(f"unknown cost table format {table.get('format')!r}; known: {CALIBRATED_FORMAT!r}")
        extra = sorted(set(table) - _CALIBRATED_KEYS)
        if extra:
            raise ValueError(f"unknown keys {extra} in a {CALIBRATED_FORMAT} table; known: {sorted(_CALIBRATED_KEYS)}")
        entries = table.get("entries", {})
        skipped = table.get("not_measured", {})
        if not isinstance(entries, dict) or not isinstance(skipped, dict):
            raise ValueError("'entries' and 'not_measured' of a calibrated cost table are JSON objects")
        known = {f.name for f in fields(cls)}
        # A misspelt name under not_measured is as much a mistake as one under entries.
        unknown = sorted((set(entries) | set(skipped)) - known)
        if unknown:
            raise ValueError(f"unknown cost entries {unknown}; known: {sorted(known)}")
        both = sorted(set(entries) & set(skipped))
        if both:
            raise ValueError(f"cost entries {both} are both measured and not measured")
        out: dict[str, int] = {}
        for name, entry in entries.items():
            if not isinstance(entry, dict):
                raise ValueError(f"cost {name!r}: a calibrated entry is an object with cycles, cpu_model, method, date")
            cycles = entry.get("cycles")
            if not isinstance(cycles, int) or isinstance(cycles, bool) or cycles <= 0:
                raise ValueError(f"cost {name!r} must have a positive integer 'cycles', got {cycles!r}")
            absent = [k for k in _ENTRY_FIELDS if not isinstance(entry.get(k), str) or not entry[k]]
            if absent:
                raise ValueError(f"cost {name!r} lacks {absent}: a calibrated entry names the host, method and date")
            out[name] = cycles
        return out
