"""The API package: its pure half loads nothing impure, and its rich errors round-trip."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import dataclass

import grpc
from google.rpc import error_details_pb2

from svasim_api.errors import DOMAIN, SvasimError, error_info, rich_status


def test_importing_the_layouts_loads_no_grpc_or_protobuf():
    # The model imports svasim_api.idxd and must stay free of gRPC (DESIGN.md, layer 1).
    code = "import sys, svasim_api, svasim_api.idxd, json; print(json.dumps(sorted(sys.modules)))"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    loaded = json.loads(r.stdout)
    assert not [m for m in loaded if m.split(".")[0] in {"grpc", "google", "grpc_status", "svasim"}]


@dataclass
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


class _FailedCall(grpc.RpcError):
    """A failed call as grpc hands it to the client: code, details and trailing metadata."""

    def __init__(self, status: grpc.Status) -> None:
        self._status = status

    def code(self) -> grpc.StatusCode:
        return self._status.code

    def details(self) -> str:
        return self._status.details

    def trailing_metadata(self):  # noqa: ANN201
        return self._status.trailing_metadata


def test_a_rich_status_unpacks_to_the_same_refusal():
    status = rich_status(grpc.StatusCode.NOT_FOUND, "UNKNOWN_PROCESS", "no process with pid 7", {"pid": "7"})
    # google.rpc.Code and grpc.StatusCode share their numbers: NOT_FOUND is 5.
    assert status.code is grpc.StatusCode.NOT_FOUND
    err = SvasimError.from_rpc_error(_FailedCall(status))
    assert (err.code, err.reason, err.message, err.metadata) == (
        grpc.StatusCode.NOT_FOUND,
        "UNKNOWN_PROCESS",
        "no process with pid 7",
        {"pid": "7"},
    )
    info = error_info(_FailedCall(status))
    assert isinstance(info, error_details_pb2.ErrorInfo) and info.domain == DOMAIN == "svasim.dev"


def test_a_status_without_error_info_is_a_refusal_without_a_reason():
    # What a proxy or the gRPC runtime itself sends: a code and a message, no details trailer.
    status = _Status(grpc.StatusCode.UNAVAILABLE, "connection refused", ())
    err = SvasimError.from_rpc_error(_FailedCall(status))
    assert (err.code, err.reason, err.message, err.metadata) == (
        grpc.StatusCode.UNAVAILABLE,
        "",
        "connection refused",
        {},
    )
    assert str(err) == "UNAVAILABLE: connection refused"
    assert error_info(_FailedCall(status)) is None
