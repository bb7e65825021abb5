"""The DSA event log (EVL): where a device that has one reports the errors it cannot put
in a completion record.

Sources: Linux 6.4+ drivers/dma/idxd: ``struct idxd_evl`` (idxd.h), the entry layout
``struct __evl_entry`` and ``struct dsa_evl_entry`` (registers.h: a 32-byte header, then
the 32-byte ``struct dsa_completion_record``), ``IDXD_EVL_SIZE_MIN`` 0x40 and
``IDXD_EVL_SIZE_MAX`` 0xffff entries, the EVLSTATUS register (head and tail indexes),
idxd_device_evl_setup() (device.c) and process_evl_entries() / process_evl_entry()
(irq.c). The ring is as the commit that added it describes it: the device writes an
entry at the tail and advances it, software reads from the head and advances it; the log
is full when ``(tail + 1) % size == head``, and the device then stops writing.

Which errors go to the log, what the device does with an error when the log is full,
and the header fields of an entry beyond those named below are not settled by any
source at hand: see :meth:`EventLog.log` and the UNVERIFIED notes there.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field
from typing import Any

from svasim.model.errors import InvalidArgument

#: IDXD_EVL_SIZE_MIN, IDXD_EVL_SIZE_MAX (drivers/dma/idxd/registers.h): entries.
IDXD_EVL_SIZE_MIN = 0x40
IDXD_EVL_SIZE_MAX = 0xFFFF
#: sizeof(struct dsa_evl_entry): the header, then the completion record.
DSA_EVL_ENTRY_SIZE = 64


def check_evl_size(size: int) -> None:
    """A size event_log_size_store() (sysfs.c) accepts, or 0 (no event log)."""
    if size and not IDXD_EVL_SIZE_MIN <= size <= IDXD_EVL_SIZE_MAX:
        raise InvalidArgument(
            "BAD_EVL_SIZE",
            f"event log size {size} must be {IDXD_EVL_SIZE_MIN}..{IDXD_EVL_SIZE_MAX} entries (or 0: none)",
            size=size,
        )


@dataclass(slots=True)
class EvlEntry:
    """One ``struct dsa_evl_entry``: the header fields the model fills, and the
    completion record the device could not write (32 bytes, ``cr``)."""

    error: int  # the status (the header's ``error`` byte)
    operation: int
    pasid: int
    wq_idx: int
    fault_addr: int
    fault_rw: bool = False
    batch: bool = False
    batch_idx: int = 0
    rcr: bool = False
    rci: bool = False
    priv: bool = False
    cr: bytes = bytes(32)

    def fields(self) -> dict[str, Any]:
        """As the record keeps it."""
        return {
            "error": self.error,
            "operation": self.operation,
            "pasid": self.pasid,
            "wq_idx": self.wq_idx,
            "fault_addr": self.fault_addr,
            "fault_rw": self.fault_rw,
            "batch": self.batch,
            "batch_idx": self.batch_idx,
            "rcr": self.rcr,
            "rci": self.rci,
            "priv": self.priv,
            "cr": self.cr.hex(),
        }

    def raw(self) -> bytes:
        """The 64 bytes of ``struct dsa_evl_entry`` (registers.h bit layout: qword 0 is
        rsvd:2, desc_valid, wq_idx_valid, batch, fault_rw, priv, err_info_valid,
        error:8, wq_idx:8, batch_id:8, operation:8, pasid:20; then batch_idx:16,
        rsvd:16, the 32-bit union (int_handle:16, rci, ims, rcr, first_err_in_batch,
        rsvd:9, operand_id:3), fault_addr, rsvd; then the completion record).
        ``desc_valid`` and ``wq_idx_valid`` are set, ``err_info_valid`` is set when
        ``fault_addr`` holds the address (UNVERIFIED meaning); batch_id stays 0."""
        qw0 = (
            (1 << 2)  # desc_valid
            | (1 << 3)  # wq_idx_valid
            | (int(self.batch) << 4)
            | (int(self.fault_rw) << 5)
            | (int(self.priv) << 6)
            | (1 << 7)  # err_info_valid
            | (self.error & 0xFF) << 8
            | (self.wq_idx & 0xFF) << 16
            | (self.operation & 0xFF) << 32
            | (self.pasid & 0xFFFFF) << 40
        )
        union = (int(self.rci) << 16) | (int(self.rcr) << 18)
        return struct.pack("<QHHIQQ", qw0, self.batch_idx, 0, union, self.fault_addr, 0) + self.cr


@dataclass(slots=True)
class EventLog:
    """A device's event log: a ring of ``size`` entries (0: the device has none enabled)."""

    size: int = 0
    #: EVLSTATUS head and tail, counted without wrapping (the index is ``% size``).
    head: int = 0
    tail: int = 0
    #: Errors the device could not log because the ring was full.
    overflows: int = 0
    entries: dict[int, EvlEntry] = field(default_factory=dict)

    @property
    def enabled(self) -> bool:
        """Whether the device writes errors here."""
        return self.size > 0

    @property
    def full(self) -> bool:
        """``(tail + 1) % size == head``: the ring holds size - 1 entries."""
        return self.tail - self.head >= self.size - 1

    def fields(self) -> dict[str, Any]:
        """The ring's registers as the record keeps them (the entries are entities)."""
        return {"evl_size": self.size, "evl_head": self.head, "evl_tail": self.tail, "evl_overflows": self.overflows}

    def push(self, entry: EvlEntry) -> int | None:
        """Write an entry at the tail; its index, or None if the ring was full."""
        if self.full:
            self.overflows += 1
            return None
        index = self.tail
        self.entries[index] = entry
        self.tail += 1
        return index

    def pop(self) -> tuple[int, EvlEntry] | None:
        """Software takes the entry at the head (process_evl_entries), if any."""
        if self.head == self.tail:
            return None
        index = self.head
        self.head += 1
        return index, self.entries.pop(index)
