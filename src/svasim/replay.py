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

import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from google.protobuf import message_factory
from google.protobuf.json_format import ParseDict

from svasim import __version__
from svasim.accel.v1 import accel_pb2
from svasim.config import ALL_SERVICES, FabricConfig
from svasim.cpu.v1 import cpu_pb2
from svasim.iommu.v1 import iommu_pb2
from svasim.model.costs import CostTable
from svasim.model.transition import INPUT_KIND, Transition
from svasim.server import build_cores
from svasim.rpc.servicers import AccelServicer, CpuServicer, HostMemoryServicer, IommuServicer
from svasim.store import EventRow, RunInfo, Store

#: Fields compared between a recorded event and its replay.
COMPARED = ("service", "entity", "kind", "before", "after", "cause", "cycles", "detail")


class MemoryRecorder:
    """A recorder that keeps transitions in memory, numbering them as they arrive."""

    def __init__(self) -> None:
        self.transitions: list[Transition] = []

    def append(self, transitions: list[Transition]) -> None:
        for t in transitions:
            t.seq = len(self.transitions) + 1
            self.transitions.append(t)

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


class ReplayContext:
    """What a servicer needs of grpc.ServicerContext, for a client request replayed."""

    def invocation_metadata(self) -> tuple[()]:
        return ()

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
    )
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

    def feed(self, method: str, request: dict[str, Any]) -> None:
        """Execute one recorded input (a refusal is part of the run, not an error)."""
        entry = REQUESTS.get(method)
        if entry is None:
            raise ValueError(f"the run has an input for {method!r}, which this version of svasim does not know")
        key, cls = entry
        msg = ParseDict(request, cls())
        handler = getattr(self.servicers[key], method.split(".", 1)[1])
        try:
            handler(msg, ReplayContext())
        except _Aborted:
            pass


def inputs(events: Iterable[EventRow]) -> Iterator[EventRow]:
    """The inputs among ``events``."""
    return (e for e in events if e.kind == INPUT_KIND)


def _norm(value: Any) -> Any:
    # What the store gives back: JSON types (tuples become lists).
    return None if value is None else json.loads(json.dumps(value))


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
        return "\n".join(lines)


@dataclass
class ReplayReport:
    """What a verification found."""

    run_id: str
    inputs: int
    events: int
    seconds: float
    difference: Difference | None = None

    @property
    def ok(self) -> bool:
        """The replay made exactly the recorded transitions."""
        return self.difference is None


def verify_events(run: RunInfo, events: list[EventRow]) -> ReplayReport:
    """Re-execute the inputs of ``events`` (a whole run, in seq order) and compare."""
    config, costs = config_of(run)
    recorder = MemoryRecorder()
    fabric = Fabric(config, costs, recorder, run.id)
    started = time.perf_counter()
    n_inputs = 0
    for e in inputs(events):
        n_inputs += 1
        after = e.after or {}
        fabric.feed(str(after.get("method")), after.get("request") or {})
    seconds = time.perf_counter() - started
    replayed = recorder.transitions
    last_input = (0, "")
    for i in range(max(len(events), len(replayed))):
        rec = events[i] if i < len(events) else None
        rep = replayed[i] if i < len(replayed) else None
        if rec is not None and rec.kind == INPUT_KIND:
            last_input = (rec.seq, str((rec.after or {}).get("method")))
        a = _side(rec) if rec is not None else None
        b = _side(rep) if rep is not None else None
        if a is None or b is None or a != b:
            diff = [] if a is None or b is None else [k for k in ("seq", *COMPARED) if a[k] != b[k]]
            return ReplayReport(
                run.id, n_inputs, len(events), seconds, Difference(i + 1, a, b, last_input[0], last_input[1], diff)
            )
    return ReplayReport(run.id, n_inputs, len(events), seconds)


def verify(store: Store, run_ref: str) -> ReplayReport:
    """Replay a stored run and compare it with its record."""
    run = store.get_run(run_ref)
    return verify_events(run, store.events(run.id, limit=None))


def what_if(
    store: Store,
    run_ref: str,
    *,
    policy: str | None = None,
    cpus: int | None = None,
    costs: CostTable | None = None,
    early_free: bool | None = None,
    name: str | None = None,
) -> RunInfo:
    """Replay a run's inputs under other settings; record it as a new run linked to it."""
    from svasim.server import run_config
    from svasim.store import Recorder

    run = store.get_run(run_ref)
    config, table = config_of(run, policy=policy, cpus=cpus, costs=costs, early_free=early_free)
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
        for e in inputs(store.events(run.id, kind=INPUT_KIND, limit=None)):
            after = e.after or {}
            fabric.feed(str(after.get("method")), after.get("request") or {})
    finally:
        recorder.close()
    return store.get_run(new.id)
