"""gRPC servicers: decode a request, call a core, encode the reply or a rich error.

No hardware behaviour lives here. A state-changing request from a client is recorded
as an input; the same request from a peer service (metadata ``svasim-peer``) is a part
of some client request and is recorded only through the transitions it causes.
"""

from __future__ import annotations

import base64
import functools
import hashlib
import json
import time
from collections.abc import Callable
from typing import Any, TypeVar

import grpc
from google.protobuf.json_format import MessageToDict

from svasim.accel.v1 import accel_pb2, accel_pb2_grpc
from svasim.cpu.v1 import cpu_pb2, cpu_pb2_grpc
from svasim.iommu.v1 import iommu_pb2, iommu_pb2_grpc
from svasim.model import accel as accel_model
from svasim.model import dsa_ops
from svasim.model.cpu import EnqcmdOutcome, EnqcmdResult, Kernel, Process, Task
from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound, SimError
from svasim.model.journal import Journal
from svasim.model.transition import Transition
from svasim.rpc import idxd_convert
from svasim.rpc.core import ServiceCore
from svasim.rpc.cores import AccelCore, CpuCore, IommuCore
from svasim.rpc.rpc_errors import abort
from svasim.trace.v1 import trace_pb2, trace_pb2_grpc
from svasim.wiring.grpc_ports import (
    CAUSE_KEY,
    DEADLINE,
    FAULT_CODES,
    LAST_KEY,
    PAGE_RESPONSE_CODES,
    STORE_KINDS,
    cause_from_metadata,
)

PEER_KEY = "svasim-peer"
F = TypeVar("F", bound=Callable[..., Any])


def rpc(fn: F) -> F:
    """Turn model refusals into rich gRPC errors."""

    @functools.wraps(fn)
    def wrapper(self: Any, request: Any, context: grpc.ServicerContext) -> Any:
        left = context.time_remaining()
        DEADLINE.set(None if left is None else time.monotonic() + left)
        try:
            return fn(self, request, context)
        except SimError as e:
            abort(context, e)
        except ValueError as e:  # layout conversion of a malformed message
            abort(context, InvalidArgument("MALFORMED_MESSAGE", str(e)))

    return wrapper  # type: ignore[return-value]


def _is_peer(context: grpc.ServicerContext) -> bool:
    return any(k in (PEER_KEY, CAUSE_KEY) for k, _ in context.invocation_metadata() or ())


def run_change(
    core: ServiceCore, context: grpc.ServicerContext, method: str, request: Any, fn: Callable[[Journal], Any]
) -> Any:
    """Run a state-changing request as a client input or as a peer's call."""
    if not _is_peer(context):
        record = MessageToDict(request, preserving_proto_field_name=True)
        return core.client_call(method, record, fn)
    cause = cause_from_metadata(context.invocation_metadata())
    result, last = core.peer_call(cause, fn)
    seq = 0
    if isinstance(last, Transition):
        # Commit before answering so the caller can name our last transition as a cause.
        core.recorder.wait_durable(last)
        seq = last.seq or 0
    elif isinstance(last, int):
        seq = last
    if seq:
        context.set_trailing_metadata(((LAST_KEY, str(seq)),))
    return result


def run_read(core: ServiceCore, context: grpc.ServicerContext, fn: Callable[[], Any]) -> Any:
    """Run a request that changes nothing."""
    return core.peer_read(fn) if _is_peer(context) else core.client_read(fn)


# -- cpu ------------------------------------------------------------------------------------
def process_pb(p: Process) -> cpu_pb2.Process:
    """A process as a message."""
    return cpu_pb2.Process(
        pid=p.pid,
        name=p.name,
        pasid=p.pasid,
        tids=p.tids,
        pgd=p.aspace.pgd,
        killed=p.killed,
        kill_signal=p.kill_signal,
    )


def thread_pb(t: Task) -> cpu_pb2.Thread:
    """A thread as a message."""
    return cpu_pb2.Thread(
        tid=t.tid,
        pid=t.pid,
        cpu=t.cpu,
        pasid_activated=t.pasid_activated,
        saved_ia32_pasid=t.saved_ia32_pasid,
        gp_faults=t.gp_faults,
        enqcmds=t.enqcmds,
        exited=t.exited,
    )


OUTCOMES = {
    EnqcmdOutcome.ACCEPTED: cpu_pb2.ENQCMD_OUTCOME_ACCEPTED,
    EnqcmdOutcome.RETRY: cpu_pb2.ENQCMD_OUTCOME_RETRY,
    EnqcmdOutcome.SIGSEGV: cpu_pb2.ENQCMD_OUTCOME_SIGSEGV,
    EnqcmdOutcome.PAGE_FAULT_SIGSEGV: cpu_pb2.ENQCMD_OUTCOME_PAGE_FAULT_SIGSEGV,
    EnqcmdOutcome.KERNEL_GP: cpu_pb2.ENQCMD_OUTCOME_KERNEL_GP,
    EnqcmdOutcome.POSTED: cpu_pb2.ENQCMD_OUTCOME_POSTED,
    EnqcmdOutcome.STORED: cpu_pb2.ENQCMD_OUTCOME_STORED,
}


def enqcmd_pb(r: EnqcmdResult) -> cpu_pb2.EnqcmdResponse:
    """An ENQCMD result as a message."""
    return cpu_pb2.EnqcmdResponse(
        outcome=OUTCOMES[r.outcome],
        zf=r.zf,
        gp_faults=r.gp_faults,
        fixup_loaded_msr=r.fixup_loaded_msr,
        pasid_sent=r.pasid_sent,
        retry_reason=r.retry_reason,
        cycles=r.cycles,
    )


def descriptor_bytes(request: Any) -> bytes:
    """The 64-byte source operand of an ENQCMD request, from either form."""
    which = request.WhichOneof("source")
    if which == "raw":
        if len(request.raw) != 64:
            raise InvalidArgument(
                "BAD_DESCRIPTOR_SIZE",
                f"a descriptor is exactly 64 bytes; got {len(request.raw)}",
                size=len(request.raw),
            )
        return bytes(request.raw)
    if which == "descriptor":
        return idxd_convert.desc_bytes_from_proto(request.descriptor)
    raise InvalidArgument("MISSING_DESCRIPTOR", "set either raw (64 bytes) or descriptor")


class CpuServicer(cpu_pb2_grpc.CpuServiceServicer):
    """svasim.cpu.v1.CpuService."""

    def __init__(self, core: CpuCore, run_id: str) -> None:
        self.core = core
        self.run_id = run_id

    @property
    def k(self) -> Kernel:
        return self.core.kernel

    def _change(self, context: grpc.ServicerContext, method: str, request: Any, fn: Callable[[Journal], Any]) -> Any:
        return run_change(self.core, context, f"cpu.{method}", request, fn)

    @rpc
    def GetFabric(self, request, context):
        def read() -> cpu_pb2.GetFabricResponse:
            cpus = [
                cpu_pb2.Cpu(
                    cpu=c.id, current_tid=c.current, ia32_pasid=c.ia32_pasid, loaded_mm=c.loaded_mm, cycles=c.cycles
                )
                for c in self.k.cpus
            ]
            return cpu_pb2.GetFabricResponse(cpus=cpus, policy=self.k.policy.name, run_id=self.run_id)

        return run_read(self.core, context, read)

    @rpc
    def CreateProcess(self, request, context):
        p = self._change(context, "CreateProcess", request, lambda j: self.k.create_process(j, request.name))
        return cpu_pb2.CreateProcessResponse(process=process_pb(p))

    @rpc
    def GetProcess(self, request, context):
        return cpu_pb2.GetProcessResponse(
            process=run_read(self.core, context, lambda: process_pb(self.k.process(request.pid)))
        )

    @rpc
    def Mmap(self, request, context):
        vma = self._change(
            context,
            "Mmap",
            request,
            lambda j: self.k.mmap(j, request.pid, request.length, request.writable, request.populate),
        )
        return cpu_pb2.MmapResponse(address=vma.start, length=vma.end - vma.start)

    @rpc
    def Munmap(self, request, context):
        pages, inv = self._change(
            context, "Munmap", request, lambda j: self.k.munmap(j, request.pid, request.address, request.length)
        )
        return cpu_pb2.MunmapResponse(pages=pages, iotlb_invalidated=inv)

    @rpc
    def WriteMemory(self, request, context):
        n = self._change(
            context,
            "WriteMemory",
            request,
            lambda j: self.k.write_memory(j, request.pid, request.address, request.data),
        )
        return cpu_pb2.WriteMemoryResponse(written=n)

    @rpc
    def ReadMemory(self, request, context):
        data = self._change(
            context,
            "ReadMemory",
            request,
            lambda j: self.k.read_memory(j, request.pid, request.address, request.length),
        )
        return cpu_pb2.ReadMemoryResponse(data=data)

    @rpc
    def OpenWorkQueue(self, request, context):
        portal, pasid, allocated, shared = self._change(
            context,
            "OpenWorkQueue",
            request,
            lambda j: self.k.open_wq(j, request.pid, request.device, request.wq_id),
        )
        return cpu_pb2.OpenWorkQueueResponse(
            portal_address=portal, pasid=pasid, pasid_allocated=allocated, shared=shared
        )

    @rpc
    def CreateThread(self, request, context):
        t = self._change(context, "CreateThread", request, lambda j: self.k.create_thread(j, request.pid))
        return cpu_pb2.CreateThreadResponse(thread=thread_pb(t))

    @rpc
    def GetThread(self, request, context):
        return cpu_pb2.GetThreadResponse(
            thread=run_read(self.core, context, lambda: thread_pb(self.k.task(request.tid)))
        )

    @rpc
    def Schedule(self, request, context):
        prev, switched, cycles = self._change(
            context, "Schedule", request, lambda j: self.k.schedule(j, request.tid, request.cpu)
        )
        return cpu_pb2.ScheduleResponse(prev_tid=prev, switched_mm=switched, cycles=cycles)

    @rpc
    def Enqcmd(self, request, context):
        src = descriptor_bytes(request)
        r = self._change(
            context, "Enqcmd", request, lambda j: self.k.enqcmd(j, request.tid, request.portal_address, src)
        )
        return enqcmd_pb(r)

    @rpc
    def Movdir64b(self, request, context):
        src = descriptor_bytes(request)
        r = self._change(
            context, "Movdir64b", request, lambda j: self.k.movdir64b(j, request.tid, request.portal_address, src)
        )
        return cpu_pb2.Movdir64bResponse(outcome=OUTCOMES[r.outcome], gp_faults=r.gp_faults, cycles=r.cycles)

    @rpc
    def Enqcmds(self, request, context):
        src = descriptor_bytes(request)
        offset = accel_model.idxd_get_wq_portal_full_offset(request.wq_id, accel_model.IDXD_PORTAL_UNLIMITED)
        r = self._change(
            context, "Enqcmds", request, lambda j: self.k.enqcmds(j, request.tid, request.device, offset, src)
        )
        return cpu_pb2.EnqcmdsResponse(
            outcome=OUTCOMES[r.outcome], zf=r.zf, retry_reason=r.retry_reason, cycles=r.cycles
        )

    @rpc
    def CreateKernelThread(self, request, context):
        t = self._change(
            context, "CreateKernelThread", request, lambda j: self.k.create_kthread(j, request.name or "kworker")
        )
        return cpu_pb2.CreateKernelThreadResponse(thread=thread_pb(t))

    @rpc
    def EnqcmdBatch(self, request, context):
        sources = [descriptor_bytes(r) for r in request.requests]
        for r in request.requests:
            self.core.client_read(lambda r=r: self.k.running_task(r.tid))

        def run(j: Journal) -> list[EnqcmdResult]:
            out = []
            for r, src in zip(request.requests, sources, strict=True):
                task = self.k.task(r.tid)
                if task.exited:
                    # An earlier instruction of this batch killed the thread's process.
                    break
                out.append(self.k.enqcmd(j, r.tid, r.portal_address, src))
            return out

        results = self._change(context, "EnqcmdBatch", request, run)
        return cpu_pb2.EnqcmdBatchResponse(responses=[enqcmd_pb(r) for r in results])

    @rpc
    def WaitCompletion(self, request, context):
        w = self._change(
            context,
            "WaitCompletion",
            request,
            lambda j: self.k.wait_completion(j, request.tid, request.completion_addr),
        )
        return cpu_pb2.WaitCompletionResponse(
            completed=w.completed, record=idxd_convert.comp_proto_from_bytes(w.raw), raw=w.raw, cycles=w.cycles
        )

    @rpc
    def CloseWorkQueue(self, request, context):
        pasid, freed = self._change(
            context, "CloseWorkQueue", request, lambda j: self.k.close_wq(j, request.pid, request.device, request.wq_id)
        )
        return cpu_pb2.CloseWorkQueueResponse(pasid=pasid, freed=freed)

    @rpc
    def Fork(self, request, context):
        child = self._change(context, "Fork", request, lambda j: self.k.fork(j, request.tid))
        return cpu_pb2.ForkResponse(child=process_pb(child))

    @rpc
    def Exec(self, request, context):
        proc = self._change(context, "Exec", request, lambda j: self.k.exec(j, request.tid))
        return cpu_pb2.ExecResponse(process=process_pb(proc))

    @rpc
    def ExitThread(self, request, context):
        def run(j: Journal) -> bool:
            self.k.exit_thread(j, request.tid)
            task = self.k.tasks[request.tid]
            return task.kthread is False and self.k.processes[task.pid].exited

        return cpu_pb2.ExitThreadResponse(process_exited=self._change(context, "ExitThread", request, run))

    @rpc
    def GetCounters(self, request, context):
        def read() -> cpu_pb2.GetCountersResponse:
            sets = [cpu_pb2.CounterSet(scope="run", values=dict(self.k.stats))]
            cpus = sorted((n for n in self.k.counters if n.startswith("cpu/")), key=lambda n: int(n.split("/")[1]))
            threads = sorted(
                (n for n in self.k.counters if n.startswith("thread/")), key=lambda n: int(n.split("/")[1])
            )
            sets += [cpu_pb2.CounterSet(scope=n, values=dict(self.k.counters[n])) for n in cpus + threads]
            return cpu_pb2.GetCountersResponse(sets=sets)

        return run_read(self.core, context, read)


class HostMemoryServicer(cpu_pb2_grpc.HostMemoryServiceServicer):
    """svasim.cpu.v1.HostMemoryService: page walks and DMA for peers."""

    def __init__(self, core: CpuCore) -> None:
        self.core = core

    @rpc
    def WalkPageTable(self, request, context):
        w = self.core.peer_read(
            lambda: self.core.kernel.walk(request.pgd, request.address, request.length, request.write)
        )
        return cpu_pb2.WalkPageTableResponse(
            extents=[
                cpu_pb2.Extent(address=e.address, physical=e.physical, length=e.length, writable=e.writable)
                for e in w.extents
            ],
            faulted=w.faulted,
            fault_address=w.fault_address,
            protection=w.protection,
        )

    @rpc
    def DmaRead(self, request, context):
        data = self.core.peer_read(lambda: self.core.kernel.dma_read(request.physical, request.length))
        return cpu_pb2.DmaReadResponse(data=data)

    @rpc
    def HandlePageFault(self, request, context):
        ok = run_change(
            self.core,
            context,
            "cpu.HandlePageFault",
            request,
            lambda j: self.core.kernel.handle_page_fault(j, request.pgd, request.address, request.write),
        )
        return cpu_pb2.HandlePageFaultResponse(resolved=ok)

    @rpc
    def DmaWrite(self, request, context):
        run_change(
            self.core,
            context,
            "cpu.DmaWrite",
            request,
            lambda j: self.core.kernel.dma_write(j, request.physical, request.data),
        )
        return cpu_pb2.DmaWriteResponse(written=len(request.data))


# -- iommu ----------------------------------------------------------------------------------
class IommuServicer(iommu_pb2_grpc.IommuServiceServicer):
    """svasim.iommu.v1.IommuService."""

    def __init__(self, core: IommuCore) -> None:
        self.core = core

    def _change(self, context, method, request, fn):  # type: ignore[no-untyped-def]
        return run_change(self.core, context, f"iommu.{method}", request, fn)

    @rpc
    def BindDevice(self, request, context):
        r = self._change(
            context,
            "BindDevice",
            request,
            lambda j: self.core.iommu.bind(j, request.device, request.mm, request.pgd, request.max_pasids),
        )
        return iommu_pb2.BindDeviceResponse(pasid=r.pasid, allocated=r.allocated)

    @rpc
    def UnbindDevice(self, request, context):
        pasid, freed = self._change(
            context,
            "UnbindDevice",
            request,
            lambda j: self.core.iommu.unbind(j, request.device, request.mm, request.free_if_unused),
        )
        return iommu_pb2.UnbindDeviceResponse(pasid=pasid, freed=freed)

    @rpc
    def DropMm(self, request, context):
        pasid = self._change(context, "DropMm", request, lambda j: self.core.iommu.drop_mm(j, request.mm))
        return iommu_pb2.DropMmResponse(pasid=pasid or 0)

    @rpc
    def Translate(self, request, context):
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
    def InvalidatePasid(self, request, context):
        n = self._change(
            context,
            "InvalidatePasid",
            request,
            lambda j: self.core.iommu.invalidate(j, request.pasid, request.address, request.length),
        )
        return iommu_pb2.InvalidatePasidResponse(entries_dropped=n)

    @rpc
    def PageRequest(self, request, context):
        code = self._change(
            context,
            "PageRequest",
            request,
            lambda j: self.core.iommu.page_request(j, request.device, request.pasid, request.address, request.write),
        )
        return iommu_pb2.PageRequestResponse(code=PAGE_RESPONSE_CODES[code])

    @rpc
    def GetPasidEntry(self, request, context):
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

        return iommu_pb2.GetPasidEntryResponse(entry=run_read(self.core, context, read))

    @rpc
    def GetIommu(self, request, context):
        def read() -> iommu_pb2.GetIommuResponse:
            m = self.core.iommu
            pasids = []
            for pasid in sorted(m.pasid_mm):
                devs = sorted(n for n, d in m.devices.items() if d.entry(pasid) is not None)
                pasids.append(iommu_pb2.PasidAllocation(pasid=pasid, mm=m.pasid_mm[pasid], devices=devs))
            return iommu_pb2.GetIommuResponse(pasids=pasids, **m.stats)

        return run_read(self.core, context, read)


# -- accel ----------------------------------------------------------------------------------
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
        )
        for wq in d.wqs
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
}


class AccelServicer(accel_pb2_grpc.AccelServiceServicer):
    """svasim.accel.v1.AccelService."""

    def __init__(self, core: AccelCore) -> None:
        self.core = core

    def _change(self, context, method, request, fn):  # type: ignore[no-untyped-def]
        return run_change(self.core, context, f"accel.{method}", request, fn)

    @rpc
    def ListDevices(self, request, context):
        devs = run_read(
            self.core, context, lambda: [device_pb(self.core.accel.devices[n]) for n in sorted(self.core.accel.devices)]
        )
        return accel_pb2.ListDevicesResponse(devices=devs)

    @rpc
    def OpenWorkQueue(self, request, context):
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
    def Submit(self, request, context):
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
    def CloseWorkQueue(self, request, context):
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
    def ConfigureWorkQueue(self, request, context):
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
    def EnableWorkQueue(self, request, context):
        return accel_pb2.EnableWorkQueueResponse(wq=self._enable(context, request, "EnableWorkQueue", True))

    @rpc
    def DisableWorkQueue(self, request, context):
        return accel_pb2.DisableWorkQueueResponse(wq=self._enable(context, request, "DisableWorkQueue", False))

    @rpc
    def InvalidateDeviceTlb(self, request, context):
        n = self._change(
            context,
            "InvalidateDeviceTlb",
            request,
            lambda j: self.core.accel.invalidate_devtlb(
                j, request.device, request.pasid, request.address, request.length
            ),
        )
        return accel_pb2.InvalidateDeviceTlbResponse(entries_dropped=n)

    @rpc
    def Advance(self, request, context):
        r = self._change(
            context, "Advance", request, lambda j: self.core.accel.advance(j, request.device, request.until_cycles)
        )
        return accel_pb2.AdvanceResponse(executed=r.executed, cycles=r.cycles)


# -- trace ----------------------------------------------------------------------------------
def _filters_key(request: trace_pb2.ListEventsRequest) -> str:
    parts = [request.run, request.entity_prefix, request.kind_prefix, request.service, str(request.to_seq)]
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:16]


def encode_page_token(after_seq: int, key: str) -> str:
    """An opaque page token: where to continue, bound to the filters it was made for."""
    return base64.urlsafe_b64encode(json.dumps({"a": after_seq, "k": key}).encode()).decode()


def decode_page_token(token: str, key: str) -> int:
    """The seq to continue after; InvalidArgument if the token is foreign or corrupt."""
    try:
        data = json.loads(base64.urlsafe_b64decode(token.encode()))
        after, k = int(data["a"]), str(data["k"])
    except (ValueError, KeyError, TypeError) as e:
        raise InvalidArgument("BAD_PAGE_TOKEN", "page_token is not one this service issued") from e
    if k != key:
        raise InvalidArgument("PAGE_TOKEN_MISMATCH", "page_token was issued for other filters; repeat them unchanged")
    return after


class TraceServicer(trace_pb2_grpc.TraceServiceServicer):
    """svasim.trace.v1.TraceService, reading the store."""

    def __init__(self, store: Any, recorder: Any) -> None:
        self.store = store
        self.recorder = recorder

    def _run(self, ref: str) -> Any:
        if not ref:
            raise InvalidArgument("MISSING_RUN", "name a run by id or name")
        try:
            return self.store.get_run(ref)
        except KeyError:
            raise NotFound("UNKNOWN_RUN", f"no run with id or name {ref!r}", run=ref) from None

    @staticmethod
    def run_pb(r: Any) -> trace_pb2.Run:
        return trace_pb2.Run(
            id=r.id,
            name=r.name,
            create_time=r.created_at.isoformat() if r.created_at else "",
            policy=r.policy,
            seed=r.seed,
            version=r.version,
            config_json=json.dumps(r.config, sort_keys=True),
            event_count=getattr(r, "event_count", 0) or 0,
        )

    @rpc
    def ListRuns(self, request, context):
        return trace_pb2.ListRunsResponse(runs=[self.run_pb(r) for r in self.store.list_runs()])

    @rpc
    def GetRun(self, request, context):
        return trace_pb2.GetRunResponse(run=self.run_pb(self._run(request.run)))

    @rpc
    def ListEvents(self, request, context):
        run = self._run(request.run)
        size = request.page_size or 100
        if size < 0 or size > 1000:
            raise InvalidArgument("BAD_PAGE_SIZE", f"page_size must be 1..1000, got {size}")
        key = _filters_key(request)
        after = decode_page_token(request.page_token, key) if request.page_token else max(0, request.from_seq - 1)
        rows = self.store.events(
            run.id,
            after_seq=after,
            until_seq=request.to_seq or None,
            entity_prefix=request.entity_prefix or None,
            kind_prefix=request.kind_prefix or None,
            service=request.service or None,
            limit=size + 1,
        )
        more = len(rows) > size
        rows = rows[:size]
        events = [self.event_pb(e) for e in rows]
        token = encode_page_token(rows[-1].seq, key) if more and rows else ""
        return trace_pb2.ListEventsResponse(events=events, next_page_token=token)

    @rpc
    def GetState(self, request, context):
        run = self._run(request.run)
        state = self.store.state_at(run.id, request.at_seq or None)
        ents = [
            trace_pb2.EntityState(entity=name, fields_json=json.dumps(fields, sort_keys=True))
            for name, fields in state.items()
            if not request.entity_prefix or name.startswith(request.entity_prefix)
        ]
        at = request.at_seq or self.store.last_seq(run.id)
        return trace_pb2.GetStateResponse(entities=ents, at_seq=at)

    @staticmethod
    def event_pb(e: Any) -> trace_pb2.Event:
        """A stored event as a message."""
        return trace_pb2.Event(
            seq=e.seq,
            service=e.service,
            entity=e.entity,
            kind=e.kind,
            before_json=json.dumps(e.before, sort_keys=True),
            after_json=json.dumps(e.after, sort_keys=True),
            cause=e.cause or 0,
            cycles=e.cycles,
            detail_json=json.dumps(e.detail, sort_keys=True),
        )

    #: How often a follower polls the store for new events (seconds).
    follow_interval = 0.05

    def FollowEvents(self, request, context):
        try:
            run = self._run(request.run)
        except SimError as e:
            abort(context, e)
        for rows in self.store.follow(
            run.id,
            after_seq=request.from_seq - 1 if request.from_seq else run.event_count,
            kind_prefix=request.kind_prefix or None,
            entity_prefix=request.entity_prefix or None,
            poll=self.follow_interval,
            active=context.is_active,
        ):
            if rows:
                yield trace_pb2.FollowEventsResponse(events=[self.event_pb(e) for e in rows])

    @rpc
    def DeleteRun(self, request, context):
        run = self._run(request.run)
        if self.recorder is not None and getattr(self.recorder, "run_id", None) == run.id:
            raise FailedPrecondition(
                "RUN_IS_LIVE", f"run {run.id} is the one this fabric is recording into; stop the fabric first"
            )
        self.store.delete_run(run.id)
        return trace_pb2.DeleteRunResponse(events_deleted=run.event_count)

    @rpc
    def Flush(self, request, context):
        if self.recorder is None:
            raise FailedPrecondition("NO_RECORDER", "this process records nothing")
        self.recorder.flush()
        return trace_pb2.FlushResponse(committed=self.recorder.stats().get("committed", 0))
