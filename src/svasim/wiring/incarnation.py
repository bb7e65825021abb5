"""Incarnations: which start of each peer process this process holds state of.

Every svasim process gets a fresh incarnation id when it starts. It sends it, with the
services it hosts and the run it records into, as ``svasim-incarnation`` on every peer
call and in the trailing metadata of every peer reply; and with each call it names the
incarnation of the callee whose state it holds (``svasim-expect-incarnation``). A reply
that changed the callee's state also carries the seq of the callee's last transition
(``svasim-last``), committed before the reply was sent: this process keeps the largest
it saw of each peer service.

A process pins the first incarnation it meets of each peer service (a process that
resumed a run pins, before it serves, the incarnations the run last recorded for its
peers). Meeting another one while it holds state of that service (PASIDs bound for its
mms, device TLB entries, queued descriptors, open WQ files) means the peer restarted.
Then the record decides (the record is the truth):

- **Reconcile.** The new incarnation's ``service.start`` is in the run, it rebuilt its
  state from the record (by fold or re-execution, not empty), and the seq it resumed
  after covers the last seq this process saw from the service. Every transition a peer
  answered with was committed before the answer, so the restarted service holds
  exactly what this process relies on: the new incarnation is pinned and the call goes
  on. The restarted service, for its part, accepts callers that name an incarnation of
  its own services that the run recorded before its start (it rebuilt their state).
- **Refuse.** Anything else (no such start in the run, a start that rebuilt nothing, a
  seq that does not cover what was seen, no store to read): the call is refused with
  FAILED_PRECONDITION, reason ``PEER_RESTARTED``, naming both incarnations and why,
  before anything is computed on the stale state, and so is every later call involving
  that peer until this process is itself restarted.

A process that holds nothing of the peer adopts the new incarnation. A peer recording
into another run is refused as well (``PEER_IN_OTHER_RUN``): its transitions and ours
would not make one record.
"""

from __future__ import annotations

import logging
import secrets
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace

from svasim.model.errors import FailedPrecondition

INCARNATION_KEY = "svasim-incarnation"
EXPECT_KEY = "svasim-expect-incarnation"
#: The callee's last committed transition, in a peer reply (svasim.rpc.common.LAST_KEY).
LAST_KEY = "svasim-last"
#: ErrorInfo reasons of the refusals made here.
PEER_REASONS = frozenset({"PEER_RESTARTED", "PEER_IN_OTHER_RUN"})


log = logging.getLogger("svasim.wiring.incarnation")

#: ``reconcile(service, new incarnation, last seq seen from the service)``: "" when the
#: record proves the new incarnation holds what this process saw, else why not.
Reconcile = Callable[[str, str, int], str]


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
    #: The seq of the last transition the peer made for the call that carried this
    #: identity (its ``svasim-last``; 0 when it made none or this is not a reply).
    last: int = field(default=0, compare=False)

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
    """The peer identity in gRPC metadata, if any, with the ``svasim-last`` seq beside it."""
    found: Identity | None = None
    last = 0
    for key, value in metadata or ():
        if key == INCARNATION_KEY and isinstance(value, str) and found is None:
            found = Identity.parse(value)
        elif key == LAST_KEY and isinstance(value, str) and value.isdigit():
            last = max(last, int(value))
    if found is not None and last:
        found = replace(found, last=last)
    return found


def expected_from(metadata: Iterable[tuple[str, str | bytes]] | None) -> str | None:
    """The incarnation of this process the caller holds state of, if it named one."""
    for key, value in metadata or ():
        if key == EXPECT_KEY and isinstance(value, str) and value:
            return value
    return None


class Incarnations:
    """This process's identity, and the incarnations of its peers it has met.

    ``holds(service)`` says what this process holds of ``service``'s state ("" for
    nothing); it is asked only when a peer's incarnation changes. ``reconcile`` reads
    the record to prove a new incarnation of a peer consistent (see the module); None
    means no proof is possible, so a new incarnation of a peer whose state is held is
    refused.
    """

    def __init__(self, identity: Identity, holds: Callable[[str], str], reconcile: Reconcile | None = None) -> None:
        self.identity = identity
        self._holds = holds
        self.reconcile = reconcile
        self._lock = threading.Lock()
        #: Peer service -> the incarnation this process pinned.
        self.seen: dict[str, str] = {}
        #: Peer service -> the largest seq of its transitions a reply of it carried.
        self.last_seen: dict[str, int] = {}
        #: Earlier incarnations of this process's services whose state it rebuilt from
        #: the run: a caller naming one of them is not refused.
        self.rebuilt_from: frozenset[str] = frozenset()
        #: Peer service -> (old, new) incarnations reconciled, for logs and tests.
        self.reconciled: dict[str, tuple[str, str]] = {}
        #: Peer service -> why its new incarnation was refused (refusal is for good).
        self._refused: dict[str, tuple[str, str, str]] = {}

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
            self.last_seen.pop(service, None)

    def pin(self, service: str, incarnation: str) -> None:
        """Pin ``service`` at ``incarnation`` before meeting it (what a resumed run last
        recorded of the peer whose state this process rebuilt)."""
        if service in self.identity.services or not incarnation:
            return
        with self._lock:
            self.seen[service] = incarnation

    def metadata(self, callee: str) -> tuple[tuple[str, str], ...]:
        """What a call to the ``callee`` service carries."""
        out = [(INCARNATION_KEY, self.identity.header())]
        with self._lock:
            expected = self.seen.get(callee)
        if expected is not None:
            out.append((EXPECT_KEY, expected))
        return tuple(out)

    def check_expected(self, expected: str | None) -> None:
        """Refuse a caller that holds state of another incarnation of this process (one
        whose state this process did not rebuild)."""
        if expected is not None and expected != self.incarnation and expected not in self.rebuilt_from:
            services = ",".join(self.identity.services)
            raise PeerRestarted(
                "PEER_RESTARTED",
                f"the {services} service restarted (incarnation {expected} -> {self.incarnation}) and has "
                "lost the state the caller holds of it; restart the fabric on a new run (--run NEWNAME)",
                service=services,
                known_incarnation=expected,
                incarnation=self.incarnation,
            )

    def _restarted(self, svc: str, known: str, new: str, held: str, why: str) -> PeerRestarted:
        return PeerRestarted(
            "PEER_RESTARTED",
            f"the {svc} service restarted (incarnation {known} -> {new}) while this process holds its state "
            f"({held}), and the record does not show that it rebuilt it ({why}); nothing is computed on it: "
            "restart the fabric on a new run (--run NEWNAME)",
            service=svc,
            known_incarnation=known,
            incarnation=new,
        )

    def meet(self, peer: Identity, services: Iterable[str] | None = None) -> None:
        """Take note of ``peer`` (as the hosts of ``services``, default all it names);
        PeerRestarted if it is a new incarnation of a service whose state this process
        holds that the record does not prove consistent, or if it records into another
        run."""
        for svc in services if services is not None else peer.services:
            if svc in self.identity.services:
                continue
            with self._lock:
                known = self.seen.get(svc)
                last_seen = self.last_seen.get(svc, 0)
                refused = self._refused.get(svc)
            if known is not None and known != peer.incarnation:
                if refused is not None and refused[1] == peer.incarnation:
                    raise self._restarted(svc, refused[0], refused[1], self._holds(svc) or "its state", refused[2])
                held = self._holds(svc)
                if held:
                    why = (
                        self.reconcile(svc, peer.incarnation, last_seen)
                        if self.reconcile is not None
                        else "this process has no record to check"
                    )
                    if why:
                        with self._lock:
                            self._refused[svc] = (known, peer.incarnation, why)
                        raise self._restarted(svc, known, peer.incarnation, held, why)
                    log.info(
                        "the %s service restarted (incarnation %s -> %s) and rebuilt from the record what this "
                        "process saw of it (up to seq %d): reconciled",
                        svc,
                        known,
                        peer.incarnation,
                        last_seen,
                    )
                    with self._lock:
                        self.reconciled[svc] = (known, peer.incarnation)
                with self._lock:
                    self.last_seen[svc] = 0
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
                if peer.last > self.last_seen.get(svc, 0):
                    self.last_seen[svc] = peer.last
