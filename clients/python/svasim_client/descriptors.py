"""Builders for the descriptors user space writes before ENQCMD."""

from __future__ import annotations

from svasim_api import idxd

#: CRAV | RCR: the flags every user-space submission in accel-config's tests sets.
DEFAULT_FLAGS = int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR)


def memmove_descriptor(src: int, dst: int, size: int, completion: int, *, flags: int = DEFAULT_FLAGS) -> bytes:
    """A 64-byte MEMMOVE descriptor (PASID left zero: ENQCMD fills it in)."""
    return idxd.pack_desc(
        idxd.DsaHwDesc(
            opcode=idxd.DsaOpcode.MEMMOVE,
            flags=flags,
            completion_addr=completion,
            src_addr=src,
            dst_addr=dst,
            xfer_size=size,
        )
    )


def memfill_descriptor(dst: int, pattern: int, size: int, completion: int, *, flags: int = DEFAULT_FLAGS) -> bytes:
    """A 64-byte MEMFILL descriptor with an 8-byte pattern."""
    return idxd.pack_desc(
        idxd.DsaHwDesc(
            opcode=idxd.DsaOpcode.MEMFILL,
            flags=flags,
            completion_addr=completion,
            src_addr=pattern,
            dst_addr=dst,
            xfer_size=size,
        )
    )


def noop_descriptor(completion: int, *, flags: int = DEFAULT_FLAGS) -> bytes:
    """A 64-byte NOOP descriptor."""
    return idxd.pack_desc(idxd.DsaHwDesc(opcode=idxd.DsaOpcode.NOOP, flags=flags, completion_addr=completion))


def completion_record(raw: bytes) -> idxd.DsaCompletionRecord:
    """Decode the 32 bytes of a completion record."""
    return idxd.unpack_comp(raw)
