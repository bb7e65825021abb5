"""The accel service: DSA-like devices, their work queues, portals and engines.

``AccelService`` is what a program (or root, for WQ configuration) does with a device;
``AccelDeviceService`` is what the host's driver, the CPU's enqueue stores and the IOMMU
do to it, for peers only.
"""

from __future__ import annotations

from typing import Any

import grpc

from svasim.model import accel as accel_model
from svasim.model import dsa_ops
from svasim.model.accel import Accel, Device
from svasim.model.costs import CostTable
from svasim.model.errors import InvalidArgument
from svasim.model.evl import EvlEntry
from svasim.model.journal import Journal
from svasim.model.ports import HostPort, IommuPort
from svasim.rpc.common import ServiceCore, Servicer, rpc
from svasim_api.accel.v1 import accel_pb2, accel_pb2_grpc

#: Portal store kinds, model name -> message.
STORE_KINDS = {
    "enqcmd": accel_pb2.STORE_KIND_ENQCMD,
    "enqcmds": accel_pb2.STORE_KIND_ENQCMDS,
    "movdir64b": accel_pb2.STORE_KIND_MOVDIR64B,
}


class AccelCore(ServiceCore):
    """The accelerators."""

    service = "accel"

    def __init__(
        self,
        *,
        iommu: IommuPort,
        host: HostPort,
        costs: CostTable,
        devices: list[Device] | None = None,
        **kw: object,
    ) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.accel = Accel(iommu, host, devices, costs)

    @property
    def model(self) -> Accel:
        return self.accel

    def holds_state_of(self, service: str) -> str:
        """WQ clients and queued descriptors (the cpu's processes, the iommu's PASIDs) and
        device TLB entries (the iommu's translations)."""
        if service not in ("cpu", "iommu"):
            return ""
        held = []
        try:
            for d in list(self.accel.devices.values()):
                if d.devtlb:
                    held.append(f"{len(d.devtlb)} device TLB entries of {d.name}")
                if d.blocked and service == "iommu":
                    held.append(f"{len(d.blocked)} engines of {d.name} waiting for page responses")
                for wq in d.wqs:
                    if wq.clients or wq.opener is not None:
                        held.append(f"clients of wq {d.name}.{wq.id}")
                    if wq.queue:
                        held.append(f"{len(wq.queue)} queued descriptors of wq {d.name}.{wq.id}")
        except RuntimeError:  # changed under us: assume the worst
            return "device state"
        return ", ".join(held[:4])


# -- conversions ----------------------------------------------------------------------------
WQ_MODES = {
    accel_model.WQ_MODE_SHARED: accel_pb2.WQ_MODE_SHARED,
    accel_model.WQ_MODE_DEDICATED: accel_pb2.WQ_MODE_DEDICATED,
}
STORE_NAMES = {v: k for k, v in STORE_KINDS.items()}


def device_pb(d: accel_model.Device) -> accel_pb2.Device:
    """A device as a message."""
    wqs = [
        accel_pb2.WorkQueue(
            id=wq.id,
            mode=WQ_MODES[wq.cfg.mode],
            size=wq.cfg.wq_size,
            threshold=wq.cfg.wq_thresh,
            priority=wq.cfg.priority,
            block_on_fault=wq.cfg.block_on_fault,
            enabled=wq.cfg.enabled,
            occupancy=len(wq.queue),
            accepted=wq.accepted,
            retried=wq.retried,
            completed=wq.completed,
            portal_offset=accel_model.idxd_get_wq_portal_full_offset(wq.id, accel_model.IDXD_PORTAL_UNLIMITED),
            op_config=wq.cfg.op_config,
            max_xfer_shift=wq.cfg.max_xfer_shift,
            max_batch_shift=wq.cfg.max_batch_shift,
            clients=sum(wq.clients.values()),
            type=wq.cfg.type,
            name=wq.cfg.name,
            driver_name=wq.cfg.driver_name,
            prs_disable=wq.cfg.prs_disable,
            group_id=wq.cfg.group_id,
        )
        for wq in d.wqs
    ]
    groups = [
        accel_pb2.Group(
            id=g.id,
            wq_ids=d.group_wqs(g.id),
            engine_ids=d.group_engines(g.id),
            read_buffers_reserved=g.read_buffers_reserved,
            read_buffers_allowed=g.read_buffers_allowed,
            use_read_buffer_limit=g.use_read_buffer_limit,
            traffic_class_a=g.traffic_class_a,
            traffic_class_b=g.traffic_class_b,
        )
        for g in d.groups
    ]
    return accel_pb2.Device(
        name=d.name,
        wqs=wqs,
        engines=len(d.engines),
        max_pasids=d.max_pasids,
        cycles=d.now,
        bytes_processed=d.bytes_processed,
        swerr=d.swerr,
        devtlb_hits=d.devtlb_hits,
        devtlb_misses=d.devtlb_misses,
        page_requests=d.page_requests,
        total_wq_size=d.total_wq_size,
        opcap=dsa_ops.OPCAP_BITMAP,
        capabilities=capabilities_pb(d),
        groups=groups,
        engine_list=[accel_pb2.Engine(id=e, group_id=g) for e, g in enumerate(d.engine_group)],
        enabled=d.enabled,
        read_buffer_limit=d.read_buffer_limit,
        auto_run=d.auto_run,
        async_page_requests=d.async_page_requests,
        pending_events=len(d.events),
        blocked_engines=len(d.blocked),
        evl_size=d.evl.size,
        evl_head=d.evl.head,
        evl_tail=d.evl.tail,
        evl_overflows=d.evl.overflows,
    )


def evl_entry_pb(index: int, e: EvlEntry) -> accel_pb2.EventLogEntry:
    """An event log entry as a message."""
    return accel_pb2.EventLogEntry(
        index=index,
        error=e.error,
        operation=e.operation,
        pasid=e.pasid,
        wq_idx=e.wq_idx,
        fault_addr=e.fault_addr,
        fault_rw=e.fault_rw,
        batch=e.batch,
        batch_idx=e.batch_idx,
        rcr=e.rcr,
        rci=e.rci,
        priv=e.priv,
        completion_record=e.cr,
        raw=e.raw(),
    )


def capabilities_pb(d: accel_model.Device) -> accel_pb2.DeviceCapabilities:
    """A device's capability registers, raw and decoded from the one table
    (:data:`svasim.model.accel.CAP_FIELDS`)."""
    fields = accel_model.device_caps(d)
    regs = accel_model.cap_registers(fields)
    opcap = dsa_ops.OPCAP_BITMAP
    return accel_pb2.DeviceCapabilities(
        version=d.version,
        gen_cap=regs["gen_cap"],
        wq_cap=regs["wq_cap"],
        group_cap=regs["group_cap"],
        engine_cap=regs["engine_cap"],
        op_cap=[(opcap >> (64 * i)) & (2**64 - 1) for i in range(4)],
        fields=fields,
        max_transfer_size=1 << fields["gen_cap.max_xfer_shift"],
        max_batch_size=1 << fields["gen_cap.max_batch_shift"],
        pasid_support=True,
        prs_support=bool(fields["gen_cap.block_on_fault"]),
        ats_support=True,
        max_pasids=d.max_pasids,
    )


def wq_pb(dev: accel_model.Device, wq_id: int) -> accel_pb2.WorkQueue:
    """One WQ of a device as a message."""
    return device_pb(dev).wqs[wq_id]


WQ_MODE_NAMES = {v: k for k, v in WQ_MODES.items()}
WQ_FIELDS = {
    "size": "wq_size",
    "threshold": "wq_thresh",
    "priority": "priority",
    "block_on_fault": "block_on_fault",
    "op_config": "op_config",
    "max_xfer_shift": "max_xfer_shift",
    "max_batch_shift": "max_batch_shift",
    "type": "type",
    "name": "name",
    "driver_name": "driver_name",
    "prs_disable": "prs_disable",
    "group_id": "group_id",
}


class AccelServicer(Servicer, accel_pb2_grpc.AccelServiceServicer):
    """svasim.accel.v1.AccelService: inspect, configure, advance (client listener; peers
    call Advance on the peer listener)."""

    prefix = "accel"

    @rpc
    def ListDevices(
        self, request: accel_pb2.ListDevicesRequest, context: grpc.ServicerContext
    ) -> accel_pb2.ListDevicesResponse:
        devs = self._read(lambda: [device_pb(self.core.accel.devices[n]) for n in sorted(self.core.accel.devices)])
        return accel_pb2.ListDevicesResponse(devices=devs)

    @rpc
    def ConfigureWorkQueue(
        self, request: accel_pb2.ConfigureWorkQueueRequest, context: grpc.ServicerContext
    ) -> accel_pb2.ConfigureWorkQueueResponse:
        changes: dict[str, Any] = {
            attr: getattr(request, name) for name, attr in WQ_FIELDS.items() if request.HasField(name)
        }
        if request.HasField("mode"):
            if request.mode not in WQ_MODE_NAMES:
                raise InvalidArgument("BAD_WQ_MODE", "mode must be WQ_MODE_SHARED or WQ_MODE_DEDICATED")
            changes["mode"] = WQ_MODE_NAMES[request.mode]

        def run(j: Journal) -> accel_pb2.WorkQueue:
            self.core.accel.configure_wq(j, request.device, request.wq_id, changes)
            return wq_pb(self.core.accel.devices[request.device], request.wq_id)

        return accel_pb2.ConfigureWorkQueueResponse(wq=self._change(context, "ConfigureWorkQueue", request, run))

    def _enable(self, context, request, method: str, enabled: bool):  # type: ignore[no-untyped-def]
        def run(j: Journal) -> accel_pb2.WorkQueue:
            self.core.accel.set_wq_enabled(j, request.device, request.wq_id, enabled)
            return wq_pb(self.core.accel.devices[request.device], request.wq_id)

        return self._change(context, method, request, run)

    @rpc
    def EnableWorkQueue(
        self, request: accel_pb2.EnableWorkQueueRequest, context: grpc.ServicerContext
    ) -> accel_pb2.EnableWorkQueueResponse:
        return accel_pb2.EnableWorkQueueResponse(wq=self._enable(context, request, "EnableWorkQueue", True))

    @rpc
    def DisableWorkQueue(
        self, request: accel_pb2.DisableWorkQueueRequest, context: grpc.ServicerContext
    ) -> accel_pb2.DisableWorkQueueResponse:
        return accel_pb2.DisableWorkQueueResponse(wq=self._enable(context, request, "DisableWorkQueue", False))

    def _device_change(self, context, request, method: str, change):  # type: ignore[no-untyped-def]
        def run(j: Journal) -> accel_pb2.Device:
            change(j)
            return device_pb(self.core.accel.devices[request.device])

        return self._change(context, method, request, run)

    @rpc
    def ConfigureGroup(
        self, request: accel_pb2.ConfigureGroupRequest, context: grpc.ServicerContext
    ) -> accel_pb2.ConfigureGroupResponse:
        kw: dict[str, Any] = {
            name: getattr(request, name)
            for name in ("read_buffers_reserved", "read_buffers_allowed", "use_read_buffer_limit")
            if request.HasField(name)
        }
        for name in ("engines", "wqs"):
            if request.HasField(name):
                kw[name] = list(getattr(request, name).ids)
        dev = self._device_change(
            context,
            request,
            "ConfigureGroup",
            lambda j: self.core.accel.configure_group(j, request.device, request.group_id, **kw),
        )
        return accel_pb2.ConfigureGroupResponse(device=dev)

    @rpc
    def ConfigureDevice(
        self, request: accel_pb2.ConfigureDeviceRequest, context: grpc.ServicerContext
    ) -> accel_pb2.ConfigureDeviceResponse:
        def change(j: Journal) -> None:
            if request.HasField("read_buffer_limit"):
                self.core.accel.configure_device(j, request.device, request.read_buffer_limit)
            else:
                self.core.accel.device(request.device)

        return accel_pb2.ConfigureDeviceResponse(
            device=self._device_change(context, request, "ConfigureDevice", change)
        )

    @rpc
    def EnableDevice(
        self, request: accel_pb2.EnableDeviceRequest, context: grpc.ServicerContext
    ) -> accel_pb2.EnableDeviceResponse:
        dev = self._device_change(
            context, request, "EnableDevice", lambda j: self.core.accel.set_device_enabled(j, request.device, True)
        )
        return accel_pb2.EnableDeviceResponse(device=dev)

    @rpc
    def DisableDevice(
        self, request: accel_pb2.DisableDeviceRequest, context: grpc.ServicerContext
    ) -> accel_pb2.DisableDeviceResponse:
        dev = self._device_change(
            context, request, "DisableDevice", lambda j: self.core.accel.set_device_enabled(j, request.device, False)
        )
        return accel_pb2.DisableDeviceResponse(device=dev)

    @rpc
    def Advance(self, request: accel_pb2.AdvanceRequest, context: grpc.ServicerContext) -> accel_pb2.AdvanceResponse:
        r = self._change(
            context,
            "Advance",
            request,
            lambda j: self.core.accel.advance(j, request.device, request.until_cycles, request.poll),
        )
        return accel_pb2.AdvanceResponse(executed=r.executed, cycles=r.cycles)

    @rpc
    def SetRunOptions(
        self, request: accel_pb2.SetRunOptionsRequest, context: grpc.ServicerContext
    ) -> accel_pb2.SetRunOptionsResponse:
        def run(j: Journal) -> accel_pb2.Device:
            dev = self.core.accel.set_run_options(
                j,
                request.device,
                auto_run=request.auto_run if request.HasField("auto_run") else None,
                async_page_requests=request.async_page_requests if request.HasField("async_page_requests") else None,
            )
            return device_pb(dev)

        return accel_pb2.SetRunOptionsResponse(device=self._change(context, "SetRunOptions", request, run))

    @rpc
    def GetEventLog(
        self, request: accel_pb2.GetEventLogRequest, context: grpc.ServicerContext
    ) -> accel_pb2.GetEventLogResponse:
        def entries(j: Journal | None) -> accel_pb2.GetEventLogResponse:
            if j is None:
                got = self.core.accel.event_log(request.device)
            else:
                got = self.core.accel.read_event_log(j, request.device, True)
            return accel_pb2.GetEventLogResponse(
                entries=[evl_entry_pb(i, e) for i, e in got],
                device=device_pb(self.core.accel.device(request.device)),
            )

        if request.consume:
            return self._change(context, "GetEventLog", request, entries)
        return self._read(lambda: entries(None))

    @rpc
    def SetEventLogSize(
        self, request: accel_pb2.SetEventLogSizeRequest, context: grpc.ServicerContext
    ) -> accel_pb2.SetEventLogSizeResponse:
        def run(j: Journal) -> accel_pb2.Device:
            return device_pb(self.core.accel.set_event_log_size(j, request.device, request.size))

        return accel_pb2.SetEventLogSizeResponse(device=self._change(context, "SetEventLogSize", request, run))


class AccelDeviceServicer(Servicer, accel_pb2_grpc.AccelDeviceServiceServicer):
    """svasim.accel.v1.AccelDeviceService: the driver's and the CPU's side of a device (peer
    listener)."""

    prefix = "accel"
    peer_only = True

    @rpc
    def OpenWorkQueue(
        self, request: accel_pb2.OpenWorkQueueRequest, context: grpc.ServicerContext
    ) -> accel_pb2.OpenWorkQueueResponse:
        r = self._change(
            context,
            "OpenWorkQueue",
            request,
            lambda j: self.core.accel.open_wq(j, request.device, request.wq_id, request.mm, request.pgd),
        )
        return accel_pb2.OpenWorkQueueResponse(
            pasid=r.pasid,
            pasid_allocated=r.pasid_allocated,
            portal_offset=r.portal_offset,
            mode=accel_pb2.WQ_MODE_SHARED if r.shared else accel_pb2.WQ_MODE_DEDICATED,
        )

    @rpc
    def Submit(self, request: accel_pb2.SubmitRequest, context: grpc.ServicerContext) -> accel_pb2.SubmitResponse:
        kind = STORE_NAMES.get(request.kind)
        if kind is None:
            raise InvalidArgument("BAD_STORE_KIND", "kind must be ENQCMD, ENQCMDS or MOVDIR64B")
        r = self._change(
            context,
            "Submit",
            request,
            lambda j: self.core.accel.submit(
                j, request.device, request.portal_offset, request.command, kind, request.cycles
            ),
        )
        return accel_pb2.SubmitResponse(accepted=r.accepted, retry_reason=r.retry_reason, occupancy=r.occupancy)

    @rpc
    def CloseWorkQueue(
        self, request: accel_pb2.CloseWorkQueueRequest, context: grpc.ServicerContext
    ) -> accel_pb2.CloseWorkQueueResponse:
        pasid, freed = self._change(
            context,
            "CloseWorkQueue",
            request,
            lambda j: self.core.accel.close_wq(
                j, request.device, request.wq_id, request.mm, request.unbind, request.free_if_unused
            ),
        )
        return accel_pb2.CloseWorkQueueResponse(pasid=pasid, freed=freed)

    @rpc
    def InvalidateDeviceTlb(
        self, request: accel_pb2.InvalidateDeviceTlbRequest, context: grpc.ServicerContext
    ) -> accel_pb2.InvalidateDeviceTlbResponse:
        n = self._change(
            context,
            "InvalidateDeviceTlb",
            request,
            lambda j: self.core.accel.invalidate_devtlb(
                j, request.device, request.pasid, request.address, request.length
            ),
        )
        return accel_pb2.InvalidateDeviceTlbResponse(entries_dropped=n)
