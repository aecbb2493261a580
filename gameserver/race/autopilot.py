"""A driving policy for any track, vectorised over cars.

Server-side AI cars and client bots use the same policy: steer toward a point
on the centre-line a speed-dependent distance ahead, and hold the speed at
which the sharpest curve within the horizon can be taken. It reads only what
a client sees (position, heading, speed), so a bot can drive from its mirror.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .track import Track

Floats = npt.NDArray[np.float64]

#: Lateral acceleration the policy plans corners for (the car manages 20 m/s^2).
PLANNED_LATERAL_MPS2 = 14.0
LOOKAHEAD_BASE_M = 6.0
LOOKAHEAD_PER_MPS = 0.45
STEER_GAIN = 3.0
TOP_SPEED_MPS = 60.0


def drive(
    track: Track,
    x: Floats,
    y: Floats,
    heading: Floats,
    speed: Floats,
    *,
    noise: Floats | None = None,
    segments: npt.NDArray[np.int64] | None = None,
    max_speed_mps: float = TOP_SPEED_MPS,
) -> tuple[Floats, Floats, Floats]:
    """``(throttle, brake, steer)`` for each car.

    ``noise`` in [-1, 1] varies each car's line and pace; ``segments`` (each
    car's nearest centre-line segment, when the caller tracks it) saves the
    search; ``max_speed_mps`` caps the pace (the benchmark holds 30 m/s).
    """
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    heading = np.asarray(heading, dtype=np.float64)
    speed = np.asarray(speed, dtype=np.float64)
    if segments is None:
        index, _, s = track.nearest(x, y)
    else:
        index = segments
        along = (x - track.points[index, 0]) * track.directions[index, 0] + (
            y - track.points[index, 1]
        ) * track.directions[index, 1]
        s = track.arc[index] + np.clip(along, 0.0, track.lengths[index])
    lookahead = LOOKAHEAD_BASE_M + LOOKAHEAD_PER_MPS * speed
    target, _ = track.point_at(s + lookahead)
    if noise is not None:
        normal_offset = np.asarray(noise, dtype=np.float64) * track.width_m * 0.15
        _, tangent = track.point_at(s + lookahead)
        target = target + np.column_stack([-tangent[:, 1], tangent[:, 0]]) * normal_offset[:, None]
    bearing = np.arctan2(target[:, 1] - y, target[:, 0] - x)
    error = np.angle(np.exp(1j * (bearing - heading)))
    steer = np.clip(error * STEER_GAIN, -1.0, 1.0)
    kappa = np.maximum(track.curvature_ahead[index], 1e-4)
    safe = np.minimum(np.sqrt(PLANNED_LATERAL_MPS2 / kappa), max_speed_mps)
    if noise is not None:
        safe = safe * (1.0 - 0.04 * np.abs(np.asarray(noise, dtype=np.float64)))
    throttle = np.clip((safe - speed) / 3.0 + 0.5, 0.0, 1.0)
    brake = np.clip((speed - safe - 1.0) / 8.0, 0.0, 1.0)
    return throttle, brake, steer


def drive_one(
    track: Track,
    x: float,
    y: float,
    heading: float,
    speed: float,
    *,
    rng: np.random.Generator | None = None,
    max_speed_mps: float = TOP_SPEED_MPS,
) -> tuple[float, float, float]:
    """:func:`drive` for a single car from plain numbers (a bot's own car)."""
    noise = np.array([rng.uniform(-1.0, 1.0)]) if rng is not None else None
    throttle, brake, steer = drive(
        track,
        np.array([x]),
        np.array([y]),
        np.array([heading]),
        np.array([speed]),
        noise=noise,
        max_speed_mps=max_speed_mps,
    )
    return float(throttle[0]), float(brake[0]), float(steer[0])
