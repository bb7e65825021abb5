"""Interruptible kernel sequences, run step by step from the cpu service's event queue.

A *sequence* is a stretch of kernel code in a running thread during which interrupts
stay enabled, so an IPI from another CPU can land between two of its steps. Each
sequence is an explicit table of steps (:class:`Step`): what the step runs, and the
*point* the thread is at once it has run (``CpuState.in_sequence``, recorded with the
CPU, and the ``at`` of an ``ipi.handle`` that lands there). The progress of a sequence
is plain state, never a suspended generator: the kernel's one event queue (entity
``evq/cpu``, :class:`CpuEventQueue`) holds the next step as the entry
``[time, priority, eid, "seq.step", {"cpu", "sequence", "step", "tid"}]``.

- :meth:`Sequences.start_sequence` puts a running thread at the sequence's entry point
  and schedules step 0 at ``max(queue.now, the CPU's cycles)``. A CPU has at most one
  entry pending (the next step of the sequence it is in), so the entries of one CPU never
  overtake each other.
- :meth:`Sequences.advance_cpu` fires entries in key order, ``(time, priority, eid)`` as
  SimPy's queue orders them. A fired step runs, charges its cycles to its CPU as the
  kernel path always has, and schedules the next step at ``now`` plus the cycles it
  charged (a step that charges nothing still gets an entry of its own, and so a point
  where an IPI can land). The last step ends the sequence. Each fired entry is one
  operation of the kernel: its end records what it changed on the CPU and the thread.
- :meth:`Sequences.kernel_fpu_section` is the same table run as a generator inside one
  request (for callers that place another CPU's action themselves).

Between two steps the other CPUs go on: any request may run, and an IPI it sends runs
its handler on the CPU in the sequence (kernel/smp.c ``smp_call_function_many_cond()``;
``ipi.handle`` records the point). Requests that cannot happen on Linux while the thread
is inside the sequence are refused, changing nothing (see :class:`Sequences`).

The first sequence, ``kernel_fpu``, is a syscall that uses SIMD in the kernel,
arch/x86/kernel/fpu/core.c ``kernel_fpu_begin_mask()`` ... ``kernel_fpu_end()``:

====  ==========================================  ===========================
step  runs                                        point it leads to
====  ==========================================  ===========================
(start)  ``fpregs_lock()``, ``in_kernel_fpu`` set ``kernel_fpu_begin:entry``
0     ``set_thread_flag(TIF_NEED_FPU_LOAD)``      ``kernel_fpu_begin:tif_set``
      (only if it is clear; else step 2 runs)
1     ``save_fpregs_to_fpstate()`` (XSAVES)       ``kernel_fpu_begin:saved``
2     ``__cpu_invalidate_fpregs_state()``         ``kernel_fpu:in_use``
3     ``kernel_fpu_end()``, return to user        (the sequence is over)
      (``switch_fpu_return()``: XRSTORS)
====  ==========================================  ===========================

``fpregs_lock()`` is ``local_bh_disable()`` (``preempt_disable()`` on PREEMPT_RT, and in
kernels before 6.8 ``kernel_fpu_begin_mask()`` called ``preempt_disable()`` itself):
preemption stays off from the entry to ``kernel_fpu_end()``, but hard interrupts do not,
which is why an IPI can land at each point. This is the window in which Linux 5.10's
PASID IPI (``update_pasid()``) could land, one of the defects for which commit
9bfecd058339 (v5.13-rc5, backported to 5.10.y) removed it and disabled ENQCMD.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from mypy_extensions import mypyc_attr

from svasim.model.errors import FailedPrecondition, InvalidArgument
from svasim.model.events import Event, EventQueue
from svasim.model.journal import Journal
from svasim.model.kernel.enqcmd import Enqcmd
from svasim.model.kernel.exec import Exec
from svasim.model.kernel.fpu import Fpu
from svasim.model.kernel.kthread import Kthread
from svasim.model.kernel.process import ContextSwitch
from svasim.model.kernel_state import CpuState, Process, Task

#: ``kind`` of a queue entry that runs the next step of a sequence.
STEP_KIND = "seq.step"
#: Owner of the kernel's queue (its entity is ``evq/cpu``).
QUEUE_OWNER = "cpu"


@dataclass(frozen=True, slots=True)
@mypyc_attr(native_class=False)
class Step:
    """One stretch of a sequence between two interruptible points."""

    #: The kernel code it runs (as Linux names it).
    name: str
    #: The point the thread is at once it has run; "" for the last step.
    point: str
    #: What it does: ``run(kernel, journal, cpu, task)``.
    run: Callable[[Fpu, Journal, CpuState, Task], None]
    #: When given and false (of the task, when the step is reached), the step is not
    #: taken and step ``otherwise`` runs in its place, in the same entry.
    when: Callable[[Task], bool] | None = None
    otherwise: int = 0


@dataclass(frozen=True, slots=True)
@mypyc_attr(native_class=False)
class Sequence:
    """A named sequence: the point its start leads to and its steps, in order."""

    name: str
    #: What its start runs (nothing that costs cycles) and the point it leads to.
    begin: Callable[[Fpu, Journal, CpuState, Task], None]
    entry: str
    steps: tuple[Step, ...]

    def points(self) -> list[str]:
        """Every point the sequence can be at, in kernel order."""
        return [self.entry, *(s.point for s in self.steps if s.point)]


#: kernel_fpu_begin_mask() ... kernel_fpu_end() in a syscall of a user thread
#: (arch/x86/kernel/fpu/core.c; see the module docstring).
KERNEL_FPU = Sequence(
    "kernel_fpu",
    Fpu._kfpu_begin,
    "kernel_fpu_begin:entry",
    (
        Step(
            "set_thread_flag(TIF_NEED_FPU_LOAD)",
            "kernel_fpu_begin:tif_set",
            Fpu._kfpu_set_need_load,
            when=lambda task: not task.tif_need_fpu_load,
            otherwise=2,
        ),
        Step("save_fpregs_to_fpstate", "kernel_fpu_begin:saved", Fpu._kfpu_save),
        Step("__cpu_invalidate_fpregs_state", "kernel_fpu:in_use", Fpu._kfpu_invalidate),
        Step("kernel_fpu_end", "", Fpu._kfpu_end),
    ),
)

#: The sequences a client can start, by name.
SEQUENCES: dict[str, Sequence] = {KERNEL_FPU.name: KERNEL_FPU}


@mypyc_attr(native_class=False)
class CpuEventQueue(EventQueue):
    """The kernel's event queue. Its clock is recorded with its entries (each CPU keeps
    cycles of its own, so the queue's time belongs to no CPU), and an entry of a thread
    that dies inside its sequence is cancelled (``event.cancel``)."""

    __slots__ = ()

    def fields(self) -> dict[str, Any]:
        """The clock, the insertion counter and the pending entries."""
        return {"now": self.now, **super().fields()}

    def cancel(self, journal: Journal, event: Event) -> None:
        """Remove a pending entry, recorded with the queue as it is left."""
        self._heap = [item for item in self._heap if item[1].eid != event.eid]
        heapq.heapify(self._heap)
        self._record(journal, "event.cancel", event)


@dataclass(frozen=True, slots=True)
@mypyc_attr(native_class=False)
class FiredStep:
    """A step a fired entry ran: when, where, and the point it led to."""

    time: int
    cpu: int
    tid: int
    sequence: str
    step: int
    name: str
    point: str


@mypyc_attr(native_class=False)
class Sequences(Exec, Kthread, ContextSwitch, Enqcmd):
    """Sequences on the kernel's event queue, and what a thread inside one cannot do.

    It sits on top of the other parts of the kernel (its refusals wrap their operations),
    so it is where they are composed.

    Refused while a thread is inside a sequence (``FailedPrecondition``; nothing changes):

    - ``PREEMPTION_DISABLED``: a Schedule that would switch the thread out, migrate it,
      or run another thread on its CPU: from ``fpregs_lock()`` to ``kernel_fpu_end()``
      preemption is off (core.c ``kernel_fpu_begin_mask()``).
    - ``THREAD_IN_SEQUENCE``: anything the thread itself would have to execute: ENQCMD,
      MOVDIR64B, ENQCMDS, WaitCompletion, user FPU/tile/PKRU/GS/LDT writes, fork, execve,
      exit. It is executing the sequence's syscall in the kernel, not user code. A second
      sequence on it too: ``kernel_fpu_begin`` is not reentrant
      (``WARN_ON_FPU(this_cpu_read(in_kernel_fpu))``).
    - ``THREAD_IN_SEQUENCE``: execve in another thread of its process: ``de_thread()``
      kills the other threads and waits until they are gone, and this one leaves the
      kernel only at the sequence's end, so the model asks for the queue to be advanced
      first rather than cut the sequence short.

    Allowed: any request on the other CPUs, IPIs that land on the thread's CPU (their
    handler runs between two steps), memory and WQ requests of its process. A fatal
    signal that kills its process (another thread's SIGSEGV) ends the thread at once:
    its pending step is cancelled. Linux would deliver the signal when the thread
    returns to user mode, after the sequence; the model does not defer it.
    """

    def __init__(self, *args: Any, **kw: Any) -> None:
        super().__init__(*args, **kw)
        self.events = CpuEventQueue(QUEUE_OWNER)

    # -- where a thread is ------------------------------------------------------------------
    def sequence_point(self, task: Task) -> str:
        """The point of the sequence the thread is in, "" when it is in none."""
        if task.exited or task.cpu < 0:
            return ""
        cpu = self.cpus[task.cpu]
        return cpu.in_sequence if cpu.current == task.tid else ""

    def _pending_of(self, cpu: CpuState) -> Event | None:
        return next((e for e in self.events.pending() if e.kind == STEP_KIND and e.args["cpu"] == cpu.id), None)

    def _refuse_in_sequence(self, task: Task, what: str) -> None:
        point = self.sequence_point(task)
        if point:
            raise FailedPrecondition(
                "THREAD_IN_SEQUENCE",
                f"thread {task.tid} is inside a kernel sequence (at {point}) on CPU {task.cpu}: {what}; "
                "advance the cpu's event queue until the sequence ends first",
                tid=task.tid,
                point=point,
            )

    # -- the sequences ------------------------------------------------------------------------
    def _sequence(self, name: str) -> Sequence:
        seq = SEQUENCES.get(name)
        if seq is None:
            raise InvalidArgument(
                "UNKNOWN_SEQUENCE", f"no sequence {name!r}; known: {', '.join(sorted(SEQUENCES))}", sequence=name
            )
        return seq

    def _begin(self, journal: Journal, seq: Sequence, tid: int) -> tuple[Task, CpuState]:
        # The unguarded lookup: the guard's refusal names a second sequence as such.
        task, cpu = super().running_task(tid)
        self._refuse_in_sequence(task, f"{seq.name} cannot begin inside another sequence")
        seq.begin(self, journal, cpu, task)
        cpu.in_sequence = seq.entry
        return task, cpu

    def _run_step(self, journal: Journal, seq: Sequence, k: int, cpu: CpuState, task: Task) -> tuple[int, int]:
        """Run step ``k`` (or the one that runs in its place); return the index of the step
        that ran and the cycles it charged."""
        step = seq.steps[k]
        while step.when is not None and not step.when(task):
            k = step.otherwise
            step = seq.steps[k]
        start = cpu.cycles
        step.run(self, journal, cpu, task)
        cpu.in_sequence = step.point
        return k, cpu.cycles - start

    def start_sequence(self, journal: Journal, tid: int, name: str) -> Event:
        """Begin sequence ``name`` in running thread ``tid``; its first step is scheduled
        on the queue. Returns that entry."""
        seq = self._sequence(name)
        task, cpu = self._begin(journal, seq, tid)
        queue = self.events
        # A CPU has at most one entry pending (its sequence's next step), so the entries
        # of one CPU never overtake each other.
        args = {"cpu": cpu.id, "sequence": seq.name, "step": 0, "tid": tid}
        return queue.schedule(journal, max(queue.now, cpu.cycles), STEP_KIND, args)

    def _fire(self, journal: Journal) -> FiredStep:
        """Pop the next entry and run its step; schedule the step after it."""
        event = self.events.pop(journal)
        args = event.args
        seq = SEQUENCES[args["sequence"]]
        task = self.tasks[args["tid"]]
        cpu = self.cpus[args["cpu"]]
        ran, charged = self._run_step(journal, seq, args["step"], cpu, task)
        if ran + 1 < len(seq.steps):
            self.events.schedule(journal, self.events.now + charged, STEP_KIND, {**args, "step": ran + 1})
        return FiredStep(event.time, cpu.id, task.tid, seq.name, ran, seq.steps[ran].name, cpu.in_sequence)

    def advance_cpu(self, journal: Journal, steps: int | None = None, until: int | None = None) -> list[FiredStep]:
        """Fire the queue's entries in key order: at most ``steps`` of them, only those
        due at or before cycle ``until``; with neither, every entry until none is left.
        Each fired entry is an operation of its own. Returns the steps that ran."""
        if steps is not None and steps < 0:
            raise InvalidArgument("BAD_ADVANCE", f"steps is a count of entries to fire, got {steps}", steps=steps)
        if until is not None and until < 0:
            raise InvalidArgument("BAD_ADVANCE", f"until is a time in cycles, got {until}", until=until)
        fired: list[FiredStep] = []
        while steps is None or len(fired) < steps:
            due = self.events.peek()
            if due is None or (until is not None and due > until):
                break
            self.enter_op(journal)
            try:
                fired.append(self._fire(journal))
            finally:
                self.leave_op(journal)
        return fired

    def kernel_fpu_section(self, journal: Journal, tid: int) -> Iterator[str]:
        """A syscall that uses SIMD in the kernel: the ``kernel_fpu`` table, run inside
        one request. A generator: it yields the point it is at after the start and after
        each step but the last (where an interrupt may land); the caller decides what
        runs there. Exhausting it runs the section without interruption."""
        seq = KERNEL_FPU
        task, cpu = self._begin(journal, seq, tid)
        yield cpu.in_sequence
        k: int | None = 0
        while k is not None:
            if self.sequence_point(task) == "":
                return  # the thread died at the point it was at
            ran, _ = self._run_step(journal, seq, k, cpu, task)
            k = ran + 1 if ran + 1 < len(seq.steps) else None
            if k is not None:
                yield cpu.in_sequence

    # -- what a thread inside a sequence cannot do ----------------------------------------------
    def running_task(self, tid: int) -> tuple[Task, CpuState]:
        """A live user thread on a CPU that is not inside a sequence (what a user
        instruction or a syscall of the thread needs)."""
        task, cpu = super().running_task(tid)
        if cpu.in_sequence:  # (the common case, no sequence, pays for this test alone)
            self._refuse_in_sequence(task, "it cannot execute user instructions or another syscall")
        return task, cpu

    def schedule(self, journal: Journal, tid: int, cpu_id: int) -> tuple[int, bool, int]:
        """schedule(), refused where it would preempt a thread inside a sequence."""
        task = self.tasks.get(tid)
        target = self.cpus[cpu_id] if 0 <= cpu_id < len(self.cpus) else None
        if task is not None and target is not None and task.cpu != cpu_id:
            for held in (task, self.current(target)):
                point = self.sequence_point(held) if held is not None else ""
                if held is not None and point:
                    raise FailedPrecondition(
                        "PREEMPTION_DISABLED",
                        f"thread {held.tid} on CPU {held.cpu} is inside a kernel sequence (at {point}) with "
                        f"preemption disabled: thread {tid} cannot be scheduled on CPU {cpu_id}",
                        tid=held.tid,
                        cpu=held.cpu,
                        point=point,
                    )
        return super().schedule(journal, tid, cpu_id)

    def exit_thread(self, journal: Journal, tid: int) -> None:
        """exit(), refused inside a sequence."""
        self._refuse_in_sequence(self.task(tid), "it cannot exit from inside the kernel")
        super().exit_thread(journal, tid)

    def fork(self, journal: Journal, tid: int, native_pid: int = 0) -> Process:
        """fork(), refused inside a sequence."""
        self._refuse_in_sequence(self.task(tid), "it cannot fork from inside another syscall")
        return super().fork(journal, tid, native_pid)

    def exec(self, journal: Journal, tid: int) -> Process:
        """execve(), refused from or beside a thread inside a sequence."""
        task = self.task(tid)
        self._refuse_in_sequence(task, "it cannot execve from inside another syscall")
        proc = self.processes.get(task.pid)
        for other in proc.tids if proc is not None else []:
            if other != tid:
                self._refuse_in_sequence(
                    self.tasks[other], f"de_thread() in thread {tid}'s execve waits for it to leave the kernel"
                )
        return super().exec(journal, tid)

    def _exit_task(self, journal: Journal, task: Task) -> None:
        """do_exit of a task killed inside a sequence: its pending step goes first."""
        if self.sequence_point(task):
            cpu = self.cpus[task.cpu]
            pending = self._pending_of(cpu)
            if pending is not None:
                self.events.cancel(journal, pending)
            cpu.in_sequence = ""
        super()._exit_task(journal, task)
