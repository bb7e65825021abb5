"""The cpu service: the host kernel and its memory, served to clients and to peers.

``CpuService`` is what a program on the host does (processes, memory, threads, ENQCMD);
``HostMemoryService`` is what a device does to host memory through the IOMMU (page
walks, DMA, I/O page faults), for the accel and iommu peers only.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import grpc

from svasim.model import accel as accel_model
from svasim.model.costs import CostTable
from svasim.model.errors import InvalidArgument
from svasim.model.events import Event
from svasim.model.journal import Journal
from svasim.model.kernel import EnqcmdOutcome, EnqcmdResult, Kernel, Process, Task
from svasim.model.kernel.native import NativeFactory
from svasim.model.kernel.sequences import FiredStep
from svasim.model.memory import DEFAULT_MEMORY_SIZE
from svasim.model.ports import AccelPort, IommuPort
from svasim.rpc import idxd_convert
from svasim.rpc.common import ServiceCore, Servicer, rpc, rpc_stream
from svasim.wiring.local import Unlocking
from svasim_api.cpu.v1 import cpu_pb2, cpu_pb2_grpc


class CpuCore(ServiceCore):
    """The host: its kernel model owns CPUs, processes, threads and physical memory."""

    service = "cpu"

    def __init__(
        self,
        *,
        accel: AccelPort,
        iommu: IommuPort,
        ncpus: int,
        policy: str,
        costs: CostTable,
        early_free: bool | None = None,
        memory_size: int = DEFAULT_MEMORY_SIZE,
        native_factory: NativeFactory | None = None,
        **kw: object,
    ) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        # Outbound calls release the host lock: the peer may walk page tables or DMA
        # into memory of this very core while the kernel waits for its answer.
        self.kernel = Kernel(
            Unlocking(accel, self.lock),
            Unlocking(iommu, self.lock),
            ncpus=ncpus,
            policy=policy,
            costs=costs,
            early_free=early_free,
            memory_size=memory_size,
        )
        self.kernel.native_factory = native_factory

    @property
    def model(self) -> Kernel:
        return self.kernel

    def holds_state_of(self, service: str) -> str:
        """Live processes with a PASID (the iommu's bindings, the accel's device TLB) or
        an open WQ file (the accel's clients and queued descriptors)."""
        try:
            live = [p for p in list(self.kernel.processes.values()) if not p.exited]
        except RuntimeError:  # the dict changed under us: assume the worst
            return "processes"
        if service == "iommu":
            held = [p.pid for p in live if p.pasid]
            return f"PASIDs of processes {held[:8]}" if held else ""
        if service == "accel":
            held = [p.pid for p in live if p.files or p.pasid]
            return f"WQ files and PASIDs of processes {held[:8]}" if held else ""
        return ""


# -- conversions ----------------------------------------------------------------------------
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
        native_pid=p.native_pid,
    )


def thread_pb(t: Task, sequence_point: str = "") -> cpu_pb2.Thread:
    """A thread as a message (with the point of the kernel sequence it is in, if any)."""
    return cpu_pb2.Thread(
        tid=t.tid,
        pid=t.pid,
        cpu=t.cpu,
        pasid_activated=t.pasid_activated,
        saved_ia32_pasid=t.saved_ia32_pasid,
        gp_faults=t.gp_faults,
        enqcmds=t.enqcmds,
        exited=t.exited,
        sequence_point=sequence_point,
    )


def pending_pb(e: Event) -> cpu_pb2.PendingStep:
    """A step waiting on the cpu's event queue as a message."""
    a = e.args
    return cpu_pb2.PendingStep(
        time=e.time, eid=e.eid, cpu=a["cpu"], tid=a["tid"], sequence=a["sequence"], step=a["step"]
    )


def fired_pb(f: FiredStep) -> cpu_pb2.FiredStep:
    """A step a fired entry ran as a message."""
    return cpu_pb2.FiredStep(
        time=f.time, cpu=f.cpu, tid=f.tid, sequence=f.sequence, step=f.step, name=f.name, point=f.point
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
    if which == "desc":
        try:
            return idxd_convert.desc_bytes_from_proto(request.desc)
        except (ValueError, TypeError) as e:
            # The layout names the field that does not fit.
            raise InvalidArgument("MALFORMED_DESCRIPTOR", str(e)) from None
    raise InvalidArgument("MISSING_DESCRIPTOR", "set either raw (64 bytes) or desc")


class CpuServicer(Servicer, cpu_pb2_grpc.CpuServiceServicer):
    """svasim.cpu.v1.CpuService (client listener)."""

    prefix = "cpu"

    def __init__(self, core: CpuCore, run_id: str, *, peer: bool = False) -> None:
        super().__init__(core, peer=peer)
        self.run_id = run_id

    @property
    def k(self) -> Kernel:
        return self.core.kernel

    @rpc
    def GetFabric(self, request: cpu_pb2.GetFabricRequest, context: grpc.ServicerContext) -> cpu_pb2.GetFabricResponse:
        def read() -> cpu_pb2.GetFabricResponse:
            cpus = [
                cpu_pb2.Cpu(
                    cpu=c.id, current_tid=c.current, ia32_pasid=c.ia32_pasid, loaded_mm=c.loaded_mm, cycles=c.cycles
                )
                for c in self.k.cpus
            ]
            return cpu_pb2.GetFabricResponse(cpus=cpus, policy=self.k.policy.name, run_id=self.run_id)

        return self._read(read)

    @rpc
    def CreateProcess(
        self, request: cpu_pb2.CreateProcessRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.CreateProcessResponse:
        p = self._change(
            context, "CreateProcess", request, lambda j: self.k.create_process(j, request.name, request.native_pid)
        )
        return cpu_pb2.CreateProcessResponse(process=process_pb(p))

    @rpc
    def GetProcess(
        self, request: cpu_pb2.GetProcessRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.GetProcessResponse:
        return cpu_pb2.GetProcessResponse(process=self._read(lambda: process_pb(self.k.process(request.pid))))

    @rpc
    def Mmap(self, request: cpu_pb2.MmapRequest, context: grpc.ServicerContext) -> cpu_pb2.MmapResponse:
        vma = self._change(
            context,
            "Mmap",
            request,
            lambda j: self.k.mmap(j, request.pid, request.length, request.writable, request.populate),
        )
        return cpu_pb2.MmapResponse(address=vma.start, length=vma.end - vma.start)

    @rpc
    def Munmap(self, request: cpu_pb2.MunmapRequest, context: grpc.ServicerContext) -> cpu_pb2.MunmapResponse:
        pages, inv = self._change(
            context, "Munmap", request, lambda j: self.k.munmap(j, request.pid, request.address, request.length)
        )
        return cpu_pb2.MunmapResponse(pages=pages, iotlb_invalidated=inv)

    @rpc
    def Mprotect(self, request: cpu_pb2.MprotectRequest, context: grpc.ServicerContext) -> cpu_pb2.MprotectResponse:
        changed, inv = self._change(
            context,
            "Mprotect",
            request,
            lambda j: self.k.mprotect(j, request.pid, request.address, request.length, request.writable),
        )
        return cpu_pb2.MprotectResponse(ptes_changed=changed, iotlb_invalidated=inv)

    @rpc
    def Madvise(self, request: cpu_pb2.MadviseRequest, context: grpc.ServicerContext) -> cpu_pb2.MadviseResponse:
        pages, inv = self._change(
            context,
            "Madvise",
            request,
            lambda j: self.k.madvise(j, request.pid, request.address, request.length, request.advice),
        )
        return cpu_pb2.MadviseResponse(pages=pages, iotlb_invalidated=inv)

    @rpc
    def WriteMemory(
        self, request: cpu_pb2.WriteMemoryRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.WriteMemoryResponse:
        n = self._change(
            context,
            "WriteMemory",
            request,
            lambda j: self.k.write_memory(j, request.pid, request.address, request.data),
        )
        return cpu_pb2.WriteMemoryResponse(written=n)

    @rpc
    def ReadMemory(
        self, request: cpu_pb2.ReadMemoryRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.ReadMemoryResponse:
        data = self._change(
            context,
            "ReadMemory",
            request,
            lambda j: self.k.read_memory(j, request.pid, request.address, request.length),
        )
        return cpu_pb2.ReadMemoryResponse(data=data)

    @rpc
    def OpenWorkQueue(
        self, request: cpu_pb2.OpenWorkQueueRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.OpenWorkQueueResponse:
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
    def CreateThread(
        self, request: cpu_pb2.CreateThreadRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.CreateThreadResponse:
        t = self._change(
            context, "CreateThread", request, lambda j: self.k.create_thread(j, request.pid, request.parent_tid)
        )
        return cpu_pb2.CreateThreadResponse(thread=thread_pb(t))

    @rpc
    def GetThread(self, request: cpu_pb2.GetThreadRequest, context: grpc.ServicerContext) -> cpu_pb2.GetThreadResponse:
        def read() -> cpu_pb2.Thread:
            task = self.k.task(request.tid)
            return thread_pb(task, self.k.sequence_point(task))

        return cpu_pb2.GetThreadResponse(thread=self._read(read))

    @rpc
    def Schedule(self, request: cpu_pb2.ScheduleRequest, context: grpc.ServicerContext) -> cpu_pb2.ScheduleResponse:
        prev, switched, cycles = self._change(
            context, "Schedule", request, lambda j: self.k.schedule(j, request.tid, request.cpu)
        )
        return cpu_pb2.ScheduleResponse(prev_tid=prev, switched_mm=switched, cycles=cycles)

    @rpc
    def Enqcmd(self, request: cpu_pb2.EnqcmdRequest, context: grpc.ServicerContext) -> cpu_pb2.EnqcmdResponse:
        src = descriptor_bytes(request)
        r = self._change(
            context, "Enqcmd", request, lambda j: self.k.enqcmd(j, request.tid, request.portal_address, src)
        )
        return enqcmd_pb(r)

    @rpc
    def Movdir64b(self, request: cpu_pb2.Movdir64bRequest, context: grpc.ServicerContext) -> cpu_pb2.Movdir64bResponse:
        src = descriptor_bytes(request)
        r = self._change(
            context, "Movdir64b", request, lambda j: self.k.movdir64b(j, request.tid, request.portal_address, src)
        )
        return cpu_pb2.Movdir64bResponse(outcome=OUTCOMES[r.outcome], gp_faults=r.gp_faults, cycles=r.cycles)

    @rpc
    def Enqcmds(self, request: cpu_pb2.EnqcmdsRequest, context: grpc.ServicerContext) -> cpu_pb2.EnqcmdsResponse:
        src = descriptor_bytes(request)
        offset = accel_model.idxd_get_wq_portal_full_offset(request.wq_id, accel_model.IDXD_PORTAL_UNLIMITED)
        r = self._change(
            context, "Enqcmds", request, lambda j: self.k.enqcmds(j, request.tid, request.device, offset, src)
        )
        return cpu_pb2.EnqcmdsResponse(
            outcome=OUTCOMES[r.outcome], zf=r.zf, retry_reason=r.retry_reason, cycles=r.cycles
        )

    @rpc
    def CreateKernelThread(
        self, request: cpu_pb2.CreateKernelThreadRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.CreateKernelThreadResponse:
        t = self._change(
            context, "CreateKernelThread", request, lambda j: self.k.create_kthread(j, request.name or "kworker")
        )
        return cpu_pb2.CreateKernelThreadResponse(thread=thread_pb(t))

    @rpc
    def EnqcmdBatch(
        self, request: cpu_pb2.EnqcmdBatchRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.EnqcmdBatchResponse:
        sources = [descriptor_bytes(r) for r in request.requests]
        # Every thread named must be running before any instruction of the batch executes.
        self._read(lambda: [self.k.running_task(r.tid) for r in request.requests])

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

    @rpc_stream
    def Submit(
        self, request_iterator: Iterator[cpu_pb2.SubmitRequest], context: grpc.ServicerContext
    ) -> Iterator[cpu_pb2.SubmitResponse]:
        """A pipelined stream of instructions (see :mod:`svasim.rpc.submit`)."""
        from svasim.rpc.submit import serve_submit  # it builds on this module

        yield from serve_submit(self, request_iterator, context)

    @rpc
    def WaitCompletion(
        self, request: cpu_pb2.WaitCompletionRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.WaitCompletionResponse:
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
    def CloseWorkQueue(
        self, request: cpu_pb2.CloseWorkQueueRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.CloseWorkQueueResponse:
        pasid, freed = self._change(
            context, "CloseWorkQueue", request, lambda j: self.k.close_wq(j, request.pid, request.device, request.wq_id)
        )
        return cpu_pb2.CloseWorkQueueResponse(pasid=pasid, freed=freed)

    @rpc
    def Fork(self, request: cpu_pb2.ForkRequest, context: grpc.ServicerContext) -> cpu_pb2.ForkResponse:
        child = self._change(context, "Fork", request, lambda j: self.k.fork(j, request.tid, request.native_pid))
        return cpu_pb2.ForkResponse(child=process_pb(child))

    @rpc
    def Exec(self, request: cpu_pb2.ExecRequest, context: grpc.ServicerContext) -> cpu_pb2.ExecResponse:
        proc = self._change(context, "Exec", request, lambda j: self.k.exec(j, request.tid))
        return cpu_pb2.ExecResponse(process=process_pb(proc))

    @rpc
    def ExitThread(
        self, request: cpu_pb2.ExitThreadRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.ExitThreadResponse:
        def run(j: Journal) -> bool:
            self.k.exit_thread(j, request.tid)
            task = self.k.tasks[request.tid]
            return task.kthread is False and self.k.processes[task.pid].exited

        return cpu_pb2.ExitThreadResponse(process_exited=self._change(context, "ExitThread", request, run))

    @rpc
    def StartSequence(
        self, request: cpu_pb2.StartSequenceRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.StartSequenceResponse:
        def run(j: Journal) -> tuple[str, Event]:
            first = self.k.start_sequence(j, request.tid, request.sequence)
            return self.k.sequence_point(self.k.tasks[request.tid]), first

        point, first = self._change(context, "StartSequence", request, run)
        return cpu_pb2.StartSequenceResponse(point=point, first=pending_pb(first))

    @rpc
    def AdvanceCpu(
        self, request: cpu_pb2.AdvanceCpuRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.AdvanceCpuResponse:
        def run(j: Journal) -> cpu_pb2.AdvanceCpuResponse:
            fired = self.k.advance_cpu(j, request.steps or None, request.until_cycles or None)
            queue = self.k.events
            return cpu_pb2.AdvanceCpuResponse(
                fired=[fired_pb(f) for f in fired], pending=[pending_pb(e) for e in queue.pending()], now=queue.now
            )

        response: cpu_pb2.AdvanceCpuResponse = self._change(context, "AdvanceCpu", request, run)
        return response

    @rpc
    def GetCounters(
        self, request: cpu_pb2.GetCountersRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.GetCountersResponse:
        def read() -> cpu_pb2.GetCountersResponse:
            sets = [cpu_pb2.CounterSet(scope="run", values=dict(self.k.stats))]
            cpus = sorted((n for n in self.k.counters if n.startswith("cpu/")), key=lambda n: int(n.split("/")[1]))
            threads = sorted(
                (n for n in self.k.counters if n.startswith("thread/")), key=lambda n: int(n.split("/")[1])
            )
            sets += [cpu_pb2.CounterSet(scope=n, values=dict(self.k.counters[n])) for n in cpus + threads]
            return cpu_pb2.GetCountersResponse(sets=sets)

        return self._read(read)


class HostMemoryServicer(Servicer, cpu_pb2_grpc.HostMemoryServiceServicer):
    """svasim.cpu.v1.HostMemoryService: page walks and DMA for peers (peer listener)."""

    prefix = "cpu"
    peer_only = True

    @rpc
    def WalkPageTable(
        self, request: cpu_pb2.WalkPageTableRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.WalkPageTableResponse:
        w = self._change(
            context,
            "WalkPageTable",
            request,
            lambda j: self.core.kernel.walk(j, request.pgd, request.address, request.length, request.write),
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
    def DmaRead(self, request: cpu_pb2.DmaReadRequest, context: grpc.ServicerContext) -> cpu_pb2.DmaReadResponse:
        data = self._change(
            context,
            "DmaRead",
            request,
            lambda j: self.core.kernel.dma_read(j, request.physical, request.length),
        )
        return cpu_pb2.DmaReadResponse(data=data)

    @rpc
    def HandlePageFault(
        self, request: cpu_pb2.HandlePageFaultRequest, context: grpc.ServicerContext
    ) -> cpu_pb2.HandlePageFaultResponse:
        ok = self._change(
            context,
            "HandlePageFault",
            request,
            lambda j: self.core.kernel.handle_page_fault(j, request.pgd, request.address, request.write),
        )
        return cpu_pb2.HandlePageFaultResponse(resolved=ok)

    @rpc
    def DmaWrite(self, request: cpu_pb2.DmaWriteRequest, context: grpc.ServicerContext) -> cpu_pb2.DmaWriteResponse:
        self._change(
            context,
            "DmaWrite",
            request,
            lambda j: self.core.kernel.dma_write(j, request.physical, request.data),
        )
        return cpu_pb2.DmaWriteResponse(written=len(request.data))
