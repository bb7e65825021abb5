"""The PASID policies through the service path: a fabric per policy, driven over gRPC."""

from __future__ import annotations

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.model.policies import policy_names
from svasim.server import create_server
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client, SvasimError, noop_descriptor


@pytest.fixture
def fabric_for(tmp_path):
    servers = []

    def make(policy: str, early_free: bool | None = None) -> Client:
        srv = create_server(
            FabricConfig(
                services=ALL_SERVICES,
                port=0,
                db=f"sqlite:///{tmp_path / policy}.db",
                policy=policy,
                early_free=early_free,
                cpus=2,
            )
        )
        servers.append(srv)
        return Client(srv.address)

    yield make
    for s in servers:
        s.stop(0)


@pytest.mark.parametrize("policy", policy_names())
def test_every_policy_runs_the_enqcmd_path_over_grpc(fabric_for, policy):
    c = fabric_for(policy)
    assert c.fabric().policy == policy
    p = c.create_process("app")
    t2 = c.create_thread(p.pid).tid
    comp = c.mmap(p.pid, 4096, populate=True)
    c.schedule(p.tids[0], 0)
    c.schedule(t2, 1)
    wq = c.open_wq(p.pid)
    r = c.enqcmd(t2, wq.portal_address, noop_descriptor(comp))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    eager = policy in ("eager-switch-mm", "eager-switch-mm-cmp", "linux-5.10")
    assert r.gp_faults == (0 if eager or policy == "lazy-resource-exception" else 1)
    cs = c.counters()
    # The allocation's IPIs go to mm_cpumask (CPUs 0 and 1) less the CPU that allocates,
    # which runs the handler itself (smp_call_function_many_cond(), kernel/smp.c).
    assert cs["run"].get("ipi_sent", 0) == (1 if eager else 0)
    assert cs["run"].get("invariant_violations", 0) == 0
    assert "cpu/1" in cs and f"thread/{t2}" in cs


def test_close_fork_exec_and_exit_over_grpc(fabric_for):
    c = fabric_for("linux-5.18", early_free=True)
    p = c.create_process("app")
    wq = c.open_wq(p.pid)
    closed = c.close_wq(p.pid)
    # The portal mapping still holds the file (mm/mmap.c get_file): no unbind, no free yet.
    assert closed.pasid == wq.pasid and not closed.freed
    assert c.get_process(p.pid).pasid == wq.pasid
    c.munmap(p.pid, wq.portal_address, 4096)
    assert c.get_process(p.pid).pasid == 0
    again = c.open_wq(p.pid)
    child = c.fork(p.tids[0])
    assert child.pasid == 0 and child.pid != p.pid
    after = c.exec(p.tids[0])
    assert after.pasid == 0
    assert again.pasid not in [a.pasid for a in c.iommu_state().pasids]
    assert c.exit_thread(child.tids[0])
    with pytest.raises(SvasimError) as e:
        c.exit_thread(child.tids[0])
    assert e.value.reason == "THREAD_EXITED"


def test_unknown_policy_is_refused_at_start(tmp_path):
    with pytest.raises(ValueError, match="unknown PASID policy"):
        create_server(FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path}/x.db", policy="nope"))
