"""The split fabric under load, three ``svasim serve`` processes as a user starts them:
many clients each running checked MEMMOVEs through ENQCMD complete work, the only refusal
is RESOURCE_EXHAUSTED (with a RetryInfo, honoured), and no server's memory runs away.

Sized by SVASIM_LOAD_CLIENTS (default 64) and SVASIM_LOAD_SECONDS (default 10); ``make
load`` runs 64 clients for 60 s."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ..recovery.conftest import own_pg_url  # noqa: F401 - a fixture
from ..recovery.split import SplitFabric
from .workload import run_load

CLIENTS = int(os.environ.get("SVASIM_LOAD_CLIENTS", "64"))
SECONDS = float(os.environ.get("SVASIM_LOAD_SECONDS", "10"))
#: Generous: the fabric's simulated memory defaults to 1 GiB, and these clients map 12 KiB each.
RSS_BOUND = 1 << 30


def peak_rss(pid: int) -> int:
    """The peak resident set size of ``pid`` so far, in bytes (VmHWM, kept by the kernel)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM for pid {pid}")


class RssWatch:
    """The largest RSS of some processes, sampled with psutil while a load runs; the
    kernel's VmHWM where psutil is not installed."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.peak = dict.fromkeys(pids, 0)
        self._done = threading.Event()
        try:
            import psutil
        except ImportError:
            self._procs = None
        else:
            self._procs = {name: psutil.Process(pid) for name, pid in pids.items()}
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        while True:
            for name in self.pids:
                rss = self._procs[name].memory_info().rss if self._procs else peak_rss(self.pids[name])
                self.peak[name] = max(self.peak[name], rss)
            if self._done.wait(0.25):
                return

    def __enter__(self) -> RssWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()


class LoadFabric(SplitFabric):
    """The split fabric with a logical CPU for each client."""

    def args(self, name: str, run: str) -> list[str]:
        """``svasim serve`` arguments of ``name``, with ``CLIENTS`` CPUs."""
        return [*super().args(name, run), "--cpus", str(CLIENTS)]


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def db(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The store of the fabric: SQLite, then a PostgreSQL database of its own."""
    return f"sqlite:///{tmp_path / 'load.db'}" if request.param == "sqlite" else request.getfixturevalue("own_pg_url")


@pytest.fixture
def fabric(db: str, tmp_path: Path) -> Iterator[LoadFabric]:
    fab = LoadFabric(db, "load", tmp_path)
    try:
        yield fab.start_all()
    finally:
        fab.stop()


def test_many_clients_on_the_three_process_fabric_complete_checked_work_with_only_backpressure(fabric):
    pids = {name: proc.popen.pid for name, proc in fabric.procs.items()}
    with RssWatch(pids) as rss:
        load = run_load(fabric.address("cpu"), CLIENTS, SECONDS)

    assert load.wedged == 0, f"{load.wedged} clients still running {load.seconds:.0f} s after the start"
    assert load.errors == []
    assert sum(r.wrong_bytes for r in load.clients) == 0
    done = [r.iterations for r in load.clients]
    assert all(n > 0 for n in done), done
    for name, peak in rss.peak.items():
        assert 0 < peak < RSS_BOUND, f"{name} process peaked at {peak >> 20} MiB"
    for name, proc in fabric.procs.items():
        assert proc.popen.poll() is None, f"{name} exited: {proc.output()[-2000:]}"
    print(
        f"\n{CLIENTS} clients x {SECONDS:.0f} s: {load.iterations} MEMMOVEs "
        f"({load.iterations / load.seconds:.1f}/s), p50 {load.latency(0.5) * 1e3:.0f} ms, "
        f"p99 {load.latency(0.99) * 1e3:.0f} ms, {sum(r.exhausted for r in load.clients)} RESOURCE_EXHAUSTED, "
        f"{sum(r.wq_full for r in load.clients)} WQ full; peak RSS "
        + ", ".join(f"{n} {p >> 20} MiB" for n, p in rss.peak.items())
    )
