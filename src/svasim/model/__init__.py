"""The pure model of the fabric: the kernel, the IOMMU and the accelerator, with no I/O.

With ``SVASIM_COMPILED=1`` its modules are the ones ``make compiled`` built
(:mod:`svasim.compiled`), when they match these sources.
"""

from svasim.compiled import activate

activate(__path__)
