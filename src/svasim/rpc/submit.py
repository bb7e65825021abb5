"""``CpuService.Submit``: a bidirectional stream of ENQCMD, MOVDIR64B and ENQCMDS.

A user-space DSA submitter does not wait for one descriptor before it writes the next
(``accel-config``'s test programs and DPDK's idxd driver keep a ring of descriptors in
flight and poll their completion records); the stream lets a client do the same over
gRPC without paying a round trip per instruction.

What the server does with the stream, and what it guarantees:

- **Pipelining.** A reader thread takes request messages off the stream into a bounded
  window. Each turn of the request gate takes every message waiting there (up to
  ``GROUP_MAX`` submissions), runs its submissions in order, then releases the gate.
- **One input per submission.** Each instruction is recorded as the input its unary call
  would record (``cpu.Enqcmd``, ``cpu.Movdir64b``, ``cpu.Enqcmds``, and ``cpu.WaitCompletion``
  for a wait), with the same request body, so a streamed run is a sequence of unary
  requests to :mod:`svasim.replay` and replays as one.
- **Group commit.** With ``commit`` durability the results of a turn are sent only once
  its last transition is committed: one wait (and, under load, one transaction) for the
  whole group instead of one per submission (:meth:`ServiceCore.client_group`).
- **Errors per submission.** A submission that its unary call would refuse gets that
  refusal (code, ErrorInfo reason and metadata) as its own result; the stream goes on.
  A refusal by the model is recorded (``request.rejected``) as the unary call records
  it; a malformed submission (no instruction, a descriptor that is not 64 bytes) is
  refused before anything is recorded. Either way nothing in the fabric changed.
- **Backpressure.** At most ``WINDOW`` submissions wait unanswered in the server.
  When the window is full the reader stops reading, so HTTP/2 flow control stops a
  client that sends faster than the fabric runs; a client that does not read its
  responses fills the response flow-control window, the server stops producing results,
  the request window fills, and the client's sends block in turn. Memory stays bounded
  and the gate is never held while the stream waits on its client.
"""

from __future__ import annotations

import base64
import collections
import threading
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import grpc
from google.protobuf.json_format import MessageToDict

from svasim.model import accel as accel_model
from svasim.model.errors import InvalidArgument, SimError
from svasim.model.journal import Journal
from svasim.model.kernel import EnqcmdOutcome, EnqcmdResult, Kernel
from svasim.rpc import idxd_convert
from svasim.rpc.common import DEADLINE, InputGroup, Saturated
from svasim.rpc.cpu import OUTCOMES, CpuServicer, descriptor_bytes, enqcmd_pb
from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import DOMAIN

#: Submissions the server takes off a stream before it answers them (a request
#: message counts at least one; one message is always taken, however large).
WINDOW = 512
#: Submissions one request message may carry.
MAX_PER_MESSAGE = 1024
#: Submissions run in one turn of the gate (a turn ends after the message that reaches it):
#: bounds how long a stream keeps unary clients waiting.
GROUP_MAX = 256

_COMPLETION_ADDR = next(f for f in idxd.DSA_HW_DESC_LAYOUT if f.name == "completion_addr")
#: Outcomes after which the device holds the descriptor, so its completion record will be written.
_SUBMITTED = frozenset({EnqcmdOutcome.ACCEPTED, EnqcmdOutcome.POSTED})


@dataclass
class _Item:
    """One submission, decoded and ready to run (or refused before it could be)."""

    sub: cpu_pb2.Submission
    method: str = ""
    record: dict[str, Any] | None = None
    run: Callable[[Journal], EnqcmdResult] | None = None
    tid: int = 0
    completion_addr: int = 0
    refused: SimError | None = None


def submission_error(err: SimError) -> cpu_pb2.SubmissionError:
    """``err`` as the error of one submission: its unary call's status, flattened."""
    delay = int(err.retry_after * 1000) if isinstance(err, Saturated) else 0
    return cpu_pb2.SubmissionError(
        code=grpc.StatusCode[err.code].value[0],
        message=err.message,
        reason=err.reason,
        domain=DOMAIN,
        metadata=err.metadata,
        retry_delay_ms=delay,
    )


def request_record(req: Any) -> dict[str, Any]:
    """The body an input records for ``req``: what ``MessageToDict`` (with proto field
    names) gives, as the unary call records it (replay compares the two), built directly
    for the common ENQCMD/MOVDIR64B with raw bytes."""
    if type(req) in (cpu_pb2.EnqcmdRequest, cpu_pb2.Movdir64bRequest) and req.WhichOneof("source") == "raw":
        out: dict[str, Any] = {}
        # uint64 fields as decimal strings, zero ones left out (proto3 JSON mapping).
        if req.tid:
            out["tid"] = str(req.tid)
        if req.portal_address:
            out["portal_address"] = str(req.portal_address)
        out["raw"] = base64.b64encode(req.raw).decode("ascii")
        return out
    return MessageToDict(req, preserving_proto_field_name=True)


def _prepare(k: Kernel, sub: cpu_pb2.Submission) -> _Item:
    """Decode a submission as its unary servicer does (cpu.CpuServicer.Enqcmd etc.)."""
    item = _Item(sub)
    which = sub.WhichOneof("instruction")
    try:
        if which is None:
            raise InvalidArgument("MISSING_INSTRUCTION", "set one of enqcmd, movdir64b or enqcmds", tag=sub.tag)
        req = getattr(sub, which)
        src = descriptor_bytes(req)
    except SimError as e:
        item.refused = e
        return item
    item.tid = req.tid
    item.record = request_record(req)
    if sub.wait_completion:
        item.completion_addr = _COMPLETION_ADDR.read(src)
    tid, portal = req.tid, getattr(req, "portal_address", 0)
    if which == "enqcmd":
        item.method = "cpu.Enqcmd"
        item.run = lambda j: k.enqcmd(j, tid, portal, src)
    elif which == "movdir64b":
        item.method = "cpu.Movdir64b"
        item.run = lambda j: k.movdir64b(j, tid, portal, src)
    else:
        device = req.device
        offset = accel_model.idxd_get_wq_portal_full_offset(req.wq_id, accel_model.IDXD_PORTAL_UNLIMITED)
        item.method = "cpu.Enqcmds"
        item.run = lambda j: k.enqcmds(j, tid, device, offset, src)
    return item


def _result_pb(which: str, r: EnqcmdResult, out: cpu_pb2.SubmissionResult) -> None:
    if which == "enqcmd":
        out.enqcmd.CopyFrom(enqcmd_pb(r))
    elif which == "movdir64b":
        out.movdir64b.CopyFrom(
            cpu_pb2.Movdir64bResponse(outcome=OUTCOMES[r.outcome], gp_faults=r.gp_faults, cycles=r.cycles)
        )
    else:
        out.enqcmds.CopyFrom(
            cpu_pb2.EnqcmdsResponse(outcome=OUTCOMES[r.outcome], zf=r.zf, retry_reason=r.retry_reason, cycles=r.cycles)
        )


def _run_item(k: Kernel, group: InputGroup, item: _Item) -> tuple[cpu_pb2.SubmissionResult, Any]:
    """Run one submission in ``group``; its result and the input recording it (or None)."""
    out = cpu_pb2.SubmissionResult(tag=item.sub.tag)
    if item.refused is not None or item.run is None or item.record is None:
        out.error.CopyFrom(submission_error(item.refused or InvalidArgument("MISSING_INSTRUCTION", "no instruction")))
        return out, None
    try:
        r = group.call(item.method, item.record, item.run)
    except SimError as e:
        out.error.CopyFrom(submission_error(e))
        return out, group.inputs[-1]
    inp = group.inputs[-1]
    _result_pb(item.sub.WhichOneof("instruction") or "", r, out)
    if item.sub.wait_completion and r.outcome in _SUBMITTED:
        tid, addr = item.tid, item.completion_addr
        wait = cpu_pb2.WaitCompletionRequest(tid=tid, completion_addr=addr)
        try:
            w = group.call(
                "cpu.WaitCompletion",
                MessageToDict(wait, preserving_proto_field_name=True),
                lambda j: k.wait_completion(j, tid, addr),
            )
        except SimError as e:
            out.error.CopyFrom(submission_error(e))
        else:
            out.completion.CopyFrom(
                cpu_pb2.WaitCompletionResponse(
                    completed=w.completed, record=idxd_convert.comp_proto_from_bytes(w.raw), raw=w.raw, cycles=w.cycles
                )
            )
    return out, inp


_END = object()


class _Window:
    """The request messages taken off a stream and not answered yet: at most ``size``
    submissions (a message counts at least one), and always at least one message.

    A reader thread moves messages from the stream into the window; when the window is
    full it stops reading, and gRPC's flow control holds the client back. Counting
    submissions rather than messages lets a client that sends one submission a message
    still have a whole group's worth in flight.
    """

    def __init__(self, requests: Iterable[cpu_pb2.SubmitRequest], size: int) -> None:
        self._size = size
        self._items: collections.deque[Any] = collections.deque()
        self._held = 0  # submissions in the window
        self._cv = threading.Condition()
        self._stop = False
        self._thread = threading.Thread(target=self._read, args=(requests,), name="svasim-submit-reader", daemon=True)
        self._thread.start()

    @staticmethod
    def _weight(item: Any) -> int:
        return max(1, len(item.submissions)) if isinstance(item, cpu_pb2.SubmitRequest) else 0

    def _put(self, item: Any) -> bool:
        with self._cv:
            while self._items and self._held >= self._size and not self._stop:
                self._cv.wait()
            if self._stop:
                return False
            self._items.append(item)
            self._held += self._weight(item)
            self._cv.notify_all()
            return True

    def _read(self, requests: Iterable[cpu_pb2.SubmitRequest]) -> None:
        end: Any = _END
        try:
            for message in requests:
                if not self._put(message):
                    return
        except SimError as e:  # a message that is not a SubmitRequest (rpc.common.ParseRequests)
            end = e
        except Exception as e:  # noqa: BLE001 - the call ended (cancelled, deadline): the stream ends
            end = e
        self._put(end)

    def take(self, limit: int) -> tuple[list[cpu_pb2.SubmitRequest], Any]:
        """The next message (waiting for it), and those already waiting behind it while
        their submissions stay within ``limit``; and how the stream ended (None: it has
        not; ``_END``: the client closed it; else the exception that ended it)."""
        got: list[cpu_pb2.SubmitRequest] = []
        n = 0
        ended: Any = None
        with self._cv:
            while not self._items:
                self._cv.wait()
            while self._items and (not got or n < limit):
                item = self._items.popleft()
                if not isinstance(item, cpu_pb2.SubmitRequest):
                    ended = item
                    break
                got.append(item)
                n += len(item.submissions)
                self._held -= self._weight(item)
            self._cv.notify_all()
        return got, ended

    def close(self) -> None:
        """Stop the reader (it ends with the call, or at once if it waits for room)."""
        with self._cv:
            self._stop = True
            self._cv.notify_all()


def _group(servicer: CpuServicer, messages: list[cpu_pb2.SubmitRequest]) -> list[cpu_pb2.SubmitResponse]:
    """Run the submissions of ``messages`` in one turn of the gate; their responses."""
    k = servicer.k
    prepared: list[list[_Item]] = []
    for m in messages:
        if len(m.submissions) > MAX_PER_MESSAGE:
            err = InvalidArgument(
                "TOO_MANY_SUBMISSIONS",
                f"a request message carries at most {MAX_PER_MESSAGE} submissions; got {len(m.submissions)}",
                count=len(m.submissions),
            )
            prepared.append([_Item(s, refused=err) for s in m.submissions])
        else:
            prepared.append([_prepare(k, s) for s in m.submissions])
    results: list[list[tuple[cpu_pb2.SubmissionResult, Any]]] = []
    try:
        with servicer.core.client_group() as group:
            for items in prepared:
                results.append([_run_item(k, group, item) for item in items])
    except SimError as e:
        # The gate refused the turn (busy, or the deadline passed): nothing ran (every
        # refusal of a submission is caught in _run_item).
        refusal = submission_error(e)
        return [
            cpu_pb2.SubmitResponse(results=[cpu_pb2.SubmissionResult(tag=i.sub.tag, error=refusal) for i in row])
            for row in prepared
        ]
    responses = []
    for answered in results:
        for out, inp in answered:
            if inp is not None and inp.seq is not None:
                out.input_seq = inp.seq
        responses.append(cpu_pb2.SubmitResponse(results=[out for out, _ in answered]))
    return responses


def serve_submit(
    servicer: CpuServicer, requests: Iterable[cpu_pb2.SubmitRequest], context: grpc.ServicerContext
) -> Iterator[cpu_pb2.SubmitResponse]:
    """The responses of a Submit stream, one per request message, in order."""
    left = context.time_remaining()
    DEADLINE.set(None if left is None else time.monotonic() + left)
    if servicer.peer:
        raise InvalidArgument("CLIENT_ONLY", "Submit is a client request; it is not served to peers")
    window = _Window(requests, WINDOW)
    try:
        while True:
            messages, ended = window.take(GROUP_MAX)
            if messages:
                yield from _group(servicer, messages)
            if isinstance(ended, SimError):
                raise ended  # answered before it, refused with its rich status
            if ended is not None:
                return
    finally:
        window.close()
