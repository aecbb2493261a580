"""RFC 6455 for the server's hot path, as pure code over bytes.

The tick loop writes each client's frame with one non-blocking write, and one
task reads every client socket; neither can afford a WebSocket library's
per-message coroutine. What they need is small: the opening handshake, the
header of an unmasked server frame, and a strict incremental parser of the
masked frames a client sends. This module is exactly that, with no sockets
and no clock (like wsproto, whose role it takes after the handshake), so it is
tested without a network and checked against the Autobahn suite's cases.

Anything a client must not send raises :class:`WebSocketError` carrying the
close code RFC 6455 asks for: 1002 for a broken frame, 1007 for text that is
not UTF-8, 1009 for a message over the size limit.
"""

from __future__ import annotations

import base64
import codecs
import hashlib
import struct
from dataclasses import dataclass

import h11
import numpy as np

from .codes import CloseCode
from .errors import PeerError

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONTINUATION = 0x0
OP_TEXT = 0x1
OP_BINARY = 0x2
OP_CLOSE = 0x8
OP_PING = 0x9
OP_PONG = 0xA
_DATA_OPCODES = (OP_CONTINUATION, OP_TEXT, OP_BINARY)
_CONTROL_OPCODES = (OP_CLOSE, OP_PING, OP_PONG)

#: Close codes a peer may send (RFC 6455 section 7.4, IANA registry, 3000-4999 for
#: libraries and applications). 1005, 1006 and 1015 must never appear on the wire.
_SENDABLE_CLOSE_CODES = frozenset({1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011})
_SENDABLE_CLOSE_CODES |= frozenset({1012, 1013, 1014})

#: Largest request head accepted for the opening handshake.
MAX_HANDSHAKE_BYTES = 8192


class WebSocketError(PeerError):
    """The peer broke RFC 6455; ``close_code`` is 1002, 1007 or 1009.

    From :meth:`FrameParser.feed`, ``events`` are the events the same bytes
    completed before the violation: the peer is answered for those, then closed.
    """

    default_code = CloseCode.PROTOCOL_ERROR

    def __init__(self, reason: str, close_code: CloseCode | None = None) -> None:
        super().__init__(reason, close_code)
        self.events: list[Event] = []


class HandshakeError(Exception):
    """An opening handshake that cannot be accepted: answer ``status`` with ``reason``."""

    def __init__(self, status: int, reason: str, headers: tuple[tuple[str, str], ...] = ()):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers


# ------------------------------------------------------------------ handshake
@dataclass(frozen=True, slots=True)
class HandshakeRequest:
    """A client's opening handshake, as the auth hook and the router see it."""

    path: str
    headers: tuple[tuple[bytes, bytes], ...]
    key: bytes
    subprotocols: tuple[str, ...]

    @property
    def proposed_subprotocols(self) -> tuple[str, ...]:
        return self.subprotocols


def split_request_head(data: bytes | bytearray) -> tuple[bytes, bytes] | None:
    """``(head, the bytes after it)`` once the request head is complete, else None.

    Raises :class:`HandshakeError` (431) when the head is longer than allowed.
    """
    end = data.find(b"\r\n\r\n")
    if end < 0:
        if len(data) > MAX_HANDSHAKE_BYTES:
            raise HandshakeError(431, "request head too large")
        return None
    if end + 4 > MAX_HANDSHAKE_BYTES:
        raise HandshakeError(431, "request head too large")
    return bytes(data[: end + 4]), bytes(data[end + 4 :])


def parse_handshake(head: bytes) -> HandshakeRequest:
    """Validate an opening handshake's request head (RFC 6455 section 4.2.1)."""
    parser = h11.Connection(h11.SERVER)
    parser.receive_data(head)
    try:
        event = parser.next_event()
    except h11.RemoteProtocolError as exc:
        raise HandshakeError(400, f"malformed HTTP request: {exc}") from None
    if not isinstance(event, h11.Request):
        raise HandshakeError(400, "incomplete HTTP request")
    if event.method != b"GET":
        raise HandshakeError(405, "a WebSocket handshake is a GET")
    headers = tuple((bytes(name), bytes(value)) for name, value in event.headers)

    def tokens(name: bytes) -> set[bytes]:
        found: set[bytes] = set()
        for key, value in headers:
            if key == name:
                found.update(t.strip().lower() for t in value.split(b","))
        return found

    if b"websocket" not in tokens(b"upgrade") or b"upgrade" not in tokens(b"connection"):
        upgrade = (("Upgrade", "websocket"),)
        raise HandshakeError(426, "this endpoint speaks WebSocket only", upgrade)
    if tokens(b"sec-websocket-version") != {b"13"}:
        raise HandshakeError(
            426, "WebSocket version 13 is required", (("Sec-WebSocket-Version", "13"),)
        )
    keys = [value.strip() for name, value in headers if name == b"sec-websocket-key"]
    try:
        valid_key = len(keys) == 1 and len(base64.b64decode(keys[0], validate=True)) == 16
    except ValueError:
        valid_key = False
    if not valid_key:
        raise HandshakeError(400, "Sec-WebSocket-Key must be 16 bytes in base64")
    protocols: list[str] = []
    for name, value in headers:
        if name == b"sec-websocket-protocol":
            protocols += [p.strip().decode("latin-1") for p in value.split(b",") if p.strip()]
    return HandshakeRequest(
        path=event.target.decode("latin-1"),
        headers=headers,
        key=keys[0],
        subprotocols=tuple(protocols),
    )


def accept_key(key: bytes) -> bytes:
    return base64.b64encode(hashlib.sha1(key + GUID).digest())


def accept_response(request: HandshakeRequest, subprotocol: str | None) -> bytes:
    """The ``101 Switching Protocols`` answer to ``request``."""
    lines = [
        b"HTTP/1.1 101 Switching Protocols",
        b"Upgrade: websocket",
        b"Connection: Upgrade",
        b"Sec-WebSocket-Accept: " + accept_key(request.key),
    ]
    if subprotocol is not None:
        lines.append(b"Sec-WebSocket-Protocol: " + subprotocol.encode("latin-1"))
    return b"\r\n".join(lines) + b"\r\n\r\n"


_REASONS = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    405: "Method Not Allowed",
    426: "Upgrade Required",
    431: "Request Header Fields Too Large",
    503: "Service Unavailable",
}


def reject_response(status: int, body: str, headers: tuple[tuple[str, str], ...] = ()) -> bytes:
    """A plain-text HTTP refusal of the handshake; the connection closes after it."""
    payload = body.encode()
    lines = [f"HTTP/1.1 {status} {_REASONS.get(status, 'Error')}"]
    lines += [f"{name}: {value}" for name, value in headers]
    lines += [
        "Content-Type: text/plain; charset=utf-8",
        f"Content-Length: {len(payload)}",
        "Connection: close",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + payload


# ------------------------------------------------------------------ server frames
#: Headers of final binary frames of 0..125 bytes, by length (the hot path indexes it).
BINARY_HEADS = [bytes((0x80 | OP_BINARY, n)) for n in range(126)]


def frame_header(length: int, opcode: int = OP_BINARY) -> bytes:
    """Header of a final, unmasked frame carrying ``length`` payload bytes."""
    if opcode == OP_BINARY and length < 126:
        return BINARY_HEADS[length]
    if length < 126:
        return bytes((0x80 | opcode, length))
    if length < 65536:
        return struct.pack("!BBH", 0x80 | opcode, 126, length)
    return struct.pack("!BBQ", 0x80 | opcode, 127, length)


def encode_frame(payload: bytes, opcode: int = OP_BINARY) -> bytes:
    """A whole unmasked server frame: what the tick loop writes to a socket."""
    return frame_header(len(payload), opcode) + payload


def close_frame(code: int | None, reason: str = "") -> bytes:
    """A Close frame; the reason is cut to fit the 125-byte control frame limit."""
    if code is None:
        return encode_frame(b"", OP_CLOSE)
    data = reason.encode()[:123]
    while data:  # never cut a UTF-8 sequence in half
        try:
            data.decode()
            break
        except UnicodeDecodeError:
            data = data[:-1]
    return encode_frame(struct.pack("!H", code) + data, OP_CLOSE)


# ------------------------------------------------------------------ client frames
@dataclass(frozen=True, slots=True)
class Message:
    """A complete data message: ``bytes`` from binary frames, ``str`` from text."""

    data: bytes | str


@dataclass(frozen=True, slots=True)
class Ping:
    payload: bytes


@dataclass(frozen=True, slots=True)
class Pong:
    payload: bytes


@dataclass(frozen=True, slots=True)
class CloseReceived:
    """The peer's Close frame; ``code`` is None when it carried no payload."""

    code: int | None
    reason: str


Event = Message | Ping | Pong | CloseReceived


def _valid_close_code(code: int) -> bool:
    return code in _SENDABLE_CLOSE_CODES or 3000 <= code <= 4999


class FrameParser:
    """Splits a client's byte stream into events, rejecting anything RFC 6455 forbids.

    Client frames must be masked; no extension is negotiated, so reserved bits
    must be clear; control frames are final and at most 125 bytes; a data
    message is at most ``max_message_bytes`` across its fragments. Text is
    validated as it arrives, so invalid UTF-8 fails at the first bad fragment.
    Nothing is parsed after a Close frame.
    """

    def __init__(self, max_message_bytes: int) -> None:
        self.max_message_bytes = max_message_bytes
        self._buffer = bytearray()
        self._opcode: int | None = None  # of the message being reassembled
        self._fragments: list[bytes] = []
        self._size = 0
        self._utf8: codecs.IncrementalDecoder | None = None
        self._text: list[str] = []
        # UTF-8 of the text frame at the buffer's start, checked before it is whole.
        self._probe: codecs.IncrementalDecoder | None = None
        self._probed = 0
        self.closed = False
        #: Stop parsing after each data message, keeping the rest buffered (a
        #: process that reads only the first message and hands the stream on).
        self.pause_after_message = False

    def feed(self, data: bytes) -> list[Event]:
        """Add received bytes; return the complete events they finish, in order."""
        if self.closed:
            return []
        # The common case, one whole small binary message in one read, skips the
        # buffer: a final masked binary frame whose 7-bit length matches the read.
        if (
            not self._buffer
            and len(data) > 6
            and data[0] == 0x82
            and 0x80 < data[1] < 0xFE
            and data[1] - 0x80 == len(data) - 6
            and self._opcode is None
        ):
            if len(data) - 6 > self.max_message_bytes:
                raise WebSocketError(
                    f"message larger than {self.max_message_bytes} bytes",
                    CloseCode.MESSAGE_TOO_BIG,
                )
            return [Message(_unmask(data[2:6], data[6:]))]
        buf = self._buffer
        buf += data
        events: list[Event] = []
        at = 0
        end = len(buf)
        try:
            while end - at >= 2:
                b0 = buf[at]
                b1 = buf[at + 1]
                if b0 & 0x70:
                    raise WebSocketError("reserved bits set without an extension")
                if not b1 & 0x80:
                    raise WebSocketError("client frames must be masked")
                opcode = b0 & 0x0F
                final = bool(b0 & 0x80)
                length = b1 & 0x7F
                head = 6
                if length == 126:
                    head = 8
                    if end - at < head:
                        break
                    length = (buf[at + 2] << 8) | buf[at + 3]
                elif length == 127:
                    head = 14
                    if end - at < head:
                        break
                    length = int.from_bytes(buf[at + 2 : at + 10], "big")
                    if length >> 63:
                        raise WebSocketError("frame length has its top bit set")
                self._check_header(opcode, final, length)
                if end - at < head + length:
                    if opcode == OP_TEXT or (opcode == OP_CONTINUATION and self._opcode == OP_TEXT):
                        self._check_text_prefix(buf, at + head, end)
                    break
                key = buf[at + head - 4 : at + head]
                payload = _unmask(key, buf[at + head : at + head + length])
                at += head + length
                if self._probe is not None:
                    self._probe, self._probed = None, 0
                event = self._frame(opcode, final, payload)
                if event is not None:
                    events.append(event)
                    if isinstance(event, CloseReceived):
                        self.closed = True
                        break
                    if self.pause_after_message and isinstance(event, Message):
                        break
        except WebSocketError as exc:
            exc.events = events
            raise
        finally:
            if at:
                del buf[:at]
        return events

    def take_unparsed(self) -> bytes:
        """The bytes received but not yet parsed (to hand the stream to another parser).

        Only between messages: raises :class:`WebSocketError` while a fragmented
        message is half received.
        """
        if self._opcode is not None:
            raise WebSocketError("a fragmented message was in progress", CloseCode.POLICY_VIOLATION)
        data = bytes(self._buffer)
        self._buffer.clear()
        return data

    def _check_header(self, opcode: int, final: bool, length: int) -> None:
        """Reject a frame from its header alone, before its payload arrives."""
        if opcode in _CONTROL_OPCODES:
            if not final:
                raise WebSocketError("control frames must not be fragmented")
            if length > 125:
                raise WebSocketError("control frames carry at most 125 bytes")
            return
        if opcode not in _DATA_OPCODES:
            raise WebSocketError(f"unknown opcode {opcode:#x}")
        if opcode == OP_CONTINUATION and self._opcode is None:
            raise WebSocketError("continuation frame without a message to continue")
        if opcode != OP_CONTINUATION and self._opcode is not None:
            raise WebSocketError("new message before the fragmented one was finished")
        if self._size + length > self.max_message_bytes:
            raise WebSocketError(
                f"message larger than {self.max_message_bytes} bytes", CloseCode.MESSAGE_TOO_BIG
            )

    def _check_text_prefix(self, buf: bytearray, start: int, end: int) -> None:
        """Fail fast: validate the arrived part of a text frame, not waiting for the rest.

        ``buf[start:end]`` is the payload so far; a second decoder, a copy of the
        message's, checks what arrived since the last call. The frame is decoded
        as usual once whole.
        """
        if self._probe is None:
            self._probe = codecs.getincrementaldecoder("utf-8")()
            if self._utf8 is not None:
                self._probe.setstate(self._utf8.getstate())
        done = start + self._probed
        if done >= end:
            return
        key = buf[start - 4 : start]
        shift = self._probed % 4
        try:
            self._probe.decode(_unmask(key[shift:] + key[:shift], buf[done:end]))
        except UnicodeDecodeError:
            raise WebSocketError("text message is not UTF-8", CloseCode.INVALID_PAYLOAD) from None
        self._probed = end - start

    def _frame(self, opcode: int, final: bool, payload: bytes) -> Event | None:
        if opcode == OP_PING:
            return Ping(payload)
        if opcode == OP_PONG:
            return Pong(payload)
        if opcode == OP_CLOSE:
            return _close_event(payload)
        if opcode != OP_CONTINUATION:
            self._opcode = opcode
            if opcode == OP_TEXT:
                self._utf8 = codecs.getincrementaldecoder("utf-8")()
        if self._opcode == OP_TEXT:
            assert self._utf8 is not None
            try:
                self._text.append(self._utf8.decode(payload, final))
            except UnicodeDecodeError:
                raise WebSocketError(
                    "text message is not UTF-8", CloseCode.INVALID_PAYLOAD
                ) from None
        else:
            self._fragments.append(payload)
        self._size += len(payload)
        if not final:
            return None
        message: bytes | str
        if self._opcode == OP_TEXT:
            message = "".join(self._text)
        else:
            message = payload if len(self._fragments) == 1 else b"".join(self._fragments)
        self._opcode, self._utf8, self._fragments, self._text, self._size = None, None, [], [], 0
        return Message(message)


def _close_event(payload: bytes) -> CloseReceived:
    if not payload:
        return CloseReceived(None, "")
    if len(payload) == 1:
        raise WebSocketError("a Close payload is empty or at least 2 bytes")
    code = (payload[0] << 8) | payload[1]
    if not _valid_close_code(code):
        raise WebSocketError(f"close code {code} may not be sent")
    try:
        reason = payload[2:].decode()
    except UnicodeDecodeError:
        raise WebSocketError("close reason is not UTF-8", CloseCode.INVALID_PAYLOAD) from None
    return CloseReceived(code, reason)


#: From this payload size on, unmasking is a numpy XOR over 32-bit words; below
#: it one big-integer XOR is quicker (no array set-up). 1 MiB: 7 ms -> 0.2 ms.
NUMPY_UNMASK_BYTES = 2048


def _unmask(key: bytes | bytearray, data: bytes | bytearray) -> bytes:
    """XOR ``data`` with the repeating 4-byte ``key``; a small payload as one big integer."""
    length = len(data)
    if not length:
        return b""
    if length >= NUMPY_UNMASK_BYTES:
        return _unmask_numpy(bytes(key), data)
    repeated = (bytes(key) * (length // 4 + 1))[:length]
    value = int.from_bytes(data, "little") ^ int.from_bytes(repeated, "little")
    return value.to_bytes(length, "little")


def _unmask_numpy(key: bytes, data: bytes | bytearray) -> bytes:
    """:func:`_unmask` for large payloads: whole 32-bit words, then the 0-3 bytes left."""
    length = len(data)
    words = length // 4 * 4
    masked = np.frombuffer(data, dtype=np.uint8)
    out = np.empty(length, dtype=np.uint8)
    np.bitwise_xor(
        masked[:words].view(np.uint32),
        np.frombuffer(key, np.uint32),
        out=out[:words].view(np.uint32),
    )
    np.bitwise_xor(masked[words:], np.frombuffer(key, np.uint8)[: length - words], out=out[words:])
    return out.tobytes()
