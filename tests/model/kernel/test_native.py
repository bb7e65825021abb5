"""Native processes in the kernel model: a fabric process whose memory is a real
program's, reached through a NativeMemory (here a stand-in with pages of its own).

Rules: the device's first-level walk of a native process reads the program's page table
(a page that is not present faults, and with block on fault the I/O page fault is
handled in the program's mm, Linux's iommu_sva_handle_iopf -> handle_mm_fault); DMA
reaches the program's pages; every walk, read and fault is recorded so that replay needs
no program; the fold of the record still equals the exported state.
"""

from __future__ import annotations

import pytest

from svasim.model.errors import FailedPrecondition, InvalidArgument
from svasim.model.fabric import ModelFabric
from svasim.model.kernel.native import NATIVE_PHYS_BASE, NATIVE_SLOT_SHIFT, decode_bytes
from svasim.model.ports import NativeWalk
from svasim.native.tape import RecordedNativeMemory, Tape
from svasim_api import idxd
from tests.oracle.oracle import Oracle

from ..helpers import memmove_desc

PAGE = 4096


class FakeProcessMemory:
    """A program's address space: mapped ranges with their permissions, present pages."""

    def __init__(self) -> None:
        self.maps: list[tuple[int, int, bool]] = []  # (start, end, writable)
        self.pages: dict[int, bytearray] = {}
        self.closed = False

    def map(self, start: int, length: int, *, writable: bool = True, present: bool = True) -> int:
        self.maps.append((start, start + length, writable))
        if present:
            for va in range(start, start + length, PAGE):
                self.pages[va] = bytearray(PAGE)
        return start

    def _vma(self, va: int) -> tuple[int, int, bool] | None:
        return next((m for m in self.maps if m[0] <= va < m[1]), None)

    def walk(self, address: int, length: int, write: bool) -> NativeWalk:
        w = NativeWalk()
        va, end = address, address + length
        while va < end:
            vma = self._vma(va)
            if vma is None or va & ~(PAGE - 1) not in self.pages:
                w.faulted, w.fault_address = True, va
                return w
            if write and not vma[2]:
                w.faulted, w.fault_address, w.protection = True, va, True
                return w
            n = min((va & ~(PAGE - 1)) + PAGE, end) - va
            if w.runs and w.runs[-1][0] + w.runs[-1][1] == va:
                a, m, wr = w.runs[-1]
                w.runs[-1] = (a, m + n, wr)
            else:
                w.runs.append((va, n, vma[2]))
            va += n
        return w

    def read(self, address: int, length: int) -> bytes:
        out = bytearray()
        for va in range(address, address + length):
            page = self.pages.get(va & ~(PAGE - 1))
            if page is None:
                raise OSError(14, "Bad address")
            out.append(page[va & (PAGE - 1)])
        return bytes(out)

    def write(self, address: int, data: bytes) -> None:
        for i, b in enumerate(data):
            va = address + i
            self.pages[va & ~(PAGE - 1)][va & (PAGE - 1)] = b

    def fault(self, address: int, write: bool) -> bool:
        vma = self._vma(address)
        if vma is None or (write and not vma[2]):
            return False
        self.pages.setdefault(address & ~(PAGE - 1), bytearray(PAGE))
        return True

    def close(self) -> None:
        self.closed = True


def native_fabric(programs: dict[int, FakeProcessMemory]):
    out: list = []
    fab = ModelFabric(ncpus=2, sink=out.append)
    fab.kernel.native_factory = lambda native_pid, fabric_pid: programs[native_pid]
    return fab, out


def test_a_fabric_without_a_native_factory_refuses_native_processes_and_changes_nothing():
    out: list = []
    fab = ModelFabric(ncpus=2, sink=out.append)
    with pytest.raises(FailedPrecondition) as e:
        fab.kernel.create_process(fab.journal(), "prog", native_pid=1234)
    assert e.value.reason == "NATIVE_DISABLED"
    assert out == [] and fab.kernel.processes == {}


def test_memmove_reaches_the_programs_pages_faulting_its_untouched_destination_in():
    prog = FakeProcessMemory()
    src = prog.map(0x7F0000000000, 2 * PAGE)
    dst = prog.map(0x7F0000100000, 2 * PAGE, present=False)  # malloc'd, never touched
    comp = prog.map(0x7F0000200000, PAGE)
    prog.write(src, bytes(range(256)) * 32)
    fab, out = native_fabric({4242: prog})
    k, j = fab.kernel, fab.journal()
    oracle = Oracle(fab, out)
    p = k.create_process(j, "prog", native_pid=4242)
    assert p.native_pid == 4242
    portal = k.open_wq(j, p.pid, "dsa0", 0)[0]
    k.schedule(j, p.tids[0], 0)
    flags = int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR | idxd.OpFlag.BOF)
    k.enqcmd(j, p.tids[0], portal, memmove_desc(src, dst, 2 * PAGE, comp, flags=flags))
    fab.accel.advance(j, "dsa0", 0)
    assert prog.read(comp, 1) == bytes([idxd.DsaCompStatus.SUCCESS])
    assert prog.read(dst, 2 * PAGE) == prog.read(src, 2 * PAGE)
    kinds = [t.kind for t in out if t.entity == f"mem/{p.pid}"]
    assert "native.walk" in kinds and "native.read" in kinds and "native.fault" in kinds
    reads = [t for t in out if t.kind == "native.read"]
    assert decode_bytes(reads[0].detail["data"]) == prog.read(src, 2 * PAGE)
    assert not oracle.check("the native memmove")


def test_the_device_reaches_native_pages_through_the_processs_slot_of_the_physical_window():
    a, b = FakeProcessMemory(), FakeProcessMemory()
    a.map(0x10000, PAGE)
    b.map(0x10000, PAGE)
    fab, _ = native_fabric({1: a, 2: b})
    k, j = fab.kernel, fab.journal()
    pa = k.create_process(j, "a", native_pid=1)
    pb = k.create_process(j, "b", native_pid=2)
    wa = k.walk(j, pa.aspace.pgd, 0x10000, 8, False)
    wb = k.walk(j, pb.aspace.pgd, 0x10000, 8, False)
    assert wa.extents[0].physical == NATIVE_PHYS_BASE | 0x10000
    assert wb.extents[0].physical == NATIVE_PHYS_BASE | 1 << NATIVE_SLOT_SHIFT | 0x10000
    k.dma_write(j, wb.extents[0].physical, b"\x07")
    assert b.read(0x10000, 1) == b"\x07" and a.read(0x10000, 1) == b"\x00"
    # A process that exits lets go of its program and its slot; the next one takes it.
    k.exit_thread(j, pa.tids[0])
    assert a.closed
    c = FakeProcessMemory()
    c.map(0x10000, PAGE)
    fab.kernel.native_factory = lambda native_pid, fabric_pid: c
    pc = k.create_process(j, "c", native_pid=3)
    assert pc.native_slot == 0


def test_simulated_memory_operations_on_a_native_process_are_refused():
    prog = FakeProcessMemory()
    fab, _ = native_fabric({7: prog})
    k, j = fab.kernel, fab.journal()
    p = k.create_process(j, "prog", native_pid=7)
    for op in (
        lambda: k.mmap(j, p.pid, PAGE, True, False),
        lambda: k.write_memory(j, p.pid, 0x1000, b"x"),
        lambda: k.read_memory(j, p.pid, 0x1000, 1),
    ):
        with pytest.raises(FailedPrecondition) as e:
            op()
        assert e.value.reason == "NATIVE_PROCESS"
    with pytest.raises(FailedPrecondition) as e:
        k.create_process(j, "again", native_pid=7)
    assert e.value.reason == "NATIVE_PID_TAKEN"


def test_fork_of_a_native_process_needs_the_real_childs_pid_and_a_simulated_one_none():
    parent, child = FakeProcessMemory(), FakeProcessMemory()
    fab, _ = native_fabric({10: parent, 11: child})
    k, j = fab.kernel, fab.journal()
    p = k.create_process(j, "parent", native_pid=10)
    with pytest.raises(InvalidArgument) as e:
        k.fork(j, p.tids[0])
    assert e.value.reason == "NATIVE_FORK"
    c = k.fork(j, p.tids[0], native_pid=11)
    assert c.native_pid == 11
    s = k.create_process(j, "sim")
    with pytest.raises(InvalidArgument):
        k.fork(j, s.tids[0], native_pid=12)


def test_the_tape_answers_what_was_recorded_and_refuses_what_was_not():
    prog = FakeProcessMemory()
    prog.map(0x20000, PAGE)
    prog.write(0x20000, b"hello")
    fab, out = native_fabric({5: prog})
    k, j = fab.kernel, fab.journal()
    p = k.create_process(j, "prog", native_pid=5)
    w = k.walk(j, p.aspace.pgd, 0x20000, 5, False)
    k.dma_read(j, w.extents[0].physical, 5)
    tape = Tape(out)
    mem = tape.factory(5, p.pid)
    assert isinstance(mem, RecordedNativeMemory)
    assert mem.walk(0x20000, 5, False).runs == [(0x20000, 5, True)]
    assert mem.read(0x20000, 5) == b"hello"
    with pytest.raises(FailedPrecondition) as e:
        mem.read(0x20000, 5)
    assert e.value.reason == "NATIVE_TAPE_DIVERGED"
