"""Comparing PASID policies: run one workload under several, tabulate, plot."""

from __future__ import annotations

import tomllib
from collections.abc import Sequence
from importlib import resources
from pathlib import Path
from typing import Any

from svasim.model.costs import CostTable
from svasim.model.workload import Workload, WorkloadResult, run_workload

#: Counters shown side by side, in order, with their labels.
ROWS = [
    ("context_switches", "context switches"),
    ("switch_mm", "switch_mm (CR3 writes)"),
    ("xsaves", "XSAVES"),
    ("xrstors", "XRSTORS"),
    ("fpu_restore_skipped", "FPU restores skipped"),
    ("wrmsr.pasid", "WRMSR IA32_PASID"),
    ("wrmsr.xfd", "WRMSR XFD"),
    ("wrpkru", "WRPKRU"),
    ("tlb_flush", "TLB flushes"),
    ("enqcmd", "ENQCMD"),
    ("gp", "#GP"),
    ("gp_fixups", "#GP fixups"),
    ("nm", "#NM"),
    ("lr", "lazy-resource faults"),
    ("ipi_sent", "IPIs sent"),
    ("ipi_received", "IPIs received"),
    ("cache_lines_dirtied", "cache lines dirtied (switch path)"),
    ("invariant_violations", "invariant violations"),
    ("cycles", "modelled cycles"),
]


def shipped_workloads() -> dict[str, Path]:
    """The workloads that come with svasim, by name."""
    root = resources.files("svasim") / "data" / "workloads"
    return {p.name.removesuffix(".toml"): Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


def load_workload(ref: str) -> Workload:
    """A workload from a TOML file, or a shipped one by name."""
    path = Path(ref)
    if not path.exists():
        shipped = shipped_workloads()
        if ref not in shipped:
            raise ValueError(
                f"no workload file {ref!r} and no shipped workload of that name (shipped: {', '.join(sorted(shipped))})"
            )
        path = shipped[ref]
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as e:
        raise ValueError(f"{path}: {e}") from e
    return Workload.from_dict(data)


def compare(
    wl: Workload, policies: list[str], costs: CostTable | None = None, early_free: bool | None = None
) -> list[WorkloadResult]:
    """Run ``wl`` once per policy."""
    return [run_workload(wl, p, costs=costs, early_free=early_free) for p in policies]


def table(results: list[WorkloadResult]) -> list[list[str]]:
    """Rows of the side-by-side table (first row: header)."""
    out = [["", *[r.policy for r in results]]]
    for key, label in ROWS:
        out.append([label, *[str(r.counters.get(key, 0)) for r in results]])
    out.append(["cycles per context switch", *[f"{r.cycles_per_switch:.0f}" for r in results]])
    out.append(["cycles per ENQCMD", *[f"{r.cycles_per_enqcmd:.0f}" for r in results]])
    return out


#: What the workload plot draws, one panel each: the counters in which PASID policies
#: differ, then the cost they add up to.
PLOTTED = [
    ("gp", "#GP faults"),
    ("lr", "lazy-resource faults"),
    ("ipi_sent", "IPIs sent"),
    ("wrmsr.pasid", "WRMSR IA32_PASID"),
    ("cache_lines_dirtied", "cache lines dirtied\n(switch path)"),
    ("invariant_violations", "invariant violations"),
]

#: One colour per bar, in order (Paul Tol's bright scheme: distinct for colour-blind readers).
_COLOURS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb"]


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig: Any, path: str | Path) -> Path:
    out = Path(path)
    fig.savefig(out, dpi=110)
    _pyplot().close(fig)
    return out


def _readable_ticks(ax: Any) -> None:
    """A few whole-number ticks on the value axis, with thousands separated."""
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    ax.xaxis.set_major_locator(MaxNLocator(nbins=4, integer=True))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.0f}"))
    ax.tick_params(axis="x", labelsize=9)


def _hbars(ax: Any, labels: list[str], values: Sequence[float], texts: list[str], title: str, xlabel: str) -> None:
    """Horizontal bars, one per label (top to bottom in order), each with its value written."""
    ys = list(range(len(labels)))[::-1]
    bars = ax.barh(ys, values, color=[_COLOURS[i % len(_COLOURS)] for i in range(len(labels))])
    ax.set_yticks(ys, labels, fontsize=10)
    ax.bar_label(bars, texts, padding=3, fontsize=9)
    ax.set_title(title, fontsize=11)
    ax.set_xlabel(xlabel, fontsize=9)
    _readable_ticks(ax)
    ax.margins(x=0.25)
    ax.spines[["top", "right"]].set_visible(False)


def plot(results: list[WorkloadResult], path: str | Path, title: str) -> Path:
    """Where the policies differ, one panel per counter, and the cycles they cost.

    A counter that is the same under every policy is left out (all of them are when only
    one policy is drawn); the last panel shows each policy's modelled cycles above the
    cheapest one, since the totals differ by little next to their size.
    """
    plt = _pyplot()
    names = [r.policy for r in results]
    panels = [
        (label, [r.counters.get(key, 0) for r in results])
        for key, label in PLOTTED
        if len(results) == 1 or len({r.counters.get(key, 0) for r in results}) > 1
    ]
    cycles = [r.counters.get("cycles", 0) for r in results]
    cheapest = min(cycles) if cycles else 0
    n = len(panels) + 1
    cols = min(n, 3)
    rows = (n + cols - 1) // cols
    height = max(1.6, 0.45 * len(names) + 1.2)
    fig, axes = plt.subplots(rows, cols, figsize=(5.2 * cols, height * rows + 0.8), squeeze=False)
    flat = list(axes.flat)
    for ax, (label, values) in zip(flat, panels, strict=False):
        _hbars(ax, names, values, [f"{v:,}" for v in values], label, "count")
    extra = [c - cheapest for c in cycles]
    texts = [f"+{e:,} ({100 * e / cheapest:.2f}%)" if cheapest and e else "cheapest" for e in extra]
    _hbars(flat[len(panels)], names, extra, texts, f"modelled cycles above the cheapest ({cheapest:,})", "cycles")
    for ax in flat[n:]:
        ax.set_visible(False)
    fig.suptitle(title, fontsize=13)
    fig.tight_layout()
    return _save(fig, path)


def run_counters(store: object, run_id: str) -> dict[str, int]:
    """Counters of a recorded run, from its events: events by kind, cycles by service."""
    from collections import Counter

    from svasim.store import Store

    assert isinstance(store, Store)
    counts: Counter[str] = Counter()
    for e in store.events(run_id, limit=None):
        counts[f"events.{e.kind}"] += 1
        counts[f"cycles.{e.service}"] += e.cycles
        counts["cycles"] += e.cycles
        counts["events"] += 1
        if e.kind == "invariant.violation":
            counts["invariant_violations"] += 1
    return dict(counts)


def compare_runs(store: object, a: str, b: str) -> list[tuple[str, int, int]]:
    """(counter, value in A, value in B) for every counter of either run, sorted."""
    ca, cb = run_counters(store, a), run_counters(store, b)
    return [(k, ca.get(k, 0), cb.get(k, 0)) for k in sorted(set(ca) | set(cb))]


def plot_runs(
    rows: list[tuple[str, int, int]], runs: tuple[tuple[str, str], tuple[str, str]], path: str | Path
) -> Path:
    """Two recorded runs side by side: the event kinds whose counts differ, and cycles by service.

    ``runs`` names each run as (name, policy); the legend shows both.
    """
    plt = _pyplot()
    kinds = [r for r in rows if r[0].startswith("events.") and r[1] != r[2]][:20] or [
        r for r in rows if r[0].startswith("events.")
    ][:20]
    cycles = [r for r in rows if r[0].startswith("cycles.")]
    legend = [f"{name} ({policy})" for name, policy in runs]
    height = max(3.5, 0.42 * max(len(kinds), len(cycles)) + 1.8)
    fig, axes = plt.subplots(1, 2, figsize=(13, height))
    for ax, data, title, unit in (
        (
            axes[0],
            kinds,
            "events by kind" + (" (where the runs differ)" if kinds and kinds[0][1] != kinds[0][2] else ""),
            "events",
        ),
        (axes[1], cycles, "modelled cycles by service", "modelled cycles"),
    ):
        ys = list(range(len(data)))[::-1]
        for offset, side, colour, label in ((0.2, 1, _COLOURS[0], legend[0]), (-0.2, 2, _COLOURS[1], legend[1])):
            bars = ax.barh([y + offset for y in ys], [r[side] for r in data], height=0.4, color=colour, label=label)
            ax.bar_label(bars, [f"{r[side]:,}" for r in data], padding=2, fontsize=8)
        ax.set_yticks(ys, [r[0].split(".", 1)[1] for r in data], fontsize=9)
        ax.set_xlabel(unit, fontsize=9)
        _readable_ticks(ax)
        ax.set_title(title, fontsize=11)
        ax.margins(x=0.2)
        ax.spines[["top", "right"]].set_visible(False)
    # One legend above both panels, where it covers no bar.
    handles, labels = axes[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=10, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.5 / height))
    return _save(fig, path)
