"""The server's RFC 6455 codec, without sockets: handshake, server frames, the strict parser."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clients.wsframe import FrameReader, handshake_request, mask_frame
from gameserver.websocket import (
    OP_BINARY,
    OP_CLOSE,
    OP_CONTINUATION,
    OP_PING,
    OP_PONG,
    OP_TEXT,
    CloseReceived,
    FrameParser,
    HandshakeError,
    Message,
    Ping,
    Pong,
    WebSocketError,
    accept_response,
    close_frame,
    encode_frame,
    parse_handshake,
    reject_response,
    split_request_head,
)


def frame(opcode: int, payload: bytes, *, final: bool = True, rsv: int = 0) -> bytes:
    data = bytearray(mask_frame(opcode, payload))
    if not final:
        data[0] &= 0x7F
    data[0] |= rsv << 4
    return bytes(data)


def unmasked(opcode: int, payload: bytes) -> bytes:
    return bytes((0x80 | opcode, len(payload))) + payload


# ------------------------------------------------------------------ handshake
def test_a_client_handshake_is_parsed_and_answered_with_the_right_accept_key() -> None:
    request_bytes, expected_accept = handshake_request("h", "/play?token=x", "gameserver.v1")
    split = split_request_head(request_bytes + b"\x82\x80")
    assert split is not None
    head, rest = split
    assert rest == b"\x82\x80"
    request = parse_handshake(head)
    assert request.path == "/play?token=x"
    assert request.proposed_subprotocols == ("gameserver.v1",)
    response = accept_response(request, "gameserver.v1")
    assert response.startswith(b"HTTP/1.1 101 ")
    assert b"Sec-WebSocket-Accept: " + expected_accept + b"\r\n" in response
    assert b"Sec-WebSocket-Protocol: gameserver.v1\r\n" in response
    assert response.endswith(b"\r\n\r\n")


def test_the_rfc_6455_example_key_gives_the_rfc_accept_value() -> None:
    head = (
        b"GET /chat HTTP/1.1\r\nHost: server.example.com\r\nUpgrade: websocket\r\n"
        b"Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
        b"Sec-WebSocket-Version: 13\r\n\r\n"
    )
    response = accept_response(parse_handshake(head), None)
    assert b"Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n" in response
    assert b"Sec-WebSocket-Protocol" not in response


def test_an_incomplete_head_waits_and_an_endless_one_is_refused() -> None:
    assert split_request_head(b"GET / HTTP/1.1\r\nHost: x\r\n") is None
    with pytest.raises(HandshakeError) as caught:
        split_request_head(b"GET / HTTP/1.1\r\nX: " + b"a" * 9000)
    assert caught.value.status == 431


@pytest.mark.parametrize(
    ("head", "status"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\n\r\n", 405),
        (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n", 426),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n",
            426,
        ),
        (
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
            b"Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n",
            400,
        ),
        (b"GARBAGE\r\n\r\n", 400),
    ],
)
def test_bad_handshakes_are_refused_with_a_status(head: bytes, status: int) -> None:
    with pytest.raises(HandshakeError) as caught:
        parse_handshake(head)
    assert caught.value.status == status


def test_a_refusal_is_a_complete_http_response() -> None:
    response = reject_response(401, "missing token")
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 401 Unauthorized")
    assert b"Content-Length: 13" in head
    assert body == b"missing token"


# ------------------------------------------------------------------ server frames
@given(st.binary(max_size=70000), st.sampled_from([OP_BINARY, OP_TEXT, OP_PING]))
def test_server_frames_parse_back_in_a_client_reader(payload: bytes, opcode: int) -> None:
    if opcode == OP_PING:
        payload = payload[:125]
    assert FrameReader().feed(encode_frame(payload, opcode)) == [(opcode, payload)]


def test_a_close_frame_cuts_its_reason_without_breaking_utf8() -> None:
    data = close_frame(4003, "é" * 100)
    assert len(data) <= 2 + 125
    ((opcode, payload),) = FrameReader().feed(data)
    assert opcode == OP_CLOSE
    assert struct.unpack("!H", payload[:2])[0] == 4003
    payload[2:].decode()  # valid UTF-8


# ------------------------------------------------------------------ client frames
@given(
    st.lists(st.binary(max_size=300), min_size=1, max_size=8),
    st.integers(min_value=1, max_value=64),
)
def test_masked_messages_survive_any_split_into_reads(messages: list[bytes], chunk: int) -> None:
    stream = b"".join(frame(OP_BINARY, m) for m in messages)
    parser = FrameParser(max_message_bytes=1024)
    events = []
    for at in range(0, len(stream), chunk):
        events += parser.feed(stream[at : at + chunk])
    assert events == [Message(m) for m in messages]


@given(st.text(max_size=200), st.integers(min_value=1, max_value=5))
def test_fragmented_text_is_reassembled(text: str, pieces: int) -> None:
    data = text.encode()
    size = max(1, len(data) // pieces)
    parts = [data[i : i + size] for i in range(0, len(data), size)] or [b""]
    stream = b""
    for i, part in enumerate(parts):
        opcode = OP_TEXT if i == 0 else OP_CONTINUATION
        stream += frame(opcode, part, final=i == len(parts) - 1)
    assert FrameParser(1024).feed(stream) == [Message(text)]


def test_control_frames_may_arrive_between_fragments() -> None:
    stream = (
        frame(OP_BINARY, b"ab", final=False)
        + frame(OP_PING, b"p")
        + frame(OP_CONTINUATION, b"cd")
        + frame(OP_PONG, b"q")
    )
    assert FrameParser(1024).feed(stream) == [Ping(b"p"), Message(b"abcd"), Pong(b"q")]


def test_a_close_frame_ends_parsing() -> None:
    parser = FrameParser(1024)
    stream = frame(OP_CLOSE, struct.pack("!H", 1000) + b"bye") + frame(OP_BINARY, b"late")
    assert parser.feed(stream) == [CloseReceived(1000, "bye")]
    assert parser.feed(frame(OP_BINARY, b"more")) == []
    assert FrameParser(1024).feed(frame(OP_CLOSE, b"")) == [CloseReceived(None, "")]


@pytest.mark.parametrize(
    ("stream", "code"),
    [
        (unmasked(OP_BINARY, b"x"), 1002),
        (frame(OP_BINARY, b"x", rsv=1), 1002),
        (frame(0x3, b"x"), 1002),
        (frame(0xB, b""), 1002),
        (frame(OP_CONTINUATION, b"x"), 1002),
        (frame(OP_BINARY, b"a", final=False) + frame(OP_BINARY, b"b"), 1002),
        (frame(OP_PING, b"x", final=False), 1002),
        (frame(OP_PING, b"x" * 126), 1002),
        (frame(OP_CLOSE, b"\x03"), 1002),
        (frame(OP_CLOSE, struct.pack("!H", 1005)), 1002),
        (frame(OP_CLOSE, struct.pack("!H", 999)), 1002),
        (frame(OP_CLOSE, struct.pack("!H", 5000)), 1002),
        (frame(OP_CLOSE, struct.pack("!H", 1000) + b"\xff"), 1007),
        (frame(OP_TEXT, b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"), 1007),
        (frame(OP_TEXT, b"\xf4\x90\x80\x80", final=False), 1007),
        (frame(OP_BINARY, b"x" * 1025), 1009),
        (frame(OP_BINARY, b"x" * 600, final=False) + frame(OP_CONTINUATION, b"y" * 600), 1009),
    ],
)
def test_forbidden_frames_raise_the_close_code_rfc_6455_asks_for(stream: bytes, code: int) -> None:
    with pytest.raises(WebSocketError) as caught:
        FrameParser(max_message_bytes=1024).feed(stream)
    assert caught.value.close_code == code


def test_an_oversized_frame_is_refused_from_its_header_alone() -> None:
    header = bytes((0x80 | OP_BINARY, 0x80 | 127)) + (1 << 40).to_bytes(8, "big") + b"mask"
    with pytest.raises(WebSocketError) as caught:
        FrameParser(1024).feed(header)
    assert caught.value.close_code == 1009


def test_invalid_utf8_fails_at_the_first_bad_fragment_not_at_the_end() -> None:
    parser = FrameParser(1024)
    assert parser.feed(frame(OP_TEXT, b"ok", final=False)) == []
    with pytest.raises(WebSocketError):
        parser.feed(frame(OP_CONTINUATION, b"\xc0\xaf", final=False))


@given(st.binary(max_size=200))
def test_arbitrary_bytes_either_parse_or_raise_a_websocket_error(data: bytes) -> None:
    parser = FrameParser(1024)
    try:
        events = parser.feed(data)
    except WebSocketError as exc:
        code = exc.close_code
    else:
        assert all(isinstance(e, Message | Ping | Pong | CloseReceived) for e in events)
        return
    assert code in (1002, 1007, 1009)


def test_messages_before_a_bad_frame_in_the_same_read_are_kept_on_the_error() -> None:
    stream = frame(OP_TEXT, b"hi") + frame(OP_BINARY, b"x", rsv=2)
    with pytest.raises(WebSocketError) as caught:
        FrameParser(1024).feed(stream)
    assert caught.value.close_code == 1002
    assert caught.value.events == [Message("hi")]


def test_invalid_utf8_in_a_text_frame_fails_before_the_frame_is_complete() -> None:
    parser = FrameParser(1024)
    whole = frame(OP_TEXT, b"ok\xff" + b"a" * 50)
    with pytest.raises(WebSocketError) as caught:
        parser.feed(whole[:12])  # header, mask and a few bytes, the bad one among them
    assert caught.value.close_code == 1007
