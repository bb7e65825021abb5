"""benchmarks/load.py run small: the split fabric against ``svasim up``, with what each
spent per iteration (server CPU per process, rows and transactions committed)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

LOAD = Path(__file__).resolve().parents[2] / "benchmarks" / "load.py"


def test_the_load_benchmark_says_where_the_split_fabrics_time_goes() -> None:
    out = subprocess.run(
        [sys.executable, str(LOAD), "--clients", "2", "--seconds", "1"],
        capture_output=True,
        text=True,
        timeout=300,
        check=True,
    ).stdout
    assert "ratio split / one-process: throughput" in out
    costs = dict(re.findall(r"^(one-process|split) +server CPU [\d,]+ us/iteration \((.*)\); ", out, re.M))
    assert set(costs) == {"one-process", "split"}
    assert costs["one-process"].startswith("up ")
    assert {part.split()[0] for part in costs["split"].split(", ")} == {"cpu", "iommu", "accel"}
    per = dict(re.findall(r"^(one-process|split) .* ([\d.]+) transactions committed/iteration", out, re.M))
    # Every cross-process call commits on both sides: the split fabric commits more often.
    assert float(per["split"]) > float(per["one-process"]) > 0
