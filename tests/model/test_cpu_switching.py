"""Per-thread and per-mm CPU state across context switches, fork, exec and exit."""

from __future__ import annotations

import pytest

from svasim.model.errors import FailedPrecondition
from svasim.model.fabric import ModelFabric

from .helpers import memmove_desc

#: MSR_IA32_PASID_VALID is bit 31 (arch/x86/include/asm/msr-index.h; SDM ENQCMD: #GP if IA32_PASID[31] = 0).
MSR_IA32_PASID_VALID = 1 << 31
#: init_pkru_value: access disabled for every key but 0 (arch/x86/mm/pkeys.c).
INIT_PKRU = 0x55555554
#: TLB_NR_DYN_ASIDS (arch/x86/include/asm/tlbflush.h).
TLB_NR_DYN_ASIDS = 6


def fabric(policy: str = "linux-5.18", ncpus: int = 2, **kw) -> ModelFabric:
    return ModelFabric(ncpus=ncpus, policy=policy, **kw)


def test_fpu_restore_is_skipped_when_the_thread_returns_to_the_cpu_that_still_owns_its_registers():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    ta = a.tids[0]
    tb = k.create_thread(j, a.pid).tid
    k.schedule(j, ta, 0)
    k.use_fpu(j, ta)
    k.schedule(j, tb, 1)  # tb elsewhere; CPU 0's registers still hold ta's state
    k.schedule(j, ta, 0)  # no switch (already there)
    # Switch ta out to a kernel thread and back: registers untouched in between.
    kw = k.create_kthread(j)
    k.schedule(j, kw.tid, 0)
    before = k.stats["xrstors"]
    k.schedule(j, ta, 0)
    assert k.stats["fpu_restore_skipped"] == 1 and k.stats["xrstors"] == before
    assert k.stats["violation.fpu_state"] == 0


def test_migrated_thread_gets_its_registers_back_by_xrstors_and_nothing_leaks():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    b = k.create_process(j, "b")
    ta, tb = a.tids[0], b.tids[0]
    k.schedule(j, ta, 0)
    tok = k.use_fpu(j, ta)
    k.schedule(j, tb, 0)
    k.use_fpu(j, tb)
    k.schedule(j, ta, 1)
    assert k.cpus[1].regs["fp"] == tok
    assert k.stats["violation.fpu_state"] == 0


def test_pkru_is_written_eagerly_and_only_when_it_differs():
    fab = fabric(ncpus=1)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    t1 = a.tids[0]
    t2 = k.create_thread(j, a.pid).tid
    k.schedule(j, t1, 0)
    k.schedule(j, t2, 0)
    assert k.stats["wrpkru"] == 0  # both at the init value
    k.write_pkru(j, t2, 0x4)
    k.schedule(j, t1, 0)
    assert k.cpus[0].pkru == INIT_PKRU
    k.schedule(j, t2, 0)
    assert k.cpus[0].pkru == 0x4
    assert k.stats["wrpkru"] == 3  # the user's write and two switches
    assert k.stats["violation.pkru_state"] == 0


def test_reusing_one_of_the_six_dynamic_asids_flushes_the_tlb():
    fab = fabric(ncpus=1)
    k, j = fab.kernel, fab.journal()
    procs = [k.create_process(j, f"p{i}") for i in range(TLB_NR_DYN_ASIDS + 1)]
    for p in procs[:TLB_NR_DYN_ASIDS]:
        k.schedule(j, p.tids[0], 0)
    flushes = k.stats["tlb_flush"]
    k.schedule(j, procs[0].tids[0], 0)  # its ASID is still cached
    assert k.stats["tlb_flush"] == flushes
    k.schedule(j, procs[-1].tids[0], 0)  # a 7th mm takes a slot
    assert k.stats["tlb_flush"] == flushes + 1


def test_mm_cpumask_follows_cr3():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    b = k.create_process(j, "b")
    k.schedule(j, a.tids[0], 0)
    t2 = k.create_thread(j, a.pid).tid
    k.schedule(j, t2, 1)
    assert a.cpumask_list() == [0, 1]
    k.schedule(j, b.tids[0], 1)
    assert a.cpumask_list() == [0] and b.cpumask_list() == [1]
    assert k.stats["violation.mm_cpumask"] == 0


def test_ldt_change_is_broadcast_by_ipi_to_mm_cpumask():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    t2 = k.create_thread(j, a.pid).tid
    k.schedule(j, a.tids[0], 0)
    k.schedule(j, t2, 1)
    k.modify_ldt(j, a.tids[0])
    # smp_call_function_many_cond() (kernel/smp.c) runs flush_ldt on the sending CPU
    # directly: one IPI, to CPU 1 only.
    assert k.stats["ipi_sent"] == 1
    assert k.cpus[1].ldt_gen == (a.pid, 1) and k.cpus[0].ldt_gen == (a.pid, 1)


def test_first_tile_use_takes_nm_and_grows_the_fpstate_or_sigill_without_permission():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "amx")
    k.request_amx(j, a.pid)
    k.schedule(j, a.tids[0], 0)
    assert k.use_tile(j, a.tids[0]) == "grew"
    assert k.use_tile(j, a.tids[0]) == "ok"
    assert k.stats["nm"] == 1 and k.stats["rdmsr.xfd_err"] == 1
    b = k.create_process(j, "noperm")
    k.schedule(j, b.tids[0], 1)
    assert k.use_tile(j, b.tids[0]) == "sigill"
    assert b.killed and b.kill_signal == 4


def test_fork_inherits_amx_permission_but_not_tile_data_or_pasid():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "parent")
    k.request_amx(j, a.pid)
    k.mmap(j, a.pid, 4096, True, True)
    k.open_wq(j, a.pid, "dsa0", 0)
    k.schedule(j, a.tids[0], 0)
    k.use_tile(j, a.tids[0])
    child = k.fork(j, a.tids[0])
    ct = k.tasks[child.tids[0]]
    assert child.amx_permitted and child.pasid == 0
    assert ct.xstate["tile"] == 0 and not ct.fpstate_large
    assert ct.xstate["pasid"] == 0 and not ct.pasid_activated
    assert all(v.kind == "anon" for v in child.aspace.vmas)  # the portal is VM_DONTCOPY


def test_clone_shares_the_pasid_but_the_new_threads_msr_starts_clear_under_5_18():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    k.open_wq(j, a.pid, "dsa0", 0)
    comp = k.mmap(j, a.pid, 4096, True, True).start
    portal = a.aspace.vmas[0].start if a.aspace.vmas[0].kind == "portal" else a.aspace.vmas[-1].start
    portal = next(v.start for v in a.aspace.vmas if v.kind == "portal")
    k.schedule(j, a.tids[0], 0)
    k.enqcmd(j, a.tids[0], portal, memmove_desc(comp, comp + 64, 8, comp + 128))
    t2 = k.create_thread(j, a.pid, a.tids[0])
    assert t2.xstate["pasid"] == 0 and not t2.pasid_activated


def test_clone_copies_the_pasid_state_under_5_10():
    fab = fabric("linux-5.10")
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    k.schedule(j, a.tids[0], 0)
    k.open_wq(j, a.pid, "dsa0", 0)  # the IPI loads the running thread's MSR
    assert k.cpus[0].ia32_pasid == a.pasid | MSR_IA32_PASID_VALID
    t2 = k.create_thread(j, a.pid, a.tids[0])
    assert t2.xstate["pasid"] == a.pasid | MSR_IA32_PASID_VALID


def test_exec_drops_the_pasid_and_resets_the_thread_state():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    k.open_wq(j, a.pid, "dsa0", 0)
    old = a.pasid
    k.schedule(j, a.tids[0], 0)
    k.exec(j, a.tids[0])
    assert a.pasid == 0 and old not in fab.iommu.pasid_mm
    assert k.cpus[0].ia32_pasid == 0


def test_pasid_is_freed_when_the_last_thread_exits_and_then_reused():
    fab = fabric()
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    k.open_wq(j, a.pid, "dsa0", 0)
    pasid = a.pasid
    t2 = k.create_thread(j, a.pid).tid
    k.exit_thread(j, a.tids[0])
    assert pasid in fab.iommu.pasid_mm  # one thread left: the mm lives
    k.exit_thread(j, t2)
    assert pasid not in fab.iommu.pasid_mm and a.exited
    b = k.create_process(j, "b")
    k.open_wq(j, b.pid, "dsa0", 0)
    assert b.pasid == pasid  # the lowest free PASID again


def test_pasid_survives_close_and_munmap_unless_early_free_is_on():
    # Documentation/arch/x86/sva.rst: the PASID is freed only at mm exit; 5.10 freed it
    # on the last unbind, which the portal mapping's file reference delays to munmap.
    for early in (False, True):
        fab = fabric(early_free=early)
        k, j = fab.kernel, fab.journal()
        a = k.create_process(j, "a")
        portal, pasid = k.open_wq(j, a.pid, "dsa0", 0)[:2]
        assert k.close_wq(j, a.pid, "dsa0", 0) == (pasid, False)
        with pytest.raises(FailedPrecondition):
            k.close_wq(j, a.pid, "dsa0", 0)
        k.munmap(j, a.pid, portal, 4096)
        assert (a.pasid == 0) == early
        assert (pasid in fab.iommu.pasid_mm) == (not early)


def test_kernel_gs_base_is_switched_eagerly():
    fab = fabric(ncpus=1)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    t2 = k.create_thread(j, a.pid).tid
    k.schedule(j, a.tids[0], 0)
    k.set_gs_base(j, a.tids[0], 0x1234000)
    k.schedule(j, t2, 0)
    assert k.cpus[0].kernel_gs_base == 0
    k.schedule(j, a.tids[0], 0)
    assert k.cpus[0].kernel_gs_base == 0x1234000
    assert k.stats["wrgsbase"] == 3
