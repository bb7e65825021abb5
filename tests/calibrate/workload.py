"""A representative workload on the pure model, and the cycles it charges.

It does what the demo does (a process binds the shared WQ, threads submit MEMMOVEs and
take the #GP that loads IA32_PASID, a context switch to another process, a process with
no PASID takes a real #GP and SIGSEGV, completions are polled and copies read back) and
the paths the demo does not reach: a destination not yet faulted in (a page request),
munmap of a bound range (IOTLB invalidation), PKRU, an LDT, AMX tiles (#NM/XFD) and more
processes than PCIDs, on two CPUs so that an allocation under an eager policy sends IPIs.
It runs under every policy, so that each policy's own costs are reached.
"""

from __future__ import annotations

from svasim.model.costs import CostTable
from svasim.model.fabric import ModelFabric
from svasim.model.policies import policy_names
from svasim.model.transition import Transition
from svasim_api import idxd

#: TLB_NR_DYN_ASIDS (arch/x86/include/asm/tlbflush.h): one more process than this reuses a PCID.
TLB_NR_DYN_ASIDS = 6
PAGE = 4096
SIZE = 2 * PAGE


def memmove(src: int, dst: int, size: int, comp: int) -> bytes:
    """A MEMMOVE descriptor with a completion record, blocking on faults (BOF)."""
    flags = idxd.OpFlag.CRAV | idxd.OpFlag.RCR | idxd.OpFlag.BOF
    return idxd.pack_desc(
        idxd.DsaHwDesc(
            opcode=idxd.DsaOpcode.MEMMOVE,
            flags=int(flags),
            completion_addr=comp,
            src_addr=src,
            dst_addr=dst,
            xfer_size=size,
        )
    )


def charged(costs: CostTable, policy: str) -> tuple[int, int, int]:
    """(CPU cycles, device cycles, cycles carried by transitions) of one run under ``policy``."""
    seen: list[Transition] = []
    fab = ModelFabric(ncpus=2, policy=policy, costs=costs, sink=seen.append)
    k, j = fab.kernel, fab.journal()
    app = k.create_process(j, "app")
    t1 = k.create_thread(j, app.pid, app.tids[0]).tid
    tids = [app.tids[0], t1]
    src = k.mmap(j, app.pid, SIZE, True, True).start
    dst = k.mmap(j, app.pid, 4 * SIZE, True, False).start  # faulted in by the device's page requests
    comps = k.mmap(j, app.pid, PAGE, True, True).start
    k.write_memory(j, app.pid, src, bytes(range(256)) * (SIZE // 256))
    k.request_amx(j, app.pid)
    # Both threads on CPUs when the PASID is allocated: an eager policy IPIs the other one.
    k.schedule(j, tids[0], 0)
    k.schedule(j, tids[1], 1)
    k.modify_ldt(j, tids[0])
    portal = k.open_wq(j, app.pid, "dsa0", 0)[0]
    k.write_pkru(j, tids[0], 0x55555554)
    k.use_tile(j, tids[1])
    slot = 0
    for tid in tids:
        for _ in range(2):
            k.enqcmd(j, tid, portal, memmove(src, dst + SIZE * slot, SIZE, comps + 32 * slot))
            slot += 1
    for s in range(slot):
        k.wait_completion(j, tids[0], comps + 32 * s)
    k.read_memory(j, app.pid, dst, SIZE)
    # Other processes take the CPUs: switch_mm, XSAVES out, and PCIDs reused.
    others = [k.create_process(j, f"other{i}") for i in range(TLB_NR_DYN_ASIDS + 1)]
    for i, p in enumerate(others):
        k.schedule(j, p.tids[0], i % 2)
    # Back on a CPU whose registers they do not own: XRSTORS, the tile data with it.
    k.schedule(j, tids[1], 0)
    k.schedule(j, tids[0], 1)
    k.enqcmd(j, tids[0], portal, memmove(src, dst + SIZE * slot, SIZE, comps + 32 * slot))
    k.wait_completion(j, tids[0], comps + 32 * slot)
    k.munmap(j, app.pid, dst, 4 * SIZE)
    # A process that never opened the device: its #GP cannot be fixed up.
    rogue = k.create_process(j, "rogue")
    k.schedule(j, rogue.tids[0], 1)
    k.enqcmd(j, rogue.tids[0], portal, memmove(0, 0, 64, 0))
    cpu = sum(c.cycles for c in k.cpus)
    dev = sum(d.now + d.stall_cycles for d in fab.accel.devices.values())
    return cpu, dev, sum(t.cycles for t in seen)


def total_charged(costs: CostTable) -> dict[str, tuple[int, int, int]]:
    """The charged cycles of the workload under each policy."""
    return {p: charged(costs, p) for p in policy_names()}
