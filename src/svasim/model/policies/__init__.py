"""The PASID policies, one module each, all behind :class:`svasim.model.policy.PasidPolicy`.

This is the registry: a new policy is one module beside these and one entry in
``POLICIES``.
"""

from __future__ import annotations

from svasim.model.policies.eager_switch_mm import EagerSwitchMm, EagerSwitchMmCmp
from svasim.model.policies.lazy_resource_exception import LazyResourceException
from svasim.model.policies.linux_5_10 import Linux510
from svasim.model.policies.linux_5_18 import Linux518
from svasim.model.policy import PasidPolicy

POLICIES: dict[str, type[PasidPolicy]] = {
    p.name: p for p in (Linux518, EagerSwitchMm, EagerSwitchMmCmp, Linux510, LazyResourceException)
}


def policy_names() -> list[str]:
    """Names of every policy, sorted."""
    return sorted(POLICIES)


def make_policy(name: str) -> PasidPolicy:
    """The policy of that name; ValueError lists the known ones."""
    cls = POLICIES.get(name)
    if cls is None:
        raise ValueError(f"unknown PASID policy {name!r}; known: {', '.join(sorted(POLICIES))}")
    return cls()


__all__ = [
    "POLICIES",
    "EagerSwitchMm",
    "EagerSwitchMmCmp",
    "LazyResourceException",
    "Linux510",
    "Linux518",
    "make_policy",
    "policy_names",
]
