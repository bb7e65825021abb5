"""clone() of a thread from a running parent: what fpu_clone() and copy_thread() give it.

Rules (arch/x86/kernel/fpu/core.c ``fpu_clone()``, arch/x86/kernel/process.c
``copy_thread()``, kernel/fork.c ``dup_task_struct()``; reference §1.2, §2.5):
- the child's xstate is a copy of the parent's, taken from the live registers when the
  parent's are live (``save_fpregs_to_fpstate`` first), so the child's SIMD state is the
  parent's at the time of clone;
- from 5.18 the PASID feature is cleared in the child's xfeatures (its IA32_PASID starts
  invalid) and ``pasid_activated`` is per task (cleared for the child), so the child
  takes its own first #GP; AMX tile data is not inherited (the child's fpstate is the
  default size);
- PKRU and the GS base come from the parent.
"""

from __future__ import annotations

from svasim.model.fabric import ModelFabric

from ..helpers import memmove_desc

MSR_IA32_PASID_VALID = 1 << 31  # arch/x86/include/asm/msr-index.h


def running_parent():
    fab = ModelFabric(ncpus=2)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "app")
    k.request_amx(j, a.pid)
    comp = k.mmap(j, a.pid, 4096, True, True).start
    portal = k.open_wq(j, a.pid, "dsa0", 0)[0]
    parent = a.tids[0]
    k.schedule(j, parent, 0)
    assert k.enqcmd(j, parent, portal, memmove_desc(comp, comp + 64, 8, comp + 128)).gp_faults == 1
    fp = k.use_fpu(j, parent)
    k.use_tile(j, parent)
    k.write_pkru(j, parent, 0x55555550)
    k.set_gs_base(j, parent, 0x7000_1000)
    return fab, k, j, a, parent, comp, portal, fp


def test_clone_copies_the_parents_live_simd_state_pkru_and_gs_base():
    fab, k, j, a, parent, comp, portal, fp = running_parent()
    child = k.create_thread(j, a.pid, parent)
    assert child.xstate["fp"] == fp and child.user_fp == fp
    assert child.pkru == 0x55555550 and child.gs_base == 0x7000_1000
    k.schedule(j, child.tid, 1)
    assert k.cpus[1].regs["fp"] == fp and k.cpus[1].pkru == 0x55555550
    assert k.stats["invariant_violations"] == 0


def test_clone_clears_the_pasid_state_and_tile_data_so_the_child_takes_its_own_gp():
    fab, k, j, a, parent, comp, portal, fp = running_parent()
    assert k.cpus[0].ia32_pasid == a.pasid | MSR_IA32_PASID_VALID and k.tasks[parent].pasid_activated
    child = k.create_thread(j, a.pid, parent)
    assert child.saved_ia32_pasid == 0 and not child.pasid_activated
    assert child.xstate["tile"] == 0 and not child.fpstate_large
    k.schedule(j, child.tid, 1)
    assert k.cpus[1].ia32_pasid == 0 and k.cpus[1].xfd_armed
    r = k.enqcmd(j, child.tid, portal, memmove_desc(comp, comp + 64, 8, comp + 160))
    assert r.outcome == "accepted" and r.gp_faults == 1 and r.fixup_loaded_msr
    # The parent keeps its own state.
    assert k.cpus[0].ia32_pasid == a.pasid | MSR_IA32_PASID_VALID
