"""What every service shares: the core behind a lock, the ``rpc`` decorator, and the two
ways a request runs (a state change, recorded; a read, not recorded).

A core is what a gRPC servicer and an in-process peer both call. It records client
requests as inputs, runs the model with a :class:`Journal` whose transitions flow to the
recorder as they are made, and, when durability is asked for, waits until they are
committed before the request is acknowledged.

Who is calling is decided by the listener the call arrived on, never by what the caller
says: a servicer on the client listener runs every state-changing request as a client
input (recorded, one whole request at a time); one on the peer listener runs it as a
part of some client request of a peer process. Causality between peers crosses the wire
in metadata: a peer sends the seq of the cause of its call as ``svasim-cause`` and gets
back the seq of the callee's last transition as trailing metadata ``svasim-last`` (see
:mod:`svasim.wiring.grpc_ports`). A client may name its request (``svasim-request-id``)
and gets back the seq of the input that recorded it (``svasim-input-seq``).
"""

from __future__ import annotations

import base64
import collections
import contextlib
import functools
import logging
import threading
import time
from collections.abc import Callable, Iterator
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

import grpc
from google.protobuf import any_pb2, descriptor, duration_pb2
from google.protobuf.json_format import MessageToDict
from google.rpc import error_details_pb2, status_pb2

from svasim.model.errors import InvalidArgument, SimError
from svasim.model.journal import Journal
from svasim.model.transition import INPUT_KIND, Cause, Transition
from svasim.rpc.metrics import wrapped_once
from svasim.rpc.rpc_errors import to_status
from svasim.wiring.incarnation import INCARNATION_KEY, Incarnations, expected_from, identity_from

R = TypeVar("R")
F = TypeVar("F", bound=Callable[..., Any])

DURABILITY_COMMIT = "commit"
DURABILITY_BATCH = "batch"

CAUSE_KEY = "svasim-cause"
LAST_KEY = "svasim-last"
REQUEST_ID_KEY = "svasim-request-id"
INPUT_SEQ_KEY = "svasim-input-seq"
#: Longest request id a client may send.
REQUEST_ID_MAX = 128

log = logging.getLogger("svasim.rpc")

#: The monotonic time by which the client request being served must be answered; peer
#: calls made for it get no more than what is left (the client's deadline propagates).
DEADLINE: ContextVar[float | None] = ContextVar("svasim_deadline", default=None)
#: Trailing metadata the request being served will answer with (set per call by ``rpc``).
_TRAILING: ContextVar[list[tuple[str, str]] | None] = ContextVar("svasim_trailing", default=None)


class InternalError(SimError):
    """A fault of the fabric itself, not of the request (its traceback is in the log)."""

    code = "INTERNAL"


class DeadlineExceeded(SimError):
    """The client's deadline ran out while the request waited (on a peer, or its turn)."""

    code = "DEADLINE_EXCEEDED"


class Saturated(SimError):
    """Too many client requests are waiting for their turn: come back after ``retry_after`` s."""

    code = "RESOURCE_EXHAUSTED"

    def __init__(self, message: str, retry_after: float, **metadata: Any) -> None:
        super().__init__("FABRIC_BUSY", message, **metadata)
        self.retry_after = retry_after


class RequestGate:
    """The turn of client requests through a process: one at a time, whole and in order
    (a run is then a sequence of whole requests, which is what replay feeds back), with a
    bounded queue. A request that would wait beyond ``max_queued`` others, or longer than
    ``timeout`` seconds, is refused with :class:`Saturated` instead of waiting silently.

    Peer calls never pass the gate, so a call-back from a peer into a process whose own
    client request is waiting on that peer cannot wait for the gate.
    """

    def __init__(self, *, max_queued: int = 8, timeout: float = 5.0) -> None:
        if max_queued < 0 or timeout < 0:
            raise ValueError("max_queued and timeout must be >= 0")
        self.max_queued = max_queued
        self.timeout = timeout
        # Reentrant: a request may read (client_read) before it changes (client_call).
        self._turn = threading.RLock()
        self._lock = threading.Lock()
        self.waiting = 0
        #: Moving average of how long a request holds its turn (seconds), for RetryInfo.
        self.hold = 0.001
        #: When each refused request was told to come back (monotonic, ascending).
        self._retries: collections.deque[float] = collections.deque()

    def _wait(self) -> None:
        with self._lock:
            if self.waiting >= self.max_queued:
                raise Saturated(
                    f"{self.waiting} requests are waiting already; retry later",
                    self._retry_after(),
                    waiting=self.waiting,
                )
            self.waiting += 1
        deadline = DEADLINE.get()
        timeout = self.timeout if deadline is None else max(0.0, min(self.timeout, deadline - time.monotonic()))
        try:
            got = self._turn.acquire(timeout=timeout)
        finally:
            with self._lock:
                self.waiting -= 1
        if not got:
            if deadline is not None and time.monotonic() >= deadline:
                raise DeadlineExceeded("DEADLINE_EXCEEDED", "the request's deadline passed while it waited its turn")
            with self._lock:
                retry_after = self._retry_after()
            raise Saturated(f"no turn within {self.timeout:g} s; retry later", retry_after)

    def _retry_after(self) -> float:
        # Under self._lock. A refused request is given the next free slot after the queue
        # ahead of it and after the refused requests told to come back before it, so that
        # retries arrive about as fast as the gate can take them, rather than all at once
        # to be refused again (a refusal costs the server about what a served call costs).
        # Slots are two average turns apart: the place a turn frees in the queue goes as
        # often to the client just answered, which sends its next request at once, as to
        # one coming back (UNVERIFIED: measured with benchmarks/load.py, not derived; one
        # turn apart refused about 1.6 times as often at 32 clients). The deadlines are
        # ascending, so the expired ones leave from the left.
        now = time.monotonic()
        retries = self._retries
        while retries and retries[0] <= now:
            retries.popleft()
        step = 2 * self.hold
        due = now + step * (self.waiting + 1)
        if retries:
            due = max(due, retries[-1] + step)
        delay = min(5.0, max(0.01, due - now))
        retries.append(now + delay)
        return delay

    def turn(self) -> _Turn:
        """Wait for this request's turn, or raise Saturated/DeadlineExceeded."""
        return _Turn(self)


class _Turn:
    """One request's turn through a :class:`RequestGate`, for a ``with`` block (a class,
    not a generator: every client request takes one)."""

    __slots__ = ("gate", "started")

    def __init__(self, gate: RequestGate) -> None:
        self.gate = gate
        self.started = 0.0

    def __enter__(self) -> None:
        gate = self.gate
        if not gate._turn.acquire(blocking=False):
            gate._wait()
        self.started = time.monotonic()

    def __exit__(self, *exc: object) -> None:
        gate = self.gate
        held = time.monotonic() - self.started
        gate._turn.release()
        with gate._lock:
            gate.hold += (held - gate.hold) / 8


def cause_from_metadata(metadata: Any) -> int | None:
    """The cause seq sent by a peer, if any."""
    for key, value in metadata or ():
        if key == CAUSE_KEY and value:
            try:
                n = int(value)
            except ValueError:
                raise InvalidArgument("BAD_CAUSE", f"{CAUSE_KEY} must be a seq, got {value!r}") from None
            if not 0 <= n < 2**63:
                # No event can have such a seq: refused before it reaches the recorder,
                # where the store would refuse it at commit after the request was served.
                raise InvalidArgument("BAD_CAUSE", f"{CAUSE_KEY} {n} is not a seq (0 .. 2**63-1)", cause=str(n))
            return n or None
    return None


class RecorderLike(Protocol):
    """What a core needs of the recorder (svasim.store.Recorder)."""

    def append(self, transitions: list[Transition]) -> None: ...

    def flush(self, timeout: float | None = None) -> None: ...

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None: ...


class ServiceCore:
    """Common request handling of the cpu, iommu and accel cores."""

    service = ""

    def __init__(
        self,
        *,
        recorder: RecorderLike,
        gate: RequestGate,
        durability: str = DURABILITY_COMMIT,
    ) -> None:
        if durability not in (DURABILITY_COMMIT, DURABILITY_BATCH):
            raise ValueError(f"durability must be {DURABILITY_COMMIT!r} or {DURABILITY_BATCH!r}")
        self.recorder = recorder
        #: Shared by the cores of a process: one client request at a time through it.
        self.gate = gate
        self.durability = durability
        # Guards the model. Peers of the same process may call in on the same thread, so
        # the cpu core releases it around its outbound calls (see svasim.wiring.local).
        self.lock = threading.Lock()
        #: This process's incarnation and the peers' it met (None: no peers elsewhere).
        self.incarnations: Incarnations | None = None

    def holds_state_of(self, service: str) -> str:
        """What this core's model holds of ``service``'s state, in a few words ("" for
        nothing): a restart of that service loses what this describes."""
        return ""

    def _sink(self, t: Transition) -> None:
        self.recorder.append([t])

    def client_call(
        self,
        method: str,
        request: dict[str, Any],
        fn: Callable[[Journal], R],
        *,
        request_id: str | None = None,
        on_input: Callable[[Transition], None] | None = None,
    ) -> R:
        """Run a state-changing client request: record it as an input, then run it.

        A refused request is recorded too (``request.rejected``), so that a replay
        can check it is refused again; the model itself changed nothing. The input
        (with its seq once committed) is handed to ``on_input`` when the request ends,
        refused or not.
        """
        after: dict[str, Any] = {"method": method, "request": request}
        if request_id is not None:
            after["request_id"] = request_id
        with self.gate.turn():
            inp = Transition(self.service, "client", INPUT_KIND, None, after)
            self.recorder.append([inp])
            journal = Journal(self.service, self._sink, inp)
            refusal: SimError | None = None
            try:
                with self.lock:
                    result = fn(journal)
            except SimError as e:
                journal.emit(
                    "client",
                    "request.rejected",
                    None,
                    None,
                    detail={"method": method, "code": e.code, "reason": e.reason},
                )
                refusal = e
        # The next request may run while this one waits for its commit.
        self._wait(journal.last, inp, request_id)
        if on_input is not None:
            on_input(inp)
        if refusal is not None:
            raise refusal
        return result

    @contextlib.contextmanager
    def client_group(self) -> Iterator[InputGroup]:
        """Run many client requests in one turn of the gate, acknowledged together.

        Each request of the group is recorded as its own input and run as
        :meth:`client_call` runs it (``InputGroup.call``), so a run made of groups is the
        run their requests make one by one and replays as such. With ``commit``
        durability, leaving the block waits once, for the group's last transition: the
        recorder commits in append order, so that one wait covers every request of the
        group and they share one transaction (group commit). The gate is free again
        while the group waits for its commit.
        """
        group = InputGroup(self)
        with self.gate.turn():
            yield group
        if self.durability == DURABILITY_COMMIT and group.last is not None:
            self.recorder.wait_durable(group.last)

    def client_read(self, fn: Callable[[], R]) -> R:
        """Run a request that changes nothing (not recorded)."""
        with self.gate.turn(), self.lock:
            return fn()

    def peer_call(self, cause: Cause, fn: Callable[[Journal], R]) -> tuple[R, Cause]:
        """Run a peer's request caused by ``cause``; returns the result and our last transition."""
        journal = Journal(self.service, self._sink, cause)
        with self.lock:
            result = fn(journal)
        return result, journal.last

    def peer_read(self, fn: Callable[[], R]) -> R:
        """Run a peer's request that changes nothing."""
        with self.lock:
            return fn()

    def _wait(self, last: Cause, inp: Transition, request_id: str | None) -> None:
        if self.durability == DURABILITY_COMMIT and isinstance(last, Transition):
            self.recorder.wait_durable(last)
        elif request_id is not None and inp.seq is None:
            # A client that names its request is told its input's seq, which exists
            # only once the input is committed.
            self.recorder.wait_durable(inp)


class InputGroup:
    """The requests of one :meth:`ServiceCore.client_group`, run while it holds the gate."""

    def __init__(self, core: ServiceCore) -> None:
        self.core = core
        #: The input of every request run so far, in order.
        self.inputs: list[Transition] = []
        #: The last transition this group appended (what its acknowledgement waits for).
        self.last: Transition | None = None

    def _sink(self, t: Transition) -> None:
        self.core.recorder.append([t])
        self.last = t

    def call(self, method: str, request: dict[str, Any], fn: Callable[[Journal], R]) -> R:
        """Record a client request as an input and run it, as ``client_call`` does
        (a refusal is recorded as ``request.rejected`` and raised), without waiting for
        its commit: the group waits once when it ends."""
        core = self.core
        inp = Transition(core.service, "client", INPUT_KIND, None, {"method": method, "request": request})
        self._sink(inp)
        self.inputs.append(inp)
        journal = Journal(core.service, self._sink, inp)
        try:
            with core.lock:
                return fn(journal)
        except SimError as e:
            journal.emit(
                "client", "request.rejected", None, None, detail={"method": method, "code": e.code, "reason": e.reason}
            )
            raise


@dataclass(frozen=True)
class _Status(grpc.Status):
    code: grpc.StatusCode
    details: str
    trailing_metadata: tuple[tuple[str, str | bytes], ...]


_DETAILS_KEY = "grpc-status-details-bin"


def _with_retry_info(metadata: tuple[tuple[str, Any], ...], seconds: float) -> tuple[tuple[str, Any], ...]:
    # The rich status travels serialized in grpc-status-details-bin: add a RetryInfo to it.
    out = []
    for key, value in metadata:
        if key == _DETAILS_KEY:
            rich = status_pb2.Status.FromString(value)
            delay = duration_pb2.Duration()
            delay.FromNanoseconds(int(seconds * 1e9))
            detail = any_pb2.Any()
            detail.Pack(error_details_pb2.RetryInfo(retry_delay=delay))
            rich.details.append(detail)
            value = rich.SerializeToString()
        out.append((key, value))
    return tuple(out)


def _abort(context: grpc.ServicerContext, err: SimError, trailing: list[tuple[str, str]]) -> None:
    status = to_status(err)
    metadata = tuple(status.trailing_metadata or ())
    if isinstance(err, Saturated):
        metadata = _with_retry_info(metadata, err.retry_after)
    context.abort_with_status(_Status(status.code, status.details, (*metadata, *trailing)))


def _internal(fn: Callable[..., Any]) -> InternalError:
    # Called in an except block: the log gets the traceback, the caller a plain INTERNAL.
    log.exception("internal error serving %s", fn.__qualname__)
    return InternalError("INTERNAL_ERROR", f"internal error serving {fn.__name__}; the server log has the traceback")


_HAS_STRINGS: dict[str, bool] = {}


def _has_strings(desc: Any, seen: frozenset[str] = frozenset()) -> bool:
    """Whether a message type holds a string field anywhere (cached per type)."""
    name = desc.full_name
    if name in _HAS_STRINGS:
        return _HAS_STRINGS[name]
    found = False
    for f in desc.fields:
        if f.type == f.TYPE_STRING:
            found = True
        elif f.type == f.TYPE_MESSAGE and f.message_type.full_name not in seen:
            found = _has_strings(f.message_type, seen | {name})
        if found:
            break
    _HAS_STRINGS[name] = found
    return found


def check_strings(message: Any, method: str) -> None:
    """Refuse a request whose strings hold a NUL: no name the fabric keeps (a process's,
    a WQ's) can, and no store can record one (PostgreSQL's JSON refuses \\u0000)."""
    if not _has_strings(message.DESCRIPTOR):
        return
    for f, value in message.ListFields():
        if f.type not in (f.TYPE_STRING, f.TYPE_MESSAGE):
            continue
        if f.type == f.TYPE_MESSAGE and f.message_type.GetOptions().map_entry:
            values = [x for kv in value.items() for x in kv]
        elif isinstance(value, str | bytes) or hasattr(value, "DESCRIPTOR"):
            values = [value]
        else:
            values = list(value)  # a repeated field
        for v in values:
            if isinstance(v, str):
                if "\x00" in v:
                    raise InvalidArgument(
                        "NUL_IN_STRING", f"field {f.name} of a {method} request holds a NUL", field=f.name
                    )
            elif hasattr(v, "DESCRIPTOR"):
                check_strings(v, method)


class ParseRequests(grpc.ServerInterceptor):
    """Parse each request in the handler, so that bytes that are not the method's message
    get INVALID_ARGUMENT with an ErrorInfo (``MALFORMED_MESSAGE``) instead of grpcio's
    INTERNAL "Exception deserializing request!"."""

    def __init__(self) -> None:
        # method -> (the handler it had, the handler made of it): a method's handler is
        # the same object from call to call, so each is wrapped once, not on every call.
        self._made: dict[str, tuple[Any, Any]] = {}

    def intercept_service(self, continuation: Callable[[Any], Any], handler_call_details: Any) -> Any:
        """The method's handler, taking raw bytes and parsing them itself."""
        handler = continuation(handler_call_details)
        if handler is None or handler.request_deserializer is None or handler.stream_unary is not None:
            return handler
        return wrapped_once(self._made, handler_call_details.method, handler, self._wrap)

    def _wrap(self, handler: Any, method: str) -> Any:
        parse = handler.request_deserializer
        if handler.stream_stream is not None:
            inner_ss = handler.stream_stream

            def messages(raws: Iterator[bytes]) -> Iterator[Any]:
                # Whoever reads the stream (maybe not the handler's thread) gets the
                # refusal as a SimError; the handler ends the call with it.
                for raw in raws:
                    try:
                        message = parse(raw)
                    except Exception:
                        raise InvalidArgument(
                            "MALFORMED_MESSAGE", f"a request is not a valid message of {method}", method=method
                        ) from None
                    check_strings(message, method)
                    yield message

            def stream_stream(raws: Iterator[bytes], context: grpc.ServicerContext) -> Any:
                yield from inner_ss(messages(raws), context)

            return grpc.stream_stream_rpc_method_handler(
                stream_stream, request_deserializer=None, response_serializer=handler.response_serializer
            )

        def parsed(raw: bytes, context: grpc.ServicerContext) -> Any:
            try:
                message = parse(raw)
            except Exception:
                err = InvalidArgument(
                    "MALFORMED_MESSAGE", f"the request is not a valid message of {method}", method=method
                )
                _abort(context, err, [])
            try:
                check_strings(message, method)
            except InvalidArgument as e:
                _abort(context, e, [])
            return message

        if handler.unary_unary is not None:
            inner_uu = handler.unary_unary

            def unary_unary(raw: bytes, context: grpc.ServicerContext) -> Any:
                return inner_uu(parsed(raw, context), context)

            return grpc.unary_unary_rpc_method_handler(
                unary_unary, request_deserializer=None, response_serializer=handler.response_serializer
            )
        inner_us = handler.unary_stream

        def unary_stream(raw: bytes, context: grpc.ServicerContext) -> Any:
            yield from inner_us(parsed(raw, context), context)

        return grpc.unary_stream_rpc_method_handler(
            unary_stream, request_deserializer=None, response_serializer=handler.response_serializer
        )


_FD = descriptor.FieldDescriptor
_INT64_TYPES = (_FD.CPPTYPE_INT64, _FD.CPPTYPE_UINT64)
_FLAT_TYPES = (_FD.CPPTYPE_INT32, _FD.CPPTYPE_UINT32, _FD.CPPTYPE_BOOL, _FD.CPPTYPE_STRING, *_INT64_TYPES)
_PLAIN, _INT64, _BYTES, _MESSAGE = 0, 1, 2, 3
#: Per message type, how request_record builds its dict: (name, encoding, has presence)
#: of each field in number order; None for a type with other fields (repeated, maps,
#: enums, floats, well-known types: MessageToDict encodes those).
_PLANS: dict[type, tuple[tuple[str, int, bool], ...] | None] = {}


def _plan(desc: Any) -> tuple[tuple[str, int, bool], ...] | None:
    fields = sorted(desc.fields, key=lambda f: f.number)
    plan = []
    for f in fields:
        if f.is_repeated or f.is_extension:
            return None
        if f.cpp_type == _FD.CPPTYPE_MESSAGE:
            if f.message_type.full_name.startswith("google.protobuf."):
                return None  # a well-known type: a JSON form of its own
            encoding = _MESSAGE
        elif f.cpp_type in _INT64_TYPES:
            encoding = _INT64
        elif f.type == _FD.TYPE_BYTES:
            encoding = _BYTES
        elif f.cpp_type in _FLAT_TYPES:
            encoding = _PLAIN
        else:
            return None  # enums (by name) and floats (shortest form)
        plan.append((f.name, encoding, bool(f.has_presence)))
    return tuple(plan)


def request_record(message: Any) -> dict[str, Any]:
    """The request as its input records it: ``MessageToDict(message,
    preserving_proto_field_name=True)``, the same dict, built directly for a message of
    plain fields (integers, bools, strings, bytes: most requests), a few times faster.

    As the ProtoJSON mapping has it: fields in number order, a field without presence
    left out at its default and one with presence when not set, 64-bit integers as
    decimal strings, bytes in base64."""
    kind = type(message)
    if kind in _PLANS:
        plan = _PLANS[kind]
    else:
        plan = _PLANS[kind] = _plan(message.DESCRIPTOR)
    if plan is None:
        return MessageToDict(message, preserving_proto_field_name=True)
    out: dict[str, Any] = {}
    for field, encoding, presence in plan:
        value = getattr(message, field)
        if message.HasField(field) if presence else value:
            if encoding == _INT64:
                value = str(value)
            elif encoding == _BYTES:
                value = base64.b64encode(value).decode("ascii")
            elif encoding == _MESSAGE:
                value = request_record(value)
            out[field] = value
    return out


def rpc(fn: F) -> F:
    """Serve one unary method: the client's deadline propagates to peer calls, a model
    refusal becomes its rich gRPC error, and anything else is a fault of the fabric:
    INTERNAL, logged with its traceback (never passed off as bad input)."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        left = context.time_remaining()
        DEADLINE.set(None if left is None else time.monotonic() + left)
        trailing: list[tuple[str, str]] = []
        _TRAILING.set(trailing)
        incarnations: Incarnations | None = getattr(getattr(self, "core", None), "incarnations", None)
        try:
            if incarnations is not None and getattr(self, "peer", False):
                # Before anything runs: a caller holding state of another start of this
                # process, or a restarted caller whose state we hold, is refused.
                trailing.append((INCARNATION_KEY, incarnations.identity.header()))
                metadata = context.invocation_metadata()
                incarnations.check_expected(expected_from(metadata))
                caller = identity_from(metadata)
                if caller is not None:
                    incarnations.meet(caller)
            reply = fn(self, request, context)
        except SimError as e:
            _abort(context, e, trailing)
        except Exception:
            _abort(context, _internal(fn), trailing)
        if trailing:
            context.set_trailing_metadata(tuple(trailing))
        return reply

    return wrapper  # type: ignore[return-value]


def rpc_stream(fn: F) -> F:
    """``rpc`` for a server-streaming method: a refusal before or during the stream is its
    rich error; anything else is INTERNAL, logged with its traceback."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Iterator[Any]:
        try:
            yield from fn(self, request, context)
        except SimError as e:
            _abort(context, e, [])
        except Exception:
            _abort(context, _internal(fn), [])

    return wrapper  # type: ignore[return-value]


def _trailer(key: str, value: str) -> None:
    trailing = _TRAILING.get()
    if trailing is not None:
        trailing.append((key, value))


def request_id_from(metadata: Any) -> str | None:
    """The request id a client sent, if any; InvalidArgument if it is not printable ASCII
    of at most REQUEST_ID_MAX characters."""
    for key, value in metadata or ():
        if key != REQUEST_ID_KEY:
            continue
        if (
            not isinstance(value, str)
            or not 0 < len(value) <= REQUEST_ID_MAX
            or not value.isprintable()
            or not value.isascii()
        ):
            raise InvalidArgument(
                "BAD_REQUEST_ID",
                f"{REQUEST_ID_KEY} must be 1 to {REQUEST_ID_MAX} printable ASCII characters",
                length=len(value),
            )
        return value
    return None


def run_change(
    core: ServiceCore,
    context: grpc.ServicerContext,
    method: str,
    request: Any,
    fn: Callable[[Journal], Any],
    *,
    peer: bool,
) -> Any:
    """Run a state-changing request: as a client input, or (``peer``) as a peer's call."""
    if not peer:
        request_id = request_id_from(context.invocation_metadata())
        # A replayed input is recorded as the record has it (svasim.replay.ReplayContext):
        # the message was decoded from that very dict.
        record = getattr(context, "recorded_request", None)
        if record is None:
            record = request_record(request)

        def answer_seq(inp: Transition) -> None:
            if inp.seq is not None:
                _trailer(INPUT_SEQ_KEY, str(inp.seq))

        return core.client_call(method, record, fn, request_id=request_id, on_input=answer_seq)
    cause = cause_from_metadata(context.invocation_metadata())
    result, last = core.peer_call(cause, fn)
    seq = 0
    if isinstance(last, Transition):
        # Commit before answering so the caller can name our last transition as a cause.
        core.recorder.wait_durable(last)
        seq = last.seq or 0
    elif isinstance(last, int):
        seq = last
    if seq:
        _trailer(LAST_KEY, str(seq))
    return result


def run_read(core: ServiceCore, fn: Callable[[], Any], *, peer: bool) -> Any:
    """Run a request that changes nothing (a client's waits for whole client requests)."""
    return core.peer_read(fn) if peer else core.client_read(fn)


class Servicer:
    """What the servicers of a model core share: the core, and which listener they serve.

    ``peer`` is fixed when the servicer is made for a listener; a servicer of a peer-only
    service (``peer_only``) is always a peer's.
    """

    #: Prefix of the method names recorded in inputs ("cpu", "accel").
    prefix = ""
    #: The service is served on the peer listener only.
    peer_only = False

    def __init__(self, core: Any, *, peer: bool = False) -> None:
        self.core = core
        self.peer = peer or self.peer_only

    def _change(self, context: grpc.ServicerContext, method: str, request: Any, fn: Callable[[Journal], Any]) -> Any:
        return run_change(self.core, context, f"{self.prefix}.{method}", request, fn, peer=self.peer)

    def _read(self, fn: Callable[[], Any]) -> Any:
        return run_read(self.core, fn, peer=self.peer)
