"""The car race, pure: tracks, gates, laps, finishes, collisions, results, determinism."""

from __future__ import annotations

import numpy as np
import pytest

from gameserver.game import MATCH_OVER, GameEvent
from gameserver.race import RaceGame, RaceRules, drive_one, load_track, track_names
from gameserver.race.game import DNF, FINISH, LAP

TICK_HZ = 60


def new_race(
    track: str = "oval",
    laps: int = 2,
    cars: int = 2,
    ai: bool = False,
    rows: int = 1,
    finish_timeout_s: float = 20.0,
) -> RaceGame:
    rules = RaceRules(finish_timeout_s=finish_timeout_s)
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=rows, rules=rules)
    for row in range(rows):
        game.create(row, seed=row + 1, options={"track": track, "laps": laps})
        for slot in range(cars):
            game.join(row, slot, ai=ai)
        game.start(row)
    return game


def step(game: RaceGame, controls: np.ndarray | None = None) -> list[GameEvent]:
    if controls is None:
        controls = np.zeros((game.rows, game.slots, 3))
    return list(game.step(np.ones(game.rows, dtype=bool), controls))


def place(game: RaceGame, slot: int, s: float, speed: float, row: int = 0) -> None:
    """Put a car on the centre-line at arc length ``s``, facing along the track."""
    track = game.track_of(row)
    point, tangent = track.point_at(np.array([s]))
    game.x[row, slot], game.y[row, slot] = point[0]
    game.heading[row, slot] = np.arctan2(tangent[0, 1], tangent[0, 0])
    game.speed[row, slot] = speed
    game.seg[row, slot] = track.nearest(point[:, 0], point[:, 1])[0][0]


def segments_cross(a: np.ndarray, b: np.ndarray, c: np.ndarray, d: np.ndarray) -> np.ndarray:
    def orient(p: np.ndarray, q: np.ndarray, r: np.ndarray) -> np.ndarray:
        sign: np.ndarray = np.sign(
            (q[..., 0] - p[..., 0]) * (r[..., 1] - p[..., 1])
            - (q[..., 1] - p[..., 1]) * (r[..., 0] - p[..., 0])
        )
        return sign

    crossing: np.ndarray = (orient(a, b, c) * orient(a, b, d) < 0) & (
        orient(c, d, a) * orient(c, d, b) < 0
    )
    return crossing


@pytest.mark.parametrize("name", track_names())
def test_every_shipped_track_is_closed_simple_and_gated(name: str) -> None:
    track = load_track(name)
    assert {"oval", "twisty", "circle", "sprint"} <= set(track_names())
    gaps = np.hypot(*(np.roll(track.points, -1, axis=0) - track.points).T)
    assert gaps.max() < 5.0, "the centre-line is closed and evenly sampled"
    a, b = track.points, np.roll(track.points, -1, axis=0)
    crossing = segments_cross(a[:, None], b[:, None], a[None, :], b[None, :])
    m = len(a)
    near = np.abs(np.arange(m)[:, None] - np.arange(m)[None, :])
    near = np.minimum(near, m - near) <= 1
    assert not (crossing & ~near).any(), "the track does not cross itself"
    assert track.gates.shape[0] >= 4
    assert np.allclose(
        np.linalg.norm(track.gates[:, 1] - track.gates[:, 0], axis=1), 2 * track.width_m
    )
    _, distance, _ = track.nearest(track.grid[:8, 0], track.grid[:8, 1])
    assert (distance < track.width_m / 2).all(), "grid slots are on the track"


def test_the_circle_is_the_reference_workload() -> None:
    track = load_track("circle")
    assert track.length_m == pytest.approx(2 * np.pi * 200, rel=1e-3)
    assert track.gates.shape[0] == 8


def test_a_car_fast_enough_to_jump_100_m_in_a_tick_still_crosses_the_gate() -> None:
    game = new_race(cars=1)
    track = game.track_of(0)
    gate_s = track.length_m / track.gates.shape[0]
    game.next_gate[0, 0], game.gates_passed[0, 0] = 1, 1
    place(game, 0, gate_s - 50.0, speed=100.0 * TICK_HZ)
    step(game)
    assert game.next_gate[0, 0] == 2
    assert game.gates_passed[0, 0] == 2


def test_a_lap_counts_only_when_every_gate_was_crossed_in_order() -> None:
    game = new_race(cars=1)
    track = game.track_of(0)
    # Skip gate 1 by appearing beyond it, then cross the finish line: no lap.
    game.next_gate[0, 0], game.gates_passed[0, 0] = 1, 1
    place(game, 0, track.length_m - 5.0, speed=30.0)
    for _ in range(30):
        assert not [e for e in step(game) if e.kind == LAP]
    assert game.lap[0, 0] == 0
    assert game.next_gate[0, 0] == 1


def test_an_ai_car_laps_and_finishes_with_lap_events() -> None:
    game = new_race(track="sprint", laps=2, cars=1, ai=True)
    events: list[GameEvent] = []
    for _ in range(TICK_HZ * 120):
        events += step(game)
        if any(e.kind == MATCH_OVER for e in events):
            break
    laps = [e for e in events if e.kind == LAP]
    assert [e.args[0] for e in laps] == [1, 2]
    finish = [e for e in events if e.kind == FINISH]
    assert finish[0].args[0] == 1
    assert abs(finish[0].args[1] - sum(e.args[1] for e in laps)) <= 1  # each rounded to 1 ms
    (result,) = game.results(0)
    assert result["status"] == "finished"
    assert result["time_ms"] == finish[0].args[1]
    assert result["best_lap_ms"] == min(e.args[1] for e in laps)


def test_finish_times_are_interpolated_inside_the_tick() -> None:
    game = new_race(laps=1, cars=2)
    track = game.track_of(0)
    gates = track.gates.shape[0]
    for slot, behind in ((0, 0.3), (1, 0.1)):
        game.next_gate[0, slot], game.gates_passed[0, slot] = 0, gates
        place(game, slot, track.length_m - behind, speed=30.0)
    game.y[0, 1] += 4.0  # side by side, not touching
    events = step(game)
    finishes = {e.slot: e.args for e in events if e.kind == FINISH}
    assert finishes[1][0] == 1, "the car nearer the line wins"
    assert finishes[0][0] == 2
    assert game.finish_time[0, 1] < game.finish_time[0, 0] < 1 / TICK_HZ


def test_driving_off_the_track_is_slower() -> None:
    game = new_race(track="circle", cars=2)
    game.ai[0, 0] = True  # the autopilot keeps car 0 on the track
    place(game, 0, 100.0, speed=0.0)
    place(game, 1, 100.0, speed=0.0)
    game.x[0, 1] *= 1.2  # 40 m outside the circle
    game.y[0, 1] *= 1.2
    full = np.zeros((1, game.slots, 3))
    full[0, :2, 0] = 1.0
    for _ in range(TICK_HZ * 4):
        step(game, full)
    assert game.off_track[0, 1]
    assert not game.off_track[0, 0]
    assert game.speed[0, 1] < 0.6 * game.speed[0, 0]
    assert game.results(0)[0]["stats"]["off_track_s"] == 0.0


def test_touching_cars_are_pushed_apart_and_the_contact_counted_once() -> None:
    game = new_race(cars=2)
    place(game, 0, 100.0, speed=0.0)
    place(game, 1, 100.0, speed=0.0)
    game.x[0, 1] += 1.0
    for _ in range(10):
        step(game)
    gap = np.hypot(game.x[0, 1] - game.x[0, 0], game.y[0, 1] - game.y[0, 0])
    assert gap >= 2 * 1.5 - 1e-9
    assert game.collisions[0].tolist()[:2] == [1, 1]


def test_the_race_ends_after_the_finish_timeout_with_dnfs_and_awards() -> None:
    game = new_race(laps=1, cars=3, finish_timeout_s=1.0)
    track = game.track_of(0)
    game.next_gate[0, 0], game.gates_passed[0, 0] = 0, track.gates.shape[0]
    place(game, 0, track.length_m - 1.0, speed=30.0)
    events: list[GameEvent] = []
    for _ in range(TICK_HZ * 2):
        events += step(game)
    over = [e for e in events if e.kind == MATCH_OVER]
    assert len(over) == 1
    assert sorted(e.slot for e in events if e.kind == DNF) == [1, 2]
    results = game.results(0)
    assert [r["status"] for r in results] == ["finished", "dnf", "dnf"]
    rules = RaceRules()
    assert results[0]["points"] == rules.points[0]
    assert results[0]["rewards"] == {
        "coins": rules.coins[0] + rules.participation_coins,
        "xp": rules.xp[0] + rules.participation_xp,
    }
    assert results[1]["points"] == 0
    assert results[1]["rewards"] == {
        "coins": rules.participation_coins,
        "xp": rules.participation_xp,
    }
    assert not step(game), "a finished race does not step again"


def test_a_player_who_leaves_mid_race_is_ranked_last_and_gets_nothing() -> None:
    game = new_race(laps=1, cars=2, ai=True, finish_timeout_s=1.0)
    for _ in range(30):
        step(game)
    game.leave(0, 0)
    for _ in range(TICK_HZ * 90):
        if any(e.kind == MATCH_OVER for e in step(game)):
            break
    results = game.results(0)
    assert [(r["slot"], r["status"]) for r in results] == [(1, "finished"), (0, "left")]
    assert results[1]["rewards"] == {"coins": 0, "xp": 0}


def run_controls(game: RaceGame, ticks: int, seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    for _ in range(ticks):
        controls = np.zeros((game.rows, game.slots, 3))
        controls[0, :, 0] = rng.uniform(0.5, 1.0, size=game.slots)
        controls[0, :, 2] = rng.uniform(-0.3, 0.3, size=game.slots)
        step(game, controls)
    return bytes(game.state()[0].tobytes())


def test_same_seed_and_inputs_give_bit_identical_state_whatever_else_runs() -> None:
    alone = new_race(track="twisty", cars=4, rows=1)
    crowded = new_race(track="twisty", cars=4, rows=3)
    crowded.create(2, seed=99, options={"track": "oval", "laps": 3})
    for slot in range(8):
        crowded.join(2, slot, ai=True)
    crowded.start(2)
    for game in (alone, crowded):
        for slot in (2, 3):
            game.ai[0, slot] = True
    a = run_controls(alone, 600, seed=4)
    b = run_controls(crowded, 600, seed=4)
    assert a == b
    assert alone.results(0) == crowded.results(0)


def test_a_batched_step_equals_stepping_each_match_alone() -> None:
    batched = new_race(track="oval", cars=8, ai=True, rows=4)
    singles = []
    for row in range(4):
        game = RaceGame(tick_rate_hz=TICK_HZ, rows=1)
        game.create(0, seed=row + 1, options={"track": "oval", "laps": 2})
        for slot in range(8):
            game.join(0, slot, ai=True)
        game.start(0)
        singles.append(game)
    for _ in range(300):
        step(batched)
        for game in singles:
            step(game)
    for row, game in enumerate(singles):
        assert np.array_equal(batched.state()[row], game.state()[0])


@pytest.mark.parametrize("name", track_names())
def test_the_autopilot_drives_every_shipped_track_to_the_finish(name: str) -> None:
    game = new_race(track=name, laps=1, cars=3, ai=True)
    for _ in range(TICK_HZ * 240):
        if any(e.kind == MATCH_OVER for e in step(game)):
            break
    results = game.results(0)
    assert all(r["status"] == "finished" for r in results), results
    assert max(r["stats"]["off_track_s"] for r in results) < 2.0


def test_drive_one_steers_toward_the_track_from_plain_numbers() -> None:
    track = load_track("circle")
    # On the circle heading east at the bottom; the track curves left (north).
    throttle, brake, steer = drive_one(track, 0.0, -200.0, 0.0, 10.0)
    assert throttle > 0.5
    assert brake == 0.0
    assert steer > 0.0
    throttle, brake, steer = drive_one(track, 0.0, -200.0, 0.0, 80.0)
    assert brake > 0.0
    assert throttle < 0.5


def test_a_running_row_among_idle_ones_steps_exactly_as_alone() -> None:
    alone = new_race(track="sprint", cars=3, ai=True, rows=1)
    many = RaceGame(tick_rate_hz=TICK_HZ, rows=16)
    many.create(3, seed=1, options={"track": "sprint", "laps": 2})
    many.create(5, seed=9, options={"track": "oval", "laps": 2})
    for slot in range(3):
        many.join(3, slot, ai=True)
        many.join(5, slot, ai=True)
    many.start(3)  # row 5 stays in its lobby
    lobby = many.state()[5].copy()
    running = np.zeros(16, dtype=bool)
    running[[3, 5]] = True
    for _ in range(400):
        step(alone)
        many.step(running, np.zeros((16, many.slots, 3)))
    assert np.array_equal(many.state()[3], alone.state()[0])
    assert np.array_equal(many.state()[5], lobby)
    assert not many.state()[[0, 1, 2, 4, *range(6, 16)]].any()
