"""The three model-owning cores: cpu (host kernel and memory), iommu and accel."""

from __future__ import annotations

from svasim.model.accel import Accel, Device
from svasim.model.costs import CostTable
from svasim.model.cpu import Kernel
from svasim.model.iommu import Iommu
from svasim.model.ports import AccelPort, AtsPort, HostPort, IommuPort
from svasim.rpc.core import ServiceCore


class CpuCore(ServiceCore):
    """The host: its kernel model owns CPUs, processes, threads and physical memory."""

    service = "cpu"

    def __init__(
        self,
        *,
        accel: AccelPort,
        iommu: IommuPort,
        ncpus: int,
        policy: str,
        costs: CostTable,
        early_free: bool | None = None,
        **kw: object,
    ) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        from svasim.wiring.local import Unlocking

        # Outbound calls release the host lock: the peer may walk page tables or DMA
        # into memory of this very core while the kernel waits for its answer.
        self.kernel = Kernel(
            Unlocking(accel, self.lock),
            Unlocking(iommu, self.lock),
            ncpus=ncpus,
            policy=policy,
            costs=costs,
            early_free=early_free,
        )

    @property
    def model(self) -> Kernel:
        return self.kernel


class IommuCore(ServiceCore):
    """The IOMMU."""

    service = "iommu"

    def __init__(self, *, host: HostPort, costs: CostTable, ats: AtsPort | None = None, **kw: object) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        from svasim.wiring.local import Unlocking

        # The IOMMU does not hold its lock while it waits on a device's TLB invalidation:
        # the device may be waiting on the IOMMU for a translation at that moment.
        self.iommu = Iommu(host, costs, ats=Unlocking(ats, self.lock) if ats is not None else None)

    @property
    def model(self) -> Iommu:
        return self.iommu


class AccelCore(ServiceCore):
    """The accelerators."""

    service = "accel"

    def __init__(
        self,
        *,
        iommu: IommuPort,
        host: HostPort,
        costs: CostTable,
        devices: list[Device] | None = None,
        **kw: object,
    ) -> None:
        super().__init__(**kw)  # type: ignore[arg-type]
        self.accel = Accel(iommu, host, devices, costs)

    @property
    def model(self) -> Accel:
        return self.accel
