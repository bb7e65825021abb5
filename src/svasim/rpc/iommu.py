"""The iommu service: PASID allocation, PASID tables, translation and invalidation.

``IommuService`` is for peers only: the accel service binds, translates and asks for
pages, the cpu service invalidates on munmap and drops an mm at exit. Clients may only
look (``IommuDebugService``), as root reads the tables in debugfs.
"""

from __future__ import annotations

import grpc

from svasim.model.costs import CostTable
from svasim.model.errors import NotFound
from svasim.model.iommu import Iommu
from svasim.model.ports import AtsPort, HostPort
from svasim.rpc.common import ServiceCore, Servicer, rpc
from svasim.wiring.local import Unlocking
from svasim_api.iommu.v1 import iommu_pb2, iommu_pb2_grpc

#: Translation fault reasons, message <-> model.
FAULTS = {
    iommu_pb2.FAULT_REASON_UNSPECIFIED: "",
    iommu_pb2.FAULT_REASON_NOT_PRESENT: "not_present",
    iommu_pb2.FAULT_REASON_PROTECTION: "protection",
    iommu_pb2.FAULT_REASON_PASID_NOT_PRESENT: "pasid_not_present",
    iommu_pb2.FAULT_REASON_PASID_OUT_OF_RANGE: "pasid_out_of_range",
}
FAULT_CODES = {v: k for k, v in FAULTS.items()}

#: Page group response codes, message <-> model.
PAGE_RESPONSES = {
    iommu_pb2.PAGE_RESPONSE_CODE_SUCCESS: "success",
    iommu_pb2.PAGE_RESPONSE_CODE_INVALID: "invalid",
    iommu_pb2.PAGE_RESPONSE_CODE_FAILURE: "failure",
}
PAGE_RESPONSE_CODES = {v: k for k, v in PAGE_RESPONSES.items()}


class IommuCore(ServiceCore):
    """The IOMMU."""

    service = "iommu"

    def __init__(
        self,
        *,
        host: HostPort,
        costs: CostTable,
        ats: AtsPort | None = None,
        devices: tuple[str, ...] = (),
        prq_entries: int | None = None,
        **kw: object,
    ) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        #: The devices behind this IOMMU (its DMAR scope): the only ones a peer may bind.
        self.devices = devices
        # The IOMMU does not hold its lock while it waits on a device's TLB invalidation:
        # the device may be waiting on the IOMMU for a translation at that moment.
        self.iommu = Iommu(host, costs, ats=Unlocking(ats, self.lock) if ats is not None else None)
        if prq_entries is not None:
            # The PRQ's size is the IOMMU's boot configuration (PQA_REG.PQS), not a change.
            self.iommu.prq_entries = prq_entries

    @property
    def model(self) -> Iommu:
        return self.iommu

    def holds_state_of(self, service: str) -> str:
        """PASIDs bound to mms (the cpu's processes, the accel's devices), IOTLB entries
        made from the cpu's page tables, and the devices' page requests in the PRQ."""
        if service not in ("cpu", "accel"):
            return ""
        if service == "accel" and self.iommu.prq:
            return f"{len(self.iommu.prq)} page requests of its devices in the PRQ"
        pasids = sorted(list(self.iommu.pasid_mm))
        if pasids:
            return f"PASIDs {pasids[:8]} bound"
        if service == "cpu" and (self.iommu.iotlb or self.iommu.mm_pgd):
            return "IOTLB entries and page-table pointers of its mms"
        return ""


class IommuServicer(Servicer, iommu_pb2_grpc.IommuServiceServicer):
    """svasim.iommu.v1.IommuService (peer listener)."""

    prefix = "iommu"
    peer_only = True

    @rpc
    def BindDevice(
        self, request: iommu_pb2.BindDeviceRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.BindDeviceResponse:
        if request.device not in self.core.devices:
            # A bind names a device behind this IOMMU; it never brings one into being.
            raise NotFound(
                "UNKNOWN_DEVICE",
                f"no device {request.device!r} behind this IOMMU; known: {', '.join(self.core.devices)}",
                device=request.device,
            )
        r = self._change(
            context,
            "BindDevice",
            request,
            lambda j: self.core.iommu.bind(j, request.device, request.mm, request.pgd, request.max_pasids),
        )
        return iommu_pb2.BindDeviceResponse(pasid=r.pasid, allocated=r.allocated)

    @rpc
    def UnbindDevice(
        self, request: iommu_pb2.UnbindDeviceRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.UnbindDeviceResponse:
        pasid, freed = self._change(
            context,
            "UnbindDevice",
            request,
            lambda j: self.core.iommu.unbind(j, request.device, request.mm, request.free_if_unused),
        )
        return iommu_pb2.UnbindDeviceResponse(pasid=pasid, freed=freed)

    @rpc
    def DropMm(self, request: iommu_pb2.DropMmRequest, context: grpc.ServicerContext) -> iommu_pb2.DropMmResponse:
        pasid = self._change(context, "DropMm", request, lambda j: self.core.iommu.drop_mm(j, request.mm))
        return iommu_pb2.DropMmResponse(pasid=pasid or 0)

    @rpc
    def Translate(
        self, request: iommu_pb2.TranslateRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.TranslateResponse:
        r = self._change(
            context,
            "Translate",
            request,
            lambda j: self.core.iommu.translate(
                j, request.device, request.pasid, request.address, request.length, request.write
            ),
        )
        return iommu_pb2.TranslateResponse(
            translations=[
                iommu_pb2.Translation(address=t.address, physical=t.physical, length=t.length) for t in r.translations
            ],
            fault=FAULT_CODES[r.fault],
            fault_address=r.fault_address,
            iotlb_hits=r.iotlb_hits,
            iotlb_misses=r.iotlb_misses,
        )

    @rpc
    def InvalidatePasid(
        self, request: iommu_pb2.InvalidatePasidRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.InvalidatePasidResponse:
        n = self._change(
            context,
            "InvalidatePasid",
            request,
            lambda j: self.core.iommu.invalidate(j, request.pasid, request.address, request.length),
        )
        return iommu_pb2.InvalidatePasidResponse(entries_dropped=n)

    @rpc
    def PageRequest(
        self, request: iommu_pb2.PageRequestRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.PageRequestResponse:
        code = self._change(
            context,
            "PageRequest",
            request,
            lambda j: self.core.iommu.page_request(j, request.device, request.pasid, request.address, request.write),
        )
        return iommu_pb2.PageRequestResponse(code=PAGE_RESPONSE_CODES[code])

    @rpc
    def PostPageRequest(
        self, request: iommu_pb2.PostPageRequestRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.PostPageRequestResponse:
        r = self._change(
            context,
            "PostPageRequest",
            request,
            lambda j: self.core.iommu.prq_post(j, request.device, request.pasid, request.address, request.write),
        )
        return iommu_pb2.PostPageRequestResponse(
            slot=r.slot,
            prg_index=r.prg_index,
            code=PAGE_RESPONSE_CODES[r.response] if r.response else iommu_pb2.PAGE_RESPONSE_CODE_UNSPECIFIED,
            overflow=r.overflow,
        )

    @rpc
    def RespondPageRequest(
        self, request: iommu_pb2.RespondPageRequestRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.RespondPageRequestResponse:
        code = self._change(
            context,
            "RespondPageRequest",
            request,
            lambda j: self.core.iommu.page_response(j, request.device, request.slot),
        )
        return iommu_pb2.RespondPageRequestResponse(code=PAGE_RESPONSE_CODES[code])


class IommuDebugServicer(Servicer, iommu_pb2_grpc.IommuDebugServiceServicer):
    """svasim.iommu.v1.IommuDebugService: read-only inspection (client listener)."""

    prefix = "iommu"

    @rpc
    def GetPasidEntry(
        self, request: iommu_pb2.GetPasidEntryRequest, context: grpc.ServicerContext
    ) -> iommu_pb2.GetPasidEntryResponse:
        def read() -> iommu_pb2.PasidEntry:
            e = self.core.iommu.pasid_entry(request.device, request.pasid)
            return iommu_pb2.PasidEntry(
                present=e.present,
                pgtt=e.pgtt,
                flptr=e.flptr,
                dir_index=request.pasid >> 6,
                table_index=request.pasid & 0x3F,
                mm=e.mm,
                raw=e.raw(),
            )

        return iommu_pb2.GetPasidEntryResponse(entry=self._read(read))

    @rpc
    def GetIommu(self, request: iommu_pb2.GetIommuRequest, context: grpc.ServicerContext) -> iommu_pb2.GetIommuResponse:
        def read() -> iommu_pb2.GetIommuResponse:
            m = self.core.iommu
            pasids = []
            for pasid in sorted(m.pasid_mm):
                devs = sorted(n for n, d in m.devices.items() if d.entry(pasid) is not None)
                pasids.append(iommu_pb2.PasidAllocation(pasid=pasid, mm=m.pasid_mm[pasid], devices=devs))
            return iommu_pb2.GetIommuResponse(
                pasids=pasids,
                prq_entries=m.prq_entries,
                prq_outstanding=m.prq_outstanding,
                prq_overflow=m.prq_pro,
                **m.stats,
            )

        return self._read(read)
