"""A fabric with a native process, stopped and started again on its run.

What the program's memory held is an input from outside the fabric, so resuming the run
re-executes it from the record (svasim.native.tape), not from the program, whose memory
has moved on since: the resume is identical to the record whatever the program did
meanwhile. Once resumed, the fabric process reaches the real program again
(svasim.recovery.reattach_native): the next copy reads what the program holds now.
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from svasim import replay
from svasim.config import ALL_SERVICES, FabricConfig
from svasim.native.host import read_process
from svasim.server import create_server
from svasim.store import Store
from svasim_api.cpu.v1 import cpu_pb2
from svasim_client import Client, memmove_descriptor

PAGE = 4096
RUN = "native-resume"

#: A program with three pages: the source (first page), a completion record at +2048 and
#: the destination (second page). ``set WORD`` puts a new 5-byte word at the source.
PROGRAM = (
    "import mmap, ctypes, sys\n"
    "rw = mmap.mmap(-1, 3 * 4096)\n"
    "rw[0:5] = b'hello'\n"
    "rw[4096] = 0\n"
    "print(ctypes.addressof(ctypes.c_char.from_buffer(rw)), flush=True)\n"
    "for line in sys.stdin:\n"
    "    if line.startswith('set '):\n"
    "        rw[0:5] = line[4:9].encode()\n"
    "        print('ok', flush=True)\n"
)


@pytest.fixture
def program() -> Iterator[tuple[subprocess.Popen[str], int]]:
    p = subprocess.Popen([sys.executable, "-c", PROGRAM], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
    assert p.stdout is not None
    base = int(p.stdout.readline())
    yield p, base
    p.kill()
    p.wait()


def _copy(c: Client, tid: int, portal: int, base: int, pid: int, slot: int) -> bytes:
    comp = base + 2048 + 64 * slot
    r = c.enqcmd(tid, portal, memmove_descriptor(base, base + PAGE + 16 * slot, 5, comp))
    assert r.outcome == cpu_pb2.ENQCMD_OUTCOME_ACCEPTED, r
    c.advance("dsa0")
    assert read_process(pid, comp, 1) == b"\x01", "the completion record says Success (0x01)"
    return read_process(pid, base + PAGE + 16 * slot, 5)


def test_a_native_run_resumes_from_its_record_and_then_reaches_the_program_again(
    program: tuple[subprocess.Popen[str], int], tmp_path: Path
) -> None:
    child, base = program
    db = f"sqlite:///{tmp_path / 'native.db'}"
    config = FabricConfig(services=ALL_SERVICES, port=0, db=db, run=RUN, native=True)
    srv = create_server(config)
    try:
        with Client(srv.address) as c:
            p = c.create_process("prog", native_pid=child.pid)
            tid = p.tids[0]
            portal = c.open_wq(p.pid, "dsa0", 0).portal_address
            c.schedule(tid, 0)
            assert _copy(c, tid, portal, base, child.pid, 0) == b"hello"
            fabric_pid = p.pid
    finally:
        srv.stop(0)
    # The program's memory moves on while no fabric runs: resuming must not read it.
    assert child.stdin is not None and child.stdout is not None
    child.stdin.write("set world\n")
    child.stdin.flush()
    assert child.stdout.readline().strip() == "ok"
    srv = create_server(FabricConfig(services=ALL_SERVICES, port=0, db=db, run=RUN, native=True))
    try:
        with Client(srv.address) as c:
            assert c.get_process(fabric_pid).native_pid == child.pid
            # The live program again: the copy reads the word it holds now.
            assert _copy(c, tid, portal, base, child.pid, 1) == b"world"
            c.flush()
    finally:
        srv.stop(0)
    with Store.open(db) as s:
        starts = s.events(s.get_run(RUN).id, kind="service.start", limit=None)
        # Three services started new, then resumed once each.
        assert [e.after["resumed_after_seq"] > 0 for e in starts] == [False] * 3 + [True] * 3
        report = replay.verify(s, RUN)
        assert report.ok, report.difference.describe() if report.difference else report
