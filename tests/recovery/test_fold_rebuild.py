"""An iommu or accel member of a split fabric rebuilds its state by fold: the store's
latest snapshot, the events after it, the models set from the folded entities, and the
models' export checked against the fold (the oracle of ``tests/oracle`` is what makes a
fold the whole state). A queued descriptor's 64 bytes come from the cpu input that
submitted it."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import delete, select, update

from svasim import recovery
from svasim.config import FabricConfig
from svasim.model.costs import CostTable
from svasim.model.state import accel_state, iommu_state
from svasim.server import FabricServer, build_cores, create_server
from svasim.store import Store
from svasim.store.schema import events as events_table
from svasim.store.schema import runs as runs_table
from svasim.store.snapshots import Snapshotter, snapshot_every
from svasim_api import idxd
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import memmove_descriptor

from .procs import first_health
from .workload import MemmoveWorkload

MEMBERS = ("iommu", "accel")


def recorded_fabric(db: str, iterations: int = 3, queued: int = 1) -> tuple[dict[str, Any], bytes]:
    """A whole fabric that ran ``iterations`` checked MEMMOVEs and then queued ``queued``
    more; its iommu and accel state as exported, and the bytes of its last queued
    descriptor, once it has stopped."""
    fab: FabricServer = create_server(FabricConfig(port=0, db=db, run="member"))
    try:
        w = MemmoveWorkload(fab.address, iterations)
        w.run(deadline=60)
        assert w.tally.done == iterations and not w.tally.wrong
        desc = memmove_descriptor(w.src, w.dst, w.size, w.comp)
        for _ in range(queued):
            r = w.call("Enqcmd", cpu_pb2.EnqcmdRequest(tid=w.tid, portal_address=w.portal, raw=desc))
            assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
        w.close()
        live = {**iommu_state(fab.cores["iommu"].iommu), **accel_state(fab.cores["accel"].accel)}
        queue = fab.cores["accel"].accel.devices["dsa0"].wqs[0].queue
        last = idxd.pack_desc(queue[-1].desc) if queue else b""
    finally:
        fab.stop()
    return recovery._norm(live), last


def member_cores(db: str) -> dict[str, Any]:
    """Fresh iommu and accel cores, as ``svasim serve --services iommu,accel`` builds them
    (their cpu peer elsewhere, never called here)."""
    config = FabricConfig(port=0, db=db, services=MEMBERS, peers={"cpu": "127.0.0.1:9"})
    cores, remote = build_cores(config, CostTable(), None)
    for p in remote:
        p.close()
    return cores


def test_iommu_and_accel_come_back_from_the_fold_exactly_as_they_were(sqlite_url: str) -> None:
    live, queued_bytes = recorded_fabric(sqlite_url)
    cores = member_cores(sqlite_url)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        assert recovery.members_to_rebuild(s, run, ("iommu", "accel", "trace")) == MEMBERS
        done = recovery.rebuild_by_fold(s, run, cores, MEMBERS)
    assert done.after_seq == run.event_count and done.descriptors == 1 and done.snapshot_seq == 0
    rebuilt = recovery._norm({**iommu_state(cores["iommu"].iommu), **accel_state(cores["accel"].accel)})
    # As they were, but for the device TLB: a device comes back from a reset with its
    # translation cache empty, and the restart records that it emptied it.
    assert rebuilt == _without_devtlb(live)
    assert sorted(t.entity for t in done.reset) == sorted(e for e in live if e.startswith("devtlb/")) != []
    # The queued descriptor is the one the client submitted, with the PASID ENQCMD put in it.
    qd = cores["accel"].accel.devices["dsa0"].wqs[0].queue[-1]
    assert idxd.pack_desc(qd.desc) == queued_bytes
    assert qd.cause.kind == "wq.accept" and qd.cause.seq is not None


def test_the_rebuild_starts_from_the_latest_snapshot(sqlite_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    live, _ = recorded_fabric(sqlite_url, iterations=4)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        snapper = Snapshotter(s, run.id, 50)
        assert snapper.step() and not snapper.step(), "one fold takes every snapshot due"
        latest = s.latest_snapshot_seq(run.id)
        assert latest == run.event_count // 50 * 50 > 0
        folded_from: list[int] = []
        real = Store._fold_range

        def spy(self: Store, conn: Any, run_id: str, start: int, *args: Any) -> Any:
            folded_from.append(start)
            return real(self, conn, run_id, start, *args)

        monkeypatch.setattr(Store, "_fold_range", spy)
        cores = member_cores(sqlite_url)
        done = recovery.rebuild_by_fold(s, run, cores, MEMBERS)
    assert done.snapshot_seq == latest and folded_from == [latest]
    rebuilt = recovery._norm({**iommu_state(cores["iommu"].iommu), **accel_state(cores["accel"].accel)})
    assert rebuilt == _without_devtlb(live)


def _without_devtlb(state: dict[str, Any]) -> dict[str, Any]:
    return {e: f for e, f in state.items() if not e.startswith("devtlb/")}


def test_snapshots_come_every_n_events_as_configured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SVASIM_SNAPSHOT_EVERY", "250")
    assert snapshot_every() == 250
    monkeypatch.setenv("SVASIM_SNAPSHOT_EVERY", "0")
    assert snapshot_every() == 0
    for bad in ("-1", "often"):
        monkeypatch.setenv("SVASIM_SNAPSHOT_EVERY", bad)
        with pytest.raises(ValueError, match="SVASIM_SNAPSHOT_EVERY"):
            snapshot_every()
    monkeypatch.delenv("SVASIM_SNAPSHOT_EVERY")
    assert snapshot_every() == 10_000


def test_a_queued_descriptor_that_does_not_match_its_input_refuses_the_resume(sqlite_url: str) -> None:
    recorded_fabric(sqlite_url)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        (seq, after) = (
            s.engine.connect()
            .execute(
                select(events_table.c.seq, events_table.c.after)
                .where(events_table.c.run_id == run.id, events_table.c.kind == "desc.queue")
                .order_by(events_table.c.seq.desc())
                .limit(1)
            )
            .one()
        )
        with s.engine.begin() as conn:
            conn.execute(
                update(events_table)
                .where(events_table.c.run_id == run.id, events_table.c.seq == seq)
                .values(after={**after, "opcode": int(idxd.DsaOpcode.MEMFILL)})
            )
        with pytest.raises(recovery.ResumeRefused) as err:
            recovery.rebuild_by_fold(s, run, member_cores(sqlite_url), MEMBERS)
    message = str(err.value)
    assert "queued descriptor desc/dsa0/" in message and "opcode" in message and "--run NEWNAME" in message


def test_a_cpu_member_is_rebuilt_by_re_execution_and_never_with_another_model_service(sqlite_url: str) -> None:
    recorded_fabric(sqlite_url, iterations=1, queued=0)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        assert recovery.members_to_rebuild(s, run, ("cpu", "trace")) == ("cpu",)
        with pytest.raises(recovery.ResumeRefused) as err:
            recovery.members_to_rebuild(s, run, ("cpu", "iommu"))
        # Starts alone are no state: a service with nothing but its starts is not rebuilt.
        assert recovery.has_model_events(s, run, "cpu")
        assert not recovery.has_model_events(s, run, "trace")
    assert "cpu service" in str(err.value) and "--run NEWNAME" in str(err.value)


def cpu_member(db: str) -> Any:
    """A fresh cpu core, as ``svasim serve --services cpu`` builds it (its peers elsewhere,
    never called here)."""
    config = FabricConfig(port=0, db=db, services=("cpu",), peers={"iommu": "127.0.0.1:9", "accel": "127.0.0.1:9"})
    cores, remote = build_cores(config, CostTable(), None)
    for p in remote:
        p.close()
    return cores["cpu"]


def whole_fabric_memory(db: str, iterations: int) -> tuple[dict[int, bytes], dict[str, Any]]:
    """Run ``iterations`` checked MEMMOVEs on a whole fabric; its frames and cpu state."""
    fab: FabricServer = create_server(FabricConfig(port=0, db=db, run="member"))
    try:
        w = MemmoveWorkload(fab.address, iterations)
        w.run(deadline=60)
        assert w.tally.done == iterations and not w.tally.wrong
        w.close()
        kernel = fab.cores["cpu"].kernel
        frames = {pfn: bytes(data) for pfn, data in kernel.memory.frames.items()}
        state = recovery.cpu_state(kernel)
    finally:
        fab.stop()
    return frames, state


def test_a_cpu_member_comes_back_by_re_execution_with_every_byte_of_its_memory(sqlite_url: str) -> None:
    frames, state = whole_fabric_memory(sqlite_url, 3)
    core = cpu_member(sqlite_url)
    ports = core.kernel.accel, core.kernel.iommu
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        done = recovery.rebuild_cpu(s, run, core)
    assert done.how == "re-execution" and done.after_seq == run.event_count and done.completed == []
    assert done.inputs == len([e for e in s.events(run.id, kind="input", limit=None)]) > 0
    # Memory contents are folded only as digests: re-execution brought back the bytes.
    assert {pfn: bytes(data) for pfn, data in core.kernel.memory.frames.items()} == frames
    assert recovery.cpu_state(core.kernel) == state
    # The rebuilt kernel calls its peers through the member's own ports.
    assert (core.kernel.accel, core.kernel.iommu) == ports


def test_a_cpu_member_whose_record_differs_from_its_re_execution_is_refused(sqlite_url: str) -> None:
    whole_fabric_memory(sqlite_url, 2)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        write = s.events(run.id, kind="dma.write", limit=None)[-1]
        with s.engine.begin() as conn:
            conn.execute(
                update(events_table)
                .where(events_table.c.run_id == run.id, events_table.c.seq == write.seq)
                .values(detail={**write.detail, "crc32": write.detail["crc32"] ^ 1})
            )
        with pytest.raises(recovery.ResumeRefused) as err:
            recovery.rebuild_cpu(s, run, cpu_member(sqlite_url))
    message = str(err.value)
    assert f"seq {write.seq}" in message and "crc32" in message and "--run NEWNAME" in message


def test_a_cpu_request_the_kill_cut_short_before_its_peer_call_is_completed_as_refused(sqlite_url: str) -> None:
    whole_fabric_memory(sqlite_url, 2)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        evs = s.events(run.id, limit=None)
        # The last WaitCompletion, cut right after its input: the kill landed before the
        # cpu called the accel, so the accel made nothing of it.
        wait = [e for e in evs if e.kind == "input" and e.after["method"] == "cpu.WaitCompletion"][-1]
        with s.engine.begin() as conn:
            conn.execute(delete(events_table).where(events_table.c.run_id == run.id, events_table.c.seq > wait.seq))
            conn.execute(update(runs_table).where(runs_table.c.id == run.id).values(next_seq=wait.seq + 1))
        run = s.get_run("member")
        done = recovery.rebuild_cpu(s, run, cpu_member(sqlite_url))
    assert done.after_seq == wait.seq
    # Finished as far as it goes without the peer: refused, for the client to retry.
    last = done.completed[-1]
    assert last.kind == "request.rejected" and last.detail["reason"] == recovery.CUT_SHORT_REASON
    assert last.detail["code"] == "UNAVAILABLE"
    assert all(t.service == "cpu" for t in done.completed)


@pytest.mark.parametrize("cut_after", ["desc.complete", "desc.free"])
def test_a_descriptor_whose_execution_the_kill_cut_short_is_queued_again(sqlite_url: str, cut_after: str) -> None:
    recorded_fabric(sqlite_url, iterations=2, queued=0)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        evs = s.events(run.id, limit=None)
        # The record ends inside the last MEMMOVE's execution, after its completion and
        # before its WQ's wq.dispatch, as a SIGKILL between two commits leaves it.
        done = [e for e in evs if e.kind == cut_after][-1]
        desc_id = int(done.entity.rsplit("/", 1)[1])
        queued_at = next(e for e in evs if e.kind == "desc.queue" and e.entity == done.entity)
        completed = next(e for e in evs if e.kind == "desc.complete" and e.entity == done.entity)
        with s.engine.begin() as conn:
            conn.execute(delete(events_table).where(events_table.c.run_id == run.id, events_table.c.seq > done.seq))
            conn.execute(update(runs_table).where(runs_table.c.id == run.id).values(next_seq=done.seq + 1))
        run = s.get_run("member")
        cores = member_cores(sqlite_url)
        rebuilt = recovery.rebuild_by_fold(s, run, cores, MEMBERS)
    assert rebuilt.descriptors == 1 and rebuilt.rollback
    assert {t.kind for t in rebuilt.rollback} == {recovery.ROLLBACK_KIND}
    assert all(t.detail["desc"] == desc_id and t.cause == completed.seq for t in rebuilt.rollback)
    # The descriptor is queued again, as it was before it began, and runs anew.
    wq = cores["accel"].accel.devices["dsa0"].wqs[0]
    assert [qd.id for qd in wq.queue] == [desc_id]
    entity = recovery._norm(accel_state(cores["accel"].accel))[done.entity]
    assert entity == queued_at.after
    # The rollback is a restart's record, not a model transition: a replay skips it.
    assert all(recovery.is_lifecycle(t) for t in rebuilt.rollback)


def test_a_record_that_ends_between_two_calls_needs_no_rollback(sqlite_url: str) -> None:
    recorded_fabric(sqlite_url, iterations=2, queued=1)
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        assert recovery.rebuild_by_fold(s, run, member_cores(sqlite_url), MEMBERS).rollback == []


def test_the_record_decides_whether_a_peer_reconciles_with_a_new_incarnation(sqlite_url: str) -> None:
    from svasim.model.transition import Transition

    with Store.open(sqlite_url) as s:
        run = s.create_run(name="starts", config={}, policy="linux-5.18", seed=0, version="t")
        s.append(run.id, recovery.start_events(("iommu",), "aaaaaaaaaaaa", 0, resumed=False))
        s.append(run.id, [Transition("iommu", f"pasid/{n}", "pasid.alloc", None, {"mm": n}) for n in (1, 2)])
        s.append(run.id, recovery.start_events(("iommu",), "bbbbbbbbbbbb", 3, resumed=True, rebuilt="fold"))
        s.append(run.id, recovery.start_events(("iommu",), "cccccccccccc", 0, resumed=False))
        assert [x.rebuilt for x in recovery.recorded_starts(s, run.id)] == ["new", "fold", "new"]

        def why(incarnation: str, last: int) -> str:
            return recovery.reconcile_check(s, run.id, "iommu", incarnation, last)

        assert why("bbbbbbbbbbbb", 3) == "", "it rebuilt everything the peer saw"
        assert "saw seq 4" in why("bbbbbbbbbbbb", 4), "a peer saw more than it rebuilt"
        assert "started empty" in why("cccccccccccc", 0)
        assert "no start of incarnation dddddddddddd" in why("dddddddddddd", 0)
        assert "no start" in recovery.reconcile_check(s, run.id, "accel", "bbbbbbbbbbbb", 0)


def test_a_member_is_not_serving_while_it_rebuilds_and_records_its_start(
    sqlite_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    import grpc

    from svasim_api.errors import error_info
    from svasim_api.iommu.v1 import iommu_pb2
    from svasim_client import Client

    from ..services.fabric_fixtures import free_ports

    recorded_fabric(sqlite_url, iterations=1, queued=0)
    release = threading.Event()
    real = recovery.rebuild_by_fold

    def slow(*args: Any, **kw: Any) -> recovery.Rebuilt:
        assert release.wait(30)
        return real(*args, **kw)

    monkeypatch.setattr(recovery, "rebuild_by_fold", slow)
    port, cpu, accel, peer = free_ports(4)
    config = FabricConfig(
        port=port,
        db=sqlite_url,
        run="member",
        services=("iommu",),
        peer_port=peer,
        peers={"cpu": f"127.0.0.1:{cpu}", "accel": f"127.0.0.1:{accel}"},
    )
    started: list[FabricServer] = []
    t = threading.Thread(target=lambda: started.append(create_server(config)))
    t.start()
    try:
        with Client(f"127.0.0.1:{port}") as c:
            assert first_health(c) == "NOT_SERVING"
            with pytest.raises(grpc.RpcError) as err:
                c.iommu.GetIommu(iommu_pb2.GetIommuRequest(), timeout=5)
            assert err.value.code() == grpc.StatusCode.UNAVAILABLE and error_info(err.value).reason == "RECOVERING"
            release.set()
            t.join(30)
            assert started and started[0].rebuilt is not None
            assert [a.pasid for a in c.iommu_state().pasids] == [1]
    finally:
        release.set()
        t.join(30)
        for f in started:
            f.stop()
    with Store.open(sqlite_url) as s:
        run = s.get_run("member")
        last = s.events(run.id, after_seq=run.event_count - 1, limit=1)[0]
    assert (last.kind, last.service, last.after["rebuilt"]) == ("service.start", "iommu", "fold")
    assert last.after["resumed_after_seq"] == last.seq - 1
