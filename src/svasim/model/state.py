"""The fabric's state as entity -> fields, in the shape the store's fold gives.

:func:`export_state` walks the kernel, the IOMMU and the accelerator and names every
piece of state the way their transitions name it (``cpu/0``, ``thread/2``,
``pasid_entry/dsa0/1``, ``wq/dsa0/0`` ...), with the same field names and the values
encoded as the store keeps them (JSON: lists for tuples, strings for keys). Folding the
transitions a run recorded, from the state the fabric booted with, must give exactly
this after every input: that is the oracle of ``tests/oracle/``.

Not exported, on purpose:

- Memory contents. Every write records the CRC32 of what it wrote (``mem.write``,
  ``dma.write``) as a fact of the event, which re-execution reproduces and replay
  compares; the bytes themselves are rebuilt by re-executing the recorded inputs.
- Counters kept for metrics (``Kernel.stats``, ``Kernel.counters``, ``Iommu.stats``):
  they are totals over the transitions, not state any behaviour reads.
- The allocator cursors that never go back (next pid, next context id): each is one
  more than the largest id the exported entities hold, so they add nothing.

Each part has its own helper (:func:`kernel_state`, :func:`iommu_state`,
:func:`accel_state`), so that a fabric split over processes can export what each
process hosts. The functions only read the models.
"""

from __future__ import annotations

from typing import Any, Protocol

from svasim.model.accel import Accel, Device, WorkQueue, group_fields
from svasim.model.iommu import Iommu
from svasim.model.kernel import Kernel
from svasim.model.kernel.core import file_fields, process_fields, task_fields
from svasim.model.kernel_state import WqFile
from svasim.model.memory import PAGE_SHIFT, Vma

#: entity -> fields, like :func:`svasim.store.store.fold` returns.
State = dict[str, dict[str, Any]]

#: Which part of the fabric holds each kind of entity (the name before the first "/").
PARTS: dict[str, str] = {
    "cpu": "kernel",
    "process": "kernel",
    "thread": "kernel",
    "vma": "kernel",
    "pte": "kernel",
    "file": "kernel",
    "kernel": "kernel",
    "invariant": "kernel",
    "mem": "memory",
    "memory": "memory",
    "pasid": "iommu",
    "pasid_entry": "iommu",
    "iommu_device": "iommu",
    "iotlb": "iommu",
    "prq": "iommu",
    "prq_entry": "iommu",
    "evq": "accel",
    "evl": "accel",
    "device": "accel",
    "engine": "accel",
    "group": "accel",
    "wq": "accel",
    "desc": "accel",
    "devtlb": "accel",
}


#: The kernel's own event queue (its sequences' steps); every other ``evq/`` is a device's.
CPU_QUEUE = "evq/cpu"


def part_of(entity: str) -> str:
    """The part of the fabric an entity belongs to ("kernel", "iommu", "accel",
    "memory"), or "other" for entities that hold no model state (``client``)."""
    if entity == CPU_QUEUE:
        return "kernel"
    return PARTS.get(entity.split("/", 1)[0], "other")


class FabricLike(Protocol):
    """Anything holding the three models under these names (:class:`ModelFabric`)."""

    kernel: Kernel
    iommu: Iommu
    accel: Accel


def export_state(fabric: FabricLike) -> State:
    """The whole state of a fabric, entity by entity, sorted by entity name."""
    state: State = {}
    state.update(kernel_state(fabric.kernel))
    state.update(memory_state(fabric.kernel))
    state.update(iommu_state(fabric.iommu))
    state.update(accel_state(fabric.accel))
    return dict(sorted(state.items()))


# -- kernel -----------------------------------------------------------------------------------
def vma_fields(vma: Vma, file: WqFile | None) -> dict[str, Any]:
    """A mapping; a portal names its device, its offset and the file it holds."""
    out: dict[str, Any] = {"start": vma.start, "end": vma.end, "writable": vma.writable, "kind": vma.kind}
    if vma.kind == "portal":
        out["device"] = vma.device
        out["portal_offset"] = vma.portal_offset
        out["fd"] = file.fd if file is not None else None
    return out


def kernel_state(kernel: Kernel) -> State:
    """CPUs, the kernel's event queue (``evq/cpu``), processes (mm, mappings, PTEs, WQ
    files), threads and invariant counts."""
    out: State = {c.entity: kernel.cpu_fields(c) for c in kernel.cpus}
    out["kernel"] = {"next_fp_token": kernel.next_fp_token}
    # The event queue of the kernel's sequences: its clock and its pending steps.
    out[kernel.events.entity] = kernel.events.fields()
    for proc in kernel.processes.values():
        out[proc.entity] = process_fields(proc)
        for vma in proc.aspace.vmas:
            out[f"vma/{proc.pid}/{vma.start:#x}"] = vma_fields(vma, proc.vm_files.get(vma.start))
        for vpn, pte in proc.aspace.ptes.items():
            out[f"pte/{proc.pid}/{vpn << PAGE_SHIFT:#x}"] = {"pfn": pte.pfn, "writable": pte.writable}
        for file in proc.files:
            out[file.entity(proc.pid)] = file_fields(file)
    for task in kernel.tasks.values():
        out[task.entity] = task_fields(task)
    prefix = "violation."
    for name, n in kernel.stats.items():
        if name.startswith(prefix) and n:
            out[f"invariant/{name[len(prefix) :]}"] = {"violations": n}
    return out


def memory_state(kernel: Kernel) -> State:
    """Physical memory's own state: the frame allocator (contents are not folded)."""
    return {"memory": kernel.memory_fields()}


# -- IOMMU ------------------------------------------------------------------------------------
def iommu_state(iommu: Iommu) -> State:
    """PASIDs (with the mm's first-level table), devices' PASID tables, the IOTLB and the
    page request queue (``prq``: one per IOMMU, shared by its devices)."""
    out: State = {}
    for pasid, mm in iommu.pasid_mm.items():
        # The mm's first-level table pointer is the IOMMU's from the first bind to the free.
        out[f"pasid/{pasid}"] = {"mm": mm, "pgd": iommu.mm_pgd.get(mm), "state": "allocated"}
    for name, dev in iommu.devices.items():
        out[f"iommu_device/{name}"] = {"max_pasids": dev.max_pasids}
        for hi, table in dev.pasid_dir.items():
            for lo, e in table.items():
                out[f"pasid_entry/{name}/{hi << 6 | lo}"] = {
                    "present": e.present,
                    "pgtt": e.pgtt,
                    "flptr": e.flptr,
                    "mm": e.mm,
                }
    for (pasid, vpn), (pfn, writable) in iommu.iotlb.items():
        out[f"iotlb/{pasid}/{vpn << PAGE_SHIFT:#x}"] = {"pfn": pfn, "writable": writable}
    out["prq"] = iommu.prq_fields()
    for slot, req in iommu.prq.items():
        out[f"prq_entry/{slot}"] = req.fields()
    return out


# -- accelerator ------------------------------------------------------------------------------
def wq_fields(wq: WorkQueue) -> dict[str, Any]:
    """A WQ: its WQCFG, its occupancy and counters, its openers."""
    cfg = wq.cfg
    return {
        "mode": cfg.mode,
        "wq_size": cfg.wq_size,
        "wq_thresh": cfg.wq_thresh,
        "priority": cfg.priority,
        "block_on_fault": cfg.block_on_fault,
        "max_xfer_shift": cfg.max_xfer_shift,
        "max_batch_shift": cfg.max_batch_shift,
        "pasid": cfg.pasid,
        "enabled": cfg.enabled,
        "op_config": cfg.op_config,
        "prs_disable": cfg.prs_disable,
        "type": cfg.type,
        "name": cfg.name,
        "driver_name": cfg.driver_name,
        "group_id": cfg.group_id,
        "occupancy": len(wq.queue),
        "accepted": wq.accepted,
        "retried": wq.retried,
        "completed": wq.completed,
        "opener": wq.opener,
        "clients": [[mm, n] for mm, n in sorted(wq.clients.items())],
        "last_end": wq.last_end,
    }


def device_fields(dev: Device) -> dict[str, Any]:
    """A device's clock, error log, scheduling state and counters."""
    return {
        "now": dev.now,
        "swerr": dev.swerr,
        "max_pasids": dev.max_pasids,
        "total_wq_size": dev.total_wq_size,
        "next_desc_id": dev.next_desc_id,
        "rr": dev.rr,
        "bytes_processed": dev.bytes_processed,
        "devtlb_hits": dev.devtlb_hits,
        "devtlb_misses": dev.devtlb_misses,
        "page_requests": dev.page_requests,
        "stall_cycles": dev.stall_cycles,
        "enabled": dev.enabled,
        "read_buffer_limit": dev.read_buffer_limit,
        "auto_run": dev.auto_run,
        "async_page_requests": dev.async_page_requests,
        **dev.evl.fields(),
    }


def accel_state(accel: Accel) -> State:
    """Devices, engines (with their group), groups (GRPCFG flags), WQs, the descriptors
    queued in them and the device TLBs. A descriptor is an entity from its acceptance
    (``desc.queue``) until the device is done with it (``desc.free``, after its
    completion)."""
    out: State = {}
    for name, dev in accel.devices.items():
        out[f"device/{name}"] = device_fields(dev)
        for i, busy_until in enumerate(dev.engines):
            out[f"engine/{name}/{i}"] = {"busy_until": busy_until, "group": dev.engine_group[i]}
        for g in dev.groups:
            out[dev.group_entity(g.id)] = group_fields(g)
        for wq in dev.wqs:
            out[dev.wq_entity(wq)] = wq_fields(wq)
            for qd in wq.queue:
                out[f"desc/{name}/{qd.id}"] = {
                    "state": "queued",
                    "wq": wq.id,
                    "opcode": qd.desc.opcode,
                    "pasid": qd.desc.pasid,
                    "accepted_at": qd.accepted_at,
                }
        for (pasid, vpn), (pfn, writable) in dev.devtlb.items():
            out[f"devtlb/{name}/{pasid}/{vpn << PAGE_SHIFT:#x}"] = {"pfn": pfn, "writable": writable}
        # The event queue (pending page group responses) and the
        # descriptors whose engines wait for a page group response.
        out[dev.events.entity] = dev.events.fields()
        for b in dev.blocked.values():
            out[f"desc/{name}/{b.qd.id}"] = b.fields()
        for index, entry in dev.evl.entries.items():
            out[f"evl/{name}/{index}"] = entry.fields()
    return out
