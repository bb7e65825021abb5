"""The whole ENQCMD path through the gRPC API, on both wirings."""

from __future__ import annotations

import json

import grpc
import pytest

from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import SvasimError, completion_record, memmove_descriptor

from .fabric_fixtures import running_fabric


@pytest.fixture(
    params=["inprocess", "grpc", pytest.param("grpc-postgres", marks=pytest.mark.postgres)],
)
def fab(request, tmp_path):
    """The fabric in one process, split over gRPC (SQLite), and split over gRPC on PostgreSQL."""
    wiring, _, backend = request.param.partition("-")
    db = request.getfixturevalue("pg_url") if backend == "postgres" else f"sqlite:///{tmp_path / 'svasim.db'}"
    with running_fabric(wiring, db) as f:
        yield f


def open_app(fab, size=8192):
    c = fab.cpu
    proc = c.create_process("app")
    buf = c.mmap(proc.pid, 2 * size, populate=True)
    comp = c.mmap(proc.pid, 4096, populate=True)
    wq = c.open_wq(proc.pid, "dsa0", 0)
    tid = proc.tids[0]
    c.schedule(tid, 0)
    return proc, tid, buf, comp, wq


def test_enqcmd_memmove_end_to_end_with_gp_fixup_and_completion_record(fab):
    c = fab.cpu
    proc, tid, buf, comp, wq = open_app(fab)
    assert wq.pasid_allocated and wq.pasid >= 1 and wq.shared
    data = bytes(range(256)) * 32
    c.write(proc.pid, buf, data)
    r = c.enqcmd(tid, wq.portal_address, memmove_descriptor(buf, buf + 8192, len(data), comp))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED and not r.zf
    assert r.gp_faults == 1 and r.fixup_loaded_msr and r.pasid_sent == wq.pasid
    w = c.wait_completion(tid, comp)
    assert w.completed and w.record.status == idxd.DsaCompStatus.SUCCESS
    assert completion_record(w.raw).status == idxd.DsaCompStatus.SUCCESS
    assert c.read(proc.pid, buf + 8192, len(data)) == data
    t = c.get_thread(tid)
    assert t.pasid_activated and t.gp_faults == 1
    entry = fab.iommu.pasid_entry("dsa0", wq.pasid)
    assert entry.present and entry.pgtt == 1 and entry.flptr == proc.pgd
    assert entry.dir_index == wq.pasid >> 6 and entry.table_index == wq.pasid & 0x3F
    dev = fab.accel.devices()[0]
    assert dev.wqs[0].completed == 1 and dev.bytes_processed == len(data)


def test_structured_descriptor_is_accepted_like_raw_bytes(fab):
    from svasim_api.common.v1 import idxd_pb2

    c = fab.cpu
    proc, tid, buf, comp, wq = open_app(fab)
    c.write(proc.pid, buf, b"hello world!")
    d = idxd_pb2.DsaDescriptor(
        opcode=3, flags=0xC, completion_addr=comp, src_addr=buf, dst_addr=buf + 4096, xfer_size=12
    )
    r = c.cpu.Enqcmd(cpu_pb2.EnqcmdRequest(tid=tid, portal_address=wq.portal_address, desc=d))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    assert c.wait_completion(tid, comp).record.status == 1
    assert c.read(proc.pid, buf + 4096, 12) == b"hello world!"


def test_enqcmd_without_pasid_is_sigsegv_result_not_rpc_error(fab):
    c = fab.cpu
    _, _, _, _, wq = open_app(fab)
    rogue = c.create_process("rogue")
    c.schedule(rogue.tids[0], 1)
    r = c.enqcmd(rogue.tids[0], wq.portal_address, bytes(64))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_SIGSEGV and r.gp_faults == 1
    p = c.get_process(rogue.pid)
    assert p.killed and p.kill_signal == 11


@pytest.mark.parametrize(
    "call, code, reason",
    [
        (
            lambda c, tid, portal: c.enqcmd(tid, portal, bytes(63)),
            grpc.StatusCode.INVALID_ARGUMENT,
            "BAD_DESCRIPTOR_SIZE",
        ),
        (lambda c, tid, portal: c.enqcmd(999, portal, bytes(64)), grpc.StatusCode.NOT_FOUND, "UNKNOWN_THREAD"),
        (lambda c, tid, portal: c.mmap(999, 4096), grpc.StatusCode.NOT_FOUND, "UNKNOWN_PROCESS"),
        (lambda c, tid, portal: c.open_wq(1, "dsa7", 0), grpc.StatusCode.NOT_FOUND, "UNKNOWN_DEVICE"),
        (lambda c, tid, portal: c.schedule(tid, 99), grpc.StatusCode.NOT_FOUND, "UNKNOWN_CPU"),
        (lambda c, tid, portal: c.read(1, 0x1000, 8), grpc.StatusCode.OUT_OF_RANGE, "ADDRESS_NOT_MAPPED"),
        (lambda c, tid, portal: c.write(1, portal, b"x"), grpc.StatusCode.INVALID_ARGUMENT, "NOT_MEMORY"),
    ],
)
def test_bad_requests_get_rich_errors_and_change_nothing(fab, call, code, reason):
    c = fab.cpu
    proc, tid, buf, comp, wq = open_app(fab)
    before = c.get_thread(tid)
    with pytest.raises(SvasimError) as e:
        call(c, tid, wq.portal_address)
    assert e.value.code == code and e.value.reason == reason
    assert e.value.message
    assert c.get_thread(tid) == before


def test_unaligned_portal_offset_at_the_device_is_invalid_argument(fab):
    from svasim_api.accel.v1 import accel_pb2, accel_pb2_grpc

    # A portal store reaches the device from the CPU, so only on the peer listener.
    with grpc.insecure_channel(fab.peer_addresses["accel"]) as ch, pytest.raises(grpc.RpcError) as e:
        accel_pb2_grpc.AccelDeviceServiceStub(ch).Submit(
            accel_pb2.SubmitRequest(
                device="dsa0", portal_offset=0x1008, command=bytes(64), kind=accel_pb2.STORE_KIND_ENQCMD
            ),
            timeout=10,
        )
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert "64-byte aligned" in e.value.details()


def test_every_transition_is_stored_gap_free_and_after_its_cause(fab):
    c = fab.cpu
    proc, tid, buf, comp, wq = open_app(fab)
    c.enqcmd(tid, wq.portal_address, memmove_descriptor(buf, buf + 8192, 4096, comp))
    c.wait_completion(tid, comp)
    fab.trace.flush()
    events = fab.trace.events(fab.run_id)
    seqs = [e.seq for e in events]
    assert seqs == list(range(1, len(seqs) + 1))
    assert all(e.cause < e.seq for e in events)
    kinds = [e.kind for e in events]
    for k in (
        "input",
        "pasid.alloc",
        "pasid_entry.set",
        "trap.gp",
        "msr.pasid.write",
        "wq.accept",
        "dma.write",
        "desc.complete",
    ):
        assert k in kinds, k
    services = {e.service for e in events}
    assert services == {"cpu", "iommu", "accel"}
    # The client's requests are inputs with their bodies.
    inputs = [json.loads(e.after_json) for e in events if e.kind == "input"]
    assert [i["method"] for i in inputs][:3] == ["cpu.CreateProcess", "cpu.Mmap", "cpu.Mmap"]
    gp = next(e for e in events if e.kind == "trap.gp")
    fix = next(e for e in events if e.kind == "msr.pasid.write")
    accept = next(e for e in events if e.kind == "wq.accept")
    assert gp.seq < fix.seq < accept.seq
    state = fab.trace.state(fab.run_id, at_seq=fix.seq)
    cpu0 = next(s for s in state.entities if s.entity == "cpu/0")
    assert json.loads(cpu0.fields_json)["ia32_pasid"] == wq.pasid | (1 << 31)
    before_fix = fab.trace.state(fab.run_id, at_seq=fix.seq - 1, entity_prefix="cpu/0")
    assert json.loads(before_fix.entities[0].fields_json).get("ia32_pasid", 0) == 0


def test_health_and_reflection_are_served(fab):
    from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

    assert fab.cpu.check_health() == "SERVING"
    assert fab.cpu.check_health("svasim.cpu.v1.CpuService") == "SERVING"
    stub = reflection_pb2_grpc.ServerReflectionStub(fab.cpu.channel)
    resp = next(stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")])))
    names = {s.name for s in resp.list_services_response.service}
    assert "svasim.cpu.v1.CpuService" in names and "grpc.health.v1.Health" in names
