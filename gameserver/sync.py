"""Snapshot/delta state sync: the Quake 3 model over quantised integer state.

Pure code. The server records the quantised state of every match at every
tick in a ring (:class:`StateHistory`). Each client acknowledges the newest
tick it has reconstructed; its next frame is a delta against that tick, or a
full snapshot when it has acknowledged nothing or the tick has left the ring.
Because the state is integers, a delta is exact: the client's mirror
(:class:`Mirror`) reproduces the server's state bit for bit, which the CRC-32
carried in every frame proves.

Cell encoding (documented in docs/protocol.md): a state is an
``int32[slots, fields]`` array taken row-major. A snapshot lists every cell
as a zigzag LEB128 varint. A delta sends a bitmask of the cells that changed
and, for those cells only, ``current - baseline`` as zigzag varints.
"""

from __future__ import annotations

import zlib
from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from .errors import DesyncError, ProtocolError
from .protocol import Delta, Snapshot

Int32Array = npt.NDArray[np.int32]
_U64 = npt.NDArray[np.uint64]

#: How many recent ticks the server keeps as possible baselines (Quake 3 keeps 32).
DEFAULT_HISTORY_TICKS = 32
#: A client keeps more states than the server's ring, so any tick it acknowledged
#: and the server may still use as a baseline is still in the client's ring.
DEFAULT_MIRROR_TICKS = 64

_INT32_MIN = np.iinfo(np.int32).min
_INT32_MAX = np.iinfo(np.int32).max
_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)  # 7-bit groups of a 64-bit value
_THRESHOLDS = np.array([1 << s for s in range(7, 64, 7)], dtype=np.uint64)


# ------------------------------------------------------------------ varint codec
def zigzag(values: npt.NDArray[np.int64]) -> _U64:
    """Map signed to unsigned so small magnitudes stay small: 0,-1,1,-2 -> 0,1,2,3."""
    v = values.astype(np.int64, copy=False)
    return ((v << 1) ^ (v >> 63)).view(np.uint64)


def unzigzag(values: _U64) -> npt.NDArray[np.int64]:
    """Inverse of :func:`zigzag`."""
    v = values.astype(np.uint64, copy=False)
    return ((v >> np.uint64(1)).view(np.int64)) ^ -((v & np.uint64(1)).view(np.int64))


def _varint_lengths(values: _U64) -> npt.NDArray[np.int64]:
    """Bytes each value takes as a LEB128 varint."""
    return 1 + np.searchsorted(_THRESHOLDS, values, side="right").astype(np.int64)


def encode_varints(values: _U64) -> bytes:
    """LEB128 varints of unsigned values (7 bits a byte, high bit = more follow)."""
    if values.size == 0:
        return b""
    lengths = _varint_lengths(values)
    owner = np.repeat(np.arange(values.size), lengths)
    starts = np.cumsum(lengths) - lengths
    index = np.arange(owner.size) - starts[owner]
    out = (values[owner] >> _SHIFTS[index]) & np.uint64(0x7F)
    out |= np.where(index < lengths[owner] - 1, np.uint64(0x80), np.uint64(0))
    return bytes(out.astype(np.uint8).tobytes())


def decode_varints(data: bytes, count: int) -> _U64:
    """Exactly ``count`` LEB128 varints from ``data``; :class:`ProtocolError` otherwise."""
    raw = np.frombuffer(data, dtype=np.uint8)
    if raw.size == 0:
        if count:
            raise ProtocolError(f"expected {count} varints, got none")
        return np.zeros(0, dtype=np.uint64)
    last = (raw & 0x80) == 0
    ends = np.flatnonzero(last)
    if ends.size != count or not last[-1]:
        raise ProtocolError(f"expected {count} varints, got {ends.size} and trailing bytes")
    starts = np.empty_like(ends)
    starts[0] = 0
    starts[1:] = ends[:-1] + 1
    lengths = ends - starts + 1
    if int(lengths.max()) > 10:
        raise ProtocolError("varint longer than 10 bytes")
    if (raw[ends[lengths == 10]] > 1).any():  # a 10th byte holds bit 63 only
        raise ProtocolError("varint exceeds 64 bits")
    owner = np.cumsum(last) - last
    index = np.arange(raw.size) - starts[owner]
    parts = (raw & 0x7F).astype(np.uint64) << _SHIFTS[index]
    return np.add.reduceat(parts, starts).astype(np.uint64)


# ------------------------------------------------------------------ cell codec
def checksum(state: Int32Array) -> int:
    """CRC-32 (zlib's) of the state's cells as little-endian int32, row-major."""
    return zlib.crc32(np.ascontiguousarray(state, dtype="<i4").tobytes())


def encode_snapshot_cells(state: Int32Array) -> bytes:
    """Every cell of ``state`` as zigzag varints."""
    return encode_varints(zigzag(state.astype(np.int64).ravel()))


def decode_snapshot_cells(values: bytes, shape: tuple[int, int]) -> Int32Array:
    """Inverse of :func:`encode_snapshot_cells`."""
    cells = unzigzag(decode_varints(values, shape[0] * shape[1]))
    return _to_int32(cells).reshape(shape)


def encode_delta_cells(
    baseline: Int32Array | npt.NDArray[np.int64], current: Int32Array
) -> tuple[bytes, bytes]:
    """``(mask, values)``: which cells differ from ``baseline`` (or a prediction), by how much."""
    diff = current.astype(np.int64).ravel() - baseline.astype(np.int64).ravel()
    changed = diff != 0
    mask = np.packbits(changed, bitorder="little").tobytes()
    return mask, encode_varints(zigzag(diff[changed]))


def decode_delta_cells(
    baseline: Int32Array | npt.NDArray[np.int64], mask: bytes, values: bytes
) -> Int32Array:
    """Inverse of :func:`encode_delta_cells`; :class:`ProtocolError` on a malformed delta."""
    cells = baseline.size
    if len(mask) != (cells + 7) // 8:
        raise ProtocolError(f"delta mask of {len(mask)} bytes for {cells} cells")
    bits = np.unpackbits(np.frombuffer(mask, dtype=np.uint8), bitorder="little")
    if bits[cells:].any():
        raise ProtocolError("delta mask has bits past the last cell")
    changed = bits[:cells].astype(bool)
    diff = unzigzag(decode_varints(values, int(changed.sum())))
    out = baseline.astype(np.int64).ravel()
    out[changed] += diff
    return _to_int32(out).reshape(baseline.shape)


def predict(
    baseline: Int32Array,
    reference: Int32Array | None,
    baseline_age: int,
    reference_age: int,
    extrapolate: npt.NDArray[np.bool_] | None,
) -> npt.NDArray[np.int64]:
    """The state a delta is taken against: the baseline, with its smoothly moving
    fields carried forward along the line from the reference state.

    For a field the schema marks ``extrapolate`` (positions, headings, speeds),
    ``baseline + floor((baseline - reference) * baseline_age / reference_age)``,
    where ``baseline_age`` is ticks from the baseline to the frame's tick and
    ``reference_age`` ticks from the reference to the baseline. A car moving
    steadily then differs from the prediction by a few units, not by its whole
    motion since the baseline, so its varints shrink. Without a reference the
    prediction is the baseline itself. Integer arithmetic only, so client and
    server agree exactly.
    """
    out = baseline.astype(np.int64)
    if reference is None or reference_age <= 0 or extrapolate is None or not extrapolate.any():
        return out
    moving = out[:, extrapolate]
    start = reference[:, extrapolate].astype(np.int64)
    out[:, extrapolate] = moving + (moving - start) * baseline_age // reference_age
    return out


def _to_int32(cells: npt.NDArray[np.int64]) -> Int32Array:
    if cells.size and (cells.min() < _INT32_MIN or cells.max() > _INT32_MAX):
        raise ProtocolError("state cell outside int32")
    return cells.astype(np.int32)


# ------------------------------------------------------------------ server side
class StateHistory:
    """The quantised state of every match row at each of the last ``depth`` ticks.

    One ring for all rows, so recording a tick is one numpy copy whatever the
    number of matches.
    """

    def __init__(self, rows: int, slots: int, fields: int, depth: int = DEFAULT_HISTORY_TICKS):
        if depth < 2:
            raise ValueError("history depth must be at least 2 ticks")
        self.depth = depth
        self._states = np.zeros((depth, rows, slots, fields), dtype=np.int32)
        self._ticks = np.full(depth, -1, dtype=np.int64)
        self._checksums: dict[tuple[int, int], int] = {}
        self._checksum_tick = -1

    @property
    def rows(self) -> int:
        return int(self._states.shape[1])

    def grow(self, rows: int) -> None:
        """Make room for ``rows`` match rows, keeping what is recorded."""
        if rows <= self.rows:
            return
        depth, old, slots, fields = self._states.shape
        grown = np.zeros((depth, rows, slots, fields), dtype=np.int32)
        grown[:, :old] = self._states
        self._states = grown

    def record(self, tick: int, state: Int32Array) -> None:
        """Keep ``state`` (all rows) as the state at ``tick``."""
        if state.shape[0] > self.rows:
            self.grow(state.shape[0])
        at = tick % self.depth
        self._states[at, : state.shape[0]] = state
        self._ticks[at] = tick

    def get(self, row: int, tick: int) -> Int32Array | None:
        """The state of ``row`` at ``tick``, or None when it is not in the ring."""
        if tick < 0:
            return None
        at = tick % self.depth
        if self._ticks[at] != tick:
            return None
        state: Int32Array = self._states[at, row]
        return state

    def checksums(self, tick: int, rows: npt.NDArray[np.int64]) -> list[int]:
        """:meth:`checksum` of many rows at ``tick``, from one copy of the tick's states."""
        at = tick % self.depth
        if self._ticks[at] != tick:
            raise KeyError(f"tick {tick} is not in the history")
        data = np.ascontiguousarray(self._states[at, rows], dtype="<i4").tobytes()
        size = len(data) // max(1, len(rows))
        crc32 = zlib.crc32
        return [crc32(data[i : i + size]) for i in range(0, len(data), size)]

    def checksum(self, row: int, tick: int) -> int:
        """CRC-32 of a recorded state, computed once per row and tick."""
        if tick != self._checksum_tick:
            self._checksums.clear()
            self._checksum_tick = tick
        key = (row, tick)
        value = self._checksums.get(key)
        if value is None:
            state = self.get(row, tick)
            if state is None:
                raise KeyError(f"tick {tick} is not in the history")
            value = self._checksums[key] = checksum(state)
        return value


class FramePayload(NamedTuple):
    """What a frame carries for one row at one tick, against one baseline.

    A named tuple: a tick builds hundreds of them, and a tuple is the cheapest
    immutable record to make.
    """

    tick: int
    baseline_tick: int  # -1: a full snapshot
    checksum: int
    mask: bytes
    values: bytes
    reference_tick: int = -1  # -1: no extrapolation


def build_payload(
    history: StateHistory,
    row: int,
    tick: int,
    ack_tick: int,
    reference_tick: int = -1,
    extrapolate: npt.NDArray[np.bool_] | None = None,
) -> FramePayload:
    """The frame for a client that holds ``ack_tick`` (and ``reference_tick``, an
    older tick it acknowledged): a delta when possible, else a snapshot."""
    current = history.get(row, tick)
    if current is None:
        raise KeyError(f"tick {tick} is not in the history")
    crc = history.checksum(row, tick)
    baseline = history.get(row, ack_tick) if 0 <= ack_tick < tick else None
    if baseline is None:
        return FramePayload(tick, -1, crc, b"", encode_snapshot_cells(current))
    reference = history.get(row, reference_tick) if 0 <= reference_tick < ack_tick else None
    if reference is None:
        reference_tick = -1
    predicted = predict(
        baseline, reference, tick - ack_tick, ack_tick - reference_tick, extrapolate
    )
    mask, values = encode_delta_cells(predicted, current)
    return FramePayload(tick, ack_tick, crc, mask, values, reference_tick)


def build_payloads(
    history: StateHistory,
    requests: list[tuple[int, int, int]],
    tick: int,
    extrapolate: npt.NDArray[np.bool_] | None = None,
) -> list[FramePayload]:
    """:func:`build_payload` for many ``(row, ack_tick, reference_tick)`` at once, in one batch.

    The cost of a tick's frames must not grow with the number of matches in
    numpy calls (each costs about a microsecond whatever its size), so every
    requested baseline of every match is diffed, masked and varint-encoded
    together, and only the final slicing into per-request bytes is per pair.
    Each result equals what :func:`build_payload` gives for that pair.
    """
    if not requests:
        return []
    columns = np.array(requests, dtype=np.int64).reshape(-1, 3)
    rows, acks, refs = columns[:, 0], columns[:, 1], columns[:, 2]
    states, ticks = history._states, history._ticks
    depth = history.depth
    at = tick % depth
    if ticks[at] != tick:
        raise KeyError(f"tick {tick} is not in the history")
    current = states[at, rows].reshape(len(requests), -1).astype(np.int64)
    has_baseline = (acks >= 0) & (acks < tick) & (ticks[acks % depth] == acks)
    baseline = states[acks % depth, rows].reshape(len(requests), -1).astype(np.int64)
    baseline[~has_baseline] = 0  # a snapshot is a delta against all zeros, every cell sent
    has_reference = has_baseline & (refs >= 0) & (refs < acks) & (ticks[refs % depth] == refs)
    if extrapolate is not None and extrapolate.any() and has_reference.any():
        count, slots, fields = len(requests), *states.shape[2:]
        base = baseline.reshape(count, slots, fields)
        reference = states[refs % depth, rows].astype(np.int64)
        baseline_age = (tick - acks)[:, None, None]
        reference_age = np.where(has_reference, acks - refs, 1)[:, None, None]
        ahead = base + (base - reference) * baseline_age // reference_age
        use = has_reference[:, None, None] & extrapolate[None, None, :]
        baseline = np.where(use, ahead, base).reshape(count, -1)
    diff = current - baseline
    send = (diff != 0) | ~has_baseline[:, None]
    encoded = zigzag(diff[send])
    values = encode_varints(encoded)
    # Bytes each request's varints take: split the one encoded buffer by them.
    lengths = np.zeros(send.shape, dtype=np.int64)
    lengths[send] = _varint_lengths(encoded)
    ends = np.cumsum(lengths.sum(axis=1)).tolist()
    masks = np.packbits(send, axis=1, bitorder="little")
    mask_bytes = masks.tobytes()
    width = masks.shape[1]
    crcs = history.checksums(tick, rows)
    payloads = []
    start = 0
    at = 0
    for (_, ack, ref), end, delta, referenced, crc in zip(
        requests, ends, has_baseline.tolist(), has_reference.tolist(), crcs, strict=True
    ):
        if delta:
            mask, cells = mask_bytes[at : at + width], values[start:end]
            payload = FramePayload(tick, ack, crc, mask, cells, ref if referenced else -1)
        else:
            payload = FramePayload(tick, -1, crc, b"", values[start:end])
        payloads.append(payload)
        start = end
        at += width
    return payloads


# ------------------------------------------------------------------ client side
class Mirror:
    """A client's copy of one match's state, rebuilt from snapshots and deltas.

    It keeps the last ``depth`` states it reconstructed, keyed by tick, since
    the server may build a delta against any tick the client acknowledged.
    """

    def __init__(
        self,
        slots: int,
        fields: int,
        depth: int = DEFAULT_MIRROR_TICKS,
        *,
        extrapolate: Sequence[bool] | None = None,
    ) -> None:
        self.shape = (slots, fields)
        self.depth = depth
        flags = [False] * fields if extrapolate is None else list(extrapolate)
        if len(flags) != fields:
            raise ValueError(f"{len(flags)} extrapolate flags for {fields} fields")
        self.extrapolate = np.array(flags, dtype=bool)
        self._mask_bytes = (slots * fields + 7) // 8
        self._states: dict[int, Int32Array] = {}
        self.tick = -1
        self.state: Int32Array = np.zeros(self.shape, dtype=np.int32)
        self.frames = 0
        self.late_frames = 0
        self.missing_baselines = 0

    @classmethod
    def for_schema(cls, schema: Mapping[str, Any], depth: int = DEFAULT_MIRROR_TICKS) -> Mirror:
        """A mirror shaped by a WELCOME's schema (fields that extrapolate included)."""
        fields = schema["fields"]
        flags = [bool(f[3]) if len(f) > 3 else False for f in fields]
        return cls(int(schema["slots"]), len(fields), depth, extrapolate=flags)

    def apply(self, frame: Snapshot | Delta) -> bool:
        """Rebuild the state a frame describes and check its checksum.

        Returns True when the frame is the newest state so far (``self.state``
        moved on), False for a late frame or one whose baseline this mirror no
        longer holds. Raises :class:`DesyncError` when the rebuilt state does
        not match the frame's checksum, :class:`ProtocolError` when malformed.
        """
        if isinstance(frame, Snapshot):
            state = decode_snapshot_cells(frame.values, self.shape)
        else:
            baseline = self._states.get(frame.baseline_tick)
            reference = None
            if frame.reference_tick >= 0:
                reference = self._states.get(frame.reference_tick)
            if baseline is None or (reference is None and frame.reference_tick >= 0):
                self.missing_baselines += 1
                return False
            predicted = predict(
                baseline,
                reference,
                frame.tick - frame.baseline_tick,
                frame.baseline_tick - frame.reference_tick,
                self.extrapolate,
            )
            cells = frame.cells
            mask, values = cells[: self._mask_bytes], cells[self._mask_bytes :]
            state = decode_delta_cells(predicted, mask, values)
        if checksum(state) != frame.checksum:
            raise DesyncError(f"checksum mismatch at tick {frame.tick}")
        self.frames += 1
        self._states[frame.tick] = state
        if len(self._states) > self.depth:
            for old in sorted(self._states)[: len(self._states) - self.depth]:
                del self._states[old]
        if frame.tick <= self.tick:
            self.late_frames += 1
            return False
        self.tick = frame.tick
        self.state = state
        return True

    def reset(self) -> None:
        """Forget every state (after a desync): the next frame must be a snapshot."""
        self._states.clear()
        self.tick = -1
        self.state = np.zeros(self.shape, dtype=np.int32)
