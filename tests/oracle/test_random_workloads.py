"""Random workloads over the public operations of every service, with the oracle
checked after each one (hypothesis stateful testing, derandomized so CI is repeatable).

Each run picks a PASID policy and whether the PASID is freed early, then interleaves
processes, threads, memory management, WQ files, scheduling, ENQCMD and MOVDIR64B of
valid and invalid descriptors, fork/exec/exit, the per-thread registers, kernel FPU
sequences on the cpu's event queue (``evq/cpu``) with whatever lands between their
steps, the device's configuration and clock, and IOTLB invalidation. A refused operation must change
nothing; every other one must be recorded: every part of the fold (kernel, physical
memory, IOMMU, accelerator) must equal the model after every step.
"""

from __future__ import annotations

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, rule

from svasim.model.accel import IDXD_PORTAL_LIMITED, idxd_get_wq_portal_full_offset
from svasim.model.errors import SimError
from svasim.model.fabric import ModelFabric
from svasim.model.kernel.mm import MADV_DONTNEED
from svasim.model.policies import policy_names
from svasim.model.transition import Transition
from svasim_api import idxd

from .oracle import Oracle

PAGE = 4096
SETTINGS = settings(
    max_examples=200,
    stateful_step_count=40,
    derandomize=True,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


class Workload(RuleBasedStateMachine):
    """A fabric driven by random operations, its record folded after each one."""

    @initialize(policy=st.sampled_from(policy_names()), early_free=st.sampled_from([None, True, False]))
    def boot(self, policy: str, early_free: bool | None) -> None:
        self.transitions: list[Transition] = []
        self.fab = ModelFabric(ncpus=2, policy=policy, early_free=early_free, sink=self.transitions.append)
        self.k = self.fab.kernel
        self.oracle = Oracle(self.fab, self.transitions)
        self.steps = 0
        self.portals: dict[int, list[int]] = {}  # pid -> portal addresses
        self.buffers: dict[int, list[tuple[int, int]]] = {}  # pid -> (address, length)

    # -- helpers -------------------------------------------------------------------------------
    def do(self, fn, *args):  # noqa: ANN001, ANN002, ANN202
        """Run one operation; a refusal is a result (and must have changed nothing)."""
        try:
            return fn(self.fab.journal(), *args)
        except SimError:
            return None

    def pids(self) -> list[int]:
        return sorted(p.pid for p in self.k.processes.values() if not (p.killed or p.exited)) or [1]

    def tids(self) -> list[int]:
        return sorted(t.tid for t in self.k.tasks.values() if not t.exited) or [1]

    def running(self) -> list[int]:
        """Threads on a CPU now whose process has a portal (ENQCMD can reach a device)."""
        out = [t.tid for t in self.k.tasks.values() if t.cpu >= 0 and self.portals.get(t.pid)]
        return sorted(out) or self.tids()

    # -- a process that uses the device, in one step (so that short runs reach it) ------------------
    @rule(wq=st.integers(0, 1), cpu=st.integers(0, 1), pages=st.integers(1, 3))
    def start_app(self, wq: int, cpu: int, pages: int) -> None:
        proc = self.do(self.k.create_process, "app")
        if proc is None:
            return
        vma = self.do(self.k.mmap, proc.pid, pages * PAGE, True, False)
        if vma is not None:
            self.buffers.setdefault(proc.pid, []).append((vma.start, vma.end - vma.start))
        res = self.do(self.k.open_wq, proc.pid, "dsa0", wq)
        if res is not None:
            self.portals.setdefault(proc.pid, []).append(res[0])
        self.do(self.k.schedule, proc.tids[0], cpu)

    # -- processes and threads --------------------------------------------------------------------
    @rule()
    def create_process(self) -> None:
        self.do(self.k.create_process, "app")

    @rule(data=st.data())
    def create_thread(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(self.pids()))
        proc = self.k.processes.get(pid)
        parent = data.draw(st.sampled_from([0, *(proc.tids if proc else [])]))
        self.do(self.k.create_thread, pid, parent)

    @rule(data=st.data(), what=st.sampled_from(["fork", "exec", "exit_thread"]))
    def lifecycle(self, data: st.DataObject, what: str) -> None:
        self.do(getattr(self.k, what), data.draw(st.sampled_from(self.tids())))

    @rule(data=st.data(), cpu=st.integers(0, 2))
    def schedule(self, data: st.DataObject, cpu: int) -> None:
        self.do(self.k.schedule, data.draw(st.sampled_from(self.tids())), cpu)

    @rule(data=st.data(), what=st.sampled_from(["use_fpu", "use_tile", "modify_ldt"]))
    def registers(self, data: st.DataObject, what: str) -> None:
        self.do(getattr(self.k, what), data.draw(st.sampled_from(self.tids())))

    @rule(data=st.data(), at=st.integers(0, 4), wq=st.integers(0, 1))
    def kernel_fpu_section(self, data: st.DataObject, at: int, wq: int) -> None:
        """A syscall's kernel FPU section, with a WQ opened (PASID allocation, IPIs)
        while it is suspended at one of its interruptible points."""
        tid = data.draw(st.sampled_from(self.tids()))
        try:
            steps = self.k.kernel_fpu_section(self.fab.journal(), tid)
            for _ in range(at):
                next(steps, None)
            pid = data.draw(st.sampled_from(self.pids()))
            res = self.do(self.k.open_wq, pid, "dsa0", wq)
            if res is not None:
                self.portals.setdefault(pid, []).append(res[0])
            for _ in steps:
                pass
        except SimError:
            pass

    @rule(data=st.data())
    def start_sequence(self, data: st.DataObject) -> None:
        """StartSequence: kernel_fpu on the cpu's event queue (svasim.model.kernel.sequences)."""
        self.do(self.k.start_sequence, data.draw(st.sampled_from(self.tids())), "kernel_fpu")

    @rule(steps=st.sampled_from([None, 1, 2]), until=st.sampled_from([None, 0, 20000]))
    def advance_cpu(self, steps: int | None, until: int | None) -> None:
        """AdvanceCpu: fire the queue's entries (each step is an operation of its own)."""
        self.do(self.k.advance_cpu, steps, until)

    @rule(data=st.data(), value=st.sampled_from([0, 0x55555554, 0xC, 1 << 32]))
    def write_pkru(self, data: st.DataObject, value: int) -> None:
        self.do(self.k.write_pkru, data.draw(st.sampled_from(self.tids())), value)

    @rule(data=st.data(), value=st.sampled_from([0, 0x7F0000001000]))
    def set_gs_base(self, data: st.DataObject, value: int) -> None:
        self.do(self.k.set_gs_base, data.draw(st.sampled_from(self.tids())), value)

    @rule(data=st.data())
    def request_amx(self, data: st.DataObject) -> None:
        self.do(self.k.request_amx, data.draw(st.sampled_from(self.pids())))

    @rule(data=st.data())
    def kthread(self, data: st.DataObject) -> None:
        task = self.do(self.k.create_kthread, "kworker")
        if task is not None:
            self.do(self.k.schedule, task.tid, data.draw(st.integers(0, 1)))
            self.do(self.k.kthread_use_mm, task.tid, data.draw(st.sampled_from(self.pids())))
            self.do(self.k.kthread_unuse_mm, task.tid)

    # -- memory ------------------------------------------------------------------------------------
    @rule(data=st.data(), pages=st.integers(0, 3), writable=st.booleans(), populate=st.booleans())
    def mmap(self, data: st.DataObject, pages: int, writable: bool, populate: bool) -> None:
        pid = data.draw(st.sampled_from(self.pids()))
        vma = self.do(self.k.mmap, pid, pages * PAGE, writable, populate)
        if vma is not None:
            self.buffers.setdefault(pid, []).append((vma.start, vma.end - vma.start))

    def buffer(self, data: st.DataObject) -> tuple[int, int, int]:
        pid = data.draw(st.sampled_from(sorted(p for p in self.buffers if p in self.pids()) or self.pids()))
        bufs = self.buffers.get(pid) or [(0x1000, PAGE)]
        address, length = data.draw(st.sampled_from(bufs))
        return pid, address, length

    @rule(data=st.data(), what=st.sampled_from(["munmap", "mprotect_ro", "mprotect_rw", "madvise"]))
    def change_mapping(self, data: st.DataObject, what: str) -> None:
        pid, address, length = self.buffer(data)
        if what == "munmap":
            self.do(self.k.munmap, pid, address, length)
        elif what == "madvise":
            self.do(self.k.madvise, pid, address, length, data.draw(st.sampled_from([MADV_DONTNEED, 8])))
        else:
            self.do(self.k.mprotect, pid, address, length, what == "mprotect_rw")

    @rule(data=st.data(), n=st.integers(0, 5000))
    def write_memory(self, data: st.DataObject, n: int) -> None:
        pid, address, _ = self.buffer(data)
        self.do(self.k.write_memory, pid, address + data.draw(st.integers(0, 64)), bytes([n % 251]) * n)

    @rule(data=st.data())
    def read_memory(self, data: st.DataObject) -> None:
        pid, address, length = self.buffer(data)
        self.do(self.k.read_memory, pid, address, length)

    # -- the accelerator ----------------------------------------------------------------------------
    @rule(data=st.data(), wq=st.integers(0, 2))
    def open_wq(self, data: st.DataObject, wq: int) -> None:
        pid = data.draw(st.sampled_from(self.pids()))
        res = self.do(self.k.open_wq, pid, "dsa0", wq)
        if res is not None:
            self.portals.setdefault(pid, []).append(res[0])

    @rule(data=st.data(), wq=st.integers(0, 1))
    def close_wq(self, data: st.DataObject, wq: int) -> None:
        self.do(self.k.close_wq, data.draw(st.sampled_from(self.pids())), "dsa0", wq)

    @rule(data=st.data())
    def unmap_portal(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(self.pids()))
        portals = self.portals.get(pid)
        if portals:
            self.do(self.k.munmap, pid, portals.pop(data.draw(st.integers(0, len(portals) - 1))), PAGE)

    @rule(
        data=st.data(),
        insn=st.sampled_from(["enqcmd", "movdir64b"]),
        opcode=st.sampled_from([idxd.DsaOpcode.MEMMOVE, idxd.DsaOpcode.NOOP, idxd.DsaOpcode.DRAIN, 0x7F]),
        size=st.sampled_from([0, 64, PAGE, 3 * PAGE]),
        crav=st.booleans(),
    )
    def submit(self, data: st.DataObject, insn: str, opcode: int, size: int, crav: bool) -> None:
        tid = data.draw(st.sampled_from(self.running()))
        task = self.k.tasks.get(tid)
        pid = task.pid if task else 0
        portals = self.portals.get(pid) or [0x1000]
        _, src, _ = self.buffer(data)
        _, dst, _ = self.buffer(data)
        _, comp, _ = self.buffer(data)
        desc = idxd.DsaHwDesc(
            opcode=opcode,
            flags=int(idxd.OpFlag.CRAV | idxd.OpFlag.RCR) if crav else 0,
            completion_addr=comp + data.draw(st.sampled_from([0, 8])),
            src_addr=src,
            dst_addr=dst,
            xfer_size=size,
        )
        self.do(getattr(self.k, insn), tid, data.draw(st.sampled_from(portals)), idxd.pack_desc(desc))

    @rule(until=st.sampled_from([0, 5000, 50000]))
    def advance(self, until: int) -> None:
        self.do(self.fab.accel.advance, "dsa0", until)

    @rule(wq=st.integers(0, 1), enabled=st.booleans())
    def enable_wq(self, wq: int, enabled: bool) -> None:
        self.do(self.fab.accel.set_wq_enabled, "dsa0", wq, enabled)

    @rule(wq=st.integers(0, 1), size=st.sampled_from([1, 8, 16, 200]), mode=st.sampled_from(["shared", "dedicated"]))
    def configure_wq(self, wq: int, size: int, mode: str) -> None:
        self.do(self.fab.accel.configure_wq, "dsa0", wq, {"wq_size": size, "mode": mode, "wq_thresh": size // 2})

    @rule(
        data=st.data(),
        wq=st.integers(0, 1),
        field=st.sampled_from(["type", "name", "driver_name", "group_id", "prs_disable"]),
    )
    def configure_wq_driver(self, data: st.DataObject, wq: int, field: str) -> None:
        """The driver's WQ fields (drivers/dma/idxd/sysfs.c), right and wrong values."""
        values: dict[str, list[object]] = {
            "type": ["user", "kernel", "none", "mdev"],
            "name": ["app", "", " padded"],
            "driver_name": ["user", ""],
            "group_id": [0, 1, -1, 7],
            "prs_disable": [True, False],
        }
        self.do(self.fab.accel.configure_wq, "dsa0", wq, {field: data.draw(st.sampled_from(values[field]))})

    @rule(enabled=st.booleans())
    def enable_device(self, enabled: bool) -> None:
        """Enable the device, or disable it (which clears its whole configuration)."""
        self.do(self.fab.accel.set_device_enabled, "dsa0", enabled)

    @rule(
        group=st.integers(0, 4),
        engines=st.none() | st.lists(st.integers(0, 2), max_size=2),
        wqs=st.none() | st.lists(st.integers(0, 1), max_size=2),
        allowed=st.none() | st.sampled_from([0, 4, 8, 200]),
        reserved=st.none() | st.sampled_from([0, 8, 97]),
        limit=st.none() | st.booleans(),
    )
    def configure_group(self, group: int, engines, wqs, allowed, reserved, limit) -> None:  # noqa: ANN001
        """GRPCFG: engines and WQs into a group, its read-buffer fields."""
        self.do(
            lambda j: self.fab.accel.configure_group(
                j,
                "dsa0",
                group,
                engines=engines,
                wqs=wqs,
                read_buffers_allowed=allowed,
                read_buffers_reserved=reserved,
                use_read_buffer_limit=limit,
            )
        )

    @rule(limit=st.sampled_from([0, 16, 500]))
    def configure_device(self, limit: int) -> None:
        self.do(self.fab.accel.configure_device, "dsa0", limit)

    @rule(data=st.data())
    def enqcmds(self, data: st.DataObject) -> None:
        desc = idxd.pack_desc(idxd.DsaHwDesc(opcode=idxd.DsaOpcode.NOOP))
        offset = idxd_get_wq_portal_full_offset(0, IDXD_PORTAL_LIMITED)
        self.do(self.k.enqcmds, data.draw(st.sampled_from(self.tids())), "dsa0", offset, desc)

    @rule(data=st.data())
    def wait_completion(self, data: st.DataObject) -> None:
        tid = data.draw(st.sampled_from(self.tids()))
        _, comp, _ = self.buffer(data)
        self.do(self.k.wait_completion, tid, comp)

    # -- the IOMMU ------------------------------------------------------------------------------------
    @rule(data=st.data(), pasid=st.integers(0, 4))
    def invalidate(self, data: st.DataObject, pasid: int) -> None:
        _, address, length = self.buffer(data)
        self.do(self.fab.iommu.invalidate, pasid, address, length)

    # -- the oracle ---------------------------------------------------------------------------------
    @invariant()
    def fold_equals_model(self) -> None:
        self.steps += 1
        found = self.oracle.check(f"step {self.steps}")
        assert not found, "\n".join(m.describe() for m in found.values())


Workload.TestCase.settings = SETTINGS
test_every_part_folds_exactly_through_random_workloads = Workload.TestCase
