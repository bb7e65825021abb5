#!/usr/bin/env python3
"""Record the golden runs that CI replays (tests/test_golden.py).

Each golden run is the demo workload, small, recorded under one policy and exported as
JSON Lines. A change to the model that changes what a run records makes the replay of
these runs fail, on purpose: look at the first difference the test prints, and if the
new behaviour is the intended one, run this script again and commit the new files.
``nondeterministic.jsonl`` is a copy of the first one with one recorded value changed:
its replay must be rejected.
"""

from __future__ import annotations

import io
import json
import sys
import tempfile
from pathlib import Path

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.exchange import export_jsonl
from svasim.server import create_server
from svasim.store import Store
from svasim_client import Client
from svasim_client.demo import run_demo

OUT = Path(__file__).resolve().parent.parent / "tests" / "golden"
POLICIES = ("linux-5.18", "linux-5.10", "eager-switch-mm-cmp")


def record(policy: str, db: str) -> str:
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, policy=policy, cpus=2))
    try:
        with Client(srv.address) as c:
            run_demo(c, threads=2, per_thread=2, size=256, burst=18)
    finally:
        srv.stop(1)
    return srv.run_id


def main() -> int:
    OUT.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        db = f"sqlite:///{tmp}/golden.db"
        for policy in POLICIES:
            run_id = record(policy, db)
            buf = io.StringIO()
            export_jsonl(Store.open(db), run_id, buf)
            (OUT / f"demo-{policy}.jsonl").write_text(buf.getvalue())
            print(f"wrote {OUT / f'demo-{policy}.jsonl'}")
    lines = (OUT / f"demo-{POLICIES[0]}.jsonl").read_text().splitlines()
    for i, line in enumerate(lines[1:], start=1):
        event = json.loads(line)
        if event["kind"] == "msr.pasid.write":
            # The fixup "wrote" another PASID: a replay of this record cannot agree.
            event["after"]["ia32_pasid"] ^= 0x7
            lines[i] = json.dumps(event, sort_keys=True)
            break
    (OUT / "nondeterministic.jsonl").write_text("\n".join(lines) + "\n")
    print(f"wrote {OUT / 'nondeterministic.jsonl'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
