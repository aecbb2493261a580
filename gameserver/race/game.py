"""The car race as a :class:`~gameserver.game.Game`: every car of every match in one set of columns.

Columns are shaped ``(rows, slots)``: one row per match. A tick moves every
car of every running row with one set of numpy calls; Python runs per row or
per car only when something happens (a gate, a lap, a finish, the end).
Rows may race on different tracks: every track's segments and gates are
concatenated into global arrays, and each car gathers its own by offset.

The car: throttle, brake and steer; drag and rolling resistance; a turn rate
limited by a maximum lateral acceleration, so fast cars turn wider; more drag
off the track; cars that touch are pushed apart and slowed. Gates are crossed
by segment intersection of the car's movement this tick with the gate, so no
speed tunnels through one, and crossing times are interpolated inside the tick.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from ..game import (
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
from .autopilot import drive
from .rules import RaceRules
from .track import Track, load_track

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

LAP = 16
FINISH = 17
DNF = 18

ACCEL_MPS2 = 12.0
BRAKE_MPS2 = 25.0
DRAG_PER_M = 0.0038  # top speed about 50 m/s on the track
ROLLING_PER_S = 0.05
OFF_TRACK_PER_S = 0.6  # top speed about 16 m/s off the track
LATERAL_MPS2 = 20.0
MIN_TURN_RADIUS_M = 6.0
CAR_RADIUS_M = 1.5
CONTACT_SLOWDOWN = 0.985
SEARCH_WINDOW = np.arange(-3, 5)  # segments around the last nearest one

FLAG_PRESENT = 1
FLAG_FINISHED = 2
FLAG_OFF_TRACK = 4
FLAG_AI = 8
FLAG_OUT = 16  # left the race or did not finish

SCHEMA = GameSchema(
    game="race",
    slots=8,
    fields=(
        StateField(name="x", scale=100.0, unit="m", doc="position east, in cm on the wire"),
        StateField(name="y", scale=100.0, unit="m", doc="position north, in cm on the wire"),
        StateField(name="heading", scale=100.0, unit="rad", doc="0 = east, counter-clockwise"),
        StateField(name="speed", scale=100.0, unit="m/s", doc="forward speed"),
        StateField(name="lap", scale=1.0, unit="", doc="laps completed"),
        StateField(name="next_gate", scale=1.0, unit="", doc="index of the next gate to cross"),
        StateField(name="rank", scale=1.0, unit="", doc="live position, 1 = leading; 0 = empty"),
        StateField(
            name="flags",
            scale=1.0,
            unit="",
            doc="bits: 1 present, 2 finished, 4 off track, 8 AI, 16 left or DNF",
        ),
    ),
    controls=(
        Control(name="throttle", low=0.0, high=1.0, doc="accelerator"),
        Control(name="brake", low=0.0, high=1.0, doc="brake"),
        Control(name="steer", low=-1.0, high=1.0, doc="-1 full right, +1 full left"),
    ),
    event_kinds=(
        EventKind(code=LAP, name="LAP", args=("lap", "lap_time_ms"), doc="a lap completed"),
        EventKind(code=FINISH, name="FINISH", args=("position", "time_ms"), doc="a car finished"),
        EventKind(code=DNF, name="DNF", args=(), doc="the race ended before this car finished"),
    ),
)


class RaceGame:
    """Every race of the process; see the module docstring."""

    # Per-car columns, shaped (rows, slots).
    x: Floats
    y: Floats
    heading: Floats
    speed: Floats
    finish_time: Floats
    lap_start: Floats
    best_lap: Floats
    top_speed: Floats
    distance: Floats
    off_time: Floats
    lap: Ints
    next_gate: Ints
    gates_passed: Ints
    collisions: Ints
    seg: Ints
    rank: Ints
    present: Bools
    ai: Bools
    left: Bools
    finished: Bools
    dnf: Bools
    contact: Bools
    off_track: Bools
    # Per-row columns, shaped (rows,).
    row_track: Ints
    row_laps: Ints
    row_seed: Ints
    row_started: Bools
    row_over: Bools
    row_race_ticks: Ints
    row_winner_tick: Ints
    row_finishers: Ints

    def __init__(
        self,
        *,
        tick_rate_hz: int = 60,
        rules: RaceRules | None = None,
        rows: int = 4,
        slots: int = 8,
    ) -> None:
        if not 1 <= slots <= 16:
            raise ValueError(f"slots must be in 1..16, got {slots}")
        self.dt = 1.0 / tick_rate_hz
        self.tick_rate_hz = tick_rate_hz
        self.rules = rules or RaceRules()
        self.schema = GameSchema(
            game=SCHEMA.game,
            slots=slots,
            fields=SCHEMA.fields,
            controls=SCHEMA.controls,
            event_kinds=SCHEMA.event_kinds,
        )
        self.slots = slots
        self._tracks: list[Track] = []
        self._track_ids: dict[str, int] = {}
        self._seg_offset = np.zeros(0, dtype=np.int64)
        self._seg_count = np.zeros(0, dtype=np.int64)
        self._gate_offset = np.zeros(0, dtype=np.int64)
        self._gate_count = np.zeros(0, dtype=np.int64)
        self._seg_a = np.zeros((0, 2))
        self._seg_d = np.zeros((0, 2))
        self._seg_len = np.zeros(0)
        self._gate_ends = np.zeros((0, 2, 2))
        self._gate_dir = np.zeros((0, 2))
        self._allocate(max(1, rows))

    # ------------------------------------------------------------ columns
    _FLOAT_COLUMNS = (
        "x", "y", "heading", "speed", "finish_time", "lap_start", "best_lap",
        "top_speed", "distance", "off_time",
    )  # fmt: skip
    _INT_COLUMNS = ("lap", "next_gate", "gates_passed", "collisions", "seg", "rank")
    _BOOL_COLUMNS = ("present", "ai", "left", "finished", "dnf", "contact", "off_track")
    _ROW_COLUMNS = (
        ("track", np.int64), ("laps", np.int64), ("seed", np.int64), ("started", np.bool_),
        ("over", np.bool_), ("race_ticks", np.int64), ("winner_tick", np.int64),
        ("finishers", np.int64),
    )  # fmt: skip

    def _allocate(self, rows: int) -> None:
        shape = (rows, self.slots)
        for name in self._FLOAT_COLUMNS:
            setattr(self, name, np.zeros(shape))
        for name in self._INT_COLUMNS:
            setattr(self, name, np.zeros(shape, dtype=np.int64))
        for name in self._BOOL_COLUMNS:
            setattr(self, name, np.zeros(shape, dtype=bool))
        for name, dtype in self._ROW_COLUMNS:
            setattr(self, "row_" + name, np.zeros(rows, dtype=dtype))
        self._state = np.zeros((rows, self.slots, len(self.schema.fields)), dtype=np.int32)

    @property
    def rows(self) -> int:
        return int(self._state.shape[0])

    def grow(self, rows: int) -> None:
        old = self.rows
        if rows <= old:
            return
        saved = {name: getattr(self, name) for name in self._all_columns()}
        self._allocate(rows)
        for name, array in saved.items():
            getattr(self, name)[:old] = array

    def _track_id(self, name: str) -> int:
        if name not in self._track_ids:
            track = load_track(name)
            self._track_ids[name] = len(self._tracks)
            self._tracks.append(track)
            self._seg_offset = np.append(self._seg_offset, self._seg_a.shape[0])
            self._seg_count = np.append(self._seg_count, track.segments)
            self._gate_offset = np.append(self._gate_offset, self._gate_ends.shape[0])
            self._gate_count = np.append(self._gate_count, track.gates.shape[0])
            self._seg_a = np.vstack([self._seg_a, track.points])
            self._seg_d = np.vstack([self._seg_d, track.directions])
            self._seg_len = np.concatenate([self._seg_len, track.lengths])
            self._gate_ends = np.concatenate([self._gate_ends, track.gates])
            self._gate_dir = np.vstack([self._gate_dir, track.gate_directions])
        return self._track_ids[name]

    def track_of(self, row: int) -> Track:
        return self._tracks[int(self.row_track[row])]

    # ------------------------------------------------------------ lifecycle
    def create(self, row: int, *, seed: int, options: Mapping[str, Any]) -> dict[str, Any]:
        name = str(options.get("track", "oval"))
        track_id = self._track_id(name)
        track = self._tracks[track_id]
        laps = int(options.get("laps", track.laps))
        if not 1 <= laps <= 10_000:
            raise ValueError(f"laps must be in 1..10000, got {laps}")
        self.release(row)
        self.row_track[row] = track_id
        self.row_laps[row] = laps
        self.row_seed[row] = seed % (2**31)
        self.row_winner_tick[row] = -1
        return {"track": track.to_wire(), "laps": laps}

    def join(self, row: int, slot: int, *, ai: bool) -> None:
        self._reset_slot(row, slot)
        track = self.track_of(row)
        self.x[row, slot], self.y[row, slot], self.heading[row, slot] = track.grid[slot]
        index, _, _ = track.nearest(self.x[row, slot : slot + 1], self.y[row, slot : slot + 1])
        self.seg[row, slot] = index[0]
        self.present[row, slot] = True
        self.ai[row, slot] = ai
        self._quantise()

    def leave(self, row: int, slot: int) -> None:
        if not self.row_started[row]:
            self._reset_slot(row, slot)
        else:
            self.left[row, slot] = True
            self.speed[row, slot] = 0.0
        self._quantise()

    def start(self, row: int) -> None:
        self.row_started[row] = True
        self.row_race_ticks[row] = 0

    def release(self, row: int) -> None:
        for name in (*self._FLOAT_COLUMNS, *self._INT_COLUMNS, *self._BOOL_COLUMNS):
            getattr(self, name)[row] = 0
        for name, _ in self._ROW_COLUMNS:
            getattr(self, "row_" + name)[row] = 0
        self._state[row] = 0

    def _reset_slot(self, row: int, slot: int) -> None:
        for name in (*self._FLOAT_COLUMNS, *self._INT_COLUMNS, *self._BOOL_COLUMNS):
            getattr(self, name)[row, slot] = 0
        self._state[row, slot] = 0

    # ------------------------------------------------------------ the tick
    def step(self, running: RowMask, controls: ControlArray) -> Sequence[GameEvent]:
        rows = running[: self.rows] & self.row_started & ~self.row_over
        active = np.flatnonzero(rows)
        if active.size == 0:
            return ()
        if active.size == self.rows:
            return self._step_rows(rows, controls[: self.rows])
        # Only some rows run (others are in their lobby, over, or free): step a
        # compact copy of those rows so the cost follows the running matches,
        # not the allocated ones, then write them back.
        full = {name: getattr(self, name) for name in self._all_columns()}
        for name, array in full.items():
            setattr(self, name, array[active])
        try:
            events = self._step_rows(np.ones(active.size, dtype=bool), controls[active])
            for name, array in full.items():
                array[active] = getattr(self, name)
        finally:
            for name, array in full.items():
                setattr(self, name, array)
        return [dataclasses.replace(e, row=int(active[e.row])) for e in events]

    def _all_columns(self) -> tuple[str, ...]:
        return (
            *self._FLOAT_COLUMNS,
            *self._INT_COLUMNS,
            *self._BOOL_COLUMNS,
            *("row_" + name for name, _ in self._ROW_COLUMNS),
            "_state",
        )

    def _step_rows(self, rows: Bools, controls: ControlArray) -> list[GameEvent]:
        """One tick of the rows marked in ``rows`` (row indices local to the columns)."""
        self.row_race_ticks[rows] += 1
        racing = rows[:, None] & self.present & ~self.left
        moving = racing & ~self.finished
        throttle, brake, steer = self._controls(rows, racing, controls)
        brake = np.where(self.finished, 1.0, brake)  # finished cars pull up
        throttle = np.where(self.finished, 0.0, throttle)
        old_x, old_y = self.x.copy(), self.y.copy()
        self._move(racing, throttle, brake, steer)
        self._collide(racing)
        self._locate(racing)
        events = self._gates(rows, moving, old_x, old_y)
        self._rank()
        events += self._check_end(rows)
        self._quantise()
        return events

    def _controls(
        self, rows: Bools, racing: Bools, controls: ControlArray
    ) -> tuple[Floats, Floats, Floats]:
        c = controls[: self.rows]
        throttle = np.clip(c[:, :, 0], 0.0, 1.0)
        brake = np.clip(c[:, :, 1], 0.0, 1.0)
        steer = np.clip(c[:, :, 2], -1.0, 1.0)
        driven = racing & self.ai
        if driven.any():
            throttle, brake, steer = throttle.copy(), brake.copy(), steer.copy()
            for track_id in np.unique(self.row_track[driven.any(axis=1)]):
                cars = driven & (self.row_track == track_id)[:, None]
                noise = self._noise(cars)
                t, b, s = drive(
                    self._tracks[int(track_id)],
                    self.x[cars],
                    self.y[cars],
                    self.heading[cars],
                    self.speed[cars],
                    noise=noise,
                    segments=self.seg[cars],
                )
                throttle[cars], brake[cars], steer[cars] = t, b, s
        return throttle, brake, steer

    def _noise(self, cars: Bools) -> Floats:
        """Deterministic per-car variation from the row's seed, the slot and the tick.

        A slowly varying hash, so AI cars differ from each other and from race
        to race without any random state shared between rows.
        """
        rows, slots = np.nonzero(cars)
        phase = (self.row_seed[rows] % 997) * 0.7 + slots * 2.3
        t = self.row_race_ticks[rows] * self.dt
        noise: Floats = np.sin(t * 0.37 + phase) * 0.6 + np.sin(t * 0.11 + phase * 1.7) * 0.4
        return noise

    def _move(self, racing: Bools, throttle: Floats, brake: Floats, steer: Floats) -> None:
        dt = self.dt
        v = self.speed
        resist = DRAG_PER_M * v * v + np.where(self.off_track, OFF_TRACK_PER_S, ROLLING_PER_S) * v
        dv = (throttle * ACCEL_MPS2 - brake * BRAKE_MPS2 - resist) * dt
        new_v = np.where(racing, np.maximum(v + dv, 0.0), v)
        yaw = steer * np.minimum(new_v / MIN_TURN_RADIUS_M, LATERAL_MPS2 / np.maximum(new_v, 0.1))
        heading = np.where(racing, np.mod(self.heading + yaw * dt, 2 * np.pi), self.heading)
        step = new_v * dt
        self.x = np.where(racing, self.x + np.cos(heading) * step, self.x)
        self.y = np.where(racing, self.y + np.sin(heading) * step, self.y)
        self.speed = new_v
        self.heading = heading
        self.distance += np.where(racing, step, 0.0)
        self.top_speed = np.maximum(self.top_speed, np.where(racing, new_v, 0.0))

    def _collide(self, racing: Bools) -> None:
        dx = self.x[:, :, None] - self.x[:, None, :]
        dy = self.y[:, :, None] - self.y[:, None, :]
        distance = np.hypot(dx, dy)
        pair = racing[:, :, None] & racing[:, None, :]
        pair &= ~np.eye(self.slots, dtype=bool)[None]
        overlap = np.where(pair, 2 * CAR_RADIUS_M - distance, 0.0)
        touching = overlap > 0
        contact: Bools = np.any(touching, axis=2)
        if contact.any():
            safe = np.where(distance > 1e-9, distance, 1.0)
            # Coincident cars are separated along a fixed direction by slot order.
            nx = np.where(
                distance > 1e-9,
                dx / safe,
                np.sign(np.arange(self.slots)[:, None] - np.arange(self.slots)[None, :])[None],
            )
            ny = np.where(distance > 1e-9, dy / safe, 0.0)
            push = np.where(touching, overlap / 2, 0.0)
            self.x += (nx * push).sum(axis=2)
            self.y += (ny * push).sum(axis=2)
            self.speed = np.where(contact, self.speed * CONTACT_SLOWDOWN, self.speed)
        self.collisions += contact & ~self.contact
        self.contact = contact

    def _locate(self, racing: Bools) -> None:
        """Nearest centre-line segment in a window around the last one; off-track flag."""
        track = self.row_track[:, None]
        count = self._seg_count[track][..., None]
        window = (
            np.mod(self.seg[..., None] + SEARCH_WINDOW, count) + self._seg_offset[track][..., None]
        )
        a = self._seg_a[window]
        d = self._seg_d[window]
        px = self.x[..., None] - a[..., 0]
        py = self.y[..., None] - a[..., 1]
        t = np.clip(px * d[..., 0] + py * d[..., 1], 0.0, self._seg_len[window])
        distance = np.hypot(px - d[..., 0] * t, py - d[..., 1] * t)
        best = np.argmin(distance, axis=2)
        nearest = np.take_along_axis(distance, best[..., None], axis=2)[..., 0]
        found = (
            np.take_along_axis(window, best[..., None], axis=2)[..., 0]
            - self._seg_offset[self.row_track][:, None]
        )
        self.seg = np.where(racing, found, self.seg)
        lost = racing & (nearest > 2 * self._width()[:, None])
        if lost.any():  # moved further than the window reaches: search the whole track
            for row, slot in zip(*np.nonzero(lost), strict=True):
                index, dist, _ = self.track_of(row).nearest(
                    self.x[row, slot : slot + 1], self.y[row, slot : slot + 1]
                )
                self.seg[row, slot] = index[0]
                nearest[row, slot] = dist[0]
        half = self._width()[:, None] / 2
        self.off_track = racing & (nearest > half)
        self.off_time += np.where(self.off_track, self.dt, 0.0)

    def _width(self) -> Floats:
        widths = np.array([t.width_m for t in self._tracks] or [1.0])
        return widths[self.row_track]

    def _gates(self, rows: Bools, moving: Bools, old_x: Floats, old_y: Floats) -> list[GameEvent]:
        gate = self._gate_offset[self.row_track][:, None] + self.next_gate
        ends = self._gate_ends[gate]  # (rows, slots, 2, 2)
        g0x, g0y = ends[..., 0, 0], ends[..., 0, 1]
        ex, ey = ends[..., 1, 0] - g0x, ends[..., 1, 1] - g0y
        mx, my = self.x - old_x, self.y - old_y
        denominator = mx * ey - my * ex
        safe = np.where(np.abs(denominator) > 1e-12, denominator, 1.0)
        qx, qy = g0x - old_x, g0y - old_y
        t = (qx * ey - qy * ex) / safe
        u = (qx * my - qy * mx) / safe
        direction = self._gate_dir[gate]
        forward = mx * direction[..., 0] + my * direction[..., 1] > 0
        crossed = (
            moving & forward & (np.abs(denominator) > 1e-12)
            & (t >= 0) & (t <= 1) & (u >= 0) & (u <= 1)
        )  # fmt: skip
        if not crossed.any():
            return []
        when = (self.row_race_ticks[:, None] - 1 + t) * self.dt
        events: list[GameEvent] = []
        hits = sorted(zip(*np.nonzero(crossed), strict=True), key=lambda rs: (rs[0], when[rs]))
        gate_counts = self._gate_count[self.row_track]
        for row, slot in hits:
            events += self._cross(int(row), int(slot), float(when[row, slot]), gate_counts[row])
        return events

    def _cross(self, row: int, slot: int, time_s: float, gates: int) -> list[GameEvent]:
        events: list[GameEvent] = []
        if self.next_gate[row, slot] == 0 and self.gates_passed[row, slot] > 0:
            lap_time = time_s - self.lap_start[row, slot]
            self.lap[row, slot] += 1
            self.lap_start[row, slot] = time_s
            best = self.best_lap[row, slot]
            self.best_lap[row, slot] = lap_time if best == 0 else min(best, lap_time)
            lap = int(self.lap[row, slot])
            events.append(GameEvent(row=row, slot=slot, kind=LAP, args=(lap, _ms(lap_time))))
            if lap >= self.row_laps[row]:
                self.finished[row, slot] = True
                self.finish_time[row, slot] = time_s
                self.row_finishers[row] += 1
                if self.row_winner_tick[row] < 0:
                    self.row_winner_tick[row] = self.row_race_ticks[row]
                position = int(self.row_finishers[row])
                events.append(
                    GameEvent(row=row, slot=slot, kind=FINISH, args=(position, _ms(time_s)))
                )
        self.gates_passed[row, slot] += 1
        self.next_gate[row, slot] = (self.next_gate[row, slot] + 1) % gates
        return events

    def _progress(self) -> Floats:
        """A score that orders cars: finishers by time, then by distance along the race."""
        gate = self._gate_offset[self.row_track][:, None] + self.next_gate
        centre = self._gate_ends[gate].mean(axis=2)
        to_gate = np.hypot(centre[..., 0] - self.x, centre[..., 1] - self.y)
        spacing = np.array([t.length_m for t in self._tracks] or [1.0])[
            self.row_track
        ] / np.maximum(self._gate_count[self.row_track], 1)
        fraction = 1.0 - np.clip(to_gate / spacing[:, None], 0.0, 1.0)
        score = np.where(self.finished, 1e9 - self.finish_time, self.gates_passed + fraction)
        score = np.where(self.left, -1e6 + score * 1e-3, score)
        return np.where(self.present, score, -np.inf)

    def _rank(self) -> None:
        order = np.argsort(-self._progress(), axis=1, kind="stable")
        ranks = np.empty_like(order)
        np.put_along_axis(ranks, order, np.arange(1, self.slots + 1)[None, :], axis=1)
        self.rank = np.where(self.present, ranks, 0)

    def _check_end(self, rows: Bools) -> list[GameEvent]:
        racing = self.present & ~self.left
        all_done = ~(racing & ~self.finished).any(axis=1)
        timeout = round(self.rules.finish_timeout_s * self.tick_rate_hz)
        late = (self.row_winner_tick >= 0) & (self.row_race_ticks - self.row_winner_tick >= timeout)
        capped = self.row_race_ticks >= round(self.rules.max_race_s * self.tick_rate_hz)
        ending = rows & (all_done | late | capped)
        events: list[GameEvent] = []
        for row in np.flatnonzero(ending):
            self.row_over[row] = True
            for slot in np.flatnonzero(racing[row] & ~self.finished[row]):
                self.dnf[row, slot] = True
                self.speed[row, slot] = 0.0
                events.append(GameEvent(row=int(row), slot=int(slot), kind=DNF))
            events.append(GameEvent(row=int(row), slot=-1, kind=MATCH_OVER))
        return events

    # ------------------------------------------------------------ outputs
    def _quantise(self) -> None:
        flags = (
            self.present * FLAG_PRESENT
            + self.finished * FLAG_FINISHED
            + self.off_track * FLAG_OFF_TRACK
            + self.ai * FLAG_AI
            + (self.left | self.dnf) * FLAG_OUT
        )
        columns = (
            np.rint(self.x * 100),
            np.rint(self.y * 100),
            np.rint(np.mod(self.heading, 2 * np.pi) * 100),
            np.rint(self.speed * 100),
            self.lap,
            self.next_gate,
            self.rank,
            flags,
        )
        state = np.stack(columns, axis=2).astype(np.int32)
        self._state[...] = np.where(self.present[..., None], state, 0)

    def state(self) -> StateArray:
        return self._state

    def standings(self, row: int) -> list[dict[str, Any]]:
        """The live order of a row: slot, rank, lap, finished, speed."""
        slots = [s for s in range(self.slots) if self.present[row, s]]
        return sorted(
            (
                {
                    "slot": s,
                    "rank": int(self.rank[row, s]),
                    "lap": int(self.lap[row, s]),
                    "finished": bool(self.finished[row, s]),
                    "speed_mps": round(float(self.speed[row, s]), 2),
                }
                for s in slots
            ),
            key=lambda entry: entry["rank"],
        )

    def results(self, row: int) -> list[dict[str, Any]]:
        score = self._progress()[row]
        slots = [s for s in range(self.slots) if self.present[row, s]]
        slots.sort(key=lambda s: (bool(self.left[row, s]), -score[s]))
        results = []
        for position, slot in enumerate(slots, start=1):
            finished = bool(self.finished[row, slot])
            status = "finished" if finished else "left" if self.left[row, slot] else "dnf"
            points, coins, xp = self.rules.award(position, finished)
            if status == "left":
                coins = xp = 0
            best = float(self.best_lap[row, slot])
            results.append(
                {
                    "slot": slot,
                    "position": position,
                    "status": status,
                    "time_ms": _ms(float(self.finish_time[row, slot])) if finished else None,
                    "best_lap_ms": _ms(best) if best > 0 else None,
                    "laps": int(self.lap[row, slot]),
                    "points": points,
                    "rewards": {"coins": coins, "xp": xp},
                    "stats": {
                        "top_speed_mps": round(float(self.top_speed[row, slot]), 2),
                        "distance_m": round(float(self.distance[row, slot]), 2),
                        "collisions": int(self.collisions[row, slot]),
                        "off_track_s": round(float(self.off_time[row, slot]), 2),
                    },
                    "ai": bool(self.ai[row, slot]),
                }
            )
        return results


def _ms(seconds: float) -> int:
    return round(seconds * 1000)
