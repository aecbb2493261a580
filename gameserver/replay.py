"""Match recordings and their exact re-simulation.

A :class:`Recording` holds what is needed to re-run a match bit for bit: the
game's seed and options, who joined and left and when, when it started, every
accepted input with the tick it took effect, the CRC-32 of the match state
every ``checksum_every`` ticks, and the final results. :func:`replay` runs a
fresh game through the same calls and checks every checksum and the results;
the first difference raises :class:`ReplayDivergence` naming the tick.

Ticks here are *effect ticks*: an entry with tick ``T`` was applied just
before the game stepped to ``T``, exactly as the arena applied it.
"""

from __future__ import annotations

import zlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import msgpack
import numpy as np

from .errors import GameServerError
from .game import Game
from .sync import checksum

#: How often (in ticks) a recording keeps the match state's checksum.
DEFAULT_CHECKSUM_EVERY = 60
#: Version of the serialised recording format.
FORMAT_VERSION = 1

JOIN = 1
LEAVE = 2
START = 3


class ReplayDivergence(GameServerError):
    """The re-simulation differs from the recording at ``tick``."""

    def __init__(self, tick: int, what: str) -> None:
        super().__init__(f"replay diverged at tick {tick}: {what}")
        self.tick = tick
        self.what = what


@dataclass(slots=True)
class Recording:
    """Everything needed to re-simulate one match exactly."""

    game: str
    seed: int
    options: dict[str, Any]
    slots: int
    controls: int
    created_tick: int
    checksum_every: int = DEFAULT_CHECKSUM_EVERY
    end_tick: int = -1
    #: (tick, kind, slot, ai) for JOIN, LEAVE and START (slot -1).
    lifecycle: list[tuple[int, int, int, int]] = field(default_factory=list)
    input_ticks: list[int] = field(default_factory=list)
    input_slots: list[int] = field(default_factory=list)
    input_values: list[tuple[float, ...]] = field(default_factory=list)
    checksums: list[tuple[int, int]] = field(default_factory=list)
    results: list[dict[str, Any]] | None = None

    # ------------------------------------------------------------ recording
    def joined(self, tick: int, slot: int, ai: bool) -> None:
        self.lifecycle.append((tick, JOIN, slot, int(ai)))

    def left(self, tick: int, slot: int) -> None:
        self.lifecycle.append((tick, LEAVE, slot, 0))

    def started(self, tick: int) -> None:
        self.lifecycle.append((tick, START, -1, 0))

    def input(self, tick: int, slot: int, values: tuple[float, ...]) -> None:
        self.input_ticks.append(tick)
        self.input_slots.append(slot)
        self.input_values.append(values)

    # ------------------------------------------------------------ bytes
    def to_bytes(self) -> bytes:
        """A compact, compressed form: inputs as numpy columns, then zlib."""
        values = np.array(self.input_values, dtype="<f8").reshape(-1, self.controls)
        body = {
            "format": FORMAT_VERSION,
            "game": self.game,
            "seed": self.seed,
            "options": self.options,
            "slots": self.slots,
            "controls": self.controls,
            "created_tick": self.created_tick,
            "checksum_every": self.checksum_every,
            "end_tick": self.end_tick,
            "lifecycle": self.lifecycle,
            "input_ticks": np.array(self.input_ticks, dtype="<i8").tobytes(),
            "input_slots": np.array(self.input_slots, dtype="<i2").tobytes(),
            "input_values": values.tobytes(),
            "checksums": self.checksums,
            "results": self.results,
        }
        return zlib.compress(msgpack.packb(body, use_bin_type=True), 6)

    @classmethod
    def from_bytes(cls, data: bytes) -> Recording:
        body = msgpack.unpackb(zlib.decompress(data), raw=False)
        if body.get("format") != FORMAT_VERSION:
            raise GameServerError(f"unsupported recording format {body.get('format')!r}")
        controls = int(body["controls"])
        values = np.frombuffer(body["input_values"], dtype="<f8").reshape(-1, controls)
        return cls(
            game=body["game"],
            seed=body["seed"],
            options=body["options"],
            slots=body["slots"],
            controls=controls,
            created_tick=body["created_tick"],
            checksum_every=body["checksum_every"],
            end_tick=body["end_tick"],
            lifecycle=[(int(t), int(k), int(s), int(a)) for t, k, s, a in body["lifecycle"]],
            input_ticks=np.frombuffer(body["input_ticks"], dtype="<i8").tolist(),
            input_slots=np.frombuffer(body["input_slots"], dtype="<i2").tolist(),
            input_values=[tuple(row) for row in values.tolist()],
            checksums=[(int(t), int(c)) for t, c in body["checksums"]],
            results=body["results"],
        )


@dataclass(frozen=True, slots=True)
class ReplayReport:
    ticks: int
    checksums_verified: int
    results: list[dict[str, Any]]


#: Called after each replayed tick with the tick and the game (for ``--watch``).
TickObserver = Callable[[int, Game], None]

#: Keys the arena adds to a game's results; not part of what the game computes.
ARENA_RESULT_KEYS = ("player_id", "name")


def game_results(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Results as the game computed them, without the arena's player keys."""
    return [{k: v for k, v in r.items() if k not in ARENA_RESULT_KEYS} for r in results]


def replay(
    game: Game, recording: Recording, *, on_tick: TickObserver | None = None
) -> ReplayReport:
    """Re-simulate ``recording`` in row 0 of a fresh ``game`` and verify it.

    Raises :class:`ReplayDivergence` at the first checksum or result that differs.
    """
    row = 0
    game.create(row, seed=recording.seed, options=recording.options)
    controls = np.zeros((game.rows, recording.slots, recording.controls))
    running = np.zeros(game.rows, dtype=bool)
    lifecycle = sorted(recording.lifecycle, key=lambda e: e[0])
    expected = dict(recording.checksums)
    life_at = 0
    input_at = 0
    verified = 0
    ticks = recording.input_ticks
    for tick in range(recording.created_tick + 1, recording.end_tick + 1):
        while life_at < len(lifecycle) and lifecycle[life_at][0] <= tick:
            _, kind, slot, ai = lifecycle[life_at]
            life_at += 1
            if kind == JOIN:
                game.join(row, slot, ai=bool(ai))
            elif kind == LEAVE:
                game.leave(row, slot)
                controls[row, slot] = 0.0
            elif kind == START:
                game.start(row)
                running[row] = True
        while input_at < len(ticks) and ticks[input_at] <= tick:
            controls[row, recording.input_slots[input_at]] = recording.input_values[input_at]
            input_at += 1
        if running.any():
            game.step(running, controls)
        if tick in expected:
            actual = checksum(game.state()[row])
            if actual != expected[tick]:
                raise ReplayDivergence(
                    tick, f"state checksum {actual:#010x}, recorded {expected[tick]:#010x}"
                )
            verified += 1
        if on_tick is not None:
            on_tick(tick, game)
    results = game.results(row)
    if recording.results is not None and game_results(recording.results) != results:
        raise ReplayDivergence(recording.end_tick, "final results differ")
    return ReplayReport(
        ticks=recording.end_tick - recording.created_tick,
        checksums_verified=verified,
        results=results,
    )
