"""Model errors to and from gRPC statuses, over the rich-error helpers of :mod:`svasim_api.errors`.

A :class:`~svasim.model.errors.SimError` raised by the model aborts the RPC with its
canonical code and an ``ErrorInfo``; a peer's refusal that comes back over gRPC becomes a
SimError again, so the model code calling a peer sees the same exception in either wiring.
"""

from __future__ import annotations

import grpc

from svasim.model.errors import SimError
from svasim_api.errors import error_info, rich_status


def to_status(err: SimError) -> grpc.Status:
    """A grpc.Status carrying the error's code, message and ErrorInfo."""
    return rich_status(grpc.StatusCode[err.code], err.reason, err.message, err.metadata)


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
    info = error_info(e)
    if info is None:
        return None
    return RemoteError(e.code().name, info.reason, e.details() or "", dict(info.metadata))  # type: ignore[attr-defined]
