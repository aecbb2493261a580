"""The WebSocket edge, behind a narrow interface.

The server needs only this from a WebSocket library: accept a connection
(after an auth hook), and per connection send a frame *without waiting*,
receive messages, and close with a code and reason. :class:`Connection` is that
interface; :class:`TrioWebSocketConnection` implements it on trio-websocket.
Nothing else in the package imports trio-websocket's connection type, so the
per-client hot path can be replaced without touching the server.

Sending never blocks the caller. Each connection has one writer task that
sends, in order, every queued must-arrive message, then the newest state frame
only: a frame not yet sent is replaced by a newer one, so a slow client gets
the latest state and never a growing backlog. A client whose socket accepts
nothing for ``slow_client_timeout_s`` is dropped.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol
from urllib.parse import unquote

import trio
import trio_websocket

from .codes import CloseCode
from .errors import ProtocolError

#: Seconds given to the closing handshake before the TCP connection is dropped.
CLOSE_TIMEOUT_S = 2.0


class ConnectionClosed(Exception):
    """The connection is closed; ``code`` and ``reason`` are what ended it."""

    def __init__(self, code: int, reason: str = "") -> None:
        super().__init__(code, reason)
        self.code = code
        self.reason = reason


@dataclass(frozen=True, slots=True)
class ConnectionStatistics:
    messages_queued: int
    frames_sent: int
    frames_replaced: int
    messages_sent: int
    bytes_sent: int
    close_code: int | None


class HandshakeInfo(Protocol):
    """An opening handshake as the auth hook sees it, whichever edge received it."""

    @property
    def path(self) -> str: ...

    @property
    def headers(self) -> Sequence[tuple[bytes, bytes]]: ...

    @property
    def proposed_subprotocols(self) -> Sequence[str]: ...


class Connection(Protocol):
    """One client's connection, as the server uses it."""

    @property
    def remote(self) -> str: ...

    @property
    def closing(self) -> bool:
        """A close has begun; nothing more will be sent."""
        ...

    def send_frame_nowait(self, data: bytes) -> None:
        """Send a state frame; replaces any frame that has not left yet."""
        ...

    def send_message_nowait(self, data: bytes) -> None:
        """Send a must-arrive message, after those already queued."""
        ...

    def close_nowait(self, code: int, reason: str) -> None:
        """Close once the queued must-arrive messages have been sent."""
        ...

    def statistics(self) -> ConnectionStatistics: ...


class PullConnection(Connection, Protocol):
    """A connection read by a task of its own, with a writer task of its own."""

    async def receive(self) -> bytes:
        """The next binary message; raises :class:`ConnectionClosed` or ``ProtocolError``."""
        ...

    async def run_writer(self) -> None:
        """The connection's writer task; returns when the connection is closed."""
        ...


class TrioWebSocketConnection:
    """:class:`Connection` on a trio-websocket ``WebSocketConnection``."""

    def __init__(
        self,
        ws: trio_websocket.WebSocketConnection,
        *,
        slow_client_timeout_s: float = 5.0,
        max_queued_messages: int = 1024,
    ) -> None:
        self._ws = ws
        self._slow_timeout_s = slow_client_timeout_s
        self._max_queued = max_queued_messages
        self._queue: deque[bytes] = deque()
        self._frame: bytes | None = None
        self._wake = trio.Event()
        self._close: tuple[int, str] | None = None
        self._frames_sent = 0
        self._frames_replaced = 0
        self._messages_sent = 0
        self._bytes_sent = 0
        self.close_code: int | None = None
        self.close_reason = ""

    @property
    def remote(self) -> str:
        remote = self._ws.remote
        if isinstance(remote, trio_websocket.Endpoint):
            return f"{remote.address}:{remote.port}"
        return str(remote)

    @property
    def closing(self) -> bool:
        return self._close is not None

    def send_frame_nowait(self, data: bytes) -> None:
        if self._close is not None:
            return
        if self._frame is not None:
            self._frames_replaced += 1
        self._frame = data
        self._wake.set()

    def send_message_nowait(self, data: bytes) -> None:
        if self._close is not None:
            return
        if len(self._queue) >= self._max_queued:
            self.close_nowait(CloseCode.TOO_SLOW, "too many messages waiting to be sent")
            return
        self._queue.append(data)
        self._wake.set()

    def close_nowait(self, code: int, reason: str) -> None:
        if self._close is None:
            self._close = (code, reason)
            self._frame = None
        self._wake.set()

    async def receive(self) -> bytes:
        try:
            message = await self._ws.get_message()
        except trio_websocket.ConnectionClosed as exc:
            why = exc.reason
            if why is None:
                raise ConnectionClosed(1006) from None
            raise ConnectionClosed(why.code, why.reason or "") from None
        if isinstance(message, str):
            raise ProtocolError(
                "text frames are not part of the protocol", CloseCode.UNSUPPORTED_DATA
            )
        return message

    async def run_writer(self) -> None:
        try:
            while True:
                await self._wake.wait()
                self._wake = trio.Event()
                while self._queue or self._frame is not None:
                    data = self._next_to_send()
                    if not await self._send(data):
                        return
                    self._bytes_sent += len(data)
                if self._close is not None:
                    code, reason = self._close
                    await self._close_gracefully(code, reason)
                    return
        except trio_websocket.ConnectionClosed:
            await self._abort()

    def _next_to_send(self) -> bytes:
        """Must-arrive messages first, in order; then the newest frame."""
        if self._queue:
            self._messages_sent += 1
            return self._queue.popleft()
        frame, self._frame = self._frame, None
        assert frame is not None
        self._frames_sent += 1
        return frame

    async def _send(self, data: bytes) -> bool:
        """Send one message; a client that takes too long is dropped (False)."""
        with trio.move_on_after(self._slow_timeout_s):
            await self._ws.send_message(data)
            return True
        # A cancelled send leaves the stream mid-frame: no Close frame can follow.
        self.close_code, self.close_reason = CloseCode.TOO_SLOW, "client too slow"
        self._close = (self.close_code, self.close_reason)
        await self._abort()
        return False

    async def _close_gracefully(self, code: int, reason: str) -> None:
        self.close_code, self.close_reason = code, reason
        with trio.move_on_after(CLOSE_TIMEOUT_S):
            await self._ws.aclose(code, reason[:120])
            return
        # The peer did not answer the closing handshake: trio-websocket closes
        # the TCP connection when its aclose is cancelled.

    async def _abort(self) -> None:
        """Drop the TCP connection at once, without a closing handshake."""
        with trio.CancelScope() as scope:
            scope.cancel()
            await self._ws.aclose(CloseCode.GOING_AWAY)

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            messages_queued=len(self._queue),
            frames_sent=self._frames_sent,
            frames_replaced=self._frames_replaced,
            messages_sent=self._messages_sent,
            bytes_sent=self._bytes_sent,
            close_code=self.close_code,
        )


def bearer_token(request: HandshakeInfo) -> str | None:
    """The token a client presented: ``Authorization: Bearer X`` or ``?token=X``."""
    for header, content in request.headers:
        if header.lower() == b"authorization" and content.lower().startswith(b"bearer "):
            return content[7:].decode("latin-1").strip()
    _, _, query = request.path.partition("?")
    for part in query.split("&"):
        key, _, value = part.partition("=")
        if key == "token":
            return unquote(value)
    return None
