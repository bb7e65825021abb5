"""Builders shared by the model tests."""

from __future__ import annotations

from svasim_api import idxd


def memmove_desc(src: int, dst: int, size: int, comp: int, *, flags: int | None = None) -> bytes:
    """A MEMMOVE descriptor as user space builds it for ENQCMD (PASID field zero)."""
    d = idxd.DsaHwDesc(
        opcode=idxd.DsaOpcode.MEMMOVE,
        flags=int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR) if flags is None else flags,
        completion_addr=comp,
        src_addr=src,
        dst_addr=dst,
        xfer_size=size,
    )
    return idxd.pack_desc(d)
