"""Snapshot/delta sync, pure, with property tests: the mirror always equals the server."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gameserver import protocol
from gameserver.errors import DesyncError, ProtocolError
from gameserver.sync import (
    Mirror,
    StateHistory,
    build_payload,
    decode_delta_cells,
    decode_snapshot_cells,
    decode_varints,
    encode_delta_cells,
    encode_snapshot_cells,
    encode_varints,
    unzigzag,
    zigzag,
)

INT32 = st.integers(min_value=-(2**31), max_value=2**31 - 1)
SHAPE = (4, 3)


@given(st.lists(st.integers(min_value=0, max_value=2**64 - 1), max_size=50))
def test_varints_round_trip_the_whole_uint64_range(values: list[int]) -> None:
    array = np.array(values, dtype=np.uint64)
    assert decode_varints(encode_varints(array), len(values)).tolist() == values


@given(st.lists(st.integers(min_value=-(2**63), max_value=2**63 - 1), max_size=50))
def test_zigzag_round_trips_and_keeps_small_values_small(values: list[int]) -> None:
    array = np.array(values, dtype=np.int64)
    assert unzigzag(zigzag(array)).tolist() == values
    assert zigzag(np.array([0, -1, 1, -2], dtype=np.int64)).tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize(
    ("data", "count"),
    [(b"\x80", 1), (b"\x01\x02", 1), (b"\x01", 2), (b"\xff" * 10 + b"\x01", 1), (b"", 1)],
)
def test_malformed_varints_are_protocol_errors(data: bytes, count: int) -> None:
    with pytest.raises(ProtocolError):
        decode_varints(data, count)


states = st.lists(INT32, min_size=12, max_size=12).map(
    lambda v: np.array(v, dtype=np.int32).reshape(SHAPE)
)


@given(states, states)
def test_cells_round_trip_as_snapshot_and_as_delta(a: np.ndarray, b: np.ndarray) -> None:
    assert np.array_equal(decode_snapshot_cells(encode_snapshot_cells(a), SHAPE), a)
    mask, values = encode_delta_cells(a, b)
    assert np.array_equal(decode_delta_cells(a, mask, values), b)


def test_a_delta_with_stray_mask_bits_or_values_is_refused() -> None:
    base = np.zeros(SHAPE, dtype=np.int32)
    with pytest.raises(ProtocolError):
        decode_delta_cells(base, b"\x00\x10", b"")  # bit 12 is past the last cell
    with pytest.raises(ProtocolError):
        decode_delta_cells(base, b"\x01\x00", b"\x02\x02")  # one bit, two values
    with pytest.raises(ProtocolError):
        decode_delta_cells(base, b"\x01", b"\x02")  # mask too short


# A scenario: per tick, how the state changes, whether the server sends a frame
# that tick, whether the frame is lost, how many ticks it is delayed, and
# whether the client acknowledges what it holds.
tick_plans = st.lists(
    st.tuples(
        st.lists(st.tuples(st.integers(0, 11), INT32 | st.integers(-300, 300)), max_size=4),
        st.booleans(),  # a frame is sent
        st.booleans(),  # it is lost
        st.integers(0, 4),  # delivery delay in ticks
        st.booleans(),  # the client acks after receiving
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(tick_plans, st.integers(2, 8))
def test_the_mirror_equals_the_server_state_whatever_is_lost_or_late(
    plan: list[tuple[list[tuple[int, int]], bool, bool, int, bool]], depth: int
) -> None:
    history = StateHistory(1, *SHAPE, depth=depth)
    mirror = Mirror(*SHAPE)
    state = np.zeros(SHAPE, dtype=np.int64)
    truth: dict[int, np.ndarray] = {}
    in_flight: list[tuple[int, bytes]] = []
    ack = -1
    for tick, (changes, send, lost, delay, acks) in enumerate(plan, start=1):
        for cell, value in changes:
            state.flat[cell] = np.clip(state.flat[cell] + value, -(2**31), 2**31 - 1)
        current = state.astype(np.int32)
        truth[tick] = current.copy()
        history.record(tick, current[None])
        if send:
            payload = build_payload(history, 0, tick, ack)
            data = (
                protocol.encode_snapshot(tick, payload.checksum, 0, payload.values)
                if payload.baseline_tick < 0
                else protocol.encode_delta(
                    tick, payload.baseline_tick, payload.checksum, 0, payload.mask, payload.values
                )
            )
            if not lost:
                in_flight.append((tick + delay, data))
        arrived = [d for t, d in in_flight if t <= tick]
        in_flight = [(t, d) for t, d in in_flight if t > tick]
        for data in arrived:
            frame = protocol.decode_server_message(data)
            assert isinstance(frame, protocol.Snapshot | protocol.Delta)
            mirror.apply(frame)
            if mirror.tick >= 0:
                assert np.array_equal(mirror.state, truth[mirror.tick])
        if acks and mirror.tick > ack:
            ack = mirror.tick


def test_a_corrupted_frame_is_detected_by_its_checksum() -> None:
    history = StateHistory(1, *SHAPE)
    history.record(1, np.arange(12, dtype=np.int32).reshape(1, *SHAPE))
    payload = build_payload(history, 0, 1, -1)
    mirror = Mirror(*SHAPE)
    with pytest.raises(DesyncError):
        mirror.apply(protocol.Snapshot(1, payload.checksum ^ 1, 0, payload.values))
    assert mirror.tick == -1


def test_a_delta_against_a_forgotten_baseline_is_skipped_not_applied() -> None:
    mirror = Mirror(*SHAPE)
    frame = protocol.Delta(
        tick=5, baseline_tick=3, checksum=0, input_seq=0, mask=b"\0\0", values=b""
    )
    assert mirror.apply(frame) is False
    assert mirror.missing_baselines == 1
    assert mirror.tick == -1


def test_the_server_falls_back_to_a_snapshot_when_the_ack_left_the_ring() -> None:
    history = StateHistory(1, *SHAPE, depth=4)
    for tick in range(1, 10):
        history.record(tick, np.full((1, *SHAPE), tick, dtype=np.int32))
    assert build_payload(history, 0, 9, 8).baseline_tick == 8
    assert build_payload(history, 0, 9, 2).baseline_tick == -1
    assert build_payload(history, 0, 9, -1).baseline_tick == -1
