"""Bad input is a specific refusal; a fault of the fabric itself is INTERNAL and logged,
never passed off as the caller's mistake."""

from __future__ import annotations

import logging

import grpc
import pytest

from svasim_api.common.v1 import idxd_pb2
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import error_info

from .fabric_fixtures import running_fabric


@pytest.fixture
def fab(tmp_path):
    with running_fabric("inprocess", f"sqlite:///{tmp_path / 'svasim.db'}") as f:
        yield f


@pytest.mark.parametrize("exc", [ValueError("bad index deep in the model"), KeyError(7), AssertionError()])
def test_an_exception_inside_the_model_is_internal_and_logged_with_its_traceback(fab, monkeypatch, caplog, exc):
    kernel = fab.servers[0].cores["cpu"].kernel

    def broken(*args, **kwargs):
        raise exc

    monkeypatch.setattr(kernel, "create_process", broken)
    with caplog.at_level(logging.ERROR, logger="svasim.rpc"), pytest.raises(grpc.RpcError) as e:
        fab.cpu.cpu.CreateProcess(cpu_pb2.CreateProcessRequest(name="x"), timeout=10)
    assert e.value.code() == grpc.StatusCode.INTERNAL
    assert error_info(e.value).reason == "INTERNAL_ERROR"
    # The message does not blame the request, and the log has what a developer needs.
    assert "bad index" not in e.value.details()
    (record,) = [r for r in caplog.records if r.name == "svasim.rpc"]
    assert record.exc_info is not None and record.exc_info[1] is exc


def test_a_structured_descriptor_field_too_wide_is_invalid_argument_naming_the_field(fab):
    c = fab.cpu
    proc = c.create_process("app")
    wq = c.open_wq(proc.pid, "dsa0", 0)
    tid = proc.tids[0]
    c.schedule(tid, 0)
    before = c.get_thread(tid)
    # opcode is 8 bits wide in struct dsa_hw_desc (include/uapi/linux/idxd.h).
    d = idxd_pb2.DsaDescriptor(opcode=256, completion_addr=0, src_addr=0, dst_addr=0, xfer_size=8)
    with pytest.raises(grpc.RpcError) as e:
        c.cpu.Enqcmd(cpu_pb2.EnqcmdRequest(tid=tid, portal_address=wq.portal_address, desc=d), timeout=10)
    assert e.value.code() == grpc.StatusCode.INVALID_ARGUMENT
    assert error_info(e.value).reason == "MALFORMED_DESCRIPTOR"
    assert "opcode" in e.value.details()
    assert c.get_thread(tid) == before
