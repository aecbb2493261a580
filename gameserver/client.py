"""A Trio client for game servers speaking protocol v1.

Connect, join, send inputs, and hold a mirror of the match state rebuilt from
snapshots and deltas; every frame's checksum is verified, and acknowledgements
ride on each input (or an ACK when the client has nothing to send)::

    async with open_client("ws://127.0.0.1:8765", "alice") as client:
        while client.results is None:
            await client.wait_frame()
            x = client.column("x")[client.slot]
            await client.send_input(1.0, 0.0, 0.0)

The client speaks only the documented protocol (docs/protocol.md) and reuses
the package's pure codec and sync modules.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import numpy as np
import numpy.typing as npt
import trio
import trio_websocket

from . import protocol
from .codes import SUBPROTOCOL, CloseCode
from .errors import DesyncError, GameServerError, ProtocolError
from .sync import Mirror


class ClientError(GameServerError):
    """The server refused or ended the session; ``close_code`` says why."""

    def __init__(self, message: str, close_code: int | None = None) -> None:
        super().__init__(message)
        self.close_code = close_code


@dataclass(slots=True)
class ClientStatistics:
    """What a client saw; load generators aggregate these."""

    frames: int = 0
    snapshots: int = 0
    deltas: int = 0
    bytes_received: int = 0
    bytes_sent: int = 0
    inputs_sent: int = 0
    desyncs: int = 0
    late_frames: int = 0
    #: Seconds from sending an input to the first frame that reports it applied.
    input_latencies_s: list[float] = field(default_factory=list)
    frame_times_s: list[float] = field(default_factory=list)
    rtt_s: list[float] = field(default_factory=list)


class GameClient:
    """One joined player: its mirror of the match, its events and its results."""

    def __init__(self, ws: trio_websocket.WebSocketConnection, welcome: protocol.Welcome) -> None:
        self._ws = ws
        self.welcome = welcome
        self.player_id = welcome.player_id
        self.match_id = welcome.match_id
        self.slot = welcome.slot
        schema = welcome.schema
        self.field_names: list[str] = [f[0] for f in schema["fields"]]
        self._scales = np.array([float(f[1]) for f in schema["fields"]])
        self.control_names: list[str] = [c[0] for c in schema["controls"]]
        self.mirror = Mirror.for_schema(schema)
        self.events: list[protocol.Event] = []
        self.results: protocol.Results | None = None
        self.statistics = ClientStatistics()
        self.close_code: int | None = None
        self.close_reason: str = ""
        self._seq = 0
        self._sent_at: dict[int, float] = {}
        self._last_reported_seq = 0
        self._frame_event = trio.Event()
        self._closed = trio.Event()
        self._ping_waiters: dict[int, trio.Event] = {}

    # ------------------------------------------------------------ state
    @property
    def tick(self) -> int:
        """Tick of the newest state held (-1 before the first frame)."""
        return self.mirror.tick

    @property
    def state(self) -> npt.NDArray[np.int32]:
        """The quantised state, ``int32[slots, fields]``, exactly as the server's."""
        return self.mirror.state

    def column(self, name: str) -> npt.NDArray[np.float64]:
        """One state field for every slot, in the schema's units (quantised / scale)."""
        index = self.field_names.index(name)
        values: npt.NDArray[np.float64] = self.mirror.state[:, index] / self._scales[index]
        return values

    @property
    def closed(self) -> bool:
        return self._closed.is_set()

    # ------------------------------------------------------------ sending
    async def send_input(self, *controls: float) -> int:
        """Send controls for the next tick; returns the input's sequence number."""
        if len(controls) != len(self.control_names):
            raise ValueError(f"expected controls {self.control_names}, got {controls}")
        self._seq += 1
        self._sent_at[self._seq] = time.perf_counter()
        message = protocol.Input(seq=self._seq, ack_tick=self.mirror.tick, controls=controls)
        await self._send(protocol.encode(message))
        self.statistics.inputs_sent += 1
        return self._seq

    async def ack(self) -> None:
        """Acknowledge the newest state without sending controls."""
        await self._send(protocol.encode(protocol.Ack(ack_tick=self.mirror.tick)))

    async def ping(self) -> float:
        """Round-trip time to the server, in seconds."""
        stamp = time.perf_counter_ns() // 1000
        done = self._ping_waiters[stamp] = trio.Event()
        start = time.perf_counter()
        await self._send(protocol.encode(protocol.Ping(client_time=stamp)))
        await done.wait()
        rtt = time.perf_counter() - start
        self.statistics.rtt_s.append(rtt)
        return rtt

    async def leave(self) -> None:
        """Leave the match; the server closes the connection."""
        await self._send(protocol.encode(protocol.Leave()))

    async def _send(self, data: bytes) -> None:
        try:
            await self._ws.send_message(data)
        except trio_websocket.ConnectionClosed:
            raise ClientError("connection closed", self.close_code) from None
        self.statistics.bytes_sent += len(data)

    # ------------------------------------------------------------ waiting
    async def wait_frame(self) -> None:
        """Wait for the next state frame (returns at once if the connection closed)."""
        if self._closed.is_set():
            return
        await self._frame_event.wait()

    async def wait_closed(self) -> None:
        await self._closed.wait()

    async def wait_results(self) -> protocol.Results:
        """Wait until the match is over; raises :class:`ClientError` if it ended without results."""
        await self._closed.wait()
        if self.results is None:
            raise ClientError(
                f"closed without results: {self.close_code} {self.close_reason}", self.close_code
            )
        return self.results

    # ------------------------------------------------------------ receiving
    async def _run_reader(self) -> None:
        try:
            while True:
                data = await self._ws.get_message()
                if isinstance(data, str):
                    raise ProtocolError("text frame from server")
                self._handle(data)
        except trio_websocket.ConnectionClosed as exc:
            self.close_code = exc.reason.code if exc.reason else CloseCode.NORMAL
            self.close_reason = (exc.reason.reason or "") if exc.reason else ""
        finally:
            self._closed.set()
            self._frame_event.set()
            for waiter in self._ping_waiters.values():
                waiter.set()

    def _handle(self, data: bytes) -> None:
        now = time.perf_counter()
        stats = self.statistics
        stats.bytes_received += len(data)
        message = protocol.decode_server_message(data)
        if isinstance(message, protocol.Snapshot | protocol.Delta):
            stats.frames += 1
            stats.frame_times_s.append(now)
            if isinstance(message, protocol.Snapshot):
                stats.snapshots += 1
            else:
                stats.deltas += 1
            try:
                newest = self.mirror.apply(message)
            except DesyncError:
                stats.desyncs += 1
                self.mirror.reset()  # acking -1 asks the server for a snapshot
                return
            if not newest:
                stats.late_frames += 1
                return
            self._note_applied(message.input_seq, now)
            self._frame_event.set()
            self._frame_event = trio.Event()
        elif isinstance(message, protocol.Event):
            self.events.append(message)
        elif isinstance(message, protocol.Results):
            self.results = message
        elif isinstance(message, protocol.Pong):
            waiter = self._ping_waiters.pop(message.client_time, None)
            if waiter is not None:
                waiter.set()

    def _note_applied(self, seq: int, now: float) -> None:
        if seq <= self._last_reported_seq:
            return
        for applied in range(self._last_reported_seq + 1, seq + 1):
            sent = self._sent_at.pop(applied, None)
            if sent is not None and applied == seq:
                self.statistics.input_latencies_s.append(now - sent)
        self._last_reported_seq = seq


@asynccontextmanager
async def open_client(
    url: str,
    name: str,
    *,
    match_id: int | None = None,
    send_rate_hz: int = 0,
    token: str | None = None,
    connect_timeout_s: float = 10.0,
) -> AsyncIterator[GameClient]:
    """Connect to ``url``, join (quick join unless ``match_id``), and yield the client.

    Raises :class:`ClientError` if the connection, the handshake or the join is
    refused. Leaving the block closes the connection.
    """
    try:
        async with trio.open_nursery() as nursery:
            stream = await _open_stream(url, connect_timeout_s)
            try:
                with trio.fail_after(connect_timeout_s):
                    ws = await _handshake(nursery, stream, url, token)
                    welcome = await _join(ws, name, match_id, send_rate_hz)
                client = GameClient(ws, welcome)
                nursery.start_soon(client._run_reader)
                yield client
                with trio.move_on_after(2.0):
                    await ws.aclose()
            except trio.TooSlowError:
                raise ClientError(f"no welcome from {url} within {connect_timeout_s} s") from None
            finally:
                # trio-websocket leaves the TCP stream open when the server
                # closed first or refused the handshake; the stream is ours.
                with trio.CancelScope(shield=True):
                    await stream.aclose()
                nursery.cancel_scope.cancel()
    except BaseExceptionGroup as group:
        if len(group.exceptions) == 1 and isinstance(group.exceptions[0], Exception):
            raise _client_error(group.exceptions[0]) from None
        raise


def _client_error(exc: Exception) -> Exception:
    """trio-websocket reports a refused handshake from its reader task; say it plainly."""
    if isinstance(exc, trio_websocket.ConnectionRejected):
        body = (exc.body or b"").decode("utf-8", "replace")
        return ClientError(f"handshake refused: HTTP {exc.status_code} {body}")
    return exc


async def _open_stream(
    url: str, timeout_s: float
) -> trio.SocketStream | trio.SSLStream[trio.SocketStream]:
    parts = urlsplit(url)
    if parts.scheme not in ("ws", "wss") or not parts.hostname:
        raise ClientError(f"not a ws:// or wss:// URL: {url!r}")
    port = parts.port or (443 if parts.scheme == "wss" else 80)
    try:
        with trio.fail_after(timeout_s):
            if parts.scheme == "wss":
                return await trio.open_ssl_over_tcp_stream(
                    parts.hostname, port, ssl_context=ssl.create_default_context()
                )
            return await trio.open_tcp_stream(parts.hostname, port)
    except (OSError, trio.TooSlowError) as exc:
        raise ClientError(f"cannot connect to {url}: {exc!r}") from None


async def _handshake(
    nursery: trio.Nursery,
    stream: trio.SocketStream | trio.SSLStream[trio.SocketStream],
    url: str,
    token: str | None,
) -> trio_websocket.WebSocketConnection:
    parts = urlsplit(url)
    resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    headers = [(b"Authorization", f"Bearer {token}".encode())] if token else None
    try:
        return await trio_websocket.wrap_client_stream(
            nursery,
            stream,
            parts.netloc,
            resource,
            subprotocols=[SUBPROTOCOL],
            extra_headers=headers,
        )
    except trio_websocket.ConnectionRejected as exc:
        body = (exc.body or b"").decode("utf-8", "replace")
        raise ClientError(f"handshake refused: HTTP {exc.status_code} {body}") from None
    except trio_websocket.HandshakeError as exc:
        raise ClientError(f"handshake with {url} failed: {exc!r}") from None


async def _join(
    ws: trio_websocket.WebSocketConnection, name: str, match_id: int | None, send_rate_hz: int
) -> protocol.Welcome:
    join = protocol.Join(name=name, match_id=match_id, send_rate_hz=send_rate_hz)
    try:
        await ws.send_message(protocol.encode(join))
        data = await ws.get_message()
    except trio_websocket.ConnectionClosed as exc:
        code = exc.reason.code if exc.reason else None
        reason = (exc.reason.reason or "") if exc.reason else ""
        raise ClientError(f"join refused: {code} {reason}", code) from None
    if isinstance(data, str):
        raise ClientError("the server sent a text frame")
    message = protocol.decode_server_message(data)
    if not isinstance(message, protocol.Welcome):
        raise ClientError(f"expected WELCOME, got {type(message).__name__}")
    return message
