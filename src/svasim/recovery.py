"""Resuming a run: a process started on a run that has events rebuilds its state from them.

Three ways, by what the process hosts (the README's "Record, inspect, replay" says which
state each rebuilds and why):

- **The whole fabric in one process** (``svasim up --run NAME``) rebuilds by deterministic
  re-execution: the recorded inputs are fed, in seq order, to fresh cores, and every
  transition they make is checked against the recorded one at the same seq (the first
  difference refuses the resume, naming both sides). Folding alone cannot rebuild the
  kernel: memory contents are recorded only by digest (``mem.write``, ``dma.write``), and
  the kernel's page tables and tasks have no import from the fold.
- **An iommu or accel member of a split fabric** (``svasim serve --services iommu --run
  NAME``) rebuilds by fold (:func:`rebuild_by_fold`): the store's latest snapshot at or
  before the run's last event, the events after it folded on top (``Store.state_at``),
  and the entities of its part of the fabric set into fresh models. The oracle of
  ``tests/oracle`` proves that these folds are the models' whole state, with one
  exception: a descriptor queued in a WQ is folded as its opcode and PASID, not its 64
  bytes. Those bytes are taken from the record too: the cpu input whose ENQCMD,
  MOVDIR64B or ENQCMDS submitted it (the last cpu input before its ``wq.accept``),
  with the PASID the device queued it with. The rebuilt state is then checked: the
  models' export (:mod:`svasim.model.state`) must equal the fold, entity by entity, or
  the resume is refused.
- **A cpu member** rebuilds by re-execution (:func:`rebuild_cpu`): its memory contents
  are folded only as digests. Its inputs are fed to a scratch fabric whose iommu and
  accel must make what the record shows the live ones made, transition for transition;
  a request the record shows refused because a peer failed fails again where the record
  shows it failing, and a peer that restarted is set again from the fold (see
  :class:`_Reexecution`). The kernel's export is then checked against the fold of the
  cpu's part, and the kernel goes live behind the member's own ports.

The same re-execution, over the whole record, is how ``svasim replay`` verifies a split
fabric's run whose members were killed and restarted (:func:`verify_split`): the
failures come from the record, everything else must come out again exactly. A
restarted iommu member first makes its devices drop the translations they cache
(:func:`flush_device_tlbs`): an invalidation its previous incarnation began may not have
reached them.

A run whose last client request was cut short (the process was killed while serving it)
ends in the middle of that request's transitions; re-execution makes the rest, and they
are recorded as the completion of that request: its input was recorded, so it happened
(the client that never got its answer may find it by its ``svasim-request-id``). A
member rebuilt by fold has no such tail: every transition it made for a peer was
committed before it answered, so what a peer saw of it is in the record; what it made
and did not commit, no peer saw.

Every start is recorded, once everything else is, as one ``service.start`` event per
hosted model service (entity ``service/<name>``, with the incarnation, the svasim
version, the services of the process, how its state was rebuilt and the seq it resumed
after; 0 on a new run). These events are not transitions of the model: a replay skips
them (:data:`LIFECYCLE_KINDS`). The peers of a restarted member read them to decide
whether to reconcile with its new incarnation (:mod:`svasim.wiring.incarnation`).
"""

from __future__ import annotations

import copy
import heapq
import json
import time
import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from svasim import __version__
from svasim.config import MODEL_SERVICES
from svasim.model.accel import Accel, QueuedDesc
from svasim.model.errors import SimError
from svasim.model.events import Event
from svasim.model.evl import EvlEntry
from svasim.model.iommu import Iommu, IommuDevice, PasidEntry
from svasim.model.memory import PAGE_SHIFT
from svasim.model.state import State, accel_state, iommu_state, part_of
from svasim.model.transition import INPUT_KIND, Transition
from svasim.store import EventRow, RunInfo, Store, fold
from svasim_api import idxd

#: Kinds of the events that record a process's life (its starts, and what a restart put
#: back of a descriptor cut short), not a change a model made: replay skips them.
LIFECYCLE_KINDS = frozenset({"service.start", "restart.rollback", "restart.reset"})
#: Fields of a transition that re-execution must reproduce exactly.
COMPARED = ("service", "entity", "kind", "before", "after", "cause", "cycles", "detail")
#: Settings of a run that decide what re-execution computes.
MODEL_SETTINGS = ("cpus", "memory", "policy", "early_free", "costs", "devices", "iommu")


class ResumeRefused(RuntimeError):
    """The run cannot be resumed by this process; the message says why and what to do."""


def new_run_hint(run: RunInfo, who: str = "") -> str:
    """The advice that ends every refusal."""
    return f"start a new run with --run NEWNAME{who} (run {run.name} stays as it is, for replay and inspection)"


def is_lifecycle(event: Any) -> bool:
    """Whether ``event`` records a process's start rather than a model transition."""
    return event.kind in LIFECYCLE_KINDS


def _norm(value: Any) -> Any:
    # What the store gives back: JSON types (tuples become lists).
    return None if value is None else json.loads(json.dumps(value))


def _fields(t: Transition | EventRow) -> dict[str, Any]:
    if isinstance(t, Transition):
        return {
            "service": t.service,
            "entity": t.entity,
            "kind": t.kind,
            "before": _norm(t.before),
            "after": _norm(t.after),
            "cause": t.cause_seq(),
            "cycles": t.cycles,
            "detail": _norm(t.detail),
        }
    return {k: getattr(t, k) for k in COMPARED}


class Divergence(ResumeRefused):
    """Re-execution made a transition other than the recorded one."""


class CheckingRecorder:
    """A recorder for re-execution: each transition must be the next recorded event; it
    takes that event's seq. Transitions past the end of the record are kept in ``tail``."""

    def __init__(self, run: RunInfo, events: list[EventRow]) -> None:
        self.run = run
        self.events = [e for e in events if not is_lifecycle(e)]
        self.next = 0
        self.tail: list[Transition] = []
        self.divergence: str | None = None
        self.last_input: EventRow | None = None

    def append(self, transitions: list[Transition]) -> None:
        """Check and number ``transitions``."""
        for t in transitions:
            if self.divergence is not None:
                return
            if self.next >= len(self.events):
                if t.is_input:
                    self.divergence = f"re-execution made an input at seq {self._end() + 1}, past the record"
                self.tail.append(t)
                continue
            rec = self.events[self.next]
            if rec.is_input:
                self.last_input = rec
            made, recorded = _fields(t), _fields(rec)
            if made != recorded:
                differ = [k for k in COMPARED if made[k] != recorded[k]]
                where = (
                    f" (after input {self.last_input.seq}: {self._method(self.last_input)})" if self.last_input else ""
                )
                self.divergence = (
                    f"re-execution departs from the record at seq {rec.seq}{where} in {', '.join(differ)}: "
                    f"recorded {json.dumps({k: recorded[k] for k in differ}, sort_keys=True)}, "
                    f"re-executed {json.dumps({k: made[k] for k in differ}, sort_keys=True)}"
                )
                return
            t.seq = rec.seq
            self.next += 1

    def _end(self) -> int:
        return self.events[-1].seq if self.events else 0

    @staticmethod
    def _method(e: EventRow) -> str:
        return str((e.after or {}).get("method"))

    def flush(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def close(self) -> None:
        """Nothing to close."""


@dataclass
class Resumed:
    """What a resume did."""

    run_id: str
    #: The seq of the last event recorded before this start.
    after_seq: int
    inputs: int
    #: Transitions recorded to complete a client request the previous process was serving.
    completed: list[Transition]
    seconds: float


def check_settings(run: RunInfo, recorded: dict[str, Any], current: dict[str, Any]) -> None:
    """Refuse a resume by a process whose model settings differ from the run's."""
    if run.version != __version__:
        raise ResumeRefused(
            f"cannot resume run {run.name}: it was recorded by svasim {run.version}, this is {__version__}, "
            f"and re-execution is checked only within one version; {new_run_hint(run)}"
        )
    differ = [k for k in MODEL_SETTINGS if _norm(recorded.get(k)) != _norm(current.get(k))]
    if differ:
        shown = ", ".join(f"{k} {recorded.get(k)!r} (this start: {current.get(k)!r})" for k in differ if k != "costs")
        if "costs" in differ:
            shown = ", ".join(x for x in (shown, "another cost table") if x)
        raise ResumeRefused(
            f"cannot resume run {run.name}: it was recorded with {shown}; start with the run's settings, or "
            f"{new_run_hint(run)}"
        )


def has_model_events(store: Store, run: RunInfo, service: str) -> bool:
    """Whether the run has an event of ``service`` other than its starts."""
    after = 0
    while True:
        page = store.events(run.id, service=service, after_seq=after, limit=64)
        if any(not is_lifecycle(e) for e in page):
            return True
        if len(page) < 64:
            return False
        after = page[-1].seq


#: Model services a process hosting part of a split fabric can rebuild alone, by fold.
FOLDABLE = frozenset({"iommu", "accel"})
#: The model service a process hosting part of a split fabric rebuilds by re-executing
#: its inputs (:func:`rebuild_cpu`): its memory contents are folded only as digests.
REEXECUTED = frozenset({"cpu"})


def members_to_rebuild(store: Store, run: RunInfo, services: tuple[str, ...]) -> tuple[str, ...]:
    """The services of a process hosting part of a split fabric that have state in the
    run, to be rebuilt (iommu and accel by fold, the cpu by re-execution); ResumeRefused
    if they cannot be (a cpu hosted with another model service but not all of them)."""
    model = tuple(s for s in services if s in MODEL_SERVICES)
    if not model or run.event_count == 0:
        return ()
    held = tuple(s for s in model if has_model_events(store, run, s))
    if any(s in REEXECUTED for s in held) and len(model) > 1:
        raise ResumeRefused(
            f"cannot resume run {run.name}: it has events of the cpu service, and a process hosting "
            f"{', '.join(services)} rebuilds the cpu only alone (by re-executing its inputs) or with the whole "
            f"fabric; start the cpu in a process of its own, or resume the fabric whole with svasim up --run "
            f"{run.name}, or {new_run_hint(run, ' for every process of the fabric')}"
        )
    return held


def resume(fabric: Any, store: Store, run: RunInfo, events: list[EventRow], checker: CheckingRecorder) -> Resumed:
    """Re-execute the recorded inputs of ``run`` on ``fabric`` (a :class:`svasim.replay.Fabric`
    whose cores record into ``checker``); ResumeRefused at the first difference."""
    from svasim.native.tape import Tape
    from svasim.replay import ReplayInputError

    started = time.perf_counter()
    fed = 0
    kernel = fabric.cores["cpu"].kernel
    live, kernel.native_factory = kernel.native_factory, Tape(events).factory
    for e in events:
        if e.kind != INPUT_KIND:
            continue
        after = e.after if isinstance(e.after, dict) else {}
        rid = after.get("request_id")
        try:
            fabric.feed(str(after.get("method")), after.get("request") or {}, rid if isinstance(rid, str) else None)
        except ReplayInputError as err:
            raise ResumeRefused(f"cannot resume run {run.name}: seq {e.seq}: {err}; {new_run_hint(run)}") from None
        fed += 1
        if checker.divergence is not None:
            break
    if checker.divergence is None and checker.next < len(checker.events):
        missing = checker.events[checker.next]
        checker.divergence = (
            f"the record has transitions re-execution does not make, from seq {missing.seq} "
            f"({missing.kind} of {missing.entity})"
        )
    if checker.divergence is not None:
        raise Divergence(f"cannot resume run {run.name}: {checker.divergence}; {new_run_hint(run)}")
    reattach_native(kernel, live)
    after_seq = events[-1].seq if events else 0
    return Resumed(run.id, after_seq, fed, checker.tail, time.perf_counter() - started)


def reattach_native(kernel: Any, live: Any) -> None:
    """Make ``kernel`` (rebuilt by re-execution, its native processes answered from the
    record) reach the real programs again through ``live`` (the process's own
    ``native_factory``). A program that is gone, or a fabric started without native
    processes, leaves its fabric process unreached: its next use is refused
    ``NATIVE_GONE``, as for a program that exits while the fabric runs."""
    kernel.native_factory = live
    for pid, mem in list(kernel.native_mem.items()):
        mem.close()
        del kernel.native_mem[pid]
        if live is None:
            continue
        try:
            kernel.native_mem[pid] = live(kernel.processes[pid].native_pid, pid)
        except SimError:
            pass


#: How long a restarted iommu tries to reach its devices for the device-TLB flush it owes
#: them before it serves without (seconds).
FLUSH_WAIT = 5.0


def flush_device_tlbs(core: Any, start: Transition, run: RunInfo, wait: float = FLUSH_WAIT) -> int | None:
    """A restarted iommu member's device-TLB flush (:meth:`svasim.model.iommu.Iommu.flush_device_tlbs`),
    caused by its ``service.start`` event ``start`` (committed), made before it serves;
    returns the entries dropped, or None when no device could be reached.

    A device that is down is tried again for ``wait`` seconds (a partition heals, a
    restarting device comes back), the iommu staying NOT_SERVING meanwhile; after that
    the iommu serves without the flush: a device that was down comes back from its own
    restart with its device TLB empty (:func:`devtlb_reset`). A device that answers with
    a refusal of its own refuses the start (ResumeRefused). A replay takes what the
    start caused from the record, as the start itself (:meth:`_Reexecution.peek`).
    """
    from svasim.model.journal import Journal

    deadline = time.monotonic() + wait
    while True:
        journal = Journal("iommu", core._sink, start)
        try:
            with core.lock:
                dropped = int(core.iommu.flush_device_tlbs(journal))
            break
        except SimError as e:
            if e.code not in ("UNAVAILABLE", "DEADLINE_EXCEEDED"):
                raise ResumeRefused(
                    f"cannot resume the iommu part of run {run.name}: the devices behind it must drop the "
                    f"translations they cache before it serves again, and one refused ({e.reason}: {e.message})"
                ) from None
            if time.monotonic() > deadline:
                dropped = -1
                break
            time.sleep(0.25)
    if isinstance(journal.last, Transition) and journal.last is not start:
        core.recorder.wait_durable(journal.last)
    return None if dropped < 0 else dropped


def start_events(
    services: tuple[str, ...], incarnation: str, after_seq: int, *, resumed: bool, rebuilt: str = ""
) -> list[Transition]:
    """The ``service.start`` events of a process's start (its first one too).

    ``rebuilt`` says how the state was rebuilt: ``re-execution``, ``fold``, or ``new``
    (nothing to rebuild: a new run, or no events of the service yet)."""
    how = rebuilt or ("re-execution" if resumed else "new")
    return [
        Transition(
            svc,
            f"service/{svc}",
            "service.start",
            None,
            {
                "incarnation": incarnation,
                "version": __version__,
                "services": list(services),
                "resumed_after_seq": after_seq if resumed else 0,
                "rebuilt": how,
            },
        )
        for svc in services
        if svc in MODEL_SERVICES
    ]


@dataclass(frozen=True)
class Start:
    """One recorded start of a service (a ``service.start`` event)."""

    seq: int
    service: str
    incarnation: str
    resumed_after_seq: int
    rebuilt: str


def recorded_starts(store: Store, run_id: str) -> list[Start]:
    """Every start recorded in a run, in seq order."""
    out = []
    for e in store.events(run_id, kind="service.start", limit=None):
        after = e.after or {}
        out.append(
            Start(
                e.seq,
                e.service,
                str(after.get("incarnation", "")),
                int(after.get("resumed_after_seq") or 0),
                # Starts recorded before every start was: resumes by re-execution.
                str(after.get("rebuilt") or "re-execution"),
            )
        )
    return out


def reconcile_check(store: Store, run_id: str, service: str, incarnation: str, last_seen: int) -> str:
    """Why a process that holds state of ``service`` may not go on with its new
    ``incarnation`` ("" when it may): the record must show that incarnation's start, on
    this run, with its state rebuilt from the record up to a seq that covers the last
    one this process saw from the service (``last_seen``). Everything a peer saw of a
    service was committed before the service answered, so such a start holds exactly
    what the peer relies on."""
    starts = recorded_starts(store, run_id)
    for start in starts:
        if start.service != service or start.incarnation != incarnation:
            continue
        if start.rebuilt not in ("fold", "re-execution"):
            # An empty start loses nothing when no earlier incarnation of the service
            # recorded a change in this run: whatever this process holds of it (a PASID
            # it got through another peer, say) came from the new incarnation. Its
            # earlier events can only be its earlier starts, so reading one more than
            # those tells.
            before = sum(1 for s in starts if s.service == service and s.seq < start.seq)
            earlier = store.events(run_id, service=service, until_seq=start.seq - 1, limit=before + 1)
            if any(not is_lifecycle(e) for e in earlier):
                return f"the record shows incarnation {incarnation} of the {service} service started empty"
        if start.resumed_after_seq < last_seen:
            return (
                f"incarnation {incarnation} rebuilt the {service} service's state up to seq "
                f"{start.resumed_after_seq}, and this process saw seq {last_seen} from it"
            )
        return ""
    return f"the record of run {run_id} has no start of incarnation {incarnation} of the {service} service"


# -- rebuilding a member of a split fabric by fold --------------------------------------------
#: The parts of the fabric's state (:data:`svasim.model.state.PARTS`) each service holds.
SERVICE_PARTS = {"cpu": ("kernel", "memory"), "iommu": ("iommu",), "accel": ("accel",)}


@dataclass
class Rebuilt:
    """What a rebuild by fold did."""

    run_id: str
    #: The seq of the last event folded (the run's last before this start).
    after_seq: int
    #: The snapshot it started from (0: none, folded from the first event).
    snapshot_seq: int
    #: Entities set into the models.
    entities: int
    #: Queued descriptors whose bytes came from the recorded inputs.
    descriptors: int
    seconds: float
    #: What the restart records to put back a descriptor execution the kill cut short.
    rollback: list[Transition] = field(default_factory=list)
    #: What it records of its reset (a restarted accel's device TLBs emptied).
    reset: list[Transition] = field(default_factory=list)
    #: How the state was rebuilt (the ``rebuilt`` of the ``service.start`` events).
    how: str = "fold"
    #: The rest of the client request the kill cut short, recorded before the restart
    #: (a cpu rebuilt by re-execution).
    completed: list[Transition] = field(default_factory=list)
    #: Inputs re-executed (a cpu), and the peer models rebuilt from the fold on the way.
    inputs: int = 0
    resyncs: int = 0


def part_state(state: State, services: tuple[str, ...]) -> State:
    """The entities of ``state`` that the models of ``services`` hold (empty ones left out,
    as the oracle leaves them out: events without state such as ``iotlb/7``)."""
    parts = {p for s in services for p in SERVICE_PARTS.get(s, ())}
    return {e: f for e, f in state.items() if f and part_of(e) in parts}


def exported(cores: dict[str, Any], services: tuple[str, ...]) -> State:
    """The state the models of ``services`` export, in the fold's shape."""
    out: State = {}
    if "iommu" in services:
        out.update(iommu_state(cores["iommu"].iommu))
    if "accel" in services:
        out.update(accel_state(cores["accel"].accel))
    return part_state(_norm(out), services)


def _number(text: str) -> int:
    return int(text, 0)


class NotFoldable(ValueError):
    """A piece of folded state that this svasim cannot set into a model."""


def _set(obj: Any, fields: dict[str, Any], names: dict[str, str] | None = None, skip: tuple[str, ...] = ()) -> None:
    """Set each folded field on ``obj`` (as the attribute ``names`` maps it to, else the
    same name); NotFoldable for a field the object has no attribute for."""
    for key, value in fields.items():
        if key in skip:
            continue
        attr = (names or {}).get(key, key)
        if not hasattr(obj, attr) or callable(getattr(obj, attr)):
            raise NotFoldable(f"{type(obj).__name__} has no field {key!r}")
        setattr(obj, attr, value)


def merged(boot: State, record: State) -> State:
    """The fold of a run's events onto the state its models booted with: the record's
    fold merged into the boot export, field by field (what ``fold(events, boot)`` gives,
    since no transition removes an entity the models boot with)."""
    out = {name: dict(fields) for name, fields in boot.items()}
    for name, fields in record.items():
        out.setdefault(name, {}).update(fields)
    return dict(sorted(out.items()))


def import_iommu(iommu: Iommu, state: State) -> int:
    """Set the folded IOMMU entities into a fresh :class:`Iommu`; returns how many.
    NotFoldable for state a fold cannot set (a page request in flight)."""
    n = 0
    entries: list[tuple[str, int, dict[str, Any]]] = []
    tlb: list[tuple[int, int, int, bool]] = []
    for entity, f in state.items():
        kind, _, rest = entity.partition("/")
        n += 1
        if kind == "pasid":
            pasid, mm = int(rest), int(f["mm"])
            iommu.pasid_mm[pasid] = mm
            iommu.mm_pasid[mm] = pasid
            if f.get("pgd") is not None:
                iommu.mm_pgd[mm] = int(f["pgd"])
        elif kind == "iommu_device":
            iommu.devices[rest] = IommuDevice(rest, int(f["max_pasids"]))
        elif kind == "pasid_entry":
            name, _, pasid_text = rest.rpartition("/")
            entries.append((name, int(pasid_text), f))
        elif kind == "iotlb":
            pasid_text, _, va = rest.partition("/")
            tlb.append((int(pasid_text), _number(va) >> PAGE_SHIFT, int(f["pfn"]), bool(f["writable"])))
        elif kind == "prq":
            _set(iommu, f, {k: f"prq_{k}" for k in f if k != "next_prg_index"})
        elif kind == "prq_entry":
            raise NotFoldable(f"a page request is in flight ({entity})")
        else:
            n -= 1
    for name, pasid, f in entries:
        dev = iommu.devices.get(name)
        if dev is None:
            raise NotFoldable(f"pasid_entry/{name}/{pasid} of a device the fold never probed")
        dev.pasid_dir.setdefault(pasid >> 6, {})[pasid & 0x3F] = PasidEntry(
            bool(f["present"]), int(f["pgtt"]), int(f["flptr"]), int(f["mm"])
        )
    # UNVERIFIED which order the live IOTLB had (the fold does not keep the order of the
    # fills); by PASID and page, so that a whole-PASID invalidation drops in address order.
    for pasid, vpn, pfn, writable in sorted(tlb):
        iommu.iotlb[(pasid, vpn)] = (pfn, writable)
    return n


#: WQ fields that are counters and openers of the WQ, not WQCFG.
_WQ_OWN = ("accepted", "retried", "completed", "opener", "last_end")


def import_accel(accel: Accel, state: State, descriptors: Callable[[str, int, dict[str, Any]], QueuedDesc]) -> int:
    """Set the folded accelerator entities into a fresh :class:`Accel` (its devices as
    booted); ``descriptors(device, id, fields)`` rebuilds a queued descriptor. Returns how
    many entities were set; NotFoldable for state a fold cannot set (device events
    pending, a descriptor waiting for a page group response)."""
    n = 0
    queued: list[tuple[str, int, dict[str, Any]]] = []
    tlb: list[tuple[str, int, int, int, bool]] = []
    events: list[tuple[str, dict[str, Any]]] = []
    log_entries: list[tuple[str, int, dict[str, Any]]] = []
    for entity, f in state.items():
        kind, _, rest = entity.partition("/")
        n += 1
        if kind == "device":
            dev = accel.device(rest)
            # The event log's registers are recorded with the device's (EVLSTATUS).
            evl = {k: v for k, v in f.items() if k.startswith("evl_")}
            _set(dev, {k: v for k, v in f.items() if k not in evl})
            if evl:
                _set(dev.evl, {k.removeprefix("evl_"): v for k, v in evl.items()})
        elif kind == "evl":
            name, _, index = rest.rpartition("/")
            log_entries.append((name, int(index), f))
        elif kind == "engine":
            name, _, index = rest.rpartition("/")
            dev = accel.device(name)
            dev.engines[int(index)] = int(f["busy_until"])
            if "group" in f:
                dev.engine_group[int(index)] = int(f["group"])
        elif kind == "group":
            name, _, group_id = rest.rpartition("/")
            group = next((g for g in accel.device(name).groups if g.id == int(group_id)), None)
            if group is None:
                raise NotFoldable(f"{entity} is not a group of the device as it boots")
            _set(group, f)
        elif kind == "wq":
            name, _, wq_id = rest.rpartition("/")
            wq = accel.wq(accel.device(name), int(wq_id))
            _set(wq.cfg, {k: v for k, v in f.items() if k not in (*_WQ_OWN, "clients", "occupancy")})
            _set(wq, {k: v for k, v in f.items() if k in _WQ_OWN})
            wq.clients = {int(mm): int(count) for mm, count in f.get("clients") or []}
        elif kind == "desc":
            name, _, desc_id = rest.rpartition("/")
            queued.append((name, int(desc_id), f))
        elif kind == "devtlb":
            name, pasid_text, va = rest.split("/")
            tlb.append((name, int(pasid_text), _number(va) >> PAGE_SHIFT, int(f["pfn"]), bool(f["writable"])))
        elif kind == "evq":
            events.append((rest, f))
        else:
            n -= 1
    # A WQ is first in, first out, and descriptor ids grow with acceptance.
    for dev_name, number, f in sorted(queued, key=lambda q: (q[0], q[1])):
        if f.get("state") != "queued":
            raise NotFoldable(f"desc/{dev_name}/{number} is {f.get('state')!r}, not queued")
        dev = accel.device(dev_name)
        accel.wq(dev, int(f["wq"])).queue.append(descriptors(dev_name, number, f))
    # UNVERIFIED which order the live device TLB had; by PASID and page (see import_iommu).
    for name, pasid, vpn, pfn, writable in sorted(tlb):
        accel.device(name).devtlb[(pasid, vpn)] = (pfn, writable)
    for dev_name, slot, f in log_entries:
        dev = accel.device(dev_name)
        try:
            dev.evl.entries[slot] = EvlEntry(**f)
        except TypeError as e:
            raise NotFoldable(f"evl/{dev_name}/{slot}: {e}") from None
    for name, f in events:
        # The queue's entries as recorded ([time, priority, eid, kind, args]); its clock is
        # the device's (svasim.model.events: the owner records it).
        dev = accel.device(name)
        queue = dev.events
        _set(queue, f, skip=("pending",))
        for time_, priority, eid, what, args in f.get("pending") or []:
            event = Event(int(time_), int(priority), int(eid), str(what), dict(args))
            heapq.heappush(queue._heap, (event.key, event))
        queue.now = dev.now
    return n


#: The kind of the transitions a restart records to put back what a descriptor cut short
#: by the kill had changed (see :func:`cut_short_rollback`).
ROLLBACK_KIND = "restart.rollback"


def _last_of_kind(store: Store, run: RunInfo, service: str, kind: str, until: int) -> EventRow | None:
    """The last ``kind`` event of ``service`` at or before ``until`` (looking back from the
    end in growing windows, so a long run is not read whole)."""
    window = 4096
    while True:
        after = max(0, until - window)
        rows = store.events(run.id, service=service, kind=kind, after_seq=after, until_seq=until, limit=None)
        if rows:
            return rows[-1]
        if after == 0:
            return None
        window *= 4


def cut_short_rollback(store: Store, run: RunInfo, boot: State, state: State, until: int) -> list[Transition]:
    """The transitions that put back what a descriptor whose execution the kill cut short
    had changed, so that it is queued again; [] when no execution was cut.

    A descriptor's execution is recorded as its transitions (translations, DMA, its
    completion ``desc.complete`` and ``desc.free``) and then its WQ's ``wq.dispatch``.
    A record whose last top-level ``desc.complete`` has no ``wq.dispatch`` after it ends
    inside an execution (the device commits what it made before each call to a peer):
    the fold then shows a completed descriptor still counted in its WQ, a state the
    device never is in between two calls. The peer that asked for the run never got an
    answer (the device answers only after ``wq.dispatch``), so the execution was never
    acknowledged: the device's own entities go back to what they were before it began
    (its first transition is the one caused by the descriptor's ``wq.accept``), and the
    descriptor runs again, as after a device reset and resubmission. Its DMA writes to
    host memory stay done; an operation whose result depends on the memory it already
    changed (an overlapping MEMMOVE) can come out differently (UNVERIFIED against
    hardware: what a reset DSA leaves of a half-done descriptor is not specified).

    ``boot`` is the state the device booted with; ``state`` (the fold merged onto it)
    is updated in place.
    """
    done = _last_of_kind(store, run, "accel", "desc.complete", until)
    while done is not None and (done.detail or {}).get("batch") is not None:
        # A batch's sub-descriptor: the batch itself completes after it.
        done = _last_of_kind(store, run, "accel", "desc.complete", done.seq - 1)
    if done is None:
        return []
    desc_id = int(done.entity.rsplit("/", 1)[1])
    tail = store.events(run.id, service="accel", after_seq=done.seq, until_seq=until, limit=None)
    if any(
        (e.kind == "wq.dispatch" and (e.detail or {}).get("desc") == desc_id)
        or (e.kind == "desc.requeue" and e.entity == done.entity)
        for e in tail
    ):
        # Dispatched, or put back in its WQ when a peer failed it (Accel._requeued).
        return []
    queued = store.events(run.id, entity=done.entity, kind="desc.queue", limit=None)
    if not queued or queued[-1].cause is None:
        raise ResumeRefused(
            f"cannot resume run {run.name}: the execution of {done.entity} was cut short and its queueing is "
            f"not in the record; {new_run_hint(run)}"
        )
    accept = queued[-1].cause
    since = store.events(run.id, service="accel", after_seq=queued[-1].seq, until_seq=until, limit=None)
    began = next((e.seq for e in since if e.cause == accept), done.seq)
    undone = [e for e in since if e.seq >= began and not is_lifecycle(e)]
    touched = sorted({e.entity for e in undone})
    pre = {entity: _fold_entity(store, run, entity, began - 1, boot.get(entity)) for entity in touched}
    out: list[Transition] = []
    detail = {"desc": desc_id, "from_seq": began, "until_seq": until}
    for entity in touched:
        now, was = state.get(entity), pre[entity]
        if now == was:
            continue
        if now is not None and (was is None or set(now) - set(was)):
            out.append(Transition("accel", entity, ROLLBACK_KIND, dict(now), None, cause=done.seq, detail=detail))
            now = None
        if was is not None:
            out.append(Transition("accel", entity, ROLLBACK_KIND, None, dict(was), cause=done.seq, detail=detail))
        if was is None:
            state.pop(entity, None)
        else:
            state[entity] = dict(was) if now is None else {**now, **was}
    return out


def _fold_entity(
    store: Store, run: RunInfo, entity: str, until: int, boot: dict[str, Any] | None
) -> dict[str, Any] | None:
    """One entity's fields after event ``until`` (None if it does not exist then), from
    its fields at boot."""
    folded = fold(store.events(run.id, entity=entity, until_seq=until, limit=None), {entity: boot} if boot else None)
    return folded.get(entity) or None


class _Descriptors:
    """Rebuilds a queued descriptor's 64 bytes from the record.

    The fold keeps a queued descriptor's opcode and PASID (``desc.queue``). Its bytes are
    those of the cpu input that submitted it: the last cpu input before the ``wq.accept``
    that queued it (the cpu runs one client request at a time, and its peers commit what
    they made for it before they answer, so nothing of a later request comes before its
    input; causes are no guide here, since a device that runs earlier descriptors first
    continues their chains). The command the
    device queued is then what the cpu sent: for ENQCMD the source with its PASID dword
    replaced by IA32_PASID (SDM, ENQCMD: ``COMMAND = (SRC & ~FFFFFFFFh) | IA32_PASID``);
    for MOVDIR64B the source, the PASID coming from WQCFG; for ENQCMDS the source. The
    rebuilt descriptor must carry the recorded opcode and PASID.
    """

    def __init__(self, store: Store, run: RunInfo) -> None:
        self.store = store
        self.run = run
        self.count = 0

    def _event(self, seq: int) -> EventRow:
        rows = self.store.events(self.run.id, after_seq=seq - 1, until_seq=seq, limit=1)
        if not rows:
            raise ResumeRefused(f"cannot resume run {self.run.name}: the record has no event {seq}")
        return rows[0]

    def __call__(self, device: str, desc_id: int, fields: dict[str, Any]) -> QueuedDesc:
        from svasim.rpc.cpu import descriptor_bytes

        entity = f"desc/{device}/{desc_id}"
        queued = self.store.events(self.run.id, entity=entity, kind="desc.queue", limit=None)
        if not queued or queued[-1].cause is None:
            raise self._refuse(entity, "its desc.queue event is not in the record")
        accept = self._event(queued[-1].cause)
        if accept.kind != "wq.accept":
            raise self._refuse(entity, f"its desc.queue follows a {accept.kind}, not a wq.accept")
        # The cpu serves one client request at a time and a peer commits what it made
        # before it answers, so the request that queued it is the last cpu input before.
        cursor = _last_of_kind(self.store, self.run, "cpu", INPUT_KIND, accept.seq)
        if cursor is None:
            raise self._refuse(entity, "no cpu input comes before its wq.accept")
        after = cursor.after or {}
        method = str(after.get("method"))
        msg = self._request(method, after.get("request") or {}, entity)
        pasid = int(fields["pasid"])
        if method == "cpu.EnqcmdBatch":
            # The requests of a batch run in order, each ending in enqcmd.accept or
            # enqcmd.retry; the one this descriptor was is the one running when it was queued.
            between = self.store.events(
                self.run.id, after_seq=cursor.seq, until_seq=accept.seq, service="cpu", limit=None
            )
            index = sum(e.kind in ("enqcmd.accept", "enqcmd.retry") for e in between)
            if index >= len(msg.requests):
                raise self._refuse(entity, f"its batch input {cursor.seq} has no request {index}")
            msg, method = msg.requests[index], "cpu.Enqcmd"
        if method not in ("cpu.Enqcmd", "cpu.Movdir64b", "cpu.Enqcmds"):
            raise self._refuse(entity, f"it was submitted by a {method} input, which carries no descriptor")
        src = descriptor_bytes(msg)
        command = pasid.to_bytes(4, "little") + src[4:] if method == "cpu.Enqcmd" else src
        desc = idxd.unpack_desc(command)
        if method == "cpu.Movdir64b":
            desc.pasid = pasid  # a dedicated WQ's PASID comes from WQCFG
        if desc.opcode != fields.get("opcode") or desc.pasid != pasid:
            raise self._refuse(
                entity,
                f"input {cursor.seq} gives opcode {desc.opcode} and PASID {desc.pasid}, the record "
                f"{fields.get('opcode')} and {pasid}",
            )
        self.count += 1
        cause = accept.as_transition()
        return QueuedDesc(desc_id, desc, int(fields["accepted_at"]), cause)

    def _request(self, method: str, request: dict[str, Any], entity: str) -> Any:
        from google.protobuf.json_format import ParseDict, ParseError

        from svasim.replay import REQUESTS, decode_request

        entry = REQUESTS.get(method)
        if entry is None:
            raise self._refuse(entity, f"it was submitted by an input for {method!r}, unknown to this svasim")
        msg = decode_request(entry[1], request)
        if msg is None:
            try:
                msg = ParseDict(request, entry[1]())
            except (ParseError, TypeError, ValueError) as e:
                raise self._refuse(entity, f"its {method} input does not decode: {e}") from None
        return msg

    def _refuse(self, entity: str, why: str) -> ResumeRefused:
        return ResumeRefused(
            f"cannot resume run {self.run.name}: the queued descriptor {entity} cannot be rebuilt ({why}); "
            f"{new_run_hint(self.run)}"
        )


def rebuild_by_fold(store: Store, run: RunInfo, cores: dict[str, Any], services: tuple[str, ...]) -> Rebuilt:
    """Rebuild the models of ``services`` (iommu, accel) in ``cores`` from the run's latest
    snapshot and the events after it, then check that they export exactly the fold;
    ResumeRefused (naming the first difference) if they do not. A cpu member is rebuilt
    by re-execution instead (:func:`rebuild_cpu`)."""
    if "cpu" in services:
        return rebuild_cpu(store, run, cores["cpu"])
    started = time.perf_counter()
    until = store.last_seq(run.id)
    snapshot_seq = store.latest_snapshot_seq(run.id, until)
    boot = exported(cores, services)
    state = part_state(merged(boot, store.state_at(run.id, until)), services)
    rollback = cut_short_rollback(store, run, boot, state, until) if "accel" in services else []
    reset = devtlb_reset(state) if "accel" in services else []
    descriptors = _Descriptors(store, run)
    entities = 0
    try:
        if "iommu" in services:
            entities += import_iommu(cores["iommu"].iommu, state)
        if "accel" in services:
            entities += import_accel(cores["accel"].accel, state, descriptors)
    except (KeyError, TypeError, ValueError) as e:
        raise ResumeRefused(
            f"cannot resume run {run.name}: the {', '.join(services)} state cannot be rebuilt from its fold "
            f"({e}); {new_run_hint(run)}"
        ) from None
    got = exported(cores, services)
    if got != state:
        entity = next(e for e in sorted(set(got) | set(state)) if got.get(e) != state.get(e))
        raise ResumeRefused(
            f"cannot resume run {run.name}: the state rebuilt from its record differs from the record's fold at "
            f"{entity}: folded {json.dumps(state.get(entity), sort_keys=True)}, rebuilt "
            f"{json.dumps(got.get(entity), sort_keys=True)}; {new_run_hint(run)}"
        )
    return Rebuilt(
        run.id, until, snapshot_seq, entities, descriptors.count, time.perf_counter() - started, rollback, reset=reset
    )


#: The kind of the transitions a restarted accel records for what its reset empties.
RESET_KIND = "restart.reset"


def devtlb_reset(state: State) -> list[Transition]:
    """The transitions that empty a restarted accel's device TLBs (``state``, its fold, is
    updated in place): a device comes back from a reset with its ATS translation cache
    empty, and a translation it cached may be one an invalidation cut short by a kill
    (of the iommu, or of itself in the middle of one) never reached. It refills through
    the iommu as it translates again."""
    out: list[Transition] = []
    for entity in sorted(e for e in state if e.startswith("devtlb/")):
        fields = state.pop(entity)
        out.append(Transition("accel", entity, RESET_KIND, dict(fields), None, detail={"why": "device reset"}))
    return out


def verify_run(store: Store, run_ref: str) -> str | None:
    """Re-execute a whole run (its restarts included) and compare: None if identical, else
    the first difference (a check for tests and tools, as ``svasim replay`` but skipping
    :data:`LIFECYCLE_KINDS`)."""
    from svasim.replay import Fabric, config_of

    run = store.get_run(run_ref)
    events = store.events(run.id, limit=None)
    if is_split_run(events):
        return verify_split(store, run, events).why
    config, costs = config_of(run)
    checker = CheckingRecorder(run, events)
    fabric = Fabric(config, costs, checker, run.id)
    try:
        resumed = resume(fabric, store, run, events, checker)
    except ResumeRefused as e:
        return str(e)
    if resumed.completed:
        return f"re-execution makes {len(resumed.completed)} transitions past the end of the record"
    return None


__all__ = [
    "CUT_SHORT_REASON",
    "FOLDABLE",
    "REEXECUTED",
    "LIFECYCLE_KINDS",
    "ROLLBACK_KIND",
    "CheckingRecorder",
    "Divergence",
    "NotFoldable",
    "Rebuilt",
    "ResumeRefused",
    "Resumed",
    "Start",
    "check_settings",
    "cut_short_rollback",
    "has_model_events",
    "import_accel",
    "import_iommu",
    "is_lifecycle",
    "is_split_run",
    "flush_device_tlbs",
    "devtlb_reset",
    "RESET_KIND",
    "reexecute",
    "reattach_native",
    "verify_split",
    "SplitVerdict",
    "Reexecuted",
    "members_to_rebuild",
    "rebuild_by_fold",
    "rebuild_cpu",
    "reconcile_check",
    "recorded_starts",
    "resume",
    "start_events",
    "verify_run",
]


# -- rebuilding the cpu member of a split fabric by re-execution ------------------------------
#: The reasons and codes of a client request refused because a peer failed it (or was
#: unreachable, or restarted): the record then holds the peer's part only up to where it
#: failed (svasim.wiring.grpc_ports, svasim.wiring.incarnation).
PEER_FAILURE_REASONS = frozenset({"PEER_UNAVAILABLE", "PEER_RESTARTED", "PEER_IN_OTHER_RUN", "RECOVERING"})
PEER_FAILURE_CODES = frozenset({"UNAVAILABLE", "DEADLINE_EXCEEDED"})
#: The reason of the refusal a restarted cpu records for the client request the kill cut
#: short, when finishing it would need a peer call the old process never made.
CUT_SHORT_REASON = "CUT_SHORT_BY_RESTART"
#: What an accel records first when a call of its descriptor's fails (the descriptor put
#: back in its WQ, then its clock and counters), as opposed to what follows a host write
#: that was answered (the descriptor's completion, its next write).
_FAILURE_PATH_KINDS = frozenset({"desc.requeue", "device.clock"})
#: Host calls of a peer that change the cpu's state (the others are reads).
_HOST_WRITES = frozenset({"dma_write", "handle_page_fault"})


class _Cut(BaseException):
    """The record shows a peer's part of a call ending here (a BaseException, so that no
    servicer on the way turns it into a refusal of its own)."""


class _Stop(BaseException):
    """Re-execution departed from the record: nothing more is executed."""


class _Refusal(BaseException):
    """A peer state re-execution needs cannot be rebuilt: carries the ResumeRefused out
    of the servicers on the way (which would make any Exception a refusal of theirs)."""

    def __init__(self, refused: ResumeRefused) -> None:
        super().__init__(str(refused))
        self.refused = refused


def _is_rejection(e: EventRow) -> bool:
    return e.service == "cpu" and e.kind == "request.rejected"


def _peer_failed(e: EventRow) -> bool:
    detail = e.detail or {}
    return _is_rejection(e) and (
        detail.get("reason") in PEER_FAILURE_REASONS or detail.get("code") in PEER_FAILURE_CODES
    )


class _Reexecution:
    """The recorder and the peer-call guard of a cpu rebuilt by re-execution.

    Every transition the scratch fabric makes must be the next recorded event (it takes
    its seq), as for ``svasim up``, with two exceptions where the record shows a peer's
    part ending early: within a *lenient* input (one the record shows refused because a
    peer failed, and the last input, which the kill may have cut short), a peer's
    transition that is not the recorded one ends that peer's part of the call
    (:class:`_Cut`), and recorded peer events that re-execution does not reach are
    passed over. The cpu's own transitions are always checked, each one.
    """

    def __init__(self, run: RunInfo, events: list[EventRow]) -> None:
        self.run = run
        self.events = events
        self.i = 0
        self.lenient = False
        #: Past the end of the record (the rest of the request the kill cut short).
        self.tail: list[Transition] = []
        #: Peer services whose scratch models no longer follow the record (a restart or a
        #: call cut short came between): rebuilt from the fold before their next call.
        self.dirty: set[str] = set()
        self.divergence: str | None = None
        self.last_input: EventRow | None = None
        #: The refusal the record shows for the lenient input being re-executed.
        self.rejection: EventRow | None = None
        #: Service -> the seq of the last transition of it reproduced or passed over, and
        #: the seq of the last refusal of a request because a peer failed.
        self.last_made: dict[str, int] = {}
        self.last_failure = 0
        self.stopped = False
        #: Peer -> a copy of its model as the other guess of what an unsure call did.
        self.alternative: dict[str, Any] = {}
        #: (resumed after, start seq) of every start of the cpu rebuilt by re-execution.
        self.completions = [
            (int((e.after or {}).get("resumed_after_seq") or 0), e.seq)
            for e in events
            if e.kind == "service.start" and e.service == "cpu" and (e.after or {}).get("rebuilt") == "re-execution"
        ]
        self.resyncs = 0
        #: The recorded peer events passed over, by seq (see :meth:`pass_peer_events`),
        #: and those of them re-execution made where it cut a peer's part (``late``).
        self.passed: list[int] = []
        self.late: list[int] = []
        #: The fields of the peer transitions made where a peer's part was cut.
        self.cut: list[dict[str, Any]] = []
        #: The seqs of restarts and of what they caused, passed over (see :meth:`peek`).
        self.restart_caused: set[int] = set()
        #: Where re-execution departed: (the recorded event or None past the end, the
        #: transition made instead).
        self.mismatch: tuple[EventRow | None, Transition] | None = None

    # recorder interface -------------------------------------------------------------------
    def peek(self) -> EventRow | None:
        """The next recorded event to reproduce (a lifecycle event passed over marks its
        service's scratch model for a rebuild, unless it is a start of a service with no
        state yet). What a start caused (a restarted iommu's device-TLB flush, see
        :func:`flush_device_tlbs`) is part of the start: passed over the same way."""
        events, caused = self.events, self.restart_caused
        while self.i < len(events) and (is_lifecycle(e := events[self.i]) or e.cause in caused):
            if e.kind != "service.start" or (e.after or {}).get("rebuilt") != "new":
                self.dirty.add(e.service)
                caused.add(e.seq)
            self.i += 1
        return events[self.i] if self.i < len(events) else None

    def died_before_answering(self, callee: str) -> bool:
        """Whether the record shows ``callee``, which has just made its part of a call of
        a lenient input, killed before it answered: its next event is its own restart,
        and the input's record goes on to the refusal with no other peer event on the
        way (the caller's failure path alone). A caller that got the answer would have
        gone on with it; one whose later call failed would show that call's peer."""
        rejection = self.rejection
        if rejection is None:
            return False
        events = self.events
        peers_before_rejection = False
        for j in range(self.i, len(events)):
            e = events[j]
            if e.seq < rejection.seq and e.service != "cpu" and not is_lifecycle(e):
                peers_before_rejection = True
            if e.service == callee:
                if e.kind == "service.start" and (e.after or {}).get("rebuilt") != "new":
                    return not peers_before_rejection
                if not is_lifecycle(e):
                    return False
        return False

    def cpu_killed_next(self) -> bool:
        """Whether the cpu's next event in the record is its restart, or the completion a
        restart recorded for the request the kill cut short: the cpu was killed before it
        made anything more (a peer's failure path may come between)."""
        events = self.events
        for j in range(self.i, len(events)):
            e = events[j]
            if e.service == "cpu":
                return self.completes(e) or (e.kind == "service.start" and (e.after or {}).get("rebuilt") != "new")
        return False

    def pass_peer_events(self) -> None:
        """Pass over the recorded peer events before the next cpu event or input."""
        while (e := self.peek()) is not None and e.service != "cpu" and e.kind != INPUT_KIND:
            fields = _fields(e)
            if fields in self.cut:
                # Made by re-execution where the peer's part was cut: the live peer made
                # it too, and answered its caller's failure before committing it, so it
                # comes after the caller's record of the failure.
                self.cut.remove(fields)
                self.late.append(e.seq)
            else:
                self.passed.append(e.seq)
            self.dirty.add(e.service)
            self.last_made[e.service] = e.seq
            self.i += 1

    def diverge(self, why: str) -> _Stop:
        where = (
            f" (after input {self.last_input.seq}: {CheckingRecorder._method(self.last_input)})"
            if self.last_input
            else ""
        )
        self.divergence = f"{why}{where}"
        self.stopped = True
        return _Stop()

    def append(self, transitions: list[Transition]) -> None:
        """Check and number ``transitions`` (none once re-execution has stopped: what
        the models make while the stop unwinds them is not compared)."""
        if self.stopped:
            return
        for t in transitions:
            self._one(t)

    def _one(self, t: Transition) -> None:
        rec = self.peek()
        if rec is None:
            if t.service != "cpu":
                # A peer's part the record does not have: the live peer never made it.
                # Its model already holds the change: set it from the fold before its
                # next call.
                self.dirty.add(t.service)
                raise _Cut()
            if t.is_input or not self.lenient:
                self.mismatch = (None, t)
                raise self.diverge(f"re-execution makes a {t.kind} of {t.entity} past the end of the record")
            self.tail.append(t)
            return
        made, recorded = _fields(t), _fields(rec)
        if made == recorded:
            t.seq = rec.seq
            self.i += 1
            self.last_made[rec.service] = rec.seq
            if _peer_failed(rec):
                self.last_failure = rec.seq
            return
        if self.lenient and t.service != "cpu":
            # The peer's part ends here; its model holds the change the live one never
            # made (or made and committed later: see pass_peer_events), so it is set from
            # the fold before its next call.
            self.cut.append(made)
            self.dirty.add(t.service)
            raise _Cut()
        if self.lenient and rec.service != "cpu" and rec.kind != INPUT_KIND:
            self.pass_peer_events()
            return self._one(t)
        differ = [k for k in COMPARED if made[k] != recorded[k]]
        self.mismatch = (rec, t)
        raise self.diverge(
            f"re-execution departs from the record at seq {rec.seq} in {', '.join(differ)}: "
            f"recorded {json.dumps({k: recorded[k] for k in differ}, sort_keys=True)}, "
            f"re-executed {json.dumps({k: made[k] for k in differ}, sort_keys=True)}"
        )

    def flush(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def wait_durable(self, t: Transition, timeout: float | None = None) -> None:
        """Nothing to wait for."""

    def close(self) -> None:
        """Nothing to close."""

    # peer calls ---------------------------------------------------------------------------
    def completes(self, rec: EventRow) -> bool:
        """Whether ``rec`` is part of the completion an earlier restart of the cpu recorded
        for the request a kill cut short (after the seq that start resumed after): the
        old process's record ended before it, so a call there was never made."""
        return any(end < rec.seq < start for end, start in self.completions)

    def reached(self, callee: str, name: str, args: tuple[Any, ...], rec: EventRow, caller: str = "cpu") -> bool:
        """Whether a call of a lenient input reached ``callee`` in the recorded run.

        Where the record shows it (the next event is the callee's, see :func:`_call_shown`),
        it did. Where it does not, the request failed at or after this call, and the
        record cannot say whether the callee was reached and failed inside (a peer of its
        own unreachable: it may change state it does not record then, UNVERIFIED) or was
        not reached at all. It is taken as reached when the callee made a transition
        since the last request refused for a peer's failure (it was answering), and as
        not reached after such a refusal (gRPC's reconnection backoff refuses calls
        until the peer has answered again)."""
        if _call_shown(callee, name, args, rec, caller):
            return True
        if callee == "cpu":
            return False
        # A transition of the callee later in this request's part of the record (a peer
        # answers a failure before committing what it made, so that can come after the
        # caller's record of the failure) shows it was reached.
        events, j = self.events, self.i
        while j < len(events) and events[j].kind != INPUT_KIND:
            e = events[j]
            if e.service == callee and not is_lifecycle(e) and e.cause not in self.restart_caused:
                return True
            j += 1
        return self.last_made.get(callee, 0) > self.last_failure

    def failure(self, callee: str, rec: EventRow | None) -> SimError:
        """The refusal a guarded call gets where the record shows it failed: the one the
        cpu recorded for the request, or (past the end of the record) the refusal of the
        request the kill cut short."""
        rejected = self.rejection
        if rejected is not None:
            detail = rejected.detail or {}
            err = SimError(str(detail.get("reason")), f"the {callee} call failed, as recorded at seq {rejected.seq}")
            err.code = str(detail.get("code"))
        elif rec is None:
            err = SimError(
                CUT_SHORT_REASON,
                "the cpu service restarted while serving this request; a call of it to the "
                f"{callee if callee != 'cpu' else 'accel'} service was not made: retry the request",
            )
            err.code = "UNAVAILABLE"
        else:
            err = SimError("PEER_UNAVAILABLE", f"the {callee} service failed, as the record shows")
            err.code = "UNAVAILABLE"
        return err


class _Peers:
    """Copies of the scratch fabric's peer models, to try a call on and put back."""

    def __init__(self, cores: dict[str, Any]) -> None:
        self.cores = cores

    def _model(self, service: str) -> Any:
        core = self.cores[service]
        return core.iommu if service == "iommu" else core.accel

    def save(self, service: str) -> Any:
        """A deep copy of ``service``'s model sharing its ports; None for the cpu."""
        if service not in ("iommu", "accel"):
            return None
        model = self._model(service)
        ports = ("host", "ats") if service == "iommu" else ("iommu", "host")
        memo = {id(getattr(model, name)): getattr(model, name) for name in ports}
        return copy.deepcopy(model, memo)

    def restore(self, service: str, model: Any) -> None:
        """Put ``model`` (a copy from :meth:`save`) back as ``service``'s model."""
        if service == "iommu":
            self.cores["iommu"].iommu = model
        else:
            self.cores["accel"].accel = model


class _Guard:
    """A model port of the scratch fabric that lets a state-changing call through only
    where the record shows it made (:class:`_Reexecution`)."""

    def __init__(
        self,
        rx: _Reexecution,
        callee: str,
        port: Any,
        resync: Callable[[str, EventRow], None],
        peers: _Peers,
        caller: str = "cpu",
    ) -> None:
        self._rx = rx
        self._callee = callee
        self._caller = caller
        self._port = port
        self._resync = resync
        self._peers = peers

    def _tried(self, target: Callable[..., Any], args: tuple[Any, ...], rec: EventRow | None) -> Any:
        """Run a call that may or may not have reached the peer in the recorded run, on
        the peer's model with a copy of it kept: both guesses are kept, the one the call
        leaves as the model (failed inside, as a live peer whose own peer failed it), the
        other as the alternative (never reached), until the peer's next call shows which
        the record holds. Either way the call fails as the record shows."""
        rx, callee = self._rx, self._callee
        saved = self._peers.save(callee)
        began = rx.i
        try:
            target(*args)
        except (_Cut, SimError) as e:
            if rx.i == began and saved is not None:
                if isinstance(e, _Cut):
                    # Its first transition is not recorded: not reached, more likely.
                    rx.alternative[callee] = self._peers.save(callee)
                    self._peers.restore(callee, saved)
                else:
                    rx.alternative[callee] = saved
            if isinstance(e, SimError) and rx.i > began:
                raise
            raise rx.failure(callee, rx.peek()) from None
        # Answered here, without a transition the record lacks: the call was not made, or
        # its answer never arrived; the request fails as recorded all the same.
        raise rx.failure(callee, rx.peek())

    def __getattr__(self, name: str) -> Callable[..., Any]:
        from svasim.model.journal import Journal

        target = getattr(self._port, name)
        rx, callee = self._rx, self._callee

        def call(*args: Any) -> Any:
            if not (args and isinstance(args[0], Journal)):
                return target(*args)  # a read changes nothing
            rec = rx.peek()
            peer = callee != "cpu"
            # Within a lenient input, a call the record does not show reaching the callee
            # may or may not have reached it (see _Reexecution.reached).
            unsure = rx.lenient and (
                rec is None
                or rx.completes(rec)
                or _is_rejection(rec)
                or not _call_shown(callee, name, args, rec, self._caller)
            )
            if unsure and not (
                peer and (rec is None or rx.completes(rec) or rx.reached(callee, name, args, rec, self._caller))
            ):
                raise rx.failure(callee, rec)
            if rec is None and not rx.lenient:
                raise rx.diverge(f"re-execution calls the {callee} service past the end of the record")
            if peer and callee in rx.dirty and rec is not None:
                try:
                    self._resync(callee, rec)
                except ResumeRefused as e:
                    rx.stopped = True
                    raise _Refusal(e) from None
                rx.alternative.pop(callee, None)
            if unsure:
                return self._tried(target, args, rec)
            began = rx.i
            other = rx.alternative.get(callee) if peer else None
            saved = self._peers.save(callee) if other is not None else None
            caller_last = args[0].last
            try:
                result = target(*args)
            except (_Cut, _Stop) as e:
                if rx.i == began and other is not None:
                    # The peer's first transition is not the recorded one: the other
                    # guess of what an earlier unsure call did to it must be the right one.
                    rx.alternative.pop(callee)
                    rx.stopped, rx.divergence = False, None
                    self._peers.restore(callee, other)
                    return call(*args)
                if isinstance(e, _Stop):
                    raise
                # Cut later: the live peer failed there as the scratch one did (a peer
                # of its own failed it), and both went on from the same point.
                raise rx.failure(callee, rx.peek()) from None
            if saved is not None and rx.i > began:
                rx.alternative.pop(callee, None)  # the guess held
            if peer and rx.lenient and rx.died_before_answering(callee):
                # The peer made its part (and committed it), then was killed before its
                # answer left: the caller heard only the failure, so it never followed
                # the peer's last transition either.
                args[0].last = caller_last
                raise rx.failure(callee, rx.peek())
            if rx.lenient and callee == "cpu" and name in _HOST_WRITES:
                # The cpu made the write and recorded it; whether its answer reached the
                # peer the record shows by what follows: the peer going on, or the cpu's
                # own transitions only (killed before answering: the peer's call failed).
                after = rx.peek()
                if (
                    after is None
                    or rx.completes(after)
                    or (after.service == "cpu" and after.kind != "dma.write")
                    # The peer going on with its failure path, not with what follows a
                    # written buffer (its completion, its next write), and the cpu killed
                    # before it made anything more: the answer never left.
                    or (after.kind in _FAILURE_PATH_KINDS and after.service == self._caller and rx.cpu_killed_next())
                ):
                    # The caller never heard back, so it never followed the write either.
                    args[0].last = caller_last
                    raise rx.failure(callee, after)
            return result

        return call


def _call_shown(callee: str, name: str, args: tuple[Any, ...], rec: EventRow, caller: str = "cpu") -> bool:
    """Whether ``rec``, the next recorded event, can be the first of the call
    ``name(*args)`` by ``caller`` to ``callee``: made by the callee, or for a call to a
    peer by the peer's peers (the host's DMA writes), never by the caller itself (its
    own failure path is not the callee's answer); for a host call of a peer, its DMA
    write exactly, or a fault's first transition as far as the record shows it."""
    if callee != "cpu":
        return rec.service not in ("cpu", caller) or rec.kind == "dma.write"
    if name == "dma_write":
        data = args[2]
        detail = rec.detail or {}
        return (
            rec.service == "cpu"
            and rec.kind == "dma.write"
            and detail.get("physical") == args[1]
            and detail.get("length") == len(data)
            and detail.get("crc32") == zlib.crc32(data)
        )
    if name in _HOST_WRITES:
        return rec.service == "cpu" and rec.kind not in (INPUT_KIND, "request.rejected", "cpu.state")
    return True


def _lenient_inputs(events: list[EventRow]) -> dict[int, EventRow | None]:
    """The inputs whose record may hold a peer's part only up to where it failed (those
    refused because a peer failed, and the last one), by seq, with the refusal recorded."""
    out: dict[int, EventRow | None] = {}
    current: int | None = None
    for e in events:
        if e.kind == INPUT_KIND:
            current = e.seq
        elif current is not None and _peer_failed(e):
            out[current] = e
    if current is not None:
        out.setdefault(current, next((e for e in reversed(events) if _is_rejection(e) and e.seq > current), None))
    return out


def cpu_state(kernel: Any) -> State:
    """The cpu part of the state, as the kernel exports it."""
    from svasim.model.state import kernel_state, memory_state

    return part_state(_norm({**kernel_state(kernel), **memory_state(kernel)}), ("cpu",))


@dataclass
class Reexecuted:
    """A whole record re-executed in a scratch fabric whose peers answer as it shows
    (:func:`reexecute`)."""

    rx: _Reexecution
    #: The scratch fabric's cores (its kernel is the rebuilt one).
    cores: dict[str, Any]
    config: Any
    costs: Any
    #: The seq of the record's last event.
    until: int
    #: Inputs fed.
    inputs: int
    seconds: float

    @property
    def kernel(self) -> Any:
        """The scratch fabric's kernel."""
        return self.cores["cpu"].kernel

    def want_cpu(self, final: State) -> State:
        """The cpu part of ``final`` (the fold of the record up to ``until``) and of the
        tail re-execution made past its end, over the state the kernel boots with."""
        kernel = self.kernel
        boot_kernel = type(kernel)(
            kernel.accel,
            kernel.iommu,
            ncpus=self.config.cpus,
            policy=self.config.policy,
            costs=self.costs,
            early_free=self.config.early_free,
            memory_size=self.config.memory,
        )
        folded = _norm(fold(self.rx.tail, final))
        return part_state(merged(cpu_state(boot_kernel), folded), ("cpu",))


def reexecute(
    store: Store, run: RunInfo, events: list[EventRow] | None = None, progress: Callable[[int, int], None] | None = None
) -> Reexecuted:
    """Re-execute the inputs of ``run``'s record in a scratch fabric whose iommu and accel
    make, transition for transition, what the record shows the live ones made (see
    :class:`_Reexecution`): a call the record shows failed fails again with the recorded
    refusal, and a peer that restarted is set again from the fold before its next call.

    Raises :class:`ResumeRefused` (:class:`Divergence` for a transition that is not the
    recorded one) naming the first place where re-execution cannot follow the record.
    """
    from svasim.replay import Fabric, ReplayInputError, config_of

    started = time.perf_counter()
    until = store.last_seq(run.id)
    if events is None:
        events = store.events(run.id, until_seq=until, limit=None)
    config, costs = config_of(run)
    rx = _Reexecution(run, events)
    scratch = Fabric(config, costs, rx, run.id)
    cores = scratch.cores
    peers = _Peers(cores)
    # A native program's memory is answered from what the record says it saw.
    from svasim.native.tape import Tape

    cores["cpu"].kernel.native_factory = Tape(events).factory

    def wire(model_of: dict[str, Any]) -> None:
        iommu, accel = model_of["iommu"], model_of["accel"]
        iommu.host = _Guard(rx, "cpu", _unguarded(iommu.host), resync, peers, caller="iommu")
        iommu.ats = _Guard(rx, "accel", _unguarded(iommu.ats), resync, peers, caller="iommu")
        accel.iommu = _Guard(rx, "iommu", _unguarded(accel.iommu), resync, peers, caller="accel")
        accel.host = _Guard(rx, "cpu", _unguarded(accel.host), resync, peers, caller="accel")

    def resync(service: str, rec: EventRow) -> None:
        # A fresh model of the service, set from the fold of the record up to here.
        fresh = Fabric(config, costs, rx, run.id).cores[service]
        model = fresh.iommu if service == "iommu" else fresh.accel
        boot = exported({service: fresh}, (service,))
        state = part_state(merged(boot, store.state_at(run.id, rec.seq - 1)), (service,))
        try:
            if service == "iommu":
                import_iommu(model, state)
            else:
                import_accel(model, state, _Descriptors(store, run))
        except (KeyError, TypeError, ValueError) as e:
            raise ResumeRefused(
                f"cannot resume run {run.name}: the {service} state at seq {rec.seq - 1}, which re-executing the "
                f"cpu's inputs needs, cannot be rebuilt from its fold ({e}); {new_run_hint(run)}"
            ) from None
        got = exported({service: fresh}, (service,))
        if got != state:
            raise ResumeRefused(
                f"cannot resume run {run.name}: the {service} state at seq {rec.seq - 1} rebuilt from its fold "
                f"differs from the fold; {new_run_hint(run)}"
            )
        # The fresh model replaces the scratch one; its ports are the scratch fabric's.
        target = cores[service]
        if service == "iommu":
            model.host, model.ats = target.iommu.host, target.iommu.ats
            target.iommu = model
        else:
            model.iommu, model.host = target.accel.iommu, target.accel.host
            target.accel = model
        rx.dirty.discard(service)
        rx.resyncs += 1

    kernel = cores["cpu"].kernel
    kernel.accel = _Guard(rx, "accel", kernel.accel, resync, peers)
    kernel.iommu = _Guard(rx, "iommu", kernel.iommu, resync, peers)
    wire({"iommu": cores["iommu"].iommu, "accel": cores["accel"].accel})
    lenient = _lenient_inputs(events)
    n_inputs = sum(1 for e in events if e.kind == INPUT_KIND)
    fed = 0
    previous_lenient = False
    refused: ResumeRefused | None = None
    try:
        for e in events:
            if e.kind != INPUT_KIND:
                continue
            if previous_lenient:
                rx.pass_peer_events()
            nxt = rx.peek()
            if nxt is None or nxt.seq != e.seq:
                missing = nxt if nxt is not None else e
                raise rx.diverge(
                    f"the record has transitions re-execution does not make, from seq {missing.seq} "
                    f"({missing.kind} of {missing.entity})"
                )
            rx.lenient = previous_lenient = e.seq in lenient
            rx.rejection = lenient.get(e.seq)
            rx.last_input = e
            after = e.after if isinstance(e.after, dict) else {}
            rid = after.get("request_id")
            try:
                scratch.feed(
                    str(after.get("method")), after.get("request") or {}, rid if isinstance(rid, str) else None
                )
            except ReplayInputError as err:
                raise ResumeRefused(f"cannot resume run {run.name}: seq {e.seq}: {err}; {new_run_hint(run)}") from None
            fed += 1
            if progress is not None and fed % 64 == 0:
                progress(fed, n_inputs)
        rx.pass_peer_events()
        if (left := rx.peek()) is not None:
            raise rx.diverge(
                f"the record has transitions re-execution does not make, from seq {left.seq} "
                f"({left.kind} of {left.entity})"
            )
    except _Refusal as e:
        refused = e.refused
    except _Cut:
        refused = ResumeRefused(
            f"cannot resume run {run.name}: a peer's part of input {rx.last_input.seq if rx.last_input else 0} "
            f"ends early in the record outside a call of the cpu's; {new_run_hint(run)}"
        )
    except _Stop:
        refused = Divergence(f"cannot resume run {run.name}: {rx.divergence}; {new_run_hint(run)}")
    if refused is not None:
        # Where it stopped, for a verification to show (see verify_split).
        refused.reexecution = rx  # type: ignore[attr-defined]
        raise refused from None
    return Reexecuted(rx, cores, config, costs, until, fed, time.perf_counter() - started)


def rebuild_cpu(store: Store, run: RunInfo, core: Any) -> Rebuilt:
    """Rebuild the kernel of the cpu member ``core`` (a :class:`svasim.rpc.cpu.CpuCore`)
    by re-executing the run's inputs in a scratch fabric whose peers answer as the record
    shows (:func:`reexecute`), then check that the kernel exports exactly the fold of the
    cpu's part; ResumeRefused (naming the first difference) if not.

    Memory contents are folded only as digests, so they come back only by re-execution;
    the answers of the peers come from scratch models that make, transition for
    transition, what the record shows the live peers made (each rebuilt from the fold,
    as :func:`rebuild_by_fold` rebuilds a member, where a restart or a failure came
    between). A call the record shows failed fails again with the recorded refusal. The
    request the kill cut short is finished as far as it goes without a peer: its next
    peer call is refused (:data:`CUT_SHORT_REASON`; the old process never made it), and
    those transitions are recorded as its completion (``Rebuilt.completed``), before the
    restart. Its peers then hold nothing the rebuilt cpu does not: every peer answer was
    committed before it was sent.
    """
    done = reexecute(store, run)
    kernel = done.kernel
    want = done.want_cpu(store.state_at(run.id, done.until))
    got = cpu_state(kernel)
    if got != want:
        entity = next(x for x in sorted(set(got) | set(want)) if got.get(x) != want.get(x))
        raise ResumeRefused(
            f"cannot resume run {run.name}: the cpu state rebuilt by re-executing its inputs differs from the "
            f"record's fold at {entity}: folded {json.dumps(want.get(entity), sort_keys=True)}, rebuilt "
            f"{json.dumps(got.get(entity), sort_keys=True)}; {new_run_hint(run)}"
        )
    # The kernel goes live: its peers are the member's own ports, its native processes
    # the real programs.
    kernel.accel, kernel.iommu = core.kernel.accel, core.kernel.iommu
    reattach_native(kernel, core.kernel.native_factory)
    core.kernel = kernel
    return Rebuilt(
        run.id,
        done.until,
        0,
        len(got),
        0,
        done.seconds,
        [],
        how="re-execution",
        completed=done.rx.tail,
        inputs=done.inputs,
        resyncs=done.rx.resyncs,
    )


def is_split_run(events: list[EventRow]) -> bool:
    """Whether ``events`` were recorded by a split fabric: a process started on the run
    hosting only some of the model services."""
    return any(
        e.kind == "service.start" and not set(MODEL_SERVICES) <= set((e.after or {}).get("services") or ())
        for e in events
    )


@dataclass
class SplitVerdict:
    """What re-executing a split run against its record found (:func:`verify_split`)."""

    inputs: int
    seconds: float
    #: Why it is not identical (None: identical), and where: the recorded event, the
    #: transition re-execution made instead (None: it made none), and the last input.
    why: str | None = None
    recorded: EventRow | None = None
    made: Transition | None = None
    input: EventRow | None = None
    #: Restarts of members the record shows, and peer models set from the fold there.
    restarts: int = 0
    resyncs: int = 0
    #: Peer transitions the record has after their caller's record of the failure they
    #: were part of (committed after the peer answered the failure), made again there.
    late: int = 0


def verify_split(
    store: Store, run: RunInfo, events: list[EventRow], progress: Callable[[int, int], None] | None = None
) -> SplitVerdict:
    """Re-execute a split run, its members' kills and restarts included, and compare.

    The processes of a split fabric fail one another: a member killed in the middle of a
    call leaves its part of that call recorded up to the kill, and the request that made
    it is refused with the failure the cpu recorded. These failures come from outside the
    model, so the record is their truth: re-execution (:func:`reexecute`) fails each call
    where the record shows it failing, ends a peer's part of a call where the record
    shows the peer dying, and sets a restarted member from the fold of the record at its
    restart, as the member itself was set. Everything else must be made again exactly:
    every transition re-execution makes must be the recorded one at the same seq, no
    recorded transition may be left unmade, and at the end the cpu's state must be the
    fold of its part and each peer model not restarted since its last call the fold of
    its own.
    """
    restarts = sum(1 for e in events if e.kind == "service.start" and (e.after or {}).get("rebuilt") != "new")
    started = time.perf_counter()
    try:
        done = reexecute(store, run, events, progress)
    except ResumeRefused as e:
        stopped: _Reexecution | None = getattr(e, "reexecution", None)
        verdict = SplitVerdict(0, time.perf_counter() - started, str(e), restarts=restarts)
        if stopped is not None:
            verdict.why = stopped.divergence or verdict.why
            verdict.recorded, verdict.made = stopped.mismatch or (None, None)
            if verdict.recorded is not None and verdict.made is not None:
                verdict.made.seq = verdict.recorded.seq  # the seq it was made at
            verdict.input = stopped.last_input
            last = stopped.last_input.seq if stopped.last_input is not None else 0
            verdict.inputs = sum(1 for x in events if x.kind == INPUT_KIND and x.seq <= last)
            if verdict.recorded is None and verdict.made is None and stopped.i < len(events):
                verdict.recorded = events[stopped.i]
        return verdict
    rx = done.rx
    verdict = SplitVerdict(done.inputs, done.seconds, restarts=restarts, resyncs=rx.resyncs, late=len(rx.late))
    if rx.passed:
        first = next(e for e in events if e.seq == rx.passed[0])
        verdict.why = (
            f"re-execution does not make {len(rx.passed)} recorded peer transitions, from seq {first.seq} "
            f"({first.kind} of {first.entity})"
        )
        verdict.recorded = first
        return verdict
    if rx.tail:
        verdict.why = f"re-execution makes {len(rx.tail)} transitions past the end of the record"
        verdict.made = rx.tail[0]
        return verdict
    from svasim.replay import Fabric

    # The fold of the whole record, once, for every part compared with it.
    final = store.state_at(run.id, done.until)
    checks = [("cpu", done.want_cpu(final), cpu_state(done.kernel))]
    peers = [service for service in ("iommu", "accel") if service not in rx.dirty]
    # (A peer restarted after its last call was set from the fold: nothing to compare.)
    if peers:
        fresh = Fabric(done.config, done.costs, _Reexecution(run, []), run.id).cores
        for service in peers:
            boot = exported(fresh, (service,))
            checks.append((service, part_state(merged(boot, final), (service,)), exported(done.cores, (service,))))
    for service, folded, made in checks:
        if folded != made:
            entity = next(x for x in sorted(set(folded) | set(made)) if folded.get(x) != made.get(x))
            verdict.why = (
                f"the {service} state re-execution ends with differs from the record's fold at {entity}: folded "
                f"{json.dumps(folded.get(entity), sort_keys=True)}, "
                f"re-executed {json.dumps(made.get(entity), sort_keys=True)}"
            )
            return verdict
    return verdict


def _unguarded(port: Any) -> Any:
    return port._port if isinstance(port, _Guard) else port
