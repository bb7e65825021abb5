"""What a DSA engine does with one descriptor: the checks, then the operation.

This module holds the semantics of every operation the device model executes, one
function per opcode, named after the op (``memmove``, ``crcgen``, ``cr_delta``...), plus
:func:`check`, the checks the device makes before it touches memory, and :func:`batch`.
It knows nothing of work queues, engines, time or journals: memory is reached through
the :class:`Dma` port (PASID-tagged translation, then physical reads and writes), and
each function returns a :class:`Completion`, the fields the device writes into the
completion record. :mod:`svasim.model.accel` owns everything around it.

Sources, in order of weight (comments name them where a rule comes from):

- [K1] ``include/uapi/linux/idxd.h``: layouts, opcodes, flags, status codes (twin:
  :mod:`svasim.model.idxd`).
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

The DSA architecture specification itself was not available to read; every rule that
rests on memory of it, or on a guess, is marked UNVERIFIED where it is implemented.
"""

from __future__ import annotations

import struct
from collections.abc import Callable
from dataclasses import dataclass
from typing import Final, Protocol

import crc32c as _crc32c

from svasim.model import idxd
from svasim.model.idxd import DsaCompStatus, DsaOpcode, OpFlag
from svasim.model.memory import PAGE_SIZE
from svasim.model.ports import (
    FAULT_NONE,
    FAULT_PASID_NOT_PRESENT,
    FAULT_PASID_OUT_OF_RANGE,
    TranslateResult,
)

_U32: Final = 0xFFFF_FFFF

# ---------------------------------------------------------------------------------------
# Capabilities
# ---------------------------------------------------------------------------------------

#: The operations this device model executes (its OPCAP). Any other opcode, and any
#: opcode the WQ's op_config disables, completes with DSA_COMP_BAD_OPCODE. The DIF
#: operations, TRANSL_FETCH and DIX_GEN are not modelled.
OPCAP: Final = frozenset(
    {
        DsaOpcode.NOOP,
        DsaOpcode.BATCH,
        DsaOpcode.DRAIN,
        DsaOpcode.MEMMOVE,
        DsaOpcode.MEMFILL,
        DsaOpcode.COMPARE,
        DsaOpcode.COMPVAL,
        DsaOpcode.CR_DELTA,
        DsaOpcode.AP_DELTA,
        DsaOpcode.DUALCAST,
        DsaOpcode.CRCGEN,
        DsaOpcode.COPY_CRC,
        DsaOpcode.CFLUSH,
    }
)

#: op_config with every operation of :data:`OPCAP` enabled: bit N enables opcode N, as
#: the WQCFG op_config bitmap and accel-config's ``-o`` option do ([ACFG]
#: dsa_config_test_runner.sh: op_config 0x8 enables MEMMOVE and nothing else).
OPCAP_BITMAP: Final = sum(1 << int(op) for op in OPCAP)

#: Largest transfer of CR_DELTA/AP_DELTA: a delta entry's offset is 16 bits in units of
#: 8 bytes, so 2^16 * 8 bytes ([DML] validation.cpp ``max_size = 0x80000``).
DELTA_MAX_XFER: Final = 0x80000
#: A delta record entry: 2-byte offset (in 8-byte units), then the 8 bytes of src2.
DELTA_ENTRY: Final = struct.Struct("<H8s")
#: Smallest maximum delta record size the device accepts ([ACFG] dsa.h
#: ``MIN_DELTA_RECORD_SIZE 80``; dsa_prep.c raises max_delta_size to it).
DELTA_MIN_RECORD: Final = 80

#: Batch descriptor lists are arrays of 64-byte descriptors on a 64-byte boundary.
DESC_LIST_ALIGN: Final = 64
#: The delta ops need 8-byte aligned addresses ([DML] validation.cpp).
DELTA_ALIGN: Final = 8

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

#: The flags each operation accepts besides :data:`GENERIC_FLAGS`, from [DML]
#: flags.hpp, which lists them per operation as the specification's tables do. Two
#: of them are corroborated by [ACFG]: "BOF bit is reserved for batch descriptor"
#: (dsa_prep_batch) and "Block on fault is reserved for Drain"
#: (dsa_drain_multi_task_nodes). Any other bit set completes with INVALID_FLAGS.
OP_FLAGS: Final[dict[int, int]] = {
    DsaOpcode.NOOP: int(OpFlag.FENCE),
    DsaOpcode.BATCH: int(OpFlag.ADDR1_TCS),
    DsaOpcode.DRAIN: int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS)
    | DRAIN_FLAG_READBACK1
    | DRAIN_FLAG_READBACK2
    | DRAIN_FLAG_SUPPRESS_TC_A
    | DRAIN_FLAG_SUPPRESS_TC_B,
    DsaOpcode.MEMMOVE: _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
    DsaOpcode.MEMFILL: _DATA | _WRITER | int(OpFlag.ADDR2_TCS),
    DsaOpcode.COMPARE: _DATA | int(OpFlag.CR | OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
    DsaOpcode.COMPVAL: _DATA | int(OpFlag.CR | OpFlag.ADDR1_TCS),
    DsaOpcode.CR_DELTA: _DATA | _WRITER | int(OpFlag.CR | OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS | OpFlag.ADDR3_TCS),
    DsaOpcode.AP_DELTA: _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS),
    DsaOpcode.DUALCAST: _DATA
    | _WRITER
    | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS | OpFlag.ADDR3_TCS)
    | DUALCAST_FLAG_DEST2_STS,
    DsaOpcode.CRCGEN: _DATA | int(OpFlag.ADDR1_TCS | OpFlag.ADDR3_TCS) | _CRC_FLAGS,
    DsaOpcode.COPY_CRC: _DATA | _WRITER | int(OpFlag.ADDR1_TCS | OpFlag.ADDR2_TCS | OpFlag.ADDR3_TCS) | _CRC_FLAGS,
    DsaOpcode.CFLUSH: _DATA | _WRITER | int(OpFlag.ADDR2_TCS),
}

#: Bytes of the 24-byte ``op_specific`` area (absolute offsets 40-63) each operation
#: uses; every other byte is reserved and must be zero (NOZERO_RESERVE). [ACFG]
#: dsa_prep_ap_delta zeroes ``delta_addr`` and ``max_delta_size`` left over from the
#: CR_DELTA descriptor it reuses, which is what a device that checks them requires.
#: MEMFILL's ``pattern_upper`` (16-byte pattern, DSA 2.0) is not modelled: no source
#: was found for the flag that enables it, so its bytes are reserved here (UNVERIFIED).
OP_SPECIFIC_USED: Final[dict[int, tuple[range, ...]]] = {
    DsaOpcode.COMPARE: (range(40, 41),),  # expected_res
    DsaOpcode.COMPVAL: (range(40, 41),),
    DsaOpcode.CR_DELTA: (range(40, 52), range(56, 57)),  # delta_addr, max_delta_size, expected_res_mask
    DsaOpcode.AP_DELTA: (range(40, 44),),  # delta_rec_size
    DsaOpcode.DUALCAST: (range(40, 48),),  # dest2
    DsaOpcode.CRCGEN: (range(40, 44), range(48, 56)),  # crc_seed, seed_addr
    DsaOpcode.COPY_CRC: (range(40, 44), range(48, 56)),
}

_XFER_OPS: Final = frozenset(
    {
        DsaOpcode.MEMMOVE,
        DsaOpcode.MEMFILL,
        DsaOpcode.COMPARE,
        DsaOpcode.COMPVAL,
        DsaOpcode.CR_DELTA,
        DsaOpcode.AP_DELTA,
        DsaOpcode.DUALCAST,
        DsaOpcode.CRCGEN,
        DsaOpcode.COPY_CRC,
        DsaOpcode.CFLUSH,
    }
)

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
        return rec


@dataclass(slots=True)
class Span:
    """A range of one access stream and how much of it (from its start) translated."""

    address: int
    length: int
    write: bool
    xlate: TranslateResult
    #: Block on fault was in effect and the page request for the fault was answered
    #: INVALID or FAILURE (the device does not give up on a fault otherwise).
    prs_refused: bool = False

    @property
    def covered(self) -> int:
        """Bytes from the start that translated."""
        return min(self.xlate.covered, self.length)

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

    def span(self, address: int, length: int, write: bool) -> Span:
        """Translate ``[address, address+length)`` for a read or a write, up to the first fault."""
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
# Checks
# ---------------------------------------------------------------------------------------


def _reserved_nonzero(desc: idxd.DsaHwDesc) -> bool:
    if desc.rsvd or desc.rsvd1:
        return True
    used = OP_SPECIFIC_USED.get(desc.opcode, ())
    base = idxd.DSA_DESC_OP_SPECIFIC_OFFSET
    for i, byte in enumerate(desc.op_specific):
        if byte and not any(base + i in r for r in used):
            return True
    # The batch descriptor has no destination (dsa_prep_batch passes 0 there).
    return desc.opcode == DsaOpcode.BATCH and desc.dst_addr != 0


def check(desc: idxd.DsaHwDesc, wq: WqLimits, *, in_batch: bool = False) -> Completion | None:
    """The checks the device makes before it touches memory; None if the descriptor is good.

    Order (UNVERIFIED beyond "opcode first"): completion record alignment, opcode,
    flags, reserved fields, then the operation's own parameters.
    """
    flags = desc.flags
    if flags & OpFlag.CRAV and desc.completion_addr % idxd.DSA_COMP_ALIGN:
        # The record cannot be written; the caller reports this through SWERR.
        return Completion(DsaCompStatus.CRA_ALIGN)
    op = desc.opcode
    if op not in OPCAP or not (wq.op_config >> op) & 1:
        return Completion(DsaCompStatus.BAD_OPCODE)
    if in_batch and op in (DsaOpcode.BATCH, DsaOpcode.DRAIN):
        # No batch in a batch ([ACFG] dsa_test.c refuses it; the runner skips DRAIN in
        # batches). The status is UNVERIFIED: BAD_OPCODE, as for an opcode the batch
        # cannot execute.
        return Completion(DsaCompStatus.BAD_OPCODE)
    invalid = flags & ~(GENERIC_FLAGS | OP_FLAGS[op])
    if flags & OpFlag.BOF and not wq.block_on_fault:
        # UNVERIFIED: with WQCFG block-on-fault disabled the descriptor's BOF is taken as
        # reserved. [ACFG] sets BOF only when the WQ has block_on_fault, as software must
        # if the device rejects it.
        invalid |= int(OpFlag.BOF)
    if invalid:
        return Completion(DsaCompStatus.INVALID_FLAGS, invalid_flags=invalid)
    if _reserved_nonzero(desc):
        return Completion(DsaCompStatus.NOZERO_RESERVE)
    if op == DsaOpcode.BATCH:
        if not 2 <= desc.desc_count <= wq.max_batch_size:
            return Completion(DsaCompStatus.DESC_CNT_ERANGE)
        if desc.desc_list_addr % DESC_LIST_ALIGN:
            return Completion(DsaCompStatus.DESCLIST_ALIGN)
        return None
    if op not in _XFER_OPS:
        return None
    size = desc.xfer_size
    if not 0 < size <= wq.max_xfer_size:
        return Completion(DsaCompStatus.XFER_ERANGE)
    if op == DsaOpcode.DUALCAST:
        # [DML] validation.cpp: the two destinations agree in bits 11:0.
        if (desc.dst_addr ^ desc.dest2) & 0xFFF:
            return Completion(DsaCompStatus.DCAST_ERR)
        if (
            _overlap(desc.src_addr, size, desc.dst_addr, size)
            or _overlap(desc.src_addr, size, desc.dest2, size)
            or _overlap(desc.dst_addr, size, desc.dest2, size)
        ):
            return Completion(DsaCompStatus.OVERLAP_BUFFERS)
    elif op == DsaOpcode.COPY_CRC:
        if _overlap(desc.src_addr, size, desc.dst_addr, size):
            return Completion(DsaCompStatus.OVERLAP_BUFFERS)
    elif op == DsaOpcode.CR_DELTA:
        # UNVERIFIED statuses: a size the delta format cannot express is XFER_ERANGE,
        # an unaligned address ADDR_ALIGN, a too small record DR_ERANGE.
        if size % 8 or size > DELTA_MAX_XFER:
            return Completion(DsaCompStatus.XFER_ERANGE)
        if (desc.src_addr | desc.src2_addr | desc.delta_addr) % DELTA_ALIGN:
            return Completion(DsaCompStatus.ADDR_ALIGN)
        if desc.max_delta_size < DELTA_MIN_RECORD:
            return Completion(DsaCompStatus.DR_ERANGE)
    elif op == DsaOpcode.AP_DELTA:
        if size % 8 or size > DELTA_MAX_XFER:
            return Completion(DsaCompStatus.XFER_ERANGE)
        if (desc.dst_addr | desc.src_addr) % DELTA_ALIGN:
            return Completion(DsaCompStatus.ADDR_ALIGN)
        rec = desc.delta_rec_size
        # UNVERIFIED: a record that is empty, not whole entries, or longer than one
        # entry per 8-byte word of the destination is out of range.
        if rec == 0 or rec % DELTA_ENTRY.size or rec // DELTA_ENTRY.size > size // 8:
            return Completion(DsaCompStatus.DR_ERANGE)
        if _overlap(desc.src_addr, rec, desc.dst_addr, size):
            return Completion(DsaCompStatus.OVERLAP_BUFFERS)
    return None


# ---------------------------------------------------------------------------------------
# Operations
# ---------------------------------------------------------------------------------------


def noop(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """NOOP: nothing but the completion."""
    return Completion(DsaCompStatus.SUCCESS)


def drain(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """DRAIN: completes after every earlier descriptor of its WQ (the engine orders it).

    With a readback flag the device reads the readback address; a fault there is
    PFAULT_RDBA (UNVERIFIED: DSA 2.0 flags from [DML], semantics guessed).
    """
    for flag, address in ((DRAIN_FLAG_READBACK1, desc.rdback_addr), (DRAIN_FLAG_READBACK2, desc.rdback_addr2)):
        if desc.flags & flag:
            span = dma.span(address, 1, False)
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


#: The operations :func:`execute` dispatches to (everything in :data:`OPCAP` but BATCH).
OPERATIONS: Final[dict[int, Callable[[idxd.DsaHwDesc, Dma], Completion]]] = {
    DsaOpcode.NOOP: noop,
    DsaOpcode.DRAIN: drain,
    DsaOpcode.MEMMOVE: memmove,
    DsaOpcode.MEMFILL: memfill,
    DsaOpcode.COMPARE: compare,
    DsaOpcode.COMPVAL: compval,
    DsaOpcode.CR_DELTA: cr_delta,
    DsaOpcode.AP_DELTA: ap_delta,
    DsaOpcode.DUALCAST: dualcast,
    DsaOpcode.CRCGEN: crcgen,
    DsaOpcode.COPY_CRC: copy_crc,
    DsaOpcode.CFLUSH: cflush,
}


def execute(desc: idxd.DsaHwDesc, dma: Dma) -> Completion:
    """Run one checked, non-batch descriptor."""
    return OPERATIONS[desc.opcode](desc, dma)


def batch(desc: idxd.DsaHwDesc, dma: Dma, runner: BatchRunner) -> Completion:
    """BATCH: read ``desc_count`` descriptors at ``desc_list_addr`` and run them in order.

    The batch's own record, as [ACFG] test/dsa_test.c ``parse_evl_desc`` computes it:

    - ``descs_completed`` (``bytes_completed``) is the number of descriptors processed.
    - A sub-descriptor that fails (status not SUCCESS, or its completion record could
      not be written) makes the batch BATCH_FAIL with ``result`` 1; the others still run.
    - A descriptor with FENCE waits for the earlier ones; if any of them failed, it and
      the rest are abandoned, and ``descs_completed`` is its index.
    - A descriptor list that stops translating at descriptor k: the first k run, then
      BATCH_PAGE_FAULT with ``descs_completed`` k and the fault address (``result``
      stays 1 if one of the k failed, as in the oracle).

    UNVERIFIED: a false predicate (SUCCESS_PRED) counts as a failure, as in [DML]
    batch.cpp, which is what makes "compare, then fenced work" conditional.
    """
    count = desc.desc_count
    span = dma.span(desc.desc_list_addr, count * idxd.DSA_DESC_SIZE, False)
    readable = span.covered // idxd.DSA_DESC_SIZE
    raw = dma.read(span, readable * idxd.DSA_DESC_SIZE)
    runner.fetched(readable)
    failed = False
    done = readable
    for i in range(readable):
        sub = idxd.unpack_desc(raw[i * idxd.DSA_DESC_SIZE : (i + 1) * idxd.DSA_DESC_SIZE])
        if sub.flags & OpFlag.FENCE and failed:
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
        comp.status = DsaCompStatus.BATCH_PAGE_FAULT if fault.status == DsaCompStatus.PAGE_FAULT_NOBOF else fault.status
        comp.fault_addr = fault.fault_addr
    return comp
