"""Every entry of the cost table is charged: changing it changes the cycles a run charges.

An entry nothing charges would make a cost file silently do nothing, so each entry in
turn is set to a distinct large value through a cost override, the representative
workload runs under every policy, and the cycles charged (to the CPUs, to the devices
and on the transitions) must differ from those of the defaults.
"""

from __future__ import annotations

import pytest

from svasim.model.costs import CostTable

from .workload import total_charged

NAMES = list(CostTable().as_dict())


@pytest.fixture(scope="module")
def baseline() -> dict[str, tuple[int, int, int]]:
    return total_charged(CostTable())


@pytest.mark.parametrize(
    "name",
    NAMES,
)
def test_changing_a_cost_entry_changes_the_cycles_charged(name, baseline):
    # Distinct per entry and far above any default, so no two changes could cancel out.
    value = 10_000_019 + 1_009 * NAMES.index(name)
    assert value != CostTable().as_dict()[name]
    changed = total_charged(CostTable.from_mapping({name: value}))
    same = sorted(p for p in changed if changed[p] == baseline[p])
    assert len(same) < len(changed), f"{name} is charged under no policy"
