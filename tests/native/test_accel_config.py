"""Intel's own accel-config (Debian's accel-config package, unchanged) configures the
simulated device through the bridge's sysfs: ``load-config`` of accel-config-test's
2g2q_user_1.conf on a fabric with 4 engines, then ``list`` shows the groups."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.native import Bridge
from svasim.server import create_server
from svasim_client import Client

from .. import accel_config
from .conftest import run_under

CONF = accel_config.CONFIGS / "2g2q_user_1.conf"


@pytest.fixture(scope="module")
def tool() -> str:
    """accel-config, with its test configurations, installed when missing."""
    accel_config.installed()
    found = shutil.which("accel-config")
    assert found is not None
    return found


@pytest.fixture
def four_engines(tmp_path: Path, sockdir: Path) -> Iterator[tuple[Client, Bridge]]:
    srv = create_server(
        FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'fabric.db'}", engines=4, native=True)
    )
    try:
        with Client(srv.address) as c:
            b = Bridge(c, tmp_path / "root", sockdir / "bridge.sock")
            b.start()
            try:
                yield c, b
            finally:
                b.stop()
    finally:
        srv.stop(0)


def test_accel_config_load_config_configures_the_groups_and_list_shows_them(
    four_engines, preload: Path, tool: str
) -> None:
    fabric, bridge = four_engines
    # As dsa_user_test_runner.sh does: the device is disabled first (which clears its
    # configuration), then the file is loaded, then the device and WQs are enabled.
    r = run_under(bridge.env(), preload, tool, "disable-device", "dsa0")
    assert r.returncode == 0, r.stdout + r.stderr
    r = run_under(bridge.env(), preload, tool, "load-config", "-c", CONF)
    assert r.returncode == 0, r.stdout + r.stderr
    (dev,) = fabric.devices()
    assert [(list(g.wq_ids), list(g.engine_ids)) for g in dev.groups] == [
        ([0], [0, 1]),
        ([1], [2, 3]),
        ([], []),
        ([], []),
    ]
    assert [(w.name, w.type, w.driver_name, w.size) for w in dev.wqs] == [
        ("app1", "user", "user", 16),
        ("app2", "user", "user", 16),
    ]
    for args in (("enable-device", "dsa0"), ("enable-wq", "dsa0/wq0.0"), ("enable-wq", "dsa0/wq0.1")):
        r = run_under(bridge.env(), preload, tool, *args)
        assert r.returncode == 0, r.stdout + r.stderr
    (dev,) = fabric.devices()
    assert dev.enabled and all(w.enabled for w in dev.wqs)
    r = run_under(bridge.env(), preload, tool, "list")
    assert r.returncode == 0, r.stdout + r.stderr
    (listed,) = json.loads(r.stdout)
    groups = {g["dev"]: g for g in listed["groups"]}
    assert [e["dev"] for e in groups["group0.0"]["grouped_engines"]] == ["engine0.0", "engine0.1"]
    assert [e["dev"] for e in groups["group0.1"]["grouped_engines"]] == ["engine0.2", "engine0.3"]
    assert [w["dev"] for w in groups["group0.0"]["grouped_workqueues"]] == ["wq0.0"]
    assert groups["group0.1"]["grouped_workqueues"][0]["mode"] == "dedicated"
