"""The interleaving explorer: where can an IPI land, and what breaks when it does?

A scenario sets up a fabric and runs a kernel sequence on one CPU (for example a
syscall inside ``kernel_fpu_begin``) while another CPU does something that sends IPIs
(a PASID allocation). The sequence yields at each interruptible point; the explorer
places the other CPU's action at one of them, chosen from a seed (the same seed gives
the same run), or at every one of them in turn. The result lists the invariant
violations the kernel recorded, so a defect shows up as a violation for some seeds
under one policy and never under another.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from svasim.model import idxd
from svasim.model.fabric import ModelFabric
from svasim.model.journal import Journal
from svasim.model.rng import SplitMix64


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

    @property
    def ok(self) -> bool:
        """No invariant was broken."""
        return not self.violations


def _noop(comp: int) -> bytes:
    flags = int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR)
    return idxd.pack_desc(idxd.DsaHwDesc(opcode=idxd.DsaOpcode.NOOP, flags=flags, completion_addr=comp))


def _violations(fab: ModelFabric) -> dict[str, int]:
    return {k.removeprefix("violation."): v for k, v in sorted(fab.kernel.stats.items()) if k.startswith("violation.")}


def _fpu_setup(policy: str, early_free: bool | None) -> tuple[ModelFabric, Journal, int, int, int, int]:
    fab = ModelFabric(ncpus=2, policy=policy, early_free=early_free)
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


def ipi_during_kernel_fpu(policy: str, choose: Callable[[int], int], early_free: bool | None) -> ExploreResult:
    """Thread T2 is in a kernel FPU section on CPU 1 when T1 on CPU 0 allocates the PASID."""
    # A first pass counts the section's interruptible points; the second stops at one.
    fab, j, pid, t1, t2, comp = _fpu_setup(policy, early_free)
    npoints = sum(1 for _ in fab.kernel.kernel_fpu_section(j, t2))
    fab, j, pid, t1, t2, comp = _fpu_setup(policy, early_free)
    k = fab.kernel
    at = choose(npoints + 1)
    seq = k.kernel_fpu_section(j, t2)
    name = "after the section"
    for _ in range(at):
        next(seq)
    if at < npoints:
        name = next(seq)
    portal = k.open_wq(j, pid, "dsa0", 0)[0]
    for _ in seq:
        pass
    res = ExploreResult("ipi-during-kernel-fpu", policy, at, name)
    for label, tid, slot in (("T1", t1, 0), ("T2", t2, 32)):
        if k.tasks[tid].exited:
            res.outcomes[label] = "exited"
            continue
        r = k.enqcmd(j, tid, portal, _noop(comp + slot))
        res.outcomes[label] = str(r.outcome)
    res.violations = _violations(fab)
    return res


def ipi_on_borrowed_mm(policy: str, choose: Callable[[int], int], early_free: bool | None) -> ExploreResult:
    """A kernel thread on CPU 1 borrows the app's mm while CPU 0 allocates the PASID."""
    fab = ModelFabric(ncpus=2, policy=policy, early_free=early_free)
    k = fab.kernel
    j = Journal("cpu", fab.sink)
    proc = k.create_process(j, "app")
    t1 = proc.tids[0]
    comp = k.mmap(j, proc.pid, 4096, True, True).start
    kw = k.create_kthread(j, "io-worker")
    k.schedule(j, t1, 0)
    k.schedule(j, kw.tid, 1)
    steps = ["before kthread_use_mm", "while the mm is borrowed", "after kthread_unuse_mm"]
    at = choose(len(steps))
    portal = 0
    if at == 0:
        portal = k.open_wq(j, proc.pid, "dsa0", 0)[0]
    k.kthread_use_mm(j, kw.tid, proc.pid)
    if at == 1:
        portal = k.open_wq(j, proc.pid, "dsa0", 0)[0]
    k.kthread_unuse_mm(j, kw.tid)
    if at == 2:
        portal = k.open_wq(j, proc.pid, "dsa0", 0)[0]
    res = ExploreResult("ipi-on-borrowed-mm", policy, at, steps[at])
    r = k.enqcmd(j, t1, portal, _noop(comp))
    res.outcomes["T1"] = str(r.outcome)
    res.violations = _violations(fab)
    return res


def early_free_reuse(policy: str, choose: Callable[[int], int], early_free: bool | None) -> ExploreResult:
    """P frees its PASID on the last unbind, Q gets the same PASID, P's thread submits again.

    Run with early free on: the PASID of P is given to Q, and a policy that leaves P's
    thread with the old MSR value lets it submit into Q's address space.
    """
    fab = ModelFabric(ncpus=2, policy=policy, early_free=True if early_free is None else early_free)
    k = fab.kernel
    j = Journal("cpu", fab.sink)
    p = k.create_process(j, "p")
    t1 = p.tids[0]
    comp = k.mmap(j, p.pid, 4096, True, True).start
    k.schedule(j, t1, 0)
    portal = k.open_wq(j, p.pid, "dsa0", 0)[0]
    k.enqcmd(j, t1, portal, _noop(comp))
    steps = ["thread running during close", "thread switched out during close"]
    at = choose(len(steps))
    other = k.create_process(j, "other")
    if at == 1:
        k.schedule(j, other.tids[0], 0)
    k.close_wq(j, p.pid, "dsa0", 0)
    q = k.create_process(j, "q")
    k.schedule(j, q.tids[0], 1)
    k.open_wq(j, q.pid, "dsa0", 0)
    if at == 1:
        k.schedule(j, t1, 0)
    res = ExploreResult("early-free-reuse", policy, at, steps[at])
    res.outcomes["pasids"] = f"p={p.pasid} q={q.pasid}"
    r = k.enqcmd(j, t1, portal, _noop(comp + 32))
    res.outcomes["T1"] = str(r.outcome)
    res.violations = _violations(fab)
    return res


SCENARIOS: dict[str, Callable[[str, Callable[[int], int], bool | None], ExploreResult]] = {
    "ipi-during-kernel-fpu": ipi_during_kernel_fpu,
    "ipi-on-borrowed-mm": ipi_on_borrowed_mm,
    "early-free-reuse": early_free_reuse,
}


def explore(scenario: str, policy: str, seed: int, *, early_free: bool | None = None) -> ExploreResult:
    """One interleaving of ``scenario`` under ``policy``, chosen by ``seed``."""
    fn = _scenario(scenario)
    rng = SplitMix64(seed)
    res = fn(policy, rng.below, early_free)
    res.seed = seed
    return res


def explore_all(scenario: str, policy: str, *, early_free: bool | None = None) -> list[ExploreResult]:
    """Every interleaving point of ``scenario`` under ``policy``, in order."""
    fn = _scenario(scenario)
    out = []
    at = 0
    while True:
        count = [0]

        def pick(n: int, at: int = at, count: list[int] = count) -> int:
            count[0] = n
            return at

        out.append(fn(policy, pick, early_free))
        at += 1
        if at >= count[0]:
            return out


def _scenario(name: str) -> Callable[[str, Callable[[int], int], bool | None], ExploreResult]:
    fn = SCENARIOS.get(name)
    if fn is None:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(sorted(SCENARIOS))}")
    return fn
