"""Fixtures of the native-bridge tests: the preload library, the probe program, a fabric
with a bridge, and a scripted stand-in for the bridge."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.native import Bridge, preload_library
from svasim.native.protocol import MAX_DATA, REQ_SIZE, Op, Request, pack_response
from svasim.server import create_server
from svasim_client import Client

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="session")
def preload() -> Path:
    """The preload library, built by the project's build (make -C native)."""
    return preload_library()


@pytest.fixture(scope="session")
def probe(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """tests/native/dsa_probe.c, compiled as a DSA program for real hardware would be."""
    out = tmp_path_factory.mktemp("probe") / "dsa_probe"
    cc = os.environ.get("CC", "cc")
    assert shutil.which(cc), f"the native tests need a C compiler ({cc})"
    subprocess.run(
        [cc, "-O2", "-Wall", "-Wextra", "-Werror", "-pthread", "-o", str(out), str(HERE / "dsa_probe.c")], check=True
    )
    return out


@pytest.fixture
def sockdir() -> Iterator[Path]:
    """A short directory for Unix sockets (sun_path holds 107 bytes; tmp_path may not fit)."""
    d = Path(tempfile.mkdtemp(prefix="svn-"))
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def fabric(tmp_path: Path) -> Iterator[Client]:
    """A client of a whole fabric (SQLite store) serving in this process."""
    srv = create_server(
        FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'fabric.db'}", native=True)
    )
    try:
        with Client(srv.address) as c:
            yield c
    finally:
        srv.stop(0)


@pytest.fixture
def bridge(fabric: Client, tmp_path: Path, sockdir: Path) -> Iterator[Bridge]:
    """The bridge of that fabric, serving."""
    b = Bridge(fabric, tmp_path / "root", sockdir / "bridge.sock")
    b.start()
    try:
        yield b
    finally:
        b.stop()


def run_under(env: dict[str, str], preload: Path, *argv: str | Path) -> subprocess.CompletedProcess[str]:
    """Run a program with the preload library and ``env``; its output captured."""
    full = {"PATH": os.environ.get("PATH", ""), "LD_PRELOAD": str(preload), **env}
    return subprocess.run([str(a) for a in argv], env=full, capture_output=True, text=True, timeout=120)


def values(out: str) -> list[str]:
    """The probe's output lines."""
    return [ln for ln in out.splitlines() if ln]


@dataclass
class ScriptedBridge:
    """Answers the preload library as a bridge would, from a script, and keeps what it
    was sent: for tests of the library alone (no fabric)."""

    root: Path
    sock: Path
    submit_result: int = 0
    requests: list[Request] = field(default_factory=list)
    _listener: socket.socket | None = None
    _threads: list[threading.Thread] = field(default_factory=list)

    def env(self) -> dict[str, str]:
        """The library's environment for this stand-in."""
        return {"SVASIM_NATIVE_ROOT": str(self.root), "SVASIM_NATIVE_SOCK": str(self.sock)}

    def start(self) -> None:
        """Serve on the socket."""
        (self.root / "dev/dsa").mkdir(parents=True)
        (self.root / "dev/dsa/wq0.0").touch()
        self._listener = socket.socket(socket.AF_UNIX, socket.SOCK_SEQPACKET)
        self._listener.bind(str(self.sock))
        self._listener.listen(8)
        t = threading.Thread(target=self._accept, daemon=True)
        t.start()
        self._threads.append(t)

    def stop(self) -> None:
        """Stop serving."""
        assert self._listener is not None
        self._listener.shutdown(socket.SHUT_RDWR)
        self._listener.close()
        for t in self._threads:
            t.join(timeout=10)

    def _accept(self) -> None:
        assert self._listener is not None
        while True:
            try:
                conn, _ = self._listener.accept()
            except OSError:
                return
            t = threading.Thread(target=self._serve, args=(conn,), daemon=True)
            t.start()
            self._threads.append(t)

    def _serve(self, conn: socket.socket) -> None:
        with conn:
            while packet := conn.recv(REQ_SIZE + MAX_DATA):
                req = Request.unpack(packet)
                self.requests.append(req)
                if req.op == Op.WQ_OPEN:
                    conn.send(pack_response(0, handle=7, flags=1))
                elif req.op == Op.SUBMIT:
                    conn.send(pack_response(0, result=self.submit_result))
                else:
                    conn.send(pack_response(0))

    def of(self, op: Op) -> list[Request]:
        """The requests of one kind, in order."""
        return [r for r in self.requests if r.op == op]


@pytest.fixture
def scripted(tmp_path: Path, sockdir: Path) -> Iterator[ScriptedBridge]:
    """A scripted bridge serving (see :class:`ScriptedBridge`)."""
    s = ScriptedBridge(tmp_path / "root", sockdir / "scripted.sock")
    s.start()
    try:
        yield s
    finally:
        s.stop()
