"""The oracle: the fold of what a fabric recorded equals the state the fabric exports.

:class:`Oracle` follows a fabric: it folds every transition the fabric emitted since the
last check (encoded as the store keeps them, through JSON) onto the fabric's state at
boot, and compares the result with :func:`svasim.model.state.export_state`, part by
part. Entities whose folded fields are empty are events without state (``client``,
``mem/1``, ``iotlb/7``...) and are left out on both sides.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Any

from svasim.model.state import FabricLike, State, export_state, part_of
from svasim.model.transition import Transition
from svasim.store.store import fold

PARTS = ("kernel", "memory", "iommu", "accel")


def _stored(t: Transition) -> SimpleNamespace:
    # What the store gives back: JSON values (tuples become lists, keys strings).
    def enc(v: Any) -> Any:
        return None if v is None else json.loads(json.dumps(v))

    return SimpleNamespace(entity=t.entity, kind=t.kind, before=enc(t.before), after=enc(t.after))


def _part(state: State, part: str) -> State:
    return {e: f for e, f in state.items() if f and part_of(e) == part}


@dataclass
class Mismatch:
    """The first entity where the fold and the model disagree, with both sides."""

    part: str
    entity: str
    field: str | None
    folded: Any
    model: Any
    after: str

    def describe(self) -> str:
        """A paragraph naming the entity and field and showing both sides."""
        where = f"{self.entity}.{self.field}" if self.field else self.entity
        return (
            f"after {self.after}: the fold of the record and the model disagree at {where} ({self.part})\n"
            f"  folded: {json.dumps(self.folded, sort_keys=True)}\n"
            f"  model:  {json.dumps(self.model, sort_keys=True)}"
        )


def first_difference(folded: State, model: State, part: str, after: str) -> Mismatch | None:
    """The first differing entity (and field) of one part, in entity name order."""
    a, b = _part(folded, part), _part(model, part)
    for entity in sorted(set(a) | set(b)):
        fa, fb = a.get(entity), b.get(entity)
        if fa == fb:
            continue
        if fa is None or fb is None:
            return Mismatch(part, entity, None, fa, fb, after)
        for name in sorted(set(fa) | set(fb)):
            if fa.get(name, "<absent>") != fb.get(name, "<absent>"):
                return Mismatch(part, entity, name, fa.get(name, "<absent>"), fb.get(name, "<absent>"), after)
    return None


class Oracle:
    """Holds a fabric's record (as folded) against its exported state."""

    def __init__(self, fabric: FabricLike, transitions: list[Transition]) -> None:
        self.fabric = fabric
        self.transitions = transitions
        self.folded = fold([], export_state(fabric))
        self.seen = len(transitions)

    def sync(self) -> None:
        """Fold the transitions emitted since the last call."""
        new = self.transitions[self.seen :]
        self.seen = len(self.transitions)
        self.folded = fold((_stored(t) for t in new), self.folded)

    def check(self, after: str, parts: Iterable[str] = PARTS) -> dict[str, Mismatch]:
        """Fold what is new, compare the given parts, return the mismatches."""
        self.sync()
        model = export_state(self.fabric)
        found: dict[str, Mismatch] = {}
        for part in parts:
            m = first_difference(self.folded, model, part, after)
            if m is not None:
                found[part] = m
        return found
