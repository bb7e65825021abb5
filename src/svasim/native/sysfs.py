"""The idxd driver's sysfs and /dev/dsa, generated from the accel service.

Models ``drivers/dma/idxd/sysfs.c`` (the attribute shows and stores) and the driver
core's ``bind``/``unbind`` on the dsa bus, over a directory tree that the preload
library shows a program in place of ``/sys/bus/dsa``, ``/sys/module/idxd`` and
``/dev/dsa``. Everything the device and its driver hold is the accel service's, read
from ListDevices and changed through its API: the capability registers (gen_cap, op_cap,
max_groups, max_engines, max_work_queues ...), the device's state and
read_buffer_limit (EnableDevice, DisableDevice, ConfigureDevice), the groups and
engines (ConfigureGroup), and each WQ's WQCFG, type, name, driver_name and group
(ConfigureWorkQueue, EnableWorkQueue, DisableWorkQueue). What is left here is what
only the kernel's driver model holds: which driver a WQ is bound through, the last
command status, a WQ's ENQCMDS retry count and its ATS-disable flag (the device has no
WQ ATS support, so the flag reaches no WQCFG).
"""

from __future__ import annotations

import errno
import functools
import os
import re
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from svasim_api.accel.v1 import accel_pb2
from svasim_api.errors import SvasimError

#: IDXD_MAX_OPCAP_BITS: op_cap and op_config are shown as a 256-bit bitmap.
OPCAP_BITS = 256
#: WQ_NAME_SIZE in drivers/dma/idxd/idxd.h.
WQ_NAME_SIZE = 1024
#: IDXD_ENQCMDS_MAX_RETRIES.
ENQCMDS_MAX_RETRIES = 64
#: The character-device major the tree shows (any free dynamic major on a real host).
CDEV_MAJOR = 236
#: WQ types the driver knows (idxd_wq_type_names).
WQ_TYPES = ("none", "kernel", "user")
#: The traffic classes are configurable only past DEVICE_VERSION_2 (registers.h), or
#: with the idxd module's tc_override parameter, which this driver does not have.

#: The ``cmd_status`` the driver leaves when the fabric refuses a bind, by the fabric's
#: reason: the IDXD_SCMD_* software codes of include/uapi/linux/idxd.h, and for a group
#: without engines the device's Enable Device error (IDXD_CMDSTS_ERR_GRP_CONFIG,
#: registers.h; which of the four GRP_CONFIG codes is UNVERIFIED).
CMD_STATUS = {
    "DEVICE_ENABLED": 0x80000010,
    "DEVICE_NOT_ENABLED": 0x80000020,
    "WQ_NO_GROUP": 0x80030000,
    "WQ_NO_NAME": 0x80040000,
    "WQ_NO_THRESHOLD": 0x80060000,
    "NO_WQ_CONFIGURED": 0x800D0000,
    "WQ_NO_SIZE": 0x800E0000,
    "GROUP_WITHOUT_ENGINES": 0x15,
}
#: Refusals of a bind that drv_enable_wq() and idxd_device_drv_probe() return as -ENXIO.
ENABLE_REFUSALS = frozenset(CMD_STATUS) | {"NO_ENGINE_CONFIGURED", "WQ_NO_PRIORITY", "WQ_NO_TYPE"}


def bitmap_str(value: int, nbits: int = OPCAP_BITS) -> str:
    """The kernel's ``%*pb``: 32-bit chunks in hex, most significant first, comma-separated."""
    chunks = [(value >> shift) & 0xFFFFFFFF for shift in range(nbits - 32, -1, -32)]
    return ",".join(f"{c:08x}" for c in chunks)


def bitmap_parse(text: str, nbits: int = OPCAP_BITS) -> int:
    """``bitmap_parse()``: comma-separated hex chunks of 32 bits; ValueError otherwise."""
    text = text.strip()
    if not text:
        raise ValueError("empty bitmap")
    value = 0
    for chunk in text.split(","):
        if not re.fullmatch(r"[0-9a-fA-F]{1,8}", chunk):
            raise ValueError(f"bad bitmap chunk {chunk!r}")
        value = (value << 32) | int(chunk, 16)
    if value >> nbits:
        raise ValueError("bitmap wider than the device's")
    return value


def kstrtobool(text: str) -> bool:
    """The kernel's ``kstrtobool``: y/Y/1/on are true, n/N/0/off false."""
    t = text.strip().lower()
    if t[:1] in ("y", "1") or t == "on":
        return True
    if t[:1] in ("n", "0") or t == "off":
        return False
    raise ValueError(f"not a boolean: {text!r}")


def kstrtoint(text: str) -> int:
    """The kernel's ``kstrto*`` with base 0 (decimal, 0x hex, 0 octal); ValueError otherwise."""
    m = re.fullmatch(r"([-+]?)(?:0[xX]([0-9a-fA-F]+)|(0[0-7]*)|([1-9][0-9]*))", text.strip())
    if not m:
        raise ValueError(f"not a number: {text!r}")
    sign, hexa, octal, dec = m.groups()
    value = int(hexa, 16) if hexa else int(octal, 8) if octal else int(dec)
    return -value if sign == "-" else value


def roundup_pow_of_two(n: int) -> int:
    """The kernel's ``roundup_pow_of_two`` (n >= 1)."""
    return 1 << (n - 1).bit_length()


class StoreError(OSError):
    """A refused attribute store: the errno the write(2) returns."""

    def __init__(self, err: int, why: str) -> None:
        super().__init__(err, f"{os.strerror(err)}: {why}")


def errno_of(e: SvasimError) -> int:
    """The errno the idxd driver returns where the fabric refuses."""
    code = e.code.name
    if code == "INVALID_ARGUMENT":
        return errno.EINVAL
    if code == "NOT_FOUND":
        return errno.ENODEV
    if code == "RESOURCE_EXHAUSTED":
        return errno.ENOSPC
    if code == "FAILED_PRECONDITION":
        if e.reason == "WQ_DISABLED":
            return errno.ENXIO
        if "BUSY" in e.reason:
            return errno.EBUSY
        return errno.EPERM
    return errno.EIO


@dataclass
class WqDriverState:
    """What the kernel's driver model keeps of a WQ that the device does not."""

    enqcmds_retries: int = 32
    #: WQ_FLAG_ATS_DISABLE: stored, but reaches no WQCFG (WQCAP wq_ats_support is 0).
    ats_disable: bool = False
    #: The driver the WQ is bound to now ("" while disabled).
    bound: str = ""


@dataclass
class DeviceDriverState:
    """What the driver keeps of a device beyond the accel service: the last command
    status and its WQs' driver state."""

    cmd_status: int = 0
    wqs: dict[int, WqDriverState] = field(default_factory=dict)


def device_dir(index: int, name: str) -> str:
    """Where a device sits under /sys/devices (a PCI function per device)."""
    return f"/sys/devices/pci0000:00/0000:00:{index + 1:02x}.0/{name}"


def _opcap(caps: accel_pb2.DeviceCapabilities) -> int:
    return sum(w << (64 * i) for i, w in enumerate(caps.op_cap))


class IdxdSysfs:
    """The tree of one fabric's devices, and the driver behind its attribute stores.

    ``fabric`` is a :class:`svasim_client.Client`; calls into it are made under the
    caller's lock (the bridge serialises requests).
    """

    #: The dsa bus's drivers: the idxd device driver, the user (character device) and
    #: dmaengine (kernel) WQ drivers, and "dsa", the old generic driver.
    DRIVERS = ("dsa", "idxd", "user", "dmaengine")

    def __init__(self, root: Path, fabric: Any) -> None:
        self.root = root
        self.fabric = fabric
        self.state: dict[str, DeviceDriverState] = {}
        self._lock = threading.RLock()
        self._devices: list[accel_pb2.Device] = []

    # -- reading the fabric -------------------------------------------------------------
    def refresh(self) -> None:
        """Read the devices from the accel service and rewrite the tree."""
        with self._lock:
            self._devices = self.fabric.devices()
            for dev in self._devices:
                st = self.state.setdefault(dev.name, DeviceDriverState())
                for wq in dev.wqs:
                    ws = st.wqs.setdefault(wq.id, WqDriverState())
                    if not wq.enabled:
                        ws.bound = ""
                    elif not ws.bound:
                        # Enabled through the API: bound as its type's driver would bind it.
                        ws.bound = "dmaengine" if wq.type == "kernel" else "user"
            self._render()

    def device(self, name: str) -> accel_pb2.Device:
        """A device as last read."""
        for dev in self._devices:
            if dev.name == name:
                return dev
        raise StoreError(errno.ENODEV, f"no device {name}")

    def wq(self, device: str, wq_id: int) -> accel_pb2.WorkQueue:
        """A WQ as last read."""
        for wq in self.device(device).wqs:
            if wq.id == wq_id:
                return wq
        raise StoreError(errno.ENODEV, f"{device} has no wq {wq_id}")

    def wq_openable(self, device: str, wq_id: int) -> bool:
        """Whether /dev/dsa/wqD.Q exists: the WQ is enabled and a user WQ."""
        with self._lock:
            try:
                wq = self.wq(device, wq_id)
            except StoreError:
                return False
            return wq.enabled and wq.type == "user"

    # -- the tree -------------------------------------------------------------------------
    def _device_attrs(self, i: int, dev: accel_pb2.Device) -> dict[str, str]:
        st = self.state[dev.name]
        caps = dev.capabilities
        f = caps.fields
        # idxd_device_attr_event_log_size_invisible(): only with GENCAP evl_support.
        evl = {"event_log_size": str(dev.evl_size)} if f["gen_cap.evl_support"] else {}
        return {
            **evl,
            "version": f"{caps.version:#x}",
            "max_groups": str(len(dev.groups)),
            "max_work_queues": str(len(dev.wqs)),
            "max_engines": str(dev.engines),
            "max_work_queues_size": str(dev.total_wq_size),
            "numa_node": "-1",
            "ims_size": "0",
            "max_batch_size": str(caps.max_batch_size),
            "max_transfer_size": str(caps.max_transfer_size),
            "op_cap": bitmap_str(_opcap(caps)),
            "gen_cap": f"{caps.gen_cap:#x}",
            "configurable": str(f["gen_cap.config_en"]),
            "pasid_enabled": str(int(caps.pasid_support)),
            "max_tokens": str(f["group_cap.total_rdbufs"]),
            "max_read_buffers": str(f["group_cap.total_rdbufs"]),
            "token_limit": str(dev.read_buffer_limit),
            "read_buffer_limit": str(dev.read_buffer_limit),
            "cdev_major": str(CDEV_MAJOR),
            "state": "enabled" if dev.enabled else "disabled",
            "clients": str(sum(w.clients for w in dev.wqs)),
            "cmd_status": f"{st.cmd_status:#x}",
            "errors": " ".join(f"{0:#018x}" for _ in range(4)),
        }

    def _wq_attrs(self, dev: accel_pb2.Device, wq: accel_pb2.WorkQueue) -> dict[str, str]:
        ws = self.state[dev.name].wqs[wq.id]
        user = wq.enabled and wq.type == "user"
        return {
            "clients": str(wq.clients),
            "state": "enabled" if wq.enabled else "disabled",
            "group_id": str(wq.group_id),
            "size": str(wq.size),
            "priority": str(wq.priority),
            "block_on_fault": str(int(wq.block_on_fault)),
            "threshold": str(wq.threshold),
            "type": wq.type,
            "name": wq.name,
            "driver_name": wq.driver_name,
            "cdev_minor": str(wq.id) if user else "-1",
            "max_transfer_size": str(1 << wq.max_xfer_shift),
            "max_batch_size": str(1 << wq.max_batch_shift),
            "mode": "dedicated" if wq.mode == accel_pb2.WQ_MODE_DEDICATED else "shared",
            "op_config": bitmap_str(wq.op_config),
            "occupancy": str(wq.occupancy),
            "enqcmds_retries": str(ws.enqcmds_retries),
            "ats_disable": str(int(ws.ats_disable)),
            "prs_disable": str(int(wq.prs_disable)),
        }

    def _group_attrs(self, dev: accel_pb2.Device, g: accel_pb2.Group) -> dict[str, str]:
        n = dev.name.removeprefix("dsa")
        out = {
            "engines": " ".join(f"engine{n}.{e}" for e in g.engine_ids),
            "work_queues": " ".join(f"wq{n}.{w}" for w in g.wq_ids),
            "read_buffers_reserved": str(g.read_buffers_reserved),
            "read_buffers_allowed": str(g.read_buffers_allowed),
            "use_read_buffer_limit": str(int(g.use_read_buffer_limit)),
            "tokens_reserved": str(g.read_buffers_reserved),
            "tokens_allowed": str(g.read_buffers_allowed),
            "use_token_limit": str(int(g.use_read_buffer_limit)),
            "traffic_class_a": str(g.traffic_class_a),
            "traffic_class_b": str(g.traffic_class_b),
        }
        # idxd_group_attr_progress_limit_invisible(): only with GRPCAP progress_limit.
        if dev.capabilities.fields["group_cap.progress_limit"]:
            out["desc_progress_limit"] = "0"
            out["batch_progress_limit"] = "0"
        return out

    def _render(self) -> None:
        files: dict[str, str] = {}
        links: dict[str, str] = {}
        devnodes: set[str] = set()
        bound: dict[str, list[str]] = {d: [] for d in self.DRIVERS}
        for drv in self.DRIVERS:
            files[f"/sys/bus/dsa/drivers/{drv}/bind"] = ""
            files[f"/sys/bus/dsa/drivers/{drv}/unbind"] = ""
        files["/sys/module/idxd/initstate"] = "live"
        for i, dev in enumerate(self._devices):
            st = self.state[dev.name]
            n = dev.name.removeprefix("dsa")
            base = device_dir(i, dev.name)
            for k, v in self._device_attrs(i, dev).items():
                files[f"{base}/{k}"] = v
            links[f"/sys/bus/dsa/devices/{dev.name}"] = base
            if dev.enabled:
                bound["idxd"].append(base)
                links[f"{base}/driver"] = "/sys/bus/dsa/drivers/idxd"
            for wq in dev.wqs:
                wdir = f"{base}/wq{n}.{wq.id}"
                for k, v in self._wq_attrs(dev, wq).items():
                    files[f"{wdir}/{k}"] = v
                links[f"/sys/bus/dsa/devices/wq{n}.{wq.id}"] = wdir
                ws = st.wqs[wq.id]
                if wq.enabled:
                    drv = ws.bound or "user"
                    bound[drv].append(wdir)
                    links[f"{wdir}/driver"] = f"/sys/bus/dsa/drivers/{drv}"
                    if wq.type == "user":
                        devnodes.add(f"/dev/dsa/wq{n}.{wq.id}")
            for eng in dev.engine_list:
                edir = f"{base}/engine{n}.{eng.id}"
                files[f"{edir}/group_id"] = str(eng.group_id)
                links[f"/sys/bus/dsa/devices/engine{n}.{eng.id}"] = edir
            for g in dev.groups:
                gdir = f"{base}/group{n}.{g.id}"
                for k, v in self._group_attrs(dev, g).items():
                    files[f"{gdir}/{k}"] = v
                links[f"/sys/bus/dsa/devices/group{n}.{g.id}"] = gdir
        for drv, targets in bound.items():
            for t in targets:
                links[f"/sys/bus/dsa/drivers/{drv}/{t.rsplit('/', 1)[1]}"] = t
        self._write_tree(files, links, devnodes)

    def _write_tree(self, files: dict[str, str], links: dict[str, str], devnodes: set[str]) -> None:
        root = self.root
        for path, text in files.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            body = text + "\n"
            try:
                if p.read_text() == body:
                    continue
            except FileNotFoundError:
                pass
            # A reader never sees half a value: write aside, then rename over.
            tmp = p.with_name(f".{p.name}.tmp")
            tmp.write_text(body)
            os.replace(tmp, p)
        for path, target in links.items():
            p = root / path.lstrip("/")
            p.parent.mkdir(parents=True, exist_ok=True)
            rel = os.path.relpath(root / target.lstrip("/"), p.parent)
            if p.is_symlink() and os.readlink(p) == rel:
                continue
            if p.is_symlink():
                p.unlink()
            p.symlink_to(rel)
        # Links that no longer hold (a driver unbound): the sysfs entries go away.
        dirs = [root / "sys/bus/dsa/drivers", *root.glob("sys/devices/*/*/dsa*"), *root.glob("sys/devices/*/*/dsa*/*")]
        for d in dirs:
            if not d.is_dir() or d.is_symlink():
                continue
            for p in d.iterdir():
                if p.is_symlink() and "/" + str(p.relative_to(root)) not in links:
                    p.unlink()
        dev = root / "dev/dsa"
        dev.mkdir(parents=True, exist_ok=True)
        for node in devnodes:
            p = root / node.lstrip("/")
            if not p.exists():
                p.touch(mode=0o666)
        for p in dev.iterdir():
            if "/" + str(p.relative_to(root)) not in devnodes:
                p.unlink()

    # -- stores -------------------------------------------------------------------------
    def store(self, path: str, value: bytes) -> int:
        """A write(2) of ``value`` to the attribute at ``path`` (inside the tree): the
        driver's store, through the fabric. Returns the bytes taken; StoreError otherwise.
        """
        with self._lock:
            text = value.decode(errors="replace")
            try:
                self._store(path, text)
            finally:
                self.refresh()
            return len(value)

    def _store(self, path: str, text: str) -> None:
        m = re.fullmatch(r"/sys/bus/dsa/drivers/([^/]+)/(bind|unbind)", path)
        if m:
            return self._bind(m.group(1), m.group(2) == "bind", text.strip())
        m = re.fullmatch(r"/sys/devices/[^/]+/[^/]+/(dsa\d+)(?:/(wq|group|engine)\d+\.(\d+))?/([^/]+)", path)
        if not m:
            raise StoreError(errno.EACCES, f"{path} is not a writable attribute")
        dev_name, kind, idx, attr = m.groups()
        self.device(dev_name)
        if kind == "wq":
            return self._store_wq(dev_name, int(idx), attr, text)
        if kind == "group":
            return self._store_group(dev_name, int(idx), attr, text)
        if kind == "engine":
            return self._store_engine(dev_name, int(idx), attr, text)
        return self._store_device(dev_name, attr, text)

    def _store_device(self, dev: str, attr: str, text: str) -> None:
        st = self.state[dev]
        if attr == "cmd_status":
            st.cmd_status = 0
        elif attr == "event_log_size" and self.device(dev).capabilities.fields["gen_cap.evl_support"]:
            # event_log_size_store(): kstrtoul base 10; the fabric checks the rest.
            size = _number(text)
            if size < 0:
                raise StoreError(errno.EINVAL, f"event_log_size {size} is negative")
            request = accel_pb2.SetEventLogSizeRequest(device=dev, size=size)
            self._fabric(lambda: self._rpc(self.fabric.accel.SetEventLogSize, request))
        elif attr in ("token_limit", "read_buffer_limit"):
            # read_buffer_limit_store(): kstrtoul; the fabric refuses an enabled device
            # (-EPERM) and a limit beyond total_rdbufs (-EINVAL).
            val = _number(text)
            if val < 0:
                raise StoreError(errno.EINVAL, f"{attr} {val} is negative")
            self._fabric(lambda: self.fabric.configure_device(dev, read_buffer_limit=val))
        else:
            raise StoreError(errno.EACCES, f"{dev}/{attr} is read-only")

    def _store_group(self, dev: str, g: int, attr: str, text: str) -> None:
        device = self.device(dev)
        if not 0 <= g < len(device.groups):
            raise StoreError(errno.ENODEV, f"{dev} has no group {g}")
        names = {
            "tokens_reserved": "read_buffers_reserved",
            "read_buffers_reserved": "read_buffers_reserved",
            "tokens_allowed": "read_buffers_allowed",
            "read_buffers_allowed": "read_buffers_allowed",
            "use_token_limit": "use_read_buffer_limit",
            "use_read_buffer_limit": "use_read_buffer_limit",
        }
        if attr in ("traffic_class_a", "traffic_class_b"):
            # group_traffic_class_*_store(): -EPERM while enabled, and on a device before
            # version 2 without tc_override.
            _number(text)
            raise StoreError(errno.EPERM, f"{attr} is fixed on {dev} (version {device.capabilities.version:#x})")
        if attr not in names:
            raise StoreError(errno.EACCES, f"group attribute {attr} is read-only")
        val = _number(text)
        if val < 0:  # kstrtoul
            raise StoreError(errno.EINVAL, f"{attr} {val} is negative")
        key = names[attr]
        value: int | bool = bool(val) if key == "use_read_buffer_limit" else val
        self._fabric(lambda: self.fabric.configure_group(dev, g, **{key: value}))

    def _store_engine(self, dev: str, eng: int, attr: str, text: str) -> None:
        device = self.device(dev)
        if attr != "group_id":
            raise StoreError(errno.EACCES, f"engine attribute {attr} is read-only")
        engines = {e.id: e.group_id for e in device.engine_list}
        if eng not in engines:
            raise StoreError(errno.ENODEV, f"{dev} has no engine {eng}")
        g = _number(text)
        # engine_group_id_store(): -1..max_groups-1.
        if not -1 <= g < len(device.groups):
            raise StoreError(errno.EINVAL, f"group {g} is not -1..{len(device.groups) - 1}")
        old = engines[eng]
        if g == old:
            return
        if g >= 0:
            members = sorted({e for e, eg in engines.items() if eg == g} | {eng})
            self._fabric(lambda: self.fabric.configure_group(dev, g, engines=members))
        else:
            members = sorted(e for e, eg in engines.items() if eg == old and e != eng)
            self._fabric(lambda: self.fabric.configure_group(dev, old, engines=members))

    def _store_wq(self, dev: str, wq_id: int, attr: str, text: str) -> None:
        wq = self.wq(dev, wq_id)
        ws = self.state[dev].wqs[wq_id]
        device = self.device(dev)
        read_only = ("clients", "state", "cdev_minor", "occupancy")
        if attr in read_only:
            raise StoreError(errno.EACCES, f"wq attribute {attr} is read-only")
        if attr == "enqcmds_retries":
            if wq.mode == accel_pb2.WQ_MODE_DEDICATED:
                raise StoreError(errno.EOPNOTSUPP, "a dedicated WQ has no ENQCMDS retries")
            ws.enqcmds_retries = min(_number(text), ENQCMDS_MAX_RETRIES)
            return
        # Every other store of sysfs.c refuses while the WQ is not disabled.
        if wq.enabled:
            raise StoreError(errno.EPERM, f"wq{dev.removeprefix('dsa')}.{wq_id} is enabled")
        if attr == "group_id":
            g = _number(text)
            if not -1 <= g < len(device.groups):
                raise StoreError(errno.EINVAL, f"group {g} is not -1..{len(device.groups) - 1}")
            self._configure(dev, wq_id, group_id=g)
        elif attr == "type":
            t = text.removesuffix("\n")  # sysfs_streq()
            if t not in WQ_TYPES:
                raise StoreError(errno.EINVAL, f"wq type {t!r} is not one of {', '.join(WQ_TYPES)}")
            self._configure(dev, wq_id, type=t)
        elif attr == "name":
            if not text or len(text) > WQ_NAME_SIZE:
                raise StoreError(errno.EINVAL, "a wq name is 1..1024 characters")
            self._configure(dev, wq_id, name=text.strip())  # strim()
        elif attr == "driver_name":
            if not text or len(text) > 128:
                raise StoreError(errno.EINVAL, "a driver name is 1..128 characters")
            self._configure(dev, wq_id, driver_name=text.strip())
        elif attr == "ats_disable":
            ws.ats_disable = _bool(text)
        elif attr == "prs_disable":
            if _bool(text):
                # wq_prs_disable_store(): PRS disabled takes block on fault off with it.
                self._configure(dev, wq_id, prs_disable=True, block_on_fault=False)
            else:
                self._configure(dev, wq_id, prs_disable=False)
        elif attr == "mode":
            mode = text.strip()
            if mode not in ("shared", "dedicated"):
                raise StoreError(errno.EINVAL, f"mode {mode!r} is not shared or dedicated")
            self._configure(
                dev,
                wq_id,
                mode=accel_pb2.WQ_MODE_SHARED if mode == "shared" else accel_pb2.WQ_MODE_DEDICATED,
            )
        elif attr == "size":
            size = _number(text)
            others = sum(w.size for w in device.wqs if w.id != wq_id)
            if size < 0 or size + others > device.total_wq_size:
                raise StoreError(errno.EINVAL, f"size {size} with {others} claimed exceeds {device.total_wq_size}")
            # sysfs.c leaves wq_thresh as it is; the fabric keeps it within wq_size, so a
            # threshold above the new size comes down with it.
            if wq.threshold > size:
                self._configure(dev, wq_id, size=size, threshold=size)
            else:
                self._configure(dev, wq_id, size=size)
        elif attr == "priority":
            prio = _number(text)
            if not 0 < prio <= 15:
                raise StoreError(errno.EINVAL, f"priority {prio} is not 1..15")
            self._configure(dev, wq_id, priority=prio)
        elif attr == "block_on_fault":
            bof = _bool(text)
            if bof and wq.prs_disable:
                raise StoreError(errno.EOPNOTSUPP, "block on fault needs page requests (prs_disable is set)")
            self._configure(dev, wq_id, block_on_fault=bof)
        elif attr == "threshold":
            thresh = _number(text)
            if thresh > wq.size or thresh <= 0 or wq.mode == accel_pb2.WQ_MODE_DEDICATED:
                raise StoreError(errno.EINVAL, f"threshold {thresh} needs a shared WQ and 1..size {wq.size}")
            self._configure(dev, wq_id, threshold=thresh)
        elif attr in ("max_transfer_size", "max_batch_size"):
            val = _number(text)
            cap = int(self._device_attrs(0, device)[attr])
            if val <= 0 or roundup_pow_of_two(val) > cap:
                raise StoreError(errno.EINVAL, f"{attr} {val} is not 1..{cap}")
            shift = roundup_pow_of_two(val).bit_length() - 1
            key = "max_xfer_shift" if attr == "max_transfer_size" else "max_batch_shift"
            self._configure(dev, wq_id, **{key: shift})
        elif attr == "op_config":
            try:
                ops = bitmap_parse(text)
            except ValueError as e:
                raise StoreError(errno.EINVAL, str(e)) from None
            if ops & ~device.opcap:
                raise StoreError(errno.EINVAL, "op_config names operations outside op_cap")
            self._configure(dev, wq_id, op_config=ops)
        else:
            raise StoreError(errno.EACCES, f"no wq attribute {attr}")

    @staticmethod
    def _rpc(method: Callable[..., Any], request: Any) -> Any:
        """A stub call, its failure as the client's SvasimError."""
        import grpc

        try:
            return method(request)
        except grpc.RpcError as e:
            raise SvasimError.from_rpc_error(e) from None

    def _configure(self, dev: str, wq_id: int, **fields: Any) -> None:
        self._fabric(lambda: self.fabric.configure_wq(dev, wq_id, **fields))

    def _fabric(self, call: Callable[[], Any], dev: str = "") -> Any:
        """Call the fabric; a refusal is the errno the driver returns (and, for a refused
        enable, the command status it leaves in ``dev``'s cmd_status)."""
        try:
            return call()
        except SvasimError as e:
            if dev and e.reason in ENABLE_REFUSALS:
                self.state[dev].cmd_status = CMD_STATUS.get(e.reason, 0)
                raise StoreError(errno.ENXIO, e.message or e.reason) from None
            raise StoreError(errno_of(e), e.message or e.reason) from None

    def _bind(self, drv: str, bind: bool, name: str) -> None:
        if drv not in self.DRIVERS:
            raise StoreError(errno.ENODEV, f"no driver {drv}")
        m = re.fullmatch(r"(dsa\d+)|wq(\d+)\.(\d+)", name)
        if not m:
            raise StoreError(errno.ENODEV, f"no device {name!r} on the dsa bus")
        if m.group(1):
            return self._bind_device(m.group(1), bind)
        dev, wq_id = f"dsa{m.group(2)}", int(m.group(3))
        wq = self.wq(dev, wq_id)
        ws = self.state[dev].wqs[wq_id]
        if bind:
            if wq.enabled:
                raise StoreError(errno.EBUSY, f"{name} is already bound")
            # The dsa bus matches a WQ to a driver by its type (idxd_user_drv for user
            # WQs, idxd_dmaengine_drv for kernel ones) and by the driver_name it names
            # ("dsa", the old generic driver, takes any typed WQ).
            wanted = {"user": "user", "kernel": "dmaengine"}.get(wq.type)
            if wanted is None or (drv not in ("dsa", wanted)):
                raise StoreError(errno.ENODEV, f"{name} of type {wq.type} does not match driver {drv}")
            if drv != "dsa" and wq.driver_name and wq.driver_name != drv:
                raise StoreError(errno.ENODEV, f"{name} names driver {wq.driver_name}, not {drv}")
            # drv_enable_wq(): the fabric checks the device, the group, the name ...
            self._fabric(lambda: self.fabric.enable_wq(dev, wq_id), dev)
            ws.bound = drv
            self.state[dev].cmd_status = 0
        else:
            if not wq.enabled:
                raise StoreError(errno.ENODEV, f"{name} is not bound")
            self._fabric(lambda: self.fabric.disable_wq(dev, wq_id))
            ws.bound = ""

    def _bind_device(self, dev: str, bind: bool) -> None:
        st = self.state[dev]
        device = self.device(dev)
        if bind:
            if device.enabled:
                raise StoreError(errno.EBUSY, f"{dev} is already bound")
            # idxd_device_drv_probe(): the fabric checks the groups (idxd_device_config()
            # and the device's Enable Device).
            self._fabric(functools.partial(self.fabric.enable_device, dev), dev)
            st.cmd_status = 0
        else:
            if not device.enabled:
                raise StoreError(errno.ENODEV, f"{dev} is not bound")
            # idxd_device_drv_remove(): the WQs are released and the device reset, which
            # clears its configuration (the fabric's DisableDevice does all of it).
            self._fabric(functools.partial(self.fabric.disable_device, dev))
            for ws in st.wqs.values():
                ws.bound = ""


def _number(text: str) -> int:
    try:
        return kstrtoint(text)
    except ValueError as e:
        raise StoreError(errno.EINVAL, str(e)) from None


def _bool(text: str) -> bool:
    try:
        return kstrtobool(text)
    except ValueError as e:
        raise StoreError(errno.EINVAL, str(e)) from None
