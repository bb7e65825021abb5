#!/usr/bin/env python3
"""svasim benchmarks: each figure printed as a ratio to a baseline measured in the same run.

1. ENQCMD round trips per second from a gRPC client, against the same client's bare
   gRPC echo rate (benchmarks/echo_server.py) on the same machine. Servers run pinned
   to CPU 1 and the client to CPU 0 when the machine has two CPUs or more.
2. Transitions written per second by the store (one transaction per batch, gap-free
   seq assignment), against raw sqlite3 ``executemany`` of the same rows.
3. Events rebuilt per second for the state at a late point of a long run (first from
   scratch, then from a snapshot), against a plain SQL read of the same rows.
4. Replay speed: inputs re-executed per second by ``svasim replay``, against the speed
   at which the same inputs were first served over gRPC.

Usage: python benchmarks/run.py [--calls N] [--rows N]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import grpc

ROOT = Path(__file__).resolve().parent.parent
PINNED = (os.cpu_count() or 1) >= 2


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def spawn(args: list[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    """A server process, pinned to CPU 1 when possible."""
    cmd = (["taskset", "-c", "1"] if PINNED and shutil.which("taskset") else []) + args
    return subprocess.Popen(cmd, env={**os.environ, **(env or {})}, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 30.0) -> None:
    ch = grpc.insecure_channel(f"127.0.0.1:{port}")
    try:
        grpc.channel_ready_future(ch).result(timeout=timeout)
    except grpc.FutureTimeoutError:
        proc.kill()
        raise SystemExit(f"server on {port} did not start: {proc.stderr.read().decode()[-2000:]}") from None
    finally:
        ch.close()


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(15)
    except subprocess.TimeoutExpired:
        proc.kill()


def rate(fn, n: int) -> float:
    """Calls per second of ``fn`` over ``n`` calls (after a short warm-up)."""
    for _ in range(min(50, n)):
        fn()
    t0 = time.perf_counter()
    for _ in range(n):
        fn()
    return n / (time.perf_counter() - t0)


def bench_rpc(calls: int, tmp: Path) -> list[tuple[str, float, str, float]]:
    from svasim_client import Client, noop_descriptor

    results = []
    echo_port = free_port()
    echo = spawn([sys.executable, str(ROOT / "benchmarks" / "echo_server.py"), "--port", str(echo_port)])
    try:
        wait_port(echo_port, echo)
        ch = grpc.insecure_channel(f"127.0.0.1:{echo_port}")
        call = ch.unary_unary("/bench.Echo/Echo")
        payload = bytes(64)
        echo_rate = rate(lambda: call(payload), calls)
        ch.close()
    finally:
        stop(echo)
    for durability in ("commit", "batch"):
        port = free_port()
        db = f"sqlite:///{tmp / f'bench-{durability}.db'}"
        srv = spawn(
            [sys.executable, "-m", "svasim.cli", "up", "--port", str(port), "--db", db, "--durability", durability]
        )
        try:
            wait_port(port, srv)
            with Client(f"127.0.0.1:{port}") as c:
                p = c.create_process("bench")
                comp = c.mmap(p.pid, 4096, populate=True)
                wq = c.open_wq(p.pid)
                tid = p.tids[0]
                c.schedule(tid, 0)
                desc = noop_descriptor(comp)
                c.enqcmd(tid, wq.portal_address, desc)
                enq_rate = rate(lambda c=c, tid=tid, wq=wq, desc=desc: c.enqcmd(tid, wq.portal_address, desc), calls)
                batch = [(tid, wq.portal_address, desc)] * 100
                n_batches = max(1, calls // 100)
                t0 = time.perf_counter()
                for _ in range(n_batches):
                    c.enqcmd_batch(batch)
                batch_rate = n_batches * 100 / (time.perf_counter() - t0)
        finally:
            stop(srv)
        results.append(
            (f"ENQCMD round trips/s (durability={durability})", enq_rate, "bare gRPC echo calls/s", echo_rate)
        )
        results.append(
            (
                f"ENQCMDs/s in EnqcmdBatch of 100 (durability={durability})",
                batch_rate,
                "bare gRPC echo calls/s",
                echo_rate,
            )
        )
    return results


def transition_rows(n: int):
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


def bench_store(rows: int, tmp: Path) -> list[tuple[str, float, str, float]]:
    import sqlite3

    from svasim.store import Store

    batch = 1000
    store = Store.open(f"sqlite:///{tmp / 'store.db'}")
    run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
    ts = transition_rows(rows)
    t0 = time.perf_counter()
    for i in range(0, rows, batch):
        store.append(run.id, ts[i : i + batch])
    store_rate = rows / (time.perf_counter() - t0)
    store.close()

    raw = sqlite3.connect(tmp / "raw.db", isolation_level=None)
    raw.execute("PRAGMA journal_mode=WAL")
    raw.execute("PRAGMA synchronous=NORMAL")
    raw.execute(
        "CREATE TABLE events (run_id TEXT, seq INTEGER, service TEXT, entity TEXT, kind TEXT, before TEXT,"
        " after TEXT, cause INTEGER, cycles INTEGER, PRIMARY KEY (run_id, seq))"
    )
    data = [
        ("r", i + 1, t.service, t.entity, t.kind, json.dumps(t.before), json.dumps(t.after), i or None, t.cycles)
        for i, t in enumerate(ts)
    ]
    t0 = time.perf_counter()
    for i in range(0, rows, batch):
        raw.execute("BEGIN")
        raw.executemany("INSERT INTO events VALUES (?,?,?,?,?,?,?,?,?)", data[i : i + batch])
        raw.execute("COMMIT")
    raw_rate = rows / (time.perf_counter() - t0)
    raw.close()
    return [("store transitions written/s (batches of 1000)", store_rate, "raw sqlite3 executemany rows/s", raw_rate)]


def bench_state(rows: int, tmp: Path) -> list[tuple[str, float, str, float]]:
    import sqlite3

    from svasim.store import Store

    db = tmp / "state.db"
    store = Store.open(f"sqlite:///{db}")
    run = store.create_run(name=None, config={}, policy="linux-5.18", seed=0, version="bench")
    ts = transition_rows(rows)
    for i in range(0, rows, 5000):
        store.append(run.id, ts[i : i + 5000])
    late = rows - 10
    raw = sqlite3.connect(db)
    t0 = time.perf_counter()
    n = len(raw.execute("SELECT * FROM events WHERE run_id = ? AND seq <= ? ORDER BY seq", (run.id, late)).fetchall())
    sql_rate = n / (time.perf_counter() - t0)
    raw.close()
    t0 = time.perf_counter()
    store.state_at(run.id, late)
    cold = late / (time.perf_counter() - t0)
    t0 = time.perf_counter()
    store.state_at(run.id, late - 1)
    warm = (late - 1) / (time.perf_counter() - t0)
    store.close()
    return [
        ("state at a late seq: events rebuilt/s, first time", cold, "plain SQL read rows/s", sql_rate),
        ("state at a late seq: events rebuilt/s, from a snapshot", warm, "plain SQL read rows/s", sql_rate),
    ]


def bench_replay(tmp: Path) -> list[tuple[str, float, str, float]]:
    from svasim.config import ALL_SERVICES, FabricConfig
    from svasim.replay import verify
    from svasim.server import create_server
    from svasim.store import Store
    from svasim.demo import run_workload
    from svasim_client import Client

    db = f"sqlite:///{tmp / 'replay.db'}"
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db))
    try:
        with Client(srv.address) as c:
            t0 = time.perf_counter()
            run_workload(c, threads=3, per_thread=20, size=4096, burst=40)
            original = time.perf_counter() - t0
    finally:
        srv.stop(1)
    store = Store.open(db)
    report = verify(store, srv.run_id)
    assert report.ok, report.difference
    # The original time includes reading results back; count only the recorded inputs.
    return [
        (
            "replay: inputs re-executed/s",
            report.inputs / report.seconds,
            "inputs served/s when recorded",
            report.inputs / original,
        )
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=2000, help="calls per RPC measurement")
    parser.add_argument("--rows", type=int, default=50000, help="rows per store measurement")
    args = parser.parse_args()
    if PINNED:
        os.sched_setaffinity(0, {0})
    print(
        f"svasim benchmarks: {os.cpu_count()} CPUs, server {'pinned to CPU 1' if PINNED else 'unpinned'}, "
        f"client {'pinned to CPU 0' if PINNED else 'unpinned'}"
    )
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = (
            bench_rpc(args.calls, tmp)
            + bench_store(args.rows, tmp)
            + bench_state(args.rows * 4, tmp)
            + bench_replay(tmp)
        )
    width = max(len(r[0]) for r in results)
    for name, value, base_name, base in results:
        print(f"{name:<{width}}  {value:>10.0f}   vs {base_name} {base:>10.0f}   ratio {value / base:6.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
