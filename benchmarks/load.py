#!/usr/bin/env python3
"""Load: the split fabric (three ``svasim serve`` processes) against ``svasim up`` (one).

The same workload on each, on a fresh SQLite store: 32 concurrent clients, each MEMMOVEs of
4 KiB through ENQCMD and WaitCompletion in a loop, every destination byte checked, a
RESOURCE_EXHAUSTED refusal retried after its RetryInfo delay. The servers are pinned to
CPU 1 (``taskset -c 1``) and the clients to CPU 0, so both fabrics get the same one core
to serve with. Prints throughput (checked MEMMOVEs per second) and p50/p99 latency of an
iteration for each, and the ratio split / one-process; then, for each fabric, where the
difference goes: the servers' CPU time per iteration (each process's, read from /proc) and
the store transactions committed per iteration (every cross-process call commits on both
sides before it answers, so that the caller's next transition can name the callee's last
one as its cause).

Usage: python benchmarks/load.py [--quick] [--clients N] [--seconds S]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
from contextlib import closing
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.load.workload import LoadResult, run_load  # noqa: E402
from tests.recovery.procs import SVASIM, Proc, wait_serving  # noqa: E402
from tests.recovery.split import SERVICES, SplitFabric  # noqa: E402
from tests.services.fabric_fixtures import free_port  # noqa: E402

SERVER_CPU = "1"
CLIENT_CPU = 0


class PinnedProc(Proc):
    """A ``svasim`` process pinned to SERVER_CPU."""

    def start(self) -> PinnedProc:
        """Start it under ``taskset`` (which execs it: the pid is the server's)."""
        with self.log.open("ab") as out:
            env = {**os.environ, "SVASIM_GRACE": "0"}
            self.popen = subprocess.Popen(
                ["taskset", "-c", SERVER_CPU, *SVASIM, *self.args], stdout=out, stderr=out, env=env
            )
        return self


class PinnedSplit(SplitFabric):
    """The three-process fabric, every process on SERVER_CPU, a CPU for each client."""

    def __init__(self, db: str, run: str, logs: Path, cpus: int) -> None:
        super().__init__(db, run, logs)
        self.cpus = cpus

    def args(self, name: str, run: str) -> list[str]:
        """``svasim serve`` arguments of ``name`` with the fabric's CPUs."""
        return [*super().args(name, run), "--cpus", str(self.cpus)]

    def start_all(self) -> PinnedSplit:
        """Start the three processes, pinned, and wait until each serves."""
        for name in SERVICES:
            self.procs[name] = PinnedProc(self.args(name, self.run), self.logs / f"{name}.log").start()
        for name, proc in self.procs.items():
            wait_serving(self.address(name), proc)
        return self


def cpu_seconds(pid: int) -> float:
    """User and system CPU time of process ``pid`` so far, in seconds."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class Cost:
    """What the servers spent on a load: CPU seconds per process, and the store's rows
    and transactions (each transaction's first row names its writer)."""

    def __init__(self) -> None:
        self.cpu: dict[str, float] = {}
        self.rows = 0
        self.transactions = 0

    def measure(self, pids: dict[str, int], address: str, clients: int, seconds: float) -> LoadResult:
        """Run the load, taking each process's CPU time around it."""
        before = {name: cpu_seconds(pid) for name, pid in pids.items()}
        result = run_load(address, clients, seconds)
        self.cpu = {name: cpu_seconds(pid) - before[name] for name, pid in pids.items()}
        return result

    def count(self, db: Path) -> None:
        """The rows and transactions the run committed (read once the servers stopped)."""
        with closing(sqlite3.connect(db)) as c:
            self.rows = c.execute("SELECT count(*) FROM events").fetchone()[0]
            self.transactions = c.execute("SELECT count(*) FROM events WHERE origin IS NOT NULL").fetchone()[0]

    def line(self, name: str, iterations: int) -> str:
        """Per iteration: CPU microseconds of each process and in all, rows, transactions."""
        n = max(iterations, 1)
        each = ", ".join(f"{k} {v * 1e6 / n:,.0f}" for k, v in self.cpu.items())
        total = sum(self.cpu.values()) * 1e6 / n
        return (
            f"{name:<12} server CPU {total:,.0f} us/iteration ({each}); "
            f"{self.rows / n:.1f} rows and {self.transactions / n:.1f} transactions committed/iteration"
        )


def one_process(tmp: Path, clients: int, seconds: float, cost: Cost) -> LoadResult:
    """The workload against ``svasim up``."""
    port = free_port()
    args = ["up", "--port", str(port), "--db", f"sqlite:///{tmp / 'up.db'}", "--cpus", str(clients)]
    proc = PinnedProc(args, tmp / "up.log").start()
    try:
        wait_serving(f"127.0.0.1:{port}", proc)
        assert proc.popen is not None
        result = cost.measure({"up": proc.popen.pid}, f"127.0.0.1:{port}", clients, seconds)
    finally:
        proc.stop()
    cost.count(tmp / "up.db")  # once the server has stopped: everything it took is committed
    return result


def split(tmp: Path, clients: int, seconds: float, cost: Cost) -> LoadResult:
    """The workload against the three-process fabric."""
    fabric = PinnedSplit(f"sqlite:///{tmp / 'split.db'}", "load", tmp, clients)
    try:
        fabric.start_all()
        pids = {name: p.popen.pid for name, p in fabric.procs.items() if p.popen is not None}
        result = cost.measure(pids, fabric.address("cpu"), clients, seconds)
    finally:
        fabric.stop()
    cost.count(tmp / "split.db")
    return result


def row(name: str, r: LoadResult) -> str:
    """One line of the table."""
    refused = sum(c.exhausted for c in r.clients)
    return (
        f"{name:<12} {r.iterations:>8} {r.iterations / r.seconds:>9.1f} {r.latency(0.5) * 1e3:>8.0f} "
        f"{r.latency(0.99) * 1e3:>8.0f} {refused:>10} {r.seconds:>7.1f}"
    )


def main() -> None:
    """Run both fabrics and print the table."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a short run (5 s each)")
    ap.add_argument("--clients", type=int, default=32)
    ap.add_argument("--seconds", type=float, default=None, help="time of each run (default 30, 5 with --quick)")
    opts = ap.parse_args()
    seconds = opts.seconds if opts.seconds is not None else (5.0 if opts.quick else 30.0)
    if opts.clients < 1 or seconds <= 0:
        ap.error("--clients and --seconds must be positive")
    os.sched_setaffinity(0, {CLIENT_CPU})  # the client threads inherit it
    with tempfile.TemporaryDirectory(prefix="svasim-load-") as d:
        tmp = Path(d)
        costs = {"one-process": Cost(), "split": Cost()}
        results = {
            "one-process": one_process(tmp, opts.clients, seconds, costs["one-process"]),
            "split": split(tmp, opts.clients, seconds, costs["split"]),
        }
        if any(r.errors for r in results.values()):
            # The servers' side of a failure, before their logs go with the directory.
            for log in sorted(tmp.glob("*.log")):
                text = log.read_text(errors="replace")
                if "Traceback" in text:
                    print(f"{log.name}, first traceback:\n" + text[text.index("Traceback") :][:3000], file=sys.stderr)
    print(f"load: {opts.clients} clients x {seconds:g} s, MEMMOVE 4 KiB, servers on CPU {SERVER_CPU}, SQLite")
    print(f"{'fabric':<12} {'MEMMOVEs':>8} {'iter/s':>9} {'p50 ms':>8} {'p99 ms':>8} {'EXHAUSTED':>10} {'wall s':>7}")
    failed = False
    for name, r in results.items():
        print(row(name, r))
        if r.errors or r.wedged:
            failed = True
            print(f"  {name}: {len(r.errors)} errors, {r.wedged} wedged clients; first: {r.errors[:3]}")
    for name, r in results.items():
        print(costs[name].line(name, r.iterations))
    one, two = results["one-process"], results["split"]
    ratio = (two.iterations / two.seconds) / (one.iterations / one.seconds) if one.iterations else float("nan")
    print(
        f"ratio split / one-process: throughput {ratio:.2f}x, p50 {two.latency(0.5) / one.latency(0.5):.2f}x, "
        f"p99 {two.latency(0.99) / one.latency(0.99):.2f}x"
    )
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
