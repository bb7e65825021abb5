"""Configuration of a svasim process: flags, with environment variables as defaults."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from svasim.model.costs import CostTable

ALL_SERVICES = ("cpu", "iommu", "accel", "trace")
DEFAULT_DB = "sqlite:///svasim.db"
DEFAULT_PORT = 50051


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def load_costs(path: str | Path) -> CostTable:
    """A cost table: the defaults with the overrides of a JSON file (name -> cycles)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ValueError(f"cannot read cost table {path}: {e}") from e
    if not isinstance(data, dict):
        raise ValueError(f"{path}: a cost table is a JSON object of name -> cycles")
    return CostTable.from_mapping(data)


def parse_services(text: str) -> tuple[str, ...]:
    """``"cpu,iommu"`` -> ("cpu", "iommu"); ``"all"`` -> every service; unknown names fail."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return ALL_SERVICES
    unknown = [n for n in names if n not in ALL_SERVICES]
    if unknown or not names:
        raise ValueError(f"unknown services {unknown or text!r}; choose from {', '.join(ALL_SERVICES)} or all")
    return tuple(n for n in ALL_SERVICES if n in names)


@dataclass
class FabricConfig:
    """What one svasim process hosts and how it reaches the rest.

    Every field has an environment variable (in brackets) that sets its default.
    """

    #: Services hosted by this process [SVASIM_SERVICES].
    services: tuple[str, ...] = ALL_SERVICES
    #: Address to listen on [SVASIM_HOST].
    host: str = "127.0.0.1"
    #: Port to listen on; 0 picks a free one [SVASIM_PORT].
    port: int = DEFAULT_PORT
    #: SQLAlchemy URL of the store [SVASIM_DB].
    db: str = DEFAULT_DB
    #: Run to record into, by name; created if missing; empty = a new run [SVASIM_RUN].
    run: str = ""
    #: PASID policy [SVASIM_POLICY].
    policy: str = "linux-5.18"
    #: Logical CPUs [SVASIM_CPUS].
    cpus: int = 4
    #: Free a PASID on the mm's last unbind instead of at mm teardown; None = the policy's
    #: own choice (Linux 5.10 freed early) [SVASIM_EARLY_FREE: "1"/"0"].
    early_free: bool | None = None
    #: Seed of the run's randomness [SVASIM_SEED].
    seed: int = 0
    #: JSON file of cost-table overrides [SVASIM_COSTS].
    costs_file: str = ""
    #: "commit": acknowledge a request only once its transitions are committed;
    #: "batch": acknowledge at once, commit in the background [SVASIM_DURABILITY].
    durability: str = "commit"
    #: Peer addresses for services hosted elsewhere [SVASIM_CPU_ADDR, SVASIM_IOMMU_ADDR,
    #: SVASIM_ACCEL_ADDR].
    peers: dict[str, str] = field(default_factory=dict)
    #: Seconds in-flight requests get to finish on SIGTERM [SVASIM_GRACE].
    grace: float = 5.0
    #: Deadline of a call to a peer service, in seconds [SVASIM_PEER_TIMEOUT].
    peer_timeout: float = 30.0

    @classmethod
    def from_env(cls) -> FabricConfig:
        """Defaults taken from the environment."""
        peers = {}
        for svc in ("cpu", "iommu", "accel"):
            addr = os.environ.get(f"SVASIM_{svc.upper()}_ADDR", "")
            if addr:
                peers[svc] = addr
        return cls(
            services=parse_services(_env("SVASIM_SERVICES", "all")),
            host=_env("SVASIM_HOST", "127.0.0.1"),
            port=int(_env("SVASIM_PORT", str(DEFAULT_PORT))),
            db=_env("SVASIM_DB", DEFAULT_DB),
            run=_env("SVASIM_RUN", ""),
            policy=_env("SVASIM_POLICY", "linux-5.18"),
            cpus=int(_env("SVASIM_CPUS", "4")),
            seed=int(_env("SVASIM_SEED", "0")),
            early_free={"": None, "1": True, "0": False}[_env("SVASIM_EARLY_FREE", "").strip()],
            costs_file=_env("SVASIM_COSTS", ""),
            durability=_env("SVASIM_DURABILITY", "commit"),
            peers=peers,
            grace=float(_env("SVASIM_GRACE", "5")),
            peer_timeout=float(_env("SVASIM_PEER_TIMEOUT", "30")),
        )

    def missing_peers(self) -> list[str]:
        """Model services this process needs but neither hosts nor can reach."""
        needed: set[str] = set()
        if "cpu" in self.services:
            needed |= {"accel", "iommu"}
        if "accel" in self.services:
            needed |= {"iommu", "cpu"}
        if "iommu" in self.services:
            needed |= {"cpu", "accel"}
        return sorted(n for n in needed if n not in self.services and n not in self.peers)
