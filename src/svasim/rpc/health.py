"""Health that tells the truth: NOT_SERVING while a service cannot do its work.

A :class:`HealthWatcher` sets the standard health service's status of every service a
process hosts from what it sees, and sets it back to SERVING once the cause is gone:

- **a peer it needs is unreachable**: each peer process is asked for its health with a
  short deadline; a peer that does not answer at all is unreachable (a peer that answers
  NOT_SERVING is reachable: following its status would let two peers that each wait for
  the other stay NOT_SERVING for ever after the first cause is gone);
- **the store is unwritable**: the recorder's last store write failed;
- **the service is wedged**: a call to one of its methods has been in flight longer than
  ``wedge_after`` seconds (streams are left out: a follower may rightly stay for hours);
- **a hold**: whoever is rebuilding the process's state (a recovery, say) holds it
  NOT_SERVING until it releases the hold.

:meth:`HealthWatcher.check` looks once and sets the statuses (tests call it directly);
:meth:`HealthWatcher.start` runs it in a thread every ``period`` seconds, and every
``retry_period`` seconds while something is not serving so that recovery shows quickly.
The server itself (``""``) is NOT_SERVING while any hosted service is.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import grpc
from grpc_health.v1 import health, health_pb2, health_pb2_grpc

from svasim.config import MODEL_SERVICES, FabricConfig
from svasim.rpc.metrics import FabricMetrics, InFlight
from svasim.wiring.tls import peer_channel_credentials

log = logging.getLogger("svasim.health")

SERVING = health_pb2.HealthCheckResponse.SERVING
NOT_SERVING = health_pb2.HealthCheckResponse.NOT_SERVING
#: Seconds a call may be in flight before its service counts as wedged. Well past the
#: default peer deadline (30 s), so that a request waiting on a slow peer is not taken
#: for a wedge; a request that outlives its peers' deadlines is stuck in this process.
DEFAULT_WEDGE_AFTER = 60.0
#: Seconds between checks while everything serves, and while something does not.
DEFAULT_PERIOD = 2.0
DEFAULT_RETRY_PERIOD = 0.25
#: Deadline of one health probe of a peer, in seconds.
DEFAULT_PROBE_TIMEOUT = 1.0
#: The probe channel reconnects at least this often (milliseconds), so that a peer that
#: comes back is seen within a probe or two, not after gRPC's default backoff (120 s); and
#: it has connections of its own, not shared with other channels of the process to the
#: same address (whose backoff after a failure would fail the probe at once).
_PROBE_OPTIONS = [
    ("grpc.use_local_subchannel_pool", 1),
    ("grpc.initial_reconnect_backoff_ms", 100),
    ("grpc.min_reconnect_backoff_ms", 100),
    ("grpc.max_reconnect_backoff_ms", 500),
]


class PeerProbe:
    """Asks a peer process's health service whether it answers, with a short deadline."""

    def __init__(
        self,
        name: str,
        target: str,
        *,
        credentials: grpc.ChannelCredentials | None = None,
        timeout: float = DEFAULT_PROBE_TIMEOUT,
    ) -> None:
        """Open a channel of its own to ``target`` (the peer listener of service ``name``)."""
        self.name = name
        self.target = target
        self.timeout = timeout
        self._channel = (
            grpc.insecure_channel(target, options=_PROBE_OPTIONS)
            if credentials is None
            else grpc.secure_channel(target, credentials, options=_PROBE_OPTIONS)
        )
        self._stub = health_pb2_grpc.HealthStub(self._channel)

    def reachable(self) -> tuple[bool, str]:
        """(whether the peer answered within the deadline, why not)."""
        try:
            # Not wait_for_ready: a peer that refuses connections is known at once, and the
            # probe channel's short backoff lets a peer that is back be seen in a retry or two.
            self._stub.Check(health_pb2.HealthCheckRequest(service=""), timeout=self.timeout)  # type: ignore[attr-defined]
        except grpc.RpcError as e:
            code = e.code()  # type: ignore[attr-defined]
            if code in (grpc.StatusCode.NOT_FOUND, grpc.StatusCode.UNIMPLEMENTED):
                return True, ""  # it answered: the process is there
            return False, f"{code.name}: {e.details() or 'no answer'}"  # type: ignore[attr-defined]
        return True, ""

    def close(self) -> None:
        """Close the probe's channel."""
        self._channel.close()


class HealthWatcher:
    """Keeps the health statuses of a process's services true to what they can do."""

    def __init__(
        self,
        health_servicer: health.HealthServicer,
        service_names: Mapping[str, Sequence[str]],
        *,
        probes: Sequence[PeerProbe] = (),
        needs: Mapping[str, Sequence[str]] | None = None,
        store_ok: Callable[[], bool] | None = None,
        in_flight: Callable[[], Sequence[InFlight]] | None = None,
        clock: Callable[[], float] = time.monotonic,
        wedge_after: float = DEFAULT_WEDGE_AFTER,
        period: float = DEFAULT_PERIOD,
        retry_period: float = DEFAULT_RETRY_PERIOD,
        on_status: Callable[[str, bool], None] | None = None,
    ) -> None:
        """Watch the hosted services ``service_names`` (service -> its gRPC service names).

        ``needs`` maps a hosted service to the peers (by ``PeerProbe.name``) it cannot work
        without; ``store_ok`` says whether the last store write succeeded; ``in_flight``
        lists the calls being served, with start times on ``clock``; ``on_status`` is told
        every status set (name, serving).
        """
        if wedge_after <= 0 or period <= 0 or retry_period <= 0:
            raise ValueError("wedge_after, period and retry_period must be positive")
        self._health = health_servicer
        self._names = {svc: list(names) for svc, names in service_names.items()}
        self._service_of = {name: svc for svc, names in self._names.items() for name in names}
        self._probes = list(probes)
        self._needs = {svc: list(peers) for svc, peers in (needs or {}).items()}
        self._store_ok = store_ok
        self._in_flight = in_flight
        self._clock = clock
        #: Seconds a unary call may be in flight before its service counts as wedged.
        self.wedge_after = wedge_after
        self._period = period
        self._retry_period = retry_period
        self._on_status = on_status
        self._holds: dict[str, str] = {}
        self._status: dict[str, int] = {}
        self._lock = threading.Lock()  # guards the holds
        self._checking = threading.Lock()  # one check at a time, so statuses are set in order
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._last: dict[str, list[str]] = {}

    @classmethod
    def for_process(
        cls,
        config: FabricConfig,
        health_servicer: health.HealthServicer,
        service_names: Mapping[str, Sequence[str]],
        metrics: FabricMetrics,
        **kw: Any,
    ) -> HealthWatcher:
        """The watcher of the svasim process ``config`` describes.

        It watches the services it hosts (their names in ``service_names``: service ->
        gRPC service names), probes the peers it reaches elsewhere (``config.peers``, with
        its peer credentials), and reads the recorder and the calls in flight from
        ``metrics``. Every model service needs the other two; the trace service needs none.
        """
        hosted = list(config.services)
        remote = {svc: addr for svc, addr in config.peers.items() if svc not in hosted}
        credentials = peer_channel_credentials(config)
        probes = [PeerProbe(svc, addr, credentials=credentials) for svc, addr in sorted(remote.items())]
        needs = {svc: sorted(remote) for svc in hosted if svc in MODEL_SERVICES}

        def on_status(name: str, serving: bool) -> None:
            metrics.health_serving.labels(name).set(1 if serving else 0)

        return cls(
            health_servicer,
            {svc: service_names[svc] for svc in hosted},
            probes=probes,
            needs=needs,
            store_ok=lambda: metrics.last_write_ok is not False,
            in_flight=metrics.calls_in_flight,
            on_status=on_status,
            **kw,
        )

    # -- holds --------------------------------------------------------------------------

    def hold(self, key: str, reason: str) -> None:
        """Report every hosted service NOT_SERVING for ``reason`` until :meth:`release` of ``key``."""
        with self._lock:
            self._holds[key] = reason
        self.check()

    def release(self, key: str) -> None:
        """End the hold ``key`` (no error if there is none)."""
        with self._lock:
            self._holds.pop(key, None)
        self.check()

    # -- checking -----------------------------------------------------------------------

    def problems(self) -> dict[str, list[str]]:
        """Why each hosted service cannot do its work now (an empty list: it can)."""
        reasons: dict[str, list[str]] = {svc: [] for svc in self._names}
        with self._lock:
            holds = list(self._holds.values())
        for svc in reasons:
            reasons[svc].extend(holds)
        for probe in self._probes:
            ok, why = probe.reachable()
            if not ok:
                for svc, peers in self._needs.items():
                    if probe.name in peers:
                        reasons[svc].append(f"peer {probe.name} at {probe.target} unreachable ({why})")
        if self._store_ok is not None and not self._store_ok():
            for svc in reasons:
                reasons[svc].append("store unwritable: the last commit failed")
        if self._in_flight is not None:
            now = self._clock()
            for call in self._in_flight():
                owner = self._service_of.get(call.grpc_service)
                if call.streaming or owner is None or now - call.started < self.wedge_after:
                    continue
                # No age in the reason: it stays the same while the wedge lasts (one log line).
                why = f"wedged: {call.grpc_service}/{call.grpc_method} in flight for over {self.wedge_after:g} s"
                if why not in reasons[owner]:
                    reasons[owner].append(why)
        return reasons

    def check(self) -> dict[str, list[str]]:
        """Look once and set the status of every hosted service; returns the reasons."""
        with self._checking:
            reasons = self.problems()
            statuses = {
                name: NOT_SERVING if reasons[svc] else SERVING for svc, names in self._names.items() for name in names
            }
            statuses[""] = NOT_SERVING if any(reasons.values()) else SERVING
            for name, status in statuses.items():
                if self._status.get(name) != status:
                    self._health.set(name, status)
                    self._status[name] = status
                    if self._on_status is not None:
                        self._on_status(name, status == SERVING)
            for svc, why in reasons.items():
                if why != self._last.get(svc, []):
                    if why:
                        log.warning("%s NOT_SERVING: %s", svc, "; ".join(why))
                    elif self._last.get(svc):
                        log.info("%s SERVING again", svc)
            self._last = reasons
        return reasons

    def serving(self) -> bool:
        """Whether the last check found every hosted service able to work."""
        return not any(self._last.values())

    # -- the thread ---------------------------------------------------------------------

    def start(self) -> None:
        """Check now, then keep checking in a daemon thread until :meth:`stop`."""
        self.check()
        self._thread = threading.Thread(target=self._run, name="svasim-health", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._period if self.serving() else self._retry_period):
            try:
                self.check()
            except Exception:  # noqa: BLE001 - a failed look must not end the watching
                log.exception("health check failed")

    def stop(self) -> None:
        """Stop the thread and close the probes. Idempotent."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5.0)
            self._thread = None
        for probe in self._probes:
            probe.close()
        self._probes = []
