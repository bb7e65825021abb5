"""``svasim devices`` and ``svasim load-config``: the accelerators' devices, groups, engines
and WQs, and accel-config's JSON configuration imported through the public API.

The file format is what ``accel-config save-config`` writes and ``accel-config
load-config`` reads (accel-config's accfg/config.c): a list of devices, each with its
attributes and ``groups``; a group with its attributes, ``grouped_workqueues`` and
``grouped_engines``; and ``ungrouped_engines`` / ``ungrouped_workqueues`` at device
level. accel-config parses it with json-c, which accepts a comma before a closing
bracket (the test configurations shipped with accel-config have them), so this does too.

As ``accel-config load-config``: an enabled device is skipped unless ``--force``
disables it (which clears its configuration, as the idxd driver's device reset does);
an enabled WQ is skipped; attributes are written in the file's order (a group's own
attributes, then its WQs, then its engines); use_read_buffer_limit is written only when
the device has a read_buffer_limit, a shared-only threshold not for a dedicated WQ, and
the traffic classes not on a device older than version 2. ``--enable`` enables the
devices and WQs afterwards (accel-config's ``-e``). Unlike accel-config, keys it does
not know are reported (a warning each), and a value the fabric refuses stops the import
with one line naming the key.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import typer

from svasim.cli._common import console, fail, warn

#: WQ keys of accel-config's wq_table, and the ConfigureWorkQueue field each goes to
#: (None: read but not a WQCFG field of the fabric; see :func:`_wq_changes`).
WQ_KEYS = {
    "size": "size",
    "priority": "priority",
    "group_id": "group_id",
    "block_on_fault": "block_on_fault",
    "type": "type",
    "name": "name",
    "driver_name": "driver_name",
    "op_config": "op_config",
    "mode": "mode",
    "max_batch_size": "max_batch_shift",
    "max_transfer_size": "max_xfer_shift",
    "threshold": "threshold",
    "ats_disable": None,
    "prs_disable": "prs_disable",
}
#: What ``accel-config save-config`` also writes of a WQ, which load-config does not set.
WQ_READ_ONLY = {"dev", "state", "clients", "cdev_minor", "occupancy", "enqcmds_retries", "mode_support"}
GROUP_KEYS = {
    "read_buffers_reserved",
    "tokens_reserved",
    "read_buffers_allowed",
    "tokens_allowed",
    "use_read_buffer_limit",
    "use_token_limit",
    "traffic_class_a",
    "traffic_class_b",
    "desc_progress_limit",
    "batch_progress_limit",
}
GROUP_READ_ONLY = {"dev", "grouped_workqueues", "grouped_engines"}
DEVICE_KEYS = {"read_buffer_limit", "token_limit", "event_log_size"}
#: What save-config writes of a device that is not configuration.
DEVICE_READ_ONLY = {
    "dev",
    "groups",
    "ungrouped_engines",
    "ungrouped_workqueues",
    "max_groups",
    "max_work_queues",
    "max_engines",
    "work_queue_size",
    "numa_node",
    "op_cap",
    "gen_cap",
    "version",
    "state",
    "max_read_buffers",
    "max_batch_size",
    "max_transfer_size",
    "configurable",
    "pasid_enabled",
    "cdev_major",
    "clients",
    "max_tokens",
    "ims_size",
    "max_work_queues_size",
}


class ConfigFileError(ValueError):
    """A configuration file that cannot be read or applied; the message is one line."""


def strip_trailing_commas(text: str) -> str:
    """``text`` without the commas that come right before a ``]`` or ``}`` (outside
    strings), which json-c accepts and Python's json does not."""
    out: list[str] = []
    i, n = 0, len(text)
    in_string = False
    while i < n:
        ch = text[i]
        if in_string:
            out.append(ch)
            if ch == "\\" and i + 1 < n:
                out.append(text[i + 1])
                i += 2
                continue
            if ch == '"':
                in_string = False
        elif ch == '"':
            in_string = True
            out.append(ch)
        elif ch == ",":
            j = i + 1
            while j < n and text[j] in " \t\r\n":
                j += 1
            if j >= n or text[j] not in "]}":
                out.append(ch)
        else:
            out.append(ch)
        i += 1
    return "".join(out)


def parse_config(text: str, where: str = "config") -> list[dict[str, Any]]:
    """The devices of an accel-config JSON configuration."""
    try:
        data = json.loads(strip_trailing_commas(text))
    except json.JSONDecodeError as e:
        raise ConfigFileError(f"{where}: not JSON: {e}") from None
    if isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not all(isinstance(d, dict) for d in data):
        raise ConfigFileError(f"{where}: an accel-config configuration is a list of device objects")
    return data


@dataclass
class Step:
    """One API call of an import: what it sets, and the file key it comes from (for errors)."""

    device: str
    where: str
    key: str
    call: str
    args: dict[str, Any]


@dataclass
class Plan:
    """The calls that apply a configuration, and what the file holds that they do not."""

    steps: list[Step] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    devices: list[str] = field(default_factory=list)
    wqs: list[tuple[str, int]] = field(default_factory=list)


def _name_id(value: Any, prefix: str, where: str) -> tuple[int, int]:
    m = re.fullmatch(rf"{prefix}(\d+)\.(\d+)", str(value))
    if not m:
        raise ConfigFileError(f"{where}: dev: {value!r} is not {prefix}N.M")
    return int(m.group(1)), int(m.group(2))


def _int(value: Any, where: str, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ConfigFileError(f"{where}: {key}: {value!r} is not an integer")
    return value


def _str(value: Any, where: str, key: str) -> str:
    if not isinstance(value, str):
        raise ConfigFileError(f"{where}: {key}: {value!r} is not a string")
    return value


def _shift(value: int, where: str, key: str) -> int:
    """sysfs.c's __get_sysfs_u64: a size rounded up to a power of two, as its shift."""
    if value <= 0:
        raise ConfigFileError(f"{where}: {key}: {value} must be positive")
    return (value - 1).bit_length()


def _wq_changes(wq: dict[str, Any], where: str, plan: Plan) -> dict[str, Any]:
    """The ConfigureWorkQueue fields of one WQ object of the file."""
    changes: dict[str, Any] = {}
    mode = wq.get("mode")
    dedicated = mode == "dedicated"
    for key, value in wq.items():
        if key in WQ_READ_ONLY:
            continue
        if key not in WQ_KEYS:
            plan.warnings.append(f"{where}: unknown key {key!r} ignored")
            continue
        target = WQ_KEYS[key]
        if target is None:
            plan.warnings.append(f"{where}: {key} ignored (the device has no WQ ATS disable: WQCAP wq_ats_support 0)")
            continue
        if key == "mode":
            if value not in ("shared", "dedicated"):
                raise ConfigFileError(f"{where}: mode: {value!r} is not shared or dedicated")
            changes["mode"] = 1 if value == "shared" else 2
        elif key in ("type", "name", "driver_name"):
            changes[target] = _str(value, where, key)
        elif key == "op_config":
            text = _str(value, where, key)
            try:
                changes[target] = int(text.replace(",", ""), 16)
            except ValueError:
                raise ConfigFileError(f"{where}: op_config: {text!r} is not a bitmap") from None
        elif key in ("max_batch_size", "max_transfer_size"):
            changes[target] = _shift(_int(value, where, key), where, key)
        elif key in ("block_on_fault", "prs_disable"):
            v = _int(value, where, key)
            if v not in (0, 1):
                raise ConfigFileError(f"{where}: {key}: {v} is not 0 or 1")
            changes[target] = bool(v)
        elif key == "threshold":
            if not dedicated:  # is_wq_threshold_writable()
                changes[target] = _int(value, where, key)
        else:
            changes[target] = _int(value, where, key)
    return changes


def plan_config(devices: list[dict[str, Any]], state: dict[str, Any], *, where: str = "config") -> Plan:
    """The API calls that apply ``devices`` (parsed) to a fabric whose devices are
    ``state`` (name -> accel_pb2.Device), in accel-config's order."""
    plan = Plan()
    for dev_obj in devices:
        name = dev_obj.get("dev")
        if not isinstance(name, str) or name not in state:
            raise ConfigFileError(f"{where}: dev: {name!r} is not a device of the fabric ({', '.join(sorted(state))})")
        dev = state[name]
        dw = f"{where}: {name}"
        plan.devices.append(name)
        n = int(name.removeprefix("dsa")) if name.startswith("dsa") else 0
        for key, value in dev_obj.items():
            if key in DEVICE_READ_ONLY:
                continue
            if key not in DEVICE_KEYS:
                plan.warnings.append(f"{dw}: unknown key {key!r} ignored")
            elif key == "event_log_size":
                size = _int(value, dw, key)
                if dev.capabilities.fields["gen_cap.evl_support"]:
                    plan.steps.append(Step(name, dw, key, "set_event_log_size", {"size": size}))
                elif size:
                    plan.warnings.append(f"{dw}: event_log_size ignored (GENCAP evl_support 0: no event log)")
            else:
                limit = _int(value, dw, key)
                plan.steps.append(Step(name, dw, key, "configure_device", {"read_buffer_limit": limit}))
        limit = next((dev_obj[k] for k in ("read_buffer_limit", "token_limit") if k in dev_obj), dev.read_buffer_limit)
        # The engines' groups when the file has been applied (for each group's engine list).
        engine_group = {e.id: e.group_id for e in dev.engine_list}
        for eng in dev_obj.get("ungrouped_engines") or []:
            _, e = _name_id(eng.get("dev") if isinstance(eng, dict) else eng, "engine", dw)
            engine_group[e] = -1
        engines_set: set[int] = set()
        groups = dev_obj.get("groups") or []
        if not isinstance(groups, list):
            raise ConfigFileError(f"{dw}: groups: not a list")
        for g_obj in groups:
            for eng in g_obj.get("grouped_engines") or []:
                ew = f"{dw}/{eng.get('dev')}"
                _, e = _name_id(eng.get("dev"), "engine", ew)
                _, g_default = _name_id(g_obj.get("dev"), "group", dw)
                engine_group[e] = _int(eng.get("group_id", g_default), ew, "group_id")
        for g_obj in groups:
            _, g = _name_id(g_obj.get("dev"), "group", dw)
            gw = f"{dw}/group{n}.{g}"
            flags: dict[str, Any] = {}
            for key, value in g_obj.items():
                if key in GROUP_READ_ONLY:
                    continue
                if key not in GROUP_KEYS:
                    plan.warnings.append(f"{gw}: unknown key {key!r} ignored")
                    continue
                v = _int(value, gw, key)
                if key in ("traffic_class_a", "traffic_class_b"):
                    if dev.capabilities.version < 0x200 or v == -1:
                        continue  # is_group_traffic_class_writable()
                    plan.warnings.append(f"{gw}: {key} ignored (fixed on this device)")
                elif key in ("desc_progress_limit", "batch_progress_limit"):
                    plan.warnings.append(f"{gw}: {key} ignored (GRPCAP progress_limit 0)")
                elif key in ("use_read_buffer_limit", "use_token_limit"):
                    if limit:  # is_group_read_buffer_limit_writable()
                        flags["use_read_buffer_limit"] = bool(v)
                elif v != -1:  # is_group_read_buffer_attribs_writable()
                    if v < 0:
                        raise ConfigFileError(f"{gw}: {key}: {v} is negative")
                    flags["read_buffers_" + key.split("_")[-1]] = v
            if flags:
                plan.steps.append(Step(name, gw, ", ".join(sorted(flags)), "configure_group", {"group_id": g, **flags}))
            for wq in g_obj.get("grouped_workqueues") or []:
                _, w = _name_id(wq.get("dev"), "wq", gw)
                ww = f"{dw}/wq{n}.{w}"
                changes = _wq_changes(wq, ww, plan)
                changes.setdefault("group_id", g)
                plan.steps.append(Step(name, ww, ", ".join(sorted(changes)), "configure_wq", {"wq_id": w, **changes}))
                plan.wqs.append((name, w))
            if g_obj.get("grouped_engines"):
                members = sorted(e for e, eg in engine_group.items() if eg == g)
                plan.steps.append(
                    Step(name, gw, "grouped_engines", "configure_group", {"group_id": g, "engines": members})
                )
                engines_set.add(g)
        for wq in dev_obj.get("ungrouped_workqueues") or []:
            _, w = _name_id(wq.get("dev"), "wq", dw)
            ww = f"{dw}/wq{n}.{w}"
            changes = _wq_changes(wq, ww, plan)
            changes["group_id"] = -1
            plan.steps.append(Step(name, ww, ", ".join(sorted(changes)), "configure_wq", {"wq_id": w, **changes}))
        # Groups that lose engines the file moved elsewhere (or ungrouped) and list none.
        for g in sorted({e.group_id for e in dev.engine_list if e.group_id >= 0} - engines_set):
            before = sorted(e.id for e in dev.engine_list if e.group_id == g)
            after = sorted(e for e, eg in engine_group.items() if eg == g)
            if before != after:
                plan.steps.append(
                    Step(
                        name,
                        f"{dw}/group{n}.{g}",
                        "grouped_engines",
                        "configure_group",
                        {"group_id": g, "engines": after},
                    )
                )
    return plan


def apply_plan(client: Any, plan: Plan, *, force: bool, enable: bool) -> list[str]:
    """Apply a plan through ``client`` (a :class:`svasim_client.Client`); returns what
    was done, a line each. A refusal raises ConfigFileError naming the file's key."""
    from svasim_client import SvasimError

    done: list[str] = []
    devices = {d.name: d for d in client.devices()}
    for name in plan.devices:
        if devices[name].enabled:
            if not force:
                raise ConfigFileError(f"{name} is enabled: --force disables it first (which clears its configuration)")
            for wq in devices[name].wqs:
                if wq.enabled:
                    _call(client.disable_wq, f"{name}/wq{wq.id}", "disable", name, wq.id)
            _call(client.disable_device, name, "disable", name)
            done.append(f"disabled {name}")
    enabled_wqs = {(d.name, w.id) for d in client.devices() for w in d.wqs if w.enabled}
    for step in plan.steps:
        dev = step.device
        if step.call == "configure_wq" and (dev, step.args["wq_id"]) in enabled_wqs:
            done.append(f"{step.where}: enabled, skipped")
            continue
        args = dict(step.args)
        if step.call == "configure_device":
            _call(client.configure_device, step.where, step.key, dev, **args)
        elif step.call == "set_event_log_size":
            from svasim_api.accel.v1 import accel_pb2

            request = accel_pb2.SetEventLogSizeRequest(device=dev, **args)
            _call(client.accel.SetEventLogSize, step.where, step.key, request)
        elif step.call == "configure_group":
            _call(client.configure_group, step.where, step.key, dev, args.pop("group_id"), **args)
        else:
            _call(client.configure_wq, step.where, step.key, dev, args.pop("wq_id"), **args)
        done.append(f"{step.where}: {step.key}")
    if enable:
        for name in plan.devices:
            try:
                client.enable_device(name)
            except SvasimError as e:
                raise ConfigFileError(f"enabling {name}: {e.message or e.reason} ({e.reason})") from None
            done.append(f"enabled {name}")
        for name, w in plan.wqs:
            _call(client.enable_wq, f"{name}/wq{w}", "enable", name, w)
            done.append(f"enabled {name} wq {w}")
    return done


def _call(fn: Any, where: str, key: str, *args: Any, **kw: Any) -> Any:
    """Call the fabric (a client method or a stub); a refusal names the file's key."""
    import grpc

    from svasim_client import SvasimError

    try:
        try:
            return fn(*args, **kw)
        except grpc.RpcError as e:
            raise SvasimError.from_rpc_error(e) from None
    except SvasimError as e:
        raise ConfigFileError(f"{where}: {key}: {e.message or e.reason} ({e.reason})") from None


def device_json(dev: Any) -> dict[str, Any]:
    """A device in the shape of ``accel-config save-config`` (what ``load-config`` reads)."""
    n = int(dev.name.removeprefix("dsa")) if dev.name.startswith("dsa") else 0

    def wq_obj(w: Any) -> dict[str, Any]:
        out: dict[str, Any] = {
            "dev": f"wq{n}.{w.id}",
            "mode": "dedicated" if w.mode == 2 else "shared",
            "size": w.size,
            "group_id": w.group_id,
            "priority": w.priority,
            "block_on_fault": int(w.block_on_fault),
            "max_batch_size": 1 << w.max_batch_shift,
            "max_transfer_size": 1 << w.max_xfer_shift,
            "op_config": f"{w.op_config:x}",
            "prs_disable": int(w.prs_disable),
            "type": w.type,
            "name": w.name,
            "driver_name": w.driver_name,
            "threshold": w.threshold,
            "state": "enabled" if w.enabled else "disabled",
        }
        return out

    groups = []
    for g in dev.groups:
        groups.append(
            {
                "dev": f"group{n}.{g.id}",
                "read_buffers_reserved": g.read_buffers_reserved,
                "use_read_buffer_limit": int(g.use_read_buffer_limit),
                "read_buffers_allowed": g.read_buffers_allowed,
                "grouped_workqueues": [wq_obj(w) for w in dev.wqs if w.group_id == g.id],
                "grouped_engines": [
                    {"dev": f"engine{n}.{e.id}", "group_id": g.id} for e in dev.engine_list if e.group_id == g.id
                ],
            }
        )
    out: dict[str, Any] = {
        "dev": dev.name,
        "read_buffer_limit": dev.read_buffer_limit,
        "max_groups": len(dev.groups),
        "max_work_queues": len(dev.wqs),
        "max_engines": dev.engines,
        "max_work_queues_size": dev.total_wq_size,
        "gen_cap": f"{dev.capabilities.gen_cap:#x}",
        "state": "enabled" if dev.enabled else "disabled",
        "groups": groups,
    }
    ungrouped_engines = [{"dev": f"engine{n}.{e.id}"} for e in dev.engine_list if e.group_id < 0]
    ungrouped_wqs = [wq_obj(w) for w in dev.wqs if w.group_id < 0]
    if ungrouped_engines:
        out["ungrouped_engines"] = ungrouped_engines
    if ungrouped_wqs:
        out["ungrouped_workqueues"] = ungrouped_wqs
    return out


AddrOpt = Annotated[str, typer.Option(help="host:port of the fabric's client listener.", envvar="SVASIM_ADDR")]


def devices(
    addr: AddrOpt = "127.0.0.1:50051",
    as_json: Annotated[
        bool, typer.Option("--json", help="accel-config save-config JSON (what load-config reads).")
    ] = False,
) -> None:
    """List the accelerator devices: capabilities, groups, engines and WQs."""
    from svasim_client import Client, SvasimError

    try:
        with Client(addr) as c:
            devs = c.devices()
    except SvasimError as e:
        fail(f"{addr}: {e.code.name}: {e.message or e.reason}")
    if as_json:
        console.print_json(json.dumps([device_json(d) for d in devs]))
        return
    for d in devs:
        caps = d.capabilities
        console.print(
            f"[bold]{d.name}[/bold] {'enabled' if d.enabled else 'disabled'}  version {caps.version:#x}  "
            f"gen_cap {caps.gen_cap:#x}  wq_cap {caps.wq_cap:#x}  group_cap {caps.group_cap:#x}  "
            f"engine_cap {caps.engine_cap:#x}",
            soft_wrap=True,
        )
        console.print(
            f"  {d.engines} engines, {len(d.groups)} groups, {len(d.wqs)} WQs (total size {d.total_wq_size}), "
            f"max transfer {caps.max_transfer_size}, max batch {caps.max_batch_size}, "
            f"read_buffer_limit {d.read_buffer_limit}",
            soft_wrap=True,
        )
        for g in d.groups:
            engines = " ".join(f"engine{e}" for e in g.engine_ids) or "-"
            wqs = " ".join(f"wq{w}" for w in g.wq_ids) or "-"
            console.print(
                f"  group{g.id}: engines {engines}; wqs {wqs}; read buffers reserved {g.read_buffers_reserved}, "
                f"allowed {g.read_buffers_allowed or 'all'}{', limited' if g.use_read_buffer_limit else ''}",
                soft_wrap=True,
                markup=False,
            )
        ungrouped = [e.id for e in d.engine_list if e.group_id < 0]
        if ungrouped:
            console.print(f"  ungrouped engines: {' '.join(f'engine{e}' for e in ungrouped)}", markup=False)
        for w in d.wqs:
            mode = "dedicated" if w.mode == 2 else "shared"
            console.print(
                f"  wq{w.id}: {'enabled' if w.enabled else 'disabled'} {mode} {w.type} {w.name or '-'!s} "
                f"(driver {w.driver_name or '-'}) group {w.group_id} size {w.size} threshold {w.threshold} "
                f"priority {w.priority} bof {int(w.block_on_fault)} clients {w.clients}",
                soft_wrap=True,
                markup=False,
            )


def load_config(
    file: Annotated[Path, typer.Argument(help="accel-config JSON configuration (accel-config save-config).")],
    addr: AddrOpt = "127.0.0.1:50051",
    force: Annotated[
        bool, typer.Option("--force", "-f", help="Disable an enabled device first (clears its configuration).")
    ] = False,
    enable: Annotated[bool, typer.Option("--enable", "-e", help="Enable the devices and WQs afterwards.")] = False,
) -> None:
    """Import an accel-config configuration (groups, engines, WQs) through the accel API."""
    from svasim_client import Client, SvasimError

    try:
        text = file.read_text()
    except OSError as e:
        fail(f"cannot read {file}: {e.strerror}")
    try:
        with Client(addr) as c:
            state = {d.name: d for d in c.devices()}
            plan = plan_config(parse_config(text, str(file)), state, where=str(file))
            for w in plan.warnings:
                warn(w)
            done = apply_plan(c, plan, force=force, enable=enable)
    except ConfigFileError as e:
        fail(e)
    except SvasimError as e:
        fail(f"{addr}: {e.code.name}: {e.message or e.reason}")
    console.print(f"{file}: {len(done)} changes applied to {', '.join(plan.devices)}", soft_wrap=True, markup=False)


def register(app: typer.Typer) -> None:
    """Add ``devices`` and ``load-config`` to ``app``."""
    app.command("devices")(devices)
    app.command("load-config")(load_config)
