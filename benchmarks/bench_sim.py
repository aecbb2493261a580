"""Micro-benchmark of the race simulation: one ``RaceGame.step`` over every car.

    python -m benchmarks.bench_sim [--steps 300] [--track circle]

Steps 1, 8 and 128 matches of 8 AI cars (the 128 x 8 = 1,024-car case is
the reference workload) on the circle track and prints the median time of
one step, per step and per car. Each configuration is warmed up for two
seconds of race time first so cars are spread round the track. Medians of
single steps resist the noise of a shared machine; compare figures taken
in one run.
"""

from __future__ import annotations

import argparse
import platform
import sys
import time

import numpy as np

from gameserver.race import RaceGame

MATCHES = (1, 8, 128)
CARS = 8
TICK_HZ = 60


def racing(matches: int, track: str) -> RaceGame:
    """``matches`` rows of ``CARS`` AI cars, started, on a race too long to end."""
    game = RaceGame(tick_rate_hz=TICK_HZ, rows=matches, slots=CARS)
    for row in range(matches):
        game.create(row, seed=row, options={"track": track, "laps": 1000})
        for slot in range(CARS):
            game.join(row, slot, ai=True)
        game.start(row)
    return game


def median_step_us(game: RaceGame, steps: int) -> float:
    """Median wall time of one step, in microseconds, after a warm-up."""
    running = np.ones(game.rows, dtype=bool)
    controls = np.zeros((game.rows, CARS, 3))
    for _ in range(2 * TICK_HZ):
        game.step(running, controls)
    times = np.empty(steps)
    for i in range(steps):
        start = time.perf_counter()
        game.step(running, controls)
        times[i] = time.perf_counter() - start
    return float(np.median(times)) * 1e6


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print a small table."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=300, help="timed steps per configuration")
    parser.add_argument("--track", default="circle", help="track to race on")
    args = parser.parse_args(argv)
    print(
        f"race step, all AI, {args.track}, {TICK_HZ} Hz; median of {args.steps} steps "
        f"(Python {platform.python_version()}, numpy {np.__version__}, {platform.machine()})"
    )
    print(f"{'matches x cars':>16} {'cars':>6} {'us/step':>9} {'us/car':>8}")
    for matches in MATCHES:
        us = median_step_us(racing(matches, args.track), args.steps)
        cars = matches * CARS
        print(f"{f'{matches} x {CARS}':>16} {cars:>6} {us:>9.0f} {us / cars:>8.2f}")
    command = " ".join(["python -m benchmarks.bench_sim", *(argv or sys.argv[1:])])
    print(f"reproduce: {command}")


if __name__ == "__main__":
    main()
