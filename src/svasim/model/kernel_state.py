"""What the kernel keeps per CPU, per mm and per task, and the IA32_PASID encoding.

These are the types both the kernel (``svasim.model.kernel``) and the PASID policies
(``svasim.model.policies``) see, so they live below both:

- :class:`CpuState`: a logical CPU's live registers and its switching state: the
  per-CPU ``cpu_tlbstate`` (arch/x86/include/asm/tlbflush.h: ``loaded_mm``, the dynamic
  ASIDs) and ``fpu_fpregs_owner_ctx`` (arch/x86/kernel/fpu/core.c).
- :class:`Process`: a process and its ``mm_struct`` (include/linux/mm_types.h:
  ``mm->pasid``, ``mm_cpumask``, ``context.ctx_id``/``tlb_gen``, the LDT).
- :class:`Task`: a ``task_struct`` (include/linux/sched.h) with its ``struct fpu``
  (``fpu->last_cpu``, the XSAVE buffer), ``TIF_NEED_FPU_LOAD`` and ``pasid_activated``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from svasim.model.memory import AddressSpace

#: MSR_IA32_PASID_VALID, bit 31 of MSR_IA32_PASID (arch/x86/include/asm/msr-index.h).
MSR_IA32_PASID_VALID = 1 << 31
#: The PASID is in bits 19:0 of the MSR.
PASID_MASK = 0xFFFFF
#: init_pkru_value: every key but 0 access-disabled (arch/x86/mm/pkeys.c).
INIT_PKRU = 0x55555554


def pasid_state(pasid: int) -> int:
    """The MSR / xstate value for an mm PASID: PASID | VALID, or 0 for none."""
    return pasid | MSR_IA32_PASID_VALID if pasid else 0


def new_xstate() -> dict[str, Any]:
    """An XSAVE buffer in its init state: components by name."""
    return {"fp": 0, "pasid": 0, "tile": 0}


@dataclass(slots=True)
class CpuState:
    """A logical CPU's live registers and switching state."""

    id: int
    current: int = 0  # tid, 0 = idle
    # Live xstate registers: SIMD contents (a token), IA32_PASID, tile data (a token).
    regs: dict[str, Any] = field(default_factory=new_xstate)
    fpregs_owner: int = 0  # fpu_fpregs_owner_ctx: tid whose state the registers hold
    pkru: int = INIT_PKRU
    kernel_gs_base: int = 0
    xfd_armed: bool = True  # IA32_XFD bit 18
    loaded_mm: int = 0  # cpu_tlbstate.loaded_mm: the mm whose pgd CR3 holds
    asids: list[tuple[int, int]] = field(default_factory=list)  # (mm ctx_id, tlb_gen)
    next_asid: int = 0
    ldt_gen: tuple[int, int] = (0, 0)  # (mm, ldt generation) loaded
    cycles: int = 0
    # The interruptible point of the kernel sequence its current thread is in, "" for
    # none (svasim.model.kernel.sequences; exported and recorded with the CPU).
    in_sequence: str = ""

    @property
    def entity(self) -> str:
        """The CPU's name in transitions."""
        return f"cpu/{self.id}"

    @property
    def ia32_pasid(self) -> int:
        """The live IA32_PASID MSR."""
        return int(self.regs["pasid"])

    @ia32_pasid.setter
    def ia32_pasid(self, value: int) -> None:
        self.regs["pasid"] = value


@dataclass(slots=True, eq=False)
class WqFile:
    """An open file of /dev/dsa/wqD.Q (a ``struct file`` and its idxd user context).

    Its references are the file descriptor and each portal mapping of it: mmap takes one
    (``vma->vm_file = get_file(file)``, mm/mmap.c) and munmap drops it (``remove_vma``:
    ``fput``). The driver's release runs when the last one goes.
    """

    fd: int
    device: str
    wq_id: int
    #: Where its portal was first mapped: unique in the mm (the mmap area only grows
    #: down), so it names the file apart from a later file that reuses the descriptor.
    portal: int
    fd_open: bool = True
    f_count: int = 1

    def entity(self, pid: int) -> str:
        """The file's name in transitions (by its portal: a closed descriptor's number is
        reused while the file lives on in its mapping)."""
        return f"file/{pid}/{self.portal:#x}"


@dataclass(slots=True)
class Process:
    """A process and its mm (one mm per process; threads share it)."""

    pid: int
    name: str
    aspace: AddressSpace
    pasid: int = 0  # 0 = IOMMU_PASID_INVALID here (PASID 0 is never allocated)
    tids: list[int] = field(default_factory=list)
    mm_cpumask: int = 0  # bit n: CPU n may hold this mm in CR3
    killed: bool = False
    kill_signal: int = 0
    exited: bool = False
    # The WQ files not yet released (held by an fd, a portal mapping or both), and which
    # file each portal mapping holds (vma->vm_file), by the mapping's start address.
    files: list[WqFile] = field(default_factory=list)
    vm_files: dict[int, WqFile] = field(default_factory=dict)
    ctx_id: int = 0  # mm->context.ctx_id: never reused
    tlb_gen: int = 1
    ldt_gen: int = 0  # 0: no LDT
    amx_permitted: bool = False
    #: The real process whose memory this is (svasim.model.kernel.native); 0: simulated.
    native_pid: int = 0
    native_slot: int = 0

    @property
    def entity(self) -> str:
        """The process's name in transitions."""
        return f"process/{self.pid}"

    def cpumask_list(self) -> list[int]:
        """mm_cpumask as a sorted list of CPU numbers."""
        return [i for i in range(self.mm_cpumask.bit_length()) if self.mm_cpumask >> i & 1]


@dataclass(slots=True)
class Task:
    """A thread (task_struct), with the state saved while it is not running."""

    tid: int
    pid: int  # 0 for a kernel thread
    cpu: int = -1
    pasid_activated: bool = False
    xstate: dict[str, Any] = field(default_factory=new_xstate)
    tif_need_fpu_load: bool = True
    last_cpu: int = -1  # fpu->last_cpu
    pkru: int = INIT_PKRU
    gs_base: int = 0
    fpstate_large: bool = False  # the fpstate grew for AMX tile data
    gp_faults: int = 0
    enqcmds: int = 0
    exited: bool = False
    kthread: bool = False
    borrowed_mm: int = 0  # kthread_use_mm
    # What the thread's user code last put in its registers: checked on return to user.
    user_fp: int = 0
    user_tile: int = 0

    @property
    def entity(self) -> str:
        """The thread's name in transitions."""
        return f"thread/{self.tid}"

    @property
    def saved_ia32_pasid(self) -> int:
        """IA32_PASID as saved in the task's XSAVE buffer (supervisor component 10)."""
        return int(self.xstate["pasid"])
