"""The socket protocol between the preload library and the bridge.

The Python twin of ``native/preload/bridge_proto.h`` (tests compare the two): one
``AF_UNIX``/``SOCK_SEQPACKET`` connection per thread of the program, each request one
packet (a 48-byte header and ``len`` bytes of data), each answer one 16-byte packet.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

#: Protocol version, sent in the ``kind`` field of HELLO.
VERSION = 1
#: Most bytes of data after a request header.
MAX_DATA = 4096

_REQ = struct.Struct("<IIIIQQQQ")
_RSP = struct.Struct("<iIII")
REQ_SIZE = _REQ.size
RSP_SIZE = _RSP.size


class Op(enum.IntEnum):
    """Requests (``enum svasim_op``)."""

    HELLO = 1
    WQ_OPEN = 2
    WQ_RELEASE = 3
    SUBMIT = 4
    ATTR_WRITE = 5
    FORK = 6


class StoreKind(enum.IntEnum):
    """The store instruction of a SUBMIT (svasim.cpu.v1 StoreKind numbering)."""

    ENQCMD = 1
    MOVDIR64B = 3


class SubmitResult(enum.IntEnum):
    """What the trapped store did (``enum svasim_submit_result``)."""

    ACCEPTED = 0
    RETRY = 1
    GP = 2
    PAGE_FAULT = 3


@dataclass(frozen=True)
class Request:
    """One request packet. HELLO: ``arg0`` pid, ``arg1`` tid, ``arg2`` ppid, ``arg3``
    the image token; SUBMIT: ``arg0`` the offset of the store in the portal."""

    op: int
    handle: int
    kind: int
    arg0: int
    arg1: int
    arg2: int
    arg3: int
    data: bytes

    @classmethod
    def unpack(cls, packet: bytes) -> Request:
        """Decode a packet; ValueError when it is not a whole request."""
        if len(packet) < REQ_SIZE:
            raise ValueError(f"request of {len(packet)} bytes is shorter than its {REQ_SIZE}-byte header")
        op, handle, kind, length, a0, a1, a2, a3 = _REQ.unpack_from(packet)
        data = packet[REQ_SIZE:]
        if len(data) != length or length > MAX_DATA:
            raise ValueError(f"request says {length} bytes of data and carries {len(data)}")
        return cls(op, handle, kind, a0, a1, a2, a3, data)

    def pack(self) -> bytes:
        """Encode (what the library sends; used by tests)."""
        return (
            _REQ.pack(self.op, self.handle, self.kind, len(self.data), self.arg0, self.arg1, self.arg2, self.arg3)
            + self.data
        )


def pack_response(status: int = 0, result: int = 0, handle: int = 0, flags: int = 0) -> bytes:
    """An answer: ``status`` 0 or a negative errno."""
    return _RSP.pack(status, result, handle, flags)


def unpack_response(packet: bytes) -> tuple[int, int, int, int]:
    """(status, result, handle, flags) of an answer."""
    return _RSP.unpack(packet)
