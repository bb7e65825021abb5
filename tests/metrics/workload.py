"""A workload whose every byte is checked: MEMMOVEs through ENQCMD."""

from __future__ import annotations

from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client, completion_record, memmove_descriptor

SIZE = 4096
PATTERN = bytes((i * 13 + 5) & 0xFF for i in range(SIZE))


def memmoves(c: Client, n: int) -> tuple[int, list[int]]:
    """``n`` MEMMOVEs of SIZE bytes through ENQCMD, each waited for and its bytes checked;
    returns (pid, their destinations)."""
    p = c.create_process("app")
    pid, tid = p.pid, p.tids[0]
    src = c.mmap(pid, SIZE, populate=True)
    dst = c.mmap(pid, SIZE * n, populate=True)
    comps = c.mmap(pid, 32 * n, populate=True)
    c.write(pid, src, PATTERN)
    wq = c.open_wq(pid, "dsa0", 0)
    c.schedule(tid, 0)
    for i in range(n):
        r = c.enqcmd(tid, wq.portal_address, memmove_descriptor(src, dst + SIZE * i, SIZE, comps + 32 * i))
        assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    for i in range(n):
        rec = completion_record(c.wait_completion(tid, comps + 32 * i).raw)
        assert rec.status == idxd.DsaCompStatus.SUCCESS
        assert c.read(pid, dst + SIZE * i, SIZE) == PATTERN
    return pid, [dst + SIZE * i for i in range(n)]
