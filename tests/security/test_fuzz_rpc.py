"""Every method of every service, on both listeners, fed malformed, empty, huge and
overflowing requests: each answer is OK or a canonical refusal that explains itself, and
a refusal changes nothing.

The methods are found by gRPC reflection on the running server's client and peer
listeners (gRPC's own health and reflection services aside), so a new method is fuzzed
without editing this file. Requests are built from the reflected descriptors: every
field unset or set to an edge of its type (0, 2**31, 2**32-1, 2**63-1, 2**63, 2**64-1,
the most negative value of a signed or zigzag field, page and TASK_SIZE boundaries),
an unknown enum value, empty, oversized and non-UTF-8-looking strings and bytes, names
that do not exist, and values that exist in the fabric (its pids, tids, addresses,
devices, run) so that requests reach past the first lookup. Metadata is fuzzed too.

Checks, for every call (the google.rpc error model; svasim's DESIGN "Errors"):
- the status code is OK or a canonical code other than UNKNOWN and INTERNAL (and
  DEADLINE_EXCEEDED only for a stream this test stops waiting for);
- a refusal carries ``grpc-status-details-bin`` with an ErrorInfo of domain svasim.dev
  and a reason;
- a refusal recorded nothing but the client input and its ``request.rejected`` (a peer's
  refused call records nothing at all).

Runs on SQLite and on PostgreSQL (required in CI), derandomized, a few thousand calls.
"""

from __future__ import annotations

import collections
import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field

import grpc
import pytest
from google.protobuf import descriptor_pool, message_factory, text_format
from google.protobuf.descriptor import FieldDescriptor, MethodDescriptor
from google.rpc import error_details_pb2, status_pb2
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import ProtoReflectionDescriptorDatabase
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.server import create_server
from svasim.store import Store
from svasim_client import Client, memmove_descriptor

from ..conftest import DEFAULT_PG_URL, _empty_pg, _pg_unavailable

#: Calls per method and listener (x about 55 methods x 2 backends: a few thousand).
EXAMPLES = 40
#: Fewer for streams, which are given STREAM_WAIT seconds before the test stops reading.
STREAM_EXAMPLES = 8
STREAM_WAIT = 0.3
#: Codes a refusal may carry: canonical, and never the two that mean "the server broke".
#: (DEADLINE_EXCEEDED is not among them: nothing here should take the call's 10 s.)
REFUSALS = set(grpc.StatusCode) - {
    grpc.StatusCode.OK,
    grpc.StatusCode.UNKNOWN,
    grpc.StatusCode.INTERNAL,
    grpc.StatusCode.DEADLINE_EXCEEDED,
}
#: Seconds a unary call may take: a request whose work is unbounded shows as a failure.
CALL_TIMEOUT = 10
#: Infrastructure every gRPC server has; its errors are gRPC's own, not svasim's.
SKIPPED_SERVICES = ("grpc.health.v1.Health", "grpc.reflection.v1alpha.ServerReflection")
DOMAIN = "svasim.dev"
#: What a refused client request may leave in the record.
REFUSAL_RECORD = collections.Counter({"input": 1, "request.rejected": 1})

PAGE = 4096
TASK_SIZE_MAX = (1 << 47) - PAGE
U64 = [0, 1, PAGE - 1, PAGE, 0x10000, 2**31, 2**32 - 1, 2**32, TASK_SIZE_MAX, 2**47, 2**62, 2**63 - 1, 2**63]
U64 += [2**64 - PAGE, 2**64 - 1]
U32 = [0, 1, 7, 255, 2**16, 2**31 - 1, 2**31, 2**32 - 1]
I64 = [-(2**63), -(2**62), -PAGE, -1, 0, 1, 2**62, 2**63 - 1]
I32 = [-(2**31), -1, 0, 1, 2**31 - 1]
STRINGS = ["", "dsa0", "dsa1", "iax0", "nope", "cpu", "x" * 5000, "é☃", "\x00", "../..", "*", "%s"]
#: The largest stays well below gRPC's 4 MiB limit on a received message, beyond which
#: gRPC itself refuses the call (RESOURCE_EXHAUSTED, before any servicer sees it).
BYTES = [b"", bytes(1), bytes(63), bytes(64), b"\xff" * 64, bytes(65), bytes(4096), bytes(256 << 10)]

_RANGES = {
    FieldDescriptor.TYPE_UINT64: (0, 2**64 - 1, U64),
    FieldDescriptor.TYPE_FIXED64: (0, 2**64 - 1, U64),
    FieldDescriptor.TYPE_UINT32: (0, 2**32 - 1, U32),
    FieldDescriptor.TYPE_FIXED32: (0, 2**32 - 1, U32),
    FieldDescriptor.TYPE_INT64: (-(2**63), 2**63 - 1, I64),
    FieldDescriptor.TYPE_SINT64: (-(2**63), 2**63 - 1, I64),
    FieldDescriptor.TYPE_SFIXED64: (-(2**63), 2**63 - 1, I64),
    FieldDescriptor.TYPE_INT32: (-(2**31), 2**31 - 1, I32),
    FieldDescriptor.TYPE_SINT32: (-(2**31), 2**31 - 1, I32),
    FieldDescriptor.TYPE_SFIXED32: (-(2**31), 2**31 - 1, I32),
}


@dataclass
class Listener:
    """One listener of the running server, with the methods reflection lists on it."""

    name: str
    channel: grpc.Channel
    methods: list[MethodDescriptor] = field(default_factory=list)


@dataclass
class FuzzFabric:
    """A running one-process fabric, its store, and values that exist in it."""

    listeners: list[Listener]
    store: Store
    run_id: str
    #: Values that exist in the fabric, by the name of the fields that usually hold them
    #: (a field of another name draws from all of them).
    known: dict[str, list]

    def values(self, kind: type) -> list:
        """Every known value of a Python type."""
        return sorted({v for vs in self.known.values() for v in vs if type(v) is kind}, key=repr)


def _reflected(channel: grpc.Channel) -> list[MethodDescriptor]:
    """Every method of every svasim service the listener names through reflection."""
    db = ProtoReflectionDescriptorDatabase(channel)
    pool = descriptor_pool.DescriptorPool(db)
    out = []
    for name in sorted(db.get_services()):
        if name not in SKIPPED_SERVICES:
            out.extend(pool.FindServiceByName(name).methods)
    return out


def _seed_state(address: str, run_id: str) -> dict[str, list]:
    """Give the fabric a process with memory, a running thread and an open WQ; returns the
    values that name them."""
    c = Client(address)
    try:
        proc = c.create_process("fuzz")
        buf = c.mmap(proc.pid, 4 * PAGE, populate=True)
        comp = c.mmap(proc.pid, PAGE, populate=True)
        wq = c.open_wq(proc.pid, "dsa0", 0)
        tid = proc.tids[0]
        c.schedule(tid, 0)
        pgd = c.get_process(proc.pid).pgd
        desc = memmove_descriptor(buf, buf + 2 * PAGE, 64, comp)
    finally:
        c.close()
    addresses = [buf, buf + 2 * PAGE, buf + PAGE - 8, comp, wq.portal_address]
    return {
        "pid": [proc.pid],
        "mm": [proc.pid],
        "tid": [tid],
        "cpu": [0, 1],
        "wq_id": [0, 1],
        "device": ["dsa0"],
        "pasid": [wq.pasid],
        "pgd": [pgd],
        "address": addresses,
        "portal_address": [wq.portal_address],
        "completion_addr": [comp],
        "physical": [pgd, pgd + PAGE, pgd + 2 * PAGE],
        "length": [8, 64, PAGE, 2 * PAGE],
        "run": [run_id, "fuzz-sqlite", "fuzz-postgres"],
        "raw": [desc],
        "data": [b"\x5a" * 64],
    }


@contextlib.contextmanager
def _running(url: str, name: str) -> Iterator[FuzzFabric]:
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, peer_port=0, db=url, cpus=2, run=name))
    channels = [grpc.insecure_channel(srv.address), grpc.insecure_channel(srv.peer_address)]
    store = Store.open(url, migrate=False)
    try:
        known = _seed_state(srv.address, srv.run_id)
        listeners = [Listener("client", channels[0]), Listener("peer", channels[1])]
        for lst in listeners:
            lst.methods = _reflected(lst.channel)
        yield FuzzFabric(listeners, store, srv.run_id, known)
    finally:
        store.close()
        for ch in channels:
            ch.close()
        srv.stop(0)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def fuzz_fabric(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[FuzzFabric]:
    """The fabric on each backend in turn (PostgreSQL emptied first, as ``pg_url`` does)."""
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('fuzz') / 'svasim.db'}"
    else:
        import os

        import sqlalchemy as sa

        url = os.environ.get("SVASIM_TEST_PG_URL", DEFAULT_PG_URL)
        try:
            _empty_pg(url)
        except sa.exc.OperationalError as exc:
            _pg_unavailable(f"cannot connect: {exc.orig or exc}")
    with _running(url, f"fuzz-{request.param}") as fab:
        yield fab


# -- requests from descriptors ------------------------------------------------------------
def _scalar(f: FieldDescriptor, fab: FuzzFabric) -> st.SearchStrategy:
    generic = _generic(f, fab)
    known = fab.known.get(f.name)
    if known and f.type != FieldDescriptor.TYPE_ENUM:
        # Half the time a value that exists, so that requests get past the first lookup.
        return st.one_of(st.sampled_from(known), generic)
    return generic


def _generic(f: FieldDescriptor, fab: FuzzFabric) -> st.SearchStrategy:
    t = f.type
    if t in _RANGES:
        lo, hi, edges = _RANGES[t]
        known = [v for v in fab.values(int) if lo <= v <= hi]
        return st.one_of(st.sampled_from(edges), st.sampled_from(known), st.integers(lo, hi))
    if t == FieldDescriptor.TYPE_BOOL:
        return st.booleans()
    if t in (FieldDescriptor.TYPE_DOUBLE, FieldDescriptor.TYPE_FLOAT):
        return st.floats(width=64 if t == FieldDescriptor.TYPE_DOUBLE else 32)
    if t == FieldDescriptor.TYPE_STRING:
        return st.one_of(st.sampled_from(STRINGS + fab.values(str)), st.text(max_size=16))
    if t == FieldDescriptor.TYPE_BYTES:
        return st.one_of(st.sampled_from(BYTES + fab.values(bytes)), st.binary(max_size=128))
    if t == FieldDescriptor.TYPE_ENUM:
        known = [v.number for v in f.enum_type.values]
        # Open (proto3) enums carry numbers the server has never heard of.
        return st.sampled_from(known + [max(known) + 1, 99, -1, 2**31 - 1])
    raise AssertionError(f"no strategy for field {f.full_name} of type {t}")


@st.composite
def _message(draw: st.DrawFn, desc, fab: FuzzFabric, depth: int = 0):
    msg = message_factory.GetMessageClass(desc)()
    for f in desc.fields:
        if not draw(st.booleans()):
            continue
        repeated = f.is_repeated
        if f.message_type is not None and f.message_type.GetOptions().map_entry:
            key_f, value_f = f.message_type.fields_by_name["key"], f.message_type.fields_by_name["value"]
            for _ in range(draw(st.integers(0, 3))):
                key = draw(_scalar(key_f, fab))
                if value_f.message_type is not None:
                    if depth < 2:
                        getattr(msg, f.name)[key].CopyFrom(draw(_message(value_f.message_type, fab, depth + 1)))
                else:
                    getattr(msg, f.name)[key] = draw(_scalar(value_f, fab))
            continue
        if f.message_type is not None:
            if depth >= 2:
                continue
            if repeated:
                items = draw(st.lists(_message(f.message_type, fab, depth + 1), max_size=3))
                if sum(m.ByteSize() for m in items) < 1024:
                    # Now and then a long list of the same items (a huge batch).
                    items *= draw(st.sampled_from([1, 1, 1, 200]))
                getattr(msg, f.name).extend(items)
            else:
                getattr(msg, f.name).CopyFrom(draw(_message(f.message_type, fab, depth + 1)))
            continue
        if repeated:
            getattr(msg, f.name).extend(draw(st.lists(_scalar(f, fab), max_size=4)))
        else:
            setattr(msg, f.name, draw(_scalar(f, fab)))
    return msg


#: Metadata a caller may send. A peer's cause is trusted as a seq of the record (peers
#: are authenticated); one that no event can have is pinned separately below.
_PEER_METADATA = [
    ("svasim-request-id", "fuzz-1"),
    ("svasim-request-id", "x" * 200),
    ("svasim-request-id", ""),
    ("svasim-request-id", " ~ "),
    ("svasim-cause", "1"),
    ("svasim-cause", "abc"),
    ("svasim-incarnation", "nonsense"),
]
#: On the client listener a cause means nothing, whatever it says.
_CLIENT_METADATA = _PEER_METADATA + [("svasim-cause", "-5"), ("svasim-cause", str(2**64)), ("svasim-cause", "9" * 30)]


def _metadata(listener: str) -> st.SearchStrategy:
    pairs = _CLIENT_METADATA if listener == "client" else _PEER_METADATA
    return st.lists(st.sampled_from(pairs), max_size=2, unique_by=lambda kv: kv[0])


# -- one call and its checks --------------------------------------------------------------
def _call(channel: grpc.Channel, method: MethodDescriptor, request, metadata) -> tuple[grpc.StatusCode, object]:
    """Call ``method``; its status code and the error (None when OK)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    reply = message_factory.GetMessageClass(method.output_type).FromString
    if method.client_streaming and method.server_streaming:
        # A stream of one fuzzed message (CpuService.Submit): a bad submission is answered
        # in its own result, a message that cannot be one ends the stream with a status.
        bidi = channel.stream_stream(path, type(request).SerializeToString, reply)(
            iter([request]), timeout=STREAM_WAIT, metadata=metadata
        )
        try:
            for _ in bidi:
                pass
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return grpc.StatusCode.OK, None
            return e.code(), e
        return grpc.StatusCode.OK, None
    if method.client_streaming:
        raise AssertionError(f"{path}: client streaming methods need a strategy of their own")
    if method.server_streaming:
        call = channel.unary_stream(path, type(request).SerializeToString, reply)(
            request, timeout=STREAM_WAIT, metadata=metadata
        )
        try:
            for i, _ in enumerate(call):
                if i >= 2:
                    call.cancel()
                    break
        except grpc.RpcError as e:
            if e.code() in (grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED):
                # The test stopped reading or waiting: the stream itself was served.
                return grpc.StatusCode.OK, None
            return e.code(), e
        return grpc.StatusCode.OK, None
    try:
        channel.unary_unary(path, type(request).SerializeToString, reply)(
            request, timeout=CALL_TIMEOUT, metadata=metadata
        )
    except grpc.RpcError as e:
        return e.code(), e
    return grpc.StatusCode.OK, None


def _rich_status(err: grpc.RpcError) -> tuple[int | None, error_details_pb2.ErrorInfo | None]:
    """The code of the google.rpc.Status the error carries, and its ErrorInfo."""
    for key, value in err.trailing_metadata() or ():
        if key == "grpc-status-details-bin":
            status = status_pb2.Status.FromString(value)
            for detail in status.details:
                if detail.Is(error_details_pb2.ErrorInfo.DESCRIPTOR):
                    info = error_details_pb2.ErrorInfo()
                    detail.Unpack(info)
                    return status.code, info
            return status.code, None
    return None, None


def _check(fab: FuzzFabric, lst: Listener, method: MethodDescriptor, request, metadata) -> None:
    before = fab.store.last_seq(fab.run_id)
    code, err = _call(lst.channel, method, request, metadata)
    shown = text_format.MessageToString(request, as_one_line=True)
    where = f"{lst.name} {method.full_name}({shown[:300]}) metadata={metadata}"
    if code == grpc.StatusCode.OK:
        return
    assert code in REFUSALS, f"{where}: {code.name} {err.details()!r}"
    rich_code, info = _rich_status(err)
    assert info is not None and info.reason and info.domain == DOMAIN, f"{where}: {code.name} without ErrorInfo"
    # The status the server meant is the one the client got (not one gRPC substituted).
    assert rich_code == code.value[0], f"{where}: {code.name} but the rich status says {rich_code} ({info.reason})"
    recorded = collections.Counter(e.kind for e in fab.store.events(fab.run_id, after_seq=before, limit=None))
    allowed = [collections.Counter()] + ([REFUSAL_RECORD] if lst.name == "client" else [])
    assert recorded in allowed, f"{where}: refused with {code.name} {info.reason} but recorded {dict(recorded)}"


def _fuzz_method(fab: FuzzFabric, lst: Listener, method: MethodDescriptor) -> None:
    @settings(
        max_examples=STREAM_EXAMPLES if method.server_streaming else EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(request=_message(method.input_type, fab), metadata=_metadata(lst.name))
    def fuzz(request, metadata) -> None:
        _check(fab, lst, method, request, metadata)

    fuzz()


def test_reflection_lists_every_service_of_both_listeners(fuzz_fabric):
    client, peer = fuzz_fabric.listeners
    client_services = {m.containing_service.full_name for m in client.methods}
    peer_services = {m.containing_service.full_name for m in peer.methods}
    # What DESIGN's two APIs put on each listener, at the least.
    assert {"svasim.cpu.v1.CpuService", "svasim.trace.v1.TraceService"} <= client_services
    assert {"svasim.cpu.v1.HostMemoryService", "svasim.iommu.v1.IommuService"} <= peer_services


@pytest.mark.parametrize("listener", ["client", "peer"])
def test_every_method_answers_bad_input_with_a_canonical_explained_refusal_that_changes_nothing(fuzz_fabric, listener):
    lst = next(x for x in fuzz_fabric.listeners if x.name == listener)
    failures = []
    for method in lst.methods:
        try:
            _fuzz_method(fuzz_fabric, lst, method)
        except Exception as e:  # noqa: BLE001 - every method's failures are reported together
            parts = e.exceptions if isinstance(e, BaseExceptionGroup) else [e]
            failures += [f"{type(p).__name__}: {str(p).splitlines()[0][:600]}" for p in parts]
    assert not failures, "\n".join(failures)


#: Bytes that are not a protobuf message: a truncated varint, a length beyond the end,
#: a field number 0, a group end without a start.
NOT_A_MESSAGE = [b"\xff\xff\xff", b"\x08", b"\x0a\x05ab", b"\x00", b"\x0c"]


@pytest.mark.parametrize("listener", ["client", "peer"])
def test_a_request_that_does_not_parse_is_invalid_argument(fuzz_fabric, listener):
    lst = next(x for x in fuzz_fabric.listeners if x.name == listener)
    failures = []
    for method in lst.methods:
        path = f"/{method.containing_service.full_name}/{method.name}"
        for raw in NOT_A_MESSAGE:
            try:
                if method.server_streaming:
                    list(lst.channel.unary_stream(path)(raw, timeout=STREAM_WAIT))
                else:
                    lst.channel.unary_unary(path)(raw, timeout=CALL_TIMEOUT)
                failures.append(f"{path} {raw!r}: OK")
            except grpc.RpcError as e:
                _, info = _rich_status(e)
                if e.code() != grpc.StatusCode.INVALID_ARGUMENT or info is None or not info.reason:
                    failures.append(f"{path} {raw!r}: {e.code().name} {e.details()}")
    assert not failures, "\n".join(failures[:20])


@pytest.mark.parametrize("cause", ["-5", str(2**63), str(2**64)])
def test_a_peer_cause_that_no_event_can_have_is_refused(cause):
    from svasim.model.errors import InvalidArgument
    from svasim.rpc.common import cause_from_metadata

    with pytest.raises(InvalidArgument):
        cause_from_metadata((("svasim-cause", cause),))
