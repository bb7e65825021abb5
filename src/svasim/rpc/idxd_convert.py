"""Conversion between the DSA byte-layout dataclasses and their protobuf messages.

:class:`svasim.model.idxd.DsaHwDesc` and :class:`svasim.model.idxd.DsaCompletionRecord`
own the byte layouts; this module maps them onto ``svasim.common.v1.DsaDescriptor``
and ``svasim.common.v1.DsaCompletionRecord``. Both directions are lossless: any 64
(or 32) bytes go to a message and back unchanged, because ``op_specific`` is always
filled on output and always wins on input.

Typed views. On output, a descriptor message also gets the ``op_fields`` view that
matches its opcode (MEMFILL -> ``memfill``; COMPARE, COMPVAL -> ``check``; CR_DELTA,
AP_DELTA -> ``delta``; DUALCAST -> ``dualcast``; CRCGEN, COPY_CRC -> ``crc``) when that
view represents the op-specific bytes completely, i.e. every byte the view does not
cover is zero. On input the view is used only when ``op_specific`` is empty. For
AP_DELTA the header places ``delta_rec_size`` (u32) at byte 40, so in the ``delta``
view it is the low 32 bits of ``delta_addr``.

A completion message gets ``op_specific`` plus the decoded ``invalid_flags``,
``delta_rec_size`` and ``crc_val``; those three are output only and ignored on input
(they overlap, so they cannot be combined into bytes). An input message whose
``op_specific`` is empty while one of them is non-zero is rejected rather than
silently losing the value.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from svasim_api.common.v1 import idxd_pb2
from svasim_api.idxd import (
    DSA_COMP_OP_SPECIFIC_SIZE,
    DSA_DESC_OP_SPECIFIC_OFFSET,
    DSA_DESC_OP_SPECIFIC_SIZE,
    DSA_HW_DESC_OP_FIELDS,
    DsaCompletionRecord,
    DsaHwDesc,
    DsaOpcode,
    pack_comp,
    pack_desc,
    unpack_comp,
    unpack_desc,
)

#: Each ``op_fields`` oneof member and the op-specific fields it carries. The proto
#: field names are the ``struct dsa_hw_desc`` member names.
DESC_VIEW_FIELDS: Mapping[str, tuple[str, ...]] = MappingProxyType(
    {
        "memfill": ("pattern_upper",),
        "check": ("expected_res",),
        "delta": ("delta_addr", "max_delta_size", "expected_res_mask"),
        "dualcast": ("dest2",),
        "crc": ("crc_seed", "seed_addr"),
    }
)

#: The ``op_fields`` view that :func:`desc_to_proto` fills for each opcode.
DESC_VIEW_FOR_OPCODE: Mapping[int, str] = MappingProxyType(
    {
        DsaOpcode.MEMFILL: "memfill",
        DsaOpcode.COMPARE: "check",
        DsaOpcode.COMPVAL: "check",
        DsaOpcode.CR_DELTA: "delta",
        DsaOpcode.AP_DELTA: "delta",
        DsaOpcode.DUALCAST: "dualcast",
        DsaOpcode.CRCGEN: "crc",
        DsaOpcode.COPY_CRC: "crc",
    }
)

#: The decoded completion-record views that :func:`comp_to_proto` fills.
COMP_VIEW_FIELDS: tuple[str, ...] = ("invalid_flags", "delta_rec_size", "crc_val")

# For each view, the indexes into op_specific that its fields do not cover.
_VIEW_UNCOVERED: Mapping[str, tuple[int, ...]] = MappingProxyType(
    {
        view: tuple(
            index
            for index in range(DSA_DESC_OP_SPECIFIC_SIZE)
            if not any(DSA_DESC_OP_SPECIFIC_OFFSET + index in DSA_HW_DESC_OP_FIELDS[name].byte_span for name in names)
        )
        for view, names in DESC_VIEW_FIELDS.items()
    }
)


def _view_covers(view: str, op_specific: bytes) -> bool:
    """Whether every op-specific byte outside ``view``'s fields is zero."""
    return not any(op_specific[index] for index in _VIEW_UNCOVERED[view])


def desc_to_proto(d: DsaHwDesc) -> idxd_pb2.DsaDescriptor:
    """The message for ``d``: all fields, ``op_specific``, and the opcode's typed view.

    The view is set only when it represents the op-specific bytes completely (see the
    module docstring). Raises ValueError naming the field if ``d`` is out of range.
    """
    d.validate()
    msg = idxd_pb2.DsaDescriptor(
        pasid=d.pasid,
        rsvd=d.rsvd,
        priv=bool(d.priv),
        flags=int(d.flags),
        opcode=int(d.opcode),
        completion_addr=d.completion_addr,
        src_addr=d.src_addr,
        dst_addr=d.dst_addr,
        xfer_size=d.xfer_size,
        int_handle=d.int_handle,
        rsvd1=d.rsvd1,
        op_specific=bytes(d.op_specific),
    )
    view = DESC_VIEW_FOR_OPCODE.get(d.opcode)
    if view is not None and _view_covers(view, d.op_specific):
        sub = getattr(msg, view)
        sub.SetInParent()
        for name in DESC_VIEW_FIELDS[view]:
            setattr(sub, name, getattr(d, name))
    return msg


def _desc_op_specific_from_proto(m: idxd_pb2.DsaDescriptor) -> bytes:
    if m.op_specific:
        if len(m.op_specific) != DSA_DESC_OP_SPECIFIC_SIZE:
            raise ValueError(
                f"op_specific: must be exactly {DSA_DESC_OP_SPECIFIC_SIZE} bytes (or empty), got {len(m.op_specific)}"
            )
        return bytes(m.op_specific)
    buf = bytearray(DSA_DESC_OP_SPECIFIC_SIZE)
    view = m.WhichOneof("op_fields")
    if view is not None:
        sub = getattr(m, view)
        for name in DESC_VIEW_FIELDS[view]:
            field = DSA_HW_DESC_OP_FIELDS[name]
            value = field.check(getattr(sub, name), f"{view}.{name}")
            field.write(buf, value, DSA_DESC_OP_SPECIFIC_OFFSET)
    return bytes(buf)


def desc_from_proto(m: idxd_pb2.DsaDescriptor) -> DsaHwDesc:
    """The descriptor for ``m``.

    The op-specific bytes come from ``op_specific`` when it is non-empty (it must then
    be exactly 24 bytes), else from the ``op_fields`` view if one is set, else zeros.
    Raises ValueError naming the field for a wrong length or an out-of-range value.
    """
    d = DsaHwDesc(
        pasid=m.pasid,
        rsvd=m.rsvd,
        priv=m.priv,
        flags=m.flags,
        opcode=m.opcode,
        completion_addr=m.completion_addr,
        src_addr=m.src_addr,
        dst_addr=m.dst_addr,
        xfer_size=m.xfer_size,
        int_handle=m.int_handle,
        rsvd1=m.rsvd1,
        op_specific=_desc_op_specific_from_proto(m),
    )
    d.validate()
    return d


def desc_bytes_from_proto(m: idxd_pb2.DsaDescriptor) -> bytes:
    """The 64 descriptor bytes for ``m`` (see :func:`desc_from_proto`)."""
    return pack_desc(desc_from_proto(m))


def desc_proto_from_bytes(b: bytes | bytearray | memoryview) -> idxd_pb2.DsaDescriptor:
    """The message for 64 descriptor bytes; ValueError if ``len(b) != 64``."""
    return desc_to_proto(unpack_desc(b))


def comp_to_proto(c: DsaCompletionRecord) -> idxd_pb2.DsaCompletionRecord:
    """The message for ``c``: all fields, ``op_specific`` and the decoded views.

    Raises ValueError naming the field if ``c`` is out of range.
    """
    c.validate()
    return idxd_pb2.DsaCompletionRecord(
        status=int(c.status),
        status_write=bool(c.status_write),
        result=c.result,
        fault_info=c.fault_info,
        rsvd=c.rsvd,
        bytes_completed=c.bytes_completed,
        fault_addr=c.fault_addr,
        op_specific=bytes(c.op_specific),
        invalid_flags=c.invalid_flags,
        delta_rec_size=c.delta_rec_size,
        crc_val=c.crc_val,
    )


def comp_from_proto(m: idxd_pb2.DsaCompletionRecord) -> DsaCompletionRecord:
    """The completion record for ``m``; the op-specific bytes come from ``op_specific``.

    ``op_specific`` must be exactly 16 bytes, or empty for all zeros (then the
    output-only views must be zero too). Raises ValueError naming the field for a wrong
    length or an out-of-range value (a ``status`` above 0x7f included: bit 7 is
    ``status_write``).
    """
    if m.op_specific:
        if len(m.op_specific) != DSA_COMP_OP_SPECIFIC_SIZE:
            raise ValueError(
                f"op_specific: must be exactly {DSA_COMP_OP_SPECIFIC_SIZE} bytes (or empty), got {len(m.op_specific)}"
            )
        op_specific = bytes(m.op_specific)
    else:
        stray = [name for name in COMP_VIEW_FIELDS if getattr(m, name)]
        if stray:
            raise ValueError(
                f"{', '.join(stray)}: output-only views of op_specific are set but "
                "op_specific is empty; set op_specific instead"
            )
        op_specific = bytes(DSA_COMP_OP_SPECIFIC_SIZE)
    c = DsaCompletionRecord(
        status=m.status,
        status_write=m.status_write,
        result=m.result,
        fault_info=m.fault_info,
        rsvd=m.rsvd,
        bytes_completed=m.bytes_completed,
        fault_addr=m.fault_addr,
        op_specific=op_specific,
    )
    c.validate()
    return c


def comp_bytes_from_proto(m: idxd_pb2.DsaCompletionRecord) -> bytes:
    """The 32 completion-record bytes for ``m`` (see :func:`comp_from_proto`)."""
    return pack_comp(comp_from_proto(m))


def comp_proto_from_bytes(b: bytes | bytearray | memoryview) -> idxd_pb2.DsaCompletionRecord:
    """The message for 32 completion-record bytes; ValueError if ``len(b) != 32``."""
    return comp_to_proto(unpack_comp(b))
