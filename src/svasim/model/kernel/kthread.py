"""Kernel threads: kernel/kthread.c (``kthread_create``, ``kthread_use_mm``, ``kthread_unuse_mm``).

A kernel thread has no mm of its own: on a CPU it keeps whatever mm was loaded (lazy
TLB). ``kthread_use_mm()`` adopts a user mm, switching CR3 to it if needed;
``kthread_unuse_mm()`` gives it back and leaves CR3 as it is.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition
from svasim.model.journal import Journal
from svasim.model.kernel.tlb import Tlb
from svasim.model.kernel_state import Task


@mypyc_attr(native_class=False)
class Kthread(Tlb):
    """Kernel threads and their borrowed mm."""

    def create_kthread(self, journal: Journal, name: str = "kworker") -> Task:
        """A kernel thread: no mm of its own, borrows one in lazy TLB mode."""
        tid = self.next_pid
        self.next_pid += 1
        task = Task(tid, 0, kthread=True)
        self.tasks[tid] = task
        journal.emit(task.entity, "thread.create", None, self.task_created(task), detail={"name": name})
        return task

    def kthread_use_mm(self, journal: Journal, tid: int, pid: int) -> None:
        """A running kernel thread adopts a user mm (kthread_use_mm)."""
        task = self.task(tid)
        if not task.kthread or task.cpu < 0:
            raise FailedPrecondition("NOT_RUNNING_KTHREAD", f"thread {tid} is not a running kernel thread")
        proc = self.live_process(pid)
        cpu = self.cpus[task.cpu]
        task.borrowed_mm = pid
        if cpu.loaded_mm != pid:
            self._switch_mm_irqs_off(journal, cpu, task, proc)
        journal.emit(task.entity, "kthread.use_mm", None, {"borrowed_mm": pid})

    def kthread_unuse_mm(self, journal: Journal, tid: int) -> None:
        """The kernel thread gives the mm back (CR3 stays, lazy TLB)."""
        task = self.task(tid)
        task.borrowed_mm = 0
        journal.emit(task.entity, "kthread.unuse_mm", None, {"borrowed_mm": 0})
