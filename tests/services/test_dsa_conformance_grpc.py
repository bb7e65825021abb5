"""The accel-config dsa_test matrix again, through the gRPC API of a running fabric.

The cases come from tests/model/test_dsa_conformance.py, which runs the whole matrix on
the model; here a representative subset of it runs (every operation, single and batched,
on each WQ mode, with and without block on fault, at one size), with the op_config cases
and the partial-completion case. Only the way a case reaches the accelerator differs: a
client of a real server on loopback that configures the WQ (disable, WQCFG, enable),
opens it from a new process, submits with ENQCMD (shared WQ) or MOVDIR64B (dedicated WQ)
from a scheduled thread, and reads the completion records and buffers back over gRPC.
The batch fault cases of test_all.sh need a WQ with page requests disabled, which the
gRPC WQ configuration does not carry, so they run on the model only.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import Any

import pytest

from svasim.config import ALL_SERVICES, FabricConfig
from svasim.model import dsa_ops
from svasim.model.accel import WQ_MODE_DEDICATED, WQ_MODE_SHARED
from svasim.server import create_server
from svasim_api import idxd
from svasim_api.accel.v1 import accel_pb2
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client

from ..model.test_accel_ops import DsaHarness
from ..model.test_dsa_conformance import (  # noqa: F401 - the cases, collected here too
    OPS,
    OpSpec,
    check_matrix_case,
    matrix_cases,
    test_op_config_enables_exactly_its_operations,
    test_partial_completion_records_the_first_untranslatable_page_and_direction,
)


class GrpcDsa(DsaHarness):
    """The conformance harness's accelerator, reached over gRPC (same interface as the
    model-level ``Dsa``)."""

    def __init__(
        self,
        client: Client,
        mode: str = WQ_MODE_DEDICATED,
        *,
        block_on_fault: bool = True,
        op_config: int | None = None,
        max_xfer_shift: int = 31,
        max_batch_shift: int = 10,
    ) -> None:
        self.c = client
        self.mode = mode
        self.wq_id = 1 if mode == WQ_MODE_DEDICATED else 0
        self.c.disable_wq("dsa0", self.wq_id)
        self.c.configure_wq(
            "dsa0",
            self.wq_id,
            block_on_fault=block_on_fault,
            op_config=dsa_ops.OPCAP_BITMAP if op_config is None else op_config,
            max_xfer_shift=max_xfer_shift,
            max_batch_shift=max_batch_shift,
        )
        self.c.enable_wq("dsa0", self.wq_id)
        self._swerr0 = self._dev().swerr
        self.c.flush()
        self._run = self.c.fabric().run_id
        self._seq0 = self.c.run_info(self._run).event_count
        p = self.c.create_process("dsa_test")
        self.pid, self.tid = p.pid, p.tids[0]
        self.portal = self.c.open_wq(self.pid, "dsa0", self.wq_id).portal_address
        self.c.schedule(self.tid, 0)

    def close(self) -> None:
        self.c.exit_thread(self.tid)  # the process exits: its files close, the WQ is free

    def _dev(self) -> accel_pb2.Device:
        return self.c.devices()[0]

    @property
    def device(self) -> Any:
        d = self._dev()
        wqs = [SimpleNamespace(cfg=SimpleNamespace(block_on_fault=w.block_on_fault)) for w in d.wqs]
        return SimpleNamespace(swerr=d.swerr - self._swerr0, wqs=wqs)

    def buf(self, size: int, *, populate: bool = True, writable: bool = True) -> int:
        return self.c.mmap(self.pid, size, writable=writable, populate=populate)

    def put(self, address: int, data: bytes) -> None:
        self.c.write(self.pid, address, data)

    def get(self, address: int, length: int) -> bytes:
        return self.c.read(self.pid, address, length)

    def submit(self, desc: idxd.DsaHwDesc) -> bool:
        command = idxd.pack_desc(desc)
        if self.mode == WQ_MODE_SHARED:
            r = self.c.enqcmd(self.tid, self.portal, command)
            assert r.outcome in (cpu_pb2.ENQCMD_OUTCOME_ACCEPTED, cpu_pb2.ENQCMD_OUTCOME_RETRY), r
            return r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED
        r = self.c.movdir64b(self.tid, self.portal, command)
        assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_POSTED, r
        return True

    def drain(self) -> None:
        self.c.advance("dsa0")

    def completes(self, kind: str = "desc.complete") -> list[SimpleNamespace]:
        self.c.flush()
        events = self.c.events(self._run, from_seq=self._seq0 + 1, kind_prefix=kind)
        return [
            SimpleNamespace(after=json.loads(e.after_json), detail=json.loads(e.detail_json))
            for e in events
            if e.kind == kind
        ]


@pytest.fixture(scope="module")
def client(tmp_path_factory) -> Iterator[Client]:
    db = f"sqlite:///{tmp_path_factory.mktemp('conformance') / 'svasim.db'}"
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, cpus=1, durability="batch"))
    c = Client(srv.address)
    yield c
    c.close()
    srv.stop(0)


@pytest.fixture
def make_env(client: Client) -> Iterator[Callable[..., GrpcDsa]]:
    made: list[GrpcDsa] = []

    def make(*args: Any, **kwargs: Any) -> GrpcDsa:
        env = GrpcDsa(client, *args, **kwargs)
        made.append(env)
        return env

    yield make
    for env in made:
        env.close()


def _subset() -> list[pytest.ParameterSet]:
    """Every operation once per WQ mode and submission mode at one size (64 KiB, or the
    largest the runner gives it): single descriptors block on fault on the shared WQ and
    resubmit on the dedicated one, batches the other way round, so each WQ mode sees both
    fault paths (an operation that is not batched takes both as single descriptors)."""
    keep = []
    for case in matrix_cases():
        spec, mode, size, wq, bof = case.values
        if size != (65536 if 65536 in spec.sizes else spec.sizes[-1]):
            continue
        if not spec.batched or not spec.untouched or bof == ((wq == WQ_MODE_SHARED) == (mode == "single")):
            keep.append(case)
    return keep


@pytest.mark.parametrize(("spec", "mode", "size", "wq", "bof"), _subset())
def test_dsa_test_matrix_subset(make_env, spec: OpSpec, mode: str, size: int, wq: str, bof: bool):
    check_matrix_case(make_env(wq), spec, mode, size, bof)


def test_the_subset_covers_every_operation_on_both_wq_modes_and_both_fault_paths():
    cases = [c.values for c in _subset()]
    for spec in OPS:
        for wq in (WQ_MODE_DEDICATED, WQ_MODE_SHARED):
            bofs = {bof for s, _, _, w, bof in cases if s is spec and w == wq}
            assert bofs == ({False, True} if spec.untouched else {False}), (spec.name, wq)
