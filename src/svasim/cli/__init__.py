"""The ``svasim`` command: one module per command group, assembled in :mod:`svasim.cli.app`.

- :mod:`~svasim.cli.run`: ``up``, ``serve``, ``demo``, ``health``
- :mod:`~svasim.cli.replay`: ``replay``
- :mod:`~svasim.cli.compare`: ``compare``, ``explore``, ``workloads``
- :mod:`~svasim.cli.trace`: ``trace runs|show|state|follow|delete``
- :mod:`~svasim.cli.exchange`: ``export``, ``import``, ``import-sched``
- :mod:`~svasim.cli.db`: ``db upgrade``
- :mod:`~svasim.cli.calibrate`: ``calibrate``
- :mod:`~svasim.cli.sweep`: ``sweep``
"""

from svasim.cli.app import app, main

__all__ = ["app", "main"]
