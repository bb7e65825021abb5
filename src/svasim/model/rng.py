"""A small seeded generator (SplitMix64): the model's only randomness.

The standard library's ``random`` is kept out of the model so that a run's choices
depend on its seed alone, the same on every Python version.
"""

from __future__ import annotations

MASK64 = (1 << 64) - 1


class SplitMix64:
    """Deterministic 64-bit generator."""

    def __init__(self, seed: int) -> None:
        self.state = seed & MASK64

    def next(self) -> int:
        """The next 64-bit value."""
        self.state = (self.state + 0x9E3779B97F4A7C15) & MASK64
        z = self.state
        z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
        z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
        return z ^ (z >> 31)

    def below(self, n: int) -> int:
        """A value in [0, n)."""
        if n <= 0:
            raise ValueError("n must be positive")
        return self.next() % n
