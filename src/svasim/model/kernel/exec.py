"""execve(): fs/exec.c (``begin_new_exec``: ``de_thread``, ``exec_mmap``) and the FPU reset.

The other threads of the process exit, the old mm is dropped with its PASID, a fresh mm
is switched in, and the calling thread's xstate returns to its init state
(``fpu_flush_thread``) with PKRU at ``init_pkru_value``. The process's WQ files are
closed as if opened with ``O_CLOEXEC``: a descriptor kept across execve, which would
keep the old mm's binding until it is closed, is not modelled.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel.fork import Fork
from svasim.model.kernel_state import INIT_PKRU, Process, new_xstate
from svasim.model.memory import PAGE_SHIFT, AddressSpace


@mypyc_attr(native_class=False)
class Exec(Fork):
    """execve."""

    def exec(self, journal: Journal, tid: int) -> Process:
        """execve(): a fresh mm (the old one, and its PASID, dropped), a reset xstate."""
        task = self.user_task(tid)
        proc = self.processes[task.pid]
        # bprm_mm_init allocates the new mm before exec_mmap drops the old one: without
        # a frame for its page-table root, execve fails (ENOMEM) with nothing changed.
        self.memory.reserve(1)
        self.touched.add(tid)
        for other in list(proc.tids):
            if other != tid and not self.tasks[other].exited:
                self._exit_task(journal, self.tasks[other])  # de_thread
        self._release_mm(journal, proc)
        pgd = self.memory.alloc_frame() << PAGE_SHIFT
        proc.aspace = AddressSpace(pgd)
        self.by_pgd[pgd] = proc
        proc.ctx_id = self.next_ctx_id
        self.next_ctx_id += 1
        proc.ldt_gen = 0
        proc.amx_permitted = False  # UNVERIFIED: xstate permissions reset on execve
        task.xstate = new_xstate()
        task.pasid_activated = False
        task.fpstate_large = False
        task.user_fp = task.user_tile = 0
        task.pkru = INIT_PKRU
        if task.cpu >= 0:
            cpu = self.cpus[task.cpu]
            cpu.regs = new_xstate()
            cpu.fpregs_owner = tid
            task.tif_need_fpu_load = False
            cpu.pkru = INIT_PKRU
            self._switch_mm_irqs_off(journal, cpu, task, proc)
        journal.emit(
            proc.entity,
            "process.exec",
            None,
            {
                "pgd": pgd,
                "pasid": 0,
                "ctx_id": proc.ctx_id,
                "ldt_gen": 0,
                "amx_permitted": False,
                "mmap_top": proc.aspace.mmap_top,
            },
        )
        return proc
