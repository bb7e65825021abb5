"""The kernel's operations are named (svasim.model.kernel.OPERATIONS), not found by
inspection, because the compiled model's methods have no signatures: the names must be
exactly the public methods that take a journal first, but for the steps of an operation,
a device's write and advance_cpu (whose entries are operations of their own)."""

from __future__ import annotations

import inspect

import pytest

from svasim import compiled
from svasim.model.kernel import OPERATIONS, SEQUENCE_OPERATIONS, Kernel
from svasim.model.kernel.sequences import Sequences

#: Take a journal first, and are not operations (see OPERATIONS).
NOT_OPERATIONS = {"enter_op", "leave_op", "violation", "dma_write", "advance_cpu"}


@pytest.mark.skipif(compiled.active(), reason="the compiled methods have no signatures to inspect")
def test_the_named_operations_are_the_public_methods_that_take_a_journal_first() -> None:
    found = set()
    sequences = set()
    for name in dir(Sequences):
        fn = getattr(Sequences, name)
        if name.startswith("_") or name in NOT_OPERATIONS or not inspect.isfunction(fn):
            continue
        params = list(inspect.signature(fn).parameters)
        if len(params) >= 2 and params[1] == "journal":
            found.add(name)
            if inspect.isgeneratorfunction(fn):
                sequences.add(name)
    assert found == OPERATIONS
    assert sequences == SEQUENCE_OPERATIONS


def test_every_operation_of_the_kernel_records_its_end() -> None:
    for name in OPERATIONS:
        assert getattr(Kernel, name).__wrapped__ is getattr(Sequences, name), name
