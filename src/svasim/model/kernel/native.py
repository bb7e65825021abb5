"""Native processes: fabric processes whose address space is a real program's own.

A program run under ``svasim run-native`` is a process of the fabric like any other:
its threads run on the fabric's CPUs, its WQ files bind its mm to a PASID, and its
ENQCMDs go through the #GP fixup and the device. Only its memory is elsewhere: the
device's page walks read the program's real page table, and its DMA reaches the
program's real pages. The kernel model reaches them through a :class:`NativeMemory`
(``/proc/PID/maps`` and ``pagemap`` for walks, ``process_vm_readv``/``process_vm_writev``
for DMA, as mm/process_vm_access.c does for a ptracer; fs/proc/task_mmu.c defines the
pagemap entries), made by ``native_factory``; the model itself stays pure.

Physical addresses: the device's view of a native page is a window of the fabric's
physical space, ``NATIVE_PHYS_BASE | slot << 47 | virtual address``, one slot per live
native process. A translation is therefore the identity within a process, and a cached
one (IOTLB, device TLB) can never name another page; whether the page is still there is
checked by the real access itself.

What the program's memory held is an input from outside the fabric: every walk, read
and page fault of a native process is recorded (``native.walk``, ``native.read`` with
the bytes, ``native.fault``) so that replay re-executes a native run without the program,
answering from the record (``svasim.native.tape``). Writes are recorded as every DMA
write is, by the CRC32 of what was written.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Callable
from typing import Any

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition, OutOfRange
from svasim.model.journal import Journal
from svasim.model.kernel.idxd_cdev import IdxdCdev
from svasim.model.kernel_state import Process
from svasim.model.memory import PAGE_SHIFT, Extent, WalkResult
from svasim.model.ports import NativeMemory, NativeWalk

#: Base of the physical window through which devices reach native processes' pages.
NATIVE_PHYS_BASE = 1 << 60
#: Bits of a process's slot in the window: 47 bits of virtual address below it.
NATIVE_SLOT_SHIFT = 47
NATIVE_SLOTS = 1 << 12
_VA_MASK = (1 << NATIVE_SLOT_SHIFT) - 1

#: Makes the NativeMemory of a real pid (raises FailedPrecondition if it cannot be reached).
NativeFactory = Callable[[int, int], NativeMemory]


def encode_bytes(data: bytes) -> str:
    """Bytes as an observation records them: zlib, then base64."""
    return base64.b64encode(zlib.compress(data, 1)).decode("ascii")


def decode_bytes(text: str) -> bytes:
    """The bytes of :func:`encode_bytes`."""
    return zlib.decompress(base64.b64decode(text))


def walk_detail(address: int, length: int, write: bool, w: NativeWalk) -> dict[str, Any]:
    """A ``native.walk`` observation's detail."""
    return {
        "address": address,
        "length": length,
        "write": write,
        "runs": [[a - address, n, wr] for a, n, wr in w.runs],
        "faulted": w.faulted,
        "fault_address": w.fault_address,
        "protection": w.protection,
    }


def walk_of_detail(detail: dict[str, Any]) -> NativeWalk:
    """The NativeWalk a ``native.walk`` observation recorded."""
    address = int(detail["address"])
    return NativeWalk(
        [(address + int(off), int(n), bool(wr)) for off, n, wr in detail["runs"]],
        bool(detail["faulted"]),
        int(detail["fault_address"]),
        bool(detail["protection"]),
    )


@mypyc_attr(native_class=False)
class NativeMm(IdxdCdev):
    """The device side of memory (walks, DMA, I/O page faults) for native processes."""

    #: Makes a real process's NativeMemory; None: this fabric takes no native processes.
    native_factory: NativeFactory | None = None

    def open_native(self, native_pid: int) -> NativeMemory:
        """Reach the real process ``native_pid`` (nothing changes; refused with why)."""
        if self.native_factory is None:
            raise FailedPrecondition(
                "NATIVE_DISABLED",
                "this fabric takes no native processes: start it with --native (SVASIM_NATIVE=1) on the host "
                "where the programs run",
                native_pid=str(native_pid),
            )
        if native_pid <= 0:
            raise FailedPrecondition("BAD_NATIVE_PID", f"{native_pid} is not a process id", native_pid=str(native_pid))
        for other in self.processes.values():
            if other.native_pid == native_pid and not other.exited:
                raise FailedPrecondition(
                    "NATIVE_PID_TAKEN",
                    f"process {native_pid} is already fabric process {other.pid}",
                    native_pid=str(native_pid),
                )
        if len(self.native_slot_pid) >= NATIVE_SLOTS:
            raise FailedPrecondition("NATIVE_SLOTS_FULL", f"at most {NATIVE_SLOTS} native processes at a time")
        return self.native_factory(native_pid, self.next_pid)

    def bind_native(self, journal: Journal, proc: Process, native_pid: int, mem: NativeMemory) -> None:
        """Make ``proc``'s memory the real process's (``mem``, from :meth:`open_native`)."""
        slot = next(s for s in range(NATIVE_SLOTS) if s not in self.native_slot_pid)
        self.native_mem[proc.pid] = mem
        self.native_slot_pid[slot] = proc.pid
        proc.native_pid = native_pid
        proc.native_slot = slot
        journal.emit(proc.entity, "process.native", None, {"native_pid": native_pid, "native_slot": slot})

    def detach_native(self, proc: Process) -> None:
        """The fabric process is gone: its real process is no longer reached."""
        if not proc.native_pid:
            return
        mem = self.native_mem.pop(proc.pid, None)
        if mem is not None:
            mem.close()
        self.native_slot_pid.pop(proc.native_slot, None)

    def native_memory(self, proc: Process) -> NativeMemory:
        """The NativeMemory of a native process."""
        mem = self.native_mem.get(proc.pid)
        if mem is None:
            raise FailedPrecondition("NATIVE_GONE", f"native process {proc.native_pid} is no longer reached")
        return mem

    def refuse_native(self, proc: Process, what: str) -> None:
        """Refuse a simulated-memory operation on a process whose memory is a program's."""
        if proc.native_pid:
            raise FailedPrecondition(
                "NATIVE_PROCESS",
                f"process {proc.pid} is native process {proc.native_pid}: its memory is the program's own, "
                f"so {what} is the program's to do",
                pid=str(proc.pid),
            )

    # -- the device side --------------------------------------------------------------------------
    def _native_base(self, proc: Process) -> int:
        return NATIVE_PHYS_BASE | proc.native_slot << NATIVE_SLOT_SHIFT

    def native_walk(self, journal: Journal, proc: Process, address: int, length: int, write: bool) -> WalkResult:
        """The IOMMU's first-level walk of a native process's real page table."""
        w = self.native_memory(proc).walk(address, length, write)
        journal.emit(f"mem/{proc.pid}", "native.walk", None, None, detail=walk_detail(address, length, write, w))
        base = self._native_base(proc)
        extents = [Extent(a, base | a, n, wr) for a, n, wr in w.runs]
        return WalkResult(extents, w.faulted, w.fault_address, w.protection)

    def native_at(self, physical: int) -> tuple[Process, int] | None:
        """(native process, virtual address) of a physical address in the native window."""
        if physical < NATIVE_PHYS_BASE:
            return None
        slot = (physical - NATIVE_PHYS_BASE) >> NATIVE_SLOT_SHIFT
        pid = self.native_slot_pid.get(slot)
        if pid is None or slot >= NATIVE_SLOTS:
            raise OutOfRange(
                "BAD_PHYSICAL_ADDRESS", f"{physical:#x} is in no native process's window", physical=hex(physical)
            )
        return self.processes[pid], physical & _VA_MASK

    def native_read(self, journal: Journal, proc: Process, address: int, length: int) -> bytes:
        """Device read of a native process's memory."""
        try:
            data = self.native_memory(proc).read(address, length)
        except OSError as e:
            raise OutOfRange(
                "NATIVE_MEMORY_GONE",
                f"native process {proc.native_pid} no longer maps {address:#x}+{length}: {e.strerror}",
                address=hex(address),
            ) from e
        journal.emit(
            f"mem/{proc.pid}",
            "native.read",
            None,
            None,
            detail={"address": address, "length": length, "data": encode_bytes(data)},
        )
        return data

    def native_write(self, journal: Journal, proc: Process, address: int, data: bytes) -> None:
        """Device write of a native process's memory, status byte last."""
        try:
            self.native_memory(proc).write(address, data)
        except OSError as e:
            raise OutOfRange(
                "NATIVE_MEMORY_GONE",
                f"native process {proc.native_pid} no longer maps {address:#x}+{len(data)}: {e.strerror}",
                address=hex(address),
            ) from e
        journal.emit(
            f"mem/{proc.pid}",
            "dma.write",
            None,
            None,
            detail={"address": address, "length": len(data), "crc32": zlib.crc32(data)},
        )

    def native_fault(self, journal: Journal, proc: Process, address: int, write: bool) -> bool:
        """handle_mm_fault in the real process, for an I/O page fault."""
        ok = self.native_memory(proc).fault(address, write)
        journal.emit(
            f"mem/{proc.pid}",
            "native.fault",
            None,
            None,
            detail={"address": address & ~((1 << PAGE_SHIFT) - 1), "write": write, "resolved": ok},
        )
        return ok
