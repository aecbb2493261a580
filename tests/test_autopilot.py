"""The autopilot: steers and paces any track, vectorised, from what a client sees."""

from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver.game import MATCH_OVER
from gameserver.race import RaceGame, TrackSet, drive, drive_one, drive_set, load_track

TICK_HZ = 60
SHIPPED = ["circle", "oval", "sprint", "twisty"]


def test_a_car_on_the_circle_steers_left_with_the_bend() -> None:
    track = load_track("circle")
    # At the bottom of the circle heading east; the track curves left (north).
    throttle, brake, steer = drive_one(track, 0.0, -200.0, 0.0, 10.0)
    assert throttle > 0.5
    assert brake == 0.0
    assert 0.0 < steer < 1.0


def test_a_car_too_fast_for_the_bend_ahead_brakes() -> None:
    track = load_track("sprint")
    # On the start straight, 20 m before the first tight bend, far too fast.
    x, y = 7.0, 0.0
    throttle, brake, _ = drive_one(track, x, y, 0.0, 45.0)
    assert brake > 0.5
    assert throttle == 0.0
    throttle, brake, _ = drive_one(track, -20.0, 0.0, 0.0, 10.0)
    assert throttle == 1.0
    assert brake == 0.0


def test_a_car_facing_the_wrong_way_slows_and_turns_round() -> None:
    track = load_track("oval")
    throttle, brake, steer = drive_one(track, 0.0, 0.0, math.pi, 30.0)
    assert brake > 0.0
    assert throttle == 0.0
    assert abs(steer) == 1.0


def test_a_car_off_to_the_right_steers_back_left() -> None:
    track = load_track("oval")
    _, _, steer = drive_one(track, 0.0, -5.0, 0.0, 20.0)
    assert steer > 0.0
    _, _, steer = drive_one(track, 0.0, 5.0, 0.0, 20.0)
    assert steer < 0.0


def test_a_segment_hint_gives_the_same_controls_as_the_search() -> None:
    track = load_track("twisty")
    rng = np.random.default_rng(3)
    s = rng.uniform(0, track.length_m, 50)
    point, tangent = track.point_at(s)
    heading = np.arctan2(tangent[:, 1], tangent[:, 0]) + rng.normal(0, 0.1, 50)
    speed = rng.uniform(0, 50, 50)
    hint = track.nearest(point[:, 0], point[:, 1])[0]
    searched = drive(track, point[:, 0], point[:, 1], heading, speed)
    hinted = drive(track, point[:, 0], point[:, 1], heading, speed, segments=hint)
    assert all(np.array_equal(a, b) for a, b in zip(searched, hinted, strict=True))


def test_cars_on_different_tracks_drive_in_one_call_as_they_would_alone() -> None:
    tracks = TrackSet()
    names = ["oval", "twisty", "sprint"]
    ids = np.array([tracks.add(load_track(n)) for n in names])
    x, y, heading, seg = [], [], [], []
    for name in names:
        track = load_track(name)
        point, tangent = track.point_at(np.array([track.length_m / 3]))
        x.append(point[0, 0])
        y.append(point[0, 1])
        heading.append(math.atan2(tangent[0, 1], tangent[0, 0]))
        seg.append(track.nearest(point[:, 0], point[:, 1])[0][0])
    speed = np.array([20.0, 30.0, 40.0])
    together = drive_set(
        tracks, ids, np.array(seg), np.array(x), np.array(y), np.array(heading), speed
    )
    for k, name in enumerate(names):
        alone = drive(
            load_track(name), x[k : k + 1], y[k : k + 1], heading[k : k + 1], speed[k : k + 1]
        )
        assert [float(a[0]) for a in alone] == [float(t[k]) for t in together]


def test_noise_and_rng_make_cars_drive_differently_yet_reproducibly() -> None:
    track = load_track("oval")
    x, y, heading, speed = np.zeros(2), np.zeros(2), np.zeros(2), np.full(2, 30.0)
    _, _, steer = drive(track, x, y, heading, speed, noise=np.array([-1.0, 1.0]))
    assert steer[0] != steer[1]
    one = [drive_one(track, 0.0, 0.0, 0.0, 30.0, rng=np.random.default_rng(7)) for _ in range(2)]
    other = drive_one(track, 0.0, 0.0, 0.0, 30.0, rng=np.random.default_rng(8))
    assert one[0] == one[1] != other


@settings(max_examples=100, deadline=None)
@given(
    name=st.sampled_from(SHIPPED),
    x=st.floats(-400, 400),
    y=st.floats(-400, 400),
    heading=st.floats(-10, 10),
    speed=st.floats(0, 80),
    noise=st.floats(-1, 1),
)
def test_controls_are_always_within_their_ranges(
    name: str, x: float, y: float, heading: float, speed: float, noise: float
) -> None:
    throttle, brake, steer = drive_one(load_track(name), x, y, heading, speed, noise=noise)
    assert 0.0 <= throttle <= 1.0
    assert 0.0 <= brake <= 1.0
    assert -1.0 <= steer <= 1.0
    assert throttle == 0.0 or brake == 0.0


def dequantised(game: RaceGame, row: int) -> tuple[np.ndarray, ...]:
    """x, y, heading, speed of row ``row`` as a client recovers them from the state."""
    scales = np.array([f.scale for f in game.schema.fields[:4]])
    values = game.state()[row, :, :4] / scales
    return values[:, 0], values[:, 1], values[:, 2], values[:, 3]


def test_bots_driving_from_the_synced_state_finish_every_track() -> None:
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=len(SHIPPED))
    for row, name in enumerate(SHIPPED):
        game.create(row, seed=row, options={"track": name, "laps": 1})
        for slot in range(2):
            game.join(row, slot, ai=False)
        game.start(row)
    noise = np.array([-0.5, 0.5])
    controls = np.zeros((game.rows, game.slots, 3))
    over = 0
    for tick in range(TICK_HZ * 90):
        for row in range(game.rows if tick % 3 == 0 else 0):  # inputs at 20 Hz, as bots send
            x, y, heading, speed = (v[:2] for v in dequantised(game, row))
            throttle, brake, steer = drive(game.track_of(row), x, y, heading, speed, noise=noise)
            controls[row, :2] = np.column_stack((throttle, brake, steer))
        over += sum(e.kind == MATCH_OVER for e in game.step(np.ones(game.rows, bool), controls))
        if over == game.rows:
            break
    for row, name in enumerate(SHIPPED):
        results = game.results(row)
        assert [r["status"] for r in results] == ["finished", "finished"], name
        assert max(r["stats"]["off_track_s"] for r in results) < 1.0, name


@pytest.mark.parametrize("cap", [12.0, 25.0])
def test_a_speed_cap_holds_the_pace(cap: float) -> None:
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=1)
    game.create(0, seed=1, options={"track": "circle", "laps": 1})
    game.join(0, 0, ai=False)
    game.start(0)
    controls = np.zeros((1, game.slots, 3))
    top = 0.0
    for _ in range(TICK_HZ * 15):
        track = game.track_of(0)
        controls[0, 0] = np.concatenate(
            drive(
                track,
                game.x[0, :1],
                game.y[0, :1],
                game.heading[0, :1],
                game.speed[0, :1],
                segments=game.seg[0, :1],
                max_speed_mps=cap,
            )
        )
        game.step(np.ones(1, bool), controls)
        top = max(top, float(game.speed[0, 0]))
    assert cap - 1.5 < top < cap + 0.5
