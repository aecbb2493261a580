"""The car race as a :class:`~gameserver.game.Game`: every car of every match in one set of columns.

Columns are shaped ``(rows, slots)``, one row per match. A tick moves every
car of every running row with one set of numpy calls; Python runs per row or
per car only when something happens (a gate, a lap, a finish, the end).
Rows may race on different tracks: every track's segments and gates live in
one :class:`~gameserver.race.track.TrackSet` and each car gathers its own by
offset.

How cars move is in :mod:`~gameserver.race.physics`; this module is the
race around it. A gate is crossed when the car's movement this tick (old
position to new) intersects it going forward, so no speed tunnels through
one, and the crossing time is interpolated inside the tick; gates count only
in order, and gate 0 after all the others completes a lap. Finished cars are
taken over by the autopilot for a slow lap and no longer collide; cars that
left stop where they are and no longer collide.

Randomness comes only from ``np.random.default_rng(seed)`` drawn once per row
in :meth:`RaceGame.create` (each AI car's line, pace and weave), so a row's
race depends on its seed, joins and controls and on nothing another row does.
"""

from __future__ import annotations

import math
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
from . import physics
from .autopilot import drive_set
from .rules import RaceRules
from .track import GRID_SLOTS, Track, TrackSet, load_track

Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]
Bools = npt.NDArray[np.bool_]

#: Event kinds (wire codes).
LAP = 16
FINISH = 17
DNF = 18

#: ``flags`` bits.
FLAG_PRESENT = 1
FLAG_FINISHED = 2
FLAG_OFF_TRACK = 4
FLAG_AI = 8
FLAG_OUT = 16  # left the race, or did not finish it
_FLAG_BITS = np.array([FLAG_PRESENT, FLAG_FINISHED, FLAG_OFF_TRACK, FLAG_AI, FLAG_OUT])
_CONTROL_LOW = np.array([0.0, 0.0, -1.0])
_CONTROL_HIGH = np.array([1.0, 1.0, 1.0])

#: Gates one car may cross in one tick (more only at absurd speeds).
MAX_GATES_PER_TICK = 4
#: Finished cars drive a slow lap at this speed.
COOL_DOWN_MPS = 15.0
#: AI personalities, drawn per car at create: line offset and weave (fractions
#: of the track width), weave period, pace.
AI_LINE_WIDTHS = 0.12
AI_WEAVE_WIDTHS = 0.08
AI_WEAVE_PERIOD_S = (6.0, 14.0)
AI_PACE = (0.92, 1.0)
MAX_LAPS = 1000

FIELDS = (
    StateField(name="x", scale=100.0, unit="m", doc="position east (cm steps)", extrapolate=True),
    StateField(name="y", scale=100.0, unit="m", doc="position north (cm steps)", extrapolate=True),
    StateField(
        name="heading",
        scale=100.0,
        unit="rad",
        doc="0 = +x, counter-clockwise, in [0, 6.28)",
        extrapolate=True,
    ),
    StateField(
        name="speed", scale=100.0, unit="m/s", doc="forward speed (cm/s steps)", extrapolate=True
    ),
    StateField(name="lap", scale=1.0, unit="", doc="laps completed"),
    StateField(name="next_gate", scale=1.0, unit="", doc="index of the next gate to cross"),
    StateField(name="rank", scale=1.0, unit="", doc="live position, 1 = leading; 0 = empty"),
    StateField(
        name="flags",
        scale=1.0,
        unit="",
        doc="bits: 1 present, 2 finished, 4 off track, 8 AI, 16 left or DNF",
    ),
)
CONTROLS = (
    Control(name="throttle", low=0.0, high=1.0, doc="accelerator"),
    Control(name="brake", low=0.0, high=1.0, doc="brake"),
    Control(name="steer", low=-1.0, high=1.0, doc="-1 full right, +1 full left"),
)
EVENT_KINDS = (
    EventKind(code=LAP, name="LAP", args=("lap", "lap_time_ms"), doc="a car completed a lap"),
    EventKind(
        code=FINISH,
        name="FINISH",
        args=("position", "time_ms"),
        doc="a car finished; race time interpolated inside the tick",
    ),
    EventKind(code=DNF, name="DNF", args=(), doc="the race ended before this car finished"),
)

_CAR_FLOATS = (
    "x", "y", "heading", "speed", "progress_m", "lateral_m", "finish_time", "lap_start", "best_lap",
    "top_speed", "distance", "off_time",
)  # fmt: skip
_AI_FLOATS = ("ai_line", "ai_weave", "ai_rate", "ai_phase", "ai_pace")  # drawn per row
_FLOAT_COLUMNS = _CAR_FLOATS + _AI_FLOATS
_INT_COLUMNS = ("lap", "next_gate", "gates_passed", "collisions", "seg", "rank")
_BOOL_COLUMNS = ("present", "ai", "left", "finished", "dnf", "off_track")
_ROW_COLUMNS = (
    ("row_track", np.int64), ("row_laps", np.int64), ("row_tick", np.int64),
    ("row_winner_tick", np.int64), ("row_finishers", np.int64), ("row_created", np.bool_),
    ("row_started", np.bool_), ("row_over", np.bool_),
)  # fmt: skip


class RaceGame:
    """Every race of the process (see the module docstring).

    Public columns (``x``, ``speed``, ``lap``, ``finished``, ...) are
    ``(rows, slots)`` arrays; tests and tools may read them and place cars.
    """

    schema: GameSchema
    # Per car, shaped (rows, slots).
    x: Floats
    y: Floats
    heading: Floats  # radians in [0, 2 pi)
    speed: Floats
    progress_m: Floats  # arc length of the nearest centre-line point
    lateral_m: Floats  # signed distance from the centre-line, + to the left
    finish_time: Floats  # seconds of race time
    lap_start: Floats
    best_lap: Floats  # 0 until a lap is completed
    top_speed: Floats
    distance: Floats
    off_time: Floats
    ai_line: Floats
    ai_weave: Floats
    ai_rate: Floats
    ai_phase: Floats
    ai_pace: Floats
    lap: Ints
    next_gate: Ints
    gates_passed: Ints
    collisions: Ints
    seg: Ints  # nearest segment of the row's track
    rank: Ints
    present: Bools
    ai: Bools
    left: Bools
    finished: Bools
    dnf: Bools
    off_track: Bools
    touching: Bools  # (rows, slots, slots): pairs in contact (with release hysteresis)
    # Per row, shaped (rows,).
    row_track: Ints
    row_laps: Ints
    row_tick: Ints  # ticks raced
    row_winner_tick: Ints
    row_finishers: Ints
    row_created: Bools
    row_started: Bools
    row_over: Bools

    def __init__(
        self,
        *,
        tick_rate_hz: int = 60,
        rules: RaceRules | None = None,
        rows: int = 4,
        slots: int = 8,
    ) -> None:
        if not (isinstance(tick_rate_hz, int) and 1 <= tick_rate_hz <= 1000):
            raise ValueError(f"tick_rate_hz must be an int in 1..1000, got {tick_rate_hz!r}")
        if not 1 <= slots <= GRID_SLOTS:
            raise ValueError(f"slots must be in 1..{GRID_SLOTS}, got {slots}")
        if rows < 1:
            raise ValueError(f"rows must be >= 1, got {rows}")
        self.tick_rate_hz = tick_rate_hz
        self.dt = 1.0 / tick_rate_hz
        self.rules = rules or RaceRules()
        self.slots = slots
        self.schema = GameSchema(
            game="race", slots=slots, fields=FIELDS, controls=CONTROLS, event_kinds=EVENT_KINDS
        )
        self.tracks = TrackSet()
        self._timeout_ticks = math.ceil(self.rules.finish_timeout_s * tick_rate_hz - 1e-9)
        self._max_ticks = math.ceil(self.rules.max_race_s * tick_rate_hz - 1e-9)
        self._allocate(rows)

    # ------------------------------------------------------------ columns
    def _allocate(self, rows: int) -> None:
        shape = (rows, self.slots)
        for name in _FLOAT_COLUMNS:
            setattr(self, name, np.zeros(shape))
        for name in _INT_COLUMNS:
            setattr(self, name, np.zeros(shape, dtype=np.int64))
        for name in _BOOL_COLUMNS:
            setattr(self, name, np.zeros(shape, dtype=bool))
        for name, dtype in _ROW_COLUMNS:
            setattr(self, name, np.zeros(rows, dtype=dtype))
        self.touching = np.zeros((rows, self.slots, self.slots), dtype=bool)
        self._state = np.zeros((rows, self.slots, len(FIELDS)), dtype=np.int32)

    def _columns(self) -> list[str]:
        names = [*_FLOAT_COLUMNS, *_INT_COLUMNS, *_BOOL_COLUMNS, "touching", "_state"]
        return names + [name for name, _ in _ROW_COLUMNS]

    @property
    def rows(self) -> int:
        """How many match rows the columns hold."""
        return int(self._state.shape[0])

    def grow(self, rows: int) -> None:
        """Enlarge every column to ``rows`` rows, keeping the existing ones."""
        old = self.rows
        if rows <= old:
            return
        saved = {name: getattr(self, name) for name in self._columns()}
        self._allocate(rows)
        for name, array in saved.items():
            getattr(self, name)[:old] = array

    def track_of(self, row: int) -> Track:
        """The track ``row`` races on."""
        return self.tracks.tracks[int(self.row_track[row])]

    # ------------------------------------------------------------ lifecycle
    def create(self, row: int, *, seed: int, options: Mapping[str, Any]) -> dict[str, Any]:
        """Set up ``row`` on ``options["track"]`` (default ``"oval"``) for ``options["laps"]``.

        Returns ``{"track": Track.to_wire(), "laps": laps}``. Raises ``ValueError``
        for an unknown option, track or a lap count outside 1..1000.
        """
        unknown = set(options) - {"track", "laps"}
        if unknown:
            raise ValueError(f"unknown race options: {', '.join(sorted(map(str, unknown)))}")
        name = options.get("track", "oval")
        if not isinstance(name, str):
            raise ValueError(f"track must be a track name, got {name!r}")
        track = load_track(name)
        laps = options.get("laps")
        if laps is None:
            laps = self.rules.default_laps or track.laps
        if not (isinstance(laps, int) and not isinstance(laps, bool) and 1 <= laps <= MAX_LAPS):
            raise ValueError(f"laps must be an int in 1..{MAX_LAPS}, got {laps!r}")
        self.release(row)
        self.row_track[row] = self.tracks.add(track)
        self.row_laps[row] = laps
        self.row_winner_tick[row] = -1
        self.row_created[row] = True
        rng = np.random.default_rng(seed % 2**64)
        width = track.width_m
        self.ai_line[row] = rng.uniform(-AI_LINE_WIDTHS, AI_LINE_WIDTHS, self.slots) * width
        self.ai_weave[row] = rng.uniform(0.0, AI_WEAVE_WIDTHS, self.slots) * width
        self.ai_rate[row] = 2 * math.pi / rng.uniform(*AI_WEAVE_PERIOD_S, self.slots)
        self.ai_phase[row] = rng.uniform(0.0, 2 * math.pi, self.slots)
        self.ai_pace[row] = rng.uniform(*AI_PACE, self.slots)
        return {"track": track.to_wire(), "laps": laps}

    def join(self, row: int, slot: int, *, ai: bool) -> None:
        """Put a car on grid slot ``slot`` of ``row`` (``ai=True``: the autopilot drives it)."""
        if not self.row_created[row]:
            raise ValueError(f"row {row} has no match")
        if not 0 <= slot < self.slots:
            raise ValueError(f"slot must be in 0..{self.slots - 1}, got {slot}")
        self._clear_slot(row, slot)
        self.present[row, slot] = True
        self.ai[row, slot] = ai
        x, y, heading = self.track_of(row).grid[slot]
        self.place(row, slot, x=x, y=y, heading=heading)

    def place(
        self, row: int, slot: int, *, x: float, y: float, heading: float, speed: float = 0.0
    ) -> None:
        """Put a car somewhere (for tests and tools; races only move cars by stepping).

        Finds its nearest segment on the whole track, as a jump needs.
        """
        track = self.track_of(row)
        index, distance, arc = track.nearest(x, y)
        i = int(index[0])
        (ax, ay), (dx, dy) = track.points[i], track.directions[i]
        self.x[row, slot], self.y[row, slot], self.speed[row, slot] = x, y, speed
        self.heading[row, slot] = heading % (2 * math.pi)
        self.seg[row, slot], self.progress_m[row, slot] = i, arc[0]
        self.lateral_m[row, slot] = math.copysign(distance[0], dx * (y - ay) - dy * (x - ax))
        self._refresh()

    def leave(self, row: int, slot: int) -> None:
        """Before the start, free the slot; during the race, stop the car and rank it last."""
        if not self.present[row, slot] or self.row_over[row]:
            return
        if not self.row_started[row]:
            self._clear_slot(row, slot)
        else:
            self.left[row, slot] = True
            self.speed[row, slot] = 0.0
        self._refresh()

    def start(self, row: int) -> None:
        """The race begins: the row runs from the next step, race time 0 at this instant."""
        if not self.row_created[row]:
            raise ValueError(f"row {row} has no match")
        self.row_started[row] = True

    def release(self, row: int) -> None:
        """Forget ``row``: every column of it back to zero."""
        for name in self._columns():
            getattr(self, name)[row] = 0

    def _clear_slot(self, row: int, slot: int) -> None:
        for name in (*_CAR_FLOATS, *_INT_COLUMNS, *_BOOL_COLUMNS, "_state"):
            getattr(self, name)[row, slot] = 0
        self.touching[row, slot] = self.touching[row, :, slot] = False

    def _refresh(self) -> None:
        self._rank()
        self._quantise()

    # ------------------------------------------------------------ the tick
    def step(self, running: RowMask, controls: ControlArray) -> Sequence[GameEvent]:
        """Advance every running row by one tick; AI cars ignore ``controls``."""
        active = np.asarray(running[: self.rows], dtype=bool) & self.row_started & ~self.row_over
        if not active.any():
            return ()
        self.row_tick += active
        racing = active[:, None] & self.present & ~self.left
        moving = racing & ~self.finished
        car = self.rules.car
        given = self._controls(racing, controls)
        old_x, old_y = self.x, self.y
        self.x, self.y, self.heading, self.speed, travel = physics.move(
            self.x, self.y, self.heading, self.speed, self.off_track, given, racing, car, self.dt
        )
        self.distance += travel * moving
        np.maximum(self.top_speed, self.speed * moving, out=self.top_speed)
        self.x, self.y, self.speed, self.touching, contacts = physics.collide(
            self.x, self.y, self.heading, self.speed, moving, self.touching, car
        )
        self.collisions += contacts
        self.seg, self.progress_m, self.lateral_m = physics.locate(
            self.tracks, self.row_track, self.seg, self.x, self.y, racing
        )
        half_width = self.tracks.width_m[self.row_track][:, None] / 2
        self.off_track = racing & (np.abs(self.lateral_m) > half_width)
        self.off_time += (self.off_track & moving) * self.dt
        events = self._gates(moving, old_x, old_y)
        self._rank()
        events += self._end(active)
        self._quantise()
        return events

    def _controls(self, racing: Bools, controls: ControlArray) -> Floats:
        """Throttle, brake and steer of every car as ``(rows, slots, 3)``: the players'
        (clipped; NaN counts as the low end), the autopilot's for AI and finished cars,
        zero for cars not racing."""
        given: Floats = np.fmin(np.fmax(controls[: self.rows], _CONTROL_LOW), _CONTROL_HIGH)
        given *= racing[..., None]
        driven = np.flatnonzero(racing & (self.ai | self.finished))
        if driven.size:
            given.reshape(-1, 3)[driven] = self._autopilot(racing, driven)
        return given

    def _autopilot(self, racing: Bools, driven: Ints) -> Floats:
        """Controls ``(n, 3)`` for the cars at flat indices ``driven``: each AI car's
        own line, weave and pace, dodging other cars; finished cars drive slowly."""
        rows = driven // self.slots
        room = self.tracks.width_m[self.row_track][:, None] / 2 - self.rules.car.radius_m
        dodging, dodge, follow = physics.traffic(
            self.x, self.y, self.heading, self.speed, self.lateral_m, racing & ~self.finished, room
        )
        columns = (self.x, self.y, self.heading, self.speed, self.finished, dodging, dodge, follow)
        personality = (self.ai_line, self.ai_weave, self.ai_rate, self.ai_phase, self.ai_pace)
        cars = np.stack((*columns, *personality)).reshape(len(columns) + len(personality), -1)
        x, y, heading, speed, done, dodging_, dodge_, follow_, line, weave, rate, phase, pace = (
            cars[:, driven]
        )
        line += weave * np.sin(rate * (self.row_tick[rows] * self.dt) + phase)
        throttle, brake, steer = drive_set(
            self.tracks,
            self.row_track[rows],
            self.seg.take(driven),
            x,
            y,
            heading,
            speed,
            line_m=np.where(dodging_ > 0, dodge_, line),
            pace=pace,
            limit_mps=np.where(done > 0, COOL_DOWN_MPS, follow_),
            car=self.rules.car,
        )
        return np.column_stack((throttle, brake, steer))

    def _gates(self, moving: Bools, old_x: Floats, old_y: Floats) -> list[GameEvent]:
        """Gate crossings by segment intersection, in time order within each row."""
        gate = self.tracks.gate_offset[self.row_track][:, None] + self.next_gate
        hit, t = physics.crossing(self.tracks.gate[gate], old_x, old_y, self.x, self.y)
        hit &= moving
        events: list[GameEvent] = []
        cars = np.flatnonzero(hit)
        after = t.take(cars)
        for _ in range(MAX_GATES_PER_TICK):
            if not cars.size:
                break
            rows, slots = np.divmod(cars, self.slots)
            when = (self.row_tick[rows] - 1 + after) * self.dt
            for k in np.lexsort((when, rows)):
                events += self._pass_gate(int(rows[k]), int(slots[k]), float(when[k]))
            # A car this fast may reach its next gate in the same tick, too.
            keep = ~self.finished[rows, slots]
            cars, rows, slots, after = cars[keep], rows[keep], slots[keep], after[keep]
            gate = self.tracks.gate_offset[self.row_track[rows]] + self.next_gate[rows, slots]
            again, t_again = physics.crossing(
                self.tracks.gate[gate],
                old_x[rows, slots],
                old_y[rows, slots],
                self.x[rows, slots],
                self.y[rows, slots],
            )
            again &= t_again > after
            cars, after = cars[again], t_again[again]
        return events

    def _pass_gate(self, row: int, slot: int, time_s: float) -> list[GameEvent]:
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
                    self.row_winner_tick[row] = self.row_tick[row]
                place = int(self.row_finishers[row])
                events.append(GameEvent(row=row, slot=slot, kind=FINISH, args=(place, _ms(time_s))))
        self.gates_passed[row, slot] += 1
        gates = self.tracks.gate_count[self.row_track[row]]
        self.next_gate[row, slot] = (self.next_gate[row, slot] + 1) % gates
        return events

    def _score(self) -> Floats:
        """Orders cars within a row, higher first: finishers by time, then by gates
        passed and distance along the track to the next gate; those who left last."""
        tracks = self.tracks
        gate = tracks.gate_offset[self.row_track][:, None] + self.next_gate
        length = tracks.length_m[self.row_track][:, None]
        to_gate = np.mod(tracks.gate_arc[gate] - self.progress_m, length)
        score = self.gates_passed * 1e6 - to_gate
        score = np.where(self.finished, 1e12 - self.finish_time, score)
        score = np.where(self.left & ~self.finished, score - 1e13, score)
        return np.where(self.present, score, -np.inf)

    def _rank(self) -> None:
        if not self.tracks.tracks:
            return
        order = np.argsort(-self._score(), axis=1, kind="stable")
        self.rank = (order.argsort(axis=1) + 1) * self.present

    def _end(self, active: Bools) -> list[GameEvent]:
        """End rows whose cars are all done, whose winner finished long enough ago,
        or that hit the race's time cap."""
        unfinished = self.present & ~self.left & ~self.finished
        done = ~unfinished.any(axis=1)
        late = (self.row_winner_tick >= 0) & (
            self.row_tick - self.row_winner_tick >= self._timeout_ticks
        )
        ending = active & (done | late | (self.row_tick >= self._max_ticks))
        events: list[GameEvent] = []
        for row in np.flatnonzero(ending).tolist():
            self.row_over[row] = True
            self.speed[row] = 0.0
            for slot in np.flatnonzero(unfinished[row]):
                self.dnf[row, slot] = True
                events.append(GameEvent(row=row, slot=int(slot), kind=DNF))
            events.append(GameEvent(row=row, slot=-1, kind=MATCH_OVER))
        return events

    # ------------------------------------------------------------ outputs
    def _quantise(self) -> None:
        state = self._state
        motion = np.stack((self.x, self.y, self.heading, self.speed), axis=-1)
        motion *= 100.0
        state[..., :4] = np.rint(motion, out=motion)
        state[..., 2] %= 628  # 2 pi rounds up to 628: wrap it to 0
        state[..., 4] = self.lap
        state[..., 5] = self.next_gate
        state[..., 6] = self.rank
        out = self.left | self.dnf
        bits = np.stack((self.present, self.finished, self.off_track, self.ai, out), axis=-1)
        state[..., 7] = bits @ _FLAG_BITS
        state *= self.present[..., None]

    def state(self) -> StateArray:
        """The quantised state, ``int32[rows, slots, 8]`` (see :data:`FIELDS`); a view."""
        return self._state

    def standings(self, row: int) -> list[dict[str, Any]]:
        """The live order of a row for a display: one dict per car, leader first."""
        table = []
        for slot in np.flatnonzero(self.present[row]):
            finished = bool(self.finished[row, slot])
            table.append(
                {
                    "slot": int(slot),
                    "rank": int(self.rank[row, slot]),
                    "lap": int(self.lap[row, slot]),
                    "next_gate": int(self.next_gate[row, slot]),
                    "finished": finished,
                    "left": bool(self.left[row, slot]),
                    "time_ms": _ms(float(self.finish_time[row, slot])) if finished else None,
                    "speed_mps": round(float(self.speed[row, slot]), 2),
                    "ai": bool(self.ai[row, slot]),
                }
            )
        return sorted(table, key=lambda entry: entry["rank"])

    def results(self, row: int) -> list[dict[str, Any]]:
        """Final results, best first: finishers by time, the rest by progress, leavers last.

        Keys: ``slot``, ``position``, ``status`` (``finished`` | ``dnf`` | ``left``),
        ``time_ms``, ``best_lap_ms``, ``laps``, ``points``, ``rewards`` (``coins``,
        ``xp``), ``stats`` (``top_speed_mps``, ``distance_m``, ``collisions``,
        ``off_track_s``) and ``ai``.
        """
        score = self._score()[row]
        slots = sorted(np.flatnonzero(self.present[row]), key=lambda s: -score[s])
        results = []
        for position, slot in enumerate(slots, start=1):
            finished = bool(self.finished[row, slot])
            left = bool(self.left[row, slot]) and not finished
            status = "finished" if finished else "left" if left else "dnf"
            points, coins, xp = (0, 0, 0) if left else self.rules.award(position, finished=finished)
            best = float(self.best_lap[row, slot])
            results.append(
                {
                    "slot": int(slot),
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
