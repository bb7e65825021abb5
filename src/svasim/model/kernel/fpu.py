"""The FPU and its XSAVE state: arch/x86/kernel/fpu/ and arch/x86/include/asm/fpu/sched.h.

- ``switch_fpu_prepare()``: XSAVES the outgoing task's live registers (``save_fpregs_to_fpstate``)
  and records ``fpu->last_cpu``.
- ``switch_fpu_finish()``: sets ``TIF_NEED_FPU_LOAD`` for the incoming task; PKRU
  (``x86_pkru_load``, written only when it differs) and XFD are switched eagerly here.
- ``switch_fpu_return()`` on the way to user mode: XRSTORS, skipped when the task comes
  back to the CPU whose registers it still owns (``fpregs_state_valid``:
  ``fpu_fpregs_owner_ctx`` and ``fpu->last_cpu``).
- ``kernel_fpu_begin()``/``kernel_fpu_end()``: in-kernel SIMD, an interruptible sequence
  (its steps are here; :mod:`svasim.model.kernel.sequences` orders and runs them).
- IA32_PASID is XSAVE supervisor component 10: a WRMSR writes the live register and the
  task's buffer holds it while the task is switched out. XSAVES and XRSTORS pay for the
  component only when it is not in its init state (IA32_PASID != 0).
- ``arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA)`` (fpu/xstate.c) grants AMX.
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.journal import Journal
from svasim.model.kernel.smp import Smp
from svasim.model.kernel_state import INIT_PKRU, CpuState, Task

#: Register contents after kernel_fpu_begin: the kernel's own SIMD values.
KERNEL_FP_TOKEN = -1


@mypyc_attr(native_class=False)
class Fpu(Smp):
    """XSAVE state: save, lazy restore, the PASID component, in-kernel FPU use."""

    # -- the MSR and saved state --------------------------------------------------------------
    def wrmsr_pasid(self, cpu: CpuState, value: int, journal: Journal, *, why: str) -> None:
        """WRMSR to IA32_PASID on ``cpu``."""
        before = {"ia32_pasid": cpu.ia32_pasid}
        cpu.ia32_pasid = value
        cur = self.current(cpu)
        self.count(cpu, cur, "wrmsr.pasid")
        self.charge(cpu, cur, self.costs.wrmsr, "wrmsr")
        journal.emit(
            cpu.entity, "msr.pasid.write", before, {"ia32_pasid": value}, cycles=self.costs.wrmsr, detail={"why": why}
        )

    def set_saved_pasid(self, cpu: CpuState, task: Task, value: int, journal: Journal, *, why: str) -> None:
        """Write the PASID component of a task's XSAVE buffer (dirtying its cache line)."""
        before = {"saved_ia32_pasid": task.xstate["pasid"]}
        task.xstate["pasid"] = value
        self.touched.add(task.tid)
        self.count(cpu, task, "cache_lines_dirtied")
        self.charge(cpu, task, self.costs.cache_line_dirty, "switch")
        if task.cpu == cpu.id and cpu.fpregs_owner == task.tid and task.tif_need_fpu_load:
            # The registers are stale now: force the XRSTORS on return to user.
            task.last_cpu = -1
        journal.emit(task.entity, "xstate.pasid.write", before, {"saved_ia32_pasid": value}, detail={"why": why})

    # -- the context-switch halves ------------------------------------------------------------
    def _component_cost(self, task: Task, pasid: int) -> int:
        # XSAVES/XRSTORS touch a component only outside its init state (XINUSE): the AMX
        # tiles of a large fpstate, and the PASID component when IA32_PASID is not 0.
        return (self.costs.tile_xstate if task.fpstate_large else 0) + (self.costs.xstate_pasid if pasid else 0)

    def _xsave_cost(self, task: Task, pasid: int) -> int:
        return self.costs.xsaves + self._component_cost(task, pasid)

    def _xrstor_cost(self, task: Task, pasid: int) -> int:
        return self.costs.xrstors + self._component_cost(task, pasid)

    def _switch_fpu_prepare(self, cpu: CpuState, prev: Task, journal: Journal) -> None:
        """XSAVES the outgoing user task's registers, if they are live."""
        if prev.kthread or prev.tif_need_fpu_load or cpu.fpregs_owner != prev.tid:
            return
        self._xsaves(cpu, prev, journal)
        prev.tif_need_fpu_load = True
        prev.last_cpu = cpu.id
        prev.pkru = cpu.pkru  # x86_pkru_load saves the outgoing PKRU

    def _xsaves(self, cpu: CpuState, task: Task, journal: Journal) -> None:
        """save_fpregs_to_fpstate: the live registers into the task's buffer."""
        before = {"saved_ia32_pasid": task.xstate["pasid"]}
        task.xstate.update(cpu.regs)
        self.count(cpu, task, "xsaves")
        self.charge(cpu, task, self._xsave_cost(task, cpu.ia32_pasid), "xsave")
        journal.emit(task.entity, "xstate.save", before, {"saved_ia32_pasid": task.xstate["pasid"]})

    def _switch_fpu_finish(self, cpu: CpuState, nxt: Task, journal: Journal) -> None:
        """Mark the incoming task's registers for a lazy restore; PKRU and XFD now."""
        nxt.tif_need_fpu_load = True
        want_pkru = INIT_PKRU if nxt.kthread else nxt.pkru
        if cpu.pkru != want_pkru:
            cpu.pkru = want_pkru
            self.count(cpu, nxt, "wrpkru")
            self.charge(cpu, nxt, self.costs.wrpkru, "switch")
        want_xfd = not nxt.fpstate_large
        if not nxt.kthread and cpu.xfd_armed != want_xfd:
            cpu.xfd_armed = want_xfd
            self.count(cpu, nxt, "wrmsr.xfd")
            self.charge(cpu, nxt, self.costs.wrmsr, "wrmsr")
        self.policy.on_switch_fpu_finish(self, cpu, nxt, journal)

    def return_to_user(self, cpu: CpuState, task: Task, journal: Journal) -> None:
        """exit_to_user_mode: switch_fpu_return, then the state invariants."""
        if task.tif_need_fpu_load:
            if cpu.fpregs_owner == task.tid and task.last_cpu == cpu.id:
                self.count(cpu, task, "fpu_restore_skipped")
            else:
                before = {"ia32_pasid": cpu.ia32_pasid}
                cpu.regs.update(task.xstate)
                cpu.fpregs_owner = task.tid
                self.count(cpu, task, "xrstors")
                self.charge(cpu, task, self._xrstor_cost(task, cpu.ia32_pasid), "xsave")
                if before["ia32_pasid"] != cpu.ia32_pasid:
                    journal.emit(cpu.entity, "xstate.restore.pasid", before, {"ia32_pasid": cpu.ia32_pasid})
            task.tif_need_fpu_load = False
        self._check_user_state(journal, cpu, task)

    # -- user and kernel use of the registers -------------------------------------------------
    def use_fpu(self, journal: Journal, tid: int) -> int:
        """The running thread writes its SIMD registers (a fresh value each time)."""
        task, cpu = self.running_task(tid)
        token = self.next_fp_token
        self.next_fp_token += 1
        cpu.regs["fp"] = token
        task.user_fp = token
        journal.emit("kernel", "fpu.token", None, {"next_fp_token": self.next_fp_token})
        return token

    def request_amx(self, journal: Journal, pid: int) -> None:
        """arch_prctl(ARCH_REQ_XCOMP_PERM, XFEATURE_XTILEDATA) for the process."""
        proc = self.live_process(pid)
        proc.amx_permitted = True
        journal.emit(proc.entity, "xcomp_perm", None, {"amx_permitted": True})

    # -- kernel_fpu_begin() / kernel_fpu_end(): the steps of the ``kernel_fpu`` sequence -------
    # Each is one stretch of arch/x86/kernel/fpu/core.c between two points where an
    # interrupt may land; :mod:`svasim.model.kernel.sequences` holds the table that orders
    # them and runs them (as a generator or from the cpu's event queue).
    def _kfpu_begin(self, journal: Journal, cpu: CpuState, task: Task) -> None:
        """kernel_fpu_begin_mask() entry: fpregs_lock() (preemption off), in_kernel_fpu set."""

    def _kfpu_set_need_load(self, journal: Journal, cpu: CpuState, task: Task) -> None:
        """``set_thread_flag(TIF_NEED_FPU_LOAD)`` (only when it was clear)."""
        task.tif_need_fpu_load = True

    def _kfpu_save(self, journal: Journal, cpu: CpuState, task: Task) -> None:
        """``save_fpregs_to_fpstate(&current->thread.fpu)``: XSAVES into the task's buffer."""
        self._xsaves(cpu, task, journal)
        task.last_cpu = cpu.id

    def _kfpu_invalidate(self, journal: Journal, cpu: CpuState, task: Task) -> None:
        """``__cpu_invalidate_fpregs_state()``; the kernel's SIMD code then owns the registers."""
        cpu.fpregs_owner = 0
        cpu.regs["fp"] = KERNEL_FP_TOKEN

    def _kfpu_end(self, journal: Journal, cpu: CpuState, task: Task) -> None:
        """kernel_fpu_end() (in_kernel_fpu clear, fpregs_unlock()), then the syscall's
        return to user mode: switch_fpu_return() restores the task's registers."""
        self.return_to_user(cpu, task, journal)
