"""A native run's memory, answered from its record.

What a native program's memory held is an input from outside the fabric. While the
program runs, every walk, read and I/O page fault of its memory is recorded
(svasim.model.kernel.native). Replay, what-if and resume re-execute a native run without
the program: each native process's :class:`RecordedNativeMemory` answers its walks,
reads and faults with the recorded observations, in the order they were made, and
refuses (NATIVE_TAPE_DIVERGED) an access the record does not have next: re-execution
then departs from the record, which replay reports as the first difference.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from typing import Any

from svasim.model.errors import FailedPrecondition
from svasim.model.kernel.native import decode_bytes, walk_of_detail
from svasim.model.ports import NativeWalk

#: The kinds of the recorded observations of native memory.
OBSERVATIONS = frozenset({"native.walk", "native.read", "native.fault"})


class RecordedNativeMemory:
    """The NativeMemory of a recorded native process."""

    def __init__(self, native_pid: int, observations: Iterable[tuple[str, dict[str, Any]]]) -> None:
        self.native_pid = native_pid
        self._tape: deque[tuple[str, dict[str, Any]]] = deque(observations)

    def _next(self, kind: str, **want: Any) -> dict[str, Any]:
        if not self._tape:
            raise FailedPrecondition(
                "NATIVE_TAPE_DIVERGED",
                f"native process {self.native_pid}: re-execution made a {kind} the record does not have",
                **{k: str(v) for k, v in want.items()},
            )
        got, detail = self._tape[0]
        if got != kind or any(detail.get(k) != v for k, v in want.items()):
            raise FailedPrecondition(
                "NATIVE_TAPE_DIVERGED",
                f"native process {self.native_pid}: re-execution made a {kind} of {want}, the record has a {got} "
                f"of { {k: detail.get(k) for k in ('address', 'length', 'write')} }",
            )
        self._tape.popleft()
        return detail

    def walk(self, address: int, length: int, write: bool) -> NativeWalk:
        return walk_of_detail(self._next("native.walk", address=address, length=length, write=write))

    def read(self, address: int, length: int) -> bytes:
        return decode_bytes(str(self._next("native.read", address=address, length=length)["data"]))

    def write(self, address: int, data: bytes) -> None:
        """Writes reach no program; the record holds their CRC32, which replay compares."""

    def fault(self, address: int, write: bool) -> bool:
        return bool(self._next("native.fault", write=write)["resolved"])

    def close(self) -> None:
        """Nothing is held."""


class Tape:
    """The native observations of a run, by fabric process; :meth:`factory` is the
    kernel's ``native_factory`` for its re-execution."""

    def __init__(self, events: Iterable[Any]) -> None:
        self._by_pid: dict[int, list[tuple[str, dict[str, Any]]]] = {}
        for e in events:
            if e.kind in OBSERVATIONS and str(e.entity).startswith("mem/"):
                pid = int(str(e.entity)[4:])
                self._by_pid.setdefault(pid, []).append((e.kind, dict(e.detail or {})))

    def __bool__(self) -> bool:
        return bool(self._by_pid)

    def factory(self, native_pid: int, fabric_pid: int) -> RecordedNativeMemory:
        return RecordedNativeMemory(native_pid, self._by_pid.get(fabric_pid, ()))
