"""The PASID breakdown: each component as the policy's design says it must be."""

from __future__ import annotations

from svasim.model.costs import CostTable
from svasim.model.workload import Workload, run_workload
from svasim.sweep.breakdown import COMPONENTS, pasid_cycles
from svasim.sweep.definition import GridPoint
from svasim.sweep.generate import without_pasid, workload
from svasim.sweep.runner import TWIN_POLICY

# Distinct values, so a component charged at the wrong price shows.
COSTS = CostTable.from_mapping(
    {"wrmsr": 301, "trap_roundtrip": 1009, "gp_handler": 13, "enqcmd": 2003, "ipi_send": 4001, "ipi_receive": 503}
)
# One process of 8 threads, 2 of which submit, on 4 CPUs: threads 2..7 run first.
POINT = GridPoint(
    threads=8,
    submit_fraction=0.25,
    cpus=4,
    slice_rounds=1,
    processes=1,
    slices_per_thread=4,
    enqcmds_per_tick=3,
    schedule="round-robin",
)


def breakdown(policy: str) -> tuple[dict[str, int], dict]:
    data = workload(POINT)
    res = run_workload(Workload.from_dict(data), policy, costs=COSTS)
    twin = run_workload(Workload.from_dict(without_pasid(data)), TWIN_POLICY, costs=COSTS)
    return pasid_cycles(res.counters, twin.counters, COSTS), res.counters


def test_the_lazy_fixup_costs_one_gp_round_trip_and_one_wrmsr_per_submitting_thread():
    # Linux 5.18: each of the 2 submitters takes one #GP on its first ENQCMD (the fixup
    # loads the MSR, then pasid_activated and the XSAVE state carry it); the ENQCMD runs again.
    cycles, _ = breakdown("linux-5.18")
    assert cycles["trap"] == 2 * (1009 + 13 + 2003)
    assert cycles["wrmsr"] == 2 * 301
    assert cycles["ipi"] == 0 and cycles["cache_lines"] == 0


def test_eager_allocation_sends_an_ipi_to_every_other_cpu_running_the_mm():
    # The first submitter opens the WQ while the other 3 CPUs run threads of the same mm:
    # on_each_cpu_mask(mm_cpumask(mm), ...) sends 3 IPIs and each target takes one.
    for policy in ("eager-switch-mm", "eager-switch-mm-cmp", "linux-5.10"):
        cycles, counters = breakdown(policy)
        assert cycles["ipi"] == 3 * (4001 + 503), policy
        assert cycles["trap"] == 0, policy
        assert counters["gp"] == 0, policy


def test_compare_before_write_dirties_fewer_lines_than_the_unconditional_write():
    plain, _ = breakdown("eager-switch-mm")
    cmp, _ = breakdown("eager-switch-mm-cmp")
    assert 0 < cmp["cache_lines"] < plain["cache_lines"]


def test_the_components_add_up_to_what_the_run_costs_above_its_twin():
    data = workload(POINT)
    twin = run_workload(Workload.from_dict(without_pasid(data)), TWIN_POLICY, costs=COSTS).counters
    for policy in ("linux-5.18", "eager-switch-mm", "lazy-resource-exception"):
        res = run_workload(Workload.from_dict(data), policy, costs=COSTS).counters
        cycles = pasid_cycles(res, twin, COSTS)
        assert sum(cycles[k] for k, _ in COMPONENTS) == cycles["total"]
        assert cycles["total"] == res["cycles"] - twin["cycles"] - res["enqcmd"] * 2003
        assert all(cycles[k] >= 0 for k, _ in COMPONENTS), (policy, cycles)
