"""Tracks: shipped data is sound, geometry is consistent, bad track files are refused."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver.race import Track, TrackSet, load_track, track_names
from gameserver.race.track import GRID_SLOTS, build_track

SHIPPED = ["circle", "oval", "sprint", "twisty"]
LAP_LENGTHS_M = {"oval": (500, 700), "twisty": (1000, 1500), "sprint": (150, 250)}


def segments_cross(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    """Whether segment a-b properly crosses segment c-d (broadcasting)."""

    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        value: np.ndarray = (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1]) - (
            q[..., 1] - p[..., 1]
        ) * (r[..., 0] - p[..., 0])
        return value

    result: np.ndarray = (orient(a, b, c) * orient(a, b, d) < 0) & (
        orient(c, d, a) * orient(c, d, b) < 0
    )
    return result


def point_segment_distance(p: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance from points ``p`` (n, 2) to segments ``a-b`` (m, 2): (n, m)."""
    ab = b - a
    t = ((p[:, None] - a[None]) * ab[None]).sum(-1) / (ab * ab).sum(-1)[None]
    closest = a[None] + np.clip(t, 0, 1)[..., None] * ab[None]
    distance: np.ndarray = np.linalg.norm(p[:, None] - closest, axis=-1)
    return distance


def test_the_four_reference_tracks_are_shipped() -> None:
    assert set(SHIPPED) <= set(track_names())
    assert track_names() == sorted(track_names())


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_track_is_closed_and_evenly_resampled(name: str) -> None:
    track = load_track(name)
    closing_gap = np.hypot(*(track.points[0] - track.points[-1]))
    assert closing_gap == pytest.approx(track.lengths[-1])
    assert track.lengths.min() >= 2.0
    assert track.lengths.max() <= 4.0
    assert track.length_m == pytest.approx(track.lengths.sum())
    assert np.allclose(np.linalg.norm(track.directions, axis=1), 1.0)
    assert np.allclose(np.diff(track.arc), track.lengths[:-1])


@pytest.mark.parametrize("name", SHIPPED)
def test_a_shipped_track_does_not_cross_itself(name: str) -> None:
    track = load_track(name)
    a, b = track.points, np.roll(track.points, -1, axis=0)
    crossing = segments_cross(a[:, None], b[:, None], a[None], b[None])
    m = len(a)
    apart = np.abs(np.arange(m)[:, None] - np.arange(m)[None, :])
    neighbours = np.minimum(apart, m - apart) <= 1
    assert not (crossing & ~neighbours).any()


@pytest.mark.parametrize("name", SHIPPED)
def test_a_gate_spans_the_track_square_to_it_and_reaches_no_other_part(name: str) -> None:
    track = load_track(name)
    ends = track.gates
    span = ends[:, 1] - ends[:, 0]
    assert np.allclose(np.linalg.norm(span, axis=1), 2 * track.width_m)
    assert np.allclose((span * track.gate_directions).sum(axis=1), 0.0, atol=1e-9)
    centre = ends.mean(axis=1)
    _, distance, arc = track.nearest(centre[:, 0], centre[:, 1])
    assert np.allclose(distance, 0.0, atol=1e-6), "gates are centred on the centre-line"
    assert np.allclose(arc, track.gate_arc, atol=1e-6)
    assert track.gate_arc[0] == 0.0, "gate 0 is the start/finish line"
    assert (np.diff(track.gate_arc) > 0).all()
    # Cutting across an infield must not cross a gate: the other parts of the
    # track stay clear of every gate by more than half a width.
    for gate, s in zip(ends, track.gate_arc, strict=True):
        gap = np.abs(track.arc - s)
        far = np.minimum(gap, track.length_m - gap) > 3 * track.width_m
        points = track.points[far]
        distance = point_segment_distance(points, gate[:1], gate[1:])
        assert distance.min() > track.width_m / 2


@pytest.mark.parametrize("name", SHIPPED)
def test_the_grid_sits_behind_the_start_line_in_two_staggered_columns(name: str) -> None:
    track = load_track(name)
    grid = track.grid
    assert grid.shape == (GRID_SLOTS, 3)
    _, distance, arc = track.nearest(grid[:, 0], grid[:, 1])
    assert (distance < track.width_m / 2).all(), "every slot is on the track"
    behind = track.length_m - arc
    assert (np.diff(behind) > 0).all(), "each slot is further back than the one before"
    assert behind[0] > 0
    assert behind[-1] < track.length_m / 2
    _, tangent = track.point_at(arc)
    assert np.allclose(np.cos(grid[:, 2]), tangent[:, 0], atol=1e-6)
    assert np.allclose(np.sin(grid[:, 2]), tangent[:, 1], atol=1e-6)
    assert ((grid[:, 2] >= 0) & (grid[:, 2] < 2 * math.pi)).all()
    spacing = np.linalg.norm(grid[:, None, :2] - grid[None, :, :2], axis=-1)
    assert spacing[~np.eye(GRID_SLOTS, dtype=bool)].min() > 3.0, "no two cars touch"


def test_the_circle_is_the_benchmark_reference_workload() -> None:
    track = load_track("circle")
    assert track.length_m == pytest.approx(2 * math.pi * 200, rel=1e-3)
    assert np.allclose(np.hypot(track.points[:, 0], track.points[:, 1]), 200.0)
    assert track.gates.shape == (8, 2, 2)


@pytest.mark.parametrize(("name", "bounds"), LAP_LENGTHS_M.items())
def test_lap_lengths_suit_what_each_track_is_for(name: str, bounds: tuple[int, int]) -> None:
    low, high = bounds
    assert low <= load_track(name).length_m <= high


def test_twisty_has_left_and_right_bends_of_varied_radius() -> None:
    curvature = load_track("twisty").curvature
    bends = curvature[np.abs(curvature) > 1 / 100]
    assert (bends > 0).any()
    assert (bends < 0).any()
    radii = 1 / np.abs(bends)
    assert radii.max() > 2 * radii.min()


@pytest.mark.parametrize("name", SHIPPED)
def test_safe_speed_brakes_in_time_for_every_bend(name: str) -> None:
    track = load_track(name)
    v = track.safe_speed
    assert (v**2 * np.abs(track.curvature) <= 14.0 + 1e-6).all()
    slowing = v - np.roll(v, -1)
    needed = (v**2 - np.roll(v, -1) ** 2) / (2 * track.lengths)
    assert (needed[slowing > 0] <= 14.0 + 1e-6).all()


def test_loading_is_cached_so_a_name_is_one_track() -> None:
    assert load_track("oval") is load_track("oval")


def test_to_wire_is_plain_data_in_centimetres() -> None:
    track = load_track("sprint")
    wire = track.to_wire()
    assert json.loads(json.dumps(wire)) == wire
    assert set(wire) == {"name", "description", "width_m", "length_m", "laps", "centre"} | {
        "gates",
        "grid",
    }
    assert len(wire["centre"]) == track.segments
    assert wire["centre"][0] == [round(float(v), 2) for v in track.points[0]]
    assert len(wire["gates"]) == track.gates.shape[0]
    assert len(wire["gates"][0]) == 4
    assert wire["length_m"] == round(track.length_m, 2)


@settings(max_examples=50, deadline=None)
@given(name=st.sampled_from(SHIPPED), fraction=st.floats(0.0, 0.999))
def test_the_nearest_point_of_a_centre_line_point_is_itself(name: str, fraction: float) -> None:
    track = load_track(name)
    s = fraction * track.length_m
    point, _ = track.point_at(np.array([s]))
    _, distance, arc = track.nearest(point[:, 0], point[:, 1])
    assert distance[0] == pytest.approx(0.0, abs=1e-6)
    gap = abs(arc[0] - s)
    assert min(gap, track.length_m - gap) == pytest.approx(0.0, abs=1e-6)


def test_a_track_set_concatenates_tracks_with_offsets() -> None:
    tracks = TrackSet()
    oval, sprint = load_track("oval"), load_track("sprint")
    assert tracks.add(oval) == 0
    assert tracks.add(sprint) == 1
    assert tracks.add(oval) == 0, "adding a track twice reuses it"
    start = int(tracks.seg_offset[1])
    assert start == oval.segments
    assert np.array_equal(tracks.seg[start : start + sprint.segments, :2], sprint.points)
    gate = int(tracks.gate_offset[1]) + 2
    assert np.allclose(tracks.gate[gate, :2], sprint.gates[2, 0])


def spec(**overrides: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "name": "square",
        "width_m": 10.0,
        "laps": 2,
        "gates": 4,
        "points": [[0, 0], [100, 0], [100, 100], [0, 100]],
    }
    return base | overrides


def test_a_track_file_can_be_loaded_by_path(tmp_path: Path) -> None:
    path = tmp_path / "square.json"
    path.write_text(json.dumps(spec(gates=[0.0, 0.2, 0.5, 0.7])))
    track = load_track(str(path))
    assert isinstance(track, Track)
    assert track.gate_arc / track.length_m == pytest.approx([0.0, 0.2, 0.5, 0.7])


@pytest.mark.parametrize(
    ("overrides", "complaint"),
    [
        ({"name": ""}, "'name'"),
        ({"width_m": 0}, "'width_m'"),
        ({"laps": 0}, "'laps'"),
        ({"gates": 1}, "'gates'"),
        ({"gates": [0.1, 0.5]}, "'gates'"),
        ({"gates": [0.0, 0.5, 0.4]}, "'gates'"),
        ({"points": [[0, 0], [1, 1]]}, "'points'"),
        ({"points": [[0, 0], [200, 200], [200, 0], [0, 200]]}, "crosses itself"),
        (
            {"points": [[0, 0], [150, 0], [300, 0], [312, 9], [300, 18], [150, 18], [0, 18]]},
            "within",
        ),
        ({"points": [[0, 0], [60, 0], [60, 3], [0, 60]]}, "tighter than the width"),
        ({"circle": {"radius_m": 5}}, "radius_m"),
    ],
)
def test_a_bad_track_is_refused_with_a_reason(overrides: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        build_track(spec(**overrides))


def test_an_unknown_track_name_lists_the_shipped_ones() -> None:
    with pytest.raises(ValueError, match="shipped: circle"):
        load_track("nowhere")
