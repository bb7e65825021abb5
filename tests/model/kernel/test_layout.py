"""The kernel model is laid out the way Linux is, and policies see it through one interface."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import svasim.model
from svasim.model import policies
from svasim.model.fabric import ModelFabric
from svasim.model.journal import Journal
from svasim.model.kernel_state import CpuState, Process, pasid_state
from svasim.model.policy import KernelInterface, PolicyBase

from ..helpers import memmove_desc

MODEL = Path(svasim.model.__file__).parent
KERNEL = MODEL / "kernel"


def imports(path: Path) -> set[str]:
    """Every module ``path`` imports, including under ``if TYPE_CHECKING``."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            names.add(node.module)
    return names


def test_policies_and_their_interface_import_nothing_of_the_kernel():
    interface = [MODEL / "policy.py", MODEL / "kernel_state.py", *sorted((MODEL / "policies").glob("*.py"))]
    offenders = {
        p.name: sorted(m for m in imports(p) if m == "svasim.model.kernel" or m.startswith("svasim.model.kernel."))
        for p in interface
    }
    assert {k: v for k, v in offenders.items() if v} == {}


@pytest.mark.parametrize("path", sorted(KERNEL.glob("*.py")), ids=lambda p: p.name)
def test_each_kernel_module_is_small_and_says_what_linux_code_it_follows(path):
    text = path.read_text()
    assert len(text.splitlines()) <= 500
    doc = ast.get_docstring(ast.parse(text)) or ""
    if path.name != "__init__.py" and path.name != "core.py":
        # Every module but the composition and the accounting names a Linux source file
        # or, for the instructions, the SDM pages it follows.
        assert ".c" in doc or "SDM" in doc, path.name


def test_the_ipi_handlers_are_callables_of_the_policies_not_names_the_kernel_dispatches():
    handlers = {"update_pasid", "load_mm_pasid"}
    for path in sorted(KERNEL.glob("*.py")):
        tree = ast.parse(path.read_text())
        code = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str):
                code.add(node.value)
            elif isinstance(node, ast.Attribute):
                code.add(node.attr)
            elif isinstance(node, ast.Name | ast.FunctionDef):
                code.add(node.id if isinstance(node, ast.Name) else node.name)
        assert not code & handlers, path.name


class LoadInSwitchMm(PolicyBase):
    """A sixth policy, written against the interface alone: it loads the MSR in switch_mm."""

    name = "test-load-in-switch-mm"

    def on_switch_mm(self, kernel: KernelInterface, cpu: CpuState, task, journal: Journal) -> None:
        want = pasid_state(kernel.mm(task.pid).pasid)
        if task.xstate["pasid"] != want:
            kernel.set_saved_pasid(cpu, task, want, journal, why=self.name)

    def on_pasid_alloc(self, kernel: KernelInterface, cpu: CpuState, mm: Process, journal: Journal) -> None:
        kernel.on_each_cpu_mask(cpu, mm.mm_cpumask, load_here, mm.pid, journal)


def load_here(kernel: KernelInterface, cpu: CpuState, info: int | None, journal: Journal) -> None:
    cur = kernel.current(cpu)
    if cur is not None and cur.pid == info:
        kernel.wrmsr_pasid(cpu, pasid_state(kernel.mm(cur.pid).pasid), journal, why="test")


def test_a_sixth_policy_is_one_class_and_one_registry_entry(monkeypatch):
    monkeypatch.setitem(policies.POLICIES, LoadInSwitchMm.name, LoadInSwitchMm)
    assert LoadInSwitchMm.name in policies.policy_names()
    out: list = []
    fab = ModelFabric(ncpus=2, policy=LoadInSwitchMm.name, sink=out.append)
    k, j = fab.kernel, fab.journal()
    a = k.create_process(j, "a")
    comp = k.mmap(j, a.pid, 4096, True, True).start
    k.schedule(j, a.tids[0], 0)
    portal = k.open_wq(j, a.pid, "dsa0", 0)[0]
    # The handler it passed ran on the CPU running the mm's thread (the sender itself).
    assert [t.detail["handler"] for t in out if t.kind == "smp.call_local"] == ["load_here"]
    r = k.enqcmd(j, a.tids[0], portal, memmove_desc(comp, comp + 64, 8, comp + 128))
    assert r.outcome == "accepted" and r.gp_faults == 0


def test_an_unknown_policy_is_refused_with_the_known_ones_listed():
    with pytest.raises(ValueError, match="linux-5.18"):
        policies.make_policy("linux-9.99")
