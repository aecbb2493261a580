"""The wire codec, pure: round trips, and whatever a peer sends, a message or a ProtocolError."""

from __future__ import annotations

import math
import struct
from collections.abc import Callable
from typing import Any

import msgpack
import pytest
from hypothesis import given
from hypothesis import strategies as st

from gameserver import protocol
from gameserver.codes import CloseCode, MessageType
from gameserver.errors import ProtocolError

INT64_MIN, INT64_MAX, UINT64_MAX = -(2**63), 2**63 - 1, 2**64 - 1
CLIENT_TYPES = {MessageType.JOIN, MessageType.INPUT, MessageType.ACK, MessageType.PING}
CLIENT_TYPES |= {MessageType.LEAVE}
SERVER_TYPES = set(MessageType) - CLIENT_TYPES

# ------------------------------------------------------------------ strategies
msgpack_ints = st.integers(min_value=INT64_MIN, max_value=UINT64_MAX)
texts = st.text(alphabet=st.characters(exclude_categories=["Cs"]), max_size=12)
scalars = st.none() | st.booleans() | msgpack_ints | st.floats() | texts | st.binary(max_size=12)
#: Any msgpack value, NaN and infinities included.
anything = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)
#: Msgpack values that compare equal after a round trip (no NaN).
plain = st.recursive(
    st.none() | st.booleans() | msgpack_ints | st.floats(allow_nan=False) | texts | st.binary(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(texts, inner, max_size=4),
    max_leaves=10,
)
maps = st.dictionaries(texts, plain, max_size=4)

names = st.text(
    alphabet=st.characters(categories=["L", "M", "N", "P", "S"], include_characters=" "),
    min_size=1,
    max_size=protocol.MAX_NAME_CHARS,
).filter(lambda name: bool(name.strip()))
seqs = st.integers(min_value=0, max_value=INT64_MAX)
ack_ticks = st.integers(min_value=-1, max_value=INT64_MAX)
controls = st.lists(
    st.floats(allow_nan=False, allow_infinity=False) | st.integers(-(2**53), 2**53),
    max_size=16,
).map(tuple)

client_messages: st.SearchStrategy[protocol.ClientMessage] = st.one_of(
    st.builds(
        protocol.Join,
        name=names,
        match_id=st.none() | seqs,
        send_rate_hz=st.integers(min_value=0, max_value=1000),
    ),
    st.builds(protocol.Input, seq=seqs, ack_tick=ack_ticks, controls=controls),
    st.builds(protocol.Ack, ack_tick=ack_ticks),
    st.builds(protocol.Ping, client_time=msgpack_ints),
    st.just(protocol.Leave()),
)
checksums = st.integers(min_value=0, max_value=2**32 - 1)
server_messages: st.SearchStrategy[protocol.ServerMessage] = st.one_of(
    st.builds(
        protocol.Welcome,
        version=msgpack_ints,
        player_id=msgpack_ints,
        match_id=msgpack_ints,
        slot=msgpack_ints,
        tick_rate_hz=st.integers(min_value=1, max_value=UINT64_MAX),
        send_every=st.integers(min_value=1, max_value=UINT64_MAX),
        tick=msgpack_ints,
        schema=maps,
        match=maps,
    ),
    st.builds(
        protocol.Snapshot,
        tick=msgpack_ints,
        checksum=checksums,
        input_seq=msgpack_ints,
        values=st.binary(max_size=300),
    ),
    st.builds(
        lambda tick, baseline_age, reference_age, crc, seq, cells: protocol.Delta(
            tick=tick,
            baseline_tick=tick - baseline_age,
            reference_tick=tick - baseline_age - reference_age if reference_age else -1,
            checksum=crc,
            input_seq=seq,
            cells=cells,
        ),
        st.integers(min_value=10**6, max_value=2**63 - 1),
        st.integers(min_value=1, max_value=1000),
        st.integers(min_value=0, max_value=1000),
        checksums,
        msgpack_ints,
        st.binary(max_size=300),
    ),
    st.builds(
        protocol.Event,
        tick=msgpack_ints,
        kind=st.integers(min_value=0, max_value=127),
        slot=st.integers(min_value=-1, max_value=UINT64_MAX),
        args=st.lists(plain, max_size=16).map(tuple),
    ),
    st.builds(
        protocol.Results,
        match_id=msgpack_ints,
        tick=msgpack_ints,
        results=st.lists(maps, max_size=3),
    ),
    st.builds(protocol.Pong, client_time=msgpack_ints, tick=msgpack_ints),
)
messages = st.one_of(client_messages, server_messages)


def decoder_of(kind: int) -> Callable[[bytes], protocol.Message]:
    return (
        protocol.decode_client_message if kind in CLIENT_TYPES else protocol.decode_server_message
    )


def decode_or_error(data: bytes, client: bool) -> protocol.Message | ProtocolError:
    """Decode as the server (``client``: bytes a client sent) or as a client would.

    Any exception but a ProtocolError fails the test.
    """
    try:
        if client:
            return protocol.decode_client_message(data)
        return protocol.decode_server_message(data)
    except ProtocolError as error:
        return error


def type_of(message: protocol.Message) -> int:
    return int(msgpack.unpackb(protocol.encode(message))[0])


# ------------------------------------------------------------------ round trips
def expected_after_decoding(message: protocol.Message) -> protocol.Message:
    if isinstance(message, protocol.Join):
        return protocol.Join(message.name.strip(), message.match_id, message.send_rate_hz)
    return message


@given(client_messages)
def test_client_messages_round_trip(message: protocol.ClientMessage) -> None:
    assert protocol.decode_client_message(protocol.encode(message)) == expected_after_decoding(
        message
    )


@given(server_messages)
def test_server_messages_round_trip(message: protocol.ServerMessage) -> None:
    assert protocol.decode_server_message(protocol.encode(message)) == message


def test_a_join_name_is_trimmed() -> None:
    data = protocol.encode(protocol.Join(name="  ann  "))
    assert protocol.decode_client_message(data) == protocol.Join(name="ann")


@given(messages)
def test_peek_type_names_the_type_of_every_message(message: protocol.Message) -> None:
    data = protocol.encode(message)
    kind = protocol.peek_type(data)
    assert kind == type_of(message)
    assert type(decoder_of(kind)(data)) is type(message)


@given(st.integers(min_value=0, max_value=16))
def test_peek_type_reads_long_arrays(count: int) -> None:
    data = protocol.encode(protocol.Input(seq=1, ack_tick=-1, controls=(0.5,) * count))
    assert data[0] in (0xDC, *range(0x90, 0xA0))
    assert protocol.peek_type(data) == MessageType.INPUT


def test_peek_type_reads_an_array_32() -> None:
    data = msgpack.packb([MessageType.EVENT, 1, 16, 0, *[0] * 70000])
    assert data[0] == 0xDD
    assert protocol.peek_type(data) == MessageType.EVENT


@given(st.binary(max_size=64))
def test_peek_type_never_contradicts_decoding(data: bytes) -> None:
    kind = protocol.peek_type(data)
    for client in (True, False):
        decoded = decode_or_error(data, client)
        if not isinstance(decoded, ProtocolError) and kind is not None:
            assert kind == type_of(decoded)


def test_peek_type_gives_none_for_what_does_not_start_like_a_message() -> None:
    for data in (b"", b"\x91", b"\x90\x01", b"\x91\xcc\x02", b"\x81\x01\x02", b"\xdc\x00"):
        assert protocol.peek_type(data) is None


@given(
    st.integers(min_value=100, max_value=2**63 - 1),
    st.integers(min_value=1, max_value=50),
    st.integers(min_value=-1, max_value=50),
    checksums,
    msgpack_ints,
    st.binary(max_size=20),
    st.binary(max_size=200),
)
def test_hot_path_encoders_match_the_general_encoder(
    tick: int, age: int, reference_age: int, crc: int, seq: int, mask: bytes, values: bytes
) -> None:
    baseline = tick - age
    reference = baseline - reference_age if reference_age > 0 else -1
    delta = protocol.Delta(tick, baseline, reference, crc, seq, mask + values)
    snapshot = protocol.Snapshot(tick, crc, seq, values)
    assert protocol.encode_delta(tick, baseline, reference, crc, seq, mask, values) == (
        protocol.encode(delta)
    )
    assert protocol.encode_snapshot(tick, crc, seq, values) == protocol.encode(snapshot)
    # The per-payload parts the arena encodes once, joined around each player's input_seq.
    prefix, suffix = protocol.delta_parts(tick, baseline, reference, crc, mask + values)
    assert prefix + protocol.pack_int(seq) + suffix == protocol.encode(delta)
    prefix, suffix = protocol.snapshot_parts(tick, crc, values)
    assert prefix + protocol.pack_int(seq) + suffix == protocol.encode(snapshot)


def test_encoding_something_else_is_a_type_error() -> None:
    with pytest.raises(TypeError):
        protocol.encode("JOIN")  # type: ignore[arg-type]


# ------------------------------------------------------------------ the version rule
@pytest.mark.parametrize(
    "message",
    [
        protocol.Welcome(1, 2, 3, 0, 60, 1, 10, {"game": "race"}, {"laps": 3}),
        protocol.Snapshot(10, 99, 1, b"\x00"),
        protocol.Delta(10, 9, 7, 99, 1, b"\x01\x02"),
        protocol.Results(3, 10, [{"slot": 0, "position": 1}]),
        protocol.Pong(5, 10),
    ],
    ids=lambda m: type(m).__name__,
)
def test_server_messages_may_gain_elements_at_their_end(message: protocol.ServerMessage) -> None:
    fields = msgpack.unpackb(protocol.encode(message))
    later = msgpack.packb([*fields, "a later field", {"and": ["another"]}], use_bin_type=True)
    assert protocol.decode_server_message(later) == message


def test_an_event_gains_args_at_its_end() -> None:
    event = protocol.Event(tick=10, kind=16, slot=2, args=(1, 25832))
    later = msgpack.packb([*msgpack.unpackb(protocol.encode(event)), "later"])
    assert protocol.decode_server_message(later) == protocol.Event(10, 16, 2, (1, 25832, "later"))


@pytest.mark.parametrize(
    "message",
    [protocol.Join("ann"), protocol.Ack(3), protocol.Ping(4), protocol.Leave()],
    ids=lambda m: type(m).__name__,
)
def test_client_messages_have_exactly_their_elements(message: protocol.ClientMessage) -> None:
    fields = msgpack.unpackb(protocol.encode(message))
    for wrong in ([*fields, 0], fields[:-1]):
        with pytest.raises(ProtocolError) as error:
            protocol.decode_client_message(msgpack.packb(wrong))
        assert error.value.close_code == CloseCode.INVALID_PAYLOAD


# ------------------------------------------------------------------ bad input
def check_error(result: protocol.Message | ProtocolError, data: bytes) -> None:
    """A refusal carries a reason and a close code fit for what was wrong."""
    if not isinstance(result, ProtocolError):
        return
    assert result.reason
    assert result.close_code in (
        CloseCode.INVALID_PAYLOAD,
        CloseCode.INVALID_INPUT,
        CloseCode.MESSAGE_TOO_BIG,
    )
    if result.close_code == CloseCode.INVALID_INPUT:
        assert msgpack.unpackb(data)[0] == MessageType.INPUT, "4002 is for controls only"


@given(st.binary(max_size=200))
def test_any_bytes_decode_to_a_message_or_a_protocol_error(data: bytes) -> None:
    for client in (True, False):
        check_error(decode_or_error(data, client), data)


@given(st.sampled_from(sorted(MessageType)) | msgpack_ints, st.lists(anything, max_size=8))
def test_any_array_decodes_to_a_message_or_a_protocol_error(kind: int, rest: list[Any]) -> None:
    data = msgpack.packb([kind, *rest], use_bin_type=True)
    for client in (True, False):
        result = decode_or_error(data, client)
        check_error(result, data)
        if not isinstance(result, ProtocolError):
            assert kind in (CLIENT_TYPES if client else SERVER_TYPES)
            encoded = protocol.encode(result)
            assert protocol.encode(decoder_of(kind)(encoded)) == encoded


@given(messages, st.data())
def test_a_message_with_one_element_replaced_is_a_message_or_a_protocol_error(
    message: protocol.Message, data: st.DataObject
) -> None:
    fields = msgpack.unpackb(protocol.encode(message))
    if len(fields) < 2:
        return
    index = data.draw(st.integers(min_value=1, max_value=len(fields) - 1))
    fields[index] = data.draw(anything)
    mutated = msgpack.packb(fields, use_bin_type=True)
    client = type_of(message) in CLIENT_TYPES
    result = decode_or_error(mutated, client)
    check_error(result, mutated)
    if isinstance(result, ProtocolError) and result.close_code == CloseCode.INVALID_INPUT:
        assert index >= 3, "only a control is invalid input"


@given(messages, st.data())
def test_a_truncated_message_is_a_protocol_error(
    message: protocol.Message, data: st.DataObject
) -> None:
    encoded = protocol.encode(message)
    cut = data.draw(st.integers(min_value=0, max_value=len(encoded) - 1))
    for client in (True, False):
        result = decode_or_error(encoded[:cut], client)
        assert isinstance(result, ProtocolError)
        assert result.close_code == CloseCode.INVALID_PAYLOAD


def packed_float32(value: float) -> bytes:
    return b"\xca" + struct.pack(">f", value)


@pytest.mark.parametrize(
    "control",
    [math.nan, math.inf, -math.inf, "1", b"\x01", None, True, False, [0.5], {"v": 1.0}],
    ids=repr,
)
def test_a_control_that_is_not_a_finite_number_is_invalid_input(control: object) -> None:
    data = msgpack.packb([MessageType.INPUT, 1, -1, 0.0, control, 0.0], use_bin_type=True)
    with pytest.raises(ProtocolError) as error:
        protocol.decode_client_message(data)
    assert error.value.close_code == CloseCode.INVALID_INPUT


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf])
def test_a_float32_nan_or_infinity_is_invalid_input(value: float) -> None:
    data = b"\x94\x02\x01\xff" + packed_float32(value)
    with pytest.raises(ProtocolError) as error:
        protocol.decode_client_message(data)
    assert error.value.close_code == CloseCode.INVALID_INPUT


def test_float32_and_integer_controls_are_accepted() -> None:
    data = b"\x96\x02\x01\xff" + packed_float32(-0.25) + b"\x01" + b"\xd0\x80"
    message = protocol.decode_client_message(data)
    assert message == protocol.Input(seq=1, ack_tick=-1, controls=(-0.25, 1.0, -128.0))
    assert isinstance(message, protocol.Input)
    assert all(type(c) is float for c in message.controls)


def test_at_most_sixteen_controls() -> None:
    ok = msgpack.packb([MessageType.INPUT, 1, -1, *[0.0] * 16])
    assert isinstance(protocol.decode_client_message(ok), protocol.Input)
    with pytest.raises(ProtocolError) as error:
        protocol.decode_client_message(msgpack.packb([MessageType.INPUT, 1, -1, *[0.0] * 17]))
    assert error.value.close_code == CloseCode.INVALID_PAYLOAD


@pytest.mark.parametrize(
    "fields",
    [
        # booleans, floats and strings where an int is expected
        [MessageType.INPUT, True, -1, 1.0],
        [MessageType.INPUT, 1, False, 1.0],
        [MessageType.INPUT, 1.0, -1, 1.0],
        [MessageType.ACK, True],
        [MessageType.ACK, "5"],
        [MessageType.PING, 1.5],
        [MessageType.PING, None],
        [MessageType.JOIN, "ann", True, 0],
        [MessageType.JOIN, "ann", None, False],
        [MessageType.JOIN, "ann", 1.0, 0],
        # ints out of range
        [MessageType.INPUT, -1, -1, 1.0],
        [MessageType.INPUT, 2**63, -1, 1.0],
        [MessageType.INPUT, 1, -2, 1.0],
        [MessageType.INPUT, 1, UINT64_MAX, 1.0],
        [MessageType.ACK, -2],
        [MessageType.ACK, INT64_MIN],
        [MessageType.ACK, UINT64_MAX],
        [MessageType.JOIN, "ann", -1, 0],
        [MessageType.JOIN, "ann", UINT64_MAX, 0],
        [MessageType.JOIN, "ann", None, -1],
        [MessageType.JOIN, "ann", None, 1001],
        # bad names
        [MessageType.JOIN, "", None, 0],
        [MessageType.JOIN, "   ", None, 0],
        [MessageType.JOIN, "x" * (protocol.MAX_NAME_CHARS + 1), None, 0],
        [MessageType.JOIN, "a\nb", None, 0],
        [MessageType.JOIN, "a\tb", None, 0],
        [MessageType.JOIN, "a\x00b", None, 0],
        [MessageType.JOIN, b"ann", None, 0],
        [MessageType.JOIN, None, None, 0],
        # wrong arity
        [MessageType.JOIN, "ann", None],
        [MessageType.JOIN, "ann", None, 0, 0],
        [MessageType.INPUT, 1],
        [MessageType.ACK],
        [MessageType.PING, 1, 2],
        [MessageType.LEAVE, 1],
        # unknown or malformed types
        [0],
        [6, 1],
        [15],
        *([kind, 1] for kind in sorted(SERVER_TYPES)),
        [127],
        [128],
        [-1],
        [UINT64_MAX],
        [True],
        [1.0],
        ["JOIN"],
        [None],
        [[1]],
        [],
    ],
    ids=repr,
)
def test_bad_client_messages_are_invalid_payload(fields: list[Any]) -> None:
    with pytest.raises(ProtocolError) as error:
        protocol.decode_client_message(msgpack.packb(fields, use_bin_type=True))
    assert error.value.close_code == CloseCode.INVALID_PAYLOAD
    assert error.value.reason


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\xc1",  # never used in msgpack
        b"\x91",  # an array missing its element
        b"\x91\x05\x05",  # trailing bytes after the message
        b"\x05",  # not an array
        msgpack.packb({"type": 1}),
        msgpack.packb("JOIN"),
        b"\x94\x01\xa3\xff\xfe\xfd\xc0\x00",  # a name that is not UTF-8
        b"\x92\xd4\x01\x00\x00",  # an extension type as the message type
        b"\x91" * 5000,  # deeply nested
    ],
    ids=repr,
)
def test_bytes_that_are_not_a_message_are_invalid_payload(data: bytes) -> None:
    for client in (True, False):
        result = decode_or_error(data, client)
        assert isinstance(result, ProtocolError)
        assert result.close_code in (CloseCode.INVALID_PAYLOAD, CloseCode.MESSAGE_TOO_BIG)


@pytest.mark.parametrize(
    "fields",
    [
        [MessageType.SNAPSHOT, 1, -1, 0, b""],
        [MessageType.SNAPSHOT, 1, 2**32, 0, b""],
        [MessageType.SNAPSHOT, 1, 0, 0, "cells"],
        [MessageType.SNAPSHOT, True, 0, 0, b""],
        [MessageType.DELTA, 2, 1, 0, 0, 0, "cells"],
        [MessageType.DELTA, 2, 1, 0, 0, 0, None],
        [MessageType.DELTA, 2, 1.0, 0, 0, 0, b""],
        [MessageType.DELTA, 2, 0, 0, 0, 0, b""],  # a baseline is older than the frame
        [MessageType.DELTA, 2, 3, 0, 0, 0, b""],  # ... and not before tick 0
        [MessageType.DELTA, 5, 2, 4, 0, 0, b""],  # the reference is before tick 0
        [MessageType.DELTA, 5, 2, -1, 0, 0, b""],
        [MessageType.DELTA, 2, 1, 0, 0, 0],
        [MessageType.EVENT, 1, 128, -1],
        [MessageType.EVENT, 1, -1, -1],
        [MessageType.EVENT, 1, 5, -2],
        [MessageType.EVENT, 1, 5],
        [MessageType.WELCOME, 1, 1, 1, 0, 60, 1, 0, [], {}],
        [MessageType.WELCOME, 1, 1, 1, 0, 0, 1, 0, {}, {}],
        [MessageType.WELCOME, 1, 1, 1, 0, 60, 0, 0, {}, {}],
        [MessageType.WELCOME, 1, 1, 1, 0, 60, 1, 0, {}],
        [MessageType.RESULTS, 1, 1, [1, 2]],
        [MessageType.RESULTS, 1, 1, {"slot": 0}],
        [MessageType.PONG, 1],
        [MessageType.PONG, 1, True],
        *([kind] for kind in sorted(CLIENT_TYPES)),
        [22],
        [0],
    ],
    ids=repr,
)
def test_bad_server_messages_are_protocol_errors(fields: list[Any]) -> None:
    with pytest.raises(ProtocolError) as error:
        protocol.decode_server_message(msgpack.packb(fields, use_bin_type=True))
    assert error.value.close_code == CloseCode.INVALID_PAYLOAD


def test_an_oversized_client_message_is_refused_before_parsing() -> None:
    limit = protocol.MAX_CLIENT_MESSAGE_BYTES
    for data in (b"\xc1" * (limit + 1), msgpack.packb([MessageType.PING, 0]) + b"\x00" * limit):
        with pytest.raises(ProtocolError, match="exceeds") as error:
            protocol.decode_client_message(data)
        assert error.value.close_code == CloseCode.MESSAGE_TOO_BIG


def test_an_oversized_server_message_is_refused_before_parsing() -> None:
    data = protocol.encode(protocol.Snapshot(1, 0, 0, b"\x00" * 100))
    assert isinstance(protocol.decode_server_message(data, max_bytes=len(data)), protocol.Snapshot)
    with pytest.raises(ProtocolError) as error:
        protocol.decode_server_message(data, max_bytes=len(data) - 1)
    assert error.value.close_code == CloseCode.MESSAGE_TOO_BIG


def test_a_text_message_is_refused() -> None:
    for decode in (protocol.decode_client_message, protocol.decode_server_message):
        with pytest.raises(ProtocolError):
            decode("\x91\x05")  # type: ignore[arg-type]


def test_binary_buffers_other_than_bytes_are_read() -> None:
    data = protocol.encode(protocol.Ack(7))
    assert protocol.decode_client_message(bytearray(data)) == protocol.Ack(7)  # type: ignore[arg-type]
    assert protocol.decode_client_message(memoryview(data)) == protocol.Ack(7)  # type: ignore[arg-type]


def test_ping_carries_any_msgpack_integer() -> None:
    for value in (INT64_MIN, -1, 0, UINT64_MAX):
        data = msgpack.packb([MessageType.PING, value])
        assert protocol.decode_client_message(data) == protocol.Ping(value)
