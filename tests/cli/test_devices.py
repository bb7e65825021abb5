"""``svasim devices`` and ``svasim load-config`` against ``svasim up --engines 4``: accel-config's
own test configuration (trailing commas and all) imported through the API, and the
errors a user gets for a wrong file."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from svasim.cli.devices import ConfigFileError, parse_config, strip_trailing_commas
from svasim_client import Client

from .. import accel_config
from .processes import SVASIM, up

#: accel-config-test's configuration (Debian package accel-config-test); a copy of its
#: structure is used when the package is not installed.
DEBIAN_CONF = Path("/usr/libexec/accel-config/test/configs/2g2q_user_1.conf")
CONF_2G2Q = """[
  {"dev":"dsa0", "read_buffer_limit":0,
   "groups":[
     {"dev":"group0.0", "read_buffers_reserved":0, "use_read_buffer_limit":0, "read_buffers_allowed":8,
      "grouped_workqueues":[{"dev":"wq0.0", "mode":"shared", "size":16, "group_id":0, "priority":10,
        "block_on_fault":1, "type":"user", "driver_name":"user", "name":"app1", "threshold":15}],
      "grouped_engines":[{"dev":"engine0.0", "group_id":0}, {"dev":"engine0.1", "group_id":0}]},
     {"dev":"group0.1", "read_buffers_reserved":0, "use_read_buffer_limit":0, "read_buffers_allowed":8,
      "grouped_workqueues":[{"dev":"wq0.1", "mode":"dedicated", "size":16, "group_id":1, "priority":10,
        "block_on_fault":1, "type":"user", "driver_name":"user", "name":"app2", "threshold":0}],
      "grouped_engines":[{"dev":"engine0.2", "group_id":1}, {"dev":"engine0.3", "group_id":1}]},
     {"dev":"group0.2", "read_buffers_reserved":0, "use_read_buffer_limit":0, "read_buffers_allowed":8,},
     {"dev":"group0.3", "read_buffers_reserved":0, "use_read_buffer_limit":0, "read_buffers_allowed":8,}
   ]}
]
"""


def svasim(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SVASIM, *args], capture_output=True, text=True, timeout=120, env={**os.environ, "COLUMNS": "200"}
    )


@pytest.fixture
def conf(tmp_path: Path) -> Path:
    if DEBIAN_CONF.is_file():
        return DEBIAN_CONF
    p = tmp_path / "2g2q_user_1.conf"
    p.write_text(CONF_2G2Q)
    return p


@pytest.fixture
def fabric(tmp_path: Path):
    with up(f"sqlite:///{tmp_path / 'svasim.db'}", "--engines", "4") as (addr, _):
        yield addr


def test_trailing_commas_are_accepted_as_json_c_does_and_strings_are_left_alone():
    assert json.loads(strip_trailing_commas('{"a": [1, 2,], "b": "x,}",\n}')) == {"a": [1, 2], "b": "x,}"}
    assert parse_config(CONF_2G2Q)[0]["groups"][2] == {
        "dev": "group0.2",
        "read_buffers_reserved": 0,
        "use_read_buffer_limit": 0,
        "read_buffers_allowed": 8,
    }
    with pytest.raises(ConfigFileError, match="not JSON"):
        parse_config("[{")


def test_load_config_imports_accel_configs_2g2q_file_and_devices_shows_it(fabric, conf):
    addr = fabric
    r = svasim("load-config", str(conf), "--addr", addr)
    # As accel-config: an enabled device is not touched without --force.
    assert r.returncode == 2 and "dsa0 is enabled" in r.stderr
    r = svasim("load-config", str(conf), "--addr", addr, "--force", "--enable")
    assert r.returncode == 0, r.stderr
    with Client(addr) as c:
        (dev,) = c.devices()
    assert dev.enabled
    assert [(list(g.wq_ids), list(g.engine_ids), g.read_buffers_allowed) for g in dev.groups] == [
        ([0], [0, 1], 8),
        ([1], [2, 3], 8),
        ([], [], 8),
        ([], [], 8),
    ]
    wq0, wq1 = dev.wqs
    assert (wq0.mode, wq0.size, wq0.threshold, wq0.priority, wq0.block_on_fault, wq0.name, wq0.enabled) == (
        1,
        16,
        15,
        10,
        True,
        "app1",
        True,
    )
    assert (wq1.mode, wq1.type, wq1.driver_name, wq1.name, wq1.group_id) == (2, "user", "user", "app2", 1)
    r = svasim("devices", "--addr", addr)
    assert r.returncode == 0, r.stderr
    assert "group0: engines engine0 engine1; wqs wq0" in r.stdout
    assert "group1: engines engine2 engine3; wqs wq1" in r.stdout
    # --json is accel-config's save-config shape: it loads back.
    r = svasim("devices", "--addr", addr, "--json")
    saved = json.loads(r.stdout)
    assert saved[0]["groups"][1]["grouped_engines"] == [
        {"dev": "engine0.2", "group_id": 1},
        {"dev": "engine0.3", "group_id": 1},
    ]


def test_a_wrong_value_is_one_line_naming_the_key_and_unknown_keys_are_reported(fabric, tmp_path):
    addr = fabric
    bad = json.loads(strip_trailing_commas(CONF_2G2Q))
    bad[0]["groups"][0]["grouped_workqueues"][0]["priority"] = 16
    bad[0]["groups"][0]["grouped_workqueues"][0]["colour"] = "blue"
    p = tmp_path / "bad.conf"
    p.write_text(json.dumps(bad))
    r = svasim("load-config", str(p), "--addr", addr, "-f")
    assert r.returncode == 2
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert len(err) == 1 and "dsa0/wq0.0: " in err[0] and "priority" in err[0] and "BAD_WQ_PRIORITY" in err[0]
    assert "unknown key 'colour' ignored" in r.stderr
    bad[0]["groups"][0]["grouped_workqueues"][0]["priority"] = "high"
    p.write_text(json.dumps(bad))
    r = svasim("load-config", str(p), "--addr", addr)
    assert r.returncode == 2 and "priority: 'high' is not an integer" in r.stderr
    r = svasim("load-config", str(tmp_path / "missing.conf"), "--addr", addr)
    assert r.returncode == 2 and "cannot read" in r.stderr


def test_a_file_naming_a_wq_the_device_lacks_stops_at_that_wq(fabric, tmp_path):
    # accel-config's contrib net_profile.conf configures four WQs; the device has two.
    accel_config.installed()
    profile = accel_config.CONTRIB / "net_profile.conf"
    r = svasim("load-config", str(profile), "--addr", fabric, "--force")
    err = [ln for ln in r.stderr.splitlines() if ln.startswith("error:")]
    assert r.returncode == 2 and len(err) == 1 and "wq0.2" in err[0] and "UNKNOWN_WQ" in err[0], r.stderr


def test_accel_configs_contrib_profiles_load_on_a_device_with_eight_wqs(tmp_path):
    # accel-config's contrib profiles (os, app, storage, net) use up to 4 WQs, engines and groups.
    accel_config.installed()
    profiles = sorted(accel_config.CONTRIB.glob("*_profile.conf"))
    assert profiles, f"no accel-config profiles in {accel_config.CONTRIB}"
    with up(f"sqlite:///{tmp_path / 'svasim.db'}", "--engines", "4", "--wqs", "8") as (addr, _):
        for profile in profiles:
            r = svasim("load-config", str(profile), "--addr", addr, "--force", "--enable")
            assert r.returncode == 0, f"{profile.name}: {r.stderr}"
        r = svasim("load-config", str(Path("/etc/accel-config/contrib/configs/net_profile.conf")), "--addr", addr, "-f")
        assert r.returncode == 0, r.stderr
        with Client(addr) as c:
            (dev,) = c.devices()
        assert len(dev.wqs) == 8 and dev.capabilities.fields["wq_cap.num_wqs"] == 8
        assert [len(g.wq_ids) for g in dev.groups] == [1, 1, 1, 1]
        assert [len(g.engine_ids) for g in dev.groups] == [1, 1, 1, 1]
