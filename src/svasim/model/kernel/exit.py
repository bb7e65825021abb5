"""Thread and process exit: kernel/exit.c, kernel/fork.c (mmput, __mmdrop), kernel/signal.c.

- ``do_exit()`` of one task; the last task of a process takes the mm with it.
- The mm's teardown: every descriptor closes and every portal mapping drops its WQ
  file, so each file's release (a drain, and the unbind for the last one per device)
  runs before any page is freed, as ``exit_mmap()``'s ``mmu_notifier_release()`` cuts
  the device off first; then every mapping goes, and ``mm_pasid_drop()`` in
  ``__mmdrop()`` frees the PASID.
- A fatal signal (``do_group_exit``) ends every task of the process and then the mm.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition
from svasim.model.journal import Journal
from svasim.model.kernel.mm import Mm
from svasim.model.kernel_state import Process, Task


@mypyc_attr(native_class=False)
class Exit(Mm):
    """exit_thread, the mm's teardown and death by signal."""

    def exit_thread(self, journal: Journal, tid: int) -> None:
        """The thread exits; the last one takes the mm (and its PASID) with it."""
        task = self.task(tid)
        if task.exited:
            raise FailedPrecondition("THREAD_EXITED", f"thread {tid} has exited", tid=tid)
        self._exit_task(journal, task)
        if task.kthread:
            return
        proc = self.processes[task.pid]
        if all(self.tasks[t].exited for t in proc.tids):
            proc.exited = True
            self._release_mm(journal, proc)
            self.detach_native(proc)
            journal.emit(proc.entity, "process.exit", {"exited": False}, {"exited": True})

    def _exit_task(self, journal: Journal, task: Task) -> None:
        """do_exit: the task leaves its CPU (which goes idle) for good."""
        if task.cpu >= 0:
            cpu = self.cpus[task.cpu]
            cpu.current = 0
            if cpu.fpregs_owner == task.tid:
                cpu.fpregs_owner = 0
            journal.emit(cpu.entity, "sched.idle", {"current": task.tid}, {"current": 0})
        task.cpu = -1
        task.exited = True
        journal.emit(task.entity, "thread.exit", {"exited": False}, {"exited": True, "cpu": -1})

    def _release_mm(self, journal: Journal, proc: Process) -> None:
        """Drop an mm: release its device files, unmap everything, free its PASID."""
        for file in reversed(list(proc.files)):
            if file.fd_open:
                self._close_fd(journal, proc, file, early_free=False)
        for vma in list(proc.aspace.vmas):
            self._put_vm_file(journal, proc, vma, early_free=False)
        self._unmap_vmas(journal, proc, list(proc.aspace.vmas))
        if proc.pasid:
            old = proc.pasid
            self.iommu.drop_mm(journal, proc.pid)  # mm_pasid_drop in __mmdrop
            proc.pasid = 0
            journal.emit(proc.entity, "mm.pasid.drop", {"pasid": old}, {"pasid": 0})
        for c in self.cpus:
            if c.loaded_mm == proc.pid:
                # The CPU lets go of the freed tables (it runs on init_mm's from here).
                c.loaded_mm = 0
                journal.emit(c.entity, "cr3.write", {"loaded_mm": proc.pid}, {"loaded_mm": 0, "cr3": 0})
        if proc.mm_cpumask:
            proc.mm_cpumask = 0
            journal.emit(proc.entity, "mm.cpumask", None, {"mm_cpumask": []})
        self.by_pgd.pop(proc.aspace.pgd, None)

    def _kill(self, journal: Journal, proc: Process, sig: int) -> None:
        """A fatal signal: every task of the process exits, then the mm goes."""
        for tid in proc.tids:
            t = self.tasks[tid]
            if not t.exited:
                self._exit_task(journal, t)
        proc.killed = True
        proc.kill_signal = sig
        journal.emit(proc.entity, "process.killed", {"killed": False}, {"killed": True, "signal": sig})
        self._release_mm(journal, proc)
        self.detach_native(proc)
