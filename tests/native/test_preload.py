"""The preload library alone, against a scripted bridge: the stores it traps and decodes,
the ZF it sets, the WQ file's life, and the program's own signal handlers."""

from __future__ import annotations

import re
import signal
import struct
import subprocess
from pathlib import Path

from svasim.native import protocol
from svasim.native.protocol import Op, StoreKind, SubmitResult
from tests.native.conftest import HERE, ScriptedBridge, run_under, values

NATIVE = HERE.parent.parent / "native" / "preload"

#: IDXD_OP_FLAG_CRAV | IDXD_OP_FLAG_RCR in bits 23:0 of bytes 4-7, opcode NOOP (0) in 31:24.
NOOP_WORD1 = (1 << 2) | (1 << 3)


def test_protocol_layout_is_the_same_in_c_and_python(tmp_path: Path) -> None:
    src = tmp_path / "layout.c"
    src.write_text(
        '#include <stddef.h>\n#include <stdio.h>\n#include "bridge_proto.h"\n'
        "int main(void) {\n"
        '  printf("%zu %zu %zu %zu %zu\\n", sizeof(struct svasim_req), sizeof(struct svasim_rsp),\n'
        "         offsetof(struct svasim_req, len), offsetof(struct svasim_req, arg3),\n"
        "         offsetof(struct svasim_rsp, flags));\n"
        '  printf("%d %d %d %d %d %d\\n", SVASIM_OP_HELLO, SVASIM_OP_WQ_OPEN, SVASIM_OP_WQ_RELEASE,\n'
        "         SVASIM_OP_SUBMIT, SVASIM_OP_ATTR_WRITE, SVASIM_OP_FORK);\n"
        '  printf("%d %d %d %d %d %d %d\\n", SVASIM_STORE_ENQCMD, SVASIM_STORE_MOVDIR64B, SVASIM_SUBMIT_ACCEPTED,\n'
        "         SVASIM_SUBMIT_RETRY, SVASIM_SUBMIT_GP, SVASIM_SUBMIT_PAGE_FAULT, SVASIM_PROTO_VERSION);\n"
        '  printf("%d\\n", SVASIM_MAX_DATA);\n'
        "  return 0;\n}\n"
    )
    exe = tmp_path / "layout"
    subprocess.run(["cc", "-I", str(NATIVE), "-o", str(exe), str(src)], check=True)
    sizes, ops, kinds, max_data = subprocess.run([str(exe)], capture_output=True, text=True, check=True).stdout.split(
        "\n"
    )[:4]
    # Four u32 then four u64, packed: 48 bytes, len at 12, arg3 at 40; four 32-bit answers.
    assert [int(x) for x in sizes.split()] == [48, 16, 12, 40, 12]
    assert (protocol.REQ_SIZE, protocol.RSP_SIZE) == (48, 16)
    assert [int(x) for x in ops.split()] == [Op.HELLO, Op.WQ_OPEN, Op.WQ_RELEASE, Op.SUBMIT, Op.ATTR_WRITE, Op.FORK]
    assert [int(x) for x in kinds.split()] == [
        StoreKind.ENQCMD,
        StoreKind.MOVDIR64B,
        SubmitResult.ACCEPTED,
        SubmitResult.RETRY,
        SubmitResult.GP,
        SubmitResult.PAGE_FAULT,
        protocol.VERSION,
    ]
    assert int(max_data) == protocol.MAX_DATA


def _tags(reqs: list[protocol.Request]) -> list[int]:
    return [struct.unpack_from("<I", r.data, 60)[0] for r in reqs]


def test_every_enqcmd_encoding_reaches_the_bridge_with_its_64_bytes_and_retry_sets_zf(
    scripted: ScriptedBridge, preload: Path, probe: Path
) -> None:
    scripted.submit_result = SubmitResult.RETRY
    r = run_under(scripted.env(), preload, probe, "enqcmd", "wq0.0")
    assert r.returncode == 0, r.stdout + r.stderr
    # dsa_test's .byte form, REX, SIB with REX.X and disp8, gcc's intrinsic: all ZF=1.
    assert [ln for ln in values(r.stdout) if ln.startswith("enqcmd")] == [f"enqcmd form={i} zf=1" for i in range(5)]
    subs = scripted.of(Op.SUBMIT)
    assert [(s.kind, s.handle, s.arg0, len(s.data)) for s in subs] == [(StoreKind.ENQCMD, 7, 0, 64)] * 5
    assert _tags(subs) == [0x5A5A0000 | i for i in range(5)]
    for s in subs:
        assert struct.unpack_from("<I", s.data, 4)[0] == NOOP_WORD1
        completion = struct.unpack_from("<Q", s.data, 8)[0]
        assert completion and completion % 32 == 0
    # The file goes when both the fd and the mapping are gone: one release, after them.
    assert [r.handle for r in scripted.of(Op.WQ_RELEASE)] == [7]
    assert scripted.requests[-1].op == Op.WQ_RELEASE


def test_accepted_enqcmd_clears_zf(scripted: ScriptedBridge, preload: Path, probe: Path) -> None:
    scripted.submit_result = SubmitResult.ACCEPTED
    r = run_under(scripted.env(), preload, probe, "enqcmd", "wq0.0")
    assert [ln for ln in values(r.stdout) if ln.startswith("enqcmd")] == [f"enqcmd form={i} zf=0" for i in range(5)]


def test_every_movdir64b_encoding_reaches_the_bridge(scripted: ScriptedBridge, preload: Path, probe: Path) -> None:
    r = run_under(scripted.env(), preload, probe, "movdir64b", "wq0.0")
    assert r.returncode == 0, r.stdout + r.stderr
    subs = scripted.of(Op.SUBMIT)
    assert [s.kind for s in subs] == [StoreKind.MOVDIR64B] * 3
    assert _tags(subs) == [0xA5A50000 | i for i in range(3)]


def test_a_gp_the_kernel_does_not_fix_up_kills_the_program_with_sigsegv(
    scripted: ScriptedBridge, preload: Path, probe: Path
) -> None:
    scripted.submit_result = SubmitResult.GP
    r = run_under(scripted.env(), preload, probe, "enqcmd", "wq0.0")
    assert r.returncode == -signal.SIGSEGV
    assert "enqcmd form=0" not in r.stdout


def test_the_programs_sigaction_handler_sees_real_faults(scripted: ScriptedBridge, preload: Path, probe: Path) -> None:
    r = run_under(scripted.env(), preload, probe, "segv")
    out = values(r.stdout)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "handler_kept=1" in out
    # A store to 0x10: SIGSEGV, SEGV_MAPERR (1), si_addr the address.
    assert "null sig=11 code=1 addr=0x10" in out
    # ENQCMD to ordinary memory from a process without a PASID is the CPU's: #GP, i.e.
    # SIGSEGV with SI_KERNEL (0x80), or SIGILL where the CPU has no ENQCMD.
    m = next(re.fullmatch(r"plain_enqcmd sig=(\d+) code=(-?\d+)", ln) for ln in out if ln.startswith("plain"))
    assert m is not None
    assert (int(m.group(1)), int(m.group(2))) in {(signal.SIGSEGV, 0x80), (signal.SIGILL, 2)}
    assert not scripted.of(Op.SUBMIT)


def test_the_programs_signal_handler_sees_real_faults(scripted: ScriptedBridge, preload: Path, probe: Path) -> None:
    r = run_under(scripted.env(), preload, probe, "signal")
    assert values(r.stdout) == ["signal sig=11"]


def test_a_fault_without_a_handler_keeps_its_default_action(
    scripted: ScriptedBridge, preload: Path, probe: Path
) -> None:
    r = run_under(scripted.env(), preload, probe, "default")
    assert r.returncode == -signal.SIGSEGV
