"""The device reaches a real program's memory: its page walks read the program's real
mappings and page table (/proc/PID/maps, /proc/PID/pagemap), its DMA is
process_vm_readv/process_vm_writev, and the completion record reaches the program, whose
own checks then pass (or fail, when the device gets a byte wrong)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from svasim import replay
from svasim.config import ALL_SERVICES, FabricConfig
from svasim.model.errors import FailedPrecondition
from svasim.native import Bridge
from svasim.native.host import LiveProcessMemory, live_factory, read_process
from svasim.server import create_server
from svasim.store import Store
from svasim_api.errors import SvasimError
from svasim_client import Client
from tests.native.conftest import run_under, values

PAGE = 4096


@pytest.mark.parametrize(("wq", "size"), [("wq0.0", 1), ("wq0.0", 65536), ("wq0.1", 4096), ("wq0.0", 2 << 20)])
def test_a_memmove_into_the_programs_untouched_pages_completes_with_every_byte_right(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path, wq: str, size: int
) -> None:
    r = run_under(bridge.env(), preload, probe, "memmove", wq, str(size))
    assert r.returncode == 0, r.stdout + r.stderr
    out = values(r.stdout)
    assert "status=0x1 bytes_completed=0" in out and "same=1" in out, out
    fabric.flush()
    events = fabric.events(fabric.fabric().run_id)
    kinds = {e.kind for e in events}
    # What the program's memory held is in the record; the untouched destination faulted in.
    assert {"native.walk", "native.read", "native.fault", "dma.write"} <= kinds


def test_a_native_run_replays_without_the_program(
    bridge: Bridge, fabric: Client, preload: Path, probe: Path, tmp_path: Path
) -> None:
    r = run_under(bridge.env(), preload, probe, "memmove", "wq0.0", "8192")
    assert r.returncode == 0 and "same=1" in values(r.stdout), r.stdout + r.stderr
    fabric.flush()
    run_id = fabric.fabric().run_id
    report = replay.verify(Store.open(f"sqlite:///{tmp_path / 'fabric.db'}"), run_id)
    assert report.ok, report.difference.describe() if report.difference else report


def test_a_corrupted_byte_in_the_devices_output_is_seen_by_the_programs_own_check(
    bridge: Bridge, preload: Path, probe: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SVASIM_NATIVE_CORRUPT", "1")
    r = run_under(bridge.env(), preload, probe, "memmove", "wq0.0", "4096")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "same=0" in values(r.stdout)


def test_a_fabric_without_native_refuses_a_native_process_over_grpc(tmp_path: Path) -> None:
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=f"sqlite:///{tmp_path / 'f.db'}"))
    try:
        with Client(srv.address) as c:
            with pytest.raises(SvasimError) as e:
                c.create_process("prog", native_pid=os.getpid())
            assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and e.value.reason == "NATIVE_DISABLED"
            assert "--native" in e.value.message
    finally:
        srv.stop(0)


def test_a_native_fabric_refuses_an_unreachable_pid_and_simulated_memory_calls(fabric: Client) -> None:
    with pytest.raises(SvasimError) as e:
        fabric.create_process("gone", native_pid=2**22 + 12345)
    assert e.value.reason == "NATIVE_UNREACHABLE"
    p = fabric.create_process("me", native_pid=os.getpid())
    assert p.native_pid == os.getpid()
    with pytest.raises(SvasimError) as e:
        fabric.write(p.pid, 0x1000, b"x")
    assert e.value.code == grpc.StatusCode.FAILED_PRECONDITION and e.value.reason == "NATIVE_PROCESS"


@pytest.fixture
def child() -> subprocess.Popen[str]:
    """A real process with a two-page mapping, only its first page touched; it prints
    the mapping's address and waits."""
    code = (
        "import mmap, ctypes, sys\n"
        "rw = mmap.mmap(-1, 8192)\n"
        "rw[0:5] = b'hello'\n"
        "print(ctypes.addressof(ctypes.c_char.from_buffer(rw)), flush=True)\n"
        "sys.stdin.readline()\n"
    )
    p = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    yield p
    p.kill()
    p.wait()


def test_live_memory_walks_reads_writes_and_faults_a_real_process(child: subprocess.Popen[str]) -> None:
    assert child.stdout is not None
    rw = int(child.stdout.readline())
    mem = live_factory(child.pid, 1)
    assert isinstance(mem, LiveProcessMemory)
    assert mem.read(rw, 5) == b"hello"
    w = mem.walk(rw, PAGE, True)
    assert not w.faulted and w.runs == [(rw, PAGE, True)]
    # The second page of the mapping was never touched: not present, so a walk faults there.
    w = mem.walk(rw, 2 * PAGE, False)
    assert w.faulted and w.fault_address == rw + PAGE and not w.protection
    assert mem.fault(rw + PAGE, True)
    assert not mem.walk(rw, 2 * PAGE, True).faulted
    mem.write(rw + 1, b"ELLO")
    assert read_process(child.pid, rw, 5) == b"hELLO"
    # Nothing is mapped at page 1: reads fail as process_vm_readv does, with EFAULT.
    with pytest.raises(OSError):
        mem.read(PAGE, 1)
    assert not mem.fault(PAGE, False)
    with pytest.raises(FailedPrecondition):
        live_factory(2**22 + 54321, 1)
