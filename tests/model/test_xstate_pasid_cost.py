"""XSAVES/XRSTORS and the PASID state component (XSAVE supervisor component 10).

SDM Vol. 1 13.5.8: the PASID component is in its init state when IA32_PASID is 0; the
init optimisation of XSAVES (13.11) does not write a component in its init state, and
XRSTORS of a component whose XSTATE_BV bit is clear initialises it instead of loading
it. So a switch between threads that hold a PASID costs ``xstate_pasid`` more at each
XSAVES and XRSTORS than the same switch between threads whose IA32_PASID is 0.
"""

from __future__ import annotations

from svasim.model.costs import CostTable
from svasim.model.fabric import ModelFabric

#: Distinct values, so the total says which entries were charged and how often.
XSAVES, XRSTORS, PASID = 1000, 30000, 7


def ping_pong(with_pasid: bool) -> tuple[int, int, int]:
    """Two processes take turns on one CPU; the first has a PASID in IA32_PASID when asked.

    Returns the XSAVE-category cycles of the two switches, and the XSAVES and XRSTORS
    counts."""
    costs = CostTable.from_mapping({"xsaves": XSAVES, "xrstors": XRSTORS, "xstate_pasid": PASID})
    fab = ModelFabric(ncpus=1, policy="linux-5.10", costs=costs)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    b = k.create_process(j, "b")
    k.schedule(j, a.tids[0], 0)
    if with_pasid:
        # Linux 5.10 loads IA32_PASID of the running thread at bind time (an IPI).
        k.open_wq(j, a.pid, "dsa0", 0)
        assert k.cpus[0].ia32_pasid != 0
    k.schedule(j, b.tids[0], 0)
    k.use_fpu(j, b.tids[0])
    k.schedule(j, b.tids[0], 0)
    before = (k.stats["cycles.xsave"], k.stats["xsaves"], k.stats["xrstors"])
    k.schedule(j, a.tids[0], 0)  # XSAVES b, XRSTORS a
    k.schedule(j, b.tids[0], 0)  # XSAVES a, XRSTORS b
    return (
        k.stats["cycles.xsave"] - before[0],
        k.stats["xsaves"] - before[1],
        k.stats["xrstors"] - before[2],
    )


def test_the_pasid_component_in_its_init_state_costs_nothing():
    cycles, saves, restores = ping_pong(with_pasid=False)
    assert (saves, restores) == (2, 2)
    assert cycles == 2 * XSAVES + 2 * XRSTORS


def test_a_live_pasid_is_charged_once_at_its_xsaves_and_once_at_its_xrstors():
    cycles, saves, restores = ping_pong(with_pasid=True)
    assert (saves, restores) == (2, 2)
    # a's XRSTORS loads its PASID, a's XSAVES writes it; b's state stays in init.
    assert cycles == 2 * XSAVES + 2 * XRSTORS + 2 * PASID
