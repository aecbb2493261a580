"""A tiny game for testing the match, sync and server layers without the race.

Each participant has a position that grows by ``round(push * 10)`` a tick
(AI participants always push 1). A participant reaching ``goal`` finishes; the
match is over when every present participant has finished.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from gameserver.game import (
    MATCH_OVER,
    Control,
    ControlArray,
    EventKind,
    GameEvent,
    GameSchema,
    RowMask,
    StateArray,
    StateField,
)

FINISH = 16


class TinyGame:
    schema = GameSchema(
        game="tiny",
        slots=4,
        fields=(
            StateField(name="pos", scale=1.0, unit="m", doc="distance travelled"),
            StateField(name="flags", scale=1.0, unit="", doc="1 present, 2 finished, 4 left"),
        ),
        controls=(Control(name="push", low=0.0, high=1.0, doc="how hard to push"),),
        event_kinds=(EventKind(code=FINISH, name="FINISH", args=("position",), doc="finished"),),
    )

    def __init__(self, rows: int = 2, goal: int = 100) -> None:
        self.goal = goal
        self._state = np.zeros((rows, self.schema.slots, 2), dtype=np.int32)
        self._ai = np.zeros((rows, self.schema.slots), dtype=bool)
        self._started = np.zeros(rows, dtype=bool)
        self._over = np.zeros(rows, dtype=bool)
        self._finish_order: dict[int, list[int]] = {}
        self.created: dict[int, dict[str, Any]] = {}
        self.steps = 0

    @property
    def rows(self) -> int:
        return int(self._state.shape[0])

    def grow(self, rows: int) -> None:
        old = self.rows
        if rows <= old:
            return
        for name in ("_state", "_ai", "_started", "_over"):
            array = getattr(self, name)
            grown = np.zeros((rows, *array.shape[1:]), dtype=array.dtype)
            grown[:old] = array
            setattr(self, name, grown)

    def create(self, row: int, *, seed: int, options: Mapping[str, Any]) -> dict[str, Any]:
        if options.get("track") == "nowhere":
            raise ValueError("unknown track 'nowhere'")
        self.release(row)
        self.created[row] = {"seed": seed, **options}
        return {"arena": "tiny", "goal": self.goal}

    def join(self, row: int, slot: int, *, ai: bool) -> None:
        self._state[row, slot] = (0, 1)
        self._ai[row, slot] = ai

    def leave(self, row: int, slot: int) -> None:
        if self._started[row]:
            self._state[row, slot, 1] |= 4  # left the race: stays in the results, last
            return
        self._state[row, slot] = 0
        self._ai[row, slot] = False

    def start(self, row: int) -> None:
        self._started[row] = True

    def step(self, running: RowMask, controls: ControlArray) -> Sequence[GameEvent]:
        self.steps += 1
        live = running & self._started & ~self._over
        push = np.where(self._ai, 1.0, controls[:, :, 0])
        moving = live[:, None] & ((self._state[:, :, 1] & 7) == 1)
        before = self._state[:, :, 0].copy()
        self._state[:, :, 0] += np.where(moving, np.round(push * 10), 0).astype(np.int32)
        crossed = moving & (before < self.goal) & (self._state[:, :, 0] >= self.goal)
        events: list[GameEvent] = []
        for row, slot in zip(*np.nonzero(crossed), strict=True):
            order = self._finish_order.setdefault(int(row), [])
            order.append(int(slot))
            self._state[row, slot, 1] |= 2
            events.append(GameEvent(row=int(row), slot=int(slot), kind=FINISH, args=(len(order),)))
        present = (self._state[:, :, 1] & 5) == 1
        finished = (self._state[:, :, 1] & 2) == 2
        done = live & present.any(axis=1) & ~(present & ~finished).any(axis=1)
        for row in np.flatnonzero(done):
            self._over[row] = True
            events.append(GameEvent(row=int(row), slot=-1, kind=MATCH_OVER))
        return events

    def state(self) -> StateArray:
        return self._state

    def results(self, row: int) -> list[dict[str, Any]]:
        order = self._finish_order.get(row, [])
        present = [s for s in range(self.schema.slots) if self._state[row, s, 1] & 1]
        rest = sorted((s for s in present if s not in order), key=lambda s: -self._state[row, s, 0])
        return [
            {"slot": slot, "position": i + 1, "pos": int(self._state[row, slot, 0])}
            for i, slot in enumerate(order + rest)
        ]

    def release(self, row: int) -> None:
        self._state[row] = 0
        self._ai[row] = False
        self._started[row] = False
        self._over[row] = False
        self._finish_order.pop(row, None)
        self.created.pop(row, None)
