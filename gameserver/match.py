"""Matches, players and the tick: the pure core that the Trio server drives.

:class:`Arena` owns every match of the process and the one :class:`~gameserver.game.Game`
that holds their state as numpy rows. The server calls :meth:`Arena.join`,
:meth:`Arena.handle_input`, :meth:`Arena.leave` as messages arrive and
:meth:`Arena.step` once per tick; each returns :data:`Output` records (bytes for
a player, a connection to close, a match that ended) for the edge to carry out.
Time is the tick counter: no clock is read here, so the lifecycle (lobby
timeout, countdown, results) is exact and replayable.

Lifecycle of a match: LOBBY -> COUNTDOWN -> RUNNING -> OVER (results sent,
connections closed). A lobby starts when its grid is full of players or when
``lobby_timeout_s`` passes with at least ``min_players``; empty slots may be
filled with game-driven cars. If every player leaves, the match is aborted.
"""

from __future__ import annotations

import enum
import heapq
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, NoReturn

import numpy as np

from . import protocol
from .codes import PROTOCOL_VERSION, CloseCode, EventCode
from .config import ServerConfig
from .errors import InvalidInput, JoinError
from .game import MATCH_OVER, ControlArray, Game, GameEvent
from .replay import DEFAULT_CHECKSUM_EVERY, Recording
from .sync import StateHistory, build_payloads


class MatchPhase(enum.Enum):
    LOBBY = "lobby"
    COUNTDOWN = "countdown"
    RUNNING = "running"
    OVER = "over"


@dataclass(eq=False, slots=True)
class Player:
    """A seat in a match: a connected client, or a game-driven car (``ai``)."""

    player_id: int
    name: str
    match: Match
    slot: int
    ai: bool = False
    send_every: int = 1
    send_phase: int = 0
    ack_tick: int = -1
    # The acknowledgement before ack_tick: a state the client also holds, from
    # which the next delta's moving fields are extrapolated.
    reference_tick: int = -1
    input_seq: int = 0  # newest input received
    applied_seq: int = 0  # input applied at the last step
    frames_sent: int = 0
    bytes_sent: int = 0


@dataclass(eq=False, slots=True)
class Match:
    match_id: int
    row: int
    seed: int
    options: dict[str, Any]
    description: dict[str, Any]
    created_tick: int
    phase: MatchPhase = MatchPhase.LOBBY
    lobby_ends_tick: int = 0
    start_tick: int = -1
    end_tick: int = -1
    seats: dict[int, Player] = field(default_factory=dict)
    results: list[dict[str, Any]] | None = None
    recording: Recording | None = None
    #: Who sat in a slot and left after the start: (player_id, name), for the results.
    departed: dict[int, tuple[int, str]] = field(default_factory=dict)

    @property
    def humans(self) -> list[Player]:
        return [p for p in self.seats.values() if not p.ai]


# ---------------------------------------------------------------- outputs
@dataclass(frozen=True, slots=True)
class Send:
    """Bytes for one player. ``reliable`` messages are never dropped; frames may be
    replaced by a newer frame if the previous one has not left yet."""

    player_id: int
    data: bytes
    reliable: bool


@dataclass(frozen=True, slots=True)
class Close:
    """Close a player's connection once its reliable messages have been sent."""

    player_id: int
    code: CloseCode
    reason: str


@dataclass(frozen=True, slots=True)
class MatchEnded:
    """A match is over. ``results`` is None when it was aborted.

    ``deliveries`` are the RESULTS messages and closes for its players. The
    edge carries them out only after it has stored the results, so what a
    player is told is always what was kept.
    """

    match_id: int
    seed: int
    options: dict[str, Any]
    start_tick: int
    end_tick: int
    results: list[dict[str, Any]] | None
    deliveries: tuple[Send | Close, ...] = ()
    recording: Recording | None = None


@dataclass(frozen=True, slots=True)
class Frames:
    """This tick's state frames: ``data[i]`` for player ``player_ids[i]``.

    One output for every frame of the tick, so the hot path builds no object
    per player. Like unreliable :class:`Send` s, a frame may be replaced by a
    newer one if it has not left yet.
    """

    player_ids: list[int]
    data: list[bytes]

    def sends(self) -> list[Send]:
        """The frames as individual :class:`Send` s (for code that is not hot)."""
        return [Send(p, d, False) for p, d in zip(self.player_ids, self.data, strict=True)]


Output = Send | Close | MatchEnded | Frames


@dataclass(slots=True)
class ArenaStatistics:
    tick: int
    matches: int
    players: int
    frames_sent: int
    bytes_sent: int
    matches_finished: int
    matches_aborted: int


class Arena:
    """Every match of the process, stepped together once per tick."""

    def __init__(
        self,
        game: Game,
        config: ServerConfig,
        *,
        seed: int = 0,
        checksum_every: int = DEFAULT_CHECKSUM_EVERY,
        first_match_id: int = 1,
        match_id_step: int = 1,
    ) -> None:
        self.game = game
        self.checksum_every = checksum_every
        self.config = config
        self.seed = seed
        schema = game.schema
        self.slots = schema.slots
        self._extrapolate = np.array([f.extrapolate for f in schema.fields], dtype=bool)
        self._control_bounds = tuple((float(c.low), float(c.high)) for c in schema.controls)
        self._controls: ControlArray = np.zeros((game.rows, self.slots, len(schema.controls)))
        # Inputs received since the last step, written into _controls in one
        # numpy call per tick rather than one per input: (row, slot) -> controls.
        self._pending_controls: dict[tuple[int, int], tuple[float, ...]] = {}
        self._running = np.zeros(game.rows, dtype=bool)
        self.history = StateHistory(
            game.rows, self.slots, len(schema.fields), depth=config.history_ticks
        )
        self.tick = 0
        # The tick before whose game step a call made now takes effect: the
        # next tick between steps, this tick inside a step before the game moves.
        self._effect_tick = 1
        self.matches: dict[int, Match] = {}
        self.players: dict[int, Player] = {}
        self._by_row: dict[int, Match] = {}
        self._free_rows = list(range(game.rows - 1, -1, -1))
        self._timers: list[tuple[int, int, int]] = []  # (tick, match_id, generation)
        # Ids continue from the results store's, so they stay unique across restarts.
        # With several worker processes, worker k of n numbers its matches
        # first + k, first + k + n, ... so an id tells which worker holds it.
        self._next_match_id = first_match_id
        self._match_id_step = match_id_step
        self._next_player_id = 1
        self.frames_sent = 0
        self.bytes_sent = 0
        self.matches_finished = 0
        self.matches_aborted = 0
        self.history.record(self.tick, game.state())

    # ------------------------------------------------------------ queries
    def statistics(self) -> ArenaStatistics:
        return ArenaStatistics(
            tick=self.tick,
            matches=len(self.matches),
            players=sum(1 for p in self.players.values() if not p.ai),
            frames_sent=self.frames_sent,
            bytes_sent=self.bytes_sent,
            matches_finished=self.matches_finished,
            matches_aborted=self.matches_aborted,
        )

    def humans(self) -> Iterator[Player]:
        return (p for p in self.players.values() if not p.ai)

    # ------------------------------------------------------------ matches
    def create_match(self, options: dict[str, Any] | None = None) -> Match:
        """Open a new match in its lobby (quick join does this when no lobby has room)."""
        opts = {"track": self.config.track, "laps": self.config.laps, **(options or {})}
        if not self._free_rows:
            old = self.game.rows
            self._grow(old * 2)
        row = self._free_rows.pop()
        match_id = self._next_match_id
        self._next_match_id += self._match_id_step
        seed = (self.seed * 1_000_003 + match_id) % 2**63
        try:
            description = self.game.create(row, seed=seed, options=opts)
        except ValueError:
            self._free_rows.append(row)
            raise
        match = Match(
            match_id=match_id,
            row=row,
            seed=seed,
            options=opts,
            description=description,
            created_tick=self.tick,
            lobby_ends_tick=self.tick + self.config.ticks(self.config.lobby_timeout_s),
            recording=Recording(
                game=self.game.schema.game,
                seed=seed,
                options=opts,
                slots=self.slots,
                controls=len(self.game.schema.controls),
                created_tick=self._effect_tick - 1,
                checksum_every=self.checksum_every,
            ),
        )
        self.matches[match_id] = match
        self._by_row[row] = match
        self._drop_pending_controls(row)
        self._controls[row] = 0.0
        heapq.heappush(self._timers, (match.lobby_ends_tick, match_id, 0))
        return match

    def _grow(self, rows: int) -> None:
        old = self.game.rows
        self.game.grow(rows)
        self.history.grow(rows)
        controls = np.zeros((rows, *self._controls.shape[1:]))
        controls[:old] = self._controls
        self._controls = controls
        running = np.zeros(rows, dtype=bool)
        running[:old] = self._running
        self._running = running
        self._free_rows = list(range(rows - 1, old - 1, -1)) + self._free_rows

    # ------------------------------------------------------------ players
    def join(
        self, name: str, match_id: int | None = None, send_rate_hz: int = 0
    ) -> tuple[Player, list[Output]]:
        """Seat a new player: in ``match_id``'s lobby, or by quick join in any lobby with room.

        Raises :class:`JoinError` (with its close code) when that is not possible.
        """
        if sum(1 for _ in self.humans()) >= self.config.max_players:
            raise JoinError("server is full", CloseCode.SERVER_FULL)
        if match_id is None:
            match = self._quick_join_match()
        else:
            found = self.matches.get(match_id)
            if found is None:
                raise JoinError(f"no match {match_id}", CloseCode.MATCH_NOT_FOUND)
            if found.phase is not MatchPhase.LOBBY:
                raise JoinError(f"match {match_id} has started", CloseCode.MATCH_STARTED)
            if len(found.seats) >= self.slots:
                raise JoinError(f"match {match_id} is full", CloseCode.MATCH_FULL)
            match = found
        slot = min(set(range(self.slots)) - set(match.seats))
        rate = (
            self.config.send_rate_hz
            if send_rate_hz <= 0
            else min(send_rate_hz, self.config.send_rate_hz)
        )
        send_every = max(1, round(self.config.tick_rate_hz / rate))
        player = Player(
            player_id=self._next_player_id,
            name=name,
            match=match,
            slot=slot,
            send_every=send_every,
            send_phase=self._next_player_id % send_every,
        )
        self._next_player_id += 1
        outputs = self._seat(match, player)
        welcome = protocol.Welcome(
            version=PROTOCOL_VERSION,
            player_id=player.player_id,
            match_id=match.match_id,
            slot=slot,
            tick_rate_hz=self.config.tick_rate_hz,
            send_every=send_every,
            tick=self.tick,
            schema=self.game.schema.to_wire(),
            match={**match.description, "options": match.options},
        )
        intro: list[Output] = [Send(player.player_id, protocol.encode(welcome), True)]
        for other in match.seats.values():
            if other is not player:
                intro.append(
                    self._event_to(
                        player,
                        EventCode.PLAYER_JOINED,
                        other.slot,
                        other.player_id,
                        other.name,
                        other.ai,
                    )
                )
        intro.append(self._event_to(player, EventCode.LOBBY, -1, match.lobby_ends_tick))
        outputs = intro + outputs
        if len(match.seats) >= self.slots:
            outputs += self._begin_countdown(match)
        return player, outputs

    def _quick_join_match(self) -> Match:
        lobbies = [
            m
            for m in self.matches.values()
            if m.phase is MatchPhase.LOBBY and len(m.seats) < self.slots
        ]
        if lobbies:
            # The fullest lobby first, so matches start sooner; then the oldest.
            return max(lobbies, key=lambda m: (len(m.seats), -m.match_id))
        return self.create_match()

    def _seat(self, match: Match, player: Player) -> list[Output]:
        match.seats[player.slot] = player
        self.players[player.player_id] = player
        self.game.join(match.row, player.slot, ai=player.ai)
        if match.recording is not None:
            match.recording.joined(self._effect_tick, player.slot, player.ai)
        return self._broadcast(
            match, EventCode.PLAYER_JOINED, player.slot, player.player_id, player.name, player.ai
        )

    def leave(self, player_id: int) -> list[Output]:
        """The player's connection is gone (or it sent LEAVE). Unknown ids are ignored."""
        player = self.players.pop(player_id, None)
        if player is None:
            return []
        match = player.match
        if match.phase is MatchPhase.OVER:
            return []
        del match.seats[player.slot]
        if match.phase is not MatchPhase.LOBBY:
            match.departed[player.slot] = (player.player_id, player.name)
        self.game.leave(match.row, player.slot)
        self._pending_controls.pop((match.row, player.slot), None)
        self._controls[match.row, player.slot] = 0.0
        if match.recording is not None:
            match.recording.left(self._effect_tick, player.slot)
        outputs = self._broadcast(match, EventCode.PLAYER_LEFT, player.slot, player.player_id)
        if not match.humans:
            outputs += self._abort(match)
        return outputs

    def _drop_pending_controls(self, row: int) -> None:
        for key in [key for key in self._pending_controls if key[0] == row]:
            del self._pending_controls[key]

    def handle_input(self, player_id: int, message: protocol.Input) -> None:
        """Keep the newest controls for the next tick; raises :class:`InvalidInput`.

        Called for every input of every client, so it checks ranges in plain
        Python (a few floats) rather than paying several numpy calls.
        """
        player = self.players[player_id]
        values = message.controls
        bounds = self._control_bounds
        if len(values) != len(bounds):
            raise InvalidInput(f"expected {len(bounds)} controls, got {len(values)}")
        for value, (low, high) in zip(values, bounds, strict=True):
            if not low <= value <= high:
                self._reject_controls(values)
        if message.seq <= player.input_seq:
            return  # a stale or repeated input: the newest one already won
        player.input_seq = message.seq
        match = player.match
        self._pending_controls[match.row, player.slot] = values
        if match.recording is not None:
            match.recording.input(self._effect_tick, player.slot, values)
        self.acknowledge(player_id, message.ack_tick)

    def _reject_controls(self, values: tuple[float, ...]) -> NoReturn:
        for control, value in zip(self.game.schema.controls, values, strict=True):
            if not control.low <= value <= control.high:
                raise InvalidInput(
                    f"control {control.name}={value} outside [{control.low}, {control.high}]"
                )
        raise InvalidInput("controls out of range")

    def acknowledge(self, player_id: int, ack_tick: int) -> None:
        """The client holds the state of ``ack_tick``: its next delta may start there."""
        player = self.players[player_id]
        if ack_tick < 0:
            player.ack_tick = -1  # the client holds nothing: the next frame is a snapshot
            player.reference_tick = -1
        elif player.ack_tick < ack_tick <= self.tick:
            player.reference_tick = player.ack_tick
            player.ack_tick = ack_tick

    def pong(self, message: protocol.Ping) -> bytes:
        return protocol.encode(protocol.Pong(client_time=message.client_time, tick=self.tick))

    # ------------------------------------------------------------ the tick
    def step(self) -> list[Output]:
        """Advance every match by one tick and return what must be sent."""
        self.tick += 1
        self._effect_tick = self.tick
        outputs: list[Output] = []
        while self._timers and self._timers[0][0] <= self.tick:
            _, match_id, _ = heapq.heappop(self._timers)
            match = self.matches.get(match_id)
            if match is not None:
                outputs += self._timer_fired(match)
        for player in self.players.values():
            player.applied_seq = player.input_seq
        if self._pending_controls:
            pending = self._pending_controls
            rows, slots = zip(*pending, strict=True)
            self._controls[rows, slots] = list(pending.values())
            pending.clear()
        events = self.game.step(self._running, self._controls) if self._running.any() else ()
        self._effect_tick = self.tick + 1
        self.history.record(self.tick, self.game.state())
        if self.tick % self.checksum_every == 0:
            for row in np.flatnonzero(self._running):
                recording = self._by_row[int(row)].recording
                if recording is not None:
                    recording.checksums.append(
                        (self.tick, self.history.checksum(int(row), self.tick))
                    )
        for event in events:
            outputs += self._game_event(event)
        outputs += self._frames()
        return outputs

    def _frames(self) -> list[Output]:
        """This tick's frame for every player due one, each against its own acked baseline.

        The payloads of all matches are built in one batch; players of one
        match who hold the same baseline share theirs.
        """
        tick = self.tick
        oldest = tick - self.history.depth
        due: list[Player] = []
        keys: dict[tuple[int, int, int], int] = {}
        chosen = []
        for player in self.players.values():
            if player.ai or (tick - player.send_phase) % player.send_every:
                continue
            due.append(player)
            ack, ref = player.ack_tick, player.reference_tick
            if ack <= oldest:
                key = (player.match.row, -1, -1)
            else:
                key = (player.match.row, ack, ref if ref > oldest else -1)
            chosen.append(keys.setdefault(key, len(keys)))
        if not due:
            return []
        payloads = build_payloads(self.history, list(keys), tick, self._extrapolate)
        # Each payload is encoded once; a player's frame adds only its input_seq.
        parts = [
            protocol.snapshot_parts(tick, p.checksum, p.values)
            if p.baseline_tick < 0
            else protocol.delta_parts(
                tick, p.baseline_tick, p.reference_tick, p.checksum, p.mask + p.values
            )
            for p in payloads
        ]
        pack_int = protocol.pack_int
        player_ids: list[int] = []
        frames: list[bytes] = []
        sent = 0
        for player, index in zip(due, chosen, strict=True):
            prefix, suffix = parts[index]
            data = prefix + pack_int(player.applied_seq) + suffix
            size = len(data)
            player.frames_sent += 1
            player.bytes_sent += size
            sent += size
            player_ids.append(player.player_id)
            frames.append(data)
        self.frames_sent += len(frames)
        self.bytes_sent += sent
        return [Frames(player_ids, frames)]

    def _timer_fired(self, match: Match) -> list[Output]:
        if match.phase is MatchPhase.LOBBY and self.tick >= match.lobby_ends_tick:
            if len(match.humans) < self.config.min_players:
                # Not enough players yet: keep the lobby open for another period.
                match.lobby_ends_tick = self.tick + self.config.ticks(self.config.lobby_timeout_s)
                heapq.heappush(self._timers, (match.lobby_ends_tick, match.match_id, 0))
                return self._broadcast(match, EventCode.LOBBY, -1, match.lobby_ends_tick)
            return self._begin_countdown(match)
        if match.phase is MatchPhase.COUNTDOWN and self.tick >= match.start_tick:
            match.phase = MatchPhase.RUNNING
            self.game.start(match.row)
            self._running[match.row] = True
            if match.recording is not None:
                match.recording.started(self._effect_tick)
            return self._broadcast(match, EventCode.START, -1)
        return []

    def _begin_countdown(self, match: Match) -> list[Output]:
        if match.phase is not MatchPhase.LOBBY:
            return []
        outputs: list[Output] = []
        if self.config.fill_with_ai:
            for slot in sorted(set(range(self.slots)) - set(match.seats)):
                bot = Player(
                    player_id=self._next_player_id,
                    name=f"AI {slot + 1}",
                    match=match,
                    slot=slot,
                    ai=True,
                )
                self._next_player_id += 1
                outputs += self._seat(match, bot)
        match.phase = MatchPhase.COUNTDOWN
        match.start_tick = self.tick + max(1, self.config.ticks(self.config.countdown_s))
        heapq.heappush(self._timers, (match.start_tick, match.match_id, 1))
        return outputs + self._broadcast(match, EventCode.COUNTDOWN, -1, match.start_tick)

    def _game_event(self, event: GameEvent) -> list[Output]:
        match = self._by_row.get(event.row)
        if match is None or match.phase is not MatchPhase.RUNNING:
            return []
        if event.kind == MATCH_OVER:
            return self._finish(match)
        return self._broadcast(match, event.kind, event.slot, *event.args)

    def _finish(self, match: Match) -> list[Output]:
        results = self.game.results(match.row)
        for entry in results:
            seat = match.seats.get(entry["slot"])
            player_id, name = (
                (seat.player_id, seat.name)
                if seat
                else match.departed.get(entry["slot"], (None, ""))
            )
            entry["player_id"] = player_id
            entry["name"] = name
        match.results = results
        match.end_tick = self.tick
        if match.recording is not None:
            match.recording.checksums.append(
                (self.tick, self.history.checksum(match.row, self.tick))
            )
        outputs = self._broadcast(match, EventCode.END, -1)
        message = protocol.encode(
            protocol.Results(match_id=match.match_id, tick=self.tick, results=results)
        )
        humans = match.humans
        deliveries: list[Send | Close] = [Send(p.player_id, message, True) for p in humans]
        deliveries += [Close(p.player_id, CloseCode.NORMAL, "match over") for p in humans]
        outputs.append(self._ended(match, results, tuple(deliveries)))
        self.matches_finished += 1
        return outputs

    def _abort(self, match: Match) -> list[Output]:
        match.end_tick = self.tick
        outputs = self._broadcast(match, EventCode.ABORTED, -1)
        closes = [
            Close(p.player_id, CloseCode.MATCH_ABORTED, "match aborted") for p in match.humans
        ]
        outputs.append(self._ended(match, None, tuple(closes)))
        self.matches_aborted += 1
        return outputs

    def _ended(
        self,
        match: Match,
        results: list[dict[str, Any]] | None,
        deliveries: tuple[Send | Close, ...],
    ) -> MatchEnded:
        match.phase = MatchPhase.OVER
        if match.recording is not None:
            match.recording.end_tick = match.end_tick
            match.recording.results = results
        for player in match.seats.values():
            self.players.pop(player.player_id, None)
        self._running[match.row] = False
        self._drop_pending_controls(match.row)
        self._controls[match.row] = 0.0
        self.game.release(match.row)
        del self._by_row[match.row]
        del self.matches[match.match_id]
        self._free_rows.append(match.row)
        return MatchEnded(
            match_id=match.match_id,
            seed=match.seed,
            options=match.options,
            start_tick=match.start_tick,
            end_tick=match.end_tick,
            results=results,
            deliveries=deliveries,
            recording=match.recording,
        )

    # ------------------------------------------------------------ events
    def _event_to(self, player: Player, kind: int, slot: int, *args: Any) -> Send:
        message = protocol.Event(tick=self.tick, kind=kind, slot=slot, args=args)
        return Send(player.player_id, protocol.encode(message), True)

    def _broadcast(self, match: Match, kind: int, slot: int, *args: Any) -> list[Output]:
        data = protocol.encode(protocol.Event(tick=self.tick, kind=kind, slot=slot, args=args))
        return [Send(p.player_id, data, True) for p in match.seats.values() if not p.ai]
