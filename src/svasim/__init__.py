"""svasim: a simulator of Shared Virtual Addressing (CPUs with IA32_PASID, a VT-d IOMMU
with PASID tables and a DSA-like accelerator), as gRPC services with a replayable store."""

__version__ = "0.1.0"
