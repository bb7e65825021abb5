"""Incarnations: which start of each peer process this process holds state of.

Every svasim process gets a fresh incarnation id when it starts. It sends it, with the
services it hosts and the run it records into, as ``svasim-incarnation`` on every peer
call and in the trailing metadata of every peer reply; and with each call it names the
incarnation of the callee whose state it holds (``svasim-expect-incarnation``).

A process pins the first incarnation it meets of each peer service. Meeting another one
while it holds state of that service (PASIDs bound for its mms, device TLB entries,
queued descriptors, open WQ files) means the peer restarted and lost what this process
still relies on: the call is refused with FAILED_PRECONDITION, reason ``PEER_RESTARTED``,
before anything is computed on the stale state, and so is every later call involving that
peer until this process is itself restarted. A process that holds nothing of the peer
adopts the new incarnation. A peer recording into another run is refused as well
(``PEER_IN_OTHER_RUN``): its transitions and ours would not make one record.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from svasim.model.errors import FailedPrecondition

INCARNATION_KEY = "svasim-incarnation"
EXPECT_KEY = "svasim-expect-incarnation"
#: ErrorInfo reasons of the refusals made here.
PEER_REASONS = frozenset({"PEER_RESTARTED", "PEER_IN_OTHER_RUN"})


def new_incarnation() -> str:
    """A fresh incarnation id: 12 lowercase hex characters."""
    return secrets.token_hex(6)


class PeerRestarted(FailedPrecondition):
    """A peer service restarted (or belongs to another run) while this process holds its state."""


@dataclass(frozen=True)
class Identity:
    """What a process says of itself in ``svasim-incarnation``."""

    incarnation: str
    services: tuple[str, ...]
    run_id: str

    def header(self) -> str:
        """``cpu,trace@<incarnation>/<run id>``."""
        return f"{','.join(self.services)}@{self.incarnation}/{self.run_id}"

    @classmethod
    def parse(cls, value: str) -> Identity | None:
        """The identity in a header value; None if it is not one."""
        services, at, rest = value.partition("@")
        incarnation, slash, run_id = rest.partition("/")
        if not at or not slash or not incarnation:
            return None
        return cls(incarnation, tuple(s for s in services.split(",") if s), run_id)


def identity_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> Identity | None:
    """The peer identity in gRPC metadata, if any."""
    for key, value in metadata or ():
        if key == INCARNATION_KEY and isinstance(value, str):
            return Identity.parse(value)
    return None


def expected_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The incarnation of this process the caller holds state of, if it named one."""
    for key, value in metadata or ():
        if key == EXPECT_KEY and isinstance(value, str) and value:
            return value
    return None


class Incarnations:
    """This process's identity, and the incarnations of its peers it has met.

    ``holds(service)`` says what this process holds of ``service``'s state ("" for
    nothing); it is asked only when a peer's incarnation changes.
    """

    def __init__(self, identity: Identity, holds: Callable[[str], str]) -> None:
        self.identity = identity
        self._holds = holds
        self._lock = threading.Lock()
        #: Peer service -> the incarnation this process pinned.
        self.seen: dict[str, str] = {}

    @property
    def incarnation(self) -> str:
        """This process's incarnation id."""
        return self.identity.incarnation

    def holds(self, service: str) -> str:
        """What this process holds of ``service``'s state ("" for nothing)."""
        return self._holds(service)

    def forget(self, service: str) -> None:
        """Unpin ``service``: the next incarnation met is taken as it is."""
        with self._lock:
            self.seen.pop(service, None)

    def metadata(self, callee: str) -> tuple[tuple[str, str], ...]:
        """What a call to the ``callee`` service carries."""
        out = [(INCARNATION_KEY, self.identity.header())]
        with self._lock:
            expected = self.seen.get(callee)
        if expected is not None:
            out.append((EXPECT_KEY, expected))
        return tuple(out)

    def check_expected(self, expected: str | None) -> None:
        """Refuse a caller that holds state of another incarnation of this process."""
        if expected is not None and expected != self.incarnation:
            services = ",".join(self.identity.services)
            raise PeerRestarted(
                "PEER_RESTARTED",
                f"the {services} service restarted (incarnation {expected} -> {self.incarnation}) and has "
                "lost the state the caller holds of it; restart the fabric on a new run (--run NEWNAME)",
                service=services,
                known_incarnation=expected,
                incarnation=self.incarnation,
            )

    def meet(self, peer: Identity, services: Iterable[str] | None = None) -> None:
        """Take note of ``peer`` (as the hosts of ``services``, default all it names);
        PeerRestarted if it is a new incarnation of a service whose state this process
        holds, or if it records into another run."""
        for svc in services if services is not None else peer.services:
            if svc in self.identity.services:
                continue
            with self._lock:
                known = self.seen.get(svc)
            if known is not None and known != peer.incarnation:
                held = self._holds(svc)
                if held:
                    raise PeerRestarted(
                        "PEER_RESTARTED",
                        f"the {svc} service restarted (incarnation {known} -> {peer.incarnation}) while this "
                        f"process holds its state ({held}); nothing is computed on it: restart the fabric on "
                        "a new run (--run NEWNAME)",
                        service=svc,
                        known_incarnation=known,
                        incarnation=peer.incarnation,
                    )
            if peer.run_id and self.identity.run_id and peer.run_id != self.identity.run_id:
                raise PeerRestarted(
                    "PEER_IN_OTHER_RUN",
                    f"the {svc} service (incarnation {peer.incarnation}) records into run {peer.run_id}, this "
                    f"process into run {self.identity.run_id}: the processes of a fabric share one run (--run)",
                    service=svc,
                    run=peer.run_id,
                    own_run=self.identity.run_id,
                )
            with self._lock:
                self.seen[svc] = peer.incarnation
