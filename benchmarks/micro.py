"""Micro-benchmarks: the batched race step, delta encode/decode, the batched payloads of a tick.

    python -m benchmarks.micro [--repeat 300]

Figures are medians of ``--repeat`` runs on this machine; compare designs by
ratio within one run, since shared machines are noisy.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from functools import partial

import numpy as np

from gameserver import protocol
from gameserver.race import RaceGame
from gameserver.sync import Mirror, StateHistory, build_payload, build_payloads


def median_us(fn: Callable[[], object], repeat: int) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return float(np.median(times)) * 1e6


def racing_game(matches: int, cars: int = 8, track: str = "circle") -> RaceGame:
    game = RaceGame(tick_rate_hz=60, rows=matches, slots=cars)
    for row in range(matches):
        game.create(row, seed=row, options={"track": track, "laps": 1000})
        for slot in range(cars):
            game.join(row, slot, ai=True)
        game.start(row)
    return game


def bench_step(repeat: int) -> list[str]:
    lines = [f"{'race step (all AI)':<28} {'us/step':>9} {'us/car':>8}"]
    for matches in (1, 8, 128):
        game = racing_game(matches)
        running = np.ones(matches, dtype=bool)
        controls = np.zeros((matches, 8, 3))
        for _ in range(120):
            game.step(running, controls)
        us = median_us(partial(game.step, running, controls), repeat)
        cars = matches * 8
        lines.append(f"{matches:>4} x 8 = {cars:>5} cars{'':<10} {us:>9.0f} {us / cars:>8.2f}")
    return lines


def bench_sync(repeat: int) -> list[str]:
    game = racing_game(1)
    running, controls = np.ones(1, dtype=bool), np.zeros((1, 8, 3))
    history = StateHistory(1, 8, len(game.schema.fields))
    for tick in range(1, 200):
        game.step(running, controls)
        history.record(tick, game.state())
    tick, ack, ref = 199, 196, 193
    moving = np.array([f.extrapolate for f in game.schema.fields])

    def frame(at: int, baseline: int, reference: int) -> bytes:
        p = build_payload(history, 0, at, baseline, reference, moving)
        if p.baseline_tick < 0:
            return protocol.encode_snapshot(at, p.checksum, 0, p.values)
        return protocol.encode_delta(
            at, p.baseline_tick, p.reference_tick, p.checksum, 0, p.mask, p.values
        )

    data = frame(tick, ack, ref)
    mirror = Mirror.for_schema(game.schema.to_wire())
    for earlier in (frame(ref, -1, -1), frame(ack, ref, -1)):  # what the client holds
        held = protocol.decode_server_message(earlier)
        assert isinstance(held, protocol.Snapshot | protocol.Delta)
        mirror.apply(held)

    def encode() -> bytes:
        history._checksums.clear()
        return frame(tick, ack, ref)

    def decode() -> None:
        frame = protocol.decode_server_message(data)
        assert isinstance(frame, protocol.Delta)
        mirror.apply(frame)
        mirror.tick = ack  # apply the same frame again next time

    return [
        f"{'delta, 8 cars, 3-tick baseline, extrapolated':<28} {'us':>9}",
        f"{'  encode (server, per client)':<28} {median_us(encode, repeat):>9.1f}",
        f"{'  decode + verify (client)':<28} {median_us(decode, repeat):>9.1f}",
        f"{'  bytes (msgpack, no WS header)':<28} {len(data):>9}",
    ]


def bench_batched(repeat: int) -> list[str]:
    """What the server runs each tick: every match's payloads in one batch."""
    lines = [f"{'payloads of a tick, batched':<28} {'us/tick':>9} {'us/payload':>10}"]
    for matches in (1, 8, 128):
        game = racing_game(matches)
        running, controls = np.ones(matches, dtype=bool), np.zeros((matches, 8, 3))
        history = StateHistory(matches, 8, len(game.schema.fields))
        for tick in range(1, 200):
            game.step(running, controls)
            history.record(tick, game.state())
        moving = np.array([f.extrapolate for f in game.schema.fields])
        # Three baselines per match, as clients acking at 20 Hz on different ticks hold.
        requests = [(row, 196 - k, 193 - k) for row in range(matches) for k in range(3)]
        us = median_us(partial(build_payloads, history, requests, 199, moving), repeat)
        lines.append(
            f"{matches:>4} matches x 3 baselines{'':<4} {us:>9.0f} {us / len(requests):>10.1f}"
        )
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repeat", type=int, default=300)
    args = parser.parse_args(argv)
    sections = [*bench_step(args.repeat), "", *bench_sync(args.repeat), ""]
    for line in [*sections, *bench_batched(args.repeat)]:
        print(line)
    print(f"\nreproduce: python -m benchmarks.micro --repeat {args.repeat}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
