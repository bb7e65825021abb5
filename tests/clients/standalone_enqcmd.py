"""The ENQCMD path through svasim_client, run by a Python that has only svasim-client installed.

Prints one JSON object; tests/clients/test_python_client.py checks it. Usage:
``python standalone_enqcmd.py HOST:PORT``.
"""

from __future__ import annotations

import importlib.util
import json
import sys

import grpc

from svasim_api import idxd
from svasim_client import Client, SvasimError, completion_record, memmove_descriptor
from svasim_client.demo import run_demo


def main(address: str) -> dict[str, object]:
    """Copy 4 KiB with one ENQCMD, provoke a refusal, then run the demo workload."""
    out: dict[str, object] = {"svasim_importable": importlib.util.find_spec("svasim") is not None}
    with Client(address) as c:
        c.wait_ready()
        proc = c.create_process("standalone")
        src = c.mmap(proc.pid, 4096, populate=True)
        dst = c.mmap(proc.pid, 4096, populate=True)
        comp = c.mmap(proc.pid, 4096, populate=True)
        payload = bytes(range(256)) * 16
        c.write(proc.pid, src, payload)
        wq = c.open_wq(proc.pid)
        tid = proc.tids[0]
        c.schedule(tid, 0)
        r = c.enqcmd(tid, wq.portal_address, memmove_descriptor(src, dst, len(payload), comp))
        rec = completion_record(c.wait_completion(tid, comp).raw)
        out.update(
            pasid=wq.pasid,
            outcome=r.outcome,
            gp_faults=r.gp_faults,
            fixup=r.fixup_loaded_msr,
            status=int(rec.status),
            success=idxd.DsaCompStatus.SUCCESS.value,
            bytes_completed=rec.bytes_completed,
            copied=c.read(proc.pid, dst, len(payload)) == payload,
        )
        try:
            c.get_process(1 << 30)
        except SvasimError as e:
            out["refusal"] = {"code": e.code.name, "reason": e.reason, "metadata": e.metadata}
        res = run_demo(c)
        out["demo_ok"] = res.ok()
        out["demo_bytes_verified"] = res.bytes_verified
    out["grpc_version"] = grpc.__version__
    return out


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1])))
