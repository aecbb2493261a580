"""The socket edge over real loopback TCP: protocol errors, closing, slow clients, echo.

These speak raw bytes (hand-masked frames) so they can send what a WebSocket
library would refuse to, and watch exactly what the server writes back.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import pytest
import trio

from clients.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    FrameReader,
    check_handshake_response,
    close_payload,
    handshake_request,
    mask_frame,
)
from gameserver import protocol
from gameserver.codes import SUBPROTOCOL, MessageType
from gameserver.config import ServerConfig
from gameserver.race import RaceGame
from gameserver.server import Server

CONFIG = ServerConfig(
    port=0,
    track="circle",
    laps=1000,
    lobby_timeout_s=0.2,
    countdown_s=0.1,
    min_players=1,
    fill_with_ai=False,
    database=None,
    slow_client_timeout_s=1.0,
    send_buffer_bytes=4096,
    echo_path="/echo",
)
STATE_OR_EVENT = (MessageType.SNAPSHOT, MessageType.DELTA, MessageType.EVENT)
#: RFC 6455 close semantics: the TCP connection must be gone this soon after a close.
CLOSE_BOUND_S = 2.5


_OPEN: list[trio.SocketStream] = []


class RawClient:
    """A WebSocket client that sends whatever bytes it is told to."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        _OPEN.append(stream)
        self.reader = FrameReader()
        self.frames: list[tuple[int, bytes]] = []
        self.eof = False

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def send_message(self, message: protocol.ClientMessage) -> None:
        await self.send(mask_frame(OP_BINARY, protocol.encode(message)))

    async def next_frame(self) -> tuple[int, bytes]:
        """The next frame; (-1, b"") once the server closed the TCP connection."""
        while not self.frames:
            data = await self.stream.receive_some(65536)
            if not data:
                self.eof = True
                return -1, b""
            self.frames += self.reader.feed(data)
        return self.frames.pop(0)

    async def until(self, opcode: int) -> bytes:
        while True:
            got, payload = await self.next_frame()
            if got == opcode:
                return payload
            if got == -1:
                raise AssertionError(f"connection closed before opcode {opcode:#x}")

    async def wait_eof(self) -> list[int]:
        """Read until the server drops the connection; the opcodes seen on the way."""
        seen: list[int] = []
        while True:
            opcode, _ = await self.next_frame()
            if opcode == -1:
                return seen
            seen.append(opcode)


async def connect(port: int, path: str = "/", subprotocol: str = SUBPROTOCOL) -> RawClient:
    stream = await trio.open_tcp_stream("127.0.0.1", port)
    _OPEN.append(stream)
    request, accept = handshake_request("127.0.0.1", path, subprotocol)
    await stream.send_all(request)
    head = b""
    while b"\r\n\r\n" not in head:
        head += await stream.receive_some(1)
    check_handshake_response(head, accept)
    return RawClient(stream)


async def joined(port: int, name: str = "p") -> RawClient:
    client = await connect(port)
    await client.send_message(protocol.Join(name=name))
    payload = await client.until(OP_BINARY)
    assert protocol.peek_type(payload) == MessageType.WELCOME
    return client


@asynccontextmanager
async def serving(**changes: object) -> AsyncIterator[Server]:
    server = Server(CONFIG.replace(**changes), RaceGame(tick_rate_hz=60, slots=8), seed=1)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        try:
            yield server
        finally:
            nursery.cancel_scope.cancel()
            while _OPEN:
                await _OPEN.pop().aclose()


async def until_no_players(server: Server) -> None:
    with trio.fail_after(2):
        while True:
            if not server.statistics().players:
                return
            await trio.sleep(0.01)


async def close_code_of(client: RawClient) -> int:
    code, _ = close_payload(await client.until(OP_CLOSE))
    return code


@pytest.mark.parametrize(
    ("bad", "code"),
    [
        (bytes((0x82, 0x01)) + b"x", 1002),  # not masked
        (mask_frame(OP_BINARY | 0x40, b"x"), 1002),  # reserved bit
        (mask_frame(0x3, b""), 1002),  # unknown opcode
        (mask_frame(OP_TEXT, b"\xff\xfe"), 1007),  # not UTF-8
        (mask_frame(OP_TEXT, b"hello"), 1003),  # text: the protocol is binary
        (mask_frame(OP_BINARY, b"\x00" * 5000), 1009),  # over max_message_bytes
        (mask_frame(OP_BINARY, b"\xc1"), 1007),  # not msgpack
    ],
)
async def test_a_bad_frame_gets_its_close_code_and_the_tcp_connection_ends_within_2s(
    bad: bytes, code: int
) -> None:
    async with serving() as server:
        bystander = await joined(server.port or 0, "bystander")
        victim = await joined(server.port or 0, "victim")
        await victim.send(bad)
        with trio.fail_after(CLOSE_BOUND_S):
            assert await close_code_of(victim) == code
            # The client never answers the Close: the server still drops TCP in time.
            await victim.wait_eof()
        with trio.fail_after(5):
            for _ in range(10):  # the other player still gets its frames
                opcode, payload = await bystander.next_frame()
                assert opcode == OP_BINARY
                assert protocol.peek_type(payload) in STATE_OR_EVENT


async def test_a_client_close_is_answered_with_the_same_code_then_tcp_closes() -> None:
    async with serving() as server:
        client = await joined(server.port or 0)
        await client.send(mask_frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye"))
        with trio.fail_after(CLOSE_BOUND_S):
            assert await close_code_of(client) == 1000
            await client.wait_eof()
        await until_no_players(server)


async def test_ping_is_answered_with_a_pong_carrying_its_payload() -> None:
    async with serving() as server:
        client = await joined(server.port or 0)
        await client.send(mask_frame(OP_PING, b"are you there"))
        with trio.fail_after(2):
            assert await client.until(OP_PONG) == b"are you there"


async def test_a_client_that_vanishes_leaves_its_match() -> None:
    async with serving() as server:
        client = await joined(server.port or 0)
        assert server.statistics().players == 1
        await client.stream.aclose()
        await until_no_players(server)
        assert server.close_codes.get(1006) == 1


async def test_a_stalled_client_is_dropped_and_never_holds_up_the_others() -> None:
    async with serving() as server:
        port = server.port or 0
        healthy = await joined(port, "healthy")
        stalled_sock = socket.socket()
        stalled_sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        stalled = RawClient(trio.SocketStream(trio.socket.from_stdlib_socket(stalled_sock)))
        await stalled.stream.socket.connect(("127.0.0.1", port))
        request, accept = handshake_request("127.0.0.1", "/", SUBPROTOCOL)
        await stalled.send(request)
        head = b""
        while b"\r\n\r\n" not in head:
            head += await stalled.stream.receive_some(1)
        check_handshake_response(head, accept)
        # Fill the stalled client's grid with pings the server must answer, and never read.
        await stalled.send_message(protocol.Join(name="stalled"))
        for _ in range(2000):
            await stalled.send(mask_frame(OP_PING, b"x" * 125))
        start = trio.current_time()
        frames = 0
        with trio.fail_after(10):
            while server.close_codes.get(4003) is None:
                opcode, _ = await healthy.next_frame()
                frames += opcode == OP_BINARY
        elapsed = trio.current_time() - start
        # The healthy client kept receiving about one frame per tick meanwhile.
        assert frames >= 0.8 * elapsed * 60
        assert elapsed < 5


async def test_the_echo_route_echoes_text_binary_and_large_fragmented_messages() -> None:
    async with serving() as server:
        client = await connect(server.port or 0, "/echo", subprotocol="anything")
        await client.send(mask_frame(OP_TEXT, "héllo".encode()))
        await client.send(mask_frame(OP_BINARY, b"\x00\x01"))
        big = bytes(range(256)) * 4096  # 1 MiB, in two fragments
        first = bytearray(mask_frame(OP_BINARY, big[:1000]))
        first[0] &= 0x7F
        await client.send(bytes(first) + mask_frame(0x0, big[1000:]))
        with trio.fail_after(10):
            assert await client.next_frame() == (OP_TEXT, "héllo".encode())
            assert await client.next_frame() == (OP_BINARY, b"\x00\x01")
            assert await client.next_frame() == (OP_BINARY, big)


async def test_a_handshake_without_the_subprotocol_is_refused_with_400() -> None:
    async with serving() as server:
        stream = await trio.open_tcp_stream("127.0.0.1", server.port or 0)
        _OPEN.append(stream)
        request, _ = handshake_request("127.0.0.1", "/", "other.v9")
        await stream.send_all(request)
        response = b""
        with trio.fail_after(2):
            while chunk := await stream.receive_some(4096):
                response += chunk
        assert response.startswith(b"HTTP/1.1 400 ")
        assert SUBPROTOCOL.encode() in response
        assert server.connections_rejected == 1
