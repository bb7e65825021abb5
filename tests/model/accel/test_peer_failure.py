"""A peer that fails in the middle of a descriptor (its host's DMA, say, when the cpu
service is killed) leaves the descriptor queued, as the record has it: the fold of what
was recorded equals the model's state, and the descriptor runs again from its start once
the peer answers."""

from __future__ import annotations

import pytest

from svasim.model.errors import SimError
from svasim.model.fabric import ModelFabric
from svasim.model.kernel import EnqcmdOutcome
from svasim_api import idxd
from tests.model.helpers import memmove_desc
from tests.oracle.oracle import Oracle

PAGE = 4096


class Gone(SimError):
    code = "UNAVAILABLE"


def queued_memmove(fill: bytes) -> tuple[ModelFabric, list, Oracle, int, int]:
    """A fabric whose dsa0 holds one accepted MEMMOVE of a page of ``fill`` (to the next
    page, its record two pages further), waiting for advance; with the transitions so far,
    an oracle on them, the process's pid and the buffer."""
    out: list = []
    fab = ModelFabric(ncpus=2, sink=out.append)
    k, j = fab.kernel, fab.journal()
    oracle = Oracle(fab, out)
    p = k.create_process(j, "app")
    buf = k.mmap(j, p.pid, 4 * PAGE, True, True).start
    k.write_memory(j, p.pid, buf, fill * PAGE)
    portal = k.open_wq(j, p.pid, "dsa0", 0)[0]
    k.schedule(j, p.tids[0], 0)
    fab.accel.set_run_options(j, "dsa0", auto_run=False)  # the descriptor waits for advance
    r = k.enqcmd(j, p.tids[0], portal, memmove_desc(buf, buf + PAGE, PAGE, buf + 3 * PAGE))
    assert r.outcome == EnqcmdOutcome.ACCEPTED
    return fab, out, oracle, p.pid, buf


def test_a_dma_that_fails_mid_descriptor_puts_it_back_at_the_head_of_its_wq(monkeypatch: pytest.MonkeyPatch) -> None:
    fab, out, oracle, pid, buf = queued_memmove(b"x")
    k, j = fab.kernel, fab.journal()
    real = k.dma_write
    calls = {"n": 0}

    def failing(journal, physical, data):
        calls["n"] += 1
        raise Gone("PEER_UNAVAILABLE", "the cpu service is gone")

    monkeypatch.setattr(k, "dma_write", failing)
    with pytest.raises(Gone):
        fab.accel.advance(fab.journal("accel"), "dsa0", 0)
    assert calls["n"] == 1
    assert not oracle.check("a DMA failed mid-descriptor")
    wq = fab.accel.devices["dsa0"].wqs[0]
    assert len(wq.queue) == 1
    monkeypatch.setattr(k, "dma_write", real)
    fab.accel.advance(fab.journal("accel"), "dsa0", 0)
    assert len(wq.queue) == 0
    assert k.read_memory(j, pid, buf + PAGE, PAGE) == b"x" * PAGE
    assert k.read_memory(j, pid, buf + 3 * PAGE, 1) == bytes([idxd.DsaCompStatus.SUCCESS])
    assert not oracle.check("the descriptor ran again")


def test_a_completion_record_dma_that_fails_puts_the_recorded_completion_back_too(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The data was written and the completion recorded (``desc.complete``) when the DMA
    of the completion record failed (the cpu killed right then): the descriptor goes
    back to its WQ, and so does its record (``desc.requeue``), so the fold is again the
    queued descriptor the model holds, and a member rebuilt from that fold runs it again.
    Before, the fold kept a completed descriptor in a WQ and a cpu member's rebuild,
    which sets its scratch accel from the fold, refused."""
    fab, out, oracle, pid, buf = queued_memmove(b"y")
    k, j = fab.kernel, fab.journal()
    real = k.dma_write
    writes = {"n": 0}

    def second_fails(journal, physical, data):
        writes["n"] += 1
        if writes["n"] == 2:  # the completion record, after the data
            raise Gone("PEER_UNAVAILABLE", "the cpu service is gone")
        return real(journal, physical, data)

    monkeypatch.setattr(k, "dma_write", second_fails)
    before = len(out)
    with pytest.raises(Gone):
        fab.accel.advance(fab.journal("accel"), "dsa0", 0)
    kinds = [t.kind for t in out[before:] if t.entity.startswith("desc/")]
    assert kinds == ["desc.complete", "desc.requeue", "desc.requeue"]
    assert not oracle.check("the completion record's DMA failed")
    monkeypatch.setattr(k, "dma_write", real)
    fab.accel.advance(fab.journal("accel"), "dsa0", 0)
    assert k.read_memory(j, pid, buf + 3 * PAGE, 1) == bytes([idxd.DsaCompStatus.SUCCESS])
    assert not oracle.check("the descriptor ran again")
