"""``--memory`` (SVASIM_MEMORY): the fabric's simulated physical memory bounds what a
request may allocate, and exhaustion is RESOURCE_EXHAUSTED (ENOMEM) changing nothing."""

from __future__ import annotations

import subprocess
import sys

import grpc
import pytest

from svasim.config import ALL_SERVICES, ConfigError, FabricConfig
from svasim.server import create_server
from svasim.store import Store
from svasim_client import Client, SvasimError

SVASIM = [sys.executable, "-m", "svasim.cli"]


def test_memory_defaults_to_one_gib_and_follows_svasim_memory(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SVASIM_MEMORY", raising=False)
    assert FabricConfig.from_env().memory == 1 << 30
    monkeypatch.setenv("SVASIM_MEMORY", str(64 << 20))
    assert FabricConfig.from_env().memory == 64 << 20
    monkeypatch.setenv("SVASIM_MEMORY", "abc")
    with pytest.raises(ConfigError, match="SVASIM_MEMORY"):
        FabricConfig.from_env()


@pytest.mark.parametrize("memory", [0, 5000, -4096])
def test_a_memory_size_that_is_not_whole_pages_is_refused(memory: int) -> None:
    with pytest.raises(ConfigError, match="multiple of 4096"):
        FabricConfig(memory=memory).check()


def test_the_cli_refuses_a_bad_memory_size_in_one_line(tmp_path) -> None:
    r = subprocess.run(
        [*SVASIM, "up", "--port", "0", "--db", f"sqlite:///{tmp_path}/m.db", "--memory", "5000"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode != 0
    assert "multiple of 4096" in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_populating_more_than_the_fabric_memory_is_enomem_and_records_nothing(tmp_path) -> None:
    db = f"sqlite:///{tmp_path}/m.db"
    fab = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, memory=256 * 4096))
    try:
        with Client(fab.address) as c:
            c.wait_ready()
            p = c.create_process("app")
            with pytest.raises(SvasimError) as e:
                c.mmap(p.pid, 1024 * 4096, populate=True)
            assert e.value.code == grpc.StatusCode.RESOURCE_EXHAUSTED
            # A mapping within the limit still works: the refusal changed nothing.
            c.mmap(p.pid, 16 * 4096, populate=True)
            run_id = fab.run_id
    finally:
        fab.stop()
    with Store.open(db) as store:
        assert store.get_run(run_id).config["memory"] == 256 * 4096
        kinds = [e.kind for e in store.events(run_id, limit=None)]
    assert "vma.map" in kinds
    assert kinds.count("vma.map") == 1, "the refused mmap recorded a mapping"
