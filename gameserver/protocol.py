"""Wire protocol v1: messages as small immutable types, bytes in and out.

Pure code, as in h11 and wsproto: no sockets, no clocks. Each message is one
msgpack array carried in one binary WebSocket frame; its first element is a
:class:`~gameserver.codes.MessageType`. Per-tick messages are arrays of small
ints and byte strings, never maps with string keys. docs/protocol.md is the
normative description; a test checks it against this module.

Decoding never raises anything but :class:`~gameserver.errors.ProtocolError`
for bad bytes, whatever the peer sends.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import msgpack

from .codes import CloseCode, MessageType
from .errors import ProtocolError

#: Largest message a client may send; client messages are a few dozen bytes.
MAX_CLIENT_MESSAGE_BYTES = 1024
#: Longest player name, in characters.
MAX_NAME_CHARS = 32

INT64_MIN = -(2**63)
UINT64_MAX = 2**64 - 1
INT63_MAX = 2**63 - 1
#: Most controls an INPUT may carry.
MAX_CONTROLS = 16


# --------------------------------------------------------------- client messages
@dataclass(frozen=True, slots=True)
class Join:
    """Ask for a seat. ``match_id=None`` is a quick join into any open match.

    ``send_rate_hz=0`` takes the server's send rate; a lower rate saves a
    phone's bandwidth and battery (the server rounds to a whole number of ticks).
    """

    name: str
    match_id: int | None = None
    send_rate_hz: int = 0


@dataclass(frozen=True, slots=True)
class Input:
    """Controls for the next tick (order as in the welcome's schema).

    ``seq`` increases with every input; ``ack_tick`` is the newest state tick
    the client has reconstructed (-1 for none), the baseline of its next delta.
    """

    seq: int
    ack_tick: int
    controls: tuple[float, ...]


@dataclass(frozen=True, slots=True)
class Ack:
    """The newest state tick the client holds, when it has no input to send."""

    ack_tick: int


@dataclass(frozen=True, slots=True)
class Ping:
    """Round-trip probe; ``client_time`` is echoed unchanged in the PONG."""

    client_time: int


@dataclass(frozen=True, slots=True)
class Leave:
    """The player leaves the match."""


# --------------------------------------------------------------- server messages
@dataclass(frozen=True, slots=True)
class Welcome:
    """The seat is granted. ``send_every`` is the number of ticks between frames."""

    version: int
    player_id: int
    match_id: int
    slot: int
    tick_rate_hz: int
    send_every: int
    tick: int
    schema: dict[str, Any]
    match: dict[str, Any]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """Full state at ``tick``: every cell as a zigzag varint, row-major."""

    tick: int
    checksum: int
    input_seq: int
    values: bytes


@dataclass(frozen=True, slots=True)
class Delta:
    """State at ``tick`` as the changes from a prediction made from ``baseline_tick``.

    The prediction is the state at ``baseline_tick``, with the fields the schema
    marks ``extrapolate`` carried forward along the line from the state at
    ``reference_tick`` (-1: no reference, the prediction is the baseline).
    ``cells`` is the mask, one bit per cell (little-endian bit order), set
    where the cell differs from the prediction, then those cells' differences
    as zigzag varints, in row-major order. On the wire both ticks travel as
    ages (ticks before ``tick``, and before ``baseline_tick``).
    """

    tick: int
    baseline_tick: int
    reference_tick: int
    checksum: int
    input_seq: int
    cells: bytes


@dataclass(frozen=True, slots=True)
class Event:
    """Something happened at ``tick``; ``slot`` is -1 for the whole match."""

    tick: int
    kind: int
    slot: int
    args: tuple[Any, ...] = ()


@dataclass(frozen=True, slots=True)
class Results:
    """Final results, best position first (keys documented in docs/protocol.md)."""

    match_id: int
    tick: int
    results: list[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Pong:
    """Answer to a PING: its ``client_time`` and the server's current tick."""

    client_time: int
    tick: int


ClientMessage = Join | Input | Ack | Ping | Leave
ServerMessage = Welcome | Snapshot | Delta | Event | Results | Pong
Message = ClientMessage | ServerMessage


# ------------------------------------------------------------------------ encode
def _fields(message: Message) -> list[Any]:
    if isinstance(message, Join):
        return [MessageType.JOIN, message.name, message.match_id, message.send_rate_hz]
    if isinstance(message, Input):
        return [MessageType.INPUT, message.seq, message.ack_tick, *message.controls]
    if isinstance(message, Ack):
        return [MessageType.ACK, message.ack_tick]
    if isinstance(message, Ping):
        return [MessageType.PING, message.client_time]
    if isinstance(message, Leave):
        return [MessageType.LEAVE]
    if isinstance(message, Welcome):
        return [
            MessageType.WELCOME,
            message.version,
            message.player_id,
            message.match_id,
            message.slot,
            message.tick_rate_hz,
            message.send_every,
            message.tick,
            message.schema,
            message.match,
        ]
    if isinstance(message, Snapshot):
        return [
            MessageType.SNAPSHOT,
            message.tick,
            message.checksum,
            message.input_seq,
            message.values,
        ]
    if isinstance(message, Delta):
        reference_age = (
            0 if message.reference_tick < 0 else message.baseline_tick - message.reference_tick
        )
        return [
            MessageType.DELTA,
            message.tick,
            message.tick - message.baseline_tick,
            reference_age,
            message.checksum,
            message.input_seq,
            message.cells,
        ]
    if isinstance(message, Event):
        return [MessageType.EVENT, message.tick, message.kind, message.slot, *message.args]
    if isinstance(message, Results):
        return [MessageType.RESULTS, message.match_id, message.tick, message.results]
    if isinstance(message, Pong):
        return [MessageType.PONG, message.client_time, message.tick]
    raise TypeError(f"not a protocol message: {message!r}")


def encode(message: Message) -> bytes:
    """The bytes of one binary WebSocket message carrying ``message``."""
    return msgpack.packb(_fields(message), use_bin_type=True)  # type: ignore[no-any-return]


def encode_delta(
    tick: int,
    baseline_tick: int,
    reference_tick: int,
    checksum: int,
    input_seq: int,
    mask: bytes,
    values: bytes,
) -> bytes:
    """:func:`encode` of a :class:`Delta`, without building the object (hot path)."""
    return msgpack.packb(  # type: ignore[no-any-return]
        [
            MessageType.DELTA,
            tick,
            tick - baseline_tick,
            0 if reference_tick < 0 else baseline_tick - reference_tick,
            checksum,
            input_seq,
            mask + values,
        ],
        use_bin_type=True,
    )


#: One packer for the hot path: ``msgpack.packb`` builds a new Packer every call.
_packer = msgpack.Packer(use_bin_type=True)


def delta_parts(
    tick: int, baseline_tick: int, reference_tick: int, checksum: int, cells: bytes
) -> tuple[bytes, bytes]:
    """A DELTA's bytes before and after ``input_seq``, the one element that differs
    between the players sharing a payload: ``prefix + pack_int(seq) + suffix`` equals
    :func:`encode_delta`'s output."""
    pack = _packer.pack
    prefix = b"".join(
        (
            b"\x97\x12",
            pack(tick),
            pack(tick - baseline_tick),
            pack(0 if reference_tick < 0 else baseline_tick - reference_tick),
            pack(checksum),
        )
    )
    return prefix, pack(cells)


def snapshot_parts(tick: int, checksum: int, values: bytes) -> tuple[bytes, bytes]:
    """:func:`delta_parts` for a SNAPSHOT."""
    pack = _packer.pack
    return b"\x95\x11" + pack(tick) + pack(checksum), pack(values)


#: Packs one int as msgpack, for the element between a frame's parts.
pack_int = _packer.pack


def encode_snapshot(tick: int, checksum: int, input_seq: int, values: bytes) -> bytes:
    """:func:`encode` of a :class:`Snapshot`, without building the object (hot path)."""
    return msgpack.packb(  # type: ignore[no-any-return]
        [MessageType.SNAPSHOT, tick, checksum, input_seq, values], use_bin_type=True
    )


# ------------------------------------------------------------------------ decode
def _unpack(data: bytes, max_bytes: int) -> list[Any]:
    if not isinstance(data, bytes | bytearray | memoryview):
        raise ProtocolError("message must be a binary frame")
    if len(data) > max_bytes:
        raise ProtocolError(
            f"message of {len(data)} bytes exceeds {max_bytes}", CloseCode.MESSAGE_TOO_BIG
        )
    try:
        fields = msgpack.unpackb(data, raw=False, use_list=True, strict_map_key=True)
    except Exception as exc:  # msgpack raises many types for bad bytes
        raise ProtocolError(f"not a msgpack message: {type(exc).__name__}") from None
    if not isinstance(fields, list) or not fields:
        raise ProtocolError("message must be a non-empty msgpack array")
    return fields


def _int(value: Any, what: str, low: int = INT64_MIN, high: int = UINT64_MAX) -> int:
    if type(value) is not int:
        raise ProtocolError(f"{what} must be an integer")
    if not low <= value <= high:
        raise ProtocolError(f"{what} out of range [{low}, {high}]")
    return value


def _number(value: Any, what: str) -> float:
    """A control value: a finite number, or the input is invalid (close code 4002)."""
    if type(value) is int:
        return float(value)
    if type(value) is not float:
        raise ProtocolError(f"{what} must be a number", CloseCode.INVALID_INPUT)
    if not math.isfinite(value):
        raise ProtocolError(f"{what} must be finite", CloseCode.INVALID_INPUT)
    return value


def _bytes(value: Any, what: str) -> bytes:
    if type(value) is not bytes:
        raise ProtocolError(f"{what} must be binary")
    return value


def _arity(fields: list[Any], name: str, count: int, at_least: bool = False) -> None:
    if len(fields) < count if at_least else len(fields) != count:
        expected = f"at least {count}" if at_least else str(count)
        raise ProtocolError(f"{name} has {len(fields)} elements, expected {expected}")


def _decode_join(f: list[Any]) -> Join:
    _arity(f, "JOIN", 4)
    name = f[1]
    if type(name) is not str or not name.strip() or len(name) > MAX_NAME_CHARS:
        raise ProtocolError(f"JOIN name must be 1..{MAX_NAME_CHARS} characters")
    if any(not ch.isprintable() for ch in name):
        raise ProtocolError("JOIN name must be printable")
    match_id = None if f[2] is None else _int(f[2], "JOIN match_id", 0, 2**63 - 1)
    rate = _int(f[3], "JOIN send_rate_hz", 0, 1000)
    return Join(name=name.strip(), match_id=match_id, send_rate_hz=rate)


def _decode_input(f: list[Any]) -> Input:
    # The most frequent message of all: checked inline, the helpers only on a failure path.
    count = len(f)
    if not 3 <= count <= 3 + MAX_CONTROLS:
        if count > 3 + MAX_CONTROLS:
            raise ProtocolError("INPUT has too many controls")
        _arity(f, "INPUT", 3, at_least=True)
    seq, ack = f[1], f[2]
    if type(seq) is not int or not 0 <= seq <= INT63_MAX:
        seq = _int(seq, "INPUT seq", 0, INT63_MAX)
    if type(ack) is not int or not -1 <= ack <= INT63_MAX:
        ack = _int(ack, "INPUT ack_tick", -1, INT63_MAX)
    controls = tuple(f[3:])
    for value in controls:
        if type(value) is not float or value - value != 0.0:  # not a finite float
            controls = tuple(_number(v, f"INPUT control {i}") for i, v in enumerate(f[3:]))
            break
    return Input(seq=seq, ack_tick=ack, controls=controls)


def _decode_ack(f: list[Any]) -> Ack:
    _arity(f, "ACK", 2)
    return Ack(ack_tick=_int(f[1], "ACK ack_tick", -1, 2**63 - 1))


def _decode_ping(f: list[Any]) -> Ping:
    _arity(f, "PING", 2)
    return Ping(client_time=_int(f[1], "PING client_time"))


def _decode_leave(f: list[Any]) -> Leave:
    _arity(f, "LEAVE", 1)
    return Leave()


def _decode_welcome(f: list[Any]) -> Welcome:
    _arity(f, "WELCOME", 10, at_least=True)  # later versions may append fields
    if not isinstance(f[8], dict) or not isinstance(f[9], dict):
        raise ProtocolError("WELCOME schema and match must be maps")
    return Welcome(
        version=_int(f[1], "WELCOME version"),
        player_id=_int(f[2], "WELCOME player_id"),
        match_id=_int(f[3], "WELCOME match_id"),
        slot=_int(f[4], "WELCOME slot"),
        tick_rate_hz=_int(f[5], "WELCOME tick_rate_hz", 1),
        send_every=_int(f[6], "WELCOME send_every", 1),
        tick=_int(f[7], "WELCOME tick"),
        schema=f[8],
        match=f[9],
    )


def _decode_snapshot(f: list[Any]) -> Snapshot:
    _arity(f, "SNAPSHOT", 5, at_least=True)  # later versions may append fields
    return Snapshot(
        tick=_int(f[1], "SNAPSHOT tick"),
        checksum=_int(f[2], "SNAPSHOT checksum", 0, 2**32 - 1),
        input_seq=_int(f[3], "SNAPSHOT input_seq"),
        values=_bytes(f[4], "SNAPSHOT values"),
    )


def _decode_delta(f: list[Any]) -> Delta:
    _arity(f, "DELTA", 7, at_least=True)  # later versions may append fields
    tick = _int(f[1], "DELTA tick", 0, INT63_MAX)
    baseline_age = _int(f[2], "DELTA baseline_age", 1, tick)
    reference_age = _int(f[3], "DELTA reference_age", 0, tick - baseline_age)
    return Delta(
        tick=tick,
        baseline_tick=tick - baseline_age,
        reference_tick=tick - baseline_age - reference_age if reference_age else -1,
        checksum=_int(f[4], "DELTA checksum", 0, 2**32 - 1),
        input_seq=_int(f[5], "DELTA input_seq"),
        cells=_bytes(f[6], "DELTA cells"),
    )


def _decode_event(f: list[Any]) -> Event:
    _arity(f, "EVENT", 4, at_least=True)
    return Event(
        tick=_int(f[1], "EVENT tick"),
        kind=_int(f[2], "EVENT kind", 0, 127),
        slot=_int(f[3], "EVENT slot", -1),
        args=tuple(f[4:]),
    )


def _decode_results(f: list[Any]) -> Results:
    _arity(f, "RESULTS", 4, at_least=True)  # later versions may append fields
    if not isinstance(f[3], list) or not all(isinstance(r, dict) for r in f[3]):
        raise ProtocolError("RESULTS must carry a list of maps")
    return Results(
        match_id=_int(f[1], "RESULTS match_id"), tick=_int(f[2], "RESULTS tick"), results=f[3]
    )


def _decode_pong(f: list[Any]) -> Pong:
    _arity(f, "PONG", 3, at_least=True)  # later versions may append fields
    return Pong(client_time=_int(f[1], "PONG client_time"), tick=_int(f[2], "PONG tick"))


_CLIENT_DECODERS: dict[int, Callable[[list[Any]], ClientMessage]] = {
    MessageType.JOIN: _decode_join,
    MessageType.INPUT: _decode_input,
    MessageType.ACK: _decode_ack,
    MessageType.PING: _decode_ping,
    MessageType.LEAVE: _decode_leave,
}

_SERVER_DECODERS: dict[int, Callable[[list[Any]], ServerMessage]] = {
    MessageType.WELCOME: _decode_welcome,
    MessageType.SNAPSHOT: _decode_snapshot,
    MessageType.DELTA: _decode_delta,
    MessageType.EVENT: _decode_event,
    MessageType.RESULTS: _decode_results,
    MessageType.PONG: _decode_pong,
}


def decode_client_message(data: bytes) -> ClientMessage:
    """Parse a message a client sent; raises :class:`ProtocolError` on bad bytes."""
    fields = _unpack(data, MAX_CLIENT_MESSAGE_BYTES)
    decoder = _CLIENT_DECODERS.get(fields[0]) if type(fields[0]) is int else None
    if decoder is None:
        raise ProtocolError(f"unknown client message type {fields[0]!r}")
    return decoder(fields)


def decode_server_message(data: bytes, max_bytes: int = 16 * 1024 * 1024) -> ServerMessage:
    """Parse a message the server sent; raises :class:`ProtocolError` on bad bytes."""
    fields = _unpack(data, max_bytes)
    decoder = _SERVER_DECODERS.get(fields[0]) if type(fields[0]) is int else None
    if decoder is None:
        raise ProtocolError(f"unknown server message type {fields[0]!r}")
    return decoder(fields)


def peek_type(data: bytes) -> int | None:
    """The message type of an encoded message from its first bytes, without decoding it.

    Every message is a msgpack array whose first element is a positive fixint:
    the type is byte 1 after a fixarray marker (0x91..0x9f, 1 to 15 elements),
    byte 3 after an array 16 header (0xdc) and byte 5 after an array 32 header
    (0xdd). None when the bytes do not start like a message. Load generators
    use this to count frames without parsing them.
    """
    if not data:
        return None
    marker = data[0]
    at = 1 if 0x91 <= marker <= 0x9F else 3 if marker == 0xDC else 5 if marker == 0xDD else 0
    if at and len(data) > at and data[at] < 0x80:
        return data[at]
    return None
