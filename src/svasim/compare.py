"""Comparing PASID policies: run one workload under several, tabulate, plot."""

from __future__ import annotations

import tomllib
from importlib import resources
from pathlib import Path

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


def plot(results: list[WorkloadResult], path: str | Path, title: str) -> Path:
    """Bar charts of cycles per context switch and per ENQCMD, one bar per policy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r.policy for r in results]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4.2))
    for ax, values, label in (
        (axes[0], [r.cycles_per_switch for r in results], "cycles per context switch"),
        (axes[1], [r.cycles_per_enqcmd for r in results], "cycles per ENQCMD (traps included)"),
    ):
        bars = ax.bar(
            range(len(names)), values, color=["#4477aa", "#66ccee", "#228833", "#ccbb44", "#ee6677"][: len(names)]
        )
        ax.set_xticks(range(len(names)), names, rotation=20, ha="right", fontsize=8)
        ax.set_ylabel("modelled cycles")
        ax.set_title(label)
        ax.bar_label(bars, fmt="%.0f", fontsize=8)
    fig.suptitle(title)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out


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


def plot_runs(rows: list[tuple[str, int, int]], names: tuple[str, str], path: str | Path) -> Path:
    """Side-by-side bars of the event counts that differ, and of cycles by service."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = [r for r in rows if r[0].startswith("events.") and r[1] != r[2]][:20] or [
        r for r in rows if r[0].startswith("events.")
    ][:20]
    cycles = [r for r in rows if r[0].startswith("cycles.")]
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.5))
    for ax, data, title in ((axes[0], kinds, "events by kind"), (axes[1], cycles, "modelled cycles by service")):
        xs = range(len(data))
        ax.bar([x - 0.2 for x in xs], [r[1] for r in data], width=0.4, label=names[0], color="#4477aa")
        ax.bar([x + 0.2 for x in xs], [r[2] for r in data], width=0.4, label=names[1], color="#ee6677")
        ax.set_xticks(list(xs), [r[0].split(".", 1)[1] for r in data], rotation=35, ha="right", fontsize=7)
        ax.set_title(title)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out = Path(path)
    fig.savefig(out)
    plt.close(fig)
    return out
