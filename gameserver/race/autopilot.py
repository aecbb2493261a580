"""A driving policy for any track, vectorised over cars.

Server AI cars and client bots drive with the same policy, and it reads only
what a client sees (position, heading, speed), so a bot can drive from its
mirror of the synced state:

- **steering** is pure pursuit: aim at a point on the centre-line a
  speed-dependent distance ahead (optionally shifted sideways to hold a
  racing line), and ask for the curvature of the arc that reaches it, scaled
  by how sharply the car can turn at its speed;
- **pace** follows the track's :attr:`~gameserver.race.track.Track.safe_speed`
  profile, which already brakes in time for every corner ahead; a car facing
  the wrong way slows down to turn round.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from .rules import CarModel
from .track import Track, TrackSet, solo

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Look-ahead distance: ``LOOKAHEAD_BASE_M + LOOKAHEAD_S * speed``.
LOOKAHEAD_BASE_M = 6.0
LOOKAHEAD_S = 0.5
#: Speed held while the car points more than ~70 degrees away from its target.
TURNING_ROUND_MPS = 8.0
#: Throttle is what holds the target speed plus this much per m/s below it.
THROTTLE_GAIN = 0.5
#: Brakes come on when the car is this much too fast, at this gain per m/s.
BRAKE_MARGIN_MPS = 1.0
BRAKE_GAIN = 0.25
#: How far ``noise`` in :func:`drive` moves a car off the centre-line
#: (fraction of the track width) and slows it (fraction of its pace).
NOISE_LINE_WIDTHS = 0.2
NOISE_PACE = 0.06

_CAR = CarModel()


def drive_set(
    tracks: TrackSet,
    track_id: Ints,
    segment: Ints,
    x: Floats,
    y: Floats,
    heading: Floats,
    speed: Floats,
    *,
    line_m: Floats | float = 0.0,
    pace: Floats | float = 1.0,
    limit_mps: Floats | float = np.inf,
    car: CarModel = _CAR,
) -> tuple[Floats, Floats, Floats]:
    """``(throttle, brake, steer)`` for cars on any tracks of a :class:`TrackSet`.

    ``segment`` is each car's nearest segment of its own track (the physics
    tracks it); ``line_m`` shifts the aim point left (+) or right (-) of the
    centre-line; ``pace`` scales the planned speed; ``limit_mps`` caps it.
    """
    offset = tracks.seg_offset[track_id]
    count = tracks.seg_count[track_id]
    spacing = tracks.spacing_m[track_id]
    ahead = (LOOKAHEAD_BASE_M + LOOKAHEAD_S * speed) / spacing
    aim = tracks.seg[offset + (segment + 1 + ahead.astype(np.int64)) % count]
    # The aim point, shifted along the segment's left normal (-dy, dx).
    rx = aim[:, 0] - aim[:, 3] * line_m - x
    ry = aim[:, 1] + aim[:, 2] * line_m - y
    cos, sin = np.cos(heading), np.sin(heading)
    forward = rx * cos + ry * sin
    left = ry * cos - rx * sin
    reach2 = np.maximum(forward * forward + left * left, 1.0)
    # Pure pursuit: the arc through the aim point has curvature 2 * left / d^2;
    # full lock turns at radius max(min_turn_radius, v^2 / lateral_accel).
    radius = np.maximum(car.min_turn_radius_m, speed * speed / car.lateral_mps2)
    steer = np.clip(2.0 * left / reach2 * radius, -1.0, 1.0)
    # Aiming behind the car: full lock towards the aim point's side.
    steer = np.where(forward < 0, np.where(left >= 0, 1.0, -1.0), steer)
    soon = tracks.seg[offset + (segment + 1) % count, 5]
    target = np.minimum(soon * pace, limit_mps)
    facing_away = forward < 0.3 * np.sqrt(reach2)
    target = np.where(facing_away, np.minimum(target, TURNING_ROUND_MPS), target)
    error = target - speed
    # Feed forward the throttle that holds the target speed against resistance.
    hold = (car.drag_per_m * target + car.rolling_per_s) * target / car.accel_mps2
    brake = np.clip(-BRAKE_GAIN * (error + BRAKE_MARGIN_MPS), 0.0, 1.0)
    throttle = np.where(brake > 0, 0.0, np.clip(hold + THROTTLE_GAIN * error, 0.0, 1.0))
    return throttle, brake, steer


def drive(
    track: Track,
    x: npt.ArrayLike,
    y: npt.ArrayLike,
    heading: npt.ArrayLike,
    speed: npt.ArrayLike,
    *,
    noise: npt.ArrayLike | None = None,
    segments: npt.ArrayLike | None = None,
    max_speed_mps: float = np.inf,
    car: CarModel = _CAR,
) -> tuple[Floats, Floats, Floats]:
    """``(throttle, brake, steer)`` for each car on one track.

    ``noise`` in [-1, 1] per car moves its line sideways and takes a little off
    its pace, so cars do not drive identically; ``segments`` (each car's nearest
    segment, when the caller tracks it) saves a search over every segment;
    ``max_speed_mps`` caps the pace (load tests hold cars slow).
    """
    px = np.asarray(x, dtype=np.float64).reshape(-1)
    py = np.asarray(y, dtype=np.float64).reshape(-1)
    if segments is None:
        segments = track.nearest(px, py)[0]
    line: Floats | float = 0.0
    pace: Floats | float = 1.0
    if noise is not None:
        jitter = np.clip(np.asarray(noise, dtype=np.float64).reshape(-1), -1.0, 1.0)
        line = jitter * NOISE_LINE_WIDTHS * track.width_m
        pace = 1.0 - NOISE_PACE * np.abs(jitter)
    return drive_set(
        solo(track),
        np.zeros(px.size, dtype=np.int64),
        np.asarray(segments, dtype=np.int64).reshape(-1),
        px,
        py,
        np.asarray(heading, dtype=np.float64).reshape(-1),
        np.asarray(speed, dtype=np.float64).reshape(-1),
        line_m=line,
        pace=pace,
        limit_mps=max_speed_mps,
        car=car,
    )


def drive_one(
    track: Track,
    x: float,
    y: float,
    heading: float,
    speed: float,
    *,
    noise: float | None = None,
    rng: np.random.Generator | None = None,
    max_speed_mps: float = np.inf,
    car: CarModel = _CAR,
) -> tuple[float, float, float]:
    """:func:`drive` for one car from plain numbers (a bot steering from its mirror).

    Finds the nearest segment by brute force. ``noise`` is as in :func:`drive`;
    ``rng`` adds a fresh small jitter to each call's noise and steering, so
    bots sharing a seed-free policy still drive differently.
    """
    jitter = 0.0 if noise is None else noise
    if rng is not None:
        jitter += float(rng.uniform(-0.3, 0.3))
    throttle, brake, steer = drive(
        track,
        np.array([x]),
        np.array([y]),
        np.array([heading]),
        np.array([speed]),
        noise=np.array([jitter]) if noise is not None or rng is not None else None,
        max_speed_mps=max_speed_mps,
        car=car,
    )
    wobble = float(rng.normal(0.0, 0.03)) if rng is not None else 0.0
    return (
        float(throttle[0]),
        float(brake[0]),
        float(np.clip(steer[0] + wobble, -1.0, 1.0)),
    )
