"""``svasim calibrate``: a table measured on this host that ``--costs`` takes.

Expected values come from the host (``/proc/cpuinfo``, read here independently), from
arithmetic on the figures the table itself reports, and from physics that holds on any
x86 machine (a load from memory is slower than an atomic on a cached line).
"""

from __future__ import annotations

import datetime as dt
import json
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from svasim.calibrate import NOT_MEASURABLE, CalibrationError, build_table, native
from svasim.config import load_costs
from svasim.model.costs import CALIBRATED_FORMAT, CostTable
from svasim.store import Store

SVASIM = [sys.executable, "-m", "svasim.cli"]
NAMES = set(CostTable().as_dict())


def svasim(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SVASIM, *args],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


def cpuinfo() -> dict[str, str]:
    """The first CPU's block of /proc/cpuinfo."""
    out: dict[str, str] = {}
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if not line.strip():
            break
        k, _, v = line.partition(":")
        out.setdefault(k.strip(), v.strip())
    return out


def utc(text: str) -> dt.datetime:
    assert text.endswith("Z"), text
    return dt.datetime.fromisoformat(text[:-1]).replace(tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def calibrated(tmp_path_factory) -> tuple[Path, dict, dt.datetime, dt.datetime]:
    """One quick calibration through the command, with the timer built into a fresh cache."""
    tmp = tmp_path_factory.mktemp("calibrate")
    out = tmp / "costs.json"
    before = dt.datetime.now(dt.UTC).replace(microsecond=0)
    r = svasim("calibrate", "--quick", "--out", str(out), env={"SVASIM_CACHE_DIR": str(tmp / "cache")})
    after = dt.datetime.now(dt.UTC)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f"cost table written to {out}" in r.stdout
    return out, json.loads(out.read_text()), before, after


def test_quick_calibration_writes_entries_that_name_the_cpu_model_the_method_and_the_date(calibrated):
    _, table, before, after = calibrated
    assert table["format"] == CALIBRATED_FORMAT
    model = cpuinfo()["model name"]
    assert table["entries"]
    for name, e in table["entries"].items():
        assert model in e["cpu_model"], name
        assert len(e["method"]) > 40 and "median of" in e["method"], name
        assert before <= utc(e["date"]) <= after, name
        assert isinstance(e["cycles"], int) and e["cycles"] > 0, name


def test_every_cost_entry_is_either_measured_or_said_not_measurable(calibrated):
    _, table, _, _ = calibrated
    measured, skipped = set(table["entries"]), set(table["not_measured"])
    assert measured | skipped == NAMES and not measured & skipped
    assert all(why.startswith("not measurable on this host: ") for why in table["not_measured"].values())


def test_what_this_host_can_time_from_user_space_is_measured(calibrated):
    _, table, _, _ = calibrated
    flags = set(cpuinfo()["flags"].split())
    expected = {"context_switch", "trap_roundtrip", "signal_delivery", "page_fault", "user_access_per_line"}
    # XSAVEC (CPUID.(EAX=0DH,ECX=1):EAX[1]) is the XSAVES proxy; /proc/cpuinfo shows it as "xsavec".
    if {"xsave", "xsavec"} <= flags:
        expected |= {"xsaves", "xrstors"}
        if "amx_tile" in flags:
            expected.add("tile_xstate")
    else:
        assert "xsaves" in table["not_measured"]
    assert expected <= set(table["entries"])
    # Privileged instructions cannot be timed from user space on any host.
    assert {"wrmsr", "rdmsr", "tlb_flush"} <= set(table["not_measured"])


def test_cycles_are_the_nanoseconds_at_the_tsc_frequency_the_table_reports(calibrated):
    _, table, _, _ = calibrated
    mhz = table["host"]["tsc_mhz"]
    for name, e in table["entries"].items():
        assert abs(e["cycles"] - e["ns"] * mhz / 1000) <= 1, name
    info = cpuinfo()
    if "constant_tsc" in info["flags"].split():
        # An invariant TSC ticks at the nominal rate /proc/cpuinfo's "cpu MHz" shows.
        assert abs(mhz - float(info["cpu MHz"])) / float(info["cpu MHz"]) < 0.05


def test_a_load_from_memory_costs_more_than_an_atomic_on_a_cached_line(calibrated):
    _, table, _, _ = calibrated
    e = table["entries"]
    assert e["user_access_per_line"]["cycles"] > e["cache_line_dirty"]["cycles"]


def test_the_calibrated_table_loads_through_costs(calibrated):
    out, table, _, _ = calibrated
    costs = load_costs(out)
    defaults = CostTable().as_dict()
    for name, value in costs.as_dict().items():
        want = table["entries"][name]["cycles"] if name in table["entries"] else defaults[name]
        assert value == want, name
    with_file = svasim("compare", "--costs", str(out), "--policy", "linux-5.18")
    plain = svasim("compare", "--policy", "linux-5.18")
    assert with_file.returncode == 0, with_file.stderr
    row = next(ln for ln in with_file.stdout.splitlines() if "modelled cycles" in ln)
    assert row != next(ln for ln in plain.stdout.splitlines() if "modelled cycles" in ln)


def test_a_fabric_started_with_the_calibrated_table_records_its_costs(calibrated, tmp_path):
    out, table, _, _ = calibrated
    db = f"sqlite:///{tmp_path / 'svasim.db'}"
    r = svasim("demo", "--db", db, env={"SVASIM_COSTS": str(out)})
    assert r.returncode == 0 and r.stdout.rstrip().endswith("ok"), r.stdout + r.stderr
    run_id = re.search(r"run ([0-9a-f]{12}) in", r.stdout).group(1)
    store = Store.open(db)
    try:
        recorded = store.get_run(run_id).config["costs"]
    finally:
        store.close()
    assert {n: recorded[n] for n in table["entries"]} == {n: e["cycles"] for n, e in table["entries"].items()}


def test_without_out_the_table_goes_to_stdout():
    r = svasim("calibrate", "--quick")
    assert r.returncode == 0, r.stderr
    assert CostTable.from_mapping(json.loads(r.stdout)) != CostTable()


def entry(cycles: int = 100) -> dict:
    return {"cycles": cycles, "cpu_model": "Test CPU", "method": "a method", "date": "2026-01-01T00:00:00Z"}


@pytest.mark.parametrize(
    "table, message",
    [
        (
            {"format": CALIBRATED_FORMAT, "entries": {"context_swich": entry()}},
            "unknown cost entries ['context_swich']",
        ),
        (
            {"format": CALIBRATED_FORMAT, "entries": {}, "not_measured": {"xsavez": "not measurable"}},
            "unknown cost entries ['xsavez']",
        ),
        ({"context_swich": 5}, "unknown cost entries ['context_swich']"),
    ],
)
def test_a_table_with_an_unknown_entry_is_refused_with_a_one_line_error(tmp_path, table, message):
    path = tmp_path / "costs.json"
    path.write_text(json.dumps(table))
    r = svasim("compare", "--costs", str(path), "--policy", "linux-5.18")
    assert r.returncode != 0 and r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr


@pytest.mark.parametrize(
    "change, message",
    [
        ({"format": "svasim-costs/9"}, "unknown cost table format"),
        ({"measured": {}}, "unknown keys ['measured']"),
        ({"entries": {"xsaves": {**entry(), "method": ""}}}, "lacks ['method']"),
        ({"entries": {"xsaves": {k: v for k, v in entry().items() if k != "date"}}}, "lacks ['date']"),
        ({"entries": {"xsaves": entry(0)}}, "positive integer 'cycles'"),
        ({"entries": {"xsaves": 150}}, "is an object"),
        ({"entries": {"xsaves": entry()}, "not_measured": {"xsaves": "n/a"}}, "both measured and not measured"),
    ],
)
def test_a_malformed_calibrated_table_is_refused_and_names_what_is_wrong(change, message):
    with pytest.raises(ValueError, match=None) as e:
        CostTable.from_mapping({"format": CALIBRATED_FORMAT, "entries": {}, **change})
    assert message in str(e.value)


def test_a_calibrated_table_overrides_only_its_entries():
    costs = CostTable.from_mapping(
        {"format": CALIBRATED_FORMAT, "entries": {"xsaves": entry(77)}, "not_measured": {"wrmsr": "privileged"}}
    )
    assert costs.xsaves == 77 and costs.wrmsr == CostTable().wrmsr


RAW = {
    "tsc_hz": 2_000_000_000,
    "invariant_tsc": True,
    "runs": 3,
    "measurements": {
        "xsavec": {"ns": [40.0, 50.0, 45.0]},
        "xrstor_compacted": {"ns": [30.0, 30.0, 36.0]},
        "xstate": {"xcr0": "0x2e7", "mask": "0x2e7"},
        "ctx_threads": {"ns": [1000.0, 1200.0, 1100.0]},
        "ctx_processes": {"ns": [1500.0, 1500.0, 1400.0]},
        "gp_signal_roundtrip": {"ns": [1200.0, 1300.0, 1250.0]},
        "tgkill_signal_roundtrip": {"ns": [900.0, 900.0, 900.0]},
        "null_syscall": {"ns": [100.0, 100.0, 100.0]},
        "uncached_load": {"ns": [100.0, 100.0, 100.0]},
        "lock_xadd": {"ns": [9.0, 10.0, 11.0]},
        "first_touch": {"ns": [700.0, 800.0, 900.0]},
        "wrgsbase": {"ns": [5.0, 5.0, 5.0]},
        "wrpkru": {"unavailable": "CPUID.(EAX=07H,ECX=0):ECX.PKU[3] is clear"},
        "xsavec_tiles": {"ns": [80.0, 80.0, 80.0]},
        "xsavec_no_tiles": {"ns": [30.0, 30.0, 30.0]},
        "xrstor_compacted_tiles": {"ns": [130.0, 130.0, 130.0]},
        "xrstor_compacted_no_tiles": {"ns": [40.0, 40.0, 40.0]},
    },
}


def build(raw: dict) -> dict:
    return build_table(raw, cpu=1, model="Test CPU", date="2026-01-01T00:00:00Z", kernel="6.6", mhz=2000.0)


def test_the_table_takes_medians_and_converts_them_at_the_tsc_frequency():
    e = build(RAW)["entries"]
    # 2 GHz: two cycles a nanosecond; medians of the three runs.
    assert e["context_switch"]["cycles"] == 2200  # median 1100 ns
    assert e["switch_mm"]["cycles"] == 2 * (1500 - 1100)
    assert e["xsaves"]["cycles"] == 90 and e["xrstors"]["cycles"] == 60
    assert e["signal_delivery"]["cycles"] == 2 * (900 - 100)
    assert e["trap_roundtrip"]["cycles"] == 2 * (1250 - 800)
    assert e["user_access_per_line"]["cycles"] == 200 and e["cache_line_dirty"]["cycles"] == 20
    assert e["page_fault"]["cycles"] == 1600 and e["wrgsbase"]["cycles"] == 10
    # The tile data: 50 ns more to save and 90 ns more to restore, averaged.
    assert e["tile_xstate"]["cycles"] == 2 * 70


def test_what_the_timer_could_not_measure_is_said_with_its_reason_and_keeps_its_default():
    table = build(RAW)
    assert table["not_measured"]["wrpkru"] == "not measurable on this host: CPUID.(EAX=07H,ECX=0):ECX.PKU[3] is clear"
    assert CostTable.from_mapping(table).wrpkru == CostTable().wrpkru
    assert set(NOT_MEASURABLE) <= set(table["not_measured"])


def test_a_difference_that_comes_out_negative_is_not_measured_rather_than_guessed():
    raw = json.loads(json.dumps(RAW))
    raw["measurements"]["ctx_processes"]["ns"] = [900.0, 900.0, 900.0]
    table = build(raw)
    assert "switch_mm" not in table["entries"]
    assert "was not slower" in table["not_measured"]["switch_mm"]


def test_the_timer_is_built_once_per_source_and_compiler(tmp_path, monkeypatch):
    monkeypatch.setenv("SVASIM_CACHE_DIR", str(tmp_path))
    first = native.build()
    stamp = first.stat().st_mtime_ns
    assert native.build() == first and first.stat().st_mtime_ns == stamp
    assert first.is_relative_to(tmp_path)


def test_a_timer_that_does_not_compile_is_a_one_line_error(tmp_path, monkeypatch):
    (tmp_path / "native" / "calibrate").mkdir(parents=True)
    (tmp_path / "native" / "calibrate" / "calibrate.c").write_text("int main(void) { return undeclared; }\n")
    monkeypatch.setenv("SVASIM_NATIVE_DIR", str(tmp_path / "native"))
    monkeypatch.setenv("SVASIM_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(CalibrationError) as e:
        native.build()
    assert "could not build" in str(e.value) and "undeclared" in str(e.value) and "\n" not in str(e.value)


def test_a_cpu_this_process_may_not_use_is_refused_in_one_line():
    bad = max(os.sched_getaffinity(0)) + 1000
    r = svasim("calibrate", "--quick", "--cpu", str(bad))
    lines = r.stderr.strip().splitlines()
    assert r.returncode != 0 and len(lines) == 1 and f"CPU {bad} is not one" in lines[0]


def test_a_measurement_that_comes_out_as_no_cost_is_not_measured():
    raw = json.loads(json.dumps(RAW))
    raw["measurements"]["lock_xadd"]["ns"] = [0.0, 0.1, 0.0]
    raw["measurements"]["gp_signal_roundtrip"]["ns"] = [700.0, 700.0, 700.0]
    table = build(raw)
    assert "came out at 0.0 ns" in table["not_measured"]["cache_line_dirty"]
    assert "was not slower than the signal's share" in table["not_measured"]["trap_roundtrip"]
    assert table["entries"]["signal_delivery"]["cycles"] == 1600
