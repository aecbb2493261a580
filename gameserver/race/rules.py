"""Race rules: what finishing positions are worth, and when a race is over.

Kept apart from the physics so operators can tune rewards (and simulations
can study them) without touching how cars move.
"""

from __future__ import annotations

import math
from dataclasses import dataclass


@dataclass(frozen=True, slots=True, kw_only=True)
class RaceRules:
    """Points and rewards by finishing position (1st first) and the race's time limits."""

    points: tuple[int, ...] = (10, 8, 6, 5, 4, 3, 2, 1)
    coins: tuple[int, ...] = (100, 75, 60, 50, 40, 30, 20, 10)
    xp: tuple[int, ...] = (200, 160, 130, 110, 90, 70, 50, 30)
    #: Given to every car that raced but did not finish (not to those who left).
    participation_coins: int = 5
    participation_xp: int = 10
    #: The race ends this long after the winner finishes; the rest are DNF.
    finish_timeout_s: float = 20.0
    #: A race never lasts longer than this.
    max_race_s: float = 900.0

    def __post_init__(self) -> None:
        for name in ("points", "coins", "xp"):
            values = getattr(self, name)
            if not values or any(v < 0 for v in values):
                raise ValueError(f"{name} must be non-empty and non-negative, got {values!r}")
            if list(values) != sorted(values, reverse=True):
                raise ValueError(f"{name} must not increase with position, got {values!r}")
        for name in ("participation_coins", "participation_xp"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("finish_timeout_s", "max_race_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ValueError(f"{name} must be a positive number of seconds, got {value!r}")

    def award(self, position: int, finished: bool) -> tuple[int, int, int]:
        """``(points, coins, xp)`` for a finishing position (1-based)."""
        if not finished:
            return 0, self.participation_coins, self.participation_xp

        def at(table: tuple[int, ...]) -> int:
            return table[position - 1] if position <= len(table) else 0

        return (
            at(self.points),
            at(self.coins) + self.participation_coins,
            at(self.xp) + self.participation_xp,
        )
