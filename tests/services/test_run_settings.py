"""The knobs of time, the PRQ and the event log as fabric settings.

``auto_run``, ``async_page_requests``, ``evl``/``evl_size`` and ``prq_entries`` are
FabricConfig fields with an environment variable each and a flag of ``svasim up/serve``.
They are the state the models boot with, so the run records them in its config: a
resume with other values is refused (recovery.check_settings) and a replay builds its
fabric with the recorded ones (replay.config_of).

Sources: idxd_init_evl() (Linux drivers/dma/idxd/init.c) gives a device whose GENCAP
evl_support is set an event log of IDXD_EVL_SIZE_MIN (64) entries; the PRQ's size is
PQA_REG.PQS, which intel_svm_enable_prq() writes from the compile-time PRQ_ORDER.
"""

from __future__ import annotations

import dataclasses

import pytest

from svasim import recovery
from svasim.cli.run import FABRIC_OPTIONS
from svasim.config import ConfigError, FabricConfig
from svasim.model.evl import IDXD_EVL_SIZE_MIN
from svasim.model.iommu import PRQ_ENTRIES
from svasim.replay import config_of, verify
from svasim.server import create_server
from svasim.store import Store
from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client

KNOBS = {"auto_run": False, "async_page_requests": True, "evl": True, "evl_size": 128, "prq_entries": 8}


def config(db: str, run: str = "knobs", **kw: object) -> FabricConfig:
    return FabricConfig(**{"port": 0, "db": db, "run": run, **kw})  # type: ignore[arg-type]


def test_the_defaults_are_todays_devices_and_linux_prq(monkeypatch):
    names = ("SVASIM_AUTO_RUN", "SVASIM_ASYNC_PAGE_REQUESTS", "SVASIM_EVL", "SVASIM_EVL_SIZE", "SVASIM_PRQ_ENTRIES")
    for name in names:
        monkeypatch.delenv(name, raising=False)
    cfg = FabricConfig.from_env()
    assert (cfg.auto_run, cfg.async_page_requests, cfg.evl) == (True, False, False)
    assert (cfg.evl_size, cfg.prq_entries) == (IDXD_EVL_SIZE_MIN, PRQ_ENTRIES) == (64, 2048)


def test_every_knob_has_an_environment_variable_and_a_flag(monkeypatch):
    monkeypatch.setenv("SVASIM_AUTO_RUN", "0")
    monkeypatch.setenv("SVASIM_ASYNC_PAGE_REQUESTS", "1")
    monkeypatch.setenv("SVASIM_EVL", "1")
    monkeypatch.setenv("SVASIM_EVL_SIZE", "128")
    monkeypatch.setenv("SVASIM_PRQ_ENTRIES", "8")
    cfg = FabricConfig.from_env()
    assert {k: getattr(cfg, k) for k in KNOBS} == KNOBS
    assert set(KNOBS) <= {p.name for p in FABRIC_OPTIONS}


@pytest.mark.parametrize(
    ("field", "value", "words"),
    [("evl_size", 63, "evl_size must be 64..65535"), ("prq_entries", 1, "prq_entries must be 2..32768")],
)
def test_a_size_out_of_range_is_refused_in_one_line(field, value, words):
    with pytest.raises(ConfigError) as e:
        FabricConfig(**{field: value}).check()  # type: ignore[arg-type]
    assert words in str(e.value)


@pytest.mark.parametrize("name", ["SVASIM_AUTO_RUN", "SVASIM_EVL", "SVASIM_ASYNC_PAGE_REQUESTS"])
def test_a_switch_that_is_not_1_or_0_is_refused(monkeypatch, name):
    monkeypatch.setenv(name, "yes")
    with pytest.raises(ConfigError) as e:
        FabricConfig.from_env()
    assert name in str(e.value)


def noop_run(address: str) -> None:
    """One ENQCMD on a device that runs only when told: queued, polled (not run), advanced."""
    with Client(address) as c:
        p = c.create_process("a")
        comp = c.mmap(p.pid, 4096, populate=True)
        wq = c.open_wq(p.pid, "dsa0", 0)
        c.schedule(p.tids[0], 0)
        noop = idxd.pack_desc(idxd.DsaHwDesc(opcode=idxd.DsaOpcode.NOOP, flags=0xC, completion_addr=comp))
        assert c.enqcmd(p.tids[0], wq.portal_address, noop).outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
        assert not c.wait_completion(p.tids[0], comp).completed
        c.advance("dsa0")
        assert c.wait_completion(p.tids[0], comp).completed


def test_the_fabric_boots_with_the_knobs_records_them_and_replay_uses_them(sqlite_url):
    fab = create_server(config(sqlite_url, **KNOBS))
    try:
        with Client(fab.address) as c:
            d = c.devices()[0]
            assert (d.auto_run, d.async_page_requests, d.evl_size) == (False, True, 128)
            assert c.iommu_state().prq_entries == 8
        noop_run(fab.address)
    finally:
        fab.stop()
    with Store.open(sqlite_url) as s:
        run = s.get_run("knobs")
        dev = run.config["devices"][0]
        assert (dev["auto_run"], dev["async_page_requests"], dev["evl_support"], dev["evl_size"]) == (
            False,
            True,
            1,
            128,
        )
        assert run.config["iommu"] == {"prq_entries": 8}
        replayed, _ = config_of(run)
        assert {k: getattr(replayed, k) for k in KNOBS} == KNOBS
        # The replay runs on a fabric with the recorded knobs: with auto_run on, the
        # first poll would have completed the descriptor and the record would differ.
        report = verify(s, run.id)
        assert report.ok, report.difference.describe()


def test_a_run_recorded_before_the_knobs_existed_replays_with_the_defaults(sqlite_url):
    fab = create_server(config(sqlite_url))
    fab.stop()
    with Store.open(sqlite_url) as s:
        run = s.get_run("knobs")
        old = dict(run.config)
        old.pop("iommu")
        old["devices"] = [
            {k: v for k, v in old["devices"][0].items() if k not in ("auto_run", "async_page_requests", "evl_support")}
        ]
        replayed, _ = config_of(dataclasses.replace(run, config=old))
    assert (replayed.auto_run, replayed.async_page_requests, replayed.evl) == (True, False, False)
    assert replayed.prq_entries == PRQ_ENTRIES


def test_a_resume_with_the_same_knobs_rebuilds_and_with_others_is_refused(sqlite_url):
    fab = create_server(config(sqlite_url, **KNOBS))
    noop_run(fab.address)
    fab.stop()
    for other in ({"prq_entries": 16}, {"auto_run": True}, {"evl": False}, {"async_page_requests": False}):
        with pytest.raises(recovery.ResumeRefused) as e:
            create_server(config(sqlite_url, **{**KNOBS, **other}))
        assert "\n" not in str(e.value) and "--run NEWNAME" in str(e.value)
    fab = create_server(config(sqlite_url, **KNOBS))
    try:
        assert fab.resumed is not None
        with Client(fab.address) as c:
            assert c.devices()[0].auto_run is False and c.iommu_state().prq_entries == 8
    finally:
        fab.stop()
