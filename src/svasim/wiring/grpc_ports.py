"""gRPC wiring: a peer in another process (or container), reached through its stub.

Causality crosses the wire in metadata. Before a call, the caller's recorder commits
what it has (so the cause has its global seq) and sends that seq as ``svasim-cause``;
the peer records its transitions as caused by it, commits them before it answers,
and returns its last seq as trailing metadata ``svasim-last``, which the caller's next
transition takes as its cause. So the global order never puts an effect before its
cause, whichever process commits first.
"""

from __future__ import annotations

import time
from contextvars import ContextVar
from typing import Any

import grpc

from svasim.accel.v1 import accel_pb2, accel_pb2_grpc
from svasim.cpu.v1 import cpu_pb2, cpu_pb2_grpc
from svasim.iommu.v1 import iommu_pb2, iommu_pb2_grpc
from svasim.model.errors import SimError
from svasim.model.journal import Journal
from svasim.model.memory import Extent, WalkResult
from svasim.model.ports import (
    AdvanceResult,
    BindResult,
    OpenResult,
    SubmitResult,
    TranslateResult,
    Translation,
)
from svasim.model.transition import Cause, Transition
from svasim.rpc.core import RecorderLike
from svasim.rpc.rpc_errors import from_rpc_error

CAUSE_KEY = "svasim-cause"
LAST_KEY = "svasim-last"

STORE_KINDS = {
    "enqcmd": accel_pb2.STORE_KIND_ENQCMD,
    "enqcmds": accel_pb2.STORE_KIND_ENQCMDS,
    "movdir64b": accel_pb2.STORE_KIND_MOVDIR64B,
}

FAULTS = {
    iommu_pb2.FAULT_REASON_UNSPECIFIED: "",
    iommu_pb2.FAULT_REASON_NOT_PRESENT: "not_present",
    iommu_pb2.FAULT_REASON_PROTECTION: "protection",
    iommu_pb2.FAULT_REASON_PASID_NOT_PRESENT: "pasid_not_present",
    iommu_pb2.FAULT_REASON_PASID_OUT_OF_RANGE: "pasid_out_of_range",
}
FAULT_CODES = {v: k for k, v in FAULTS.items()}

PAGE_RESPONSES = {
    iommu_pb2.PAGE_RESPONSE_CODE_SUCCESS: "success",
    iommu_pb2.PAGE_RESPONSE_CODE_INVALID: "invalid",
    iommu_pb2.PAGE_RESPONSE_CODE_FAILURE: "failure",
}
PAGE_RESPONSE_CODES = {v: k for k, v in PAGE_RESPONSES.items()}


#: The monotonic time by which the client request being served must be answered; peer
#: calls made for it get no more than what is left (the client's deadline propagates).
DEADLINE: ContextVar[float | None] = ContextVar("svasim_deadline", default=None)


class PeerUnavailable(SimError):
    """A peer service could not be reached."""

    code = "UNAVAILABLE"


class DeadlineExceeded(SimError):
    """The client's deadline ran out while the request waited on a peer."""

    code = "DEADLINE_EXCEEDED"


def cause_seq(cause: Cause) -> int:
    """The committed seq of a cause (0 for none)."""
    if cause is None:
        return 0
    if isinstance(cause, int):
        return cause
    if cause.seq is None:
        raise RuntimeError("cause is not committed yet; flush the recorder first")
    return cause.seq


def cause_from_metadata(metadata: Any) -> int | None:
    """The cause seq sent by a peer, if any."""
    for key, value in metadata or ():
        if key == CAUSE_KEY and value:
            n = int(value)
            return n or None
    return None


class _Stubbed:
    """Shared plumbing: flush, call with the cause, follow the peer's last seq."""

    def __init__(self, target: str, recorder: RecorderLike, *, timeout: float = 30.0, name: str) -> None:
        self.target = target
        self.channel = grpc.insecure_channel(target)
        self.recorder = recorder
        self.timeout = timeout
        self.name = name

    def _call(self, method: Any, request: Any, journal: Journal | None) -> Any:
        metadata: tuple[tuple[str, str], ...] = ()
        if journal is not None and journal.last is not None:
            if isinstance(journal.last, Transition) and journal.last.seq is None:
                self.recorder.flush()
            metadata = ((CAUSE_KEY, str(cause_seq(journal.last))),)
        timeout = self.timeout
        deadline = DEADLINE.get()
        if deadline is not None:
            left = deadline - time.monotonic()
            if left <= 0:
                raise DeadlineExceeded(
                    "DEADLINE_EXCEEDED", f"the request's deadline passed before calling the {self.name} service"
                )
            timeout = min(timeout, left)
        try:
            response, call = method.with_call(request, metadata=metadata, timeout=timeout)
        except grpc.RpcError as e:
            err = from_rpc_error(e)
            if err is not None:
                raise err from None
            raise PeerUnavailable(
                "PEER_UNAVAILABLE",
                f"{self.name} service at {self.target} failed: {e.code().name} {e.details()}",
                peer=self.name,
                target=self.target,
            ) from None
        if journal is not None:
            for key, value in call.trailing_metadata() or ():
                if key == LAST_KEY and value and int(value):
                    journal.follow(int(value))
        return response

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


class GrpcAccelPort(_Stubbed):
    """AccelPort over gRPC."""

    def __init__(self, target: str, recorder: RecorderLike, **kw: Any) -> None:
        super().__init__(target, recorder, name="accel", **kw)
        self.stub = accel_pb2_grpc.AccelServiceStub(self.channel)

    def open_wq(self, journal: Journal, device: str, wq_id: int, mm: int, pgd: int) -> OpenResult:
        r = self._call(
            self.stub.OpenWorkQueue,
            accel_pb2.OpenWorkQueueRequest(device=device, wq_id=wq_id, mm=mm, pgd=pgd),
            journal,
        )
        return OpenResult(r.pasid, r.pasid_allocated, r.portal_offset, r.mode == accel_pb2.WQ_MODE_SHARED)

    def submit(
        self, journal: Journal, device: str, portal_offset: int, command: bytes, kind: str, cycles: int
    ) -> SubmitResult:
        r = self._call(
            self.stub.Submit,
            accel_pb2.SubmitRequest(
                device=device, portal_offset=portal_offset, command=command, kind=STORE_KINDS[kind], cycles=cycles
            ),
            journal,
        )
        return SubmitResult(r.accepted, r.retry_reason, r.occupancy)

    def close_wq(
        self, journal: Journal, device: str, wq_id: int, mm: int, unbind: bool, free_if_unused: bool
    ) -> tuple[int, bool]:
        r = self._call(
            self.stub.CloseWorkQueue,
            accel_pb2.CloseWorkQueueRequest(
                device=device, wq_id=wq_id, mm=mm, unbind=unbind, free_if_unused=free_if_unused
            ),
            journal,
        )
        return r.pasid, r.freed

    def invalidate_devtlb(self, journal: Journal, device: str, pasid: int, address: int, length: int) -> int:
        r = self._call(
            self.stub.InvalidateDeviceTlb,
            accel_pb2.InvalidateDeviceTlbRequest(device=device, pasid=pasid, address=address, length=length),
            journal,
        )
        return int(r.entries_dropped)

    def advance(self, journal: Journal, device: str, until_cycles: int) -> AdvanceResult:
        r = self._call(self.stub.Advance, accel_pb2.AdvanceRequest(device=device, until_cycles=until_cycles), journal)
        return AdvanceResult(r.executed, r.cycles)


class GrpcIommuPort(_Stubbed):
    """IommuPort over gRPC."""

    def __init__(self, target: str, recorder: RecorderLike, **kw: Any) -> None:
        super().__init__(target, recorder, name="iommu", **kw)
        self.stub = iommu_pb2_grpc.IommuServiceStub(self.channel)

    def bind(self, journal: Journal, device: str, mm: int, pgd: int, max_pasids: int) -> BindResult:
        r = self._call(
            self.stub.BindDevice,
            iommu_pb2.BindDeviceRequest(device=device, mm=mm, pgd=pgd, max_pasids=max_pasids),
            journal,
        )
        return BindResult(r.pasid, r.allocated)

    def unbind(self, journal: Journal, device: str, mm: int, free_if_unused: bool) -> tuple[int, bool]:
        r = self._call(
            self.stub.UnbindDevice,
            iommu_pb2.UnbindDeviceRequest(device=device, mm=mm, free_if_unused=free_if_unused),
            journal,
        )
        return r.pasid, r.freed

    def drop_mm(self, journal: Journal, mm: int) -> int | None:
        r = self._call(self.stub.DropMm, iommu_pb2.DropMmRequest(mm=mm), journal)
        return r.pasid or None

    def translate(
        self, journal: Journal, device: str, pasid: int, address: int, length: int, write: bool
    ) -> TranslateResult:
        r = self._call(
            self.stub.Translate,
            iommu_pb2.TranslateRequest(device=device, pasid=pasid, address=address, length=length, write=write),
            journal,
        )
        return TranslateResult(
            [Translation(t.address, t.physical, t.length) for t in r.translations],
            FAULTS[r.fault],
            r.fault_address,
            r.iotlb_hits,
            r.iotlb_misses,
        )

    def page_request(self, journal: Journal, device: str, pasid: int, address: int, write: bool) -> str:
        r = self._call(
            self.stub.PageRequest,
            iommu_pb2.PageRequestRequest(device=device, pasid=pasid, address=address, write=write),
            journal,
        )
        return PAGE_RESPONSES[r.code]

    def invalidate(self, journal: Journal, pasid: int, address: int, length: int) -> int:
        r = self._call(
            self.stub.InvalidatePasid,
            iommu_pb2.InvalidatePasidRequest(pasid=pasid, address=address, length=length),
            journal,
        )
        return int(r.entries_dropped)


class GrpcHostPort(_Stubbed):
    """HostPort over gRPC (the cpu service's HostMemoryService)."""

    def __init__(self, target: str, recorder: RecorderLike, **kw: Any) -> None:
        super().__init__(target, recorder, name="cpu", **kw)
        self.stub = cpu_pb2_grpc.HostMemoryServiceStub(self.channel)

    def walk(self, pgd: int, address: int, length: int, write: bool) -> WalkResult:
        r = self._call(
            self.stub.WalkPageTable,
            cpu_pb2.WalkPageTableRequest(pgd=pgd, address=address, length=length, write=write),
            None,
        )
        return WalkResult(
            [Extent(e.address, e.physical, e.length, e.writable) for e in r.extents],
            r.faulted,
            r.fault_address,
            r.protection,
        )

    def dma_read(self, physical: int, length: int) -> bytes:
        r = self._call(self.stub.DmaRead, cpu_pb2.DmaReadRequest(physical=physical, length=length), None)
        return bytes(r.data)

    def dma_write(self, journal: Journal, physical: int, data: bytes) -> None:
        self._call(self.stub.DmaWrite, cpu_pb2.DmaWriteRequest(physical=physical, data=data), journal)

    def handle_page_fault(self, journal: Journal, pgd: int, address: int, write: bool) -> bool:
        r = self._call(
            self.stub.HandlePageFault,
            cpu_pb2.HandlePageFaultRequest(pgd=pgd, address=address, write=write),
            journal,
        )
        return bool(r.resolved)
