"""Rich gRPC errors: the one place that builds them and the one that unpacks them.

A refused request gets a canonical status code and a ``google.rpc.Status`` whose details
hold an ``ErrorInfo`` (reason, domain, metadata), as in https://google.aip.dev/193, so a
client in any language can act on ``reason`` rather than parse the message.
"""

from __future__ import annotations

from collections.abc import Mapping

import grpc
from google.protobuf import any_pb2
from google.rpc import error_details_pb2, status_pb2
from grpc_status import rpc_status

#: ErrorInfo domain of every svasim error.
DOMAIN = "svasim.dev"


def rich_status(code: grpc.StatusCode, reason: str, message: str, metadata: Mapping[str, str]) -> grpc.Status:
    """A grpc.Status with ``code`` and ``message`` whose details hold the ErrorInfo."""
    info = error_details_pb2.ErrorInfo(reason=reason, domain=DOMAIN, metadata=dict(metadata))
    detail = any_pb2.Any()
    detail.Pack(info)
    # grpc.StatusCode values are (int, name); google.rpc.Code uses the same numbers.
    status = status_pb2.Status(code=code.value[0], message=message, details=[detail])
    return rpc_status.to_status(status)


def _details(e: grpc.RpcError) -> list[any_pb2.Any]:
    try:
        status = rpc_status.from_call(e)  # type: ignore[arg-type]
    except ValueError:
        # A status whose details disagree with the call's own code or message is not ours.
        return []
    return list(status.details) if status is not None else []


def error_info(e: grpc.RpcError) -> error_details_pb2.ErrorInfo | None:
    """The ErrorInfo of a failed call; None when its status carries none."""
    for detail in _details(e):
        if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
            info = error_details_pb2.ErrorInfo()
            detail.Unpack(info)
            return info
    return None


def retry_delay(e: grpc.RpcError) -> float | None:
    """Seconds the server asks a refused caller to wait before retrying (its RetryInfo,
    sent with RESOURCE_EXHAUSTED when the fabric is saturated); None when there is none."""
    for detail in _details(e):
        if detail.Is(error_details_pb2.RetryInfo.DESCRIPTOR):
            info = error_details_pb2.RetryInfo()
            detail.Unpack(info)
            return info.retry_delay.ToNanoseconds() / 1e9
    return None


class SvasimError(Exception):
    """A request the fabric refused: the call's code and message, and its ErrorInfo's
    ``reason`` and ``metadata`` ("" and {} when the status had no ErrorInfo), and the
    ``retry_delay`` in seconds its RetryInfo asks for (None when it has none)."""

    def __init__(
        self,
        code: grpc.StatusCode,
        reason: str,
        message: str,
        metadata: dict[str, str],
        retry_delay: float | None = None,
    ) -> None:
        super().__init__(f"{code.name} {reason}: {message}" if reason else f"{code.name}: {message}")
        self.code = code
        self.reason = reason
        self.message = message
        self.metadata = metadata
        self.retry_delay = retry_delay

    @classmethod
    def from_rpc_error(cls, e: grpc.RpcError) -> SvasimError:
        """The refusal a failed call carries."""
        info = error_info(e)
        return cls(
            e.code(),  # type: ignore[attr-defined]
            info.reason if info else "",
            e.details() or "",  # type: ignore[attr-defined]
            dict(info.metadata) if info else {},
            retry_delay(e),
        )
