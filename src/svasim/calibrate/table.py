"""From the timer's measurements to a cost table: each entry names the host, method and date.

A calibrated table is JSON (``svasim-costs/1``)::

    {"format": "svasim-costs/1",
     "host": {"cpu_model": ..., "kernel": ..., "cpu": 1, "tsc_mhz": 2600.0, "clock": ...},
     "entries": {"context_switch": {"cycles": 3912, "ns": 1504.6, "cpu_model": ...,
                                    "method": ..., "date": "2026-12-01T10:00:00Z"}, ...},
     "not_measured": {"wrmsr": "not measurable on this host: ...", ...}}

``CostTable.from_mapping`` (and so every ``--costs``) takes it: the entries override the
defaults, the names under ``not_measured`` keep them.
"""

from __future__ import annotations

import datetime as dt
import os
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

from svasim.calibrate.native import CalibrationError
from svasim.model.costs import CALIBRATED_FORMAT, CostTable

#: Why an entry cannot be timed from user space, for the entries nothing here measures.
NOT_MEASURABLE: dict[str, str] = {
    "wrmsr": "WRMSR is privileged (CPL 0 only)",
    "rdmsr": "RDMSR is privileged (CPL 0 only)",
    "gp_handler": "the #GP handler's own work runs in the kernel and is not separable from user space",
    "enqcmd": "no DSA device or ENQCMD portal on this host",
    "iotlb_invalidate": "the IOMMU's invalidation queue is not reachable from user space",
    "iotlb_miss": "the IOMMU's page walk is not observable from user space",
    "desc_overhead": "no DSA device on this host",
    "engine_bytes_per_cycle": "no DSA device on this host",
    "page_request": "no device issuing page requests on this host",
    "ldt_load": "LLDT is privileged; modify_ldt() times the system call, not the switch's load",
    "tlb_flush": "INVPCID and CR3 writes are privileged",
    "ipi_send": "an IPI is sent by the kernel; no user-space timing isolates it on a shared host",
    "ipi_receive": "interrupt entry on the receiving CPU is not observable from user space",
    "nm_handler": "the #NM handler's own work runs in the kernel and is not separable from user space",
    "fpstate_grow": "the kernel's fpstate reallocation is not separable from user space",
    "lr_handler": "no hardware has the lazy-resource exception",
    "poll": "a poll reads a completion record a device writes; no device on this host",
    "xstate_pasid": "the PASID component is supervisor state, saved only by XSAVES (CPL 0 only)",
}


def cpu_model(cpuinfo: str | None = None) -> str:
    """``/proc/cpuinfo``'s model name, with family, model and stepping (which name the core)."""
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    fields: dict[str, str] = {}
    for line in text.splitlines():
        if not line.strip():
            break  # the first CPU's block is enough
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "unknown CPU")
    ids = [f"{k} {fields[k]}" for k in ("cpu family", "model", "stepping") if k in fields]
    return f"{name} ({', '.join(ids)})" if ids else name


def cpuinfo_mhz(cpuinfo: str | None = None) -> float | None:
    """The first ``cpu MHz`` of ``/proc/cpuinfo``, if it has one."""
    text = cpuinfo if cpuinfo is not None else Path("/proc/cpuinfo").read_text()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "cpu MHz":
            try:
                return float(value)
            except ValueError:
                return None
    return None


def utc_now() -> str:
    """The current UTC time, to the second, ISO 8601 with ``Z``."""
    return dt.datetime.now(dt.UTC).replace(microsecond=0).isoformat().replace("+00:00", "Z")


def _median(raw: dict[str, Any], name: str) -> float | None:
    m = raw.get("measurements", {}).get(name)
    if not isinstance(m, dict) or not m.get("ns"):
        return None
    return float(statistics.median(m["ns"]))


def _fmt(ns: float | None) -> str:
    return "?" if ns is None else f"{ns:.1f}"


def _why(raw: dict[str, Any], *names: str) -> str:
    for n in names:
        m = raw.get("measurements", {}).get(n)
        if isinstance(m, dict) and "unavailable" in m:
            return str(m["unavailable"])
    return f"the timer reported no {' or '.join(names)}"


def build_table(raw: dict[str, Any], *, cpu: int, model: str, date: str, kernel: str, mhz: float | None) -> dict:
    """The calibrated table for the timer's output ``raw`` (the C timer's JSON)."""
    hz = float(raw["tsc_hz"])
    if hz <= 0:
        raise CalibrationError("the timer measured no TSC frequency")
    runs = int(raw.get("runs", 0))
    xstate = raw.get("measurements", {}).get("xstate", {})
    clock = (
        f"cycles of the TSC at {hz / 1e6:.1f} MHz, timed by RDTSC against CLOCK_MONOTONIC_RAW "
        f"(invariant TSC: {'yes' if raw.get('invariant_tsc') else 'no'}; /proc/cpuinfo cpu MHz: {mhz}); "
        "the core clock is taken to run at the TSC rate"
    )
    entries: dict[str, dict[str, Any]] = {}
    missing: dict[str, str] = {}

    def put(name: str, ns: float | None, method: str, why: Callable[[], str]) -> None:
        # why() says what is missing; a figure that comes out as no cost at all is refused as such.
        if ns is None:
            missing[name] = f"not measurable on this host: {why()}"
            return
        cycles = round(ns * hz / 1e9)
        if cycles <= 0:
            missing[name] = f"not measurable on this host: the measurement came out at {ns:.1f} ns, not a cost"
            return
        entries[name] = {
            "cycles": cycles,
            "ns": round(ns, 3),
            "cpu_model": model,
            "method": f"{method}; median of {runs} runs on CPU {cpu} (pinned); {clock}",
            "date": date,
        }

    ctx_t = _median(raw, "ctx_threads")
    ctx_p = _median(raw, "ctx_processes")
    put(
        "context_switch",
        ctx_t,
        "pipe ping-pong between two threads of one process pinned to one CPU, as lmbench lat_ctx: "
        "(round trip - 2 x one thread's pipe write+read) / 2",
        lambda: _why(raw, "ctx_threads"),
    )
    put(
        "switch_mm",
        ctx_p - ctx_t if ctx_p is not None and ctx_t is not None and ctx_p > ctx_t else None,
        "the same ping-pong between two processes minus the one between two threads: the switch_mm part "
        f"({_fmt(ctx_p)} ns - {_fmt(ctx_t)} ns)",
        lambda: (
            f"the process ping-pong ({_fmt(ctx_p)} ns) was not slower than the thread one ({_fmt(ctx_t)} ns)"
            if ctx_p is not None and ctx_t is not None
            else _why(raw, "ctx_processes", "ctx_threads")
        ),
    )
    others = ", ".join(
        f"{n.upper()} {v:.1f} ns" for n in ("xsave", "xsaveopt", "xrstor") if (v := _median(raw, n)) is not None
    )
    xsaves = raw.get("measurements", {}).get("xsaves_supported", {}).get("flag")
    mask = (
        f"XCR0 {xstate.get('xcr0')}, requested-feature mask {xstate.get('mask')} (AMX tile data left out; "
        f"XSAVES {'supported' if xsaves else 'not supported'} per CPUID.(EAX=0DH,ECX=1):EAX[3])"
    )
    put(
        "xsaves",
        _median(raw, "xsavec"),
        f"XSAVEC of the user state with SSE/AVX/AVX-512 registers dirty ({mask}), as the proxy for XSAVES: "
        "both write the compacted format with the init optimization; XSAVES (privileged) also saves the "
        "supervisor components of IA32_XSS and applies the modified optimization, which this does not "
        f"measure (for comparison: {others})",
        lambda: _why(raw, "xsavec"),
    )
    put(
        "xrstors",
        _median(raw, "xrstor_compacted"),
        f"XRSTOR of the compacted area XSAVEC wrote ({mask}), as the proxy for XRSTORS (privileged), "
        "which reads the same format plus the supervisor components",
        lambda: _why(raw, "xrstor_compacted"),
    )
    save_t, save_n = _median(raw, "xsavec_tiles"), _median(raw, "xsavec_no_tiles")
    load_t, load_n = _median(raw, "xrstor_compacted_tiles"), _median(raw, "xrstor_compacted_no_tiles")
    tile_parts: tuple[float, float] | None = None
    if save_t is not None and save_n is not None and load_t is not None and load_n is not None:
        tile_parts = (save_t - save_n, load_t - load_n)
    put(
        "tile_xstate",
        statistics.mean(tile_parts) if tile_parts and min(tile_parts) > 0 else None,
        "the 8 KiB of AMX tile data in the compacted area, all eight tiles loaded: XSAVEC with XTILECFG and "
        "XTILEDATA minus without them, and the same for XRSTOR, averaged (the model charges it on both) "
        + (f"({tile_parts[0]:.1f} ns to save, {tile_parts[1]:.1f} ns to restore)" if tile_parts else ""),
        lambda: (
            f"saving or restoring the tiles was not slower than without them "
            f"({tile_parts[0]:.1f} and {tile_parts[1]:.1f} ns)"
            if tile_parts
            else _why(raw, "tiles", "xsavec_tiles")
        ),
    )
    gp = _median(raw, "gp_signal_roundtrip")
    sig = _median(raw, "tgkill_signal_roundtrip")
    nul = _median(raw, "null_syscall")
    signal = sig - nul if sig is not None and nul is not None and sig > nul else None
    put(
        "trap_roundtrip",
        gp - signal if gp is not None and signal is not None and gp > signal else None,
        "a user-mode #GP (load from a non-canonical address) whose SIGSEGV handler steps over it "
        f"({_fmt(gp)} ns: an upper bound of the #GP path, signal included), minus the signal's share measured "
        f"as tgkill(SIGUSR1) to self with an empty handler less a null system call ({_fmt(sig)} - {_fmt(nul)} ns)",
        lambda: (
            f"the #GP round trip ({_fmt(gp)} ns) was not slower than the signal's share ({_fmt(signal)} ns)"
            if gp is not None and signal is not None
            else _why(raw, "gp_signal_roundtrip", "tgkill_signal_roundtrip", "null_syscall")
        ),
    )
    put(
        "signal_delivery",
        signal,
        "tgkill(SIGUSR1) to self with an empty handler (frame setup, handler, rt_sigreturn) "
        f"minus a null system call (getppid): {_fmt(sig)} - {_fmt(nul)} ns",
        lambda: (
            f"the signalled system call ({_fmt(sig)} ns) was not slower than a null one ({_fmt(nul)} ns)"
            if sig is not None and nul is not None
            else _why(raw, "tgkill_signal_roundtrip", "null_syscall")
        ),
    )
    put(
        "user_access_per_line",
        _median(raw, "uncached_load"),
        "a load of one line just flushed by CLFLUSH+MFENCE, timed by LFENCE-fenced RDTSC less an empty "
        "timing (memory latency): an upper bound per line, since sequential accesses are partly hidden by "
        "the prefetchers",
        lambda: _why(raw, "uncached_load"),
    )
    put(
        "cache_line_dirty",
        _median(raw, "lock_xadd"),
        "LOCK XADD on a line held in this CPU's cache, back to back: taking a line Modified by a "
        "read-modify-write; a plain store's cost is hidden by the store buffer, so this bounds it above",
        lambda: _why(raw, "lock_xadd"),
    )
    put(
        "page_fault",
        _median(raw, "first_touch"),
        "first write to each 4 KiB page of a fresh anonymous mapping (MADV_NOHUGEPAGE): #PF, page "
        "allocation and zeroing, per page",
        lambda: _why(raw, "first_touch"),
    )
    put(
        "wrgsbase",
        _median(raw, "wrgsbase"),
        "WRGSBASE in user mode (FSGSBASE): a lower bound of __wrgsbase_inactive, whose two SWAPGS are "
        "privileged and not included",
        lambda: _why(raw, "wrgsbase"),
    )
    put("wrpkru", _median(raw, "wrpkru"), "WRPKRU of the current value, back to back", lambda: _why(raw, "wrpkru"))
    for name, why in NOT_MEASURABLE.items():
        missing.setdefault(name, f"not measurable on this host: {why}")
    unaccounted = sorted(set(CostTable().as_dict()) - set(entries) - set(missing))
    if unaccounted:
        raise CalibrationError(f"the calibration says nothing of cost entries {unaccounted}")
    table = {
        "format": CALIBRATED_FORMAT,
        "host": {"cpu_model": model, "kernel": kernel, "cpu": cpu, "tsc_mhz": round(hz / 1e6, 3), "clock": clock},
        "entries": dict(sorted(entries.items())),
        "not_measured": dict(sorted(missing.items())),
    }
    # What it writes it must be able to read back.
    CostTable.from_mapping(table)
    return table


def calibrate(*, quick: bool = False, cpu: int | None = None) -> dict:
    """Build the timer if needed, run it pinned, and return the calibrated table."""
    from svasim.calibrate import native

    if not hasattr(os, "sched_setaffinity"):
        raise CalibrationError("pinning the timer to one CPU needs sched_setaffinity (Linux)")
    allowed = sorted(os.sched_getaffinity(0))
    chosen = allowed[-1] if cpu is None else cpu
    exe = native.build()
    raw = native.run(exe, cpu=chosen, quick=quick)
    return build_table(
        raw, cpu=chosen, model=cpu_model(), date=utc_now(), kernel=" ".join(os.uname()[2:3]), mhz=cpuinfo_mhz()
    )
