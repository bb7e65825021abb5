"""What a sweep shows at the end: a summary table, every run in a CSV file, and plots.

The plots draw the cycles attributable to PASID management (``svasim.sweep.breakdown``)
per context switch and per ENQCMD, stacked by component, one row of panels per policy
and one column per axis the sweep varies (each through the grid's base point, or the
workloads named in the definition); a third figure draws the totals, one line per
policy. They use the first cost table of the sweep, averaged over its seeds.
"""

from __future__ import annotations

import csv
import statistics
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from svasim.sweep.breakdown import COMPONENTS
from svasim.sweep.definition import AXES, AXIS_LABELS, SweepDefinition
from svasim.sweep.runner import RunResult

#: One colour per component (Paul Tol's bright scheme: distinct for colour-blind readers).
_COLOURS = ["#4477aa", "#ee6677", "#228833", "#ccbb44", "#66ccee", "#aa3377", "#bbbbbb"]
_MARKERS = ["o", "s", "^", "D", "v", "P", "X"]
#: Line styles, so policies whose lines coincide stay visible.
_DASHES = ["-", "--", "-.", ":", (0, (5, 1, 1, 1))]
METRICS = [("pasid_per_switch", "per context switch"), ("pasid_per_enqcmd", "per ENQCMD")]


def verdicts(results: Sequence[RunResult]) -> dict[str, str]:
    """The explorer's verdict per policy: ``safe``, or the scenarios that broke and in how
    many of their interleavings (``-`` when the sweep explored nothing)."""
    tally: dict[str, dict[str, list[int]]] = {}
    for r in results:
        if r.task.kind == "explore":
            n = tally.setdefault(r.task.policy, {}).setdefault(r.task.scenario, [0, 0])
            n[0] += r.metrics["interleavings"]
            n[1] += r.metrics["broken"]
    out = {}
    for policy, scenarios in tally.items():
        broken = [f"{s} {k}/{n}" for s, (n, k) in sorted(scenarios.items()) if k]
        out[policy] = "safe" if not broken else "broken: " + ", ".join(broken)
    return out


def _mean(values: list[float | None]) -> float | None:
    got = [v for v in values if v is not None]
    return statistics.fmean(got) if got else None


def _total(r: RunResult, metric: str) -> float | None:
    m = r.metrics.get(metric)
    return None if m is None else float(m["total"])


def _fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:,.0f}"


def _range(values: list[float | None]) -> str:
    got = [v for v in values if v is not None]
    return "-" if not got else f"{min(got):,.0f} .. {max(got):,.0f}"


def summary(defn: SweepDefinition, results: Sequence[RunResult]) -> list[list[str]]:
    """Rows of the summary table (first row: header), one per cost table and policy.

    Figures are PASID-management cycles; "base" is the grid's base point (or, without a
    grid, the mean over the workloads), the range is over every workload run.
    """
    header = [
        "costs",
        "policy",
        "runs",
        "per switch (base)",
        "per switch (range)",
        "per ENQCMD (base)",
        "per ENQCMD (range)",
        "invariant violations",
        "explorer",
    ]
    verdict = verdicts(results)
    base = defn.grid.base_point if defn.grid else None
    rows = [header]
    costs = list(dict.fromkeys(r.task.costs_name for r in results if r.task.kind == "workload"))
    for c in costs or ["default"]:
        for p in defn.policies:
            runs = [r for r in results if r.task.kind == "workload" and r.task.policy == p and r.task.costs_name == c]
            at_base = [r for r in runs if base is None or r.task.point == base] or runs
            switch = [_total(r, "pasid_per_switch") for r in runs]
            enq = [_total(r, "pasid_per_enqcmd") for r in runs]
            rows.append(
                [
                    c,
                    p,
                    str(len(runs)),
                    _fmt(_mean([_total(r, "pasid_per_switch") for r in at_base])),
                    _range(switch),
                    _fmt(_mean([_total(r, "pasid_per_enqcmd") for r in at_base])),
                    _range(enq),
                    str(sum(r.metrics["invariant_violations"] for r in runs)),
                    verdict.get(p, "-"),
                ]
            )
    return rows


def write_csv(results: Sequence[RunResult], path: str | Path) -> Path:
    """Every run, one row each: its configuration, its PASID breakdown and its counters."""
    out = Path(path)
    workload_runs = [r for r in results if r.task.kind == "workload"]
    counter_keys = sorted({k for r in workload_runs for k in r.counters})
    grid_keys = [*AXES, "submitters", "processes", "schedule"]
    head = ["key", "workload", "policy", "costs", "seed", *grid_keys]
    head += [f"pasid_{k}" for k, _ in COMPONENTS] + ["pasid_total", "pasid_per_switch", "pasid_per_enqcmd"]
    head += ["invariant_violations", *counter_keys]
    with out.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(head)
        for r in workload_runs:
            t, m = r.task, r.metrics
            grid = t.point.as_dict() if t.point else {}
            row: list[Any] = [t.key, t.workload, t.policy, t.costs_name, t.seed, *(grid.get(k, "") for k in grid_keys)]
            row += [m["pasid"][k] for k, _ in COMPONENTS] + [m["pasid"]["total"]]
            row += [
                "" if m[name] is None else f"{m[name]['total']:.3f}"
                for name in ("pasid_per_switch", "pasid_per_enqcmd")
            ]
            row += [m["invariant_violations"], *(r.counters.get(k, 0) for k in counter_keys)]
            w.writerow(row)
    return out


# -- plots ---------------------------------------------------------------------------------
def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _columns(defn: SweepDefinition, results: Sequence[RunResult]) -> list[tuple[str, list[tuple[str, float, str]]]]:
    """The panels' columns: (axis, [(x label, x value, workload name)]) in order.

    A grid gives one column per axis that has more than one value (the points through the
    base point); workloads named in the definition give a ``workload`` column.
    """
    cols: list[tuple[str, list[tuple[str, float, str]]]] = []
    if defn.grid is not None:
        for axis in AXES:
            if len(defn.grid.axes[axis]) < 2:
                continue
            pts = defn.grid.slice_of(axis)
            fmt = (lambda v: f"{v:.0%}") if axis == "submit_fraction" else (lambda v: f"{v:.0f}")
            cols.append((axis, [(fmt(p.value(axis)), p.value(axis), p.name) for p in pts]))
    named = [w.name for w in defn.workloads if w.point is None]
    if named:
        cols.append(("workload", [(n, float(i), n) for i, n in enumerate(named)]))
    return cols


def _cell(results: Sequence[RunResult], workload: str, policy: str, costs: str, metric: str) -> dict[str, float] | None:
    """A workload's breakdown under a policy, averaged over seeds; None if it has no such runs."""
    runs = [
        r
        for r in results
        if r.task.kind == "workload"
        and r.task.workload == workload
        and r.task.policy == policy
        and r.task.costs_name == costs
        and r.metrics.get(metric) is not None
    ]
    if not runs:
        return None
    return {k: statistics.fmean(r.metrics[metric][k] for r in runs) for k, _ in COMPONENTS}


def _safety(results: Sequence[RunResult], policy: str) -> str:
    """A policy's safety column: invariant violations in its workload runs, the explorer's verdict."""
    violations = sum(
        r.metrics["invariant_violations"] for r in results if r.task.kind == "workload" and r.task.policy == policy
    )
    return f"invariant violations {violations}; explorer: {verdicts(results).get(policy, '-')}"


def _first_costs(results: Sequence[RunResult]) -> str:
    return next((r.task.costs_name for r in results if r.task.kind == "workload"), "default")


def _unit(metric: str) -> str:
    return "cycles per context switch" if metric == "pasid_per_switch" else "cycles per ENQCMD"


def plot_breakdown(defn: SweepDefinition, results: Sequence[RunResult], metric: str, path: str | Path) -> Path | None:
    """Stacked components of PASID cycles (``metric``: per switch or per ENQCMD), one row
    of panels per policy, one column per varied axis. None when there is nothing to draw."""
    cols = _columns(defn, results)
    if not cols:
        return None
    plt = _pyplot()
    costs = _first_costs(results)
    policies = defn.policies
    fig, axes = plt.subplots(
        len(policies),
        len(cols),
        figsize=(3.6 * len(cols) + 1.6, 2.0 * len(policies) + 1.4),
        squeeze=False,
    )
    # One scale per column (axis), shared by the policies, so they compare down a column.
    top = [0.0] * len(cols)
    cells: dict[tuple[int, int], list[dict[str, float] | None]] = {}
    for i, policy in enumerate(policies):
        for j, (_axis, xs) in enumerate(cols):
            vals = [_cell(results, wl, policy, costs, metric) for _, _, wl in xs]
            cells[i, j] = vals
            for v in vals:
                if v is not None:
                    top[j] = max(top[j], sum(max(0.0, v[k]) for k, _ in COMPONENTS))
    for i, policy in enumerate(policies):
        for j, (axis, xs) in enumerate(cols):
            ax = axes[i][j]
            vals = cells[i, j]
            pos = list(range(len(xs)))
            bottom = [0.0] * len(xs)
            for c, (k, label) in enumerate(COMPONENTS):
                heights = [max(0.0, v[k]) if v is not None else 0.0 for v in vals]
                ax.bar(pos, heights, bottom=bottom, color=_COLOURS[c], width=0.7, label=label if i == j == 0 else None)
                bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
            for x, v in zip(pos, vals, strict=True):
                if v is None:
                    ax.text(x, 0, "n/a", ha="center", va="bottom", fontsize=7, color="#777777")
            ax.set_xticks(pos, [lbl for lbl, _, _ in xs], fontsize=8, rotation=45 if axis == "workload" else 0)
            ax.set_ylim(0, top[j] * 1.08 if top[j] > 0 else 1)
            ax.tick_params(axis="y", labelsize=8)
            ax.spines[["top", "right"]].set_visible(False)
            if i == len(policies) - 1:
                ax.set_xlabel(AXIS_LABELS[axis], fontsize=9)
            if j == 0:
                ax.set_ylabel(f"{policy}\n{_unit(metric)}", fontsize=8)
                ax.set_title(f"{policy}: {_safety(results, policy)}", fontsize=8, loc="left")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="upper center",
        ncol=len(COMPONENTS),
        fontsize=8,
        frameon=False,
        bbox_to_anchor=(0.5, 0.965),
    )
    what = dict(METRICS)[metric]
    fig.suptitle(f"{defn.name}: PASID-management cycles {what}, by component (costs: {costs})", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.93))
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def plot_totals(defn: SweepDefinition, results: Sequence[RunResult], path: str | Path) -> Path | None:
    """Total PASID cycles per switch and per ENQCMD along each varied axis, one line per policy.

    The safety verdict (invariant violations in the runs, the explorer's) is in the legend.
    """
    cols = _columns(defn, results)
    if not cols:
        return None
    plt = _pyplot()
    costs = _first_costs(results)
    fig, axes = plt.subplots(2, len(cols), figsize=(3.8 * len(cols) + 0.6, 6.4), squeeze=False)
    for i, (metric, what) in enumerate(METRICS):
        for j, (axis, xs) in enumerate(cols):
            ax = axes[i][j]
            for n, policy in enumerate(defn.policies):
                pts = [
                    (x if axis != "workload" else k, sum(v[c] for c, _ in COMPONENTS))
                    for k, (_, x, wl) in enumerate(xs)
                    if (v := _cell(results, wl, policy, costs, metric)) is not None
                ]
                label = f"{policy} ({_safety(results, policy)})"
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        marker=_MARKERS[n % len(_MARKERS)],
                        color=_COLOURS[n % len(_COLOURS)],
                        label=label if i == j == 0 else None,
                        linestyle=_DASHES[n % len(_DASHES)],
                        linewidth=1.6,
                        markersize=5 + (len(defn.policies) - n) % 3,
                    )
            if axis in ("threads", "cpus", "slice_rounds") and len(xs) > 2 and xs[-1][1] / max(xs[0][1], 1) >= 16:
                ax.set_xscale("log", base=2)
            if axis == "workload":
                ax.set_xticks(range(len(xs)), [lbl for lbl, _, _ in xs], fontsize=8, rotation=30)
            else:
                size = 7 if axis == "submit_fraction" else 8  # 0% and 10% sit close together
                ax.set_xticks([x for _, x, _ in xs], [lbl for lbl, _, _ in xs], fontsize=size)
                ax.minorticks_off()
            ax.set_xlabel(AXIS_LABELS[axis], fontsize=9)
            ax.set_ylabel(_unit(metric), fontsize=8)
            ax.set_ylim(bottom=0)
            ax.tick_params(axis="y", labelsize=8)
            ax.grid(True, alpha=0.3)
            ax.spines[["top", "right"]].set_visible(False)
            if j == 0:
                ax.set_title(f"PASID cycles {what}", fontsize=9, loc="left")
    handles, labels = axes[0][0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="upper center", ncol=2, fontsize=8, frameon=False, bbox_to_anchor=(0.5, 0.94))
    fig.suptitle(f"{defn.name}: PASID-management cycles by policy (costs: {costs})", fontsize=11)
    fig.tight_layout(rect=(0, 0, 1, 0.86))
    out = Path(path)
    fig.savefig(out, dpi=100)
    plt.close(fig)
    return out


def write_all(defn: SweepDefinition, results: Sequence[RunResult], out_dir: str | Path) -> list[Path]:
    """The results file and the plots, in ``out_dir``; the paths written."""
    d = Path(out_dir)
    d.mkdir(parents=True, exist_ok=True)
    written = [write_csv(results, d / f"{defn.name}.csv")]
    for metric, _ in METRICS:
        p = plot_breakdown(
            defn, results, metric, d / f"{defn.name}-{metric.removeprefix('pasid_').replace('_', '-')}.png"
        )
        if p is not None:
            written.append(p)
    p = plot_totals(defn, results, d / f"{defn.name}-totals.png")
    if p is not None:
        written.append(p)
    return written
