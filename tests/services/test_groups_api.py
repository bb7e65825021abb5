"""Device capabilities, groups and engines over a real gRPC server: ListDevices shows them,
ConfigureGroup / ConfigureDevice / EnableDevice / DisableDevice and the WQ driver fields
of ConfigureWorkQueue change them with the idxd driver's rules
(drivers/dma/idxd/sysfs.c, device.c), and a run that regroups replays exactly."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import grpc
import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.replay import verify
from svasim.server import create_server
from svasim.store import Store
from svasim_client import Client, SvasimError, memmove_descriptor


@pytest.fixture
def fab(tmp_path: Path) -> Iterator[tuple[Client, str, str]]:
    db = f"sqlite:///{tmp_path / 'groups.db'}"
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, engines=4, groups=4))
    try:
        with Client(srv.address) as c:
            yield c, db, srv.run_id
    finally:
        srv.stop(0)


def _refused(call, *args, **kw) -> SvasimError:  # noqa: ANN001
    with pytest.raises(SvasimError) as e:
        call(*args, **kw)
    return e.value


def test_list_devices_shows_capabilities_groups_and_engines(fab):
    c, _, _ = fab
    (dev,) = c.devices()
    caps = dev.capabilities
    # registers.h: ENGCAP num_engines 7:0, GRPCAP num_groups 7:0, WQCAP num_wqs 23:16.
    assert caps.engine_cap & 0xFF == 4 and caps.group_cap & 0xFF == 4 and (caps.wq_cap >> 16) & 0xFF == 2
    assert caps.fields["engine_cap.num_engines"] == 4 and caps.fields["gen_cap.block_on_fault"] == 1
    assert caps.max_transfer_size == 1 << caps.fields["gen_cap.max_xfer_shift"]
    assert sum(w << (64 * i) for i, w in enumerate(caps.op_cap)) == dev.opcap
    assert caps.pasid_support and caps.prs_support and caps.max_pasids == dev.max_pasids
    assert [(g.id, list(g.wq_ids), list(g.engine_ids)) for g in dev.groups] == [
        (0, [0, 1], [0, 1, 2, 3]),
        (1, [], []),
        (2, [], []),
        (3, [], []),
    ]
    assert [(e.id, e.group_id) for e in dev.engine_list] == [(0, 0), (1, 0), (2, 0), (3, 0)]
    assert [(w.type, w.name, w.driver_name, w.group_id) for w in dev.wqs] == [
        ("user", "app1", "user", 0),
        ("user", "app2", "user", 0),
    ]
    assert dev.enabled


def test_group_changes_follow_the_drivers_rules_with_rich_errors(fab):
    c, _, _ = fab
    e = _refused(c.configure_group, "dsa0", 1, engines=[2, 3])
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_ENABLED")
    e = _refused(c.configure_group, "dsa0", 1, wqs=[0])
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "WQ_ENABLED")
    e = _refused(c.configure_group, "dsa0", 9)
    assert (e.code, e.reason) == (grpc.StatusCode.NOT_FOUND, "UNKNOWN_GROUP")
    for w in (0, 1):
        c.disable_wq("dsa0", w)
    dev = c.disable_device("dsa0")
    assert not dev.enabled and all(e.group_id == -1 for e in dev.engine_list)
    assert all((w.group_id, w.type, w.size) == (-1, "none", 0) for w in dev.wqs)
    e = _refused(c.enable_device, "dsa0")
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "NO_WQ_CONFIGURED")
    e = _refused(c.configure_group, "dsa0", 0, engines=[0, 1], read_buffers_allowed=4)
    assert (e.code, e.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_READ_BUFFERS_ALLOWED")
    assert all(e.group_id == -1 for e in c.devices()[0].engine_list)  # refused: nothing changed
    dev = c.configure_group("dsa0", 0, engines=[0, 1], wqs=[0], read_buffers_allowed=8)
    assert list(dev.groups[0].engine_ids) == [0, 1] and list(dev.groups[0].wq_ids) == [0]
    e = _refused(c.configure_wq, "dsa0", 0, type="mdev")
    assert (e.code, e.reason) == (grpc.StatusCode.INVALID_ARGUMENT, "BAD_WQ_TYPE")
    wq = c.configure_wq("dsa0", 0, size=16, threshold=15, priority=10, type="user", name="app1", driver_name="user")
    assert (wq.type, wq.name, wq.group_id) == ("user", "app1", 0)
    e = _refused(c.enable_wq, "dsa0", 0)
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "DEVICE_NOT_ENABLED")
    c.enable_device("dsa0")
    assert c.enable_wq("dsa0", 0).enabled
    e = _refused(c.configure_device, "dsa0", read_buffer_limit=8)
    assert e.reason == "DEVICE_ENABLED"


def test_a_wq_moved_to_an_engineless_group_is_not_enabled(fab):
    c, _, _ = fab
    c.disable_wq("dsa0", 1)
    assert c.configure_wq("dsa0", 1, group_id=2).group_id == 2
    e = _refused(c.enable_wq, "dsa0", 1)
    assert (e.code, e.reason) == (grpc.StatusCode.FAILED_PRECONDITION, "GROUP_WITHOUT_ENGINES")


def test_a_run_that_regroups_replays_exactly(fab):
    c, db, run_id = fab
    for w in (0, 1):
        c.disable_wq("dsa0", w)
    c.disable_device("dsa0")
    c.configure_group("dsa0", 0, engines=[0, 1], wqs=[0], read_buffers_allowed=8)
    c.configure_group("dsa0", 1, engines=[2, 3], wqs=[1], read_buffers_allowed=8)
    c.configure_wq("dsa0", 0, mode=1, size=16, threshold=15, priority=10, type="user", name="app1")
    c.configure_wq("dsa0", 1, mode=2, size=16, priority=10, type="user", name="app2")
    c.enable_device("dsa0")
    for w in (0, 1):
        c.enable_wq("dsa0", w)
    p = c.create_process("app")
    t = p.tids[0]
    c.schedule(t, 0)
    buf = c.mmap(p.pid, 3 * 4096, populate=True)
    wq = c.open_wq(p.pid, "dsa0", 0)
    c.enqcmd(t, wq.portal_address, memmove_descriptor(buf + 4096, buf + 8192, 4096, buf))
    c.advance()
    c.flush()
    report = verify(Store.open(db), run_id)
    assert report.ok, report.difference.describe()
