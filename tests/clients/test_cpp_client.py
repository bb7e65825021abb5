"""The C++ client (clients/cpp), built from the protos and <linux/idxd.h>, against `svasim up`.

Expected bytes and codes come from the kernel's uapi header (include/uapi/linux/idxd.h) and
the canonical gRPC status codes, not from the simulator.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CPP_DIR = Path(__file__).resolve().parent.parent.parent / "clients" / "cpp"
BINARY = CPP_DIR / "build" / "svasim_enqcmd"

# Installing the Debian packages and building from scratch takes minutes, not seconds.
pytestmark = pytest.mark.timeout(900)

# <linux/idxd.h>: enum dsa_opcode, IDXD_OP_FLAG_*, enum dsa_completion_status.
DSA_OPCODE_MEMMOVE = 0x03
IDXD_OP_FLAG_CRAV = 0x0004
IDXD_OP_FLAG_RCR = 0x0008
DSA_COMP_SUCCESS = 0x01
DSA_COMP_PAGE_FAULT_NOBOF = 0x03

# grpc/status.h: the canonical code numbers.
GRPC_OUT_OF_RANGE = 11

MEMMOVE_LINE = re.compile(
    r"^memmove 0x(?P<src>[0-9a-f]+) -> 0x(?P<dst>[0-9a-f]+), (?P<size>\d+) bytes, "
    r"completion record 0x(?P<comp>[0-9a-f]+)$",
    re.M,
)
COMPLETION_LINE = re.compile(
    r"^completion written, status 0x(?P<status>[0-9a-f]{2}) (?P<name>\w+), .*fault_addr 0x(?P<fault>[0-9a-f]+)$",
    re.M,
)


def _unavailable(msg: str) -> None:
    """CI must build and run the client; elsewhere a machine without the packages skips."""
    if os.environ.get("CI") == "true":
        pytest.fail(msg)
    pytest.skip(msg)


@pytest.fixture(scope="module")
def enqcmd_binary() -> Path:
    """The built svasim_enqcmd: Debian packages installed if missing, then an incremental make."""
    if shutil.which("make") is None:
        _unavailable("make is not installed")
    deps = subprocess.run(["make", "-C", str(CPP_DIR), "deps"], capture_output=True, text=True, timeout=900)
    if deps.returncode != 0:
        _unavailable(f"cannot install the C++ client's Debian packages:\n{deps.stdout}{deps.stderr}")
    build = subprocess.run(["make", "-C", str(CPP_DIR), "-j2"], capture_output=True, text=True, timeout=900)
    assert build.returncode == 0, build.stdout + build.stderr
    assert BINARY.is_file()
    return BINARY


def _svasim_command() -> str:
    beside = Path(sys.executable).with_name("svasim")
    found = str(beside) if beside.exists() else shutil.which("svasim")
    assert found, "the svasim command is not installed"
    return found


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def fabric(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A whole fabric from `svasim up` on a free port; yields its address."""
    tmp = tmp_path_factory.mktemp("cpp")
    port = _free_port()
    log = (tmp / "up.log").open("w")
    proc = subprocess.Popen(
        [_svasim_command(), "up", "--port", str(port), "--db", f"sqlite:///{tmp / 'cpp.db'}"],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, (tmp / "up.log").read_text()
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert time.monotonic() < deadline, (tmp / "up.log").read_text()
                time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(30)
        log.close()


def _run(binary: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([str(binary), *args], capture_output=True, text=True, timeout=120)


def test_cpp_client_fills_dsa_hw_desc_and_moves_the_bytes_with_enqcmd(enqcmd_binary, fabric):
    # 5000 bytes: more than one page, and not a whole number of them.
    r = _run(enqcmd_binary, "--size", "5000", fabric)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out

    pasid = int(re.search(r"^process \d+ thread \d+ on cpu 0, pasid (\d+),", r.stdout, re.M).group(1))
    assert pasid >= 1  # PASID 0 is reserved for requests without one
    m = MEMMOVE_LINE.search(r.stdout)
    assert m, out
    src, dst, comp = (int(m[k], 16) for k in ("src", "dst", "comp"))
    assert int(m["size"]) == 5000
    # The 64 bytes the client built from <linux/idxd.h>, against the layout packed by hand:
    # pasid:20 rsvd:11 priv:1, flags:24 opcode:8, completion_addr, src_addr, dst_addr,
    # xfer_size, int_handle, rsvd1, 24 bytes of op-specific fields.
    expected = struct.pack(
        "<IIQQQIHH24x", 0, (DSA_OPCODE_MEMMOVE << 24) | IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR, comp, src, dst, 5000, 0, 0
    )
    desc = re.search(r"^descriptor ([0-9a-f]{128})$", r.stdout, re.M)
    assert desc and bytes.fromhex(desc.group(1)) == expected, out
    assert comp % 32 == 0  # DSA completion records are 32-byte aligned

    # A new thread has no valid IA32_PASID: the first ENQCMD takes #GP and the fixup loads it.
    assert re.search(
        rf"^enqcmd ENQCMD_OUTCOME_ACCEPTED, zf 0, 1 #GP \(fixup loaded IA32_PASID\), pasid sent {pasid}, ",
        r.stdout,
        re.M,
    ), out
    c = COMPLETION_LINE.search(r.stdout)
    assert c and int(c["status"], 16) == DSA_COMP_SUCCESS and c["name"] == "DSA_COMP_SUCCESS", out
    assert r.stdout.rstrip().endswith("OK: 5000 bytes moved, destination matches source"), out


def test_cpp_client_decodes_a_page_fault_completion_for_an_unmapped_source(enqcmd_binary, fabric):
    r = _run(enqcmd_binary, "--unmapped-source", fabric)
    out = r.stdout + r.stderr
    assert r.returncode == 1, out
    src = int(MEMMOVE_LINE.search(r.stdout)["src"], 16)
    c = COMPLETION_LINE.search(r.stdout)
    # Without IDXD_OP_FLAG_BOF the device does not block on the fault: partial completion,
    # with the faulting address in the record.
    assert c and int(c["status"], 16) == DSA_COMP_PAGE_FAULT_NOBOF and c["name"] == "DSA_COMP_PAGE_FAULT_NOBOF", out
    assert int(c["fault"], 16) == src, out
    assert "FAIL: the device did not complete the memmove" in r.stdout
    assert "OK:" not in r.stdout


def test_cpp_client_prints_grpc_code_and_errorinfo_reason_of_a_failed_rpc(enqcmd_binary, fabric):
    # Polling a completion record on an unmapped page is a bad address, refused by the service.
    r = _run(enqcmd_binary, "--unmapped-completion", fabric)
    out = r.stdout + r.stderr
    assert r.returncode == 3, out
    assert f"WaitCompletion failed: OUT_OF_RANGE ({GRPC_OUT_OF_RANGE}): " in r.stderr, out
    # The reason comes from the google.rpc.Status in the grpc-status-details-bin trailer.
    assert re.search(r"^  reason ADDRESS_NOT_MAPPED, domain svasim\.dev$", r.stderr, re.M), out
    comp = int(MEMMOVE_LINE.search(r.stdout)["comp"], 16)
    assert re.search(rf"^  address=0x{comp:x}$", r.stderr, re.M), out
    assert "OK:" not in r.stdout


def test_cpp_client_rejects_a_bad_command_line_before_any_rpc(enqcmd_binary):
    # The server address is unreachable: exit 2 proves the arguments were refused first.
    r = _run(enqcmd_binary, "--size", "0", "127.0.0.1:1")
    assert r.returncode == 2 and "bad value for --size: 0" in r.stderr, r.stdout + r.stderr
    r = _run(enqcmd_binary)
    assert r.returncode == 2 and "usage: svasim_enqcmd" in r.stderr
