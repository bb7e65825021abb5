"""Byte layouts of struct dsa_hw_desc and struct dsa_completion_record (svasim_api.idxd).

Expected values come from include/uapi/linux/idxd.h (v6.x). Besides hand-written byte
patterns, an independent ctypes twin of the C structs (bitfields laid out by ctypes
the way GCC does on x86-64) serves as an oracle for random field values.
"""

from __future__ import annotations

import ctypes
import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from svasim_api import idxd
from svasim_api.idxd import (
    DSA_COMP_ALIGN,
    DSA_COMP_SIZE,
    DSA_COMP_STATUS_MASK,
    DSA_COMP_STATUS_WRITE,
    DSA_DESC_SIZE,
    IAX_ONLY_OP_FLAGS,
    DsaCompletionRecord,
    DsaCompStatus,
    DsaHwDesc,
    DsaOpcode,
    OpFlag,
    dsa_comp_status,
    pack_comp,
    pack_desc,
    unpack_comp,
    unpack_desc,
)

# --------------------------------------------------------------------------------------
# ctypes twins of the C structs (oracle)
# --------------------------------------------------------------------------------------


class _CDsaHwDesc(ctypes.LittleEndianStructure):
    _fields_ = [
        ("pasid", ctypes.c_uint32, 20),
        ("rsvd", ctypes.c_uint32, 11),
        ("priv", ctypes.c_uint32, 1),
        ("flags", ctypes.c_uint32, 24),
        ("opcode", ctypes.c_uint32, 8),
        ("completion_addr", ctypes.c_uint64),
        ("src_addr", ctypes.c_uint64),
        ("dst_addr", ctypes.c_uint64),
        ("xfer_size", ctypes.c_uint32),
        ("int_handle", ctypes.c_uint16),
        ("rsvd1", ctypes.c_uint16),
        ("op_specific", ctypes.c_uint8 * 24),
    ]


class _CDsaCompletionRecord(ctypes.LittleEndianStructure):
    _fields_ = [
        ("status", ctypes.c_uint8),
        ("result", ctypes.c_uint8),
        ("fault_info", ctypes.c_uint8),
        ("rsvd", ctypes.c_uint8),
        ("bytes_completed", ctypes.c_uint32),
        ("fault_addr", ctypes.c_uint64),
        ("op_specific", ctypes.c_uint8 * 16),
    ]


def _u(bits: int) -> st.SearchStrategy[int]:
    return st.integers(min_value=0, max_value=(1 << bits) - 1)


descs = st.builds(
    DsaHwDesc,
    pasid=_u(20),
    rsvd=_u(11),
    priv=st.booleans(),
    flags=_u(24),
    opcode=_u(8),
    completion_addr=_u(64),
    src_addr=_u(64),
    dst_addr=_u(64),
    xfer_size=_u(32),
    int_handle=_u(16),
    rsvd1=_u(16),
    op_specific=st.binary(min_size=24, max_size=24),
)

comps = st.builds(
    DsaCompletionRecord,
    status=_u(7),
    status_write=st.booleans(),
    result=_u(8),
    fault_info=_u(8),
    rsvd=_u(8),
    bytes_completed=_u(32),
    fault_addr=_u(64),
    op_specific=st.binary(min_size=16, max_size=16),
)


def _only(offset: int, payload: bytes, size: int = DSA_DESC_SIZE) -> bytes:
    """``size`` zero bytes with ``payload`` at ``offset``."""
    buf = bytearray(size)
    buf[offset : offset + len(payload)] = payload
    return bytes(buf)


# --------------------------------------------------------------------------------------
# Constants
# --------------------------------------------------------------------------------------


def test_sizes_and_status_masks_match_the_header() -> None:
    assert DSA_DESC_SIZE == 64 == ctypes.sizeof(_CDsaHwDesc)
    assert DSA_COMP_SIZE == 32 == ctypes.sizeof(_CDsaCompletionRecord)
    assert DSA_COMP_ALIGN == 32
    assert DSA_COMP_STATUS_MASK == 0x7F
    assert DSA_COMP_STATUS_WRITE == 0x80


def test_opcode_values_match_enum_dsa_opcode() -> None:
    expected = {
        "NOOP": 0x00,
        "BATCH": 0x01,
        "DRAIN": 0x02,
        "MEMMOVE": 0x03,
        "MEMFILL": 0x04,
        "COMPARE": 0x05,
        "COMPVAL": 0x06,
        "CR_DELTA": 0x07,
        "AP_DELTA": 0x08,
        "DUALCAST": 0x09,
        "TRANSL_FETCH": 0x0A,
        "CRCGEN": 0x10,
        "COPY_CRC": 0x11,
        "DIF_CHECK": 0x12,
        "DIF_INS": 0x13,
        "DIF_STRP": 0x14,
        "DIF_UPDT": 0x15,
        "DIX_GEN": 0x17,
        "CFLUSH": 0x20,
    }
    assert {m.name: m.value for m in DsaOpcode} == expected
    for name, value in expected.items():
        assert getattr(idxd, f"DSA_OPCODE_{name}") == value


def test_flag_values_match_idxd_op_flag_defines() -> None:
    expected = {
        "FENCE": 0x0001,
        "BOF": 0x0002,
        "CRAV": 0x0004,
        "RCR": 0x0008,
        "RCI": 0x0010,
        "CRSTS": 0x0020,
        "CR": 0x0080,
        "CC": 0x0100,
        "ADDR1_TCS": 0x0200,
        "ADDR2_TCS": 0x0400,
        "ADDR3_TCS": 0x0800,
        "CR_TCS": 0x1000,
        "STORD": 0x2000,
        "DRDBK": 0x4000,
        "DSTS": 0x8000,
        "RD_SRC2_AECS": 0x010000,
        "RD_SRC2_2ND": 0x020000,
        "WR_SRC2_AECS_COMP": 0x040000,
        "WR_SRC2_AECS_OVFL": 0x080000,
        "SRC2_STS": 0x100000,
        "CRC_RFC3720": 0x200000,
    }
    assert {m.name: m.value for m in OpFlag} == expected
    for name, value in expected.items():
        assert getattr(idxd, f"IDXD_OP_FLAG_{name}") == value


def test_iax_only_flags_are_bits_16_to_21_and_bit_6_is_undefined() -> None:
    assert IAX_ONLY_OP_FLAGS == 0x3F0000
    assert all(m.value & 0x40 == 0 for m in OpFlag)


def test_completion_status_values_match_enum_dsa_completion_status() -> None:
    expected = {
        "NONE": 0,
        "SUCCESS": 1,
        "SUCCESS_PRED": 2,
        "PAGE_FAULT_NOBOF": 3,
        "PAGE_FAULT_IR": 4,
        "BATCH_FAIL": 5,
        "BATCH_PAGE_FAULT": 6,
        "DR_OFFSET_NOINC": 7,
        "DR_OFFSET_ERANGE": 8,
        "DIF_ERR": 9,
        "BAD_OPCODE": 0x10,
        "INVALID_FLAGS": 0x11,
        "NOZERO_RESERVE": 0x12,
        "XFER_ERANGE": 0x13,
        "DESC_CNT_ERANGE": 0x14,
        "DR_ERANGE": 0x15,
        "OVERLAP_BUFFERS": 0x16,
        "DCAST_ERR": 0x17,
        "DESCLIST_ALIGN": 0x18,
        "INT_HANDLE_INVAL": 0x19,
        "CRA_XLAT": 0x1A,
        "CRA_ALIGN": 0x1B,
        "ADDR_ALIGN": 0x1C,
        "PRIV_BAD": 0x1D,
        "TRAFFIC_CLASS_CONF": 0x1E,
        "PFAULT_RDBA": 0x1F,
        "HW_ERR1": 0x20,
        "HW_ERR_DRB": 0x21,
        "TRANSLATION_FAIL": 0x22,
        "DRAIN_EVL": 0x26,
        "BATCH_EVL_ERR": 0x27,
    }
    assert {m.name: m.value for m in DsaCompStatus} == expected
    for name, value in expected.items():
        assert getattr(idxd, f"DSA_COMP_{name}") == value


def test_dsa_comp_status_strips_the_write_bit() -> None:
    assert dsa_comp_status(0x83) == DsaCompStatus.PAGE_FAULT_NOBOF
    assert dsa_comp_status(0x01) == DsaCompStatus.SUCCESS


# --------------------------------------------------------------------------------------
# Descriptor: fields at their offsets
# --------------------------------------------------------------------------------------


def test_default_descriptor_packs_to_64_zero_bytes() -> None:
    assert pack_desc(DsaHwDesc()) == bytes(64)


def test_pasid_is_bits_19_to_0_of_dword_0() -> None:
    assert pack_desc(DsaHwDesc(pasid=0xABCDE)) == _only(0, bytes([0xDE, 0xBC, 0x0A]))


def test_rsvd_is_bits_30_to_20_of_dword_0() -> None:
    assert pack_desc(DsaHwDesc(rsvd=0x7FF)) == _only(0, struct.pack("<I", 0x7FF << 20))


def test_priv_is_bit_31_of_dword_0() -> None:
    assert pack_desc(DsaHwDesc(priv=True)) == _only(3, b"\x80")


def test_flags_land_in_bytes_4_to_6() -> None:
    assert pack_desc(DsaHwDesc(flags=0xABCDEF)) == _only(4, bytes([0xEF, 0xCD, 0xAB]))


def test_opcode_memmove_lands_in_byte_7() -> None:
    assert pack_desc(DsaHwDesc(opcode=DsaOpcode.MEMMOVE)) == _only(7, b"\x03")


@pytest.mark.parametrize(
    ("field", "offset", "fmt"),
    [
        ("completion_addr", 8, "<Q"),
        ("src_addr", 16, "<Q"),
        ("dst_addr", 24, "<Q"),
        ("xfer_size", 32, "<I"),
        ("int_handle", 36, "<H"),
        ("rsvd1", 38, "<H"),
    ],
)
def test_whole_unit_field_lands_at_its_offset(field: str, offset: int, fmt: str) -> None:
    value = (1 << (8 * struct.calcsize(fmt))) - 0x1234  # every byte distinct from zero
    assert pack_desc(DsaHwDesc(**{field: value})) == _only(offset, struct.pack(fmt, value))


def test_op_specific_is_bytes_40_to_63() -> None:
    tail = bytes(range(1, 25))
    assert pack_desc(DsaHwDesc(op_specific=tail)) == _only(40, tail)


def test_known_memmove_descriptor_bytes() -> None:
    d = DsaHwDesc(
        pasid=0x12345,
        flags=OpFlag.CRAV | OpFlag.RCR | OpFlag.CC,
        opcode=DsaOpcode.MEMMOVE,
        completion_addr=0x7F00_0000_1000,
        src_addr=0x7F00_0000_2000,
        dst_addr=0x7F00_0000_3000,
        xfer_size=0x1000,
    )
    expected = bytes.fromhex(
        "45230100"  # pasid 0x12345, rsvd 0, priv 0
        "0c010003"  # flags 0x10c, opcode 0x03
        "00100000007f0000"
        "00200000007f0000"
        "00300000007f0000"
        "00100000"  # xfer_size
        "0000"  # int_handle
        "0000"  # rsvd1
    ) + bytes(24)
    assert pack_desc(d) == expected
    assert unpack_desc(expected) == d


# --------------------------------------------------------------------------------------
# Descriptor: op_specific union members and aliases
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("field", "offset", "fmt"),
    [
        ("expected_res", 40, "<B"),
        ("delta_addr", 40, "<Q"),
        ("max_delta_size", 48, "<I"),
        ("expected_res_mask", 56, "<B"),
        ("delta_rec_size", 40, "<I"),
        ("dest2", 40, "<Q"),
        ("crc_seed", 40, "<I"),
        ("seed_addr", 48, "<Q"),
        ("pattern_upper", 40, "<Q"),
        ("region_stride", 48, "<I"),
    ],
)
def test_op_specific_member_reads_and_writes_its_bytes(field: str, offset: int, fmt: str) -> None:
    value = (1 << (8 * struct.calcsize(fmt))) - 2
    d = DsaHwDesc()
    setattr(d, field, value)
    assert getattr(d, field) == value
    assert pack_desc(d) == _only(offset, struct.pack(fmt, value))


def test_crc_seed_at_40_and_seed_addr_at_48_leave_crc_rsvd_alone() -> None:
    d = DsaHwDesc(opcode=DsaOpcode.CRCGEN, op_specific=bytes([0xEE]) * 24)
    d.crc_seed = 0x11223344
    d.seed_addr = 0x5566778899AABBCC
    raw = pack_desc(d)
    assert raw[40:44] == bytes.fromhex("44332211")
    assert raw[44:48] == b"\xee" * 4  # crc_rsvd untouched
    assert raw[48:56] == bytes.fromhex("ccbbaa9988776655")
    assert raw[56:64] == b"\xee" * 8


def test_op_specific_members_decode_existing_bytes() -> None:
    d = unpack_desc(bytes(40) + bytes(range(0x40, 0x58)))
    assert d.expected_res == 0x40
    assert d.crc_seed == 0x43424140
    assert d.seed_addr == 0x4F4E4D4C4B4A4948
    assert d.expected_res_mask == 0x50


def test_op_specific_setter_rejects_out_of_range_and_keeps_bytes() -> None:
    d = DsaHwDesc()
    with pytest.raises(ValueError, match="expected_res"):
        d.expected_res = 0x100
    with pytest.raises(ValueError, match="crc_seed"):
        d.crc_seed = -1
    assert d.op_specific == bytes(24)


def test_union_aliases_read_the_shared_field() -> None:
    d = DsaHwDesc(src_addr=0x1000, dst_addr=0x2000, xfer_size=7)
    assert d.pattern == d.desc_list_addr == d.rdback_addr == 0x1000
    assert d.pattern_lower == d.transl_fetch_addr == 0x1000
    assert d.src2_addr == d.comp_pattern == d.rdback_addr2 == 0x2000
    assert d.desc_count == d.region_size == 7


def test_union_aliases_are_read_only() -> None:
    d = DsaHwDesc()
    with pytest.raises(AttributeError):
        d.pattern = 1  # type: ignore[misc]


# --------------------------------------------------------------------------------------
# Descriptor: round trips and the ctypes oracle
# --------------------------------------------------------------------------------------


@given(st.binary(min_size=64, max_size=64))
def test_any_64_bytes_unpack_then_pack_unchanged(raw: bytes) -> None:
    assert pack_desc(unpack_desc(raw)) == raw


@given(descs)
def test_any_valid_descriptor_pack_then_unpack_unchanged(d: DsaHwDesc) -> None:
    assert unpack_desc(pack_desc(d)) == d


@given(descs)
def test_descriptor_bytes_match_the_c_struct_layout(d: DsaHwDesc) -> None:
    c = _CDsaHwDesc()
    for name in (
        "pasid",
        "rsvd",
        "priv",
        "flags",
        "opcode",
        "completion_addr",
        "src_addr",
        "dst_addr",
        "xfer_size",
        "int_handle",
        "rsvd1",
    ):
        setattr(c, name, int(getattr(d, name)))
    c.op_specific[:] = list(d.op_specific)
    assert pack_desc(d) == bytes(c)


def test_unpack_desc_accepts_bytearray_and_memoryview() -> None:
    raw = bytes(range(64))
    assert unpack_desc(bytearray(raw)) == unpack_desc(memoryview(raw)) == unpack_desc(raw)


# --------------------------------------------------------------------------------------
# Descriptor: errors
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 32, 63, 65, 128])
def test_unpack_desc_rejects_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match=f"64 bytes, got {size}"):
        unpack_desc(bytes(size))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("pasid", 1 << 20),
        ("rsvd", 1 << 11),
        ("priv", 2),
        ("flags", 1 << 24),
        ("opcode", 0x100),
        ("completion_addr", 1 << 64),
        ("src_addr", 1 << 64),
        ("dst_addr", 1 << 64),
        ("xfer_size", 1 << 32),
        ("int_handle", 1 << 16),
        ("rsvd1", 1 << 16),
        ("pasid", -1),
        ("xfer_size", -1),
    ],
)
def test_pack_desc_rejects_out_of_range_field_by_name(field: str, value: int) -> None:
    d = DsaHwDesc(**{field: value})
    with pytest.raises(ValueError, match=rf"^{field}: "):
        pack_desc(d)
    with pytest.raises(ValueError, match=rf"^{field}: "):
        d.validate()


@pytest.mark.parametrize("size", [0, 23, 25])
def test_pack_desc_rejects_op_specific_of_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match="op_specific"):
        pack_desc(DsaHwDesc(op_specific=bytes(size)))


def test_pack_desc_rejects_non_integer_field() -> None:
    with pytest.raises(TypeError, match="xfer_size"):
        pack_desc(DsaHwDesc(xfer_size=1.0))  # type: ignore[arg-type]


# --------------------------------------------------------------------------------------
# Completion record
# --------------------------------------------------------------------------------------


def test_default_completion_record_packs_to_32_zero_bytes() -> None:
    assert pack_comp(DsaCompletionRecord()) == bytes(32)


def test_status_write_is_bit_7_of_byte_0() -> None:
    c = DsaCompletionRecord(status=DsaCompStatus.PAGE_FAULT_NOBOF, status_write=True)
    assert pack_comp(c) == _only(0, b"\x83", DSA_COMP_SIZE)
    assert c.status_byte == 0x83
    back = unpack_comp(_only(0, b"\x83", DSA_COMP_SIZE))
    assert back.status == DsaCompStatus.PAGE_FAULT_NOBOF
    assert back.status_write is True


@pytest.mark.parametrize(
    ("field", "offset", "fmt"),
    [
        ("result", 1, "<B"),
        ("fault_info", 2, "<B"),
        ("rsvd", 3, "<B"),
        ("bytes_completed", 4, "<I"),
        ("fault_addr", 8, "<Q"),
    ],
)
def test_completion_field_lands_at_its_offset(field: str, offset: int, fmt: str) -> None:
    value = (1 << (8 * struct.calcsize(fmt))) - 3
    c = DsaCompletionRecord(**{field: value})
    assert pack_comp(c) == _only(offset, struct.pack(fmt, value), DSA_COMP_SIZE)


def test_invalid_flags_is_24_bits_at_16_and_keeps_rsvd2() -> None:
    c = DsaCompletionRecord(op_specific=b"\x00\x00\x00\xaa" + bytes(12))
    c.invalid_flags = 0xABCDEF
    raw = pack_comp(c)
    assert raw[16:20] == bytes([0xEF, 0xCD, 0xAB, 0xAA])
    assert c.invalid_flags == 0xABCDEF
    with pytest.raises(ValueError, match="invalid_flags"):
        c.invalid_flags = 1 << 24


def test_delta_rec_size_is_u32_at_16_and_crc_val_is_u64_at_16() -> None:
    c = DsaCompletionRecord()
    c.crc_val = 0x1122334455667788
    assert pack_comp(c)[16:24] == bytes.fromhex("8877665544332211")
    assert c.delta_rec_size == 0x55667788
    c.delta_rec_size = 0xFFFFFFFF
    assert c.crc_val == 0x11223344FFFFFFFF


def test_completion_aliases_read_the_shared_field() -> None:
    c = DsaCompletionRecord(result=4, bytes_completed=9)
    assert c.dif_status == 4
    assert c.descs_completed == 9


@given(st.binary(min_size=32, max_size=32))
def test_any_32_bytes_unpack_then_pack_unchanged(raw: bytes) -> None:
    assert pack_comp(unpack_comp(raw)) == raw


@given(comps)
def test_any_valid_completion_record_pack_then_unpack_unchanged(
    c: DsaCompletionRecord,
) -> None:
    assert unpack_comp(pack_comp(c)) == c


@given(comps)
def test_completion_bytes_match_the_c_struct_layout(c: DsaCompletionRecord) -> None:
    oracle = _CDsaCompletionRecord(
        status=c.status_byte,
        result=c.result,
        fault_info=c.fault_info,
        rsvd=c.rsvd,
        bytes_completed=c.bytes_completed,
        fault_addr=c.fault_addr,
    )
    oracle.op_specific[:] = list(c.op_specific)
    assert pack_comp(c) == bytes(oracle)


@pytest.mark.parametrize("size", [0, 31, 33, 64])
def test_unpack_comp_rejects_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match=f"32 bytes, got {size}"):
        unpack_comp(bytes(size))


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("status", 0x80),
        ("status_write", 2),
        ("result", 0x100),
        ("fault_info", 0x100),
        ("rsvd", 0x100),
        ("bytes_completed", 1 << 32),
        ("fault_addr", 1 << 64),
        ("fault_addr", -1),
    ],
)
def test_pack_comp_rejects_out_of_range_field_by_name(field: str, value: int) -> None:
    c = DsaCompletionRecord(**{field: value})
    with pytest.raises(ValueError, match=rf"^{field}: "):
        pack_comp(c)


@pytest.mark.parametrize("size", [0, 15, 17, 24])
def test_pack_comp_rejects_op_specific_of_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match="op_specific"):
        pack_comp(DsaCompletionRecord(op_specific=bytes(size)))
