"""A fabric model with a chosen amount of physical memory, and its recorded transitions."""

from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from svasim.model.fabric import ModelFabric
from svasim.model.transition import Transition

PAGE = 4096


@dataclass
class Bench:
    """A model fabric whose transitions land in ``out``."""

    fab: ModelFabric
    out: list[Transition] = field(default_factory=list)

    @property
    def k(self):
        return self.fab.kernel

    def j(self):
        return self.fab.journal()


def make_bench(memory: int | None = None) -> Bench:
    """A fabric with ``memory`` bytes of physical memory (the default when None)."""
    out: list[Transition] = []
    fab = ModelFabric(ncpus=1, sink=out.append, **({} if memory is None else {"memory_size": memory}))
    return Bench(fab, out)


@pytest.fixture
def bench() -> Bench:
    """A fabric with the default memory."""
    return make_bench()
