"""Rules of the Intel DSA Architecture Specification (rev 3.0, 341204-006US), one test each.

Every expected value here is written from the specification (its section or table is
named in the test), from the Linux uapi header's numbering, or from arithmetic done by
hand; none is read back from the model's own constants, so changing one of them in the
model fails a test here.
"""

from __future__ import annotations

import struct

import pytest

from svasim.model import dsa_ops
from svasim.model.accel import WqConfig
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S
from svasim_api.idxd import DsaOpcode as Op
from svasim_api.idxd import OpFlag as F

from ..test_accel_ops import CR, PAGE, Dsa


@pytest.fixture
def dsa() -> Dsa:
    return Dsa()


def _batch(dsa: Dsa, subs: list[idxd.DsaHwDesc], *, lst: int | None = None, flags: int = CR) -> idxd.DsaHwDesc:
    """The sub-descriptors written at ``lst`` (a fresh page by default) and their batch."""
    if lst is None:
        lst = dsa.buf(PAGE)
    dsa.put(lst, b"".join(idxd.pack_desc(s) for s in subs))
    return dsa.desc(Op.BATCH, flags=flags, src_addr=lst, xfer_size=len(subs))


# ---------------------------------------------------------------------------------------
# OPCAP and the delta limits
# ---------------------------------------------------------------------------------------

#: The opcodes the model claims, by the specification's opcode numbers (the uapi
#: header's): NOOP 0x00, BATCH 0x01, DRAIN 0x02, MEMMOVE 0x03, MEMFILL 0x04, COMPARE 0x05,
#: COMPVAL 0x06, CR_DELTA 0x07, AP_DELTA 0x08, DUALCAST 0x09, CRCGEN 0x10, COPY_CRC 0x11,
#: DIF_CHECK 0x12, DIF_INS 0x13, DIF_STRP 0x14, DIF_UPDT 0x15, CFLUSH 0x20.
CLAIMED = [0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08, 0x09, 0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x20]


def test_opcap_sets_bit_n_for_each_opcode_n_the_device_executes():
    # OPCAP bit N is opcode N: bits 0-9 (0x3ff), 16-21 (0x3f0000) and 32.
    assert dsa_ops.OPCAP_BITMAP == 0x1_003F_03FF
    assert WqConfig().op_config == 0x1_003F_03FF  # a new WQ enables every one of them


@pytest.mark.parametrize("opcode", range(256))
def test_every_opcode_outside_opcap_is_bad_opcode_and_every_one_inside_is_not(dsa, opcode):
    rec = dsa.run(dsa.desc(opcode))
    if opcode in CLAIMED:
        assert rec.status != S.BAD_OPCODE
    else:
        assert rec.status == S.BAD_OPCODE


def _delta_pair(dsa: Dsa, size: int) -> tuple[int, int]:
    a, b = dsa.buf(size), dsa.buf(size)
    dsa.put(b, b"\x01")  # one differing word: a one-entry record
    return a, b


@pytest.mark.parametrize(("size", "status"), [(0x80000, S.SUCCESS), (0x80000 + 8, S.XFER_ERANGE)])
def test_create_delta_transfers_at_most_512_kib(dsa, size, status):
    # A delta record entry's offset is 16 bits counting 8-byte words: 2^16 * 8 = 512 KiB.
    a, b = _delta_pair(dsa, size)
    desc = dsa.desc(Op.CR_DELTA, src_addr=a, dst_addr=b, xfer_size=size)
    desc.delta_addr, desc.max_delta_size = dsa.buf(PAGE), 80
    rec = dsa.run(desc)
    assert rec.status == status
    if status == S.SUCCESS:
        assert (rec.result, rec.delta_rec_size) == (1, 10)


@pytest.mark.parametrize(("size", "status"), [(0x80000, S.SUCCESS), (0x80000 + 8, S.XFER_ERANGE)])
def test_apply_delta_transfers_at_most_512_kib(dsa, size, status):
    rec_addr, dst = dsa.buf(PAGE), dsa.buf(size)
    last = 0x80000 // 8 - 1  # the highest offset a 16-bit entry can name
    dsa.put(rec_addr, struct.pack("<HQ", last, 0xABCD))
    desc = dsa.desc(Op.AP_DELTA, src_addr=rec_addr, dst_addr=dst, xfer_size=size)
    desc.delta_rec_size = 10
    assert dsa.run(desc).status == status
    if status == S.SUCCESS:
        assert dsa.get(dst + last * 8, 8) == struct.pack("<Q", 0xABCD)


@pytest.mark.parametrize(("max_delta_size", "status"), [(79, S.DR_ERANGE), (80, S.SUCCESS)])
def test_create_delta_needs_a_maximum_record_size_of_at_least_80_bytes(dsa, max_delta_size, status):
    # accel-config test/dsa.h MIN_DELTA_RECORD_SIZE 80 (and DML's validation): eight
    # 10-byte entries.
    a, b = _delta_pair(dsa, PAGE)
    desc = dsa.desc(Op.CR_DELTA, src_addr=a, dst_addr=b, xfer_size=64)
    desc.delta_addr, desc.max_delta_size = dsa.buf(PAGE), max_delta_size
    assert dsa.run(desc).status == status


# ---------------------------------------------------------------------------------------
# 8.1.3, 5.4: Fence outside a batch
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [Op.NOOP, Op.MEMMOVE])
def test_fence_in_a_descriptor_submitted_directly_to_a_wq_is_invalid_flags_and_nothing_runs(dsa, opcode):
    # 8.1.3: Fence is reserved in a descriptor submitted directly to a WQ; 5.4 gives it as
    # the example of an invalid flag.
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"fenced")
    rec = dsa.run(dsa.desc(opcode, flags=CR | F.FENCE, src_addr=src, dst_addr=dst, xfer_size=6))
    assert (rec.status, rec.invalid_flags) == (S.INVALID_FLAGS, 0x0001)
    assert dsa.get(dst, 6) == bytes(6)


def test_fence_inside_a_batch_is_valid(dsa):
    subs = [dsa.desc(Op.NOOP), dsa.desc(Op.NOOP, flags=CR | F.FENCE)]
    assert dsa.run(_batch(dsa, subs)).status == S.SUCCESS
    assert [dsa.record(s.completion_addr).status for s in subs] == [S.SUCCESS, S.SUCCESS]


# ---------------------------------------------------------------------------------------
# 8.1.3, 5.8.1: Request Completion Record = 0
# ---------------------------------------------------------------------------------------


def test_without_rcr_a_success_writes_no_record(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, flags=int(F.CRAV), src_addr=src, dst_addr=dst, xfer_size=8))
    assert idxd.pack_comp(rec) == bytes(32)


def test_without_rcr_a_batch_fail_writes_no_record_but_the_failing_sub_descriptor_does(dsa):
    # 8.1.3: with RCR = 0 a record is written only if the status is not 0x01, 0x02, 0x05.
    bad = dsa.desc(Op.MEMMOVE, flags=int(F.CRAV), xfer_size=0)
    good = dsa.desc(Op.NOOP, flags=int(F.CRAV))
    batch = _batch(dsa, [good, bad], flags=int(F.CRAV))
    assert dsa.submit(batch)
    dsa.drain()
    assert dsa.completes()[-1].after["status"] == 0x05  # BATCH_FAIL
    assert idxd.pack_comp(dsa.record(batch.completion_addr)) == bytes(32)
    assert idxd.pack_comp(dsa.record(good.completion_addr)) == bytes(32)
    assert dsa.record(bad.completion_addr).status == 0x13  # XFER_ERANGE
    assert dsa.device.swerr == 0


def test_without_rcr_a_partial_completion_writes_its_record(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE, populate=False)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, flags=int(F.CRAV), src_addr=src, dst_addr=dst, xfer_size=8))
    assert (rec.status_byte, rec.fault_addr) == (0x03 | 0x80, dst)


def test_without_crav_a_batch_fail_is_not_a_software_error(dsa):
    # 5.8.1: status 0x05 with CRAV = 0 is not recorded in SWERROR; an error status is.
    bad = dsa.desc(Op.MEMMOVE, flags=int(F.CRAV), xfer_size=0)
    batch = _batch(dsa, [dsa.desc(Op.NOOP), bad], flags=0)
    assert dsa.submit(batch)
    dsa.drain()
    assert dsa.completes()[-1].after["status"] == 0x05
    assert dsa.device.swerr == 0
    assert dsa.submit(dsa.desc(Op.MEMMOVE, flags=0, xfer_size=0))
    dsa.drain()
    assert dsa.device.swerr == 1 and dsa.completes("device.swerr")[0].detail["error"] == 0x13


# ---------------------------------------------------------------------------------------
# 8.1.3, 5.4: addresses that always block on fault
# ---------------------------------------------------------------------------------------


def _no_bof_wq() -> Dsa:
    """A WQ whose WQCFG block on fault is off: descriptors cannot ask for BOF."""
    return Dsa(block_on_fault=False)


def test_a_descriptor_list_on_a_missing_page_is_paged_in_whatever_bof_says():
    dsa = _no_bof_wq()
    lst = dsa.buf(2 * PAGE, populate=False)
    base = lst + PAGE - 2 * 64  # descriptors 0 and 1 on the first page, 2 and 3 on the second
    subs = [dsa.desc(Op.NOOP) for _ in range(2)]
    dsa.put(base, b"".join(idxd.pack_desc(s) for s in subs))
    # The second page is never written: paged in, it reads as zeros, which are two NOOPs
    # with no flags.
    rec = dsa.run(dsa.desc(Op.BATCH, src_addr=base, xfer_size=4))
    assert (rec.status, rec.result, rec.descs_completed) == (S.SUCCESS, 0, 4)
    assert [t.detail["address"] for t in dsa.completes("prq.request")] == [lst + PAGE]
    assert [dsa.record(s.completion_addr).status for s in subs] == [S.SUCCESS, S.SUCCESS]


def test_a_completion_record_on_a_missing_page_is_paged_in_whatever_bof_says():
    dsa = _no_bof_wq()
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"copied")
    comp = dsa.buf(PAGE, populate=False) + 64
    rec = dsa.run(dsa.desc(Op.MEMMOVE, comp=comp, src_addr=src, dst_addr=dst, xfer_size=6))
    assert rec.status == S.SUCCESS and dsa.get(dst, 6) == b"copied"
    assert [t.detail["response"] for t in dsa.transitions if t.kind == "prq.response"] == ["success"]
    assert dsa.device.swerr == 0


@pytest.mark.parametrize(
    "readback", [dsa_ops.DRAIN_FLAG_READBACK1, dsa_ops.DRAIN_FLAG_READBACK2], ids=["readback1", "readback2"]
)
def test_a_drain_readback_address_on_a_missing_page_is_paged_in_whatever_bof_says(readback):
    dsa = _no_bof_wq()
    addr = dsa.buf(PAGE, populate=False)
    desc = dsa.desc(Op.DRAIN, flags=CR | readback, src_addr=addr, dst_addr=addr)  # rdback_addr, rdback_addr2
    assert dsa.run(desc).status == S.SUCCESS
    assert len(dsa.completes("prq.request")) == 1 and dsa.present(addr)


def test_a_drain_readback_fault_is_pfault_rdba_when_the_wq_sends_no_page_requests():
    dsa = Dsa(prs_disable=True)
    addr = dsa.buf(PAGE, populate=False)
    desc = dsa.desc(Op.DRAIN, flags=CR | dsa_ops.DRAIN_FLAG_READBACK1, src_addr=addr)  # rdback_addr
    rec = dsa.run(desc)
    assert (rec.status, rec.fault_addr) == (0x1F, addr)
    assert not dsa.completes("prq.request")


def test_a_data_buffer_fault_without_bof_is_still_a_partial_completion():
    # Only the addresses 8.1.3 names always block: a source or destination does not.
    dsa = _no_bof_wq()
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE, populate=False)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=8))
    assert (rec.status, rec.bytes_completed, rec.fault_addr) == (0x03, 0, dst)
    assert not dsa.completes("prq.request")


def test_an_untranslatable_completion_record_discards_the_descriptor_before_it_runs(dsa):
    # 5.4: the descriptor is discarded and the error goes to SWERROR; the operation does
    # not run and nothing is written where the record would have gone.
    src, dst, comp = dsa.buf(PAGE), dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"never")
    dsa.k.munmap(dsa.j, dsa.pid, comp, PAGE)  # the page request is answered INVALID
    assert dsa.submit(dsa.desc(Op.MEMMOVE, comp=comp, src_addr=src, dst_addr=dst, xfer_size=5))
    dsa.drain()
    assert dsa.get(dst, 5) == bytes(5)
    assert dsa.device.swerr == 1 and dsa.completes("device.swerr")[0].detail["error"] == 0x1A  # CRA_XLAT
    assert [t.detail["response"] for t in dsa.transitions if t.kind == "prq.response"] == ["invalid"]


def test_a_batch_sub_descriptor_whose_record_cannot_be_translated_does_not_run_and_fails_the_batch(dsa):
    src, dst, comp = dsa.buf(PAGE), dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"never")
    dsa.k.munmap(dsa.j, dsa.pid, comp, PAGE)
    subs = [dsa.desc(Op.MEMMOVE, comp=comp, src_addr=src, dst_addr=dst, xfer_size=5), dsa.desc(Op.NOOP)]
    rec = dsa.run(_batch(dsa, subs))
    assert (rec.status, rec.result, rec.descs_completed) == (S.BATCH_FAIL, 1, 2)
    assert dsa.get(dst, 5) == bytes(5) and dsa.record(subs[1].completion_addr).status == S.SUCCESS


# ---------------------------------------------------------------------------------------
# Table 5-5: flags an operation requires
# ---------------------------------------------------------------------------------------

NEED_RECORD = [Op.COMPARE, Op.COMPVAL, Op.CR_DELTA, Op.CRCGEN, Op.COPY_CRC]


def _needs_record_desc(dsa: Dsa, opcode: int, flags: int) -> tuple[idxd.DsaHwDesc, int]:
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"\x5a" * 64)
    desc = dsa.desc(opcode, flags=flags, src_addr=src, dst_addr=dst, xfer_size=64)
    if opcode == Op.CR_DELTA:
        desc.delta_addr, desc.max_delta_size = dsa.buf(PAGE), 80
    return desc, dst


@pytest.mark.parametrize("opcode", NEED_RECORD)
def test_an_operation_that_needs_a_record_without_rcr_is_invalid_flags_in_its_record(dsa, opcode):
    # Table 5-5: CRAV and RCR required. With CRAV the invalid-flags status (not 0x01,
    # 0x02 or 0x05) is written although RCR is clear (8.1.3).
    desc, dst = _needs_record_desc(dsa, opcode, int(F.CRAV))
    rec = dsa.run(desc)
    assert (rec.status, rec.invalid_flags) == (0x11, 0x0008)
    assert dsa.get(dst, 64) == bytes(64)  # COPY_CRC did not copy
    assert not [t for t in dsa.transitions if t.kind == "dma.write" and t.detail["length"] != 32]


@pytest.mark.parametrize("opcode", NEED_RECORD)
def test_an_operation_that_needs_a_record_without_crav_is_invalid_flags_in_swerror(dsa, opcode):
    desc, dst = _needs_record_desc(dsa, opcode, int(F.RCR))
    dsa.run(desc)
    assert dsa.record(desc.completion_addr).status == 0
    assert dsa.device.swerr == 1 and dsa.completes("device.swerr")[0].detail["error"] == 0x11
    assert dsa.get(dst, 64) == bytes(64)


@pytest.mark.parametrize(("flags", "status"), [(int(F.CRAV), 0x11), (CR, 0x01), (int(F.CRAV | F.RCI), 0x01)])
def test_drain_needs_rcr_or_rci(dsa, flags, status):
    rec = dsa.run(dsa.desc(Op.DRAIN, flags=flags))
    if status == 0x11:
        assert (rec.status, rec.invalid_flags) == (0x11, 0x0008 | 0x0010)
    else:
        # With RCI alone a success writes no record; the interrupt is the completion.
        assert rec.status == (status if flags & F.RCR else 0)
        assert dsa.completes()[-1].after["status"] == status


@pytest.mark.parametrize("opcode", [Op.MEMMOVE, Op.MEMFILL, Op.DUALCAST, Op.CFLUSH, Op.AP_DELTA])
def test_the_operations_table_5_5_does_not_name_run_without_a_record(dsa, opcode):
    src, dst, dst2 = dsa.buf(PAGE), dsa.buf(PAGE), dsa.buf(PAGE)
    desc = dsa.desc(opcode, flags=int(F.CRAV), src_addr=src, dst_addr=dst, xfer_size=64)
    if opcode == Op.DUALCAST:
        desc.dest2 = dst2
    if opcode == Op.AP_DELTA:
        dsa.put(src, struct.pack("<HQ", 1, 7))
        desc.delta_rec_size = 10
    assert dsa.run(desc).status == 0  # success, no record asked for
    assert dsa.completes()[-1].after["status"] == 0x01
