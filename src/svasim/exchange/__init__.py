"""Exchange formats: a run's events out to other tools, and schedules in from Linux traces.

Pure functions over store data (no gRPC):

- :mod:`~svasim.exchange.perfetto`: a run as a Chrome JSON trace for the Perfetto UI
  (:func:`to_chrome_trace`, :func:`write_chrome_trace`).
- :mod:`~svasim.exchange.jsonl`: a run as versioned JSON Lines, to move it between
  stores (:func:`export_jsonl`, :func:`import_jsonl`).
- :mod:`~svasim.exchange.ftrace`: Linux ``sched_switch`` traces as workloads
  (:func:`parse_sched_switch`, :func:`sched_to_workload`, :func:`workload_to_toml`).
"""

from svasim.exchange.ftrace import SchedSwitch, parse_sched_switch, sched_to_workload, workload_to_toml
from svasim.exchange.jsonl import export_jsonl, import_jsonl
from svasim.exchange.perfetto import to_chrome_trace, write_chrome_trace

__all__ = [
    "SchedSwitch",
    "export_jsonl",
    "import_jsonl",
    "parse_sched_switch",
    "sched_to_workload",
    "to_chrome_trace",
    "workload_to_toml",
    "write_chrome_trace",
]
