"""Asynchronous page requests: the PRQ fills, overflows and drains as on VT-d.

With ``async_page_requests`` a fault that blocks (BOF, [SPEC] 8.1.3's addresses that
always block) writes a page request descriptor into the IOMMU's PRQ (``struct
page_req_dsc``, drivers/iommu/intel/prq.c) and the engine waits; the host answers
``costs.page_request`` cycles later, from the device's event queue. The ring holds
``entries - 1`` requests (qemu's vtd_pri_request_page: full when the new tail would be
the head); a request that finds it full sets PRS_REG.PRO and is not queued, and PRO is
cleared once software has drained the ring (Linux prq_event_thread: ``if (head ==
tail) writel(DMA_PRS_PRO, ...)``). What the device hears on overflow is UNVERIFIED (the
model answers success, so the device faults again and asks again).
"""

from __future__ import annotations

import pytest

from svasim.model.errors import FailedPrecondition, InvalidArgument
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S
from svasim_api.idxd import DsaOpcode as Op
from svasim_api.idxd import OpFlag as F

from ...oracle.oracle import Oracle
from ..test_accel_ops import CR, PAGE, Dsa


@pytest.fixture
def dsa() -> Dsa:
    d = Dsa()
    d.fab.accel.set_run_options(d.j, "dsa0", async_page_requests=True)
    d.oracle = Oracle(d.fab, d.transitions)  # type: ignore[attr-defined]
    return d


def check(dsa: Dsa, after: str) -> None:
    assert not dsa.oracle.check(after), dsa.oracle.check(after)  # type: ignore[attr-defined]


def memmove(dsa: Dsa, src: int, dst: int, size: int = 64):  # noqa: ANN201
    return dsa.desc(Op.MEMMOVE, flags=CR | F.BOF, src_addr=src, dst_addr=dst, xfer_size=size)


def test_a_blocking_fault_waits_in_the_prq_and_completes_when_the_response_comes(dsa):
    src = dsa.buf(PAGE)
    dsa.put(src, b"\x5a" * 64)
    dst = dsa.buf(PAGE, populate=False)
    d = memmove(dsa, src, dst)
    assert dsa.submit(d)
    dsa.fab.accel.advance(dsa.j, "dsa0", dsa.device.now + 1)
    iommu = dsa.fab.iommu
    assert iommu.prq_outstanding == 1 and list(iommu.prq.values())[0].address == dst
    assert [b.page for b in dsa.device.blocked.values()] == [dst]
    assert dsa.record(d.completion_addr).status == 0  # not complete yet
    check(dsa, "blocked")
    dsa.drain()
    rec = dsa.record(d.completion_addr)
    assert rec.status == S.SUCCESS and dsa.get(dst, 64) == b"\x5a" * 64
    assert iommu.prq_outstanding == 0 and not dsa.device.blocked
    assert [t.detail["response"] for t in dsa.transitions if t.kind == "prq.response"] == ["success"]
    done = dsa.completes()[-1].after
    # The descriptor's life runs from its first dispatch, its wait included.
    assert done["end"] - done["start"] >= dsa.fab.accel.costs.page_request
    check(dsa, "drained")


def test_a_blocked_engine_does_not_stop_the_other_engines(dsa):
    src = dsa.buf(PAGE)
    dst = dsa.buf(PAGE, populate=False)
    ok = dsa.buf(PAGE)
    slow = memmove(dsa, src, dst)
    fast = dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=ok, xfer_size=64)
    assert dsa.submit(slow) and dsa.submit(fast)
    dsa.drain()
    ends = {t.entity: t.after["end"] for t in dsa.completes()}
    order = [t.entity for t in dsa.completes()]
    assert len(order) == 2 and ends[order[0]] < ends[order[1]]  # the fast one finished first
    assert {t.after["engine"] for t in dsa.completes()} == {0, 1}
    assert dsa.record(slow.completion_addr).status == S.SUCCESS
    assert dsa.record(fast.completion_addr).status == S.SUCCESS
    check(dsa, "both done")


def test_a_full_prq_sets_pro_and_the_device_asks_again_until_it_is_drained(dsa):
    iommu = dsa.fab.iommu
    iommu.set_prq_entries(dsa.j, 2)  # a ring of 2 holds one request
    src = dsa.buf(PAGE)
    dsts = [dsa.buf(PAGE, populate=False) for _ in range(2)]
    ds = [memmove(dsa, src, d) for d in dsts]
    assert all(dsa.submit(d) for d in ds)
    dsa.fab.accel.advance(dsa.j, "dsa0", dsa.device.now + 1)
    assert iommu.prq_outstanding == 1 and iommu.prq_pro and iommu.stats["prq_overflows"] == 1
    check(dsa, "overflowed")
    dsa.drain()
    assert all(dsa.record(d.completion_addr).status == S.SUCCESS for d in ds)
    assert not iommu.prq_pro and iommu.prq_outstanding == 0
    kinds = [t.kind for t in dsa.transitions if t.entity == "prq"]
    assert "prq.overflow" in kinds
    check(dsa, "drained")


def test_a_refused_page_completes_with_page_fault_ir(dsa):
    src = dsa.buf(PAGE)
    dst = dsa.buf(PAGE)
    dsa.k.munmap(dsa.j, dsa.pid, dst, PAGE)
    d = memmove(dsa, src, dst)
    assert dsa.submit(d)
    dsa.drain()
    rec = dsa.record(d.completion_addr)
    assert rec.status == S.PAGE_FAULT_IR and rec.fault_addr == dst and rec.status_write
    assert [t.detail["response"] for t in dsa.transitions if t.kind == "prq.response"] == ["invalid"]
    check(dsa, "refused")


def test_a_completion_record_fault_always_blocks_and_waits_in_the_prq(dsa):
    """[SPEC] 8.1.3: a fault on the completion record blocks whatever the BOF flag."""
    src = dsa.buf(PAGE)
    comp = dsa.buf(PAGE, populate=False)
    d = dsa.desc(Op.MEMMOVE, comp=comp, src_addr=src, dst_addr=src + 2048, xfer_size=64)
    assert dsa.submit(d)
    dsa.fab.accel.advance(dsa.j, "dsa0", dsa.device.now + 1)
    assert dsa.fab.iommu.prq_outstanding == 1
    dsa.drain()
    assert dsa.record(comp).status == S.SUCCESS
    check(dsa, "record")


def test_the_prq_is_resized_only_when_empty_and_within_pqs(dsa):
    iommu = dsa.fab.iommu
    with pytest.raises(InvalidArgument):
        iommu.set_prq_entries(dsa.j, 1)
    src = dsa.buf(PAGE)
    dst = dsa.buf(PAGE, populate=False)
    assert dsa.submit(memmove(dsa, src, dst))
    dsa.fab.accel.advance(dsa.j, "dsa0", dsa.device.now + 1)
    with pytest.raises(FailedPrecondition) as e:
        iommu.set_prq_entries(dsa.j, 64)
    assert e.value.reason == "PRQ_BUSY"
    with pytest.raises(FailedPrecondition) as e2:
        dsa.fab.accel.set_run_options(dsa.j, "dsa0", async_page_requests=False)
    assert e2.value.reason == "PAGE_REQUESTS_IN_FLIGHT"
    dsa.drain()
    iommu.set_prq_entries(dsa.j, 64)
    assert iommu.prq_entries == 64
    check(dsa, "resized")


@pytest.mark.parametrize("seed", range(24))
def test_random_interleavings_of_faults_advances_and_prq_sizes_keep_the_fold_equal_to_the_model(seed):
    """Random submissions (faulting or not, block on fault or not), advances to random
    cycles, PRQ resizes, unmaps and run-option switches: the oracle holds after each
    step, and once the device has drained nothing waits and the PRQ is empty."""
    import random

    from svasim.model.errors import SimError

    rng = random.Random(seed)
    d = Dsa()
    d.fab.accel.set_run_options(d.j, "dsa0", async_page_requests=True, auto_run=rng.random() < 0.5)
    oracle = Oracle(d.fab, d.transitions)
    src = d.buf(4 * PAGE)
    pool = [d.buf(PAGE, populate=rng.random() < 0.3) for _ in range(8)]
    for step in range(60):
        op = rng.random()
        try:
            if op < 0.4:
                flags = CR | (int(F.BOF) if rng.random() < 0.8 else 0)
                size = rng.randint(1, PAGE)
                dst = rng.choice(pool) + rng.randint(0, PAGE - size)
                # Sometimes the record itself is on a page that may not be there.
                comp = rng.choice(pool) + 32 * rng.randint(0, PAGE // 32 - 1) if rng.random() < 0.2 else None
                d.submit(d.desc(Op.MEMMOVE, flags=flags, comp=comp, src_addr=src, dst_addr=dst, xfer_size=size))
            elif op < 0.5:
                # A batch whose list and sub-descriptors may fault: a sub-descriptor that
                # completed makes the batch wait synchronously from then on.
                subs = [
                    d.desc(
                        Op.MEMMOVE,
                        flags=int(F.CRAV) | int(F.BOF),
                        src_addr=src,
                        dst_addr=rng.choice(pool),
                        xfer_size=64,
                    )
                    for _ in range(rng.randint(1, 3))
                ]
                lst = rng.choice(pool)
                if rng.random() < 0.5:
                    d.put(lst, b"".join(idxd.pack_desc(x) for x in subs))
                d.submit(d.desc(Op.BATCH, flags=CR, src_addr=lst, xfer_size=len(subs)))
            elif op < 0.75:
                d.fab.accel.advance(d.j, "dsa0", d.device.now + rng.randint(1, 30000))
            elif op < 0.8:
                d.fab.accel.advance(d.j, "dsa0", 0)
            elif op < 0.85:
                d.fab.iommu.set_prq_entries(d.j, rng.choice([2, 3, 4, 2048]))
            elif op < 0.9:
                victim = rng.choice(pool)
                d.k.munmap(d.j, d.pid, victim, PAGE)
            elif op < 0.95:
                d.fab.accel.set_run_options(d.j, "dsa0", auto_run=rng.random() < 0.5)
            else:
                d.put(rng.choice(pool), b"\x01")
        except SimError:
            pass
        assert not oracle.check(f"step {step}"), oracle.check(f"step {step}")
    d.drain()
    assert not d.device.blocked and not d.fab.iommu.prq and not d.fab.iommu.prq_pro
    assert not d.device.events.pending() and all(not wq.queue for wq in d.device.wqs)
    assert not oracle.check("drained")
