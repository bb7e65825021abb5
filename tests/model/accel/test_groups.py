"""Capabilities, groups and engines of the accelerator model, and the idxd driver's rules
for configuring them.

Sources: drivers/dma/idxd/registers.h (the capability registers' layouts),
drivers/dma/idxd/sysfs.c (which stores need a disabled WQ or device, and their bounds),
drivers/dma/idxd/device.c (drv_enable_wq(), idxd_device_config(),
idxd_device_clear_state()). The register bit positions below are written from
registers.h, not read back from the model's table.
"""

from __future__ import annotations

import pytest

from svasim.model.accel import (
    CAP_FIELDS,
    Accel,
    cap_registers,
    decode_caps,
    default_devices,
    device_caps,
    idxd_get_wq_portal_full_offset,
)
from svasim.model.errors import FailedPrecondition, InvalidArgument, NotFound
from svasim.model.fabric import ModelFabric
from svasim.model.state import export_state
from svasim.model.transition import Transition
from svasim.store.store import fold
from svasim_api import idxd
from svasim_api.idxd import DsaOpcode as Op

from ..test_accel_ops import CR, Dsa


class Fab:
    """A fabric with dsa0 (``engines`` engines) and its recorded transitions."""

    def __init__(self, engines: int = 4) -> None:
        self.transitions: list[Transition] = []
        self.fab = ModelFabric(ncpus=1, devices=default_devices(engines), sink=self.transitions.append)
        self.accel: Accel = self.fab.accel
        self.boot = export_state(self.fab)

    def j(self):  # noqa: ANN201
        return self.fab.journal("accel")

    @property
    def dev(self):  # noqa: ANN201
        return self.accel.devices["dsa0"]

    def folded_equals_model(self) -> bool:
        import json
        from types import SimpleNamespace

        def enc(v):  # noqa: ANN001, ANN202
            return None if v is None else json.loads(json.dumps(v))

        events = [
            SimpleNamespace(entity=t.entity, kind=t.kind, before=enc(t.before), after=enc(t.after))
            for t in self.transitions
        ]
        folded = fold(events, self.boot)
        model = export_state(self.fab)
        return {e: f for e, f in folded.items() if f} == {e: f for e, f in model.items() if f}


# -- capabilities ------------------------------------------------------------------------------
def test_capability_registers_encode_the_registers_h_layouts():
    fields = device_caps(default_devices(4)[0])
    regs = cap_registers(fields)
    gen, wq, grp, eng = regs["gen_cap"], regs["wq_cap"], regs["group_cap"], regs["engine_cap"]
    # union gen_cap_reg: block_on_fault bit 0, overlap_copy 1, max_xfer_shift 20:16,
    # max_batch_shift 24:21, config_en 31.
    assert gen & 1 and gen >> 1 & 1 and gen >> 31 & 1
    assert (gen >> 16) & 0x1F == 31 and (gen >> 21) & 0xF == 10
    # union wq_cap_reg: total_wq_size 15:0, num_wqs 23:16, shared 48, dedicated 49,
    # priority 51, occupancy 52, op_config 54, wq_prs_support 55.
    assert wq & 0xFFFF == 128 and (wq >> 16) & 0xFF == 2
    assert all(wq >> bit & 1 for bit in (48, 49, 51, 52, 54, 55))
    # union group_cap_reg: num_groups 7:0, total_rdbufs 15:8; engine_cap: num_engines 7:0.
    assert grp & 0xFF == 4 and (grp >> 8) & 0xFF == 96
    assert eng == 4
    assert decode_caps(regs) == fields


def test_every_capability_field_round_trips_and_none_overlap():
    used: dict[str, int] = {}
    for reg, name, lsb, width in CAP_FIELDS:
        mask = ((1 << width) - 1) << lsb
        assert not used.get(reg, 0) & mask, f"{reg}.{name} overlaps"
        used[reg] = used.get(reg, 0) | mask
    fields = {f"{r}.{n}": (1 << w) - 1 for r, n, _, w in CAP_FIELDS}
    assert decode_caps(cap_registers(fields)) == fields
    with pytest.raises(ValueError, match="engine_cap.num_engines"):
        cap_registers({**fields, "engine_cap.num_engines": 256})


# -- defaults ------------------------------------------------------------------------------------
def test_by_default_every_wq_and_engine_is_in_group_0_so_every_engine_serves_every_wq():
    dev = default_devices(4, 4)[0]
    assert dev.group_engines(0) == [0, 1, 2, 3] and dev.group_wqs(0) == [0, 1]
    assert [dev.group_engines(g) for g in (1, 2, 3)] == [[], [], []]
    assert [(w.cfg.type, w.cfg.name, w.cfg.driver_name) for w in dev.wqs] == [
        ("user", "app1", "user"),
        ("user", "app2", "user"),
    ]
    assert dev.enabled


# -- groups and dispatch ------------------------------------------------------------------------
def _split(f: Fab) -> None:
    """accel-config's 2g2q_user_1.conf: wq0.0 + engines 0,1 in group 0; wq0.1 + engines 2,3 in group 1."""
    j = f.j()
    for w in (0, 1):
        f.accel.set_wq_enabled(j, "dsa0", w, False)
    f.accel.set_device_enabled(j, "dsa0", False)
    f.accel.configure_group(j, "dsa0", 0, engines=[0, 1], wqs=[0], read_buffers_allowed=8)
    f.accel.configure_group(j, "dsa0", 1, engines=[2, 3], wqs=[1], read_buffers_allowed=8)
    for w, mode, name in ((0, "shared", "app1"), (1, "dedicated", "app2")):
        changes = {"mode": mode, "wq_size": 16, "priority": 10, "type": "user", "name": name, "driver_name": "user"}
        if mode == "shared":
            changes["wq_thresh"] = 15
        f.accel.configure_wq(j, "dsa0", w, changes)
    f.accel.set_device_enabled(j, "dsa0", True)
    for w in (0, 1):
        f.accel.set_wq_enabled(j, "dsa0", w, True)


def test_device_disable_clears_the_configuration_and_enable_needs_groups_with_engines():
    f = Fab()
    j = f.j()
    for w in (0, 1):
        f.accel.set_wq_enabled(j, "dsa0", w, False)
    f.accel.set_device_enabled(j, "dsa0", False)
    # idxd_device_clear_state(): no engine or WQ in a group, WQs of type none with size 0.
    assert f.dev.engine_group == [-1] * 4
    assert [(w.cfg.group_id, w.cfg.type, w.cfg.wq_size, w.cfg.name) for w in f.dev.wqs] == [(-1, "none", 0, "")] * 2
    with pytest.raises(FailedPrecondition) as e:
        f.accel.set_device_enabled(j, "dsa0", True)
    assert e.value.reason == "NO_WQ_CONFIGURED"  # idxd_wqs_setup(): IDXD_SCMD_WQ_NONE_CONFIGURED
    f.accel.configure_group(j, "dsa0", 1, wqs=[0])
    with pytest.raises(FailedPrecondition) as e:
        f.accel.set_device_enabled(j, "dsa0", True)
    assert e.value.reason == "NO_ENGINE_CONFIGURED"  # idxd_engines_setup(): -EINVAL
    f.accel.configure_group(j, "dsa0", 2, engines=[3])
    f.accel.configure_wq(j, "dsa0", 0, {"wq_size": 8})
    with pytest.raises(FailedPrecondition) as e:
        f.accel.set_device_enabled(j, "dsa0", True)
    assert e.value.reason == "GROUP_WITHOUT_ENGINES"  # group 1 has WQ 0 and no engine
    f.accel.configure_group(j, "dsa0", 1, engines=[0, 1])
    f.accel.set_device_enabled(j, "dsa0", True)
    assert f.folded_equals_model()


def test_wq_enable_needs_an_enabled_device_a_group_a_name_a_type_and_a_threshold():
    f = Fab()
    j = f.j()
    f.accel.set_wq_enabled(j, "dsa0", 0, False)
    f.accel.configure_wq(j, "dsa0", 0, {"group_id": -1})
    for change, reason in (
        ({}, "WQ_NO_GROUP"),
        ({"group_id": 2}, "GROUP_WITHOUT_ENGINES"),
        ({"group_id": 0, "name": ""}, "WQ_NO_NAME"),
        ({"name": "x", "wq_thresh": 0}, "WQ_NO_THRESHOLD"),
        ({"wq_thresh": 4, "type": "none", "name": "x"}, "WQ_NO_TYPE"),
    ):
        f.accel.configure_wq(j, "dsa0", 0, change)
        with pytest.raises(FailedPrecondition) as e:
            f.accel.set_wq_enabled(j, "dsa0", 0, True)
        assert e.value.reason == reason
    f.accel.configure_wq(j, "dsa0", 0, {"type": "user", "name": "x"})
    f.accel.set_wq_enabled(j, "dsa0", 0, True)
    assert f.folded_equals_model()


def test_a_new_type_clears_the_name_as_wq_type_store_does():
    f = Fab()
    j = f.j()
    f.accel.set_wq_enabled(j, "dsa0", 0, False)
    f.accel.configure_wq(j, "dsa0", 0, {"type": "kernel"})
    assert f.dev.wqs[0].cfg.name == ""
    f.accel.configure_wq(j, "dsa0", 0, {"type": "user", "name": "mine"})
    assert (f.dev.wqs[0].cfg.type, f.dev.wqs[0].cfg.name) == ("user", "mine")
    for bad, reason in (
        ({"type": "mdev"}, "BAD_WQ_TYPE"),
        ({"group_id": 4}, "BAD_GROUP_ID"),
        ({"name": " x"}, "BAD_WQ_NAME"),
    ):
        with pytest.raises(InvalidArgument) as e:
            f.accel.configure_wq(j, "dsa0", 0, bad)
        assert e.value.reason == reason
    assert f.folded_equals_model()


def test_group_rules_follow_sysfs_c():
    f = Fab()
    j = f.j()
    # Engines and read buffers change only with the device disabled (-EPERM).
    with pytest.raises(FailedPrecondition) as e:
        f.accel.configure_group(j, "dsa0", 1, engines=[0])
    assert e.value.reason == "DEVICE_ENABLED"
    # A WQ moves only while it is disabled (wq_group_id_store: -EPERM).
    with pytest.raises(FailedPrecondition) as e:
        f.accel.configure_group(j, "dsa0", 1, wqs=[0])
    assert e.value.reason == "WQ_ENABLED"
    for w in (0, 1):
        f.accel.set_wq_enabled(j, "dsa0", w, False)
    f.accel.set_device_enabled(j, "dsa0", False)
    f.accel.configure_group(j, "dsa0", 0, engines=[0, 1, 2])
    # read_buffers_allowed: at least 4 per engine of the group (12 here), at most what is free.
    with pytest.raises(InvalidArgument) as e:
        f.accel.configure_group(j, "dsa0", 0, read_buffers_allowed=8)
    assert e.value.reason == "BAD_READ_BUFFERS_ALLOWED"
    f.accel.configure_group(j, "dsa0", 0, read_buffers_allowed=12, read_buffers_reserved=90)
    # read_buffers_reserved: within what the other groups leave of total_rdbufs (96).
    with pytest.raises(InvalidArgument) as e:
        f.accel.configure_group(j, "dsa0", 1, read_buffers_reserved=7)
    assert e.value.reason == "BAD_READ_BUFFERS_RESERVED"
    # use_read_buffer_limit needs the device's read_buffer_limit (-EPERM otherwise).
    with pytest.raises(FailedPrecondition) as e:
        f.accel.configure_group(j, "dsa0", 0, use_read_buffer_limit=True)
    assert e.value.reason == "NO_READ_BUFFER_LIMIT"
    f.accel.configure_device(j, "dsa0", 16)
    f.accel.configure_group(j, "dsa0", 0, use_read_buffer_limit=True)
    with pytest.raises(NotFound):
        f.accel.configure_group(j, "dsa0", 4)
    with pytest.raises(NotFound):
        f.accel.configure_group(j, "dsa0", 0, engines=[4])
    assert f.dev.group_engines(0) == [0, 1, 2] and f.dev.groups[0].read_buffers_reserved == 90
    assert f.folded_equals_model()


def test_a_refused_group_change_changes_nothing():
    f = Fab()
    j = f.j()
    for w in (0, 1):
        f.accel.set_wq_enabled(j, "dsa0", w, False)
    f.accel.set_device_enabled(j, "dsa0", False)
    before = export_state(f.fab)
    n = len(f.transitions)
    with pytest.raises(InvalidArgument):
        f.accel.configure_group(j, "dsa0", 0, engines=[0, 1, 2, 3], wqs=[0, 1], read_buffers_allowed=4)
    assert export_state(f.fab) == before and len(f.transitions) == n


def test_device_disable_is_refused_while_a_wq_file_is_open():
    dsa = Dsa()
    with pytest.raises(FailedPrecondition) as e:
        dsa.fab.accel.set_device_enabled(dsa.j, "dsa0", False)
    assert e.value.reason == "WQ_BUSY"


def test_only_a_user_wq_can_be_opened():
    f = Fab()
    j = f.j()
    f.accel.set_wq_enabled(j, "dsa0", 0, False)
    f.accel.configure_wq(j, "dsa0", 0, {"type": "kernel", "name": "dmaengine"})
    f.accel.set_wq_enabled(j, "dsa0", 0, True)
    k = f.fab.kernel
    proc = k.create_process(f.fab.journal(), "app")
    with pytest.raises(FailedPrecondition) as e:
        k.open_wq(f.fab.journal(), proc.pid, "dsa0", 0)
    assert e.value.reason == "WQ_NOT_USER"


def test_split_groups_dispatch_each_wq_on_its_own_engines():
    f = Fab()
    _split(f)
    k = f.fab.kernel
    j = f.fab.journal()
    proc = k.create_process(j, "app")
    tid = proc.tids[0]
    k.schedule(j, tid, 0)
    buf = k.mmap(j, proc.pid, 8 * 4096, True, True).start
    portal0 = k.open_wq(j, proc.pid, "dsa0", 0)[0]
    k.open_wq(j, proc.pid, "dsa0", 1)
    off1 = idxd_get_wq_portal_full_offset(1, 1)
    for i in range(6):
        d = idxd.DsaHwDesc(
            opcode=Op.MEMMOVE,
            flags=CR,
            completion_addr=buf + 32 * i,
            src_addr=buf + 4096,
            dst_addr=buf + 8192,
            xfer_size=4096,
        )
        k.enqcmd(j, tid, portal0, idxd.pack_desc(d))
        d.completion_addr = buf + 1024 + 32 * i
        f.accel.submit(j, "dsa0", off1, idxd.pack_desc(d), "movdir64b", f.dev.now)
    f.accel.advance(j, "dsa0", 0)
    by_wq: dict[int, set[int]] = {0: set(), 1: set()}
    for t in f.transitions:
        if t.kind == "desc.complete" and t.after:
            by_wq[t.after["wq"]].add(t.after["engine"])
    assert by_wq[0] <= {0, 1} and by_wq[1] <= {2, 3} and by_wq[0] and by_wq[1]
    assert f.folded_equals_model()
