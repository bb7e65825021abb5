"""The model's short cuts give exactly what the general paths give.

Each fast path below (decoding a repeated 64-byte command once, packing a completion
record once per distinct record, a DMA within one frame, a span of one translated run,
the WQ arbiter, the collector frozen during a replay) is checked against the general
computation it stands for, so that a run re-executes to the same transitions whichever
path served it.

Layouts: include/uapi/linux/idxd.h (``struct dsa_hw_desc``, ``struct
dsa_completion_record``; twin: :mod:`svasim_api.idxd`). Arbitration: [SPEC] Intel DSA
Architecture Specification 3.0, 3.5 (a group's engines take work from its WQs by WQ
priority), modelled as highest priority first and round robin among equals
(:meth:`svasim.model.accel.Accel._next_wq`).
"""

from __future__ import annotations

import gc
import random
import threading
from collections import deque
from datetime import UTC, datetime

import pytest

from svasim.model import accel, dsa_ops
from svasim.model.journal import Journal
from svasim.model.kernel.core import changed
from svasim.model.memory import PAGE_SIZE, PhysicalMemory
from svasim.model.ports import TranslateResult, Translation
from svasim.replay import Fabric, ReplayInputError, config_of
from svasim.rpc.common import RequestGate
from svasim.store import EventRow, RunInfo
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S

from .helpers import memmove_desc


def test_a_repeated_command_decodes_as_unpack_desc_does_into_a_new_descriptor_each_time() -> None:
    """struct dsa_hw_desc: the cached decode equals ``unpack_desc``; each submission gets
    its own object, since the device rewrites the PASID of a dedicated WQ's descriptor."""
    raw = memmove_desc(0x1000, 0x2000, 4096, 0x3000)
    first = accel._unpack_desc(raw)
    second = accel._unpack_desc(raw)
    assert first == second == idxd.unpack_desc(raw)
    assert first is not second
    second.pasid = 7
    assert accel._unpack_desc(raw) == idxd.unpack_desc(raw)
    assert accel._unpack_desc(raw).pasid == 0


def test_the_decode_cache_is_bounded() -> None:
    """Whatever a run submits, the cache holds at most ``_CACHE_LIMIT`` commands."""
    for i in range(accel._CACHE_LIMIT + 10):
        raw = memmove_desc(0x1000, 0x2000 + 64 * i, 64, 0x3000)
        assert accel._unpack_desc(raw) == idxd.unpack_desc(raw)
    assert len(accel._DECODED) <= accel._CACHE_LIMIT


@pytest.mark.parametrize(
    "comp",
    [
        dsa_ops.Completion(S.SUCCESS, bytes=4096),
        dsa_ops.Completion(int(S.SUCCESS)),
        dsa_ops.Completion(S.PAGE_FAULT_NOBOF, bytes_completed=100, fault_addr=0x7000, write_fault=True),
        dsa_ops.Completion(S.INVALID_FLAGS, invalid_flags=0x10000),
        dsa_ops.Completion(S.SUCCESS, crc_val=0xDEADBEEF),
        dsa_ops.Completion(S.SUCCESS, crc_val=0),
        dsa_ops.Completion(S.SUCCESS, delta_rec_size=80),
        dsa_ops.Completion(S.SUCCESS, dif_tags={"dif_chk_ref_tag": 5}),
        dsa_ops.Completion(S.BATCH_FAIL, result=1, bytes_completed=3),
    ],
)
def test_a_packed_completion_record_is_pack_comp_of_its_record(comp: dsa_ops.Completion) -> None:
    """struct dsa_completion_record: the same 32 bytes, cached or not, asked twice."""
    expected = idxd.pack_comp(comp.record())
    assert accel._pack_record(comp) == expected
    assert accel._pack_record(comp) == expected


def test_records_that_differ_only_in_the_op_specific_union_pack_apart() -> None:
    """A CRC value of 0 and no CRC value are different records (bytes 16-23)."""
    with_crc = accel._pack_record(dsa_ops.Completion(S.SUCCESS, crc_val=0x1234))
    without = accel._pack_record(dsa_ops.Completion(S.SUCCESS))
    assert with_crc != without
    assert with_crc == idxd.pack_comp(dsa_ops.Completion(S.SUCCESS, crc_val=0x1234).record())


def _slow_read(mem: PhysicalMemory, physical: int, length: int) -> bytes:
    out = bytearray()
    for pa in range(physical, physical + length):
        out += mem.frames[pa // PAGE_SIZE][pa % PAGE_SIZE : pa % PAGE_SIZE + 1]
    return bytes(out)


def test_reads_and_writes_within_a_frame_and_across_frames_agree_byte_for_byte() -> None:
    """A DMA within one frame and one across frames see the same memory."""
    mem = PhysicalMemory(16 * PAGE_SIZE)
    a, b = mem.alloc_frame(), mem.alloc_frame()
    assert b == a + 1
    base = a * PAGE_SIZE
    mem.write(base + 100, bytes(range(200)))  # within frame a
    mem.write(base + PAGE_SIZE - 50, bytes(range(100, 200)))  # across a and b
    for physical, length in ((base + 100, 200), (base + PAGE_SIZE - 50, 100), (base, 2 * PAGE_SIZE), (base, 1)):
        got = mem.read(physical, length)
        assert type(got) is bytes
        assert got == _slow_read(mem, physical, length)
    assert mem.read(base + 100, 200) == bytes(range(200))
    assert mem.read(base + PAGE_SIZE - 50, 100) == bytes(range(100, 200))
    assert mem.read(base, 0) == b""


def test_a_dma_to_a_missing_frame_is_refused_before_any_byte_changes() -> None:
    """Within a frame or across frames, a frame that does not exist is a bus error with
    the same message, and memory is left as it was."""
    mem = PhysicalMemory(16 * PAGE_SIZE)
    pfn = mem.alloc_frame()
    missing = (pfn + 5) * PAGE_SIZE
    with pytest.raises(ValueError, match=f"physical address {missing + 8:#x} is not backed"):
        mem.read(missing + 8, 16)
    with pytest.raises(ValueError, match=f"physical address {missing:#x} is not backed"):
        mem.write(missing + 8, b"x" * 16)
    with pytest.raises(ValueError, match=f"physical address {(pfn + 1) * PAGE_SIZE:#x} is not backed"):
        mem.write(pfn * PAGE_SIZE + PAGE_SIZE - 4, b"y" * 8)
    assert mem.read(pfn * PAGE_SIZE, PAGE_SIZE) == bytes(PAGE_SIZE)


@pytest.mark.parametrize(
    ("runs", "length", "covered"),
    [
        ([4096], 4096, 4096),
        ([100], 4096, 100),
        ([8192], 4096, 4096),
        ([1000, 2000], 4096, 3000),
        ([4096, 4096], 6000, 6000),
        ([], 64, 0),
    ],
)
def test_a_span_covers_the_sum_of_its_runs_up_to_its_length(runs: list[int], length: int, covered: int) -> None:
    """One run or several: the bytes from the start that translated."""
    tr = TranslateResult([Translation(i * 0x10000, i * 0x20000, n) for i, n in enumerate(runs)])
    span = dsa_ops.Span(0, length, False, tr)
    assert span.covered == covered == min(tr.covered, length)
    assert span.complete == (covered >= length)


def _reference_next_wq(dev: accel.Device) -> accel.WorkQueue | None:
    # The arbiter as first written: WQs with work whose group has engines, highest
    # priority, round robin from the last one served.
    ready = {wq.id: wq.cfg.priority for wq in dev.wqs if wq.queue and dev.group_engines(wq.cfg.group_id)}
    if not ready:
        return None
    best = max(ready.values())
    n = len(dev.wqs)
    for i in range(n):
        w = (dev.rr + i) % n
        if ready.get(w) == best:
            dev.rr = (w + 1) % n
            return dev.wqs[w]
    return None


def test_the_wq_arbiter_picks_what_priority_then_round_robin_picks() -> None:
    """Random devices (WQs with and without work, in groups with and without engines, of
    equal and different priorities): the same WQ and the same round-robin pointer."""
    rng = random.Random(1337)
    model = accel.Accel(None, None)  # type: ignore[arg-type]
    for _ in range(2000):
        nwqs = rng.randint(2, 8)
        dev = accel.default_devices(engines=rng.randint(1, 4), groups=4, wqs=nwqs)[0]
        dev.engine_group = [rng.choice([-1, 0, 1, 2]) for _ in dev.engines]
        for wq in dev.wqs:
            wq.cfg.group_id = rng.choice([-1, 0, 1, 2, 3])
            wq.cfg.priority = rng.choice([1, 5, 5, 10])
            wq.queue = deque([None] * rng.choice([0, 0, 1, 3]))  # type: ignore[list-item]
        dev.rr = rng.randrange(nwqs)
        twin = accel.Device(dev.name, dev.wqs, dev.engines, rr=dev.rr, engine_group=dev.engine_group)
        got = model._next_wq(dev)
        want = _reference_next_wq(twin)
        assert (got.id if got else None) == (want.id if want else None)
        assert dev.rr == twin.rr


def test_changed_names_the_fields_that_differ_or_are_new() -> None:
    """What the end of a kernel operation records: new and changed fields, nothing else."""
    assert changed({"a": 1, "b": [1]}, {"a": 1, "b": [1]}) == {}
    assert changed({"a": 1}, {"a": 2, "b": None}) == {"a": 2, "b": None}
    assert changed({}, {"x": 0}) == {"x": 0}
    assert changed({"a": 1, "gone": 2}, {"a": 1}) == {}


def test_a_gate_turn_is_given_back_when_the_request_fails() -> None:
    """One client request at a time: a request that raises frees the gate for the next."""
    gate = RequestGate(max_queued=0, timeout=0)
    with pytest.raises(RuntimeError), gate.turn():
        raise RuntimeError("refused")
    took: list[bool] = []

    def another_request() -> None:
        with gate.turn():  # Saturated at once if the turn were still held
            took.append(True)

    t = threading.Thread(target=another_request)
    t.start()
    t.join()
    assert took == [True]


def test_a_replay_leaves_the_collector_as_it_found_it_even_when_an_input_fails() -> None:
    """The record is frozen for the collector only while its inputs are fed."""
    run = RunInfo("r1", "r1", datetime.now(UTC), {}, "linux-5.18", 0, "0", None, 1)
    config, costs = config_of(run)
    fabric = Fabric(config, costs, _Recorder())
    bad = EventRow("r1", 1, "cpu", "client", "input", None, {"method": "cpu.Nope", "request": {}}, None, 0)
    assert gc.get_freeze_count() == 0
    with pytest.raises(ReplayInputError):
        fabric.feed_all(run, [bad])
    assert gc.get_freeze_count() == 0
    assert fabric.feed_all(run, []) == (0, 0)
    assert gc.get_freeze_count() == 0


class _Recorder:
    def append(self, transitions: list[object]) -> None:
        """Nothing kept."""

    def flush(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def wait_durable(self, t: object, timeout: float | None = None) -> None:
        """Nothing to wait for."""


class _NoIommu:
    """An IOMMU that translates nothing (each device-TLB miss faults at its address)."""

    def __init__(self) -> None:
        self.asked: list[tuple[int, int, bool]] = []

    def translate(self, journal: object, device: str, pasid: int, va: int, length: int, write: bool) -> object:
        self.asked.append((va, length, write))
        return TranslateResult([], "not_present", va)


def test_a_device_tlb_hit_within_a_page_translates_as_a_walk_of_the_cached_entries_does() -> None:
    """PCIe ATS (the device TLB caches the IOMMU's answers per PASID and page): a range in
    one cached page is one run; a write to a read-only entry, or a range reaching an
    uncached page, asks the IOMMU for the rest."""
    iommu = _NoIommu()
    model = accel.Accel(iommu, None)  # type: ignore[arg-type]
    dev = model.devices["dsa0"]
    dev.devtlb[(3, 0x10)] = (0x99, True)
    dev.devtlb[(3, 0x11)] = (0x9A, False)
    j = Journal("accel")
    tr = model._translate(j, dev, 3, 0x10000 + 40, 100, True)
    assert [(t.address, t.physical, t.length) for t in tr.translations] == [(0x10000 + 40, 0x99000 + 40, 100)]
    assert (tr.fault, dev.devtlb_hits, dev.devtlb_misses) == ("", 1, 0)
    tr = model._translate(j, dev, 3, 0x11000, 64, False)
    assert [(t.physical, t.length) for t in tr.translations] == [(0x9A000, 64)]
    assert iommu.asked == []
    tr = model._translate(j, dev, 3, 0x11000, 64, True)  # read-only entry, a write
    assert (tr.translations, tr.fault, iommu.asked) == ([], "not_present", [(0x11000, 64, True)])
    tr = model._translate(j, dev, 3, 0x10000 + 4000, 200, False)  # two cached pages, one physical run
    assert [(t.physical, t.length) for t in tr.translations] == [(0x99000 + 4000, 200)]
    tr = model._translate(j, dev, 3, 0x11000 + 4000, 200, False)  # into page 0x12, not cached
    assert [(t.physical, t.length) for t in tr.translations] == [(0x9A000 + 4000, 96)]
    assert tr.fault == "not_present" and iommu.asked[-1] == (0x12000, 104, False)
    assert (dev.devtlb_hits, dev.devtlb_misses) == (5, 2)  # a hit per cached page used
