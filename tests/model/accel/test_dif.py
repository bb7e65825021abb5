"""The DIF operations (0x12-0x15) against T10 protection information tuples built here.

Every expected tuple is computed in this file: the guard tag by a bit-at-a-time
CRC-16/T10-DIF (polynomial 0x8BB7, not reflected, pinned by the catalogued check value
0xD0DB of "123456789"), the tags and their byte order as T10 lays them out and
accel-config's ``init_dif_check`` writes them (guard, application tag, reference tag,
each big-endian), the block sizes by index as accel-config's ``dif_arr`` gives them.
"""

from __future__ import annotations

import struct

import pytest

from svasim.model import dsa_ops
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S
from svasim_api.idxd import DsaOpcode as Op
from svasim_api.idxd import OpFlag as F

from ..test_accel_ops import CR, PAGE, Dsa

BLOCK_SIZES = {0: 512, 1: 520, 2: 4096, 3: 4104}  # DIF flags bits 1:0
INVERT_SEED, INVERT_RESULT = 0x04, 0x08  # DIF flags bits 2 and 3 (accel-config dsa.h)
# Source DIF flags (byte 40) and destination DIF flags (byte 41), as DML's dmldefs.h
# numbers them in its flags word (source in bits 7:0, destination in bits 15:8).
SRC_F_ENABLE_ERROR, SRC_F_DETECT_ALL, SRC_F_DETECT_APP = 0x01, 0x02, 0x04
SRC_INC_APP, SRC_GUARD_OFF, SRC_REF_OFF, SRC_FIX_REF = 0x10, 0x20, 0x40, 0x80
DST_PASS_APP, DST_INC_APP, DST_PASS_GUARD, DST_PASS_REF, DST_FIX_REF = 0x08, 0x10, 0x20, 0x40, 0x80
# dif_status bits (DML's DML_DIF_CHECK_*).
GUARD_ERR, APP_ERR, REF_ERR, ALL_F_ERR = 0x01, 0x02, 0x04, 0x08


def crc16_t10dif(data: bytes, flags: int = 0) -> int:
    crc = 0xFFFF if flags & INVERT_SEED else 0
    for byte in data:
        crc ^= byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8BB7) & 0xFFFF if crc & 0x8000 else (crc << 1) & 0xFFFF
    return crc ^ 0xFFFF if flags & INVERT_RESULT else crc


def tuple_of(block: bytes, app: int, ref: int, flags: int = 0) -> bytes:
    return struct.pack(">HHI", crc16_t10dif(block, flags), app, ref)


def blocks(n: int, size: int = 512) -> list[bytes]:
    return [bytes((i * 7 + j) & 0xFF for j in range(size)) for i in range(n)]


def protected(data: list[bytes], app: int, ref: int, flags: int = 0, *, inc_app: bool = False) -> bytes:
    """Blocks each followed by its tuple; the reference tag counts up per block."""
    return b"".join(b + tuple_of(b, (app + i * inc_app) & 0xFFFF, ref + i, flags) for i, b in enumerate(data))


@pytest.fixture
def dsa() -> Dsa:
    return Dsa()


def _check(dsa: Dsa, src: int, size: int, *, flags: int = 0, src_flags: int = 0, app=0xFACE, ref=0xABBA, mask=0):
    desc = dsa.desc(Op.DIF_CHECK, src_addr=src, xfer_size=size)
    desc.dif_chk_flags, desc.src_dif_flags = flags, src_flags
    desc.chk_app_tag_seed, desc.chk_ref_tag_seed, desc.chk_app_tag_mask = app, ref, mask
    return dsa.run(desc)


def test_the_guard_is_crc16_t10dif_with_its_check_value():
    assert dsa_ops.crc16_t10dif(b"123456789") == 0xD0DB == crc16_t10dif(b"123456789")


@pytest.mark.parametrize("flags", [0, INVERT_SEED, INVERT_RESULT, INVERT_SEED | INVERT_RESULT])
def test_the_guard_seed_and_result_inversion_match_a_bitwise_crc(flags):
    data = bytes(range(256)) * 3 + b"tail"
    assert dsa_ops.crc16_t10dif(data, flags) == crc16_t10dif(data, flags)


@pytest.mark.parametrize("index", [0, 1, 2, 3])
def test_dif_check_passes_blocks_of_each_size_with_their_tuples(dsa, index):
    size = BLOCK_SIZES[index]
    data = protected(blocks(2, size), 0xFACE, 0xABBA)
    src = dsa.buf(3 * PAGE)
    dsa.put(src, data)
    rec = _check(dsa, src, len(data), flags=index)
    assert (rec.status, rec.dif_status, rec.bytes_completed) == (S.SUCCESS, 0, 0)
    # The tags the next block would carry.
    assert (rec.dif_chk_ref_tag, rec.dif_chk_app_tag) == (0xABBA + 2, 0xFACE)


@pytest.mark.parametrize(
    ("at", "byte", "status"),
    [(100, 0x55, GUARD_ERR), (512 + 2, 0x00, APP_ERR), (512 + 7, 0x00, REF_ERR)],
    ids=["data", "app-tag", "ref-tag"],
)
def test_dif_check_stops_at_the_first_bad_block_with_what_failed(dsa, at, byte, status):
    data = bytearray(protected(blocks(4), 0xFACE, 0xABBA))
    data[2 * 520 + at] = byte  # block 2 (520 bytes per block and tuple)
    src = dsa.buf(PAGE)
    dsa.put(src, bytes(data))
    rec = _check(dsa, src, len(data))
    assert (rec.status, rec.dif_status, rec.bytes_completed) == (0x09, status, 2 * 520)


def test_dif_check_disables_and_masks_leave_those_fields_unchecked(dsa):
    data = bytearray(protected(blocks(2), 0xFACE, 0xABBA))
    data[10] ^= 0xFF  # bad guard in block 0
    data[512 + 7] ^= 0x01  # bad reference tag in block 0
    data[512 + 3] ^= 0x0F  # application tag 0xFAC1 instead of 0xFACE
    src = dsa.buf(PAGE)
    dsa.put(src, bytes(data))
    assert _check(dsa, src, len(data)).dif_status == GUARD_ERR | APP_ERR | REF_ERR
    rec = _check(dsa, src, len(data), src_flags=SRC_GUARD_OFF | SRC_REF_OFF, mask=0x000F)
    assert (rec.status, rec.dif_status) == (S.SUCCESS, 0)


def test_dif_check_tag_counting_follows_the_source_flags(dsa):
    data = b"".join(b + tuple_of(b, 0x100 + i, 0x77) for i, b in enumerate(blocks(3)))
    src = dsa.buf(PAGE)
    dsa.put(src, data)
    assert _check(dsa, src, len(data), app=0x100, ref=0x77).dif_status == APP_ERR | REF_ERR
    rec = _check(dsa, src, len(data), app=0x100, ref=0x77, src_flags=SRC_INC_APP | SRC_FIX_REF)
    assert (rec.status, rec.dif_chk_app_tag, rec.dif_chk_ref_tag) == (S.SUCCESS, 0x103, 0x77)


def test_dif_check_f_detect(dsa):
    good = protected(blocks(1), 0xFACE, 0xABBA)
    exempt = blocks(1)[0] + struct.pack(">HHI", 0x1234, 0xFFFF, 5)  # app tag all F, wrong guard
    src = dsa.buf(PAGE)
    dsa.put(src, good + exempt)
    assert _check(dsa, src, 1040).status == 0x09
    assert _check(dsa, src, 1040, src_flags=SRC_F_DETECT_APP).status == S.SUCCESS
    dsa.put(src + 520 + 512, b"\xff" * 8)
    rec = _check(dsa, src, 1040, src_flags=SRC_F_DETECT_APP | SRC_F_DETECT_ALL | SRC_F_ENABLE_ERROR)
    assert (rec.status, rec.dif_status, rec.bytes_completed) == (0x09, ALL_F_ERR, 520)


def test_dif_insert_writes_each_block_and_its_tuple(dsa):
    data = blocks(3)
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"".join(data))
    desc = dsa.desc(Op.DIF_INS, src_addr=src, dst_addr=dst, xfer_size=3 * 512)
    desc.ins_app_tag_seed, desc.ins_ref_tag_seed = 0xFACE, 0xABBA
    rec = dsa.run(desc)
    assert rec.status == S.SUCCESS
    assert dsa.get(dst, 3 * 520) == protected(data, 0xFACE, 0xABBA)
    assert (rec.dif_ins_ref_tag, rec.dif_ins_app_tag) == (0xABBA + 3, 0xFACE)


def test_dif_insert_with_flags_mask_and_inverted_crc(dsa):
    data = blocks(2, 4096)
    src, dst = dsa.buf(2 * PAGE), dsa.buf(3 * PAGE)
    dsa.put(src, b"".join(data))
    desc = dsa.desc(Op.DIF_INS, src_addr=src, dst_addr=dst, xfer_size=2 * 4096)
    desc.dif_ins_flags = 2 | INVERT_SEED | INVERT_RESULT  # 4096-byte blocks
    desc.dest_dif_flag = DST_INC_APP | DST_FIX_REF
    desc.ins_app_tag_seed, desc.ins_ref_tag_seed, desc.ins_app_tag_mask = 0x12FF, 9, 0x00F0
    assert dsa.run(desc).status == S.SUCCESS
    flags = INVERT_SEED | INVERT_RESULT
    want = b"".join(b + tuple_of(b, (0x12FF + i) & ~0x00F0, 9, flags) for i, b in enumerate(data))
    assert dsa.get(dst, 2 * 4104) == want


def test_dif_strip_checks_and_copies_the_bare_blocks(dsa):
    data = blocks(3)
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, protected(data, 0xFACE, 0xABBA))
    desc = dsa.desc(Op.DIF_STRP, src_addr=src, dst_addr=dst, xfer_size=3 * 520)
    desc.chk_app_tag_seed, desc.chk_ref_tag_seed = 0xFACE, 0xABBA
    assert dsa.run(desc).status == S.SUCCESS
    assert dsa.get(dst, 3 * 512 + 8) == b"".join(data) + bytes(8)


def test_dif_update_checks_the_source_and_writes_new_tags(dsa):
    data = blocks(2)
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, protected(data, 0xFACE, 0xABBA))
    desc = dsa.desc(Op.DIF_UPDT, src_addr=src, dst_addr=dst, xfer_size=2 * 520)
    desc.src_app_tag_seed, desc.src_ref_tag_seed = 0xFACE, 0xABBA
    desc.dest_app_tag_seed, desc.dest_ref_tag_seed = 0xBEEF, 1000
    rec = dsa.run(desc)
    assert rec.status == S.SUCCESS
    assert dsa.get(dst, 2 * 520) == protected(data, 0xBEEF, 1000)
    assert (rec.dif_upd_src_ref_tag, rec.dif_upd_dest_ref_tag, rec.dif_upd_dest_app_tag) == (0xABBC, 1002, 0xBEEF)


def test_dif_update_pass_flags_copy_the_source_fields(dsa):
    data = blocks(2)
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, protected(data, 0xFACE, 0xABBA))
    desc = dsa.desc(Op.DIF_UPDT, src_addr=src, dst_addr=dst, xfer_size=2 * 520)
    desc.src_app_tag_seed, desc.src_ref_tag_seed = 0xFACE, 0xABBA
    desc.upd_dest_flags = DST_PASS_REF | DST_PASS_APP
    desc.dest_app_tag_seed, desc.dest_ref_tag_seed = 0xBEEF, 1000
    assert dsa.run(desc).status == S.SUCCESS
    assert dsa.get(dst, 2 * 520) == protected(data, 0xFACE, 0xABBA)


def test_dif_update_of_a_bad_source_is_dif_err_and_writes_nothing_from_that_block(dsa):
    data = bytearray(protected(blocks(2), 0xFACE, 0xABBA))
    data[0] ^= 1
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, bytes(data))
    desc = dsa.desc(Op.DIF_UPDT, src_addr=src, dst_addr=dst, xfer_size=2 * 520)
    desc.src_app_tag_seed, desc.src_ref_tag_seed = 0xFACE, 0xABBA
    rec = dsa.run(desc)
    assert (rec.status, rec.dif_status, rec.bytes_completed) == (0x09, GUARD_ERR, 0)
    assert dsa.get(dst, 2 * 520) == bytes(2 * 520)


def test_dif_insert_page_fault_completes_the_whole_blocks_that_fit(dsa):
    data = blocks(8)
    src, dst = dsa.buf(PAGE), dsa.buf(2 * PAGE, populate=False)
    dsa.put(src, b"".join(data))
    dsa.put(dst, b"\x00")  # only the first destination page is present
    desc = dsa.desc(Op.DIF_INS, src_addr=src, dst_addr=dst, xfer_size=8 * 512)
    desc.ins_app_tag_seed, desc.ins_ref_tag_seed = 1, 1
    rec = dsa.run(desc)
    # 7 blocks and tuples (3640 bytes) fit in the page; the 8th would end at 4160.
    assert (rec.status_byte, rec.bytes_completed, rec.fault_addr) == (0x83, 7 * 512, dst + PAGE)
    assert dsa.get(dst, 7 * 520) == protected(data[:7], 1, 1)
    assert rec.dif_ins_ref_tag == 8  # where a resubmission of the rest starts


def test_dif_insert_with_block_on_fault_pages_in_and_completes(dsa):
    data = blocks(8)
    src, dst = dsa.buf(PAGE), dsa.buf(2 * PAGE, populate=False)
    dsa.put(src, b"".join(data))
    desc = dsa.desc(Op.DIF_INS, flags=CR | F.BOF, src_addr=src, dst_addr=dst, xfer_size=8 * 512)
    assert dsa.run(desc).status == S.SUCCESS
    assert dsa.get(dst, 8 * 520) == protected(data, 0, 0)
    assert len(dsa.completes("prq.request")) == 2


@pytest.mark.parametrize(
    ("opcode", "size", "status"),
    [
        (Op.DIF_CHECK, 520 + 8, S.XFER_ERANGE),  # not whole blocks and tuples
        (Op.DIF_INS, 520, S.XFER_ERANGE),  # not whole 512-byte blocks
        (Op.DIF_STRP, 520, S.SUCCESS),
    ],
)
def test_dif_transfer_size_must_be_whole_blocks(dsa, opcode, size, status):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, protected(blocks(1), 0, 0) + bytes(16))
    assert dsa.run(dsa.desc(opcode, src_addr=src, dst_addr=dst, xfer_size=size)).status == status


def test_dif_insert_into_its_own_source_is_overlap_buffers(dsa):
    buf = dsa.buf(PAGE)
    assert dsa.run(dsa.desc(Op.DIF_INS, src_addr=buf, dst_addr=buf + 256, xfer_size=512)).status == S.OVERLAP_BUFFERS


def test_dif_reserved_flag_bits_are_nozero_reserve(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    desc = dsa.desc(Op.DIF_INS, src_addr=src, dst_addr=dst, xfer_size=512)
    desc.dest_dif_flag = 0x01
    assert dsa.run(desc).status == S.NOZERO_RESERVE
    desc = dsa.desc(Op.DIF_CHECK, src_addr=src, xfer_size=520)
    desc.op_specific = bytes([0, 0x01]) + bytes(22)  # byte 41 is reserved in DIF Check
    assert dsa.run(desc).status == S.NOZERO_RESERVE


def test_dif_check_needs_a_completion_record(dsa):
    # Table 5-5: the DIF check requires CRAV and RCR.
    src = dsa.buf(PAGE)
    rec = dsa.run(dsa.desc(Op.DIF_CHECK, flags=int(F.CRAV), src_addr=src, xfer_size=520))
    assert (rec.status, rec.invalid_flags) == (S.INVALID_FLAGS, 0x0008)


def test_the_dif_record_round_trips_through_the_uapi_layout(dsa):
    data = protected(blocks(1), 0x0102, 0x03040506)
    src = dsa.buf(PAGE)
    dsa.put(src, data)
    rec = _check(dsa, src, 520, app=0x0102, ref=0x03040506, mask=0x0F00)
    raw = idxd.pack_comp(rec)
    # dif_chk_ref_tag u32 at 16, dif_chk_app_tag_mask u16 at 20, dif_chk_app_tag u16 at 22.
    assert raw[16:24] == struct.pack("<IHH", 0x03040507, 0x0F00, 0x0102)
