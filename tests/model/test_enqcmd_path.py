"""The ENQCMD path through the pure models: kernel, IOMMU and accelerator."""

from __future__ import annotations

import pytest

from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound
from svasim.model.fabric import ModelFabric
from svasim.model.kernel import EnqcmdOutcome
from svasim_api import idxd

from .helpers import memmove_desc

#: MSR_IA32_PASID_VALID is bit 31 (arch/x86/include/asm/msr-index.h; SDM ENQCMD: #GP if IA32_PASID[31] = 0).
MSR_IA32_PASID_VALID = 1 << 31


@pytest.fixture
def fab() -> ModelFabric:
    return ModelFabric(ncpus=2)


def setup_process(fab: ModelFabric, size: int = 8192):
    j = fab.journal()
    k = fab.kernel
    proc = k.create_process(j, "app")
    tid = proc.tids[0]
    buf = k.mmap(j, proc.pid, 3 * size, True, True)
    comp = k.mmap(j, proc.pid, 4096, True, True)
    portal, pasid, allocated, shared = k.open_wq(j, proc.pid, "dsa0", 0)
    k.schedule(j, tid, 0)
    return proc, tid, buf.start, comp.start, portal, pasid, allocated


def test_first_open_allocates_pasid_and_fills_device_pasid_entry(fab):
    proc, tid, src, comp, portal, pasid, allocated = setup_process(fab)
    assert allocated and pasid == 1
    assert proc.pasid == 1
    entry = fab.iommu.pasid_entry("dsa0", pasid)
    assert entry.present and entry.pgtt == 1 and entry.flptr == proc.aspace.pgd


def test_first_enqcmd_takes_gp_then_fixup_loads_msr_and_memmove_completes(fab):
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    j = fab.journal()
    payload = bytes(range(256)) * 16
    k.write_memory(j, proc.pid, src, payload)
    dst = src + 8192
    res = k.enqcmd(j, tid, portal, memmove_desc(src, dst, len(payload), comp))
    assert res.outcome == EnqcmdOutcome.ACCEPTED and not res.zf
    assert res.gp_faults == 1 and res.fixup_loaded_msr
    assert res.pasid_sent == pasid
    assert k.cpus[0].ia32_pasid == pasid | MSR_IA32_PASID_VALID
    assert k.tasks[tid].pasid_activated
    w = k.wait_completion(j, tid, comp)
    assert w.completed
    rec = idxd.unpack_comp(w.raw)
    assert rec.status == idxd.DsaCompStatus.SUCCESS
    assert k.read_memory(j, proc.pid, dst, len(payload)) == payload
    # A second ENQCMD from the same thread needs no fixup.
    res2 = k.enqcmd(j, tid, portal, memmove_desc(src, dst, 64, comp + 32))
    assert res2.outcome == EnqcmdOutcome.ACCEPTED and res2.gp_faults == 0


def test_gp_with_pasid_activated_already_set_is_a_real_gp_and_kills_with_sigsegv(fab):
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    j = fab.journal()
    # Misaligned destination: the fixup loads the MSR once, the retry faults again,
    # and with pasid_activated set the second #GP is real.
    res = k.enqcmd(j, tid, portal + 8, memmove_desc(src, src + 64, 64, comp))
    assert res.outcome == EnqcmdOutcome.SIGSEGV
    assert res.gp_faults == 2 and res.fixup_loaded_msr
    assert proc.killed and proc.kill_signal == 11
    with pytest.raises(FailedPrecondition) as e:
        k.enqcmd(j, tid, portal, memmove_desc(src, src + 64, 64, comp))
    assert e.value.reason == "PROCESS_KILLED"


def test_enqcmd_in_process_without_pasid_is_a_real_gp(fab):
    k = fab.kernel
    j = fab.journal()
    proc = k.create_process(j, "nopasid")
    tid = proc.tids[0]
    k.schedule(j, tid, 1)
    res = k.enqcmd(j, tid, 0x7000_0000_0000, bytes(64))
    assert res.outcome == EnqcmdOutcome.SIGSEGV and res.gp_faults == 1 and not res.fixup_loaded_msr
    assert k.stats["wrmsr_pasid"] == 0


def test_new_thread_starts_with_clear_msr_state_and_takes_its_own_fixup(fab):
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    j = fab.journal()
    k.enqcmd(j, tid, portal, memmove_desc(src, src + 4096, 64, comp))
    t2 = k.create_thread(j, proc.pid)
    assert not t2.pasid_activated and t2.saved_ia32_pasid == 0
    k.schedule(j, t2.tid, 1)
    assert k.cpus[1].ia32_pasid == 0
    res = k.enqcmd(j, t2.tid, portal, memmove_desc(src, src + 4096, 64, comp + 32))
    assert res.gp_faults == 1 and res.outcome == EnqcmdOutcome.ACCEPTED


def test_msr_follows_the_thread_across_context_switches(fab):
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    j = fab.journal()
    k.enqcmd(j, tid, portal, memmove_desc(src, src + 4096, 64, comp))
    other = k.create_process(j, "other")
    k.schedule(j, other.tids[0], 0)  # switches tid out, saving IA32_PASID
    assert k.cpus[0].ia32_pasid == 0
    assert k.tasks[tid].saved_ia32_pasid == pasid | MSR_IA32_PASID_VALID
    k.schedule(j, tid, 1)  # and back in on another CPU
    assert k.cpus[1].ia32_pasid == pasid | MSR_IA32_PASID_VALID
    res = k.enqcmd(j, tid, portal, memmove_desc(src, src + 4096, 64, comp + 32))
    assert res.gp_faults == 0


def test_shared_wq_answers_retry_at_the_limited_portal_threshold(fab):
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    j = fab.journal()
    # Make the engines far slower than the CPU so the queue fills.
    for e in range(len(fab.accel.devices["dsa0"].engines)):
        fab.accel.devices["dsa0"].engines[e] = 10**12
    outcomes = [k.enqcmd(j, tid, portal, memmove_desc(src, src + 4096, 64, comp)).outcome for _ in range(16)]
    assert outcomes[:15] == [EnqcmdOutcome.ACCEPTED] * 15  # wq_thresh is 15
    assert outcomes[15] == EnqcmdOutcome.RETRY


def test_enqcmd_to_plain_memory_returns_retry_and_drops_the_store(fab):
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    res = k.enqcmd(fab.journal(), tid, src, memmove_desc(src, src + 4096, 64, comp))
    assert res.outcome == EnqcmdOutcome.RETRY and res.zf
    assert "enqueue register" in res.retry_reason


def test_device_write_to_untouched_page_completes_partially_with_write_fault(fab):
    k = fab.kernel
    j = fab.journal()
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    lazy = k.mmap(j, proc.pid, 8192, True, False)  # not populated
    k.write_memory(j, proc.pid, lazy.start, b"x")  # touches only the first page
    k.enqcmd(j, tid, portal, memmove_desc(src, lazy.start, 8192, comp))
    w = k.wait_completion(j, tid, comp)
    rec = idxd.unpack_comp(w.raw)
    assert rec.status == idxd.DsaCompStatus.PAGE_FAULT_NOBOF
    assert rec.status_write
    assert rec.bytes_completed == 4096
    assert rec.fault_addr == lazy.start + 4096


def test_munmap_invalidates_iotlb_so_device_faults_instead_of_using_stale_frame(fab):
    k = fab.kernel
    j = fab.journal()
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k.enqcmd(j, tid, portal, memmove_desc(src, src + 4096, 4096, comp))
    k.wait_completion(j, tid, comp)
    assert any(key[0] == pasid for key in fab.iommu.iotlb)
    victim = k.mmap(j, proc.pid, 4096, True, True)
    k.enqcmd(j, tid, portal, memmove_desc(victim.start, src, 64, comp + 32))
    k.wait_completion(j, tid, comp + 32)
    pages, invalidated = k.munmap(j, proc.pid, victim.start, 4096)
    assert pages == 1 and invalidated
    assert (pasid, victim.start >> 12) not in fab.iommu.iotlb
    k.enqcmd(j, tid, portal, memmove_desc(victim.start, src, 64, comp + 64))
    rec = idxd.unpack_comp(k.wait_completion(j, tid, comp + 64).raw)
    assert rec.status == idxd.DsaCompStatus.PAGE_FAULT_NOBOF and rec.fault_addr == victim.start


def test_bad_requests_raise_and_change_nothing(fab):
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    j = fab.journal()
    before = len(j.transitions)
    with pytest.raises(InvalidArgument):
        k.enqcmd(j, tid, portal, bytes(63))
    with pytest.raises(NotFound):
        k.enqcmd(j, 999, portal, bytes(64))
    with pytest.raises(NotFound):
        k.open_wq(j, proc.pid, "dsa9", 0)
    assert len(j.transitions) == before
    assert k.tasks[tid].enqcmds == 0


def test_same_inputs_give_the_same_transitions():
    def run() -> list[tuple]:
        out: list = []
        fab = ModelFabric(ncpus=2, sink=out.append)
        proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
        fab.kernel.enqcmd(fab.journal(), tid, portal, memmove_desc(src, src + 4096, 4096, comp))
        fab.kernel.wait_completion(fab.journal(), tid, comp)
        return [(t.service, t.entity, t.kind, t.before, t.after, t.cycles) for t in out]

    assert run() == run()


def test_submission_with_a_pasid_other_than_the_mm_pasid_is_recorded_as_a_violation():
    out: list = []
    fab = ModelFabric(ncpus=2, sink=out.append)
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k = fab.kernel
    # Corrupt the live MSR the way a broken policy would: valid, but another PASID.
    k.cpus[0].ia32_pasid = (pasid + 5) | MSR_IA32_PASID_VALID
    res = k.enqcmd(fab.journal(), tid, portal, memmove_desc(src, src + 4096, 64, comp))
    assert res.pasid_sent == pasid + 5
    assert k.stats["invariant_violations"] == 1
    v = [t for t in out if t.kind == "invariant.violation"]
    assert len(v) == 1 and v[0].entity == "invariant/pasid_mismatch"
    assert v[0].detail["tid"] == tid


def test_a_policy_whose_fixup_never_fixes_is_caught_as_a_gp_loop():
    from svasim.model.policy import PolicyBase

    class Broken(PolicyBase):
        name = "broken"

        def try_fixup_enqcmd_gp(self, kernel, task, cpu, journal):
            return True  # claims success without loading the MSR

    out: list = []
    fab = ModelFabric(ncpus=1, sink=out.append)
    fab.kernel.policy = Broken()
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    res = fab.kernel.enqcmd(fab.journal(), tid, portal, memmove_desc(src, src + 4096, 64, comp))
    assert res.outcome == EnqcmdOutcome.SIGSEGV
    assert any(t.entity == "invariant/gp_fixup_loop" for t in out)


def test_a_restarted_iommus_flush_drops_every_device_tlb_entry_of_every_pasid(fab):
    """The flush a restarted IOMMU owes its devices (svasim.recovery.flush_device_tlbs): an
    invalidation its previous incarnation began may have died before the device-TLB call
    (descriptor type 8, PASID-based device-TLB invalidation), leaving the device a
    translation the IOMMU no longer holds. Dropping cached translations is always
    allowed, so it drops them all; the IOMMU's own state is unchanged."""
    k = fab.kernel
    j = fab.journal()
    proc, tid, src, comp, portal, pasid, _ = setup_process(fab)
    k.enqcmd(j, tid, portal, memmove_desc(src, src + 4096, 4096, comp))
    k.wait_completion(j, tid, comp)
    cached = [key for key in fab.accel.device("dsa0").devtlb if key[0] == pasid]
    assert cached
    iotlb = dict(fab.iommu.iotlb)
    # The invalidation cut short: the IOTLB dropped, the device never told.
    fab.iommu._drop_iotlb(j, pasid, 0, 0)
    assert fab.iommu.flush_device_tlbs(j) == len(cached)
    assert not fab.accel.device("dsa0").devtlb
    assert iotlb and not fab.iommu.iotlb
    # Translations come back through the IOMMU, from the page table: the next copy works.
    k.enqcmd(j, tid, portal, memmove_desc(src, src + 4096, 64, comp + 32))
    rec = idxd.unpack_comp(k.wait_completion(j, tid, comp + 32).raw)
    assert rec.status == idxd.DsaCompStatus.SUCCESS
    assert any(key[0] == pasid for key in fab.accel.device("dsa0").devtlb)
