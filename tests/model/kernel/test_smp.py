"""kernel/smp.c: who an on_each_cpu_mask() call interrupts, and who pays for it.

Rule (Linux kernel/smp.c, ``smp_call_function_many_cond()``): the sending CPU is taken
out of the mask the IPIs go to; when it was in the mask, the function runs there
directly (``SCF_RUN_LOCAL``). No IPI is sent to, counted for or charged to the sender.
"""

from __future__ import annotations

from svasim.model.costs import CostTable
from svasim.model.fabric import ModelFabric

IPI_SEND = 7
IPI_RECEIVE = 11


def fabric(ncpus: int = 3):
    fab = ModelFabric(ncpus=ncpus, costs=CostTable.from_mapping({"ipi_send": IPI_SEND, "ipi_receive": IPI_RECEIVE}))
    out: list = []
    fab.sink = out.append
    return fab, out


def test_a_mask_of_only_the_sender_runs_the_function_there_with_no_ipi():
    fab, out = fabric()
    k, j = fab.kernel, fab.journal()
    ran: list[tuple[int, int | None]] = []

    def handler(kernel, cpu, info, journal):
        ran.append((cpu.id, info))

    k.on_each_cpu_mask(k.cpus[1], 1 << 1, handler, 42, j)
    assert ran == [(1, 42)]
    assert k.stats["ipi_sent"] == 0 and k.stats["ipi_received"] == 0
    assert k.cpus[1].cycles == 0 and k.stats["cycles.ipi"] == 0
    assert [t.kind for t in out] == ["smp.call_local"]


def test_the_other_cpus_get_one_ipi_each_and_the_sender_runs_it_last_directly():
    fab, out = fabric()
    k, j = fab.kernel, fab.journal()
    ran: list[int] = []

    def handler(kernel, cpu, info, journal):
        ran.append(cpu.id)

    k.on_each_cpu_mask(k.cpus[1], 0b111, handler, None, j)
    assert ran == [0, 2, 1]
    assert k.stats["ipi_sent"] == 2
    assert k.counters["cpu/0"]["ipi_received"] == 1 and k.counters["cpu/2"]["ipi_received"] == 1
    assert k.counters["cpu/1"]["ipi_received"] == 0
    # The sender pays for the two IPIs it sent and takes none; each target takes one.
    assert k.cpus[1].cycles == 2 * IPI_SEND
    assert k.cpus[0].cycles == k.cpus[2].cycles == IPI_RECEIVE
    sends = [t for t in out if t.kind == "ipi.send"]
    assert [t.entity for t in sends] == ["cpu/0", "cpu/2"]


def test_a_mask_without_the_sender_does_not_run_the_function_on_it():
    fab, out = fabric()
    k, j = fab.kernel, fab.journal()
    ran: list[int] = []
    k.on_each_cpu_mask(k.cpus[0], 0b100, lambda kernel, cpu, info, journal: ran.append(cpu.id), None, j)
    assert ran == [2] and k.stats["ipi_sent"] == 1
    assert not any(t.kind == "smp.call_local" for t in out)
