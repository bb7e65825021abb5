"""Figure 5 of benchmarks/run.py (the model on 64 busy CPUs against 4), run small: the
script's figure comes out, and its workload does what it says (each CPU runs a thread,
and the timed ENQCMDs are accepted MEMMOVEs)."""

from __future__ import annotations

from . import bench as bench_script


def test_the_model_figure_is_printed_as_a_ratio_to_four_busy_cpus() -> None:
    out = bench_script.run("--only", "model", "--repeats", "1", "--calls", "20")
    assert "model: ENQCMD MEMMOVE 4 KiB in-process, 64 busy CPUs" in out
    assert "vs 4 busy CPUs" in out and "ratio" in out


def test_the_model_figures_enqcmds_are_accepted_memmoves_on_busy_cpus(monkeypatch) -> None:
    bench = bench_script.load(monkeypatch)
    from svasim.model.kernel import Kernel

    seen: list[tuple[int, object]] = []
    real = Kernel.enqcmd

    def enqcmd(self, journal, tid, dest, src):  # type: ignore[no-untyped-def]
        r = real(self, journal, tid, dest, src)
        seen.append((sum(1 for c in self.cpus.read_only() if c.current), r.outcome))
        return r

    monkeypatch.setattr(Kernel, "enqcmd", enqcmd)
    assert bench.model_enqcmd_rate(8, 5) > 0
    assert len(seen) == 6 and all(busy == 8 for busy, _ in seen)
    assert {str(o) for _, o in seen[1:]} == {str(seen[1][1])} and "ACCEPT" in str(seen[1][1]).upper()
