"""Real programs against a fabric through the bridge: what they see in sysfs and
/dev/dsa, and what the fabric records of their opens, stores, forks and exits."""

from __future__ import annotations

import base64
import json
import struct
from pathlib import Path

from svasim.native import Bridge
from svasim_api.accel.v1 import accel_pb2
from svasim_client import Client
from tests.native.conftest import run_under, values


def _fields(events: list, method: str) -> list[dict]:
    """The fields of the recorded inputs of one method, in order."""
    out = []
    for e in events:
        if e.kind == "input":
            f = json.loads(e.after_json)
            if f.get("method") == method:
                out.append(f)
    return out


def test_the_program_sees_the_accel_services_devices_in_sysfs_and_dev(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    r = run_under(bridge.env(), preload, probe, "sysfs")
    assert r.returncode == 0, r.stdout + r.stderr
    out = values(r.stdout)
    (dev,) = fabric.devices()
    n = dev.name.removeprefix("dsa")
    expected = {dev.name} | {f"wq{n}.{w.id}" for w in dev.wqs} | {f"engine{n}.{e}" for e in range(dev.engines)}
    listed = {ln.removeprefix("device=") for ln in out if ln.startswith("device=")}
    assert expected <= listed
    assert {x for x in listed if x.startswith("group")} == {f"group{n}.{g}" for g in range(4)}
    wq0 = dev.wqs[0]
    assert f"wq0.0.mode={'shared' if wq0.mode == accel_pb2.WQ_MODE_SHARED else 'dedicated'}" in out
    assert f"wq0.0.size={wq0.size}" in out
    assert f"wq0.0.threshold={wq0.threshold}" in out
    assert f"wq0.0.priority={wq0.priority}" in out
    assert "wq0.0.state=enabled" in out and "wq0.0.type=user" in out
    assert f"dsa0.max_work_queues={len(dev.wqs)}" in out
    assert "access_idxd=0" in out and "dsa0.realpath_ok=1" in out
    # The bus entry is a link into the device's directory, as sysfs has it.
    assert any(ln.startswith("wq0.0.link=") and ln.endswith("/dsa0/wq0.0") for ln in out)
    assert {ln for ln in out if ln.startswith("devnode=")} == {f"devnode=wq{n}.{w.id}" for w in dev.wqs if w.enabled}


def test_enqcmd_from_the_program_is_the_fabrics_enqcmd_with_the_processs_pasid(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    r = run_under(bridge.env(), preload, probe, "enqcmd", "wq0.0")
    assert r.returncode == 0, r.stdout + r.stderr
    assert [ln for ln in values(r.stdout) if ln.startswith("enqcmd")] == [f"enqcmd form={i} zf=0" for i in range(5)]
    fabric.flush()
    events = fabric.events(fabric.fabric().run_id)
    accepted = [e for e in events if e.kind == "enqcmd.accept"]
    wq_accepts = [e for e in events if e.kind == "wq.accept" and e.entity == "wq/dsa0/0"]
    assert len(accepted) == 5 and len(wq_accepts) == 5
    # The first ENQCMD of the thread takes #GP and the fixup loads IA32_PASID (5.18+);
    # the PASID it carries is the one the open bound.
    assert [e.entity for e in events if e.kind == "trap.gp"] == [accepted[0].entity]
    (alloc,) = [e for e in events if e.kind == "pasid.alloc"]
    pasid = int(alloc.entity.removeprefix("pasid/"))
    assert all(f'"pasid":{pasid}' in e.detail_json.replace(" ", "") for e in wq_accepts)
    # The descriptors are the program's 64 bytes, in its order.
    raws = [base64.b64decode(inp["request"]["raw"]) for inp in _fields(events, "cpu.Enqcmd")]
    assert [struct.unpack_from("<I", raw, 60)[0] for raw in raws] == [0x5A5A0000 | i for i in range(5)]
    # Exit: the file is released and the process is gone; the WQ has no client left.
    assert len(_fields(events, "cpu.CloseWorkQueue")) == 1
    assert [e for e in events if e.kind == "process.exit"]
    assert fabric.devices()[0].wqs[0].clients == 0


def test_movdir64b_posts_to_the_dedicated_wq(bridge: Bridge, fabric: Client, preload: Path, probe: Path) -> None:
    dedicated = next(w for w in fabric.devices()[0].wqs if w.mode == accel_pb2.WQ_MODE_DEDICATED)
    r = run_under(bridge.env(), preload, probe, "movdir64b", f"wq0.{dedicated.id}")
    assert r.returncode == 0, r.stdout + r.stderr
    fabric.flush()
    events = fabric.events(fabric.fabric().run_id)
    assert len([e for e in events if e.kind == "movdir64b.posted"]) == 3
    assert len([e for e in events if e.kind == "wq.accept" and e.entity == f"wq/dsa0/{dedicated.id}"]) == 3
    raws = [base64.b64decode(inp["request"]["raw"]) for inp in _fields(events, "cpu.Movdir64b")]
    assert [struct.unpack_from("<I", raw, 60)[0] for raw in raws] == [0xA5A50000 | i for i in range(3)]


def test_a_fork_child_is_a_fabric_fork_and_binds_a_pasid_of_its_own(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    r = run_under(bridge.env(), preload, probe, "fork", "wq0.0")
    assert r.returncode == 0, r.stdout + r.stderr
    out = values(r.stdout)
    # idxd maps the portal VM_DONTCOPY: the child has none until it opens its own.
    assert "child portal_gone=1" in out and "child zf=0" in out and "child_status=0" in out
    assert out.count("parent zf=0") == 2
    fabric.flush()
    events = fabric.events(fabric.fabric().run_id)
    assert len(_fields(events, "cpu.Fork")) == 1
    assert len([e for e in events if e.kind == "pasid.alloc"]) == 2
    assert len([e for e in events if e.kind == "enqcmd.accept"]) == 3


def test_attribute_stores_follow_the_driver_and_reach_the_fabric(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    def write(path: str, value: str) -> str:
        r = run_under(bridge.env(), preload, probe, "write", path, value)
        return values(r.stdout)[-1]

    size = "/sys/bus/dsa/devices/wq0.0/size"
    before = fabric.devices()[0].wqs[0].size
    # sysfs.c: WQCFG stores are refused while the WQ is enabled (EPERM = 1).
    assert write(size, "8") == "write=-1 errno=1"
    assert fabric.devices()[0].wqs[0].size == before
    assert write("/sys/bus/dsa/drivers/user/unbind", "wq0.0") == "write=5 errno=0"
    assert not fabric.devices()[0].wqs[0].enabled
    assert not (bridge.root / "dev/dsa/wq0.0").exists()
    # The fabric keeps wq_thresh within wq_size: lower the threshold first.
    assert write("/sys/bus/dsa/devices/wq0.0/threshold", "4") == "write=1 errno=0"
    assert write(size, "8\n") == "write=2 errno=0"
    assert fabric.devices()[0].wqs[0].size == 8
    assert write("/sys/bus/dsa/devices/wq0.0/mode", "sideways") == "write=-1 errno=22"
    assert write("/sys/bus/dsa/drivers/user/bind", "wq0.0") == "write=5 errno=0"
    assert fabric.devices()[0].wqs[0].enabled
    assert (bridge.root / "dev/dsa/wq0.0").exists()
    r = run_under(bridge.env(), preload, probe, "sysfs")
    assert "wq0.0.size=8" in values(r.stdout)


def test_opening_a_disabled_wq_fails_as_a_missing_device_node(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    fabric.disable_wq("dsa0", 0)
    bridge.sysfs.refresh()
    r = run_under(bridge.env(), preload, probe, "enqcmd", "wq0.0")
    assert r.returncode == 1
    assert values(r.stdout) == ["open_errno=2"]


def test_a_store_through_a_resolved_path_reaches_the_driver_too(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    # libaccel-config writes through realpath() results, which name the tree itself.
    unbind = bridge.root / "sys/bus/dsa/drivers/user/unbind"
    r = run_under(bridge.env(), preload, probe, "write", unbind, "wq0.0")
    assert values(r.stdout) == ["write=5 errno=0"]
    assert not fabric.devices()[0].wqs[0].enabled
    assert unbind.read_text() == "\n"


def test_each_thread_of_the_program_is_a_fabric_thread_taking_its_own_first_gp(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    r = run_under(bridge.env(), preload, probe, "threads", "wq0.0", "5")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sorted(ln for ln in values(r.stdout) if ln.startswith("thread")) == [f"thread {i} zf=0" for i in range(5)]
    fabric.flush()
    events = fabric.events(fabric.fabric().run_id)
    # pasid_activated is per task: every new thread takes #GP once, then the fixup.
    gp = [e.entity for e in events if e.kind == "trap.gp"]
    assert len(gp) == 5 and len(set(gp)) == 5
    assert len([e for e in events if e.kind == "enqcmd.accept"]) == 5
    raws = [base64.b64decode(f["request"]["raw"]) for f in _fields(events, "cpu.Enqcmd")]
    assert sorted(struct.unpack_from("<I", raw, 60)[0] for raw in raws) == [0x77770000 | i for i in range(5)]


def test_exec_is_the_fabrics_exec_and_the_new_image_binds_a_new_mm(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path
) -> None:
    r = run_under(bridge.env(), preload, probe, "exec", "wq0.0")
    assert r.returncode == 0, r.stdout + r.stderr
    out = values(r.stdout)
    assert out[0] == "before_exec zf=0" and "enqcmd form=4 zf=0" in out
    fabric.flush()
    events = fabric.events(fabric.fabric().run_id)
    assert len(_fields(events, "cpu.Exec")) == 1
    assert len(_fields(events, "cpu.CreateProcess")) == 1
    # The old image's file is released before exec; the new mm opens and binds again.
    methods = [json.loads(e.after_json)["method"] for e in events if e.kind == "input"]
    first_exec = methods.index("cpu.Exec")
    assert "cpu.CloseWorkQueue" in methods[:first_exec]
    assert methods[first_exec:].count("cpu.OpenWorkQueue") == 1
    assert len([e for e in events if e.kind == "enqcmd.accept"]) == 6
