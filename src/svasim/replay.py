"""Replay by re-execution: a run's inputs fed, in recorded order, to a fresh fabric.

``verify`` checks determinism: the transitions the fresh fabric makes must be the
recorded ones, field for field, in the same order; the first difference is reported
with both sides and the input that led to it (as Temporal rejects a history its code
no longer produces). ``what_if`` feeds the same inputs to a fabric with another policy,
cost table or size and records the result as a new run linked to the original.

Inputs are the client requests recorded with their bodies (``kind == "input"``, after
``{"method": "cpu.Enqcmd", "request": {...}}``). Each is decoded into its request
message and handed to the same servicer a gRPC call would reach, in-process.
"""

from __future__ import annotations

import base64
import binascii
import functools
import gc
import json
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message_factory
from google.protobuf.descriptor import FieldDescriptor
from google.protobuf.json_format import ParseDict, ParseError

from svasim import __version__
from svasim.config import ALL_SERVICES, FabricConfig
from svasim.model import explorer
from svasim.model.costs import CostTable
from svasim.model.memory import DEFAULT_MEMORY_SIZE
from svasim.model.transition import INPUT_KIND, Transition
from svasim.recovery import is_lifecycle, is_split_run, verify_split
from svasim.rpc.accel import AccelServicer
from svasim.rpc.common import REQUEST_ID_KEY
from svasim.rpc.cpu import CpuServicer, HostMemoryServicer
from svasim.rpc.iommu import IommuServicer
from svasim.server import build_cores
from svasim.store import EventRow, RunInfo, Store
from svasim_api.accel.v1 import accel_pb2
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.iommu.v1 import iommu_pb2

#: ``kind`` of the event that records a refused client request.
REJECTED_KIND = "request.rejected"

#: Fields compared between a recorded event and its replay.
COMPARED = ("service", "entity", "kind", "before", "after", "cause", "cycles", "detail")


class MemoryRecorder:
    """A recorder that keeps transitions in memory, numbering them as they arrive.

    ``seqs`` are the seqs to hand out in order (those of the recorded events a replay is
    compared with, which skip the record's lifecycle events); past them, or without them,
    numbering goes on from the last one.
    """

    def __init__(self, seqs: list[int] | None = None) -> None:
        self.transitions: list[Transition] = []
        self._seqs = seqs or []

    def append(self, transitions: list[Transition]) -> None:
        out, seqs = self.transitions, self._seqs
        for t in transitions:
            n = len(out)
            if n < len(seqs):
                t.seq = seqs[n]
            else:
                t.seq = (out[-1].seq or 0) + 1 if out else 1
            out.append(t)

    def flush(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def stats(self) -> dict[str, int]:
        """Counts, like the store-backed recorder's."""
        return {"appended": len(self.transitions), "committed": len(self.transitions)}

    def close(self) -> None:
        """Nothing to close."""


class _Aborted(Exception):
    """A servicer refused the request (it was refused when recorded, too)."""


class ReplayInputError(ValueError):
    """A recorded input this version of svasim cannot decode or execute."""


#: ``progress(inputs fed, inputs in all)``, called as a replay goes.
Progress = Callable[[int, int], None]


class ReplayContext:
    """What a servicer needs of grpc.ServicerContext, for a client request replayed.

    A request recorded with a client's request id gets it back as metadata, so that its
    input event is made again as recorded.
    """

    def __init__(self, request_id: str | None = None, recorded_request: dict[str, Any] | None = None) -> None:
        self._metadata: tuple[tuple[str, str], ...] = ((REQUEST_ID_KEY, request_id),) if request_id is not None else ()
        #: The request as its input recorded it, recorded again as is (not re-encoded
        #: from the message decoded from it).
        self.recorded_request = recorded_request

    def invocation_metadata(self) -> tuple[tuple[str, str], ...]:
        return self._metadata

    def time_remaining(self) -> None:
        return None

    def abort_with_status(self, status: Any) -> None:
        raise _Aborted(status)

    def abort(self, code: Any, details: str) -> None:
        raise _Aborted(details)

    def set_trailing_metadata(self, metadata: Any) -> None:
        """Trailing metadata only matters between peers."""


def _request_classes() -> dict[str, tuple[str, Any]]:
    """Input method name -> (servicer key, request message class)."""
    out: dict[str, tuple[str, Any]] = {}
    for prefix, module, service, key in (
        ("cpu", cpu_pb2, "CpuService", "cpu"),
        ("cpu", cpu_pb2, "HostMemoryService", "host"),
        ("iommu", iommu_pb2, "IommuService", "iommu"),
        ("accel", accel_pb2, "AccelService", "accel"),
    ):
        for m in module.DESCRIPTOR.services_by_name[service].methods:
            out[f"{prefix}.{m.name}"] = (key, message_factory.GetMessageClass(m.input_type))
    return out


REQUESTS = _request_classes()

_F = FieldDescriptor
_INTEGER_TYPES = frozenset(
    {
        _F.TYPE_INT32, _F.TYPE_INT64, _F.TYPE_UINT32, _F.TYPE_UINT64, _F.TYPE_SINT32, _F.TYPE_SINT64,
        _F.TYPE_FIXED32, _F.TYPE_FIXED64, _F.TYPE_SFIXED32, _F.TYPE_SFIXED64,
    }
)  # fmt: skip


def _scalar_decoder(field: FieldDescriptor) -> Callable[[Any], Any] | None:
    """How a recorded JSON value of a singular scalar field becomes the field's value
    (as ``MessageToDict`` wrote it); None for a field ``ParseDict`` must handle."""
    if field.message_type is not None or field.is_repeated:
        return None
    t = field.type
    if t in _INTEGER_TYPES:
        # 64-bit integers are recorded as strings; a float or a bool is not an integer.
        return lambda v: int(v) if type(v) in (int, str) else _no(v)
    if t == _F.TYPE_BOOL:
        return lambda v: v if type(v) is bool else _no(v)
    if t == _F.TYPE_STRING:
        return lambda v: v if type(v) is str else _no(v)
    if t == _F.TYPE_BYTES:
        return lambda v: base64.b64decode(v, validate=True) if type(v) is str else _no(v)
    if t == _F.TYPE_ENUM and field.enum_type is not None:
        by_name = {value.name: value.number for value in field.enum_type.values}
        return lambda v: by_name[v] if type(v) is str else v if type(v) is int else _no(v)
    return None


def _no(value: Any) -> Any:
    raise TypeError(f"unexpected {type(value).__name__}")


@functools.cache
def _decoders(cls: Any) -> dict[str, Callable[[Any], Any] | None]:
    return {f.name: _scalar_decoder(f) for f in cls.DESCRIPTOR.fields}


def decode_request(cls: Any, request: dict[str, Any]) -> Any | None:
    """``request`` (recorded by ``MessageToDict`` with proto field names) as a ``cls``
    message, built directly when every field in it is a singular scalar; None when it is
    not (nested, repeated or unknown fields, or a value that does not convert), for
    ``ParseDict`` to decode or to explain why it cannot.

    ``ParseDict`` is general, and on replay the dearest step outside the model.
    """
    decoders = _decoders(cls)
    values: dict[str, Any] = {}
    try:
        for name, value in request.items():
            decode = decoders.get(name)
            if decode is None:
                return None
            values[name] = decode(value)
        return cls(**values)
    except (TypeError, ValueError, KeyError, binascii.Error):
        return None


def config_of(run: RunInfo, **overrides: Any) -> tuple[FabricConfig, CostTable]:
    """The fabric configuration a run was recorded with, with overrides applied."""
    cfg = run.config or {}
    config = FabricConfig(
        services=ALL_SERVICES,
        cpus=int(overrides.get("cpus") or cfg.get("cpus", 4)),
        policy=str(overrides.get("policy") or run.policy),
        early_free=overrides["early_free"] if overrides.get("early_free") is not None else cfg.get("early_free"),
        seed=run.seed,
        durability="batch",
        memory=int(cfg.get("memory", DEFAULT_MEMORY_SIZE)),
    )
    # The accelerator's shape (engines and groups per device) as the run was recorded.
    devices = cfg.get("devices") or [{}]
    config.engines = int(devices[0].get("engines", config.engines))
    config.groups = int(devices[0].get("groups", config.groups))
    config.wqs = len(devices[0].get("wqs") or [None] * config.wqs)
    # How the devices run, their event log and the IOMMU's PRQ (absent from runs recorded
    # before they were settings: the defaults then).
    config.auto_run = bool(devices[0].get("auto_run", config.auto_run))
    config.async_page_requests = bool(devices[0].get("async_page_requests", config.async_page_requests))
    config.evl = bool(devices[0].get("evl_support", int(config.evl)))
    config.evl_size = int(devices[0].get("evl_size") or config.evl_size)
    config.prq_entries = int((cfg.get("iommu") or {}).get("prq_entries", config.prq_entries))
    costs = overrides.get("costs") or CostTable.from_mapping(cfg.get("costs", {}))
    return config, costs


class Fabric:
    """All services in-process, behind their servicers, recording into ``recorder``."""

    def __init__(self, config: FabricConfig, costs: CostTable, recorder: Any, run_id: str = "") -> None:
        self.cores, _ = build_cores(config, costs, recorder)
        self.servicers = {
            "cpu": CpuServicer(self.cores["cpu"], run_id),
            "host": HostMemoryServicer(self.cores["cpu"]),
            "iommu": IommuServicer(self.cores["iommu"]),
            "accel": AccelServicer(self.cores["accel"]),
        }
        #: Each input method's handler, looked up once.
        self._handlers: dict[str, Callable[[Any, Any], Any]] = {}

    def feed(self, method: str, request: dict[str, Any], request_id: str | None = None) -> bool:
        """Execute one recorded input; False if the fabric refused it (a refusal is part
        of a run, not an error). :class:`ReplayInputError` if it cannot be decoded."""
        entry = REQUESTS.get(method)
        if entry is None:
            raise ReplayInputError(f"an input for {method!r}, which this version of svasim does not know")
        key, cls = entry
        msg = decode_request(cls, request)
        if msg is None:
            try:
                msg = ParseDict(request, cls())
            except (ParseError, TypeError, ValueError) as e:
                raise ReplayInputError(f"a {method} request that does not decode: {e}") from None
        handler = self._handlers.get(method)
        if handler is None:
            handler = self._handlers[method] = getattr(self.servicers[key], method.split(".", 1)[1])
        try:
            handler(msg, ReplayContext(request_id, request))
        except _Aborted:
            return False
        return True

    def feed_all(self, run: RunInfo, recorded: list[EventRow], progress: Progress | None = None) -> tuple[int, int]:
        """Execute the inputs among ``recorded`` in order; return (inputs, refused).

        Raises :class:`ReplayInputError` naming the run and the seq of an input that
        cannot be decoded.
        """
        fed = [e for e in recorded if e.kind == INPUT_KIND]
        if "cpu" in self.cores:
            # A native program's memory is not re-executed: its walks, reads and faults
            # are answered from what the record says they saw.
            from svasim.native.tape import Tape

            self.cores["cpu"].kernel.native_factory = Tape(recorded).factory
        refused = 0
        # The record and the fabric live to the end of the replay: frozen, the cyclic
        # collector does not walk them again at each of its full collections.
        gc.freeze()
        try:
            for n, e in enumerate(fed, start=1):
                after = e.after if isinstance(e.after, dict) else {}
                request = after.get("request") or {}
                if not isinstance(request, dict):
                    raise ReplayInputError(f"run {run.id}, seq {e.seq}: the recorded request is not an object")
                try:
                    rid = after.get("request_id")
                    refused += not self.feed(str(after.get("method")), request, rid if isinstance(rid, str) else None)
                except ReplayInputError as err:
                    raise ReplayInputError(f"run {run.id}, seq {e.seq}: {err}") from None
                if progress is not None and n % 64 == 0:
                    progress(n, len(fed))
        finally:
            gc.unfreeze()
        return len(fed), refused


def inputs(events: Iterable[EventRow]) -> Iterator[EventRow]:
    """The inputs among ``events``."""
    return (e for e in events if e.kind == INPUT_KIND)


def _norm(value: Any) -> Any:
    # What the store gives back: JSON types (tuples become lists).
    return None if value is None else json.loads(json.dumps(value))


def _same(rec: EventRow, rep: Transition) -> bool:
    """Whether a replayed transition is its recorded event, field for field, without
    normalising (the common case; a tuple where the record has a list, say, is left to
    the normalising comparison of :func:`_side`)."""
    return (
        rec.seq == rep.seq
        and rec.kind == rep.kind
        and rec.entity == rep.entity
        and rec.service == rep.service
        and rec.cycles == rep.cycles
        and rec.cause == rep.cause_seq()
        and rec.after == rep.after
        and rec.before == rep.before
        and rec.detail == rep.detail
    )


def _side(e: Any) -> dict[str, Any]:
    if isinstance(e, Transition):
        d = e.as_dict()
        return {k: _norm(d[k]) if k in ("before", "after", "detail") else d[k] for k in ("seq", *COMPARED)}
    d = e.as_dict()
    return {k: d[k] for k in ("seq", *COMPARED)}


@dataclass
class Difference:
    """The first place where a replay departs from the record."""

    seq: int
    recorded: dict[str, Any] | None
    replayed: dict[str, Any] | None
    input_seq: int
    input_method: str
    fields: list[str] = field(default_factory=list)
    #: Why, where the comparison alone does not say (a split run's verification).
    why: str | None = None

    def describe(self) -> str:
        """A paragraph a person can act on."""
        lines = [
            f"replay departs from the record at seq {self.seq} (after input {self.input_seq}: {self.input_method})"
        ]
        if self.recorded is None:
            lines.append("  recorded: (the run ends here)")
        else:
            lines.append(f"  recorded: {json.dumps(self.recorded, sort_keys=True)}")
        if self.replayed is None:
            lines.append("  replayed: (the replay ends here)")
        else:
            lines.append(f"  replayed: {json.dumps(self.replayed, sort_keys=True)}")
        if self.fields:
            lines.append(f"  fields that differ: {', '.join(self.fields)}")
        if self.why:
            lines.append(f"  why: {self.why}")
        return "\n".join(lines)


@dataclass
class ReplayReport:
    """What a verification found."""

    run_id: str
    inputs: int
    events: int
    seconds: float
    difference: Difference | None = None
    #: Restarts of split-fabric members in the record, whose failures and rebuilds
    #: re-execution takes from it (0 for a run of one process).
    restarts: int = 0

    @property
    def ok(self) -> bool:
        """The replay made exactly the recorded transitions."""
        return self.difference is None


def verify_events(run: RunInfo, events: list[EventRow], *, progress: Progress | None = None) -> ReplayReport:
    """Re-execute the inputs of ``events`` (a whole run, in seq order) and compare.

    The record's lifecycle events (a service's restart) are not transitions of the model:
    they are left out of the comparison, and the replayed transitions take the seqs of the
    recorded ones they are compared with.
    """
    events = [e for e in events if not is_lifecycle(e)]
    recorder = MemoryRecorder([e.seq for e in events])
    started = time.perf_counter()
    if explorer.is_explorer_run(run.config):
        # An interleaving of the explorer has no client requests: its one input is the
        # interleaving its configuration names, explored again on the model.
        try:
            recorder.append(explorer.rerun(run.config).transitions)
        except ValueError as e:
            raise ReplayInputError(f"run {run.id}: {e}") from None
        n_inputs = 1
    else:
        config, costs = config_of(run)
        fabric = Fabric(config, costs, recorder, run.id)
        n_inputs, _ = fabric.feed_all(run, events, progress)
    seconds = time.perf_counter() - started
    replayed = recorder.transitions
    last_input = (0, "")
    for i in range(max(len(events), len(replayed))):
        rec = events[i] if i < len(events) else None
        rep = replayed[i] if i < len(replayed) else None
        if rec is not None and rec.kind == INPUT_KIND:
            last_input = (rec.seq, str((rec.after or {}).get("method")))
        if rec is not None and rep is not None and _same(rec, rep):
            continue
        a = _side(rec) if rec is not None else None
        b = _side(rep) if rep is not None else None
        if a is None or b is None or a != b:
            diff = [] if a is None or b is None else [k for k in ("seq", *COMPARED) if a[k] != b[k]]
            return ReplayReport(
                run.id,
                n_inputs,
                len(events),
                seconds,
                # The seq where they part: the record's (lifecycle events left out of the
                # comparison still hold their seqs), or past its end the replay's.
                Difference(
                    rec.seq if rec is not None else (rep.seq if rep is not None and rep.seq else i + 1),
                    a,
                    b,
                    last_input[0],
                    last_input[1],
                    diff,
                ),
            )
    return ReplayReport(run.id, n_inputs, len(events), seconds)


def verify(store: Store, run_ref: str, *, progress: Progress | None = None) -> ReplayReport:
    """Replay a stored run and compare it with its record."""
    run = store.get_run(run_ref)
    events = store.events(run.id, limit=None)
    if is_split_run(events):
        return _verify_split(store, run, events, progress)
    return verify_events(run, events, progress=progress)


def _verify_split(store: Store, run: RunInfo, events: list[EventRow], progress: Progress | None) -> ReplayReport:
    """A split fabric's run, its members' failures and restarts taken from the record
    (:func:`svasim.recovery.verify_split`), reported as :func:`verify_events` reports."""
    verdict = verify_split(store, run, events, progress)
    counted = [e for e in events if not is_lifecycle(e)]
    report = ReplayReport(run.id, verdict.inputs, len(counted), verdict.seconds, restarts=verdict.restarts)
    if verdict.why is not None:
        rec, made, last = verdict.recorded, verdict.made, verdict.input
        a = _side(rec) if rec is not None else None
        b = _side(made) if made is not None else None
        diff = [] if a is None or b is None else [k for k in ("seq", *COMPARED) if a[k] != b[k]]
        seq = rec.seq if rec is not None else (made.seq or 0) if made is not None else 0
        report.difference = Difference(
            seq,
            a,
            b,
            last.seq if last is not None else 0,
            str((last.after or {}).get("method")) if last is not None else "",
            diff,
            # The two sides say it, where there are two.
            why=verdict.why if a is None or b is None else None,
        )
    return report


@dataclass
class WhatIf:
    """A what-if replay: the run it recorded, and how many inputs the new fabric refused."""

    run: RunInfo
    inputs: int
    #: Inputs refused by the what-if fabric beyond those refused in the original run
    #: (a fabric with fewer CPUs refuses to schedule on the missing ones, say).
    refused: int


def what_if(
    store: Store,
    run_ref: str,
    *,
    policy: str | None = None,
    cpus: int | None = None,
    costs: CostTable | None = None,
    early_free: bool | None = None,
    name: str | None = None,
    progress: Progress | None = None,
) -> WhatIf:
    """Replay a run's inputs under other settings; record it as a new run linked to it.

    Raises :class:`ReplayInputError` (and records nothing) if an input cannot be decoded.
    """
    from svasim.server import run_config
    from svasim.store import Recorder

    run = store.get_run(run_ref)
    config, table = config_of(run, policy=policy, cpus=cpus, costs=costs, early_free=early_free)
    recorded = store.events(run.id, kind=INPUT_KIND, limit=None)
    refused_before = len(store.events(run.id, kind=REJECTED_KIND, limit=None))
    new = store.create_run(
        name=name,
        config=run_config(config, table),
        policy=config.policy,
        seed=run.seed,
        version=__version__,
        parent_run_id=run.id,
    )
    recorder = Recorder(store, new.id, durability="batch")
    try:
        fabric = Fabric(config, table, recorder, new.id)
        n_inputs, refused = fabric.feed_all(run, recorded, progress)
    except BaseException:
        recorder.close()
        store.delete_run(new.id)
        raise
    recorder.close()
    return WhatIf(store.get_run(new.id), n_inputs, max(0, refused - refused_before))
