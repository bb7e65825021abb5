"""A DSA-like accelerator: work queues, portals, admission and engines.

Names follow drivers/dma/idxd (``wq_size``, ``wq_thresh``, ``IDXD_PORTAL_LIMITED``,
``bytes_completed``). Each WQ has four portal pages at
``((wq_id * 4) << PAGE_SHIFT) + prot * 0x1000``; page 0 is the unlimited portal and
page 1 the limited one, which the idxd driver maps for user space.

Time: the device's clock (CPU cycles) advances only by its event queue
(:mod:`svasim.model.events`: page group responses; an engine's completion is its
``busy_until``, see :meth:`Accel._run`). A submission
carries the submitter's clock; the device first runs up to that time, then admits or
refuses the command. So a WQ fills, and ENQCMD sees retry, only when the CPU submits
faster than the engines drain, as on the hardware. A device with ``auto_run`` off runs
only when told (``Advance``), so a test can fill a WQ exactly; with
``async_page_requests`` a blocking fault waits in the IOMMU's page request queue while
the other engines go on. Errors a completion record cannot carry go to the event log
of a device that has one (:mod:`svasim.model.evl`), else to SWERROR.

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
from dataclasses import fields as dataclass_fields
from operator import attrgetter

from svasim.model import dsa_ops
from svasim.model.costs import CostTable
from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound
from svasim.model.events import URGENT, Event, EventQueue
from svasim.model.evl import EventLog, EvlEntry, check_evl_size
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
# The flags the execution path tests on every descriptor, as plain ints: ``int & IntFlag``
# builds a new IntFlag member each time, which cost more than the rest of a NOOP's check.
_BOF = int(idxd.OpFlag.BOF)
_CRAV = int(idxd.OpFlag.CRAV)
_RCR = int(idxd.OpFlag.RCR)
_RCI = int(idxd.OpFlag.RCI)


#: idxd_wq_type_names (drivers/dma/idxd/sysfs.c): what a WQ is bound to serve.
WQ_TYPE_NONE = "none"
WQ_TYPE_KERNEL = "kernel"
WQ_TYPE_USER = "user"
WQ_TYPES = (WQ_TYPE_NONE, WQ_TYPE_KERNEL, WQ_TYPE_USER)
#: WQ_NAME_SIZE (drivers/dma/idxd/idxd.h): the longest WQ name.
WQ_NAME_SIZE = 1024
#: The longest WQ driver name (DRIVER_NAME_SIZE in drivers/dma/idxd/idxd.h: UNVERIFIED).
WQ_DRIVER_NAME_SIZE = 128
#: IDXD_MAX_PRIORITY.
IDXD_MAX_PRIORITY = 15
#: What a device reset leaves in a WQ (drivers/dma/idxd/idxd.h WQ_DEFAULT_MAX_XFER SZ_2M,
#: WQ_DEFAULT_MAX_BATCH 32), as shifts.
WQ_DEFAULT_MAX_XFER_SHIFT = 21
WQ_DEFAULT_MAX_BATCH_SHIFT = 5
#: The idxd version register of a DSA 1.0 device (DEVICE_VERSION_1 in registers.h).
DEVICE_VERSION_1 = 0x100
#: Read buffers of the device (GRPCAP total_rdbufs). UNVERIFIED for SPR: the value the
#: native bridge showed as max_tokens before GRPCAP was modelled.
DEFAULT_TOTAL_RDBUFS = 96
#: Groups per device: 4 on a Sapphire Rapids DSA (max_groups in its sysfs; UNVERIFIED
#: beyond accel-config's test configurations, which configure group0.0-group0.3).
DEFAULT_GROUPS = 4
#: Engines per device by default: the two engines of each group of
#: accel-config's 2g2q_user_1.conf. A Sapphire Rapids DSA has 4 (max_engines).
DEFAULT_ENGINES = 2

#: The capability registers, field by field: (register, field, first bit, width), as
#: drivers/dma/idxd/registers.h lays out ``union gen_cap_reg`` (GENCAP),
#: ``union wq_cap_reg`` (WQCAP), ``union group_cap_reg`` (GRPCAP) and
#: ``union engine_cap_reg`` (ENGCAP). Both the raw register values and the decoded
#: fields the API shows come from this one table (:func:`device_caps`).
CAP_FIELDS: tuple[tuple[str, str, int, int], ...] = (
    ("gen_cap", "block_on_fault", 0, 1),
    ("gen_cap", "overlap_copy", 1, 1),
    ("gen_cap", "cache_control_mem", 2, 1),
    ("gen_cap", "cache_control_cache", 3, 1),
    ("gen_cap", "cmd_cap", 4, 1),
    ("gen_cap", "dest_readback", 8, 1),
    ("gen_cap", "drain_readback", 9, 1),
    ("gen_cap", "evl_support", 13, 2),
    ("gen_cap", "batch_continuation", 15, 1),
    ("gen_cap", "max_xfer_shift", 16, 5),
    ("gen_cap", "max_batch_shift", 21, 4),
    ("gen_cap", "max_ims_mult", 25, 6),
    ("gen_cap", "config_en", 31, 1),
    ("wq_cap", "total_wq_size", 0, 16),
    ("wq_cap", "num_wqs", 16, 8),
    ("wq_cap", "wqcfg_size", 24, 4),
    ("wq_cap", "shared_mode", 48, 1),
    ("wq_cap", "dedicated_mode", 49, 1),
    ("wq_cap", "wq_ats_support", 50, 1),
    ("wq_cap", "priority", 51, 1),
    ("wq_cap", "occupancy", 52, 1),
    ("wq_cap", "occupancy_int", 53, 1),
    ("wq_cap", "op_config", 54, 1),
    ("wq_cap", "wq_prs_support", 55, 1),
    ("group_cap", "num_groups", 0, 8),
    ("group_cap", "total_rdbufs", 8, 8),
    ("group_cap", "rdbuf_ctrl", 16, 1),
    ("group_cap", "rdbuf_limit", 17, 1),
    ("group_cap", "progress_limit", 18, 1),
    ("engine_cap", "num_engines", 0, 8),
)
#: The capability registers, in the order of their MMIO offsets (0x10, 0x20, 0x30, 0x38).
CAP_REGISTERS = ("gen_cap", "wq_cap", "group_cap", "engine_cap")

#: What the model supports, for the fields that do not follow from a device's size.
#: GENCAP: block on fault (page requests), overlapping copy (MEMMOVE), both cache
#: controls (the CC flag and CFLUSH), drain readback; no command capability register,
#: no destination readback, no batch continuation, no IMS. Configurable (config_en).
#: WQCAP wqcfg_size 1: WQCFG is 64 bytes (2^(1 + IDXD_WQCFG_MIN)), op_config included.
#: No WQ ATS disable (the device TLB is always used). GRPCAP: read-buffer control and
#: limit; no progress limits (DSA 2.0). The event log (evl_support) is 0 unless the
#: device says otherwise (:attr:`Device.evl_support`).
STATIC_CAPS: dict[str, int] = {
    "gen_cap.block_on_fault": 1,
    "gen_cap.overlap_copy": 1,
    "gen_cap.cache_control_mem": 1,
    "gen_cap.cache_control_cache": 1,
    "gen_cap.cmd_cap": 0,
    "gen_cap.dest_readback": 0,
    "gen_cap.drain_readback": 1,
    "gen_cap.batch_continuation": 0,
    "gen_cap.max_ims_mult": 0,
    "gen_cap.config_en": 1,
    "wq_cap.wqcfg_size": 1,
    "wq_cap.shared_mode": 1,
    "wq_cap.dedicated_mode": 1,
    "wq_cap.wq_ats_support": 0,
    "wq_cap.priority": 1,
    "wq_cap.occupancy": 1,
    "wq_cap.occupancy_int": 0,
    "wq_cap.op_config": 1,
    "wq_cap.wq_prs_support": 1,
    "group_cap.rdbuf_ctrl": 1,
    "group_cap.rdbuf_limit": 1,
    "group_cap.progress_limit": 0,
}


def cap_registers(fields: dict[str, int]) -> dict[str, int]:
    """The raw capability registers for decoded fields (``"gen_cap.max_xfer_shift"`` ...);
    ValueError if a value does not fit its field."""
    regs = dict.fromkeys(CAP_REGISTERS, 0)
    for reg, name, lsb, width in CAP_FIELDS:
        value = fields[f"{reg}.{name}"]
        if not 0 <= value < 1 << width:
            raise ValueError(f"{reg}.{name} = {value} does not fit in {width} bits")
        regs[reg] |= value << lsb
    return regs


def decode_caps(regs: dict[str, int]) -> dict[str, int]:
    """The fields of raw capability registers (the inverse of :func:`cap_registers`)."""
    return {f"{reg}.{name}": (regs[reg] >> lsb) & ((1 << width) - 1) for reg, name, lsb, width in CAP_FIELDS}


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
    #: The driver's side of the WQ (struct idxd_wq): its type (``wq->type``: only a user
    #: WQ has a character device to open), its name and the driver a bind must come
    #: through (``wq->driver_name``), and its group (GRPCFG; -1: none).
    type: str = WQ_TYPE_USER
    name: str = ""
    driver_name: str = ""
    group_id: int = 0

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
class BlockedDesc:
    """A descriptor whose engine waits for a page group response: it runs again from its
    start when the response comes (no byte of it was written yet, see
    :class:`_DescRun`), with the pages the host refused."""

    qd: QueuedDesc
    wq: int
    began: int
    slot: int
    page: int
    write: bool
    waits: int = 1
    refused: list[tuple[int, bool]] = field(default_factory=list)

    def fields(self) -> dict[str, object]:
        """As the record keeps it (``desc/<dev>/<id>`` while it waits)."""
        return {
            "state": "blocked",
            "wq": self.wq,
            "opcode": self.qd.desc.opcode,
            "pasid": self.qd.desc.pasid,
            "accepted_at": self.qd.accepted_at,
            "began": self.began,
            "slot": self.slot,
            "fault_page": self.page,
            "fault_write": self.write,
            "waits": self.waits,
            "refused": [[a, w] for a, w in self.refused],
        }


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


def _evl_register(name: str, doc: str) -> property:
    """A Device attribute that is a field of its event log (``dev.evl``)."""

    def get(dev: Device) -> int:
        return int(getattr(dev.evl, name))

    def set_(dev: Device, value: int) -> None:
        setattr(dev.evl, name, value)

    return property(get, set_, doc=doc)


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
    #: The groups (GRPCFG flags; membership is each WQ's ``group_id`` and
    #: :attr:`engine_group`). None: :data:`DEFAULT_GROUPS` groups.
    groups: list[Group] = field(default_factory=list)
    #: The group each engine belongs to (GRPENGCFG), -1 for none. None: all in group 0.
    engine_group: list[int] = field(default_factory=list)
    #: Whether the device is enabled (GENSTS state; ``idxd->state``).
    enabled: bool = True
    #: GENCFG rdbuf_limit (the device's ``read_buffer_limit``).
    read_buffer_limit: int = 0
    #: GRPCAP total_rdbufs.
    total_rdbufs: int = DEFAULT_TOTAL_RDBUFS
    #: GENCAP evl_support: 0 for a device without an event log.
    evl_support: int = 0
    #: The version register.
    version: int = DEVICE_VERSION_1
    #: Whether a submission runs the engines up to the submitter's time (True, the
    #: default) or the device runs only when told (False: ``Advance`` alone; a thread's
    #: WaitCompletion poll does not run it), so that a test can fill a WQ to wq_size
    #: and see ENQCMD retry and MOVDIR64B drops deterministically.
    auto_run: bool = True
    #: Whether a fault that blocks sends its page request into the IOMMU's PRQ and the
    #: engine waits for the response, which comes later on the event queue, while the
    #: other engines go on (True); or the request is answered at once, the engine
    #: charged ``costs.page_request`` for the wait (False, the default).
    async_page_requests: bool = False
    #: The device's event queue: page group responses (an engine's completion is its
    #: ``busy_until``, see :meth:`Accel._run`), keyed
    #: (time, priority, insertion counter). The device's clock advances by popping it.
    events: EventQueue = field(init=False)
    #: Descriptors waiting for a page group response, by engine.
    blocked: dict[int, BlockedDesc] = field(default_factory=dict)
    #: The event log (GENCAP evl_support; its size 0 until software sets one). See
    #: :mod:`svasim.model.evl`.
    evl: EventLog = field(default_factory=EventLog)

    def __post_init__(self) -> None:
        self.events = EventQueue(self.name)
        if not self.groups:
            self.groups = [Group(g) for g in range(DEFAULT_GROUPS)]
        if not self.engine_group:
            self.engine_group = [0] * len(self.engines)

    def wq_entity(self, wq: WorkQueue) -> str:
        """Entity name of a WQ of this device."""
        return f"wq/{self.name}/{wq.id}"

    # The event log's registers, under the names the device's record gives them.
    evl_size = _evl_register("size", "The event log's size in entries (0: none).")
    evl_head = _evl_register("head", "EVLSTATUS head (counted without wrapping).")
    evl_tail = _evl_register("tail", "EVLSTATUS tail (counted without wrapping).")
    evl_overflows = _evl_register("overflows", "Errors that found the event log full.")

    def group_entity(self, group_id: int) -> str:
        """Entity name of a group of this device."""
        return f"group/{self.name}/{group_id}"

    def group_engines(self, group_id: int) -> list[int]:
        """The engines of a group, in id order."""
        return [e for e, g in enumerate(self.engine_group) if g == group_id and g >= 0]

    def group_wqs(self, group_id: int) -> list[int]:
        """The WQs of a group, in id order."""
        return [w.id for w in self.wqs if w.cfg.group_id == group_id and group_id >= 0]


@dataclass(slots=True)
class Group:
    """A group (struct idxd_group; GRPCFG's flags): the WQs and engines in it are each
    WQ's ``group_id`` and the device's ``engine_group``.

    ``read_buffers_allowed`` 0 means the device's total, as idxd_group_flags_setup()
    writes it. The traffic classes are fixed at 1 on a DSA 1.0 or 2.0 device
    (idxd_groups_clear_state(); sysfs.c refuses them without the tc_override parameter).
    """

    id: int
    read_buffers_reserved: int = 0
    read_buffers_allowed: int = 0
    use_read_buffer_limit: bool = False
    traffic_class_a: int = 1
    traffic_class_b: int = 1


def group_fields(g: Group) -> dict[str, object]:
    """A group's GRPCFG flags as its transitions record them."""
    return {
        "read_buffers_reserved": g.read_buffers_reserved,
        "read_buffers_allowed": g.read_buffers_allowed,
        "use_read_buffer_limit": g.use_read_buffer_limit,
        "traffic_class_a": g.traffic_class_a,
        "traffic_class_b": g.traffic_class_b,
    }


def device_caps(dev: Device) -> dict[str, int]:
    """The decoded capability registers of a device (see :data:`CAP_FIELDS`).

    The maximum transfer and batch shifts are the largest a WQ accepts (WQCFG allows
    2^31 bytes and 2^10 descriptors; UNVERIFIED for SPR, whose sysfs shows
    max_transfer_size 2147483648 and max_batch_size 1024 in accel-config's test logs).
    """
    return {
        **STATIC_CAPS,
        "gen_cap.evl_support": dev.evl_support,
        "gen_cap.max_xfer_shift": 31,
        "gen_cap.max_batch_shift": 10,
        "wq_cap.total_wq_size": dev.total_wq_size,
        "wq_cap.num_wqs": len(dev.wqs),
        "group_cap.num_groups": len(dev.groups),
        "group_cap.total_rdbufs": dev.total_rdbufs,
        "engine_cap.num_engines": len(dev.engines),
    }


#: The WqConfig fields a configuration change may record (``wq.config``).
_WQ_CONFIG_FIELDS = (
    "mode",
    "wq_size",
    "wq_thresh",
    "priority",
    "block_on_fault",
    "max_xfer_shift",
    "max_batch_shift",
    "op_config",
    "prs_disable",
    "type",
    "name",
    "driver_name",
    "group_id",
)

#: The device fields a run of its engines changes (recorded by ``device.clock``).
_DEVICE_STATE = ("now", "rr", "bytes_processed", "devtlb_hits", "devtlb_misses", "page_requests", "stall_cycles")
#: Those fields of a device, as a tuple.
_device_state = attrgetter(*_DEVICE_STATE)

#: How many times one descriptor waits on page requests the PRQ could not take (each
#: answered at once, see Iommu.prq_post) before the device gives up on the page as if
#: refused. UNVERIFIED: no source bounds the retries; the bound keeps a run finite.
PRQ_OVERFLOW_RETRIES = 16


#: The fields of each 64-byte command decoded so far (a submitter's ring repeats a few),
#: so that a submission builds its descriptor without decoding the bytes again.
_DECODED: dict[bytes, dict[str, object]] = {}
#: Completion records packed so far, by their fields (most descriptors end alike).
_PACKED: dict[tuple[object, ...], bytes] = {}
#: Past this many entries a cache starts again (bounded, whatever a run submits).
_CACHE_LIMIT = 4096


def _unpack_desc(command: bytes) -> idxd.DsaHwDesc:
    """``idxd.unpack_desc(command)``: a new descriptor (the device may change its PASID)."""
    if type(command) is not bytes:
        return idxd.unpack_desc(command)  # not a key (a bytearray can change)
    fields = _DECODED.get(command)
    if fields is None:
        desc = idxd.unpack_desc(command)
        if len(_DECODED) >= _CACHE_LIMIT:
            _DECODED.clear()
        _DECODED[command] = {f: getattr(desc, f) for f in _DESC_FIELDS}
        return desc
    return idxd.DsaHwDesc(**fields)  # type: ignore[arg-type]


_DESC_FIELDS = tuple(f.name for f in dataclass_fields(idxd.DsaHwDesc))


def _pack_record(comp: dsa_ops.Completion) -> bytes:
    """``idxd.pack_comp(comp.record())``: the 32 bytes of a completion record."""
    if comp.dif_tags is not None:
        return idxd.pack_comp(comp.record())
    # Every field Completion.record() reads (dif_tags aside); ``bytes`` is not one.
    key = (
        comp.status,
        comp.result,
        comp.bytes_completed,
        comp.fault_addr,
        comp.write_fault,
        comp.invalid_flags,
        comp.delta_rec_size,
        comp.crc_val,
    )
    packed = _PACKED.get(key)
    if packed is None:
        packed = idxd.pack_comp(comp.record())
        if len(_PACKED) >= _CACHE_LIMIT:
            _PACKED.clear()
        _PACKED[key] = packed
    return packed


class _PageWait(Exception):
    """Raised out of an operation when a blocking fault must wait for a page group
    response that comes later (asynchronous page requests)."""

    def __init__(self, address: int, write: bool) -> None:
        super().__init__(f"page request for {address:#x}")
        self.address = address
        self.write = write


class _DescRun:
    """What one top-level descriptor did so far, shared by its sub-descriptors: whether
    it may still stop and wait for a page (nothing written, no sub-descriptor
    completed), and the pages whose requests were refused."""

    __slots__ = ("can_wait", "committed", "refused")

    def __init__(self, can_wait: bool, refused: list[tuple[int, bool]] | None = None) -> None:
        self.can_wait = can_wait
        self.committed = False
        self.refused = set(refused or ())


def default_devices(engines: int = DEFAULT_ENGINES, groups: int = DEFAULT_GROUPS, wqs: int = 2) -> list[Device]:
    """dsa0 as accel-config's 2g2q user config sets up its WQs: a shared and a dedicated WQ.

    test/configs/2g2q_user_1.conf: wq0.0 shared (size 16, threshold 15, priority 10,
    name app1) and wq0.1 dedicated (size 16, priority 10, name app2), both user WQs
    with block_on_fault 1. Unlike that file, both WQs and every engine are in group 0
    (so every engine serves both WQs); ``svasim load-config`` applies the file itself.
    WQs beyond the first two (``wqs``; 8 on a Sapphire Rapids DSA, UNVERIFIED) start as
    a device reset leaves them: disabled, size 0, type none, in no group.
    """
    if not 2 <= wqs <= 255:
        raise ValueError(f"wqs must be 2..255 (WQCAP num_wqs is 8 bits), got {wqs}")
    if not 1 <= engines <= 64:
        raise ValueError(f"engines must be 1..64 (GRPENGCFG is a 64-bit mask), got {engines}")
    if not 1 <= groups <= 255:
        raise ValueError(f"groups must be 1..255 (GRPCAP num_groups is 8 bits), got {groups}")
    user = {"type": WQ_TYPE_USER, "driver_name": "user", "group_id": 0}
    return [
        Device(
            "dsa0",
            [
                WorkQueue(
                    0,
                    WqConfig(
                        mode=WQ_MODE_SHARED,
                        wq_size=16,
                        wq_thresh=15,
                        priority=10,
                        block_on_fault=True,
                        name="app1",
                        **user,  # type: ignore[arg-type]
                    ),
                ),
                WorkQueue(
                    1,
                    WqConfig(
                        mode=WQ_MODE_DEDICATED,
                        wq_size=16,
                        wq_thresh=0,
                        priority=10,
                        block_on_fault=True,
                        name="app2",
                        **user,  # type: ignore[arg-type]
                    ),
                ),
            ]
            + [
                WorkQueue(
                    w,
                    WqConfig(
                        wq_size=0,
                        wq_thresh=0,
                        priority=0,
                        max_xfer_shift=WQ_DEFAULT_MAX_XFER_SHIFT,
                        max_batch_shift=WQ_DEFAULT_MAX_BATCH_SHIFT,
                        enabled=False,
                        type=WQ_TYPE_NONE,
                        group_id=-1,
                    ),
                )
                for w in range(2, wqs)
            ],
            engines=[0] * engines,
            groups=[Group(g) for g in range(groups)],
        )
    ]


#: The translation faults a page request can resolve (a descriptor that may block waits on them).
_BLOCKING_FAULTS = frozenset((FAULT_NOT_PRESENT, FAULT_PROTECTION))


class _DeviceDma:
    """The :class:`svasim.model.dsa_ops.Dma` of one descriptor: its PASID, through the IOMMU.

    When a fault blocks, a translation that stops at a page that is not present sends a
    page request and waits for the page group response: on SUCCESS the device translates
    again and goes on; otherwise the access fails there. A fault blocks when the WQ sends
    page requests (``prs``) and either block on fault is in effect for the descriptor
    (``bof``: BOF in the descriptor and in WQCFG) or the address is one that always
    blocks ([SPEC] 8.1.3).
    """

    __slots__ = ("accel", "journal", "dev", "pasid", "bof", "prs", "run")

    def __init__(
        self, accel: Accel, journal: Journal, dev: Device, pasid: int, *, bof: bool = False, prs: bool = True
    ) -> None:
        self.accel = accel
        self.journal = journal
        self.dev = dev
        self.pasid = pasid
        self.bof = bof
        self.prs = prs
        self.run: _DescRun | None = None

    def span(self, address: int, length: int, write: bool, *, always_block: bool = False) -> dsa_ops.Span:
        tr = self.accel._translate(self.journal, self.dev, self.pasid, address, length, write)
        refused = False
        block = self.prs and (self.bof or always_block)
        # The loop's test as a break: mypyc 2.4 emits C that does not compile for this
        # test as a while condition (svasim.compiled).
        while True:
            if not (block and tr.covered < length and tr.fault in _BLOCKING_FAULTS):
                break
            run = self.run
            if run is not None:
                page = tr.fault_address & ~(PAGE_SIZE - 1)
                if (page, write) in run.refused:
                    refused = True
                    break
                if run.can_wait and not run.committed:
                    # The engine stops here and waits for the response (Accel._block).
                    raise _PageWait(tr.fault_address, write)
            code = self.accel.iommu.page_request(self.journal, self.dev.name, self.pasid, tr.fault_address, write)
            self.dev.page_requests += 1
            self.dev.stall_cycles += self.accel.costs.page_request
            if code != PRG_RESPONSE_SUCCESS:
                refused = True
                break
            tr = self.accel._translate(self.journal, self.dev, self.pasid, address, length, write)
        return dsa_ops.Span(address, length, write, tr, refused)

    def read(self, span: dsa_ops.Span, length: int) -> bytes:
        return self.accel._read(self.journal, span.xlate, length)

    def write(self, span: dsa_ops.Span, data: bytes) -> None:
        if self.run is not None:
            self.run.committed = True
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
        if wq.cfg.type != WQ_TYPE_USER:
            # Only the user driver (idxd_user_drv_probe) makes the WQ's /dev/dsa node.
            raise FailedPrecondition("WQ_NOT_USER", f"{dev.name} WQ {wq_id} is a {wq.cfg.type} WQ: no file to open")
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
        max_xfer_shift, max_batch_shift, prs_disable, and the driver's type, name,
        driver_name and group_id (drivers/dma/idxd/sysfs.c: each store needs the WQ
        disabled; a new type clears the name, as wq_type_store() does).
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
            "type",
            "name",
            "driver_name",
            "group_id",
        }
        unknown = sorted(set(changes) - known)
        if unknown:
            raise InvalidArgument("UNKNOWN_WQ_FIELD", f"unknown WQCFG fields {unknown}; known: {sorted(known)}")
        new = WqConfig(**{**{k: getattr(wq.cfg, k) for k in known}, "pasid": wq.cfg.pasid, "enabled": False})
        for k, v in changes.items():
            setattr(new, k, v)
        if "type" in changes and new.type != wq.cfg.type and "name" not in changes:
            new.name = ""
        self._check_wq_driver_fields(dev, new)
        if new.mode not in (WQ_MODE_SHARED, WQ_MODE_DEDICATED):
            raise InvalidArgument("BAD_WQ_MODE", f"mode must be shared or dedicated, not {new.mode!r}")
        others = sum(w.cfg.wq_size for w in dev.wqs if w is not wq)
        # Size and priority 0 are what a device reset leaves (idxd_device_clear_state()):
        # kept until set, never set; enabling the WQ refuses them.
        if (new.wq_size or "wq_size" in changes) and not 1 <= new.wq_size <= dev.total_wq_size - others:
            raise InvalidArgument(
                "BAD_WQ_SIZE",
                f"wq_size {new.wq_size} must be 1..{dev.total_wq_size - others} "
                f"(WQCAP total_wq_size {dev.total_wq_size}, {others} used by other WQs)",
            )
        if new.mode == WQ_MODE_SHARED and not 0 <= new.wq_thresh <= new.wq_size:
            raise InvalidArgument("BAD_WQ_THRESHOLD", f"threshold {new.wq_thresh} must be 0..wq_size {new.wq_size}")
        if new.mode == WQ_MODE_DEDICATED:
            new.wq_thresh = 0  # the threshold only applies to the limited portal of a shared WQ
        if (new.priority or "priority" in changes) and not 1 <= new.priority <= IDXD_MAX_PRIORITY:
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
        names = sorted({*changes, *(("name",) if new.name != wq.cfg.name else ())})
        before = {k: getattr(wq.cfg, k) for k in names}
        wq.cfg = new
        journal.emit(dev.wq_entity(wq), "wq.config", before, {k: getattr(new, k) for k in names})
        return wq

    @staticmethod
    def _check_wq_driver_fields(dev: Device, cfg: WqConfig) -> None:
        """The driver's WQ fields as sysfs.c checks them (type, name, driver_name, group)."""
        if cfg.type not in WQ_TYPES:
            raise InvalidArgument("BAD_WQ_TYPE", f"type must be one of {', '.join(WQ_TYPES)}, not {cfg.type!r}")
        if len(cfg.name) > WQ_NAME_SIZE or cfg.name != cfg.name.strip() or "\n" in cfg.name:
            raise InvalidArgument(
                "BAD_WQ_NAME", f"a WQ name is at most {WQ_NAME_SIZE} characters without surrounding blanks"
            )
        if len(cfg.driver_name) > WQ_DRIVER_NAME_SIZE or cfg.driver_name != cfg.driver_name.strip():
            raise InvalidArgument(
                "BAD_WQ_DRIVER_NAME", f"a driver name is at most {WQ_DRIVER_NAME_SIZE} characters without blanks"
            )
        if not -1 <= cfg.group_id < len(dev.groups):
            raise InvalidArgument(
                "BAD_GROUP_ID", f"group_id {cfg.group_id} must be -1..{len(dev.groups) - 1}", group_id=cfg.group_id
            )

    def set_wq_enabled(self, journal: Journal, device: str, wq_id: int, enabled: bool) -> WorkQueue:
        """Enable or disable a WQ. Disabling waits for what it queued (the WQ drains) and
        is refused while a file of it is open. Enabling checks what drv_enable_wq()
        (drivers/dma/idxd/device.c) and the Enable WQ command check (below)."""
        dev = self.device(device)
        wq = self.wq(dev, wq_id)
        if wq.cfg.enabled == enabled:
            return wq
        if enabled:
            self._check_wq_enable(dev, wq)
        else:
            if wq.clients:
                raise FailedPrecondition(
                    "WQ_BUSY",
                    f"{dev.name} WQ {wq_id} has open files (mm {', '.join(map(str, sorted(wq.clients)))})",
                )
            self._run(journal, dev, None)
        wq.cfg.enabled = enabled
        journal.emit(dev.wq_entity(wq), "wq.enable" if enabled else "wq.disable", None, {"enabled": enabled})
        return wq

    def _check_wq_enable(self, dev: Device, wq: WorkQueue) -> None:
        """drv_enable_wq(): the device is enabled (IDXD_SCMD_DEV_NOT_ENABLED), the WQ has a
        group (IDXD_SCMD_WQ_NO_GRP) and a name (IDXD_SCMD_WQ_NO_NAME), a shared WQ a
        threshold (IDXD_SCMD_WQ_NO_THRESH); each is -ENXIO to the bind. A WQ of type none
        matches no WQ driver (the dsa bus's match; -ENODEV). The Enable WQ command refuses
        a size or priority of 0 (IDXD_CMDSTS_ERR_WQ_SIZE, _WQ_PRIOR: what a device reset
        leaves). UNVERIFIED: a WQ whose group has no engine is refused here too, with the
        GRPCFG error the Enable Device command gives (IDXD_CMDSTS_ERR_GRP_CONFIG): the
        idxd driver checks only that some engine has a group (idxd_engines_setup())."""
        where = f"{dev.name} WQ {wq.id}"
        cfg = wq.cfg
        if not dev.enabled:
            raise FailedPrecondition("DEVICE_NOT_ENABLED", f"{dev.name} is not enabled; enable it first")
        if cfg.group_id < 0:
            raise FailedPrecondition("WQ_NO_GROUP", f"{where} is in no group")
        if not cfg.name:
            raise FailedPrecondition("WQ_NO_NAME", f"{where} has no name")
        if cfg.type == WQ_TYPE_NONE:
            raise FailedPrecondition("WQ_NO_TYPE", f"{where} has type none: no driver serves it")
        if cfg.wq_size == 0:
            raise FailedPrecondition("WQ_NO_SIZE", f"{where} has size 0")
        if cfg.priority == 0:
            raise FailedPrecondition("WQ_NO_PRIORITY", f"{where} has priority 0")
        if cfg.mode == WQ_MODE_SHARED and cfg.wq_thresh == 0:
            raise FailedPrecondition("WQ_NO_THRESHOLD", f"{where} is shared with threshold 0")
        if not dev.group_engines(cfg.group_id):
            raise FailedPrecondition(
                "GROUP_WITHOUT_ENGINES", f"group {cfg.group_id} of {dev.name} has no engine to serve {where}"
            )

    # -- the device and its groups (GENCFG, GRPCFG; the idxd driver's device and group attributes) --
    def set_device_enabled(self, journal: Journal, device: str, enabled: bool) -> Device:
        """Enable or disable the device, as binding it to (or unbinding it from) the idxd
        driver does (drivers/dma/idxd/device.c).

        Enable: idxd_device_drv_probe() writes the configuration (idxd_device_config():
        some WQ in a group, IDXD_SCMD_WQ_NONE_CONFIGURED; some engine in a group) and
        sends Enable Device, which refuses a group with WQs and no engine (a GRPCFG
        error, IDXD_CMDSTS_ERR_GRP_CONFIG..4: which of them is UNVERIFIED).

        Disable: idxd_device_drv_remove() disables every enabled WQ (they drain; refused
        while a WQ has open files, as DisableWorkQueue is), disables and resets the device,
        and idxd_device_clear_state() clears the configuration: every WQ's WQCFG and
        driver fields (idxd_wq_disable_cleanup(), idxd_wq_device_reset_cleanup(): size
        0, no group, type none, no name), every engine's group and every group's flags
        (idxd_engines_clear_state(), idxd_groups_clear_state()). A configuration is then
        loaded again (``svasim load-config``, accel-config load-config).
        """
        dev = self.device(device)
        if dev.enabled == enabled:
            raise FailedPrecondition(
                "DEVICE_ENABLED" if enabled else "DEVICE_NOT_ENABLED",
                f"{dev.name} is already {'enabled' if enabled else 'disabled'}",
            )
        if enabled:
            configured = [w for w in dev.wqs if w.cfg.group_id >= 0]
            if not configured:
                raise FailedPrecondition("NO_WQ_CONFIGURED", f"no WQ of {dev.name} is in a group")
            if all(g < 0 for g in dev.engine_group):
                raise FailedPrecondition("NO_ENGINE_CONFIGURED", f"no engine of {dev.name} is in a group")
            for w in configured:
                if w.cfg.wq_size and not dev.group_engines(w.cfg.group_id):
                    raise FailedPrecondition(
                        "GROUP_WITHOUT_ENGINES",
                        f"group {w.cfg.group_id} of {dev.name} has WQ {w.id} and no engine",
                        group=w.cfg.group_id,
                    )
            dev.enabled = True
            journal.emit(f"device/{dev.name}", "device.enable", None, {"enabled": True})
            return dev
        busy = [w.id for w in dev.wqs if w.clients]
        if busy:
            raise FailedPrecondition(
                "WQ_BUSY", f"{dev.name} WQs {', '.join(map(str, busy))} have open files", wqs=",".join(map(str, busy))
            )
        for w in dev.wqs:
            if w.cfg.enabled:
                self.set_wq_enabled(journal, device, w.id, False)
        dev.enabled = False
        journal.emit(f"device/{dev.name}", "device.disable", None, {"enabled": False})
        self._clear_config(journal, dev)
        return dev

    def _clear_config(self, journal: Journal, dev: Device) -> None:
        """idxd_device_clear_state() of a configurable device, each change recorded."""
        for w in dev.wqs:
            old = w.cfg
            new = WqConfig(
                mode=WQ_MODE_SHARED,
                wq_size=0,
                wq_thresh=0,
                priority=0,
                block_on_fault=False,
                max_xfer_shift=WQ_DEFAULT_MAX_XFER_SHIFT,
                max_batch_shift=WQ_DEFAULT_MAX_BATCH_SHIFT,
                pasid=old.pasid,
                enabled=False,
                prs_disable=old.prs_disable,
                type=WQ_TYPE_NONE,
                name="",
                driver_name=old.driver_name,
                group_id=-1,
            )
            names = [k for k in _WQ_CONFIG_FIELDS if getattr(old, k) != getattr(new, k)]
            w.cfg = new
            if names:
                journal.emit(
                    dev.wq_entity(w),
                    "wq.config",
                    {k: getattr(old, k) for k in names},
                    {k: getattr(new, k) for k in names},
                    detail={"reason": "device reset"},
                )
        for e, g in enumerate(dev.engine_group):
            if g != -1:
                dev.engine_group[e] = -1
                journal.emit(f"engine/{dev.name}/{e}", "engine.group", {"group": g}, {"group": -1})
        for i, grp in enumerate(dev.groups):
            cleared = Group(grp.id)
            if group_fields(grp) != group_fields(cleared):
                dev.groups[i] = cleared
                journal.emit(dev.group_entity(grp.id), "group.config", group_fields(grp), group_fields(cleared))

    def configure_device(self, journal: Journal, device: str, read_buffer_limit: int) -> Device:
        """GENCFG rdbuf_limit (the device's ``read_buffer_limit`` attribute): only while the
        device is disabled, and at most GRPCAP total_rdbufs (UNVERIFIED bound)."""
        dev = self.device(device)
        if dev.enabled:
            raise FailedPrecondition("DEVICE_ENABLED", f"{dev.name} is enabled; disable it before configuring")
        if not 0 <= read_buffer_limit <= dev.total_rdbufs:
            raise InvalidArgument(
                "BAD_READ_BUFFER_LIMIT", f"read_buffer_limit {read_buffer_limit} must be 0..{dev.total_rdbufs}"
            )
        before = dev.read_buffer_limit
        dev.read_buffer_limit = read_buffer_limit
        journal.emit(
            f"device/{dev.name}",
            "device.config",
            {"read_buffer_limit": before},
            {"read_buffer_limit": read_buffer_limit},
        )
        return dev

    def configure_group(
        self,
        journal: Journal,
        device: str,
        group_id: int,
        *,
        engines: list[int] | None = None,
        wqs: list[int] | None = None,
        read_buffers_reserved: int | None = None,
        read_buffers_allowed: int | None = None,
        use_read_buffer_limit: bool | None = None,
    ) -> Group:
        """Set a group's engines and WQs (each exactly the ones given: the others of the
        group leave it) and its read-buffer fields; everything is checked before anything
        changes.

        As drivers/dma/idxd/sysfs.c: a WQ joins or leaves a group only while it is
        disabled (wq_group_id_store, -EPERM); the read-buffer fields change only while the
        device is disabled (-EPERM): read_buffers_reserved within what the other groups
        leave of total_rdbufs, read_buffers_allowed at least 4 per engine of the group and
        within reserved + free, use_read_buffer_limit only with a device
        read_buffer_limit. Engines move only while the device is disabled too: sysfs.c's
        engine_group_id_store() does not check, but the device reads GRPCFG only when it
        is enabled (idxd_device_config()), so a move on an enabled device would not take
        effect; refusing it keeps the model's engines what the device uses.
        """
        dev = self.device(device)
        if not 0 <= group_id < len(dev.groups):
            raise NotFound(
                "UNKNOWN_GROUP", f"{dev.name} has no group {group_id} (it has {len(dev.groups)})", group=group_id
            )
        group = dev.groups[group_id]
        flags = (read_buffers_reserved, read_buffers_allowed, use_read_buffer_limit)
        if dev.enabled and (engines is not None or any(f is not None for f in flags)):
            raise FailedPrecondition(
                "DEVICE_ENABLED", f"{dev.name} is enabled; disable it before changing a group's engines or read buffers"
            )
        new_engines = list(dev.engine_group)
        if engines is not None:
            for e in engines:
                if not 0 <= e < len(dev.engine_group):
                    raise NotFound(
                        "UNKNOWN_ENGINE", f"{dev.name} has no engine {e} (it has {len(dev.engine_group)})", engine=e
                    )
            for e in range(len(new_engines)):
                if e in engines:
                    new_engines[e] = group_id
                elif new_engines[e] == group_id:
                    new_engines[e] = -1
        new_wqs = {w.id: w.cfg.group_id for w in dev.wqs}
        if wqs is not None:
            for wq_id in wqs:
                self.wq(dev, wq_id)
            for w in dev.wqs:
                want = group_id if w.id in wqs else (-1 if w.cfg.group_id == group_id else w.cfg.group_id)
                if want != w.cfg.group_id and w.cfg.enabled:
                    raise FailedPrecondition(
                        "WQ_ENABLED", f"{dev.name} WQ {w.id} is enabled; disable it before moving it", wq=w.id
                    )
                new_wqs[w.id] = want
        new = Group(**group_fields(group), id=group_id)  # type: ignore[arg-type]
        others = sum(g.read_buffers_reserved for g in dev.groups if g.id != group_id)
        free = dev.total_rdbufs - others
        if read_buffers_reserved is not None:
            if not 0 <= read_buffers_reserved <= free:
                raise InvalidArgument(
                    "BAD_READ_BUFFERS_RESERVED",
                    f"read_buffers_reserved {read_buffers_reserved} must be 0..{free} "
                    f"(total_rdbufs {dev.total_rdbufs}, {others} reserved by other groups)",
                )
            new.read_buffers_reserved = read_buffers_reserved
        if read_buffers_allowed is not None:
            n = sum(1 for g in new_engines if g == group_id)
            if not 4 * n <= read_buffers_allowed <= free:
                raise InvalidArgument(
                    "BAD_READ_BUFFERS_ALLOWED",
                    f"read_buffers_allowed {read_buffers_allowed} must be {4 * n}..{free} (4 per engine of the group)",
                )
            new.read_buffers_allowed = read_buffers_allowed
        if use_read_buffer_limit is not None:
            if use_read_buffer_limit and not dev.read_buffer_limit:
                raise FailedPrecondition(
                    "NO_READ_BUFFER_LIMIT", f"{dev.name} has read_buffer_limit 0; set it before using it in a group"
                )
            new.use_read_buffer_limit = use_read_buffer_limit
        for e, g in enumerate(new_engines):
            if g != dev.engine_group[e]:
                journal.emit(f"engine/{dev.name}/{e}", "engine.group", {"group": dev.engine_group[e]}, {"group": g})
                dev.engine_group[e] = g
        for w in dev.wqs:
            if new_wqs[w.id] != w.cfg.group_id:
                journal.emit(dev.wq_entity(w), "wq.config", {"group_id": w.cfg.group_id}, {"group_id": new_wqs[w.id]})
                w.cfg.group_id = new_wqs[w.id]
        if group_fields(new) != group_fields(group):
            journal.emit(dev.group_entity(group_id), "group.config", group_fields(group), group_fields(new))
            dev.groups[group_id] = new
        return dev.groups[group_id]

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
        # The device runs up to the submitter's time before it answers (unless it runs
        # only when told).
        if dev.auto_run:
            self._run(journal, dev, cycles)
        desc = _unpack_desc(command)
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
    def set_run_options(
        self,
        journal: Journal,
        device: str,
        *,
        auto_run: bool | None = None,
        async_page_requests: bool | None = None,
    ) -> Device:
        """How the device's engines run: ``auto_run`` (a submission runs the device up to
        the submitter's time; False: only Advance does) and ``async_page_requests``
        (page requests wait in the PRQ; see :class:`Device`). Asynchronous page requests
        can be switched only while no engine waits for a response."""
        dev = self.device(device)
        changes: dict[str, object] = {}
        if auto_run is not None and auto_run != dev.auto_run:
            changes["auto_run"] = auto_run
        if async_page_requests is not None and async_page_requests != dev.async_page_requests:
            if dev.blocked:
                raise FailedPrecondition(
                    "PAGE_REQUESTS_IN_FLIGHT",
                    f"{dev.name} has {len(dev.blocked)} engines waiting for page group responses; Advance first",
                )
            changes["async_page_requests"] = async_page_requests
        if changes:
            before = {k: getattr(dev, k) for k in changes}
            for k, v in changes.items():
                setattr(dev, k, v)
            journal.emit(f"device/{dev.name}", "device.run_options", before, changes)
        return dev

    def advance(self, journal: Journal, device: str, until_cycles: int, poll: bool = False) -> AdvanceResult:
        """Run one device (or all, for ``device == ""``) up to a cycle, 0 meaning until idle.

        ``poll``: the caller is a thread spinning on a completion record, whose time
        passes; a device with ``auto_run`` off runs only when told, so it is left alone
        (its clock included), and the result covers the devices that ran."""
        devs = [self.device(device)] if device else [self.devices[n] for n in sorted(self.devices)]
        if poll:
            devs = [d for d in devs if d.auto_run]
        executed = 0
        latest = 0
        for dev in devs:
            executed += self._run(journal, dev, until_cycles if until_cycles else None)
            latest = max(latest, dev.now)
        return AdvanceResult(executed, latest)

    def _next_wq(self, dev: Device) -> WorkQueue | None:
        # Highest priority first; among equals, round robin from the last one served. A WQ
        # is served only by the engines of its group (GRPCFG): one without any waits.
        # A WQ's id is its index, from which the round robin counts. A group has engines
        # exactly when its id is in ``engine_group`` (group_engines() is not built per WQ:
        # this runs twice per descriptor).
        engine_group = dev.engine_group
        ready = [wq for wq in dev.wqs if wq.queue and wq.cfg.group_id >= 0 and wq.cfg.group_id in engine_group]
        if not ready:
            return None
        n = len(dev.wqs)
        if len(ready) == 1:
            wq = ready[0]
        else:
            best = max(wq.cfg.priority for wq in ready)
            rr = dev.rr
            wq = min((wq for wq in ready if wq.cfg.priority == best), key=lambda wq: (wq.id - rr) % n)
        dev.rr = (wq.id + 1) % n
        return wq

    def _run(self, journal: Journal, dev: Device, until: int | None) -> int:
        """Run the device up to ``until`` (None: until it is idle).

        Time advances only by the device's event queue: each step takes whichever comes
        first, the next entry due (a page group response) or the dispatch of the next
        queued descriptor (highest-priority WQ's head to the earliest free engine of its
        group, not before it was accepted); an entry due at the dispatch's start fires
        first. Run until idle, the clock ends at the last engine's completion. Returns the
        descriptors completed.

        An engine's completion is not a queue entry: nothing happens when it comes (the
        descriptor's record was written when it ran, and dispatch reads the engine's
        ``busy_until``, recorded by ``engine.busy``), so an entry for it would only cost
        two transitions per descriptor and say nothing the record does not already hold.
        """
        executed = 0
        seen = _device_state(dev)
        events = dev.events
        engines = dev.engines
        while True:
            rr = dev.rr
            wq = self._next_wq(dev)
            start: int | None = None
            engine = -1
            if wq is not None:
                free = [e for e in dev.group_engines(wq.cfg.group_id) if e not in dev.blocked]
                if free:
                    # The earliest free, the lowest id among equals (min keeps the first).
                    engine = min(free, key=engines.__getitem__)
                    qd = wq.queue[0]
                    start = max(dev.engines[engine], qd.accepted_at)
                    if qd.desc.opcode == idxd.DsaOpcode.DRAIN:
                        # A drain completes after everything its WQ dispatched before it, on
                        # any engine (the same WQ only: UNVERIFIED whether the device waits
                        # for more).
                        start = max(start, wq.last_end)
            due = events.peek()
            if due is not None and (until is None or due <= until) and (start is None or due <= start):
                dev.rr = rr  # the dispatch is decided again once the event is handled
                executed += self._fire(journal, dev, events.pop(journal))
                continue
            if wq is None or start is None or (until is not None and start > until):
                break
            wq.queue.popleft()
            made = len(journal.transitions)
            try:
                duration = self._execute(journal, dev, wq, qd, engine, start)
            except Exception:
                # A peer the descriptor needed failed mid-way (a translation, a DMA): it
                # goes back to the head of its WQ, undispatched, as the record has it.
                # What it did before (TLB fills, page requests, bytes written) was
                # recorded as it happened; it runs again from its start.
                wq.queue.appendleft(qd)
                dev.rr = rr
                self._requeued(journal, dev, wq, qd, made)
                self._record_device(journal, dev, seen)
                raise
            end = dev.engines[engine] if duration is None else self._engine_done(dev, engine, start, duration)
            wq.last_end = max(wq.last_end, end)
            journal.emit(
                dev.wq_entity(wq),
                "wq.dispatch",
                {"occupancy": len(wq.queue) + 1},
                {"occupancy": len(wq.queue), "completed": wq.completed, "last_end": wq.last_end},
                detail={"desc": qd.id, "engine": engine, "start": start},
            )
            journal.emit(f"engine/{dev.name}/{engine}", "engine.busy", None, {"busy_until": dev.engines[engine]})
            if duration is not None:
                executed += 1
        # Nothing is due any more before ``until`` (or at all, run until idle): the
        # clock goes there, or to the end of the last engine's work.
        events.advance_to(max(dev.engines, default=0) if until is None else until)
        dev.now = events.now
        # One record of the device's clock, scheduler and counters for the whole run.
        self._record_device(journal, dev, seen)
        return executed

    @staticmethod
    def _requeued(journal: Journal, dev: Device, wq: WorkQueue, qd: QueuedDesc, made: int) -> None:
        """Record a descriptor put back in its WQ after its record had changed as it ran
        (its completion recorded before the DMA of its completion record failed): the
        record goes back to the queued descriptor, as the WQ holds it again. ``made``:
        how many transitions the journal held when the execution began."""
        entity = f"desc/{dev.name}/{qd.id}"
        changed: dict[str, object] = {}
        for t in journal.transitions[made:]:
            if t.entity == entity and t.after:
                changed.update(t.after)
        if not changed:
            return
        queued = {
            "state": "queued",
            "wq": wq.id,
            "opcode": qd.desc.opcode,
            "pasid": qd.desc.pasid,
            "accepted_at": qd.accepted_at,
        }
        journal.emit(entity, "desc.requeue", {**queued, **changed}, None)
        journal.emit(entity, "desc.requeue", None, queued)

    @staticmethod
    def _record_device(journal: Journal, dev: Device, seen: tuple[object, ...]) -> None:
        """One record of what changed of the device's clock, scheduler and counters
        (``seen``: :data:`_DEVICE_STATE` as the run found it)."""
        now = _device_state(dev)
        if now != seen:
            changed = {k: v for k, v, old in zip(_DEVICE_STATE, now, seen, strict=True) if v != old}
            journal.emit(f"device/{dev.name}", "device.clock", None, changed)

    @staticmethod
    def _engine_done(dev: Device, engine: int, start: int, duration: int) -> int:
        """The engine is busy until ``start + duration`` (its ``busy_until``, which the
        caller records with ``engine.busy``; see :meth:`_run` for why no queue entry).
        Returns the end."""
        end = start + duration
        dev.engines[engine] = end
        return end

    def _fire(self, journal: Journal, dev: Device, event: Event) -> int:
        """Handle one event popped from the device's queue; returns descriptors completed."""
        dev.now = dev.events.now
        if event.kind == "page.response":
            return self._resume(journal, dev, event)
        raise AssertionError(f"{dev.name}: no handler for a {event.kind} entry")

    def _execute(
        self,
        journal: Journal,
        dev: Device,
        wq: WorkQueue,
        qd: QueuedDesc,
        engine: int,
        start: int,
        blocked: BlockedDesc | None = None,
    ) -> int | None:
        """Run one descriptor taken from a WQ (again, after a page group response, if
        ``blocked``); returns the cycles it kept the engine, or None if it now waits for
        a page group response (:meth:`_block`)."""
        journal.follow(qd.cause)
        # A descriptor may stop to wait for a page only with asynchronous page requests.
        run = _DescRun(dev.async_page_requests and not wq.cfg.prs_disable, blocked.refused if blocked else None)
        began = blocked.began if blocked is not None else start
        try:
            _, _, duration = self._descriptor(
                journal,
                dev,
                wq,
                engine,
                qd.desc,
                qd.desc.pasid,
                f"desc/{dev.name}/{qd.id}",
                start,
                None,
                run=run,
                began=began,
            )
        except _PageWait as wait:
            self._block(journal, dev, wq, qd, engine, start, wait, blocked)
            return None
        wq.completed += 1
        return duration

    def _block(
        self,
        journal: Journal,
        dev: Device,
        wq: WorkQueue,
        qd: QueuedDesc,
        engine: int,
        at: int,
        wait: _PageWait,
        prev: BlockedDesc | None,
    ) -> None:
        """The descriptor on ``engine`` faulted where it must wait: its page request goes
        into the IOMMU's PRQ and the engine waits for the page group response, which the
        event queue delivers ``costs.page_request`` cycles later (the host's service time
        for the request: no source, the same figure as the synchronous wait). Nothing of
        the descriptor was written yet, so it runs again from its start then."""
        page = wait.address & ~(PAGE_SIZE - 1)
        posted = self.iommu.prq_post(journal, dev.name, qd.desc.pasid, wait.address, wait.write)
        dev.page_requests += 1
        dev.stall_cycles += self.costs.page_request
        due = max(at + self.costs.page_request, dev.events.now)
        b = BlockedDesc(
            qd,
            wq.id,
            prev.began if prev is not None else at,
            posted.slot,
            page,
            wait.write,
            prev.waits + 1 if prev is not None else 1,
            list(prev.refused) if prev is not None else [],
        )
        dev.blocked[engine] = b
        dev.engines[engine] = due
        journal.emit(
            f"desc/{dev.name}/{qd.id}",
            "desc.block",
            None,
            b.fields(),
            detail={"engine": engine, "address": wait.address, "overflow": posted.overflow, "at": at},
        )
        dev.events.schedule(
            journal,
            due,
            "page.response",
            {"engine": engine, "desc": qd.id, "slot": posted.slot, "response": posted.response},
            priority=URGENT,
        )

    def _resume(self, journal: Journal, dev: Device, event: Event) -> int:
        """A page group response reached a blocked engine: the host answers the request now
        (Iommu.page_response) unless the PRQ could not take it (answered at once), and the
        descriptor runs again from its start; a refused page stays refused."""
        engine = int(event.args["engine"])
        b = dev.blocked.pop(engine)
        journal.follow(b.qd.cause)
        response = str(event.args["response"])
        code = response or self.iommu.page_response(journal, dev.name, b.slot)
        if code != PRG_RESPONSE_SUCCESS or (response and b.waits > PRQ_OVERFLOW_RETRIES):
            b.refused.append((b.page, b.write))
        wq = dev.wqs[b.wq]
        start = dev.events.now
        duration = self._execute(journal, dev, wq, b.qd, engine, start, blocked=b)
        end = dev.engines[engine] if duration is None else self._engine_done(dev, engine, start, duration)
        wq.last_end = max(wq.last_end, end)
        journal.emit(
            dev.wq_entity(wq),
            "wq.resume",
            None,
            {"completed": wq.completed, "last_end": wq.last_end},
            detail={"desc": b.qd.id, "engine": engine, "response": code},
        )
        journal.emit(f"engine/{dev.name}/{engine}", "engine.busy", None, {"busy_until": dev.engines[engine]})
        return 0 if duration is None else 1

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
        *,
        run: _DescRun | None = None,
        began: int | None = None,
    ) -> tuple[dsa_ops.Completion, bool, int]:
        """Check, execute and complete one descriptor (a batch's sub-descriptor if ``parent``).

        Returns its completion, whether its completion record went where it was asked to
        go, and the cycles it took (for a batch, its sub-descriptors included).
        """
        prs = not wq.cfg.prs_disable
        # UNVERIFIED: block on fault needs page requests, so a WQ with PRS disabled
        # does not block whatever its block-on-fault enable says.
        bof = bool(desc.flags & _BOF) and wq.cfg.block_on_fault and prs
        dma = _DeviceDma(self, journal, dev, pasid, bof=bof, prs=prs)
        dma.run = run
        stalled = dev.stall_cycles
        comp = dsa_ops.check(desc, wq.cfg, in_batch=parent is not None)
        record: TranslateResult | None = None
        if desc.flags & _CRAV and not (comp is not None and comp.status == idxd.DsaCompStatus.CRA_ALIGN):
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
            runner.desc_run = run
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
            "start": start if began is None else began,
            "end": start + duration,
        }
        detail: dict[str, object] | None = None
        if parent is not None:
            detail = {"batch": parent[0], "index": parent[1]}
        if bof:
            detail = {**(detail or {}), "block_on_fault": True}
        journal.emit(entity, "desc.complete", None, after, cycles=own, detail=detail)
        written = self._write_completion(journal, dev, desc, comp, record, wq_id=wq.id, pasid=pasid, parent=parent)
        if desc.flags & _RCI:
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
        off = address & (PAGE_SIZE - 1)
        if off + length <= PAGE_SIZE:
            # Within one page, cached (the common case): what the loop below makes of it.
            hit = dev.devtlb.get((pasid, address >> PAGE_SHIFT))
            if hit is not None and (hit[1] or not write):
                dev.devtlb_hits += 1
                return TranslateResult([Translation(address, (hit[0] << PAGE_SHIFT) | off, length)])
        out = TranslateResult()
        translations = out.translations
        va = address
        end = address + length
        tlb = dev.devtlb
        hits = 0
        while va < end:
            hit = tlb.get((pasid, va >> PAGE_SHIFT))
            if hit is None or (write and not hit[1]):
                break
            n = min(PAGE_SIZE - (va & (PAGE_SIZE - 1)), end - va)
            pa = (hit[0] << PAGE_SHIFT) | (va & (PAGE_SIZE - 1))
            last = translations[-1] if translations else None
            if last is not None and last.physical + last.length == pa:
                last.length += n
            else:
                translations.append(Translation(va, pa, n))
            hits += 1
            va += n
        dev.devtlb_hits += hits
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

    def _read(self, journal: Journal, tr: TranslateResult, length: int) -> bytes:
        ts = tr.translations
        if len(ts) == 1 and 0 < length <= ts[0].length:
            # One run (the common case): one read, nothing to assemble.
            return bytes(self.host.dma_read(journal, ts[0].physical, length)[:length])
        out = bytearray()
        for t in tr.translations:
            if len(out) >= length:
                break
            out += self.host.dma_read(journal, t.physical, min(t.length, length - len(out)))
        return bytes(out[:length])

    def _write(self, journal: Journal, tr: TranslateResult, data: bytes) -> None:
        ts = tr.translations
        if len(ts) == 1 and 0 < len(data) <= ts[0].length:
            # One run (the common case): one write of the whole (a slice, as below: a
            # bytearray is copied, bytes are not).
            self.host.dma_write(journal, ts[0].physical, data[:])
            return
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
        *,
        wq_id: int = 0,
        pasid: int = 0,
        parent: tuple[str, int] | None = None,
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
        A device with an event log enabled writes these errors, with the record it could
        not write, into the log instead (:meth:`_log_error`).
        """
        flags = desc.flags
        status = comp.status

        def log(reason: str, error: int, fault_addr: int) -> None:
            self._log_error(
                journal, dev, reason, error, fault_addr, desc=desc, comp=comp, wq_id=wq_id, pasid=pasid, parent=parent
            )

        if not flags & _CRAV:
            if status not in _NOT_ERRORS:
                log(f"descriptor failed with status {status:#x} and no record", status, comp.fault_addr)
            return True
        addr = desc.completion_addr
        if status == idxd.DsaCompStatus.CRA_ALIGN:
            log(f"completion record {addr:#x} not 32-byte aligned", status, addr)
            return False
        if status == idxd.DsaCompStatus.CRA_XLAT or record is None:
            log(f"completion record {addr:#x} not translatable", idxd.DsaCompStatus.CRA_XLAT, addr)
            return False
        if not flags & _RCR and status in _NOT_ERRORS:
            return True
        self._write(journal, record, _pack_record(comp))
        return True

    def _log_error(
        self,
        journal: Journal,
        dev: Device,
        reason: str,
        error: int,
        fault_addr: int,
        *,
        desc: idxd.DsaHwDesc,
        comp: dsa_ops.Completion,
        wq_id: int,
        pasid: int,
        parent: tuple[str, int] | None,
    ) -> None:
        """An error the completion record cannot carry: into the event log when the device
        has one enabled, else SWERROR.

        The entry holds the record the device could not write (status ``error``), at
        ``fault_addr`` (for CRA_XLAT the record's address: process_evl_entry() and
        idxd_evl_fault_work() copy ``cr`` there for the user, through the PASID).
        UNVERIFIED: that the no-record and CRA_ALIGN errors go to the log too (the driver
        only warns about them), and that an error which finds the log full goes to
        SWERROR (the device "stops writing when the log is full").
        """
        evl = dev.evl
        if not (evl.enabled and dev.evl_support):
            self._swerr(journal, dev, reason, error)
            return
        rec = comp.record()
        rec.status = int(error)
        entry = EvlEntry(
            error=int(error),
            operation=int(desc.opcode),
            pasid=pasid,
            wq_idx=wq_id,
            fault_addr=fault_addr,
            fault_rw=comp.write_fault,
            batch=parent is not None,
            batch_idx=parent[1] if parent is not None else 0,
            rcr=bool(desc.flags & idxd.OpFlag.RCR),
            rci=bool(desc.flags & idxd.OpFlag.RCI),
            priv=bool(desc.priv),
            cr=idxd.pack_comp(rec),
        )
        index = evl.push(entry)
        if index is None:
            journal.emit(f"device/{dev.name}", "evl.overflow", None, evl.fields(), detail={"reason": reason})
            self._swerr(journal, dev, f"{reason} (event log full)", error)
            return
        journal.emit(f"evl/{dev.name}/{index}", "evl.write", None, entry.fields(), detail={"reason": reason})
        journal.emit(f"device/{dev.name}", "evl.tail", None, evl.fields())

    def set_event_log_size(self, journal: Journal, device: str, size: int) -> Device:
        """The device's event log size in entries, 0 for none (the ``event_log_size``
        attribute, drivers/dma/idxd/sysfs.c: IDXD_EVL_SIZE_MIN..MAX; the log is set up
        when the device is enabled, idxd_device_evl_setup(), so the size changes only
        while the device is disabled, UNVERIFIED that the store checks it). Needs GENCAP
        evl_support."""
        dev = self.device(device)
        check_evl_size(size)
        if not dev.evl_support:
            raise FailedPrecondition("EVL_NOT_SUPPORTED", f"{dev.name} has no event log (GENCAP evl_support 0)")
        if dev.enabled:
            raise FailedPrecondition("DEVICE_ENABLED", f"{dev.name} is enabled; disable it before sizing its event log")
        before = dev.evl.fields()
        for index in sorted(dev.evl.entries):
            journal.emit(f"evl/{dev.name}/{index}", "evl.drop", dev.evl.entries[index].fields(), None)
        dev.evl = EventLog(size)
        journal.emit(f"device/{dev.name}", "evl.config", before, dev.evl.fields())
        return dev

    def event_log(self, device: str) -> list[tuple[int, EvlEntry]]:
        """The entries between the log's head and tail, oldest first (a read: no change)."""
        return sorted(self.device(device).evl.entries.items())

    def read_event_log(self, journal: Journal, device: str, consume: bool) -> list[tuple[int, EvlEntry]]:
        """The entries between the log's head and tail; with ``consume`` software takes
        them, advancing the head, as process_evl_entries() does."""
        dev = self.device(device)
        evl = dev.evl
        if not consume:
            return self.event_log(device)
        taken = []
        while (item := evl.pop()) is not None:
            index, entry = item
            journal.emit(f"evl/{dev.name}/{index}", "evl.read", entry.fields(), None)
            taken.append(item)
        if taken:
            journal.emit(f"device/{dev.name}", "evl.head", None, evl.fields())
        return taken

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
        "desc_run",
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
        self.desc_run: _DescRun | None = None  # the top-level descriptor's run (page waits)

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
            run=self.desc_run,
        )
        if self.desc_run is not None:
            # A completed sub-descriptor cannot be undone: the batch no longer stops to wait.
            self.desc_run.committed = True
        self.clock += duration
        self.sub_stall += self.dev.stall_cycles - stalled
        return comp.ok and written
