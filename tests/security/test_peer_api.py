"""The peer API is not the client API.

On real hardware a user program can write its own memory, open a WQ and execute ENQCMD;
it cannot read physical memory, walk page tables, bind PASIDs, post descriptors with
another process's PASID or erase the record. So the client listener offers none of
that, whatever the caller says about itself, and the peer listener can demand a
certificate of the fabric's CA (mutual TLS).
"""

from __future__ import annotations

import grpc
import pytest
from google.protobuf import message_factory
from grpc_reflection.v1alpha import reflection_pb2, reflection_pb2_grpc

from svasim.wiring.tls import make_test_ca
from svasim_api import idxd
from svasim_api.accel.v1 import accel_pb2
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.iommu.v1 import iommu_pb2, iommu_pb2_grpc
from svasim_api.trace.v1 import trace_pb2
from svasim_client import Client, SvasimError, memmove_descriptor

from ..services.fabric_fixtures import connect, running_fabric

#: What only the memory system, the IOMMU, the kernel's driver or an administrator of the
#: record does (Documentation/arch/x86/sva.rst; the issue's attacks): never a user program.
PEER_ONLY_METHODS = {
    "WalkPageTable",
    "DmaRead",
    "DmaWrite",
    "HandlePageFault",
    "BindDevice",
    "UnbindDevice",
    "DropMm",
    "Translate",
    "InvalidatePasid",
    "PageRequest",
    "Submit",
    "InvalidateDeviceTlb",
    "DeleteRun",
}
#: The services holding them.
PEER_SERVICES = [
    (cpu_pb2, "HostMemoryService"),
    (iommu_pb2, "IommuService"),
    (accel_pb2, "AccelDeviceService"),
    (trace_pb2, "TraceAdminService"),
]
#: Every method of those services, and their full names.
PEER_METHODS = [m for module, name in PEER_SERVICES for m in module.DESCRIPTOR.services_by_name[name].methods]
PEER_ONLY_FULL_NAMES = {m.full_name for m in PEER_METHODS}
assert {m.name for m in PEER_METHODS} >= PEER_ONLY_METHODS
ALL_FILES = [cpu_pb2, iommu_pb2, accel_pb2, trace_pb2]


@pytest.fixture(scope="module")
def ca(tmp_path_factory):
    """A test CA with the fabric's peer and server certificates."""
    return make_test_ca(tmp_path_factory.mktemp("ca"))


def tls_fields(ca) -> dict[str, str]:
    """FabricConfig fields: mTLS between peers, TLS on the client listener."""
    return {
        "peer_tls_cert": str(ca["peer"]),
        "peer_tls_key": str(ca["peer-key"]),
        "peer_tls_ca": str(ca["ca"]),
        "tls_cert": str(ca["server"]),
        "tls_key": str(ca["server-key"]),
    }


@pytest.fixture(params=["plain", "tls"])
def fab(request, tmp_path, ca):
    """The split fabric (three processes), in plaintext and over TLS."""
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    if request.param == "tls":
        with running_fabric("grpc", db, tls=tls_fields(ca), client_ca=str(ca["ca"])) as f:
            yield f
    else:
        with running_fabric("grpc", db) as f:
            yield f


def listed_services(channel: grpc.Channel) -> list[str]:
    """The services a listener names through reflection."""
    stub = reflection_pb2_grpc.ServerReflectionStub(channel)
    (answer,) = stub.ServerReflectionInfo(iter([reflection_pb2.ServerReflectionRequest(list_services="")]), timeout=10)
    return sorted(s.name for s in answer.list_services_response.service)


def call_empty(channel: grpc.Channel, service: str, method: str, metadata=()) -> grpc.StatusCode:
    """Call ``service.method`` with an empty request; the status code it ends with."""
    desc = None
    for module in ALL_FILES:
        for s in module.DESCRIPTOR.services_by_name.values():
            if s.full_name == service:
                desc = s.methods_by_name[method]
    assert desc is not None
    request_cls = message_factory.GetMessageClass(desc.input_type)
    response_cls = message_factory.GetMessageClass(desc.output_type)
    path = f"/{service}/{method}"
    if desc.server_streaming:
        call = channel.unary_stream(path, request_cls.SerializeToString, response_cls.FromString)
        try:
            for _ in call(request_cls(), timeout=5, metadata=metadata):
                pass
        except grpc.RpcError as e:
            return e.code()
        return grpc.StatusCode.OK
    call = channel.unary_unary(path, request_cls.SerializeToString, response_cls.FromString)
    try:
        call(request_cls(), timeout=5, metadata=metadata)
    except grpc.RpcError as e:
        return e.code()
    return grpc.StatusCode.OK


def event_count(fab) -> int:
    fab.trace.flush()
    return len(fab.trace.events(fab.run_id))


def test_no_client_port_offers_a_peer_only_method(fab):
    for client in (fab.cpu, fab.iommu, fab.accel):
        names = listed_services(client.channel)
        for module in ALL_FILES:
            for s in module.DESCRIPTOR.services_by_name.values():
                if s.full_name in names:
                    # By full name: a client service may have a method of the same short
                    # name as a peer one (CpuService.Submit, AccelDeviceService.Submit).
                    offered = {m.full_name for m in s.methods}
                    assert not PEER_ONLY_FULL_NAMES & offered, (client.address, s.full_name)
                    assert s.full_name not in {m.containing_service.full_name for m in PEER_METHODS}
        assert names  # reflection answered at all


def test_every_peer_service_method_is_unimplemented_on_every_client_port_and_records_nothing(fab):
    before = event_count(fab)
    # Claiming to be a peer in metadata changes nothing: the listener decides.
    as_peer = (("svasim-cause", "1"), ("svasim-peer", "1"))
    for client in (fab.cpu, fab.iommu, fab.accel):
        for module, name in PEER_SERVICES:
            service = module.DESCRIPTOR.services_by_name[name]
            for method in service.methods:
                for md in ((), as_peer):
                    code = call_empty(client.channel, service.full_name, method.name, md)
                    assert code == grpc.StatusCode.UNIMPLEMENTED, (client.address, service.full_name, method.name)
    assert event_count(fab) == before


def test_the_peer_listener_serves_the_peer_api(fab):
    peer_names = set()
    for service in ("cpu", "iommu", "accel"):
        c = peer_client(fab, service)
        try:
            peer_names |= set(listed_services(c.channel))
        finally:
            c.close()
    for module, name in PEER_SERVICES[:3]:
        assert module.DESCRIPTOR.services_by_name[name].full_name in peer_names


def peer_client(fab, service: str) -> Client:
    """A client of a peer listener, with the peer certificate when the fabric uses mTLS."""
    cfg = fab.servers[0].config
    address = fab.peer_addresses[service]
    if not cfg.peer_tls:
        return Client(address)
    creds = grpc.ssl_channel_credentials(
        root_certificates=open(cfg.peer_tls_ca, "rb").read(),
        private_key=open(cfg.peer_tls_key, "rb").read(),
        certificate_chain=open(cfg.peer_tls_cert, "rb").read(),
    )
    return Client(address, channel=grpc.secure_channel(address, creds))


def test_a_client_claiming_to_be_a_peer_is_still_recorded_as_a_client_input(fab):
    c = fab.cpu
    _, call = c.cpu.CreateProcess.with_call(
        cpu_pb2.CreateProcessRequest(name="poser"), metadata=(("svasim-cause", "1"),), timeout=10
    )
    seq = int(dict(call.trailing_metadata())["svasim-input-seq"])
    fab.trace.flush()
    (inp,) = [e for e in fab.trace.events(fab.run_id, kind_prefix="input") if e.seq == seq]
    assert '"cpu.CreateProcess"' in inp.after_json and inp.cause == 0


def test_the_whole_enqcmd_path_works_over_the_fabric(fab):
    c = fab.cpu
    proc = c.create_process("app")
    buf = c.mmap(proc.pid, 16384, populate=True)
    comp = c.mmap(proc.pid, 4096, populate=True)
    wq = c.open_wq(proc.pid, "dsa0", 0)
    tid = proc.tids[0]
    c.schedule(tid, 0)
    data = bytes(range(256)) * 32
    c.write(proc.pid, buf, data)
    r = c.enqcmd(tid, wq.portal_address, memmove_descriptor(buf, buf + 8192, len(data), comp))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
    w = c.wait_completion(tid, comp)
    assert w.completed and w.record.status == idxd.DsaCompStatus.SUCCESS
    assert c.read(proc.pid, buf + 8192, len(data)) == data
    assert fab.iommu.pasid_entry("dsa0", wq.pasid).flptr == proc.pgd


def test_binding_an_unknown_device_is_not_found_and_creates_nothing(fab):
    p = peer_client(fab, "iommu")
    try:
        stub = iommu_pb2_grpc.IommuServiceStub(p.channel)
        with pytest.raises(grpc.RpcError) as e:
            stub.BindDevice(
                iommu_pb2.BindDeviceRequest(device="evil0", mm=1, pgd=0x1000, max_pasids=1 << 20), timeout=10
            )
        assert e.value.code() == grpc.StatusCode.NOT_FOUND
    finally:
        p.close()
    iommu = next(s for s in fab.servers if "iommu" in s.cores).cores["iommu"].iommu
    assert "evil0" not in iommu.devices
    assert fab.iommu.iommu_state().pasids == []


def test_under_mtls_the_peer_listener_refuses_callers_without_a_fabric_certificate(tmp_path, ca):
    other = make_test_ca(tmp_path / "other")
    with running_fabric(
        "grpc", f"sqlite:///{tmp_path / 'svasim.db'}", tls=tls_fields(ca), client_ca=str(ca["ca"])
    ) as fab:
        address = fab.peer_addresses["cpu"]
        root = ca["ca"].read_bytes()
        attempts = {
            "plaintext": grpc.insecure_channel(address),
            "no certificate": grpc.secure_channel(address, grpc.ssl_channel_credentials(root_certificates=root)),
            "certificate of another CA": grpc.secure_channel(
                address,
                grpc.ssl_channel_credentials(
                    root_certificates=root,
                    private_key=other["peer-key"].read_bytes(),
                    certificate_chain=other["peer"].read_bytes(),
                ),
            ),
            # The client listener's certificate is for server authentication only.
            "server certificate": grpc.secure_channel(
                address,
                grpc.ssl_channel_credentials(
                    root_certificates=root,
                    private_key=ca["server-key"].read_bytes(),
                    certificate_chain=ca["server"].read_bytes(),
                ),
            ),
        }
        for what, channel in attempts.items():
            with channel:
                code = call_empty(channel, "svasim.cpu.v1.HostMemoryService", "DmaRead")
                assert code == grpc.StatusCode.UNAVAILABLE, what
        # The fabric's own peer certificate gets in.
        p = peer_client(fab, "cpu")
        try:
            assert call_empty(p.channel, "svasim.cpu.v1.HostMemoryService", "WalkPageTable") == grpc.StatusCode.OK
        finally:
            p.close()


def test_a_tls_client_listener_refuses_plaintext(tmp_path, ca):
    with running_fabric(
        "inprocess", f"sqlite:///{tmp_path / 'svasim.db'}", tls=tls_fields(ca), client_ca=str(ca["ca"])
    ) as fab:
        assert fab.cpu.create_process("a").pid > 0
        with connect(fab.servers[0].address) as plain, pytest.raises(SvasimError) as e:
            plain.create_process("b")
        assert e.value.code == grpc.StatusCode.UNAVAILABLE
