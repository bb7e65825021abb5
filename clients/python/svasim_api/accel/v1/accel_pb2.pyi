from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class WqMode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    WQ_MODE_UNSPECIFIED: _ClassVar[WqMode]
    WQ_MODE_SHARED: _ClassVar[WqMode]
    WQ_MODE_DEDICATED: _ClassVar[WqMode]

class StoreKind(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    STORE_KIND_UNSPECIFIED: _ClassVar[StoreKind]
    STORE_KIND_ENQCMD: _ClassVar[StoreKind]
    STORE_KIND_ENQCMDS: _ClassVar[StoreKind]
    STORE_KIND_MOVDIR64B: _ClassVar[StoreKind]
WQ_MODE_UNSPECIFIED: WqMode
WQ_MODE_SHARED: WqMode
WQ_MODE_DEDICATED: WqMode
STORE_KIND_UNSPECIFIED: StoreKind
STORE_KIND_ENQCMD: StoreKind
STORE_KIND_ENQCMDS: StoreKind
STORE_KIND_MOVDIR64B: StoreKind

class WorkQueue(_message.Message):
    __slots__ = ("id", "mode", "size", "threshold", "priority", "block_on_fault", "enabled", "occupancy", "accepted", "retried", "completed", "portal_offset", "op_config", "max_xfer_shift", "max_batch_shift", "clients", "type", "name", "driver_name", "prs_disable", "group_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ON_FAULT_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    OCCUPANCY_FIELD_NUMBER: _ClassVar[int]
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    RETRIED_FIELD_NUMBER: _ClassVar[int]
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    PORTAL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    OP_CONFIG_FIELD_NUMBER: _ClassVar[int]
    MAX_XFER_SHIFT_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SHIFT_FIELD_NUMBER: _ClassVar[int]
    CLIENTS_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_NAME_FIELD_NUMBER: _ClassVar[int]
    PRS_DISABLE_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    mode: WqMode
    size: int
    threshold: int
    priority: int
    block_on_fault: bool
    enabled: bool
    occupancy: int
    accepted: int
    retried: int
    completed: int
    portal_offset: int
    op_config: int
    max_xfer_shift: int
    max_batch_shift: int
    clients: int
    type: str
    name: str
    driver_name: str
    prs_disable: bool
    group_id: int
    def __init__(self, id: _Optional[int] = ..., mode: _Optional[_Union[WqMode, str]] = ..., size: _Optional[int] = ..., threshold: _Optional[int] = ..., priority: _Optional[int] = ..., block_on_fault: _Optional[bool] = ..., enabled: _Optional[bool] = ..., occupancy: _Optional[int] = ..., accepted: _Optional[int] = ..., retried: _Optional[int] = ..., completed: _Optional[int] = ..., portal_offset: _Optional[int] = ..., op_config: _Optional[int] = ..., max_xfer_shift: _Optional[int] = ..., max_batch_shift: _Optional[int] = ..., clients: _Optional[int] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., driver_name: _Optional[str] = ..., prs_disable: _Optional[bool] = ..., group_id: _Optional[int] = ...) -> None: ...

class DeviceCapabilities(_message.Message):
    __slots__ = ("version", "gen_cap", "wq_cap", "group_cap", "engine_cap", "op_cap", "fields", "max_transfer_size", "max_batch_size", "pasid_support", "prs_support", "ats_support", "max_pasids")
    class FieldsEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    VERSION_FIELD_NUMBER: _ClassVar[int]
    GEN_CAP_FIELD_NUMBER: _ClassVar[int]
    WQ_CAP_FIELD_NUMBER: _ClassVar[int]
    GROUP_CAP_FIELD_NUMBER: _ClassVar[int]
    ENGINE_CAP_FIELD_NUMBER: _ClassVar[int]
    OP_CAP_FIELD_NUMBER: _ClassVar[int]
    FIELDS_FIELD_NUMBER: _ClassVar[int]
    MAX_TRANSFER_SIZE_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SIZE_FIELD_NUMBER: _ClassVar[int]
    PASID_SUPPORT_FIELD_NUMBER: _ClassVar[int]
    PRS_SUPPORT_FIELD_NUMBER: _ClassVar[int]
    ATS_SUPPORT_FIELD_NUMBER: _ClassVar[int]
    MAX_PASIDS_FIELD_NUMBER: _ClassVar[int]
    version: int
    gen_cap: int
    wq_cap: int
    group_cap: int
    engine_cap: int
    op_cap: _containers.RepeatedScalarFieldContainer[int]
    fields: _containers.ScalarMap[str, int]
    max_transfer_size: int
    max_batch_size: int
    pasid_support: bool
    prs_support: bool
    ats_support: bool
    max_pasids: int
    def __init__(self, version: _Optional[int] = ..., gen_cap: _Optional[int] = ..., wq_cap: _Optional[int] = ..., group_cap: _Optional[int] = ..., engine_cap: _Optional[int] = ..., op_cap: _Optional[_Iterable[int]] = ..., fields: _Optional[_Mapping[str, int]] = ..., max_transfer_size: _Optional[int] = ..., max_batch_size: _Optional[int] = ..., pasid_support: _Optional[bool] = ..., prs_support: _Optional[bool] = ..., ats_support: _Optional[bool] = ..., max_pasids: _Optional[int] = ...) -> None: ...

class Group(_message.Message):
    __slots__ = ("id", "wq_ids", "engine_ids", "read_buffers_reserved", "read_buffers_allowed", "use_read_buffer_limit", "traffic_class_a", "traffic_class_b")
    ID_FIELD_NUMBER: _ClassVar[int]
    WQ_IDS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_IDS_FIELD_NUMBER: _ClassVar[int]
    READ_BUFFERS_RESERVED_FIELD_NUMBER: _ClassVar[int]
    READ_BUFFERS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    USE_READ_BUFFER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_A_FIELD_NUMBER: _ClassVar[int]
    TRAFFIC_CLASS_B_FIELD_NUMBER: _ClassVar[int]
    id: int
    wq_ids: _containers.RepeatedScalarFieldContainer[int]
    engine_ids: _containers.RepeatedScalarFieldContainer[int]
    read_buffers_reserved: int
    read_buffers_allowed: int
    use_read_buffer_limit: bool
    traffic_class_a: int
    traffic_class_b: int
    def __init__(self, id: _Optional[int] = ..., wq_ids: _Optional[_Iterable[int]] = ..., engine_ids: _Optional[_Iterable[int]] = ..., read_buffers_reserved: _Optional[int] = ..., read_buffers_allowed: _Optional[int] = ..., use_read_buffer_limit: _Optional[bool] = ..., traffic_class_a: _Optional[int] = ..., traffic_class_b: _Optional[int] = ...) -> None: ...

class Engine(_message.Message):
    __slots__ = ("id", "group_id")
    ID_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    id: int
    group_id: int
    def __init__(self, id: _Optional[int] = ..., group_id: _Optional[int] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("name", "wqs", "engines", "max_pasids", "cycles", "bytes_processed", "swerr", "devtlb_hits", "devtlb_misses", "page_requests", "total_wq_size", "opcap", "capabilities", "groups", "engine_list", "enabled", "read_buffer_limit", "auto_run", "async_page_requests", "pending_events", "blocked_engines", "evl_size", "evl_head", "evl_tail", "evl_overflows")
    NAME_FIELD_NUMBER: _ClassVar[int]
    WQS_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    MAX_PASIDS_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    BYTES_PROCESSED_FIELD_NUMBER: _ClassVar[int]
    SWERR_FIELD_NUMBER: _ClassVar[int]
    DEVTLB_HITS_FIELD_NUMBER: _ClassVar[int]
    DEVTLB_MISSES_FIELD_NUMBER: _ClassVar[int]
    PAGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    TOTAL_WQ_SIZE_FIELD_NUMBER: _ClassVar[int]
    OPCAP_FIELD_NUMBER: _ClassVar[int]
    CAPABILITIES_FIELD_NUMBER: _ClassVar[int]
    GROUPS_FIELD_NUMBER: _ClassVar[int]
    ENGINE_LIST_FIELD_NUMBER: _ClassVar[int]
    ENABLED_FIELD_NUMBER: _ClassVar[int]
    READ_BUFFER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    AUTO_RUN_FIELD_NUMBER: _ClassVar[int]
    ASYNC_PAGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    PENDING_EVENTS_FIELD_NUMBER: _ClassVar[int]
    BLOCKED_ENGINES_FIELD_NUMBER: _ClassVar[int]
    EVL_SIZE_FIELD_NUMBER: _ClassVar[int]
    EVL_HEAD_FIELD_NUMBER: _ClassVar[int]
    EVL_TAIL_FIELD_NUMBER: _ClassVar[int]
    EVL_OVERFLOWS_FIELD_NUMBER: _ClassVar[int]
    name: str
    wqs: _containers.RepeatedCompositeFieldContainer[WorkQueue]
    engines: int
    max_pasids: int
    cycles: int
    bytes_processed: int
    swerr: int
    devtlb_hits: int
    devtlb_misses: int
    page_requests: int
    total_wq_size: int
    opcap: int
    capabilities: DeviceCapabilities
    groups: _containers.RepeatedCompositeFieldContainer[Group]
    engine_list: _containers.RepeatedCompositeFieldContainer[Engine]
    enabled: bool
    read_buffer_limit: int
    auto_run: bool
    async_page_requests: bool
    pending_events: int
    blocked_engines: int
    evl_size: int
    evl_head: int
    evl_tail: int
    evl_overflows: int
    def __init__(self, name: _Optional[str] = ..., wqs: _Optional[_Iterable[_Union[WorkQueue, _Mapping]]] = ..., engines: _Optional[int] = ..., max_pasids: _Optional[int] = ..., cycles: _Optional[int] = ..., bytes_processed: _Optional[int] = ..., swerr: _Optional[int] = ..., devtlb_hits: _Optional[int] = ..., devtlb_misses: _Optional[int] = ..., page_requests: _Optional[int] = ..., total_wq_size: _Optional[int] = ..., opcap: _Optional[int] = ..., capabilities: _Optional[_Union[DeviceCapabilities, _Mapping]] = ..., groups: _Optional[_Iterable[_Union[Group, _Mapping]]] = ..., engine_list: _Optional[_Iterable[_Union[Engine, _Mapping]]] = ..., enabled: _Optional[bool] = ..., read_buffer_limit: _Optional[int] = ..., auto_run: _Optional[bool] = ..., async_page_requests: _Optional[bool] = ..., pending_events: _Optional[int] = ..., blocked_engines: _Optional[int] = ..., evl_size: _Optional[int] = ..., evl_head: _Optional[int] = ..., evl_tail: _Optional[int] = ..., evl_overflows: _Optional[int] = ...) -> None: ...

class EventLogEntry(_message.Message):
    __slots__ = ("index", "error", "operation", "pasid", "wq_idx", "fault_addr", "fault_rw", "batch", "batch_idx", "rcr", "rci", "priv", "completion_record", "raw")
    INDEX_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    OPERATION_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    WQ_IDX_FIELD_NUMBER: _ClassVar[int]
    FAULT_ADDR_FIELD_NUMBER: _ClassVar[int]
    FAULT_RW_FIELD_NUMBER: _ClassVar[int]
    BATCH_FIELD_NUMBER: _ClassVar[int]
    BATCH_IDX_FIELD_NUMBER: _ClassVar[int]
    RCR_FIELD_NUMBER: _ClassVar[int]
    RCI_FIELD_NUMBER: _ClassVar[int]
    PRIV_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_RECORD_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    index: int
    error: int
    operation: int
    pasid: int
    wq_idx: int
    fault_addr: int
    fault_rw: bool
    batch: bool
    batch_idx: int
    rcr: bool
    rci: bool
    priv: bool
    completion_record: bytes
    raw: bytes
    def __init__(self, index: _Optional[int] = ..., error: _Optional[int] = ..., operation: _Optional[int] = ..., pasid: _Optional[int] = ..., wq_idx: _Optional[int] = ..., fault_addr: _Optional[int] = ..., fault_rw: _Optional[bool] = ..., batch: _Optional[bool] = ..., batch_idx: _Optional[int] = ..., rcr: _Optional[bool] = ..., rci: _Optional[bool] = ..., priv: _Optional[bool] = ..., completion_record: _Optional[bytes] = ..., raw: _Optional[bytes] = ...) -> None: ...

class GetEventLogRequest(_message.Message):
    __slots__ = ("device", "consume")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    CONSUME_FIELD_NUMBER: _ClassVar[int]
    device: str
    consume: bool
    def __init__(self, device: _Optional[str] = ..., consume: _Optional[bool] = ...) -> None: ...

class GetEventLogResponse(_message.Message):
    __slots__ = ("entries", "device")
    ENTRIES_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    entries: _containers.RepeatedCompositeFieldContainer[EventLogEntry]
    device: Device
    def __init__(self, entries: _Optional[_Iterable[_Union[EventLogEntry, _Mapping]]] = ..., device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class SetEventLogSizeRequest(_message.Message):
    __slots__ = ("device", "size")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    device: str
    size: int
    def __init__(self, device: _Optional[str] = ..., size: _Optional[int] = ...) -> None: ...

class SetEventLogSizeResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class SetRunOptionsRequest(_message.Message):
    __slots__ = ("device", "auto_run", "async_page_requests")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    AUTO_RUN_FIELD_NUMBER: _ClassVar[int]
    ASYNC_PAGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    device: str
    auto_run: bool
    async_page_requests: bool
    def __init__(self, device: _Optional[str] = ..., auto_run: _Optional[bool] = ..., async_page_requests: _Optional[bool] = ...) -> None: ...

class SetRunOptionsResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class ListDevicesRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class ListDevicesResponse(_message.Message):
    __slots__ = ("devices",)
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    devices: _containers.RepeatedCompositeFieldContainer[Device]
    def __init__(self, devices: _Optional[_Iterable[_Union[Device, _Mapping]]] = ...) -> None: ...

class OpenWorkQueueRequest(_message.Message):
    __slots__ = ("device", "wq_id", "mm", "pgd")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    MM_FIELD_NUMBER: _ClassVar[int]
    PGD_FIELD_NUMBER: _ClassVar[int]
    device: str
    wq_id: int
    mm: int
    pgd: int
    def __init__(self, device: _Optional[str] = ..., wq_id: _Optional[int] = ..., mm: _Optional[int] = ..., pgd: _Optional[int] = ...) -> None: ...

class OpenWorkQueueResponse(_message.Message):
    __slots__ = ("pasid", "pasid_allocated", "portal_offset", "mode")
    PASID_FIELD_NUMBER: _ClassVar[int]
    PASID_ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    PORTAL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    pasid_allocated: bool
    portal_offset: int
    mode: WqMode
    def __init__(self, pasid: _Optional[int] = ..., pasid_allocated: _Optional[bool] = ..., portal_offset: _Optional[int] = ..., mode: _Optional[_Union[WqMode, str]] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("device", "portal_offset", "command", "kind", "cycles")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PORTAL_OFFSET_FIELD_NUMBER: _ClassVar[int]
    COMMAND_FIELD_NUMBER: _ClassVar[int]
    KIND_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    device: str
    portal_offset: int
    command: bytes
    kind: StoreKind
    cycles: int
    def __init__(self, device: _Optional[str] = ..., portal_offset: _Optional[int] = ..., command: _Optional[bytes] = ..., kind: _Optional[_Union[StoreKind, str]] = ..., cycles: _Optional[int] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("accepted", "retry_reason", "occupancy")
    ACCEPTED_FIELD_NUMBER: _ClassVar[int]
    RETRY_REASON_FIELD_NUMBER: _ClassVar[int]
    OCCUPANCY_FIELD_NUMBER: _ClassVar[int]
    accepted: bool
    retry_reason: str
    occupancy: int
    def __init__(self, accepted: _Optional[bool] = ..., retry_reason: _Optional[str] = ..., occupancy: _Optional[int] = ...) -> None: ...

class AdvanceRequest(_message.Message):
    __slots__ = ("device", "until_cycles", "poll")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_CYCLES_FIELD_NUMBER: _ClassVar[int]
    POLL_FIELD_NUMBER: _ClassVar[int]
    device: str
    until_cycles: int
    poll: bool
    def __init__(self, device: _Optional[str] = ..., until_cycles: _Optional[int] = ..., poll: _Optional[bool] = ...) -> None: ...

class AdvanceResponse(_message.Message):
    __slots__ = ("executed", "cycles")
    EXECUTED_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    executed: int
    cycles: int
    def __init__(self, executed: _Optional[int] = ..., cycles: _Optional[int] = ...) -> None: ...

class InvalidateDeviceTlbRequest(_message.Message):
    __slots__ = ("device", "pasid", "address", "length")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    device: str
    pasid: int
    address: int
    length: int
    def __init__(self, device: _Optional[str] = ..., pasid: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class InvalidateDeviceTlbResponse(_message.Message):
    __slots__ = ("entries_dropped",)
    ENTRIES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    entries_dropped: int
    def __init__(self, entries_dropped: _Optional[int] = ...) -> None: ...

class CloseWorkQueueRequest(_message.Message):
    __slots__ = ("device", "wq_id", "mm", "unbind", "free_if_unused")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    MM_FIELD_NUMBER: _ClassVar[int]
    UNBIND_FIELD_NUMBER: _ClassVar[int]
    FREE_IF_UNUSED_FIELD_NUMBER: _ClassVar[int]
    device: str
    wq_id: int
    mm: int
    unbind: bool
    free_if_unused: bool
    def __init__(self, device: _Optional[str] = ..., wq_id: _Optional[int] = ..., mm: _Optional[int] = ..., unbind: _Optional[bool] = ..., free_if_unused: _Optional[bool] = ...) -> None: ...

class CloseWorkQueueResponse(_message.Message):
    __slots__ = ("pasid", "freed")
    PASID_FIELD_NUMBER: _ClassVar[int]
    FREED_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    freed: bool
    def __init__(self, pasid: _Optional[int] = ..., freed: _Optional[bool] = ...) -> None: ...

class ConfigureWorkQueueRequest(_message.Message):
    __slots__ = ("device", "wq_id", "mode", "size", "threshold", "priority", "block_on_fault", "op_config", "max_xfer_shift", "max_batch_shift", "type", "name", "driver_name", "prs_disable", "group_id")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    MODE_FIELD_NUMBER: _ClassVar[int]
    SIZE_FIELD_NUMBER: _ClassVar[int]
    THRESHOLD_FIELD_NUMBER: _ClassVar[int]
    PRIORITY_FIELD_NUMBER: _ClassVar[int]
    BLOCK_ON_FAULT_FIELD_NUMBER: _ClassVar[int]
    OP_CONFIG_FIELD_NUMBER: _ClassVar[int]
    MAX_XFER_SHIFT_FIELD_NUMBER: _ClassVar[int]
    MAX_BATCH_SHIFT_FIELD_NUMBER: _ClassVar[int]
    TYPE_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    DRIVER_NAME_FIELD_NUMBER: _ClassVar[int]
    PRS_DISABLE_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    device: str
    wq_id: int
    mode: WqMode
    size: int
    threshold: int
    priority: int
    block_on_fault: bool
    op_config: int
    max_xfer_shift: int
    max_batch_shift: int
    type: str
    name: str
    driver_name: str
    prs_disable: bool
    group_id: int
    def __init__(self, device: _Optional[str] = ..., wq_id: _Optional[int] = ..., mode: _Optional[_Union[WqMode, str]] = ..., size: _Optional[int] = ..., threshold: _Optional[int] = ..., priority: _Optional[int] = ..., block_on_fault: _Optional[bool] = ..., op_config: _Optional[int] = ..., max_xfer_shift: _Optional[int] = ..., max_batch_shift: _Optional[int] = ..., type: _Optional[str] = ..., name: _Optional[str] = ..., driver_name: _Optional[str] = ..., prs_disable: _Optional[bool] = ..., group_id: _Optional[int] = ...) -> None: ...

class ConfigureWorkQueueResponse(_message.Message):
    __slots__ = ("wq",)
    WQ_FIELD_NUMBER: _ClassVar[int]
    wq: WorkQueue
    def __init__(self, wq: _Optional[_Union[WorkQueue, _Mapping]] = ...) -> None: ...

class EnableWorkQueueRequest(_message.Message):
    __slots__ = ("device", "wq_id")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    device: str
    wq_id: int
    def __init__(self, device: _Optional[str] = ..., wq_id: _Optional[int] = ...) -> None: ...

class EnableWorkQueueResponse(_message.Message):
    __slots__ = ("wq",)
    WQ_FIELD_NUMBER: _ClassVar[int]
    wq: WorkQueue
    def __init__(self, wq: _Optional[_Union[WorkQueue, _Mapping]] = ...) -> None: ...

class DisableWorkQueueRequest(_message.Message):
    __slots__ = ("device", "wq_id")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    device: str
    wq_id: int
    def __init__(self, device: _Optional[str] = ..., wq_id: _Optional[int] = ...) -> None: ...

class DisableWorkQueueResponse(_message.Message):
    __slots__ = ("wq",)
    WQ_FIELD_NUMBER: _ClassVar[int]
    wq: WorkQueue
    def __init__(self, wq: _Optional[_Union[WorkQueue, _Mapping]] = ...) -> None: ...

class IdList(_message.Message):
    __slots__ = ("ids",)
    IDS_FIELD_NUMBER: _ClassVar[int]
    ids: _containers.RepeatedScalarFieldContainer[int]
    def __init__(self, ids: _Optional[_Iterable[int]] = ...) -> None: ...

class ConfigureGroupRequest(_message.Message):
    __slots__ = ("device", "group_id", "engines", "wqs", "read_buffers_reserved", "read_buffers_allowed", "use_read_buffer_limit")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    GROUP_ID_FIELD_NUMBER: _ClassVar[int]
    ENGINES_FIELD_NUMBER: _ClassVar[int]
    WQS_FIELD_NUMBER: _ClassVar[int]
    READ_BUFFERS_RESERVED_FIELD_NUMBER: _ClassVar[int]
    READ_BUFFERS_ALLOWED_FIELD_NUMBER: _ClassVar[int]
    USE_READ_BUFFER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    device: str
    group_id: int
    engines: IdList
    wqs: IdList
    read_buffers_reserved: int
    read_buffers_allowed: int
    use_read_buffer_limit: bool
    def __init__(self, device: _Optional[str] = ..., group_id: _Optional[int] = ..., engines: _Optional[_Union[IdList, _Mapping]] = ..., wqs: _Optional[_Union[IdList, _Mapping]] = ..., read_buffers_reserved: _Optional[int] = ..., read_buffers_allowed: _Optional[int] = ..., use_read_buffer_limit: _Optional[bool] = ...) -> None: ...

class ConfigureGroupResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class ConfigureDeviceRequest(_message.Message):
    __slots__ = ("device", "read_buffer_limit")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    READ_BUFFER_LIMIT_FIELD_NUMBER: _ClassVar[int]
    device: str
    read_buffer_limit: int
    def __init__(self, device: _Optional[str] = ..., read_buffer_limit: _Optional[int] = ...) -> None: ...

class ConfigureDeviceResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class EnableDeviceRequest(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: str
    def __init__(self, device: _Optional[str] = ...) -> None: ...

class EnableDeviceResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...

class DisableDeviceRequest(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: str
    def __init__(self, device: _Optional[str] = ...) -> None: ...

class DisableDeviceResponse(_message.Message):
    __slots__ = ("device",)
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    device: Device
    def __init__(self, device: _Optional[_Union[Device, _Mapping]] = ...) -> None: ...
