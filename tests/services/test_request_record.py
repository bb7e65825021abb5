"""The input record of a client request is the request's ProtoJSON form, whichever way it
is built: ``request_record`` builds it directly for messages of plain fields, and must
give exactly what ``MessageToDict(message, preserving_proto_field_name=True)`` gives
(the same keys in the same order, the same values), since replay decodes requests from
it and golden runs compare it byte for byte.

The mapping is the ProtoJSON specification's (protobuf.dev/programming-guides/json:
64-bit integers as decimal strings, bytes as standard base64, fields without presence
left out at their default, a set oneof member or optional field present even at its
default), as google/protobuf/json_format.py implements it.
"""

from __future__ import annotations

import json
import random
from typing import Any

import pytest
from google.protobuf import descriptor
from google.protobuf.json_format import MessageToDict

from svasim.rpc.common import request_record
from svasim_api.accel.v1 import accel_pb2
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.iommu.v1 import iommu_pb2
from svasim_api.trace.v1 import trace_pb2

FD = descriptor.FieldDescriptor
_INTS = {
    FD.CPPTYPE_INT32: (0, 1, -1, 2**31 - 1, -(2**31)),
    FD.CPPTYPE_INT64: (0, 1, -1, 2**63 - 1, -(2**63), 2**53 + 1),
    FD.CPPTYPE_UINT32: (0, 1, 2**32 - 1),
    FD.CPPTYPE_UINT64: (0, 1, 2**64 - 1, 2**53 + 1, 0x7F0000001000),
}


def _request_types() -> list[Any]:
    """The request message class of every method of every service."""
    from google.protobuf import message_factory

    out = []
    for module in (cpu_pb2, accel_pb2, iommu_pb2, trace_pb2):
        for service in module.DESCRIPTOR.services_by_name.values():
            for m in service.methods:
                out.append(message_factory.GetMessageClass(m.input_type))
    return sorted(set(out), key=lambda c: c.DESCRIPTOR.full_name)


def _scalar(f: Any, rng: random.Random) -> Any:
    if f.cpp_type in _INTS:
        return rng.choice(_INTS[f.cpp_type])
    if f.cpp_type == FD.CPPTYPE_BOOL:
        return rng.random() < 0.5
    if f.cpp_type == FD.CPPTYPE_ENUM:
        return rng.choice([v.number for v in f.enum_type.values])
    if f.cpp_type in (FD.CPPTYPE_FLOAT, FD.CPPTYPE_DOUBLE):
        return rng.choice((0.0, 1.5, -2.25))
    if f.type == FD.TYPE_BYTES:
        return rng.choice((b"", b"\x00", bytes(range(64)), bytes(rng.randrange(256) for _ in range(rng.randrange(70)))))
    return rng.choice(("", "wq0", "dsa0/0", "é✓"))


def _fill(msg: Any, rng: random.Random, depth: int = 0) -> Any:
    """Set a random choice of ``msg``'s fields to random values (edge values included)."""
    for f in msg.DESCRIPTOR.fields:
        if rng.random() < 0.3:
            continue
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            continue  # maps: MessageToDict's path either way
        if f.is_repeated:
            if f.cpp_type == FD.CPPTYPE_MESSAGE:
                if depth < 3:
                    for _ in range(rng.randrange(3)):
                        _fill(getattr(msg, f.name).add(), rng, depth + 1)
            else:
                getattr(msg, f.name).extend(_scalar(f, rng) for _ in range(rng.randrange(3)))
        elif f.cpp_type == FD.CPPTYPE_MESSAGE:
            if depth < 3:
                getattr(msg, f.name).SetInParent()
                _fill(getattr(msg, f.name), rng, depth + 1)
        else:
            setattr(msg, f.name, _scalar(f, rng))
    return msg


@pytest.mark.parametrize("cls", _request_types(), ids=lambda c: c.DESCRIPTOR.full_name)
def test_the_record_of_every_request_type_is_its_protojson_dict(cls: Any) -> None:
    """Random requests of every type (google/protobuf/json_format.py MessageToDict as the
    reference): the same dict, keys in the same order, the same JSON text."""
    rng = random.Random(cls.DESCRIPTOR.full_name)
    for _ in range(40):
        msg = _fill(cls(), rng)
        want = MessageToDict(msg, preserving_proto_field_name=True)
        got = request_record(msg)
        assert got == want
        assert json.dumps(got) == json.dumps(want)


def test_an_enqcmd_request_record_spells_its_fields_as_protojson() -> None:
    """ENQCMD's record: uint64 fields as decimal strings, the descriptor bytes in
    base64, the oneof member that is set and only that one."""
    req = cpu_pb2.EnqcmdRequest(tid=7, portal_address=2**64 - 1, raw=b"\x01" * 64)
    assert request_record(req) == {"tid": "7", "portal_address": str(2**64 - 1), "raw": "AQEB" * 21 + "AQ=="}
    assert request_record(cpu_pb2.EnqcmdRequest(raw=b"")) == {"raw": ""}  # set, though empty
    assert request_record(cpu_pb2.EnqcmdRequest()) == {}
