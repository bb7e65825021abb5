"""Each DSA operation on the accelerator model, byte for byte, with small hand-checked cases.

The harness :class:`Dsa` opens dsa0's dedicated WQ (MOVDIR64B, PASID from WQCFG) or its
shared WQ (ENQCMD from a running thread) for one process and drives the accelerator model
directly; :mod:`tests.model.test_dsa_conformance` reuses it.
"""

from __future__ import annotations

import abc
import struct
from dataclasses import replace

import pytest

from svasim.model import dsa_ops
from svasim.model.accel import (
    IDXD_PORTAL_LIMITED,
    WQ_MODE_DEDICATED,
    WQ_MODE_SHARED,
    Device,
    default_devices,
    idxd_get_wq_portal_full_offset,
)
from svasim.model.errors import FailedPrecondition
from svasim.model.fabric import ModelFabric
from svasim.model.kernel import EnqcmdOutcome
from svasim.model.transition import Transition
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S
from svasim_api.idxd import DsaOpcode as Op
from svasim_api.idxd import OpFlag as F

PAGE = 4096
CR = int(F.CRAV | F.RCR)


class DsaHarness(abc.ABC):
    """What every accelerator harness of the DSA tests shares: completion-record slots,
    descriptors as user space builds them, submit-and-wait. Subclasses provide buf, put,
    get, submit and drain."""

    _records = 0
    _record_page = 0

    @abc.abstractmethod
    def buf(self, size: int, *, populate: bool = True, writable: bool = True) -> int:
        """A fresh anonymous mapping (page aligned)."""

    @abc.abstractmethod
    def get(self, address: int, length: int) -> bytes:
        """Read process memory."""

    @abc.abstractmethod
    def submit(self, desc: idxd.DsaHwDesc) -> bool:
        """Submit through the WQ's portal; True if the device took it."""

    @abc.abstractmethod
    def drain(self) -> None:
        """Run the device until idle."""

    def comp(self) -> int:
        """A fresh, zeroed, 32-byte aligned completion record slot."""
        if self._records % (PAGE // idxd.DSA_COMP_SIZE) == 0:
            self._record_page = self.buf(PAGE)
        addr = self._record_page + (self._records % (PAGE // idxd.DSA_COMP_SIZE)) * idxd.DSA_COMP_SIZE
        self._records += 1
        return addr

    def record(self, address: int) -> idxd.DsaCompletionRecord:
        return idxd.unpack_comp(self.get(address, idxd.DSA_COMP_SIZE))

    def desc(self, opcode: int, *, flags: int = CR, comp: int | None = None, **fields: int) -> idxd.DsaHwDesc:
        """A descriptor as user space builds it (PASID 0; ENQCMD or WQCFG supplies it)."""
        d = idxd.DsaHwDesc(opcode=opcode, flags=flags, completion_addr=self.comp() if comp is None else comp)
        for name, value in fields.items():
            setattr(d, name, value)
        return d

    def run(self, desc: idxd.DsaHwDesc) -> idxd.DsaCompletionRecord:
        """Submit, run until idle, and return the completion record at its address."""
        assert self.submit(desc)
        self.drain()
        return self.record(desc.completion_addr)


class Dsa(DsaHarness):
    """One process with a WQ of dsa0 open, submitting straight to the accelerator model."""

    def __init__(
        self,
        mode: str = WQ_MODE_DEDICATED,
        *,
        block_on_fault: bool = True,
        op_config: int | None = None,
        max_xfer_shift: int = 31,
        max_batch_shift: int = 10,
        prs_disable: bool = False,
    ) -> None:
        devices = default_devices()
        self.wq_id = 1 if mode == WQ_MODE_DEDICATED else 0
        wq = devices[0].wqs[self.wq_id]
        wq.cfg.block_on_fault = block_on_fault
        wq.cfg.prs_disable = prs_disable
        wq.cfg.max_xfer_shift = max_xfer_shift
        wq.cfg.max_batch_shift = max_batch_shift
        if op_config is not None:
            wq.cfg.op_config = op_config
        self.mode = mode
        self.transitions: list[Transition] = []
        self.fab = ModelFabric(ncpus=1, devices=devices, sink=self.transitions.append)
        self.k = self.fab.kernel
        self.j = self.fab.journal()
        proc = self.k.create_process(self.j, "app")
        self.pid = proc.pid
        self.tid = proc.tids[0]
        self.portal, self.pasid, _, _ = self.k.open_wq(self.j, self.pid, "dsa0", self.wq_id)
        self.offset = idxd_get_wq_portal_full_offset(self.wq_id, IDXD_PORTAL_LIMITED)
        self.k.schedule(self.j, self.tid, 0)

    @property
    def device(self) -> Device:
        return self.fab.accel.devices["dsa0"]

    # -- memory -----------------------------------------------------------------------------
    def buf(self, size: int, *, populate: bool = True, writable: bool = True) -> int:
        """A fresh anonymous mapping (page aligned)."""
        return self.k.mmap(self.j, self.pid, size, writable, populate).start

    def put(self, address: int, data: bytes) -> None:
        self.k.write_memory(self.j, self.pid, address, data)

    def get(self, address: int, length: int) -> bytes:
        return self.k.read_memory(self.j, self.pid, address, length)

    def present(self, address: int) -> bool:
        """Whether the page of ``address`` is mapped in the page table (reads would fault it in)."""
        return (address >> 12) in self.k.processes[self.pid].aspace.ptes

    # -- descriptors -----------------------------------------------------------------------
    def submit(self, desc: idxd.DsaHwDesc) -> bool:
        """Submit through the WQ's portal; True if the device took it."""
        command = idxd.pack_desc(desc)
        if self.mode == WQ_MODE_SHARED:
            res = self.k.enqcmd(self.j, self.tid, self.portal, command)
            assert res.outcome in (EnqcmdOutcome.ACCEPTED, EnqcmdOutcome.RETRY), res
            return res.outcome == EnqcmdOutcome.ACCEPTED
        return self.fab.accel.submit(self.j, "dsa0", self.offset, command, "movdir64b", self.device.now).accepted

    def drain(self) -> None:
        """Run the device until idle."""
        self.fab.accel.advance(self.j, "dsa0", 0)

    def completes(self, kind: str = "desc.complete") -> list[Transition]:
        return [t for t in self.transitions if t.kind == kind]


@pytest.fixture
def dsa() -> Dsa:
    return Dsa()


def pattern8(value: int, n: int) -> bytes:
    """accel-config's memset_pattern: the u64 little-endian, repeated over n bytes."""
    return (value.to_bytes(8, "little") * (n // 8 + 1))[:n]


# ---------------------------------------------------------------------------------------
# NOOP, DRAIN
# ---------------------------------------------------------------------------------------


def test_noop_writes_a_success_record_and_nothing_else(dsa):
    rec = dsa.run(dsa.desc(Op.NOOP))
    assert idxd.pack_comp(rec) == bytes([S.SUCCESS]) + bytes(31)
    assert not [t for t in dsa.transitions if t.kind == "dma.write" and t.detail["length"] != 32]


def test_noop_with_block_on_fault_is_invalid_flags_naming_the_bit(dsa):
    rec = dsa.run(dsa.desc(Op.NOOP, flags=CR | F.BOF))
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == F.BOF


def test_drain_with_block_on_fault_is_invalid_flags(dsa):
    rec = dsa.run(dsa.desc(Op.DRAIN, flags=CR | F.BOF))
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == F.BOF


def test_drain_completes_after_every_earlier_descriptor_of_its_wq(dsa):
    src, dst = dsa.buf(1 << 20), dsa.buf(1 << 20)
    big = dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=1 << 20)
    small = dsa.desc(Op.NOOP)
    drain = dsa.desc(Op.DRAIN)
    for d in (big, small, drain):
        assert dsa.submit(d)
    dsa.drain()
    ends = {t.after["opcode"]: (t.after["start"], t.after["end"]) for t in dsa.completes()}
    # Two engines: the NOOP runs beside the big copy, the drain waits for the copy.
    assert ends[Op.NOOP][0] < ends[Op.MEMMOVE][1]
    assert ends[Op.DRAIN][0] >= ends[Op.MEMMOVE][1]
    assert dsa.record(drain.completion_addr).status == S.SUCCESS


# ---------------------------------------------------------------------------------------
# MEMMOVE
# ---------------------------------------------------------------------------------------


def test_memmove_copies_the_bytes_exactly(dsa):
    src, dst = dsa.buf(8192), dsa.buf(8192)
    data = bytes(range(256)) * 20
    dsa.put(src, data)
    dsa.put(dst, b"\xee" * 8192)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src + 3, dst_addr=dst + 5, xfer_size=5000))
    assert idxd.pack_comp(rec) == bytes([S.SUCCESS]) + bytes(31)
    assert dsa.get(dst, 8192) == b"\xee" * 5 + data[3:5003] + b"\xee" * (8192 - 5005)


def test_memmove_with_overlapping_buffers_copies_as_memmove(dsa):
    buf = dsa.buf(PAGE)
    dsa.put(buf, bytes(range(100)))
    assert dsa.run(dsa.desc(Op.MEMMOVE, src_addr=buf, dst_addr=buf + 10, xfer_size=50)).status == S.SUCCESS
    assert dsa.get(buf, 100) == bytes(range(10)) + bytes(range(50)) + bytes(range(60, 100))
    assert dsa.run(dsa.desc(Op.MEMMOVE, src_addr=buf + 10, dst_addr=buf, xfer_size=50)).status == S.SUCCESS
    assert dsa.get(buf, 50) == bytes(range(50))


def test_memmove_to_an_untouched_page_completes_partially_with_the_write_bit(dsa):
    src = dsa.buf(3 * PAGE)
    dst = dsa.buf(3 * PAGE, populate=False)
    dsa.put(src, bytes(range(256)) * 48)
    dsa.put(dst, b"\x01")  # only the first destination page is present
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src + 100, dst_addr=dst + 100, xfer_size=2 * PAGE))
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.status_write
    assert rec.status_byte == 0x83
    assert rec.bytes_completed == PAGE - 100 and rec.fault_addr == dst + PAGE and rec.result == 0
    assert dsa.get(dst + 100, PAGE - 100) == (bytes(range(256)) * 48)[100:PAGE]
    assert not dsa.present(dst + PAGE)


def test_memmove_from_an_untouched_page_reports_a_read_fault_at_the_source(dsa):
    src = dsa.buf(2 * PAGE, populate=False)
    dst = dsa.buf(2 * PAGE)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=64))
    assert rec.status == S.PAGE_FAULT_NOBOF and not rec.status_write
    assert rec.bytes_completed == 0 and rec.fault_addr == src


def test_memmove_descending_overlap_fault_reports_direction_1_and_the_completed_tail(dsa):
    buf = dsa.buf(4 * PAGE, populate=False)
    dsa.put(buf + 2 * PAGE, b"\x07")  # pages 2 and 3 present, 0 and 1 not
    dsa.put(buf + 3 * PAGE, b"\x08")
    # Destination above an overlapping source: the device copies downwards.
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=buf + PAGE, dst_addr=buf + PAGE + 512, xfer_size=2 * PAGE))
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.result == 1
    # Source page 2 and destination pages 2-3 translate; the source's page 1 does not.
    assert rec.bytes_completed == PAGE and not rec.status_write
    assert rec.fault_addr == buf + 2 * PAGE - 1
    assert dsa.get(buf + 2 * PAGE + 512, 8) == b"\x07" + bytes(7)


@pytest.mark.parametrize("size", [0, (1 << 12) + 1])
def test_memmove_size_zero_or_above_the_wq_maximum_is_xfer_erange(size):
    dsa = Dsa(max_xfer_shift=12)
    buf = dsa.buf(4 * PAGE)
    assert dsa.run(dsa.desc(Op.MEMMOVE, src_addr=buf, dst_addr=buf + 2 * PAGE, xfer_size=size)).status == (
        S.XFER_ERANGE
    )


def test_memmove_at_exactly_the_wq_maximum_transfer_succeeds():
    dsa = Dsa(max_xfer_shift=12)
    buf = dsa.buf(4 * PAGE)
    assert dsa.run(dsa.desc(Op.MEMMOVE, src_addr=buf, dst_addr=buf + 2 * PAGE, xfer_size=PAGE)).status == S.SUCCESS


@pytest.mark.parametrize(
    "change",
    [{"rsvd": 1}, {"rsvd1": 1}, {"op_specific": b"\x01" + bytes(23)}, {"op_specific": bytes(23) + b"\x01"}],
)
def test_nonzero_reserved_fields_are_nozero_reserve_and_nothing_moves(dsa, change):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"x" * 64)
    desc = replace(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=64), **change)
    assert dsa.run(desc).status == S.NOZERO_RESERVE
    assert dsa.get(dst, 64) == bytes(64)


def test_undefined_flag_bit_6_is_invalid_flags(dsa):
    rec = dsa.run(dsa.desc(Op.NOOP, flags=CR | 0x40))
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == 0x40
    assert idxd.pack_comp(rec)[16:20] == b"\x40\x00\x00\x00"


def test_crc_flags_on_memmove_are_invalid_flags(dsa):
    buf = dsa.buf(PAGE)
    rec = dsa.run(
        dsa.desc(Op.MEMMOVE, flags=CR | dsa_ops.CRC_FLAG_READ_CRC_SEED, src_addr=buf, dst_addr=buf, xfer_size=8)
    )
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == 1 << 16


def test_check_result_flag_on_memmove_is_invalid_flags(dsa):
    buf = dsa.buf(2 * PAGE)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, flags=CR | F.CR, src_addr=buf, dst_addr=buf + PAGE, xfer_size=8))
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == F.CR


# ---------------------------------------------------------------------------------------
# MEMFILL
# ---------------------------------------------------------------------------------------


def test_memfill_lays_the_pattern_little_endian_from_the_destination_including_a_tail(dsa):
    dst = dsa.buf(PAGE)
    rec = dsa.run(dsa.desc(Op.MEMFILL, src_addr=0x0123456789ABCDEF, dst_addr=dst + 3, xfer_size=13))
    assert rec.status == S.SUCCESS
    assert dsa.get(dst, 20) == bytes(3) + bytes.fromhex("efcdab8967452301 efcdab8967") + bytes(4)


def test_memfill_partial_fill_then_resubmitted_rest_gives_the_full_pattern(dsa):
    dst = dsa.buf(2 * PAGE, populate=False)
    dsa.put(dst, b"\x00")
    desc = dsa.desc(Op.MEMFILL, src_addr=0x1122334455667788, dst_addr=dst, xfer_size=2 * PAGE)
    rec = dsa.run(desc)
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.status_write and rec.bytes_completed == PAGE
    # What dsa_reprep_memfill does: touch the page, advance, resubmit the rest.
    dsa.put(rec.fault_addr, b"\xff")
    desc.xfer_size -= rec.bytes_completed
    desc.dst_addr += rec.bytes_completed
    dsa.put(desc.completion_addr, bytes(32))
    assert dsa.run(desc).status == S.SUCCESS
    assert dsa.get(dst, 2 * PAGE) == pattern8(0x1122334455667788, 2 * PAGE)


def test_memfill_pattern_upper_is_reserved_in_this_model(dsa):
    dst = dsa.buf(PAGE)
    desc = dsa.desc(Op.MEMFILL, src_addr=1, dst_addr=dst, xfer_size=16)
    desc.pattern_upper = 2
    assert dsa.run(desc).status == S.NOZERO_RESERVE


# ---------------------------------------------------------------------------------------
# COMPARE, COMPVAL
# ---------------------------------------------------------------------------------------


def test_compare_equal_buffers_gives_result_0(dsa):
    a, b = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(a, b"same" * 100)
    dsa.put(b, b"same" * 100)
    rec = dsa.run(dsa.desc(Op.COMPARE, src_addr=a, dst_addr=b, xfer_size=400))
    assert (rec.status, rec.result, rec.bytes_completed) == (S.SUCCESS, 0, 0)


def test_compare_gives_result_1_and_the_offset_of_the_first_different_byte(dsa):
    a, b = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(a, bytes(400))
    dsa.put(b, bytes(203) + b"\x01" + bytes(100) + b"\x02")
    rec = dsa.run(dsa.desc(Op.COMPARE, src_addr=a, dst_addr=b, xfer_size=400))
    assert (rec.status, rec.result, rec.bytes_completed) == (S.SUCCESS, 1, 203)


def test_compare_difference_before_an_untranslatable_page_completes_the_compare(dsa):
    a = dsa.buf(2 * PAGE)
    b = dsa.buf(2 * PAGE, populate=False)
    dsa.put(b, b"\x00" * 10 + b"\x09")
    rec = dsa.run(dsa.desc(Op.COMPARE, src_addr=a, dst_addr=b, xfer_size=2 * PAGE))
    assert (rec.status, rec.result, rec.bytes_completed) == (S.SUCCESS, 1, 10)


def test_compare_fault_before_any_difference_is_a_partial_completion_on_a_read(dsa):
    a = dsa.buf(2 * PAGE)
    b = dsa.buf(2 * PAGE, populate=False)
    dsa.put(b, b"\x00")
    rec = dsa.run(dsa.desc(Op.COMPARE, src_addr=a, dst_addr=b, xfer_size=2 * PAGE))
    assert rec.status == S.PAGE_FAULT_NOBOF and not rec.status_write
    assert rec.bytes_completed == PAGE and rec.fault_addr == b + PAGE


@pytest.mark.parametrize(
    ("differ", "expected", "status"),
    [(False, 0, S.SUCCESS), (False, 1, S.SUCCESS_PRED), (True, 1, S.SUCCESS), (True, 0, S.SUCCESS_PRED)],
)
def test_compare_check_result_reports_success_pred_when_the_result_is_not_the_expected_one(
    dsa, differ, expected, status
):
    a, b = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(b, b"\x01" if differ else b"\x00")
    desc = dsa.desc(Op.COMPARE, flags=CR | F.CR, src_addr=a, dst_addr=b, xfer_size=64)
    desc.expected_res = expected
    rec = dsa.run(desc)
    assert rec.status == status and rec.result == int(differ)


def test_compare_with_cache_control_is_invalid_flags(dsa):
    a = dsa.buf(PAGE)
    rec = dsa.run(dsa.desc(Op.COMPARE, flags=CR | F.CC, src_addr=a, dst_addr=a + 64, xfer_size=8))
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == F.CC


def test_compval_matches_the_pattern_little_endian(dsa):
    a = dsa.buf(PAGE)
    dsa.put(a, pattern8(0x0123456789ABCDEF, 100))
    rec = dsa.run(dsa.desc(Op.COMPVAL, src_addr=a, dst_addr=0x0123456789ABCDEF, xfer_size=100))
    assert (rec.status, rec.result) == (S.SUCCESS, 0)


@pytest.mark.parametrize(("size", "at", "reported"), [(24, 13, 8), (24, 7, 0), (13, 10, 10), (13, 4, 0)])
def test_compval_reports_the_differing_word_in_whole_words_and_the_byte_in_the_tail(dsa, size, at, reported):
    a = dsa.buf(PAGE)
    data = bytearray(pattern8(0xA5A5A5A5A5A5A5A5, size))
    data[at] ^= 0xFF
    dsa.put(a, bytes(data))
    rec = dsa.run(dsa.desc(Op.COMPVAL, src_addr=a, dst_addr=0xA5A5A5A5A5A5A5A5, xfer_size=size))
    assert (rec.status, rec.result, rec.bytes_completed) == (S.SUCCESS, 1, reported)


# ---------------------------------------------------------------------------------------
# CR_DELTA, AP_DELTA
# ---------------------------------------------------------------------------------------


def _delta_sources(dsa: Dsa, words: int, differ: list[int]) -> tuple[int, int, bytes]:
    a, b = dsa.buf(max(PAGE, words * 8)), dsa.buf(max(PAGE, words * 8))
    one = b"".join(struct.pack("<Q", i) for i in range(words))
    two = bytearray(one)
    for w in differ:
        two[w * 8 : w * 8 + 8] = struct.pack("<Q", 0xD0D0_0000 + w)
    dsa.put(a, one)
    dsa.put(b, bytes(two))
    return a, b, bytes(two)


def test_cr_delta_writes_10_byte_entries_of_word_offset_and_src2_data(dsa):
    a, b, _ = _delta_sources(dsa, 16, [1, 2, 15])
    rec_addr = dsa.buf(PAGE)
    desc = dsa.desc(Op.CR_DELTA, src_addr=a, dst_addr=b, xfer_size=128)
    desc.delta_addr, desc.max_delta_size = rec_addr, 80
    rec = dsa.run(desc)
    assert (rec.status, rec.result, rec.delta_rec_size) == (S.SUCCESS, 1, 30)
    assert idxd.pack_comp(rec)[16:20] == struct.pack("<I", 30)
    expected = b"".join(struct.pack("<HQ", w, 0xD0D0_0000 + w) for w in (1, 2, 15))
    assert dsa.get(rec_addr, 40) == expected + bytes(10)


def test_cr_delta_of_equal_buffers_gives_result_0_and_an_empty_record(dsa):
    a, b, _ = _delta_sources(dsa, 8, [])
    desc = dsa.desc(Op.CR_DELTA, src_addr=a, dst_addr=b, xfer_size=64)
    desc.delta_addr, desc.max_delta_size = dsa.buf(PAGE), 80
    rec = dsa.run(desc)
    assert (rec.status, rec.result, rec.delta_rec_size) == (S.SUCCESS, 0, 0)


def test_cr_delta_overflow_gives_result_2_and_the_entries_that_fit(dsa):
    a, b, _ = _delta_sources(dsa, 16, list(range(9)))
    rec_addr = dsa.buf(PAGE)
    dsa.put(rec_addr, b"\xcc" * 100)
    desc = dsa.desc(Op.CR_DELTA, src_addr=a, dst_addr=b, xfer_size=128)
    desc.delta_addr, desc.max_delta_size = rec_addr, 85
    rec = dsa.run(desc)
    assert (rec.status, rec.result, rec.delta_rec_size) == (S.SUCCESS, 2, 80)
    assert dsa.get(rec_addr + 80, 20) == b"\xcc" * 20


@pytest.mark.parametrize(("mask", "status"), [(0b010, S.SUCCESS), (0b001, S.SUCCESS_PRED), (0b101, S.SUCCESS_PRED)])
def test_cr_delta_check_result_tests_the_result_bit_of_expected_res_mask(dsa, mask, status):
    a, b, _ = _delta_sources(dsa, 8, [3])
    desc = dsa.desc(Op.CR_DELTA, flags=CR | F.CR, src_addr=a, dst_addr=b, xfer_size=64)
    desc.delta_addr, desc.max_delta_size, desc.expected_res_mask = dsa.buf(PAGE), 80, mask
    rec = dsa.run(desc)
    assert rec.status == status and rec.result == 1


@pytest.mark.parametrize(
    ("field", "value", "status"),
    [
        ("xfer_size", 60, S.XFER_ERANGE),
        ("xfer_size", 0x80000 + 8, S.XFER_ERANGE),  # 512 KiB: 2^16 offsets of 8-byte words
        ("src_addr", 4, S.ADDR_ALIGN),
        ("max_delta_size", 70, S.DR_ERANGE),
    ],
)
def test_cr_delta_parameter_limits(dsa, field, value, status):
    a, b, _ = _delta_sources(dsa, 8, [1])
    desc = dsa.desc(Op.CR_DELTA, src_addr=a, dst_addr=b, xfer_size=64)
    desc.delta_addr, desc.max_delta_size = dsa.buf(PAGE), 80
    if field == "src_addr":
        value += a
    setattr(desc, field, value)
    assert dsa.run(desc).status == status


def test_ap_delta_applies_the_record_cr_delta_made(dsa):
    a, b, two = _delta_sources(dsa, 64, [0, 5, 6, 63])
    rec_addr, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(dst, dsa.get(a, 512))
    cr = dsa.desc(Op.CR_DELTA, src_addr=a, dst_addr=b, xfer_size=512)
    cr.delta_addr, cr.max_delta_size = rec_addr, 1024
    made = dsa.run(cr)
    ap = dsa.desc(Op.AP_DELTA, src_addr=rec_addr, dst_addr=dst, xfer_size=512)
    ap.delta_rec_size = made.delta_rec_size
    assert dsa.run(ap).status == S.SUCCESS
    assert dsa.get(dst, 512) == two


def _ap(dsa: Dsa, entries: list[tuple[int, int]], size: int = 64) -> tuple[idxd.DsaCompletionRecord, int]:
    rec_addr, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(rec_addr, b"".join(struct.pack("<HQ", o, v) for o, v in entries))
    desc = dsa.desc(Op.AP_DELTA, src_addr=rec_addr, dst_addr=dst, xfer_size=size)
    desc.delta_rec_size = 10 * len(entries)
    return dsa.run(desc), dst


def test_ap_delta_offsets_not_increasing_is_dr_offset_noinc_after_the_earlier_entries(dsa):
    rec, dst = _ap(dsa, [(1, 0x11), (3, 0x33), (3, 0x44)])
    assert (rec.status, rec.bytes_completed) == (S.DR_OFFSET_NOINC, 20)
    assert dsa.get(dst, 32) == bytes(8) + struct.pack("<Q", 0x11) + bytes(8) + struct.pack("<Q", 0x33)


def test_ap_delta_offset_beyond_the_destination_is_dr_offset_erange(dsa):
    rec, _ = _ap(dsa, [(1, 1), (8, 2)], size=64)
    assert (rec.status, rec.bytes_completed) == (S.DR_OFFSET_ERANGE, 10)


def test_ap_delta_record_size_not_whole_entries_is_dr_erange(dsa):
    rec_addr, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    desc = dsa.desc(Op.AP_DELTA, src_addr=rec_addr, dst_addr=dst, xfer_size=64)
    desc.delta_rec_size = 15
    assert dsa.run(desc).status == S.DR_ERANGE


def test_ap_delta_record_overlapping_the_destination_is_overlap_buffers(dsa):
    buf = dsa.buf(PAGE)
    desc = dsa.desc(Op.AP_DELTA, src_addr=buf + 32, dst_addr=buf, xfer_size=64)
    desc.delta_rec_size = 10
    assert dsa.run(desc).status == S.OVERLAP_BUFFERS


# ---------------------------------------------------------------------------------------
# DUALCAST
# ---------------------------------------------------------------------------------------


def test_dualcast_copies_to_both_destinations(dsa):
    src, d1, d2 = dsa.buf(PAGE), dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, bytes(range(200)))
    desc = dsa.desc(Op.DUALCAST, src_addr=src, dst_addr=d1 + 8, xfer_size=200)
    desc.dest2 = d2 + 8
    assert dsa.run(desc).status == S.SUCCESS
    assert dsa.get(d1 + 8, 200) == dsa.get(d2 + 8, 200) == bytes(range(200))


def test_dualcast_destinations_differing_in_bits_11_0_is_dcast_err_and_nothing_moves(dsa):
    src, d1, d2 = dsa.buf(PAGE), dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"z" * 64)
    desc = dsa.desc(Op.DUALCAST, src_addr=src, dst_addr=d1, xfer_size=64)
    desc.dest2 = d2 + 64
    assert dsa.run(desc).status == S.DCAST_ERR
    assert dsa.get(d1, 64) == bytes(64)


def test_dualcast_overlapping_destinations_is_overlap_buffers(dsa):
    src, d1 = dsa.buf(PAGE), dsa.buf(3 * PAGE)
    desc = dsa.desc(Op.DUALCAST, src_addr=src, dst_addr=d1, xfer_size=2 * PAGE)
    desc.dest2 = d1 + PAGE
    assert dsa.run(desc).status == S.OVERLAP_BUFFERS


def test_dualcast_fault_on_the_second_destination_stops_both_copies_there(dsa):
    src, d1 = dsa.buf(2 * PAGE), dsa.buf(2 * PAGE)
    d2 = dsa.buf(2 * PAGE, populate=False)
    dsa.put(d2, b"\x00")
    dsa.put(src, b"q" * 2 * PAGE)
    desc = dsa.desc(Op.DUALCAST, src_addr=src, dst_addr=d1, xfer_size=2 * PAGE)
    desc.dest2 = d2
    rec = dsa.run(desc)
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.status_write
    assert rec.bytes_completed == PAGE and rec.fault_addr == d2 + PAGE
    assert dsa.get(d1, 2 * PAGE) == b"q" * PAGE + bytes(PAGE)


# ---------------------------------------------------------------------------------------
# CRCGEN, COPY_CRC
# ---------------------------------------------------------------------------------------


def _bitwise_crc32c_reflected(data: bytes, register: int) -> int:
    for byte in data:
        register ^= byte
        for _ in range(8):
            register = (register >> 1) ^ (0x82F63B78 if register & 1 else 0)
    return register


def _reverse(value: int, bits: int) -> int:
    return sum(1 << (bits - 1 - i) for i in range(bits) if value >> i & 1)


def _acfg_crc(data: bytes, seed: int, flags: int) -> int:
    """accel-config's dsa_calculate_crc32, bit by bit instead of by table."""
    if flags & dsa_ops.CRC_FLAG_BYPASS_DATA_REF:
        data = bytes(_reverse(b, 8) for b in data)
    if flags & dsa_ops.CRC_FLAG_BYPASS_CRC_INV_REF:
        return _reverse(_bitwise_crc32c_reflected(data, _reverse(seed, 32)), 32)
    return ~_bitwise_crc32c_reflected(data, ~seed & 0xFFFFFFFF) & 0xFFFFFFFF


@pytest.mark.parametrize(
    ("data", "crc"),
    [
        (b"123456789", 0xE3069283),  # the CRC-32C check value
        (bytes(32), 0x8A9136AA),  # RFC 3720 B.4
        (b"\xff" * 32, 0x62A8AB43),
        (bytes(range(32)), 0x46DD794E),
        (bytes(range(31, -1, -1)), 0x113FDB5C),
    ],
)
def test_dsa_crc32c_with_seed_0_is_the_standard_crc32c(data, crc):
    assert dsa_ops.dsa_crc32c(data, 0) == crc


@pytest.mark.parametrize("flags", [0, 1 << 17, 1 << 18, (1 << 17) | (1 << 18)])
@pytest.mark.parametrize("seed", [0, 0x12345678, 0xFFFFFFFF])
def test_dsa_crc32c_flags_match_the_accel_config_reference(flags, seed):
    data = bytes(range(256)) + b"\x01\x23\x45\x67\x89\xab\xcd\xef" * 5
    assert dsa_ops.dsa_crc32c(data, seed, flags) == _acfg_crc(data, seed, flags)


def test_the_crc_seed_continues_a_crc(dsa):
    assert dsa_ops.dsa_crc32c(b"6789", dsa_ops.dsa_crc32c(b"12345", 0)) == 0xE3069283


def test_crcgen_writes_crc_val_at_byte_16_with_the_seed(dsa):
    src = dsa.buf(PAGE)
    dsa.put(src, b"123456789")
    desc = dsa.desc(Op.CRCGEN, src_addr=src, xfer_size=9)
    rec = dsa.run(desc)
    assert rec.status == S.SUCCESS and rec.crc_val == 0xE3069283
    assert idxd.pack_comp(rec)[16:24] == struct.pack("<Q", 0xE3069283)
    desc.crc_seed = dsa_ops.dsa_crc32c(b"12345", 0)
    desc.src_addr, desc.xfer_size, desc.completion_addr = src + 5, 4, dsa.comp()
    assert dsa.run(desc).crc_val == 0xE3069283


def test_crcgen_reads_the_seed_from_seed_addr_with_read_crc_seed(dsa):
    src, seed = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"6789")
    dsa.put(seed, struct.pack("<I", dsa_ops.dsa_crc32c(b"12345", 0)))
    desc = dsa.desc(Op.CRCGEN, flags=CR | dsa_ops.CRC_FLAG_READ_CRC_SEED, src_addr=src, xfer_size=4)
    desc.seed_addr = seed
    assert dsa.run(desc).crc_val == 0xE3069283


def test_crcgen_seed_on_an_untouched_page_is_a_read_fault_at_seed_addr(dsa):
    src, seed = dsa.buf(PAGE), dsa.buf(PAGE, populate=False)
    desc = dsa.desc(Op.CRCGEN, flags=CR | dsa_ops.CRC_FLAG_READ_CRC_SEED, src_addr=src, xfer_size=4)
    desc.seed_addr = seed + 8
    rec = dsa.run(desc)
    assert (rec.status, rec.bytes_completed, rec.fault_addr, rec.status_write) == (
        S.PAGE_FAULT_NOBOF,
        0,
        seed + 8,
        False,
    )


def test_crcgen_bypass_flags_reach_the_device(dsa):
    src = dsa.buf(PAGE)
    dsa.put(src, b"123456789")
    flags = dsa_ops.CRC_FLAG_BYPASS_CRC_INV_REF | dsa_ops.CRC_FLAG_BYPASS_DATA_REF
    desc = dsa.desc(Op.CRCGEN, flags=CR | flags, src_addr=src, xfer_size=9)
    desc.crc_seed = 0x12345678
    assert dsa.run(desc).crc_val == _acfg_crc(b"123456789", 0x12345678, flags)


def test_crcgen_partial_completion_carries_the_crc_of_the_bytes_done(dsa):
    src = dsa.buf(2 * PAGE, populate=False)
    dsa.put(src, b"\x5a" * PAGE)
    rec = dsa.run(dsa.desc(Op.CRCGEN, src_addr=src, xfer_size=2 * PAGE))
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.bytes_completed == PAGE
    assert rec.crc_val == dsa_ops.dsa_crc32c(b"\x5a" * PAGE, 0)


def test_copy_crc_copies_and_crcs(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"123456789")
    rec = dsa.run(dsa.desc(Op.COPY_CRC, src_addr=src, dst_addr=dst, xfer_size=9))
    assert (rec.status, rec.crc_val) == (S.SUCCESS, 0xE3069283)
    assert dsa.get(dst, 10) == b"123456789\x00"


def test_copy_crc_overlapping_buffers_is_overlap_buffers(dsa):
    buf = dsa.buf(PAGE)
    assert dsa.run(dsa.desc(Op.COPY_CRC, src_addr=buf, dst_addr=buf + 4, xfer_size=9)).status == S.OVERLAP_BUFFERS


# ---------------------------------------------------------------------------------------
# CFLUSH
# ---------------------------------------------------------------------------------------


def test_cflush_changes_no_memory(dsa):
    dst = dsa.buf(PAGE)
    dsa.put(dst, b"keep")
    assert dsa.run(dsa.desc(Op.CFLUSH, dst_addr=dst, xfer_size=PAGE)).status == S.SUCCESS
    assert dsa.get(dst, 4) == b"keep"


def test_cflush_of_an_untouched_page_is_a_read_fault(dsa):
    dst = dsa.buf(2 * PAGE, populate=False)
    dsa.put(dst, b"\x01")
    rec = dsa.run(dsa.desc(Op.CFLUSH, dst_addr=dst, xfer_size=2 * PAGE))
    assert (rec.status, rec.bytes_completed, rec.fault_addr, rec.status_write) == (
        S.PAGE_FAULT_NOBOF,
        PAGE,
        dst + PAGE,
        False,
    )


# ---------------------------------------------------------------------------------------
# Opcodes, op_config, completion records, interrupts, BOF, translation
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("opcode", [Op.DIX_GEN, Op.TRANSL_FETCH, 0x3F])
def test_unsupported_opcodes_are_bad_opcode(dsa, opcode):
    assert dsa.run(dsa.desc(opcode)).status == S.BAD_OPCODE


def test_prs_disable_is_a_wqcfg_field_configured_while_the_wq_is_disabled(dsa):
    accel, other = dsa.fab.accel, 1 - dsa.wq_id
    with pytest.raises(FailedPrecondition):
        accel.configure_wq(dsa.j, "dsa0", other, {"prs_disable": True})
    accel.set_wq_enabled(dsa.j, "dsa0", other, False)
    wq = accel.configure_wq(dsa.j, "dsa0", other, {"prs_disable": True})
    assert wq.cfg.prs_disable and not wq.cfg.enabled
    assert [t.after for t in dsa.transitions if t.kind == "wq.config"][-1] == {"prs_disable": True}


def test_an_opcode_the_wq_op_config_disables_is_bad_opcode():
    dsa = Dsa(op_config=1 << Op.MEMMOVE)
    buf = dsa.buf(2 * PAGE)
    assert dsa.run(dsa.desc(Op.MEMMOVE, src_addr=buf, dst_addr=buf + PAGE, xfer_size=8)).status == S.SUCCESS
    assert dsa.run(dsa.desc(Op.NOOP)).status == S.BAD_OPCODE


def test_without_rcr_the_record_is_written_only_when_the_descriptor_fails(dsa):
    buf = dsa.buf(2 * PAGE)
    ok = dsa.run(dsa.desc(Op.MEMMOVE, flags=int(F.CRAV), src_addr=buf, dst_addr=buf + PAGE, xfer_size=8))
    assert idxd.pack_comp(ok) == bytes(32)
    bad = dsa.run(dsa.desc(Op.MEMMOVE, flags=int(F.CRAV), src_addr=buf, dst_addr=buf + PAGE, xfer_size=0))
    assert bad.status == S.XFER_ERANGE


def test_without_crav_nothing_is_written_and_a_failure_goes_to_swerr(dsa):
    comp = dsa.comp()
    dsa.run(dsa.desc(Op.NOOP, flags=int(F.RCR), comp=comp))
    assert dsa.record(comp).status == 0 and dsa.device.swerr == 0
    dsa.run(dsa.desc(Op.MEMMOVE, flags=int(F.RCR), comp=comp, xfer_size=0))
    assert dsa.record(comp).status == 0 and dsa.device.swerr == 1
    assert dsa.completes("device.swerr")[-1].detail["error"] == S.XFER_ERANGE


def test_a_misaligned_completion_record_is_a_swerr_and_the_operation_does_not_run(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"data")
    comp = dsa.comp()
    dsa.run(dsa.desc(Op.MEMMOVE, comp=comp + 8, src_addr=src, dst_addr=dst, xfer_size=4))
    assert dsa.device.swerr == 1 and dsa.completes("device.swerr")[0].detail["error"] == S.CRA_ALIGN
    assert dsa.get(dst, 4) == bytes(4) and dsa.get(comp, 32) == bytes(32)


def test_a_completion_record_on_an_untouched_page_without_page_requests_is_discarded_before_it_runs():
    # DSA spec 5.4: a completion record address that cannot be translated makes the
    # device discard the descriptor, reporting the error in SWERROR.
    dsa = Dsa(prs_disable=True)
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"data")
    comp = dsa.buf(PAGE, populate=False)
    dsa.submit(dsa.desc(Op.MEMMOVE, comp=comp, src_addr=src, dst_addr=dst, xfer_size=4))
    dsa.drain()
    assert dsa.device.swerr == 1 and dsa.completes("device.swerr")[0].detail["error"] == S.CRA_XLAT
    assert dsa.get(dst, 4) == bytes(4)
    assert not dsa.present(comp) and not dsa.completes("prq.request")


def test_rci_records_the_completion_interrupt_with_its_handle(dsa):
    desc = dsa.desc(Op.NOOP, flags=CR | F.RCI)
    desc.int_handle = 0x1234
    dsa.run(desc)
    (irq,) = dsa.completes("desc.interrupt")
    assert irq.after == {"int_handle": 0x1234}


def test_bof_on_a_wq_without_block_on_fault_is_invalid_flags():
    dsa = Dsa(block_on_fault=False)
    buf = dsa.buf(2 * PAGE)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, flags=CR | F.BOF, src_addr=buf, dst_addr=buf + PAGE, xfer_size=8))
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == F.BOF


def test_with_block_on_fault_a_missing_page_is_paged_in_by_a_page_request_and_the_copy_completes(dsa):
    src = dsa.buf(PAGE)
    dsa.put(src, b"\xab" * 64)
    dst = dsa.buf(2 * PAGE, populate=False)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, flags=CR | F.BOF, src_addr=src, dst_addr=dst + PAGE - 32, xfer_size=64))
    assert rec.status == S.SUCCESS
    assert dsa.get(dst + PAGE - 32, 64) == b"\xab" * 64
    reqs = [t for t in dsa.transitions if t.kind == "prq.request"]
    resp = [t.detail["response"] for t in dsa.transitions if t.kind == "prq.response"]
    assert len(reqs) == 2 and resp == ["success", "success"]  # one per page
    assert dsa.completes()[-1].detail == {"block_on_fault": True}
    assert dsa.device.page_requests == 2


def test_with_block_on_fault_an_unmapped_page_gets_an_invalid_response_and_page_fault_ir(dsa):
    src = dsa.buf(PAGE)
    dst = dsa.buf(PAGE)
    dsa.k.munmap(dsa.j, dsa.pid, dst, PAGE)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, flags=CR | F.BOF, src_addr=src, dst_addr=dst, xfer_size=64))
    assert rec.status == S.PAGE_FAULT_IR and rec.fault_addr == dst and rec.status_write
    assert [t.detail["response"] for t in dsa.transitions if t.kind == "prq.response"] == ["invalid"]


def test_without_block_on_fault_no_page_request_is_sent(dsa):
    src = dsa.buf(PAGE)
    dst = dsa.buf(PAGE, populate=False)
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=64))
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.fault_addr == dst
    assert not [t for t in dsa.transitions if t.kind == "prq.request"]


def test_memmove_onto_itself_succeeds_and_leaves_the_bytes(dsa):
    # The device copies overlapping buffers (GENCAP overlapping copy support, which
    # accel-config tests as ACCTEST_CAP_OVERLAP_COPY), so src == dst is a copy that
    # changes nothing, never OVERLAP_BUFFERS (that status is for the operations that
    # forbid overlap: dualcast, copy with CRC, the delta and DIF operations).
    buf = dsa.buf(PAGE)
    dsa.put(buf, b"same bytes")
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=buf, dst_addr=buf, xfer_size=10))
    assert (rec.status, rec.result, rec.bytes_completed) == (S.SUCCESS, 0, 0)
    assert dsa.get(buf, 10) == b"same bytes"


def test_device_tlb_serves_repeated_translations_and_is_invalidated_by_munmap(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=64))
    misses = dsa.device.devtlb_misses
    dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=64))
    assert dsa.device.devtlb_hits > 0 and dsa.device.devtlb_misses == misses  # all pages cached
    dsa.k.munmap(dsa.j, dsa.pid, dst, PAGE)
    assert (dsa.pasid, dst >> 12) not in dsa.device.devtlb
    rec = dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=64))
    assert rec.status == S.PAGE_FAULT_NOBOF and rec.fault_addr == dst  # never the stale frame


@pytest.mark.parametrize(
    ("flags", "status"),
    [
        # The record cannot be translated through that PASID either: discarded (5.4).
        (CR, S.CRA_XLAT),
        # No record: the operation runs and its translation fails.
        (int(F.RCI), S.TRANSLATION_FAIL),
    ],
)
def test_a_pasid_without_a_pasid_entry_is_a_translation_failure(flags, status):
    dsa = Dsa(WQ_MODE_SHARED)
    buf = dsa.buf(2 * PAGE)
    desc = dsa.desc(Op.MEMMOVE, flags=flags, src_addr=buf, dst_addr=buf + PAGE, xfer_size=8)
    desc.pasid = dsa.pasid + 7  # an ENQCMDS-like store naming a PASID nobody bound
    command = idxd.pack_desc(desc)
    assert dsa.fab.accel.submit(dsa.j, "dsa0", dsa.offset, command, "enqcmds", 0).accepted
    dsa.drain()
    assert dsa.completes()[-1].after["status"] == status
    assert dsa.completes("device.swerr")[-1].detail["error"] == status


def test_dedicated_wq_admits_wq_size_descriptors_through_the_mapped_portal(dsa):
    for e in range(len(dsa.device.engines)):
        dsa.device.engines[e] = 10**12  # engines busy: nothing drains
    comps = [dsa.desc(Op.NOOP) for _ in range(17)]
    for d in comps[:16]:
        assert dsa.submit(d)
    assert dsa.device.swerr == 0
    dsa.submit(comps[16])  # the 17th overflows: MOVDIR64B cannot be told, SWERR
    assert dsa.device.swerr == 1


def test_shared_wq_descriptor_runs_with_the_pasid_enqcmd_put_in():
    dsa = Dsa(WQ_MODE_SHARED)
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"shared")
    assert dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=6)).status == S.SUCCESS
    assert dsa.get(dst, 6) == b"shared"
    assert dsa.completes()[-1].after["pasid"] == dsa.pasid


def test_cost_is_overhead_plus_bytes_over_the_engine_rate(dsa):
    src, dst = dsa.buf(8 * PAGE), dsa.buf(8 * PAGE)
    dsa.run(dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=30000))
    t = dsa.completes()[-1]
    costs = dsa.fab.accel.costs
    # Three first-level walks on IOTLB misses: the completion record, the source and the
    # destination (each a range of pages not yet cached), each charged costs.iotlb_miss.
    walks = 3
    assert t.cycles == costs.desc_overhead + -(-30000 // costs.engine_bytes_per_cycle) + walks * costs.iotlb_miss
    assert t.after["end"] - t.after["start"] == t.cycles and t.after["bytes"] == 30000


# ---------------------------------------------------------------------------------------
# BATCH
# ---------------------------------------------------------------------------------------


def _batch(dsa: Dsa, subs: list[idxd.DsaHwDesc], *, flags: int = CR) -> idxd.DsaHwDesc:
    """Write the sub-descriptors to a 64-byte aligned list and make the batch descriptor."""
    lst = dsa.buf(max(PAGE, 64 * len(subs)))
    dsa.put(lst, b"".join(idxd.pack_desc(s) for s in subs))
    return dsa.desc(Op.BATCH, flags=flags, src_addr=lst, xfer_size=len(subs))


def test_batch_runs_each_descriptor_with_its_own_record_and_counts_them(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, bytes(range(192)))
    subs = [dsa.desc(Op.MEMMOVE, src_addr=src + 64 * i, dst_addr=dst + 64 * i, xfer_size=64) for i in range(3)]
    rec = dsa.run(_batch(dsa, subs))
    assert (rec.status, rec.result, rec.descs_completed) == (S.SUCCESS, 0, 3)
    assert all(dsa.record(s.completion_addr).status == S.SUCCESS for s in subs)
    assert dsa.get(dst, 192) == bytes(range(192))


def test_a_failed_sub_descriptor_makes_batch_fail_with_result_1_and_the_rest_still_run(dsa):
    buf = dsa.buf(2 * PAGE)
    subs = [dsa.desc(Op.NOOP), dsa.desc(Op.MEMMOVE, src_addr=buf, dst_addr=buf + PAGE, xfer_size=0), dsa.desc(Op.NOOP)]
    rec = dsa.run(_batch(dsa, subs))
    assert (rec.status, rec.result, rec.descs_completed) == (S.BATCH_FAIL, 1, 3)
    assert [dsa.record(s.completion_addr).status for s in subs] == [S.SUCCESS, S.XFER_ERANGE, S.SUCCESS]


def test_a_fence_after_a_failure_abandons_the_rest_of_the_batch(dsa):
    subs = [dsa.desc(Op.NOOP), dsa.desc(0x3F), dsa.desc(Op.NOOP), dsa.desc(Op.NOOP, flags=CR | F.FENCE)]
    subs.append(dsa.desc(Op.NOOP))
    rec = dsa.run(_batch(dsa, subs))
    assert (rec.status, rec.result, rec.descs_completed) == (S.BATCH_FAIL, 1, 3)
    assert [dsa.record(s.completion_addr).status for s in subs] == [S.SUCCESS, S.BAD_OPCODE, S.SUCCESS, 0, 0]


def test_a_false_predicate_before_a_fence_abandons_the_fenced_work(dsa):
    a, b = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(b, b"\x01")
    check = dsa.desc(Op.COMPARE, flags=CR | F.CR, src_addr=a, dst_addr=b, xfer_size=8)  # expects equal
    fenced = dsa.desc(Op.NOOP, flags=CR | F.FENCE)
    rec = dsa.run(_batch(dsa, [check, fenced]))
    assert dsa.record(check.completion_addr).status == S.SUCCESS_PRED
    assert (rec.status, rec.descs_completed) == (S.BATCH_FAIL, 1)
    assert dsa.record(fenced.completion_addr).status == 0


def test_a_fence_after_successes_only_waits(dsa):
    subs = [dsa.desc(Op.NOOP), dsa.desc(Op.NOOP, flags=CR | F.FENCE)]
    assert dsa.run(_batch(dsa, subs)).status == S.SUCCESS


def test_a_descriptor_list_fault_at_k_is_batch_page_fault_after_running_the_first_k():
    dsa = Dsa(prs_disable=True)  # the WQ sends no page requests, so the fault stays
    lst = dsa.buf(2 * PAGE, populate=False)
    base = lst + PAGE - 2 * 64  # descriptors 0 and 1 on the first page, 2 and 3 on the second
    subs = [dsa.desc(Op.NOOP) for _ in range(4)]
    dsa.put(base, b"".join(idxd.pack_desc(s) for s in subs[:2]))
    rec = dsa.run(dsa.desc(Op.BATCH, src_addr=base, xfer_size=4))
    assert (rec.status, rec.result, rec.descs_completed) == (S.BATCH_PAGE_FAULT, 0, 2)
    assert rec.fault_addr == lst + PAGE and not rec.status_write
    assert [dsa.record(s.completion_addr).status for s in subs] == [S.SUCCESS, S.SUCCESS, 0, 0]


@pytest.mark.parametrize(("count", "status"), [(0, S.DESC_CNT_ERANGE), (1, S.DESC_CNT_ERANGE), (9, S.DESC_CNT_ERANGE)])
def test_batch_count_below_2_or_above_the_wq_maximum_is_desc_cnt_erange(count, status):
    dsa = Dsa(max_batch_shift=3)
    lst = dsa.buf(PAGE)
    assert dsa.run(dsa.desc(Op.BATCH, src_addr=lst, xfer_size=count)).status == status


def test_batch_list_not_64_byte_aligned_is_desclist_align(dsa):
    lst = dsa.buf(PAGE)
    assert dsa.run(dsa.desc(Op.BATCH, src_addr=lst + 32, xfer_size=2)).status == S.DESCLIST_ALIGN


@pytest.mark.parametrize("flag", [F.BOF, F.FENCE])
def test_batch_descriptor_with_bof_or_fence_is_invalid_flags(dsa, flag):
    rec = dsa.run(_batch(dsa, [dsa.desc(Op.NOOP), dsa.desc(Op.NOOP)], flags=CR | flag))
    assert rec.status == S.INVALID_FLAGS and rec.invalid_flags == flag


def test_batch_destination_field_is_reserved(dsa):
    desc = _batch(dsa, [dsa.desc(Op.NOOP), dsa.desc(Op.NOOP)])
    desc.dst_addr = 0x1000
    assert dsa.run(desc).status == S.NOZERO_RESERVE


@pytest.mark.parametrize("inner", [Op.BATCH, Op.DRAIN])
def test_batch_or_drain_inside_a_batch_is_bad_opcode(dsa, inner):
    subs = [dsa.desc(Op.NOOP), dsa.desc(inner)]
    rec = dsa.run(_batch(dsa, subs))
    assert (rec.status, rec.descs_completed) == (S.BATCH_FAIL, 2)
    assert dsa.record(subs[1].completion_addr).status == S.BAD_OPCODE


def test_a_sub_descriptor_whose_record_cannot_be_written_fails_the_batch(dsa):
    subs = [dsa.desc(Op.NOOP, comp=dsa.comp() + 4), dsa.desc(Op.NOOP)]
    rec = dsa.run(_batch(dsa, subs))
    assert (rec.status, rec.result, rec.descs_completed) == (S.BATCH_FAIL, 1, 2)
    assert dsa.device.swerr == 1


def test_op_config_without_batch_makes_the_batch_bad_opcode():
    dsa = Dsa(op_config=1 << Op.NOOP)
    assert dsa.run(_batch(dsa, [dsa.desc(Op.NOOP), dsa.desc(Op.NOOP)])).status == S.BAD_OPCODE


def test_batch_cost_is_its_list_then_each_sub_descriptor_in_turn(dsa):
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    subs = [dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=1500), dsa.desc(Op.NOOP)]
    dsa.run(_batch(dsa, subs))
    c = dsa.fab.accel.costs
    s0, s1, b = dsa.completes()
    own = c.desc_overhead + -(-128 // c.engine_bytes_per_cycle)
    # The batch walks for its record and its list; the first sub-descriptor for its source
    # and destination (its record's page is already in the IOTLB); the NOOP for nothing.
    assert b.cycles == own + 2 * c.iotlb_miss and b.after["bytes"] == 0
    assert s0.after["start"] == b.after["start"] + b.cycles
    assert s0.cycles == c.desc_overhead + 100 + 2 * c.iotlb_miss and s1.after["start"] == s0.after["end"]
    assert b.after["end"] == s1.after["end"]
    assert s0.detail == {"batch": b.entity, "index": 0} and s0.entity == b.entity + ".0"


def test_batch_sub_descriptors_use_the_batch_pasid_on_a_shared_wq():
    dsa = Dsa(WQ_MODE_SHARED)
    src, dst = dsa.buf(PAGE), dsa.buf(PAGE)
    dsa.put(src, b"abc")
    sub = dsa.desc(Op.MEMMOVE, src_addr=src, dst_addr=dst, xfer_size=3)
    rec = dsa.run(_batch(dsa, [sub, dsa.desc(Op.NOOP)]))
    assert rec.status == S.SUCCESS and dsa.get(dst, 3) == b"abc"
    assert {t.after["pasid"] for t in dsa.completes()} == {dsa.pasid}


def test_same_descriptors_give_the_same_transitions():
    def run() -> list[tuple]:
        dsa = Dsa()
        src, dst = dsa.buf(PAGE), dsa.buf(PAGE, populate=False)
        dsa.put(src, b"x" * 100)
        subs = [
            dsa.desc(Op.COPY_CRC, src_addr=src, dst_addr=dst, xfer_size=100),
            dsa.desc(Op.CRCGEN, src_addr=src, xfer_size=100),
        ]
        dsa.run(_batch(dsa, subs))
        return [(t.entity, t.kind, t.before, t.after, t.cycles, t.detail) for t in dsa.transitions]

    assert run() == run()
