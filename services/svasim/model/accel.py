"""A DSA-like accelerator: work queues, portals, admission and engines.

Names follow drivers/dma/idxd (``wq_size``, ``wq_thresh``, ``IDXD_PORTAL_LIMITED``,
``bytes_completed``). Each WQ has four portal pages at
``((wq_id * 4) << PAGE_SHIFT) + prot * 0x1000``; page 0 is the unlimited portal and
page 1 the limited one, which the idxd driver maps for user space.

Time: the device keeps its own clock in CPU cycles. A submission carries the
submitter's clock; the device first runs its engines up to that time, then admits
or refuses the command. So a WQ fills, and ENQCMD sees retry, only when the CPU
submits faster than the engines drain, as on the hardware.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from svasim.model import idxd
from svasim.model.costs import CostTable
from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound
from svasim.model.journal import Journal
from svasim.model.memory import PAGE_SHIFT
from svasim.model.ports import (
    FAULT_NONE,
    STORE_ENQCMD,
    STORE_ENQCMDS,
    STORE_MOVDIR64B,
    AdvanceResult,
    HostPort,
    IommuPort,
    OpenResult,
    SubmitResult,
    TranslateResult,
)
from svasim.model.transition import Transition

IDXD_PORTAL_UNLIMITED = 0
IDXD_PORTAL_LIMITED = 1
#: Portal pages per WQ (unlimited, limited, and two for interrupt-handle variants).
IDXD_PORTAL_PAGES_PER_WQ = 4

WQ_MODE_SHARED = "shared"
WQ_MODE_DEDICATED = "dedicated"

#: Operations this device model executes (its OPCAP). A descriptor with any other
#: opcode completes with DSA_COMP_BAD_OPCODE, as on a device without that capability.
SUPPORTED_OPS = frozenset(
    {
        idxd.DsaOpcode.NOOP,
        idxd.DsaOpcode.DRAIN,
        idxd.DsaOpcode.MEMMOVE,
        idxd.DsaOpcode.MEMFILL,
        idxd.DsaOpcode.COMPARE,
        idxd.DsaOpcode.COMPVAL,
    }
)

#: Descriptor flags this model defines for DSA (IAX-only and undefined bits excluded).
VALID_FLAGS = (
    idxd.OpFlag.FENCE
    | idxd.OpFlag.BOF
    | idxd.OpFlag.CRAV
    | idxd.OpFlag.RCR
    | idxd.OpFlag.RCI
    | idxd.OpFlag.CRSTS
    | idxd.OpFlag.CR
    | idxd.OpFlag.CC
    | idxd.OpFlag.ADDR1_TCS
    | idxd.OpFlag.ADDR2_TCS
    | idxd.OpFlag.ADDR3_TCS
    | idxd.OpFlag.CR_TCS
    | idxd.OpFlag.STORD
    | idxd.OpFlag.DRDBK
    | idxd.OpFlag.DSTS
)


def idxd_get_wq_portal_full_offset(wq_id: int, prot: int) -> int:
    """Offset of a WQ's portal page in the device's portal space (idxd.h)."""
    return ((wq_id * IDXD_PORTAL_PAGES_PER_WQ) << PAGE_SHIFT) + prot * 0x1000


@dataclass(slots=True)
class WqConfig:
    """The WQCFG fields of one work queue."""

    mode: str = WQ_MODE_SHARED
    wq_size: int = 16
    wq_thresh: int = 15
    priority: int = 10
    block_on_fault: bool = False
    max_xfer_shift: int = 31
    max_batch_shift: int = 10
    pasid: int = 0  # dedicated WQs only: WQCFG.pasid, set at open
    enabled: bool = True


@dataclass(slots=True)
class QueuedDesc:
    """A descriptor accepted into a WQ and not yet dispatched."""

    id: int
    desc: idxd.DsaHwDesc
    accepted_at: int
    cause: Transition


@dataclass(slots=True)
class WorkQueue:
    """A WQ: its configuration, its queue and its counters."""

    id: int
    cfg: WqConfig
    queue: deque[QueuedDesc] = field(default_factory=deque)
    accepted: int = 0
    retried: int = 0
    completed: int = 0
    opener: int | None = None  # dedicated WQs admit one opener (-EBUSY otherwise)

    @property
    def entity(self) -> str:
        return f"wq/{self.id}"


@dataclass(slots=True)
class Device:
    """A DSA-like device."""

    name: str
    wqs: list[WorkQueue]
    engines: list[int]  # the cycle at which each engine is next free
    max_pasids: int = 1 << 20
    now: int = 0
    bytes_processed: int = 0
    swerr: int = 0
    next_desc_id: int = 1
    rr: int = 0  # round-robin pointer among WQs of equal priority

    def wq_entity(self, wq: WorkQueue) -> str:
        """Entity name of a WQ of this device."""
        return f"wq/{self.name}/{wq.id}"


def default_devices() -> list[Device]:
    """dsa0 as accel-config's 2g2q user config sets it up: a shared and a dedicated WQ."""
    return [
        Device(
            "dsa0",
            [
                WorkQueue(0, WqConfig(mode=WQ_MODE_SHARED, wq_size=16, wq_thresh=15, priority=10)),
                WorkQueue(1, WqConfig(mode=WQ_MODE_DEDICATED, wq_size=16, wq_thresh=0, priority=10)),
            ],
            engines=[0, 0],
        )
    ]


@dataclass(slots=True)
class _Completion:
    status: int
    result: int = 0
    bytes_completed: int = 0
    fault_addr: int = 0
    write_fault: bool = False
    invalid_flags: int = 0


class Accel:
    """The accelerator service's state and operations."""

    def __init__(
        self,
        iommu: IommuPort,
        host: HostPort,
        devices: list[Device] | None = None,
        costs: CostTable | None = None,
    ) -> None:
        self.iommu = iommu
        self.host = host
        self.costs = costs or CostTable()
        self.devices = {d.name: d for d in (devices if devices is not None else default_devices())}

    # -- lookup ------------------------------------------------------------------------------
    def device(self, name: str) -> Device:
        """The named device, or NotFound."""
        dev = self.devices.get(name)
        if dev is None:
            raise NotFound(
                "UNKNOWN_DEVICE",
                f"no device {name!r}; devices: {', '.join(sorted(self.devices))}",
                device=name,
            )
        return dev

    def wq(self, dev: Device, wq_id: int) -> WorkQueue:
        """The WQ of a device, or NotFound."""
        if not 0 <= wq_id < len(dev.wqs):
            raise NotFound("UNKNOWN_WQ", f"{dev.name} has no WQ {wq_id} (it has {len(dev.wqs)})", wq=wq_id)
        return dev.wqs[wq_id]

    # -- open (the idxd cdev) ------------------------------------------------------------------
    def open_wq(self, journal: Journal, device: str, wq_id: int, mm: int, pgd: int) -> OpenResult:
        """Open a WQ for an mm: bind it through the IOMMU, return the portal to map."""
        dev = self.device(device)
        wq = self.wq(dev, wq_id)
        if not wq.cfg.enabled:
            raise FailedPrecondition("WQ_DISABLED", f"{dev.name} WQ {wq_id} is disabled")
        dedicated = wq.cfg.mode == WQ_MODE_DEDICATED
        if dedicated and wq.opener is not None and wq.opener != mm:
            raise FailedPrecondition(
                "WQ_BUSY",
                f"dedicated WQ {wq_id} of {dev.name} is already open by mm {wq.opener} (-EBUSY)",
                opener=wq.opener,
            )
        bound = self.iommu.bind(journal, device, mm, pgd, dev.max_pasids)
        if dedicated:
            # idxd_wq_set_pasid: disable the WQ, write WQCFG.pasid, enable it again.
            before = {"pasid": wq.cfg.pasid, "opener": wq.opener}
            wq.cfg.pasid = bound.pasid
            wq.opener = mm
            journal.emit(dev.wq_entity(wq), "wq.set_pasid", before, {"pasid": bound.pasid, "opener": mm})
        return OpenResult(
            pasid=bound.pasid,
            pasid_allocated=bound.allocated,
            portal_offset=idxd_get_wq_portal_full_offset(wq_id, IDXD_PORTAL_LIMITED),
            shared=not dedicated,
        )

    # -- admission ---------------------------------------------------------------------------
    def submit(
        self, journal: Journal, device: str, portal_offset: int, command: bytes, kind: str, cycles: int
    ) -> SubmitResult:
        """An enqueue store (ENQCMD/ENQCMDS) or posted store (MOVDIR64B) at a portal."""
        dev = self.device(device)
        if len(command) != idxd.DSA_DESC_SIZE:
            raise InvalidArgument(
                "BAD_COMMAND_SIZE",
                f"an enqueue store carries exactly 64 bytes, got {len(command)}",
                size=len(command),
            )
        if portal_offset % 64:
            raise InvalidArgument(
                "UNALIGNED_PORTAL",
                f"portal offset {portal_offset:#x} is not 64-byte aligned",
                portal_offset=hex(portal_offset),
            )
        if kind not in (STORE_ENQCMD, STORE_ENQCMDS, STORE_MOVDIR64B):
            raise InvalidArgument("BAD_STORE_KIND", f"unknown store kind {kind!r}")
        if cycles < 0:
            raise InvalidArgument("BAD_CYCLES", "cycles must be non-negative")
        page = portal_offset >> PAGE_SHIFT
        wq_id, prot = divmod(page, IDXD_PORTAL_PAGES_PER_WQ)
        # The device runs up to the submitter's time before it answers.
        self._run(journal, dev, cycles)
        desc = idxd.unpack_desc(command)
        if wq_id >= len(dev.wqs) or prot not in (IDXD_PORTAL_UNLIMITED, IDXD_PORTAL_LIMITED):
            return self._refuse(journal, dev, None, "not an enqueue register", kind)
        wq = dev.wqs[wq_id]
        ent = dev.wq_entity(wq)
        posted = kind == STORE_MOVDIR64B
        if not wq.cfg.enabled:
            return self._refuse(journal, dev, wq, "wq disabled", kind)
        if wq.cfg.mode == WQ_MODE_SHARED and posted:
            # A posted write to a shared WQ has no way to report; the device drops it and
            # logs a software error.
            return self._refuse(journal, dev, wq, "MOVDIR64B to a shared WQ (SWERR)", kind)
        if wq.cfg.mode == WQ_MODE_DEDICATED and not posted:
            return self._refuse(journal, dev, wq, "ENQCMD to a dedicated WQ", kind)
        limit = wq.cfg.wq_thresh if prot == IDXD_PORTAL_LIMITED else wq.cfg.wq_size
        if len(wq.queue) >= limit:
            what = "threshold" if prot == IDXD_PORTAL_LIMITED else "size"
            reason = f"wq full ({len(wq.queue)} queued, {what} {limit})"
            if posted:
                # A dedicated WQ that overflows drops the descriptor: MOVDIR64B cannot
                # be told. The drop is recorded as a software error.
                return self._refuse(journal, dev, wq, "dedicated WQ overflow (SWERR)", kind)
            wq.retried += 1
            journal.emit(ent, "wq.retry", None, {"retried": wq.retried}, detail={"reason": reason})
            return SubmitResult(False, reason, len(wq.queue))
        if wq.cfg.mode == WQ_MODE_DEDICATED:
            # The PASID of a dedicated WQ comes from WQCFG, not from the descriptor.
            desc.pasid = wq.cfg.pasid
        qd_id = dev.next_desc_id
        dev.next_desc_id += 1
        wq.accepted += 1
        t = journal.emit(
            ent,
            "wq.accept",
            {"occupancy": len(wq.queue)},
            {"occupancy": len(wq.queue) + 1, "accepted": wq.accepted},
            detail={"desc": qd_id, "pasid": desc.pasid},
        )
        wq.queue.append(QueuedDesc(qd_id, desc, cycles, t))
        return SubmitResult(True, "", len(wq.queue))

    def _refuse(self, journal: Journal, dev: Device, wq: WorkQueue | None, reason: str, kind: str) -> SubmitResult:
        if kind == STORE_MOVDIR64B:
            dev.swerr += 1
            journal.emit(f"device/{dev.name}", "device.swerr", None, {"swerr": dev.swerr}, detail={"reason": reason})
            return SubmitResult(True, "", len(wq.queue) if wq else 0)
        if wq is not None:
            wq.retried += 1
            journal.emit(dev.wq_entity(wq), "wq.retry", None, {"retried": wq.retried}, detail={"reason": reason})
        return SubmitResult(False, reason, len(wq.queue) if wq else 0)

    # -- engines -----------------------------------------------------------------------------
    def advance(self, journal: Journal, device: str, until_cycles: int) -> AdvanceResult:
        """Run one device (or all, for ``device == ""``) up to a cycle, 0 meaning until idle."""
        devs = [self.device(device)] if device else [self.devices[n] for n in sorted(self.devices)]
        executed = 0
        latest = 0
        for dev in devs:
            executed += self._run(journal, dev, until_cycles if until_cycles else None)
            latest = max(latest, dev.now)
        return AdvanceResult(executed, latest)

    def _next_wq(self, dev: Device) -> WorkQueue | None:
        # Highest priority first; among equals, round robin from the last one served.
        ready = [wq for wq in dev.wqs if wq.queue]
        if not ready:
            return None
        best = max(wq.cfg.priority for wq in ready)
        n = len(dev.wqs)
        for i in range(n):
            wq = dev.wqs[(dev.rr + i) % n]
            if wq.queue and wq.cfg.priority == best:
                dev.rr = (wq.id + 1) % n
                return wq
        return None

    def _run(self, journal: Journal, dev: Device, until: int | None) -> int:
        """Dispatch queued descriptors whose start time is not after ``until``."""
        executed = 0
        while True:
            wq = self._next_wq(dev)
            if wq is None:
                break
            engine = min(range(len(dev.engines)), key=lambda e: (dev.engines[e], e))
            qd = wq.queue[0]
            start = max(dev.engines[engine], qd.accepted_at)
            if until is not None and start > until:
                break
            wq.queue.popleft()
            duration = self._execute(journal, dev, wq, qd, engine, start)
            dev.engines[engine] = start + duration
            dev.now = max(dev.now, start + duration)
            executed += 1
        if until is not None:
            dev.now = max(dev.now, until)
        return executed

    def _execute(self, journal: Journal, dev: Device, wq: WorkQueue, qd: QueuedDesc, engine: int, start: int) -> int:
        desc = qd.desc
        journal.follow(qd.cause)
        comp, nbytes = self._operate(journal, dev, desc)
        duration = self.costs.desc_overhead + -(-nbytes // max(1, self.costs.engine_bytes_per_cycle))
        dev.bytes_processed += nbytes
        wq.completed += 1
        entity = f"desc/{dev.name}/{qd.id}"
        journal.emit(
            entity,
            "desc.complete",
            None,
            {
                "wq": wq.id,
                "engine": engine,
                "opcode": desc.opcode,
                "pasid": desc.pasid,
                "status": comp.status,
                "bytes_completed": comp.bytes_completed,
                "bytes": nbytes,
                "start": start,
                "end": start + duration,
            },
            cycles=duration,
        )
        self._write_completion(journal, dev, desc, comp)
        return duration

    def _translate(
        self, journal: Journal, dev: Device, pasid: int, address: int, length: int, write: bool
    ) -> TranslateResult:
        if length == 0:
            return TranslateResult()
        return self.iommu.translate(journal, dev.name, pasid, address, length, write)

    def _read(self, tr: TranslateResult, length: int) -> bytes:
        out = bytearray()
        for t in tr.translations:
            out += self.host.dma_read(t.physical, t.length)
        return bytes(out[:length])

    def _write(self, journal: Journal, tr: TranslateResult, data: bytes) -> None:
        pos = 0
        for t in tr.translations:
            if pos >= len(data):
                break
            chunk = data[pos : pos + t.length]
            self.host.dma_write(journal, t.physical, chunk)
            pos += len(chunk)

    def _check(self, desc: idxd.DsaHwDesc, wq_max_xfer: int) -> _Completion | None:
        """The checks the device makes before it touches memory."""
        flags = desc.flags
        invalid = flags & ~int(VALID_FLAGS)
        if desc.opcode not in SUPPORTED_OPS:
            return _Completion(idxd.DsaCompStatus.BAD_OPCODE)
        if invalid:
            return _Completion(idxd.DsaCompStatus.INVALID_FLAGS, invalid_flags=invalid)
        if desc.rsvd or desc.rsvd1:
            return _Completion(idxd.DsaCompStatus.NOZERO_RESERVE)
        if (
            desc.opcode
            in (idxd.DsaOpcode.MEMMOVE, idxd.DsaOpcode.MEMFILL, idxd.DsaOpcode.COMPARE, idxd.DsaOpcode.COMPVAL)
            and desc.xfer_size > wq_max_xfer
        ):
            return _Completion(idxd.DsaCompStatus.XFER_ERANGE)
        return None

    def _operate(self, journal: Journal, dev: Device, desc: idxd.DsaHwDesc) -> tuple[_Completion, int]:
        """Execute one descriptor; returns its completion and the bytes it moved."""
        wq_max = 1 << 31
        early = self._check(desc, wq_max)
        if early is not None:
            return early, 0
        op = desc.opcode
        size = desc.xfer_size
        pasid = desc.pasid
        if op in (idxd.DsaOpcode.NOOP, idxd.DsaOpcode.DRAIN):
            return _Completion(idxd.DsaCompStatus.SUCCESS), 0
        if op == idxd.DsaOpcode.MEMMOVE:
            src = self._translate(journal, dev, pasid, desc.src_addr, size, False)
            dst = self._translate(journal, dev, pasid, desc.dst_addr, size, True)
            n = min(src.covered, dst.covered)
            data = self._read(src, n)
            self._write(journal, dst, data)
            if n < size:
                return self._page_fault(n, (src, False), (dst, True)), n
            return _Completion(idxd.DsaCompStatus.SUCCESS, bytes_completed=0), n
        if op == idxd.DsaOpcode.MEMFILL:
            dst = self._translate(journal, dev, pasid, desc.dst_addr, size, True)
            n = dst.covered
            # The 8-byte pattern sits in the first address field (the union's ``pattern``).
            pattern = desc.src_addr.to_bytes(8, "little")
            data = (pattern * (n // len(pattern) + 1))[:n]
            self._write(journal, dst, data)
            if n < size:
                return self._page_fault(n, (dst, True)), n
            return _Completion(idxd.DsaCompStatus.SUCCESS), n
        if op == idxd.DsaOpcode.COMPARE:
            a = self._translate(journal, dev, pasid, desc.src_addr, size, False)
            b = self._translate(journal, dev, pasid, desc.dst_addr, size, False)
            n = min(a.covered, b.covered)
            da, db = self._read(a, n), self._read(b, n)
            for i in range(n):
                if da[i] != db[i]:
                    # result 1: the buffers differ; bytes_completed is the first difference.
                    return _Completion(idxd.DsaCompStatus.SUCCESS, result=1, bytes_completed=i), n
            if n < size:
                return self._page_fault(n, (a, False), (b, False)), n
            return _Completion(idxd.DsaCompStatus.SUCCESS, result=0), n
        if op == idxd.DsaOpcode.COMPVAL:
            a = self._translate(journal, dev, pasid, desc.src_addr, size, False)
            n = a.covered
            data = self._read(a, n)
            pattern = desc.dst_addr.to_bytes(8, "little")
            for i in range(n):
                if data[i] != pattern[i % 8]:
                    return _Completion(idxd.DsaCompStatus.SUCCESS, result=1, bytes_completed=i), n
            if n < size:
                return self._page_fault(n, (a, False)), n
            return _Completion(idxd.DsaCompStatus.SUCCESS, result=0), n
        return _Completion(idxd.DsaCompStatus.BAD_OPCODE), 0

    @staticmethod
    def _page_fault(done: int, *accesses: tuple[TranslateResult, bool]) -> _Completion:
        """PAGE_FAULT_NOBOF: partial completion at the first faulting address.

        ``accesses`` are (translation, is_write) in the order the engine makes them; the
        one that stopped the operation is the faulted one with the shortest translation
        (the earlier access on a tie).
        """
        faulted = [(tr.covered, i, tr, w) for i, (tr, w) in enumerate(accesses) if tr.fault != FAULT_NONE]
        _, _, tr, write = min(faulted, key=lambda f: (f[0], f[1]))
        return _Completion(
            idxd.DsaCompStatus.PAGE_FAULT_NOBOF,
            bytes_completed=done,
            fault_addr=tr.fault_address,
            write_fault=write,
        )

    def _write_completion(self, journal: Journal, dev: Device, desc: idxd.DsaHwDesc, comp: _Completion) -> None:
        flags = desc.flags
        if not (flags & idxd.OpFlag.RCR and flags & idxd.OpFlag.CRAV):
            return
        addr = desc.completion_addr
        if addr % idxd.DSA_COMP_ALIGN:
            self._swerr(journal, dev, f"completion record {addr:#x} not 32-byte aligned")
            return
        rec = idxd.DsaCompletionRecord(
            status=int(comp.status),
            status_write=comp.write_fault,
            result=comp.result,
            bytes_completed=comp.bytes_completed,
            fault_addr=comp.fault_addr,
        )
        if comp.invalid_flags:
            rec.invalid_flags = comp.invalid_flags
        tr = self._translate(journal, dev, desc.pasid, addr, idxd.DSA_COMP_SIZE, True)
        if tr.covered < idxd.DSA_COMP_SIZE:
            self._swerr(journal, dev, f"completion record {addr:#x} not writable ({tr.fault})")
            return
        self._write(journal, tr, idxd.pack_comp(rec))

    def _swerr(self, journal: Journal, dev: Device, reason: str) -> None:
        dev.swerr += 1
        journal.emit(f"device/{dev.name}", "device.swerr", None, {"swerr": dev.swerr}, detail={"reason": reason})
