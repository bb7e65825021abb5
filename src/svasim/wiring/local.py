"""In-process wiring: a peer is called directly, in the caller's thread."""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any

from svasim.model.journal import Journal


class LocalPort:
    """Any model port (AccelPort, IommuPort, HostPort) served by a core in this process.

    A method whose first argument is a :class:`Journal` changes the peer's state: it
    runs as a peer call caused by the journal's last transition, and the journal then
    continues from the peer's last one. Other methods are reads.
    """

    def __init__(self, core: Callable[[], Any]) -> None:
        # ``core`` is resolved lazily: cores refer to each other in a cycle.
        self._core = core

    def __getattr__(self, name: str) -> Callable[..., Any]:
        def call(*args: Any) -> Any:
            core = self._core()
            method = getattr(core.model, name)
            if args and isinstance(args[0], Journal):
                journal, rest = args[0], args[1:]
                result, last = core.peer_call(journal.last, lambda j: method(j, *rest))
                journal.follow(last)
                return result
            return core.peer_read(lambda: method(*args))

        return call


class Unlocking:
    """A port proxy that releases ``lock`` for the duration of each outbound call."""

    def __init__(self, port: Any, lock: threading.Lock) -> None:
        self._port = port
        self._lock = lock

    def __getattr__(self, name: str) -> Callable[..., Any]:
        target = getattr(self._port, name)

        def call(*args: Any) -> Any:
            self._lock.release()
            try:
                return target(*args)
            finally:
                self._lock.acquire()

        return call
