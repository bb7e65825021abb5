"""A MEMMOVE workload that trusts nothing: it checks every destination byte after every
SUCCESS completion, names every request, and retries what the fabric refuses.

Each iteration writes a fresh pattern into the source buffer, clears the completion
record, submits one MEMMOVE with ENQCMD and waits for its completion. A retried
iteration may leave an extra descriptor queued; since the source is rewritten before the
record is cleared, any SUCCESS the client sees afterwards comes from a copy made of the
current pattern, so a destination that differs is a fault of the fabric, never of the
retry.
"""

from __future__ import annotations

import itertools
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import grpc

from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2, cpu_pb2_grpc
from svasim_api.errors import error_info
from svasim_client import memmove_descriptor

SUCCESS = int(idxd.DsaCompStatus.SUCCESS)


def pattern(i: int, size: int) -> bytes:
    """Iteration ``i``'s source bytes: differ from every other iteration's at every offset
    that is not a multiple of 256 (so a stale copy cannot pass for a fresh one)."""
    return bytes((i * 37 + j * 11 + (j >> 8)) & 0xFF for j in range(size))


@dataclass
class Tally:
    """What the workload saw."""

    done: int = 0
    #: (iteration, offset of the first wrong byte) for every SUCCESS with a wrong destination.
    wrong: list[tuple[int, int]] = field(default_factory=list)
    #: Refusals by (code, ErrorInfo reason).
    refusals: Counter[tuple[str, str]] = field(default_factory=Counter)
    #: (request id, input seq) of every state-changing request acknowledged.
    acked: list[tuple[str, int]] = field(default_factory=list)
    successes: int = 0
    #: The PASID each process set up got (its processes never exit: all must differ).
    pasids: list[int] = field(default_factory=list)


class Refused(Exception):
    """A request the fabric refused (or could not be reached for)."""

    def __init__(self, code: grpc.StatusCode, reason: str, message: str) -> None:
        super().__init__(f"{code.name} {reason}: {message}")
        self.code = code
        self.reason = reason


class MemmoveWorkload:
    """``iterations`` MEMMOVEs of ``size`` bytes through the cpu service at ``address``."""

    def __init__(self, address: str, iterations: int, *, size: int = 4096, timeout: float = 20.0) -> None:
        self.address = address
        self.iterations = iterations
        self.size = size
        self.timeout = timeout
        self.tally = Tally()
        self.stop = threading.Event()
        self._ids = itertools.count(1)
        self._channel: grpc.Channel | None = None
        self.pid = 0

    # -- plumbing ---------------------------------------------------------------------
    def _stub(self) -> cpu_pb2_grpc.CpuServiceStub:
        if self._channel is None:
            self._channel = grpc.insecure_channel(
                self.address,
                options=[("grpc.initial_reconnect_backoff_ms", 50), ("grpc.max_reconnect_backoff_ms", 200)],
            )
        return cpu_pb2_grpc.CpuServiceStub(self._channel)

    def close(self) -> None:
        """Close the channel."""
        if self._channel is not None:
            self._channel.close()
            self._channel = None

    def call(self, method: str, request: Any) -> Any:
        """One request, named; its input seq noted when it is acknowledged."""
        rid = f"w{next(self._ids)}"
        try:
            reply, call = getattr(self._stub(), method).with_call(
                request, metadata=(("svasim-request-id", rid),), timeout=self.timeout
            )
        except grpc.RpcError as e:
            info = error_info(e)
            raise Refused(e.code(), info.reason if info is not None else "", e.details() or "") from None
        for key, value in call.trailing_metadata() or ():
            if key == "svasim-input-seq":
                self.tally.acked.append((rid, int(value)))
        return reply

    # -- the workload -------------------------------------------------------------------
    def setup(self) -> None:
        """A process with source, destination and completion buffers, its WQ open and its
        thread on CPU 0."""
        proc = self.call("CreateProcess", cpu_pb2.CreateProcessRequest(name="memmove")).process
        self.pid, self.tid = proc.pid, proc.tids[0]

        def mmap(length: int) -> int:
            r = self.call("Mmap", cpu_pb2.MmapRequest(pid=self.pid, length=length, writable=True, populate=True))
            return int(r.address)

        self.src, self.dst, self.comp = mmap(self.size), mmap(self.size), mmap(4096)
        wq = self.call("OpenWorkQueue", cpu_pb2.OpenWorkQueueRequest(pid=self.pid, device="dsa0", wq_id=0))
        self.portal = wq.portal_address
        self.tally.pasids.append(wq.pasid)
        self.call("Schedule", cpu_pb2.ScheduleRequest(tid=self.tid, cpu=0))

    def iteration(self, i: int) -> None:
        """Copy pattern ``i`` and check every byte once the device says SUCCESS."""
        want = pattern(i, self.size)
        self.call("WriteMemory", cpu_pb2.WriteMemoryRequest(pid=self.pid, address=self.src, data=want))
        self.call("WriteMemory", cpu_pb2.WriteMemoryRequest(pid=self.pid, address=self.comp, data=bytes(32)))
        desc = memmove_descriptor(self.src, self.dst, self.size, self.comp)
        while True:
            r = self.call("Enqcmd", cpu_pb2.EnqcmdRequest(tid=self.tid, portal_address=self.portal, raw=desc))
            if r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED:
                break
            if r.outcome != cpu_pb2.ENQCMD_OUTCOME_RETRY:
                raise AssertionError(f"ENQCMD outcome {cpu_pb2.EnqcmdOutcome.Name(r.outcome)}")
            # ZF=1: the WQ is at its threshold; let the device drain and try again.
            self.call("WaitCompletion", cpu_pb2.WaitCompletionRequest(tid=self.tid, completion_addr=self.comp))
        w = self.call("WaitCompletion", cpu_pb2.WaitCompletionRequest(tid=self.tid, completion_addr=self.comp))
        if not w.completed:
            raise AssertionError(f"iteration {i}: the device went idle without completing the MEMMOVE")
        if w.raw[0] != SUCCESS:
            raise AssertionError(f"iteration {i}: completion status {w.raw[0]:#x}")
        got = self.call("ReadMemory", cpu_pb2.ReadMemoryRequest(pid=self.pid, address=self.dst, length=self.size)).data
        self.tally.successes += 1
        if got != want:
            bad = next(j for j in range(self.size) if got[j] != want[j])
            self.tally.wrong.append((i, bad))

    def run(self, *, resetup_after: int = 0, new_process_every: int = 0, deadline: float = 120.0) -> None:
        """Run every iteration, retrying refused ones; with ``resetup_after``, set up a new
        process after that many refusals in a row (a restarted cpu lost the old one); with
        ``new_process_every``, set up a new process (a new PASID bound, its pages walked
        by the IOMMU) every that many iterations."""
        end = time.monotonic() + deadline
        i = 0
        ready = False
        in_a_row = 0
        while i < self.iterations and not self.stop.is_set():
            if time.monotonic() > end:
                return
            try:
                if not ready:
                    self.setup()
                    ready = True
                self.iteration(i)
                i += 1
                in_a_row = 0
                self.tally.done = i
                if new_process_every and i % new_process_every == 0:
                    ready = False
            except Refused as e:
                self.tally.refusals[(e.code.name, e.reason)] += 1
                in_a_row += 1
                if resetup_after and in_a_row % resetup_after == 0:
                    ready = False
                time.sleep(0.05)
