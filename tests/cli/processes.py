"""``svasim`` processes for the CLI tests: started as a user starts them, stopped after."""

from __future__ import annotations

import signal
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager

import grpc

from ..services.fabric_fixtures import free_port

SVASIM = [sys.executable, "-m", "svasim.cli"]


def start(*args: str, env: dict[str, str] | None = None) -> subprocess.Popen:
    """``svasim ARGS`` in the background, its output in pipes."""
    return subprocess.Popen([*SVASIM, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)


def wait_ready(addr: str, proc: subprocess.Popen) -> None:
    """Wait until ``addr`` accepts connections; fail with the process's stderr if it never does."""
    ch = grpc.insecure_channel(addr)
    try:
        grpc.channel_ready_future(ch).result(timeout=30)
    except grpc.FutureTimeoutError:
        proc.kill()
        raise AssertionError(proc.communicate()[1]) from None
    finally:
        ch.close()


@contextmanager
def up(db: str, *args: str) -> Iterator[tuple[str, subprocess.Popen]]:
    """``svasim up`` on a free port, ready: (its address, the process). Stopped by SIGTERM
    at the end unless the test already stopped it."""
    port = free_port()
    proc = start("up", "--port", str(port), "--db", db, *args)
    try:
        addr = f"127.0.0.1:{port}"
        wait_ready(addr, proc)
        yield addr, proc
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            proc.wait(30)
        proc.communicate()
