"""The demo: the whole ENQCMD path, driven through the gRPC client.

It is what ``svasim demo`` runs against a fresh embedded fabric: a process binds to
the shared WQ (allocating its PASID), three threads submit MEMMOVE descriptors (each
taking the #GP that loads IA32_PASID once), a context switch shows the MSR carried in
the thread's XSAVE state, a burst fills the WQ to its threshold (retry, ZF=1), and a
process with no PASID takes a real #GP (SIGSEGV). Every copy is checked byte for byte.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client, completion_record, memmove_descriptor

OUTCOME = {
    v: cpu_pb2.EnqcmdOutcome.Name(v).removeprefix("ENQCMD_OUTCOME_").lower() for v in cpu_pb2.EnqcmdOutcome.values()
}


@dataclass
class DemoResult:
    """What the demo did and what the store recorded of it."""

    run_id: str = ""
    submissions: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    gp_faults: int = 0
    fixups: int = 0
    statuses: Counter[str] = field(default_factory=Counter)
    bytes_verified: int = 0
    mismatches: int = 0
    pasid: int = 0
    events: int = 0
    kinds: Counter[str] = field(default_factory=Counter)
    bytes_moved: int = 0

    def ok(self) -> bool:
        """Whether every accepted copy arrived intact and the expected faults happened."""
        return (
            self.mismatches == 0
            and self.bytes_verified > 0
            and self.outcomes.get("sigsegv", 0) == 1
            and self.fixups >= 1
        )


def _status_name(code: int) -> str:
    try:
        return idxd.DsaCompStatus(code).name
    except ValueError:
        return f"0x{code:02x}"


def run_demo(
    client: Client, *, threads: int = 3, per_thread: int = 4, size: int = 64 * 1024, burst: int = 40
) -> DemoResult:
    """Drive the demo through ``client``; returns the tally."""
    res = DemoResult()
    fab = client.fabric()
    res.run_id = fab.run_id
    ncpus = len(fab.cpus)
    app = client.create_process("app")
    pid = app.pid
    slots = threads * per_thread + burst + 4
    src = client.mmap(pid, size, populate=True)
    dst = client.mmap(pid, size * slots, populate=True)
    comps = client.mmap(pid, 32 * slots, populate=True)
    pattern = bytes((i * 7 + 3) & 0xFF for i in range(size))
    client.write(pid, src, pattern)
    wq = client.open_wq(pid, "dsa0", 0)
    res.pasid = wq.pasid
    tids = [app.tids[0]] + [client.create_thread(pid).tid for _ in range(threads - 1)]
    for i, tid in enumerate(tids):
        client.schedule(tid, i % ncpus)

    submitted: list[tuple[int, int, int]] = []  # (tid, slot, completion address)
    slot = 0

    def submit(tid: int) -> Any:
        nonlocal slot
        comp = comps + 32 * slot
        r = client.enqcmd(tid, wq.portal_address, memmove_descriptor(src, dst + size * slot, size, comp))
        res.submissions += 1
        res.outcomes[OUTCOME[r.outcome]] += 1
        res.gp_faults += r.gp_faults
        res.fixups += int(r.fixup_loaded_msr)
        if r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED:
            submitted.append((tid, slot, comp))
        slot += 1
        return r

    for tid in tids:
        for _ in range(per_thread):
            submit(tid)
    # A process without a PASID takes CPU 0: the app thread there is switched out, its
    # IA32_PASID saved with its xstate; back on another CPU it needs no new fixup.
    other = client.create_process("other")
    client.schedule(other.tids[0], 0)
    client.schedule(tids[0], (len(tids)) % ncpus if ncpus > 1 else 0)
    submit(tids[0])
    # A burst from one thread faster than the engines drain: the limited portal answers
    # retry once the WQ holds wq_thresh descriptors.
    burst_slots = []
    for _ in range(burst):
        burst_slots.append((slot, comps + 32 * slot))
        slot += 1
    responses = client.enqcmd_batch(
        [(tids[-1], wq.portal_address, memmove_descriptor(src, dst + size * s, size, comp)) for s, comp in burst_slots]
    )
    for (s, comp), r in zip(burst_slots, responses, strict=True):
        res.submissions += 1
        res.outcomes[OUTCOME[r.outcome]] += 1
        if r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED:
            submitted.append((tids[-1], s, comp))
    # A process that never opened a device: its ENQCMD #GP cannot be fixed up.
    rogue = client.create_process("rogue")
    client.schedule(rogue.tids[0], ncpus - 1)
    r = client.enqcmd(rogue.tids[0], wq.portal_address, memmove_descriptor(0, 0, 64, 0))
    res.submissions += 1
    res.outcomes[OUTCOME[r.outcome]] += 1
    res.gp_faults += r.gp_faults

    # Wait for every accepted descriptor and check the copies.
    waiter = next(t for t in tids if client.get_thread(t).cpu >= 0)
    for _tid, s, comp in submitted:
        w = client.wait_completion(waiter, comp)
        rec = completion_record(w.raw)
        res.statuses[_status_name(rec.status)] += 1
        if rec.status == idxd.DsaCompStatus.SUCCESS:
            got = client.read(pid, dst + size * s, size)
            res.bytes_verified += len(got)
            res.mismatches += int(got != pattern)
    client.flush()
    events = client.events(res.run_id)
    res.events = len(events)
    res.kinds = Counter(e.kind for e in events)
    res.bytes_moved = sum(json.loads(e.after_json).get("bytes", 0) for e in events if e.kind == "desc.complete")
    return res
