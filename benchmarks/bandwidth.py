"""Downstream bytes per client: our baseline-acked deltas beside full-state-per-frame baselines.

An 8-car race (all cars driven by the autopilot) is simulated headless at the
tick rate; a client that acknowledges each frame after ``--ack-delay`` ticks
(a round trip) receives our frames, byte for byte as the server encodes them,
WebSocket header included. The same race is also encoded as a full msgpack
state per frame (per-car maps with string keys and float values) and as JSON,
the way naive servers send it.

    python -m benchmarks.bandwidth [--seconds 30] [--tick-rate 60] [--ack-delay 3]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import dataclass

import msgpack
import numpy as np

from gameserver import protocol
from gameserver.race import RaceGame
from gameserver.sync import Mirror, StateHistory, build_payload


def ws_frame_bytes(payload: int) -> int:
    """Bytes of a server-to-client WebSocket binary frame (unmasked) carrying ``payload``."""
    return payload + (2 if payload < 126 else 4 if payload < 65536 else 10)


@dataclass(slots=True)
class Figures:
    name: str
    frames: int
    payload_bytes: int
    wire_bytes: int

    def per_frame(self) -> float:
        return self.wire_bytes / self.frames

    def per_second(self, send_rate_hz: float) -> float:
        return self.per_frame() * send_rate_hz


def full_state(game: RaceGame, row: int) -> list[dict[str, float]]:
    """The naive full state: one map per car, float values in SI units."""
    names = [f.name for f in game.schema.fields]
    scales = [f.scale for f in game.schema.fields]
    cars = game.state()[row]
    return [
        {name: float(car[i]) / scales[i] for i, name in enumerate(names)}
        for car in cars
        if car[names.index("flags")] & 1
    ]


def run(seconds: float, tick_rate_hz: int, ack_delay_ticks: int, track: str) -> list[Figures]:
    game = RaceGame(tick_rate_hz=tick_rate_hz, rows=1)
    slots = game.schema.slots
    game.create(0, seed=1, options={"track": track, "laps": 1000})
    for slot in range(slots):
        game.join(0, slot, ai=True)
    game.start(0)
    running = np.ones(1, dtype=bool)
    controls = np.zeros((1, slots, len(game.schema.controls)))
    history = StateHistory(1, slots, len(game.schema.fields))
    mirror = Mirror.for_schema(game.schema.to_wire())
    moving = np.array([f.extrapolate for f in game.schema.fields])
    ours = Figures("gameserver delta (msgpack)", 0, 0, 0)
    packed = Figures("full state, msgpack maps", 0, 0, 0)
    as_json = Figures("full state, JSON", 0, 0, 0)
    acks: list[tuple[int, int]] = []  # (tick the ack arrives, acked tick)
    ack_tick = reference_tick = -1
    ticks = int(seconds * tick_rate_hz)
    warmup = 2 * tick_rate_hz
    for tick in range(1, warmup + ticks + 1):
        game.step(running, controls)
        history.record(tick, game.state())
        while acks and acks[0][0] <= tick:
            acked = acks.pop(0)[1]
            if acked > ack_tick:  # as the arena keeps them: the newest and the one before
                reference_tick, ack_tick = ack_tick, acked
        payload = build_payload(history, 0, tick, ack_tick, reference_tick, moving)
        if payload.baseline_tick < 0:
            data = protocol.encode_snapshot(tick, payload.checksum, tick, payload.values)
        else:
            data = protocol.encode_delta(
                tick,
                payload.baseline_tick,
                payload.reference_tick,
                payload.checksum,
                tick,
                payload.mask,
                payload.values,
            )
        frame = protocol.decode_server_message(data)
        assert isinstance(frame, protocol.Snapshot | protocol.Delta)
        mirror.apply(frame)
        acks.append((tick + ack_delay_ticks, mirror.tick))
        if tick <= warmup:
            continue
        state = full_state(game, 0)
        for figures, encoded in (
            (ours, data),
            (packed, msgpack.packb({"tick": tick, "cars": state})),
            (as_json, json.dumps({"tick": tick, "cars": state}).encode()),
        ):
            figures.frames += 1
            figures.payload_bytes += len(encoded)
            figures.wire_bytes += ws_frame_bytes(len(encoded))
    return [ours, packed, as_json]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="bytes per client per second, 8-car race")
    parser.add_argument("--seconds", type=float, default=30.0)
    parser.add_argument("--tick-rate", type=int, default=60)
    parser.add_argument("--ack-delay", type=int, default=3, help="round trip in ticks")
    parser.add_argument("--track", default="circle")
    args = parser.parse_args(argv)
    results = run(args.seconds, args.tick_rate, args.ack_delay, args.track)
    rate = args.tick_rate
    print(
        f"8-car race on '{args.track}', {rate} Hz frames, acks after {args.ack_delay} ticks, "
        f"{args.seconds:g} s measured after 2 s of racing"
    )
    print(f"{'encoding':<30} {'bytes/frame':>12} {'bytes/client/s':>15} {'vs ours':>8}")
    base = results[0].per_second(rate)
    for figures in results:
        print(
            f"{figures.name:<30} {figures.per_frame():>12.1f} {figures.per_second(rate):>15.0f} "
            f"{figures.per_second(rate) / base:>7.1f}x"
        )
    print("bytes include the 2-4 byte WebSocket frame header")
    print(
        f"reproduce: python -m benchmarks.bandwidth --seconds {args.seconds:g} "
        f"--tick-rate {rate} --ack-delay {args.ack_delay} --track {args.track}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
