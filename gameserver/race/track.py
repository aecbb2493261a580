"""Tracks: a closed centre-line with a width, checkpoint gates and a start grid.

Tracks are data files (``tracks/*.json``): either control points, smoothed
with a closed Catmull-Rom spline, or an exact circle. At load the centre-line
is resampled to segments of about ``SPACING_M`` metres so the physics can find
a car's nearest segment in a small window and the autopilot can look ahead by
arc length. Gate 0 is the start/finish line; the grid sits behind it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

Floats = npt.NDArray[np.float64]

#: Target length of a centre-line segment after resampling.
SPACING_M = 3.0
#: A gate reaches this many track widths from the centre on each side, so a
#: car running wide still crosses it but one cutting across an infield does not.
GATE_REACH_WIDTHS = 1.0
#: Distance from the start line to the first grid slot, and between grid rows.
GRID_FIRST_M = 8.0
GRID_ROW_M = 9.0
MAX_GRID_SLOTS = 16
#: Distance over which the autopilot looks for the sharpest curvature ahead.
CURVE_HORIZON_M = 70.0


@dataclass(frozen=True, eq=False)
class Track:
    """A loaded track. Arrays are indexed by centre-line point / segment ``i``
    (from ``points[i]`` to ``points[i + 1]``, wrapping) or by gate."""

    name: str
    description: str
    width_m: float
    laps: int
    points: Floats  # (M, 2)
    directions: Floats  # (M, 2) unit vectors along each segment
    lengths: Floats  # (M,)
    arc: Floats  # (M,) arc length at the start of each segment
    length_m: float
    curvature_ahead: Floats  # (M,) sharpest |curvature| within CURVE_HORIZON_M ahead
    gates: Floats  # (G, 2, 2) gate endpoints
    gate_directions: Floats  # (G, 2) the direction a car must cross in
    grid: Floats  # (MAX_GRID_SLOTS, 3) x, y, heading

    @property
    def segments(self) -> int:
        return int(self.points.shape[0])

    def point_at(self, s: Floats) -> tuple[Floats, Floats]:
        """Points and unit tangents at arc lengths ``s`` (wrapped onto the lap)."""
        s = np.mod(s, self.length_m)
        index = np.clip(np.searchsorted(self.arc, s, side="right") - 1, 0, self.segments - 1)
        offset = (s - self.arc[index])[:, None]
        return self.points[index] + self.directions[index] * offset, self.directions[index]

    def nearest(self, x: Floats, y: Floats) -> tuple[npt.NDArray[np.int64], Floats, Floats]:
        """For each position: nearest segment, distance to the centre-line, arc length.

        Brute force over all segments; the physics uses a windowed search instead.
        """
        px = np.asarray(x, dtype=np.float64)[:, None]
        py = np.asarray(y, dtype=np.float64)[:, None]
        ax, ay = self.points[:, 0][None, :], self.points[:, 1][None, :]
        dx, dy = self.directions[:, 0][None, :], self.directions[:, 1][None, :]
        t = np.clip((px - ax) * dx + (py - ay) * dy, 0.0, self.lengths[None, :])
        distance = np.hypot(px - (ax + dx * t), py - (ay + dy * t))
        index = np.argmin(distance, axis=1)
        rows = np.arange(index.size)
        return index, distance[rows, index], self.arc[index] + t[rows, index]

    def to_wire(self) -> dict[str, Any]:
        """The track for the welcome message: enough for a client to draw it and drive."""
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


# ------------------------------------------------------------------ geometry
def catmull_rom_closed(control: Floats, samples_per_span: int = 24) -> Floats:
    """A dense closed curve through every control point."""
    p0 = np.roll(control, 1, axis=0)
    p1 = control
    p2 = np.roll(control, -1, axis=0)
    p3 = np.roll(control, -2, axis=0)
    t = np.linspace(0.0, 1.0, samples_per_span, endpoint=False)[None, :, None]
    t2, t3 = t * t, t * t * t
    curve = 0.5 * (
        2 * p1[:, None]
        + (p2 - p0)[:, None] * t
        + (2 * p0 - 5 * p1 + 4 * p2 - p3)[:, None] * t2
        + (3 * p1 - p0 - 3 * p2 + p3)[:, None] * t3
    )
    return curve.reshape(-1, 2)


def resample_closed(curve: Floats, spacing_m: float) -> Floats:
    """Points evenly spaced by arc length along a closed polyline."""
    closed = np.vstack([curve, curve[:1]])
    seg = np.hypot(*np.diff(closed, axis=0).T)
    cum = np.concatenate([[0.0], np.cumsum(seg)])
    count = max(8, round(cum[-1] / spacing_m))
    s = np.linspace(0.0, cum[-1], count, endpoint=False)
    return np.column_stack([np.interp(s, cum, closed[:, 0]), np.interp(s, cum, closed[:, 1])])


def build_track(spec: dict[str, Any]) -> Track:
    """A :class:`Track` from a track file's contents; ``ValueError`` names what is wrong."""
    name = str(spec.get("name", ""))
    width = float(spec.get("width_m", 0))
    gate_count = int(spec.get("gates", 0))
    laps = int(spec.get("laps", 3))
    if not name or width <= 0 or gate_count < 2 or laps < 1:
        raise ValueError(f"track {name!r}: needs a name, width_m > 0, gates >= 2 and laps >= 1")
    if "circle" in spec:
        radius = float(spec["circle"]["radius_m"])
        count = max(16, round(2 * np.pi * radius / SPACING_M))
        angle = np.linspace(0.0, 2 * np.pi, count, endpoint=False) - np.pi / 2
        points = np.column_stack([radius * np.cos(angle), radius * np.sin(angle)])
    else:
        control = np.asarray(spec["points"], dtype=np.float64)
        if control.ndim != 2 or control.shape[0] < 4 or control.shape[1] != 2:
            raise ValueError(f"track {name!r}: needs at least 4 control points [x, y]")
        points = resample_closed(catmull_rom_closed(control), SPACING_M)
    delta = np.roll(points, -1, axis=0) - points
    lengths = np.hypot(delta[:, 0], delta[:, 1])
    directions = delta / lengths[:, None]
    arc = np.concatenate([[0.0], np.cumsum(lengths)[:-1]])
    length = float(lengths.sum())
    heading = np.arctan2(directions[:, 1], directions[:, 0])
    turn = np.angle(np.exp(1j * (np.roll(heading, -1) - heading)))
    curvature = np.abs(turn) / lengths
    window = max(1, int(CURVE_HORIZON_M / (length / points.shape[0])))
    wrapped = np.concatenate([curvature, curvature[:window]])
    ahead = np.lib.stride_tricks.sliding_window_view(wrapped, window + 1)[: points.shape[0]]
    track = Track(
        name=name,
        description=str(spec.get("description", "")),
        width_m=width,
        laps=laps,
        points=points,
        directions=directions,
        lengths=lengths,
        arc=arc,
        length_m=length,
        curvature_ahead=ahead.max(axis=1),
        gates=np.zeros((0, 2, 2)),
        gate_directions=np.zeros((0, 2)),
        grid=np.zeros((0, 3)),
    )
    centre, tangent = track.point_at(np.arange(gate_count) * length / gate_count)
    normal = np.column_stack([-tangent[:, 1], tangent[:, 0]])
    reach = width * GATE_REACH_WIDTHS
    gates = np.stack([centre - normal * reach, centre + normal * reach], axis=1)
    slots = np.arange(MAX_GRID_SLOTS)
    back = GRID_FIRST_M + GRID_ROW_M * (slots // 2) + (slots % 2) * GRID_ROW_M / 2
    spot, spot_tangent = track.point_at(length - back)
    side = np.where(slots % 2 == 0, 1.0, -1.0) * width / 4
    spot_normal = np.column_stack([-spot_tangent[:, 1], spot_tangent[:, 0]])
    position = spot + spot_normal * side[:, None]
    grid = np.column_stack(
        [position, np.mod(np.arctan2(spot_tangent[:, 1], spot_tangent[:, 0]), 2 * np.pi)]
    )
    return Track(
        name=track.name,
        description=track.description,
        width_m=width,
        laps=laps,
        points=points,
        directions=directions,
        lengths=lengths,
        arc=arc,
        length_m=length,
        curvature_ahead=track.curvature_ahead,
        gates=gates,
        gate_directions=tangent,
        grid=grid,
    )


# ------------------------------------------------------------------ loading
def _track_files() -> dict[str, Any]:
    folder = resources.files("gameserver.race") / "tracks"
    return {item.name[:-5]: item for item in folder.iterdir() if item.name.endswith(".json")}


def track_names() -> list[str]:
    """Names of the shipped tracks."""
    return sorted(_track_files())


@cache
def load_track(name_or_path: str) -> Track:
    """A shipped track by name, or a track file by path; ``ValueError`` if unknown."""
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
    return build_track(spec)
