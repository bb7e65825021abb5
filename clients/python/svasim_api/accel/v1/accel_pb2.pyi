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
    __slots__ = ("id", "mode", "size", "threshold", "priority", "block_on_fault", "enabled", "occupancy", "accepted", "retried", "completed", "portal_offset", "op_config", "max_xfer_shift", "max_batch_shift", "clients")
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
    def __init__(self, id: _Optional[int] = ..., mode: _Optional[_Union[WqMode, str]] = ..., size: _Optional[int] = ..., threshold: _Optional[int] = ..., priority: _Optional[int] = ..., block_on_fault: _Optional[bool] = ..., enabled: _Optional[bool] = ..., occupancy: _Optional[int] = ..., accepted: _Optional[int] = ..., retried: _Optional[int] = ..., completed: _Optional[int] = ..., portal_offset: _Optional[int] = ..., op_config: _Optional[int] = ..., max_xfer_shift: _Optional[int] = ..., max_batch_shift: _Optional[int] = ..., clients: _Optional[int] = ...) -> None: ...

class Device(_message.Message):
    __slots__ = ("name", "wqs", "engines", "max_pasids", "cycles", "bytes_processed", "swerr", "devtlb_hits", "devtlb_misses", "page_requests", "total_wq_size", "opcap")
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
    def __init__(self, name: _Optional[str] = ..., wqs: _Optional[_Iterable[_Union[WorkQueue, _Mapping]]] = ..., engines: _Optional[int] = ..., max_pasids: _Optional[int] = ..., cycles: _Optional[int] = ..., bytes_processed: _Optional[int] = ..., swerr: _Optional[int] = ..., devtlb_hits: _Optional[int] = ..., devtlb_misses: _Optional[int] = ..., page_requests: _Optional[int] = ..., total_wq_size: _Optional[int] = ..., opcap: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("device", "until_cycles")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    UNTIL_CYCLES_FIELD_NUMBER: _ClassVar[int]
    device: str
    until_cycles: int
    def __init__(self, device: _Optional[str] = ..., until_cycles: _Optional[int] = ...) -> None: ...

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
    __slots__ = ("device", "wq_id", "mode", "size", "threshold", "priority", "block_on_fault", "op_config", "max_xfer_shift", "max_batch_shift")
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
    def __init__(self, device: _Optional[str] = ..., wq_id: _Optional[int] = ..., mode: _Optional[_Union[WqMode, str]] = ..., size: _Optional[int] = ..., threshold: _Optional[int] = ..., priority: _Optional[int] = ..., block_on_fault: _Optional[bool] = ..., op_config: _Optional[int] = ..., max_xfer_shift: _Optional[int] = ..., max_batch_shift: _Optional[int] = ...) -> None: ...

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
