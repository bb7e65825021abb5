"""Python client of svasim's gRPC API.

>>> from svasim_client import Client
>>> with Client("127.0.0.1:50051") as c:
...     proc = c.create_process("app")

Each method sends one request and returns the response message; a refused request
raises :class:`SvasimError` with the server's ``code``, ``reason`` and ``metadata``.
Architectural outcomes (a #GP, a retry, a page-fault status) are results, not errors.
"""

from svasim_api.errors import SvasimError
from svasim_client._client import (
    Client,
    enqcmd_submission,
    enqcmds_submission,
    movdir64b_submission,
    submission_error,
)
from svasim_client.descriptors import (
    completion_record,
    memfill_descriptor,
    memmove_descriptor,
    noop_descriptor,
)

__all__ = [
    "Client",
    "SvasimError",
    "completion_record",
    "enqcmd_submission",
    "enqcmds_submission",
    "memfill_descriptor",
    "memmove_descriptor",
    "movdir64b_submission",
    "noop_descriptor",
    "submission_error",
]
