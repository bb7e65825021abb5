from svasim_api.common.v1 import idxd_pb2 as _idxd_pb2
from google.protobuf.internal import containers as _containers
from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Iterable as _Iterable, Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class EnqcmdOutcome(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    ENQCMD_OUTCOME_UNSPECIFIED: _ClassVar[EnqcmdOutcome]
    ENQCMD_OUTCOME_ACCEPTED: _ClassVar[EnqcmdOutcome]
    ENQCMD_OUTCOME_RETRY: _ClassVar[EnqcmdOutcome]
    ENQCMD_OUTCOME_SIGSEGV: _ClassVar[EnqcmdOutcome]
    ENQCMD_OUTCOME_PAGE_FAULT_SIGSEGV: _ClassVar[EnqcmdOutcome]
    ENQCMD_OUTCOME_KERNEL_GP: _ClassVar[EnqcmdOutcome]
    ENQCMD_OUTCOME_POSTED: _ClassVar[EnqcmdOutcome]
    ENQCMD_OUTCOME_STORED: _ClassVar[EnqcmdOutcome]
ENQCMD_OUTCOME_UNSPECIFIED: EnqcmdOutcome
ENQCMD_OUTCOME_ACCEPTED: EnqcmdOutcome
ENQCMD_OUTCOME_RETRY: EnqcmdOutcome
ENQCMD_OUTCOME_SIGSEGV: EnqcmdOutcome
ENQCMD_OUTCOME_PAGE_FAULT_SIGSEGV: EnqcmdOutcome
ENQCMD_OUTCOME_KERNEL_GP: EnqcmdOutcome
ENQCMD_OUTCOME_POSTED: EnqcmdOutcome
ENQCMD_OUTCOME_STORED: EnqcmdOutcome

class GetFabricRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class Cpu(_message.Message):
    __slots__ = ("cpu", "current_tid", "ia32_pasid", "loaded_mm", "cycles")
    CPU_FIELD_NUMBER: _ClassVar[int]
    CURRENT_TID_FIELD_NUMBER: _ClassVar[int]
    IA32_PASID_FIELD_NUMBER: _ClassVar[int]
    LOADED_MM_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    cpu: int
    current_tid: int
    ia32_pasid: int
    loaded_mm: int
    cycles: int
    def __init__(self, cpu: _Optional[int] = ..., current_tid: _Optional[int] = ..., ia32_pasid: _Optional[int] = ..., loaded_mm: _Optional[int] = ..., cycles: _Optional[int] = ...) -> None: ...

class GetFabricResponse(_message.Message):
    __slots__ = ("cpus", "policy", "run_id")
    CPUS_FIELD_NUMBER: _ClassVar[int]
    POLICY_FIELD_NUMBER: _ClassVar[int]
    RUN_ID_FIELD_NUMBER: _ClassVar[int]
    cpus: _containers.RepeatedCompositeFieldContainer[Cpu]
    policy: str
    run_id: str
    def __init__(self, cpus: _Optional[_Iterable[_Union[Cpu, _Mapping]]] = ..., policy: _Optional[str] = ..., run_id: _Optional[str] = ...) -> None: ...

class Process(_message.Message):
    __slots__ = ("pid", "name", "pasid", "tids", "pgd", "killed", "kill_signal", "native_pid")
    PID_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    TIDS_FIELD_NUMBER: _ClassVar[int]
    PGD_FIELD_NUMBER: _ClassVar[int]
    KILLED_FIELD_NUMBER: _ClassVar[int]
    KILL_SIGNAL_FIELD_NUMBER: _ClassVar[int]
    NATIVE_PID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    name: str
    pasid: int
    tids: _containers.RepeatedScalarFieldContainer[int]
    pgd: int
    killed: bool
    kill_signal: int
    native_pid: int
    def __init__(self, pid: _Optional[int] = ..., name: _Optional[str] = ..., pasid: _Optional[int] = ..., tids: _Optional[_Iterable[int]] = ..., pgd: _Optional[int] = ..., killed: _Optional[bool] = ..., kill_signal: _Optional[int] = ..., native_pid: _Optional[int] = ...) -> None: ...

class CreateProcessRequest(_message.Message):
    __slots__ = ("name", "native_pid")
    NAME_FIELD_NUMBER: _ClassVar[int]
    NATIVE_PID_FIELD_NUMBER: _ClassVar[int]
    name: str
    native_pid: int
    def __init__(self, name: _Optional[str] = ..., native_pid: _Optional[int] = ...) -> None: ...

class CreateProcessResponse(_message.Message):
    __slots__ = ("process",)
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    process: Process
    def __init__(self, process: _Optional[_Union[Process, _Mapping]] = ...) -> None: ...

class GetProcessRequest(_message.Message):
    __slots__ = ("pid",)
    PID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    def __init__(self, pid: _Optional[int] = ...) -> None: ...

class GetProcessResponse(_message.Message):
    __slots__ = ("process",)
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    process: Process
    def __init__(self, process: _Optional[_Union[Process, _Mapping]] = ...) -> None: ...

class MmapRequest(_message.Message):
    __slots__ = ("pid", "length", "writable", "populate")
    PID_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    POPULATE_FIELD_NUMBER: _ClassVar[int]
    pid: int
    length: int
    writable: bool
    populate: bool
    def __init__(self, pid: _Optional[int] = ..., length: _Optional[int] = ..., writable: _Optional[bool] = ..., populate: _Optional[bool] = ...) -> None: ...

class MmapResponse(_message.Message):
    __slots__ = ("address", "length")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    address: int
    length: int
    def __init__(self, address: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class MunmapRequest(_message.Message):
    __slots__ = ("pid", "address", "length")
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    pid: int
    address: int
    length: int
    def __init__(self, pid: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class MunmapResponse(_message.Message):
    __slots__ = ("pages", "iotlb_invalidated")
    PAGES_FIELD_NUMBER: _ClassVar[int]
    IOTLB_INVALIDATED_FIELD_NUMBER: _ClassVar[int]
    pages: int
    iotlb_invalidated: bool
    def __init__(self, pages: _Optional[int] = ..., iotlb_invalidated: _Optional[bool] = ...) -> None: ...

class MprotectRequest(_message.Message):
    __slots__ = ("pid", "address", "length", "writable")
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    pid: int
    address: int
    length: int
    writable: bool
    def __init__(self, pid: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ..., writable: _Optional[bool] = ...) -> None: ...

class MprotectResponse(_message.Message):
    __slots__ = ("ptes_changed", "iotlb_invalidated")
    PTES_CHANGED_FIELD_NUMBER: _ClassVar[int]
    IOTLB_INVALIDATED_FIELD_NUMBER: _ClassVar[int]
    ptes_changed: int
    iotlb_invalidated: bool
    def __init__(self, ptes_changed: _Optional[int] = ..., iotlb_invalidated: _Optional[bool] = ...) -> None: ...

class MadviseRequest(_message.Message):
    __slots__ = ("pid", "address", "length", "advice")
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    ADVICE_FIELD_NUMBER: _ClassVar[int]
    pid: int
    address: int
    length: int
    advice: int
    def __init__(self, pid: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ..., advice: _Optional[int] = ...) -> None: ...

class MadviseResponse(_message.Message):
    __slots__ = ("pages", "iotlb_invalidated")
    PAGES_FIELD_NUMBER: _ClassVar[int]
    IOTLB_INVALIDATED_FIELD_NUMBER: _ClassVar[int]
    pages: int
    iotlb_invalidated: bool
    def __init__(self, pages: _Optional[int] = ..., iotlb_invalidated: _Optional[bool] = ...) -> None: ...

class WriteMemoryRequest(_message.Message):
    __slots__ = ("pid", "address", "data")
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    pid: int
    address: int
    data: bytes
    def __init__(self, pid: _Optional[int] = ..., address: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class WriteMemoryResponse(_message.Message):
    __slots__ = ("written",)
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    written: int
    def __init__(self, written: _Optional[int] = ...) -> None: ...

class ReadMemoryRequest(_message.Message):
    __slots__ = ("pid", "address", "length")
    PID_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    pid: int
    address: int
    length: int
    def __init__(self, pid: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class ReadMemoryResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class OpenWorkQueueRequest(_message.Message):
    __slots__ = ("pid", "device", "wq_id")
    PID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    device: str
    wq_id: int
    def __init__(self, pid: _Optional[int] = ..., device: _Optional[str] = ..., wq_id: _Optional[int] = ...) -> None: ...

class OpenWorkQueueResponse(_message.Message):
    __slots__ = ("portal_address", "pasid", "pasid_allocated", "shared")
    PORTAL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PASID_FIELD_NUMBER: _ClassVar[int]
    PASID_ALLOCATED_FIELD_NUMBER: _ClassVar[int]
    SHARED_FIELD_NUMBER: _ClassVar[int]
    portal_address: int
    pasid: int
    pasid_allocated: bool
    shared: bool
    def __init__(self, portal_address: _Optional[int] = ..., pasid: _Optional[int] = ..., pasid_allocated: _Optional[bool] = ..., shared: _Optional[bool] = ...) -> None: ...

class Thread(_message.Message):
    __slots__ = ("tid", "pid", "cpu", "pasid_activated", "saved_ia32_pasid", "gp_faults", "enqcmds", "exited", "sequence_point")
    TID_FIELD_NUMBER: _ClassVar[int]
    PID_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    PASID_ACTIVATED_FIELD_NUMBER: _ClassVar[int]
    SAVED_IA32_PASID_FIELD_NUMBER: _ClassVar[int]
    GP_FAULTS_FIELD_NUMBER: _ClassVar[int]
    ENQCMDS_FIELD_NUMBER: _ClassVar[int]
    EXITED_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_POINT_FIELD_NUMBER: _ClassVar[int]
    tid: int
    pid: int
    cpu: int
    pasid_activated: bool
    saved_ia32_pasid: int
    gp_faults: int
    enqcmds: int
    exited: bool
    sequence_point: str
    def __init__(self, tid: _Optional[int] = ..., pid: _Optional[int] = ..., cpu: _Optional[int] = ..., pasid_activated: _Optional[bool] = ..., saved_ia32_pasid: _Optional[int] = ..., gp_faults: _Optional[int] = ..., enqcmds: _Optional[int] = ..., exited: _Optional[bool] = ..., sequence_point: _Optional[str] = ...) -> None: ...

class CreateThreadRequest(_message.Message):
    __slots__ = ("pid", "parent_tid")
    PID_FIELD_NUMBER: _ClassVar[int]
    PARENT_TID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    parent_tid: int
    def __init__(self, pid: _Optional[int] = ..., parent_tid: _Optional[int] = ...) -> None: ...

class CreateThreadResponse(_message.Message):
    __slots__ = ("thread",)
    THREAD_FIELD_NUMBER: _ClassVar[int]
    thread: Thread
    def __init__(self, thread: _Optional[_Union[Thread, _Mapping]] = ...) -> None: ...

class GetThreadRequest(_message.Message):
    __slots__ = ("tid",)
    TID_FIELD_NUMBER: _ClassVar[int]
    tid: int
    def __init__(self, tid: _Optional[int] = ...) -> None: ...

class GetThreadResponse(_message.Message):
    __slots__ = ("thread",)
    THREAD_FIELD_NUMBER: _ClassVar[int]
    thread: Thread
    def __init__(self, thread: _Optional[_Union[Thread, _Mapping]] = ...) -> None: ...

class ScheduleRequest(_message.Message):
    __slots__ = ("tid", "cpu")
    TID_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    tid: int
    cpu: int
    def __init__(self, tid: _Optional[int] = ..., cpu: _Optional[int] = ...) -> None: ...

class ScheduleResponse(_message.Message):
    __slots__ = ("prev_tid", "switched_mm", "cycles")
    PREV_TID_FIELD_NUMBER: _ClassVar[int]
    SWITCHED_MM_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    prev_tid: int
    switched_mm: bool
    cycles: int
    def __init__(self, prev_tid: _Optional[int] = ..., switched_mm: _Optional[bool] = ..., cycles: _Optional[int] = ...) -> None: ...

class EnqcmdRequest(_message.Message):
    __slots__ = ("tid", "portal_address", "raw", "desc")
    TID_FIELD_NUMBER: _ClassVar[int]
    PORTAL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    DESC_FIELD_NUMBER: _ClassVar[int]
    tid: int
    portal_address: int
    raw: bytes
    desc: _idxd_pb2.DsaDescriptor
    def __init__(self, tid: _Optional[int] = ..., portal_address: _Optional[int] = ..., raw: _Optional[bytes] = ..., desc: _Optional[_Union[_idxd_pb2.DsaDescriptor, _Mapping]] = ...) -> None: ...

class EnqcmdResponse(_message.Message):
    __slots__ = ("outcome", "zf", "gp_faults", "fixup_loaded_msr", "pasid_sent", "retry_reason", "cycles")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ZF_FIELD_NUMBER: _ClassVar[int]
    GP_FAULTS_FIELD_NUMBER: _ClassVar[int]
    FIXUP_LOADED_MSR_FIELD_NUMBER: _ClassVar[int]
    PASID_SENT_FIELD_NUMBER: _ClassVar[int]
    RETRY_REASON_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    outcome: EnqcmdOutcome
    zf: bool
    gp_faults: int
    fixup_loaded_msr: bool
    pasid_sent: int
    retry_reason: str
    cycles: int
    def __init__(self, outcome: _Optional[_Union[EnqcmdOutcome, str]] = ..., zf: _Optional[bool] = ..., gp_faults: _Optional[int] = ..., fixup_loaded_msr: _Optional[bool] = ..., pasid_sent: _Optional[int] = ..., retry_reason: _Optional[str] = ..., cycles: _Optional[int] = ...) -> None: ...

class EnqcmdBatchRequest(_message.Message):
    __slots__ = ("requests",)
    REQUESTS_FIELD_NUMBER: _ClassVar[int]
    requests: _containers.RepeatedCompositeFieldContainer[EnqcmdRequest]
    def __init__(self, requests: _Optional[_Iterable[_Union[EnqcmdRequest, _Mapping]]] = ...) -> None: ...

class EnqcmdBatchResponse(_message.Message):
    __slots__ = ("responses",)
    RESPONSES_FIELD_NUMBER: _ClassVar[int]
    responses: _containers.RepeatedCompositeFieldContainer[EnqcmdResponse]
    def __init__(self, responses: _Optional[_Iterable[_Union[EnqcmdResponse, _Mapping]]] = ...) -> None: ...

class WaitCompletionRequest(_message.Message):
    __slots__ = ("tid", "completion_addr")
    TID_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_ADDR_FIELD_NUMBER: _ClassVar[int]
    tid: int
    completion_addr: int
    def __init__(self, tid: _Optional[int] = ..., completion_addr: _Optional[int] = ...) -> None: ...

class WaitCompletionResponse(_message.Message):
    __slots__ = ("completed", "record", "raw", "cycles")
    COMPLETED_FIELD_NUMBER: _ClassVar[int]
    RECORD_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    completed: bool
    record: _idxd_pb2.DsaCompletionRecord
    raw: bytes
    cycles: int
    def __init__(self, completed: _Optional[bool] = ..., record: _Optional[_Union[_idxd_pb2.DsaCompletionRecord, _Mapping]] = ..., raw: _Optional[bytes] = ..., cycles: _Optional[int] = ...) -> None: ...

class SubmitRequest(_message.Message):
    __slots__ = ("submissions",)
    SUBMISSIONS_FIELD_NUMBER: _ClassVar[int]
    submissions: _containers.RepeatedCompositeFieldContainer[Submission]
    def __init__(self, submissions: _Optional[_Iterable[_Union[Submission, _Mapping]]] = ...) -> None: ...

class Submission(_message.Message):
    __slots__ = ("tag", "enqcmd", "movdir64b", "enqcmds", "wait_completion")
    TAG_FIELD_NUMBER: _ClassVar[int]
    ENQCMD_FIELD_NUMBER: _ClassVar[int]
    MOVDIR64B_FIELD_NUMBER: _ClassVar[int]
    ENQCMDS_FIELD_NUMBER: _ClassVar[int]
    WAIT_COMPLETION_FIELD_NUMBER: _ClassVar[int]
    tag: int
    enqcmd: EnqcmdRequest
    movdir64b: Movdir64bRequest
    enqcmds: EnqcmdsRequest
    wait_completion: bool
    def __init__(self, tag: _Optional[int] = ..., enqcmd: _Optional[_Union[EnqcmdRequest, _Mapping]] = ..., movdir64b: _Optional[_Union[Movdir64bRequest, _Mapping]] = ..., enqcmds: _Optional[_Union[EnqcmdsRequest, _Mapping]] = ..., wait_completion: _Optional[bool] = ...) -> None: ...

class SubmissionError(_message.Message):
    __slots__ = ("code", "message", "reason", "domain", "metadata", "retry_delay_ms")
    class MetadataEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: str
        def __init__(self, key: _Optional[str] = ..., value: _Optional[str] = ...) -> None: ...
    CODE_FIELD_NUMBER: _ClassVar[int]
    MESSAGE_FIELD_NUMBER: _ClassVar[int]
    REASON_FIELD_NUMBER: _ClassVar[int]
    DOMAIN_FIELD_NUMBER: _ClassVar[int]
    METADATA_FIELD_NUMBER: _ClassVar[int]
    RETRY_DELAY_MS_FIELD_NUMBER: _ClassVar[int]
    code: int
    message: str
    reason: str
    domain: str
    metadata: _containers.ScalarMap[str, str]
    retry_delay_ms: int
    def __init__(self, code: _Optional[int] = ..., message: _Optional[str] = ..., reason: _Optional[str] = ..., domain: _Optional[str] = ..., metadata: _Optional[_Mapping[str, str]] = ..., retry_delay_ms: _Optional[int] = ...) -> None: ...

class SubmissionResult(_message.Message):
    __slots__ = ("tag", "enqcmd", "movdir64b", "enqcmds", "completion", "error", "input_seq")
    TAG_FIELD_NUMBER: _ClassVar[int]
    ENQCMD_FIELD_NUMBER: _ClassVar[int]
    MOVDIR64B_FIELD_NUMBER: _ClassVar[int]
    ENQCMDS_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_FIELD_NUMBER: _ClassVar[int]
    ERROR_FIELD_NUMBER: _ClassVar[int]
    INPUT_SEQ_FIELD_NUMBER: _ClassVar[int]
    tag: int
    enqcmd: EnqcmdResponse
    movdir64b: Movdir64bResponse
    enqcmds: EnqcmdsResponse
    completion: WaitCompletionResponse
    error: SubmissionError
    input_seq: int
    def __init__(self, tag: _Optional[int] = ..., enqcmd: _Optional[_Union[EnqcmdResponse, _Mapping]] = ..., movdir64b: _Optional[_Union[Movdir64bResponse, _Mapping]] = ..., enqcmds: _Optional[_Union[EnqcmdsResponse, _Mapping]] = ..., completion: _Optional[_Union[WaitCompletionResponse, _Mapping]] = ..., error: _Optional[_Union[SubmissionError, _Mapping]] = ..., input_seq: _Optional[int] = ...) -> None: ...

class SubmitResponse(_message.Message):
    __slots__ = ("results",)
    RESULTS_FIELD_NUMBER: _ClassVar[int]
    results: _containers.RepeatedCompositeFieldContainer[SubmissionResult]
    def __init__(self, results: _Optional[_Iterable[_Union[SubmissionResult, _Mapping]]] = ...) -> None: ...

class WalkPageTableRequest(_message.Message):
    __slots__ = ("pgd", "address", "length", "write")
    PGD_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    pgd: int
    address: int
    length: int
    write: bool
    def __init__(self, pgd: _Optional[int] = ..., address: _Optional[int] = ..., length: _Optional[int] = ..., write: _Optional[bool] = ...) -> None: ...

class Extent(_message.Message):
    __slots__ = ("address", "physical", "length", "writable")
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    WRITABLE_FIELD_NUMBER: _ClassVar[int]
    address: int
    physical: int
    length: int
    writable: bool
    def __init__(self, address: _Optional[int] = ..., physical: _Optional[int] = ..., length: _Optional[int] = ..., writable: _Optional[bool] = ...) -> None: ...

class WalkPageTableResponse(_message.Message):
    __slots__ = ("extents", "faulted", "fault_address", "protection")
    EXTENTS_FIELD_NUMBER: _ClassVar[int]
    FAULTED_FIELD_NUMBER: _ClassVar[int]
    FAULT_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    PROTECTION_FIELD_NUMBER: _ClassVar[int]
    extents: _containers.RepeatedCompositeFieldContainer[Extent]
    faulted: bool
    fault_address: int
    protection: bool
    def __init__(self, extents: _Optional[_Iterable[_Union[Extent, _Mapping]]] = ..., faulted: _Optional[bool] = ..., fault_address: _Optional[int] = ..., protection: _Optional[bool] = ...) -> None: ...

class DmaReadRequest(_message.Message):
    __slots__ = ("physical", "length")
    PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    LENGTH_FIELD_NUMBER: _ClassVar[int]
    physical: int
    length: int
    def __init__(self, physical: _Optional[int] = ..., length: _Optional[int] = ...) -> None: ...

class DmaReadResponse(_message.Message):
    __slots__ = ("data",)
    DATA_FIELD_NUMBER: _ClassVar[int]
    data: bytes
    def __init__(self, data: _Optional[bytes] = ...) -> None: ...

class DmaWriteRequest(_message.Message):
    __slots__ = ("physical", "data")
    PHYSICAL_FIELD_NUMBER: _ClassVar[int]
    DATA_FIELD_NUMBER: _ClassVar[int]
    physical: int
    data: bytes
    def __init__(self, physical: _Optional[int] = ..., data: _Optional[bytes] = ...) -> None: ...

class DmaWriteResponse(_message.Message):
    __slots__ = ("written",)
    WRITTEN_FIELD_NUMBER: _ClassVar[int]
    written: int
    def __init__(self, written: _Optional[int] = ...) -> None: ...

class CloseWorkQueueRequest(_message.Message):
    __slots__ = ("pid", "device", "wq_id")
    PID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    pid: int
    device: str
    wq_id: int
    def __init__(self, pid: _Optional[int] = ..., device: _Optional[str] = ..., wq_id: _Optional[int] = ...) -> None: ...

class CloseWorkQueueResponse(_message.Message):
    __slots__ = ("pasid", "freed")
    PASID_FIELD_NUMBER: _ClassVar[int]
    FREED_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    freed: bool
    def __init__(self, pasid: _Optional[int] = ..., freed: _Optional[bool] = ...) -> None: ...

class ForkRequest(_message.Message):
    __slots__ = ("tid", "native_pid")
    TID_FIELD_NUMBER: _ClassVar[int]
    NATIVE_PID_FIELD_NUMBER: _ClassVar[int]
    tid: int
    native_pid: int
    def __init__(self, tid: _Optional[int] = ..., native_pid: _Optional[int] = ...) -> None: ...

class ForkResponse(_message.Message):
    __slots__ = ("child",)
    CHILD_FIELD_NUMBER: _ClassVar[int]
    child: Process
    def __init__(self, child: _Optional[_Union[Process, _Mapping]] = ...) -> None: ...

class ExecRequest(_message.Message):
    __slots__ = ("tid",)
    TID_FIELD_NUMBER: _ClassVar[int]
    tid: int
    def __init__(self, tid: _Optional[int] = ...) -> None: ...

class ExecResponse(_message.Message):
    __slots__ = ("process",)
    PROCESS_FIELD_NUMBER: _ClassVar[int]
    process: Process
    def __init__(self, process: _Optional[_Union[Process, _Mapping]] = ...) -> None: ...

class ExitThreadRequest(_message.Message):
    __slots__ = ("tid",)
    TID_FIELD_NUMBER: _ClassVar[int]
    tid: int
    def __init__(self, tid: _Optional[int] = ...) -> None: ...

class ExitThreadResponse(_message.Message):
    __slots__ = ("process_exited",)
    PROCESS_EXITED_FIELD_NUMBER: _ClassVar[int]
    process_exited: bool
    def __init__(self, process_exited: _Optional[bool] = ...) -> None: ...

class GetCountersRequest(_message.Message):
    __slots__ = ()
    def __init__(self) -> None: ...

class CounterSet(_message.Message):
    __slots__ = ("scope", "values")
    class ValuesEntry(_message.Message):
        __slots__ = ("key", "value")
        KEY_FIELD_NUMBER: _ClassVar[int]
        VALUE_FIELD_NUMBER: _ClassVar[int]
        key: str
        value: int
        def __init__(self, key: _Optional[str] = ..., value: _Optional[int] = ...) -> None: ...
    SCOPE_FIELD_NUMBER: _ClassVar[int]
    VALUES_FIELD_NUMBER: _ClassVar[int]
    scope: str
    values: _containers.ScalarMap[str, int]
    def __init__(self, scope: _Optional[str] = ..., values: _Optional[_Mapping[str, int]] = ...) -> None: ...

class GetCountersResponse(_message.Message):
    __slots__ = ("sets",)
    SETS_FIELD_NUMBER: _ClassVar[int]
    sets: _containers.RepeatedCompositeFieldContainer[CounterSet]
    def __init__(self, sets: _Optional[_Iterable[_Union[CounterSet, _Mapping]]] = ...) -> None: ...

class HandlePageFaultRequest(_message.Message):
    __slots__ = ("pgd", "address", "write")
    PGD_FIELD_NUMBER: _ClassVar[int]
    ADDRESS_FIELD_NUMBER: _ClassVar[int]
    WRITE_FIELD_NUMBER: _ClassVar[int]
    pgd: int
    address: int
    write: bool
    def __init__(self, pgd: _Optional[int] = ..., address: _Optional[int] = ..., write: _Optional[bool] = ...) -> None: ...

class HandlePageFaultResponse(_message.Message):
    __slots__ = ("resolved",)
    RESOLVED_FIELD_NUMBER: _ClassVar[int]
    resolved: bool
    def __init__(self, resolved: _Optional[bool] = ...) -> None: ...

class Movdir64bRequest(_message.Message):
    __slots__ = ("tid", "portal_address", "raw", "desc")
    TID_FIELD_NUMBER: _ClassVar[int]
    PORTAL_ADDRESS_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    DESC_FIELD_NUMBER: _ClassVar[int]
    tid: int
    portal_address: int
    raw: bytes
    desc: _idxd_pb2.DsaDescriptor
    def __init__(self, tid: _Optional[int] = ..., portal_address: _Optional[int] = ..., raw: _Optional[bytes] = ..., desc: _Optional[_Union[_idxd_pb2.DsaDescriptor, _Mapping]] = ...) -> None: ...

class Movdir64bResponse(_message.Message):
    __slots__ = ("outcome", "gp_faults", "cycles")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    GP_FAULTS_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    outcome: EnqcmdOutcome
    gp_faults: int
    cycles: int
    def __init__(self, outcome: _Optional[_Union[EnqcmdOutcome, str]] = ..., gp_faults: _Optional[int] = ..., cycles: _Optional[int] = ...) -> None: ...

class EnqcmdsRequest(_message.Message):
    __slots__ = ("tid", "device", "wq_id", "raw", "desc")
    TID_FIELD_NUMBER: _ClassVar[int]
    DEVICE_FIELD_NUMBER: _ClassVar[int]
    WQ_ID_FIELD_NUMBER: _ClassVar[int]
    RAW_FIELD_NUMBER: _ClassVar[int]
    DESC_FIELD_NUMBER: _ClassVar[int]
    tid: int
    device: str
    wq_id: int
    raw: bytes
    desc: _idxd_pb2.DsaDescriptor
    def __init__(self, tid: _Optional[int] = ..., device: _Optional[str] = ..., wq_id: _Optional[int] = ..., raw: _Optional[bytes] = ..., desc: _Optional[_Union[_idxd_pb2.DsaDescriptor, _Mapping]] = ...) -> None: ...

class EnqcmdsResponse(_message.Message):
    __slots__ = ("outcome", "zf", "retry_reason", "cycles")
    OUTCOME_FIELD_NUMBER: _ClassVar[int]
    ZF_FIELD_NUMBER: _ClassVar[int]
    RETRY_REASON_FIELD_NUMBER: _ClassVar[int]
    CYCLES_FIELD_NUMBER: _ClassVar[int]
    outcome: EnqcmdOutcome
    zf: bool
    retry_reason: str
    cycles: int
    def __init__(self, outcome: _Optional[_Union[EnqcmdOutcome, str]] = ..., zf: _Optional[bool] = ..., retry_reason: _Optional[str] = ..., cycles: _Optional[int] = ...) -> None: ...

class CreateKernelThreadRequest(_message.Message):
    __slots__ = ("name",)
    NAME_FIELD_NUMBER: _ClassVar[int]
    name: str
    def __init__(self, name: _Optional[str] = ...) -> None: ...

class CreateKernelThreadResponse(_message.Message):
    __slots__ = ("thread",)
    THREAD_FIELD_NUMBER: _ClassVar[int]
    thread: Thread
    def __init__(self, thread: _Optional[_Union[Thread, _Mapping]] = ...) -> None: ...

class StartSequenceRequest(_message.Message):
    __slots__ = ("tid", "sequence")
    TID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    tid: int
    sequence: str
    def __init__(self, tid: _Optional[int] = ..., sequence: _Optional[str] = ...) -> None: ...

class PendingStep(_message.Message):
    __slots__ = ("time", "eid", "cpu", "tid", "sequence", "step")
    TIME_FIELD_NUMBER: _ClassVar[int]
    EID_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    TID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    time: int
    eid: int
    cpu: int
    tid: int
    sequence: str
    step: int
    def __init__(self, time: _Optional[int] = ..., eid: _Optional[int] = ..., cpu: _Optional[int] = ..., tid: _Optional[int] = ..., sequence: _Optional[str] = ..., step: _Optional[int] = ...) -> None: ...

class StartSequenceResponse(_message.Message):
    __slots__ = ("point", "first")
    POINT_FIELD_NUMBER: _ClassVar[int]
    FIRST_FIELD_NUMBER: _ClassVar[int]
    point: str
    first: PendingStep
    def __init__(self, point: _Optional[str] = ..., first: _Optional[_Union[PendingStep, _Mapping]] = ...) -> None: ...

class AdvanceCpuRequest(_message.Message):
    __slots__ = ("steps", "until_cycles")
    STEPS_FIELD_NUMBER: _ClassVar[int]
    UNTIL_CYCLES_FIELD_NUMBER: _ClassVar[int]
    steps: int
    until_cycles: int
    def __init__(self, steps: _Optional[int] = ..., until_cycles: _Optional[int] = ...) -> None: ...

class FiredStep(_message.Message):
    __slots__ = ("time", "cpu", "tid", "sequence", "step", "name", "point")
    TIME_FIELD_NUMBER: _ClassVar[int]
    CPU_FIELD_NUMBER: _ClassVar[int]
    TID_FIELD_NUMBER: _ClassVar[int]
    SEQUENCE_FIELD_NUMBER: _ClassVar[int]
    STEP_FIELD_NUMBER: _ClassVar[int]
    NAME_FIELD_NUMBER: _ClassVar[int]
    POINT_FIELD_NUMBER: _ClassVar[int]
    time: int
    cpu: int
    tid: int
    sequence: str
    step: int
    name: str
    point: str
    def __init__(self, time: _Optional[int] = ..., cpu: _Optional[int] = ..., tid: _Optional[int] = ..., sequence: _Optional[str] = ..., step: _Optional[int] = ..., name: _Optional[str] = ..., point: _Optional[str] = ...) -> None: ...

class AdvanceCpuResponse(_message.Message):
    __slots__ = ("fired", "pending", "now")
    FIRED_FIELD_NUMBER: _ClassVar[int]
    PENDING_FIELD_NUMBER: _ClassVar[int]
    NOW_FIELD_NUMBER: _ClassVar[int]
    fired: _containers.RepeatedCompositeFieldContainer[FiredStep]
    pending: _containers.RepeatedCompositeFieldContainer[PendingStep]
    now: int
    def __init__(self, fired: _Optional[_Iterable[_Union[FiredStep, _Mapping]]] = ..., pending: _Optional[_Iterable[_Union[PendingStep, _Mapping]]] = ..., now: _Optional[int] = ...) -> None: ...
