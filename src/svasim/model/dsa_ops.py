"""What a DSA engine does with one descriptor: the checks, then the operation.

This module holds the semantics of every operation the device model executes, one
function per opcode, named after the op (``memmove``, ``crcgen``, ``cr_delta``...; the
four T10 DIF operations share :func:`dif`), plus
:func:`check`, the checks the device makes before it touches memory, and :func:`batch`.
:data:`OPERATIONS` is the one table of them: per opcode the flags it accepts and
requires, the op-specific bytes it uses, its own checks and its execution; the device's
OPCAP is its keys.
It knows nothing of work queues, engines, time or journals: memory is reached through
the :class:`Dma` port (PASID-tagged translation, then physical reads and writes), and
each function returns a :class:`Completion`, the fields the device writes into the
completion record. :mod:`svasim.model.accel` owns everything around it.

Sources, in order of weight (comments name them where a rule comes from):

- [SPEC] Intel Data Streaming Accelerator Architecture Specification, rev 3.0
  (341204-006US); section and table numbers are its.
- [K1] ``include/uapi/linux/idxd.h``: layouts, opcodes, flags, status codes (twin:
  :mod:`svasim_api.idxd`).
- [ACFG] intel/idxd-config ``test/dsa.c``, ``test/dsa_prep.c``, ``test/dsa_test.c``,
  ``test/dsa.h``, ``test_all.sh``: what a real test suite expects from the hardware,
  including the CRC reference (``dsa_calculate_crc32``), the partial-completion
  resubmit rules (``dsa_reprep_*``) and the batch/fence oracle (``parse_evl_desc``).
- [DML] intel/DML ``sources/core``: Intel's software path, written to give the same
  completion records as the hardware: per-op flag sets (``flags.hpp``), op-specific
  flags (``specific_flags.hpp``), validation rules (``validation.cpp``), the delta
  record format (``ref/create_delta.c``, ``ref/apply_delta.c``), compare semantics.
- [DPDK] ``drivers/dma/idxd``: a production driver whose error path shows when the
  device writes a completion record.

Every rule that no source above settles, and that rests on a guess, is marked UNVERIFIED
where it is implemented.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import crc32c as _crc32c

from svasim.model.memory import PAGE_SIZE
from svasim.model.ports import (
    FAULT_NONE,
    FAULT_PASID_NOT_PRESENT,
    FAULT_PASID_OUT_OF_RANGE,
    TranslateResult,
)
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus, DsaOpcode, OpFlag

_U32: Final = 0xFFFF_FFFF

# ---------------------------------------------------------------------------------------
# Limits
# ---------------------------------------------------------------------------------------

#: Largest transfer of CR_DELTA/AP_DELTA: a delta entry's offset is 16 bits in units of
#: 8 bytes, so 2^16 * 8 bytes = 512 KiB ([DML] validation.cpp ``max_size = 0x80000``).
DELTA_MAX_XFER: Final = 0x80000
#: A delta record entry: 2-byte offset (in 8-byte units), then the 8 bytes of src2.
DELTA_ENTRY: Final = struct.Struct("<H8s")
#: Smallest maximum delta record size the device accepts ([ACFG] dsa.h
#: ``MIN_DELTA_RECORD_SIZE 80``; dsa_prep.c raises max_delta_size to it; [DML]
#: validation.cpp refuses less than 80).
DELTA_MIN_RECORD: Final = 80

#: Batch descriptor lists are arrays of 64-byte descriptors on a 64-byte boundary.
DESC_LIST_ALIGN: Final = 64
#: The delta ops need 8-byte aligned addresses ([DML] validation.cpp).
DELTA_ALIGN: Final = 8

#: DIF protection interval (block) sizes, by bits 1:0 of the DIF flags byte ([ACFG]
#: dsa_prep.c ``dif_arr``; [DML] ``dif_block_sizes``).
DIF_BLOCK_SIZES: Final = (512, 520, 4096, 4104)
#: The T10 protection information tuple after each block: guard tag (CRC-16 T10-DIF of
#: the block, big-endian), application tag (big-endian u16), reference tag (big-endian
#: u32) ([ACFG] init_dif_check lays it out byte by byte).
DIF_TUPLE: Final = struct.Struct(">HHI")

# ---------------------------------------------------------------------------------------
# DIF flags (op-specific bytes 40-42; bit meanings from [DML] dmldefs.h, whose DIF flags
# word is the three bytes in descriptor order, and [ACFG] dsa.h)
# ---------------------------------------------------------------------------------------

#: Source DIF flags (byte 40). All-F detect with an error: a tuple of eight 0xFF bytes
#: is a DIF error rather than a block to check.
DIF_SRC_F_ENABLE_ERROR: Final = 1 << 0
DIF_SRC_F_DETECT_ALL: Final = 1 << 1
#: Skip the checks of a block whose application tag is 0xFFFF.
DIF_SRC_F_DETECT_APP_TAG: Final = 1 << 2
#: Skip the checks of a block whose application tag is 0xFFFF and reference tag 0xFFFFFFFF.
DIF_SRC_F_DETECT_APP_REF_TAG: Final = 1 << 3
#: Source application tag incrementing (1) or fixed (0).
DIF_SRC_INC_APP_TAG: Final = 1 << 4
DIF_SRC_GUARD_CHECK_DISABLE: Final = 1 << 5
DIF_SRC_REF_TAG_CHECK_DISABLE: Final = 1 << 6
#: Source reference tag fixed (1) or incrementing (0).
DIF_SRC_FIX_REF_TAG: Final = 1 << 7
#: Destination DIF flags (byte 41); bits 2:0 are reserved. The PASS flags (DIF_UPDT)
#: copy the source's field instead of computing it.
DIF_DEST_RESERVED: Final = 0x07
DIF_DEST_PASS_APP_TAG: Final = 1 << 3
DIF_DEST_INC_APP_TAG: Final = 1 << 4
DIF_DEST_PASS_GUARD: Final = 1 << 5
DIF_DEST_PASS_REF_TAG: Final = 1 << 6
DIF_DEST_FIX_REF_TAG: Final = 1 << 7
#: DIF flags (byte 42): block size in bits 1:0, then the CRC seed 0xFFFF instead of 0
#: and the inverted CRC result ([ACFG] dsa.h DIF_INVERT_CRC_SEED, DIF_INVERT_CRC_RESULT).
DIF_BLOCK_SIZE_MASK: Final = 0x03
DIF_INVERT_CRC_SEED: Final = 1 << 2
DIF_INVERT_CRC_RESULT: Final = 1 << 3
#: Bits 7:4 of the DIF flags byte are reserved (UNVERIFIED: no source names them).
DIF_FLAGS_RESERVED: Final = 0xF0
#: ``dif_status`` (completion record byte 1) bits: which check failed ([DML] dmldefs.h
#: DML_DIF_CHECK_*; UNVERIFIED that the hardware byte uses the same bits).
DIF_STATUS_GUARD: Final = 1 << 0
DIF_STATUS_APP_TAG: Final = 1 << 1
DIF_STATUS_REF_TAG: Final = 1 << 2
DIF_STATUS_ALL_F: Final = 1 << 3

# ---------------------------------------------------------------------------------------
# Operation-specific flags (descriptor flag bits 23:16)
# ---------------------------------------------------------------------------------------

#: CRCGEN/COPY_CRC: read the 4-byte seed from ``seed_addr`` ([ACFG] dsa.h READ_CRC_SEED).
CRC_FLAG_READ_CRC_SEED: Final = 1 << 16
#: CRCGEN/COPY_CRC: no inversion of seed and result, no reflection of the result
#: ([ACFG] dsa.h BYPASS_CRC_INV_REF).
CRC_FLAG_BYPASS_CRC_INV_REF: Final = 1 << 17
#: CRCGEN/COPY_CRC: no reflection of the data bytes ([ACFG] dsa.h BYPASS_DATA_REF).
CRC_FLAG_BYPASS_DATA_REF: Final = 1 << 18
#: DUALCAST: steering tag selector for the second destination ([DML] specific_flags.hpp).
DUALCAST_FLAG_DEST2_STS: Final = 1 << 16
#: DRAIN: readback address 1 / 2 valid, suppress the implicit readback of traffic
#: class A / B ([DML] specific_flags.hpp drain_specific_flag).
DRAIN_FLAG_READBACK1: Final = 1 << 16
DRAIN_FLAG_READBACK2: Final = 1 << 17
DRAIN_FLAG_SUPPRESS_TC_A: Final = 1 << 18
DRAIN_FLAG_SUPPRESS_TC_B: Final = 1 << 19

_CRC_FLAGS: Final = CRC_FLAG_READ_CRC_SEED | CRC_FLAG_BYPASS_CRC_INV_REF | CRC_FLAG_BYPASS_DATA_REF

#: Flags valid on every operation: they are about the completion, not the operation.
GENERIC_FLAGS: Final = int(OpFlag.CRAV | OpFlag.RCR | OpFlag.RCI | OpFlag.CRSTS | OpFlag.CR_TCS)

_DATA: Final = int(OpFlag.FENCE | OpFlag.BOF)
_WRITER: Final = int(OpFlag.CC | OpFlag.STORD | OpFlag.DRDBK | OpFlag.DSTS)
#: [SPEC] Table 5-5: the operations whose result is only in the completion record need
#: a record, so they require CRAV and RCR.
_NEEDS_RECORD: Final = int(OpFlag.CRAV | OpFlag.RCR)
# Plain ints: an int & an IntFlag goes through enum's Python-level __rand__.
_CRAV: Final = int(OpFlag.CRAV)
_FENCE: Final = int(OpFlag.FENCE)
_BOF: Final = int(OpFlag.BOF)

# ---------------------------------------------------------------------------------------
# Results and ports
# ---------------------------------------------------------------------------------------


@dataclass(slots=True)
class Completion:
    """What the device reports for one descriptor: the completion record's fields.

    ``bytes`` is not a record field: it is how many bytes the engine streamed for the
    descriptor (the cost model charges for them).
    """

    status: int
    result: int = 0
    bytes_completed: int = 0
    fault_addr: int = 0
    write_fault: bool = False
    invalid_flags: int = 0
    delta_rec_size: int | None = None
    crc_val: int | None = None
    #: DIF operations: the record's tag fields, by their uapi names (``dif_chk_ref_tag``...).
    dif_tags: dict[str, int] | None = None
    bytes: int = 0

    @property
    def ok(self) -> bool:
        """The status is SUCCESS (a false predicate, SUCCESS_PRED, is not)."""
        return self.status == DsaCompStatus.SUCCESS

    def record(self) -> idxd.DsaCompletionRecord:
        """The 32-byte completion record the device writes."""
        rec = idxd.DsaCompletionRecord(
            status=int(self.status),
            status_write=self.write_fault,
            result=self.result,
            bytes_completed=self.bytes_completed,
            fault_addr=self.fault_addr,
        )
        # The op-specific fields share bytes 16-31; at most one of them is set.
        if self.status == DsaCompStatus.INVALID_FLAGS:
            rec.invalid_flags = self.invalid_flags
        elif self.delta_rec_size is not None:
            rec.delta_rec_size = self.delta_rec_size
        elif self.crc_val is not None:
            rec.crc_val = self.crc_val
        elif self.dif_tags is not None:
            for name, value in self.dif_tags.items():
                setattr(rec, name, value)
        return rec


@dataclass(slots=True)
class Span:
    """A range of one access stream and how much of it (from its start) translated."""

    address: int
    length: int
    write: bool
    xlate: TranslateResult
    #: The fault blocked (block on fault, or an address that always blocks) and the
    #: page request for it was answered INVALID or FAILURE.
    prs_refused: bool = False

    @property
    def covered(self) -> int:
        """Bytes from the start that translated."""
        ts = self.xlate.translations
        # One run (the common case): its length, without a sum over the list.
        return min(ts[0].length if len(ts) == 1 else self.xlate.covered, self.length)

    @property
    def complete(self) -> bool:
        """The whole range translated."""
        return self.covered >= self.length

    @property
    def fault(self) -> str:
        """Why translation stopped (``FAULT_NONE`` if it did not)."""
        return self.xlate.fault

    @property
    def fault_address(self) -> int:
        """The first address that did not translate."""
        return self.xlate.fault_address


class Dma(Protocol):
    """The device's way to memory: PASID-tagged translation, then physical access."""

    def span(self, address: int, length: int, write: bool, *, always_block: bool = False) -> Span:
        """Translate ``[address, address+length)`` for a read or a write, up to the first fault.

        ``always_block``: the address is one of those whose page faults always block
        (page request, then wait) when the WQ allows page requests, whatever the
        descriptor's BOF flag ([SPEC] 8.1.3: a batch's descriptor list, a completion
        record, a drain's readback addresses).
        """
        ...

    def read(self, span: Span, length: int) -> bytes:
        """The first ``length`` bytes of a span (which must have translated)."""
        ...

    def write(self, span: Span, data: bytes) -> None:
        """Write ``data`` at the start of a span (which must have translated that far)."""
        ...


class WqLimits(Protocol):
    """The WQCFG fields the descriptor checks need."""

    @property
    def op_config(self) -> int:
        """Bit N enables opcode N."""
        ...

    @property
    def block_on_fault(self) -> bool:
        """WQCFG block-on-fault enable."""
        ...

    @property
    def max_xfer_size(self) -> int:
        """2^max_xfer_shift."""
        ...

    @property
    def max_batch_size(self) -> int:
        """2^max_batch_shift."""
        ...


class BatchRunner(Protocol):
    """The engine's side of a batch: it runs the sub-descriptors :func:`batch` hands it."""

    def fetched(self, count: int) -> None:
        """The device read ``count`` descriptors of the list (before any runs)."""
        ...

    def run(self, index: int, sub: idxd.DsaHwDesc) -> bool:
        """Check, execute and complete one sub-descriptor; True if it succeeded.

        Success means status SUCCESS and a completion record written where one was asked
        for ([ACFG] parse_evl_desc counts a failed completion write as a failure).
        """
        ...


# ---------------------------------------------------------------------------------------
# Helpers
# ---------------------------------------------------------------------------------------


def _fault(done: int, *streams: Span, result: int = 0) -> Completion:
    """Partial completion: the engine stopped after ``done`` bytes at a translation fault.

    ``streams`` are given in the order the engine accesses them; the one that stopped the
    operation is the faulted stream with the shortest translation (the earlier one on a
    tie), i.e. the first page the engine could not translate. A fault on a present page
    table but missing PASID entry is a TRANSLATION_FAIL rather than a page fault: there
    is no page to bring in (UNVERIFIED: the status the device gives when the IOMMU
    answers a translation request with Unsupported Request).
    """
    faulted = [(s.covered, i, s) for i, s in enumerate(streams) if s.fault != FAULT_NONE]
    _, _, span = min(faulted, key=lambda f: (f[0], f[1]))
    status = DsaCompStatus.PAGE_FAULT_NOBOF
    if span.fault in (FAULT_PASID_NOT_PRESENT, FAULT_PASID_OUT_OF_RANGE):
        status = DsaCompStatus.TRANSLATION_FAIL
    elif span.prs_refused:
        # Block on fault: the device sent a page request and waited; the host answered
        # that the page cannot be had (UNVERIFIED: PAGE_FAULT_IR read as "page fault,
        # invalid response").
        status = DsaCompStatus.PAGE_FAULT_IR
    return Completion(
        status,
        result=result,
        bytes_completed=done,
        fault_addr=span.fault_address,
        write_fault=span.write,
        bytes=done,
    )


def _overlap(a: int, alen: int, b: int, blen: int) -> bool:
    return a < b + blen and b < a + alen


def _first_difference(a: bytes, b: bytes) -> int:
    """Index of the first byte where ``a`` and ``b`` differ, or -1 (equal lengths)."""
    if a == b:
        return -1
    step = 4096
    for off in range(0, len(a), step):
        ca, cb = a[off : off + step], b[off : off + step]
        if ca != cb:
            for i, (x, y) in enumerate(zip(ca, cb, strict=True)):
                if x != y:
                    return off + i
    return -1


def _repeat(pattern: bytes, n: int) -> bytes:
    """``pattern`` repeated from its first byte over ``n`` bytes."""
    return (pattern * (n // len(pattern) + 1))[:n]


def _predicate(comp: Completion, expected: bool) -> Completion:
    """Check Result: a false predicate completes with SUCCESS_PRED instead of SUCCESS."""
    if not expected:
        comp.status = DsaCompStatus.SUCCESS_PRED
    return comp


# ---------------------------------------------------------------------------------------
# CRC-32C as the DSA computes it
# ---------------------------------------------------------------------------------------

_REV8: Final = bytes(int(f"{i:08b}"[::-1], 2) for i in range(256))


def reverse32(value: int) -> int:
    """The 32 bits of ``value`` in reverse order."""
    return int(f"{value & _U32:032b}"[::-1], 2)


def dsa_crc32c(data: bytes, seed: int, flags: int = 0) -> int:
    """CRC-32C (Castagnoli, reflected polynomial 0x82F63B78) with the DSA's seed and flags.

    As [ACFG] dsa.c ``dsa_calculate_crc32`` (and [DML] crc.cpp, which agrees):

    - default: the register starts at ``~seed``, bytes are processed LSB first, the
      result is inverted. So the seed is the CRC of the data before, and a seed of 0
      gives the standard CRC-32C (``crc32c(b"123456789") == 0xE3069283``).
    - :data:`CRC_FLAG_BYPASS_CRC_INV_REF`: the register starts at ``reverse(seed)`` and
      the result is ``reverse(register)``, no inversion on either side.
    - :data:`CRC_FLAG_BYPASS_DATA_REF`: each data byte is bit-reversed before use.
    """
    if flags & CRC_FLAG_BYPASS_DATA_REF:
        data = data.translate(_REV8)
    if flags & CRC_FLAG_BYPASS_CRC_INV_REF:
        # crc32c(d, v) inverts on entry and exit, so the bare register update is
        # ~crc32c(d, ~register).
        register = reverse32(seed)
        register = ~_crc32c.crc32c(data, ~register & _U32) & _U32
        return reverse32(register)
    return _crc32c.crc32c(data, seed & _U32)


# ---------------------------------------------------------------------------------------
# CRC-16 T10-DIF (the DIF guard tag)
# ---------------------------------------------------------------------------------------


def _crc16_table() -> tuple[int, ...]:
    table = []
    for byte in range(256):
        crc = byte << 8
        for _ in range(8):
            crc = ((crc << 1) ^ 0x8BB7) if crc & 0x8000 else crc << 1
        table.append(crc & 0xFFFF)
    return tuple(table)


_CRC16_T10DIF: Final = _crc16_table()


def crc16_t10dif(data: bytes, dif_flags: int = 0) -> int:
    """The DIF guard tag of ``data``: CRC-16 T10-DIF (polynomial 0x8BB7, not reflected).

    The register starts at 0, or at 0xFFFF with :data:`DIF_INVERT_CRC_SEED`, and the
    result is inverted with :data:`DIF_INVERT_CRC_RESULT` ([ACFG]
    ``dsa_calculate_crc_t10dif``, which is table driven as here; [DML] computes it bit
    by bit). With neither flag it is the catalogued CRC-16/T10-DIF (check value 0xD0DB).
    """
    crc = 0xFFFF if dif_flags & DIF_INVERT_CRC_SEED else 0
    table = _CRC16_T10DIF
    for byte in data:
        crc = ((crc << 8) & 0xFFFF) ^ table[(crc >> 8) ^ byte]
    return crc ^ 0xFFFF if dif_flags & DIF_INVERT_CRC_RESULT else crc


# ---------------------------------------------------------------------------------------
# Checks
# ---------------------------------------------------------------------------------------


_NO_OP_SPECIFIC: Final = bytes(idxd.DSA_DESC_OP_SPECIFIC_SIZE)


def _reserved_nonzero(desc: idxd.DsaHwDesc, op: Operation) -> bool:
    if desc.rsvd or desc.rsvd1:
        return True
    # All zero (most operations use none of it): no reserved byte is set.
    if desc.op_specific != _NO_OP_SPECIFIC:
        base = idxd.DSA_DESC_OP_SPECIFIC_OFFSET
        for i, byte in enumerate(desc.op_specific):
            if byte and not any(base + i in r for r in op.op_specific):
                return True
    # The batch descriptor has no destination (dsa_prep_batch passes 0 there).
    return desc.opcode == DsaOpcode.BATCH and desc.dst_addr != 0


def _check_none(desc: idxd.DsaHwDesc, wq: WqLimits) -> Completion | None:
    return None


def _check_batch(desc: idxd.DsaHwDesc, wq: WqLimits) -> Completion | None:
    if not 2 <= desc.desc_count <= wq.max_batch_size:
        return Completion(DsaCompStatus.DESC_CNT_ERANGE)
    if desc.desc_list_addr % DESC_LIST_ALIGN:
        return Completion(DsaCompStatus.DESCLIST_ALIGN)
    return None


def _check_dualcast(desc: idxd.DsaHwDesc, wq: WqLimits) -> Completion | None:
    size = desc.xfer_size
    # [DML] validation.cpp: the two destinations agree in bits 11:0.
    if (desc.dst_addr ^ desc.dest2) & 0xFFF:
        return Completion(DsaCompStatus.DCAST_ERR)
    if (
        _overlap(desc.src_addr, size, desc.dst_addr, size)
        or _overlap(desc.src_addr, size, desc.dest2, size)
        or _overlap(desc.dst_addr, size, desc.dest2, size)
    ):
        return Completion(DsaCompStatus.OVERLAP_BUFFERS)
    return None


def _check_copy_crc(desc: idxd.DsaHwDesc, wq: WqLimits) -> Completion | None:
    if _overlap(desc.src_addr, desc.xfer_size, desc.dst_addr, desc.xfer_size):
        return Completion(DsaCompStatus.OVERLAP_BUFFERS)
    return None


def _check_delta_size(desc: idxd.DsaHwDesc) -> Completion | None:
    # UNVERIFIED status: a size the delta format cannot express is XFER_ERANGE.
    if desc.xfer_size % 8 or desc.xfer_size > DELTA_MAX_XFER:
        return Completion(DsaCompStatus.XFER_ERANGE)
    return None


def _check_cr_delta(desc: idxd.DsaHwDesc, wq: WqLimits) -> Completion | None:
    if (bad := _check_delta_size(desc)) is not None:
        return bad
    # UNVERIFIED statuses: an unaligned address is ADDR_ALIGN, a too small record DR_ERANGE.
    if (desc.src_addr | desc.src2_addr | desc.delta_addr) % DELTA_ALIGN:
        return Completion(DsaCompStatus.ADDR_ALIGN)
    if desc.max_delta_size < DELTA_MIN_RECORD:
        return Completion(DsaCompStatus.DR_ERANGE)
    return None


def _check_ap_delta(desc: idxd.DsaHwDesc, wq: WqLimits) -> Completion | None:
    if (bad := _check_delta_size(desc)) is not None:
        return bad
    size = desc.xfer_size
    if (desc.dst_addr | desc.src_addr) % DELTA_ALIGN:
        return Completion(DsaCompStatus.ADDR_ALIGN)
    rec = desc.delta_rec_size
    # UNVERIFIED: a record that is empty, not whole entries, or longer than one entry
    # per 8-byte word of the destination is out of range.
    if rec == 0 or rec % DELTA_ENTRY.size or rec // DELTA_ENTRY.size > size // 8:
        return Completion(DsaCompStatus.DR_ERANGE)
    if _overlap(desc.src_addr, rec, desc.dst_addr, size):
        return Completion(DsaCompStatus.OVERLAP_BUFFERS)
    return None


def check(desc: idxd.DsaHwDesc, wq: WqLimits, *, in_batch: bool = False) -> Completion | None:
    """The checks the device makes before it touches memory; None if the descriptor is good.

    Order (UNVERIFIED beyond "opcode first"): completion record alignment, opcode,
    flags, reserved fields, the transfer size, then the operation's own parameters
    (:attr:`Operation.check`).
    """
    flags = desc.flags
    if flags & _CRAV and desc.completion_addr % idxd.DSA_COMP_ALIGN:
        # The record cannot be written; the caller reports this through SWERR.
        return Completion(DsaCompStatus.CRA_ALIGN)
    op = OPERATIONS.get(desc.opcode)
    if op is None or not (wq.op_config >> desc.opcode) & 1:
        return Completion(DsaCompStatus.BAD_OPCODE)
    if in_batch and not op.in_batch:
        # No batch in a batch ([ACFG] dsa_test.c refuses it; the runner skips DRAIN in
        # batches). The status is UNVERIFIED: BAD_OPCODE, as for an opcode the batch
        # cannot execute.
        return Completion(DsaCompStatus.BAD_OPCODE)
    invalid = flags & ~(GENERIC_FLAGS | op.flags)
    if not in_batch:
        # [SPEC] 8.1.3: Fence is reserved in a descriptor submitted directly to a WQ
        # (5.4 gives it as the example of an invalid flag); it orders within a batch.
        invalid |= flags & _FENCE
    if flags & _BOF and not wq.block_on_fault:
        # UNVERIFIED: with WQCFG block-on-fault disabled the descriptor's BOF is taken as
        # reserved. [ACFG] sets BOF only when the WQ has block_on_fault, as software must
        # if the device rejects it.
        invalid |= _BOF
    # [SPEC] Table 5-5: flags the operation requires; 5.4 makes a required flag that is
    # clear an invalid-flags error like a reserved one that is set (UNVERIFIED: that
    # ``invalid_flags`` then names the missing bits).
    missing = op.required & ~flags
    if op.required_any and not flags & op.required_any:
        missing |= op.required_any
    if invalid or missing:
        return Completion(DsaCompStatus.INVALID_FLAGS, invalid_flags=invalid | missing)
    if _reserved_nonzero(desc, op):
        return Completion(DsaCompStatus.NOZERO_RESERVE)
    if op.xfer and not 0 < desc.xfer_size <= wq.max_xfer_size:
        return Completion(DsaCompStatus.XFER_ERANGE)
    return op.check(desc, wq)


# ---------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------


def noop(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """NOOP: nothing but the completion."""
    return Completion(DsaCompStatus.SUCCESS)


def drain(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """DRAIN: completes after every earlier descriptor of its WQ (the engine orders it).

    With a readback flag the device reads the readback address; a page fault there
    always blocks when the WQ allows page requests ([SPEC] 8.1.3), and one that cannot be
    resolved is PFAULT_RDBA (UNVERIFIED: DSA 2.0 flags from [DML], the status guessed).
    """
    for flag, address in ((DRAIN_FLAG_READBACK1, desc.rdback_addr), (DRAIN_FLAG_READBACK2, desc.rdback_addr2)):
        if desc.flags & flag:
            span = dma.span(address, 1, False, always_block=True)
            if not span.complete:
                return Completion(DsaCompStatus.PFAULT_RDBA, fault_addr=span.fault_address)
    return Completion(DsaCompStatus.SUCCESS)


def _suffix(dma: Dma, address: int, length: int, write: bool) -> tuple[int, Span | None]:
    """How many bytes at the end of a range translate, walking down page by page.

    Returns the count and the span of the page-piece that faulted (None if none did).
    """
    covered = 0
    hi = address + length
    while hi > address:
        lo = max(address, (hi - 1) & ~(PAGE_SIZE - 1))
        span = dma.span(lo, hi - lo, write)
        if not span.complete:
            return covered, span
        covered += hi - lo
        hi = lo
    return covered, None


def memmove(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """MEMMOVE: copy ``xfer_size`` bytes from ``src_addr`` to ``dst_addr``.

    Overlapping buffers are copied as memmove does (the device reports overlap-copy
    support; [ACFG] dsa.h ACCTEST_CAP_OVERLAP_COPY). A destination above an overlapping
    source is copied downwards, and a partial completion then says so: ``result`` is the
    direction, 0 ascending, 1 descending, and ``bytes_completed`` counts from the end
    ([ACFG] dsa_reprep_memcpy advances src/dst only when result is 0). UNVERIFIED: that
    the device chooses descending exactly when the destination overlaps from above,
    and the fault address it reports in that direction (the highest byte of the
    faulting page within the range).
    """
    size = desc.xfer_size
    src = dma.span(desc.src_addr, size, False)
    dst = dma.span(desc.dst_addr, size, True)
    descending = desc.src_addr < desc.dst_addr < desc.src_addr + size
    if src.complete and dst.complete:
        dma.write(dst, dma.read(src, size))
        return Completion(DsaCompStatus.SUCCESS, bytes=size)
    if not descending:
        n = min(src.covered, dst.covered)
        dma.write(dst, dma.read(src, n))
        return _fault(n, src, dst)
    s_n, s_fault = _suffix(dma, desc.src_addr, size, False)
    d_n, d_fault = _suffix(dma, desc.dst_addr, size, True)
    n = min(s_n, d_n)
    if n:
        tail_src = dma.span(desc.src_addr + size - n, n, False)
        tail_dst = dma.span(desc.dst_addr + size - n, n, True)
        dma.write(tail_dst, dma.read(tail_src, n))
    # The stream that stopped the copy: the shorter suffix, the source on a tie.
    stop = s_fault if s_fault is not None and (d_fault is None or s_n <= d_n) else d_fault
    assert stop is not None
    comp = _fault(n, stop, result=1)
    comp.fault_addr = stop.address + stop.length - 1
    return comp


def memfill(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """MEMFILL: fill ``xfer_size`` bytes at ``dst_addr`` with the 8-byte ``pattern``.

    The pattern is laid from its first byte at ``dst_addr`` (little-endian, as
    [ACFG] memset_pattern writes the u64). A partial fill stops at the first
    untranslatable destination byte; the resubmitted rest restarts the pattern there
    ([ACFG] dsa_reprep_memfill).
    """
    size = desc.xfer_size
    dst = dma.span(desc.dst_addr, size, True)
    n = dst.covered
    dma.write(dst, _repeat(desc.pattern.to_bytes(8, "little"), n))
    if n < size:
        return _fault(n, dst)
    return Completion(DsaCompStatus.SUCCESS, bytes=n)


def compare(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """COMPARE: compare ``src_addr`` with ``src2_addr``.

    ``result`` 0: equal; 1: different, and ``bytes_completed`` is the offset of the first
    different byte ([ACFG] task_result_verify_compare, [DML] compare.c). A difference
    before an untranslatable page completes the compare; a fault before any difference
    is a partial completion. With Check Result, a result other than ``expected_res``
    completes with SUCCESS_PRED ([DML] compare.cpp).
    """
    size = desc.xfer_size
    a = dma.span(desc.src_addr, size, False)
    b = dma.span(desc.src2_addr, size, False)
    n = min(a.covered, b.covered)
    i = _first_difference(dma.read(a, n), dma.read(b, n))
    if i >= 0:
        comp = Completion(DsaCompStatus.SUCCESS, result=1, bytes_completed=i, bytes=i + 1)
    elif n < size:
        return _fault(n, a, b)
    else:
        comp = Completion(DsaCompStatus.SUCCESS, result=0, bytes=n)
    if desc.flags & OpFlag.CR:
        _predicate(comp, comp.result == desc.expected_res)
    return comp


def compval(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """COMPVAL: compare ``src_addr`` with the 8-byte ``comp_pattern``.

    As COMPARE, except the offset of a difference: in the whole 8-byte words of the
    transfer it is the offset of the word that differs, in the tail the offset of the
    byte ([DML] ref/compare_pattern.c and avx512/compare_pattern.c agree on this).
    """
    size = desc.xfer_size
    a = dma.span(desc.src_addr, size, False)
    n = a.covered
    data = dma.read(a, n)
    i = _first_difference(data, _repeat(desc.comp_pattern.to_bytes(8, "little"), n))
    if i >= 0:
        offset = i - i % 8 if i < size - size % 8 else i
        comp = Completion(DsaCompStatus.SUCCESS, result=1, bytes_completed=offset, bytes=i + 1)
    elif n < size:
        return _fault(n, a)
    else:
        comp = Completion(DsaCompStatus.SUCCESS, result=0, bytes=n)
    if desc.flags & OpFlag.CR:
        _predicate(comp, comp.result == desc.expected_res)
    return comp


def _words_differing(a: bytes, b: bytes) -> list[int]:
    """Indices of the 8-byte words where ``a`` and ``b`` differ."""
    out: list[int] = []
    chunk = 512
    for off in range(0, len(a), chunk):
        if a[off : off + chunk] != b[off : off + chunk]:
            for w in range(off, min(off + chunk, len(a)), 8):
                if a[w : w + 8] != b[w : w + 8]:
                    out.append(w // 8)
    return out


def cr_delta(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """CR_DELTA: the delta record that turns ``src_addr`` into ``src2_addr``.

    The record is a list of 10-byte entries, one per differing 8-byte word, in address
    order: the word's offset in 8-byte units (u16), then the word of src2 ([DML]
    ref/create_delta.c). ``result`` 0: no difference; 1: differences recorded; 2: the
    record would exceed ``max_delta_size``, in which case the entries that fit are
    written and the compare stops ([DML]; UNVERIFIED that the device writes them and
    that whole entries only count, ``max_delta_size // 10``). ``delta_rec_size`` is the
    bytes of record written. Check Result tests ``expected_res_mask`` bit ``result``
    (the mask bits are [DML] create_delta_result: 1 equal, 2 not equal, 4 overflow).

    A fault on a source, or on the record, is a partial completion: ``bytes_completed``
    is the source bytes compared, ``delta_rec_size`` the entries written (UNVERIFIED).
    """
    size = desc.xfer_size
    a = dma.span(desc.src_addr, size, False)
    b = dma.span(desc.src2_addr, size, False)
    n = min(a.covered, b.covered) // 8 * 8
    wa, wb = dma.read(a, n), dma.read(b, n)
    diffs = _words_differing(wa, wb)
    capacity = desc.max_delta_size // DELTA_ENTRY.size
    overflow = len(diffs) > capacity
    entries = diffs[:capacity]
    record = b"".join(DELTA_ENTRY.pack(w, wb[w * 8 : w * 8 + 8]) for w in entries)
    rec = dma.span(desc.delta_addr, len(record), True)
    if not rec.complete:
        k = rec.covered // DELTA_ENTRY.size
        dma.write(rec, record[: k * DELTA_ENTRY.size])
        done = entries[k] * 8
        comp = _fault(done, rec)
        comp.delta_rec_size = k * DELTA_ENTRY.size
        return comp
    dma.write(rec, record)
    if overflow:
        comp = Completion(DsaCompStatus.SUCCESS, result=2, bytes=diffs[capacity] * 8)
    elif n < size:
        comp = _fault(n, a, b)
        comp.delta_rec_size = len(record)
        return comp
    else:
        comp = Completion(DsaCompStatus.SUCCESS, result=1 if entries else 0, bytes=n)
    comp.delta_rec_size = len(record)
    if desc.flags & OpFlag.CR:
        _predicate(comp, bool(desc.expected_res_mask >> comp.result & 1))
    return comp


def ap_delta(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """AP_DELTA: apply the delta record at ``src_addr`` to ``xfer_size`` bytes at ``dst_addr``.

    Entries are applied in order; an offset not above the previous one completes with
    DR_OFFSET_NOINC, one beyond the destination with DR_OFFSET_ERANGE, the entries
    before it applied (UNVERIFIED: whether the device applies them first). On those and
    on a fault, ``bytes_completed`` is the bytes of delta record consumed (UNVERIFIED).
    """
    size = desc.xfer_size
    rec_size = desc.delta_rec_size
    rec = dma.span(desc.src_addr, rec_size, False)
    dst = dma.span(desc.dst_addr, size, True)
    readable = rec.covered // DELTA_ENTRY.size
    raw = dma.read(rec, readable * DELTA_ENTRY.size)
    patches: list[tuple[int, bytes]] = []
    stop: Completion | None = None
    prev = -1
    for j, (offset, word) in enumerate(DELTA_ENTRY.iter_unpack(raw)):
        consumed = j * DELTA_ENTRY.size
        if offset <= prev:
            stop = Completion(DsaCompStatus.DR_OFFSET_NOINC, bytes_completed=consumed, bytes=consumed)
            break
        if offset * 8 + 8 > size:
            stop = Completion(DsaCompStatus.DR_OFFSET_ERANGE, bytes_completed=consumed, bytes=consumed)
            break
        if offset * 8 + 8 > dst.covered:
            stop = _fault(consumed, dst)
            stop.fault_addr = max(dst.fault_address, desc.dst_addr + offset * 8)
            break
        patches.append((offset, word))
        prev = offset
    else:
        if readable * DELTA_ENTRY.size < rec_size:
            stop = _fault(readable * DELTA_ENTRY.size, rec)
    if patches:
        # One read-modify-write of the span the entries touch: the same bytes end up in
        # memory as 8-byte writes one by one, with one DMA write instead of thousands.
        hi = patches[-1][0] * 8 + 8
        buf = bytearray(dma.read(dst, hi))
        for offset, word in patches:
            buf[offset * 8 : offset * 8 + 8] = word
        dma.write(dst, bytes(buf))
    if stop is not None:
        return stop
    return Completion(DsaCompStatus.SUCCESS, bytes=rec_size)


def dualcast(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """DUALCAST: copy ``src_addr`` to both ``dst_addr`` and ``dest2``.

    The destinations must agree in address bits 11:0 (DCAST_ERR otherwise) and no two
    buffers may overlap (OVERLAP_BUFFERS), both checked by :func:`check`. A fault on any
    of the three streams stops both copies at the same offset ([ACFG]
    dsa_reprep_dualcast advances all three by ``bytes_completed``).
    """
    size = desc.xfer_size
    src = dma.span(desc.src_addr, size, False)
    d1 = dma.span(desc.dst_addr, size, True)
    d2 = dma.span(desc.dest2, size, True)
    n = min(src.covered, d1.covered, d2.covered)
    data = dma.read(src, n)
    dma.write(d1, data)
    dma.write(d2, data)
    if n < size:
        return _fault(n, src, d1, d2)
    return Completion(DsaCompStatus.SUCCESS, bytes=n)


def _crc_seed(desc: idxd.DsaHwDesc, dma: Dma) -> int | Completion:
    """The seed: ``crc_seed``, or with READ_CRC_SEED the u32 at ``seed_addr``."""
    if not desc.flags & CRC_FLAG_READ_CRC_SEED:
        return desc.crc_seed
    span = dma.span(desc.seed_addr, 4, False)
    if not span.complete:
        return _fault(0, span)
    return int.from_bytes(dma.read(span, 4), "little")


def crcgen(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """CRCGEN: CRC-32C of ``xfer_size`` bytes at ``src_addr`` into ``crc_val``.

    See :func:`dsa_crc32c` for the seed and the flags. A partial completion carries the
    CRC of the bytes completed, so that software can continue with it as the seed
    ([ACFG] task_result_verify_crcgen computes the expected CRC over
    ``bytes_completed`` when the status is not SUCCESS; UNVERIFIED on the device).
    """
    seed = _crc_seed(desc, dma)
    if isinstance(seed, Completion):
        return seed
    size = desc.xfer_size
    src = dma.span(desc.src_addr, size, False)
    n = src.covered
    crc = dsa_crc32c(dma.read(src, n), seed, desc.flags)
    comp = _fault(n, src) if n < size else Completion(DsaCompStatus.SUCCESS, bytes=n)
    comp.crc_val = crc
    return comp


def copy_crc(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """COPY_CRC: copy ``src_addr`` to ``dst_addr`` and CRC-32C the data into ``crc_val``."""
    seed = _crc_seed(desc, dma)
    if isinstance(seed, Completion):
        return seed
    size = desc.xfer_size
    src = dma.span(desc.src_addr, size, False)
    dst = dma.span(desc.dst_addr, size, True)
    n = min(src.covered, dst.covered)
    data = dma.read(src, n)
    dma.write(dst, data)
    comp = _fault(n, src, dst) if n < size else Completion(DsaCompStatus.SUCCESS, bytes=n)
    comp.crc_val = dsa_crc32c(data, seed, desc.flags)
    return comp


def cflush(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """CFLUSH: flush (CC: invalidate) the cache lines of ``xfer_size`` bytes at ``dst_addr``.

    The model has no caches, so memory does not change; the range must translate. The
    access is taken as a read for the IOMMU (UNVERIFIED: a flush needs no write
    permission, as CLFLUSH on the CPU).
    """
    size = desc.xfer_size
    dst = dma.span(desc.dst_addr, size, False)
    if not dst.complete:
        return _fault(dst.covered, dst)
    return Completion(DsaCompStatus.SUCCESS, bytes=size)


# ---------------------------------------------------------------------------------------
# DIF: T10 protection information per block
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _DifSide:
    """One side's DIF parameters: its flags byte and the tags of its first block."""

    flags: int
    ref_tag: int
    app_tag: int
    app_mask: int

    def tags(self, block: int, inc_app: int, fix_ref: int) -> tuple[int, int]:
        """The (application, reference) tags of block ``block``: the reference tag
        increments per block unless fixed, the application tag only when asked to."""
        app = (self.app_tag + (block if self.flags & inc_app else 0)) & 0xFFFF
        ref = (self.ref_tag + (0 if self.flags & fix_ref else block)) & _U32
        return app, ref


def _dif_params(desc: idxd.DsaHwDesc) -> tuple[int, _DifSide | None, _DifSide | None]:
    """The DIF flags byte and the source and destination sides of a DIF descriptor."""
    op = desc.opcode
    if op == DsaOpcode.DIF_INS:
        dest = _DifSide(desc.dest_dif_flag, desc.ins_ref_tag_seed, desc.ins_app_tag_seed, desc.ins_app_tag_mask)
        return desc.dif_ins_flags, None, dest
    if op == DsaOpcode.DIF_UPDT:
        src = _DifSide(desc.src_upd_flags, desc.src_ref_tag_seed, desc.src_app_tag_seed, desc.src_app_tag_mask)
        dest = _DifSide(desc.upd_dest_flags, desc.dest_ref_tag_seed, desc.dest_app_tag_seed, desc.dest_app_tag_mask)
        return desc.dif_upd_flags, src, dest
    src = _DifSide(desc.src_dif_flags, desc.chk_ref_tag_seed, desc.chk_app_tag_seed, desc.chk_app_tag_mask)
    return desc.dif_chk_flags, src, None


def _dif_steps(op: int, block: int) -> tuple[int, int]:
    """Bytes per block in the source and in the destination (0: no destination)."""
    tupled = block + DIF_TUPLE.size
    if op == DsaOpcode.DIF_INS:
        return block, tupled
    if op == DsaOpcode.DIF_STRP:
        return tupled, block
    return tupled, tupled if op == DsaOpcode.DIF_UPDT else 0


def _check_dif(desc: idxd.DsaHwDesc, wq: WqLimits) -> Completion | None:
    general, _, dest = _dif_params(desc)
    if general & DIF_FLAGS_RESERVED or (dest is not None and dest.flags & DIF_DEST_RESERVED):
        return Completion(DsaCompStatus.NOZERO_RESERVE)
    src_step, dst_step = _dif_steps(desc.opcode, DIF_BLOCK_SIZES[general & DIF_BLOCK_SIZE_MASK])
    # UNVERIFIED status: a transfer that is not whole blocks ([DML] validation.cpp
    # refuses it as wrong_dif_size) is taken as out of range.
    if desc.xfer_size % src_step:
        return Completion(DsaCompStatus.XFER_ERANGE)
    dst_len = desc.xfer_size // src_step * dst_step
    if dst_step and _overlap(desc.src_addr, desc.xfer_size, desc.dst_addr, dst_len):
        return Completion(DsaCompStatus.OVERLAP_BUFFERS)  # [DML] validation.cpp
    return None


def _dif_block_errors(block: bytes, pi: bytes, src: _DifSide, index: int, general: int) -> int:
    """The ``dif_status`` bits of one source block and its tuple; 0 if it checks out.

    F detect ([DML] dml_dif.c): with all-F detect and its error enabled, a tuple of
    eight 0xFF bytes is an error; an application tag of 0xFFFF (with F detect of the
    application tag), or that and a reference tag of 0xFFFFFFFF (with F detect of both),
    exempts the block from the checks. An application tag mask bit that is set leaves
    that bit unchecked (UNVERIFIED: [DML]'s software path compares differently).
    """
    flags = src.flags
    guard, app, ref = DIF_TUPLE.unpack(pi)
    if flags & DIF_SRC_F_DETECT_ALL and flags & DIF_SRC_F_ENABLE_ERROR and pi == b"\xff" * DIF_TUPLE.size:
        return DIF_STATUS_ALL_F
    if flags & DIF_SRC_F_DETECT_APP_REF_TAG and app == 0xFFFF and ref == _U32:
        return 0
    if flags & DIF_SRC_F_DETECT_APP_TAG and app == 0xFFFF:
        return 0
    want_app, want_ref = src.tags(index, DIF_SRC_INC_APP_TAG, DIF_SRC_FIX_REF_TAG)
    errors = 0
    if not flags & DIF_SRC_GUARD_CHECK_DISABLE and guard != crc16_t10dif(block, general):
        errors |= DIF_STATUS_GUARD
    if (app ^ want_app) & ~src.app_mask & 0xFFFF:
        errors |= DIF_STATUS_APP_TAG
    if not flags & DIF_SRC_REF_TAG_CHECK_DISABLE and ref != want_ref:
        errors |= DIF_STATUS_REF_TAG
    return errors


def _dif_record_tags(op: int, src: _DifSide | None, dest: _DifSide | None, index: int) -> dict[str, int]:
    """The record's tag fields: the tags block ``index`` (the first not processed) would
    have, which software takes as the seeds of the rest ([ACFG] dsa_reprep_dif resubmits
    a partial completion with them)."""
    tags: dict[str, int] = {}
    if src is not None:
        app, ref = src.tags(index, DIF_SRC_INC_APP_TAG, DIF_SRC_FIX_REF_TAG)
        if op == DsaOpcode.DIF_UPDT:
            tags |= {"dif_upd_src_ref_tag": ref, "dif_upd_src_app_tag_mask": src.app_mask, "dif_upd_src_app_tag": app}
        else:
            tags |= {"dif_chk_ref_tag": ref, "dif_chk_app_tag_mask": src.app_mask, "dif_chk_app_tag": app}
    if dest is not None:
        app, ref = dest.tags(index, DIF_DEST_INC_APP_TAG, DIF_DEST_FIX_REF_TAG)
        if op == DsaOpcode.DIF_UPDT:
            tags |= {
                "dif_upd_dest_ref_tag": ref,
                "dif_upd_dest_app_tag_mask": dest.app_mask,
                "dif_upd_dest_app_tag": app,
            }
        else:
            tags |= {"dif_ins_ref_tag": ref, "dif_ins_app_tag_mask": dest.app_mask, "dif_ins_app_tag": app}
    return tags


def dif(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """DIF_CHECK, DIF_INS, DIF_STRP, DIF_UPDT: T10 protection information, block by block.

    The source is ``xfer_size`` bytes at ``src_addr``: blocks of the size the DIF flags
    name, each followed by its 8-byte tuple (:data:`DIF_TUPLE`), except for DIF_INS
    whose source is bare blocks. CHECK verifies each tuple; STRP verifies and copies the
    bare blocks to ``dst_addr``; INS copies each block followed by a computed tuple;
    UPDT verifies and copies each block with a tuple computed from the destination
    parameters, or with the source's guard, application or reference tag where a PASS
    flag says so ([DML] dml_dif.c). The guard is :func:`crc16_t10dif` of the block; an
    application tag written is the seed with the mask's bits cleared ([DML]).

    The first block that fails its check completes the descriptor with DIF_ERR, the
    failed checks in ``dif_status`` and ``bytes_completed`` the source bytes before it;
    the blocks before it are written (UNVERIFIED: [DML] checks the whole source first).
    A page fault stops at the last whole block both streams translated: a partial
    completion counting source bytes ([ACFG] task_result_verify_dif_page_fault).
    """
    op = desc.opcode
    general, src_side, dest_side = _dif_params(desc)
    block = DIF_BLOCK_SIZES[general & DIF_BLOCK_SIZE_MASK]
    src_step, dst_step = _dif_steps(op, block)
    blocks = desc.xfer_size // src_step
    src = dma.span(desc.src_addr, desc.xfer_size, False)
    dst = dma.span(desc.dst_addr, blocks * dst_step, True) if dst_step else None
    fits = src.covered // src_step
    stop: Span | None = src if fits < blocks else None
    if dst is not None and dst.covered // dst_step < fits:
        fits, stop = dst.covered // dst_step, dst
    data = dma.read(src, fits * src_step)
    out = bytearray()
    errors = 0
    done = fits
    for i in range(fits):
        base = i * src_step
        data_block = data[base : base + block]
        pi = data[base + block : base + src_step]
        if src_side is not None and (errors := _dif_block_errors(data_block, pi, src_side, i, general)):
            done = i
            break
        if op == DsaOpcode.DIF_STRP:
            out += data_block
        elif dest_side is not None:
            app, ref = dest_side.tags(i, DIF_DEST_INC_APP_TAG, DIF_DEST_FIX_REF_TAG)
            guard = crc16_t10dif(data_block, general)
            app &= ~dest_side.app_mask & 0xFFFF
            if op == DsaOpcode.DIF_UPDT:
                src_guard, src_app, src_ref = DIF_TUPLE.unpack(pi)
                flags = dest_side.flags
                guard = src_guard if flags & DIF_DEST_PASS_GUARD else guard
                app = src_app if flags & DIF_DEST_PASS_APP_TAG else app
                ref = src_ref if flags & DIF_DEST_PASS_REF_TAG else ref
            out += data_block + DIF_TUPLE.pack(guard, app, ref)
    if dst is not None and out:
        dma.write(dst, bytes(out))
    consumed = done * src_step
    if errors:
        comp = Completion(DsaCompStatus.DIF_ERR, result=errors, bytes_completed=consumed, bytes=consumed)
    elif stop is not None:
        comp = _fault(consumed, stop)
    else:
        comp = Completion(DsaCompStatus.SUCCESS, bytes=consumed)
    comp.dif_tags = _dif_record_tags(op, src_side, dest_side, done)
    return comp


# ---------------------------------------------------------------------------------------
# The operations table: OPCAP, flags, op-specific bytes, checks, execution
# ---------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Operation:
    """One operation of the device's OPCAP: what its descriptor may carry, how it is
    checked and how it runs."""

    #: The flags it accepts besides :data:`GENERIC_FLAGS`, from [DML] flags.hpp, which
    #: lists them per operation as the specification's tables do. Two of them are
    #: corroborated by [ACFG]: "BOF bit is reserved for batch descriptor"
    #: (dsa_prep_batch) and "Block on fault is reserved for Drain"
    #: (dsa_drain_multi_task_nodes).
    flags: int
    #: Runs a checked descriptor; None for BATCH, which :func:`batch` runs with a runner.
    execute: Callable[[idxd.DsaHwDesc, Dma], Completion] | None
    #: Bytes of the 24-byte ``op_specific`` area (absolute offsets 40-63) it uses; every
    #: other byte is reserved and must be zero (NOZERO_RESERVE).
    op_specific: tuple[range, ...] = ()
    #: ``xfer_size`` is a transfer size, 1..WQCFG max transfer size (XFER_ERANGE).
    xfer: bool = True
    #: The operation's own parameter checks, after the generic ones.
    check: Callable[[idxd.DsaHwDesc, WqLimits], Completion | None] = _check_none
    #: Flags that must all be set ([SPEC] Table 5-5).
    required: int = 0
    #: Flags of which at least one must be set ([SPEC] Table 5-5: Drain needs RCR or RCI).
    required_any: int = 0
    #: Whether it may be a sub-descriptor of a batch.
    in_batch: bool = True


#: Every operation this device model executes, by opcode. Its keys are the device's
#: OPCAP: any other opcode, and any the WQ's op_config disables, completes with
#: DSA_COMP_BAD_OPCODE. TRANSL_FETCH and DIX_GEN are not modelled. [SPEC] Table 5-5:
#: DIF Check needs a record like the other checks (UNVERIFIED whether Strip and Update,
#: which check too, do).
#: [ACFG] dsa_prep_ap_delta zeroes ``delta_addr`` and ``max_delta_size`` left over from
#: the CR_DELTA descriptor it reuses, which is what a device that checks them requires.
#: MEMFILL's ``pattern_upper`` (16-byte pattern, DSA 2.0) is not modelled: no source was
#: found for the flag that enables it, so its bytes are reserved here (UNVERIFIED). Looked
#: for in Linux's uapi idxd.h (IDXD_OP_FLAG_* names no pattern-size flag, though
#: ``struct dsa_hw_desc`` has ``pattern_upper`` at byte 40), in [DML] (its fill takes an
#: 8-byte pattern only: "pattern size is always 8" in its C fill example), in [ACFG]
#: (dsa_prep_memfill writes ``pattern`` alone) and in the public DSA 1.0 text.
OPERATIONS: Final[dict[int, Operation]] = {
    DsaOpcode.NOOP: Operation(int(OpFlag.FENCE), noop, xfer=False),
    DsaOpcode.BATCH: Operation(int(OpFlag.ADDR1_TCS), None, xfer=False, check=_check_batch, in_batch=False),
    DsaOpcode.DRAIN: Operation(
        int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS)
        | DRAIN_FLAG_READBACK1
        | DRAIN_FLAG_READBACK2
        | DRAIN_FLAG_SUPPRESS_TC_A
        | DRAIN_FLAG_SUPPRESS_TC_B,
        drain,
        xfer=False,
        required_any=int(OpFlag.RCR | OpFlag.RCI),
        in_batch=False,
    ),
    DsaOpcode.MEMMOVE: Operation(_DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS), memmove),
    DsaOpcode.MEMFILL: Operation(_DATA | _WRITER | int(OpFlag.ADDR2_TCS), memfill),
    DsaOpcode.COMPARE: Operation(
        _DATA | int(OpFlag.CR | OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
        compare,
        op_specific=(range(40, 41),),  # expected_res
        required=_NEEDS_RECORD,
    ),
    DsaOpcode.COMPVAL: Operation(
        _DATA | int(OpFlag.CR | OpFlag.ADDR1_TCS),
        compval,
        op_specific=(range(40, 41),),  # expected_res
        required=_NEEDS_RECORD,
    ),
    DsaOpcode.CR_DELTA: Operation(
        _DATA | _WRITER | int(OpFlag.CR | OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS | OpFlag.ADDR3_TCS),
        cr_delta,
        op_specific=(range(40, 52), range(56, 57)),  # delta_addr, max_delta_size, expected_res_mask
        check=_check_cr_delta,
        required=_NEEDS_RECORD,
    ),
    DsaOpcode.AP_DELTA: Operation(
        _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
        ap_delta,
        op_specific=(range(40, 44),),  # delta_rec_size
        check=_check_ap_delta,
    ),
    DsaOpcode.DUALCAST: Operation(
        _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS | OpFlag.ADDR3_TCS) | DUALCAST_FLAG_DEST2_STS,
        dualcast,
        op_specific=(range(40, 48),),  # dest2
        check=_check_dualcast,
    ),
    DsaOpcode.CRCGEN: Operation(
        _DATA | int(OpFlag.ADDR1_TCS | OpFlag.ADDR3_TCS) | _CRC_FLAGS,
        crcgen,
        op_specific=(range(40, 44), range(48, 56)),  # crc_seed, seed_addr
        required=_NEEDS_RECORD,
    ),
    DsaOpcode.COPY_CRC: Operation(
        _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS | OpFlag.ADDR3_TCS) | _CRC_FLAGS,
        copy_crc,
        op_specific=(range(40, 44), range(48, 56)),
        check=_check_copy_crc,
        required=_NEEDS_RECORD,
    ),
    DsaOpcode.CFLUSH: Operation(_DATA | _WRITER | int(OpFlag.ADDR2_TCS), cflush),
    DsaOpcode.DIF_CHECK: Operation(
        _DATA | int(OpFlag.ADDR1_TCS),
        dif,
        op_specific=(range(40, 41), range(42, 43), range(48, 56)),  # src flags, DIF flags, tag seeds
        check=_check_dif,
        required=_NEEDS_RECORD,
    ),
    DsaOpcode.DIF_INS: Operation(
        _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
        dif,
        op_specific=(range(41, 43), range(56, 64)),  # dest flags, DIF flags, tag seeds
        check=_check_dif,
    ),
    DsaOpcode.DIF_STRP: Operation(
        _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
        dif,
        op_specific=(range(40, 41), range(42, 43), range(48, 56)),
        check=_check_dif,
    ),
    DsaOpcode.DIF_UPDT: Operation(
        _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
        dif,
        op_specific=(range(40, 43), range(48, 64)),  # src, dest and DIF flags, both sides' tag seeds
        check=_check_dif,
    ),
}

#: The operations this device model executes (its OPCAP register's set bits).
OPCAP: Final = frozenset(OPERATIONS)

#: op_config with every operation of :data:`OPCAP` enabled: bit N enables opcode N, as
#: the WQCFG op_config bitmap and accel-config's ``-o`` option do ([ACFG]
#: dsa_config_test_runner.sh: op_config 0x8 enables MEMMOVE and nothing else).
OPCAP_BITMAP: Final = sum(1 << int(op) for op in OPCAP)


def execute(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """Run one checked, non-batch descriptor."""
    run = OPERATIONS[desc.opcode].execute
    assert run is not None, "BATCH runs through batch()"
    return run(desc, dma)


def batch(desc: idxd.DsaHwDesc, dma: Dma, runner: BatchRunner) -> Completion:
    """BATCH: read ``desc_count`` descriptors at ``desc_list_addr`` and run them in order.

    The batch's own record, as [ACFG] test/dsa_test.c ``parse_evl_desc`` computes it:

    - ``descs_completed`` (``bytes_completed``) is the number of descriptors processed.
    - A sub-descriptor that fails (status not SUCCESS, or its completion record could
      not be written) makes the batch BATCH_FAIL with ``result`` 1; the others still run.
    - A descriptor with FENCE waits for the earlier ones; if any of them failed, it and
      the rest are abandoned, and ``descs_completed`` is its index.
    - A descriptor list that stops translating at descriptor k (its page could not be
      had: page requests disabled on the WQ, or refused): the first k run, then
      BATCH_PAGE_FAULT with ``descs_completed`` k and the fault address (``result``
      stays 1 if one of the k failed, as in the oracle).

    UNVERIFIED: a false predicate (SUCCESS_PRED) counts as a failure, as in [DML]
    batch.cpp, which is what makes "compare, then fenced work" conditional.
    """
    count = desc.desc_count
    # [SPEC] 8.1.3: page faults on the descriptor list always block when the WQ allows
    # page requests; the batch descriptor's own BOF is reserved anyway.
    span = dma.span(desc.desc_list_addr, count * idxd.DSA_DESC_SIZE, False, always_block=True)
    readable = span.covered // idxd.DSA_DESC_SIZE
    raw = dma.read(span, readable * idxd.DSA_DESC_SIZE)
    runner.fetched(readable)
    failed = False
    done = readable
    for i in range(readable):
        sub = idxd.unpack_desc(raw[i * idxd.DSA_DESC_SIZE : (i + 1) * idxd.DSA_DESC_SIZE])
        if sub.flags & _FENCE and failed:
            done = i
            break
        if not runner.run(i, sub):
            failed = True
    comp = Completion(
        DsaCompStatus.BATCH_FAIL if failed else DsaCompStatus.SUCCESS,
        result=1 if failed else 0,
        bytes_completed=done,
    )
    if readable < count and done == readable:
        fault = _fault(readable, span)
        # A refused page request leaves the list as unreadable as no page request does
        # (UNVERIFIED: BATCH_PAGE_FAULT rather than PAGE_FAULT_IR then).
        paging = fault.status in (DsaCompStatus.PAGE_FAULT_NOBOF, DsaCompStatus.PAGE_FAULT_IR)
        comp.status = DsaCompStatus.BATCH_PAGE_FAULT if paging else fault.status
        comp.fault_addr = fault.fault_addr
    return comp
