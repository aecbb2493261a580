"""Race rules and the car: what positions are worth, when a race ends, how a car moves.

Kept apart from the physics code so operators can tune rewards and time
limits (and simulations can study them) without touching how cars are
stepped. The car's constants are data too: the autopilot plans with the same
:class:`CarModel` the server steps, so bots and server AI agree on what a car
can do.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields


@dataclass(frozen=True, slots=True, kw_only=True)
class CarModel:
    """Every car's physical constants (SI units).

    With the defaults a car tops out near 50 m/s on the track and near
    17 m/s off it, and corners at up to 20 m/s^2 of lateral acceleration.
    """

    #: Acceleration at full throttle, before resistance.
    accel_mps2: float = 12.0
    #: Deceleration at full brake.
    brake_mps2: float = 25.0
    #: Aerodynamic drag: deceleration ``drag_per_m * speed**2``.
    drag_per_m: float = 0.0038
    #: Rolling resistance on the track: deceleration ``rolling_per_s * speed``.
    rolling_per_s: float = 0.05
    #: Rolling resistance off the track (grass and gravel), replacing the above.
    off_track_per_s: float = 0.6
    #: Most lateral acceleration the tyres give: fast cars turn wider.
    lateral_mps2: float = 20.0
    #: Tightest turn at low speed (full steering lock).
    min_turn_radius_m: float = 6.0
    #: Cars collide as circles of this radius.
    radius_m: float = 1.5
    #: Share of its speed a car loses when it starts touching another.
    contact_speed_loss: float = 0.1

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"CarModel.{f.name} must be a positive number, got {value!r}")
        if self.contact_speed_loss >= 1:
            raise ValueError("CarModel.contact_speed_loss must be below 1")

    def top_speed_mps(self, *, off_track: bool = False) -> float:
        """The speed at which full throttle only balances drag and rolling resistance."""
        rolling = self.off_track_per_s if off_track else self.rolling_per_s
        a, b, c = self.drag_per_m, rolling, -self.accel_mps2
        return (-b + math.sqrt(b * b - 4 * a * c)) / (2 * a)


@dataclass(frozen=True, slots=True, kw_only=True)
class RaceRules:
    """Points and rewards by finishing position (1st first) and the race's limits.

    Finishers earn ``points[p - 1]``, ``coins[p - 1]`` and ``xp[p - 1]`` for
    position ``p`` (nothing past the end of a table) plus the participation
    amounts; cars that raced but did not finish earn only the participation
    amounts; players who left earn nothing.
    """

    points: tuple[int, ...] = (10, 8, 6, 5, 4, 3, 2, 1)
    coins: tuple[int, ...] = (100, 75, 60, 50, 40, 30, 20, 10)
    xp: tuple[int, ...] = (200, 160, 130, 110, 90, 70, 50, 30)
    #: Given to every car that raced to the end, finished or not.
    participation_coins: int = 5
    participation_xp: int = 10
    #: The race ends this long after the winner finishes; the rest are DNF.
    finish_timeout_s: float = 20.0
    #: A race never lasts longer than this, finished or not.
    max_race_s: float = 600.0
    #: Laps when the match options name none; ``None`` takes the track's own.
    default_laps: int | None = None
    #: The car every player drives.
    car: CarModel = field(default_factory=CarModel)

    def __post_init__(self) -> None:
        for name in ("points", "coins", "xp"):
            values = getattr(self, name)
            if not isinstance(values, tuple) or not all(_is_count(v) for v in values):
                raise ValueError(f"RaceRules.{name} must be a tuple of ints >= 0, got {values!r}")
            if list(values) != sorted(values, reverse=True):
                raise ValueError(f"RaceRules.{name} must not increase with position: {values!r}")
        for name in ("participation_coins", "participation_xp"):
            if not _is_count(getattr(self, name)):
                raise ValueError(f"RaceRules.{name} must be an int >= 0")
        for name in ("finish_timeout_s", "max_race_s"):
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ValueError(f"RaceRules.{name} must be a positive number of seconds")
        laps = self.default_laps
        if laps is not None and not (_is_count(laps) and laps >= 1):
            raise ValueError(f"RaceRules.default_laps must be None or an int >= 1, got {laps!r}")
        if not isinstance(self.car, CarModel):
            raise ValueError("RaceRules.car must be a CarModel")

    def award(self, position: int, *, finished: bool) -> tuple[int, int, int]:
        """``(points, coins, xp)`` for a car that raced to the end in ``position`` (1-based)."""
        if not finished:
            return 0, self.participation_coins, self.participation_xp

        def at(table: tuple[int, ...]) -> int:
            return table[position - 1] if position <= len(table) else 0

        return (
            at(self.points),
            at(self.coins) + self.participation_coins,
            at(self.xp) + self.participation_xp,
        )


def _is_count(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
