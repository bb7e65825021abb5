"""The event log (Linux 6.4+ drivers/dma/idxd; svasim.model.evl).

A device with GENCAP evl_support and an event log set up writes the errors a completion
record cannot carry into the log, each entry a ``struct dsa_evl_entry`` (registers.h:
32-byte header, then the 32-byte record it could not write). For an untranslatable
record (DSA_COMP_CRA_XLAT, [SPEC] 5.4) the entry's fault address is the record's
address: process_evl_entry() / idxd_evl_fault_work() (irq.c) copy the entry's record
there for the user. The ring holds size - 1 entries (full when ``(tail + 1) % size ==
head``); what an error that finds it full becomes is UNVERIFIED (the model: SWERROR).
"""

from __future__ import annotations

import struct

import pytest

from svasim.model.accel import default_devices
from svasim.model.errors import FailedPrecondition, InvalidArgument
from svasim.model.evl import DSA_EVL_ENTRY_SIZE, IDXD_EVL_SIZE_MIN, EventLog
from svasim.model.fabric import ModelFabric
from svasim.model.transition import Transition
from svasim_api import idxd
from svasim_api.idxd import DsaCompStatus as S
from svasim_api.idxd import DsaOpcode as Op
from svasim_api.idxd import OpFlag as F

from ...oracle.oracle import Oracle
from ..test_accel_ops import PAGE, Dsa


def with_evl(size: int = IDXD_EVL_SIZE_MIN, **kw) -> tuple[Dsa, Oracle]:  # noqa: ANN003
    dsa = Dsa(**kw)
    dsa.device.evl_support = 1
    dsa.device.evl = EventLog(size)
    return dsa, Oracle(dsa.fab, dsa.transitions)


def test_an_untranslatable_completion_record_goes_to_the_event_log_not_swerror():
    dsa, oracle = with_evl(prs_disable=True)  # no page request can resolve the record
    comp = dsa.buf(PAGE)
    dsa.k.munmap(dsa.j, dsa.pid, comp, PAGE)
    src = dsa.buf(PAGE)
    assert dsa.submit(dsa.desc(Op.MEMMOVE, comp=comp, src_addr=src, dst_addr=src + 64, xfer_size=64))
    dsa.drain()
    assert dsa.device.swerr == 0
    [(index, entry)] = dsa.fab.accel.read_event_log(dsa.j, "dsa0", False)
    assert index == 0 and entry.error == S.CRA_XLAT and entry.fault_addr == comp
    assert entry.operation == Op.MEMMOVE and entry.pasid == dsa.pasid and entry.wq_idx == dsa.wq_id
    rec = idxd.unpack_comp(entry.cr)
    assert rec.status == S.CRA_XLAT
    raw = entry.raw()
    assert len(raw) == DSA_EVL_ENTRY_SIZE and raw[32:] == entry.cr
    qw0 = struct.unpack_from("<Q", raw)[0]
    assert (qw0 >> 8) & 0xFF == S.CRA_XLAT and (qw0 >> 32) & 0xFF == Op.MEMMOVE and qw0 >> 40 == dsa.pasid
    assert not oracle.check("logged")


def test_an_error_without_a_record_is_logged_and_reading_with_consume_advances_the_head():
    dsa, oracle = with_evl()
    buf = dsa.buf(PAGE)
    # BOF is reserved for NOOP ([SPEC] Table 5-5 via [DML]): INVALID_FLAGS, and no CRAV.
    assert dsa.submit(dsa.desc(Op.NOOP, flags=int(F.BOF), comp=buf))
    dsa.drain()
    assert dsa.device.swerr == 0 and dsa.device.evl.tail == 1
    [(_, entry)] = dsa.fab.accel.read_event_log(dsa.j, "dsa0", True)
    assert entry.error == S.INVALID_FLAGS and not entry.rcr
    assert dsa.device.evl.head == dsa.device.evl.tail == 1 and not dsa.device.evl.entries
    assert dsa.fab.accel.read_event_log(dsa.j, "dsa0", True) == []
    assert not oracle.check("consumed")


def test_a_full_event_log_stops_taking_entries_and_the_error_goes_to_swerror():
    dsa, oracle = with_evl()
    buf = dsa.buf(PAGE)
    for _ in range(IDXD_EVL_SIZE_MIN):
        assert dsa.submit(dsa.desc(Op.NOOP, flags=int(F.BOF), comp=buf))
        dsa.drain()
    evl = dsa.device.evl
    assert evl.tail - evl.head == IDXD_EVL_SIZE_MIN - 1 and evl.overflows == 1 and dsa.device.swerr == 1
    assert not oracle.check("full")


def test_without_evl_support_or_size_errors_stay_in_swerror():
    dsa = Dsa()
    buf = dsa.buf(PAGE)
    assert dsa.submit(dsa.desc(Op.NOOP, flags=int(F.BOF), comp=buf))
    dsa.drain()
    assert dsa.device.swerr == 1 and not dsa.device.evl.entries
    with pytest.raises(FailedPrecondition) as e:
        dsa.fab.accel.set_event_log_size(dsa.j, "dsa0", IDXD_EVL_SIZE_MIN)
    assert e.value.reason == "EVL_NOT_SUPPORTED"


def test_the_event_log_size_is_checked_and_set_only_on_a_disabled_device():
    devices = default_devices()
    devices[0].evl_support = 1
    transitions: list[Transition] = []
    fab = ModelFabric(ncpus=1, devices=devices, sink=transitions.append)
    oracle = Oracle(fab, transitions)
    j = fab.journal()
    with pytest.raises(InvalidArgument):
        fab.accel.set_event_log_size(j, "dsa0", IDXD_EVL_SIZE_MIN - 1)
    with pytest.raises(FailedPrecondition) as e:
        fab.accel.set_event_log_size(j, "dsa0", 128)
    assert e.value.reason == "DEVICE_ENABLED"
    fab.accel.set_device_enabled(j, "dsa0", False)
    fab.accel.set_event_log_size(j, "dsa0", 128)
    assert fab.accel.devices["dsa0"].evl.size == 128
    assert not oracle.check("sized")
