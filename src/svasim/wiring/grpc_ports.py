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
from typing import Any

import grpc

from svasim.model.errors import SimError
from svasim.model.iommu import PageRequestPosted
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
from svasim.rpc.accel import STORE_KINDS
from svasim.rpc.common import CAUSE_KEY, DEADLINE, LAST_KEY, DeadlineExceeded, RecorderLike
from svasim.rpc.iommu import FAULTS, PAGE_RESPONSES
from svasim.rpc.rpc_errors import RemoteError, from_rpc_error
from svasim.wiring.incarnation import PEER_REASONS, Incarnations, identity_from
from svasim_api.accel.v1 import accel_pb2, accel_pb2_grpc
from svasim_api.cpu.v1 import cpu_pb2, cpu_pb2_grpc
from svasim_api.iommu.v1 import iommu_pb2, iommu_pb2_grpc

#: Largest message between peers (a DMA of a long transfer), as the servers accept.
MAX_MESSAGE = 80 * 1024 * 1024


class PeerUnavailable(SimError):
    """A peer service could not be reached."""

    code = "UNAVAILABLE"


def cause_seq(cause: Cause) -> int:
    """The committed seq of a cause (0 for none)."""
    if cause is None:
        return 0
    if isinstance(cause, int):
        return cause
    if cause.seq is None:
        raise RuntimeError("cause is not committed yet; flush the recorder first")
    return cause.seq


class _Stubbed:
    """Shared plumbing: flush, call with the cause, follow the peer's last seq."""

    def __init__(
        self,
        target: str,
        recorder: RecorderLike,
        *,
        timeout: float = 30.0,
        name: str,
        credentials: grpc.ChannelCredentials | None = None,
        incarnations: Incarnations | None = None,
    ) -> None:
        self.target = target
        # ``target`` is the peer listener of the process hosting the service; with peer
        # mTLS this process presents its certificate and checks the peer's.
        options = [("grpc.max_receive_message_length", MAX_MESSAGE), ("grpc.max_send_message_length", MAX_MESSAGE)]
        self.channel = (
            grpc.insecure_channel(target, options)
            if credentials is None
            else grpc.secure_channel(target, credentials, options)
        )
        self.recorder = recorder
        self.timeout = timeout
        self.name = name
        self.incarnations = incarnations

    def _call(self, method: Any, request: Any, journal: Journal | None, *, flush: bool = True) -> Any:
        try:
            return self._call_once(method, request, journal, flush=flush)
        except RemoteError as e:
            inc = self.incarnations
            if (
                inc is None
                or e.reason != "PEER_RESTARTED"
                or e.metadata.get("known_incarnation") != inc.seen.get(self.name)
                or inc.holds(self.name)
            ):
                raise
            # The peer restarted, but nothing here depends on its old state any more:
            # take the new incarnation, and call again (the peer refused before acting).
            inc.forget(self.name)
            return self._call_once(method, request, journal, flush=flush)

    def _call_once(self, method: Any, request: Any, journal: Journal | None, *, flush: bool = True) -> Any:
        metadata: tuple[tuple[str, str], ...] = ()
        if journal is not None and not flush:
            # A call that changes the peer's state only in rare cases (a native process's
            # walk or DMA read records what it saw): no commit is forced for it, and it
            # names our last transition as its cause only once that is committed.
            last = journal.last
            if isinstance(last, int) or (isinstance(last, Transition) and last.seq is not None):
                metadata = ((CAUSE_KEY, str(cause_seq(last))),)
        elif journal is not None:
            # Commit what this request made so far before the peer acts, so the peer's
            # transitions are ordered after ours: its last one, and any the journal made
            # before it followed an older cause (journal.follow).
            unsent = bool(journal.transitions) and journal.transitions[-1].seq is None
            if unsent or (isinstance(journal.last, Transition) and journal.last.seq is None):
                self.recorder.flush()
            if journal.last is not None:
                metadata = ((CAUSE_KEY, str(cause_seq(journal.last))),)
        if self.incarnations is not None:
            metadata += self.incarnations.metadata(self.name)
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
            if err is None or err.reason not in PEER_REASONS:
                # The peer's own refusal of us says more than what we make of its identity.
                self._meet(e.trailing_metadata() if isinstance(e, grpc.Call) else None)
            if err is not None:
                raise err from None
            raise PeerUnavailable(
                "PEER_UNAVAILABLE",
                f"{self.name} service at {self.target} failed: {e.code().name} {e.details()}",
                peer=self.name,
                target=self.target,
            ) from None
        # A reply from a new incarnation of a peer whose state we hold is not used.
        self._meet(call.trailing_metadata())
        if journal is not None:
            for key, value in call.trailing_metadata() or ():
                if key == LAST_KEY and value and int(value):
                    journal.follow(int(value))
        return response

    def _meet(self, trailing: Any) -> None:
        if self.incarnations is None:
            return
        peer = identity_from(trailing)
        if peer is not None:
            self.incarnations.meet(peer, (self.name,))

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()


class GrpcAccelPort(_Stubbed):
    """AccelPort over gRPC."""

    def __init__(self, target: str, recorder: RecorderLike, **kw: Any) -> None:
        super().__init__(target, recorder, name="accel", **kw)
        self.stub = accel_pb2_grpc.AccelDeviceServiceStub(self.channel)
        self.service_stub = accel_pb2_grpc.AccelServiceStub(self.channel)

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

    def advance(self, journal: Journal, device: str, until_cycles: int, poll: bool = False) -> AdvanceResult:
        r = self._call(
            self.service_stub.Advance,
            accel_pb2.AdvanceRequest(device=device, until_cycles=until_cycles, poll=poll),
            journal,
        )
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

    def prq_post(self, journal: Journal, device: str, pasid: int, address: int, write: bool) -> PageRequestPosted:
        r = self._call(
            self.stub.PostPageRequest,
            iommu_pb2.PostPageRequestRequest(device=device, pasid=pasid, address=address, write=write),
            journal,
        )
        response = PAGE_RESPONSES[r.code] if r.code else ""
        return PageRequestPosted(int(r.slot), int(r.prg_index), response, bool(r.overflow))

    def page_response(self, journal: Journal, device: str, slot: int) -> str:
        r = self._call(
            self.stub.RespondPageRequest, iommu_pb2.RespondPageRequestRequest(device=device, slot=slot), journal
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

    def walk(self, journal: Journal, pgd: int, address: int, length: int, write: bool) -> WalkResult:
        r = self._call(
            self.stub.WalkPageTable,
            cpu_pb2.WalkPageTableRequest(pgd=pgd, address=address, length=length, write=write),
            journal,
            flush=False,
        )
        return WalkResult(
            [Extent(e.address, e.physical, e.length, e.writable) for e in r.extents],
            r.faulted,
            r.fault_address,
            r.protection,
        )

    def dma_read(self, journal: Journal, physical: int, length: int) -> bytes:
        r = self._call(
            self.stub.DmaRead, cpu_pb2.DmaReadRequest(physical=physical, length=length), journal, flush=False
        )
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
