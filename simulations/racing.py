"""Matches of the car race run headless to the end, driven by simulated players.

Each track gets one :class:`~gameserver.match.Arena` with the
:class:`~gameserver.race.RaceGame` that ``gameserver serve`` runs, stepped by
:class:`~simulations.headless.HeadlessServer`. Up to ``concurrency`` matches
race at once (the arena steps them together, as the server does); when one
ends the next is opened, until ``matches`` have run. Every player is a
:class:`~simulations.headless.HeadlessClient` whose car is steered, at
``input_rate_hz``, by the shipped autopilot from the state the client
mirrored, with the per-call jitter :mod:`gameserver.bots` gives it.

Nothing here reads a clock or draws an unseeded random number: the arena's
seed is the run's, each match's seed follows from it and the match id, and
each player's jitter from the match seed and its slot. The same settings
therefore give the same reports, bit for bit. Because every track has an
arena of its own, a track's matches do not depend on which other tracks run,
and match k of every track has the same seed.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import numpy.typing as npt

from gameserver.config import ServerConfig
from gameserver.match import Arena, MatchEnded
from gameserver.race import RaceGame, RaceRules, drive, load_track, track_names
from gameserver.race.game import LAP
from gameserver.race.track import GRID_SLOTS, Track
from gameserver.replay import ReplayDivergence, replay

from .headless import ClientFigures, HeadlessClient, HeadlessServer

#: What :func:`gameserver.race.autopilot.drive_one` adds when a bot passes its
#: ``rng``: a fresh line-and-pace jitter in +-JITTER, then steering wobble.
BOT_JITTER = 0.3
BOT_WOBBLE = 0.03


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    """One simulation run. Rates in Hz, delays in ticks, durations in seconds."""

    tracks: tuple[str, ...] = ("oval",)
    #: Matches per track.
    matches: int = 10
    #: Simulated players per match, each a headless client.
    cars: int = 8
    #: Server-driven cars filling the grid beside them.
    ai_cars: int = 0
    #: None: each track's own number of laps.
    laps: int | None = None
    seed: int = 0
    tick_rate_hz: int = 60
    #: None: a frame every tick.
    send_rate_hz: int | None = None
    input_rate_hz: float = 20.0
    #: Round trip: the frame of tick T + ack_delay_ticks is the first built on an ack of T.
    ack_delay_ticks: int = 3
    countdown_s: float = 3.0
    #: Matches of one track racing at once in its arena.
    concurrency: int = 32
    rules: RaceRules = field(default_factory=RaceRules)
    #: Each player keeps a fixed autopilot ``noise`` drawn in +-driver_spread
    #: (off the centre-line, and up to 6% less pace): drivers of differing skill.
    #: 0: every player drives as gameserver.bots does, and the grid decides the order.
    driver_spread: float = 0.0
    #: Re-simulate every match from its recording and compare the results.
    verify_replays: bool = False

    def __post_init__(self) -> None:
        if not self.tracks:
            raise ValueError("tracks: name at least one track")
        unknown = sorted(set(self.tracks) - set(track_names()))
        if unknown:
            raise ValueError(f"tracks: unknown {unknown}; the tracks are {track_names()}")
        if len(set(self.tracks)) != len(self.tracks):
            raise ValueError("tracks: a track is named twice")
        if self.matches < 1:
            raise ValueError(f"matches must be at least 1, got {self.matches}")
        if self.cars < 1 or self.ai_cars < 0 or self.cars + self.ai_cars > GRID_SLOTS:
            raise ValueError(
                f"cars ({self.cars}) must be at least 1 and cars + ai_cars ({self.ai_cars}) "
                f"at most the {GRID_SLOTS} grid slots"
            )
        if self.laps is not None and self.laps < 1:
            raise ValueError(f"laps must be at least 1, got {self.laps}")
        if not 1 <= self.tick_rate_hz <= 1000:
            raise ValueError(f"tick_rate_hz must be in 1..1000, got {self.tick_rate_hz}")
        if not 1 <= self.effective_send_rate_hz <= self.tick_rate_hz:
            raise ValueError(f"send_rate_hz must be in 1..tick_rate_hz, got {self.send_rate_hz}")
        if not 0 < self.input_rate_hz <= self.tick_rate_hz:
            raise ValueError(
                f"input_rate_hz must be in (0, tick_rate_hz], got {self.input_rate_hz}"
            )
        if self.ack_delay_ticks < 1:
            raise ValueError(f"ack_delay_ticks must be at least 1, got {self.ack_delay_ticks}")
        if self.countdown_s < 0:
            raise ValueError(f"countdown_s must be >= 0, got {self.countdown_s}")
        if not 0 <= self.driver_spread <= 1:
            raise ValueError(f"driver_spread must be in 0..1, got {self.driver_spread}")
        if self.concurrency < 1:
            raise ValueError(f"concurrency must be at least 1, got {self.concurrency}")

    @property
    def effective_send_rate_hz(self) -> int:
        return self.tick_rate_hz if self.send_rate_hz is None else self.send_rate_hz

    @property
    def input_every_ticks(self) -> int:
        return max(1, round(self.tick_rate_hz / self.input_rate_hz))

    def server_config(self, track: str) -> ServerConfig:
        """The arena's configuration: the server's defaults but for what the run sets.

        The lobby closes at once (every player joins in the tick the match is
        opened), so server-driven cars, if any, fill the grid straight away.
        """
        return ServerConfig(
            tick_rate_hz=self.tick_rate_hz,
            send_rate_hz=self.effective_send_rate_hz,
            lobby_timeout_s=0.0,
            countdown_s=self.countdown_s,
            min_players=1,
            fill_with_ai=self.ai_cars > 0,
            track=track,
            laps=self.laps or 1,
            max_players=max(ServerConfig().max_players, self.cars * self.concurrency),
            database=None,
        )


@dataclass(frozen=True, slots=True)
class CarResult:
    """One car's line of a match's results, with its lap times."""

    slot: int
    name: str
    ai: bool
    position: int
    status: str  # finished | dnf | left
    time_ms: int | None
    best_lap_ms: int | None
    laps: int
    lap_times_ms: tuple[int, ...]
    points: int
    coins: int
    xp: int
    collisions: int
    off_track_s: float
    top_speed_mps: float


@dataclass(frozen=True, slots=True)
class SyncFigures:
    """What the sync cost one match, summed over its clients (see :class:`ClientFigures`)."""

    clients: int
    #: Ticks each client was connected, summed: the divisor of per-second figures.
    client_ticks: int
    frames: int
    snapshots: int
    deltas: int
    frame_bytes: int
    frame_wire_bytes: int
    racing_frames: int
    racing_frame_bytes: int
    racing_frame_wire_bytes: int
    message_bytes: int
    sent_messages: int
    sent_bytes: int
    sent_wire_bytes: int
    inputs: int
    desyncs: int
    late_frames: int
    missing_baselines: int
    #: Clients whose RESULTS differ from what the arena reported (or never came).
    results_mismatches: int


@dataclass(frozen=True, slots=True)
class MatchReport:
    """One match, start to end."""

    track: str
    index: int  # 0-based, within the track
    match_id: int
    seed: int
    laps: int
    cars: int
    ai_cars: int
    created_tick: int
    start_tick: int
    end_tick: int
    #: False when the match was aborted (no results).
    finished: bool
    #: Winner's time to the last finisher's; None without finishers.
    finishing_spread_ms: int | None
    results: tuple[CarResult, ...]
    sync: SyncFigures
    #: None unless replays are verified.
    replay_verified: bool | None


@dataclass(frozen=True, slots=True)
class TrackRun:
    """Every match of one track, and the ticks its arena stepped."""

    track: str
    matches: tuple[MatchReport, ...]
    ticks: int


@dataclass(slots=True)
class _Racing:
    """A match in progress and its players."""

    index: int
    match_id: int
    seed: int
    laps: int
    created_tick: int
    clients: list[HeadlessClient]
    rngs: list[np.random.Generator]
    #: Each player's fixed autopilot noise (see Settings.driver_spread).
    noise: list[float]


# ------------------------------------------------------------------ driving
def drive_like_bots(
    track: Track,
    cars: npt.NDArray[np.float64],
    rngs: Sequence[np.random.Generator],
    noise: npt.ArrayLike = 0.0,
) -> npt.NDArray[np.float64]:
    """Controls ``(n, 3)`` for ``n`` cars given as rows of ``x, y, heading, speed``.

    Equal to calling :func:`~gameserver.race.autopilot.drive_one` with each
    car's ``rng`` (as :mod:`gameserver.bots` does) and ``noise``, in one
    vectorised call: the per-car draws come from each car's own generator in
    the same order.
    """
    jitter = np.array([rng.uniform(-BOT_JITTER, BOT_JITTER) for rng in rngs])
    jitter = np.asarray(noise, dtype=np.float64) + jitter
    throttle, brake, steer = drive(
        track, cars[:, 0], cars[:, 1], cars[:, 2], cars[:, 3], noise=jitter
    )
    wobble = np.array([rng.normal(0.0, BOT_WOBBLE) for rng in rngs])
    return np.column_stack((throttle, brake, np.clip(steer + wobble, -1.0, 1.0)))


class _Pilot:
    """Reads each due client's own car from its mirror and sends the autopilot's controls."""

    def __init__(self, game: RaceGame, track: Track, every_ticks: int) -> None:
        names = [f.name for f in game.schema.fields]
        self.columns = [names.index(n) for n in ("x", "y", "heading", "speed")]
        self.scales = np.array([game.schema.fields[i].scale for i in self.columns])
        self.track = track
        self.every_ticks = every_ticks

    def steer(self, racing: Sequence[_Racing], tick: int) -> None:
        due: list[HeadlessClient] = []
        rngs: list[np.random.Generator] = []
        noise: list[float] = []
        rows: list[npt.NDArray[np.int32]] = []
        for match in racing:
            for client, rng, fixed in zip(match.clients, match.rngs, match.noise, strict=True):
                mirror = client.mirror
                if (
                    mirror is None
                    or mirror.tick < 0
                    or client.closed
                    or (tick - client.joined_tick) % self.every_ticks
                ):
                    continue
                due.append(client)
                rngs.append(rng)
                noise.append(fixed)
                rows.append(mirror.state[client.slot])
        if not due:
            return
        cars = np.array(rows, dtype=np.float64)[:, self.columns] / self.scales
        controls = drive_like_bots(self.track, cars, rngs, noise)
        for client, values in zip(due, controls.tolist(), strict=True):
            client.send_input(tuple(values), tick)


# ------------------------------------------------------------------ running
def run_track(settings: Settings, track_name: str) -> TrackRun:
    """Race ``settings.matches`` matches on one track to the end."""
    slots = settings.cars + settings.ai_cars
    game = RaceGame(
        tick_rate_hz=settings.tick_rate_hz,
        rules=settings.rules,
        rows=min(settings.concurrency, settings.matches),
        slots=slots,
    )
    arena = Arena(game, settings.server_config(track_name), seed=settings.seed)
    server = HeadlessServer(arena, round_trip_ticks=settings.ack_delay_ticks)
    pilot = _Pilot(game, load_track(track_name), settings.input_every_ticks)
    racing: dict[int, _Racing] = {}
    reports: list[MatchReport] = []
    opened = 0
    while opened < settings.matches or racing:
        while opened < settings.matches and len(racing) < settings.concurrency:
            match = arena.create_match({"track": track_name, "laps": settings.laps})
            clients = [server.join(f"sim-{n + 1}", match.match_id) for n in range(settings.cars)]
            rngs = [np.random.default_rng([match.seed, c.slot]) for c in clients]
            spread = settings.driver_spread
            racing[match.match_id] = _Racing(
                index=opened,
                match_id=match.match_id,
                seed=match.seed,
                laps=int(match.description["laps"]),
                created_tick=arena.tick,
                clients=clients,
                rngs=rngs,
                noise=[float(rng.uniform(-spread, spread)) if spread else 0.0 for rng in rngs],
            )
            opened += 1
        for ended in server.step():
            done = racing.pop(ended.match_id)
            reports.append(_report(settings, track_name, done, ended))
        pilot.steer(list(racing.values()), arena.tick)
        server.flush()
    reports.sort(key=lambda r: r.index)
    return TrackRun(track=track_name, matches=tuple(reports), ticks=arena.tick)


def run(settings: Settings) -> list[TrackRun]:
    """Every track of the run, one after the other."""
    return [run_track(settings, track) for track in settings.tracks]


def _report(settings: Settings, track: str, match: _Racing, ended: MatchEnded) -> MatchReport:
    laps_by_slot: dict[int, list[int]] = {}
    for event in match.clients[0].events:
        if event.kind == LAP:
            laps_by_slot.setdefault(event.slot, []).append(int(event.args[1]))
    results = tuple(
        _car_result(entry, laps_by_slot.get(int(entry["slot"]), []))
        for entry in ended.results or ()
    )
    times = [r.time_ms for r in results if r.status == "finished" and r.time_ms is not None]
    return MatchReport(
        track=track,
        index=match.index,
        match_id=ended.match_id,
        seed=ended.seed,
        laps=match.laps,
        cars=settings.cars,
        ai_cars=settings.ai_cars,
        created_tick=match.created_tick,
        start_tick=ended.start_tick,
        end_tick=ended.end_tick,
        finished=ended.results is not None,
        finishing_spread_ms=max(times) - min(times) if times else None,
        results=results,
        sync=_sync_figures(match.clients, ended),
        replay_verified=_verify_replay(settings, ended) if settings.verify_replays else None,
    )


def _car_result(entry: dict[str, Any], lap_times_ms: list[int]) -> CarResult:
    rewards, stats = entry.get("rewards", {}), entry.get("stats", {})
    return CarResult(
        slot=int(entry["slot"]),
        name=str(entry.get("name") or ""),
        ai=bool(entry.get("ai")),
        position=int(entry["position"]),
        status=str(entry["status"]),
        time_ms=entry.get("time_ms"),
        best_lap_ms=entry.get("best_lap_ms"),
        laps=int(entry.get("laps", 0)),
        lap_times_ms=tuple(lap_times_ms),
        points=int(entry.get("points", 0)),
        coins=int(rewards.get("coins", 0)),
        xp=int(rewards.get("xp", 0)),
        collisions=int(stats.get("collisions", 0)),
        off_track_s=float(stats.get("off_track_s", 0.0)),
        top_speed_mps=float(stats.get("top_speed_mps", 0.0)),
    )


def _sync_figures(clients: list[HeadlessClient], ended: MatchEnded) -> SyncFigures:
    total = ClientFigures()
    names = [f.name for f in fields(ClientFigures)]
    for client in clients:
        for name in names:
            setattr(total, name, getattr(total, name) + getattr(client.figures, name))
    expected = ended.results
    return SyncFigures(
        clients=len(clients),
        client_ticks=sum(c.closed_tick - c.joined_tick for c in clients),
        frames=total.frames,
        snapshots=total.snapshots,
        deltas=total.deltas,
        frame_bytes=total.frame_bytes,
        frame_wire_bytes=total.frame_wire_bytes,
        racing_frames=total.racing_frames,
        racing_frame_bytes=total.racing_frame_bytes,
        racing_frame_wire_bytes=total.racing_frame_wire_bytes,
        message_bytes=total.message_bytes,
        sent_messages=total.sent_messages,
        sent_bytes=total.sent_bytes,
        sent_wire_bytes=total.sent_wire_bytes,
        inputs=total.inputs,
        desyncs=total.desyncs,
        late_frames=sum(c.late_frames for c in clients),
        missing_baselines=sum(c.missing_baselines for c in clients),
        results_mismatches=sum(
            1 for c in clients if (c.results.results if c.results is not None else None) != expected
        ),
    )


def _verify_replay(settings: Settings, ended: MatchEnded) -> bool:
    """The match re-simulated from its recording reproduces every checksum and the results."""
    if ended.recording is None:
        return False
    game = RaceGame(
        tick_rate_hz=settings.tick_rate_hz,
        rules=settings.rules,
        rows=1,
        slots=settings.cars + settings.ai_cars,
    )
    try:
        replay(game, ended.recording)
    except ReplayDivergence:
        return False
    return True
