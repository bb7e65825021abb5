"""A run as JSON Lines: export from one store, import into another (versioned).

The file is UTF-8 text, one JSON object per line::

    {"format": "svasim-run", "version": 1, "run": {...}, "events": 1284}
    {"seq": 1, "service": "cpu", "entity": "client", "kind": "input", "before": null, ...}
    {"seq": 2, ...}

- Line 1, the header: ``format`` is always ``"svasim-run"``; ``version`` is
  :data:`VERSION` (an importer refuses a newer one); ``run`` holds the run's ``id``,
  ``name``, ``created_at`` (ISO 8601, UTC), ``config``, ``policy``, ``seed``, ``version``
  (of svasim that recorded it) and ``parent_run_id``; ``events`` is the number of event
  lines that follow (optional on import; checked when present, so a truncated file is
  refused).
- Then one line per event in seq order, with exactly the keys ``seq``, ``service``,
  ``entity``, ``kind``, ``before``, ``after``, ``cause``, ``cycles``, ``detail`` (the
  fields of :class:`svasim.store.store.EventRow` without ``run_id``). Nested objects are
  written with sorted keys, so a run exported from SQLite and from PostgreSQL (whose
  JSONB columns, a run's configuration among them, reorder keys) gives the same bytes.

Import creates a new run and appends the events with their causes as seqs; because a
run's seqs are gap-free from 1, a fresh run hands out the same seqs again, which the
importer checks.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator
from typing import Any, TextIO

from svasim.model.transition import Transition
from svasim.store.store import RunExistsError, RunInfo, Store, UnknownRunError

__all__ = ["FORMAT", "VERSION", "EVENT_KEYS", "export_jsonl", "import_jsonl"]

#: The ``format`` of the header line.
FORMAT = "svasim-run"
#: The version this code writes, and the newest it reads.
VERSION = 1
#: The keys of an event line, in the order they are written.
EVENT_KEYS = ("seq", "service", "entity", "kind", "before", "after", "cause", "cycles", "detail")

# Events read from the store per query on export, and appended per transaction on import.
_PAGE = 2000


def _canonical(value: Any) -> Any:
    """``value`` with every nested dict's keys sorted (lists keep their order)."""
    if isinstance(value, dict):
        return {k: _canonical(value[k]) for k in sorted(value)}
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    return value


def _dumps(obj: dict[str, Any]) -> str:
    # Top-level keys in the given order, nested ones sorted; compact and UTF-8 as is.
    return json.dumps({k: _canonical(v) for k, v in obj.items()}, ensure_ascii=False, separators=(",", ":"))


def export_jsonl(store: Store, run_id: str, out: TextIO, *, progress: Callable[[int], None] | None = None) -> int:
    """Write run ``run_id`` (an id or a name) to ``out`` as JSON Lines; return the event count.

    The export is of the events recorded when it starts: a run still being recorded is
    cut at that point, so the header's event count is exact. ``progress(written)`` is
    called after each page of events. Raises
    :class:`~svasim.store.store.UnknownRunError` for an unknown run.
    """
    run = store.get_run(run_id)
    last = run.event_count
    header = {
        "format": FORMAT,
        "version": VERSION,
        "run": {
            "id": run.id,
            "name": run.name,
            "created_at": run.created_at.isoformat(),
            "config": run.config,
            "policy": run.policy,
            "seed": run.seed,
            "version": run.version,
            "parent_run_id": run.parent_run_id,
        },
        "events": last,
    }
    out.write(_dumps(header) + "\n")
    written = 0
    after = 0
    while after < last:
        page = store.events(run.id, after_seq=after, until_seq=last, limit=_PAGE)
        if not page:
            break
        for e in page:
            out.write(_dumps(e.as_dict()) + "\n")
        written += len(page)
        after = page[-1].seq
        if progress is not None:
            progress(written)
    if written != last:
        # Seqs are gap-free and events are only deleted with their run: the run was
        # deleted while we read it.
        raise ValueError(f"run {run.id} has {last} events but only {written} could be read (was it deleted?)")
    return written


# -- import --------------------------------------------------------------------------------


def _lines(src: Iterable[str]) -> Iterator[tuple[int, str]]:
    """(line number from 1, text) of the non-blank lines."""
    for number, line in enumerate(src, start=1):
        if line.strip():
            yield number, line


def _load(number: int, line: str) -> dict[str, Any]:
    try:
        obj = json.loads(line)
    except json.JSONDecodeError as exc:
        raise ValueError(f"line {number}: not valid JSON ({exc.msg} at column {exc.colno})") from None
    if not isinstance(obj, dict):
        raise ValueError(f"line {number}: expected a JSON object, got {type(obj).__name__}")
    return obj


def _header(number: int, obj: dict[str, Any]) -> tuple[dict[str, Any], int | None]:
    """Check the header line; return its run and its event count (if given)."""
    fmt = obj.get("format")
    if fmt != FORMAT:
        raise ValueError(
            f"line {number}: not an svasim run export (format {fmt!r}, expected {FORMAT!r}); "
            "write one with svasim.exchange.export_jsonl"
        )
    version = obj.get("version")
    if isinstance(version, bool) or not isinstance(version, int) or version < 1:
        raise ValueError(f"line {number}: format version must be a positive integer, got {version!r}")
    if version > VERSION:
        raise ValueError(
            f"line {number}: format version {version} is newer than this svasim reads (up to {VERSION}); "
            "upgrade svasim to import it"
        )
    run = obj.get("run")
    if not isinstance(run, dict):
        raise ValueError(f"line {number}: the header has no 'run' object")
    expected: dict[str, type | tuple[type, ...]] = {
        "name": str,
        "config": dict,
        "policy": str,
        "seed": int,
        "version": str,
    }
    for key, kind in expected.items():
        value = run.get(key)
        if not isinstance(value, kind) or isinstance(value, bool):
            raise ValueError(f"line {number}: run.{key} must be a {getattr(kind, '__name__', kind)}, got {value!r}")
    parent = run.get("parent_run_id")
    if parent is not None and not isinstance(parent, str):
        raise ValueError(f"line {number}: run.parent_run_id must be a string or null, got {parent!r}")
    count = obj.get("events")
    if count is not None and (isinstance(count, bool) or not isinstance(count, int) or count < 0):
        raise ValueError(f"line {number}: 'events' must be a non-negative integer, got {count!r}")
    return run, count


def _transition(number: int, obj: dict[str, Any], expected_seq: int) -> Transition:
    keys = set(obj)
    if keys != set(EVENT_KEYS):
        missing = sorted(set(EVENT_KEYS) - keys)
        unknown = sorted(keys - set(EVENT_KEYS))
        raise ValueError(
            f"line {number}: an event needs exactly {list(EVENT_KEYS)} (missing {missing}, unknown {unknown})"
        )
    seq = obj["seq"]
    if isinstance(seq, bool) or not isinstance(seq, int):
        raise ValueError(f"line {number}: seq must be an integer, got {seq!r}")
    if seq != expected_seq:
        raise ValueError(
            f"line {number}: seq {seq} where {expected_seq} was expected "
            "(events must be in seq order 1, 2, 3, ... without gaps or repeats)"
        )
    for key in ("service", "entity", "kind"):
        if not isinstance(obj[key], str) or not obj[key]:
            raise ValueError(f"line {number}: {key} must be a non-empty string, got {obj[key]!r}")
    for key in ("before", "after", "detail"):
        if obj[key] is not None and not isinstance(obj[key], dict):
            raise ValueError(f"line {number}: {key} must be an object or null, got {type(obj[key]).__name__}")
    cycles = obj["cycles"]
    if isinstance(cycles, bool) or not isinstance(cycles, int) or cycles < 0:
        raise ValueError(f"line {number}: cycles must be a non-negative integer, got {cycles!r}")
    cause = obj["cause"]
    if cause is not None and (isinstance(cause, bool) or not isinstance(cause, int) or not 1 <= cause < seq):
        raise ValueError(
            f"line {number}: cause must be null or the seq of an earlier event (1..{seq - 1}), got {cause!r}"
        )
    return Transition(
        service=obj["service"],
        entity=obj["entity"],
        kind=obj["kind"],
        before=obj["before"],
        after=obj["after"],
        cause=cause,
        cycles=cycles,
        detail=obj["detail"],
    )


def _create(store: Store, run: dict[str, Any], name: str | None) -> RunInfo:
    """The new run: named ``name``, else the original name, else ``<name>-import-N``."""
    meta: dict[str, Any] = {
        "config": run["config"],
        "policy": run["policy"],
        "seed": run["seed"],
        "version": run["version"],
    }
    # The parent (the run this one replayed) is kept only if it exists in this store.
    parent = run.get("parent_run_id")
    if parent is not None:
        try:
            parent = store.get_run(parent).id
        except UnknownRunError:
            parent = None
    if name is not None:
        return store.create_run(name=name, parent_run_id=parent, **meta)
    original: str = run["name"]
    candidates = (original if n == 0 else f"{original}-import-{n}" for n in range(1_000_000))
    for candidate in candidates:
        try:
            store.get_run(candidate)
            continue  # taken (get_run also matches ids: never reuse one as a name)
        except UnknownRunError:
            pass
        try:
            return store.create_run(name=candidate, parent_run_id=parent, **meta)
        except RunExistsError:
            continue  # another importer took it in between
    raise ValueError(f"no free name for the imported run {original!r}")  # pragma: no cover


def import_jsonl(store: Store, src: Iterable[str], *, name: str | None = None) -> RunInfo:
    """Import a run written by :func:`export_jsonl` into ``store`` as a new run.

    The run gets a new id; its name is ``name`` if given (:class:`RunExistsError` if that
    is taken), else the original name, or ``<original>-import-N`` (the smallest free N)
    when the original is taken. Its parent is the original's parent only if that run is
    in this store. Events are appended in order, in batches, and come out with the same
    seqs and causes.

    Raises ValueError, naming the line, for a file that is not an export, a newer format
    version, a malformed line, a gap or disorder in the seqs, or fewer/more events than
    the header announces. Nothing is left behind on error: a partly imported run is
    deleted.
    """
    lines = _lines(src)
    first = next(lines, None)
    if first is None:
        raise ValueError("line 1: empty input, expected an svasim run export header")
    run, announced = _header(first[0], _load(*first))
    created = _create(store, run, name)
    try:
        expected = 1
        batch: list[Transition] = []

        def flush() -> None:
            store.append(created.id, batch)
            start = expected - len(batch)
            for i, t in enumerate(batch):
                if t.seq != start + i:
                    raise ValueError(
                        f"event {start + i} was stored at seq {t.seq}: another writer appended to run "
                        f"{created.id} during the import"
                    )
            batch.clear()

        for number, line in lines:
            batch.append(_transition(number, _load(number, line), expected))
            expected += 1
            if len(batch) >= _PAGE:
                flush()
        if batch:
            flush()
        count = expected - 1
        if announced is not None and count != announced:
            raise ValueError(
                f"the header announces {announced} events but the file has {count} (truncated, or edited?)"
            )
    except BaseException:
        store.delete_run(created.id)
        raise
    return store.get_run(created.id)
