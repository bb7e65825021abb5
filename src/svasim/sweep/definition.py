"""A sweep definition: the cross product of workloads x policies x cost tables x seeds.

A definition is a TOML file (shipped ones are in ``svasim/data/sweeps/``):

    name = "pasid-2020"
    description = "..."
    policies = "all"                  # or a list of policy names
    costs = ["default"]               # "default", or JSON cost tables (relative to this file)
    seeds = [0, 1]                    # seeds of random schedules
    workloads = ["one-heavy-submitter"]   # shipped workload names or TOML files

    [grid]                            # workloads generated from axes (svasim.sweep.generate)
    design = "star"                   # "cross": every combination; "star": one axis at a
                                      # time, the others at their base value
    threads = [1, 16, 256]            # threads per process
    submit_fraction = [0.0, 0.5, 1.0] # share of each process's threads that use ENQCMD
    cpus = [2, 8, 64]
    slice_rounds = [1, 4]             # rounds a thread keeps its CPU: 1 / context-switch rate
    base = { threads = 16, submit_fraction = 0.5, cpus = 8, slice_rounds = 1 }
    processes = 2                     # processes of that shape
    slices_per_thread = 2             # time slices each thread gets, about
    enqcmds_per_tick = 1
    schedule = "round-robin"          # or "random" (one schedule per seed)

    [explore]                         # interleavings of the explorer, per policy
    scenarios = "all"                 # or a list
    seeds = "all"                     # every interleaving point, or a list of seeds

Every mistake is a :class:`SweepDefinitionError` whose message names the field.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from svasim.model.costs import CostTable

#: The axes a grid may vary, in the order they are shown.
AXES = ("threads", "submit_fraction", "cpus", "slice_rounds")
AXIS_LABELS = {
    "threads": "threads per process",
    "submit_fraction": "fraction of threads that submit",
    "cpus": "CPUs",
    "slice_rounds": "rounds per time slice (1 / switch rate)",
    "workload": "workload",
}
_TOP_KEYS = {"name", "description", "policies", "costs", "seeds", "workloads", "grid", "explore"}
_GRID_KEYS = {*AXES, "design", "base", "processes", "slices_per_thread", "enqcmds_per_tick", "schedule"}
_EXPLORE_KEYS = {"scenarios", "seeds"}
SCHEDULES = ("round-robin", "random")
DESIGNS = ("cross", "star")


class SweepDefinitionError(ValueError):
    """A sweep definition that cannot run; the message says which field and why."""


@dataclass(frozen=True)
class GridPoint:
    """One generated workload: the value of every axis and the fixed parameters."""

    threads: int
    submit_fraction: float
    cpus: int
    slice_rounds: int
    processes: int
    slices_per_thread: int
    enqcmds_per_tick: int
    schedule: str

    @property
    def submitters(self) -> int:
        """Threads of each process that use ENQCMD (the fraction, rounded half up)."""
        return int(self.threads * self.submit_fraction + 0.5)

    @property
    def name(self) -> str:
        """A short name that tells every axis value."""
        return (
            f"t{self.threads}-s{round(self.submit_fraction * 100)}pc-c{self.cpus}-q{self.slice_rounds}"
            f"-p{self.processes}"
        )

    def value(self, axis: str) -> float:
        """The value of one of :data:`AXES`."""
        return float(getattr(self, axis))

    def as_dict(self) -> dict[str, Any]:
        """Plain data, for the store and the results file."""
        return {
            "threads": self.threads,
            "submit_fraction": self.submit_fraction,
            "submitters": self.submitters,
            "cpus": self.cpus,
            "slice_rounds": self.slice_rounds,
            "processes": self.processes,
            "slices_per_thread": self.slices_per_thread,
            "enqcmds_per_tick": self.enqcmds_per_tick,
            "schedule": self.schedule,
        }


@dataclass(frozen=True)
class Grid:
    """The generated workloads of a sweep."""

    design: str
    axes: dict[str, list[Any]]
    base: dict[str, Any]
    processes: int
    slices_per_thread: int
    enqcmds_per_tick: int
    schedule: str

    def _point(self, values: dict[str, Any]) -> GridPoint:
        return GridPoint(
            threads=int(values["threads"]),
            submit_fraction=float(values["submit_fraction"]),
            cpus=int(values["cpus"]),
            slice_rounds=int(values["slice_rounds"]),
            processes=self.processes,
            slices_per_thread=self.slices_per_thread,
            enqcmds_per_tick=self.enqcmds_per_tick,
            schedule=self.schedule,
        )

    @property
    def base_point(self) -> GridPoint:
        """The point every axis of a star design passes through."""
        return self._point(self.base)

    def points(self) -> list[GridPoint]:
        """Every point, without duplicates, in a fixed order."""
        if self.design == "cross":
            combos = [dict(zip(AXES, vs, strict=True)) for vs in itertools.product(*(self.axes[a] for a in AXES))]
        else:
            combos = [self.base] + [{**self.base, a: v} for a in AXES for v in self.axes[a]]
        out: list[GridPoint] = []
        for c in combos:
            p = self._point(c)
            if p not in out:
                out.append(p)
        return out

    def slice_of(self, axis: str) -> list[GridPoint]:
        """The points along ``axis`` with every other axis at its base value."""
        others = [a for a in AXES if a != axis]
        base = self.base_point
        pts = [p for p in self.points() if all(p.value(a) == base.value(a) for a in others)]
        return sorted(pts, key=lambda p: p.value(axis))


@dataclass(frozen=True)
class CostChoice:
    """One cost table of the sweep: its name (``default`` or the file) and its entries."""

    name: str
    table: CostTable


@dataclass(frozen=True)
class WorkloadChoice:
    """One workload of the sweep: a TOML workload (``data``) or a grid point."""

    name: str
    data: dict[str, Any] | None = None
    point: GridPoint | None = None


@dataclass
class SweepDefinition:
    """A validated sweep."""

    name: str
    description: str
    policies: list[str]
    costs: list[CostChoice]
    seeds: list[int]
    workloads: list[WorkloadChoice]
    grid: Grid | None = None
    explore_scenarios: list[str] = field(default_factory=list)
    #: None: every interleaving point of each scenario.
    explore_seeds: list[int] | None = None

    def seeds_for(self, wl: WorkloadChoice) -> list[int]:
        """The seeds a workload runs with: only a random schedule has any use for more than one."""
        if wl.point is not None and wl.point.schedule == "random":
            return self.seeds
        return [0]


def _names(value: Any, what: str, known: list[str]) -> list[str]:
    if value == "all":
        return list(known)
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SweepDefinitionError(f'{what} must be "all" or a list of names')
    if not value:
        raise SweepDefinitionError(f"{what} is empty: a sweep needs at least one")
    bad = [v for v in value if v not in known]
    if bad:
        raise SweepDefinitionError(f"unknown {what.rstrip('s')} {bad[0]!r} in {what}; known: {', '.join(known)}")
    return list(dict.fromkeys(value))


def _ints(value: Any, what: str) -> list[int]:
    if not isinstance(value, list) or not all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        raise SweepDefinitionError(f"{what} must be a list of integers")
    if not value:
        raise SweepDefinitionError(f"{what} is empty: give at least one value")
    return list(dict.fromkeys(value))


def _axis(grid: dict[str, Any], axis: str) -> list[Any]:
    value = grid.get(axis)
    if value is None:
        raise SweepDefinitionError(f"grid.{axis} is missing: a grid gives every axis ({', '.join(AXES)})")
    if not isinstance(value, list):
        value = [value]
    if not value:
        raise SweepDefinitionError(f"grid.{axis} is empty: give at least one value")
    for v in value:
        if axis == "submit_fraction":
            if not isinstance(v, int | float) or isinstance(v, bool) or not 0 <= v <= 1:
                raise SweepDefinitionError(f"grid.submit_fraction values are numbers in 0..1, got {v!r}")
        elif not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise SweepDefinitionError(f"grid.{axis} values are positive integers, got {v!r}")
    if axis == "cpus" and max(value) > 256:
        raise SweepDefinitionError("grid.cpus values are at most 256")
    return list(dict.fromkeys(value))


def _positive(grid: dict[str, Any], key: str, default: int) -> int:
    v = grid.get(key, default)
    if not isinstance(v, int) or isinstance(v, bool) or v < 1:
        raise SweepDefinitionError(f"grid.{key} must be a positive integer, got {v!r}")
    return v


def _grid(data: Any) -> Grid:
    if not isinstance(data, dict):
        raise SweepDefinitionError("[grid] must be a table")
    unknown = sorted(set(data) - _GRID_KEYS)
    if unknown:
        raise SweepDefinitionError(f"unknown grid keys {unknown}; known: {sorted(_GRID_KEYS)}")
    axes = {a: _axis(data, a) for a in AXES}
    design = data.get("design", "cross")
    if design not in DESIGNS:
        raise SweepDefinitionError(f"grid.design must be one of {', '.join(DESIGNS)}, got {design!r}")
    schedule = data.get("schedule", "round-robin")
    if schedule not in SCHEDULES:
        raise SweepDefinitionError(f"grid.schedule must be one of {', '.join(SCHEDULES)}, got {schedule!r}")
    base_in = data.get("base", {})
    if not isinstance(base_in, dict):
        raise SweepDefinitionError("grid.base must be a table of axis = value")
    bad = sorted(set(base_in) - set(AXES))
    if bad:
        raise SweepDefinitionError(f"grid.base names {bad}, which are not axes ({', '.join(AXES)})")
    base = {a: base_in.get(a, axes[a][0]) for a in AXES}
    for a in AXES:
        if base[a] not in axes[a]:
            raise SweepDefinitionError(f"grid.base.{a} = {base[a]!r} is not one of grid.{a}")
    return Grid(
        design=design,
        axes=axes,
        base=base,
        processes=_positive(data, "processes", 2),
        slices_per_thread=_positive(data, "slices_per_thread", 2),
        enqcmds_per_tick=_positive(data, "enqcmds_per_tick", 1),
        schedule=schedule,
    )


def _cost_tables(value: Any, root: Path) -> list[CostChoice]:
    from svasim.config import load_costs

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SweepDefinitionError('costs must be a list of "default" or JSON cost table files')
    if not value:
        raise SweepDefinitionError('costs is empty: give at least one cost table ("default")')
    out = []
    for ref in dict.fromkeys(value):
        if ref == "default":
            out.append(CostChoice("default", CostTable()))
            continue
        path = Path(ref) if Path(ref).is_absolute() else root / ref
        try:
            out.append(CostChoice(ref, load_costs(path)))
        except ValueError as e:
            raise SweepDefinitionError(f"costs: {e}") from None
    return out


def _workloads(value: Any, root: Path) -> list[WorkloadChoice]:
    from svasim.compare import load_workload, shipped_workloads

    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise SweepDefinitionError("workloads must be a list of shipped workload names or TOML files")
    out = []
    for ref in dict.fromkeys(value):
        path = root / ref
        target = str(path) if not Path(ref).is_absolute() and path.exists() else ref
        try:
            wl = load_workload(target)
        except ValueError as e:
            raise SweepDefinitionError(f"workloads: {e}") from None
        source = Path(target) if Path(target).exists() else shipped_workloads()[ref]
        out.append(WorkloadChoice(wl.name, data=tomllib.loads(source.read_text())))
    return out


def parse(data: dict[str, Any], *, root: Path | None = None, costs: str | None = None) -> SweepDefinition:
    """Validate a definition (parsed TOML); ``root`` is where relative files are found.

    ``costs`` (a JSON cost table) replaces the definition's cost tables, as ``--costs``
    does on the command line.
    """
    from svasim.model.explorer import SCENARIOS
    from svasim.model.policies import policy_names

    root = root or Path.cwd()
    unknown = sorted(set(data) - _TOP_KEYS)
    if unknown:
        raise SweepDefinitionError(f"unknown sweep keys {unknown}; known: {sorted(_TOP_KEYS)}")
    name = data.get("name", "sweep")
    if not isinstance(name, str) or not name or "/" in name:
        raise SweepDefinitionError(f"name must be a non-empty string without '/', got {name!r}")
    policies = _names(data.get("policies", "all"), "policies", policy_names())
    if costs is not None:
        tables = _cost_tables([str(Path(costs).resolve())], Path.cwd())
    else:
        tables = _cost_tables(data.get("costs", ["default"]), root)
    seeds = _ints(data.get("seeds", [0]), "seeds")
    workloads = _workloads(data.get("workloads", []), root) if "workloads" in data else []
    if "workloads" in data and not workloads:
        raise SweepDefinitionError("workloads is empty: name at least one, or leave the key out")
    grid = _grid(data["grid"]) if "grid" in data else None
    if grid is not None:
        workloads += [WorkloadChoice(p.name, point=p) for p in grid.points()]
    names = [w.name for w in workloads]
    twice = sorted({n for n in names if names.count(n) > 1})
    if twice:
        raise SweepDefinitionError(f"two workloads are named {twice[0]!r}: each run is known by its workload's name")
    scenarios: list[str] = []
    explore_seeds: list[int] | None = None
    if "explore" in data:
        ex = data["explore"]
        if not isinstance(ex, dict):
            raise SweepDefinitionError("[explore] must be a table")
        bad = sorted(set(ex) - _EXPLORE_KEYS)
        if bad:
            raise SweepDefinitionError(f"unknown explore keys {bad}; known: {sorted(_EXPLORE_KEYS)}")
        scenarios = _names(ex.get("scenarios", "all"), "scenarios", sorted(SCENARIOS))
        raw = ex.get("seeds", "all")
        explore_seeds = None if raw == "all" else _ints(raw, "explore.seeds")
    if not workloads and not scenarios:
        raise SweepDefinitionError("the sweep runs nothing: give workloads, a [grid] or an [explore] table")
    return SweepDefinition(
        name=name,
        description=str(data.get("description", "")),
        policies=policies,
        costs=tables,
        seeds=seeds,
        workloads=workloads,
        grid=grid,
        explore_scenarios=scenarios,
        explore_seeds=explore_seeds,
    )


def shipped_sweeps() -> dict[str, Path]:
    """The sweep definitions that come with svasim, by name."""
    root = resources.files("svasim") / "data" / "sweeps"
    return {p.name.removesuffix(".toml"): Path(str(p)) for p in root.iterdir() if p.name.endswith(".toml")}


def load(ref: str, *, costs: str | None = None) -> SweepDefinition:
    """A definition from a TOML file, or a shipped one by name."""
    path = Path(ref)
    if not path.exists():
        shipped = shipped_sweeps()
        if ref not in shipped:
            raise SweepDefinitionError(
                f"no sweep file {ref!r} and no shipped sweep of that name (shipped: {', '.join(sorted(shipped))})"
            )
        path = shipped[ref]
    try:
        data = tomllib.loads(path.read_text())
    except OSError as e:
        raise SweepDefinitionError(f"cannot read {path}: {e}") from None
    except tomllib.TOMLDecodeError as e:
        raise SweepDefinitionError(f"{path}: {e}") from None
    return parse(data, root=path.resolve().parent, costs=costs)
