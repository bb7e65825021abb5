"""Sweeps: many independent runs (workloads x policies x cost tables x seeds, explorer
seeds) on Dask distributed, each recorded in one store.

- :mod:`~svasim.sweep.definition`: the TOML definition and its validation.
- :mod:`~svasim.sweep.generate`: workloads generated from a grid of axes, and the twin of
  a workload without a PASID.
- :mod:`~svasim.sweep.breakdown`: the cycles attributable to PASID management, by component.
- :mod:`~svasim.sweep.runner`: the Dask runner and the store records.
- :mod:`~svasim.sweep.report`: the summary table, the results file and the plots.
"""

from svasim.sweep.definition import SweepDefinition, SweepDefinitionError, load, parse, shipped_sweeps
from svasim.sweep.runner import SCHEDULER_ENV, RunResult, RunTask, SweepError, dask_client, run, tasks

__all__ = [
    "SCHEDULER_ENV",
    "RunResult",
    "RunTask",
    "SweepDefinition",
    "SweepDefinitionError",
    "SweepError",
    "dask_client",
    "load",
    "parse",
    "run",
    "shipped_sweeps",
    "tasks",
]
