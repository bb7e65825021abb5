"""A run as a Chrome JSON trace, for the Perfetto UI (ui.perfetto.dev) and chrome://tracing.

Layout (one "process" track per hardware unit, "threads" inside it as lanes):

- ``cpu N`` (pid ``1 + N``), lanes: *context switch* (a slice "switch to T" per
  ``sched.switch``), *running* (which thread the CPU runs, from switch-in to the next
  switch or idle), *traps* (#GP, #NM, #PF, lazy-resource faults), *ENQCMD* (accepted or
  retried), *IPI* (sent, on the sender; handled, on the target), *kernel* (IA32_PASID
  WRMSR/XRSTORS, CR3 writes, TLB flushes, signals, anything else that costs cycles) and
  *invariant violations* (instants).
- ``device D`` (pids from 1001, devices in name order), one lane per engine: a slice per
  descriptor from ``desc.complete``'s ``start`` to ``end``.
- ``wq D/I`` (pids from 2001): an *occupancy* counter (descriptors queued) and *retries*
  (instants).
- ``invariants`` (pid 3001): violations that no running thread can be charged with.

Every lane has a tid of its own (from 100001), distinct from every pid, because trace
viewers treat a tid seen under two pids as a reused thread. Slice arguments carry the
event's ``seq``, so anything seen in the UI can be looked up with ``svasim trace show``.

**Time.** Timestamps are simulated time: cycles divided by ``cycles_per_us`` (2000 by
default, a 2 GHz clock), in microseconds as Chrome JSON wants. The store does not put an
absolute clock on every transition, so each CPU's time is rebuilt, deterministically, by a
cursor per CPU that starts at 0 and never moves backwards:

1. An event is *attributed* to CPU N if its entity is ``cpu/N``; or its entity is
   ``thread/T`` and its ``detail`` names a ``cpu`` (a #GP does), or else T runs on N at
   that point. Where each thread runs is folded from ``sched.switch`` (``after.current``
   runs on the CPU, the previous one leaves it), ``thread.run`` (``after.cpu``),
   ``thread.switch_out``/``thread.exit`` (runs nowhere) and ``sched.idle``. An IPI's
   ``ipi.send`` (entity: the target) is attributed to its sender, ``detail.from``.
   Other events (processes, memory, PASIDs, WQs, descriptors, inputs) are on no CPU.
2. An attributed event occupies ``[cursor, cursor + cycles]`` and moves the cursor to
   its end. (Events recorded with 0 cycles are zero-length slices at the cursor.)
3. ``sched.switch`` carries the CPU's clock after the switch, ``after.cycles``: the
   switch ends at ``max(clock, cursor)`` and the cursor moves there. Its slice lasts the
   event's ``cycles`` when recorded (> 0); otherwise, the CPU time since the cursor (the
   switch plus whatever work on that CPU no event accounted for), stated in its args.
4. Devices run on the same clock as the CPUs (a descriptor's ``start`` is at or after
   the submitting CPU's clock), so descriptor slices use ``start``/``end`` directly.
5. WQ occupancy rises by one when a descriptor is accepted, at the submitting CPU's
   cursor (the thread of the ``enqcmd.*`` event caused by the ``wq.accept``; without
   one, the latest cursor of any CPU), and falls by one when an engine takes it, at its
   ``start`` (never before its own acceptance). It starts from the first acceptance's
   ``before.occupancy``.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from svasim.store.store import EventRow, RunInfo
from svasim_api.idxd import DsaOpcode

__all__ = ["to_chrome_trace", "write_chrome_trace"]

_CPU_PID = 1
_DEVICE_PID = 1001
_WQ_PID = 2001
_INVARIANTS_PID = 3001
_FIRST_TID = 100001

# CPU lanes: (order, name).
_SWITCH = (1, "context switch")
_RUNNING = (2, "running")
_TRAPS = (3, "traps")
_ENQCMD = (4, "ENQCMD")
_IPI = (5, "IPI")
_KERNEL = (6, "kernel")
_VIOLATIONS = (7, "invariant violations")
_OCCUPANCY = (0, "occupancy")
_RETRIES = (1, "retries")

_TRAP_NAMES = {"gp": "#GP", "nm": "#NM", "pf": "#PF", "lr": "lazy-resource fault"}
_KERNEL_NAMES = {
    "msr.pasid.write": "WRMSR IA32_PASID",
    "xstate.restore.pasid": "XRSTORS IA32_PASID",
    "cr3.write": "CR3 write",
    "tlb.flush": "TLB flush",
}
# Bookkeeping of the switch path: shown by other lanes or not worth a marker.
_NOT_KERNEL = {"sched.switch", "sched.idle", "thread.run", "thread.switch_out", "thread.exit", "invariant.violation"}

# A track: (group, unit, lane) with group "cpu" (unit: the CPU number), "dev" (the device
# name; a lane per engine), "wq" ("<device>/<id>") or "inv" (0). A lane is (order, name).
Track = tuple[str, Any, tuple[int, str]]


def _split(entity: str) -> list[str]:
    return entity.split("/")


def _int(value: Any) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


@dataclass
class _Item:
    track: Track
    ph: str
    name: str
    ts: int  # cycles
    dur: int | None = None
    args: dict[str, Any] = field(default_factory=dict)


class _Builder:
    """Folds events in seq order into trace items (see the module docstring)."""

    def __init__(self, events: list[EventRow]) -> None:
        self.items: list[_Item] = []
        self.cursor: dict[int, int] = {}
        self.running: dict[int, tuple[int, int]] = {}  # cpu -> (tid, since)
        self.thread_cpu: dict[int, int] = {}
        self.thread_pid: dict[int, int] = {}
        self.process_name: dict[int, str] = {}
        self.cpus: set[int] = set()
        self.devices: dict[str, set[int]] = {}
        self.wq_deltas: dict[str, list[tuple[int, int]]] = {}
        self.wq_base: dict[str, int] = {}
        self.accepted_at: dict[tuple[str, int], int] = {}
        # wq.accept seq -> the thread whose ENQCMD it answered.
        self.submitter: dict[int, int] = {}
        for e in events:
            if e.kind.startswith("enqcmd.") and e.cause is not None:
                parts = _split(e.entity)
                if parts[0] == "thread" and len(parts) == 2 and parts[1].isdigit():
                    self.submitter.setdefault(e.cause, int(parts[1]))

    # -- clocks ------------------------------------------------------------------------

    def _cpu_seen(self, cpu: int) -> None:
        if cpu not in self.cpus:
            self.cpus.add(cpu)
            self.cursor.setdefault(cpu, 0)

    def _place(self, cpu: int, cycles: int) -> tuple[int, int]:
        """Occupy ``cycles`` at CPU ``cpu``'s cursor; return (start, duration)."""
        self._cpu_seen(cpu)
        start = self.cursor[cpu]
        dur = max(0, cycles)
        self.cursor[cpu] = start + dur
        return start, dur

    def _now(self) -> int:
        return max(self.cursor.values(), default=0)

    # -- threads -----------------------------------------------------------------------

    def _label(self, tid: int) -> str:
        pname = self.process_name.get(self.thread_pid.get(tid, -1))
        return f"thread {tid} ({pname})" if pname else f"thread {tid}"

    def _leave(self, tid: int, cpu: int | None = None) -> None:
        if cpu is None or self.thread_cpu.get(tid) == cpu:
            self.thread_cpu.pop(tid, None)

    def _stop_running(self, cpu: int, at: int) -> None:
        run = self.running.pop(cpu, None)
        if run is not None:
            tid, since = run
            self.items.append(
                _Item(("cpu", cpu, _RUNNING), "X", self._label(tid), since, max(0, at - since), {"tid": tid})
            )

    def _cpu_of(self, e: EventRow, parts: list[str]) -> int | None:
        if parts[0] == "cpu" and len(parts) == 2 and parts[1].isdigit():
            return int(parts[1])
        if parts[0] == "thread" and len(parts) == 2 and parts[1].isdigit():
            named = _int((e.detail or {}).get("cpu"))
            if named is not None and named >= 0:
                return named
            return self.thread_cpu.get(int(parts[1]))
        return None

    # -- events ------------------------------------------------------------------------

    def feed(self, e: EventRow) -> None:
        parts = _split(e.entity)
        kind = e.kind
        after = e.after or {}
        before = e.before or {}
        detail = e.detail or {}
        if kind == "process.create" and parts[0] == "process" and len(parts) == 2 and parts[1].isdigit():
            self.process_name[int(parts[1])] = str(after.get("name", ""))
        elif kind == "thread.create" and parts[0] == "thread" and len(parts) == 2 and parts[1].isdigit():
            pid = _int(after.get("pid"))
            if pid is not None:
                self.thread_pid[int(parts[1])] = pid

        if kind == "sched.switch":
            self._switch(e, parts, before, after)
            return
        if kind == "sched.idle":
            cpu = self._cpu_of(e, parts)
            if cpu is not None:
                self._cpu_seen(cpu)
                self._stop_running(cpu, self.cursor[cpu])
                gone = _int(before.get("current"))
                if gone:
                    self._leave(gone, cpu)
            return
        if kind == "desc.complete":
            self._descriptor(e, parts, after)
            return
        if kind == "wq.accept":
            self._wq_accept(e, parts, before, detail)
            return
        if kind == "wq.retry" and len(parts) == 3:
            wq = f"{parts[1]}/{parts[2]}"
            self.items.append(_Item(("wq", wq, _RETRIES), "i", "retry", self._now(), None, {"seq": e.seq, **detail}))
            return
        if kind == "ipi.send":
            self._ipi_send(e, parts, detail)
            return

        cpu = self._cpu_of(e, parts)
        if kind == "invariant.violation":
            self._violation(e, parts, detail)
        elif cpu is not None:
            self._on_cpu(e, parts, cpu, detail)

        # Where threads run (after placing the event: a thread's last event before it
        # leaves its CPU is still charged to that CPU).
        if parts[0] == "thread" and len(parts) == 2 and parts[1].isdigit():
            tid = int(parts[1])
            if kind == "thread.run":
                where = _int(after.get("cpu"))
                if where is not None and where >= 0:
                    self.thread_cpu[tid] = where
            elif kind in ("thread.switch_out", "thread.exit"):
                self._leave(tid)

    def _switch(self, e: EventRow, parts: list[str], before: dict[str, Any], after: dict[str, Any]) -> None:
        cpu = self._cpu_of(e, parts)
        if cpu is None:
            return
        self._cpu_seen(cpu)
        cursor = self.cursor[cpu]
        clock = _int(after.get("cycles"))
        end = max(cursor, clock if clock is not None else cursor + max(0, e.cycles))
        recorded = e.cycles > 0
        start = max(cursor, end - e.cycles) if recorded else cursor
        self.cursor[cpu] = end
        nxt = _int(after.get("current")) or 0
        prev = _int(before.get("current")) or 0
        args: dict[str, Any] = {"seq": e.seq, "prev": prev, "next": nxt, "clock_cycles": clock}
        if recorded:
            args["cost_cycles"] = e.cycles
        else:
            args["cost"] = "not recorded: the slice spans the CPU time since its previous recorded event"
        self.items.append(_Item(("cpu", cpu, _SWITCH), "X", f"switch to {nxt}", start, end - start, args))
        self._stop_running(cpu, start)
        if prev:
            self._leave(prev, cpu)
        if nxt:
            old = self.thread_cpu.get(nxt)
            if old is not None and old != cpu:
                self._stop_running(old, self.cursor.get(old, 0))
            self.thread_cpu[nxt] = cpu
            self.running[cpu] = (nxt, end)

    def _on_cpu(self, e: EventRow, parts: list[str], cpu: int, detail: dict[str, Any]) -> None:
        kind = e.kind
        args: dict[str, Any] = {"seq": e.seq}
        if parts[0] == "thread":
            args["tid"] = int(parts[1])
        args.update(detail)
        lane: tuple[int, str] | None
        if kind.startswith("trap."):
            trap = kind.removeprefix("trap.")
            name = _TRAP_NAMES.get(trap, f"trap {trap}")
            resource = detail.get("resource")
            if resource:
                name += f" ({resource})"
            lane = _TRAPS
        elif kind.startswith("enqcmd."):
            outcome = kind.removeprefix("enqcmd.")
            name = "ENQCMD" if outcome == "accept" else f"ENQCMD {outcome}"
            lane = _ENQCMD
        elif kind == "ipi.handle":
            name = f"IPI {detail.get('handler', '')}".rstrip()
            lane = _IPI
        elif kind in _KERNEL_NAMES or kind.startswith("signal."):
            name = _KERNEL_NAMES.get(kind, kind)
            lane = _KERNEL
        elif e.cycles > 0 and kind not in _NOT_KERNEL:
            name, lane = kind, _KERNEL
        else:
            lane = None
        start, dur = self._place(cpu, e.cycles)
        if lane is not None:
            self.items.append(_Item(("cpu", cpu, lane), "X", name, start, dur, args))

    def _ipi_send(self, e: EventRow, parts: list[str], detail: dict[str, Any]) -> None:
        sender = _int(detail.get("from"))
        target = parts[1] if len(parts) == 2 else "?"
        if sender is None or sender < 0:
            return
        start, dur = self._place(sender, e.cycles)
        name = f"IPI to cpu {target}"
        if detail.get("handler"):
            name += f": {detail['handler']}"
        self.items.append(_Item(("cpu", sender, _IPI), "X", name, start, dur, {"seq": e.seq, **detail}))

    def _violation(self, e: EventRow, parts: list[str], detail: dict[str, Any]) -> None:
        invariant = parts[1] if len(parts) > 1 else e.entity
        tid = _int(detail.get("tid"))
        cpu = self.thread_cpu.get(tid) if tid else None
        args = {"seq": e.seq, "invariant": invariant, **detail}
        name = f"violation: {invariant}"
        if cpu is not None:
            self._cpu_seen(cpu)
            self.items.append(_Item(("cpu", cpu, _VIOLATIONS), "i", name, self.cursor[cpu], None, args))
        else:
            self.items.append(_Item(("inv", 0, _VIOLATIONS), "i", name, self._now(), None, args))

    def _descriptor(self, e: EventRow, parts: list[str], after: dict[str, Any]) -> None:
        if len(parts) != 3:
            return
        device = parts[1]
        start = _int(after.get("start"))
        end = _int(after.get("end"))
        engine = _int(after.get("engine"))
        if start is None or end is None or engine is None:
            return
        opcode = _int(after.get("opcode"))
        try:
            name = DsaOpcode(opcode).name if opcode is not None else "descriptor"
        except ValueError:
            name = f"opcode {opcode:#x}" if opcode is not None else "descriptor"
        self.devices.setdefault(device, set()).add(engine)
        args = {"seq": e.seq, "desc": parts[2], **{k: v for k, v in after.items() if k not in ("start", "end")}}
        lane = (engine, f"engine {engine}")
        self.items.append(_Item(("dev", device, lane), "X", name, start, max(0, end - start), args))
        wq = _int(after.get("wq"))
        if wq is not None and parts[2].isdigit():
            key = f"{device}/{wq}"
            accepted = self.accepted_at.pop((device, int(parts[2])), None)
            if accepted is not None:  # a dequeue is counted only after its own acceptance
                self.wq_deltas.setdefault(key, []).append((max(start, accepted), -1))

    def _wq_accept(self, e: EventRow, parts: list[str], before: dict[str, Any], detail: dict[str, Any]) -> None:
        if len(parts) != 3:
            return
        key = f"{parts[1]}/{parts[2]}"
        tid = self.submitter.get(e.seq)
        cpu = self.thread_cpu.get(tid) if tid is not None else None
        at = self.cursor.get(cpu, 0) if cpu is not None else self._now()
        self.wq_base.setdefault(key, _int(before.get("occupancy")) or 0)
        self.wq_deltas.setdefault(key, []).append((at, +1))
        desc = _int(detail.get("desc"))
        if desc is not None:
            self.accepted_at[(parts[1], desc)] = at

    def finish(self) -> None:
        """Close what is still open: running slices end at their CPU's cursor."""
        for cpu in sorted(self.running):
            self._stop_running(cpu, self.cursor.get(cpu, 0))
        for key in sorted(self.wq_deltas, key=_natural):
            value = self.wq_base.get(key, 0)
            # Stable sort: at equal times, changes keep their seq order.
            for at, delta in sorted(self.wq_deltas[key], key=lambda d: d[0]):
                value = max(0, value + delta)
                self.items.append(_Item(("wq", key, _OCCUPANCY), "C", "occupancy", at, None, {"queued": value}))


def _natural(text: str) -> tuple[Any, ...]:
    """A sort key that orders "dsa0/2" before "dsa0/10"."""
    return tuple((0, int(p), "") if p.isdigit() else (1, 0, p) for p in text.split("/"))


_GROUPS = {"cpu": 0, "dev": 1, "wq": 2, "inv": 3}


def _process_order(group: str, unit: Any) -> tuple[Any, ...]:
    return (_GROUPS[group], unit if group == "cpu" else 0, _natural(str(unit)) if group != "cpu" else ())


def _track_order(track: Track) -> tuple[Any, ...]:
    return (*_process_order(track[0], track[1]), track[2][0])


def to_chrome_trace(run: RunInfo, events: Iterable[EventRow], *, cycles_per_us: int = 2000) -> dict[str, Any]:
    """The Chrome JSON trace (a dict ready for ``json.dump``) of ``events`` of ``run``.

    ``events`` must be in seq order (as :meth:`svasim.store.store.Store.events` returns
    them); they may be a filtered subset, at the cost of less complete tracks.
    ``cycles_per_us`` is the simulated clock rate used to turn cycles into microseconds.
    The module docstring gives the track layout and how time is rebuilt.
    """
    if isinstance(cycles_per_us, bool) or not isinstance(cycles_per_us, int) or cycles_per_us < 1:
        raise ValueError(f"cycles_per_us must be a positive integer (cycles per microsecond), got {cycles_per_us!r}")
    rows = list(events)
    b = _Builder(rows)
    for e in rows:
        b.feed(e)
    b.finish()

    # pids by kind of unit, in a fixed order (see the module docstring).
    first_pid = {"cpu": _CPU_PID, "dev": _DEVICE_PID, "wq": _WQ_PID, "inv": _INVARIANTS_PID}
    units = sorted(
        {(i.track[0], i.track[1]) for i in b.items} | {("cpu", c) for c in b.cpus}, key=lambda u: _process_order(*u)
    )
    pids: dict[tuple[str, Any], int] = {}
    count: dict[str, int] = {}
    for group, unit in units:
        n = unit if group == "cpu" else count.get(group, 0)
        count[group] = n + 1
        pids[(group, unit)] = first_pid[group] + n

    tracks = sorted({i.track for i in b.items}, key=_track_order)
    tids = {t: _FIRST_TID + n for n, t in enumerate(tracks)}
    # Counters belong to the process; only lanes with slices or instants are named threads.
    lanes = {i.track for i in b.items if i.ph != "C"}

    def us(cycles: int) -> float:
        return cycles / cycles_per_us

    meta: list[dict[str, Any]] = []
    for group, unit in units:
        pid = pids[(group, unit)]
        pname = {"cpu": f"cpu {unit}", "dev": f"device {unit}", "wq": f"wq {unit}", "inv": "invariants"}[group]
        meta.append({"ph": "M", "name": "process_name", "pid": pid, "tid": pid, "args": {"name": pname}})
        meta.append({"ph": "M", "name": "process_sort_index", "pid": pid, "tid": pid, "args": {"sort_index": pid}})
    for t in tracks:
        if t not in lanes:
            continue
        pid, tid = pids[(t[0], t[1])], tids[t]
        order, tname = t[2]
        meta.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": tname}})
        meta.append({"ph": "M", "name": "thread_sort_index", "pid": pid, "tid": tid, "args": {"sort_index": order}})

    body: list[tuple[tuple[int, int, int], dict[str, Any]]] = []
    for n, item in enumerate(b.items):
        pid = pids[(item.track[0], item.track[1])]
        ev: dict[str, Any] = {"ph": item.ph, "name": item.name, "pid": pid, "tid": tids[item.track], "ts": us(item.ts)}
        if item.ph == "X":
            ev["dur"] = us(item.dur or 0)
        elif item.ph == "i":
            ev["s"] = "t"
        elif item.ph == "C":
            ev["tid"] = pid  # counters belong to the process
        if item.args:
            ev["args"] = item.args
        # Viewers want enclosing slices before the slices they enclose: longer first.
        body.append(((item.ts, -(item.dur or 0), n), ev))
    body.sort(key=lambda x: x[0])

    return {
        "traceEvents": meta + [ev for _, ev in body],
        "displayTimeUnit": "ns",
        "metadata": {
            "svasim-run": {
                "id": run.id,
                "name": run.name,
                "created_at": run.created_at.isoformat(),
                "policy": run.policy,
                "seed": run.seed,
                "version": run.version,
                "parent_run_id": run.parent_run_id,
            },
            "clock": "simulated cycles / cycles_per_us; see svasim.exchange.perfetto",
            "cycles_per_us": cycles_per_us,
        },
    }


def write_chrome_trace(
    path: str | os.PathLike[str], run: RunInfo, events: Iterable[EventRow], *, cycles_per_us: int = 2000
) -> int:
    """Write :func:`to_chrome_trace` of the run to ``path`` (UTF-8 JSON); return how many trace events."""
    trace = to_chrome_trace(run, events, cycles_per_us=cycles_per_us)
    with open(path, "w", encoding="utf-8") as f:
        json.dump(trace, f, ensure_ascii=False, separators=(",", ":"))
        f.write("\n")
    return len(trace["traceEvents"])
