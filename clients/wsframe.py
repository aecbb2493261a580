"""Minimal WebSocket client framing (RFC 6455) for the load generator.

A load generator on two cores cannot afford a task and a full WebSocket
library per connection: it reads every socket from one epoll loop and needs
only to frame its small binary messages and split what the server sends into
frames. This module is that, as pure functions over bytes: the opening
handshake, masked client frames, and an incremental parser of server frames.
"""

from __future__ import annotations

import base64
import os
import struct
from dataclasses import dataclass

# The opcodes are re-exported: the load generator and tests take them from here.
from gameserver.websocket import OP_BINARY as OP_BINARY
from gameserver.websocket import OP_CLOSE as OP_CLOSE
from gameserver.websocket import OP_CONTINUATION, accept_key
from gameserver.websocket import OP_PING as OP_PING
from gameserver.websocket import OP_PONG as OP_PONG
from gameserver.websocket import OP_TEXT as OP_TEXT


class FrameError(Exception):
    """The server sent something a client must not accept."""


def handshake_request(host: str, resource: str, subprotocol: str) -> tuple[bytes, bytes]:
    """``(request bytes, expected Sec-WebSocket-Accept)`` for an opening handshake."""
    key = base64.b64encode(os.urandom(16))
    request = (
        f"GET {resource} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: {subprotocol}\r\n\r\n"
    ).encode()
    accept = accept_key(key)
    return request, accept


def check_handshake_response(head: bytes, accept: bytes) -> None:
    """Raise :class:`FrameError` unless ``head`` is a valid 101 response."""
    lines = head.split(b"\r\n")
    status = lines[0].split(b" ", 2)
    if len(status) < 2 or status[1] != b"101":
        raise FrameError(f"handshake refused: {lines[0].decode('latin-1')}")
    headers = {}
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers[name.strip().lower()] = value.strip()
    if headers.get(b"sec-websocket-accept") != accept:
        raise FrameError("handshake: wrong Sec-WebSocket-Accept")


def mask_frame(opcode: int, payload: bytes, mask: bytes | None = None) -> bytes:
    """A final client frame: masked, as RFC 6455 requires of clients."""
    key = os.urandom(4) if mask is None else mask
    length = len(payload)
    if length < 126:
        head = struct.pack("!BB", 0x80 | opcode, 0x80 | length)
    elif length < 65536:
        head = struct.pack("!BBH", 0x80 | opcode, 0x80 | 126, length)
    else:
        head = struct.pack("!BBQ", 0x80 | opcode, 0x80 | 127, length)
    if length == 0:
        return head + key
    repeated = (key * (length // 4 + 1))[:length]
    masked = int.from_bytes(payload, "little") ^ int.from_bytes(repeated, "little")
    return head + key + masked.to_bytes(length, "little")


def close_payload(payload: bytes) -> tuple[int, str]:
    """Code and reason of a Close frame's payload (1005 when it carries none)."""
    if len(payload) < 2:
        return 1005, ""
    return struct.unpack("!H", payload[:2])[0], payload[2:].decode("utf-8", "replace")


@dataclass(slots=True)
class FrameReader:
    """Splits the server's byte stream into ``(opcode, payload)`` frames.

    Server frames are never masked; fragmented messages are reassembled.
    ``idle`` is True when no partial frame nor fragmented message is held.
    """

    buffer: bytearray
    idle: bool
    _fragments: list[bytes]
    _fragment_opcode: int

    def __init__(self) -> None:
        self.buffer = bytearray()
        self.idle = True
        self._fragments = []
        self._fragment_opcode = 0

    def feed(self, data: bytes) -> list[tuple[int, bytes]]:
        """Add received bytes; return the complete messages and control frames."""
        buf = self.buffer
        buf += data
        out: list[tuple[int, bytes]] = []
        at = 0
        end = len(buf)
        while end - at >= 2:
            b0 = buf[at]
            b1 = buf[at + 1]
            if b1 & 0x80:
                raise FrameError("server frames must not be masked")
            if b0 & 0x70:
                raise FrameError("reserved bits set")
            length = b1 & 0x7F
            head = 2
            if length == 126:
                if end - at < 4:
                    break
                length = (buf[at + 2] << 8) | buf[at + 3]
                head = 4
            elif length == 127:
                if end - at < 10:
                    break
                length = int.from_bytes(buf[at + 2 : at + 10], "big")
                head = 10
            if end - at < head + length:
                break
            payload = bytes(buf[at + head : at + head + length])
            at += head + length
            opcode = b0 & 0x0F
            final = bool(b0 & 0x80)
            if opcode >= 0x8:
                out.append((opcode, payload))
            elif opcode == OP_CONTINUATION:
                self._fragments.append(payload)
                if final:
                    out.append((self._fragment_opcode, b"".join(self._fragments)))
                    self._fragments = []
            elif final:
                out.append((opcode, payload))
            else:
                self._fragment_opcode = opcode
                self._fragments = [payload]
        if at:
            del buf[:at]
        self.idle = not buf and not self._fragments
        return out
