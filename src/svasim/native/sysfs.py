"""The idxd driver's sysfs and /dev/dsa, generated from the accel service.

Models ``drivers/dma/idxd/sysfs.c`` (the attribute shows and stores) and the driver
core's ``bind``/``unbind`` on the dsa bus, over a directory tree that the preload
library shows a program in place of ``/sys/bus/dsa``, ``/sys/module/idxd`` and
``/dev/dsa``. What the accel service holds (WQCFG, OPCAP, the WQ's open files, enable)
is read from it and changed through it (ConfigureWorkQueue, EnableWorkQueue,
DisableWorkQueue). What the API does not show is the driver's own state here: the
device's enabled state, WQ type and name, and the groups (GRPCFG: which WQs and engines
belong to which group, tokens, traffic classes); GENCAP is composed from what the API
does show.
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
#: DSA 1.0 has four groups per device (GRPCAP); the API has none, so the driver's count.
MAX_GROUPS = 4
#: WQ_NAME_SIZE in drivers/dma/idxd/idxd.h.
WQ_NAME_SIZE = 1024
#: IDXD_ENQCMDS_MAX_RETRIES.
ENQCMDS_MAX_RETRIES = 64
#: The character-device major the tree shows (any free dynamic major on a real host).
CDEV_MAJOR = 236
#: The idxd version register of a DSA 1.0 device.
DEVICE_VERSION = 0x100
#: WQ types the driver knows (idxd_wq_type_names).
WQ_TYPES = ("none", "kernel", "user")


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
    """What the driver keeps of a WQ beyond WQCFG (struct idxd_wq)."""

    type: str = "none"
    name: str = ""
    group_id: int = -1
    enqcmds_retries: int = 32
    ats_disable: bool = False
    prs_disable: bool = False
    #: wq->driver_name: the driver a bind must come through ("user" for a user WQ).
    driver_name: str = ""
    #: The driver the WQ is bound to now ("" while disabled).
    bound: str = ""


@dataclass
class GroupState:
    """struct idxd_group: GRPCFG's flags and tokens (no API in the fabric)."""

    tokens_reserved: int = 0
    tokens_allowed: int = 0
    use_token_limit: bool = False
    traffic_class_a: int = 1
    traffic_class_b: int = 1
    desc_progress_limit: int = 0
    batch_progress_limit: int = 0


@dataclass
class DeviceDriverState:
    """struct idxd_device's state beyond what the accel service holds."""

    enabled: bool = True
    token_limit: int = 0
    cmd_status: int = 0
    wqs: dict[int, WqDriverState] = field(default_factory=dict)
    engines: dict[int, int] = field(default_factory=dict)
    groups: dict[int, GroupState] = field(default_factory=dict)


def device_dir(index: int, name: str) -> str:
    """Where a device sits under /sys/devices (a PCI function per device)."""
    return f"/sys/devices/pci0000:00/0000:00:{index + 1:02x}.0/{name}"


class IdxdSysfs:
    """The tree of one fabric's devices, and the driver behind its attribute stores.

    ``fabric`` is a :class:`svasim_client.Client`; calls into it are made under the
    caller's lock (the bridge serialises requests).
    """

    DRIVERS = ("dsa", "idxd", "user")

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
                st = self.state.get(dev.name)
                if st is None:
                    st = self.state[dev.name] = DeviceDriverState()
                    # What the fabric already enabled is a user WQ of group 0, as
                    # accel-config would have configured it.
                    for eng in range(dev.engines):
                        st.engines[eng] = 0
                    for g in range(MAX_GROUPS):
                        st.groups[g] = GroupState()
                for wq in dev.wqs:
                    if wq.id not in st.wqs:
                        st.wqs[wq.id] = (
                            WqDriverState(
                                type="user", name=f"svasim{wq.id}", group_id=0, driver_name="user", bound="user"
                            )
                            if wq.enabled
                            else WqDriverState()
                        )
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
        """Whether /dev/dsa/wqD.Q exists: the WQ is enabled and bound to the user driver."""
        with self._lock:
            try:
                wq = self.wq(device, wq_id)
            except StoreError:
                return False
            return wq.enabled and self.state[device].wqs[wq_id].type == "user"

    # -- the tree -------------------------------------------------------------------------
    def _device_attrs(self, i: int, dev: accel_pb2.Device) -> dict[str, str]:
        st = self.state[dev.name]
        max_xfer = max((w.max_xfer_shift for w in dev.wqs), default=31)
        max_batch = max((w.max_batch_shift for w in dev.wqs), default=10)
        # GENCAP (DSA spec 8.3.4): block on fault 0, overlapping copy 1, cache control
        # (memory) 2, max transfer shift 20:16, max batch shift 24:21, config support 31.
        gen_cap = 1 | (1 << 1) | (1 << 2) | (max_xfer << 16) | (max_batch << 21) | (1 << 31)
        return {
            "version": f"{DEVICE_VERSION:#x}",
            "max_groups": str(MAX_GROUPS),
            "max_work_queues": str(len(dev.wqs)),
            "max_engines": str(dev.engines),
            "max_work_queues_size": str(dev.total_wq_size),
            "numa_node": "-1",
            "ims_size": "0",
            "max_batch_size": str(1 << max_batch),
            "max_transfer_size": str(1 << max_xfer),
            "op_cap": bitmap_str(dev.opcap),
            "gen_cap": f"{gen_cap:#x}",
            "configurable": "1",
            "pasid_enabled": "1",
            "max_tokens": "96",
            "max_read_buffers": "96",
            "token_limit": str(st.token_limit),
            "read_buffer_limit": str(st.token_limit),
            "cdev_major": str(CDEV_MAJOR),
            "state": "enabled" if st.enabled else "disabled",
            "clients": str(sum(w.clients for w in dev.wqs)),
            "cmd_status": f"{st.cmd_status:#x}",
            "errors": " ".join(f"{0:#018x}" for _ in range(4)),
            "max_batch_shift": str(max_batch),
            "max_xfer_shift": str(max_xfer),
        }

    def _wq_attrs(self, dev: accel_pb2.Device, wq: accel_pb2.WorkQueue) -> dict[str, str]:
        ws = self.state[dev.name].wqs[wq.id]
        user = wq.enabled and ws.type == "user"
        return {
            "clients": str(wq.clients),
            "state": "enabled" if wq.enabled else "disabled",
            "group_id": str(ws.group_id),
            "size": str(wq.size),
            "priority": str(wq.priority),
            "block_on_fault": str(int(wq.block_on_fault)),
            "threshold": str(wq.threshold),
            "type": ws.type,
            "name": ws.name,
            "driver_name": ws.driver_name,
            "cdev_minor": str(wq.id) if user else "-1",
            "max_transfer_size": str(1 << wq.max_xfer_shift),
            "max_batch_size": str(1 << wq.max_batch_shift),
            "mode": "dedicated" if wq.mode == accel_pb2.WQ_MODE_DEDICATED else "shared",
            "op_config": bitmap_str(wq.op_config),
            "occupancy": str(wq.occupancy),
            "enqcmds_retries": str(ws.enqcmds_retries),
            "ats_disable": str(int(ws.ats_disable)),
            "prs_disable": str(int(ws.prs_disable)),
        }

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
            if st.enabled:
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
                    if ws.type == "user":
                        devnodes.add(f"/dev/dsa/wq{n}.{wq.id}")
            for eng, g in sorted(st.engines.items()):
                edir = f"{base}/engine{n}.{eng}"
                files[f"{edir}/group_id"] = str(g)
                links[f"/sys/bus/dsa/devices/engine{n}.{eng}"] = edir
            for g, gs in sorted(st.groups.items()):
                gdir = f"{base}/group{n}.{g}"
                engines = [f"engine{n}.{e}" for e, eg in sorted(st.engines.items()) if eg == g]
                wqs = [f"wq{n}.{w}" for w, ws in sorted(st.wqs.items()) if ws.group_id == g]
                files[f"{gdir}/engines"] = " ".join(engines)
                files[f"{gdir}/work_queues"] = " ".join(wqs)
                for k in ("tokens_reserved", "tokens_allowed", "traffic_class_a", "traffic_class_b"):
                    files[f"{gdir}/{k}"] = str(getattr(gs, k))
                files[f"{gdir}/use_token_limit"] = str(int(gs.use_token_limit))
                files[f"{gdir}/read_buffers_reserved"] = str(gs.tokens_reserved)
                files[f"{gdir}/read_buffers_allowed"] = str(gs.tokens_allowed)
                files[f"{gdir}/use_read_buffer_limit"] = str(int(gs.use_token_limit))
                files[f"{gdir}/desc_progress_limit"] = str(gs.desc_progress_limit)
                files[f"{gdir}/batch_progress_limit"] = str(gs.batch_progress_limit)
                links[f"/sys/bus/dsa/devices/group{n}.{g}"] = gdir
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

    def _configurable(self, dev: str) -> DeviceDriverState:
        st = self.state[dev]
        if st.enabled:
            raise StoreError(errno.EPERM, f"{dev} is enabled")
        return st

    def _store_device(self, dev: str, attr: str, text: str) -> None:
        st = self.state[dev]
        if attr == "cmd_status":
            st.cmd_status = 0
        elif attr in ("token_limit", "read_buffer_limit"):
            val = _number(text)
            self._configurable(dev)
            if not 0 <= val <= 96:
                raise StoreError(errno.EINVAL, f"{attr} {val} is not 0..96")
            st.token_limit = val
        else:
            raise StoreError(errno.EACCES, f"{dev}/{attr} is read-only")

    def _store_group(self, dev: str, g: int, attr: str, text: str) -> None:
        gs = self._configurable(dev).groups.get(g)
        if gs is None:
            raise StoreError(errno.ENODEV, f"{dev} has no group {g}")
        val = _number(text) if attr != "use_token_limit" else int(_bool(text))
        names = {
            "tokens_reserved": "tokens_reserved",
            "read_buffers_reserved": "tokens_reserved",
            "tokens_allowed": "tokens_allowed",
            "read_buffers_allowed": "tokens_allowed",
            "use_token_limit": "use_token_limit",
            "use_read_buffer_limit": "use_token_limit",
            "traffic_class_a": "traffic_class_a",
            "traffic_class_b": "traffic_class_b",
            "desc_progress_limit": "desc_progress_limit",
            "batch_progress_limit": "batch_progress_limit",
        }
        if attr not in names:
            raise StoreError(errno.EACCES, f"group attribute {attr} is read-only")
        if attr.startswith("traffic_class") and not 0 <= val <= 7:
            raise StoreError(errno.EINVAL, f"{attr} {val} is not 0..7")
        if attr.endswith("progress_limit") and not 0 <= val <= 3:
            raise StoreError(errno.EINVAL, f"{attr} {val} is not 0..3")
        if val < 0:
            raise StoreError(errno.EINVAL, f"{attr} {val} is negative")
        setattr(gs, names[attr], bool(val) if names[attr] == "use_token_limit" else val)

    def _store_engine(self, dev: str, eng: int, attr: str, text: str) -> None:
        st = self._configurable(dev)
        if attr != "group_id":
            raise StoreError(errno.EACCES, f"engine attribute {attr} is read-only")
        if eng not in st.engines:
            raise StoreError(errno.ENODEV, f"{dev} has no engine {eng}")
        g = _number(text)
        if not -1 <= g < MAX_GROUPS:
            raise StoreError(errno.EINVAL, f"group {g} is not -1..{MAX_GROUPS - 1}")
        st.engines[eng] = g

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
            if not -1 <= g < MAX_GROUPS:
                raise StoreError(errno.EINVAL, f"group {g} is not -1..{MAX_GROUPS - 1}")
            ws.group_id = g
        elif attr == "type":
            t = text.strip()
            if t not in WQ_TYPES:
                raise StoreError(errno.EINVAL, f"wq type {t!r} is not one of {', '.join(WQ_TYPES)}")
            ws.type = t
        elif attr == "name":
            name = text.rstrip("\n")
            if len(name) > WQ_NAME_SIZE or not name.strip():
                raise StoreError(errno.EINVAL, "a wq name is 1..1024 characters")
            ws.name = name
        elif attr == "driver_name":
            drv = text.strip()
            if not drv or len(drv) > 32:
                raise StoreError(errno.EINVAL, "a driver name is 1..32 characters")
            ws.driver_name = drv
        elif attr in ("ats_disable", "prs_disable"):
            setattr(ws, attr, _bool(text))
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
            self._configure(dev, wq_id, block_on_fault=_bool(text))
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

    def _configure(self, dev: str, wq_id: int, **fields: Any) -> None:
        self._fabric(lambda: self.fabric.configure_wq(dev, wq_id, **fields))

    def _fabric(self, call: Callable[[], Any]) -> Any:
        try:
            return call()
        except SvasimError as e:
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
            # idxd_drv_enable_wq(): the device is enabled, the WQ has a group, a size, a
            # type the driver takes and (for a user WQ) a name.
            if not self.state[dev].enabled:
                raise StoreError(errno.ENXIO, f"{dev} is not enabled")
            if ws.group_id < 0:
                raise StoreError(errno.EINVAL, f"{name} has no group")
            if wq.size == 0:
                raise StoreError(errno.EINVAL, f"{name} has size 0")
            if ws.type == "none" or (drv == "user" and ws.type != "user"):
                raise StoreError(errno.ENODEV, f"{name} of type {ws.type} does not match driver {drv}")
            # The bus matches a WQ to the driver its driver_name names ("dsa": the old
            # generic driver, which takes any WQ).
            if drv != "dsa" and ws.driver_name and ws.driver_name != drv:
                raise StoreError(errno.ENODEV, f"{name} names driver {ws.driver_name}, not {drv}")
            if not ws.name:
                raise StoreError(errno.EINVAL, f"{name} has no name")
            self._fabric(lambda: self.fabric.enable_wq(dev, wq_id))
            ws.bound = drv
        else:
            if not wq.enabled:
                raise StoreError(errno.ENODEV, f"{name} is not bound")
            self._fabric(lambda: self.fabric.disable_wq(dev, wq_id))
            ws.bound = ""

    def _bind_device(self, dev: str, bind: bool) -> None:
        st = self.state[dev]
        device = self.device(dev)
        if bind:
            if st.enabled:
                raise StoreError(errno.EBUSY, f"{dev} is already bound")
            # GRPCFG must be valid (cmd_status 0x15 otherwise): a group with WQs has engines.
            for g in st.groups:
                has_wq = any(ws.group_id == g and w.size for w, ws in ((w, st.wqs[w.id]) for w in device.wqs))
                has_eng = any(eg == g for eg in st.engines.values())
                if has_wq and not has_eng:
                    st.cmd_status = 0x15
                    raise StoreError(errno.ENXIO, f"group {g} of {dev} has WQs and no engines")
            st.enabled = True
            st.cmd_status = 0
        else:
            if not st.enabled:
                raise StoreError(errno.ENODEV, f"{dev} is not bound")
            for w in device.wqs:
                if w.enabled:
                    self._fabric(functools.partial(self.fabric.disable_wq, dev, w.id))
                    st.wqs[w.id].bound = ""
            st.enabled = False


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
