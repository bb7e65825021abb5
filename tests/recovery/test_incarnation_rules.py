"""The rules a process applies to the incarnations of its peers."""

from __future__ import annotations

import pytest

from svasim.wiring.incarnation import (
    EXPECT_KEY,
    INCARNATION_KEY,
    LAST_KEY,
    Identity,
    Incarnations,
    PeerRestarted,
    expected_from,
    identity_from,
    new_incarnation,
)


def tracker(held: dict[str, str], run: str = "r1") -> Incarnations:
    return Incarnations(Identity("aaaaaaaaaaaa", ("accel",), run), lambda svc: held.get(svc, ""))


def test_identity_travels_as_one_header_and_comes_back_whole() -> None:
    me = Identity(new_incarnation(), ("cpu", "trace"), "0123456789ab")
    assert Identity.parse(me.header()) == me
    assert identity_from([("other", "x"), (INCARNATION_KEY, me.header())]) == me
    assert identity_from([(INCARNATION_KEY, "garbage")]) is None
    assert identity_from(None) is None


def test_incarnations_are_fresh_12_hex_ids() -> None:
    ids = {new_incarnation() for _ in range(100)}
    assert len(ids) == 100 and all(len(i) == 12 and int(i, 16) >= 0 for i in ids)


def test_first_meeting_pins_and_the_same_incarnation_passes() -> None:
    t = tracker({"cpu": "WQ files"})
    cpu = Identity("bbbbbbbbbbbb", ("cpu",), "r1")
    t.meet(cpu)
    t.meet(cpu)
    assert t.seen == {"cpu": "bbbbbbbbbbbb"}
    # Calls to the cpu now name the incarnation whose state we hold.
    assert dict(t.metadata("cpu"))[EXPECT_KEY] == "bbbbbbbbbbbb"
    assert EXPECT_KEY not in dict(t.metadata("iommu"))


def test_a_new_incarnation_of_a_peer_whose_state_is_held_is_refused_naming_both() -> None:
    t = tracker({"cpu": "clients of wq dsa0.0"})
    t.meet(Identity("bbbbbbbbbbbb", ("cpu",), "r1"))
    with pytest.raises(PeerRestarted) as err:
        t.meet(Identity("cccccccccccc", ("cpu",), "r1"))
    e = err.value
    assert (e.code, e.reason) == ("FAILED_PRECONDITION", "PEER_RESTARTED")
    assert e.metadata == {"service": "cpu", "known_incarnation": "bbbbbbbbbbbb", "incarnation": "cccccccccccc"}
    assert "clients of wq dsa0.0" in e.message
    # And it stays refused: the old state is still held.
    with pytest.raises(PeerRestarted):
        t.meet(Identity("cccccccccccc", ("cpu",), "r1"))


def test_a_new_incarnation_is_adopted_when_nothing_of_it_is_held() -> None:
    t = tracker({})
    t.meet(Identity("bbbbbbbbbbbb", ("cpu",), "r1"))
    t.meet(Identity("cccccccccccc", ("cpu",), "r1"))
    assert t.seen["cpu"] == "cccccccccccc"


def test_a_caller_holding_another_incarnation_of_this_process_is_refused() -> None:
    t = tracker({})
    t.check_expected(None)
    t.check_expected("aaaaaaaaaaaa")
    with pytest.raises(PeerRestarted) as err:
        t.check_expected("dddddddddddd")
    assert err.value.metadata["known_incarnation"] == "dddddddddddd"
    assert err.value.metadata["incarnation"] == "aaaaaaaaaaaa"
    assert expected_from([(EXPECT_KEY, "dddddddddddd")]) == "dddddddddddd"


def test_a_peer_recording_into_another_run_is_refused() -> None:
    t = tracker({})
    with pytest.raises(PeerRestarted) as err:
        t.meet(Identity("bbbbbbbbbbbb", ("cpu",), "r2"))
    assert err.value.reason == "PEER_IN_OTHER_RUN"
    assert t.seen == {}


def test_services_of_this_process_are_not_peers() -> None:
    t = tracker({"accel": "x"})
    t.meet(Identity("bbbbbbbbbbbb", ("accel", "cpu"), "r1"))
    assert t.seen == {"cpu": "bbbbbbbbbbbb"}


def test_a_reply_carries_the_peers_last_seq_and_the_largest_is_kept() -> None:
    t = tracker({"cpu": "WQ files"})
    header = Identity("bbbbbbbbbbbb", ("cpu",), "r1").header()
    got = identity_from([(INCARNATION_KEY, header), (LAST_KEY, "41")])
    assert got is not None and got.last == 41 and got == Identity("bbbbbbbbbbbb", ("cpu",), "r1")
    t.meet(got)
    t.meet(identity_from([(INCARNATION_KEY, header), (LAST_KEY, "7")]))  # type: ignore[arg-type]
    assert t.last_seen == {"cpu": 41}


def test_a_new_incarnation_the_record_proves_consistent_is_reconciled() -> None:
    asked: list[tuple[str, str, int]] = []

    def reconcile(svc: str, incarnation: str, last: int) -> str:
        asked.append((svc, incarnation, last))
        return ""

    t = Incarnations(Identity("aaaaaaaaaaaa", ("accel",), "r1"), lambda svc: "PASIDs", reconcile)
    t.meet(Identity("bbbbbbbbbbbb", ("iommu",), "r1", last=90))
    t.meet(Identity("cccccccccccc", ("iommu",), "r1", last=120))
    assert asked == [("iommu", "cccccccccccc", 90)]
    assert t.seen == {"iommu": "cccccccccccc"} and t.last_seen == {"iommu": 120}
    assert t.reconciled == {"iommu": ("bbbbbbbbbbbb", "cccccccccccc")}


def test_a_new_incarnation_the_record_does_not_prove_is_refused_for_good_saying_why() -> None:
    calls: list[str] = []

    def reconcile(svc: str, incarnation: str, last: int) -> str:
        calls.append(incarnation)
        return f"incarnation {incarnation} rebuilt up to seq 80, and this process saw seq {last}"

    t = Incarnations(Identity("aaaaaaaaaaaa", ("cpu",), "r1"), lambda svc: "PASIDs", reconcile)
    t.meet(Identity("bbbbbbbbbbbb", ("iommu",), "r1", last=90))
    for _ in range(2):
        with pytest.raises(PeerRestarted) as err:
            t.meet(Identity("cccccccccccc", ("iommu",), "r1"))
        assert "saw seq 90" in err.value.message and err.value.reason == "PEER_RESTARTED"
    assert calls == ["cccccccccccc"], "the record is read once per new incarnation"
    assert t.seen == {"iommu": "bbbbbbbbbbbb"}


def test_a_restarted_process_accepts_callers_holding_the_state_it_rebuilt() -> None:
    t = tracker({})
    t.rebuilt_from = frozenset({"dddddddddddd"})
    t.check_expected("dddddddddddd")
    with pytest.raises(PeerRestarted):
        t.check_expected("eeeeeeeeeeee")


def test_a_resumed_process_pins_its_peers_as_the_run_last_recorded_them() -> None:
    t = tracker({"cpu": "WQ clients"}, run="r1")
    t.pin("cpu", "bbbbbbbbbbbb")
    t.pin("accel", "ffffffffffff")  # its own service: not a peer
    assert t.seen == {"cpu": "bbbbbbbbbbbb"}
    with pytest.raises(PeerRestarted):
        t.meet(Identity("cccccccccccc", ("cpu",), "r1"))
