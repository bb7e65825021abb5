from google.protobuf.internal import enum_type_wrapper as _enum_type_wrapper
from google.protobuf import descriptor as _descriptor
from google.protobuf import message as _message
from collections.abc import Mapping as _Mapping
from typing import ClassVar as _ClassVar, Optional as _Optional, Union as _Union

DESCRIPTOR: _descriptor.FileDescriptor

class DsaOpcode(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DSA_OPCODE_NOOP_UNSPECIFIED: _ClassVar[DsaOpcode]
    DSA_OPCODE_BATCH: _ClassVar[DsaOpcode]
    DSA_OPCODE_DRAIN: _ClassVar[DsaOpcode]
    DSA_OPCODE_MEMMOVE: _ClassVar[DsaOpcode]
    DSA_OPCODE_MEMFILL: _ClassVar[DsaOpcode]
    DSA_OPCODE_COMPARE: _ClassVar[DsaOpcode]
    DSA_OPCODE_COMPVAL: _ClassVar[DsaOpcode]
    DSA_OPCODE_CR_DELTA: _ClassVar[DsaOpcode]
    DSA_OPCODE_AP_DELTA: _ClassVar[DsaOpcode]
    DSA_OPCODE_DUALCAST: _ClassVar[DsaOpcode]
    DSA_OPCODE_TRANSL_FETCH: _ClassVar[DsaOpcode]
    DSA_OPCODE_CRCGEN: _ClassVar[DsaOpcode]
    DSA_OPCODE_COPY_CRC: _ClassVar[DsaOpcode]
    DSA_OPCODE_DIF_CHECK: _ClassVar[DsaOpcode]
    DSA_OPCODE_DIF_INS: _ClassVar[DsaOpcode]
    DSA_OPCODE_DIF_STRP: _ClassVar[DsaOpcode]
    DSA_OPCODE_DIF_UPDT: _ClassVar[DsaOpcode]
    DSA_OPCODE_DIX_GEN: _ClassVar[DsaOpcode]
    DSA_OPCODE_CFLUSH: _ClassVar[DsaOpcode]

class DsaCompletionStatus(int, metaclass=_enum_type_wrapper.EnumTypeWrapper):
    __slots__ = ()
    DSA_COMPLETION_STATUS_NONE_UNSPECIFIED: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_SUCCESS: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_SUCCESS_PRED: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_PAGE_FAULT_NOBOF: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_PAGE_FAULT_IR: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_BATCH_FAIL: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_BATCH_PAGE_FAULT: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DR_OFFSET_NOINC: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DR_OFFSET_ERANGE: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DIF_ERR: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_BAD_OPCODE: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_INVALID_FLAGS: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_NOZERO_RESERVE: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_XFER_ERANGE: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DESC_CNT_ERANGE: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DR_ERANGE: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_OVERLAP_BUFFERS: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DCAST_ERR: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DESCLIST_ALIGN: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_INT_HANDLE_INVAL: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_CRA_XLAT: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_CRA_ALIGN: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_ADDR_ALIGN: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_PRIV_BAD: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_TRAFFIC_CLASS_CONF: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_PFAULT_RDBA: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_HW_ERR1: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_HW_ERR_DRB: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_TRANSLATION_FAIL: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_DRAIN_EVL: _ClassVar[DsaCompletionStatus]
    DSA_COMPLETION_STATUS_BATCH_EVL_ERR: _ClassVar[DsaCompletionStatus]
DSA_OPCODE_NOOP_UNSPECIFIED: DsaOpcode
DSA_OPCODE_BATCH: DsaOpcode
DSA_OPCODE_DRAIN: DsaOpcode
DSA_OPCODE_MEMMOVE: DsaOpcode
DSA_OPCODE_MEMFILL: DsaOpcode
DSA_OPCODE_COMPARE: DsaOpcode
DSA_OPCODE_COMPVAL: DsaOpcode
DSA_OPCODE_CR_DELTA: DsaOpcode
DSA_OPCODE_AP_DELTA: DsaOpcode
DSA_OPCODE_DUALCAST: DsaOpcode
DSA_OPCODE_TRANSL_FETCH: DsaOpcode
DSA_OPCODE_CRCGEN: DsaOpcode
DSA_OPCODE_COPY_CRC: DsaOpcode
DSA_OPCODE_DIF_CHECK: DsaOpcode
DSA_OPCODE_DIF_INS: DsaOpcode
DSA_OPCODE_DIF_STRP: DsaOpcode
DSA_OPCODE_DIF_UPDT: DsaOpcode
DSA_OPCODE_DIX_GEN: DsaOpcode
DSA_OPCODE_CFLUSH: DsaOpcode
DSA_COMPLETION_STATUS_NONE_UNSPECIFIED: DsaCompletionStatus
DSA_COMPLETION_STATUS_SUCCESS: DsaCompletionStatus
DSA_COMPLETION_STATUS_SUCCESS_PRED: DsaCompletionStatus
DSA_COMPLETION_STATUS_PAGE_FAULT_NOBOF: DsaCompletionStatus
DSA_COMPLETION_STATUS_PAGE_FAULT_IR: DsaCompletionStatus
DSA_COMPLETION_STATUS_BATCH_FAIL: DsaCompletionStatus
DSA_COMPLETION_STATUS_BATCH_PAGE_FAULT: DsaCompletionStatus
DSA_COMPLETION_STATUS_DR_OFFSET_NOINC: DsaCompletionStatus
DSA_COMPLETION_STATUS_DR_OFFSET_ERANGE: DsaCompletionStatus
DSA_COMPLETION_STATUS_DIF_ERR: DsaCompletionStatus
DSA_COMPLETION_STATUS_BAD_OPCODE: DsaCompletionStatus
DSA_COMPLETION_STATUS_INVALID_FLAGS: DsaCompletionStatus
DSA_COMPLETION_STATUS_NOZERO_RESERVE: DsaCompletionStatus
DSA_COMPLETION_STATUS_XFER_ERANGE: DsaCompletionStatus
DSA_COMPLETION_STATUS_DESC_CNT_ERANGE: DsaCompletionStatus
DSA_COMPLETION_STATUS_DR_ERANGE: DsaCompletionStatus
DSA_COMPLETION_STATUS_OVERLAP_BUFFERS: DsaCompletionStatus
DSA_COMPLETION_STATUS_DCAST_ERR: DsaCompletionStatus
DSA_COMPLETION_STATUS_DESCLIST_ALIGN: DsaCompletionStatus
DSA_COMPLETION_STATUS_INT_HANDLE_INVAL: DsaCompletionStatus
DSA_COMPLETION_STATUS_CRA_XLAT: DsaCompletionStatus
DSA_COMPLETION_STATUS_CRA_ALIGN: DsaCompletionStatus
DSA_COMPLETION_STATUS_ADDR_ALIGN: DsaCompletionStatus
DSA_COMPLETION_STATUS_PRIV_BAD: DsaCompletionStatus
DSA_COMPLETION_STATUS_TRAFFIC_CLASS_CONF: DsaCompletionStatus
DSA_COMPLETION_STATUS_PFAULT_RDBA: DsaCompletionStatus
DSA_COMPLETION_STATUS_HW_ERR1: DsaCompletionStatus
DSA_COMPLETION_STATUS_HW_ERR_DRB: DsaCompletionStatus
DSA_COMPLETION_STATUS_TRANSLATION_FAIL: DsaCompletionStatus
DSA_COMPLETION_STATUS_DRAIN_EVL: DsaCompletionStatus
DSA_COMPLETION_STATUS_BATCH_EVL_ERR: DsaCompletionStatus

class DsaDescriptor(_message.Message):
    __slots__ = ("pasid", "rsvd", "priv", "flags", "opcode", "completion_addr", "src_addr", "dst_addr", "xfer_size", "int_handle", "rsvd1", "op_specific", "memfill", "check", "delta", "dualcast", "crc")
    PASID_FIELD_NUMBER: _ClassVar[int]
    RSVD_FIELD_NUMBER: _ClassVar[int]
    PRIV_FIELD_NUMBER: _ClassVar[int]
    FLAGS_FIELD_NUMBER: _ClassVar[int]
    OPCODE_FIELD_NUMBER: _ClassVar[int]
    COMPLETION_ADDR_FIELD_NUMBER: _ClassVar[int]
    SRC_ADDR_FIELD_NUMBER: _ClassVar[int]
    DST_ADDR_FIELD_NUMBER: _ClassVar[int]
    XFER_SIZE_FIELD_NUMBER: _ClassVar[int]
    INT_HANDLE_FIELD_NUMBER: _ClassVar[int]
    RSVD1_FIELD_NUMBER: _ClassVar[int]
    OP_SPECIFIC_FIELD_NUMBER: _ClassVar[int]
    MEMFILL_FIELD_NUMBER: _ClassVar[int]
    CHECK_FIELD_NUMBER: _ClassVar[int]
    DELTA_FIELD_NUMBER: _ClassVar[int]
    DUALCAST_FIELD_NUMBER: _ClassVar[int]
    CRC_FIELD_NUMBER: _ClassVar[int]
    pasid: int
    rsvd: int
    priv: bool
    flags: int
    opcode: int
    completion_addr: int
    src_addr: int
    dst_addr: int
    xfer_size: int
    int_handle: int
    rsvd1: int
    op_specific: bytes
    memfill: MemfillFields
    check: CheckFields
    delta: DeltaFields
    dualcast: DualcastFields
    crc: CrcFields
    def __init__(self, pasid: _Optional[int] = ..., rsvd: _Optional[int] = ..., priv: _Optional[bool] = ..., flags: _Optional[int] = ..., opcode: _Optional[int] = ..., completion_addr: _Optional[int] = ..., src_addr: _Optional[int] = ..., dst_addr: _Optional[int] = ..., xfer_size: _Optional[int] = ..., int_handle: _Optional[int] = ..., rsvd1: _Optional[int] = ..., op_specific: _Optional[bytes] = ..., memfill: _Optional[_Union[MemfillFields, _Mapping]] = ..., check: _Optional[_Union[CheckFields, _Mapping]] = ..., delta: _Optional[_Union[DeltaFields, _Mapping]] = ..., dualcast: _Optional[_Union[DualcastFields, _Mapping]] = ..., crc: _Optional[_Union[CrcFields, _Mapping]] = ...) -> None: ...

class MemfillFields(_message.Message):
    __slots__ = ("pattern_upper",)
    PATTERN_UPPER_FIELD_NUMBER: _ClassVar[int]
    pattern_upper: int
    def __init__(self, pattern_upper: _Optional[int] = ...) -> None: ...

class CheckFields(_message.Message):
    __slots__ = ("expected_res",)
    EXPECTED_RES_FIELD_NUMBER: _ClassVar[int]
    expected_res: int
    def __init__(self, expected_res: _Optional[int] = ...) -> None: ...

class DeltaFields(_message.Message):
    __slots__ = ("delta_addr", "max_delta_size", "expected_res_mask")
    DELTA_ADDR_FIELD_NUMBER: _ClassVar[int]
    MAX_DELTA_SIZE_FIELD_NUMBER: _ClassVar[int]
    EXPECTED_RES_MASK_FIELD_NUMBER: _ClassVar[int]
    delta_addr: int
    max_delta_size: int
    expected_res_mask: int
    def __init__(self, delta_addr: _Optional[int] = ..., max_delta_size: _Optional[int] = ..., expected_res_mask: _Optional[int] = ...) -> None: ...

class DualcastFields(_message.Message):
    __slots__ = ("dest2",)
    DEST2_FIELD_NUMBER: _ClassVar[int]
    dest2: int
    def __init__(self, dest2: _Optional[int] = ...) -> None: ...

class CrcFields(_message.Message):
    __slots__ = ("crc_seed", "seed_addr")
    CRC_SEED_FIELD_NUMBER: _ClassVar[int]
    SEED_ADDR_FIELD_NUMBER: _ClassVar[int]
    crc_seed: int
    seed_addr: int
    def __init__(self, crc_seed: _Optional[int] = ..., seed_addr: _Optional[int] = ...) -> None: ...

class DsaCompletionRecord(_message.Message):
    __slots__ = ("status", "status_write", "result", "fault_info", "rsvd", "bytes_completed", "fault_addr", "op_specific", "invalid_flags", "crc_val", "delta_rec_size")
    STATUS_FIELD_NUMBER: _ClassVar[int]
    STATUS_WRITE_FIELD_NUMBER: _ClassVar[int]
    RESULT_FIELD_NUMBER: _ClassVar[int]
    FAULT_INFO_FIELD_NUMBER: _ClassVar[int]
    RSVD_FIELD_NUMBER: _ClassVar[int]
    BYTES_COMPLETED_FIELD_NUMBER: _ClassVar[int]
    FAULT_ADDR_FIELD_NUMBER: _ClassVar[int]
    OP_SPECIFIC_FIELD_NUMBER: _ClassVar[int]
    INVALID_FLAGS_FIELD_NUMBER: _ClassVar[int]
    CRC_VAL_FIELD_NUMBER: _ClassVar[int]
    DELTA_REC_SIZE_FIELD_NUMBER: _ClassVar[int]
    status: int
    status_write: bool
    result: int
    fault_info: int
    rsvd: int
    bytes_completed: int
    fault_addr: int
    op_specific: bytes
    invalid_flags: int
    crc_val: int
    delta_rec_size: int
    def __init__(self, status: _Optional[int] = ..., status_write: _Optional[bool] = ..., result: _Optional[int] = ..., fault_info: _Optional[int] = ..., rsvd: _Optional[int] = ..., bytes_completed: _Optional[int] = ..., fault_addr: _Optional[int] = ..., op_specific: _Optional[bytes] = ..., invalid_flags: _Optional[int] = ..., crc_val: _Optional[int] = ..., delta_rec_size: _Optional[int] = ...) -> None: ...
