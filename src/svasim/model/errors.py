"""Errors the model raises for requests that cannot be carried out.

An architectural fault (#GP, a retry, a page-fault status in a completion record) is a
*result* and never one of these. These are for requests a person must correct: an
unknown process, a descriptor that is not 64 bytes, a thread that is not running. The
service layer turns each into a gRPC status with ``google.rpc.ErrorInfo`` carrying
``reason`` and ``metadata``. A model operation raises before it changes anything.
"""

from __future__ import annotations

from typing import Any

from mypy_extensions import mypyc_attr

#: ErrorInfo domain of every svasim error.
DOMAIN = "svasim.dev"
#: Longest message and ErrorInfo metadata value kept: an error echoes what the request
#: named, and a status travels in HTTP/2 trailers, which gRPC limits to a few KiB (a
#: longer one would reach the client as RESOURCE_EXHAUSTED instead of this error).
MESSAGE_MAX = 1024
METADATA_VALUE_MAX = 256


def _bounded(text: str, limit: int) -> str:
    return text if len(text) <= limit else f"{text[: limit - 20]}... ({len(text)} chars)"


@mypyc_attr(native_class=False)
class SimError(Exception):
    """A request the fabric refuses; ``code`` is a canonical gRPC code name (a class
    attribute each subclass sets: the classes are plain Python ones when compiled)."""

    code = "FAILED_PRECONDITION"

    def __init__(self, reason: str, message: str, **metadata: Any) -> None:
        message = _bounded(message, MESSAGE_MAX)
        super().__init__(message)
        self.reason = reason
        self.message = message
        self.metadata = {k: _bounded(str(v), METADATA_VALUE_MAX) for k, v in metadata.items()}


@mypyc_attr(native_class=False)
class NotFound(SimError):
    """The named entity does not exist."""

    code = "NOT_FOUND"


@mypyc_attr(native_class=False)
class InvalidArgument(SimError):
    """The request is malformed whatever the state of the fabric."""

    code = "INVALID_ARGUMENT"


@mypyc_attr(native_class=False)
class FailedPrecondition(SimError):
    """The fabric is not in a state where the request makes sense."""

    code = "FAILED_PRECONDITION"


@mypyc_attr(native_class=False)
class OutOfRange(SimError):
    """An address or size lies outside what exists."""

    code = "OUT_OF_RANGE"


@mypyc_attr(native_class=False)
class ResourceExhausted(SimError):
    """A finite resource (PASIDs, memory) has run out."""

    code = "RESOURCE_EXHAUSTED"


@mypyc_attr(native_class=False)
class AlreadyExists(SimError):
    """The entity to create exists already."""

    code = "ALREADY_EXISTS"
