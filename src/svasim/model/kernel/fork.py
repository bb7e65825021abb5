"""Creating processes and threads: kernel/fork.c and arch/x86/kernel/fpu/core.c.

- ``copy_process()``: a new task; with ``CLONE_VM`` it shares the mm (a thread),
  otherwise ``dup_mm()`` copies the anonymous mappings and their contents (fork).
  Portal mappings are ``VM_DONTCOPY`` and stay behind; the LDT and the AMX permission
  are inherited.
- ``fpu_clone()``: the child's xstate is a copy of the parent's live or saved state;
  tile data is not inherited (the child's fpstate has the default size), and from 5.18
  the PASID feature is cleared in the child's ``xfeatures`` (the policy says whether).
- ``copy_thread()``: PKRU and the GS base come from the parent.
- The PASID is never inherited by a new mm. The file table is not copied: a forked
  child has no WQ file (in Linux it would share the parent's open files).
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.errors import InvalidArgument
from svasim.model.journal import Journal
from svasim.model.kernel.core import process_fields
from svasim.model.kernel.exit import Exit
from svasim.model.kernel.tlb import Tlb
from svasim.model.kernel_state import Process, Task
from svasim.model.memory import PAGE_SHIFT, PAGE_SIZE, AddressSpace, Vma


@mypyc_attr(native_class=False)
class Fork(Exit, Tlb):
    """New processes (mm_alloc, fork) and threads (clone)."""

    def _mm_alloc(self, journal: Journal, name: str) -> Process:
        """A new process with an empty mm (its page table root allocated)."""
        # The root's frame first: a refusal (ENOMEM) must not have used a pid.
        self.memory.reserve(1)
        pid = self.next_pid
        self.next_pid += 1
        pgd = self.memory.alloc_frame() << PAGE_SHIFT
        proc = Process(pid, name or f"proc{pid}", AddressSpace(pgd), ctx_id=self.next_ctx_id)
        self.next_ctx_id += 1
        self.processes[pid] = proc
        self.by_pgd[pgd] = proc
        journal.emit(proc.entity, "process.create", None, process_fields(proc))
        return proc

    def _mm_alloc_for(self, journal: Journal, name: str, native_pid: int) -> Process:
        """_mm_alloc; with ``native_pid``, the real process is reached first (a refusal
        changes nothing) and the new mm is its (svasim.model.kernel.native)."""
        mem = self.open_native(native_pid) if native_pid else None
        try:
            proc = self._mm_alloc(journal, name)
        except BaseException:
            if mem is not None:
                mem.close()
            raise
        if mem is not None:
            self.bind_native(journal, proc, native_pid, mem)
        return proc

    def _copy_task(
        self, journal: Journal, proc: Process, *, parent: Task | None = None, keep_pasid: bool = False
    ) -> Task:
        """copy_process for a user task of ``proc``: fpu_clone and copy_thread from ``parent``."""
        tid = self.next_pid
        self.next_pid += 1
        task = Task(tid, proc.pid)
        if parent is not None:
            # The child's registers are a copy of the parent's user state.
            task.xstate = dict(parent.xstate)
            if parent.cpu >= 0 and not parent.tif_need_fpu_load:
                task.xstate.update(self.cpus[parent.cpu].regs)
            task.pkru = parent.pkru
            task.gs_base = parent.gs_base
            task.user_fp = parent.user_fp
            # Tile data is never inherited (the child's fpstate is the default size).
            task.xstate["tile"] = 0
            if not keep_pasid:
                # fpu_clone clears XFEATURE_PASID in the child's xfeatures.
                task.xstate["pasid"] = 0
            else:
                task.pasid_activated = parent.pasid_activated
        self.tasks[tid] = task
        proc.tids.append(tid)
        journal.emit(task.entity, "thread.create", None, self.task_created(task))
        return task

    def create_process(self, journal: Journal, name: str = "", native_pid: int = 0) -> Process:
        """A new process with an empty mm and its first thread; with ``native_pid``, a
        native process whose memory is that real process's (svasim.model.kernel.native)."""
        proc = self._mm_alloc_for(journal, name, native_pid)
        self._copy_task(journal, proc)
        return proc

    def create_thread(self, journal: Journal, pid: int, parent_tid: int = 0) -> Task:
        """clone(CLONE_VM): the new thread shares the mm.

        Its PASID state starts clear (fpu_clone clears the feature bit), except under a
        policy whose kernel copied the whole state (5.10).
        """
        proc = self.live_process(pid)
        parent = self.task(parent_tid) if parent_tid else None
        if parent is not None and parent.pid != pid:
            raise InvalidArgument("WRONG_PARENT", f"thread {parent_tid} is not in process {pid}")
        return self._copy_task(journal, proc, parent=parent, keep_pasid=self.policy.clone_keeps_pasid)

    def fork(self, journal: Journal, tid: int, native_pid: int = 0) -> Process:
        """fork(): a new mm with a copy of the memory; the PASID is not inherited.

        Portal mappings are VM_DONTCOPY and stay behind; AMX permission is inherited,
        tile contents are not; the LDT is copied.
        """
        parent = self.user_task(tid)
        pproc = self.processes[parent.pid]
        if bool(pproc.native_pid) != bool(native_pid):
            raise InvalidArgument(
                "NATIVE_FORK",
                f"process {pproc.pid} is {'native' if pproc.native_pid else 'simulated'}: its child must be "
                f"{'a native process (give the child program pid)' if pproc.native_pid else 'simulated too'}",
                pid=str(pproc.pid),
            )
        anon = [v for v in pproc.aspace.vmas if v.kind == "anon"]
        by_vma = self._present_by_vma(pproc, anon)
        # dup_mm allocates the child's page-table root and a copy of every present page:
        # all of them must be free before anything changes (ENOMEM otherwise).
        self.memory.reserve(1 + sum(len(present) for present in by_vma))
        child = self._mm_alloc_for(journal, pproc.name, native_pid)
        child.amx_permitted = pproc.amx_permitted
        child.ldt_gen = pproc.ldt_gen
        for vma, present in zip(anon, by_vma, strict=True):
            copy = Vma(vma.start, vma.end, vma.writable)
            child.aspace.insert_vma(copy)
            journal.emit(
                f"vma/{child.pid}/{vma.start:#x}",
                "vma.map",
                None,
                {"start": vma.start, "end": vma.end, "writable": vma.writable, "kind": "anon"},
            )
            for va, pte in present:
                new = self._fault_in(journal, child, va)
                self.memory.write(new.pfn << PAGE_SHIFT, self.memory.read(pte.pfn << PAGE_SHIFT, PAGE_SIZE))
        child.aspace.mmap_top = pproc.aspace.mmap_top
        self._copy_task(journal, child, parent=parent, keep_pasid=False)
        journal.emit(
            child.entity,
            "process.fork",
            None,
            {
                "pasid": 0,
                "amx_permitted": child.amx_permitted,
                "ldt_gen": child.ldt_gen,
                "mmap_top": child.aspace.mmap_top,
            },
            detail={"parent": pproc.pid},
        )
        return child
