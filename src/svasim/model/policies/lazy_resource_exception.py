"""A hypothetical architecture: a fault that names the lazily loaded resource.

The 2020 thread asked Intel for an exception that tells the kernel which lazily
managed resource a user instruction touched. Here ENQCMD with an invalid IA32_PASID
raises that fault with resource PASID, and the first AMX instruction with XFD armed
raises it with resource TILE. The handler needs no disambiguation: no
``pasid_activated`` guard against a #GP loop, no XFD_ERR read and clear. A real #GP
stays a #GP. Loading is otherwise as lazy as Linux 5.18 (new threads start clear).
"""

from __future__ import annotations

from mypy_extensions import mypyc_attr

from svasim.model.policy import PolicyBase


@mypyc_attr(native_class=False)
class LazyResourceException(PolicyBase):
    """Lazy loading through a resource-naming fault."""

    name = "lazy-resource-exception"
    lazy_resource_exception = True
