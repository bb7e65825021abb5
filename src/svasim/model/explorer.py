"""The interleaving explorer: where can an IPI land, and what breaks when it does?

A scenario sets up a fabric and runs a kernel sequence on one CPU (for example a
syscall inside ``kernel_fpu_begin``) while another CPU does something that sends IPIs
(a PASID allocation). The sequence runs step by step from the cpu's event queue
(:mod:`svasim.model.kernel.sequences`); the explorer fires its entries up to one of
its interruptible points and places the other CPU's action there, chosen from a seed
(the same seed gives the same run), or at every one of them in turn. The result lists the invariant
violations the kernel recorded, so a defect shows up as a violation for some seeds
under one policy and never under another.

Each result keeps the transitions of its interleaving, in order with their causes, and
the configuration that makes them again (:meth:`ExploreResult.run_config`): recorded as
a run, an interleaving is inspected like any other run and re-executed by :func:`rerun`.
The moment the other CPU acts is itself a transition (``explore.point``), so a trace
shows where in the sequence the IPI landed.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from svasim.model.costs import CostTable
from svasim.model.fabric import ModelFabric
from svasim.model.journal import Journal
from svasim.model.rng import SplitMix64
from svasim.model.transition import Transition
from svasim_api import idxd

#: Key of a run's configuration that makes it an explorer run (what :func:`rerun` reads).
EXPLORE_KEY = "explore"
#: ``kind`` of the transition that marks where the other CPU acted.
POINT_KIND = "explore.point"
#: CPUs of every scenario's fabric.
NCPUS = 2


@dataclass
class ExploreResult:
    """One explored interleaving."""

    scenario: str
    policy: str
    point: int  # index of the interruptible point where the other CPU acted
    point_name: str
    violations: dict[str, int] = field(default_factory=dict)
    outcomes: dict[str, str] = field(default_factory=dict)
    seed: int | None = None
    early_free: bool | None = None
    costs: CostTable = field(default_factory=CostTable)
    #: The interleaving's transitions in the order they happened, causes linked.
    transitions: list[Transition] = field(default_factory=list, repr=False)

    @property
    def ok(self) -> bool:
        """No invariant was broken."""
        return not self.violations

    @property
    def run_name(self) -> str:
        """The name this interleaving is recorded under."""
        return f"explore-{self.scenario}-{self.policy}-p{self.point}"

    def run_config(self) -> dict[str, Any]:
        """The configuration recorded with the run: enough for :func:`rerun` to make it again."""
        return {
            EXPLORE_KEY: {
                "scenario": self.scenario,
                "point": self.point,
                "point_name": self.point_name,
                "seed": self.seed,
            },
            "cpus": NCPUS,
            "policy": self.policy,
            "early_free": self.early_free,
            "costs": self.costs.as_dict(),
        }

    def events(self) -> list[dict[str, Any]]:
        """The transitions as the store gives them back: seqs from 1, causes as seqs, JSON values."""
        seqs = {id(t): n for n, t in enumerate(self.transitions, start=1)}
        out = []
        for n, t in enumerate(self.transitions, start=1):
            d = t.as_dict()
            d["seq"] = n
            if isinstance(t.cause, Transition):
                d["cause"] = seqs[id(t.cause)]
            out.append(_json(d))
        return out

    def is_recorded_as(self, config: Mapping[str, Any], events: list[dict[str, Any]]) -> bool:
        """Whether a run with ``config`` and ``events`` (plain dicts, in seq order) records
        exactly this interleaving. The seed that chose the point is not compared: two
        seeds that hit the same point make the same run."""
        return (
            _without_seed(_json(dict(config))) == _without_seed(_json(self.run_config()))
            and [_json(e) for e in events] == self.events()
        )


def _json(value: Any) -> Any:
    # What a JSON column gives back (tuples become lists, keys strings).
    return json.loads(json.dumps(value))


def _without_seed(config: dict[str, Any]) -> dict[str, Any]:
    spec = dict(config.get(EXPLORE_KEY) or {})
    spec.pop("seed", None)
    return {**config, EXPLORE_KEY: spec}


@dataclass
class _Setting:
    """What every scenario is run with."""

    policy: str
    choose: Callable[[int], int]
    early_free: bool | None
    costs: CostTable

    def fabric(self, transitions: list[Transition] | None, early_free: bool | None) -> ModelFabric:
        """A fresh fabric; its transitions go to ``transitions`` (None: a pass not kept)."""
        sink = transitions.append if transitions is not None else None
        return ModelFabric(ncpus=NCPUS, policy=self.policy, costs=self.costs, early_free=early_free, sink=sink)


def _noop(comp: int) -> bytes:
    flags = int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR)
    return idxd.pack_desc(idxd.DsaHwDesc(opcode=idxd.DsaOpcode.NOOP, flags=flags, completion_addr=comp))


def _violations(fab: ModelFabric) -> dict[str, int]:
    return {k.removeprefix("violation."): v for k, v in sorted(fab.kernel.stats.items()) if k.startswith("violation.")}


def _at_point(j: Journal, scenario: str, at: int, name: str) -> None:
    """Mark the moment the other CPU acts; what it does next is caused by this choice."""
    t = j.child("explore").emit(f"explore/{scenario}", POINT_KIND, None, {"point": at, "name": name})
    j.follow(t)


def _fpu_setup(s: _Setting, transitions: list[Transition] | None) -> tuple[ModelFabric, Journal, int, int, int, int]:
    fab = s.fabric(transitions, s.early_free)
    k = fab.kernel
    j = Journal("cpu", fab.sink)
    proc = k.create_process(j, "app")
    t1 = proc.tids[0]
    t2 = k.create_thread(j, proc.pid, t1).tid
    comp = k.mmap(j, proc.pid, 4096, True, True).start
    k.schedule(j, t1, 0)
    k.schedule(j, t2, 1)
    k.use_fpu(j, t2)
    return fab, j, proc.pid, t1, t2, comp


def ipi_during_kernel_fpu(s: _Setting) -> ExploreResult:
    """Thread T2 is in a kernel FPU section on CPU 1 when T1 on CPU 0 allocates the PASID.

    The section is the ``kernel_fpu`` sequence on the cpu's event queue: started, then
    ``at`` of its entries fired (each runs one step), then CPU 0 opens the WQ (whose IPI
    lands on CPU 1 at that point), then the queue is drained.
    """
    # A first pass counts the section's steps; the second stops after ``at`` of them.
    fab, j, pid, t1, t2, comp = _fpu_setup(s, None)
    fab.kernel.start_sequence(j, t2, "kernel_fpu")
    npoints = len(fab.kernel.advance_cpu(j))
    transitions: list[Transition] = []
    fab, j, pid, t1, t2, comp = _fpu_setup(s, transitions)
    k = fab.kernel
    at = s.choose(npoints + 1)
    k.start_sequence(j, t2, "kernel_fpu")
    # Firing every entry finishes the section: the last choice acts after it.
    k.advance_cpu(j, steps=at)
    name = k.cpus[k.tasks[t2].cpu].in_sequence if at < npoints else "after the section"
    _at_point(j, "ipi-during-kernel-fpu", at, name)
    portal = k.open_wq(j, pid, "dsa0", 0)[0]
    k.advance_cpu(j)
    res = ExploreResult("ipi-during-kernel-fpu", s.policy, at, name)
    for label, tid, slot in (("T1", t1, 0), ("T2", t2, 32)):
        if k.tasks[tid].exited:
            res.outcomes[label] = "exited"
            continue
        r = k.enqcmd(j, tid, portal, _noop(comp + slot))
        res.outcomes[label] = str(r.outcome)
    res.violations = _violations(fab)
    res.transitions = transitions
    return res


def ipi_on_borrowed_mm(s: _Setting) -> ExploreResult:
    """A kernel thread on CPU 1 borrows the app's mm while CPU 0 allocates the PASID."""
    transitions: list[Transition] = []
    fab = s.fabric(transitions, s.early_free)
    k = fab.kernel
    j = Journal("cpu", fab.sink)
    proc = k.create_process(j, "app")
    t1 = proc.tids[0]
    comp = k.mmap(j, proc.pid, 4096, True, True).start
    kw = k.create_kthread(j, "io-worker")
    k.schedule(j, t1, 0)
    k.schedule(j, kw.tid, 1)
    steps = ["before kthread_use_mm", "while the mm is borrowed", "after kthread_unuse_mm"]
    at = s.choose(len(steps))

    def allocate() -> int:
        _at_point(j, "ipi-on-borrowed-mm", at, steps[at])
        return int(k.open_wq(j, proc.pid, "dsa0", 0)[0])

    portal = 0
    if at == 0:
        portal = allocate()
    k.kthread_use_mm(j, kw.tid, proc.pid)
    if at == 1:
        portal = allocate()
    k.kthread_unuse_mm(j, kw.tid)
    if at == 2:
        portal = allocate()
    res = ExploreResult("ipi-on-borrowed-mm", s.policy, at, steps[at])
    r = k.enqcmd(j, t1, portal, _noop(comp))
    res.outcomes["T1"] = str(r.outcome)
    res.violations = _violations(fab)
    res.transitions = transitions
    return res


def early_free_reuse(s: _Setting) -> ExploreResult:
    """P frees its PASID on the last unbind, Q gets the same PASID, P's thread submits again.

    Run with early free on: P closes its WQ file and unmaps the portal (the mapping holds
    the file, so both are needed for the release), the PASID of P is given to Q, and P
    opens the WQ again (a new PASID). A policy that leaves P's thread with the old MSR
    value lets it submit into Q's address space.
    """
    transitions: list[Transition] = []
    fab = s.fabric(transitions, True if s.early_free is None else s.early_free)
    k = fab.kernel
    j = Journal("cpu", fab.sink)
    p = k.create_process(j, "p")
    t1 = p.tids[0]
    comp = k.mmap(j, p.pid, 4096, True, True).start
    k.schedule(j, t1, 0)
    portal = k.open_wq(j, p.pid, "dsa0", 0)[0]
    k.enqcmd(j, t1, portal, _noop(comp))
    steps = ["thread running during close", "thread switched out during close"]
    at = s.choose(len(steps))
    other = k.create_process(j, "other")
    _at_point(j, "early-free-reuse", at, steps[at])
    if at == 1:
        k.schedule(j, other.tids[0], 0)
    k.close_wq(j, p.pid, "dsa0", 0)
    k.munmap(j, p.pid, portal, 4096)
    q = k.create_process(j, "q")
    k.schedule(j, q.tids[0], 1)
    k.open_wq(j, q.pid, "dsa0", 0)
    if at == 1:
        k.schedule(j, t1, 0)
    portal = k.open_wq(j, p.pid, "dsa0", 0)[0]
    res = ExploreResult("early-free-reuse", s.policy, at, steps[at])
    res.outcomes["pasids"] = f"p={p.pasid} q={q.pasid}"
    r = k.enqcmd(j, t1, portal, _noop(comp + 32))
    res.outcomes["T1"] = str(r.outcome)
    res.violations = _violations(fab)
    res.transitions = transitions
    return res


Scenario = Callable[[_Setting], ExploreResult]

SCENARIOS: dict[str, Scenario] = {
    "ipi-during-kernel-fpu": ipi_during_kernel_fpu,
    "ipi-on-borrowed-mm": ipi_on_borrowed_mm,
    "early-free-reuse": early_free_reuse,
}


def _run(
    fn: Scenario, policy: str, choose: Callable[[int], int], early_free: bool | None, costs: CostTable | None
) -> ExploreResult:
    table = costs or CostTable()
    res = fn(_Setting(policy, choose, early_free, table))
    res.early_free, res.costs = early_free, table
    return res


def explore(
    scenario: str, policy: str, seed: int, *, early_free: bool | None = None, costs: CostTable | None = None
) -> ExploreResult:
    """One interleaving of ``scenario`` under ``policy``, chosen by ``seed``."""
    fn = _scenario(scenario)
    rng = SplitMix64(seed)
    res = _run(fn, policy, rng.below, early_free, costs)
    res.seed = seed
    return res


def explore_point(
    scenario: str, policy: str, point: int, *, early_free: bool | None = None, costs: CostTable | None = None
) -> ExploreResult:
    """The interleaving of ``scenario`` with the other CPU acting at ``point``.

    Raises :class:`ValueError` if the scenario has no such point.
    """
    fn = _scenario(scenario)

    def pick(n: int) -> int:
        if not 0 <= point < n:
            raise ValueError(f"scenario {scenario} has points 0..{n - 1}; there is no point {point}")
        return point

    return _run(fn, policy, pick, early_free, costs)


def explore_all(
    scenario: str, policy: str, *, early_free: bool | None = None, costs: CostTable | None = None
) -> list[ExploreResult]:
    """Every interleaving point of ``scenario`` under ``policy``, in order."""
    fn = _scenario(scenario)
    out = []
    at = 0
    while True:
        count = [0]

        def pick(n: int, at: int = at, count: list[int] = count) -> int:
            count[0] = n
            return at

        out.append(_run(fn, policy, pick, early_free, costs))
        at += 1
        if at >= count[0]:
            return out


def is_explorer_run(config: Mapping[str, Any] | None) -> bool:
    """Whether a run's configuration is that of a recorded interleaving."""
    return isinstance((config or {}).get(EXPLORE_KEY), Mapping)


def rerun(config: Mapping[str, Any]) -> ExploreResult:
    """The interleaving a recorded run's configuration (:meth:`ExploreResult.run_config`)
    describes, explored again; its transitions are the run's events when the model is
    deterministic.

    Raises :class:`ValueError` naming what is wrong with a configuration that is not one.
    """
    spec = config.get(EXPLORE_KEY)
    if not isinstance(spec, Mapping):
        raise ValueError(f"not an explorer run: its configuration has no {EXPLORE_KEY!r} table")
    scenario, point, policy = spec.get("scenario"), spec.get("point"), config.get("policy")
    if not isinstance(scenario, str) or not isinstance(policy, str):
        raise ValueError("an explorer run's configuration names its scenario and policy as strings")
    if not isinstance(point, int) or isinstance(point, bool):
        raise ValueError(f"an explorer run's point is an integer, got {point!r}")
    early_free = config.get("early_free")
    if early_free is not None and not isinstance(early_free, bool):
        raise ValueError(f"an explorer run's early_free is true, false or null, got {early_free!r}")
    costs = config.get("costs") or {}
    if not isinstance(costs, Mapping):
        raise ValueError("an explorer run's costs are an object of name -> cycles")
    res = explore_point(scenario, policy, point, early_free=early_free, costs=CostTable.from_mapping(dict(costs)))
    res.seed = spec.get("seed") if isinstance(spec.get("seed"), int) else None
    return res


def _scenario(name: str) -> Scenario:
    fn = SCENARIOS.get(name)
    if fn is None:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return fn
