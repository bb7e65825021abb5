"""The one place that builds rich gRPC errors, and the one that unpacks them.

A refused request gets a canonical status code and a ``google.rpc.Status`` whose
details hold an ``ErrorInfo`` (reason, domain, metadata), so a client in any language
can act on ``reason`` rather than parse the message.
"""

from __future__ import annotations

import grpc
from google.protobuf import any_pb2
from google.rpc import code_pb2, error_details_pb2, status_pb2
from grpc_status import rpc_status

from svasim.model.errors import DOMAIN, SimError


def to_status(err: SimError) -> grpc.Status:
    """A grpc.Status carrying the error's code, message and ErrorInfo."""
    info = error_details_pb2.ErrorInfo(reason=err.reason, domain=DOMAIN, metadata=err.metadata)
    detail = any_pb2.Any()
    detail.Pack(info)
    status = status_pb2.Status(code=getattr(code_pb2, err.code), message=err.message, details=[detail])
    return rpc_status.to_status(status)


def abort(context: grpc.ServicerContext, err: SimError) -> None:
    """Abort the RPC with the rich status of ``err`` (raises)."""
    context.abort_with_status(to_status(err))


class RemoteError(SimError):
    """A refusal that came back from a peer over gRPC, kept as it was."""

    def __init__(self, code: str, reason: str, message: str, metadata: dict[str, str]) -> None:
        super().__init__(reason, message, **metadata)
        self.code = code


def from_rpc_error(e: grpc.RpcError) -> SimError | None:
    """The SimError a peer raised, unpacked from its rich status; None if it had none."""
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return RemoteError(e.code().name, info.reason, status.message, dict(info.metadata))
    return None


def error_info(e: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo of a failed call, for clients."""
    status = rpc_status.from_call(e)  # type: ignore[arg-type]
    if status is None:
        return None
    for detail in status.details:
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None
