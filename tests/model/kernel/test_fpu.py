"""The XSAVE state's costs: XSAVES on the way out, XRSTORS on the way back in.

Rule (arch/x86/include/asm/fpu/sched.h ``switch_fpu_prepare()`` saves with XSAVES;
arch/x86/kernel/fpu/context.h ``fpregs_restore_userregs()`` restores with XRSTORS on the
return to user mode, skipped when the registers are still the task's): each of the two
instructions is charged at its own entry of the cost table.
"""

from __future__ import annotations

from svasim.model.costs import CostTable
from svasim.model.fabric import ModelFabric


def test_a_restore_costs_xrstors_and_a_save_xsaves():
    costs = CostTable.from_mapping({"xsaves": 3, "xrstors": 1000})
    fab = ModelFabric(ncpus=2, costs=costs)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    t = a.tids[0]
    k.schedule(j, t, 0)  # first run: one XRSTORS of the init state
    assert k.stats["xrstors"] == 1 and k.stats["cycles.xsave"] == 1000
    k.use_fpu(j, t)
    k.schedule(j, t, 1)  # migration: XSAVES on CPU 0, XRSTORS on CPU 1
    assert k.stats["xsaves"] == 1 and k.stats["xrstors"] == 2
    assert k.stats["cycles.xsave"] == 1000 + 3 + 1000
