"""Each PASID policy's rule, and which are correct under interleavings and early free."""

from __future__ import annotations

import pytest

from svasim.model.explorer import explore, explore_all
from svasim.model.fabric import ModelFabric
from svasim.model.kernel import EnqcmdOutcome
from svasim.model.policies import policy_names

from .helpers import memmove_desc

#: MSR_IA32_PASID_VALID is bit 31 (arch/x86/include/asm/msr-index.h; SDM ENQCMD: #GP if IA32_PASID[31] = 0).
MSR_IA32_PASID_VALID = 1 << 31

ALL = policy_names()


def app_with_two_running_threads(policy: str):
    fab = ModelFabric(ncpus=2, policy=policy)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "app")
    t2 = k.create_thread(j, a.pid, a.tids[0]).tid
    comp = k.mmap(j, a.pid, 4096, True, True).start
    k.schedule(j, a.tids[0], 0)
    k.schedule(j, t2, 1)
    portal = k.open_wq(j, a.pid, "dsa0", 0)[0]
    return fab, a, [a.tids[0], t2], comp, portal


def test_policy_names_are_the_five_of_the_design():
    assert ALL == sorted(
        ["linux-5.18", "eager-switch-mm", "eager-switch-mm-cmp", "linux-5.10", "lazy-resource-exception"]
    )


@pytest.mark.parametrize("policy", ["eager-switch-mm", "eager-switch-mm-cmp", "linux-5.10"])
def test_ipi_on_allocation_loads_the_msr_on_cpus_running_the_mms_threads(policy):
    fab, a, tids, comp, portal = app_with_two_running_threads(policy)
    k = fab.kernel
    # The allocating syscall runs on CPU 0; smp_call_function_many_cond() (kernel/smp.c)
    # takes it out of the IPI mask and runs the handler there directly.
    assert k.stats["ipi_sent"] == 1 and k.counters["cpu/1"]["ipi_received"] == 1
    assert k.counters["cpu/0"]["ipi_received"] == 0
    assert [c.ia32_pasid for c in k.cpus] == [a.pasid | MSR_IA32_PASID_VALID] * 2
    r = k.enqcmd(fab.journal(), tids[1], portal, memmove_desc(comp, comp + 64, 8, comp + 128))
    assert r.outcome == EnqcmdOutcome.ACCEPTED and r.gp_faults == 0


@pytest.mark.parametrize("policy", ["linux-5.18", "lazy-resource-exception"])
def test_lazy_policies_send_no_ipi_and_load_on_first_use(policy):
    fab, a, tids, comp, portal = app_with_two_running_threads(policy)
    k = fab.kernel
    assert k.stats["ipi_sent"] == 0 and k.cpus[1].ia32_pasid == 0
    r = k.enqcmd(fab.journal(), tids[1], portal, memmove_desc(comp, comp + 64, 8, comp + 128))
    assert r.outcome == EnqcmdOutcome.ACCEPTED
    if policy == "linux-5.18":
        assert r.gp_faults == 1 and k.stats["gp_fixups"] == 1
    else:
        assert r.gp_faults == 0 and k.stats["lr"] == 1


def test_eager_switch_mm_writes_the_saved_state_on_every_switch_and_cmp_only_when_it_differs():
    dirtied = {}
    for policy in ("eager-switch-mm", "eager-switch-mm-cmp"):
        fab = ModelFabric(ncpus=1, policy=policy)
        k, j = fab.kernel, fab.journal()
        a = k.create_process(j, "a")
        t2 = k.create_thread(j, a.pid).tid
        k.open_wq(j, a.pid, "dsa0", 0)
        for _ in range(10):
            k.schedule(j, a.tids[0], 0)
            k.schedule(j, t2, 0)
        assert k.tasks[t2].xstate["pasid"] == a.pasid | MSR_IA32_PASID_VALID
        dirtied[policy] = k.stats["cache_lines_dirtied"]
    assert dirtied["eager-switch-mm"] == 20
    assert dirtied["eager-switch-mm-cmp"] == 2


def test_thread_switched_out_during_allocation_gets_the_pasid_when_it_runs_again():
    for policy in ("eager-switch-mm", "linux-5.10"):
        fab = ModelFabric(ncpus=1, policy=policy)
        k, j = fab.kernel, fab.journal()
        a = k.create_process(j, "a")
        t2 = k.create_thread(j, a.pid).tid
        comp = k.mmap(j, a.pid, 4096, True, True).start
        k.schedule(j, t2, 0)
        k.schedule(j, a.tids[0], 0)
        portal = k.open_wq(j, a.pid, "dsa0", 0)[0]
        k.schedule(j, t2, 0)
        r = k.enqcmd(j, t2, portal, memmove_desc(comp, comp + 64, 8, comp + 128))
        assert r.outcome == EnqcmdOutcome.ACCEPTED and r.gp_faults == 0, policy


def test_linux_5_10_defect_is_found_by_the_explorer_for_some_seed():
    broken = [s for s in range(40) if not explore("ipi-during-kernel-fpu", "linux-5.10", s).ok]
    assert broken
    r = explore("ipi-during-kernel-fpu", "linux-5.10", broken[0])
    assert r.point_name == "kernel_fpu_begin:tif_set"
    assert r.violations == {"pasid_lost": 1} and r.outcomes["T2"] == "sigsegv"


def test_same_seed_gives_the_same_interleaving():
    a = explore("ipi-during-kernel-fpu", "linux-5.10", 1234)
    b = explore("ipi-during-kernel-fpu", "linux-5.10", 1234)
    assert (a.point, a.violations, a.outcomes) == (b.point, b.violations, b.outcomes)


@pytest.mark.parametrize("policy", ["linux-5.18", "eager-switch-mm", "eager-switch-mm-cmp", "lazy-resource-exception"])
def test_no_interleaving_breaks_the_other_policies_during_kernel_fpu(policy):
    results = explore_all("ipi-during-kernel-fpu", policy)
    assert len(results) == 5 and all(r.ok for r in results)
    assert all(r.outcomes == {"T1": "accepted", "T2": "accepted"} for r in results)


def test_linux_5_10_ipi_acts_on_a_kernel_thread_with_a_borrowed_mm_and_eager_does_not():
    bad = [r for r in explore_all("ipi-on-borrowed-mm", "linux-5.10") if not r.ok]
    assert [r.point_name for r in bad] == ["while the mm is borrowed"]
    assert bad[0].violations == {"ipi_acted_on_kthread": 1}
    for policy in ("eager-switch-mm", "linux-5.18"):
        assert all(r.ok for r in explore_all("ipi-on-borrowed-mm", policy))


@pytest.mark.parametrize(
    "policy, safe",
    [
        ("linux-5.18", False),
        ("lazy-resource-exception", False),
        ("linux-5.10", True),
        ("eager-switch-mm", True),
        ("eager-switch-mm-cmp", True),
    ],
)
def test_early_free_with_reuse_is_safe_only_for_policies_that_clear_the_msr(policy, safe):
    results = explore_all("early-free-reuse", policy)
    assert all(r.ok for r in results) == safe
    if not safe:
        assert all(r.violations == {"pasid_of_another_process": 1} for r in results)
        assert all(r.outcomes["T1"] == "accepted" for r in results)  # the device took it
