"""The ``svasim`` command, run as a user runs it: real processes, real ports."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time

import pytest

from svasim_client import Client
from svasim_client.demo import run_demo

from ..services.fabric_fixtures import free_port
from .processes import SVASIM, start, up, wait_ready


def svasim(*args: str, timeout: float = 120, env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*SVASIM, *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, "COLUMNS": "200", **(env or {})},
    )


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    db = f"sqlite:///{tmp_path_factory.mktemp('demo') / 'svasim.db'}"
    r = svasim("demo", "--db", db)
    assert r.returncode == 0, r.stdout + r.stderr
    run_id = re.search(r"run ([0-9a-f]{12}) in", r.stdout).group(1)
    return db, run_id, r.stdout


def test_demo_runs_and_reports_what_happened(demo_run):
    _, _, out = demo_run
    assert "ok" in out.splitlines()[-1]
    for line in (
        "ENQCMD submissions",
        "#GP faults taken",
        "IA32_PASID WRMSRs",
        "bytes moved by the device",
        "retry (ZF=1",
    ):
        assert line in out
    assert re.search(r"mismatched buffers\s+.\s+0", out)
    assert "SUCCESS x" in out


def test_trace_show_lists_events_with_filters(demo_run):
    db, run_id, _ = demo_run
    r = svasim("trace", "show", run_id, "--db", db, "--kind", "trap.gp")
    assert r.returncode == 0, r.stderr
    lines = [ln for ln in r.stdout.splitlines() if "trap.gp" in ln]
    assert len(lines) == 4  # three fixed-up threads and the rogue process
    r = svasim("trace", "show", run_id, "--db", db, "--kind", "input", "--limit", "3", "--json")
    rows = [json.loads(ln) for ln in r.stdout.splitlines()]
    assert [row["after"]["method"] for row in rows] == ["cpu.CreateProcess", "cpu.Mmap", "cpu.Mmap"]
    assert [row["seq"] for row in rows] == sorted(row["seq"] for row in rows)


def test_trace_state_time_travels(demo_run):
    db, run_id, _ = demo_run
    r = svasim("trace", "show", run_id, "--db", db, "--kind", "msr.pasid.write", "--json", "--limit", "1")
    fix = json.loads(r.stdout.splitlines()[0])
    cpu = fix["entity"]
    after = svasim("trace", "state", run_id, "--db", db, "--at", str(fix["seq"]), "--entity", cpu)
    before = svasim("trace", "state", run_id, "--db", db, "--at", str(fix["seq"] - 1), "--entity", cpu)
    assert '"ia32_pasid":"0x80000001"' in after.stdout
    assert '"ia32_pasid":"0x80000001"' not in before.stdout


def test_trace_runs_lists_the_run(demo_run):
    db, run_id, _ = demo_run
    r = svasim("trace", "runs", "--db", db)
    assert r.returncode == 0 and run_id in r.stdout


def test_unknown_run_is_a_clear_error(demo_run):
    db, _, _ = demo_run
    r = svasim("trace", "show", "nosuchrun", "--db", db)
    assert r.returncode == 2 and "no run 'nosuchrun'" in r.stderr and r.stdout == ""


def test_serve_without_peers_says_which_are_missing(tmp_path):
    r = svasim(
        "serve",
        "--services",
        "cpu",
        "--port",
        "0",
        "--db",
        f"sqlite:///{tmp_path / 'x.db'}",
        env={"SVASIM_ACCEL_ADDR": "", "SVASIM_IOMMU_ADDR": ""},
    )
    assert r.returncode == 2
    assert "accel" in r.stderr and "iommu" in r.stderr


def test_serve_rejects_unknown_service_names(tmp_path):
    r = svasim("serve", "--services", "cpu,gpu", "--db", f"sqlite:///{tmp_path / 'x.db'}")
    assert r.returncode == 2 and "gpu" in r.stderr


def split_fabric(db: str, run: str):
    ports = {n: free_port() for n in ("cpu", "iommu", "accel")}
    peer_ports = {n: free_port() for n in ("cpu", "iommu", "accel")}
    # Services reach each other on their peer listeners.
    env = {f"SVASIM_{n.upper()}_ADDR": f"127.0.0.1:{p}" for n, p in peer_ports.items()}
    procs = {}
    for name, services in (("iommu", "iommu"), ("accel", "accel"), ("cpu", "cpu,trace")):
        procs[name] = start(
            "serve",
            "--services",
            services,
            "--port",
            str(ports[name]),
            "--peer-port",
            str(peer_ports[name]),
            "--db",
            db,
            "--run",
            run,
            env={**os.environ, **env},
        )
    for name, p in procs.items():
        wait_ready(f"127.0.0.1:{ports[name]}", p)
    return ports, procs


def test_split_fabric_in_separate_processes_runs_the_demo_and_stops_on_sigterm(tmp_path):
    db = f"sqlite:///{tmp_path / 'split.db'}"
    ports, procs = split_fabric(db, "split")
    try:
        with Client(f"127.0.0.1:{ports['cpu']}") as c:
            assert c.check_health("svasim.cpu.v1.CpuService") == "SERVING"
            res = run_demo(c, threads=2, per_thread=2, size=4096, burst=20)
            assert res.ok(), res
            run_id = res.run_id
            n_events = res.events
    finally:
        for p in procs.values():
            p.send_signal(signal.SIGTERM)
        codes = {n: p.wait(30) for n, p in procs.items()}
    assert codes == {"iommu": 0, "accel": 0, "cpu": 0}, {n: p.stderr.read() for n, p in procs.items()}
    from svasim.store import Store

    store = Store.open(db)
    events = store.events(run_id, limit=1_000_000)
    assert [e.seq for e in events] == list(range(1, len(events) + 1))
    assert len(events) >= n_events
    assert {e.service for e in events} == {"cpu", "iommu", "accel"}
    by_seq = {e.seq: e for e in events}
    for e in events:
        if e.cause:
            assert e.cause < e.seq and e.cause in by_seq


def test_health_command_checks_a_running_server(tmp_path):
    with up(f"sqlite:///{tmp_path / 'h.db'}") as (addr, p):
        r = svasim("health", "--addr", addr)
        assert r.returncode == 0 and "SERVING" in r.stdout
        p.send_signal(signal.SIGTERM)
        assert p.wait(30) == 0
    time.sleep(0.1)
    r = svasim("health", "--addr", addr, "--timeout", "1")
    assert r.returncode != 0


def test_nothing_acknowledged_is_lost_when_the_server_is_killed(tmp_path):
    """With durability=commit a reply means committed: SIGKILL right after loses nothing."""
    from svasim.store import Store

    db = f"sqlite:///{tmp_path / 'kill.db'}"
    with up(db, "--durability", "commit") as (addr, p):
        with Client(addr) as c:
            run_id = c.fabric().run_id
            proc = c.create_process("k")
            acked = [c.mmap(proc.pid, 4096) for _ in range(20)]
        p.kill()
        p.wait(10)
    store = Store.open(db)
    events = store.events(run_id, limit=None)
    maps = [e for e in events if e.kind == "vma.map"]
    assert [e.after["start"] for e in maps] == acked
    assert sum(1 for e in events if e.is_input) == 21


def test_compare_prints_policies_side_by_side_and_writes_a_plot(tmp_path):
    out = tmp_path / "cmp.png"
    r = svasim(
        "compare",
        "--workload",
        "one-heavy-submitter",
        "--policy",
        "linux-5.18",
        "--policy",
        "eager-switch-mm",
        "--plot",
        str(out),
    )
    assert r.returncode == 0, r.stdout + r.stderr
    assert "linux-5.18" in r.stdout and "eager-switch-mm" in r.stdout
    assert "cycles per ENQCMD" in r.stdout and "#GP" in r.stdout
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    svg = tmp_path / "cmp.svg"
    r = svasim("compare", "--workload", "mostly-idle-threads", "--plot", str(svg))
    assert r.returncode == 0 and svg.read_text().lstrip().startswith("<?xml")


def test_compare_refuses_unknown_workloads_and_policies(tmp_path):
    r = svasim("compare", "--workload", "nope")
    assert r.returncode == 2 and "no workload file" in r.stderr
    r = svasim("compare", "--policy", "linux-9.99")
    assert r.returncode == 2 and "unknown policy" in r.stderr
    bad = tmp_path / "bad.toml"
    bad.write_text('name = "x"\n[[process]]\nname = "a"\nthreads = 0\n')
    r = svasim("compare", "--workload", str(bad))
    assert r.returncode == 2 and "threads" in r.stderr


def test_explore_finds_the_5_10_defect_and_exits_nonzero_and_5_18_is_safe(tmp_path):
    db = f"sqlite:///{tmp_path}/explore.db"
    r = svasim("explore", "ipi-during-kernel-fpu", "--policy", "linux-5.10", "--db", db)
    assert r.returncode == 3 and "kernel_fpu_begin:tif_set" in r.stdout and "pasid_lost" in r.stdout
    r = svasim("explore", "ipi-during-kernel-fpu", "--policy", "linux-5.18", "--seed", "1", "--seed", "2", "--db", db)
    assert r.returncode == 0 and "safe" in r.stdout


def test_workloads_lists_the_shipped_ones():
    r = svasim("workloads")
    assert r.returncode == 0
    for name in ("mostly-idle-threads", "one-heavy-submitter", "migrating-pool"):
        assert name in r.stdout


def test_replay_confirms_the_demo_run_is_deterministic_and_what_if_links_a_new_run(demo_run):
    db, run_id, _ = demo_run
    r = svasim("replay", run_id, "--db", db)
    assert r.returncode == 0, r.stdout
    assert "deterministic" in r.stdout
    r = svasim("replay", run_id, "--db", db, "--policy", "eager-switch-mm", "--name", "demo-eager")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "linked to" in r.stdout and "events.trap.gp" in r.stdout
    r = svasim("compare", run_id, "demo-eager", "--db", db)
    assert r.returncode == 0 and "events.xstate.pasid.write" in r.stdout
    r = svasim("trace", "delete", "demo-eager", "--db", db)
    assert r.returncode == 0 and "deleted run" in r.stdout
    assert "demo-eager" not in svasim("trace", "runs", "--db", db).stdout


def test_trace_follow_prints_what_is_committed_and_stops_when_idle(demo_run):
    db, run_id, _ = demo_run
    r = svasim("trace", "follow", run_id, "--db", db, "--from", "1", "--kind", "trap", "--idle-exit", "0.5")
    assert r.returncode == 0
    assert r.stdout.count("trap.gp") == 4


def test_export_perfetto_and_jsonl_then_import_into_another_store(demo_run, tmp_path):
    db, run_id, _ = demo_run
    trace = tmp_path / "run.json"
    r = svasim("export", run_id, "--db", db, "-o", str(trace))
    assert r.returncode == 0, r.stdout
    data = json.loads(trace.read_text())
    names = {e.get("args", {}).get("name") for e in data["traceEvents"] if e.get("ph") == "M"}
    assert "cpu 0" in names
    lines = tmp_path / "run.jsonl"
    assert svasim("export", run_id, "--db", db, "-o", str(lines), "--format", "jsonl").returncode == 0
    other = f"sqlite:///{tmp_path / 'other.db'}"
    r = svasim("import", str(lines), "--db", other, "--name", "copy")
    assert r.returncode == 0 and "imported run" in r.stdout
    assert svasim("replay", "copy", "--db", other).returncode == 0
    r = svasim("export", run_id, "--db", db, "-o", str(lines), "--format", "xml")
    assert r.returncode == 2


def test_import_sched_turns_a_trace_into_a_workload_compare_runs(tmp_path):
    from pathlib import Path

    trace = Path(__file__).resolve().parent.parent / "exchange" / "data" / "ftrace-tgid.txt"
    out = tmp_path / "w.toml"
    r = svasim("import-sched", str(trace), "-o", str(out), "--enqcmd", "3121=4")
    assert r.returncode == 0, r.stdout
    r = svasim("compare", "--workload", str(out), "--policy", "linux-5.18")
    assert r.returncode == 0 and "cycles per ENQCMD" in r.stdout
    empty = tmp_path / "empty.txt"
    empty.write_text("nothing here\n")
    r = svasim("import-sched", str(empty), "-o", str(out))
    assert r.returncode == 2 and "no sched_switch" in r.stderr
