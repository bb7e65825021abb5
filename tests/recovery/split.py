"""A split fabric of three ``svasim serve`` processes (iommu, accel, cpu+trace) on one run."""

from __future__ import annotations

from pathlib import Path

from ..services.fabric_fixtures import free_ports
from .procs import Proc, run_to_end, wait_serving

SERVICES = {"iommu": "iommu", "accel": "accel", "cpu": "cpu,trace"}


class SplitFabric:
    """The three processes, their addresses, and how to restart one of them."""

    def __init__(self, db: str, run: str, logs: Path) -> None:
        self.db = db
        self.run = run
        self.logs = logs
        chosen = free_ports(6)
        self.ports = dict(zip(SERVICES, chosen[:3], strict=True))
        self.peer_ports = dict(zip(SERVICES, chosen[3:], strict=True))
        self.procs: dict[str, Proc] = {}

    @staticmethod
    def services() -> tuple[str, ...]:
        """The names of the three processes."""
        return tuple(SERVICES)

    def address(self, name: str) -> str:
        """The client listener of the process hosting ``name``."""
        return f"127.0.0.1:{self.ports[name]}"

    def args(self, name: str, run: str) -> list[str]:
        """``svasim serve`` arguments of the process hosting ``name``, recording into ``run``."""
        args = ["serve", "--services", SERVICES[name], "--port", str(self.ports[name])]
        args += ["--peer-port", str(self.peer_ports[name]), "--db", self.db, "--run", run]
        for other in SERVICES:
            if other != name:
                args += [f"--{other}-addr", f"127.0.0.1:{self.peer_ports[other]}"]
        return args

    def start(self, name: str, run: str | None = None) -> Proc:
        """Start (or restart) the process hosting ``name`` and wait until it serves."""
        proc = Proc(self.args(name, run or self.run), self.logs / f"{name}.log").start()
        self.procs[name] = proc
        wait_serving(self.address(name), proc)
        return proc

    def start_all(self) -> SplitFabric:
        """Start the three processes (the trace host first creates the run, but any order works)."""
        for name in SERVICES:
            proc = Proc(self.args(name, self.run), self.logs / f"{name}.log").start()
            self.procs[name] = proc
        for name, proc in self.procs.items():
            wait_serving(self.address(name), proc)
        return self

    def restart_refused(self, name: str) -> str:
        """Start ``name`` again on the fabric's run, which must be refused; its error line."""
        done = run_to_end(self.args(name, self.run))
        assert done.returncode != 0, done.stdout + done.stderr
        lines = [ln for ln in done.stderr.splitlines() if ln.startswith("error:")]
        assert len(lines) == 1, done.stderr
        return lines[0]

    def stop(self) -> None:
        """Stop every process."""
        for proc in self.procs.values():
            proc.stop()
