#!/usr/bin/env python3
"""svasim benchmarks: each figure printed as a ratio to a baseline measured in the same run.

Every figure is measured ``--repeats`` times (default 3), each time next to its baseline,
and printed as the median of the ratios with their spread. Servers run pinned to CPU 1 and
the client to CPU 0 when the machine has two CPUs or more.

1. ENQCMD round trips with ``commit`` durability (NOOP, and MEMMOVE of 4 KiB executed with
   its completion record written), unary and in ``EnqcmdBatch`` of 64, against the same
   client's bare gRPC echo (benchmarks/echo_server.py). The destination bytes and the
   completion records are checked after the timed loop.
2. Store append (batches of 1000 transitions, gap-free seqs, one transaction each) against
   raw ``sqlite3`` ``executemany`` of the same rows, and on PostgreSQL against psycopg
   ``COPY`` of the same rows; each baseline writes into a table with the store's columns
   and indexes, and, as a second reference, into one with the primary key only.
3. State at a late point of a long run (first time, and from a snapshot), and
   ``svasim trace state`` of it with CLI start-up, against a plain SQL SELECT of the
   rows it folds.
4. Replay: inputs re-executed per second against the rate they were served at.
5. The model: in-process ENQCMDs per second on 64 busy CPUs against 4.
6. The compiled model (``make compiled``) against the interpreted one: in-process
   ENQCMDs per second, each in a process of its own. With ``SVASIM_COMPILED=1`` every
   other figure runs on the compiled model (``make bench`` runs figures 1, 4, 5 and 7 so too).
7. The ceilings: the best figures 1 and 4 could reach if a served ENQCMD cost only what it
   cannot do without, each part measured in the same run (a bare gRPC round trip, the
   model's ENQCMD in-process, the commit of the rows it records), as ratios to figure 1's
   and figure 4's baselines: a target above its ceiling needs one of those parts cheaper.

Usage: python benchmarks/run.py [--quick] [--repeats N] [--only FIGURE] [--profile SECONDS [--profile-load stream]
       [--profile-top N]]
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import grpc

ROOT = Path(__file__).resolve().parent.parent
PINNED = (os.cpu_count() or 1) >= 2 and shutil.which("taskset") is not None
#: The PostgreSQL server the baselines and the store share (a database of its own).
PG_SERVER = os.environ.get("SVASIM_BENCH_PG", "postgresql+psycopg://postgres@127.0.0.1:5432")
PG_DATABASE = "svasim_bench"
MEMMOVE_SIZE = 4096
BATCH = 64
#: Submit stream: submissions unanswered at a time, and submissions per request message.
STREAM_WINDOW = 1024
STREAM_PER_MESSAGE = 64
#: Transitions of one unary MEMMOVE request (its input, the ENQCMD, the WQ, the descriptor...).
REQUEST_ROWS = 7
SMALL_ROWS = 7 * 1000


@dataclass
class Figure:
    """One figure: ``value`` measured next to ``base`` in each repeat."""

    name: str
    unit: str
    base_name: str
    values: list[float]
    bases: list[float]
    target: str = ""
    #: Times rather than rates: the ratio is then base / value (above 1: faster than it).
    times: bool = False

    @property
    def ratios(self) -> list[float]:
        """value / base of each repeat (base / value for times), so that higher is better."""
        pairs = zip(self.values, self.bases, strict=True)
        return [b / v if self.times else v / b for v, b in pairs]

    def line(self) -> str:
        """The figure as printed: medians, the ratio's median and its spread."""
        r = self.ratios
        value, base = statistics.median(self.values), statistics.median(self.bases)
        target = f"  (target {self.target})" if self.target else ""
        number = "{:>12,.3f}" if self.times else "{:>12,.0f}"
        return (
            f"{self.name}\n    {number.format(value)} {self.unit}  vs {self.base_name} {number.format(base)}"
            f"   ratio {statistics.median(r):6.3f} [{min(r):.3f}..{max(r):.3f}]{target}"
        )


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def pinned(args: list[str], cpu: int) -> list[str]:
    """``args`` run on CPU ``cpu`` when the machine has two or more."""
    return (["taskset", "-c", str(cpu)] if PINNED else []) + args


def spawn(args: list[str]) -> subprocess.Popen[bytes]:
    """A server process, pinned to CPU 1 when possible."""
    return subprocess.Popen(pinned(args, 1), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_port(port: int, proc: subprocess.Popen[bytes], timeout: float = 60.0) -> None:
    """Return once the server on ``port`` accepts calls; exit with its stderr if it never does."""
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(ch).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        proc.kill()
        err = proc.stderr.read().decode() if proc.stderr else ""
        raise SystemExit(f"server on {port} did not start: {err[-2000:]}") from None
    finally:
        ch.close()


def stop(proc: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL if the process does not exit within 15 s."""
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


@contextmanager
def served(args: list[str], port: int) -> Iterator[subprocess.Popen[bytes]]:
    """A pinned server process listening on ``port`` for the duration of the block."""
    proc = spawn(args)
    try:
        wait_port(port, proc)
        yield proc
    finally:
        stop(proc)


def up_command(port: int, db: str) -> list[str]:
    """``svasim up`` on ``port``, recording into ``db`` with ``commit`` durability: the
    server of the figures that measure served calls."""
    return [sys.executable, "-m", "svasim.cli", "up", "--port", str(port), "--db", db, "--durability", "commit"]


@contextmanager
def echo_server() -> Iterator[Callable[[], Any]]:
    """The bare gRPC echo server (benchmarks/echo_server.py), pinned, for the duration of
    the block; yields one round trip of 64 bytes to it."""
    port = free_port()
    with served([sys.executable, str(ROOT / "benchmarks" / "echo_server.py"), "--port", str(port)], port):
        ch = grpc.insecure_channel(f"127.0.0.1:{port}")
        call = ch.unary_unary("/bench.Echo/Echo")
        payload = bytes(64)
        try:
            yield lambda: call(payload)
        finally:
            ch.close()


def rate(fn: Callable[[], Any], n: int, per_call: int = 1) -> float:
    """Items per second of ``n`` calls of ``fn`` (each doing ``per_call`` items)."""
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n * per_call / (time.perf_counter() - t0)


# -- 1. the RPC path -----------------------------------------------------------------


class MemmoveLoop:
    """A process with a 4 KiB source, a ring of destinations and completion records, and
    an open WQ: the state a user-space DSA submitter sets up before its loop."""

    def __init__(self, client: Any, slots: int = 256) -> None:
        from svasim_client import memmove_descriptor, noop_descriptor

        self.c = client
        self.slots = slots
        proc = client.create_process("bench")
        self.pid, self.tid = proc.pid, proc.tids[0]
        self.src = client.mmap(self.pid, MEMMOVE_SIZE, populate=True)
        self.dst = client.mmap(self.pid, MEMMOVE_SIZE * slots, populate=True)
        self.comp = client.mmap(self.pid, 32 * slots, populate=True)
        self.pattern = bytes((i * 7 + 3) & 0xFF for i in range(MEMMOVE_SIZE))
        client.write(self.pid, self.src, self.pattern)
        self.portal = client.open_wq(self.pid).portal_address
        client.schedule(self.tid, 0)
        self.noop = noop_descriptor(self.comp)
        self.descs = [
            memmove_descriptor(self.src, self.dst + MEMMOVE_SIZE * s, MEMMOVE_SIZE, self.comp + 32 * s)
            for s in range(slots)
        ]
        self.i = 0
        client.enqcmd(self.tid, self.portal, self.noop)  # the #GP fixup, outside the timed loops

    def clear(self) -> None:
        """Zero the destinations and completion records, so a check sees only later work."""
        self.c.write(self.pid, self.dst, bytes(MEMMOVE_SIZE * self.slots))
        self.c.write(self.pid, self.comp, bytes(32 * self.slots))

    def enqcmd_noop(self) -> None:
        """One unary ENQCMD of a NOOP descriptor."""
        self.c.enqcmd(self.tid, self.portal, self.noop)

    def enqcmd_memmove(self) -> None:
        """One unary ENQCMD of a MEMMOVE to the next destination of the ring."""
        r = self.c.enqcmd(self.tid, self.portal, self.descs[self.i % self.slots])
        self.i += 1
        if r.outcome != 1:  # ENQCMD_OUTCOME_ACCEPTED
            raise SystemExit(f"MEMMOVE not accepted: outcome {r.outcome}")

    def batch_memmove(self) -> None:
        """BATCH MEMMOVEs, the next destinations of the ring, in one EnqcmdBatch."""
        items = [(self.tid, self.portal, self.descs[(self.i + k) % self.slots]) for k in range(BATCH)]
        self.i += BATCH
        bad = [r.outcome for r in self.c.enqcmd_batch(items) if r.outcome != 1]
        if bad:
            raise SystemExit(f"{len(bad)} MEMMOVEs of a batch not accepted: outcomes {sorted(set(bad))}")

    def stream_noop(self, n: int) -> None:
        """``n`` NOOP ENQCMDs pipelined over one Submit stream."""
        self._stream([self.noop] * n)

    def stream_memmove(self, n: int) -> None:
        """``n`` MEMMOVEs, the next destinations of the ring, pipelined over one Submit stream."""
        descs = [self.descs[(self.i + k) % self.slots] for k in range(n)]
        self.i += n
        self._stream(descs)

    def _stream(self, descs: list[bytes]) -> None:
        results = self.c.submit_stream(
            ((self.tid, self.portal, d) for d in descs), window=STREAM_WINDOW, per_message=STREAM_PER_MESSAGE
        )
        bad = [r.tag for r in results if r.HasField("error") or r.enqcmd.outcome != 1]
        if bad:
            raise SystemExit(f"{len(bad)} streamed ENQCMDs not accepted, first tag {bad[0]}")

    def check(self) -> None:
        """Every slot written since :meth:`clear`: completion SUCCESS and the bytes copied."""
        from svasim_api import idxd
        from svasim_client import completion_record

        assert self.i >= self.slots, "the timed loop must go round the whole ring"
        comps = self.c.read(self.pid, self.comp, 32 * self.slots)
        for s in range(self.slots):
            rec = completion_record(comps[32 * s : 32 * s + 32])
            if rec.status != idxd.DsaCompStatus.SUCCESS:
                raise SystemExit(f"MEMMOVE to slot {s}: completion status {rec.status}, not SUCCESS")
        got = self.c.read(self.pid, self.dst, MEMMOVE_SIZE * self.slots)
        if got != self.pattern * self.slots:
            raise SystemExit("MEMMOVE destinations do not hold the source bytes")


def bench_rpc(calls: int, repeats: int, tmp: Path, *, unary_only: bool = False) -> list[Figure]:
    """Figure 1: ENQCMD round trips against a bare gRPC echo, ``commit`` durability
    (``unary_only``: the unary NOOP and MEMMOVE ones alone)."""
    from svasim_client import Client

    port = free_port()
    names = ("noop", "memmove", "batch", "stream_noop", "stream_memmove")
    got: dict[str, list[float]] = {k: [] for k in names}
    echo: list[float] = []
    with echo_server() as echo_call, served(up_command(port, f"sqlite:///{tmp / 'rpc.db'}"), port):
        with Client(f"127.0.0.1:{port}") as c:
            loop = MemmoveLoop(c)
            for f in (echo_call, loop.enqcmd_noop, loop.enqcmd_memmove):
                rate(f, 100)  # warm-up
            streamed = max(calls * 4, loop.slots)
            for _ in range(repeats):
                echo.append(rate(echo_call, calls))
                got["noop"].append(rate(loop.enqcmd_noop, calls))
                loop.clear()
                got["memmove"].append(rate(loop.enqcmd_memmove, max(calls, loop.slots)))
                loop.check()
                if unary_only:
                    continue
                loop.clear()
                got["batch"].append(rate(loop.batch_memmove, max(calls // BATCH, loop.slots // BATCH), BATCH))
                loop.check()
                got["stream_noop"].append(rate(lambda: loop.stream_noop(streamed), 1, streamed))
                loop.clear()
                got["stream_memmove"].append(rate(lambda: loop.stream_memmove(streamed), 1, streamed))
                loop.check()
    unary = [
        Figure("ENQCMD NOOP round trips/s, commit", "calls/s", "bare gRPC echo", got["noop"], echo, ">= 0.8"),
        Figure("ENQCMD MEMMOVE 4 KiB round trips/s, commit", "calls/s", "bare gRPC echo", got["memmove"], echo),
    ]
    if unary_only:
        return unary
    return [
        *unary,
        Figure(f"MEMMOVE 4 KiB/s in EnqcmdBatch of {BATCH}, commit", "desc/s", "bare gRPC echo", got["batch"], echo),
        Figure(
            f"MEMMOVE 4 KiB/s in EnqcmdBatch of {BATCH}, commit",
            "desc/s",
            "unary MEMMOVE",
            got["batch"],
            got["memmove"],
            ">= 10, and >= 20,000/s",
        ),
        Figure("ENQCMD NOOP/s over a Submit stream, commit", "desc/s", "bare gRPC echo", got["stream_noop"], echo),
        Figure("ENQCMD NOOP/s over a Submit stream, commit", "desc/s", "unary NOOP", got["stream_noop"], got["noop"]),
        Figure("MEMMOVE 4 KiB/s over a Submit stream, commit", "desc/s", "bare gRPC echo", got["stream_memmove"], echo),
        Figure(
            "MEMMOVE 4 KiB/s over a Submit stream, commit",
            "desc/s",
            "unary MEMMOVE",
            got["stream_memmove"],
            got["memmove"],
            ">= 10, and >= 20,000/s",
        ),
    ]


def profile_server(seconds: float, tmp: Path, out: Path, load: str = "unary", top: int = 20) -> None:
    """py-spy the server for ``seconds`` under a MEMMOVE loop (``load``: unary calls, or
    a Submit stream); print the top entries."""
    from svasim_client import Client

    spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    port = free_port()
    with served(up_command(port, f"sqlite:///{tmp / 'profile.db'}"), port) as srv, Client(f"127.0.0.1:{port}") as c:
        loop = MemmoveLoop(c)
        rate(loop.enqcmd_memmove, 200)
        # The server is a child of taskset: it replaced taskset in place (exec), same pid.
        record = subprocess.Popen(
            [spy, "record", "--pid", str(srv.pid), "--duration", str(int(seconds)), "--format", "raw",
             "--threads", "--output", str(out), "--nonblocking"],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )  # fmt: skip
        while record.poll() is None:
            if load == "stream":
                loop.stream_memmove(4096)
            else:
                loop.enqcmd_memmove()
        if record.returncode != 0:
            raise SystemExit(f"py-spy failed: {record.stderr.read().decode() if record.stderr else ''}")
    print_profile(out, top)


#: Where a sampled stack is spent, by the innermost frame's file (first match wins).
_PROFILE_AREAS = (
    ("model", ("svasim/model/", "svasim_api/idxd")),
    ("store and recorder", ("svasim/store/", "sqlalchemy/", "sqlite3/", "json/", "psycopg/")),
    ("protobuf", ("google/protobuf/",)),
    ("services and wiring", ("svasim/rpc/", "svasim/wiring/", "svasim/server")),
    ("gRPC", ("grpc/", "concurrent/futures/")),
)


def _area(frames: list[str]) -> str:
    for frame in reversed(frames):
        for name, marks in _PROFILE_AREAS:
            if any(m in frame for m in marks):
                return name
    return "other"


def print_profile(raw: Path, top: int = 20) -> None:
    """The heaviest frames of a py-spy ``raw`` (collapsed stacks) profile, by own samples,
    and the share of each part of the server."""
    own: dict[str, int] = {}
    total: dict[str, int] = {}
    areas: dict[str, int] = {}
    samples = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        frames = stack.split(";")[1:] or ["(no Python frame)"]  # the first names the thread
        samples += n
        own[frames[-1]] = own.get(frames[-1], 0) + n
        for f in set(frames):
            total[f] = total.get(f, 0) + n
        area = _area(frames)
        areas[area] = areas.get(area, 0) + n
    print(f"profile of the server: {samples} samples on CPU (idle threads left out)")
    print(
        "  by part: "
        + ", ".join(f"{a} {100 * n / samples:.0f}%" for a, n in sorted(areas.items(), key=lambda kv: -kv[1]))
    )
    print("  own%  total%  frame")
    for f, n in sorted(own.items(), key=lambda kv: -kv[1])[:top]:
        print(f"  {100 * n / samples:5.1f}  {100 * total[f] / samples:5.1f}   {f}")


# -- 2. the store's append -----------------------------------------------------------


def transition_rows(n: int) -> list[Any]:
    """``n`` accel transitions like the ones an accepted descriptor makes, each caused by the last."""
    from svasim.model.transition import Transition

    out = []
    prev = None
    for i in range(n):
        t = Transition(
            "accel",
            f"wq/dsa0/{i % 2}",
            "wq.accept",
            {"occupancy": i % 16},
            {"occupancy": i % 16 + 1, "accepted": i, "desc": i, "pasid": 1},
            prev,
            0,
        )
        out.append(t)
        prev = t
    return out


_COLS = "run_id, seq, service, entity, kind, before, after, cause, cycles, detail, origin, origin_seq"
_PK_ONLY = (
    "CREATE TABLE {name} (run_id VARCHAR(12), seq BIGINT, service VARCHAR, entity VARCHAR, kind VARCHAR,"
    " before {json}, after {json}, cause BIGINT, cycles BIGINT, detail {json}, origin VARCHAR(32),"
    " origin_seq BIGINT, PRIMARY KEY (run_id, seq))"
)


def raw_rows(run_id: str, ts: list[Any], batch: int = 1000) -> list[tuple[Any, ...]]:
    """The rows the store writes for ``ts`` appended ``batch`` at a time, encoded beforehand
    (the baselines do no encoding): the first row of each append names its writer."""
    return [
        (run_id, i + 1, t.service, t.entity, t.kind, json.dumps(t.before), json.dumps(t.after), i or None,
         t.cycles, None, None if i % batch else "bench", i + 1)
        for i, t in enumerate(ts)
    ]  # fmt: skip


def store_append_rate(store: Any, ts: list[Any], batch: int = 1000) -> float:
    """Transitions per second that ``store.append`` writes into a new run, ``batch`` at a time."""
    run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
    for i, t in enumerate(ts):
        t.seq, t.origin_seq = None, i + 1
    t0 = time.perf_counter()
    for i in range(0, len(ts), batch):
        store.append(run.id, ts[i : i + batch], origin="bench", retry=False)
    return len(ts) / (time.perf_counter() - t0)


def sqlite_raw_rate(path: Path, table: str, rows: list[tuple[Any, ...]], batch: int = 1000) -> float:
    """Rows per second of raw sqlite3 executemany into ``table``, one transaction per batch."""
    raw = sqlite3.connect(path, isolation_level=None)
    raw.execute("PRAGMA synchronous=NORMAL")
    sql = f"INSERT INTO {table} ({_COLS}) VALUES ({','.join('?' * 12)})"
    t0 = time.perf_counter()
    for i in range(0, len(rows), batch):
        raw.execute("BEGIN")
        raw.executemany(sql, rows[i : i + batch])
        raw.execute("COMMIT")
    r = len(rows) / (time.perf_counter() - t0)
    raw.close()
    return r


def bench_store_sqlite(rows: int, repeats: int, tmp: Path) -> list[Figure]:
    """Figure 2 on SQLite."""
    from svasim.store import Store

    ts = transition_rows(rows)
    store_r: list[float] = []
    same: list[float] = []
    pk_only: list[float] = []
    small: list[float] = []
    small_base: list[float] = []
    for k in range(repeats):
        path = tmp / f"append-{k}.db"
        store = Store.open(f"sqlite:///{path}")
        # The baseline writes the same rows to a run of its own in the same table; the two
        # take turns at going first, so that neither always meets the bigger indexes.
        base_run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
        data = raw_rows(base_run.id, ts)
        if k % 2:
            same.append(sqlite_raw_rate(path, "events", data))
        store_r.append(store_append_rate(store, ts))
        store.close()
        if not k % 2:
            same.append(sqlite_raw_rate(path, "events", data))
        with sqlite3.connect(path) as raw:
            raw.execute(_PK_ONLY.format(name="events_pk_only", json="TEXT"))
        pk_only.append(sqlite_raw_rate(path, "events_pk_only", data))
        # A unary request's worth per transaction: what the recorder commits when one
        # client waits for each of its requests.
        store = Store.open(f"sqlite:///{path}")
        small_run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
        small_data = raw_rows(small_run.id, ts[:SMALL_ROWS], REQUEST_ROWS)
        if k % 2:
            small_base.append(sqlite_raw_rate(path, "events", small_data, REQUEST_ROWS))
        small.append(store_append_rate(store, ts[:SMALL_ROWS], REQUEST_ROWS))
        store.close()
        if not k % 2:
            small_base.append(sqlite_raw_rate(path, "events", small_data, REQUEST_ROWS))
    return [
        Figure("store append on SQLite, batches of 1000", "rows/s", "raw sqlite3 executemany, same table",
               store_r, same, ">= 0.5"),
        Figure("store append on SQLite, batches of 1000", "rows/s", "raw sqlite3 executemany, primary key only",
               store_r, pk_only, ">= 0.5"),
        Figure(f"store append on SQLite, {REQUEST_ROWS} rows a transaction", "rows/s",
               "raw sqlite3 executemany, same table", small, small_base),
    ]  # fmt: skip


def pg_url() -> str | None:
    """The URL of the benchmark's PostgreSQL database (created if needed), or None if none is reachable."""
    import psycopg
    from sqlalchemy.engine import make_url

    server = make_url(PG_SERVER)
    try:
        with psycopg.connect(
            host=server.host, port=server.port, user=server.username, dbname="postgres", autocommit=True,
            connect_timeout=3,
        ) as conn:  # fmt: skip
            if conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (PG_DATABASE,)).fetchone() is None:
                conn.execute(f"CREATE DATABASE {PG_DATABASE}")
    except psycopg.OperationalError as e:
        print(f"(no PostgreSQL at {server.host}:{server.port}: {str(e).strip()}; its figures are left out)")
        return None
    return server.set(database=PG_DATABASE).render_as_string(hide_password=False)


def pg_copy_rate(url: str, table: str, rows: list[tuple[Any, ...]], batch: int = 1000) -> float:
    """Rows per second of psycopg COPY into ``table``, one transaction per batch."""
    import psycopg
    from sqlalchemy.engine import make_url

    u = make_url(url)
    with psycopg.connect(host=u.host, port=u.port, user=u.username, dbname=u.database) as conn:
        t0 = time.perf_counter()
        for i in range(0, len(rows), batch):
            with conn.transaction(), conn.cursor() as cur, cur.copy(f"COPY {table} ({_COLS}) FROM STDIN") as cp:
                for row in rows[i : i + batch]:
                    cp.write_row(row)
        return len(rows) / (time.perf_counter() - t0)


def bench_store_pg(rows: int, repeats: int) -> list[Figure]:
    """Figure 2 on PostgreSQL: the store against psycopg COPY."""
    import psycopg

    from svasim.store import Store

    url = pg_url()
    if url is None:
        return []
    ts = transition_rows(rows)
    store_r: list[float] = []
    same: list[float] = []
    pk_only: list[float] = []
    store = Store.open(url)
    try:
        for k in range(repeats):
            for r in store.list_runs():
                store.delete_run(r.id)
            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
                conn.execute("VACUUM events")
            base_run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
            data = raw_rows(base_run.id, ts)
            if k % 2:
                same.append(pg_copy_rate(url, "events", data))
            store_r.append(store_append_rate(store, ts))
            if not k % 2:
                same.append(pg_copy_rate(url, "events", data))
            with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
                conn.execute("DROP TABLE IF EXISTS events_pk_only")
                # The store's column types: its event JSON is json on PostgreSQL (migration 0004).
                conn.execute(_PK_ONLY.format(name="events_pk_only", json="JSON"))
            pk_only.append(pg_copy_rate(url, "events_pk_only", data))
        # Leave the benchmark database empty (it is created once and kept).
        for r in store.list_runs():
            store.delete_run(r.id)
        with psycopg.connect(url.replace("postgresql+psycopg", "postgresql"), autocommit=True) as conn:
            conn.execute("DROP TABLE IF EXISTS events_pk_only")
    finally:
        store.close()
    return [
        Figure("store append on PostgreSQL, batches of 1000", "rows/s", "psycopg COPY, same table",
               store_r, same, ">= 0.5"),
        Figure("store append on PostgreSQL, batches of 1000", "rows/s", "psycopg COPY, primary key only",
               store_r, pk_only, ">= 0.5"),
    ]  # fmt: skip


# -- 3. state at a late point --------------------------------------------------------


def bench_state(rows: int, repeats: int, tmp: Path) -> list[Figure]:
    """Figure 3: the state at a late point of a ``rows``-event run against a plain SELECT."""
    from svasim.store import Store
    from svasim.store.schema import snapshots

    db = tmp / "state.db"
    url = f"sqlite:///{db}"
    store = Store.open(url)
    run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
    chunk = 20_000
    for i in range(0, rows, chunk):
        store.append(run.id, transition_rows(min(chunk, rows - i)))
    late = rows - 10
    select_r: list[float] = []
    cold: list[float] = []
    warm: list[float] = []
    cli: list[float] = []
    cli_base: list[float] = []
    for _ in range(repeats):
        with store.engine.begin() as conn:
            conn.execute(snapshots.delete())
        raw = sqlite3.connect(db)
        t0 = time.perf_counter()
        n = len(
            raw.execute("SELECT * FROM events WHERE run_id = ? AND seq <= ? ORDER BY seq", (run.id, late)).fetchall()
        )
        select_s = time.perf_counter() - t0
        raw.close()
        select_r.append(n / select_s)
        t0 = time.perf_counter()
        store.state_at(run.id, late)
        cold.append(late / (time.perf_counter() - t0))
        t0 = time.perf_counter()
        store.state_at(run.id, late - 1)
        warm.append((late - 1) / (time.perf_counter() - t0))
        with store.engine.begin() as conn:
            conn.execute(snapshots.delete())
        cmd = [str(Path(sys.executable).parent / "svasim"), "trace", "state", run.id, "--db", url, "--at", str(late)]
        t0 = time.perf_counter()
        subprocess.run(pinned(cmd, 0), check=True, stdout=subprocess.DEVNULL)
        cli.append(time.perf_counter() - t0)
        cli_base.append(select_s)
    store.close()
    return [
        Figure(f"state at seq {late:,} of {rows:,}, first time", "events/s", "plain SQL SELECT", cold, select_r,
               ">= 0.5"),
        Figure(f"state at seq {late - 1:,} of {rows:,}, from a snapshot", "events/s", "plain SQL SELECT", warm,
               select_r),
        Figure(f"`svasim trace state` at seq {late:,}, start-up included", "s", "plain SQL SELECT", cli,
               cli_base, ">= 0.5: within twice the SELECT's time", times=True),
    ]  # fmt: skip


# -- 4. replay -----------------------------------------------------------------------


def bench_replay(calls: int, repeats: int, tmp: Path) -> list[Figure]:
    """Figure 4: a run of unary MEMMOVEs served over gRPC (commit durability), then replayed."""
    from svasim.replay import verify
    from svasim.store import Store
    from svasim_client import Client

    served_r: list[float] = []
    replay_r: list[float] = []
    whole: list[float] = []
    for k in range(repeats):
        port = free_port()
        db = f"sqlite:///{tmp / f'replay-{k}.db'}"
        with served(up_command(port, db), port), Client(f"127.0.0.1:{port}") as c:
            run_id = c.fabric().run_id
            t0 = time.perf_counter()
            loop = MemmoveLoop(c, slots=64)
            for _ in range(calls):
                loop.enqcmd_memmove()
            seconds = time.perf_counter() - t0
        with Store.open(db) as store:
            t0 = time.perf_counter()
            report = verify(store, run_id)
            whole.append(report.inputs / (time.perf_counter() - t0))
        if not report.ok:
            raise SystemExit(report.difference.describe() if report.difference else "replay failed")
        served_r.append(report.inputs / seconds)
        replay_r.append(report.inputs / report.seconds)
    return [
        Figure("replay: MEMMOVE run's inputs re-executed/s", "inputs/s", "served over gRPC", replay_r, served_r,
               ">= 30"),
        Figure("replay: the whole verify (read the run, re-execute, compare)", "inputs/s", "served over gRPC", whole,
               served_r),
    ]  # fmt: skip


# -- 5. the model against the number of CPUs ------------------------------------------


def model_submitter(ncpus: int) -> tuple[Any, int, int, int, int, int]:
    """An in-process model fabric of ``ncpus`` CPUs, each running a thread of its own
    process (no gRPC, no store), the first of which has a 4 KiB source, destination and
    completion record and an open WQ, past its #GP fixup: (fabric, tid, portal, src, dst,
    comp)."""
    from svasim.model.fabric import ModelFabric
    from svasim_client import noop_descriptor

    fab = ModelFabric(ncpus=ncpus)
    k = fab.kernel
    procs = []
    for i in range(ncpus):
        proc = k.create_process(fab.journal(), f"p{i}")
        k.schedule(fab.journal(), proc.tids[0], i)
        procs.append(proc)
    pid, tid = procs[0].pid, procs[0].tids[0]
    src, dst, comp = (k.mmap(fab.journal(), pid, MEMMOVE_SIZE, True, True).start for _ in range(3))
    portal = k.open_wq(fab.journal(), pid, "dsa0", 0)[0]
    k.enqcmd(fab.journal(), tid, portal, noop_descriptor(comp))  # the #GP fixup, outside timed loops
    return fab, tid, portal, src, dst, comp


def model_enqcmd_rate(ncpus: int, n: int) -> float:
    """In-process ENQCMDs of a 4 KiB MEMMOVE per second on a model fabric of ``ncpus``
    CPUs, each running a thread of its own process (no gRPC, no store)."""
    from svasim_client import memmove_descriptor

    fab, tid, portal, src, dst, comp = model_submitter(ncpus)
    desc = memmove_descriptor(src, dst, MEMMOVE_SIZE, comp)
    return rate(lambda: fab.kernel.enqcmd(fab.journal(), tid, portal, desc), n)


def bench_model(calls: int, repeats: int) -> list[Figure]:
    """Figure 5: what one operation costs the model on 64 busy CPUs against 4 (the end of
    an operation looks at the CPUs it reached, not at every CPU: flat in the CPU count)."""
    wide: list[float] = []
    narrow: list[float] = []
    for _ in range(repeats):
        narrow.append(model_enqcmd_rate(4, calls))
        wide.append(model_enqcmd_rate(64, calls))
    return [
        Figure("model: ENQCMD MEMMOVE 4 KiB in-process, 64 busy CPUs", "ops/s", "4 busy CPUs", wide, narrow,
               ">= 0.9: flat in the CPU count"),
    ]  # fmt: skip


def model_rate_in(compiled: bool, ncpus: int, n: int) -> float:
    """:func:`model_enqcmd_rate` in a process of its own, with the compiled model or not."""
    env = dict(os.environ, SVASIM_COMPILED="1" if compiled else "0")
    cmd = [sys.executable, __file__, "--model-rate", str(ncpus), "--calls", str(n)]
    out = subprocess.run(cmd, env=env, capture_output=True, text=True, check=True).stdout.split()
    if out[0] != str(compiled):
        raise SystemExit(f"asked for {'the compiled' if compiled else 'the interpreted'} model, got the other")
    return float(out[1])


def bench_compiled(calls: int, repeats: int) -> list[Figure]:
    """Figure 6: the compiled model (make compiled, SVASIM_COMPILED=1) against the
    interpreted one, in-process ENQCMDs of a 4 KiB MEMMOVE on 4 busy CPUs."""
    from svasim import compiled

    reason = compiled.stale_reason()
    if reason:
        print(f"compiled model: not measured, {reason} (make compiled)")
        return []
    fast: list[float] = []
    slow: list[float] = []
    for _ in range(repeats):
        slow.append(model_rate_in(False, 4, calls))
        fast.append(model_rate_in(True, 4, calls))
    return [
        Figure("model compiled: ENQCMD MEMMOVE 4 KiB in-process, 4 busy CPUs", "ops/s", "interpreted", fast, slow),
    ]


# -- 7. the ceilings: what the parts of a served ENQCMD allow ---------------------------


def model_requests(n: int) -> tuple[float, float, list[Any], list[Any]]:
    """In-process ENQCMDs of a NOOP and of a 4 KiB MEMMOVE (4 busy CPUs): their rates, and
    the transitions one of each makes after others of its kind (an ENQCMD request's rows
    in a loop of them, its input aside: the device completes the one before it)."""
    from svasim_client import memmove_descriptor, noop_descriptor

    fab, tid, portal, src, dst, comp = model_submitter(4)
    k = fab.kernel
    noop, memmove = noop_descriptor(comp), memmove_descriptor(src, dst, MEMMOVE_SIZE, comp)
    rows = []
    for desc in (noop, memmove):
        for _ in range(2):
            k.enqcmd(fab.journal(), tid, portal, desc)
        j = fab.journal()
        k.enqcmd(j, tid, portal, desc)
        rows.append(j.transitions)
    noop_rate = rate(lambda: k.enqcmd(fab.journal(), tid, portal, noop), n)
    memmove_rate = rate(lambda: k.enqcmd(fab.journal(), tid, portal, memmove), n)
    return noop_rate, memmove_rate, rows[0], rows[1]


def commit_rate(store: Any, request: list[Any], n: int, per_transaction: int) -> float:
    """Requests per second that ``store.append`` commits, each ``request``'s transitions
    behind an input, ``per_transaction`` requests to a transaction (fresh copies, each
    caused by the one before it, as most of a request's are)."""
    from svasim.model.transition import INPUT_KIND, Transition

    run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
    batches = []
    origin_seq = 0
    for _ in range(max(1, n // per_transaction)):
        batch: list[Transition] = []
        for _ in range(per_transaction):
            inp = Transition("cpu", "client", INPUT_KIND, None, {"method": "cpu.Enqcmd", "request": {"tid": "1"}})
            prev: Any = inp
            batch.append(inp)
            for t in request:
                prev = Transition(t.service, t.entity, t.kind, t.before, t.after, prev, t.cycles, t.detail)
                batch.append(prev)
        for t in batch:
            origin_seq += 1
            t.origin_seq = origin_seq
        batches.append(batch)
    t0 = time.perf_counter()
    for batch in batches:
        store.append(run.id, batch, origin="bench", retry=False)
    return len(batches) * per_transaction / (time.perf_counter() - t0)


def bench_ceilings(calls: int, repeats: int, tmp: Path) -> list[Figure]:
    """Figure 7: the best figures 1 and 4 could reach if a served ENQCMD cost only what it
    cannot do without, each part measured in this run: a bare gRPC round trip (the echo),
    the model's ENQCMD (in-process, the active model), and the commit of its rows (one
    transaction per unary request; 64 requests to a transaction for a stream). A target
    above its ceiling cannot be met without making one of those parts cheaper."""
    from svasim.store import Store
    from svasim_client import Client

    port = free_port()
    parts: dict[str, list[float]] = {k: [] for k in ("echo", "served", "noop", "memmove", "c_noop", "c_mm", "g_mm")}
    with echo_server() as echo_call, served(up_command(port, f"sqlite:///{tmp / 'ceil.db'}"), port):
        with Client(f"127.0.0.1:{port}") as c:
            loop = MemmoveLoop(c, slots=64)
            rate(echo_call, 100)
            rate(loop.enqcmd_memmove, 100)
            for k in range(repeats):
                parts["echo"].append(rate(echo_call, calls))
                parts["served"].append(rate(loop.enqcmd_memmove, calls))
                noop, memmove, noop_rows, mm_rows = model_requests(calls)
                parts["noop"].append(noop)
                parts["memmove"].append(memmove)
                with Store.open(f"sqlite:///{tmp / f'ceil-{k}.db'}") as store:
                    parts["c_noop"].append(commit_rate(store, noop_rows, calls, 1))
                    parts["c_mm"].append(commit_rate(store, mm_rows, calls, 1))
                    parts["g_mm"].append(commit_rate(store, mm_rows, calls * 4, BATCH))
    med = {k: statistics.median(v) for k, v in parts.items()}
    print(
        f"  ceiling parts (medians): echo round trip {1e6 / med['echo']:.0f} us; model ENQCMD NOOP "
        f"{1e6 / med['noop']:.0f} us, MEMMOVE {1e6 / med['memmove']:.0f} us; commit of one request's rows: "
        f"NOOP {1e6 / med['c_noop']:.0f} us, MEMMOVE {1e6 / med['c_mm']:.0f} us, MEMMOVE {BATCH} to a "
        f"transaction {1e6 / med['g_mm']:.0f} us each; served unary MEMMOVE {1e6 / med['served']:.0f} us"
    )
    unary = [1 / (1 / e + 1 / m + 1 / c) for e, m, c in zip(parts["echo"], parts["noop"], parts["c_noop"], strict=True)]
    stream = [1 / (1 / m + 1 / g) for m, g in zip(parts["memmove"], parts["g_mm"], strict=True)]
    return [
        Figure("ceiling: ENQCMD NOOP round trips/s if a call cost only the echo, the model and one commit",
               "calls/s", "bare gRPC echo", unary, parts["echo"], ">= 0.8, figure 1's"),
        Figure("ceiling: MEMMOVE 4 KiB/s on a stream if it cost only the model and its rows",
               "desc/s", "unary MEMMOVE served", stream, parts["served"], ">= 10, and >= 20,000/s, figure 1's"),
        Figure("ceiling: replay if re-executing an input cost only the model's ENQCMD", "inputs/s",
               "served over gRPC", parts["memmove"], parts["served"], ">= 30, figure 4's"),
    ]  # fmt: skip


#: The figures ``--only`` names, in the order they run; all but ``unary`` (figure 1's
#: unary round trips alone, a part of ``rpc``) run by default.
FIGURES = ("rpc", "unary", "store", "state", "replay", "model", "compiled", "ceilings")


def main() -> int:
    """Run the benchmarks and print their figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a CI-sized run (fewer calls, rows and events)")
    parser.add_argument("--repeats", type=int, default=3, help="measurements of each figure (median printed)")
    parser.add_argument("--calls", type=int, help="calls per RPC measurement (default 2000; quick 300)")
    parser.add_argument("--rows", type=int, help="rows per append measurement (default 50000; quick 10000)")
    parser.add_argument("--events", type=int, help="events of the state run (default 1000000; quick 100000)")
    parser.add_argument("--profile", type=float, metavar="SECONDS", help="only py-spy the server under MEMMOVEs")
    parser.add_argument(
        "--profile-load", choices=("unary", "stream"), default="unary", help="what --profile runs: unary or streamed"
    )
    parser.add_argument("--profile-top", type=int, default=20, metavar="N", help="frames --profile prints")
    parser.add_argument("--model-rate", type=int, metavar="NCPUS", help=argparse.SUPPRESS)  # for figure 6
    parser.add_argument(
        "--only",
        choices=FIGURES,
        action="append",
        help="these figures (unary: figure 1's unary round trips alone)",
    )
    args = parser.parse_args()
    calls = args.calls or (300 if args.quick else 2000)
    rows = args.rows or (10_000 if args.quick else 50_000)
    events = args.events or (100_000 if args.quick else 1_000_000)
    from svasim import compiled

    if args.model_rate:
        print(compiled.active(), model_enqcmd_rate(args.model_rate, calls))
        return 0
    if PINNED:
        os.sched_setaffinity(0, {0})
    where = "server on CPU 1, client on CPU 0" if PINNED else "unpinned"
    model = "compiled" if compiled.active() else "interpreted"
    print(f"svasim benchmarks: {os.cpu_count()} CPUs, {where}, {model} model; each figure the median of {args.repeats}")
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        if args.profile:
            profile_server(args.profile, tmp, tmp / "profile.txt", args.profile_load, args.profile_top)
            return 0
        only = set(args.only or (f for f in FIGURES if f != "unary"))
        figures: list[Figure] = []
        out = io.StringIO()
        for name, fn in (
            ("rpc", lambda: bench_rpc(calls, args.repeats, tmp)),
            ("unary", lambda: bench_rpc(calls, args.repeats, tmp, unary_only=True)),
            ("store", lambda: bench_store_sqlite(rows, args.repeats, tmp) + bench_store_pg(rows, args.repeats)),
            ("state", lambda: bench_state(events, args.repeats, tmp)),
            ("replay", lambda: bench_replay(calls // 2, args.repeats, tmp)),
            ("model", lambda: bench_model(calls * 2, args.repeats)),
            ("compiled", lambda: bench_compiled(calls * 2, args.repeats)),
            ("ceilings", lambda: bench_ceilings(calls, args.repeats, tmp)),
        ):
            if name in only:
                t0 = time.perf_counter()
                new = fn()
                figures += new
                for f in new:
                    print(f.line(), flush=True)
                print(f"  ({name}: {time.perf_counter() - t0:.0f} s)", file=out)
    print(out.getvalue(), end="")
    return 0


if __name__ == "__main__":
    sys.exit(main())
