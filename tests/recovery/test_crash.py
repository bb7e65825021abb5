"""Crash tests: svasim killed with SIGKILL at random points of a MEMMOVE workload that
checks every destination byte and retries what is refused.

``svasim up`` (the whole fabric in one process) is restarted on the same run each time
and resumes it: the workload finishes, every acknowledged request is in the store, the
log is gap-free and the whole run, restarts included, re-executes identically. In the
split fabric the iommu and the accel are each killed at random points and restarted on
the same run: they resume their part by fold, the cpu by re-executing its inputs
(its memory comes back only so), their peers reconcile, and the workload finishes with
every byte right and every acknowledged request recorded; killing any of the three in
turn, the cpu's record holds the others' failures and restarts, and ``svasim replay``
of the run, its kills and restarts included, reports it identical. A cpu started on a new
run instead is refused by the peers that hold its state; nothing acknowledged is lost
and no SUCCESS ever comes with a wrong byte.

CI-sized by default; ``make crash`` sets SVASIM_CRASH_KILLS / SVASIM_CRASH_ITERATIONS /
SVASIM_CRASH_SECONDS for the full size. SVASIM_CRASH_SEED replays one choice of kill points.
"""

from __future__ import annotations

import os
import random
import threading
import time
from pathlib import Path

import pytest

from svasim import recovery, replay
from svasim.store import Store

from ..services.fabric_fixtures import free_ports
from .procs import Proc, run_to_end, wait_serving
from .split import SplitFabric
from .workload import MemmoveWorkload

KILLS = int(os.environ.get("SVASIM_CRASH_KILLS", "3"))
ITERATIONS = int(os.environ.get("SVASIM_CRASH_ITERATIONS", "40"))
#: How long the workload goes on against a split fabric after a kill.
SECONDS = float(os.environ.get("SVASIM_CRASH_SECONDS", "3"))
SEED = int(os.environ.get("SVASIM_CRASH_SEED", str(time.time_ns() % 1_000_000)))


def kill_points(rng: random.Random, kills: int, iterations: int) -> list[int]:
    """Iterations after which to kill, distinct and in order."""
    return sorted(rng.sample(range(1, iterations), min(kills, iterations - 1)))


def gap_free(store: Store, run: str) -> list:
    evs = store.events(store.get_run(run).id, limit=None)
    assert [e.seq for e in evs] == list(range(1, len(evs) + 1)), f"run {run} has gaps"
    return evs


def acked_inputs(evs: list) -> set[tuple[str, int]]:
    return {(e.after.get("request_id"), e.seq) for e in evs if e.kind == "input"}


def wait_for(w: MemmoveWorkload, done: int, worker: threading.Thread) -> None:
    end = time.monotonic() + 120
    while w.tally.done < done and worker.is_alive():
        assert time.monotonic() < end, f"workload stuck at {w.tally.done}"
        time.sleep(0.002)


def test_up_killed_at_random_points_resumes_and_loses_nothing_acknowledged(crash_store: str, tmp_path: Path) -> None:
    rng = random.Random(SEED)
    points = kill_points(rng, KILLS, ITERATIONS)
    port = free_ports(1)[0]
    address = f"127.0.0.1:{port}"
    proc = Proc(["up", "--port", str(port), "--db", crash_store, "--run", "crash"], tmp_path / "up.log").start()
    wait_serving(address, proc)
    w = MemmoveWorkload(address, ITERATIONS)
    worker = threading.Thread(target=w.run, kwargs={"deadline": 60 + 20 * KILLS})
    worker.start()
    try:
        for point in points:
            wait_for(w, point, worker)
            # Somewhere inside the next iteration's requests.
            time.sleep(rng.uniform(0, 0.02))
            proc.kill()
            proc.start()
            wait_serving(address, proc)
        worker.join(60 + 20 * KILLS)
    finally:
        w.stop.set()
        worker.join(30)
        w.close()
        proc.stop()
    note = f"(SVASIM_CRASH_SEED={SEED}, kills after iterations {points})"
    assert w.tally.done == ITERATIONS, f"the workload did not finish {note}: {w.tally}"
    assert not w.tally.wrong, f"wrong bytes after SUCCESS {note}"
    # While it was down the fabric was unreachable or rebuilding; nothing else.
    assert {code for code, _ in w.tally.refusals} <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, note
    with Store.open(crash_store) as s:
        evs = gap_free(s, "crash")
        assert set(w.tally.acked) <= acked_inputs(evs), f"an acknowledged request is missing {note}"
        starts = [e for e in evs if e.kind == "service.start"]
        # Every start is recorded: the first one and each restart.
        assert len(starts) == 3 * (len(points) + 1)
        assert len({e.after["incarnation"] for e in starts}) == len(points) + 1
        assert recovery.verify_run(s, "crash") is None, note
    # Resuming the finished run once more rebuilds it again, identically.
    done = run_to_end(["up", "--port", "0", "--db", crash_store, "--run", "crash", "--policy", "linux-5.10"])
    assert done.returncode != 0 and "policy" in done.stderr and "--run NEWNAME" in done.stderr


@pytest.mark.parametrize("victim", ["iommu", "accel", "cpu", "cpu+iommu", "cpu+iommu+accel"])
def test_split_fabric_member_killed_at_random_points_resumes_and_the_workload_finishes(
    crash_store: str, tmp_path: Path, victim: str
) -> None:
    rng = random.Random(SEED)
    points = kill_points(rng, KILLS, ITERATIONS)
    # "cpu+iommu", "cpu+iommu+accel": each kill picks one of them, so that a cpu rebuilt
    # by re-execution meets in its record the peer failures and peer restarts the others'
    # kills made, and an accel whose cpu or iommu failed it in the middle of a descriptor
    # (the descriptor goes back to its WQ, recorded) is later rebuilt from that record.
    victims = [rng.choice(victim.split("+")) for _ in points]
    fabric = SplitFabric(crash_store, "crash-split", tmp_path).start_all()
    w = MemmoveWorkload(fabric.address("cpu"), ITERATIONS, timeout=10)
    # A new process every few copies: its PASID bound by the iommu, its pages walked,
    # so that the workload needs the victim after each of its restarts.
    worker = threading.Thread(target=w.run, kwargs={"new_process_every": 4, "deadline": 60 + 20 * KILLS})
    worker.start()
    try:
        for point, name in zip(points, victims, strict=True):
            wait_for(w, point, worker)
            time.sleep(rng.uniform(0, 0.02))
            fabric.procs[name].kill()
            fabric.start(name)
        worker.join(60 + 20 * KILLS)
    finally:
        w.stop.set()
        worker.join(30)
        w.close()
        fabric.stop()
    note = f"(SVASIM_CRASH_SEED={SEED}, {victims} killed after iterations {points})"
    assert w.tally.done == ITERATIONS, f"the workload did not finish {note}: {w.tally}"
    assert not w.tally.wrong, f"wrong bytes after SUCCESS {note}"
    # Every process lives on with its PASID: none was handed out twice.
    assert len(set(w.tally.pasids)) == len(w.tally.pasids) > len(points), f"{note}: {w.tally.pasids}"
    # While it was down or rebuilding, its peers could not reach it; never a stale answer
    # (a request a cpu kill cut short is refused UNAVAILABLE, CUT_SHORT_BY_RESTART).
    assert {code for code, _ in w.tally.refusals} <= {"UNAVAILABLE", "DEADLINE_EXCEEDED"}, f"{note}: {w.tally}"
    with Store.open(crash_store) as s:
        evs = gap_free(s, "crash-split")
        assert set(w.tally.acked) <= acked_inputs(evs), f"an acknowledged request is missing {note}"
        for name in SplitFabric.services():
            starts = [e for e in evs if e.kind == "service.start" and e.service == name]
            how = "re-execution" if name == "cpu" else "fold"
            assert [e.after["rebuilt"] for e in starts] == ["new"] + [how] * victims.count(name), note
            for e in starts[1:]:
                # Each rebuilt its service's record up to its own start (its peers went
                # on recording their refusals meanwhile), but for the rollback of a
                # descriptor cut short and an accel's emptied device TLB, or the rest of
                # a cpu request cut short.
                between = [x for x in evs if e.after["resumed_after_seq"] < x.seq < e.seq and x.service == name]
                if name == "cpu":
                    assert all(x.kind != "input" for x in between), note
                else:
                    assert all(x.kind in (recovery.ROLLBACK_KIND, recovery.RESET_KIND) for x in between), note
        # The whole run, its kills and restarts included, re-executes identically: the
        # failures and the rebuilt states are the record's, every other transition is made
        # again exactly (svasim.recovery.verify_split).
        report = replay.verify(s, "crash-split")
        assert report.ok, f"{note}\n{report.difference.describe() if report.difference else ''}"
        assert report.restarts == len(points), note


def test_split_fabric_cpu_started_on_another_run_is_refused_never_corrupting(crash_store: str, tmp_path: Path) -> None:
    victim = "cpu"
    rng = random.Random(SEED)
    fabric = SplitFabric(crash_store, "crash-split", tmp_path).start_all()
    w = MemmoveWorkload(fabric.address("cpu"), 10**6, timeout=10)
    worker = threading.Thread(target=w.run, kwargs={"resetup_after": 3, "deadline": 60 + SECONDS})
    worker.start()
    try:
        wait_for(w, rng.randrange(2, 12), worker)
        time.sleep(rng.uniform(0, 0.02))
        fabric.procs[victim].kill()
        before = w.tally.successes
        fabric.start(victim, run="crash-split-2")
        time.sleep(SECONDS)
    finally:
        w.stop.set()
        worker.join(60)
        w.close()
        fabric.stop()
    note = f"(SVASIM_CRASH_SEED={SEED}, {victim} killed after {before} copies)"
    assert not w.tally.wrong, f"wrong bytes after SUCCESS {note}"
    # The accel's queues and the iommu's PASIDs are of the old cpu's processes: every
    # copy after the restart is refused.
    assert w.tally.successes <= before + 1, note  # a copy checked as the kill landed
    assert w.tally.refusals[("FAILED_PRECONDITION", "PEER_RESTARTED")] > 0, f"{note}: {w.tally.refusals}"
    with Store.open(crash_store) as s:
        recorded = acked_inputs(gap_free(s, "crash-split")) | acked_inputs(gap_free(s, "crash-split-2"))
    assert set(w.tally.acked) <= recorded, f"an acknowledged request is missing {note}"
