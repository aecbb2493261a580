"""The race as a Game, pure: gates, laps, finishes, physics, ending, results, determinism."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from gameserver.game import MATCH_OVER, GameEvent
from gameserver.race import RaceGame, RaceRules
from gameserver.race.game import DNF, FINISH, FLAG_AI, FLAG_FINISHED, FLAG_OFF_TRACK, FLAG_OUT, LAP

TICK_HZ = 60


def new_race(
    track: str = "oval",
    *,
    laps: int = 2,
    cars: int = 2,
    ai: bool = False,
    rows: int = 1,
    seed: int = 1,
    rules: RaceRules | None = None,
) -> RaceGame:
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=rows, rules=rules)
    for row in range(rows):
        game.create(row, seed=seed + row, options={"track": track, "laps": laps})
        for slot in range(cars):
            game.join(row, slot, ai=ai)
        game.start(row)
    return game


def step(game: RaceGame, controls: np.ndarray | None = None) -> list[GameEvent]:
    if controls is None:
        controls = np.zeros((game.rows, game.slots, 3))
    return list(game.step(np.ones(game.rows, dtype=bool), controls))


def run(game: RaceGame, seconds: float) -> list[GameEvent]:
    """Step until every row is over or ``seconds`` of race time have passed."""
    events: list[GameEvent] = []
    for _ in range(round(seconds * TICK_HZ)):
        events += step(game)
        if game.row_over.all():
            break
    return events


def put(game: RaceGame, slot: int, s: float, *, speed: float = 0.0, side: float = 0.0) -> None:
    """Put a car of row 0 at arc length ``s``, ``side`` metres left of the centre-line."""
    track = game.track_of(0)
    point, tangent = track.point_at(np.array([s]))
    (px, py), (tx, ty) = point[0], tangent[0]
    heading = math.atan2(ty, tx)
    game.place(0, slot, x=px - ty * side, y=py + tx * side, heading=heading, speed=speed)


def about_to_finish(game: RaceGame, slot: int, behind_m: float, speed: float, side: float) -> None:
    track = game.track_of(0)
    game.lap[0, slot] = game.row_laps[0] - 1
    game.next_gate[0, slot], game.gates_passed[0, slot] = 0, track.gates.shape[0]
    put(game, slot, track.length_m - behind_m, speed=speed, side=side)


def kinds(events: list[GameEvent], kind: int) -> list[GameEvent]:
    return [e for e in events if e.kind == kind]


# ------------------------------------------------------------------ schema and state
def test_the_schema_names_eight_fields_three_controls_and_three_events() -> None:
    schema = RaceGame().schema
    assert [f.name for f in schema.fields] == [
        "x", "y", "heading", "speed", "lap", "next_gate", "rank", "flags",
    ]  # fmt: skip
    assert [f.scale for f in schema.fields[:4]] == [100.0] * 4
    assert [(c.name, c.low, c.high) for c in schema.controls] == [
        ("throttle", 0.0, 1.0),
        ("brake", 0.0, 1.0),
        ("steer", -1.0, 1.0),
    ]
    assert [(k.code, k.name, k.args) for k in schema.event_kinds] == [
        (LAP, "LAP", ("lap", "lap_time_ms")),
        (FINISH, "FINISH", ("position", "time_ms")),
        (DNF, "DNF", ()),
    ]
    assert schema.to_wire()["slots"] == 8


def test_before_the_start_cars_sit_on_the_grid_and_empty_slots_are_zero() -> None:
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=2)
    game.create(0, seed=3, options={"track": "sprint", "laps": 1})
    game.join(0, 0, ai=False)
    game.join(0, 1, ai=True)
    before = game.state().copy()
    assert not game.step(np.ones(2, dtype=bool), np.ones((2, 8, 3)))
    assert np.array_equal(game.state(), before)
    grid = game.track_of(0).grid
    assert before[0, 1, 0] == round(grid[1, 0] * 100)
    assert before[0, 1, 1] == round(grid[1, 1] * 100)
    assert before[0, 1, 7] == 1 | FLAG_AI
    assert before[0, :2, 6].tolist() == [1, 2], "grid order is the rank before the start"
    assert not before[0, 2:].any()
    assert not before[1].any()


def test_heading_is_quantised_in_0_to_627() -> None:
    game = new_race(cars=1)
    game.heading[0, 0] = 2 * math.pi - 1e-4
    game.step(np.zeros(1, dtype=bool), np.zeros((1, 8, 3)))
    game._quantise()
    assert game.state()[0, 0, 2] == 0
    game.heading[0, 0] = 6.27
    game._quantise()
    assert game.state()[0, 0, 2] == 627


def test_rows_not_running_do_not_move() -> None:
    game = new_race(cars=2, rows=2)
    throttle = np.zeros((2, 8, 3))
    throttle[..., 0] = 1.0
    before = game.state()[1].copy()
    for _ in range(30):
        game.step(np.array([True, False]), throttle)
    assert np.array_equal(game.state()[1], before)
    assert game.speed[0, 0] > 5.0


# ------------------------------------------------------------------ gates and laps
def test_a_car_moving_100_m_in_a_tick_still_crosses_the_gate() -> None:
    game = new_race(cars=1)
    gate = game.track_of(0).gate_arc[1]
    game.next_gate[0, 0], game.gates_passed[0, 0] = 1, 1
    put(game, 0, gate - 50.0, speed=100.0 * TICK_HZ)
    step(game)
    assert (game.next_gate[0, 0], game.gates_passed[0, 0]) == (2, 2)


def test_a_car_passing_two_gates_in_a_tick_counts_both_in_order() -> None:
    game = new_race("sprint", laps=1, cars=1)
    track = game.track_of(0)
    game.next_gate[0, 0], game.gates_passed[0, 0] = 0, 4
    # 10 m before the line on the start straight, fast enough to pass gate 1.
    put(game, 0, track.length_m - 10.0, speed=60.0 * TICK_HZ)
    events = step(game)
    assert [e.kind for e in events] == [LAP, FINISH, MATCH_OVER]
    assert game.gates_passed[0, 0] == 5
    assert game.finished[0, 0]


def test_the_first_crossing_of_the_start_line_is_not_a_lap() -> None:
    game = new_race("sprint", cars=1)
    full = np.zeros((1, 8, 3))
    full[..., 0] = 1.0
    events: list[GameEvent] = []
    for _ in range(TICK_HZ * 2):
        events += step(game, full)
    assert game.gates_passed[0, 0] >= 1
    assert game.lap[0, 0] == 0
    assert not kinds(events, LAP)


def test_skipping_a_gate_means_no_lap() -> None:
    game = new_race(cars=1)
    track = game.track_of(0)
    game.next_gate[0, 0], game.gates_passed[0, 0] = 1, 1
    put(game, 0, track.length_m - 5.0, speed=30.0)  # past gates 1..5, before the line
    events: list[GameEvent] = []
    for _ in range(30):
        events += step(game)
    assert game.progress_m[0, 0] < 20.0, "the car crossed the start/finish line"
    assert not kinds(events, LAP)
    assert (game.lap[0, 0], game.next_gate[0, 0]) == (0, 1)


def test_a_gate_crossed_backwards_does_not_count() -> None:
    game = new_race(cars=1)
    track = game.track_of(0)
    game.next_gate[0, 0], game.gates_passed[0, 0] = 2, 2
    point, tangent = track.point_at(np.array([track.gate_arc[2] + 3.0]))
    backwards = math.atan2(-tangent[0, 1], -tangent[0, 0])
    game.place(0, 0, x=point[0, 0], y=point[0, 1], heading=backwards, speed=20.0)
    for _ in range(30):
        step(game)
    assert game.next_gate[0, 0] == 2


def test_laps_are_counted_with_their_times_when_every_gate_is_crossed_in_order() -> None:
    game = new_race("sprint", laps=2, cars=1, ai=True)
    events = run(game, 60)
    laps = kinds(events, LAP)
    assert [(e.slot, e.args[0]) for e in laps] == [(0, 1), (0, 2)]
    (finish,) = kinds(events, FINISH)
    assert finish.args[0] == 1
    assert abs(finish.args[1] - sum(e.args[1] for e in laps)) <= 1
    assert game.gates_passed[0, 0] == 1 + 2 * game.track_of(0).gates.shape[0]


def test_two_cars_finishing_in_the_same_tick_get_distinct_interpolated_times() -> None:
    game = new_race("sprint", laps=1, cars=2)
    about_to_finish(game, 0, behind_m=0.3, speed=30.0, side=-3.0)
    about_to_finish(game, 1, behind_m=0.1, speed=30.0, side=3.0)
    events = step(game)
    finishes = {e.slot: e.args for e in kinds(events, FINISH)}
    assert (finishes[1][0], finishes[0][0]) == (1, 2), "the car nearer the line wins"
    assert 0 < game.finish_time[0, 1] < game.finish_time[0, 0] < 1 / TICK_HZ
    travel = game.distance[0, 0]
    assert game.finish_time[0, 0] == pytest.approx(0.3 / travel / TICK_HZ, rel=1e-9)
    assert finishes[1][1] < finishes[0][1]


# ------------------------------------------------------------------ physics
def test_driving_off_the_track_is_slower() -> None:
    game = new_race(cars=2)
    start = game.track_of(0).length_m - 75.0  # on the start straight
    put(game, 0, start)
    put(game, 1, start, side=-30.0)  # outside the oval
    full = np.zeros((1, 8, 3))
    full[..., 0] = 1.0
    for _ in range(TICK_HZ * 3):
        step(game, full)
    assert not game.off_track[0, 0]
    assert game.off_track[0, 1]
    assert game.state()[0, 1, 7] & FLAG_OFF_TRACK
    assert game.speed[0, 1] < 0.6 * game.speed[0, 0]
    assert game.off_time[0, 1] == pytest.approx(3.0)
    assert game.off_time[0, 0] == 0.0
    car = game.rules.car
    assert car.top_speed_mps(off_track=True) < 20.0 < 40.0 < car.top_speed_mps() < 60.0


def test_fast_cars_turn_wider() -> None:
    game = new_race("circle", cars=2)
    put(game, 0, 0.0, speed=10.0)
    put(game, 1, 600.0, speed=45.0)
    left = np.zeros((1, 8, 3))
    left[..., 2] = 1.0
    before = game.heading[0, :2].copy()
    step(game, left)
    yaw = (game.heading[0, :2] - before) * TICK_HZ
    radius = game.speed[0, :2] / yaw
    assert radius[1] > 5 * radius[0]
    assert game.speed[0, 1] * yaw[1] <= game.rules.car.lateral_mps2 + 1e-9


def test_touching_cars_are_pushed_apart_and_each_contact_counted_once() -> None:
    game = new_race(cars=2)
    put(game, 0, 100.0)
    put(game, 1, 100.0, side=1.0)
    for _ in range(10):
        step(game)
    gap = np.hypot(game.x[0, 1] - game.x[0, 0], game.y[0, 1] - game.y[0, 0])
    assert gap >= 2 * game.rules.car.radius_m - 1e-9
    assert game.collisions[0, :2].tolist() == [1, 1]
    put(game, 1, 100.0, side=6.0)
    step(game)
    put(game, 1, 100.0, side=game.lateral_m[0, 0] + 1.0)
    step(game)
    assert game.collisions[0, :2].tolist() == [2, 2]


def test_a_car_running_into_another_slows_and_shoves_it_on() -> None:
    game = new_race(cars=2)
    put(game, 0, 100.0, speed=30.0)
    put(game, 1, 103.2, speed=10.0)
    for _ in range(3):
        step(game)
    assert game.collisions[0, :2].tolist() == [1, 1]
    assert game.speed[0, 0] < 22.0
    assert game.speed[0, 1] > 15.0


def test_nan_controls_count_as_no_input() -> None:
    game = new_race(cars=1)
    step(game, np.full((1, 8, 3), np.nan))
    assert game.speed[0, 0] == 0.0
    assert np.isfinite(game.x).all()


@settings(max_examples=25, deadline=None)
@given(
    controls=hnp.arrays(np.float64, (20, 1, 8, 3), elements=st.floats(-2.0, 2.0, allow_nan=False)),
)
def test_any_controls_keep_the_state_sane(controls: np.ndarray) -> None:
    game = new_race("sprint", cars=8)
    for tick in controls:
        step(game, tick)
    state = game.state()[0]
    assert ((state[:, 2] >= 0) & (state[:, 2] < 628)).all()
    assert (state[:, 3] >= 0).all()
    assert (state[:, 3] <= 3000).all()
    assert sorted(state[:, 6].tolist()) == list(range(1, 9))
    assert np.isfinite(game.x).all()
    assert np.isfinite(game.y).all()


def test_ai_slots_ignore_the_given_controls() -> None:
    a, b = new_race(cars=2, ai=True), new_race(cars=2, ai=True)
    wild = np.random.default_rng(0).uniform(-1, 1, (1, 8, 3))
    for _ in range(120):
        step(a)
        step(b, wild)
    assert np.array_equal(a.state(), b.state())


# ------------------------------------------------------------------ determinism and batching
def scripted(game: RaceGame, ticks: int, seed: int) -> list[bytes]:
    """Random controls for row 0's human cars; the state of row 0 after every tick."""
    rng = np.random.default_rng(seed)
    frames = []
    for _ in range(ticks):
        controls = np.zeros((game.rows, game.slots, 3))
        controls[0, :, 0] = rng.uniform(0.4, 1.0, game.slots)
        controls[0, :, 2] = rng.uniform(-0.4, 0.4, game.slots)
        step(game, controls)
        frames.append(game.state()[0].tobytes())
    return frames


def test_same_seed_and_controls_give_identical_state_whatever_else_runs() -> None:
    alone = new_race("twisty", cars=4, rows=1, seed=9)
    crowded = new_race("twisty", cars=4, rows=3, seed=9)
    crowded.create(1, seed=5, options={"track": "sprint", "laps": 1})
    crowded.create(2, seed=7, options={"track": "circle", "laps": 1})
    for row in (1, 2):
        for slot in range(8):
            crowded.join(row, slot, ai=True)
        crowded.start(row)
    for game in (alone, crowded):
        game.ai[0, 2:4] = True
    assert scripted(alone, 600, seed=4) == scripted(crowded, 600, seed=4)
    assert alone.results(0) == crowded.results(0)


def test_a_batched_step_equals_stepping_each_match_alone() -> None:
    tracks = ["oval", "sprint", "twisty", "circle"]
    batched = RaceGame(tick_rate_hz=TICK_HZ, rows=len(tracks))
    singles = [RaceGame(tick_rate_hz=TICK_HZ, rows=1) for _ in tracks]
    for row, name in enumerate(tracks):
        for game, target in ((batched, row), (singles[row], 0)):
            game.create(target, seed=100 + row, options={"track": name, "laps": 1})
            for slot in range(8):
                game.join(target, slot, ai=True)
            game.start(target)
    batched_events: list[GameEvent] = []
    single_events: list[GameEvent] = []
    for _ in range(400):
        batched_events += step(batched)
        for row, game in enumerate(singles):
            single_events += [
                GameEvent(row=row, slot=e.slot, kind=e.kind, args=e.args) for e in step(game)
            ]
    for row, game in enumerate(singles):
        assert np.array_equal(batched.state()[row], game.state()[0])
    assert sorted(batched_events, key=repr) == sorted(single_events, key=repr)


def test_ai_cars_finish_two_laps_of_every_shipped_track() -> None:
    tracks = ["oval", "sprint", "twisty", "circle"]
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=len(tracks))
    for row, name in enumerate(tracks):
        game.create(row, seed=row, options={"track": name, "laps": 2})
        for slot in range(4):
            game.join(row, slot, ai=True)
        game.start(row)
    events = run(game, 180)
    assert len(kinds(events, MATCH_OVER)) == len(tracks)
    for row, name in enumerate(tracks):
        sane_s = 2 * game.track_of(row).length_m / 15.0 + 10.0
        for result in game.results(row):
            assert result["status"] == "finished", (name, result)
            assert result["time_ms"] < sane_s * 1000, (name, result)
            assert result["stats"]["off_track_s"] < 1.0, (name, result)


# ------------------------------------------------------------------ the end of a match
def test_the_match_ends_once_when_every_car_has_finished() -> None:
    game = new_race("sprint", laps=1, cars=2)
    about_to_finish(game, 0, behind_m=0.2, speed=30.0, side=-3.0)
    about_to_finish(game, 1, behind_m=0.4, speed=30.0, side=3.0)
    events = step(game)
    assert [e.kind for e in events] == [LAP, FINISH, LAP, FINISH, MATCH_OVER]
    assert events[-1].slot == -1
    assert not step(game), "a finished match does not step again"
    assert game.row_over[0]


def test_the_match_ends_after_the_finish_timeout_with_dnfs() -> None:
    game = new_race("sprint", laps=1, cars=3, rules=RaceRules(finish_timeout_s=1.0))
    about_to_finish(game, 0, behind_m=1.0, speed=30.0, side=0.0)
    events = run(game, 3)
    assert len(kinds(events, MATCH_OVER)) == 1
    over = events.index(kinds(events, MATCH_OVER)[0])
    assert sorted(e.slot for e in kinds(events, DNF)) == [1, 2]
    assert all(e.kind == DNF for e in events[over - 2 : over])
    assert game.row_tick[0] == game.row_winner_tick[0] + TICK_HZ, "1 s after the winner"
    assert [r["status"] for r in game.results(0)] == ["finished", "dnf", "dnf"]
    assert game.state()[0, 1, 7] & FLAG_OUT
    assert game.state()[0, 0, 7] & FLAG_FINISHED


def test_the_match_ends_at_the_time_cap_with_everyone_dnf() -> None:
    game = new_race(cars=2, ai=True, rules=RaceRules(max_race_s=2.0))
    events = run(game, 5)
    assert game.row_tick[0] == 2 * TICK_HZ
    assert sorted(e.slot for e in kinds(events, DNF)) == [0, 1]
    assert [r["status"] for r in game.results(0)] == ["dnf", "dnf"]


def test_cars_that_left_do_not_hold_up_the_end() -> None:
    game = new_race("sprint", laps=1, cars=2)
    game.leave(0, 1)
    about_to_finish(game, 0, behind_m=0.2, speed=30.0, side=0.0)
    events = step(game)
    assert [e.kind for e in events] == [LAP, FINISH, MATCH_OVER]


def test_a_match_everyone_left_ends_at_once() -> None:
    game = new_race(cars=2)
    game.leave(0, 0)
    game.leave(0, 1)
    assert [e.kind for e in step(game)] == [MATCH_OVER]
    assert [r["status"] for r in game.results(0)] == ["left", "left"]


def test_leaving_before_the_start_frees_the_slot() -> None:
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=1)
    game.create(0, seed=1, options={"track": "oval"})
    game.join(0, 0, ai=False)
    game.leave(0, 0)
    assert not game.present[0, 0]
    assert not game.state()[0].any()


# ------------------------------------------------------------------ results and standings
def finish_three(rules: RaceRules | None = None) -> RaceGame:
    """Car 2 wins, car 0 second; car 1 does not finish; car 3 left."""
    game = new_race("sprint", laps=1, cars=4, rules=rules)
    about_to_finish(game, 2, behind_m=0.1, speed=30.0, side=3.0)
    about_to_finish(game, 0, behind_m=0.4, speed=30.0, side=-3.0)
    game.gates_passed[0, 1] = 2
    game.next_gate[0, 1] = 2
    put(game, 1, 100.0)
    game.leave(0, 3)
    step(game)
    game.finished[0, 1] = False
    game._end(np.ones(1, dtype=bool))  # end it now: the time cap, as it were
    return game


def test_results_order_finishers_by_time_then_progress_and_leavers_last() -> None:
    results = finish_three()
    assert [(r["slot"], r["position"], r["status"]) for r in results.results(0)] == [
        (2, 1, "finished"),
        (0, 2, "finished"),
        (1, 3, "dnf"),
        (3, 4, "left"),
    ]


def test_results_award_points_and_rewards_per_the_rules() -> None:
    rules = RaceRules(
        points=(25, 18),
        coins=(50, 20),
        xp=(7, 3),
        participation_coins=2,
        participation_xp=1,
    )
    results = finish_three(rules).results(0)
    assert [r["points"] for r in results] == [25, 18, 0, 0]
    assert [r["rewards"] for r in results] == [
        {"coins": 52, "xp": 8},
        {"coins": 22, "xp": 4},
        {"coins": 2, "xp": 1},
        {"coins": 0, "xp": 0},
    ]


def test_results_carry_times_laps_stats_and_who_was_ai() -> None:
    game = new_race("sprint", laps=1, cars=2, ai=True)
    events = run(game, 60)
    results = game.results(0)
    keys = {"slot", "position", "status", "time_ms", "best_lap_ms", "laps", "points"}
    assert all(set(r) == keys | {"rewards", "stats", "ai"} for r in results)
    winner = results[0]
    assert winner["time_ms"] == kinds(events, FINISH)[0].args[1]
    assert winner["best_lap_ms"] == winner["time_ms"]
    assert winner["laps"] == 1
    stats = winner["stats"]
    assert set(stats) == {"top_speed_mps", "distance_m", "collisions", "off_track_s"}
    assert 20.0 < stats["top_speed_mps"] < 60.0
    length = game.track_of(0).length_m
    assert length < stats["distance_m"] < 1.3 * length
    assert all(r["ai"] for r in results)
    assert all(isinstance(v, float) for v in (stats["distance_m"], stats["top_speed_mps"]))


def test_the_live_rank_follows_progress_and_standings_put_the_leader_first() -> None:
    game = new_race(cars=3)
    put(game, 0, 50.0)
    put(game, 1, 80.0)
    put(game, 2, 20.0)
    game.gates_passed[0, :3] = 1
    game.next_gate[0, :3] = 1
    step(game)
    assert game.state()[0, :3, 6].tolist() == [2, 1, 3]
    assert [s["slot"] for s in game.standings(0)] == [1, 0, 2]
    assert game.standings(0)[0]["rank"] == 1


# ------------------------------------------------------------------ rows and options
def test_grow_keeps_existing_rows_and_release_clears_one() -> None:
    game = new_race(cars=2, ai=True, rows=2)
    for _ in range(30):
        step(game)
    before = game.state().copy()
    game.grow(5)
    assert game.rows == 5
    assert game.state().shape == (5, 8, 8)
    assert np.array_equal(game.state()[:2], before)
    assert not game.state()[2:].any()
    step(game)
    game.release(0)
    assert not game.state()[0].any()
    assert not game.present[0].any()
    assert game.state()[1].any()


def test_create_returns_the_track_and_laps() -> None:
    game = RaceGame(rows=1, rules=RaceRules(default_laps=5))
    described = game.create(0, seed=1, options={"track": "sprint"})
    assert described["laps"] == 5
    assert described["track"]["name"] == "sprint"
    assert RaceGame(rows=1).create(0, seed=1, options={"track": "sprint"})["laps"] == 2


@pytest.mark.parametrize(
    ("options", "complaint"),
    [
        ({"track": "nowhere"}, "unknown track"),
        ({"track": "oval", "laps": 0}, "laps"),
        ({"track": "oval", "laps": 2.5}, "laps"),
        ({"track": "oval", "laps": True}, "laps"),
        ({"track": "oval", "lap": 3}, "unknown race options: lap"),
        ({"track": 7}, "track"),
    ],
)
def test_create_refuses_bad_options(options: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        RaceGame(rows=1).create(0, seed=1, options=options)


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("points", (1, 2)),
        ("coins", (5, -1)),
        ("xp", [3, 2]),
        ("participation_coins", -1),
        ("finish_timeout_s", 0.0),
        ("max_race_s", math.inf),
        ("default_laps", 0),
    ],
)
def test_race_rules_refuse_bad_values_naming_the_field(field: str, value: object) -> None:
    with pytest.raises(ValueError, match=f"RaceRules.{field} "):
        RaceRules(**{field: value})  # type: ignore[arg-type]
