"""Health and metrics of the split fabric, three ``svasim serve`` processes as a user
starts them: health goes NOT_SERVING when the iommu process is killed and SERVING once it
is back, and each process's endpoint counts the calls of its own listeners."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from collections.abc import Callable, Iterator

import pytest

from svasim_client import Client

from ..cli.processes import start, wait_ready
from ..services.fabric_fixtures import free_port
from .scrape import scrape, value
from .workload import memmoves

NAMES = ("iommu", "accel", "cpu")
SERVICES = {"iommu": "iommu", "accel": "accel", "cpu": "cpu,trace"}


class Split:
    """The three processes of a split fabric on one store, and their ports."""

    def __init__(self, db: str) -> None:
        self.db = db
        self.run = f"split-health-{free_port()}"
        self.ports = {n: free_port() for n in NAMES}
        self.peer_ports = {n: free_port() for n in NAMES}
        self.metrics_ports = {n: free_port() for n in NAMES}
        self.procs: dict[str, subprocess.Popen] = {}

    def start(self, name: str) -> None:
        """Start (or start again) the process of ``name`` and wait until it listens."""
        env = {**os.environ, **{f"SVASIM_{n.upper()}_ADDR": f"127.0.0.1:{p}" for n, p in self.peer_ports.items()}}
        self.procs[name] = proc = start(
            "serve",
            "--services",
            SERVICES[name],
            "--port",
            str(self.ports[name]),
            "--peer-port",
            str(self.peer_ports[name]),
            "--metrics-port",
            str(self.metrics_ports[name]),
            "--db",
            self.db,
            "--run",
            self.run,
            env=env,
        )
        wait_ready(f"127.0.0.1:{self.ports[name]}", proc)

    def kill(self, name: str) -> None:
        """SIGKILL the process of ``name``: no goodbye to its peers."""
        proc = self.procs[name]
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
        proc.communicate()

    def stop(self) -> None:
        """SIGTERM every process still running and reap them all."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
            proc.communicate()


@pytest.fixture
def split(tmp_path) -> Iterator[Split]:
    fabric = Split(f"sqlite:///{tmp_path / 'split.db'}")
    try:
        for name in NAMES:
            fabric.start(name)
        yield fabric
    finally:
        fabric.stop()


def eventually(what: str, predicate: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait until ``predicate()`` holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"{what} within {timeout} s"
        time.sleep(0.1)


def test_health_follows_a_killed_and_restarted_peer_and_each_process_counts_its_own_calls(split):
    cpu = Client(f"127.0.0.1:{split.ports['cpu']}")
    accel = Client(f"127.0.0.1:{split.ports['accel']}")
    try:
        eventually("the split fabric serving", lambda: cpu.check_health() == "SERVING")

        # Killed before it holds any state of the run: a part of a split fabric cannot
        # resume a run with events of its own, and that is not what this test is about.
        split.kill("iommu")
        eventually("cpu NOT_SERVING after the iommu was killed", lambda: cpu.check_health() == "NOT_SERVING", 10)
        assert cpu.check_health("svasim.cpu.v1.CpuService") == "NOT_SERVING"
        # The trace service needs no peer: it can still do its work.
        assert cpu.check_health("svasim.trace.v1.TraceService") == "SERVING"
        eventually("accel NOT_SERVING", lambda: accel.check_health("svasim.accel.v1.AccelService") == "NOT_SERVING", 10)
        assert value(scrape(split.metrics_ports["cpu"]), "svasim_health_serving", grpc_service="") == 0

        split.start("iommu")
        eventually("cpu SERVING once the iommu is back", lambda: cpu.check_health() == "SERVING")
        eventually("accel SERVING", lambda: accel.check_health() == "SERVING")
        assert cpu.check_health("svasim.cpu.v1.CpuService") == "SERVING"
        assert value(scrape(split.metrics_ports["cpu"]), "svasim_health_serving", grpc_service="") == 1

        # The fabric works again. The cpu process served the client's ENQCMDs; the accel
        # process served the submissions they made, on its peer listener.
        memmoves(cpu, 2)
        on_cpu = scrape(split.metrics_ports["cpu"])
        on_accel = scrape(split.metrics_ports["accel"])
        assert value(on_cpu, "svasim_grpc_server_handled_total", grpc_method="Enqcmd", grpc_code="OK") == 2
        assert value(on_cpu, "svasim_grpc_server_handled_total", listener="peer", grpc_method="Enqcmd") == 0
        submit = dict(listener="peer", grpc_service="svasim.accel.v1.AccelDeviceService", grpc_method="Submit")
        assert value(on_accel, "svasim_grpc_server_handled_total", **submit, grpc_code="OK") == 2
        assert value(on_accel, "svasim_wq_accepted_total", device="dsa0", wq="0") == 2
        assert value(on_accel, "svasim_grpc_server_handled_total", grpc_method="Enqcmd") == 0
        on_iommu = scrape(split.metrics_ports["iommu"])
        assert value(on_iommu, "svasim_grpc_server_handled_total", listener="peer", grpc_method="BindDevice") >= 1
    finally:
        cpu.close()
        accel.close()
