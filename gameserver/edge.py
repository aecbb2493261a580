"""The server's default WebSocket edge: non-blocking writes from the tick loop, one reader task.

Per client per tick the tick loop does one thing: frame the message
(:func:`gameserver.websocket.frame_header`) and hand it to the kernel with a
non-blocking ``send``. Only when the kernel takes less than everything (a
partial write, ``EAGAIN``) does that connection's own task wake up and wait
until the socket is writable, with a timeout that closes a client who stopped
reading. While it is blocked the connection keeps at most one unsent state
frame, replaced by every newer one, so a slow client skips to a fresh delta
and never accumulates stale frames; must-arrive messages queue behind the
bytes in flight. Control frames (pong, close) take the same path, so bytes of
two frames never interleave.

Inbound, one task waits on a single ``epoll`` instance holding every client
socket, reads whatever is ready and parses it with the strict frame parser;
no reader task per connection.

Trio stays in charge of everything that is not per tick: accepting, the
opening handshake (each in its own task, bounded by the join timeout), the
slow-client and closing timeouts, and shutdown. Every connection's task lives
in the edge's nursery. Closing always sends a Close frame (unless the peer is
gone), half-closes, reads until the peer closes, and drops the TCP connection
at the latest ``CLOSE_TIMEOUT_S`` after the close began.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import select
import socket
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

import msgpack
import trio

from .codes import CloseCode
from .errors import PeerError
from .transport import CLOSE_TIMEOUT_S, ConnectionStatistics
from .websocket import (
    BINARY_HEADS,
    OP_CLOSE,
    OP_PONG,
    OP_TEXT,
    CloseReceived,
    FrameParser,
    HandshakeError,
    HandshakeRequest,
    Message,
    Ping,
    WebSocketError,
    accept_response,
    close_frame,
    encode_frame,
    frame_header,
    parse_handshake,
    reject_response,
    split_request_head,
)

log = logging.getLogger("gameserver.edge")

#: Bytes read from a socket per readiness event.
RECV_BYTES = 65536
#: How often join and idle deadlines are checked.
SWEEP_S = 0.25
#: Largest message on an echo route (the Autobahn suite sends 16 MiB).
ECHO_MAX_MESSAGE_BYTES = 16 * 1024 * 1024


class Handler(Protocol):
    """What the edge needs from the server; every call is synchronous and quick."""

    def accept(self, request: HandshakeRequest) -> tuple[int, str] | str | None:
        """``None`` to accept with no subprotocol, a subprotocol to accept with, or
        ``(HTTP status, reason)`` to refuse."""
        ...

    def opened(self, connection: SocketConnection) -> None: ...

    def received(self, connection: SocketConnection, data: bytes) -> None:
        """A binary message; raises :class:`PeerError` to close the connection."""
        ...

    def closed(self, connection: SocketConnection) -> None: ...

    def idle(self, connection: SocketConnection, now: float) -> PeerError | None:
        """Whether ``connection`` has waited too long (no JOIN, nothing received)."""
        ...


@dataclass(frozen=True, slots=True)
class EdgeStatistics:
    connections: int
    handshakes_failed: int
    partial_writes: int
    bytes_received: int


class SocketConnection:
    """One client's WebSocket on a raw non-blocking socket (a :class:`transport.Connection`)."""

    def __init__(
        self,
        sock: socket.socket,
        remote: str,
        *,
        max_message_bytes: int,
        slow_client_timeout_s: float,
        max_queued_messages: int,
        opened_at: float,
        echo: bool = False,
    ) -> None:
        self.sock = sock
        self.fd = sock.fileno()
        self._remote = remote
        self.parser = FrameParser(max_message_bytes)
        self.echo = echo
        self.opened_at = opened_at
        self.last_received = opened_at
        self._slow_timeout_s = slow_client_timeout_s
        self._max_queued = max_queued_messages
        # Bytes of the frame in flight that the kernel has not taken yet.
        self._out: memoryview | None = None
        self._queue: deque[bytes] = deque()  # framed must-arrive messages
        self._frame: bytes | None = None  # the newest state frame, not started
        self._wake = trio.Event()
        self._close: tuple[int | None, str] | None = None
        self._close_written = False
        self.peer_closed = False  # EOF or a reset: nothing more can be read
        self.close_received: CloseReceived | None = None
        self.close_code: int | None = None
        self.close_reason = ""
        self._frames_sent = 0
        self._frames_replaced = 0
        self._messages_sent = 0
        self._bytes_sent = 0
        self.partial_writes = 0

    # ---------------------------------------------------------------- Connection
    @property
    def remote(self) -> str:
        return self._remote

    @property
    def closing(self) -> bool:
        return self._close is not None

    def send_frame_nowait(self, data: bytes) -> None:
        if self._close is not None:
            return
        if self._out is not None or self._queue:
            if self._frame is not None:
                self._frames_replaced += 1
            self._frame = data
            return
        # _write inlined: this runs once per client per tick.
        self._frames_sent += 1
        size = len(data)
        framed = (BINARY_HEADS[size] if size < 126 else frame_header(size)) + data
        try:
            sent = self.sock.send(framed)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost()
            return
        self._bytes_sent += sent
        if sent < len(framed):
            self.partial_writes += 1
            self._out = memoryview(framed)[sent:]
            self._wake.set()

    def send_message_nowait(self, data: bytes) -> None:
        if self._close is not None:
            return
        self._messages_sent += 1
        self._send_framed(encode_frame(data))

    def send_text_nowait(self, text: str) -> None:
        if self._close is None:
            self._send_framed(encode_frame(text.encode(), OP_TEXT))

    def close_nowait(self, code: int, reason: str) -> None:
        """Send Close(code, reason) after the queued messages, then end the connection."""
        self._start_close(code, reason)

    def statistics(self) -> ConnectionStatistics:
        return ConnectionStatistics(
            messages_queued=len(self._queue),
            frames_sent=self._frames_sent,
            frames_replaced=self._frames_replaced,
            messages_sent=self._messages_sent,
            bytes_sent=self._bytes_sent,
            close_code=self.close_code,
        )

    # ---------------------------------------------------------------- writing
    def _send_framed(self, framed: bytes) -> None:
        if self._out is None and not self._queue and self._frame is None:
            self._write(framed)
            return
        if len(self._queue) >= self._max_queued:
            self._frame = None
            self._queue.clear()
            self._abort(CloseCode.TOO_SLOW, "too many messages waiting to be sent")
            return
        self._queue.append(framed)

    def _write(self, data: bytes) -> None:
        """Hand ``data`` to the kernel; what it does not take waits for the writer task."""
        try:
            sent = self.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._lost()
            return
        self._bytes_sent += sent
        if sent < len(data):
            self.partial_writes += 1
            self._out = memoryview(data)[sent:]
            self._wake.set()

    def _next_pending(self) -> memoryview | None:
        if self._out is not None:
            return self._out
        if self._queue:
            return memoryview(self._queue.popleft())
        if self._frame is not None:
            frame, self._frame = self._frame, None
            self._frames_sent += 1
            return memoryview(frame_header(len(frame)) + frame)
        return None

    def _flush(self) -> bool:
        """Write what is pending until the kernel refuses; True when all is written."""
        while True:
            pending = self._next_pending()
            if pending is None:
                self._out = None
                return True
            try:
                sent = self.sock.send(pending)
            except BlockingIOError:
                sent = 0
            except OSError:
                self._lost()
                return True
            self._bytes_sent += sent
            if sent < len(pending):
                self._out = pending[sent:]
                return False
            self._out = None

    @property
    def _pending(self) -> bool:
        return self._out is not None or bool(self._queue) or self._frame is not None

    # ---------------------------------------------------------------- closing
    def _start_close(self, code: int | None, reason: str) -> None:
        if self._close is not None:
            return
        self._close = (code, reason)
        self._frame = None
        if code is not None:
            self.close_code, self.close_reason = code, reason
        if not self.peer_closed:
            self._send_framed(close_frame(code, reason))
        self._wake.set()

    def _abort(self, code: int, reason: str) -> None:
        """End without a Close frame (the stream may be mid-frame)."""
        if self.close_code is None or self._close is None:
            self.close_code, self.close_reason = code, reason
        self._close = (code, reason)
        self._out = None
        self._queue.clear()
        self._frame = None
        self.peer_closed = True
        self._wake.set()

    def _lost(self) -> None:
        """The peer reset the connection, or it is otherwise unusable."""
        self._out = None
        self._queue.clear()
        self._frame = None
        self.peer_closed = True
        if self._close is None:
            self._close = (1006, "connection lost")
            self.close_code, self.close_reason = 1006, "connection lost"
        self._wake.set()

    def detach(self) -> None:
        """Stop serving this connection without closing it: its socket was handed
        to another process, which now owns the stream (no Close, no half-close)."""
        self._out = None
        self._queue.clear()
        self._frame = None
        self.peer_closed = True
        self.parser.closed = True
        if self._close is None:
            self._close = (None, "handed over")
        self._wake.set()

    def received_close(self, event: CloseReceived) -> None:
        """The peer's Close: answer it (echoing its code) unless already closing."""
        self.close_received = event
        if self._close is None:
            self._start_close(event.code, "")
            if event.code is not None:
                self.close_code, self.close_reason = event.code, event.reason
        self._wake.set()

    def received_eof(self) -> None:
        self.peer_closed = True
        if self._close is None:
            self._close = (1006, "connection lost")
            self.close_code = 1006
            self.close_reason = "closed without a Close frame"
        self._wake.set()

    async def run(self) -> None:
        """Write what the tick loop could not, then carry out the close; returns when done."""
        while self._close is None or (self._pending and not self.peer_closed):
            await self._wake.wait()
            self._wake = trio.Event()
            if self._pending and not self.peer_closed and not self._flush():
                await self._wait_writable()
        deadline = trio.current_time() + CLOSE_TIMEOUT_S
        with trio.move_on_at(deadline):
            while self._pending and not self.peer_closed:
                if not self._flush():
                    await trio.lowlevel.wait_writable(self.sock)
        if not self.peer_closed:
            # Half-close, then read (in the edge's reader) until the peer closes.
            try:
                self.sock.shutdown(socket.SHUT_WR)
            except OSError:
                self.peer_closed = True
            with trio.move_on_at(deadline):
                while not self.peer_closed:
                    await self._wake.wait()
                    self._wake = trio.Event()

    async def _wait_writable(self) -> None:
        """Wait (bounded) until the kernel takes more; a client that never reads is dropped."""
        with trio.move_on_after(self._slow_timeout_s):
            while self._pending and not self.peer_closed:
                await trio.lowlevel.wait_writable(self.sock)
                if self._flush():
                    return
            return
        self._abort(CloseCode.TOO_SLOW, "client too slow")


class SocketEdge:
    """Accepts WebSocket clients on a listening socket and moves their bytes."""

    def __init__(
        self,
        handler: Handler,
        *,
        max_message_bytes: int,
        handshake_timeout_s: float,
        slow_client_timeout_s: float,
        max_queued_messages: int,
        send_buffer_bytes: int | None = None,
        echo_path: str | None = None,
        now: Callable[[], float] = trio.current_time,
    ) -> None:
        self.handler = handler
        self.max_message_bytes = max_message_bytes
        self.handshake_timeout_s = handshake_timeout_s
        self.slow_client_timeout_s = slow_client_timeout_s
        self.max_queued_messages = max_queued_messages
        self.send_buffer_bytes = send_buffer_bytes
        self.echo_path = echo_path
        self._now = now
        self._epoll = select.epoll()
        self._by_fd: dict[int, SocketConnection] = {}
        self.handshakes_failed = 0
        self.bytes_received = 0
        self.partial_writes = 0

    def statistics(self) -> EdgeStatistics:
        partial = self.partial_writes + sum(c.partial_writes for c in self._by_fd.values())
        return EdgeStatistics(
            connections=len(self._by_fd),
            handshakes_failed=self.handshakes_failed,
            partial_writes=partial,
            bytes_received=self.bytes_received,
        )

    # ---------------------------------------------------------------- running
    async def serve(
        self,
        host: str,
        port: int,
        *,
        task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Listen on ``host:port`` (0 picks a port) until cancelled; starts with the port."""
        listener = socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET)
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind((host, port))
        listener.listen(1024)
        listener.setblocking(False)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_all)
                nursery.start_soon(self._sweep)
                task_status.started(listener.getsockname()[1])
                await self.accept_from(listener, nursery)
        finally:
            trio.lowlevel.notify_closing(listener)
            listener.close()
            self._epoll.close()

    async def serve_handoffs(
        self,
        channel: socket.socket,
        *,
        on_closed: Callable[[], None] | None = None,
        task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        """Serve connections another process accepted and passed over ``channel``.

        ``on_closed`` is called when the other process closes the channel (it
        stopped or died): no new client will come.

        ``channel`` is a ``SOCK_SEQPACKET`` Unix socket; each packet carries one
        client socket (SCM_RIGHTS) and :func:`encode_handoff` bytes: the peer's
        address, the first message (already parsed there) and any unparsed bytes.
        """
        channel.setblocking(False)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(self._read_all)
                nursery.start_soon(self._sweep)
                task_status.started()
                while True:
                    await trio.lowlevel.wait_readable(channel)
                    try:
                        packet, fds, _, _ = socket.recv_fds(channel, 65536, 1)
                    except BlockingIOError:
                        continue
                    if not packet and not fds:
                        log.info("the front process closed the hand-off channel")
                        if on_closed is not None:
                            on_closed()
                        await trio.sleep_forever()  # the adopted connections carry on
                    for fd in fds[1:]:
                        os.close(fd)
                    if not fds:
                        continue
                    remote, first, rest = decode_handoff(packet)
                    sock = socket.socket(fileno=fds[0])
                    nursery.start_soon(self.adopt, sock, remote, first, rest)
        finally:
            trio.lowlevel.notify_closing(channel)
            channel.close()
            self._epoll.close()

    async def adopt(self, sock: socket.socket, remote: str, first: bytes, rest: bytes) -> None:
        """Serve an established WebSocket whose first message was read elsewhere."""
        sock.setblocking(False)
        now = self._now()
        connection = SocketConnection(
            sock,
            remote,
            max_message_bytes=self.max_message_bytes,
            slow_client_timeout_s=self.slow_client_timeout_s,
            max_queued_messages=self.max_queued_messages,
            opened_at=now,
        )
        self._by_fd[connection.fd] = connection
        self._epoll.register(connection.fd, select.EPOLLIN | select.EPOLLRDHUP)
        try:
            self.handler.opened(connection)
            self._message(connection, first)
            if rest and not connection.closing:
                self._received(connection, rest, now)
            await connection.run()
        finally:
            self._forget(connection)

    async def accept_from(self, listener: socket.socket, nursery: trio.Nursery) -> None:
        """Accept clients from ``listener`` forever, each served in ``nursery``."""
        while True:
            await trio.lowlevel.wait_readable(listener)
            while True:
                try:
                    sock, address = listener.accept()
                except BlockingIOError:
                    break
                except OSError as exc:
                    if exc.errno in (errno.EMFILE, errno.ENFILE):
                        log.warning("out of file descriptors; pausing accept")
                        await trio.sleep(0.1)
                    break
                nursery.start_soon(self.serve_socket, sock, f"{address[0]}:{address[1]}")

    async def serve_socket(self, sock: socket.socket, remote: str, data: bytes = b"") -> None:
        """Run one client from its TCP connection: handshake, then bytes until closed.

        ``data`` is anything already read from the socket.
        """
        sock.setblocking(False)
        try:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            connection = await self._handshake(sock, remote, data)
        except OSError:
            connection = None
        if connection is None:
            self.handshakes_failed += 1
            trio.lowlevel.notify_closing(sock)
            sock.close()
            return
        await self.run_connection(connection)

    async def run_connection(self, connection: SocketConnection, data: bytes = b"") -> None:
        """Serve an established WebSocket until it is closed.

        ``data`` are bytes that followed the handshake (a handed-over connection).
        """
        self._by_fd[connection.fd] = connection
        self._epoll.register(connection.fd, select.EPOLLIN | select.EPOLLRDHUP)
        try:
            if not connection.echo:
                self.handler.opened(connection)
            if data:
                self._received(connection, data, self._now())
            await connection.run()
        finally:
            self._forget(connection)

    def _forget(self, connection: SocketConnection) -> None:
        """The connection is over: stop reading it, tell the handler, close the socket."""
        del self._by_fd[connection.fd]
        with contextlib.suppress(OSError, ValueError):
            self._epoll.unregister(connection.fd)
        self.partial_writes += connection.partial_writes
        if not connection.echo:
            try:
                self.handler.closed(connection)
            except Exception:
                log.exception("closing %s failed", connection.remote)
        trio.lowlevel.notify_closing(connection.sock)
        connection.sock.close()

    async def _handshake(
        self, sock: socket.socket, remote: str, data: bytes
    ) -> SocketConnection | None:
        buffer = bytearray(data)
        opened_at = self._now()
        with trio.move_on_after(self.handshake_timeout_s):
            try:
                while (split := split_request_head(buffer)) is None:
                    await trio.lowlevel.wait_readable(sock)
                    chunk = sock.recv(RECV_BYTES)
                    if not chunk:
                        return None
                    buffer += chunk
                head, rest = split
                request = parse_handshake(head)
                echo = self.echo_path is not None and request.path.split("?")[0] == self.echo_path
                if echo:
                    subprotocol: str | None = None
                else:
                    verdict = self.handler.accept(request)
                    if isinstance(verdict, tuple):
                        raise HandshakeError(*verdict)
                    subprotocol = verdict
                if self.send_buffer_bytes and not echo:
                    # Small, so a client that stops reading blocks a write soon. Not
                    # on the echo route: its 16 MiB messages need the kernel's own
                    # sizing (a buffer under one loopback segment delays every ACK).
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, self.send_buffer_bytes)
            except HandshakeError as exc:
                await self._send_all(sock, reject_response(exc.status, exc.reason, exc.headers))
                return None
            await self._send_all(sock, accept_response(request, subprotocol))
            connection = SocketConnection(
                sock,
                remote,
                max_message_bytes=ECHO_MAX_MESSAGE_BYTES if echo else self.max_message_bytes,
                slow_client_timeout_s=self.slow_client_timeout_s,
                max_queued_messages=self.max_queued_messages,
                opened_at=opened_at,
                echo=echo,
            )
            if rest:
                self._received(connection, rest, self._now())
            return connection
        return None

    @staticmethod
    async def _send_all(sock: socket.socket, data: bytes) -> None:
        view = memoryview(data)
        while view:
            try:
                view = view[sock.send(view) :]
            except BlockingIOError:
                await trio.lowlevel.wait_writable(sock)

    # ---------------------------------------------------------------- reading
    async def _read_all(self) -> None:
        """The one reader: wait until any client socket is readable, drain them all."""
        poll = self._epoll.poll
        by_fd = self._by_fd
        while True:
            await trio.lowlevel.wait_readable(self._epoll)
            now = self._now()
            for fd, _ in poll(0, 4096):
                connection = by_fd.get(fd)
                if connection is None:
                    continue
                try:
                    data = connection.sock.recv(RECV_BYTES)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if data:
                    self.bytes_received += len(data)
                    self._received(connection, data, now)
                else:
                    self._epoll.unregister(fd)
                    connection.received_eof()

    def _received(self, connection: SocketConnection, data: bytes, now: float) -> None:
        """Parse and act on bytes from ``connection``; a violation closes only it."""
        connection.last_received = now
        error: WebSocketError | None = None
        try:
            events = connection.parser.feed(data)
        except WebSocketError as exc:
            # What came before the violation is answered first, as it would be
            # had the bad frame arrived in a later read.
            events, error = exc.events, exc
        for event in events:
            if connection.closing and not isinstance(event, CloseReceived):
                continue  # after our Close, only the peer's Close matters
            if isinstance(event, Message):
                self._message(connection, event.data)
            elif isinstance(event, Ping):
                connection._send_framed(encode_frame(event.payload, OP_PONG))
            elif isinstance(event, CloseReceived):
                connection.received_close(event)
        if error is not None:
            connection.close_nowait(error.close_code, error.reason)

    def _message(self, connection: SocketConnection, data: bytes | str) -> None:
        if connection.echo:
            if isinstance(data, str):
                connection.send_text_nowait(data)
            else:
                connection.send_message_nowait(data)
            return
        if isinstance(data, str):
            connection.close_nowait(
                CloseCode.UNSUPPORTED_DATA, "text frames are not part of the protocol"
            )
            return
        try:
            self.handler.received(connection, data)
        except PeerError as exc:
            log.info("closing %s: %s (%d)", connection.remote, exc.reason, exc.close_code)
            connection.close_nowait(exc.close_code, exc.reason)
        except Exception:
            log.exception("internal error serving %s", connection.remote)
            connection.close_nowait(CloseCode.INTERNAL_ERROR, "internal error")

    async def _sweep(self) -> None:
        """Close connections whose join or idle deadline has passed."""
        while True:
            await trio.sleep(SWEEP_S)
            now = self._now()
            for connection in list(self._by_fd.values()):
                if connection.closing or connection.echo:
                    continue
                error = self.handler.idle(connection, now)
                if error is not None:
                    connection.close_nowait(error.close_code, error.reason)

    def close_all(self, code: int, reason: str) -> None:
        for connection in list(self._by_fd.values()):
            connection.close_nowait(code, reason)


def encode_handoff(remote: str, first: bytes, rest: bytes) -> bytes:
    """What travels with a handed-over socket: peer address, first message, unparsed bytes."""
    return msgpack.packb([remote, first, rest], use_bin_type=True)  # type: ignore[no-any-return]


def decode_handoff(packet: bytes) -> tuple[str, bytes, bytes]:
    remote, first, rest = msgpack.unpackb(packet, raw=False)
    return str(remote), bytes(first), bytes(rest)


__all__ = ["OP_CLOSE", "SocketConnection", "SocketEdge", "decode_handoff", "encode_handoff"]
