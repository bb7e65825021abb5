"""Configuration of a svasim process: flags, with environment variables as defaults."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from svasim.model.costs import CostTable
from svasim.model.evl import IDXD_EVL_SIZE_MAX, IDXD_EVL_SIZE_MIN
from svasim.model.iommu import PRQ_ENTRIES, PRQ_MAX_ENTRIES, PRQ_MIN_ENTRIES
from svasim.model.memory import DEFAULT_MEMORY_SIZE

ALL_SERVICES = ("cpu", "iommu", "accel", "trace")
MODEL_SERVICES = ("cpu", "iommu", "accel")
DEFAULT_DB = "sqlite:///svasim.db"
DEFAULT_PORT = 50051
#: Port of the peer listener when a process has peers elsewhere and none is given.
DEFAULT_PEER_PORT = 50052
LOOPBACK_HOSTS = ("127.0.0.1", "::1", "localhost", "[::1]")


class ConfigError(ValueError):
    """A configuration value that cannot work: one line says which and why."""


def _env(name: str, default: str) -> str:
    value = os.environ.get(name)
    return default if value is None or value == "" else value


def _env_int(name: str, default: int | None) -> int | None:
    text = _env(name, "")
    if not text:
        return default
    try:
        return int(text)
    except ValueError:
        raise ConfigError(f"{name} must be an integer, got {text!r}") from None


def _env_float(name: str, default: float) -> float:
    text = _env(name, "")
    if not text:
        return default
    try:
        return float(text)
    except ValueError:
        raise ConfigError(f"{name} must be a number, got {text!r}") from None


def _env_bool(name: str) -> bool | None:
    text = _env(name, "").strip()
    if text not in ("", "1", "0"):
        raise ConfigError(f"{name} must be 1 or 0 (or unset), got {text!r}")
    return {"": None, "1": True, "0": False}[text]


def hostport(host: str, port: int) -> str:
    """``host:port`` as gRPC takes it (an IPv6 address in brackets)."""
    return f"[{host}]:{port}" if ":" in host and not host.startswith("[") else f"{host}:{port}"


def check_port(what: str, port: int) -> None:
    """Refuse a port number that no socket can have (0 picks a free port)."""
    if not 0 <= port <= 65535:
        raise ConfigError(f"{what} {port} is out of range: a port is 0..65535 (0 picks a free one)")


def load_costs(path: str | Path) -> CostTable:
    """A cost table: the defaults with the overrides of a JSON file (name -> cycles)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"cannot read cost table {path}: {e}") from e
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: a cost table is a JSON object of name -> cycles")
    try:
        return CostTable.from_mapping(data)
    except ValueError as e:
        raise ConfigError(f"{path}: {e}") from None


def parse_services(text: str) -> tuple[str, ...]:
    """``"cpu,iommu"`` -> ("cpu", "iommu"); ``"all"`` -> every service; unknown names fail."""
    names = [s.strip() for s in text.split(",") if s.strip()]
    if names == ["all"]:
        return ALL_SERVICES
    unknown = [n for n in names if n not in ALL_SERVICES]
    if unknown or not names:
        raise ConfigError(f"unknown services {unknown or text!r}; choose from {', '.join(ALL_SERVICES)} or all")
    return tuple(n for n in ALL_SERVICES if n in names)


#: The most client requests the gate may let wait (SVASIM_MAX_QUEUED).
MAX_QUEUED_LIMIT = 4096


@dataclass
class FabricConfig:
    """What one svasim process hosts and how it reaches the rest.

    Every field has an environment variable (in brackets) that sets its default.
    """

    #: Services hosted by this process [SVASIM_SERVICES].
    services: tuple[str, ...] = ALL_SERVICES
    #: Address of the client listener [SVASIM_HOST].
    host: str = "127.0.0.1"
    #: Port of the client listener; 0 picks a free one [SVASIM_PORT].
    port: int = DEFAULT_PORT
    #: Address of the peer listener, loopback unless peers are authenticated by mTLS
    #: [SVASIM_PEER_HOST].
    peer_host: str = "127.0.0.1"
    #: Port of the peer listener; 0 picks a free one; None: DEFAULT_PEER_PORT when the
    #: process has peers elsewhere, no peer listener when it hosts the whole fabric
    #: [SVASIM_PEER_PORT].
    peer_port: int | None = None
    #: Allow a non-loopback peer listener without mTLS, e.g. on a private container
    #: network [SVASIM_PEER_INSECURE: "1"/"0"].
    peer_insecure: bool = False
    #: PEM files for mutual TLS between peers: this process's certificate and key, and
    #: the CA a peer's certificate must be signed by; all three or none
    #: [SVASIM_PEER_TLS_CERT, SVASIM_PEER_TLS_KEY, SVASIM_PEER_TLS_CA].
    peer_tls_cert: str = ""
    peer_tls_key: str = ""
    peer_tls_ca: str = ""
    #: PEM certificate and key for TLS on the client listener; both or none
    #: [SVASIM_TLS_CERT, SVASIM_TLS_KEY].
    tls_cert: str = ""
    tls_key: str = ""
    #: SQLAlchemy URL of the store [SVASIM_DB].
    db: str = DEFAULT_DB
    #: Bring the store's schema to the current revision on start; off when a one-shot
    #: ``svasim db upgrade`` does it for every service of a fabric [SVASIM_MIGRATE: "1"/"0"].
    migrate: bool = True
    #: Run to record into, by name; created if missing; empty = a new run [SVASIM_RUN].
    run: str = ""
    #: PASID policy [SVASIM_POLICY].
    policy: str = "linux-5.18"
    #: Logical CPUs [SVASIM_CPUS].
    cpus: int = 4
    #: Engines of each accelerator device; all start in group 0 [SVASIM_ENGINES].
    engines: int = 2
    #: Groups of each accelerator device (GRPCAP num_groups) [SVASIM_GROUPS].
    groups: int = 4
    #: WQs of each accelerator device (WQCAP num_wqs); beyond the first two they start
    #: unconfigured [SVASIM_WQS].
    wqs: int = 2
    #: Whether a submission runs the accelerator's engines up to the submitter's time
    #: (on) or the devices run only when told, by Advance (off) [SVASIM_AUTO_RUN: "1"/"0"].
    auto_run: bool = True
    #: Whether a blocking page fault's request waits in the IOMMU's page request queue
    #: and is answered later on the device's event queue, so the PRQ can fill and
    #: overflow (on), or is answered at once (off) [SVASIM_ASYNC_PAGE_REQUESTS: "1"/"0"].
    async_page_requests: bool = False
    #: Whether the devices have an event log (GENCAP evl_support) [SVASIM_EVL: "1"/"0"].
    evl: bool = False
    #: Entries of a device's event log at boot when it has one: idxd_init_evl() (Linux
    #: drivers/dma/idxd/init.c) starts at IDXD_EVL_SIZE_MIN, 64 [SVASIM_EVL_SIZE].
    evl_size: int = IDXD_EVL_SIZE_MIN
    #: Entries of the IOMMU's page request queue (PQA_REG.PQS; Linux's PRQ_ORDER 4 gives
    #: 2048) [SVASIM_PRQ_ENTRIES].
    prq_entries: int = PRQ_ENTRIES
    #: Simulated physical memory in bytes, a multiple of 4096; mmap with populate, page
    #: faults and page tables beyond it are refused with ENOMEM [SVASIM_MEMORY].
    memory: int = DEFAULT_MEMORY_SIZE
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
    #: Peer listener addresses (host:peer_port) of services hosted elsewhere
    #: [SVASIM_CPU_ADDR, SVASIM_IOMMU_ADDR, SVASIM_ACCEL_ADDR].
    peers: dict[str, str] = field(default_factory=dict)
    #: Seconds in-flight requests get to finish on SIGTERM [SVASIM_GRACE].
    grace: float = 5.0
    #: Deadline of a call to a peer service, in seconds [SVASIM_PEER_TIMEOUT].
    peer_timeout: float = 30.0
    #: Client requests that may wait for their turn (one runs at a time); more are
    #: refused with RESOURCE_EXHAUSTED and a RetryInfo [SVASIM_MAX_QUEUED]. Each
    #: listener has a worker thread for each of them and 16 more.
    max_queued: int = 32
    #: Seconds a client request may wait for its turn before it is refused the same way
    #: [SVASIM_QUEUE_TIMEOUT].
    queue_timeout: float = 5.0

    #: Take native processes (CreateProcess with a native_pid: real programs under
    #: ``svasim run-native``, whose memory the devices reach with process_vm_readv/writev);
    #: only for a cpu service on the programs' host [SVASIM_NATIVE: "1"/"0"].
    native: bool = False

    #: Port of the Prometheus metrics endpoint (HTTP, or HTTPS with the client listener's
    #: certificate); 0 picks a free one; None: no endpoint [SVASIM_METRICS_PORT].
    metrics_port: int | None = None

    @classmethod
    def from_env(cls) -> FabricConfig:
        """Defaults taken from the environment; ConfigError names a variable that is wrong."""
        peers = {}
        for svc in MODEL_SERVICES:
            addr = os.environ.get(f"SVASIM_{svc.upper()}_ADDR", "")
            if addr:
                peers[svc] = addr
        early_free = _env_bool("SVASIM_EARLY_FREE")
        migrate = _env_bool("SVASIM_MIGRATE")
        native = _env_bool("SVASIM_NATIVE")
        auto_run = _env_bool("SVASIM_AUTO_RUN")
        return cls(
            services=parse_services(_env("SVASIM_SERVICES", "all")),
            host=_env("SVASIM_HOST", "127.0.0.1"),
            port=_env_int("SVASIM_PORT", DEFAULT_PORT) or 0,
            peer_host=_env("SVASIM_PEER_HOST", "127.0.0.1"),
            peer_port=_env_int("SVASIM_PEER_PORT", None),
            peer_insecure=bool(_env_bool("SVASIM_PEER_INSECURE")),
            peer_tls_cert=_env("SVASIM_PEER_TLS_CERT", ""),
            peer_tls_key=_env("SVASIM_PEER_TLS_KEY", ""),
            peer_tls_ca=_env("SVASIM_PEER_TLS_CA", ""),
            tls_cert=_env("SVASIM_TLS_CERT", ""),
            tls_key=_env("SVASIM_TLS_KEY", ""),
            db=_env("SVASIM_DB", DEFAULT_DB),
            migrate=True if migrate is None else migrate,
            native=bool(native),
            run=_env("SVASIM_RUN", ""),
            policy=_env("SVASIM_POLICY", "linux-5.18"),
            cpus=_env_int("SVASIM_CPUS", 4) or 0,
            engines=_env_int("SVASIM_ENGINES", 2) or 0,
            groups=_env_int("SVASIM_GROUPS", 4) or 0,
            wqs=_env_int("SVASIM_WQS", 2) or 0,
            auto_run=True if auto_run is None else auto_run,
            async_page_requests=bool(_env_bool("SVASIM_ASYNC_PAGE_REQUESTS")),
            evl=bool(_env_bool("SVASIM_EVL")),
            evl_size=_env_int("SVASIM_EVL_SIZE", IDXD_EVL_SIZE_MIN) or 0,
            prq_entries=_env_int("SVASIM_PRQ_ENTRIES", PRQ_ENTRIES) or 0,
            memory=_env_int("SVASIM_MEMORY", DEFAULT_MEMORY_SIZE) or 0,
            seed=_env_int("SVASIM_SEED", 0) or 0,
            early_free=early_free,
            costs_file=_env("SVASIM_COSTS", ""),
            durability=_env("SVASIM_DURABILITY", "commit"),
            peers=peers,
            grace=_env_float("SVASIM_GRACE", 5.0),
            peer_timeout=_env_float("SVASIM_PEER_TIMEOUT", 30.0),
            max_queued=_env_int("SVASIM_MAX_QUEUED", 32) or 0,
            queue_timeout=_env_float("SVASIM_QUEUE_TIMEOUT", 5.0),
            metrics_port=_env_int("SVASIM_METRICS_PORT", None),
        )

    @property
    def peer_tls(self) -> bool:
        """Peers authenticate each other with mutual TLS."""
        return bool(self.peer_tls_cert or self.peer_tls_key or self.peer_tls_ca)

    def peer_listener_port(self) -> int | None:
        """The port of the peer listener, or None when this process opens none."""
        if self.peer_port is not None:
            return self.peer_port
        # Every model service calls the other two, so a process with peers elsewhere is
        # called back by them; one hosting the whole fabric is called by no one.
        return DEFAULT_PEER_PORT if self.peers else None

    def check(self) -> None:
        """Refuse a configuration that cannot work, before anything is created."""
        check_port("port", self.port)
        if self.memory <= 0 or self.memory % 4096:
            raise ConfigError(f"memory must be a positive multiple of 4096 bytes, got {self.memory}")
        if not 1 <= self.engines <= 64:
            raise ConfigError(f"engines must be 1..64 per device (GRPENGCFG is a 64-bit mask), got {self.engines}")
        if not 1 <= self.groups <= 255:
            raise ConfigError(f"groups must be 1..255 per device (GRPCAP num_groups), got {self.groups}")
        if not 2 <= self.wqs <= 255:
            raise ConfigError(f"wqs must be 2..255 per device (WQCAP num_wqs), got {self.wqs}")
        if not IDXD_EVL_SIZE_MIN <= self.evl_size <= IDXD_EVL_SIZE_MAX:
            raise ConfigError(
                f"evl_size must be {IDXD_EVL_SIZE_MIN}..{IDXD_EVL_SIZE_MAX} entries "
                f"(IDXD_EVL_SIZE_MIN..MAX, drivers/dma/idxd/registers.h), got {self.evl_size}"
            )
        if not PRQ_MIN_ENTRIES <= self.prq_entries <= PRQ_MAX_ENTRIES:
            raise ConfigError(
                f"prq_entries must be {PRQ_MIN_ENTRIES}..{PRQ_MAX_ENTRIES} page request descriptors, "
                f"got {self.prq_entries}"
            )
        if self.durability not in ("commit", "batch"):
            raise ConfigError(f"durability must be commit or batch, got {self.durability!r}")
        if self.max_queued < 0 or self.queue_timeout < 0:
            raise ConfigError("max_queued and queue_timeout must be >= 0")
        if self.max_queued > MAX_QUEUED_LIMIT:
            raise ConfigError(
                f"max_queued must be at most {MAX_QUEUED_LIMIT} (each waiting request holds a worker thread), "
                f"got {self.max_queued}"
            )
        if self.peer_port is not None:
            check_port("peer port", self.peer_port)
        if self.metrics_port is not None:
            check_port("metrics port", self.metrics_port)
        for group, paths in (
            (
                "--peer-tls-cert, --peer-tls-key and --peer-tls-ca",
                (self.peer_tls_cert, self.peer_tls_key, self.peer_tls_ca),
            ),
            ("--tls-cert and --tls-key", (self.tls_cert, self.tls_key)),
        ):
            if any(paths) and not all(paths):
                raise ConfigError(f"{group} go together: give all of them or none")
            for path in paths:
                if path and not Path(path).is_file():
                    raise ConfigError(f"cannot read TLS file {path}: no such file")
        if (
            self.peer_listener_port() is not None
            and self.peer_host not in LOOPBACK_HOSTS
            and not self.peer_tls
            and not self.peer_insecure
        ):
            raise ConfigError(
                f"the peer listener on {self.peer_host} would let anyone reach the peer API: "
                "give --peer-tls-cert/--peer-tls-key/--peer-tls-ca, bind it to loopback, "
                "or accept the risk with --peer-insecure"
            )
        missing = self.missing_peers()
        if missing:
            raise ConfigError(
                f"services {', '.join(self.services)} need {', '.join(missing)}: host them too "
                f"(--services) or give their peer addresses (--{missing[0]}-addr / SVASIM_{missing[0].upper()}_ADDR)"
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
