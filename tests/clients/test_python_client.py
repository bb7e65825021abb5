"""The Python client is its own distribution: installed alone, it drives a real fabric."""

from __future__ import annotations

import json
from pathlib import Path

from tests.clients.tools import run_isolated

HERE = Path(__file__).resolve().parent

#: DSA_COMP_SUCCESS in include/uapi/linux/idxd.h.
DSA_COMP_SUCCESS = 1
#: PASIDs are 20 bits wide (Intel VT-d spec, 3.4.1); 0 is reserved for requests without one.
PASID_LIMIT = 1 << 20


def test_client_installed_alone_runs_the_enqcmd_path(client_python, fabric_address, tmp_path):
    r = run_isolated(client_python, [str(HERE / "standalone_enqcmd.py"), fabric_address], cwd=tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    out = json.loads(r.stdout)
    # The simulator is not there: the client needs none of it.
    assert out["svasim_importable"] is False
    assert 0 < out["pasid"] < PASID_LIMIT
    # Linux 5.18+: the first ENQCMD of a thread takes the #GP whose fixup loads IA32_PASID.
    assert out["gp_faults"] == 1 and out["fixup"] is True
    assert out["status"] == DSA_COMP_SUCCESS == out["success"]
    assert out["copied"] is True
    # A refusal arrives with its canonical code and the ErrorInfo reason and metadata.
    assert out["refusal"] == {"code": "NOT_FOUND", "reason": "UNKNOWN_PROCESS", "metadata": {"pid": str(1 << 30)}}
    assert out["demo_ok"] is True and out["demo_bytes_verified"] > 0


def test_client_distribution_holds_only_the_api_and_the_client(client_python, tmp_path):
    code = (
        "import importlib.metadata as m, json; "
        "print(json.dumps(sorted({f.parts[0] for f in m.files('svasim-client') if f.suffix == '.py'})))"
    )
    r = run_isolated(client_python, ["-c", code], cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout) == ["svasim_api", "svasim_client"]
    r = run_isolated(client_python, ["-c", "import svasim"], cwd=tmp_path)
    assert r.returncode != 0 and "No module named 'svasim'" in r.stderr
