"""A real process's memory as the fabric's devices reach it.

:class:`LiveProcessMemory` is the :class:`~svasim.model.ports.NativeMemory` of a running
program, on the host where the cpu service runs:

- **Walks** read the program's mappings (``/proc/PID/maps``: start, end, permissions,
  private or shared) and its page table's present bits (``/proc/PID/pagemap``, one
  64-bit entry per page, fs/proc/task_mmu.c: bit 63 present, bit 62 swapped, bit 56
  exclusively mapped). A page is translated when it is present; for a write, when its
  mapping is writable and the page is shared or exclusively mapped (a private page
  mapped elsewhere too, such as the zero page or a page shared with a fork child, is
  copy-on-write: its PTE is read-only, so a device write faults as the IOMMU's would).
- **DMA** is ``process_vm_readv``/``process_vm_writev`` (mm/process_vm_access.c), which
  honours the mapping's permissions and fails with EFAULT where nothing is mapped. A
  write stores its first byte last, so a completion record's status byte lands after
  the rest of the record, as the device writes it.
- **I/O page faults** touch the page from outside as ``process_vm_*`` does through
  ``get_user_pages_remote()``: a read fault reads one byte, a write fault writes back the
  byte it read (a store of the program to that very byte at that instant could be lost;
  a device write is about to overwrite the page anyway).

The cpu service needs ptrace access to the program (root, or the same user with
``kernel.yama.ptrace_scope`` 0); otherwise attaching is refused with NATIVE_UNREACHABLE.

``SVASIM_NATIVE_CORRUPT=N`` (a test knob, off by default) flips one bit of the N-th
data write (any DMA write but a 32-byte completion record) into each native process,
so a test can prove that a program's own checks see a device that gets a byte wrong.
"""

from __future__ import annotations

import ctypes
import errno
import os
from dataclasses import dataclass

from svasim.model.errors import FailedPrecondition
from svasim.model.memory import PAGE_SHIFT, PAGE_SIZE
from svasim.model.ports import NativeWalk

_PM_PRESENT = 1 << 63
_PM_SWAP = 1 << 62
_PM_EXCLUSIVE = 1 << 56


class _Iovec(ctypes.Structure):
    _fields_ = [("iov_base", ctypes.c_void_p), ("iov_len", ctypes.c_size_t)]


_libc = ctypes.CDLL(None, use_errno=True)
_process_vm_readv = _libc.process_vm_readv
_process_vm_readv.argtypes = [
    ctypes.c_int,
    ctypes.POINTER(_Iovec),
    ctypes.c_ulong,
    ctypes.POINTER(_Iovec),
    ctypes.c_ulong,
    ctypes.c_ulong,
]
_process_vm_readv.restype = ctypes.c_ssize_t
_process_vm_writev = _libc.process_vm_writev
_process_vm_writev.argtypes = _process_vm_readv.argtypes
_process_vm_writev.restype = ctypes.c_ssize_t


def _transfer(pid: int, address: int, buf: ctypes.Array[ctypes.c_char], write: bool) -> None:
    """Move ``buf`` to or from ``[address, address+len(buf))`` of ``pid``, all or OSError."""
    n = len(buf)
    done = 0
    fn = _process_vm_writev if write else _process_vm_readv
    while done < n:
        local = _Iovec(ctypes.addressof(buf) + done, n - done)
        remote = _Iovec(address + done, n - done)
        got = fn(pid, ctypes.byref(local), 1, ctypes.byref(remote), 1, 0)
        if got < 0:
            e = ctypes.get_errno()
            raise OSError(e, os.strerror(e))
        if got == 0:
            raise OSError(errno.EFAULT, os.strerror(errno.EFAULT))
        done += got


def read_process(pid: int, address: int, length: int) -> bytes:
    """``length`` bytes of ``pid``'s memory at ``address``."""
    if length <= 0:
        return b""
    buf = ctypes.create_string_buffer(length)
    _transfer(pid, address, buf, False)
    return buf.raw


def write_process(pid: int, address: int, data: bytes) -> None:
    """Store ``data`` in ``pid``'s memory at ``address``."""
    if not data:
        return
    buf = ctypes.create_string_buffer(bytes(data), len(data))
    _transfer(pid, address, buf, True)


@dataclass(frozen=True, slots=True)
class Mapping:
    """One line of /proc/PID/maps."""

    start: int
    end: int
    readable: bool
    writable: bool
    shared: bool


def read_maps(pid: int) -> list[Mapping]:
    """The process's mappings, in address order."""
    out = []
    with open(f"/proc/{pid}/maps", "rb") as f:
        for line in f:
            span, perms = line.split(b" ", 2)[:2]
            lo, _, hi = span.partition(b"-")
            out.append(Mapping(int(lo, 16), int(hi, 16), perms[0:1] == b"r", perms[1:2] == b"w", perms[3:4] == b"s"))
    return out


class LiveProcessMemory:
    """The NativeMemory of a running program (see the module's docstring)."""

    def __init__(self, pid: int, *, corrupt_write: int = 0) -> None:
        self.pid = pid
        self._corrupt_write = corrupt_write
        self._data_writes = 0

    def _pagemap(self, first_vpn: int, count: int) -> list[int]:
        fd = os.open(f"/proc/{self.pid}/pagemap", os.O_RDONLY)
        try:
            raw = os.pread(fd, count * 8, first_vpn * 8)
        finally:
            os.close(fd)
        return [int.from_bytes(raw[i : i + 8], "little") for i in range(0, len(raw), 8)]

    def walk(self, address: int, length: int, write: bool) -> NativeWalk:
        result = NativeWalk()
        if length <= 0:
            return result
        end = address + length
        first, last = address >> PAGE_SHIFT, (end - 1) >> PAGE_SHIFT
        try:
            maps = [m for m in read_maps(self.pid) if m.end > address and m.start < end]
            entries = self._pagemap(first, last - first + 1)
        except OSError:
            # The program is gone: nothing is present.
            result.faulted, result.fault_address = True, address
            return result
        mi = 0
        va = address
        for i, vpn in enumerate(range(first, last + 1)):
            page = vpn << PAGE_SHIFT
            while mi < len(maps) and maps[mi].end <= page:
                mi += 1
            m = maps[mi] if mi < len(maps) and maps[mi].start <= page else None
            entry = entries[i] if i < len(entries) else 0
            present = bool(entry & _PM_PRESENT) and not entry & _PM_SWAP
            if m is None or not m.readable or not present:
                result.faulted, result.fault_address = True, va
                return result
            writable = m.writable and (m.shared or bool(entry & _PM_EXCLUSIVE))
            if write and not writable:
                result.faulted, result.fault_address, result.protection = True, va, True
                return result
            n = min(page + PAGE_SIZE, end) - va
            runs = result.runs
            if runs and runs[-1][0] + runs[-1][1] == va and runs[-1][2] == writable:
                runs[-1] = (runs[-1][0], runs[-1][1] + n, writable)
            else:
                runs.append((va, n, writable))
            va += n
        return result

    def read(self, address: int, length: int) -> bytes:
        return read_process(self.pid, address, length)

    def write(self, address: int, data: bytes) -> None:
        if self._corrupt_write and len(data) != 32:
            self._data_writes += 1
            if self._data_writes == self._corrupt_write:
                data = data[:-1] + bytes([data[-1] ^ 0x01])
        if len(data) > 1:
            write_process(self.pid, address + 1, data[1:])
        write_process(self.pid, address, data[:1])

    def fault(self, address: int, write: bool) -> bool:
        try:
            byte = read_process(self.pid, address, 1)
            if write:
                write_process(self.pid, address, byte)
        except OSError:
            return False
        return True

    def close(self) -> None:
        """Nothing is held open between accesses."""


def live_factory(native_pid: int, fabric_pid: int) -> LiveProcessMemory:
    """The NativeMemory of ``native_pid``, once one of its pages could be read."""
    try:
        maps = read_maps(native_pid)
    except OSError as e:
        raise FailedPrecondition(
            "NATIVE_UNREACHABLE",
            f"process {native_pid} cannot be reached from the cpu service: {e.strerror}; native programs must run "
            "on the cpu service's host and in its pid namespace",
            native_pid=str(native_pid),
        ) from None
    probe = next((m for m in maps if m.readable), None)
    if probe is not None:
        try:
            read_process(native_pid, probe.start, 1)
        except OSError as e:
            raise FailedPrecondition(
                "NATIVE_UNREACHABLE",
                f"the cpu service may not read process {native_pid}'s memory ({e.strerror}): run it as root, or as "
                "the program's user with kernel.yama.ptrace_scope = 0",
                native_pid=str(native_pid),
            ) from None
    corrupt = os.environ.get("SVASIM_NATIVE_CORRUPT", "")
    return LiveProcessMemory(native_pid, corrupt_write=int(corrupt) if corrupt.isdigit() else 0)
