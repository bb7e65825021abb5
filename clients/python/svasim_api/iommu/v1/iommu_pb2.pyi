from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class FaultReason(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    FAULT_REASON_UNSPECIFIED: _ClassVar[FaultReason]
    FAULT_REASON_NOT_PRESENT: _ClassVar[FaultReason]
    FAULT_REASON_PROTECTION: _ClassVar[FaultReason]
    FAULT_REASON_PASID_NOT_PRESENT: _ClassVar[FaultReason]
    FAULT_REASON_PASID_OUT_OF_RANGE: _ClassVar[FaultReason]

class PageResponseCode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    PAGE_RESPONSE_CODE_UNSPECIFIED: _ClassVar[PageResponseCode]
    PAGE_RESPONSE_CODE_SUCCESS: _ClassVar[PageResponseCode]
    PAGE_RESPONSE_CODE_INVALID: _ClassVar[PageResponseCode]
    PAGE_RESPONSE_CODE_FAILURE: _ClassVar[PageResponseCode]
FAULT_REASON_UNSPECIFIED: FaultReason
FAULT_REASON_NOT_PRESENT: FaultReason
FAULT_REASON_PROTECTION: FaultReason
FAULT_REASON_PASID_NOT_PRESENT: FaultReason
FAULT_REASON_PASID_OUT_OF_RANGE: FaultReason
PAGE_RESPONSE_CODE_UNSPECIFIED: PageResponseCode
PAGE_RESPONSE_CODE_SUCCESS: PageResponseCode
PAGE_RESPONSE_CODE_INVALID: PageResponseCode
PAGE_RESPONSE_CODE_FAILURE: PageResponseCode

class BindDeviceRequest(_message.Message):
    __slots__ = ("device", "mm", "pgd", "max_pasids")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MM_FIELD_NUMBER: _ClassVar[int]
    PGD_FIELD_NUMBER: _ClassVar[int]
    MAX_PASIDS_FIELD_NUMBER: _ClassVar[int]
    device: str
    mm: int
    pgd: int
    max_pasids: int
    def __init__(self, device: _Optional[str] = ..., mm: _Optional[int] = ..., pgd: _Optional[int] = ..., max_pasids: _Optional[int] = ...) -> None: ...

class BindDeviceResponse(_message.Message):
    __slots__ = ("pasid", "allocated")
    PASID_FIELD_NUMBER: _ClassVar[int]
    ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    allocated: bool
    def __init__(self, pasid: _Optional[int] = ..., allocated: _Optional[bool] = ...) -> None: ...

class UnbindDeviceRequest(_message.Message):
    __slots__ = ("device", "mm", "free_if_unused")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    MM_FIELD_NUMBER: _ClassVar[int]
    FREE_IF_UNUSED_FIELD_NUMBER: _ClassVar[int]
    device: str
    mm: int
    free_if_unused: bool
    def __init__(self, device: _Optional[str] = ..., mm: _Optional[int] = ..., free_if_unused: _Optional[bool] = ...) -> None: ...

class UnbindDeviceResponse(_message.Message):
    __slots__ = ("pasid", "freed")
    PASID_FIELD_NUMBER: _ClassVar[int]
    FREED_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    freed: bool
    def __init__(self, pasid: _Optional[int] = ..., freed: _Optional[bool] = ...) -> None: ...

class DropMmRequest(_message.Message):
    __slots__ = ("mm",)
    MM_FIELD_NUMBER: _ClassVar[int]
    mm: int
    def __init__(self, mm: _Optional[int] = ...) -> None: ...

class DropMmResponse(_message.Message):
    __slots__ = ("pasid",)
    PASID_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    def __init__(self, pasid: _Optional[int] = ...) -> None: ...

class TranslateRequest(_message.Message):
    __slots__ = ("device", "pasid", "address", "length", "write")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    device: str
    pasid: int
    address: int
    length: int
    write: bool
    def __init__(self, device: _Optional[str] = ..., pasid: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ..., write: _Optional[bool] = ...) -> None: ...

class Translation(_message.Message):
    __slots__ = ("address", "physical", "length")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    address: int
    physical: int
    length: int
    def __init__(self, address: _Optional[int] = ..., physical: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class TranslateResponse(_message.Message):
    __slots__ = ("translations", "fault", "fault_address", "iotlb_hits", "iotlb_misses")
    TRANSLATIONS_FIELD_NUMBER: _ClassVar[int]
    FAULT_FIELD_NUMBER: _ClassVar[int]
    FAULT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    IOTLB_HITS_FIELD_NUMBER: _ClassVar[int]
    IOTLB_MISSES_FIELD_NUMBER: _ClassVar[int]
    translations: _containers.RepeatedCompositeFieldContainer[Translation]
    fault: FaultReason
    fault_address: int
    iotlb_hits: int
    iotlb_misses: int
    def __init__(self, translations: _Optional[_Iterable[_Union[Translation, _Mapping]]] = ..., fault: _Optional[_Union[FaultReason, str]] = ..., fault_address: _Optional[int] = ..., iotlb_hits: _Optional[int] = ..., iotlb_misses: _Optional[int] = ...) -> None: ...

class InvalidatePasidRequest(_message.Message):
    __slots__ = ("pasid", "address", "length")
    PASID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    address: int
    length: int
    def __init__(self, pasid: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class InvalidatePasidResponse(_message.Message):
    __slots__ = ("entries_dropped",)
    ENTRIES_DROPPED_FIELD_NUMBER: _ClassVar[int]
    entries_dropped: int
    def __init__(self, entries_dropped: _Optional[int] = ...) -> None: ...

class GetPasidEntryRequest(_message.Message):
    __slots__ = ("device", "pasid")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    device: str
    pasid: int
    def __init__(self, device: _Optional[str] = ..., pasid: _Optional[int] = ...) -> None: ...

class PasidEntry(_message.Message):
    __slots__ = ("present", "pgtt", "flptr", "dir_index", "table_index", "mm", "raw")
    PRESENT_FIELD_NUMBER: _ClassVar[int]
    PGTT_FIELD_NUMBER: _ClassVar[int]
    FLPTR_FIELD_NUMBER: _ClassVar[int]
    DIR_INDEX_FIELD_NUMBER: _ClassVar[int]
    TABLE_INDEX_FIELD_NUMBER: _ClassVar[int]
    MM_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    present: bool
    pgtt: int
    flptr: int
    dir_index: int
    table_index: int
    mm: int
    raw: bytes
    def __init__(self, present: _Optional[bool] = ..., pgtt: _Optional[int] = ..., flptr: _Optional[int] = ..., dir_index: _Optional[int] = ..., table_index: _Optional[int] = ..., mm: _Optional[int] = ..., raw: _Optional[bytes] = ...) -> None: ...

class GetPasidEntryResponse(_message.Message):
    __slots__ = ("entry",)
    ENTRY_FIELD_NUMBER: _ClassVar[int]
    entry: PasidEntry
    def __init__(self, entry: _Optional[_Union[PasidEntry, _Mapping]] = ...) -> None: ...

class GetIommuRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class PasidAllocation(_message.Message):
    __slots__ = ("pasid", "mm", "devices")
    PASID_FIELD_NUMBER: _ClassVar[int]
    MM_FIELD_NUMBER: _ClassVar[int]
    DEVICES_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    mm: int
    devices: _containers.RepeatedScalarFieldContainer[str]
    def __init__(self, pasid: _Optional[int] = ..., mm: _Optional[int] = ..., devices: _Optional[_Iterable[str]] = ...) -> None: ...

class GetIommuResponse(_message.Message):
    __slots__ = ("pasids", "translations", "iotlb_hits", "iotlb_misses", "invalidations", "page_requests", "prg_success", "prg_invalid", "prg_failure", "prq_overflows", "prq_entries", "prq_outstanding", "prq_overflow")
    PASIDS_FIELD_NUMBER: _ClassVar[int]
    TRANSLATIONS_FIELD_NUMBER: _ClassVar[int]
    IOTLB_HITS_FIELD_NUMBER: _ClassVar[int]
    IOTLB_MISSES_FIELD_NUMBER: _ClassVar[int]
    INVALIDATIONS_FIELD_NUMBER: _ClassVar[int]
    PAGE_REQUESTS_FIELD_NUMBER: _ClassVar[int]
    PRG_SUCCESS_FIELD_NUMBER: _ClassVar[int]
    PRG_INVALID_FIELD_NUMBER: _ClassVar[int]
    PRG_FAILURE_FIELD_NUMBER: _ClassVar[int]
    PRQ_OVERFLOWS_FIELD_NUMBER: _ClassVar[int]
    PRQ_ENTRIES_FIELD_NUMBER: _ClassVar[int]
    PRQ_OUTSTANDING_FIELD_NUMBER: _ClassVar[int]
    PRQ_OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    pasids: _containers.RepeatedCompositeFieldContainer[PasidAllocation]
    translations: int
    iotlb_hits: int
    iotlb_misses: int
    invalidations: int
    page_requests: int
    prg_success: int
    prg_invalid: int
    prg_failure: int
    prq_overflows: int
    prq_entries: int
    prq_outstanding: int
    prq_overflow: bool
    def __init__(self, pasids: _Optional[_Iterable[_Union[PasidAllocation, _Mapping]]] = ..., translations: _Optional[int] = ..., iotlb_hits: _Optional[int] = ..., iotlb_misses: _Optional[int] = ..., invalidations: _Optional[int] = ..., page_requests: _Optional[int] = ..., prg_success: _Optional[int] = ..., prg_invalid: _Optional[int] = ..., prg_failure: _Optional[int] = ..., prq_overflows: _Optional[int] = ..., prq_entries: _Optional[int] = ..., prq_outstanding: _Optional[int] = ..., prq_overflow: _Optional[bool] = ...) -> None: ...

class PostPageRequestRequest(_message.Message):
    __slots__ = ("device", "pasid", "address", "write")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    device: str
    pasid: int
    address: int
    write: bool
    def __init__(self, device: _Optional[str] = ..., pasid: _Optional[int] = ..., address: _Optional[int] = ..., write: _Optional[bool] = ...) -> None: ...

class PostPageRequestResponse(_message.Message):
    __slots__ = ("slot", "prg_index", "code", "overflow")
    SLOT_FIELD_NUMBER: _ClassVar[int]
    PRG_INDEX_FIELD_NUMBER: _ClassVar[int]
    CODE_FIELD_NUMBER: _ClassVar[int]
    OVERFLOW_FIELD_NUMBER: _ClassVar[int]
    slot: int
    prg_index: int
    code: PageResponseCode
    overflow: bool
    def __init__(self, slot: _Optional[int] = ..., prg_index: _Optional[int] = ..., code: _Optional[_Union[PageResponseCode, str]] = ..., overflow: _Optional[bool] = ...) -> None: ...

class RespondPageRequestRequest(_message.Message):
    __slots__ = ("device", "slot")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    SLOT_FIELD_NUMBER: _ClassVar[int]
    device: str
    slot: int
    def __init__(self, device: _Optional[str] = ..., slot: _Optional[int] = ...) -> None: ...

class RespondPageRequestResponse(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: PageResponseCode
    def __init__(self, code: _Optional[_Union[PageResponseCode, str]] = ...) -> None: ...

class PageRequestRequest(_message.Message):
    __slots__ = ("device", "pasid", "address", "write")
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    device: str
    pasid: int
    address: int
    write: bool
    def __init__(self, device: _Optional[str] = ..., pasid: _Optional[int] = ..., address: _Optional[int] = ..., write: _Optional[bool] = ...) -> None: ...

class PageRequestResponse(_message.Message):
    __slots__ = ("code",)
    CODE_FIELD_NUMBER: _ClassVar[int]
    code: PageResponseCode
    def __init__(self, code: _Optional[_Union[PageResponseCode, str]] = ...) -> None: ...
