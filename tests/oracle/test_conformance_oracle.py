"""The accel-config conformance matrix with the oracle watching: after every step a
client takes (map, write, read, submit, run the device), the fold of what the fabric
recorded equals the state the fabric exports."""

from __future__ import annotations

import pytest

from svasim.model.accel import WQ_MODE_DEDICATED, WQ_MODE_SHARED
from svasim_api import idxd
from tests.model.test_accel_ops import Dsa
from tests.model.test_dsa_conformance import OPS, check_matrix_case, matrix_cases

from .oracle import Oracle


class WatchedDsa(Dsa):
    """The conformance harness, with the oracle checked after each of its steps: every
    part of the fold must agree with the model at once."""

    def __init__(self, *args: object, **kw: object) -> None:
        super().__init__(*args, **kw)  # type: ignore[arg-type]
        self.oracle = Oracle(self.fab, self.transitions)
        self.steps = 0

    def _check(self, what: str) -> None:
        self.steps += 1
        found = self.oracle.check(f"step {self.steps} ({what})")
        assert not found, "\n".join(m.describe() for m in found.values())

    def buf(self, size: int, *, populate: bool = True, writable: bool = True) -> int:
        out = super().buf(size, populate=populate, writable=writable)
        self._check("mmap")
        return out

    def put(self, address: int, data: bytes) -> None:
        super().put(address, data)
        self._check("write memory")

    def get(self, address: int, length: int) -> bytes:
        out = super().get(address, length)
        self._check("read memory")
        return out

    def submit(self, desc: idxd.DsaHwDesc) -> bool:
        out = super().submit(desc)
        self._check("submit")
        return out

    def drain(self) -> None:
        super().drain()
        self._check("advance")


#: The matrix's cases up to 64 KiB (the larger sizes add bytes, not transitions).
CASES = [c for c in matrix_cases() if c.values[2] <= 65536]


@pytest.mark.parametrize(("spec", "mode", "size", "wq", "bof"), CASES)
def test_every_part_folds_exactly_through_the_matrix(spec, mode, size, wq, bof):
    env = WatchedDsa(wq)
    check_matrix_case(env, spec, mode, size, bof)
    assert env.steps > 3


@pytest.mark.parametrize("wq", [WQ_MODE_DEDICATED, WQ_MODE_SHARED])
def test_every_part_folds_exactly_through_a_memmove(wq):
    env = WatchedDsa(wq)
    memmove = next(s for s in OPS if s.name == "memmove")
    check_matrix_case(env, memmove, "single", 4096, True)
    assert env.steps > 3 and env.oracle.seen > 10
