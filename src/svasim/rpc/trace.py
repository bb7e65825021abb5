"""The trace service: runs, events and state at any event, read from the store."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from typing import Any

import grpc

from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound, OutOfRange
from svasim.rpc.common import rpc, rpc_stream
from svasim.store import SEQ_MAX
from svasim_api.trace.v1 import trace_pb2, trace_pb2_grpc


def _filters_key(request: trace_pb2.ListEventsRequest) -> str:
    parts = [request.run, request.entity_prefix, request.kind_prefix, request.service, str(request.to_seq)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def encode_page_token(after_seq: int, key: str) -> str:
    """An opaque page token: where to continue, bound to the filters it was made for."""
    return base64.urlsafe_b64encode(json.dumps({"a": after_seq, "k": key}).encode()).decode()


def decode_page_token(token: str, key: str) -> int:
    """The seq to continue after; InvalidArgument if the token is foreign or corrupt."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after, k = int(data["a"]), str(data["k"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument("BAD_PAGE_TOKEN", "page_token is not one this service issued") from e
    if not 0 <= after <= SEQ_MAX:
        raise InvalidArgument("BAD_PAGE_TOKEN", "page_token is not one this service issued")
    if k != key:
        raise InvalidArgument("PAGE_TOKEN_MISMATCH", "page_token was issued for other filters; repeat them unchanged")
    return after


def check_seq(field: str, value: int) -> int:
    """``value`` if a seq can have it; InvalidArgument naming ``field`` otherwise (the
    store keeps seqs in signed 64-bit columns, so a uint64 field can exceed them)."""
    if value > SEQ_MAX:
        raise InvalidArgument(
            "SEQ_OUT_OF_RANGE", f"{field} is {value}; a seq is at most {SEQ_MAX} (2**63-1)", field=field, value=value
        )
    return value


def find_run(store: Any, ref: str) -> Any:
    """The run named ``ref`` (id or name); InvalidArgument if empty, NotFound if unknown."""
    if not ref:
        raise InvalidArgument("MISSING_RUN", "name a run by id or name")
    try:
        return store.get_run(ref)
    except KeyError:
        raise NotFound("UNKNOWN_RUN", f"no run with id or name {ref!r}", run=ref) from None


class TraceServicer(trace_pb2_grpc.TraceServiceServicer):
    """svasim.trace.v1.TraceService, reading the store."""

    def __init__(self, store: Any, recorder: Any) -> None:
        self.store = store
        self.recorder = recorder

    def _run(self, ref: str) -> Any:
        return find_run(self.store, ref)

    @staticmethod
    def run_pb(r: Any) -> trace_pb2.Run:
        return trace_pb2.Run(
            id=r.id,
            name=r.name,
            create_time=r.created_at.isoformat() if r.created_at else "",
            policy=r.policy,
            seed=r.seed,
            version=r.version,
            config_json=json.dumps(r.config, sort_keys=True),
            event_count=getattr(r, "event_count", 0) or 0,
        )

    @rpc
    def ListRuns(self, request: trace_pb2.ListRunsRequest, context: grpc.ServicerContext) -> trace_pb2.ListRunsResponse:
        return trace_pb2.ListRunsResponse(runs=[self.run_pb(r) for r in self.store.list_runs()])

    @rpc
    def GetRun(self, request: trace_pb2.GetRunRequest, context: grpc.ServicerContext) -> trace_pb2.GetRunResponse:
        return trace_pb2.GetRunResponse(run=self.run_pb(self._run(request.run)))

    @rpc
    def ListEvents(
        self, request: trace_pb2.ListEventsRequest, context: grpc.ServicerContext
    ) -> trace_pb2.ListEventsResponse:
        run = self._run(request.run)
        size = request.page_size or 100
        if size < 0 or size > 1000:
            raise InvalidArgument("BAD_PAGE_SIZE", f"page_size must be 1..1000, got {size}")
        check_seq("from_seq", request.from_seq)
        check_seq("to_seq", request.to_seq)
        key = _filters_key(request)
        after = decode_page_token(request.page_token, key) if request.page_token else max(0, request.from_seq - 1)
        rows = self.store.events(
            run.id,
            after_seq=after,
            until_seq=request.to_seq or None,
            entity_prefix=request.entity_prefix or None,
            kind_prefix=request.kind_prefix or None,
            service=request.service or None,
            limit=size + 1,
        )
        more = len(rows) > size
        rows = rows[:size]
        events = [self.event_pb(e) for e in rows]
        token = encode_page_token(rows[-1].seq, key) if more and rows else ""
        return trace_pb2.ListEventsResponse(events=events, next_page_token=token)

    @rpc
    def GetState(self, request: trace_pb2.GetStateRequest, context: grpc.ServicerContext) -> trace_pb2.GetStateResponse:
        run = self._run(request.run)
        last = self.store.last_seq(run.id)
        at = check_seq("at_seq", request.at_seq) or last
        if at > last:
            raise OutOfRange(
                "SEQ_PAST_END", f"at_seq {at} is past the last event of run {run.id} ({last})", at_seq=at, last=last
            )
        state = self.store.state_at(run.id, at)
        ents = [
            trace_pb2.EntityState(entity=name, fields_json=json.dumps(fields, sort_keys=True))
            for name, fields in state.items()
            if not request.entity_prefix or name.startswith(request.entity_prefix)
        ]
        return trace_pb2.GetStateResponse(entities=ents, at_seq=at)

    @staticmethod
    def event_pb(e: Any) -> trace_pb2.Event:
        """A stored event as a message."""
        return trace_pb2.Event(
            seq=e.seq,
            service=e.service,
            entity=e.entity,
            kind=e.kind,
            before_json=json.dumps(e.before, sort_keys=True),
            after_json=json.dumps(e.after, sort_keys=True),
            cause=e.cause or 0,
            cycles=e.cycles,
            detail_json=json.dumps(e.detail, sort_keys=True),
        )

    #: How often a follower polls the store for new events (seconds).
    follow_interval = 0.05

    @rpc_stream
    def FollowEvents(
        self, request: trace_pb2.FollowEventsRequest, context: grpc.ServicerContext
    ) -> Iterator[trace_pb2.FollowEventsResponse]:
        run = self._run(request.run)
        check_seq("from_seq", request.from_seq)
        for rows in self.store.follow(
            run.id,
            after_seq=request.from_seq - 1 if request.from_seq else run.event_count,
            kind_prefix=request.kind_prefix or None,
            entity_prefix=request.entity_prefix or None,
            poll=self.follow_interval,
            active=context.is_active,
        ):
            if rows:
                yield trace_pb2.FollowEventsResponse(events=[self.event_pb(e) for e in rows])

    @rpc
    def Flush(self, request: trace_pb2.FlushRequest, context: grpc.ServicerContext) -> trace_pb2.FlushResponse:
        if self.recorder is None:
            raise FailedPrecondition("NO_RECORDER", "this process records nothing")
        self.recorder.flush()
        return trace_pb2.FlushResponse(committed=self.recorder.stats().get("committed", 0))


class TraceAdminServicer(trace_pb2_grpc.TraceAdminServiceServicer):
    """svasim.trace.v1.TraceAdminService: what changes the record (peer listener)."""

    def __init__(self, store: Any, recorder: Any) -> None:
        self.store = store
        self.recorder = recorder

    @rpc
    def DeleteRun(
        self, request: trace_pb2.DeleteRunRequest, context: grpc.ServicerContext
    ) -> trace_pb2.DeleteRunResponse:
        run = find_run(self.store, request.run)
        if self.recorder is not None and getattr(self.recorder, "run_id", None) == run.id:
            raise FailedPrecondition(
                "RUN_IS_LIVE", f"run {run.id} is the one this fabric is recording into; stop the fabric first"
            )
        self.store.delete_run(run.id)
        return trace_pb2.DeleteRunResponse(events_deleted=run.event_count)
