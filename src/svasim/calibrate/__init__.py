"""``svasim calibrate``: the cost table's entries measured on this host from user space.

``native`` builds and runs the C timer (``native/calibrate/calibrate.c``) pinned to one
CPU; ``table`` turns its measurements into a cost table that ``--costs`` takes, each
entry naming the CPU model, the method and the date.
"""

from svasim.calibrate.native import CalibrationError
from svasim.calibrate.table import NOT_MEASURABLE, build_table, calibrate

__all__ = ["NOT_MEASURABLE", "CalibrationError", "build_table", "calibrate"]
