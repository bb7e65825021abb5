"""DSA hardware byte layouts: the 64-byte descriptor and the 32-byte completion record.

This module is the Python twin of ``include/uapi/linux/idxd.h`` (Linux v6.x):
``enum dsa_opcode``, the ``IDXD_OP_FLAG_*`` bits, ``enum dsa_completion_status``,
``DSA_COMP_STATUS_MASK``/``DSA_COMP_STATUS_WRITE``, ``struct dsa_hw_desc`` and
``struct dsa_completion_record``. Names follow the header so that a kernel engineer can
grep for either side: every constant exists both as an enum member
(``DsaOpcode.MEMMOVE``) and under its kernel spelling (``DSA_OPCODE_MEMMOVE``).

Byte order is little-endian. C bitfields are allocated from bit 0 of their storage
unit upwards (the GCC x86-64 ABI), so ``pasid:20`` is bits 19:0 of bytes 0-3 and
``priv:1`` is bit 31.

Every byte offset lives in one place: :data:`DSA_HW_DESC_LAYOUT`,
:data:`DSA_HW_DESC_OP_FIELDS`, :data:`DSA_COMP_LAYOUT` and :data:`DSA_COMP_OP_FIELDS`.
The :mod:`struct` formats used by :func:`pack_desc` and friends are compiled from those
tables at import time, and the import fails if the tables leave a gap or overlap.
Offsets of operation-specific fields are absolute (``crc_seed`` is at byte 40 of the
descriptor, as in the header and the DSA specification), not relative to the start of
the ``op_specific`` area.

Nothing is ever truncated silently: packing a record whose field does not fit its bit
width raises :class:`ValueError` naming the field.
"""

from __future__ import annotations

import struct
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from enum import IntEnum, IntFlag
from types import MappingProxyType
from typing import Final, Protocol, overload

# ---------------------------------------------------------------------------------------
# Sizes
# ---------------------------------------------------------------------------------------

#: Size of ``struct dsa_hw_desc`` in bytes.
DSA_DESC_SIZE: Final = 64
#: Size of ``struct dsa_completion_record`` in bytes.
DSA_COMP_SIZE: Final = 32
#: Required alignment of a DSA completion record (the IAX record needs 64).
DSA_COMP_ALIGN: Final = 32
#: Byte offset of the descriptor's ``op_specific`` union.
DSA_DESC_OP_SPECIFIC_OFFSET: Final = 40
#: Size of the descriptor's ``op_specific`` union (``uint8_t op_specific[24]``).
DSA_DESC_OP_SPECIFIC_SIZE: Final = 24
#: Byte offset of the completion record's ``op_specific`` union.
DSA_COMP_OP_SPECIFIC_OFFSET: Final = 16
#: Size of the completion record's ``op_specific`` union (``uint8_t op_specific[16]``).
DSA_COMP_OP_SPECIFIC_SIZE: Final = 16

#: Bits 6:0 of the completion status byte: the status code.
DSA_COMP_STATUS_MASK: Final = 0x7F
#: Bit 7 of the completion status byte: the faulting access was a write.
DSA_COMP_STATUS_WRITE: Final = 0x80


def dsa_comp_status(status: int) -> int:
    """The status code in a raw completion status byte (the ``DSA_COMP_STATUS()`` macro)."""
    return status & DSA_COMP_STATUS_MASK


# ---------------------------------------------------------------------------------------
# Opcodes (enum dsa_opcode)
# ---------------------------------------------------------------------------------------


class DsaOpcode(IntEnum):
    """Operation codes of ``struct dsa_hw_desc`` (``enum dsa_opcode``).

    The descriptor carries the opcode as a plain byte; values missing here are legal
    bytes that the device rejects with :attr:`DsaCompStatus.BAD_OPCODE`.
    """

    NOOP = 0x00
    BATCH = 0x01
    DRAIN = 0x02
    MEMMOVE = 0x03
    MEMFILL = 0x04
    COMPARE = 0x05
    COMPVAL = 0x06
    CR_DELTA = 0x07
    AP_DELTA = 0x08
    DUALCAST = 0x09
    #: Added to the header in v6.x (DSA 2.0).
    TRANSL_FETCH = 0x0A
    CRCGEN = 0x10
    COPY_CRC = 0x11
    DIF_CHECK = 0x12
    DIF_INS = 0x13
    DIF_STRP = 0x14
    DIF_UPDT = 0x15
    #: Added to the header in v6.x (DSA 2.0).
    DIX_GEN = 0x17
    CFLUSH = 0x20


#: ``DSA_OPCODE_NOOP``: no operation (completion record only).
DSA_OPCODE_NOOP: Final = DsaOpcode.NOOP
#: ``DSA_OPCODE_BATCH``: process ``desc_count`` descriptors at ``desc_list_addr``.
DSA_OPCODE_BATCH: Final = DsaOpcode.BATCH
#: ``DSA_OPCODE_DRAIN``: wait for earlier descriptors.
DSA_OPCODE_DRAIN: Final = DsaOpcode.DRAIN
#: ``DSA_OPCODE_MEMMOVE``: copy ``xfer_size`` bytes from ``src_addr`` to ``dst_addr``.
DSA_OPCODE_MEMMOVE: Final = DsaOpcode.MEMMOVE
#: ``DSA_OPCODE_MEMFILL``: fill with ``pattern`` (and ``pattern_upper``).
DSA_OPCODE_MEMFILL: Final = DsaOpcode.MEMFILL
#: ``DSA_OPCODE_COMPARE``: compare ``src_addr`` with ``src2_addr``.
DSA_OPCODE_COMPARE: Final = DsaOpcode.COMPARE
#: ``DSA_OPCODE_COMPVAL``: compare ``src_addr`` with ``comp_pattern``.
DSA_OPCODE_COMPVAL: Final = DsaOpcode.COMPVAL
#: ``DSA_OPCODE_CR_DELTA``: create a delta record.
DSA_OPCODE_CR_DELTA: Final = DsaOpcode.CR_DELTA
#: ``DSA_OPCODE_AP_DELTA``: apply a delta record.
DSA_OPCODE_AP_DELTA: Final = DsaOpcode.AP_DELTA
#: ``DSA_OPCODE_DUALCAST``: copy to ``dst_addr`` and ``dest2``.
DSA_OPCODE_DUALCAST: Final = DsaOpcode.DUALCAST
#: ``DSA_OPCODE_TRANSL_FETCH``: prefetch address translations.
DSA_OPCODE_TRANSL_FETCH: Final = DsaOpcode.TRANSL_FETCH
#: ``DSA_OPCODE_CRCGEN``: CRC32C of the source.
DSA_OPCODE_CRCGEN: Final = DsaOpcode.CRCGEN
#: ``DSA_OPCODE_COPY_CRC``: copy and CRC32C.
DSA_OPCODE_COPY_CRC: Final = DsaOpcode.COPY_CRC
#: ``DSA_OPCODE_DIF_CHECK``: T10 DIF check.
DSA_OPCODE_DIF_CHECK: Final = DsaOpcode.DIF_CHECK
#: ``DSA_OPCODE_DIF_INS``: T10 DIF insert.
DSA_OPCODE_DIF_INS: Final = DsaOpcode.DIF_INS
#: ``DSA_OPCODE_DIF_STRP``: T10 DIF strip.
DSA_OPCODE_DIF_STRP: Final = DsaOpcode.DIF_STRP
#: ``DSA_OPCODE_DIF_UPDT``: T10 DIF update.
DSA_OPCODE_DIF_UPDT: Final = DsaOpcode.DIF_UPDT
#: ``DSA_OPCODE_DIX_GEN``: DIX generate.
DSA_OPCODE_DIX_GEN: Final = DsaOpcode.DIX_GEN
#: ``DSA_OPCODE_CFLUSH``: cache flush of the destination range.
DSA_OPCODE_CFLUSH: Final = DsaOpcode.CFLUSH


# ---------------------------------------------------------------------------------------
# Descriptor flags (IDXD_OP_FLAG_*)
# ---------------------------------------------------------------------------------------


class OpFlag(IntFlag):
    """Descriptor flag bits, bits 23:0 of bytes 4-7 (``IDXD_OP_FLAG_*``).

    Bit 6 (0x0040) has no name in the header. Bits 16-21 are defined by the header under
    an ``/* IAX */`` comment and apply to IAX descriptors only (see
    :data:`IAX_ONLY_OP_FLAGS`).
    """

    FENCE = 0x0001
    BOF = 0x0002
    CRAV = 0x0004
    RCR = 0x0008
    RCI = 0x0010
    CRSTS = 0x0020
    CR = 0x0080
    CC = 0x0100
    ADDR1_TCS = 0x0200
    ADDR2_TCS = 0x0400
    ADDR3_TCS = 0x0800
    CR_TCS = 0x1000
    STORD = 0x2000
    DRDBK = 0x4000
    DSTS = 0x8000
    #: IAX only.
    RD_SRC2_AECS = 0x010000
    #: IAX only.
    RD_SRC2_2ND = 0x020000
    #: IAX only.
    WR_SRC2_AECS_COMP = 0x040000
    #: IAX only.
    WR_SRC2_AECS_OVFL = 0x080000
    #: IAX only.
    SRC2_STS = 0x100000
    #: IAX only.
    CRC_RFC3720 = 0x200000


#: The flag bits the header lists under ``/* IAX */`` (bits 16-21).
IAX_ONLY_OP_FLAGS: Final = (
    OpFlag.RD_SRC2_AECS
    | OpFlag.RD_SRC2_2ND
    | OpFlag.WR_SRC2_AECS_COMP
    | OpFlag.WR_SRC2_AECS_OVFL
    | OpFlag.SRC2_STS
    | OpFlag.CRC_RFC3720
)

#: ``IDXD_OP_FLAG_FENCE``: wait for earlier descriptors of the batch.
IDXD_OP_FLAG_FENCE: Final = OpFlag.FENCE
#: ``IDXD_OP_FLAG_BOF``: block on fault (also needs WQCFG.bof).
IDXD_OP_FLAG_BOF: Final = OpFlag.BOF
#: ``IDXD_OP_FLAG_CRAV``: completion record address valid.
IDXD_OP_FLAG_CRAV: Final = OpFlag.CRAV
#: ``IDXD_OP_FLAG_RCR``: request completion record.
IDXD_OP_FLAG_RCR: Final = OpFlag.RCR
#: ``IDXD_OP_FLAG_RCI``: request completion interrupt.
IDXD_OP_FLAG_RCI: Final = OpFlag.RCI
#: ``IDXD_OP_FLAG_CRSTS``: completion record steering-tag select (meaning not in the header).
IDXD_OP_FLAG_CRSTS: Final = OpFlag.CRSTS
#: ``IDXD_OP_FLAG_CR``: check result.
IDXD_OP_FLAG_CR: Final = OpFlag.CR
#: ``IDXD_OP_FLAG_CC``: cache control (destination writes to cache).
IDXD_OP_FLAG_CC: Final = OpFlag.CC
#: ``IDXD_OP_FLAG_ADDR1_TCS``: traffic class select for address 1.
IDXD_OP_FLAG_ADDR1_TCS: Final = OpFlag.ADDR1_TCS
#: ``IDXD_OP_FLAG_ADDR2_TCS``: traffic class select for address 2.
IDXD_OP_FLAG_ADDR2_TCS: Final = OpFlag.ADDR2_TCS
#: ``IDXD_OP_FLAG_ADDR3_TCS``: traffic class select for address 3.
IDXD_OP_FLAG_ADDR3_TCS: Final = OpFlag.ADDR3_TCS
#: ``IDXD_OP_FLAG_CR_TCS``: traffic class select for the completion record.
IDXD_OP_FLAG_CR_TCS: Final = OpFlag.CR_TCS
#: ``IDXD_OP_FLAG_STORD``: strict ordering.
IDXD_OP_FLAG_STORD: Final = OpFlag.STORD
#: ``IDXD_OP_FLAG_DRDBK``: destination readback.
IDXD_OP_FLAG_DRDBK: Final = OpFlag.DRDBK
#: ``IDXD_OP_FLAG_DSTS``: destination steering-tag select (meaning not in the header).
IDXD_OP_FLAG_DSTS: Final = OpFlag.DSTS
#: ``IDXD_OP_FLAG_RD_SRC2_AECS`` (IAX only).
IDXD_OP_FLAG_RD_SRC2_AECS: Final = OpFlag.RD_SRC2_AECS
#: ``IDXD_OP_FLAG_RD_SRC2_2ND`` (IAX only).
IDXD_OP_FLAG_RD_SRC2_2ND: Final = OpFlag.RD_SRC2_2ND
#: ``IDXD_OP_FLAG_WR_SRC2_AECS_COMP`` (IAX only).
IDXD_OP_FLAG_WR_SRC2_AECS_COMP: Final = OpFlag.WR_SRC2_AECS_COMP
#: ``IDXD_OP_FLAG_WR_SRC2_AECS_OVFL`` (IAX only).
IDXD_OP_FLAG_WR_SRC2_AECS_OVFL: Final = OpFlag.WR_SRC2_AECS_OVFL
#: ``IDXD_OP_FLAG_SRC2_STS`` (IAX only).
IDXD_OP_FLAG_SRC2_STS: Final = OpFlag.SRC2_STS
#: ``IDXD_OP_FLAG_CRC_RFC3720`` (IAX only).
IDXD_OP_FLAG_CRC_RFC3720: Final = OpFlag.CRC_RFC3720


# ---------------------------------------------------------------------------------------
# Completion status codes (enum dsa_completion_status)
# ---------------------------------------------------------------------------------------


class DsaCompStatus(IntEnum):
    """Completion status codes, bits 6:0 of the status byte (``DSA_COMP_*``)."""

    NONE = 0x00
    SUCCESS = 0x01
    SUCCESS_PRED = 0x02
    PAGE_FAULT_NOBOF = 0x03
    PAGE_FAULT_IR = 0x04
    BATCH_FAIL = 0x05
    BATCH_PAGE_FAULT = 0x06
    DR_OFFSET_NOINC = 0x07
    DR_OFFSET_ERANGE = 0x08
    DIF_ERR = 0x09
    BAD_OPCODE = 0x10
    INVALID_FLAGS = 0x11
    NOZERO_RESERVE = 0x12
    XFER_ERANGE = 0x13
    DESC_CNT_ERANGE = 0x14
    DR_ERANGE = 0x15
    OVERLAP_BUFFERS = 0x16
    DCAST_ERR = 0x17
    DESCLIST_ALIGN = 0x18
    INT_HANDLE_INVAL = 0x19
    CRA_XLAT = 0x1A
    CRA_ALIGN = 0x1B
    ADDR_ALIGN = 0x1C
    PRIV_BAD = 0x1D
    TRAFFIC_CLASS_CONF = 0x1E
    PFAULT_RDBA = 0x1F
    HW_ERR1 = 0x20
    HW_ERR_DRB = 0x21
    TRANSLATION_FAIL = 0x22
    #: Added to the header in v6.x (event log).
    DRAIN_EVL = 0x26
    #: Added to the header in v6.x (event log).
    BATCH_EVL_ERR = 0x27


#: ``DSA_COMP_NONE``: not yet written by the device.
DSA_COMP_NONE: Final = DsaCompStatus.NONE
#: ``DSA_COMP_SUCCESS``.
DSA_COMP_SUCCESS: Final = DsaCompStatus.SUCCESS
#: ``DSA_COMP_SUCCESS_PRED``: success with false predicate.
DSA_COMP_SUCCESS_PRED: Final = DsaCompStatus.SUCCESS_PRED
#: ``DSA_COMP_PAGE_FAULT_NOBOF``: partial completion on a page fault (no BOF).
DSA_COMP_PAGE_FAULT_NOBOF: Final = DsaCompStatus.PAGE_FAULT_NOBOF
#: ``DSA_COMP_PAGE_FAULT_IR``: page fault, page response Invalid Request.
DSA_COMP_PAGE_FAULT_IR: Final = DsaCompStatus.PAGE_FAULT_IR
#: ``DSA_COMP_BATCH_FAIL``: a descriptor of the batch failed.
DSA_COMP_BATCH_FAIL: Final = DsaCompStatus.BATCH_FAIL
#: ``DSA_COMP_BATCH_PAGE_FAULT``: page fault reading the batch descriptor list.
DSA_COMP_BATCH_PAGE_FAULT: Final = DsaCompStatus.BATCH_PAGE_FAULT
#: ``DSA_COMP_DR_OFFSET_NOINC``: delta record offsets not increasing.
DSA_COMP_DR_OFFSET_NOINC: Final = DsaCompStatus.DR_OFFSET_NOINC
#: ``DSA_COMP_DR_OFFSET_ERANGE``: delta record offset out of range.
DSA_COMP_DR_OFFSET_ERANGE: Final = DsaCompStatus.DR_OFFSET_ERANGE
#: ``DSA_COMP_DIF_ERR``: DIF check error.
DSA_COMP_DIF_ERR: Final = DsaCompStatus.DIF_ERR
#: ``DSA_COMP_BAD_OPCODE``: unsupported operation code.
DSA_COMP_BAD_OPCODE: Final = DsaCompStatus.BAD_OPCODE
#: ``DSA_COMP_INVALID_FLAGS``: invalid flags (see the record's ``invalid_flags``).
DSA_COMP_INVALID_FLAGS: Final = DsaCompStatus.INVALID_FLAGS
#: ``DSA_COMP_NOZERO_RESERVE``: a reserved field is not zero.
DSA_COMP_NOZERO_RESERVE: Final = DsaCompStatus.NOZERO_RESERVE
#: ``DSA_COMP_XFER_ERANGE``: transfer size out of range.
DSA_COMP_XFER_ERANGE: Final = DsaCompStatus.XFER_ERANGE
#: ``DSA_COMP_DESC_CNT_ERANGE``: batch descriptor count out of range.
DSA_COMP_DESC_CNT_ERANGE: Final = DsaCompStatus.DESC_CNT_ERANGE
#: ``DSA_COMP_DR_ERANGE``: delta record size out of range.
DSA_COMP_DR_ERANGE: Final = DsaCompStatus.DR_ERANGE
#: ``DSA_COMP_OVERLAP_BUFFERS``: source and destination overlap.
DSA_COMP_OVERLAP_BUFFERS: Final = DsaCompStatus.OVERLAP_BUFFERS
#: ``DSA_COMP_DCAST_ERR``: dualcast destinations not 4 KiB-congruent.
DSA_COMP_DCAST_ERR: Final = DsaCompStatus.DCAST_ERR
#: ``DSA_COMP_DESCLIST_ALIGN``: batch descriptor list misaligned.
DSA_COMP_DESCLIST_ALIGN: Final = DsaCompStatus.DESCLIST_ALIGN
#: ``DSA_COMP_INT_HANDLE_INVAL``: invalid interrupt handle.
DSA_COMP_INT_HANDLE_INVAL: Final = DsaCompStatus.INT_HANDLE_INVAL
#: ``DSA_COMP_CRA_XLAT``: completion record address translation failed.
DSA_COMP_CRA_XLAT: Final = DsaCompStatus.CRA_XLAT
#: ``DSA_COMP_CRA_ALIGN``: completion record address misaligned.
DSA_COMP_CRA_ALIGN: Final = DsaCompStatus.CRA_ALIGN
#: ``DSA_COMP_ADDR_ALIGN``: source or destination address misaligned.
DSA_COMP_ADDR_ALIGN: Final = DsaCompStatus.ADDR_ALIGN
#: ``DSA_COMP_PRIV_BAD``: privileged request not allowed.
DSA_COMP_PRIV_BAD: Final = DsaCompStatus.PRIV_BAD
#: ``DSA_COMP_TRAFFIC_CLASS_CONF``: traffic class configuration error.
DSA_COMP_TRAFFIC_CLASS_CONF: Final = DsaCompStatus.TRAFFIC_CLASS_CONF
#: ``DSA_COMP_PFAULT_RDBA``: page fault on destination readback.
DSA_COMP_PFAULT_RDBA: Final = DsaCompStatus.PFAULT_RDBA
#: ``DSA_COMP_HW_ERR1``: hardware error.
DSA_COMP_HW_ERR1: Final = DsaCompStatus.HW_ERR1
#: ``DSA_COMP_HW_ERR_DRB``: hardware error on destination readback.
DSA_COMP_HW_ERR_DRB: Final = DsaCompStatus.HW_ERR_DRB
#: ``DSA_COMP_TRANSLATION_FAIL``: address translation failed.
DSA_COMP_TRANSLATION_FAIL: Final = DsaCompStatus.TRANSLATION_FAIL
#: ``DSA_COMP_DRAIN_EVL``: drain with faults pending in the event log.
DSA_COMP_DRAIN_EVL: Final = DsaCompStatus.DRAIN_EVL
#: ``DSA_COMP_BATCH_EVL_ERR``: batch error reported through the event log.
DSA_COMP_BATCH_EVL_ERR: Final = DsaCompStatus.BATCH_EVL_ERR


# ---------------------------------------------------------------------------------------
# Layout tables: every byte offset of both records is here and only here.
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LayoutField:
    """One field of a fixed little-endian hardware layout.

    ``offset`` is the absolute byte offset of the field's storage unit inside the whole
    record, ``unit`` the :mod:`struct` code of that unit (``B``, ``H``, ``I`` or ``Q``),
    and ``shift``/``bits`` place a C bitfield inside the unit (``bits`` 0 means the
    field is the whole unit).
    """

    name: str
    offset: int
    unit: str
    shift: int = 0
    bits: int = 0

    @property
    def unit_size(self) -> int:
        """Size in bytes of the storage unit."""
        return struct.calcsize("<" + self.unit)

    @property
    def width(self) -> int:
        """Width of the field in bits."""
        return self.bits or self.unit_size * 8

    @property
    def max_value(self) -> int:
        """The largest value the field holds."""
        return (1 << self.width) - 1

    @property
    def mask(self) -> int:
        """The field's bits within its storage unit."""
        return self.max_value << self.shift

    @property
    def byte_span(self) -> range:
        """Absolute byte offsets that hold at least one bit of the field."""
        first = self.offset + self.shift // 8
        last = self.offset + (self.shift + self.width - 1) // 8
        return range(first, last + 1)

    def check(self, value: object, label: str | None = None) -> int:
        """Return ``value`` as an int, or raise if it is not one or does not fit.

        Raises :class:`TypeError` for a non-integer and :class:`ValueError` (naming the
        field, or ``label`` when given) for a value outside ``0..max_value``.
        """
        name = label or self.name
        if not isinstance(value, int):
            raise TypeError(f"{name}: expected an int, got {type(value).__name__}")
        if not 0 <= value <= self.max_value:
            raise ValueError(
                f"{name}: value {value:#x} does not fit in {self.width} bits (allowed 0..{self.max_value:#x})"
            )
        return int(value)

    def read(self, buf: bytes | bytearray | memoryview, base: int = 0) -> int:
        """Read the field from ``buf``, which holds the record from byte ``base`` on."""
        (unit,) = struct.unpack_from("<" + self.unit, buf, self.offset - base)
        return int((unit >> self.shift) & self.max_value)

    def write(self, buf: bytearray, value: int, base: int = 0) -> None:
        """Write ``value`` (checked) into ``buf``, leaving the other bits of the unit."""
        value = self.check(value)
        fmt = "<" + self.unit
        (unit,) = struct.unpack_from(fmt, buf, self.offset - base)
        unit = (unit & ~self.mask) | (value << self.shift)
        struct.pack_into(fmt, buf, self.offset - base, unit)


def _index(fields: Iterable[LayoutField]) -> Mapping[str, LayoutField]:
    return MappingProxyType({f.name: f for f in fields})


#: ``struct dsa_hw_desc`` bytes 0-39, in order. Bytes 40-63 are ``op_specific``.
DSA_HW_DESC_LAYOUT: Final[tuple[LayoutField, ...]] = (
    LayoutField("pasid", 0, "I", 0, 20),
    LayoutField("rsvd", 0, "I", 20, 11),
    LayoutField("priv", 0, "I", 31, 1),
    LayoutField("flags", 4, "I", 0, 24),
    LayoutField("opcode", 4, "I", 24, 8),
    LayoutField("completion_addr", 8, "Q"),
    LayoutField("src_addr", 16, "Q"),
    LayoutField("dst_addr", 24, "Q"),
    LayoutField("xfer_size", 32, "I"),
    LayoutField("int_handle", 36, "H"),
    LayoutField("rsvd1", 38, "H"),
)

#: Named members of the descriptor's ``op_specific`` union (absolute offsets).
DSA_HW_DESC_OP_FIELDS: Final[Mapping[str, LayoutField]] = _index(
    (
        # COMPARE / COMPVAL with IDXD_OP_FLAG_CR
        LayoutField("expected_res", 40, "B"),
        # CR_DELTA
        LayoutField("delta_addr", 40, "Q"),
        LayoutField("max_delta_size", 48, "I"),
        LayoutField("delt_rsvd", 52, "I"),
        LayoutField("expected_res_mask", 56, "B"),
        # AP_DELTA
        LayoutField("delta_rec_size", 40, "I"),
        # DUALCAST
        LayoutField("dest2", 40, "Q"),
        # CRCGEN / COPY_CRC
        LayoutField("crc_seed", 40, "I"),
        LayoutField("crc_rsvd", 44, "I"),
        LayoutField("seed_addr", 48, "Q"),
        # MEMFILL (16-byte pattern: pattern_lower is src_addr)
        LayoutField("pattern_upper", 40, "Q"),
        # TRANSL_FETCH
        LayoutField("transl_fetch_res", 40, "Q"),
        LayoutField("region_stride", 48, "I"),
        # DIF_CHECK / DIF_STRP ("DIF check or strip")
        LayoutField("src_dif_flags", 40, "B"),
        LayoutField("dif_chk_flags", 42, "B"),
        LayoutField("chk_ref_tag_seed", 48, "I"),
        LayoutField("chk_app_tag_mask", 52, "H"),
        LayoutField("chk_app_tag_seed", 54, "H"),
        # DIF_INS
        LayoutField("dest_dif_flag", 41, "B"),
        LayoutField("dif_ins_flags", 42, "B"),
        LayoutField("ins_ref_tag_seed", 56, "I"),
        LayoutField("ins_app_tag_mask", 60, "H"),
        LayoutField("ins_app_tag_seed", 62, "H"),
        # DIF_UPDT
        LayoutField("src_upd_flags", 40, "B"),
        LayoutField("upd_dest_flags", 41, "B"),
        LayoutField("dif_upd_flags", 42, "B"),
        LayoutField("src_ref_tag_seed", 48, "I"),
        LayoutField("src_app_tag_mask", 52, "H"),
        LayoutField("src_app_tag_seed", 54, "H"),
        LayoutField("dest_ref_tag_seed", 56, "I"),
        LayoutField("dest_app_tag_mask", 60, "H"),
        LayoutField("dest_app_tag_seed", 62, "H"),
    )
)

#: ``struct dsa_completion_record`` bytes 0-15, in order. Bytes 16-31 are ``op_specific``.
DSA_COMP_LAYOUT: Final[tuple[LayoutField, ...]] = (
    LayoutField("status", 0, "B", 0, 7),
    LayoutField("status_write", 0, "B", 7, 1),
    LayoutField("result", 1, "B"),
    LayoutField("fault_info", 2, "B"),
    LayoutField("rsvd", 3, "B"),
    LayoutField("bytes_completed", 4, "I"),
    LayoutField("fault_addr", 8, "Q"),
)

#: Named members of the completion record's ``op_specific`` union (absolute offsets).
DSA_COMP_OP_FIELDS: Final[Mapping[str, LayoutField]] = _index(
    (
        LayoutField("invalid_flags", 16, "I", 0, 24),
        LayoutField("rsvd2", 16, "I", 24, 8),
        LayoutField("delta_rec_size", 16, "I"),
        LayoutField("crc_val", 16, "Q"),
        # DIF check & strip
        LayoutField("dif_chk_ref_tag", 16, "I"),
        LayoutField("dif_chk_app_tag_mask", 20, "H"),
        LayoutField("dif_chk_app_tag", 22, "H"),
        # DIF insert
        LayoutField("dif_ins_ref_tag", 24, "I"),
        LayoutField("dif_ins_app_tag_mask", 28, "H"),
        LayoutField("dif_ins_app_tag", 30, "H"),
        # DIF update
        LayoutField("dif_upd_src_ref_tag", 16, "I"),
        LayoutField("dif_upd_src_app_tag_mask", 20, "H"),
        LayoutField("dif_upd_src_app_tag", 22, "H"),
        LayoutField("dif_upd_dest_ref_tag", 24, "I"),
        LayoutField("dif_upd_dest_app_tag_mask", 28, "H"),
        LayoutField("dif_upd_dest_app_tag", 30, "H"),
    )
)

_BOOL_FIELDS: Final = frozenset({"priv", "status_write"})


def _compile(
    what: str, layout: tuple[LayoutField, ...], tail_offset: int, tail_size: int, total: int
) -> tuple[struct.Struct, tuple[int, ...]]:
    """Build the struct format for ``layout`` + op_specific tail, and check the table.

    Returns the compiled struct and the offsets of its integer storage units in order.
    Raises RuntimeError (at import) if the units leave a gap, the bitfields of a unit
    overlap or leave bits uncovered, or the total size is wrong.
    """
    units: dict[int, str] = {}
    covered: dict[int, int] = {}
    for f in layout:
        if units.setdefault(f.offset, f.unit) != f.unit:
            raise RuntimeError(f"{what}: storage unit at byte {f.offset} has two types")
        if covered.get(f.offset, 0) & f.mask:
            raise RuntimeError(f"{what}: field {f.name} overlaps another field")
        covered[f.offset] = covered.get(f.offset, 0) | f.mask
    fmt = "<"
    pos = 0
    for offset in sorted(units):
        code = units[offset]
        if offset != pos:
            raise RuntimeError(f"{what}: gap before byte {offset}")
        if covered[offset] != (1 << (8 * struct.calcsize("<" + code))) - 1:
            raise RuntimeError(f"{what}: unit at byte {offset} has uncovered bits")
        fmt += code
        pos += struct.calcsize("<" + code)
    if pos != tail_offset:
        raise RuntimeError(f"{what}: fixed part ends at {pos}, expected {tail_offset}")
    compiled = struct.Struct(f"{fmt}{tail_size}s")
    if compiled.size != total:
        raise RuntimeError(f"{what}: size {compiled.size}, expected {total}")
    return compiled, tuple(sorted(units))


_DESC_STRUCT, _DESC_UNITS = _compile(
    "dsa_hw_desc",
    DSA_HW_DESC_LAYOUT,
    DSA_DESC_OP_SPECIFIC_OFFSET,
    DSA_DESC_OP_SPECIFIC_SIZE,
    DSA_DESC_SIZE,
)
_COMP_STRUCT, _COMP_UNITS = _compile(
    "dsa_completion_record",
    DSA_COMP_LAYOUT,
    DSA_COMP_OP_SPECIFIC_OFFSET,
    DSA_COMP_OP_SPECIFIC_SIZE,
    DSA_COMP_SIZE,
)

_COMP_STATUS_FIELD: Final = _index(DSA_COMP_LAYOUT)["status"]
if (
    _COMP_STATUS_FIELD.mask != DSA_COMP_STATUS_MASK
    or _index(DSA_COMP_LAYOUT)["status_write"].mask != DSA_COMP_STATUS_WRITE
):
    raise RuntimeError("dsa_completion_record: status bits disagree with the masks")


class _HasOpSpecific(Protocol):
    op_specific: bytes


def _checked_tail(obj: _HasOpSpecific, size: int) -> bytes:
    tail = obj.op_specific
    if not isinstance(tail, bytes | bytearray | memoryview):
        raise TypeError(f"op_specific: expected bytes, got {type(tail).__name__}")
    if len(tail) != size:
        raise ValueError(f"op_specific: must be exactly {size} bytes, got {len(tail)}")
    return bytes(tail)


def _validate(obj: _HasOpSpecific, layout: tuple[LayoutField, ...], tail_size: int) -> None:
    for f in layout:
        f.check(getattr(obj, f.name))
    _checked_tail(obj, tail_size)


_Plan = tuple[tuple[str, int, int, int, bool, LayoutField], ...]
_PLANS: dict[tuple[int, int], tuple[tuple[LayoutField, ...], tuple[int, ...], _Plan]] = {}


def _plan(layout: tuple[LayoutField, ...], unit_offsets: tuple[int, ...]) -> _Plan:
    """Each field of ``layout`` as (name, index of its unit, shift, max value, is a bool,
    the field): what packing and unpacking need, computed once per layout rather than
    through the field's properties on every descriptor."""
    key = (id(layout), id(unit_offsets))
    entry = _PLANS.get(key)
    if entry is None or entry[0] is not layout or entry[1] is not unit_offsets:
        index = {o: i for i, o in enumerate(unit_offsets)}
        plan = tuple((f.name, index[f.offset], f.shift, f.max_value, f.name in _BOOL_FIELDS, f) for f in layout)
        entry = _PLANS[key] = (layout, unit_offsets, plan)
    return entry[2]


def _pack(
    obj: _HasOpSpecific,
    layout: tuple[LayoutField, ...],
    compiled: struct.Struct,
    unit_offsets: tuple[int, ...],
    tail_size: int,
) -> bytes:
    units = [0] * len(unit_offsets)
    for name, index, shift, max_value, _, f in _plan(layout, unit_offsets):
        value = getattr(obj, name)
        if type(value) is not int or not 0 <= value <= max_value:
            value = f.check(value)  # raises naming the field, or takes a bool as an int
        units[index] |= value << shift
    tail = _checked_tail(obj, tail_size)
    return compiled.pack(*units, tail)


def _unpack(
    what: str,
    data: bytes | bytearray | memoryview,
    layout: tuple[LayoutField, ...],
    compiled: struct.Struct,
    unit_offsets: tuple[int, ...],
) -> dict[str, object]:
    if len(data) != compiled.size:
        raise ValueError(f"{what}: expected exactly {compiled.size} bytes, got {len(data)}")
    *units, tail = compiled.unpack(data)
    out: dict[str, object] = {}
    for name, index, shift, max_value, is_bool, _ in _plan(layout, unit_offsets):
        value = (units[index] >> shift) & max_value
        out[name] = bool(value) if is_bool else value
    out["op_specific"] = bytes(tail)
    return out


class _OpSpecificField:
    """Descriptor exposing one named member of an ``op_specific`` union as an int.

    Reading decodes the bytes; assigning re-encodes them (range-checked), replacing the
    ``op_specific`` bytes of the instance and leaving every other byte as it was.
    """

    __slots__ = ("_field", "_base", "_size")

    def __init__(self, field: LayoutField, base: int, size: int) -> None:
        self._field = field
        self._base = base
        self._size = size

    @overload
    def __get__(self, obj: None, owner: type | None = None) -> _OpSpecificField: ...

    @overload
    def __get__(self, obj: _HasOpSpecific, owner: type | None = None) -> int: ...

    def __get__(self, obj: _HasOpSpecific | None, owner: type | None = None) -> int | _OpSpecificField:
        if obj is None:
            return self
        return self._field.read(_checked_tail(obj, self._size), self._base)

    def __set__(self, obj: _HasOpSpecific, value: int) -> None:
        buf = bytearray(_checked_tail(obj, self._size))
        self._field.write(buf, value, self._base)
        obj.op_specific = bytes(buf)


def _desc_op(name: str) -> _OpSpecificField:
    return _OpSpecificField(DSA_HW_DESC_OP_FIELDS[name], DSA_DESC_OP_SPECIFIC_OFFSET, DSA_DESC_OP_SPECIFIC_SIZE)


def _comp_op(name: str) -> _OpSpecificField:
    return _OpSpecificField(DSA_COMP_OP_FIELDS[name], DSA_COMP_OP_SPECIFIC_OFFSET, DSA_COMP_OP_SPECIFIC_SIZE)


# ---------------------------------------------------------------------------------------
# struct dsa_hw_desc
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class DsaHwDesc:
    """A 64-byte ``struct dsa_hw_desc``; the fields cover every bit of it.

    The unions of the header are reached through read-only aliases (``pattern``,
    ``desc_list_addr``, ``src2_addr``, ``desc_count``, ...) and, for the 24-byte
    ``op_specific`` area, through read/write attributes such as ``crc_seed`` that
    decode and re-encode the ``op_specific`` bytes. Values are range-checked by
    :meth:`validate` and :func:`pack_desc`, never truncated.
    """

    #: Bits 19:0 of bytes 0-3: PASID (ENQCMD replaces it with IA32_PASID).
    pasid: int = 0
    #: Bits 30:20 of bytes 0-3: reserved.
    rsvd: int = 0
    #: Bit 31 of bytes 0-3: privileged (supervisor) request.
    priv: bool = False
    #: Bits 23:0 of bytes 4-7: ``IDXD_OP_FLAG_*`` bits (see :class:`OpFlag`).
    flags: int = 0
    #: Bits 31:24 of bytes 4-7: operation code (see :class:`DsaOpcode`); any byte.
    opcode: int = 0
    #: Bytes 8-15: completion record address.
    completion_addr: int = 0
    #: Bytes 16-23: ``src_addr`` / ``rdback_addr`` / ``pattern`` / ``desc_list_addr`` /
    #: ``pattern_lower`` / ``transl_fetch_addr``.
    src_addr: int = 0
    #: Bytes 24-31: ``dst_addr`` / ``rdback_addr2`` / ``src2_addr`` / ``comp_pattern``.
    dst_addr: int = 0
    #: Bytes 32-35: ``xfer_size`` / ``desc_count`` / ``region_size``.
    xfer_size: int = 0
    #: Bytes 36-37: interrupt handle.
    int_handle: int = 0
    #: Bytes 38-39: reserved.
    rsvd1: int = 0
    #: Bytes 40-63: the operation-specific union, exactly 24 bytes.
    op_specific: bytes = bytes(DSA_DESC_OP_SPECIFIC_SIZE)

    # Read-only aliases of the header's unions over bytes 16-35.

    @property
    def rdback_addr(self) -> int:
        """``rdback_addr``: alias of :attr:`src_addr` (DRAIN readback)."""
        return self.src_addr

    @property
    def pattern(self) -> int:
        """``pattern``: alias of :attr:`src_addr` (MEMFILL, low 8 pattern bytes)."""
        return self.src_addr

    @property
    def pattern_lower(self) -> int:
        """``pattern_lower``: alias of :attr:`src_addr` (MEMFILL with 16-byte pattern)."""
        return self.src_addr

    @property
    def desc_list_addr(self) -> int:
        """``desc_list_addr``: alias of :attr:`src_addr` (BATCH)."""
        return self.src_addr

    @property
    def transl_fetch_addr(self) -> int:
        """``transl_fetch_addr``: alias of :attr:`src_addr` (TRANSL_FETCH)."""
        return self.src_addr

    @property
    def rdback_addr2(self) -> int:
        """``rdback_addr2``: alias of :attr:`dst_addr` (DRAIN readback)."""
        return self.dst_addr

    @property
    def src2_addr(self) -> int:
        """``src2_addr``: alias of :attr:`dst_addr` (COMPARE, CR_DELTA)."""
        return self.dst_addr

    @property
    def comp_pattern(self) -> int:
        """``comp_pattern``: alias of :attr:`dst_addr` (COMPVAL)."""
        return self.dst_addr

    @property
    def desc_count(self) -> int:
        """``desc_count``: alias of :attr:`xfer_size` (BATCH)."""
        return self.xfer_size

    @property
    def region_size(self) -> int:
        """``region_size``: alias of :attr:`xfer_size` (TRANSL_FETCH)."""
        return self.xfer_size

    # Members of the op_specific union (read and write op_specific).

    #: Byte 40, u8: expected result (COMPARE, COMPVAL with the CR flag).
    expected_res = _desc_op("expected_res")
    #: Bytes 40-47, u64: delta record address (CR_DELTA).
    delta_addr = _desc_op("delta_addr")
    #: Bytes 48-51, u32: maximum delta record size (CR_DELTA).
    max_delta_size = _desc_op("max_delta_size")
    #: Byte 56, u8: expected result mask (CR_DELTA).
    expected_res_mask = _desc_op("expected_res_mask")
    #: Bytes 40-43, u32: delta record size (AP_DELTA).
    delta_rec_size = _desc_op("delta_rec_size")
    #: Bytes 40-47, u64: second destination address (DUALCAST).
    dest2 = _desc_op("dest2")
    #: Bytes 40-43, u32: CRC seed (CRCGEN, COPY_CRC).
    crc_seed = _desc_op("crc_seed")
    #: Bytes 48-55, u64: address of the CRC seed (with the READ_CRC_SEED flag).
    seed_addr = _desc_op("seed_addr")
    #: Bytes 40-47, u64: high 8 bytes of a 16-byte fill pattern (MEMFILL).
    pattern_upper = _desc_op("pattern_upper")
    #: Bytes 48-51, u32: region stride (TRANSL_FETCH).
    region_stride = _desc_op("region_stride")
    #: Byte 40, u8: source DIF flags (DIF_CHECK, DIF_STRP).
    src_dif_flags = _desc_op("src_dif_flags")
    #: Byte 42, u8: DIF flags: block size in bits 1:0, CRC seed/result inversion (DIF_CHECK, DIF_STRP).
    dif_chk_flags = _desc_op("dif_chk_flags")
    #: Bytes 48-51, u32: source reference tag seed (DIF_CHECK, DIF_STRP).
    chk_ref_tag_seed = _desc_op("chk_ref_tag_seed")
    #: Bytes 52-53, u16: source application tag mask (DIF_CHECK, DIF_STRP).
    chk_app_tag_mask = _desc_op("chk_app_tag_mask")
    #: Bytes 54-55, u16: source application tag seed (DIF_CHECK, DIF_STRP).
    chk_app_tag_seed = _desc_op("chk_app_tag_seed")
    #: Byte 41, u8: destination DIF flags (DIF_INS).
    dest_dif_flag = _desc_op("dest_dif_flag")
    #: Byte 42, u8: DIF flags (DIF_INS).
    dif_ins_flags = _desc_op("dif_ins_flags")
    #: Bytes 56-59, u32: destination reference tag seed (DIF_INS).
    ins_ref_tag_seed = _desc_op("ins_ref_tag_seed")
    #: Bytes 60-61, u16: destination application tag mask (DIF_INS).
    ins_app_tag_mask = _desc_op("ins_app_tag_mask")
    #: Bytes 62-63, u16: destination application tag seed (DIF_INS).
    ins_app_tag_seed = _desc_op("ins_app_tag_seed")
    #: Byte 40, u8: source DIF flags (DIF_UPDT).
    src_upd_flags = _desc_op("src_upd_flags")
    #: Byte 41, u8: destination DIF flags (DIF_UPDT).
    upd_dest_flags = _desc_op("upd_dest_flags")
    #: Byte 42, u8: DIF flags (DIF_UPDT).
    dif_upd_flags = _desc_op("dif_upd_flags")
    #: Bytes 48-51, u32: source reference tag seed (DIF_UPDT).
    src_ref_tag_seed = _desc_op("src_ref_tag_seed")
    #: Bytes 52-53, u16: source application tag mask (DIF_UPDT).
    src_app_tag_mask = _desc_op("src_app_tag_mask")
    #: Bytes 54-55, u16: source application tag seed (DIF_UPDT).
    src_app_tag_seed = _desc_op("src_app_tag_seed")
    #: Bytes 56-59, u32: destination reference tag seed (DIF_UPDT).
    dest_ref_tag_seed = _desc_op("dest_ref_tag_seed")
    #: Bytes 60-61, u16: destination application tag mask (DIF_UPDT).
    dest_app_tag_mask = _desc_op("dest_app_tag_mask")
    #: Bytes 62-63, u16: destination application tag seed (DIF_UPDT).
    dest_app_tag_seed = _desc_op("dest_app_tag_seed")

    def validate(self) -> None:
        """Raise ValueError (naming the field) if any field does not fit its bit width."""
        _validate(self, DSA_HW_DESC_LAYOUT, DSA_DESC_OP_SPECIFIC_SIZE)


def pack_desc(d: DsaHwDesc) -> bytes:
    """The exact 64 little-endian bytes of ``d``.

    Raises ValueError naming the field if a value does not fit its bit width, or if
    ``op_specific`` is not exactly 24 bytes; TypeError if a field is not an integer.
    """
    return _pack(d, DSA_HW_DESC_LAYOUT, _DESC_STRUCT, _DESC_UNITS, DSA_DESC_OP_SPECIFIC_SIZE)


def unpack_desc(b: bytes | bytearray | memoryview) -> DsaHwDesc:
    """Decode 64 bytes into a :class:`DsaHwDesc`; ValueError if ``len(b) != 64``."""
    fields = _unpack("dsa_hw_desc", b, DSA_HW_DESC_LAYOUT, _DESC_STRUCT, _DESC_UNITS)
    return DsaHwDesc(**fields)  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------------
# struct dsa_completion_record
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class DsaCompletionRecord:
    """A 32-byte ``struct dsa_completion_record``; the fields cover every bit of it.

    The header's status byte is split into :attr:`status` (bits 6:0) and
    :attr:`status_write` (bit 7, ``DSA_COMP_STATUS_WRITE``); :attr:`status_byte` gives
    the raw byte. The 16-byte ``op_specific`` area is reached through read/write
    attributes (``invalid_flags``, ``delta_rec_size``, ``crc_val``).
    """

    #: Bits 6:0 of byte 0: status code (see :class:`DsaCompStatus`); any 7-bit value.
    status: int = 0
    #: Bit 7 of byte 0: the faulting access was a write.
    status_write: bool = False
    #: Byte 1: ``result`` / ``dif_status``.
    result: int = 0
    #: Byte 2: ``fault_info``.
    fault_info: int = 0
    #: Byte 3: reserved.
    rsvd: int = 0
    #: Bytes 4-7: ``bytes_completed`` / ``descs_completed``.
    bytes_completed: int = 0
    #: Bytes 8-15: faulting address.
    fault_addr: int = 0
    #: Bytes 16-31: the operation-specific union, exactly 16 bytes.
    op_specific: bytes = bytes(DSA_COMP_OP_SPECIFIC_SIZE)

    @property
    def status_byte(self) -> int:
        """The raw status byte: :attr:`status` with bit 7 set if :attr:`status_write`."""
        value = _COMP_STATUS_FIELD.check(self.status)
        return value | (DSA_COMP_STATUS_WRITE if self.status_write else 0)

    @property
    def dif_status(self) -> int:
        """``dif_status``: alias of :attr:`result` (DIF operations)."""
        return self.result

    @property
    def descs_completed(self) -> int:
        """``descs_completed``: alias of :attr:`bytes_completed` (BATCH)."""
        return self.bytes_completed

    #: Bits 23:0 of bytes 16-19: the offending flag bits (status INVALID_FLAGS).
    invalid_flags = _comp_op("invalid_flags")
    #: Bytes 16-19, u32: delta record size (CR_DELTA).
    delta_rec_size = _comp_op("delta_rec_size")
    #: Bytes 16-23, u64: CRC value (CRCGEN, COPY_CRC).
    crc_val = _comp_op("crc_val")
    #: Bytes 16-19, u32: reference tag (DIF_CHECK, DIF_STRP).
    dif_chk_ref_tag = _comp_op("dif_chk_ref_tag")
    #: Bytes 20-21, u16: application tag mask (DIF_CHECK, DIF_STRP).
    dif_chk_app_tag_mask = _comp_op("dif_chk_app_tag_mask")
    #: Bytes 22-23, u16: application tag (DIF_CHECK, DIF_STRP).
    dif_chk_app_tag = _comp_op("dif_chk_app_tag")
    #: Bytes 24-27, u32: reference tag (DIF_INS).
    dif_ins_ref_tag = _comp_op("dif_ins_ref_tag")
    #: Bytes 28-29, u16: application tag mask (DIF_INS).
    dif_ins_app_tag_mask = _comp_op("dif_ins_app_tag_mask")
    #: Bytes 30-31, u16: application tag (DIF_INS).
    dif_ins_app_tag = _comp_op("dif_ins_app_tag")
    #: Bytes 16-19, u32: source reference tag (DIF_UPDT).
    dif_upd_src_ref_tag = _comp_op("dif_upd_src_ref_tag")
    #: Bytes 20-21, u16: source application tag mask (DIF_UPDT).
    dif_upd_src_app_tag_mask = _comp_op("dif_upd_src_app_tag_mask")
    #: Bytes 22-23, u16: source application tag (DIF_UPDT).
    dif_upd_src_app_tag = _comp_op("dif_upd_src_app_tag")
    #: Bytes 24-27, u32: destination reference tag (DIF_UPDT).
    dif_upd_dest_ref_tag = _comp_op("dif_upd_dest_ref_tag")
    #: Bytes 28-29, u16: destination application tag mask (DIF_UPDT).
    dif_upd_dest_app_tag_mask = _comp_op("dif_upd_dest_app_tag_mask")
    #: Bytes 30-31, u16: destination application tag (DIF_UPDT).
    dif_upd_dest_app_tag = _comp_op("dif_upd_dest_app_tag")

    def validate(self) -> None:
        """Raise ValueError (naming the field) if any field does not fit its bit width."""
        _validate(self, DSA_COMP_LAYOUT, DSA_COMP_OP_SPECIFIC_SIZE)


def pack_comp(c: DsaCompletionRecord) -> bytes:
    """The exact 32 little-endian bytes of ``c``.

    Raises ValueError naming the field if a value does not fit its bit width (a status
    above 0x7f included: bit 7 is :attr:`DsaCompletionRecord.status_write`), or if
    ``op_specific`` is not exactly 16 bytes; TypeError if a field is not an integer.
    """
    return _pack(c, DSA_COMP_LAYOUT, _COMP_STRUCT, _COMP_UNITS, DSA_COMP_OP_SPECIFIC_SIZE)


def unpack_comp(b: bytes | bytearray | memoryview) -> DsaCompletionRecord:
    """Decode 32 bytes into a :class:`DsaCompletionRecord`; ValueError if ``len(b) != 32``."""
    fields = _unpack("dsa_completion_record", b, DSA_COMP_LAYOUT, _COMP_STRUCT, _COMP_UNITS)
    return DsaCompletionRecord(**fields)  # type: ignore[arg-type]
