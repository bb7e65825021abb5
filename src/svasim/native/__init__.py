"""The native-process bridge: unmodified DSA programs against the simulated device.

A preload library (``native/preload``) shows a program the idxd driver's sysfs and
``/dev/dsa`` from a tree that :class:`IdxdSysfs` generates from the accel service, maps
each WQ portal as a PROT_NONE page, and traps every ENQCMD and MOVDIR64B to it; the
:class:`Bridge` makes the program a process of the fabric and submits each trapped store
from its thread. :func:`run_native` does it all for one command line
(``svasim run-native``).
"""

from svasim.native.bridge import Bridge
from svasim.native.build import BuildError, preload_library
from svasim.native.run import NativeRun, run_native
from svasim.native.sysfs import IdxdSysfs, StoreError

__all__ = ["Bridge", "BuildError", "IdxdSysfs", "NativeRun", "StoreError", "preload_library", "run_native"]
