"""The host kernel: logical CPUs, processes (mm), threads (tasks), memory and kernel paths.

Each module is named after the Linux code it models and says which functions it
follows; ``sequences`` composes them (the other modules under it) and :class:`Kernel`
makes its public methods operations. Each public operation takes a
:class:`~svasim.model.journal.Journal`, changes state, emits its transitions and
charges its cycles to the CPU that runs it (and to counters per CPU, per thread and
per run). Nothing here knows about gRPC, databases, threads or the wall clock.

===============  ==================================================================
``core``         the kernel's state, accounting, lookups, invariant checks
``smp``          kernel/smp.c: on_each_cpu_mask
``fpu``          arch/x86/kernel/fpu/: switch_fpu_prepare/finish, XSAVES, kernel_fpu_begin
``ldt``          arch/x86/kernel/ldt.c: modify_ldt, flush_ldt, load_mm_ldt
``tlb``          arch/x86/mm/tlb.c: switch_mm_irqs_off, choose_new_asid
``mm``           mm/mmap.c, mm/memory.c: mmap, munmap, handle_mm_fault, user access
``exit``         kernel/exit.c: do_exit, the mm's teardown, fatal signals
``fork``         kernel/fork.c: copy_process, fpu_clone, copy_thread
``exec``         fs/exec.c: execve
``kthread``      kernel/kthread.c: kthread_use_mm
``process``      kernel/sched/core.c context_switch, arch/x86/kernel/process_64.c __switch_to
``traps``        arch/x86/kernel/traps.c: #GP, SIGSEGV, #NM/XFD
``idxd_cdev``    drivers/dma/idxd/cdev.c: open/mmap/release of a WQ
``enqcmd``       ENQCMD, ENQCMDS, MOVDIR64B, polling a completion record
``sequences``    interruptible sequences (kernel_fpu_begin ... kernel_fpu_end) on the
                 kernel's event queue, and what a thread inside one cannot do
===============  ==================================================================

The task, mm and CPU state types are in :mod:`svasim.model.kernel_state`, which the
PASID policies share.

Every change of kernel state is a transition. Most are recorded where they happen; the
registers a path writes in passing (PKRU, XFD, the FPU owner, the GS base, the SIMD and
tile contents, the XSAVE buffer, the clock) are recorded when the outermost operation
ends, one ``cpu.state`` or ``thread.state`` per CPU or task with the fields the
operation changed and no other transition of it recorded, and so is the frame
allocator of physical memory (``memory.frames``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any, TypeVar

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel.core import KernelCore
from svasim.model.kernel.enqcmd import EnqcmdOutcome, EnqcmdResult, WaitResult
from svasim.model.kernel.sequences import Sequences as _Sequences
from svasim.model.kernel_state import CpuState, Process, Task

K = TypeVar("K", bound=type[KernelCore])


#: The kernel's operations: its public methods that take a journal first, but for the
#: steps of an operation (``enter_op``, ``leave_op``, ``violation``), a device's write
#: (``dma_write``, which changes nothing the end of an operation records) and
#: ``advance_cpu`` (each entry it fires is an operation of its own). Named rather than
#: found by inspecting signatures, which the compiled model's methods do not have
#: (:mod:`svasim.compiled`); ``tests/model/kernel/test_operations.py`` checks the names
#: against the methods.
OPERATIONS = frozenset(
    {
        "bind_native", "close_wq", "create_kthread", "create_process", "create_thread", "dma_read", "enqcmd",
        "enqcmds", "exec", "exit_thread", "fork", "handle_page_fault", "kernel_fpu_section", "kthread_unuse_mm",
        "kthread_use_mm", "madvise", "mmap", "modify_ldt", "movdir64b", "mprotect", "munmap", "native_fault",
        "native_read", "native_walk", "native_write", "open_wq", "read_memory", "request_amx", "schedule",
        "set_gs_base", "start_sequence", "use_fpu", "use_tile", "wait_completion", "walk", "write_memory",
        "write_pkru",
    }
)  # fmt: skip
#: The operations that are interruptible sequences (generators): each stretch up to an
#: interruptible point is an operation of its own.
SEQUENCE_OPERATIONS = frozenset({"kernel_fpu_section"})


def _recorded(fn: Callable[..., Any], sequence: bool) -> Callable[..., Any]:
    """Wrap a public operation so that its end records the CPU and task state it changed."""
    if sequence:

        @functools.wraps(fn)
        def gen(self: KernelCore, journal: Journal, *args: Any, **kw: Any) -> Iterator[Any]:
            # Each stretch up to an interruptible point is an operation of its own: what
            # runs while the sequence is suspended sees its changes recorded.
            steps = fn(self, journal, *args, **kw)
            while True:
                self.enter_op(journal)
                try:
                    point = next(steps)
                except StopIteration:
                    return
                finally:
                    self.leave_op(journal)
                yield point

        return gen

    @functools.wraps(fn)
    def op(self: KernelCore, journal: Journal, *args: Any, **kw: Any) -> Any:
        self.enter_op(journal)
        try:
            return fn(self, journal, *args, **kw)
        finally:
            self.leave_op(journal)

    return op


def _record_operations(cls: K) -> K:
    """Make each of :data:`OPERATIONS` an operation of the kernel."""
    for name in sorted(OPERATIONS):
        setattr(cls, name, _recorded(getattr(cls, name), name in SEQUENCE_OPERATIONS))
    return cls


@_record_operations
@mypyc_attr(native_class=False)
class Kernel(_Sequences):
    """The host's CPUs, processes, threads and memory, and the kernel's paths."""


__all__ = ["CpuState", "EnqcmdOutcome", "EnqcmdResult", "Kernel", "Process", "Task", "WaitResult"]
