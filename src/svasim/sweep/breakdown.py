"""Cycles attributable to PASID management, by component.

A run is compared with its twin without a PASID (:func:`svasim.sweep.generate.without_pasid`):
the same threads on the same schedule, no process opening the WQ. The twin has the same
context switches, FPU saves, PKRU and XFD writes, so what the run costs above it, less the
ENQCMD instructions themselves (one ``enqcmd`` cost per instruction that completed), is
what keeping IA32_PASID right costs. The model charges each cycle to one category
(``cycles.<category>``), which splits that difference into components:

- ``wrmsr``: WRMSR IA32_PASID (the fixup, the IPI handler, the FPU switch of 5.10);
- ``xsave``: XSAVES/XRSTORS the PASID causes (a restore forced by a rewritten buffer);
- ``ipi``: sending and taking the IPIs to ``mm_cpumask``;
- ``trap``: #GP (or lazy-resource fault) round trips and handlers, and the ENQCMD executed
  again after the fixup;
- ``cache_lines``: XSAVE buffer lines written by the context-switch path;
- ``other``: the rest (binding the device, the completion page's fault), so the
  components add up to the total.
"""

from __future__ import annotations

from collections.abc import Mapping

from svasim.model.costs import CostTable

#: Components in stacking order, with the label shown in tables and plots.
COMPONENTS = [
    ("wrmsr", "WRMSR IA32_PASID"),
    ("xsave", "XSAVES/XRSTORS share"),
    ("ipi", "IPIs"),
    ("trap", "#GP round trips"),
    ("cache_lines", "cache lines dirtied"),
    ("other", "other (bind, page faults)"),
]


def pasid_cycles(counters: Mapping[str, int], twin: Mapping[str, int], costs: CostTable) -> dict[str, int]:
    """The components of PASID-management cycles, and their ``total``."""

    def more(key: str) -> int:
        return int(counters.get(key, 0)) - int(twin.get(key, 0))

    enqcmds = int(counters.get("enqcmd", 0))
    out = {
        "wrmsr": more("cycles.wrmsr"),
        "xsave": more("cycles.xsave"),
        "ipi": more("cycles.ipi"),
        # Every execution of ENQCMD is charged; the ones beyond one per instruction faulted.
        "trap": more("cycles.trap") + more("cycles.enqcmd") - enqcmds * costs.enqcmd,
        "cache_lines": more("cache_lines_dirtied") * costs.cache_line_dirty,
    }
    total = more("cycles") - enqcmds * costs.enqcmd
    out["other"] = total - sum(out.values())
    out["total"] = total
    return out


def per(cycles: Mapping[str, int], n: int) -> dict[str, float] | None:
    """Each component divided by ``n`` (context switches, ENQCMDs); None when ``n`` is 0."""
    if n <= 0:
        return None
    return {k: v / n for k, v in cycles.items()}
