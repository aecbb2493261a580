"""Snapshot/delta sync, pure: the codec against the documented encoding, and the mirror
always equal to the server, whatever is lost, late, reordered or corrupted."""

from __future__ import annotations

import struct
import zlib
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
import pytest
from hypothesis import event, given, settings
from hypothesis import strategies as st

from gameserver import protocol
from gameserver.errors import DesyncError, ProtocolError
from gameserver.sync import (
    DEFAULT_HISTORY_TICKS,
    DEFAULT_MIRROR_TICKS,
    Int32Array,
    Mirror,
    StateHistory,
    build_payload,
    build_payloads,
    checksum,
    decode_delta_cells,
    decode_snapshot_cells,
    decode_varints,
    encode_delta_cells,
    encode_snapshot_cells,
    encode_varints,
    unzigzag,
    zigzag,
)

INT32_MIN, INT32_MAX = -(2**31), 2**31 - 1
INT32 = st.integers(INT32_MIN, INT32_MAX)
#: int32 values with the extremes and small values drawn often.
CELLS = st.sampled_from([INT32_MIN, INT32_MIN + 1, -1, 0, 1, INT32_MAX - 1, INT32_MAX]) | INT32
UINT64 = st.integers(0, 2**64 - 1)
INT64 = st.integers(-(2**63), 2**63 - 1)


# ------------------------------------------------------------------ reference encoders
# Written from docs/protocol.md, independently of the numpy implementation.
def reference_zigzag(n: int) -> int:
    return ((n << 1) ^ (n >> 63)) & (2**64 - 1)


def reference_varint(z: int) -> bytes:
    out = bytearray()
    while True:
        low, z = z & 0x7F, z >> 7
        out.append(low | (0x80 if z else 0))
        if not z:
            return bytes(out)


def reference_snapshot(state: Int32Array) -> bytes:
    return b"".join(reference_varint(reference_zigzag(int(c))) for c in state.ravel())


def reference_delta(baseline: Int32Array, current: Int32Array) -> tuple[bytes, bytes]:
    cells = list(zip(baseline.ravel().tolist(), current.ravel().tolist(), strict=True))
    mask = bytearray((len(cells) + 7) // 8)
    values = b""
    for i, (old, new) in enumerate(cells):
        if old != new:
            mask[i // 8] |= 1 << (i % 8)
            values += reference_varint(reference_zigzag(new - old))
    return bytes(mask), values


def reference_checksum(state: Int32Array) -> int:
    cells = state.ravel().tolist()
    return zlib.crc32(struct.pack(f"<{len(cells)}i", *cells))


@st.composite
def states(draw: st.DrawFn, shape: tuple[int, int] | None = None) -> Int32Array:
    slots, fields = shape or (draw(st.integers(1, 5)), draw(st.integers(1, 9)))
    cells = draw(st.lists(CELLS, min_size=slots * fields, max_size=slots * fields))
    return np.array(cells, dtype=np.int32).reshape(slots, fields)


@st.composite
def state_pairs(draw: st.DrawFn) -> tuple[Int32Array, Int32Array]:
    """A baseline and a current state of one shape, often sharing cells."""
    baseline = draw(states())
    current = baseline.copy()
    for cell in draw(st.lists(st.integers(0, baseline.size - 1), max_size=baseline.size)):
        current.flat[cell] = draw(CELLS)
    return baseline, current


# ------------------------------------------------------------------ varints
@given(st.lists(UINT64, max_size=40))
def test_varints_round_trip_the_whole_uint64_range(values: list[int]) -> None:
    data = encode_varints(np.array(values, dtype=np.uint64))
    assert data == b"".join(map(reference_varint, values))
    assert decode_varints(data, len(values)).tolist() == values


@given(st.lists(INT64, max_size=40))
def test_zigzag_round_trips_the_whole_int64_range(values: list[int]) -> None:
    zigzagged = zigzag(np.array(values, dtype=np.int64))
    assert zigzagged.dtype == np.uint64
    assert zigzagged.tolist() == [reference_zigzag(v) for v in values]
    assert unzigzag(zigzagged).tolist() == values


@given(st.lists(INT32, max_size=40))
def test_int32_values_round_trip_through_zigzag_varints(values: list[int]) -> None:
    data = encode_varints(zigzag(np.array(values, dtype=np.int64)))
    assert unzigzag(decode_varints(data, len(values))).tolist() == values
    assert all(len(reference_varint(reference_zigzag(v))) <= 5 for v in values)


def test_zigzag_keeps_small_magnitudes_small() -> None:
    values = np.array([0, -1, 1, -2, 2, INT32_MAX, INT32_MIN], dtype=np.int64)
    assert zigzag(values).tolist() == [0, 1, 2, 3, 4, 2**32 - 2, 2**32 - 1]


def test_documented_varint_examples() -> None:
    values = np.array([0, 127, 128, 1999], dtype=np.uint64)
    assert encode_varints(values) == bytes.fromhex("00 7f 80 01 cf 0f")
    assert encode_varints(np.array([2**64 - 1], dtype=np.uint64)) == b"\xff" * 9 + b"\x01"


@pytest.mark.parametrize(
    ("data", "count"),
    [
        (b"", 1),  # nothing
        (b"\x80", 1),  # ends inside a varint
        (b"\x01\x80", 2),  # the last one unfinished
        (b"\x01\x02", 1),  # one too many
        (b"\x01", 2),  # one too few
        (b"\x01", 0),  # bytes where none are expected
        (b"\x80" * 10 + b"\x00", 1),  # 11 bytes
        (b"\xff" * 9 + b"\x02", 1),  # 2**64: past 64 bits
        (b"\x80" * 9 + b"\x7f", 1),  # bits past 64 that would wrap to 0
    ],
    ids=repr,
)
def test_malformed_varints_are_protocol_errors(data: bytes, count: int) -> None:
    with pytest.raises(ProtocolError):
        decode_varints(data, count)


@given(st.binary(max_size=40), st.integers(0, 12))
def test_any_bytes_decode_to_varints_or_a_protocol_error(data: bytes, count: int) -> None:
    try:
        values = decode_varints(data, count)
    except ProtocolError:
        return
    assert values.shape == (count,)
    assert decode_varints(encode_varints(values), count).tolist() == values.tolist()


def test_no_varints_from_no_bytes() -> None:
    assert decode_varints(b"", 0).tolist() == []
    assert encode_varints(np.zeros(0, dtype=np.uint64)) == b""


# ------------------------------------------------------------------ cells
@settings(max_examples=50)
@given(states())
def test_snapshot_cells_round_trip_and_follow_the_document(state: Int32Array) -> None:
    values = encode_snapshot_cells(state)
    assert values == reference_snapshot(state)
    decoded = decode_snapshot_cells(values, state.shape)
    assert decoded.dtype == np.int32
    assert np.array_equal(decoded, state)


@settings(max_examples=50)
@given(state_pairs())
def test_delta_cells_round_trip_and_follow_the_document(
    pair: tuple[Int32Array, Int32Array],
) -> None:
    baseline, current = pair
    mask, values = encode_delta_cells(baseline, current)
    assert (mask, values) == reference_delta(baseline, current)
    decoded = decode_delta_cells(baseline, mask, values)
    assert decoded.dtype == np.int32
    assert np.array_equal(decoded, current)


@settings(max_examples=50)
@given(states())
def test_the_checksum_is_crc32_of_little_endian_int32_cells(state: Int32Array) -> None:
    assert checksum(state) == reference_checksum(state)
    assert checksum(np.asfortranarray(state)) == reference_checksum(state)


def test_an_unchanged_state_is_an_empty_delta() -> None:
    state = np.arange(12, dtype=np.int32).reshape(3, 4)
    assert encode_delta_cells(state, state.copy()) == (b"\x00\x00", b"")


def test_the_largest_jump_fits() -> None:
    low = np.full((1, 1), INT32_MIN, dtype=np.int32)
    high = np.full((1, 1), INT32_MAX, dtype=np.int32)
    mask, values = encode_delta_cells(low, high)
    assert len(values) == 5
    assert np.array_equal(decode_delta_cells(low, mask, values), high)
    assert np.array_equal(decode_delta_cells(high, *encode_delta_cells(high, low)), low)


@pytest.mark.parametrize(
    ("mask", "values"),
    [
        (b"\x00\x10", b""),  # bit 12 is past the last of 12 cells
        (b"\x01\x00", b"\x02\x02"),  # one bit, two values
        (b"\x03\x00", b"\x02"),  # two bits, one value
        (b"\x01", b"\x02"),  # mask too short
        (b"\x01\x00\x00", b"\x02"),  # mask too long
        (b"\x01\x00", b"\x80\x80\x80\x80\x10"),  # 2**31 from 0: past int32
    ],
    ids=repr,
)
def test_a_malformed_delta_is_a_protocol_error(mask: bytes, values: bytes) -> None:
    baseline = np.zeros((3, 4), dtype=np.int32)
    with pytest.raises(ProtocolError):
        decode_delta_cells(baseline, mask, values)


def test_a_delta_that_leaves_int32_is_a_protocol_error() -> None:
    baseline = np.full((1, 2), INT32_MAX, dtype=np.int32)
    with pytest.raises(ProtocolError):
        decode_delta_cells(baseline, b"\x01", b"\x02")  # +1


@pytest.mark.parametrize(
    "values",
    [b"\x00" * 5, b"\x00" * 7, b"\x80\x80\x80\x80\x10" + b"\x00" * 5, b"\x00" * 5 + b"\x80"],
    ids=repr,
)
def test_a_malformed_snapshot_is_a_protocol_error(values: bytes) -> None:
    with pytest.raises(ProtocolError):
        decode_snapshot_cells(values, (2, 3))


# ------------------------------------------------------------------ the server's history
def test_the_history_keeps_the_last_depth_ticks_of_every_row() -> None:
    history = StateHistory(2, 2, 3, depth=4)
    for tick in range(10):
        history.record(tick, np.full((2, 2, 3), tick, dtype=np.int32) + np.arange(2)[:, None, None])
    for tick in range(10):
        row1 = history.get(1, tick)
        if tick < 6:
            assert row1 is None
            assert history.get(0, tick) is None
        else:
            assert row1 is not None
            assert row1.tolist() == np.full((2, 3), tick + 1).tolist()
    assert history.get(0, -1) is None
    assert history.get(0, 10) is None


def test_the_history_grows_and_keeps_what_it_recorded() -> None:
    history = StateHistory(1, 1, 2, depth=3)
    history.record(1, np.array([[[5, 6]]], dtype=np.int32))
    history.record(2, np.ones((3, 1, 2), dtype=np.int32))  # more rows: grows
    assert history.rows == 3
    kept = history.get(0, 1)
    assert kept is not None
    assert kept.tolist() == [[5, 6]]


def test_history_checksums_are_those_of_the_recorded_states() -> None:
    history = StateHistory(2, 2, 2)
    state = np.arange(8, dtype=np.int32).reshape(2, 2, 2)
    history.record(7, state)
    assert history.checksum(1, 7) == checksum(state[1])
    with pytest.raises(KeyError):
        history.checksum(0, 6)
    with pytest.raises(ValueError, match="depth"):
        StateHistory(1, 1, 1, depth=1)


def test_the_server_falls_back_to_a_snapshot_when_it_cannot_delta() -> None:
    history = StateHistory(1, 2, 3, depth=4)
    for tick in range(1, 10):
        history.record(tick, np.full((1, 2, 3), tick, dtype=np.int32))
    assert build_payload(history, 0, 9, 8).baseline_tick == 8
    assert build_payload(history, 0, 9, 6).baseline_tick == 6
    assert build_payload(history, 0, 9, 5).baseline_tick == -1  # left the ring
    assert build_payload(history, 0, 9, -1).baseline_tick == -1  # nothing acknowledged
    assert build_payload(history, 0, 9, 9).baseline_tick == -1  # not an earlier tick
    with pytest.raises(KeyError):
        build_payload(history, 0, 3, -1)


def test_the_defaults_leave_the_client_more_states_than_the_server() -> None:
    assert DEFAULT_MIRROR_TICKS >= 2 * DEFAULT_HISTORY_TICKS


# ------------------------------------------------------------------ the mirror
def frame_of(
    history: StateHistory,
    tick: int,
    ack: int,
    seq: int = 0,
    reference: int = -1,
    extrapolate: npt.NDArray[np.bool_] | None = None,
) -> bytes:
    payload = build_payload(history, 0, tick, ack, reference, extrapolate)
    if payload.baseline_tick < 0:
        return protocol.encode_snapshot(tick, payload.checksum, seq, payload.values)
    return protocol.encode_delta(
        tick,
        payload.baseline_tick,
        payload.reference_tick,
        payload.checksum,
        seq,
        payload.mask,
        payload.values,
    )


def apply(mirror: Mirror, data: bytes) -> bool:
    frame = protocol.decode_server_message(data)
    assert isinstance(frame, protocol.Snapshot | protocol.Delta)
    return mirror.apply(frame)


def test_a_client_that_acks_every_frame_gets_deltas_against_its_last_frame() -> None:
    history = StateHistory(1, 2, 3)
    mirror = Mirror(2, 3)
    state = np.zeros((1, 2, 3), dtype=np.int32)
    for tick in range(1, 50):
        state[0, tick % 2, tick % 3] += tick
        history.record(tick, state)
        frame = protocol.decode_server_message(frame_of(history, tick, mirror.tick, seq=tick))
        assert isinstance(frame, protocol.Delta if tick > 1 else protocol.Snapshot)
        assert mirror.apply(frame) is True
        assert mirror.tick == tick
        assert np.array_equal(mirror.state, state[0])
    assert (mirror.frames, mirror.late_frames, mirror.missing_baselines) == (49, 0, 0)


def test_a_late_frame_is_kept_but_does_not_replace_the_state() -> None:
    history = StateHistory(1, 1, 2)
    for tick in (1, 2, 3):
        history.record(tick, np.full((1, 1, 2), tick, dtype=np.int32))
    mirror = Mirror(1, 2)
    assert apply(mirror, frame_of(history, 1, -1)) is True
    third, second = frame_of(history, 3, 1), frame_of(history, 2, 1)
    assert apply(mirror, third) is True
    assert apply(mirror, second) is False
    assert (mirror.tick, mirror.state.tolist(), mirror.late_frames) == (3, [[3, 3]], 1)
    # The late frame's state is held: a delta against it applies.
    history.record(4, np.full((1, 1, 2), 4, dtype=np.int32))
    assert apply(mirror, frame_of(history, 4, 2)) is True
    assert mirror.state.tolist() == [[4, 4]]


def test_a_delta_against_a_state_not_held_is_skipped_not_applied() -> None:
    mirror = Mirror(2, 3)
    frame = protocol.Delta(
        tick=5, baseline_tick=3, reference_tick=-1, checksum=0, input_seq=0, cells=b"\0"
    )
    assert mirror.apply(frame) is False
    assert (mirror.missing_baselines, mirror.tick, mirror.frames) == (1, -1, 0)


def test_the_mirror_keeps_its_newest_depth_states() -> None:
    history = StateHistory(1, 1, 1, depth=16)
    mirror = Mirror(1, 1, depth=4)
    for tick in range(1, 9):
        history.record(tick, np.full((1, 1, 1), tick, dtype=np.int32))
        assert apply(mirror, frame_of(history, tick, -1)) is True
    assert apply(mirror, frame_of(history, 8, 5)) is False  # 5 is still held: a late copy
    assert mirror.missing_baselines == 0
    assert apply(mirror, frame_of(history, 8, 4)) is False  # 4 was dropped
    assert mirror.missing_baselines == 1


def test_a_reset_mirror_holds_nothing() -> None:
    history = StateHistory(1, 1, 2)
    history.record(1, np.ones((1, 1, 2), dtype=np.int32))
    history.record(2, np.full((1, 1, 2), 2, dtype=np.int32))
    mirror = Mirror(1, 2)
    apply(mirror, frame_of(history, 1, -1))
    mirror.reset()
    assert (mirror.tick, mirror.state.tolist()) == (-1, [[0, 0]])
    assert apply(mirror, frame_of(history, 2, 1)) is False  # its baseline is gone
    assert apply(mirror, frame_of(history, 2, -1)) is True


def test_a_frame_with_a_wrong_checksum_is_a_desync_and_not_kept() -> None:
    history = StateHistory(1, 3, 4)
    history.record(1, np.arange(12, dtype=np.int32).reshape(1, 3, 4))
    payload = build_payload(history, 0, 1, -1)
    mirror = Mirror(3, 4)
    with pytest.raises(DesyncError):
        mirror.apply(protocol.Snapshot(1, payload.checksum ^ 1, 0, payload.values))
    assert (mirror.tick, mirror.frames) == (-1, 0)
    assert mirror.apply(protocol.Snapshot(1, payload.checksum, 0, payload.values)) is True


# ------------------------------------------------------------------ the property
@dataclass(frozen=True)
class TickPlan:
    """What happens at one tick of a scenario.

    ``changes`` are ``(cell, value)``: a value within +-300 is added to the
    cell, a larger one replaces it (a jump). ``dice`` holds 20 random bits
    that decide the rest (one draw is much cheaper than many); all zeros is
    the uneventful tick: a frame sent, delivered at once, acknowledged at once.
    """

    changes: list[tuple[int, int]]
    dice: int

    def bits(self, first: int, count: int) -> int:
        return (self.dice >> first) & ((1 << count) - 1)

    @property
    def send(self) -> bool:
        """The server sends the player a frame this tick (3 ticks in 4)."""
        return self.bits(0, 2) != 3

    @property
    def lost(self) -> bool:
        """The frame never arrives (1 in 8)."""
        return self.bits(2, 3) == 7

    @property
    def delay(self) -> int:
        """Ticks until the frame arrives (0..3)."""
        return self.bits(5, 2)

    @property
    def order(self) -> int:
        """Tie-break among frames arriving at the same tick."""
        return self.bits(7, 1)

    @property
    def corrupt(self) -> int | None:
        """A bit to flip in the frame's checksum, mask and values (1 frame in 4)."""
        return self.bits(12, 8) if self.bits(8, 2) == 3 else None

    @property
    def ack_delay(self) -> int | None:
        """Ticks until the acknowledgement the client sends after reading arrives.

        None (1 in 2): no acknowledgement this tick, or a lost one.
        """
        return (0, 2, None, None)[self.bits(10, 2)]


tick_plans = st.builds(
    TickPlan,
    changes=st.lists(st.tuples(st.integers(0, 63), st.integers(-300, 300) | CELLS), max_size=3),
    dice=st.integers(0, 2**20 - 1),
)


def corrupted(frame: protocol.Snapshot | protocol.Delta, where: int) -> bytes:
    """The frame with one bit flipped in its checksum, mask or values.

    ``where`` (0..255) picks the bit, spread over all of them.
    """
    cells = frame.cells if isinstance(frame, protocol.Delta) else frame.values
    body = bytearray(struct.pack(">I", frame.checksum) + cells)
    bit = where * len(body) * 8 // 256
    body[bit // 8] ^= 1 << (bit % 8)
    crc = struct.unpack(">I", body[:4])[0]
    rest = bytes(body[4:])
    if isinstance(frame, protocol.Delta):
        return protocol.encode_delta(
            frame.tick, frame.baseline_tick, frame.reference_tick, crc, frame.input_seq, rest, b""
        )
    return protocol.encode_snapshot(frame.tick, crc, frame.input_seq, rest)


@dataclass
class Network:
    """Frames in flight, ``(arrival tick, order, sent tick, bytes, corrupted)``, and
    acknowledgements, ``(arrival tick, acknowledged tick)``."""

    frames: list[tuple[int, int, int, bytes, bool]] = field(default_factory=list)
    acks: list[tuple[int, int]] = field(default_factory=list)

    def arriving_frames(self, now: int) -> list[tuple[int, bytes, bool]]:
        due = sorted(f for f in self.frames if f[0] <= now)
        self.frames = [f for f in self.frames if f[0] > now]
        return [(sent, data, bad) for _, _, sent, data, bad in due]

    def arriving_acks(self, now: int) -> list[int]:
        due = [tick for at, tick in self.acks if at <= now]
        self.acks = [(at, tick) for at, tick in self.acks if at > now]
        return due


@settings(max_examples=100, deadline=None)
@given(
    st.lists(tick_plans, min_size=8, max_size=40),
    st.sampled_from([2, 3, 5, 8, DEFAULT_HISTORY_TICKS]),
    st.tuples(st.integers(1, 4), st.integers(1, 6)),
    st.integers(0, 63),
)
def test_the_mirror_equals_the_server_whatever_is_lost_late_reordered_or_corrupted(
    plan: list[TickPlan], depth: int, shape: tuple[int, int], moving: int
) -> None:
    slots, fields = shape
    # Fields whose deltas are taken against an extrapolation (bit f of ``moving``).
    extrapolate = np.array([bool(moving >> f & 1) for f in range(fields)])
    # Row 1 is another match, with state of its own, sharing the history ring.
    history = StateHistory(2, slots, fields, depth=depth)
    mirror = Mirror(slots, fields, extrapolate=extrapolate.tolist())
    state = np.zeros(shape, dtype=np.int64)
    truth: dict[int, Int32Array] = {}
    network = Network()
    server_ack = -1  # the newest acknowledged tick, as the arena keeps it
    server_reference = -1  # the one acknowledged before it
    for tick, step in enumerate(plan, start=1):
        # The server steps: the state changes, it is recorded, a frame may leave.
        for cell, value in step.changes:
            at = cell % state.size
            state.flat[at] = state.flat[at] + value if abs(value) <= 300 else value
        np.clip(state, INT32_MIN, INT32_MAX, out=state)
        truth[tick] = state.astype(np.int32)
        history.record(tick, np.stack([truth[tick], truth[tick][::-1] // 3]))
        for ack in network.arriving_acks(tick):
            if server_ack < ack <= tick:
                server_reference, server_ack = server_ack, ack
            else:
                event("an acknowledgement older than one received")
        if server_ack >= 0 and history.get(0, server_ack) is None:
            event("the acknowledged tick left the history")
        if step.send and not step.lost:
            data = frame_of(history, tick, server_ack, tick, server_reference, extrapolate)
            if step.corrupt is not None:
                frame = protocol.decode_server_message(data)
                assert isinstance(frame, protocol.Snapshot | protocol.Delta)
                data = corrupted(frame, step.corrupt)
            sent = (tick + step.delay, step.order, tick, data, step.corrupt is not None)
            network.frames.append(sent)
        # The client reads what has arrived, in arrival order.
        for sent_tick, data, bad in network.arriving_frames(tick):
            frame = protocol.decode_server_message(data)
            assert isinstance(frame, protocol.Snapshot | protocol.Delta)
            before = (mirror.tick, mirror.state.copy(), mirror.frames)
            event("a DELTA" if isinstance(frame, protocol.Delta) else "a SNAPSHOT")
            if bad:
                event("a corrupted frame")
                with pytest.raises((DesyncError, ProtocolError)):
                    mirror.apply(frame)
                assert (mirror.tick, mirror.frames) == (before[0], before[2])
                assert np.array_equal(mirror.state, before[1])
                continue
            newest = mirror.apply(frame)
            assert mirror.frames == before[2] + 1, "every intact frame is applied"
            assert newest == (sent_tick > before[0])
            if not newest:
                event("a late frame")
            # The state rebuilt for the frame's tick (a scenario is shorter than
            # the mirror's depth, so it is still held).
            held = mirror._states.get(sent_tick)
            assert held is not None
            assert np.array_equal(held, truth[sent_tick])
            if mirror.tick >= 0:
                assert np.array_equal(mirror.state, truth[mirror.tick])
        assert mirror.missing_baselines == 0
        if step.ack_delay is not None and mirror.tick >= 0:
            network.acks.append((tick + step.ack_delay, mirror.tick))


@settings(max_examples=60)
@given(
    st.integers(1, 4),
    st.integers(1, 3),
    st.integers(1, 5),
    st.integers(2, 40),
    st.data(),
)
def test_batched_payloads_equal_one_payload_at_a_time(
    rows: int, slots: int, fields: int, ticks: int, data: st.DataObject
) -> None:
    """However many matches and baselines a tick serves, the batch builds the same bytes."""
    history = StateHistory(rows, slots, fields, depth=8)
    for tick in range(ticks):
        cells = data.draw(
            st.lists(CELLS, min_size=rows * slots * fields, max_size=rows * slots * fields)
        )
        history.record(tick, np.array(cells, dtype=np.int32).reshape(rows, slots, fields))
    now = ticks - 1
    requests = data.draw(
        st.lists(
            st.tuples(st.integers(0, rows - 1), st.integers(-1, now + 1), st.integers(-1, now)),
            max_size=12,
        )
    )
    extrapolate = np.array(data.draw(st.lists(st.booleans(), min_size=fields, max_size=fields)))
    expected = [
        build_payload(history, row, now, ack, ref, extrapolate) for row, ack, ref in requests
    ]
    assert build_payloads(history, requests, now, extrapolate) == expected
