"""The wire codec, pure: round trips, and bad bytes raise ProtocolError only."""

from __future__ import annotations

import math

import msgpack
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gameserver import protocol
from gameserver.codes import CloseCode, MessageType
from gameserver.errors import ProtocolError

ints = st.integers(min_value=0, max_value=2**62)
ticks = st.integers(min_value=-1, max_value=2**40)
names = st.text(
    alphabet=st.characters(categories=["L", "N"]), min_size=1, max_size=protocol.MAX_NAME_CHARS
)
controls = st.lists(
    st.floats(min_value=-1.0, max_value=1.0, allow_nan=False), min_size=0, max_size=8
).map(tuple)

client_messages = st.one_of(
    st.builds(
        protocol.Join,
        name=names,
        match_id=st.none() | ints,
        send_rate_hz=st.integers(min_value=0, max_value=1000),
    ),
    st.builds(protocol.Input, seq=ints, ack_tick=ticks, controls=controls),
    st.builds(protocol.Ack, ack_tick=ticks),
    st.builds(protocol.Ping, client_time=st.integers(min_value=-(2**63), max_value=2**63 - 1)),
    st.just(protocol.Leave()),
)
server_messages = st.one_of(
    st.builds(
        protocol.Snapshot,
        tick=ints,
        checksum=st.integers(min_value=0, max_value=2**32 - 1),
        input_seq=ints,
        values=st.binary(max_size=64),
    ),
    st.builds(
        protocol.Delta,
        tick=ints,
        baseline_tick=ints,
        checksum=st.integers(min_value=0, max_value=2**32 - 1),
        input_seq=ints,
        mask=st.binary(max_size=16),
        values=st.binary(max_size=64),
    ),
    st.builds(
        protocol.Event,
        tick=ints,
        kind=st.integers(min_value=0, max_value=127),
        slot=st.integers(min_value=-1, max_value=15),
        args=st.lists(st.integers() | st.text(max_size=8) | st.booleans(), max_size=3).map(tuple),
    ),
    st.builds(protocol.Pong, client_time=st.integers(min_value=0, max_value=2**40), tick=ints),
)


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(client_messages)
def test_client_messages_round_trip(message: protocol.ClientMessage) -> None:
    data = protocol.encode(message)
    assert protocol.decode_client_message(data) == message
    assert protocol.peek_type(data) == data[1]


@settings(suppress_health_check=[HealthCheck.too_slow], deadline=None)
@given(server_messages)
def test_server_messages_round_trip(message: protocol.ServerMessage) -> None:
    data = protocol.encode(message)
    assert protocol.decode_server_message(data) == message
    assert protocol.peek_type(data) == data[1]


def test_hot_path_encoders_match_the_general_encoder() -> None:
    delta = protocol.Delta(5, 3, 99, 2, b"\x01", b"\x02")
    snapshot = protocol.Snapshot(5, 99, 2, b"\x00\x01")
    assert protocol.encode_delta(5, 3, 99, 2, b"\x01", b"\x02") == protocol.encode(delta)
    assert protocol.encode_snapshot(5, 99, 2, b"\x00\x01") == protocol.encode(snapshot)


@given(st.binary(max_size=200))
def test_any_bytes_give_a_message_or_a_protocol_error(data: bytes) -> None:
    for decode in (protocol.decode_client_message, protocol.decode_server_message):
        error: ProtocolError | None = None
        try:
            decode(data)
        except ProtocolError as exc:
            error = exc
        if error is not None:
            assert error.close_code in set(CloseCode)
            assert error.reason


@given(client_messages, st.data())
def test_truncated_messages_are_protocol_errors(
    message: protocol.ClientMessage, data: st.DataObject
) -> None:
    encoded = protocol.encode(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    with pytest.raises(ProtocolError):
        protocol.decode_client_message(encoded[:cut])


@pytest.mark.parametrize(
    ("fields", "code"),
    [
        ([2, 1, -1, math.nan, 0.0, 0.0], CloseCode.INVALID_INPUT),
        ([2, 1, -1, math.inf, 0.0, 0.0], CloseCode.INVALID_INPUT),
        ([2, 1, -1, "1", 0.0, 0.0], CloseCode.INVALID_INPUT),
        ([2, True, -1, 1.0], CloseCode.INVALID_PAYLOAD),
        ([2, 1, -2, 1.0], CloseCode.INVALID_PAYLOAD),
        ([2, -1, -1, 1.0], CloseCode.INVALID_PAYLOAD),
        ([3, 2**64 - 1], CloseCode.INVALID_PAYLOAD),
        ([1, "", None, 0], CloseCode.INVALID_PAYLOAD),
        ([1, "x" * 33, None, 0], CloseCode.INVALID_PAYLOAD),
        ([1, "a\nb", None, 0], CloseCode.INVALID_PAYLOAD),
        ([1, "alice", None], CloseCode.INVALID_PAYLOAD),
        ([1, "alice", None, 0, 1], CloseCode.INVALID_PAYLOAD),
        ([5, 1], CloseCode.INVALID_PAYLOAD),
        ([99], CloseCode.INVALID_PAYLOAD),
        ([MessageType.WELCOME], CloseCode.INVALID_PAYLOAD),
        (["JOIN"], CloseCode.INVALID_PAYLOAD),
        ([], CloseCode.INVALID_PAYLOAD),
        ({"type": 1}, CloseCode.INVALID_PAYLOAD),
    ],
)
def test_bad_client_messages_carry_their_close_code(fields: object, code: CloseCode) -> None:
    with pytest.raises(ProtocolError) as error:
        protocol.decode_client_message(msgpack.packb(fields))
    assert error.value.close_code == code


def test_oversized_client_messages_are_refused_before_parsing() -> None:
    data = msgpack.packb([4, 0]) + b"\x00" * protocol.MAX_CLIENT_MESSAGE_BYTES
    with pytest.raises(ProtocolError, match="exceeds"):
        protocol.decode_client_message(data)


def test_server_messages_may_grow_at_their_end() -> None:
    pong = msgpack.packb([MessageType.PONG, 1, 2, "a field from a later version"])
    assert protocol.decode_server_message(pong) == protocol.Pong(client_time=1, tick=2)
