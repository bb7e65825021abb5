"""A DSA-like accelerator: work queues, portals, admission and engines.

Names follow drivers/dma/idxd (``wq_size``, ``wq_thresh``, ``IDXD_PORTAL_LIMITED``,
``bytes_completed``). Each WQ has four portal pages at
``((wq_id * 4) << PAGE_SHIFT) + prot * 0x1000``; page 0 is the unlimited portal and
page 1 the limited one, which the idxd driver maps for user space.

Time: the device keeps its own clock in CPU cycles. A submission carries the
submitter's clock; the device first runs its engines up to that time, then admits
or refuses the command. So a WQ fills, and ENQCMD sees retry, only when the CPU
submits faster than the engines drain, as on the hardware.

Execution: an engine takes the next descriptor (highest-priority WQ first), checks it
and runs it through :mod:`svasim.model.dsa_ops`, which holds the semantics of every
operation; this module moves the bytes (IOMMU translation, then host memory), writes the
completion record, and records the transitions.

Cost, in device cycles (CostTable): a descriptor costs ``desc_overhead`` plus
``ceil(bytes / engine_bytes_per_cycle)`` for the bytes its engine streamed (the
operation's progress through its transfer, up to the point it completed or faulted; a
descriptor rejected by the checks streams nothing), plus ``page_request`` cycles for
each page request it waited on. A batch costs ``desc_overhead`` for its own descriptor
plus the descriptor list it read (64 bytes per descriptor, same rate), then each
sub-descriptor its own cost, one after the other on the batch's engine. A DRAIN starts
no earlier than the end of every descriptor its WQ dispatched before it. No source was
found for any of these figures; they are the model's choice.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field

from svasim.model import dsa_ops
from svasim.model.costs import CostTable
from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound
from svasim.model.iommu import cached_pages, check_invalidation_range
from svasim.model.journal import Journal
from svasim.model.memory import PAGE_SHIFT, PAGE_SIZE
from svasim.model.ports import (
    FAULT_NOT_PRESENT,
    FAULT_PROTECTION,
    PRG_RESPONSE_SUCCESS,
    STORE_ENQCMD,
    STORE_ENQCMDS,
    STORE_MOVDIR64B,
    AdvanceResult,
    HostPort,
    IommuPort,
    OpenResult,
    SubmitResult,
    TranslateResult,
    Translation,
)
from svasim.model.transition import Transition
from svasim_api import idxd

IDXD_PORTAL_UNLIMITED = 0
IDXD_PORTAL_LIMITED = 1
#: Portal pages per WQ (unlimited, limited, and two for interrupt-handle variants).
IDXD_PORTAL_PAGES_PER_WQ = 4

WQ_MODE_SHARED = "shared"
WQ_MODE_DEDICATED = "dedicated"

#: [SPEC] 8.1.3 and 5.8.1: the statuses for which a descriptor with RCR clear gets no
#: completion record, and one without CRAV logs nothing in SWERROR.
_NOT_ERRORS = frozenset({idxd.DsaCompStatus.SUCCESS, idxd.DsaCompStatus.SUCCESS_PRED, idxd.DsaCompStatus.BATCH_FAIL})


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
    #: WQCFG op_config (bytes 32-63): bit N enables opcode N. Operations outside the
    #: device's OPCAP stay unavailable whatever the bit says.
    op_config: int = dsa_ops.OPCAP_BITMAP
    #: WQCFG WQ PRS Disable (Linux: the WQ's ``prs_disable`` sysfs attribute): the WQ
    #: sends no page requests, so a page fault is never resolved by the device, even on
    #: the addresses that always block on fault.
    prs_disable: bool = False

    @property
    def max_xfer_size(self) -> int:
        """Largest ``xfer_size`` the WQ accepts: 2^max_xfer_shift."""
        return 1 << self.max_xfer_shift

    @property
    def max_batch_size(self) -> int:
        """Largest ``desc_count`` of a batch the WQ accepts: 2^max_batch_shift."""
        return 1 << self.max_batch_shift


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
    #: mm -> open files of this WQ (the idxd cdev's client count).
    clients: dict[int, int] = field(default_factory=dict)
    last_end: int = 0  # when the last descriptor dispatched from this WQ ends (DRAIN waits)

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
    #: Device TLB (ATS): (pasid, vpn) -> (pfn, writable).
    devtlb: dict[tuple[int, int], tuple[int, bool]] = field(default_factory=dict)
    devtlb_hits: int = 0
    devtlb_misses: int = 0
    page_requests: int = 0
    #: Engine cycles spent waiting for page group responses.
    stall_cycles: int = 0
    #: WQCAP total_wq_size: entries shared by all WQs of the device.
    total_wq_size: int = 128

    def wq_entity(self, wq: WorkQueue) -> str:
        """Entity name of a WQ of this device."""
        return f"wq/{self.name}/{wq.id}"


#: The device fields a run of its engines changes (recorded by ``device.clock``).
_DEVICE_STATE = ("now", "rr", "bytes_processed", "devtlb_hits", "devtlb_misses", "page_requests", "stall_cycles")


def default_devices() -> list[Device]:
    """dsa0 as accel-config's 2g2q user config sets it up: a shared and a dedicated WQ.

    test/configs/2g2q_user_1.conf: wq0.0 shared (size 16, threshold 15, priority 10) and
    wq0.1 dedicated (size 16, priority 10), both with block_on_fault 1.
    """
    return [
        Device(
            "dsa0",
            [
                WorkQueue(
                    0,
                    WqConfig(mode=WQ_MODE_SHARED, wq_size=16, wq_thresh=15, priority=10, block_on_fault=True),
                ),
                WorkQueue(
                    1,
                    WqConfig(mode=WQ_MODE_DEDICATED, wq_size=16, wq_thresh=0, priority=10, block_on_fault=True),
                ),
            ],
            engines=[0, 0],
        )
    ]


class _DeviceDma:
    """The :class:`svasim.model.dsa_ops.Dma` of one descriptor: its PASID, through the IOMMU.

    When a fault blocks, a translation that stops at a page that is not present sends a
    page request and waits for the page group response: on SUCCESS the device translates
    again and goes on; otherwise the access fails there. A fault blocks when the WQ sends
    page requests (``prs``) and either block on fault is in effect for the descriptor
    (``bof``: BOF in the descriptor and in WQCFG) or the address is one that always
    blocks ([SPEC] 8.1.3).
    """

    __slots__ = ("accel", "journal", "dev", "pasid", "bof", "prs")

    def __init__(
        self, accel: Accel, journal: Journal, dev: Device, pasid: int, *, bof: bool = False, prs: bool = True
    ) -> None:
        self.accel = accel
        self.journal = journal
        self.dev = dev
        self.pasid = pasid
        self.bof = bof
        self.prs = prs

    def span(self, address: int, length: int, write: bool, *, always_block: bool = False) -> dsa_ops.Span:
        tr = self.accel._translate(self.journal, self.dev, self.pasid, address, length, write)
        refused = False
        block = self.prs and (self.bof or always_block)
        while block and tr.fault in (FAULT_NOT_PRESENT, FAULT_PROTECTION) and tr.covered < length:
            code = self.accel.iommu.page_request(self.journal, self.dev.name, self.pasid, tr.fault_address, write)
            self.dev.page_requests += 1
            self.dev.stall_cycles += self.accel.costs.page_request
            if code != PRG_RESPONSE_SUCCESS:
                refused = True
                break
            tr = self.accel._translate(self.journal, self.dev, self.pasid, address, length, write)
        return dsa_ops.Span(address, length, write, tr, prs_refused=refused)

    def read(self, span: dsa_ops.Span, length: int) -> bytes:
        return self.accel._read(span.xlate, length)

    def write(self, span: dsa_ops.Span, data: bytes) -> None:
        self.accel._write(self.journal, span.xlate, data)


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
        wq.clients[mm] = wq.clients.get(mm, 0) + 1
        clients = {"clients": [[m, n] for m, n in sorted(wq.clients.items())]}
        if dedicated:
            # idxd_wq_set_pasid: disable the WQ, write WQCFG.pasid, enable it again.
            before = {"pasid": wq.cfg.pasid, "opener": wq.opener}
            wq.cfg.pasid = bound.pasid
            wq.opener = mm
            journal.emit(dev.wq_entity(wq), "wq.set_pasid", before, {"pasid": bound.pasid, "opener": mm, **clients})
        else:
            journal.emit(dev.wq_entity(wq), "wq.open", None, clients)
        return OpenResult(
            pasid=bound.pasid,
            pasid_allocated=bound.allocated,
            portal_offset=idxd_get_wq_portal_full_offset(wq_id, IDXD_PORTAL_LIMITED),
            shared=not dedicated,
        )

    def close_wq(
        self, journal: Journal, device: str, wq_id: int, mm: int, unbind: bool, free_if_unused: bool
    ) -> tuple[int, bool]:
        """The idxd cdev's release: drain what the mm queued, clear a dedicated WQ's
        PASID, and (when it was the mm's last file on the device) unbind it."""
        dev = self.device(device)
        wq = self.wq(dev, wq_id)
        if wq.clients.get(mm, 0) <= 0:
            raise FailedPrecondition(
                "WQ_NOT_OPEN", f"mm {mm} has no open file of {dev.name} WQ {wq_id}", mm=mm, wq=wq_id
            )
        # idxd_device_drain_pasid: nothing of the mm may still run after release.
        self._run(journal, dev, None)
        wq.clients[mm] -= 1
        if not wq.clients[mm]:
            del wq.clients[mm]
        clients = {"clients": [[m, n] for m, n in sorted(wq.clients.items())]}
        if wq.cfg.mode == WQ_MODE_DEDICATED and wq.opener == mm:
            before = {"pasid": wq.cfg.pasid, "opener": mm}
            wq.cfg.pasid = 0
            wq.opener = None
            journal.emit(dev.wq_entity(wq), "wq.set_pasid", before, {"pasid": 0, "opener": None, **clients})
        else:
            journal.emit(dev.wq_entity(wq), "wq.release", None, clients)
        if not unbind:
            return 0, False
        pasid, freed = self.iommu.unbind(journal, device, mm, free_if_unused)
        # No translation of the unbound PASID may outlive the binding.
        self.invalidate_devtlb(journal, device, pasid, 0, 0)
        return pasid, freed

    # -- configuration (the idxd sysfs attributes, WQCFG) -------------------------------------
    def configure_wq(self, journal: Journal, device: str, wq_id: int, changes: dict[str, object]) -> WorkQueue:
        """Change WQCFG fields of a disabled WQ; every value is checked before any is set.

        ``changes`` may hold mode, wq_size, wq_thresh, priority, block_on_fault, op_config,
        max_xfer_shift, max_batch_shift, prs_disable.
        """
        dev = self.device(device)
        wq = self.wq(dev, wq_id)
        if wq.cfg.enabled:
            raise FailedPrecondition("WQ_ENABLED", f"{dev.name} WQ {wq_id} is enabled; disable it before configuring")
        known = {
            "mode",
            "wq_size",
            "wq_thresh",
            "priority",
            "block_on_fault",
            "op_config",
            "max_xfer_shift",
            "max_batch_shift",
            "prs_disable",
        }
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidArgument("UNKNOWN_WQ_FIELD", f"unknown WQCFG fields {unknown}; known: {sorted(known)}")
        new = WqConfig(**{**{k: getattr(wq.cfg, k) for k in known}, "pasid": wq.cfg.pasid, "enabled": False})
        for k, v in changes.items():
            setattr(new, k, v)
        if new.mode not in (WQ_MODE_SHARED, WQ_MODE_DEDICATED):
            raise InvalidArgument("BAD_WQ_MODE", f"mode must be shared or dedicated, not {new.mode!r}")
        others = sum(w.cfg.wq_size for w in dev.wqs if w is not wq)
        if not 1 <= new.wq_size <= dev.total_wq_size - others:
            raise InvalidArgument(
                "BAD_WQ_SIZE",
                f"wq_size {new.wq_size} must be 1..{dev.total_wq_size - others} "
                f"(WQCAP total_wq_size {dev.total_wq_size}, {others} used by other WQs)",
            )
        if new.mode == WQ_MODE_SHARED and not 0 <= new.wq_thresh <= new.wq_size:
            raise InvalidArgument("BAD_WQ_THRESHOLD", f"threshold {new.wq_thresh} must be 0..wq_size {new.wq_size}")
        if new.mode == WQ_MODE_DEDICATED:
            new.wq_thresh = 0  # the threshold only applies to the limited portal of a shared WQ
        if not 1 <= new.priority <= 15:
            raise InvalidArgument("BAD_WQ_PRIORITY", f"priority {new.priority} must be 1..15")
        if new.op_config & ~dsa_ops.OPCAP_BITMAP:
            raise InvalidArgument(
                "OP_CONFIG_NOT_IN_OPCAP",
                f"op_config {new.op_config:#x} enables operations the device lacks (OPCAP {dsa_ops.OPCAP_BITMAP:#x})",
            )
        if not 0 <= new.max_xfer_shift <= 31:
            raise InvalidArgument("BAD_MAX_XFER_SHIFT", f"max_xfer_shift {new.max_xfer_shift} must be 0..31")
        if not 0 <= new.max_batch_shift <= 10:
            raise InvalidArgument("BAD_MAX_BATCH_SHIFT", f"max_batch_shift {new.max_batch_shift} must be 0..10")
        before = {k: getattr(wq.cfg, k) for k in sorted(changes)}
        wq.cfg = new
        journal.emit(dev.wq_entity(wq), "wq.config", before, {k: getattr(new, k) for k in sorted(changes)})
        return wq

    def set_wq_enabled(self, journal: Journal, device: str, wq_id: int, enabled: bool) -> WorkQueue:
        """Enable or disable a WQ. Disabling waits for what it queued (the WQ drains) and
        is refused while a file of it is open."""
        dev = self.device(device)
        wq = self.wq(dev, wq_id)
        if wq.cfg.enabled == enabled:
            return wq
        if not enabled:
            if wq.clients:
                raise FailedPrecondition(
                    "WQ_BUSY",
                    f"{dev.name} WQ {wq_id} has open files (mm {', '.join(map(str, sorted(wq.clients)))})",
                )
            self._run(journal, dev, None)
        wq.cfg.enabled = enabled
        journal.emit(dev.wq_entity(wq), "wq.enable" if enabled else "wq.disable", None, {"enabled": enabled})
        return wq

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
        # The threshold limits what the limited portal of a *shared* WQ admits; a dedicated
        # WQ has no threshold (WQCFG wq_thresh applies to shared WQs; accel-config sets it
        # to 0 on wq0.1), so through either portal it holds wq_size descriptors.
        limited = prot == IDXD_PORTAL_LIMITED and wq.cfg.mode == WQ_MODE_SHARED
        limit = wq.cfg.wq_thresh if limited else wq.cfg.wq_size
        if len(wq.queue) >= limit:
            what = "threshold" if limited else "size"
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
        journal.emit(
            f"desc/{dev.name}/{qd_id}",
            "desc.queue",
            None,
            {"state": "queued", "wq": wq.id, "opcode": desc.opcode, "pasid": desc.pasid, "accepted_at": cycles},
        )
        journal.emit(f"device/{dev.name}", "device.desc_id", None, {"next_desc_id": dev.next_desc_id})
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
        seen = {k: getattr(dev, k) for k in _DEVICE_STATE}
        while True:
            wq = self._next_wq(dev)
            if wq is None:
                break
            engine = min(range(len(dev.engines)), key=lambda e: (dev.engines[e], e))
            qd = wq.queue[0]
            start = max(dev.engines[engine], qd.accepted_at)
            if qd.desc.opcode == idxd.DsaOpcode.DRAIN:
                # A drain completes after everything its WQ dispatched before it, on any
                # engine (the same WQ only: UNVERIFIED whether the device waits for more).
                start = max(start, wq.last_end)
            if until is not None and start > until:
                break
            wq.queue.popleft()
            duration = self._execute(journal, dev, wq, qd, engine, start)
            dev.engines[engine] = start + duration
            dev.now = max(dev.now, start + duration)
            wq.last_end = max(wq.last_end, start + duration)
            journal.emit(
                dev.wq_entity(wq),
                "wq.dispatch",
                {"occupancy": len(wq.queue) + 1},
                {"occupancy": len(wq.queue), "completed": wq.completed, "last_end": wq.last_end},
                detail={"desc": qd.id, "engine": engine, "start": start},
            )
            journal.emit(f"engine/{dev.name}/{engine}", "engine.busy", None, {"busy_until": dev.engines[engine]})
            executed += 1
        if until is not None:
            dev.now = max(dev.now, until)
        # One record of the device's clock, scheduler and counters for the whole run.
        changed = {k: getattr(dev, k) for k in _DEVICE_STATE if getattr(dev, k) != seen[k]}
        if changed:
            journal.emit(f"device/{dev.name}", "device.clock", None, changed)
        return executed

    def _execute(self, journal: Journal, dev: Device, wq: WorkQueue, qd: QueuedDesc, engine: int, start: int) -> int:
        """Run one descriptor taken from a WQ; returns the cycles it kept the engine."""
        journal.follow(qd.cause)
        _, _, duration = self._descriptor(
            journal, dev, wq, engine, qd.desc, qd.desc.pasid, f"desc/{dev.name}/{qd.id}", start, None
        )
        wq.completed += 1
        return duration

    def _cost(self, nbytes: int) -> int:
        """Engine cycles for one descriptor that streamed ``nbytes``."""
        return self.costs.desc_overhead + -(-nbytes // max(1, self.costs.engine_bytes_per_cycle))

    def _descriptor(
        self,
        journal: Journal,
        dev: Device,
        wq: WorkQueue,
        engine: int,
        desc: idxd.DsaHwDesc,
        pasid: int,
        entity: str,
        start: int,
        parent: tuple[str, int] | None,
    ) -> tuple[dsa_ops.Completion, bool, int]:
        """Check, execute and complete one descriptor (a batch's sub-descriptor if ``parent``).

        Returns its completion, whether its completion record went where it was asked to
        go, and the cycles it took (for a batch, its sub-descriptors included).
        """
        prs = not wq.cfg.prs_disable
        # UNVERIFIED: block on fault needs page requests, so a WQ with PRS disabled
        # does not block whatever its block-on-fault enable says.
        bof = bool(desc.flags & idxd.OpFlag.BOF) and wq.cfg.block_on_fault and prs
        dma = _DeviceDma(self, journal, dev, pasid, bof=bof, prs=prs)
        stalled = dev.stall_cycles
        comp = dsa_ops.check(desc, wq.cfg, in_batch=parent is not None)
        record: TranslateResult | None = None
        if desc.flags & idxd.OpFlag.CRAV and not (comp is not None and comp.status == idxd.DsaCompStatus.CRA_ALIGN):
            # [SPEC] 8.1.3: a fault on the completion record always blocks when the WQ
            # allows page requests. 5.4: a record address that cannot be translated
            # makes the device discard the descriptor before it runs, with the error in
            # SWERROR. The record is translated first whether or not it will be written
            # (UNVERIFIED for RCR = 0 and a status that writes none).
            span = dma.span(desc.completion_addr, idxd.DSA_COMP_SIZE, True, always_block=True)
            if span.complete:
                record = span.xlate
            else:
                comp = dsa_ops.Completion(idxd.DsaCompStatus.CRA_XLAT, fault_addr=span.fault_address)
        own_bytes = 0  # bytes charged to this descriptor alone (a batch: its list)
        inner = 0  # cycles of a batch's sub-descriptors
        if comp is None and desc.opcode == idxd.DsaOpcode.BATCH:
            runner = _BatchRun(self, journal, dev, wq, engine, pasid, entity, start, stalled)
            comp = dsa_ops.batch(desc, dma, runner)
            own_bytes = runner.list_bytes
            inner = runner.clock - runner.base
            # The sub-descriptors' waits are in their own durations already.
            stalled += runner.sub_stall
        elif comp is None:
            comp = dsa_ops.execute(desc, dma)
            own_bytes = comp.bytes
        # Waiting for page group responses keeps the engine busy too.
        own = self._cost(own_bytes) + (dev.stall_cycles - stalled)
        duration = own + inner
        dev.bytes_processed += comp.bytes
        after: dict[str, object] = {
            "wq": wq.id,
            "engine": engine,
            "opcode": desc.opcode,
            "pasid": pasid,
            "status": comp.status,
            "result": comp.result,
            "bytes_completed": comp.bytes_completed,
            "bytes": comp.bytes,
            "start": start,
            "end": start + duration,
        }
        detail: dict[str, object] | None = None
        if parent is not None:
            detail = {"batch": parent[0], "index": parent[1]}
        if bof:
            detail = {**(detail or {}), "block_on_fault": True}
        journal.emit(entity, "desc.complete", None, after, cycles=own, detail=detail)
        written = self._write_completion(journal, dev, desc, comp, record)
        if desc.flags & idxd.OpFlag.RCI:
            # The completion interrupt, through the handle the descriptor names (MSI-X
            # vector or IMS entry; INT_HANDLE_INVAL is not modelled).
            journal.emit(entity, "desc.interrupt", None, {"int_handle": desc.int_handle})
        # The device forgets a descriptor once it is complete.
        journal.emit(entity, "desc.free", {"status": comp.status}, None)
        return comp, written, duration

    def _translate(
        self, journal: Journal, dev: Device, pasid: int, address: int, length: int, write: bool
    ) -> TranslateResult:
        """Translate through the device TLB (ATS), asking the IOMMU on a miss.

        The device TLB caches what the IOMMU answered, per PASID and page; the IOMMU
        invalidates it (:meth:`invalidate_devtlb`) before an unmap completes, so a stale
        translation is never used.
        """
        if length == 0:
            return TranslateResult()
        out = TranslateResult()
        va = address
        end = address + length
        tlb = dev.devtlb
        while va < end:
            hit = tlb.get((pasid, va >> PAGE_SHIFT))
            if hit is None or (write and not hit[1]):
                break
            n = min(PAGE_SIZE - (va & (PAGE_SIZE - 1)), end - va)
            pa = (hit[0] << PAGE_SHIFT) | (va & (PAGE_SIZE - 1))
            last = out.translations[-1] if out.translations else None
            if last is not None and last.physical + last.length == pa:
                last.length += n
            else:
                out.translations.append(Translation(va, pa, n))
            dev.devtlb_hits += 1
            va += n
        if va >= end:
            return out
        dev.devtlb_misses += 1
        rest = self.iommu.translate(journal, dev.name, pasid, va, end - va, write)
        # Each IOTLB miss is a first-level walk the request waits for.
        dev.stall_cycles += rest.iotlb_misses * self.costs.iotlb_miss
        for t in rest.translations:
            first = t.address >> PAGE_SHIFT
            for i in range(((t.address + t.length - 1) >> PAGE_SHIFT) - first + 1):
                old = tlb.get((pasid, first + i))
                tlb[(pasid, first + i)] = ((t.physical >> PAGE_SHIFT) + i, write or bool(old and old[1]))
                new = tlb[(pasid, first + i)]
                if new != old:
                    journal.emit(
                        f"devtlb/{dev.name}/{pasid}/{(first + i) << PAGE_SHIFT:#x}",
                        "devtlb.fill",
                        None,
                        {"pfn": new[0], "writable": new[1]},
                    )
            last = out.translations[-1] if out.translations else None
            if last is not None and last.physical + last.length == t.physical:
                last.length += t.length
            else:
                out.translations.append(Translation(t.address, t.physical, t.length))
        out.fault, out.fault_address = rest.fault, rest.fault_address
        out.iotlb_hits, out.iotlb_misses = rest.iotlb_hits, rest.iotlb_misses
        return out

    def invalidate_devtlb(self, journal: Journal, device: str, pasid: int, address: int, length: int) -> int:
        """ATS invalidation (PASID-based device-TLB invalidation, descriptor type 8) of a
        range, or of the whole PASID when ``length`` is 0; returns the entries dropped."""
        dev = self.device(device)
        check_invalidation_range(address, length)
        # Bounded by the entries cached, whatever the size of the range.
        keys = cached_pages(dev.devtlb, pasid, address, length)
        for k in keys:
            pfn, writable = dev.devtlb.pop(k)
            journal.emit(
                f"devtlb/{dev.name}/{k[0]}/{k[1] << PAGE_SHIFT:#x}",
                "devtlb.invalidate",
                {"pfn": pfn, "writable": writable},
                None,
            )
        return len(keys)

    def _read(self, tr: TranslateResult, length: int) -> bytes:
        out = bytearray()
        for t in tr.translations:
            if len(out) >= length:
                break
            out += self.host.dma_read(t.physical, min(t.length, length - len(out)))
        return bytes(out[:length])

    def _write(self, journal: Journal, tr: TranslateResult, data: bytes) -> None:
        pos = 0
        for t in tr.translations:
            if pos >= len(data):
                break
            chunk = data[pos : pos + t.length]
            self.host.dma_write(journal, t.physical, chunk)
            pos += len(chunk)

    def _write_completion(
        self,
        journal: Journal,
        dev: Device,
        desc: idxd.DsaHwDesc,
        comp: dsa_ops.Completion,
        record: TranslateResult | None,
    ) -> bool:
        """Write the completion record where the descriptor asks for one; False if it could not.

        ``record`` is the completion record address as translated before the operation
        ran (None if it was not, or could not be). [SPEC] 8.1.3: with RCR clear the record
        is written only when the status is not SUCCESS (0x01), SUCCESS_PRED (0x02) or
        BATCH_FAIL (0x05) ([DPDK] drivers/dma/idxd submits batch elements with CRAV alone
        and, on a failed batch, reads their records, treating an unwritten one as
        success). Without CRAV there is nowhere to write: an error goes to SWERROR, where
        5.8.1 does not count BATCH_FAIL among the errors; nor the statuses that are not
        errors. A record the device cannot write (CRA_ALIGN, CRA_XLAT) goes to SWERROR too.
        """
        flags = desc.flags
        status = comp.status
        if not flags & idxd.OpFlag.CRAV:
            if status not in _NOT_ERRORS:
                self._swerr(journal, dev, f"descriptor failed with status {status:#x} and no record", status)
            return True
        addr = desc.completion_addr
        if status == idxd.DsaCompStatus.CRA_ALIGN:
            self._swerr(journal, dev, f"completion record {addr:#x} not 32-byte aligned", status)
            return False
        if status == idxd.DsaCompStatus.CRA_XLAT or record is None:
            self._swerr(journal, dev, f"completion record {addr:#x} not translatable", idxd.DsaCompStatus.CRA_XLAT)
            return False
        if not flags & idxd.OpFlag.RCR and status in _NOT_ERRORS:
            return True
        self._write(journal, record, idxd.pack_comp(comp.record()))
        return True

    def _swerr(self, journal: Journal, dev: Device, reason: str, error: int) -> None:
        """Log a software error (SWERR): something the device could not report in a record."""
        dev.swerr += 1
        journal.emit(
            f"device/{dev.name}",
            "device.swerr",
            None,
            {"swerr": dev.swerr},
            detail={"reason": reason, "error": int(error)},
        )


class _BatchRun:
    """The engine side of one batch (:class:`svasim.model.dsa_ops.BatchRunner`).

    Sub-descriptors run one after the other on the batch's engine, with the batch's
    PASID (their own PASID field is not used: UNVERIFIED, they are not separately
    submitted) and the batch's WQ configuration.
    """

    __slots__ = (
        "accel",
        "journal",
        "dev",
        "wq",
        "engine",
        "pasid",
        "entity",
        "base",
        "clock",
        "list_bytes",
        "sub_stall",
        "stalled",
    )

    def __init__(
        self,
        accel: Accel,
        journal: Journal,
        dev: Device,
        wq: WorkQueue,
        engine: int,
        pasid: int,
        entity: str,
        start: int,
        stalled: int,
    ) -> None:
        self.accel = accel
        self.journal = journal
        self.dev = dev
        self.wq = wq
        self.engine = engine
        self.pasid = pasid
        self.entity = entity
        self.base = start
        self.clock = start
        self.list_bytes = 0
        self.sub_stall = 0  # stall cycles the sub-descriptors charged to themselves
        self.stalled = stalled  # the device's stall cycles when the batch began

    def fetched(self, count: int) -> None:
        self.list_bytes = count * idxd.DSA_DESC_SIZE
        # The batch descriptor and its list come first, with the waits for their
        # translations (record and list); the sub-descriptors start after.
        waited = self.dev.stall_cycles - self.stalled
        self.base = self.clock = self.clock + self.accel._cost(self.list_bytes) + waited

    def run(self, index: int, sub: idxd.DsaHwDesc) -> bool:
        stalled = self.dev.stall_cycles
        comp, written, duration = self.accel._descriptor(
            self.journal,
            self.dev,
            self.wq,
            self.engine,
            sub,
            self.pasid,
            f"{self.entity}.{index}",
            self.clock,
            (self.entity, index),
        )
        self.clock += duration
        self.sub_stall += self.dev.stall_cycles - stalled
        return comp.ok and written
