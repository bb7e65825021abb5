"""Many clients at once on the split fabric: work completes, nothing wedges, and the only
refusal is RESOURCE_EXHAUSTED (the fabric once deadlocked at 16 requests in flight, when
peers called back into a process whose workers were all held by waiting clients)."""

from __future__ import annotations

import threading
import time

import grpc

from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import SvasimError, memmove_descriptor

from .fabric_fixtures import connect, running_fabric

# More than the workers of a listener (max_queued 32 + 16 = 48; once 16 in all).
CLIENTS = 64
SECONDS = 4.0


def test_more_clients_than_workers_on_the_split_fabric_complete_work_with_no_error_but_backpressure(tmp_path):
    with running_fabric("grpc", f"sqlite:///{tmp_path / 'svasim.db'}", cpus=CLIENTS, durability="batch") as fab:
        address = fab.cpu.address
        done = [0] * CLIENTS
        errors: list[str] = []
        stop = time.monotonic() + SECONDS

        def client(i: int) -> None:
            def retrying(call):
                while True:
                    try:
                        return call()
                    except SvasimError as e:
                        if e.code != grpc.StatusCode.RESOURCE_EXHAUSTED:
                            raise
                        time.sleep(0.02)

            c = connect(address)
            try:
                proc = retrying(lambda: c.create_process(f"app{i}"))
                buf = retrying(lambda: c.mmap(proc.pid, 8192, populate=True))
                comp = retrying(lambda: c.mmap(proc.pid, 4096, populate=True))
                wq = retrying(lambda: c.open_wq(proc.pid, "dsa0", 0))
                tid = proc.tids[0]
                retrying(lambda: c.schedule(tid, i))  # a CPU of its own
                n = 0
                desc = memmove_descriptor(buf, buf + 4096, 1024, comp)
                while n == 0 or time.monotonic() < stop:  # at least one each, however slow the host
                    data = bytes([i, n & 0xFF]) * 512
                    # A fresh completion record and source for each descriptor, as a client does.
                    retrying(lambda d=data: c.write(proc.pid, buf, d))
                    retrying(lambda: c.write(proc.pid, comp, bytes(32)))
                    r = retrying(lambda: c.enqcmd(tid, wq.portal_address, desc))
                    if r.outcome != cpu_pb2.ENQCMD_OUTCOME_ACCEPTED:
                        continue  # a full shared WQ answers retry (ZF=1), as hardware does
                    w = retrying(lambda: c.wait_completion(tid, comp))
                    assert w.completed and w.record.status == idxd.DsaCompStatus.SUCCESS
                    assert retrying(lambda: c.read(proc.pid, buf + 4096, 1024)) == data
                    n += 1
                done[i] = n
            except Exception as e:  # noqa: BLE001 - collected and asserted below
                errors.append(f"client {i}: {e!r}")
            finally:
                c.close()

        threads = []
        for i in range(CLIENTS):
            t = threading.Thread(target=lambda i=i: client(i))
            threads.append(t)
            t.start()
        for t in threads:
            t.join(60)
        assert not any(t.is_alive() for t in threads), "a client is wedged"
        assert errors == []
        assert sum(done) > 0 and all(n > 0 for n in done), done
