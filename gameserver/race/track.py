"""Tracks: a closed centre-line with a width, checkpoint gates and a start grid.

Tracks are data files (``tracks/*.json``)::

    {"name": "sprint", "description": "...", "width_m": 12, "laps": 2,
     "gates": 4,                      # or arc-length fractions: [0, 0.3, 0.6]
     "points": [[x, y], ...]}         # or "circle": {"radius_m": 200}

Control points are joined by a closed centripetal Catmull-Rom spline (it
neither overshoots nor loops between unevenly spaced points) and the curve is
resampled to segments of about :data:`SPACING_M`, so the physics can find a
car's nearest segment in a small window and the autopilot can look ahead by
counting segments. Arc length 0 is the first control point: gate 0, the
start/finish line, sits there and the grid sits behind it. A track that
crosses itself, comes back too close to itself or bends tighter than its
width is refused at load.

:class:`TrackSet` concatenates several tracks into flat arrays so that cars on
different tracks are handled by one gather instead of a loop over tracks.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from functools import cache
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]

#: Target length of a centre-line segment after resampling.
SPACING_M = 3.0
#: A gate reaches this many track widths from the centre on each side: a car
#: running wide still crosses it, one cutting across an infield does not.
GATE_REACH_WIDTHS = 1.0
#: Start grid: distance from the start line to the first slot, between rows of
#: two, and the number of slots a track provides.
GRID_FIRST_M = 8.0
GRID_ROW_M = 9.0
GRID_SLOTS = 16
#: The reference driver behind :attr:`Track.safe_speed`: it corners at this
#: lateral acceleration and brakes at this rate (well inside what a car can do).
SAFE_LATERAL_MPS2 = 14.0
SAFE_BRAKING_MPS2 = 14.0
SAFE_TOP_MPS = 60.0


@dataclass(frozen=True, eq=False)
class Track:
    """A loaded track (compared by identity; :func:`load_track` returns one per name).

    Arrays are indexed by segment ``i`` (from ``points[i]`` to ``points[i + 1]``,
    wrapping) or by gate ``g``.
    """

    name: str
    description: str
    width_m: float
    #: Laps a race on this track runs when the match does not say.
    laps: int
    points: Floats  # (M, 2) segment starts
    directions: Floats  # (M, 2) unit vectors along each segment
    lengths: Floats  # (M,)
    arc: Floats  # (M,) arc length at each segment's start
    length_m: float
    #: Signed curvature of each segment (1/m, positive turning left), smoothed.
    curvature: Floats  # (M,)
    #: Fastest speed at each segment from which the reference driver makes every
    #: corner ahead (see :data:`SAFE_LATERAL_MPS2`).
    safe_speed: Floats  # (M,)
    gates: Floats  # (G, 2, 2) gate endpoints, right end first
    gate_directions: Floats  # (G, 2) the direction a car must cross in
    gate_arc: Floats  # (G,) arc length of each gate's centre
    grid: Floats  # (GRID_SLOTS, 3) x, y, heading of each start slot

    @property
    def segments(self) -> int:
        """Number of centre-line segments."""
        return int(self.points.shape[0])

    @property
    def spacing_m(self) -> float:
        """Mean segment length."""
        return self.length_m / self.segments

    def point_at(self, s: npt.ArrayLike) -> tuple[Floats, Floats]:
        """Points on the centre-line and unit tangents at arc lengths ``s`` (wrapped)."""
        s = np.mod(np.asarray(s, dtype=np.float64), self.length_m)
        index = np.clip(np.searchsorted(self.arc, s, side="right") - 1, 0, self.segments - 1)
        offset = (s - self.arc[index])[..., None]
        return self.points[index] + self.directions[index] * offset, self.directions[index]

    def nearest(self, x: npt.ArrayLike, y: npt.ArrayLike) -> tuple[Ints, Floats, Floats]:
        """For each position: nearest segment, distance to the centre-line, arc length.

        Brute force over every segment; fine for a few cars. The physics tracks
        each car's segment and searches a small window instead.
        """
        px = np.asarray(x, dtype=np.float64).reshape(-1)[:, None]
        py = np.asarray(y, dtype=np.float64).reshape(-1)[:, None]
        ax, ay = self.points[None, :, 0], self.points[None, :, 1]
        dx, dy = self.directions[None, :, 0], self.directions[None, :, 1]
        t = np.clip((px - ax) * dx + (py - ay) * dy, 0.0, self.lengths[None, :])
        distance = np.hypot(px - ax - dx * t, py - ay - dy * t)
        index = np.argmin(distance, axis=1)
        cars = np.arange(index.size)
        return index, distance[cars, index], self.arc[index] + t[cars, index]

    def to_wire(self) -> dict[str, Any]:
        """The track for the welcome message: enough for a client to draw it and drive.

        Coordinates are metres rounded to centimetres; ``gates`` are
        ``[x0, y0, x1, y1]``; ``grid`` entries are ``[x, y, heading_rad]``.
        """
        return {
            "name": self.name,
            "description": self.description,
            "width_m": self.width_m,
            "length_m": round(self.length_m, 2),
            "laps": self.laps,
            "centre": np.round(self.points, 2).tolist(),
            "gates": np.round(self.gates.reshape(-1, 4), 2).tolist(),
            "grid": np.round(self.grid, 3).tolist(),
        }


class TrackSet:
    """Several tracks as flat arrays with per-track offsets.

    Segment ``i`` of track ``k`` is row ``seg_offset[k] + i`` of the segment
    arrays; gates likewise. A game adds every track it races on and gathers by
    index, so one vectorised call serves cars on any mix of tracks.
    """

    def __init__(self) -> None:
        self.tracks: list[Track] = []
        self._ids: dict[int, int] = {}
        #: Per segment: ``ax, ay, dx, dy, length, safe_speed``.
        self.seg = np.zeros((0, 6))
        self.seg_arc = np.zeros(0)
        #: Per gate: ``x0, y0, x1 - x0, y1 - y0, direction_x, direction_y``.
        self.gate = np.zeros((0, 6))
        self.gate_arc = np.zeros(0)
        self.seg_offset = np.zeros(0, dtype=np.int64)
        self.seg_count = np.zeros(0, dtype=np.int64)
        self.gate_offset = np.zeros(0, dtype=np.int64)
        self.gate_count = np.zeros(0, dtype=np.int64)
        self.length_m = np.zeros(0)
        self.width_m = np.zeros(0)
        self.spacing_m = np.zeros(0)

    def add(self, track: Track) -> int:
        """The id of ``track`` in this set, adding it if new."""
        key = id(track)
        if key in self._ids:
            return self._ids[key]
        track_id = len(self.tracks)
        self._ids[key] = track_id
        self.tracks.append(track)
        self.seg_offset = np.append(self.seg_offset, self.seg.shape[0])
        self.seg_count = np.append(self.seg_count, track.segments)
        self.gate_offset = np.append(self.gate_offset, self.gate.shape[0])
        self.gate_count = np.append(self.gate_count, track.gates.shape[0])
        self.length_m = np.append(self.length_m, track.length_m)
        self.width_m = np.append(self.width_m, track.width_m)
        self.spacing_m = np.append(self.spacing_m, track.spacing_m)
        segments = np.column_stack(
            [track.points, track.directions, track.lengths, track.safe_speed]
        )
        self.seg = np.vstack([self.seg, segments])
        self.seg_arc = np.concatenate([self.seg_arc, track.arc])
        start, end = track.gates[:, 0], track.gates[:, 1]
        gates = np.column_stack([start, end - start, track.gate_directions])
        self.gate = np.vstack([self.gate, gates])
        self.gate_arc = np.concatenate([self.gate_arc, track.gate_arc])
        return track_id


@cache
def solo(track: Track) -> TrackSet:
    """A :class:`TrackSet` holding only ``track`` (as id 0)."""
    tracks = TrackSet()
    tracks.add(track)
    return tracks


# ------------------------------------------------------------------ geometry
def catmull_rom_closed(control: Floats, samples_per_span: int = 48) -> Floats:
    """A dense closed centripetal Catmull-Rom curve through every control point."""
    p0, p1 = np.roll(control, 1, axis=0), control
    p2, p3 = np.roll(control, -1, axis=0), np.roll(control, -2, axis=0)

    def knot(a: Floats, b: Floats) -> Floats:
        spacing: Floats = np.maximum(np.sqrt(np.hypot(*(b - a).T)), 1e-6)
        return spacing[:, None, None]

    t0 = np.zeros_like(knot(p0, p1))
    t1 = t0 + knot(p0, p1)
    t2 = t1 + knot(p1, p2)
    t3 = t2 + knot(p2, p3)
    u = np.linspace(0.0, 1.0, samples_per_span, endpoint=False)[None, :, None]
    t = t1 + (t2 - t1) * u
    a0, a1, a2, a3 = (p[:, None, :] for p in (p0, p1, p2, p3))
    b1 = (t1 - t) / (t1 - t0) * a0 + (t - t0) / (t1 - t0) * a1
    b2 = (t2 - t) / (t2 - t1) * a1 + (t - t1) / (t2 - t1) * a2
    b3 = (t3 - t) / (t3 - t2) * a2 + (t - t2) / (t3 - t2) * a3
    c1 = (t2 - t) / (t2 - t0) * b1 + (t - t0) / (t2 - t0) * b2
    c2 = (t3 - t) / (t3 - t1) * b2 + (t - t1) / (t3 - t1) * b3
    curve = (t2 - t) / (t2 - t1) * c1 + (t - t1) / (t2 - t1) * c2
    return curve.reshape(-1, 2)


def resample_closed(curve: Floats, spacing_m: float) -> Floats:
    """Points evenly spaced by arc length along a closed polyline."""
    closed = np.vstack([curve, curve[:1]])
    cum = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(closed, axis=0).T))])
    count = max(16, round(cum[-1] / spacing_m))
    s = np.linspace(0.0, cum[-1], count, endpoint=False)
    return np.column_stack([np.interp(s, cum, closed[:, 0]), np.interp(s, cum, closed[:, 1])])


def _curvature(directions: Floats, lengths: Floats) -> Floats:
    """Signed curvature per segment: heading change per metre, smoothed over ~5 segments."""
    heading = np.arctan2(directions[:, 1], directions[:, 0])
    turn = np.angle(np.exp(1j * (heading - np.roll(heading, 1))))  # at each segment's start
    at_points = turn / (0.5 * (lengths + np.roll(lengths, 1)))
    per_segment = 0.5 * (at_points + np.roll(at_points, -1))
    kernel = np.ones(5) / 5
    wrapped = np.concatenate([per_segment[-2:], per_segment, per_segment[:2]])
    smoothed: Floats = np.convolve(wrapped, kernel, mode="valid")
    return smoothed


def _safe_speed(curvature: Floats, lengths: Floats) -> Floats:
    """Corner speeds, then a backward braking pass twice around the loop."""
    limit = np.minimum(
        np.sqrt(SAFE_LATERAL_MPS2 / np.maximum(np.abs(curvature), 1e-9)), SAFE_TOP_MPS
    )
    speed = limit.tolist()
    length = lengths.tolist()
    count = len(speed)
    for k in range(2 * count - 1, -1, -1):
        i = k % count
        after = speed[(i + 1) % count]
        speed[i] = min(speed[i], math.sqrt(after * after + 2 * SAFE_BRAKING_MPS2 * length[i]))
    return np.array(speed)


def _segments_cross(a: Floats, b: Floats, c: Floats, d: Floats) -> npt.NDArray[np.bool_]:
    """Whether segments ``a-b`` and ``c-d`` properly cross (broadcasting)."""

    def orient(p: Floats, q: Floats, r: Floats) -> Floats:
        value: Floats = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (
            q[..., 1] - p[..., 1]
        ) * (r[..., 0] - p[..., 0])
        return value

    crossing: npt.NDArray[np.bool_] = (orient(a, b, c) * orient(a, b, d) < 0) & (
        orient(c, d, a) * orient(c, d, b) < 0
    )
    return crossing


def check_layout(name: str, points: Floats, arc: Floats, width_m: float) -> None:
    """Refuse a centre-line that crosses itself or whose tarmac or gates would touch
    another part of the track (closer than two widths, unless near along the track)."""
    m = points.shape[0]
    length = float(arc[-1] + np.hypot(*(points[0] - points[-1])))
    ends = np.roll(points, -1, axis=0)
    gap = np.abs(arc[:, None] - arc[None, :])
    gap = np.minimum(gap, length - gap)
    crossing = _segments_cross(points[:, None], ends[:, None], points[None], ends[None])
    crossing &= gap > 2 * length / m
    if crossing.any():
        i = int(np.argwhere(crossing)[0, 0])
        raise ValueError(f"track {name!r}: the centre-line crosses itself near {points[i]}")
    distance = np.hypot(*(points[:, None] - points[None]).transpose(2, 0, 1))
    close = (distance < 2 * width_m) & (gap > 4 * width_m)
    if close.any():
        i = int(np.argwhere(close)[0, 0])
        raise ValueError(
            f"track {name!r}: two parts of the track come within {2 * width_m:g} m "
            f"of each other near {np.round(points[i], 1).tolist()}"
        )


def build_track(spec: dict[str, Any]) -> Track:
    """A :class:`Track` from a track file's contents; ``ValueError`` says what is wrong."""
    name = spec.get("name")
    if not isinstance(name, str) or not name:
        raise ValueError("track: 'name' must be a non-empty string")
    width = spec.get("width_m")
    if not isinstance(width, int | float) or not 2.0 <= width <= 60.0:
        raise ValueError(f"track {name!r}: 'width_m' must be a number in 2..60")
    width = float(width)
    laps = spec.get("laps", 3)
    if not isinstance(laps, int) or isinstance(laps, bool) or laps < 1:
        raise ValueError(f"track {name!r}: 'laps' must be an int >= 1")
    if "circle" in spec:
        circle = spec["circle"]
        radius = circle.get("radius_m") if isinstance(circle, dict) else None
        if not isinstance(radius, int | float) or not radius >= width:
            raise ValueError(f"track {name!r}: 'circle.radius_m' must be >= width_m")
        count = max(16, round(2 * math.pi * radius / SPACING_M))
        angle = np.linspace(0.0, 2 * math.pi, count, endpoint=False) - math.pi / 2
        points = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    else:
        control = np.asarray(spec.get("points", []), dtype=np.float64)
        if control.ndim != 2 or control.shape[0] < 4 or control.shape[1] != 2:
            raise ValueError(f"track {name!r}: 'points' must hold at least 4 [x, y] pairs")
        points = resample_closed(catmull_rom_closed(control), SPACING_M)
    delta = np.roll(points, -1, axis=0) - points
    lengths = np.hypot(delta[:, 0], delta[:, 1])
    directions = delta / lengths[:, None]
    arc = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    length = float(lengths.sum())
    check_layout(name, points, arc, width)
    curvature = _curvature(directions, lengths)
    if np.abs(curvature).max() > 1.0 / width:
        i = int(np.argmax(np.abs(curvature)))
        raise ValueError(
            f"track {name!r}: a bend near {np.round(points[i], 1).tolist()} has a radius "
            f"of {1 / abs(curvature[i]):.1f} m, tighter than the width"
        )
    fractions = _gate_fractions(name, spec.get("gates"))
    # The centre-line first; gates and grid are placed along it below.
    partial = Track(
        name=name,
        description=str(spec.get("description", "")),
        width_m=width,
        laps=laps,
        points=points,
        directions=directions,
        lengths=lengths,
        arc=arc,
        length_m=length,
        curvature=curvature,
        safe_speed=_safe_speed(curvature, lengths),
        gates=np.zeros((0, 2, 2)),
        gate_directions=np.zeros((0, 2)),
        gate_arc=np.zeros(0),
        grid=np.zeros((0, 3)),
    )
    gate_arc = fractions * length
    centre, tangent = partial.point_at(gate_arc)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    reach = width * GATE_REACH_WIDTHS
    gates = np.stack([centre - normal * reach, centre + normal * reach], axis=1)
    slot = np.arange(GRID_SLOTS)
    back = GRID_FIRST_M + GRID_ROW_M * (slot // 2) + (slot % 2) * GRID_ROW_M / 2
    spot, along = partial.point_at(length - back)
    side = np.where(slot % 2 == 0, 1.0, -1.0) * width / 4
    spot = spot + np.column_stack([-along[:, 1], along[:, 0]]) * side[:, None]
    heading = np.mod(np.arctan2(along[:, 1], along[:, 0]), 2 * math.pi)
    grid = np.column_stack([spot, heading])
    return replace(partial, gates=gates, gate_directions=tangent, gate_arc=gate_arc, grid=grid)


def _gate_fractions(name: str, gates: Any) -> Floats:
    if isinstance(gates, int) and not isinstance(gates, bool):
        if gates < 2:
            raise ValueError(f"track {name!r}: 'gates' must be at least 2")
        return np.arange(gates) / gates
    if isinstance(gates, list) and len(gates) >= 2:
        fractions = np.asarray(gates, dtype=np.float64)
        if fractions[0] == 0.0 and (np.diff(fractions) > 0).all() and fractions[-1] < 1.0:
            return fractions
    raise ValueError(
        f"track {name!r}: 'gates' must be a count >= 2 or increasing arc fractions "
        "in [0, 1) starting at 0"
    )


# ------------------------------------------------------------------ loading
def _track_files() -> dict[str, Traversable]:
    folder = resources.files("gameserver.race") / "tracks"
    return {item.name[:-5]: item for item in folder.iterdir() if item.name.endswith(".json")}


def track_names() -> list[str]:
    """Names of the shipped tracks, sorted."""
    return sorted(_track_files())


@cache
def load_track(name_or_path: str) -> Track:
    """A shipped track by name, or a track file by path (ending in ``.json``).

    Cached: a name always gives the same :class:`Track` object. Raises
    ``ValueError`` for an unknown name or a bad file.
    """
    files = _track_files()
    if name_or_path in files:
        text = files[name_or_path].read_text()
    elif name_or_path.endswith(".json") and Path(name_or_path).is_file():
        text = Path(name_or_path).read_text()
    else:
        raise ValueError(f"unknown track {name_or_path!r}; shipped: {', '.join(sorted(files))}")
    try:
        spec = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ValueError(f"track {name_or_path!r}: {exc}") from None
    if not isinstance(spec, dict):
        raise ValueError(f"track {name_or_path!r}: a track file holds a JSON object")
    return build_track(spec)
