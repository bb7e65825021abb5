"""Run one program under the bridge: a fabric (started here or reached at an address),
the bridge, and the program with the preload library."""

from __future__ import annotations

import dataclasses
import os
import shutil
import signal
import struct
import subprocess
import tempfile
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.resources import files
from pathlib import Path
from typing import Any

from svasim.native.bridge import Bridge, Counters
from svasim.native.build import preload_library


@dataclass
class NativeRun:
    """What a native run did: the program's exit status (as a shell reports it: 128+N
    for a death by signal N), the fabric's run id and the bridge's counters."""

    returncode: int
    run_id: str
    counters: Counters


class StaticProgramError(ValueError):
    """The program is statically linked: no preload library can reach it."""


def _statically_linked(program: str) -> bool:
    """Whether ``program`` (found on PATH like execvp does) is an ELF without an
    interpreter (no PT_INTERP): the dynamic loader, and so LD_PRELOAD, never runs."""
    path = shutil.which(program) if "/" not in program else program
    if path is None:
        return False
    try:
        with open(path, "rb") as f:
            head = f.read(64)
            if len(head) < 64 or head[:4] != b"\x7fELF" or head[4] != 2:
                return False  # a script, or not a 64-bit ELF: the kernel or its loader decides
            endian = "<" if head[5] == 1 else ">"
            (phoff,) = struct.unpack_from(endian + "Q", head, 32)
            phentsize, phnum = struct.unpack_from(endian + "HH", head, 54)
            f.seek(phoff)
            table = f.read(phentsize * phnum)
    except OSError:
        return False
    pt_interp = 3
    types = [struct.unpack_from(endian + "I", table, i * phentsize)[0] for i in range(len(table) // phentsize)]
    return pt_interp not in types


def _module_tools(into: Path) -> Path:
    """The lsmod/rmmod/modprobe stand-ins, copied executable into ``into``."""
    into.mkdir(parents=True, exist_ok=True)
    for src in (files("svasim") / "data" / "modtools").iterdir():
        dst = into / src.name
        dst.write_bytes(src.read_bytes())
        dst.chmod(0o755)
    return into


@contextmanager
def _fabric(addr: str | None, config: Any) -> Iterator[Any]:
    from svasim_client import Client

    if addr:
        with Client(addr) as client:
            client.wait_ready(timeout=10)
            yield client
        return
    from svasim.config import FabricConfig
    from svasim.server import create_server

    # The fabric takes the program as a native process, whatever the caller's config says.
    config = dataclasses.replace(config or FabricConfig(port=0), native=True)
    srv = create_server(config)
    try:
        with Client(srv.address) as client:
            yield client
    finally:
        srv.stop(5)


def run_native(
    argv: Sequence[str],
    *,
    addr: str | None = None,
    config: Any = None,
    env: dict[str, str] | None = None,
    module_tools: bool = False,
) -> NativeRun:
    """Run ``argv`` as a native program of a fabric and wait for it.

    With ``addr`` the fabric is the one serving there (its client listener); otherwise
    a whole fabric is started in this process from ``config`` (a
    :class:`~svasim.config.FabricConfig`) and stopped after. ``env`` is the program's
    environment (this process's by default); LD_PRELOAD and the bridge's variables are
    added to it. ``module_tools`` puts stand-ins for ``lsmod``, ``rmmod`` and ``modprobe``
    first on its PATH (svasim's ``data/modtools``): test scripts such as accel-config's
    reload the idxd driver, which on the simulated host disables every device.
    """
    if not argv:
        raise ValueError("no program to run")
    if _statically_linked(argv[0]):
        raise StaticProgramError(
            f"{argv[0]} is statically linked: run-native reaches a program through its dynamic loader (LD_PRELOAD)"
        )
    lib = preload_library()
    with _fabric(addr, config) as client, tempfile.TemporaryDirectory(prefix="svasim-native-") as tmp:
        bridge = Bridge(client, Path(tmp) / "root", Path(tmp) / "bridge.sock")
        bridge.start()
        try:
            penv = dict(os.environ if env is None else env)
            penv.update(bridge.env())
            penv["LD_PRELOAD"] = " ".join(p for p in (str(lib), penv.get("LD_PRELOAD", "")) if p)
            if module_tools:
                penv["PATH"] = f"{_module_tools(Path(tmp) / 'bin')}:{penv.get('PATH', os.defpath)}"
            proc = subprocess.Popen(list(argv), env=penv)
            # ^C reaches the program (same process group); wait for it to finish.
            main = threading.current_thread() is threading.main_thread()
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
            try:
                rc = proc.wait()
            finally:
                if main:
                    signal.signal(signal.SIGINT, previous)
        finally:
            bridge.stop()
        client.flush()
        run_id = client.fabric().run_id
    return NativeRun(returncode=128 - rc if rc < 0 else rc, run_id=run_id, counters=bridge.counters)
