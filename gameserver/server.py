"""The Trio server: owns tasks, sockets and time; the rules live in :mod:`gameserver.match`.

One tick task steps every match of the process on a drift-free schedule
(deadlines counted from the start time, never ``sleep(period)``) and hands
each outgoing message to its connection without awaiting it. Each connection
has a reader (this module's :meth:`Server.serve_connection`) and a writer
(the transport's). A peer's bad input closes only that connection, with the
close code its error carries.
"""

from __future__ import annotations

import dataclasses
import gc
import logging
import socket
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio
import trio_websocket

from . import protocol
from .codes import SUBPROTOCOL, CloseCode
from .config import ServerConfig
from .edge import SocketConnection, SocketEdge
from .errors import PeerError, ProtocolError
from .game import Game
from .match import Arena, Close, Frames, MatchEnded, Output, Send
from .metrics import TickMetrics, TickStatistics
from .status import serve_status
from .transport import (
    CLOSE_TIMEOUT_S,
    Connection,
    ConnectionClosed,
    HandshakeInfo,
    PullConnection,
    TrioWebSocketConnection,
    bearer_token,
)

log = logging.getLogger("gameserver")

#: Decides whether a WebSocket handshake may go on; ``None`` means allowed.
Authorizer = Callable[[HandshakeInfo], str | None]
MatchEndedHook = Callable[[MatchEnded], None]
#: Stores a finished match durably; RESULTS are sent after it returns.
StoreResults = Callable[[MatchEnded], Awaitable[None]]


@dataclass(frozen=True, slots=True)
class ServerStatistics:
    ticks: TickStatistics
    tick: int
    matches: int
    players: int
    connections: int
    connections_accepted: int
    connections_rejected: int
    frames_sent: int
    bytes_sent: int
    matches_finished: int
    matches_aborted: int
    close_codes: dict[int, int]


#: Allocations between young-generation collections while serving (CPython's default is 700).
GC_YOUNG_THRESHOLD = 100_000


def tune_garbage_collector() -> None:
    """Make CPython's cyclic collector cheap for a long-running server process.

    Each tick allocates many short-lived containers, so with the default
    threshold the young generation is collected several times a tick, and the
    occasional full collection walks every object the process holds. Freezing
    what exists at start-up (code, tracks, tables) takes it out of every future
    collection, and a higher young threshold collects less often; measured with
    ``benchmarks.hotpath`` at 768 clients, about 8-12% less CPU per client.
    Called by the process entry points, not by :class:`Server`, since it is a
    process-wide policy.
    """
    gc.collect()
    gc.freeze()
    _, middle, old = gc.get_threshold()
    gc.set_threshold(GC_YOUNG_THRESHOLD, middle, old)


def token_authorizer(token: str) -> Authorizer:
    """Allow only clients that present ``token`` (header or query string)."""

    def authorize(request: HandshakeInfo) -> str | None:
        return None if bearer_token(request) == token else "missing or wrong token"

    return authorize


def handshake_verdict(
    authorize: Authorizer | None, request: HandshakeInfo
) -> tuple[int, str] | str:
    """The subprotocol to accept ``request`` with, or (HTTP status, reason) to refuse it."""
    reason = authorize(request) if authorize is not None else None
    if reason is not None:
        return (401, reason)
    if SUBPROTOCOL not in request.proposed_subprotocols:
        return (400, f"this server speaks the WebSocket subprotocol {SUBPROTOCOL}")
    return SUBPROTOCOL


class Server:
    """A game server: the arena, its tick loop and its WebSocket clients."""

    def __init__(
        self,
        config: ServerConfig,
        game: Game,
        *,
        seed: int = 0,
        authorize: Authorizer | None = None,
        on_match_ended: MatchEndedHook | None = None,
        store_results: StoreResults | None = None,
        first_match_id: int = 1,
        match_id_step: int = 1,
    ) -> None:
        self.config = config
        self.arena = Arena(
            game, config, seed=seed, first_match_id=first_match_id, match_id_step=match_id_step
        )
        if authorize is None and config.auth_token:
            authorize = token_authorizer(config.auth_token)
        self._authorize = authorize
        self._on_match_ended = on_match_ended
        self._store_results = store_results
        self._connections: dict[int, Connection] = {}
        self._player_of: dict[Connection, int] = {}
        self.edge: SocketEdge | None = None
        self._open = 0
        self.metrics = TickMetrics()
        self.port: int | None = None
        self.status_port: int | None = None
        self.connections_accepted = 0
        self.connections_rejected = 0
        self.close_codes: dict[int, int] = {}
        self._nursery: trio.Nursery | None = None
        self._all_closed = trio.Event()
        self.ended: list[MatchEnded] = []

    # ------------------------------------------------------------ running
    async def run(
        self,
        *,
        channel: socket.socket | None = None,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on the configured address and tick until cancelled; starts with the port.

        With ``channel`` (a worker of ``serve --workers``), clients arrive over
        it from the front process instead, and the port is 0.
        """
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            if channel is None:
                self.port = await self._serve_websockets(nursery)
            else:
                # The front process gone, no client can reach this worker: stop.
                stop = partial(nursery.start_soon, self.shutdown)
                await nursery.start(partial(self._edge().serve_handoffs, channel, on_closed=stop))
            if self.config.status_port is not None:
                self.status_port = await nursery.start(
                    serve_status, self.stats, self.config.host, self.config.status_port
                )
            nursery.start_soon(self.run_ticks)
            if self.port is not None:
                log.info("listening on ws://%s:%d", self.config.host, self.port)
            task_status.started(self.port or 0)

    async def _serve_websockets(self, nursery: trio.Nursery) -> int:
        """Start accepting clients on the configured edge; returns the listening port."""
        config = self.config
        if config.transport == "trio-websocket":
            listener = await nursery.start(
                partial(
                    trio_websocket.serve_websocket,
                    self.handle_request,
                    config.host,
                    config.port,
                    None,
                    max_message_size=config.max_message_bytes,
                    connect_timeout=config.join_timeout_s,
                    disconnect_timeout=CLOSE_TIMEOUT_S,
                )
            )
            return int(listener.port)
        edge = self._edge()
        port: int = await nursery.start(partial(edge.serve, config.host, config.port))
        return port

    def _edge(self) -> SocketEdge:
        config = self.config
        self.edge = SocketEdge(
            self,
            max_message_bytes=config.max_message_bytes,
            handshake_timeout_s=config.join_timeout_s,
            slow_client_timeout_s=config.slow_client_timeout_s,
            max_queued_messages=config.max_queued_messages,
            send_buffer_bytes=config.send_buffer_bytes or None,
            echo_path=config.echo_path,
        )
        return self.edge

    async def run_ticks(self) -> None:
        """Step the arena at the tick rate, forever, without drift."""
        period = self.config.tick_s
        start = trio.current_time()
        tick = 0
        while True:
            tick += 1
            deadline = start + tick * period
            await trio.sleep_until(deadline)
            behind = trio.current_time() - deadline
            # Too far behind to catch up: skip the deadlines that have passed. The
            # epsilon keeps float rounding (29 periods computed as 28.999...) from
            # running a passed deadline's tick late, back to back with the next.
            skipped = int(behind / period + 1e-6)
            if skipped:
                tick += skipped
                self.metrics.missed_ticks += skipped
            if behind > period / 4:
                self.metrics.late_ticks += 1
            wall, cpu = time.perf_counter(), time.process_time()
            self.dispatch(self.arena.step())
            self.metrics.record(time.perf_counter() - wall, time.process_time() - cpu)

    async def shutdown(self) -> None:
        """Close every client with 1001 and stop, waiting at most a close timeout."""
        for connection in list(self._player_of):
            connection.close_nowait(CloseCode.GOING_AWAY, "server shutting down")
        if self.edge is not None:
            self.edge.close_all(CloseCode.GOING_AWAY, "server shutting down")
        with trio.move_on_after(CLOSE_TIMEOUT_S + 0.5):
            while self._open:
                self._all_closed = trio.Event()
                await self._all_closed.wait()
        if self._nursery is not None:
            self._nursery.cancel_scope.cancel()

    def statistics(self) -> ServerStatistics:
        arena = self.arena.statistics()
        return ServerStatistics(
            ticks=self.metrics.statistics(),
            tick=arena.tick,
            matches=arena.matches,
            players=arena.players,
            connections=self._open,
            connections_accepted=self.connections_accepted,
            connections_rejected=self.connections_rejected,
            frames_sent=arena.frames_sent,
            bytes_sent=arena.bytes_sent,
            matches_finished=arena.matches_finished,
            matches_aborted=arena.matches_aborted,
            close_codes=dict(self.close_codes),
        )

    def stats(self) -> dict[str, Any]:
        """Everything the status endpoint shows: totals, then one entry per match."""
        tick_rate = self.config.tick_rate_hz
        matches = []
        for match in self.arena.matches.values():
            humans = match.humans
            age_s = max(1, self.arena.tick - match.created_tick) / tick_rate
            sent = sum(p.bytes_sent for p in humans)
            matches.append(
                {
                    "match_id": match.match_id,
                    "phase": match.phase.value,
                    "players": len(humans),
                    "seats": len(match.seats),
                    "frames_sent": sum(p.frames_sent for p in humans),
                    "bytes_sent": sent,
                    "bytes_per_client_s": sent / max(1, len(humans)) / age_s,
                }
            )
        return {**dataclasses.asdict(self.statistics()), "matches": matches}

    # ------------------------------------------------------------ outputs
    def dispatch(self, outputs: list[Output]) -> None:
        """Hand the arena's outputs to the connections; never waits."""
        connections = self._connections
        for output in outputs:
            if isinstance(output, Frames):
                # The hot path: one state frame per player, every tick.
                for player_id, data in zip(output.player_ids, output.data, strict=True):
                    connection = connections.get(player_id)
                    if connection is not None:
                        connection.send_frame_nowait(data)
            elif isinstance(output, Send):
                connection = self._connections.get(output.player_id)
                if connection is None:
                    continue
                if output.reliable:
                    connection.send_message_nowait(output.data)
                else:
                    connection.send_frame_nowait(output.data)
            elif isinstance(output, Close):
                connection = self._connections.get(output.player_id)
                if connection is not None:
                    connection.close_nowait(output.code, output.reason)
            else:
                self.ended.append(output)
                if self._on_match_ended is not None:
                    self._on_match_ended(output)
                if self._store_results is not None and self._nursery is not None:
                    self._nursery.start_soon(self._store_then_deliver, output)
                else:
                    self.dispatch(list(output.deliveries))

    async def _store_then_deliver(self, ended: MatchEnded) -> None:
        """Results reach players only once they are stored; a failed store is
        logged and the players still get what the server computed."""
        assert self._store_results is not None
        try:
            await self._store_results(ended)
        except Exception:
            log.exception("storing the results of match %d failed", ended.match_id)
        self.dispatch(list(ended.deliveries))

    # ------------------------------------------------------------ connections
    def accept(self, request: HandshakeInfo) -> tuple[int, str] | str:
        """Handshake verdict: the subprotocol to accept with, or (HTTP status, reason)."""
        verdict = handshake_verdict(self._authorize, request)
        if isinstance(verdict, tuple):
            self.connections_rejected += 1
        else:
            self.connections_accepted += 1
        return verdict

    def opened(self, connection: Connection) -> None:
        """A client completed the handshake; it has ``join_timeout_s`` to JOIN."""
        self._open += 1

    def received(self, connection: Connection, data: bytes) -> None:
        """Act on one binary message; raises :class:`PeerError` to close only this client."""
        player_id = self._player_of.get(connection)
        message = protocol.decode_client_message(data)
        if player_id is None:
            self._join(connection, message)
            return
        arena = self.arena
        if player_id not in arena.players:
            return  # the match is over; the connection is closing
        if isinstance(message, protocol.Input):
            arena.handle_input(player_id, message)
        elif isinstance(message, protocol.Ack):
            arena.acknowledge(player_id, message.ack_tick)
        elif isinstance(message, protocol.Ping):
            connection.send_message_nowait(arena.pong(message))
        elif isinstance(message, protocol.Leave):
            connection.close_nowait(CloseCode.NORMAL, "left")
        else:
            raise ProtocolError("JOIN was already accepted", CloseCode.POLICY_VIOLATION)

    def idle(self, connection: SocketConnection, now: float) -> PeerError | None:
        """Whether a socket-edge client has waited too long: no JOIN, or silent."""
        if connection not in self._player_of:
            if now - connection.opened_at > self.config.join_timeout_s:
                return PeerError("no JOIN in time", CloseCode.JOIN_TIMEOUT)
        elif now - connection.last_received > self.config.idle_timeout_s:
            return PeerError("nothing received in time", CloseCode.IDLE_TIMEOUT)
        return None

    def closed(self, connection: Connection) -> None:
        """The connection is gone: its player leaves, its close code is counted."""
        player_id = self._player_of.pop(connection, None)
        if player_id is not None:
            self._connections.pop(player_id, None)
            self.dispatch(self.arena.leave(player_id))
        code = connection.statistics().close_code
        if code is not None:
            self.close_codes[code] = self.close_codes.get(code, 0) + 1
        self._open -= 1
        if not self._open:
            self._all_closed.set()

    def _join(self, connection: Connection, message: protocol.ClientMessage) -> None:
        if not isinstance(message, protocol.Join):
            raise ProtocolError("the first message must be JOIN", CloseCode.POLICY_VIOLATION)
        player, outputs = self.arena.join(message.name, message.match_id, message.send_rate_hz)
        self._connections[player.player_id] = connection
        self._player_of[connection] = player.player_id
        self.dispatch(outputs)

    # ------------------------------------------------------------ trio-websocket edge
    async def handle_request(self, request: trio_websocket.WebSocketRequest) -> None:
        """trio-websocket's handshake handler: the verdict of :meth:`accept`, then serve."""
        verdict = self.accept(request)
        if isinstance(verdict, tuple):
            status, reason = verdict
            await request.reject(status, body=reason.encode())
            return
        ws = await request.accept(subprotocol=verdict)
        connection = TrioWebSocketConnection(
            ws,
            slow_client_timeout_s=self.config.slow_client_timeout_s,
            max_queued_messages=self.config.max_queued_messages,
        )
        await self.serve_connection(connection)

    async def serve_connection(self, connection: PullConnection) -> None:
        """Run one client with a writer task and a reader loop, until the connection ends."""
        self.opened(connection)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(connection.run_writer)
                try:
                    await self._read(connection)
                except PeerError as exc:
                    log.info("closing %s: %s (%d)", connection.remote, exc.reason, exc.close_code)
                    connection.close_nowait(exc.close_code, exc.reason)
                except ConnectionClosed as exc:
                    # Closed by the peer, or by the library (1009 for an oversized
                    # message): nothing more is sent; the code it ended with is counted.
                    connection.close_nowait(exc.code, exc.reason)
                except Exception:
                    log.exception("internal error serving %s", connection.remote)
                    connection.close_nowait(CloseCode.INTERNAL_ERROR, "internal error")
        finally:
            self.closed(connection)

    async def _read(self, connection: PullConnection) -> None:
        with trio.move_on_after(self.config.join_timeout_s) as scope:
            self.received(connection, await connection.receive())
        if scope.cancelled_caught:
            raise PeerError("no JOIN in time", CloseCode.JOIN_TIMEOUT)
        idle_s = self.config.idle_timeout_s
        while not connection.closing:
            with trio.move_on_after(idle_s) as scope:
                data = await connection.receive()
            if scope.cancelled_caught:
                raise PeerError("nothing received in time", CloseCode.IDLE_TIMEOUT)
            self.received(connection, data)


async def run_server(
    config: ServerConfig,
    game: Game,
    *,
    seed: int = 0,
    task_status: trio.TaskStatus[Server] = trio.TASK_STATUS_IGNORED,
    **kwargs: Any,
) -> None:
    """Run a :class:`Server` until cancelled; ``nursery.start`` returns it once listening."""
    server = Server(config, game, seed=seed, **kwargs)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        task_status.started(server)
