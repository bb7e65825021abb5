"""svasim processes for the recovery tests: started as a user starts them, killed as a
machine kills them (SIGKILL), and always reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

SVASIM = [sys.executable, "-m", "svasim.cli"]


class Proc:
    """One ``svasim ARGS`` process; its output goes to ``log``."""

    def __init__(self, args: list[str], log: Path) -> None:
        self.args = args
        self.log = log
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> Proc:
        """Start it (again)."""
        with self.log.open("ab") as out:
            env = {**os.environ, "SVASIM_GRACE": "0"}
            self.popen = subprocess.Popen([*SVASIM, *self.args], stdout=out, stderr=out, env=env)
        return self

    def kill(self) -> None:
        """SIGKILL: no grace, nothing flushed that was not already committed."""
        if self.popen is not None and self.popen.poll() is None:
            self.popen.send_signal(signal.SIGKILL)
            self.popen.wait(30)

    def stop(self) -> None:
        """SIGTERM and wait; SIGKILL if it does not stop."""
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.send_signal(signal.SIGTERM)
        try:
            self.popen.wait(30)
        except subprocess.TimeoutExpired:
            self.kill()

    def output(self) -> str:
        """Everything it printed so far."""
        return self.log.read_text(errors="replace")


def run_to_end(args: list[str], timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """``svasim ARGS`` run to its end (a start that is refused ends at once)."""
    return subprocess.run([*SVASIM, *args], capture_output=True, text=True, timeout=timeout)


def wait_serving(address: str, proc: Proc, timeout: float = 60) -> None:
    """Wait until the process at ``address`` reports SERVING; fail with its output if it dies."""
    end = time.monotonic() + timeout
    with grpc.insecure_channel(address) as ch:
        stub = health_pb2_grpc.HealthStub(ch)
        while time.monotonic() < end:
            if proc.popen is not None and proc.popen.poll() is not None:
                raise AssertionError(f"svasim {' '.join(proc.args)} exited: {proc.output()[-2000:]}")
            try:
                if (
                    stub.Check(health_pb2.HealthCheckRequest(), timeout=1).status
                    == health_pb2.HealthCheckResponse.SERVING
                ):
                    return
            except grpc.RpcError:
                pass
            time.sleep(0.05)
    raise AssertionError(f"{address} never served: {proc.output()[-2000:]}")


def first_health(client: Any, timeout: float = 20) -> str:
    """The health status ``client`` (a svasim_client.Client) first gets from a server that
    is still coming up: retried while it does not listen yet."""
    from svasim_api.errors import SvasimError

    deadline = time.monotonic() + timeout
    while True:
        try:
            return str(client.check_health())
        except (grpc.RpcError, SvasimError):  # not listening yet
            assert time.monotonic() < deadline, "the server never listened"
            time.sleep(0.05)
