"""The idxd sysfs the bridge generates: formats as the kernel prints them, and the
driver's store rules (drivers/dma/idxd/sysfs.c) applied through the fabric."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from svasim.native.sysfs import IdxdSysfs, StoreError, bitmap_parse, bitmap_str, kstrtobool, kstrtoint
from svasim_api.accel.v1 import accel_pb2
from svasim_client import Client

DEV = "/sys/devices/pci0000:00/0000:00:01.0/dsa0"


def test_bitmaps_print_as_the_kernels_pb() -> None:
    # %*pb of a 256-bit bitmap: eight zero-padded 32-bit chunks, most significant first.
    assert bitmap_str(1) == ",".join(["00000000"] * 7 + ["00000001"])
    assert bitmap_str((1 << 32) | 0xF) == ",".join(["00000000"] * 6 + ["00000001", "0000000f"])
    assert bitmap_parse("1,0000000f") == (1 << 32) | 0xF
    assert bitmap_parse(bitmap_str(0x3F03FF)) == 0x3F03FF
    for bad in ("", "xyz", "123456789", ",".join(["1"] * 9)):
        with pytest.raises(ValueError):
            bitmap_parse(bad)


def test_numbers_and_booleans_parse_as_the_kernels_kstrto() -> None:
    assert [kstrtobool(x) for x in ("1", "y", "Y\n", "on", "0", "n", "off")] == [True] * 4 + [False] * 3
    assert [kstrtoint(x) for x in ("16", "0x10", "020", "-1\n")] == [16, 16, 16, -1]
    for bad in ("", "ten", "1.5", "08"):
        with pytest.raises(ValueError):
            kstrtoint(bad)


@pytest.fixture
def sysfs(fabric: Client, tmp_path: Path) -> IdxdSysfs:
    s = IdxdSysfs(tmp_path / "root", fabric)
    s.refresh()
    return s


def _read(s: IdxdSysfs, path: str) -> str:
    return (s.root / path.lstrip("/")).read_text().rstrip("\n")


def _refused(s: IdxdSysfs, path: str, value: str) -> int:
    with pytest.raises(StoreError) as e:
        s.store(path, value.encode())
    return e.value.errno


def test_attributes_show_what_the_accel_service_holds(sysfs: IdxdSysfs, fabric: Client) -> None:
    (dev,) = fabric.devices()
    assert _read(sysfs, f"{DEV}/op_cap") == bitmap_str(dev.opcap)
    assert _read(sysfs, f"{DEV}/max_work_queues_size") == str(dev.total_wq_size)
    assert _read(sysfs, f"{DEV}/max_engines") == str(dev.engines)
    for wq in dev.wqs:
        d = f"{DEV}/wq0.{wq.id}"
        assert _read(sysfs, f"{d}/mode") == ("dedicated" if wq.mode == accel_pb2.WQ_MODE_DEDICATED else "shared")
        assert _read(sysfs, f"{d}/max_transfer_size") == str(2**wq.max_xfer_shift)
        assert _read(sysfs, f"{d}/max_batch_size") == str(2**wq.max_batch_shift)
        assert _read(sysfs, f"{d}/op_config") == bitmap_str(wq.op_config)
    assert (sysfs.root / "sys/bus/dsa/devices/wq0.0").resolve() == (sysfs.root / DEV.lstrip("/") / "wq0.0")


def test_wq_stores_are_refused_while_enabled_and_checked_when_disabled(sysfs: IdxdSysfs, fabric: Client) -> None:
    wq = f"{DEV}/wq0.0"
    assert _refused(sysfs, f"{wq}/priority", "3") == errno.EPERM
    sysfs.store("/sys/bus/dsa/drivers/user/unbind", b"wq0.0")
    assert _read(sysfs, f"{wq}/state") == "disabled"
    assert _refused(sysfs, f"{wq}/priority", "16") == errno.EINVAL
    assert _refused(sysfs, f"{wq}/size", str(fabric.devices()[0].total_wq_size + 1)) == errno.EINVAL
    assert _refused(sysfs, f"{wq}/type", "mdev2") == errno.EINVAL
    assert _refused(sysfs, f"{wq}/state", "enabled") == errno.EACCES
    assert _refused(sysfs, f"{wq}/op_config", bitmap_str(1 << 255)) == errno.EINVAL
    sysfs.store(f"{wq}/priority", b"3\n")
    sysfs.store(f"{wq}/max_transfer_size", b"3000")
    sysfs.store(f"{wq}/block_on_fault", b"0")
    got = fabric.devices()[0].wqs[0]
    # max_transfer_size is rounded up to a power of two: 3000 -> 4096 = 2^12.
    assert (got.priority, got.max_xfer_shift, got.block_on_fault) == (3, 12, False)
    sysfs.store(f"{wq}/mode", b"dedicated")
    assert fabric.devices()[0].wqs[0].mode == accel_pb2.WQ_MODE_DEDICATED
    # A threshold belongs to a shared WQ only.
    assert _refused(sysfs, f"{wq}/threshold", "2") == errno.EINVAL


def test_bind_needs_a_group_a_type_and_a_name(sysfs: IdxdSysfs, fabric: Client) -> None:
    wq = f"{DEV}/wq0.0"
    sysfs.store("/sys/bus/dsa/drivers/user/unbind", b"wq0.0")
    sysfs.store(f"{wq}/group_id", b"-1")
    # drv_enable_wq(): no group is -ENXIO with IDXD_SCMD_WQ_NO_GRP in cmd_status.
    assert _refused(sysfs, "/sys/bus/dsa/drivers/user/bind", "wq0.0") == errno.ENXIO
    assert int(_read(sysfs, f"{DEV}/cmd_status"), 0) == 0x80030000
    sysfs.store(f"{wq}/group_id", b"0")
    sysfs.store(f"{wq}/type", b"none")
    assert _refused(sysfs, "/sys/bus/dsa/drivers/user/bind", "wq0.0") == errno.ENODEV
    # A new type clears the name (wq_type_store()); without one the bind is refused.
    sysfs.store(f"{wq}/type", b"user")
    assert _read(sysfs, f"{wq}/name") == ""
    assert _refused(sysfs, "/sys/bus/dsa/drivers/user/bind", "wq0.0") == errno.ENXIO
    assert int(_read(sysfs, f"{DEV}/cmd_status"), 0) == 0x80040000  # IDXD_SCMD_WQ_NO_NAME
    sysfs.store(f"{wq}/name", b"app1\n")
    sysfs.store("/sys/bus/dsa/drivers/user/bind", b"wq0.0")
    got = fabric.devices()[0].wqs[0]
    assert got.enabled and (got.type, got.name, got.group_id) == ("user", "app1", 0)
    assert _read(sysfs, f"{DEV}/group0.0/work_queues") == "wq0.0 wq0.1"
    assert (sysfs.root / "dev/dsa/wq0.0").exists()
    assert _refused(sysfs, "/sys/bus/dsa/drivers/user/bind", "wq0.0") == errno.EBUSY
    assert _refused(sysfs, "/sys/bus/dsa/drivers/user/bind", "wq9.9") == errno.ENODEV


def test_device_unbind_resets_the_configuration_and_bind_checks_the_groups(sysfs: IdxdSysfs, fabric: Client) -> None:
    sysfs.store("/sys/bus/dsa/drivers/idxd/unbind", b"dsa0")
    assert _read(sysfs, f"{DEV}/state") == "disabled"
    dev = fabric.devices()[0]
    assert not dev.enabled and not any(w.enabled for w in dev.wqs)
    assert not list((sysfs.root / "dev/dsa").iterdir())
    # idxd_device_clear_state(): no engine and no WQ is in a group any more.
    assert _read(sysfs, f"{DEV}/engine0.0/group_id") == "-1"
    assert _read(sysfs, f"{DEV}/wq0.0/group_id") == "-1" and _read(sysfs, f"{DEV}/wq0.0/type") == "none"
    assert _refused(sysfs, "/sys/bus/dsa/drivers/idxd/bind", "dsa0") == errno.ENXIO
    assert int(_read(sysfs, f"{DEV}/cmd_status"), 0) == 0x800D0000  # IDXD_SCMD_WQ_NONE_CONFIGURED
    # A group with a WQ and no engine: Enable Device fails with a GRPCFG error.
    sysfs.store(f"{DEV}/wq0.0/group_id", b"1")
    sysfs.store(f"{DEV}/wq0.0/size", b"8")
    sysfs.store(f"{DEV}/engine0.0/group_id", b"2")
    assert _refused(sysfs, "/sys/bus/dsa/drivers/idxd/bind", "dsa0") == errno.ENXIO
    assert int(_read(sysfs, f"{DEV}/cmd_status"), 0) == 0x15
    sysfs.store(f"{DEV}/engine0.1/group_id", b"1")
    assert _read(sysfs, f"{DEV}/group0.1/engines") == "engine0.1"
    assert _read(sysfs, f"{DEV}/group0.1/work_queues") == "wq0.0"
    sysfs.store(f"{DEV}/group0.1/read_buffers_allowed", b"8")
    assert fabric.devices()[0].groups[1].read_buffers_allowed == 8
    assert _refused(sysfs, f"{DEV}/group0.1/read_buffers_allowed", "2") == errno.EINVAL  # < 4 per engine
    sysfs.store("/sys/bus/dsa/drivers/idxd/bind", b"dsa0")
    assert _read(sysfs, f"{DEV}/state") == "enabled" and fabric.devices()[0].enabled
    # Group stores are refused while the device is enabled (sysfs.c: -EPERM), engine
    # moves too (the fabric refuses them: the device reads GRPCFG only when enabled).
    assert _refused(sysfs, f"{DEV}/group0.0/read_buffers_reserved", "1") == errno.EPERM
    assert _refused(sysfs, f"{DEV}/engine0.0/group_id", "1") == errno.EPERM
    assert _refused(sysfs, f"{DEV}/group0.0/traffic_class_a", "1") == errno.EPERM
    assert _refused(sysfs, f"{DEV}/read_buffer_limit", "8") == errno.EPERM


def test_device_attributes_come_from_the_capability_registers(sysfs: IdxdSysfs, fabric: Client) -> None:
    (dev,) = fabric.devices()
    caps = dev.capabilities
    assert int(_read(sysfs, f"{DEV}/gen_cap"), 16) == caps.gen_cap
    assert _read(sysfs, f"{DEV}/max_groups") == str(caps.fields["group_cap.num_groups"])
    assert _read(sysfs, f"{DEV}/max_engines") == str(caps.fields["engine_cap.num_engines"])
    assert _read(sysfs, f"{DEV}/max_work_queues") == str(caps.fields["wq_cap.num_wqs"])
    assert _read(sysfs, f"{DEV}/max_read_buffers") == str(caps.fields["group_cap.total_rdbufs"])
    assert _read(sysfs, f"{DEV}/max_transfer_size") == str(caps.max_transfer_size)
    assert sorted(p.name for p in (sysfs.root / DEV.lstrip("/")).glob("group0.*")) == [
        f"group0.{g}" for g in range(len(dev.groups))
    ]
    # GRPCAP progress_limit is 0: the progress-limit attributes are not shown.
    assert not (sysfs.root / DEV.lstrip("/") / "group0.0/desc_progress_limit").exists()


def test_driver_name_picks_the_driver_a_bind_must_come_through(sysfs: IdxdSysfs, fabric: Client) -> None:
    wq = f"{DEV}/wq0.0"
    sysfs.store("/sys/bus/dsa/drivers/user/unbind", b"wq0.0")
    sysfs.store(f"{wq}/driver_name", b"idxd\n")
    assert _read(sysfs, f"{wq}/driver_name") == "idxd"
    assert _refused(sysfs, "/sys/bus/dsa/drivers/user/bind", "wq0.0") == errno.ENODEV
    sysfs.store(f"{wq}/driver_name", b"user")
    sysfs.store("/sys/bus/dsa/drivers/user/bind", b"wq0.0")
    assert fabric.devices()[0].wqs[0].enabled
    assert _refused(sysfs, f"{wq}/driver_name", "user") == errno.EPERM


def test_a_size_below_the_threshold_takes_the_threshold_down_with_it(sysfs: IdxdSysfs, fabric: Client) -> None:
    shared = fabric.devices()[0].wqs[0]
    assert shared.mode == accel_pb2.WQ_MODE_SHARED and shared.threshold > 4
    sysfs.store("/sys/bus/dsa/drivers/user/unbind", b"wq0.0")
    sysfs.store(f"{DEV}/wq0.0/size", b"4")
    got = fabric.devices()[0].wqs[0]
    assert (got.size, got.threshold) == (4, 4)


class _EvlFabric:
    """A fabric whose device has an event log (GENCAP evl_support 1): what the sysfs
    asks of it, recorded."""

    def __init__(self, real: Client) -> None:
        self.real = real
        self.sizes: list[int] = []
        self.accel = self

    def devices(self) -> list[accel_pb2.Device]:
        devs = self.real.devices()
        for d in devs:
            d.capabilities.fields["gen_cap.evl_support"] = 1
            d.evl_size = self.sizes[-1] if self.sizes else 0
        return devs

    def SetEventLogSize(self, request: accel_pb2.SetEventLogSizeRequest) -> accel_pb2.SetEventLogSizeResponse:  # noqa: N802
        self.sizes.append(request.size)
        return accel_pb2.SetEventLogSizeResponse()


def test_event_log_size_is_shown_and_stored_only_with_evl_support(sysfs: IdxdSysfs, fabric: Client, tmp_path: Path):
    # idxd_device_attr_event_log_size_invisible(): no evl_support, no attribute.
    assert not (sysfs.root / DEV.lstrip("/") / "event_log_size").exists()
    assert _refused(sysfs, f"{DEV}/event_log_size", "64") == errno.EACCES
    evl = IdxdSysfs(tmp_path / "evl", _EvlFabric(fabric))
    evl.refresh()
    assert _read(evl, f"{DEV}/event_log_size") == "0"
    evl.store(f"{DEV}/event_log_size", b"256\n")
    assert _read(evl, f"{DEV}/event_log_size") == "256"
    assert _refused(evl, f"{DEV}/event_log_size", "-1") == errno.EINVAL
