"""The whole fabric as plain models wired to each other directly.

No services, no recorder: the fastest way to drive the model, used by the model
tests (and anything that needs a fabric without I/O). Each model is its peers' port.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from svasim.model.accel import Accel, Device
from svasim.model.costs import CostTable
from svasim.model.iommu import Iommu
from svasim.model.journal import Journal, Sink
from svasim.model.kernel import Kernel
from svasim.model.memory import DEFAULT_MEMORY_SIZE


class _Late:
    """A reference to a model that is created after the one that needs it."""

    def __init__(self, get: Callable[[], Any]) -> None:
        self._get = get

    def __getattr__(self, name: str) -> Any:
        return getattr(self._get(), name)


class ModelFabric:
    """Kernel, IOMMU and accelerator models wired in-process."""

    def __init__(
        self,
        *,
        ncpus: int = 4,
        policy: str = "linux-5.18",
        costs: CostTable | None = None,
        devices: list[Device] | None = None,
        sink: Sink | None = None,
        early_free: bool | None = None,
        memory_size: int = DEFAULT_MEMORY_SIZE,
    ) -> None:
        costs = costs or CostTable()
        self.sink = sink
        host = _Late(lambda: self.kernel)
        self.iommu = Iommu(host, costs, ats=_Late(lambda: self.accel))
        self.accel = Accel(self.iommu, host, devices, costs)
        self.kernel = Kernel(
            self.accel,
            self.iommu,
            ncpus=ncpus,
            policy=policy,
            costs=costs,
            early_free=early_free,
            memory_size=memory_size,
        )

    def journal(self, service: str = "cpu") -> Journal:
        """A fresh journal for one operation."""
        return Journal(service, self.sink)
