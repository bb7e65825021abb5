"""The PASID policies, one module each, all behind :class:`svasim.model.policy.PasidPolicy`."""

from __future__ import annotations

from svasim.model.policies.eager_switch_mm import EagerSwitchMm, EagerSwitchMmCmp
from svasim.model.policies.lazy_resource_exception import LazyResourceException
from svasim.model.policies.linux_5_10 import Linux510
from svasim.model.policies.linux_5_18 import Linux518

POLICIES: dict[str, type] = {
    p.name: p for p in (Linux518, EagerSwitchMm, EagerSwitchMmCmp, Linux510, LazyResourceException)
}

__all__ = ["POLICIES", "EagerSwitchMm", "EagerSwitchMmCmp", "LazyResourceException", "Linux510", "Linux518"]
