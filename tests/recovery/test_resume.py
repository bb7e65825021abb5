"""A process started on a run that has events resumes it: the state comes back from the
record, the restart is recorded, and a run that cannot be resumed is refused whole."""

from __future__ import annotations

import threading

import grpc
import pytest
from sqlalchemy import delete, update

from svasim import __version__, recovery
from svasim.config import FabricConfig
from svasim.server import create_server
from svasim.store import Store
from svasim.store.schema import events as events_table
from svasim.store.schema import runs as runs_table
from svasim_api.cpu.v1 import cpu_pb2
from svasim_api.errors import error_info
from svasim_client import Client

from ..services.fabric_fixtures import free_ports, running_fabric
from .procs import first_health
from .workload import MemmoveWorkload, pattern


def whole(db: str, run: str = "resumed", **kw: object) -> FabricConfig:
    return FabricConfig(**{"port": 0, "db": db, "run": run, **kw})  # type: ignore[arg-type]


def workload(address: str, iterations: int = 3) -> MemmoveWorkload:
    w = MemmoveWorkload(address, iterations)
    w.run(deadline=60)
    w.close()
    assert w.tally.done == iterations and not w.tally.wrong
    return w


def events(db: str, run: str) -> list:
    with Store.open(db) as s:
        return s.events(s.get_run(run).id, limit=None)


def test_up_on_a_run_with_events_rebuilds_its_state_and_records_the_restart(sqlite_url: str) -> None:
    fab = create_server(whole(sqlite_url))
    w = workload(fab.address)
    with Client(fab.address) as c:
        before_proc = c.get_process(w.pid)
        before_devs = c.devices()
        before_dst = c.read(w.pid, w.dst, w.size)
    fab.stop()
    last = events(sqlite_url, "resumed")[-1].seq

    fab = create_server(whole(sqlite_url))
    try:
        assert fab.resumed is not None and fab.resumed.after_seq == last
        with Client(fab.address) as c:
            assert c.check_health() == "SERVING"
            assert c.get_process(w.pid) == before_proc
            assert c.devices() == before_devs
            # Memory contents come back by re-execution: the last copy is still there.
            assert c.read(w.pid, w.dst, w.size) == before_dst == pattern(2, w.size)
            # The kernel goes on numbering (pids and tids share one space, as alloc_pid
            # hands out both): a new process is not pid 1 again.
            assert c.create_process("next").pid == max(w.pid, w.tid) + 1
        starts = [e for e in events(sqlite_url, "resumed") if e.kind == "service.start"]
        # Every start is recorded: the first (on a new run, before any request) and the resume.
        first, again = starts[:3], starts[3:]
        assert [e.seq for e in first] == [1, 2, 3]
        assert {e.service for e in again} == {"cpu", "iommu", "accel"}
        assert {e.entity for e in again} == {"service/cpu", "service/iommu", "service/accel"}
        for e in first:
            assert e.after["rebuilt"] == "new" and e.after["resumed_after_seq"] == 0
            assert e.after["incarnation"] != fab.incarnation
        for e in again:
            assert e.seq > last
            assert e.after == {
                "incarnation": fab.incarnation,
                "version": __version__,
                "services": ["cpu", "iommu", "accel", "trace"],
                "resumed_after_seq": last,
                "rebuilt": "re-execution",
            }
        # The work goes on on the rebuilt state, and the whole run re-executes identically.
        w2 = MemmoveWorkload(fab.address, 2)
        w2.run(deadline=60)
        assert w2.tally.done == 2 and not w2.tally.wrong
        w2.close()
    finally:
        fab.stop()
    with Store.open(sqlite_url) as s:
        assert recovery.verify_run(s, "resumed") is None


def test_each_start_has_a_new_incarnation(sqlite_url: str) -> None:
    seen = set()
    for _ in range(3):
        fab = create_server(whole(sqlite_url))
        seen.add(fab.incarnation)
        with Client(fab.address) as c:
            c.create_process("p")
        fab.stop()
    assert len(seen) == 3
    starts = [e.after["incarnation"] for e in events(sqlite_url, "resumed") if e.kind == "service.start"]
    # Every start is recorded, the first one (which found nothing to resume) too.
    assert set(starts) == seen and len(starts) == 9


def test_a_request_cut_short_is_completed_from_its_recorded_input(sqlite_url: str) -> None:
    fab = create_server(whole(sqlite_url))
    w = workload(fab.address, 1)
    fab.stop()
    recorded = events(sqlite_url, "resumed")
    # Cut the record inside the last WaitCompletion (the device runs the MEMMOVE in it),
    # as a SIGKILL between two commits would.
    inputs = [e for e in recorded if e.kind == "input"]
    wait = max(e.seq for e in inputs if e.after["method"] == "cpu.WaitCompletion")
    following = min((e.seq for e in inputs if e.seq > wait), default=recorded[-1].seq + 1)
    tail = [e for e in recorded if wait < e.seq < following]
    assert len(tail) >= 2, "the MEMMOVE's completion makes transitions"
    cut = tail[0].seq
    with Store.open(sqlite_url) as s:
        run = s.get_run("resumed")
        with s.engine.begin() as conn:
            conn.execute(delete(events_table).where(events_table.c.run_id == run.id, events_table.c.seq > cut))
            conn.execute(update(runs_table).where(runs_table.c.id == run.id).values(next_seq=cut + 1))

    fab = create_server(whole(sqlite_url))
    try:
        assert fab.resumed is not None
        assert [(t.entity, t.kind) for t in fab.resumed.completed] == [(e.entity, e.kind) for e in tail[1:]]
        with Client(fab.address) as c:
            assert c.read(w.pid, w.dst, w.size) == pattern(0, w.size)
    finally:
        fab.stop()
    after = events(sqlite_url, "resumed")
    assert [e.seq for e in after] == list(range(1, len(after) + 1))
    with Store.open(sqlite_url) as s:
        assert recovery.verify_run(s, "resumed") is None


def _refused(db: str, config: FabricConfig) -> str:
    before = len(events(db, config.run))
    with pytest.raises(recovery.ResumeRefused) as err:
        create_server(config)
    assert len(events(db, config.run)) == before, "a refused start records nothing"
    message = str(err.value)
    assert "\n" not in message and "--run NEWNAME" in message
    return message


def test_a_run_of_another_svasim_version_is_refused(sqlite_url: str) -> None:
    fab = create_server(whole(sqlite_url))
    workload(fab.address, 1)
    fab.stop()
    with Store.open(sqlite_url) as s, s.engine.begin() as conn:
        conn.execute(update(runs_table).where(runs_table.c.name == "resumed").values(version="0.0.1"))
    message = _refused(sqlite_url, whole(sqlite_url))
    assert "svasim 0.0.1" in message and __version__ in message


def test_a_run_whose_re_execution_diverges_is_refused_naming_the_seq(sqlite_url: str) -> None:
    fab = create_server(whole(sqlite_url))
    workload(fab.address, 1)
    fab.stop()
    victim = next(e for e in events(sqlite_url, "resumed") if e.kind == "pasid.alloc")
    with Store.open(sqlite_url) as s, s.engine.begin() as conn:
        conn.execute(
            update(events_table)
            .where(events_table.c.seq == victim.seq, events_table.c.run_id == s.get_run("resumed").id)
            .values(after={**victim.after, "mm": 999})
        )
    message = _refused(sqlite_url, whole(sqlite_url))
    assert f"seq {victim.seq}" in message and "after" in message


def test_a_run_recorded_with_other_settings_is_refused(sqlite_url: str) -> None:
    fab = create_server(whole(sqlite_url))
    workload(fab.address, 1)
    fab.stop()
    message = _refused(sqlite_url, whole(sqlite_url, policy="linux-5.10"))
    assert "linux-5.18" in message and "linux-5.10" in message


def test_a_part_of_a_split_fabric_never_starts_empty_on_a_run_with_its_events(sqlite_url: str) -> None:
    fab = create_server(whole(sqlite_url))
    workload(fab.address, 1)
    fab.stop()
    a, b, c = free_ports(3)
    # A cpu rebuilds alone (by re-execution), or with the whole fabric, never with a part.
    peers = {"accel": f"127.0.0.1:{b}"}
    message = _refused(sqlite_url, whole(sqlite_url, services=("cpu", "iommu"), peers=peers, peer_port=c))
    assert "cpu service" in message and "--run NEWNAME" in message
    alone = create_server(whole(sqlite_url, services=("cpu",), peers={**peers, "iommu": f"127.0.0.1:{a}"}, peer_port=c))
    try:
        assert alone.rebuilt is not None and alone.rebuilt.how == "re-execution"
    finally:
        alone.stop()
    # A process with no model service of the run has nothing to rebuild.
    trace = create_server(whole(sqlite_url, services=("trace",)))
    trace.stop()


def test_health_is_not_serving_and_requests_are_refused_while_recovering(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    fab = create_server(whole(sqlite_url))
    workload(fab.address, 1)
    fab.stop()
    release = threading.Event()
    real = recovery.resume

    def slow_resume(*args: object, **kw: object) -> recovery.Resumed:
        assert release.wait(30)
        return real(*args, **kw)  # type: ignore[arg-type]

    monkeypatch.setattr(recovery, "resume", slow_resume)
    port = free_ports(1)[0]
    started: list = []
    t = threading.Thread(target=lambda: started.append(create_server(whole(sqlite_url, port=port))))
    t.start()
    try:
        with Client(f"127.0.0.1:{port}") as c:
            assert first_health(c) == "NOT_SERVING"
            with pytest.raises(grpc.RpcError) as err:
                c.cpu.GetProcess(cpu_pb2.GetProcessRequest(pid=1), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(err.value).reason == "RECOVERING"
            # A stream of submissions is refused the same way, before any is read.
            with pytest.raises(grpc.RpcError) as err:
                list(c.cpu.Submit(iter([cpu_pb2.SubmitRequest()]), timeout=5))
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE
            assert error_info(err.value).reason == "RECOVERING"
            release.set()
            t.join(30)
            assert c.check_health() == "SERVING"
            assert c.get_process(1).pid == 1
    finally:
        release.set()
        t.join(30)
        for f in started:
            f.stop()


def test_the_run_of_a_split_fabric_resumes_whole_in_one_process(sqlite_url: str) -> None:
    with running_fabric("grpc", sqlite_url) as split:
        w = workload(split.servers[-1].address, 2)
        run = split.servers[-1].config.run
    fab = create_server(whole(sqlite_url, run=run))
    try:
        assert fab.resumed is not None and fab.resumed.inputs > 0
        with Client(fab.address) as c:
            assert c.read(w.pid, w.dst, w.size) == pattern(1, w.size)
        w.address = fab.address
        w.iterations = 4
        w.run(deadline=30)
        assert w.tally.done == 4 and not w.tally.wrong
    finally:
        w.close()
        fab.stop()
    with Store.open(sqlite_url) as s:
        assert recovery.verify_run(s, run) is None
