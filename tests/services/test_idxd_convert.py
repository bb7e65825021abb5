"""Conversion between the DSA layout dataclasses and protobuf (svasim.rpc.idxd_convert)."""

from __future__ import annotations

import struct

import pytest
from google.protobuf.message import Message
from hypothesis import given
from hypothesis import strategies as st

from svasim.rpc.idxd_convert import (
    comp_bytes_from_proto,
    comp_from_proto,
    comp_proto_from_bytes,
    comp_to_proto,
    desc_bytes_from_proto,
    desc_from_proto,
    desc_proto_from_bytes,
    desc_to_proto,
)
from svasim_api.common.v1 import idxd_pb2
from svasim_api.idxd import (
    DsaCompletionRecord,
    DsaCompStatus,
    DsaHwDesc,
    DsaOpcode,
    OpFlag,
    pack_comp,
    pack_desc,
    unpack_desc,
)


def _desc_with_tail(opcode: int, **op_fields: int) -> DsaHwDesc:
    d = DsaHwDesc(opcode=opcode)
    for name, value in op_fields.items():
        setattr(d, name, value)
    return d


# --------------------------------------------------------------------------------------
# Enums agree with the proto
# --------------------------------------------------------------------------------------


def test_model_opcodes_match_proto_enum() -> None:
    proto = {
        name.removeprefix("DSA_OPCODE_").removesuffix("_UNSPECIFIED"): value
        for name, value in idxd_pb2.DsaOpcode.items()
    }
    assert proto == {m.name: m.value for m in DsaOpcode}


def test_model_statuses_match_proto_enum() -> None:
    proto = {
        name.removeprefix("DSA_COMPLETION_STATUS_").removesuffix("_UNSPECIFIED"): value
        for name, value in idxd_pb2.DsaCompletionStatus.items()
    }
    assert proto == {m.name: m.value for m in DsaCompStatus}


# --------------------------------------------------------------------------------------
# Descriptor -> proto
# --------------------------------------------------------------------------------------


def test_desc_to_proto_copies_every_field_and_op_specific() -> None:
    d = DsaHwDesc(
        pasid=0xFFFFF,
        rsvd=0x7FF,
        priv=True,
        flags=OpFlag.CRAV | OpFlag.RCR,
        opcode=DsaOpcode.MEMMOVE,
        completion_addr=1 << 63,
        src_addr=0x1000,
        dst_addr=0x2000,
        xfer_size=0xFFFFFFFF,
        int_handle=0xFFFF,
        rsvd1=0xFFFF,
        op_specific=bytes(range(24)),
    )
    m = desc_to_proto(d)
    assert (m.pasid, m.rsvd, m.priv, m.flags, m.opcode) == (0xFFFFF, 0x7FF, True, 0x0C, 3)
    assert (m.completion_addr, m.src_addr, m.dst_addr) == (1 << 63, 0x1000, 0x2000)
    assert (m.xfer_size, m.int_handle, m.rsvd1) == (0xFFFFFFFF, 0xFFFF, 0xFFFF)
    assert m.op_specific == bytes(range(24))
    assert m.WhichOneof("op_fields") is None  # MEMMOVE has no typed view


def test_desc_to_proto_fills_op_specific_even_when_all_zero() -> None:
    assert desc_to_proto(DsaHwDesc()).op_specific == bytes(24)


@pytest.mark.parametrize(
    ("opcode", "fields", "view", "expected"),
    [
        (DsaOpcode.MEMFILL, {"pattern_upper": 2**64 - 1}, "memfill", {"pattern_upper": 2**64 - 1}),
        (DsaOpcode.COMPARE, {"expected_res": 1}, "check", {"expected_res": 1}),
        (DsaOpcode.COMPVAL, {"expected_res": 0xFF}, "check", {"expected_res": 0xFF}),
        (
            DsaOpcode.CR_DELTA,
            {"delta_addr": 0xAB000, "max_delta_size": 0x800, "expected_res_mask": 3},
            "delta",
            {"delta_addr": 0xAB000, "max_delta_size": 0x800, "expected_res_mask": 3},
        ),
        (DsaOpcode.DUALCAST, {"dest2": 0x5000}, "dualcast", {"dest2": 0x5000}),
        (
            DsaOpcode.CRCGEN,
            {"crc_seed": 0xFFFFFFFF, "seed_addr": 0x9000},
            "crc",
            {"crc_seed": 0xFFFFFFFF, "seed_addr": 0x9000},
        ),
        (DsaOpcode.COPY_CRC, {"crc_seed": 7}, "crc", {"crc_seed": 7, "seed_addr": 0}),
    ],
)
def test_desc_to_proto_sets_the_typed_view_of_the_opcode(
    opcode: int, fields: dict[str, int], view: str, expected: dict[str, int]
) -> None:
    m = desc_to_proto(_desc_with_tail(opcode, **fields))
    assert m.WhichOneof("op_fields") == view
    sub = getattr(m, view)
    assert {name: getattr(sub, name) for name in expected} == expected


def test_desc_to_proto_sets_an_empty_view_for_all_zero_op_specific() -> None:
    m = desc_to_proto(DsaHwDesc(opcode=DsaOpcode.CRCGEN))
    assert m.WhichOneof("op_fields") == "crc"
    assert (m.crc.crc_seed, m.crc.seed_addr) == (0, 0)


@pytest.mark.parametrize(
    ("opcode", "index"),
    [
        (DsaOpcode.MEMFILL, 8),  # beyond pattern_upper
        (DsaOpcode.COMPARE, 1),  # beyond expected_res
        (DsaOpcode.CR_DELTA, 12),  # delt_rsvd (byte 52)
        (DsaOpcode.CR_DELTA, 17),  # after expected_res_mask
        (DsaOpcode.DUALCAST, 23),
        (DsaOpcode.CRCGEN, 4),  # crc_rsvd (byte 44)
        (DsaOpcode.COPY_CRC, 16),  # after seed_addr
    ],
)
def test_desc_to_proto_omits_the_view_when_uncovered_bytes_are_set(opcode: int, index: int) -> None:
    tail = bytearray(24)
    tail[index] = 0x5A
    m = desc_to_proto(DsaHwDesc(opcode=opcode, op_specific=bytes(tail)))
    assert m.WhichOneof("op_fields") is None
    assert m.op_specific == bytes(tail)


def test_ap_delta_rec_size_at_byte_40_shows_as_low_bits_of_delta_addr() -> None:
    d = _desc_with_tail(DsaOpcode.AP_DELTA, delta_rec_size=0x1234)
    m = desc_to_proto(d)
    assert m.WhichOneof("op_fields") == "delta"
    assert m.delta.delta_addr == 0x1234
    assert m.delta.max_delta_size == 0


def test_desc_to_proto_rejects_out_of_range_dataclass() -> None:
    with pytest.raises(ValueError, match="^opcode: "):
        desc_to_proto(DsaHwDesc(opcode=0x100))


# --------------------------------------------------------------------------------------
# Proto -> descriptor
# --------------------------------------------------------------------------------------


def test_desc_from_empty_proto_is_all_zero() -> None:
    assert desc_bytes_from_proto(idxd_pb2.DsaDescriptor()) == bytes(64)


def test_desc_from_proto_prefers_op_specific_over_the_view() -> None:
    m = idxd_pb2.DsaDescriptor(
        opcode=DsaOpcode.CRCGEN,
        op_specific=bytes(range(24)),
        crc=idxd_pb2.CrcFields(crc_seed=0xFFFFFFFF, seed_addr=1),
    )
    assert desc_from_proto(m).op_specific == bytes(range(24))


def test_desc_from_proto_builds_crc_seed_at_40_and_seed_addr_at_48_from_view() -> None:
    m = idxd_pb2.DsaDescriptor(
        opcode=DsaOpcode.CRCGEN,
        crc=idxd_pb2.CrcFields(crc_seed=0xAABBCCDD, seed_addr=0x1122334455667788),
    )
    raw = desc_bytes_from_proto(m)
    assert raw[7] == 0x10
    assert raw[40:44] == struct.pack("<I", 0xAABBCCDD)
    assert raw[44:48] == bytes(4)
    assert raw[48:56] == struct.pack("<Q", 0x1122334455667788)
    assert raw[56:] == bytes(8)


@pytest.mark.parametrize(
    ("view", "message", "offsets"),
    [
        ("memfill", idxd_pb2.MemfillFields(pattern_upper=2**64 - 1), {40: "<Q"}),
        ("check", idxd_pb2.CheckFields(expected_res=0xFF), {40: "<B"}),
        (
            "delta",
            idxd_pb2.DeltaFields(delta_addr=2**64 - 1, max_delta_size=2**32 - 1, expected_res_mask=1),
            {40: "<Q", 48: "<I", 56: "<B"},
        ),
        ("dualcast", idxd_pb2.DualcastFields(dest2=0x123456789), {40: "<Q"}),
    ],
)
def test_desc_from_proto_writes_each_view_field_at_its_offset(
    view: str, message: Message, offsets: dict[int, str]
) -> None:
    m = idxd_pb2.DsaDescriptor(**{view: message})
    raw = desc_bytes_from_proto(m)
    expected = bytearray(64)
    for (offset, fmt), field in zip(offsets.items(), message.DESCRIPTOR.fields, strict=True):
        struct.pack_into(fmt, expected, offset, getattr(message, field.name))
    assert raw == bytes(expected)


def test_desc_from_proto_view_round_trips_through_desc_to_proto() -> None:
    m = idxd_pb2.DsaDescriptor(
        opcode=DsaOpcode.CR_DELTA,
        delta=idxd_pb2.DeltaFields(delta_addr=0x7000, max_delta_size=0x100, expected_res_mask=2),
    )
    back = desc_to_proto(desc_from_proto(m))
    assert back.delta == m.delta
    assert back.op_specific == desc_bytes_from_proto(m)[40:]


@pytest.mark.parametrize("size", [1, 23, 25, 64])
def test_desc_from_proto_rejects_op_specific_not_24_bytes(size: int) -> None:
    with pytest.raises(ValueError, match=rf"^op_specific: .*got {size}"):
        desc_from_proto(idxd_pb2.DsaDescriptor(op_specific=bytes(size)))


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"pasid": 1 << 20}, "pasid"),
        ({"rsvd": 1 << 11}, "rsvd"),
        ({"flags": 1 << 24}, "flags"),
        ({"opcode": 0x100}, "opcode"),
        ({"int_handle": 1 << 16}, "int_handle"),
        ({"rsvd1": 1 << 16}, "rsvd1"),
        ({"check": idxd_pb2.CheckFields(expected_res=0x100)}, "check.expected_res"),
        ({"delta": idxd_pb2.DeltaFields(expected_res_mask=0x100)}, "delta.expected_res_mask"),
    ],
)
def test_desc_from_proto_rejects_out_of_range_field_by_name(kwargs: dict[str, object], field: str) -> None:
    m = idxd_pb2.DsaDescriptor(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match=rf"^{field}: "):
        desc_from_proto(m)
    with pytest.raises(ValueError, match=rf"^{field}: "):
        desc_bytes_from_proto(m)


# --------------------------------------------------------------------------------------
# Descriptor round trips
# --------------------------------------------------------------------------------------


@given(st.binary(min_size=64, max_size=64))
def test_any_64_bytes_to_proto_and_back_unchanged(raw: bytes) -> None:
    assert desc_bytes_from_proto(desc_proto_from_bytes(raw)) == raw


@given(st.binary(min_size=64, max_size=64))
def test_any_64_bytes_survive_proto_wire_serialization(raw: bytes) -> None:
    wire = desc_proto_from_bytes(raw).SerializeToString()
    assert desc_bytes_from_proto(idxd_pb2.DsaDescriptor.FromString(wire)) == raw


@given(st.binary(min_size=64, max_size=64))
def test_desc_to_proto_then_from_proto_gives_equal_dataclass(raw: bytes) -> None:
    d = unpack_desc(raw)
    assert desc_from_proto(desc_to_proto(d)) == d


_VIEW_FIELD_BITS: dict[int, dict[str, int]] = {
    DsaOpcode.MEMFILL: {"pattern_upper": 64},
    DsaOpcode.COMPARE: {"expected_res": 8},
    DsaOpcode.COMPVAL: {"expected_res": 8},
    DsaOpcode.CR_DELTA: {"delta_addr": 64, "max_delta_size": 32, "expected_res_mask": 8},
    DsaOpcode.AP_DELTA: {"delta_rec_size": 32},
    DsaOpcode.DUALCAST: {"dest2": 64},
    DsaOpcode.CRCGEN: {"crc_seed": 32, "seed_addr": 64},
    DsaOpcode.COPY_CRC: {"crc_seed": 32, "seed_addr": 64},
}


@given(st.data())
def test_typed_view_alone_reproduces_op_specific(data: st.DataObject) -> None:
    opcode = data.draw(st.sampled_from(sorted(_VIEW_FIELD_BITS)))
    values = {
        name: data.draw(st.integers(0, (1 << bits) - 1), label=name) for name, bits in _VIEW_FIELD_BITS[opcode].items()
    }
    d = _desc_with_tail(opcode, **values)
    m = desc_to_proto(d)
    assert m.WhichOneof("op_fields") is not None
    m.op_specific = b""
    assert desc_from_proto(m) == d


@pytest.mark.parametrize("size", [0, 63, 65])
def test_desc_proto_from_bytes_rejects_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match="64 bytes"):
        desc_proto_from_bytes(bytes(size))


# --------------------------------------------------------------------------------------
# Completion records
# --------------------------------------------------------------------------------------


def test_comp_to_proto_copies_fields_and_decodes_views() -> None:
    c = DsaCompletionRecord(
        status=DsaCompStatus.PAGE_FAULT_NOBOF,
        status_write=True,
        result=1,
        fault_info=2,
        rsvd=3,
        bytes_completed=0x800,
        fault_addr=0x7F0000001000,
        op_specific=bytes.fromhex("efcdabaa11223344") + bytes(8),
    )
    m = comp_to_proto(c)
    assert (m.status, m.status_write, m.result, m.fault_info, m.rsvd) == (3, True, 1, 2, 3)
    assert (m.bytes_completed, m.fault_addr) == (0x800, 0x7F0000001000)
    assert m.op_specific == c.op_specific
    assert m.invalid_flags == 0xABCDEF
    assert m.delta_rec_size == 0xAAABCDEF
    assert m.crc_val == 0x44332211AAABCDEF


def test_comp_from_proto_ignores_output_only_views_when_op_specific_is_set() -> None:
    m = idxd_pb2.DsaCompletionRecord(
        status=1, op_specific=bytes(range(16)), crc_val=5, invalid_flags=6, delta_rec_size=7
    )
    assert comp_from_proto(m).op_specific == bytes(range(16))


def test_comp_from_proto_with_empty_op_specific_gives_zeros() -> None:
    assert comp_bytes_from_proto(idxd_pb2.DsaCompletionRecord(status=1)) == b"\x01" + bytes(31)


@pytest.mark.parametrize("view", ["invalid_flags", "delta_rec_size", "crc_val"])
def test_comp_from_proto_rejects_views_without_op_specific(view: str) -> None:
    with pytest.raises(ValueError, match=view):
        comp_from_proto(idxd_pb2.DsaCompletionRecord(**{view: 1}))


def test_comp_from_proto_write_bit_is_bit_7_of_byte_0() -> None:
    m = idxd_pb2.DsaCompletionRecord(status=DsaCompStatus.PAGE_FAULT_NOBOF, status_write=True)
    assert comp_bytes_from_proto(m)[0] == 0x83


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"status": 0x80}, "status"),
        ({"result": 0x100}, "result"),
        ({"fault_info": 0x100}, "fault_info"),
        ({"rsvd": 0x100}, "rsvd"),
    ],
)
def test_comp_from_proto_rejects_out_of_range_field_by_name(kwargs: dict[str, int], field: str) -> None:
    with pytest.raises(ValueError, match=rf"^{field}: "):
        comp_from_proto(idxd_pb2.DsaCompletionRecord(**kwargs))


@pytest.mark.parametrize("size", [1, 15, 17, 32])
def test_comp_from_proto_rejects_op_specific_not_16_bytes(size: int) -> None:
    with pytest.raises(ValueError, match=rf"^op_specific: .*got {size}"):
        comp_from_proto(idxd_pb2.DsaCompletionRecord(op_specific=bytes(size)))


@given(st.binary(min_size=32, max_size=32))
def test_any_32_bytes_to_proto_and_back_unchanged(raw: bytes) -> None:
    assert comp_bytes_from_proto(comp_proto_from_bytes(raw)) == raw


@given(st.binary(min_size=32, max_size=32))
def test_any_32_bytes_survive_proto_wire_serialization(raw: bytes) -> None:
    wire = comp_proto_from_bytes(raw).SerializeToString()
    assert comp_bytes_from_proto(idxd_pb2.DsaCompletionRecord.FromString(wire)) == raw


@pytest.mark.parametrize("size", [0, 31, 33])
def test_comp_proto_from_bytes_rejects_wrong_length(size: int) -> None:
    with pytest.raises(ValueError, match="32 bytes"):
        comp_proto_from_bytes(bytes(size))


def test_pack_comp_of_converted_record_matches_original() -> None:
    c = DsaCompletionRecord(status=DsaCompStatus.SUCCESS, bytes_completed=64)
    c.crc_val = 0xE3069283
    assert pack_comp(comp_from_proto(comp_to_proto(c))) == pack_comp(c)
    assert pack_desc(desc_from_proto(desc_to_proto(DsaHwDesc()))) == bytes(64)
