"""The client: one channel, one stub per service, errors unpacked in one place."""

from __future__ import annotations

import functools
import itertools
import threading
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from svasim_api.accel.v1 import accel_pb2, accel_pb2_grpc
from svasim_api.cpu.v1 import cpu_pb2, cpu_pb2_grpc
from svasim_api.errors import SvasimError
from svasim_api.iommu.v1 import iommu_pb2, iommu_pb2_grpc
from svasim_api.trace.v1 import trace_pb2, trace_pb2_grpc


def _unpacked(fn: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except grpc.RpcError as e:
            raise SvasimError.from_rpc_error(e) from None

    return wrapper


class _Credits:
    """How many more submissions a stream may send before results come back."""

    def __init__(self, n: int) -> None:
        self._n = n
        self._closed = False
        self._cv = threading.Condition()

    def take(self, most: int) -> int:
        """Wait for at least one credit and take up to ``most``; 0 once closed."""
        with self._cv:
            while self._n == 0 and not self._closed:
                self._cv.wait()
            if self._closed:
                return 0
            n = min(self._n, most)
            self._n -= n
            return n

    def give(self, n: int) -> None:
        """Give back ``n`` credits."""
        with self._cv:
            self._n += n
            self._cv.notify()

    def close(self) -> None:
        """Wake the sender for good: it sends nothing more."""
        with self._cv:
            self._closed = True
            self._cv.notify_all()


def enqcmd_submission(
    tid: int, portal: int, descriptor: bytes, *, tag: int = 0, wait_completion: bool = False
) -> cpu_pb2.Submission:
    """An ENQCMD for :meth:`Client.submit_stream`."""
    return cpu_pb2.Submission(
        tag=tag,
        enqcmd=cpu_pb2.EnqcmdRequest(tid=tid, portal_address=portal, raw=descriptor),
        wait_completion=wait_completion,
    )


def movdir64b_submission(
    tid: int, portal: int, descriptor: bytes, *, tag: int = 0, wait_completion: bool = False
) -> cpu_pb2.Submission:
    """A MOVDIR64B for :meth:`Client.submit_stream`."""
    return cpu_pb2.Submission(
        tag=tag,
        movdir64b=cpu_pb2.Movdir64bRequest(tid=tid, portal_address=portal, raw=descriptor),
        wait_completion=wait_completion,
    )


def enqcmds_submission(
    tid: int, descriptor: bytes, *, device: str = "dsa0", wq_id: int = 0, tag: int = 0, wait_completion: bool = False
) -> cpu_pb2.Submission:
    """An ENQCMDS (from a kernel thread) for :meth:`Client.submit_stream`."""
    return cpu_pb2.Submission(
        tag=tag,
        enqcmds=cpu_pb2.EnqcmdsRequest(tid=tid, device=device, wq_id=wq_id, raw=descriptor),
        wait_completion=wait_completion,
    )


def submission_error(result: cpu_pb2.SubmissionResult) -> SvasimError | None:
    """The refusal of one streamed submission as a :class:`SvasimError`; None if it ran."""
    if not result.HasField("error"):
        return None
    e = result.error
    return SvasimError(
        next((c for c in grpc.StatusCode if c.value[0] == e.code), grpc.StatusCode.UNKNOWN),
        e.reason,
        e.message,
        dict(e.metadata),
        e.retry_delay_ms / 1000 if e.retry_delay_ms else None,
    )


class Client:
    """A connection to a svasim process (or to one service of a split fabric)."""

    def __init__(self, address: str, *, timeout: float = 60.0, channel: grpc.Channel | None = None) -> None:
        self.address = address
        self.timeout = timeout
        self.channel = channel or grpc.insecure_channel(
            address,
            options=[("grpc.max_receive_message_length", 80 << 20), ("grpc.max_send_message_length", 80 << 20)],
        )
        self.cpu = cpu_pb2_grpc.CpuServiceStub(self.channel)
        # A program sees the IOMMU only as root sees it in debugfs: read-only.
        self.iommu = iommu_pb2_grpc.IommuDebugServiceStub(self.channel)
        self.accel = accel_pb2_grpc.AccelServiceStub(self.channel)
        self.trace = trace_pb2_grpc.TraceServiceStub(self.channel)
        # Served on the peer listener only: reachable when ``address`` is that listener.
        self.trace_admin = trace_pb2_grpc.TraceAdminServiceStub(self.channel)
        # types-grpcio-health-checking declares HealthStub without its methods.
        self.health: Any = health_pb2_grpc.HealthStub(self.channel)

    def __enter__(self) -> Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the channel."""
        self.channel.close()

    def wait_ready(self, timeout: float = 10.0) -> None:
        """Block until the channel is connected (raises grpc.FutureTimeoutError)."""
        grpc.channel_ready_future(self.channel).result(timeout=timeout)

    @_unpacked
    def check_health(self, service: str = "") -> str:
        """The health status name of a service ("" = the whole server)."""
        r = self.health.Check(health_pb2.HealthCheckRequest(service=service), timeout=self.timeout)
        return health_pb2.HealthCheckResponse.ServingStatus.Name(r.status)

    # -- cpu -----------------------------------------------------------------------------
    @_unpacked
    def fabric(self) -> cpu_pb2.GetFabricResponse:
        """CPUs, policy and run id."""
        return self.cpu.GetFabric(cpu_pb2.GetFabricRequest(), timeout=self.timeout)

    @_unpacked
    def create_process(self, name: str = "", native_pid: int = 0) -> cpu_pb2.Process:
        """A new process (with its first thread); with ``native_pid``, a native process
        whose memory is that real process's (the fabric must run with --native)."""
        return self.cpu.CreateProcess(
            cpu_pb2.CreateProcessRequest(name=name, native_pid=native_pid), timeout=self.timeout
        ).process

    @_unpacked
    def get_process(self, pid: int) -> cpu_pb2.Process:
        """One process."""
        return self.cpu.GetProcess(cpu_pb2.GetProcessRequest(pid=pid), timeout=self.timeout).process

    @_unpacked
    def mmap(self, pid: int, length: int, *, writable: bool = True, populate: bool = False) -> int:
        """Map anonymous memory; returns its address."""
        r = self.cpu.Mmap(
            cpu_pb2.MmapRequest(pid=pid, length=length, writable=writable, populate=populate), timeout=self.timeout
        )
        return r.address

    @_unpacked
    def munmap(self, pid: int, address: int, length: int) -> cpu_pb2.MunmapResponse:
        """Unmap whole mappings."""
        return self.cpu.Munmap(cpu_pb2.MunmapRequest(pid=pid, address=address, length=length), timeout=self.timeout)

    @_unpacked
    def mprotect(self, pid: int, address: int, length: int, writable: bool) -> cpu_pb2.MprotectResponse:
        """Make a mapped range read-only or read-write (mprotect(2))."""
        return self.cpu.Mprotect(
            cpu_pb2.MprotectRequest(pid=pid, address=address, length=length, writable=writable),
            timeout=self.timeout,
        )

    @_unpacked
    def madvise(self, pid: int, address: int, length: int, advice: int = 4) -> cpu_pb2.MadviseResponse:
        """Advise about a mapped range (madvise(2)); the default, MADV_DONTNEED, drops its pages."""
        return self.cpu.Madvise(
            cpu_pb2.MadviseRequest(pid=pid, address=address, length=length, advice=advice), timeout=self.timeout
        )

    @_unpacked
    def write(self, pid: int, address: int, data: bytes) -> int:
        """Write bytes into a process."""
        return self.cpu.WriteMemory(
            cpu_pb2.WriteMemoryRequest(pid=pid, address=address, data=data), timeout=self.timeout
        ).written

    @_unpacked
    def read(self, pid: int, address: int, length: int) -> bytes:
        """Read bytes from a process."""
        return self.cpu.ReadMemory(
            cpu_pb2.ReadMemoryRequest(pid=pid, address=address, length=length), timeout=self.timeout
        ).data

    @_unpacked
    def open_wq(self, pid: int, device: str = "dsa0", wq_id: int = 0) -> cpu_pb2.OpenWorkQueueResponse:
        """Open and map a work queue portal."""
        return self.cpu.OpenWorkQueue(
            cpu_pb2.OpenWorkQueueRequest(pid=pid, device=device, wq_id=wq_id), timeout=self.timeout
        )

    @_unpacked
    def create_thread(self, pid: int, parent_tid: int = 0) -> cpu_pb2.Thread:
        """A new thread in a process, cloned from ``parent_tid`` (0: its first live thread)."""
        return self.cpu.CreateThread(
            cpu_pb2.CreateThreadRequest(pid=pid, parent_tid=parent_tid), timeout=self.timeout
        ).thread

    @_unpacked
    def get_thread(self, tid: int) -> cpu_pb2.Thread:
        """One thread."""
        return self.cpu.GetThread(cpu_pb2.GetThreadRequest(tid=tid), timeout=self.timeout).thread

    @_unpacked
    def schedule(self, tid: int, cpu: int) -> cpu_pb2.ScheduleResponse:
        """Run a thread on a CPU."""
        return self.cpu.Schedule(cpu_pb2.ScheduleRequest(tid=tid, cpu=cpu), timeout=self.timeout)

    @_unpacked
    def start_sequence(self, tid: int, sequence: str = "kernel_fpu") -> cpu_pb2.StartSequenceResponse:
        """Begin an interruptible kernel sequence in a running thread; ``advance_cpu`` runs its steps."""
        return self.cpu.StartSequence(cpu_pb2.StartSequenceRequest(tid=tid, sequence=sequence), timeout=self.timeout)

    @_unpacked
    def advance_cpu(self, steps: int = 0, until_cycles: int = 0) -> cpu_pb2.AdvanceCpuResponse:
        """Fire entries of the cpu's event queue: at most ``steps``, those due by
        ``until_cycles``; with neither, all of them."""
        return self.cpu.AdvanceCpu(
            cpu_pb2.AdvanceCpuRequest(steps=steps, until_cycles=until_cycles), timeout=self.timeout
        )

    @_unpacked
    def enqcmd(self, tid: int, portal: int, descriptor: bytes) -> cpu_pb2.EnqcmdResponse:
        """Execute ENQCMD with a 64-byte descriptor."""
        return self.cpu.Enqcmd(
            cpu_pb2.EnqcmdRequest(tid=tid, portal_address=portal, raw=descriptor), timeout=self.timeout
        )

    @_unpacked
    def enqcmd_batch(self, items: list[tuple[int, int, bytes]]) -> list[cpu_pb2.EnqcmdResponse]:
        """Execute many ENQCMDs, (tid, portal, descriptor) each, in one call."""
        reqs = [cpu_pb2.EnqcmdRequest(tid=t, portal_address=p, raw=d) for t, p, d in items]
        return list(self.cpu.EnqcmdBatch(cpu_pb2.EnqcmdBatchRequest(requests=reqs), timeout=self.timeout).responses)

    def submit_stream(
        self,
        submissions: Iterable[cpu_pb2.Submission | tuple[int, int, bytes]],
        *,
        window: int = 512,
        per_message: int = 64,
        timeout: float | None = None,
    ) -> Iterator[cpu_pb2.SubmissionResult]:
        """Pipeline instructions over one ``Submit`` stream; yields their results in order.

        ``submissions`` are :class:`cpu_pb2.Submission` messages (see
        :func:`enqcmd_submission` and its siblings) or ``(tid, portal, descriptor)``
        ENQCMDs, tagged with their index. At most ``window`` submissions are unanswered at
        a time; they travel ``per_message`` to a request message. A refused submission is a
        result with ``error`` set (:func:`submission_error` makes it a
        :class:`SvasimError`); a failure of the stream itself raises SvasimError.
        Closing the generator early cancels the stream.
        """
        if window < 1 or per_message < 1:
            raise ValueError("window and per_message must be at least 1")
        credits = _Credits(window)
        source = iter(submissions)
        index = 0

        def requests() -> Iterator[cpu_pb2.SubmitRequest]:
            nonlocal index
            while True:
                n = credits.take(min(per_message, window))
                if n == 0:
                    return
                batch = []
                for item in itertools.islice(source, n):
                    if not isinstance(item, cpu_pb2.Submission):
                        tid, portal, descriptor = item
                        item = enqcmd_submission(tid, portal, descriptor, tag=index)
                    batch.append(item)
                    index += 1
                if len(batch) < n:
                    credits.give(n - len(batch))
                if batch:
                    yield cpu_pb2.SubmitRequest(submissions=batch)
                if len(batch) < n:
                    return

        call = self.cpu.Submit(requests(), timeout=timeout)
        try:
            for response in call:
                yield from response.results
                credits.give(len(response.results))
        except grpc.RpcError as e:
            raise SvasimError.from_rpc_error(e) from None
        finally:
            credits.close()
            call.cancel()

    pipeline = submit_stream

    @_unpacked
    def wait_completion(self, tid: int, completion_addr: int) -> cpu_pb2.WaitCompletionResponse:
        """Spin a thread on a completion record until the device writes it."""
        return self.cpu.WaitCompletion(
            cpu_pb2.WaitCompletionRequest(tid=tid, completion_addr=completion_addr), timeout=self.timeout
        )

    @_unpacked
    def close_wq(self, pid: int, device: str = "dsa0", wq_id: int = 0) -> cpu_pb2.CloseWorkQueueResponse:
        """Close a work queue's file (unbind; early free may free the PASID)."""
        return self.cpu.CloseWorkQueue(
            cpu_pb2.CloseWorkQueueRequest(pid=pid, device=device, wq_id=wq_id), timeout=self.timeout
        )

    @_unpacked
    def fork(self, tid: int, native_pid: int = 0) -> cpu_pb2.Process:
        """fork() from a thread; returns the child process (of a native process: the
        real child's ``native_pid``)."""
        return self.cpu.Fork(cpu_pb2.ForkRequest(tid=tid, native_pid=native_pid), timeout=self.timeout).child

    @_unpacked
    def exec(self, tid: int) -> cpu_pb2.Process:
        """execve() in a thread; returns the process with its new mm."""
        return self.cpu.Exec(cpu_pb2.ExecRequest(tid=tid), timeout=self.timeout).process

    @_unpacked
    def exit_thread(self, tid: int) -> bool:
        """A thread exits; returns whether its process exited with it."""
        return self.cpu.ExitThread(cpu_pb2.ExitThreadRequest(tid=tid), timeout=self.timeout).process_exited

    @_unpacked
    def counters(self) -> dict[str, dict[str, int]]:
        """Counters by scope: "run", "cpu/N", "thread/T"."""
        r = self.cpu.GetCounters(cpu_pb2.GetCountersRequest(), timeout=self.timeout)
        return {s.scope: dict(s.values) for s in r.sets}

    @_unpacked
    def movdir64b(self, tid: int, portal: int, descriptor: bytes) -> cpu_pb2.Movdir64bResponse:
        """Execute MOVDIR64B (a posted store; to a dedicated WQ's portal or to memory)."""
        return self.cpu.Movdir64b(
            cpu_pb2.Movdir64bRequest(tid=tid, portal_address=portal, raw=descriptor), timeout=self.timeout
        )

    @_unpacked
    def create_kthread(self, name: str = "kworker") -> cpu_pb2.Thread:
        """A kernel thread, for ENQCMDS."""
        return self.cpu.CreateKernelThread(cpu_pb2.CreateKernelThreadRequest(name=name), timeout=self.timeout).thread

    @_unpacked
    def enqcmds(self, tid: int, descriptor: bytes, device: str = "dsa0", wq_id: int = 0) -> cpu_pb2.EnqcmdsResponse:
        """Execute ENQCMDS from a (kernel) thread at a WQ's portal."""
        return self.cpu.Enqcmds(
            cpu_pb2.EnqcmdsRequest(tid=tid, device=device, wq_id=wq_id, raw=descriptor), timeout=self.timeout
        )

    # -- iommu and accel --------------------------------------------------------------------
    @_unpacked
    def pasid_entry(self, device: str, pasid: int) -> iommu_pb2.PasidEntry:
        """A device's PASID-table entry."""
        return self.iommu.GetPasidEntry(
            iommu_pb2.GetPasidEntryRequest(device=device, pasid=pasid), timeout=self.timeout
        ).entry

    @_unpacked
    def iommu_state(self) -> iommu_pb2.GetIommuResponse:
        """PASID allocations and IOMMU counters."""
        return self.iommu.GetIommu(iommu_pb2.GetIommuRequest(), timeout=self.timeout)

    @_unpacked
    def devices(self) -> list[accel_pb2.Device]:
        """Accelerator devices and their WQs."""
        return list(self.accel.ListDevices(accel_pb2.ListDevicesRequest(), timeout=self.timeout).devices)

    @_unpacked
    def configure_wq(self, device: str = "dsa0", wq_id: int = 0, **fields: Any) -> accel_pb2.WorkQueue:
        """Change WQCFG fields of a disabled WQ: mode, size, threshold, priority, block_on_fault,
        op_config, max_xfer_shift, max_batch_shift, prs_disable, and the driver's type,
        name, driver_name and group_id."""
        return self.accel.ConfigureWorkQueue(
            accel_pb2.ConfigureWorkQueueRequest(device=device, wq_id=wq_id, **fields), timeout=self.timeout
        ).wq

    @_unpacked
    def enable_wq(self, device: str = "dsa0", wq_id: int = 0) -> accel_pb2.WorkQueue:
        """Enable a WQ."""
        return self.accel.EnableWorkQueue(
            accel_pb2.EnableWorkQueueRequest(device=device, wq_id=wq_id), timeout=self.timeout
        ).wq

    @_unpacked
    def disable_wq(self, device: str = "dsa0", wq_id: int = 0) -> accel_pb2.WorkQueue:
        """Disable a WQ (it drains first)."""
        return self.accel.DisableWorkQueue(
            accel_pb2.DisableWorkQueueRequest(device=device, wq_id=wq_id), timeout=self.timeout
        ).wq

    @_unpacked
    def configure_group(
        self,
        device: str = "dsa0",
        group_id: int = 0,
        *,
        engines: list[int] | None = None,
        wqs: list[int] | None = None,
        **fields: Any,
    ) -> accel_pb2.Device:
        """Set a group's engines and WQs (exactly those given; None leaves them) and its
        read-buffer fields: read_buffers_reserved, read_buffers_allowed,
        use_read_buffer_limit. Returns the device."""
        req = accel_pb2.ConfigureGroupRequest(device=device, group_id=group_id, **fields)
        if engines is not None:
            req.engines.ids.extend(engines)
            req.engines.SetInParent()
        if wqs is not None:
            req.wqs.ids.extend(wqs)
            req.wqs.SetInParent()
        return self.accel.ConfigureGroup(req, timeout=self.timeout).device

    @_unpacked
    def configure_device(self, device: str = "dsa0", **fields: Any) -> accel_pb2.Device:
        """Set device-wide configuration of a disabled device: read_buffer_limit."""
        return self.accel.ConfigureDevice(
            accel_pb2.ConfigureDeviceRequest(device=device, **fields), timeout=self.timeout
        ).device

    @_unpacked
    def enable_device(self, device: str = "dsa0") -> accel_pb2.Device:
        """Enable a device (its groups are checked)."""
        return self.accel.EnableDevice(accel_pb2.EnableDeviceRequest(device=device), timeout=self.timeout).device

    @_unpacked
    def disable_device(self, device: str = "dsa0") -> accel_pb2.Device:
        """Disable a device: its WQs are disabled and its whole configuration cleared."""
        return self.accel.DisableDevice(accel_pb2.DisableDeviceRequest(device=device), timeout=self.timeout).device

    @_unpacked
    def advance(self, device: str = "", until_cycles: int = 0) -> accel_pb2.AdvanceResponse:
        """Run the device engines (until idle by default)."""
        return self.accel.Advance(
            accel_pb2.AdvanceRequest(device=device, until_cycles=until_cycles), timeout=self.timeout
        )

    # -- trace --------------------------------------------------------------------------------
    @_unpacked
    def runs(self) -> list[trace_pb2.Run]:
        """Recorded runs."""
        return list(self.trace.ListRuns(trace_pb2.ListRunsRequest(), timeout=self.timeout).runs)

    @_unpacked
    def run_info(self, run: str) -> trace_pb2.Run:
        """One run by id or name (its event count included)."""
        return self.trace.GetRun(trace_pb2.GetRunRequest(run=run), timeout=self.timeout).run

    @_unpacked
    def flush(self) -> int:
        """Wait until everything recorded so far is committed."""
        return self.trace.Flush(trace_pb2.FlushRequest(), timeout=self.timeout).committed

    @_unpacked
    def events(self, run: str, **filters: Any) -> list[trace_pb2.Event]:
        """All events of a run matching the filters, following page tokens."""
        out: list[trace_pb2.Event] = []
        token = ""
        while True:
            r = self.trace.ListEvents(
                trace_pb2.ListEventsRequest(run=run, page_token=token, page_size=1000, **filters),
                timeout=self.timeout,
            )
            out.extend(r.events)
            token = r.next_page_token
            if not token:
                return out

    def follow(
        self, run: str, from_seq: int = 0, *, kind_prefix: str = "", timeout: float | None = None
    ) -> Iterator[trace_pb2.Event]:
        """Events of a run as they are committed (a generator; stops at ``timeout`` seconds)."""
        stream = self.trace.FollowEvents(
            trace_pb2.FollowEventsRequest(run=run, from_seq=from_seq, kind_prefix=kind_prefix), timeout=timeout
        )
        try:
            for msg in stream:
                yield from msg.events
        except grpc.RpcError as e:
            if e.code() == grpc.StatusCode.DEADLINE_EXCEEDED:
                return
            raise SvasimError.from_rpc_error(e) from None

    @_unpacked
    def delete_run(self, run: str) -> int:
        """Delete a run; returns how many events went with it (on the peer listener only)."""
        return self.trace_admin.DeleteRun(trace_pb2.DeleteRunRequest(run=run), timeout=self.timeout).events_deleted

    @_unpacked
    def state(self, run: str, at_seq: int = 0, entity_prefix: str = "") -> trace_pb2.GetStateResponse:
        """The fabric state after an event."""
        return self.trace.GetState(
            trace_pb2.GetStateRequest(run=run, at_seq=at_seq, entity_prefix=entity_prefix), timeout=self.timeout
        )
