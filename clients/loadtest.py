"""Load generator: one process drives many real bots over real WebSocket connections.

    python -m clients.loadtest --url ws://127.0.0.1:8765 --bots 1000 --duration 20

Every bot opens its own TCP connection, performs the WebSocket handshake,
joins by quick join (at ``--send-rate`` frames a second, if given), and sends
inputs, which acknowledge what it received, at ``--input-rate``. All sockets
are served from one process with minimal framing (:mod:`clients.wsframe`), and
the work per frame is kept small so that one core drives thousands of bots:

- A sample of bots (by default one per match) is read the moment a frame
  arrives: it times frame arrivals and input latency, and rebuilds every frame
  into a mirror whose checksum it verifies. The mirrors of all sampled bots
  are rebuilt in batches (:class:`MirrorBank`), a few numpy calls per batch.
- The other bots are not polled: once per input tick each is read once (all
  the frames that arrived since), its frames counted by walking their headers
  and its newest tick taken for the acknowledgement, and it sends its input.
  The INPUTs of a tick are encoded and masked all at once, in numpy.
- All bots steer with the shipped autopilot from their match's sampled mirror,
  in one vectorised call per tick for every match.

The report says which bots were sampled, and whether the load generator's own
CPU (over the measured window) was the bottleneck.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import os
import select
import socket
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgpack
import numpy as np
import numpy.typing as npt

from clients.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    FrameError,
    FrameReader,
    check_handshake_response,
    close_payload,
    handshake_request,
    mask_frame,
)
from gameserver import protocol
from gameserver.codes import SUBPROTOCOL, EventCode, MessageType
from gameserver.errors import ProtocolError
from gameserver.protocol import Delta, Snapshot
from gameserver.race.autopilot import drive_set
from gameserver.race.track import Track, TrackSet, load_track

CONNECTING, HANDSHAKE, JOINING, JOINED, CLOSED = range(5)
SNAPSHOT, DELTA = int(MessageType.SNAPSHOT), int(MessageType.DELTA)
INPUT = int(MessageType.INPUT)
KNOWN_TYPES = frozenset(int(t) for t in MessageType)
STATE_FRAMES = frozenset((SNAPSHOT, DELTA))
#: Bytes one read takes at most (a buffer shared by all unpolled bots).
READ_BYTES = 262144
#: Unpolled bots served between two looks at the polled (sampled) ones.
CHUNK = 128
#: Queued sampled frames that make the mirrors rebuild before the next input tick.
FLUSH_FRAMES = 2048
#: How often connection timeouts are looked for.
HOUSEKEEPING_S = 0.1

Ints = npt.NDArray[np.int64]
Floats = npt.NDArray[np.float64]


@dataclass(eq=False, slots=True)
class Bot:
    index: int
    sock: socket.socket
    started_s: float
    accept: bytes = b""
    phase: int = CONNECTING
    polled: bool = True  # in the epoll set; sampled bots stay, the others leave at WELCOME
    reader: FrameReader = field(default_factory=FrameReader)
    head: bytearray = field(default_factory=bytearray)
    handshake_s: float | None = None
    player_id: int | None = None
    match_id: int | None = None
    slot: int = -1
    view: MatchView | None = None
    sampled: bool = False
    bank: MirrorBank | None = None
    member: int = -1
    segment: int = -1  # the autopilot's nearest track segment
    frames: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    last_frame_s: float = 0.0
    gaps_s: list[float] = field(default_factory=list)
    ack_tick: int = -1
    seq: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)
    reported_seq: int = 0
    latencies_s: list[float] = field(default_factory=list)
    desyncs: int = 0
    racing: bool = False
    results: list[dict[str, Any]] | None = None
    close_code: int | None = None
    error: str | None = None
    pending: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class MatchView:
    match_id: int
    track: Track
    scales: np.ndarray
    fields: dict[str, int]
    sampler: Bot | None = None
    bots: list[Bot] = field(default_factory=list)


@dataclass
class Progress:
    """Live figures, once a second."""

    elapsed_s: float = 0.0
    bots: int = 0
    connected: int = 0
    racing: int = 0
    finished: int = 0
    frames: int = 0
    frames_per_s: float = 0.0
    kbit_per_s: float = 0.0
    bytes_down: int = 0
    errors: int = 0
    matches: int = 0


@dataclass
class Report:
    """The load test's findings; ``--json`` prints this.

    Frame inter-arrival and input latency are timed on the sampled bots (the
    others are read once per input tick); bytes, frames, results and close
    codes count every bot. ``loadgen_cpu_percent`` is the load generator's CPU
    over the measured window, as a share of one core.
    """

    bots: int
    duration_s: float
    input_rate_hz: float
    send_rate_hz: int
    sampled_bots: int
    connections_attempted: int
    connections_succeeded: int
    connections_failed: int
    failure_reasons: dict[str, int]
    handshake_p50_ms: float
    handshake_p99_ms: float
    down_bytes_per_client_s: float
    up_bytes_per_client_s: float
    frames_per_client_s: float
    bytes_per_frame: float
    input_latency_p50_ms: float
    input_latency_p99_ms: float
    input_latency_max_ms: float
    frame_jitter_p99_ms: float
    desyncs: int
    frames_verified: int
    matches_seen: int
    matches_finished: int
    results_received: int
    close_codes: dict[str, int]
    loadgen_cpu_percent: float
    loadgen_saturated: bool
    notes: list[str]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else 0.0


# ------------------------------------------------------------------ batched mirrors
#: What became of a frame queued on a :class:`MirrorBank` (``flush`` says, per frame).
APPLIED, STALE, MISSING, DESYNC, MALFORMED = range(5)
#: Ticks of states a member keeps (a Mirror keeps its last 64 states): the
#: server's baselines are at most its history (32 ticks by default) old.
BANK_DEPTH = 128
_SHIFTS = np.arange(0, 70, 7, dtype=np.uint64)
_INT32 = np.iinfo(np.int32)
_INT63_MAX = 2**63 - 1
_INT64_MIN, _UINT64_MAX = -(2**63), 2**64 - 1
_CRC_MAX = 2**32 - 1
_NO_STATES = np.zeros((0, 0), dtype=np.int32)

#: A state frame as :func:`state_frame` gives it: tick, baseline tick (-1: a
#: snapshot), reference tick (-1: none), checksum, input_seq, and the cells
#: (a delta's mask then values; a snapshot's values).
StateFrame = tuple[int, int, int, int, int, bytes]


def state_frame(payload: bytes) -> StateFrame:
    """A SNAPSHOT or DELTA, checked as :func:`gameserver.protocol.decode_server_message`
    checks it but without building the message (a hot path), ticks 0..2^63-1.

    Raises :class:`ProtocolError` (the decoder's, saying why) for anything else.
    """
    try:
        f = msgpack.unpackb(payload)
    except Exception:  # msgpack raises many types for bad bytes; the decoder says which
        f = None
    if type(f) is list and len(f) >= 5 and type(f[0]) is int:
        tick, crc = f[1], f[4] if f[0] == DELTA else f[2]
        if f[0] == DELTA and len(f) >= 7:
            age, ref_age, seq, cells = f[2], f[3], f[5], f[6]
            if (
                type(tick) is int
                and 0 <= tick <= _INT63_MAX
                and type(age) is int
                and 1 <= age <= tick
                and type(ref_age) is int
                and 0 <= ref_age <= tick - age
                and type(crc) is int
                and 0 <= crc <= _CRC_MAX
                and type(seq) is int
                and _INT64_MIN <= seq <= _UINT64_MAX
                and type(cells) is bytes
            ):
                base = tick - age
                return tick, base, base - ref_age if ref_age else -1, crc, seq, cells
        elif f[0] == SNAPSHOT:
            seq, values = f[3], f[4]
            if (
                type(tick) is int
                and 0 <= tick <= _INT63_MAX
                and type(crc) is int
                and 0 <= crc <= _CRC_MAX
                and type(seq) is int
                and _INT64_MIN <= seq <= _UINT64_MAX
                and type(values) is bytes
            ):
                return tick, -1, -1, crc, seq, values
    frame = protocol.decode_server_message(payload)  # raises, saying why
    if isinstance(frame, Delta) and frame.tick >= 0:
        return (frame.tick, frame.baseline_tick, frame.reference_tick, frame.checksum,
                frame.input_seq, frame.cells)  # fmt: skip
    raise ProtocolError(f"not a state frame with a tick in [0, 2^63-1]: {frame!r:.60}")


class MirrorBank:
    """The mirrors of many sampled bots sharing one schema, rebuilt in batches.

    Each member is what a :class:`gameserver.sync.Mirror` is to one client: the
    same prediction, cell decoding, bounds and CRC-32 check, with the same
    outcome frame for frame (the tests compare the two). But a Mirror spends
    some 30 numpy calls on every frame, which for one bot per match at 60 Hz
    is most of a core; a bank queues frames as they arrive (:meth:`submit`)
    and rebuilds them together (:meth:`flush`), for about as many calls per
    batch of hundreds. A member keeps the states of its last
    :data:`BANK_DEPTH` ticks.
    """

    def __init__(self, slots: int, fields: int, extrapolate: list[bool]) -> None:
        flags = np.array(extrapolate, dtype=bool)
        if flags.size != fields:
            raise ValueError(f"{flags.size} extrapolate flags for {fields} fields")
        self.shape = (slots, fields)
        self.cells = slots * fields
        self.mask_bytes = (self.cells + 7) // 8
        moving = np.flatnonzero(flags)
        #: The fields a delta extrapolates: a slice when contiguous (as x, y, ...).
        self._moving: slice | npt.NDArray[np.intp] | None = None
        if moving.size:
            contiguous = moving[-1] - moving[0] + 1 == moving.size
            self._moving = slice(moving[0], moving[-1] + 1) if contiguous else moving
        self._mask_at = np.arange(self.mask_bytes)
        self._states = np.zeros((0, BANK_DEPTH, self.cells), dtype=np.int32)
        self._ticks = np.full((0, BANK_DEPTH), -1, dtype=np.int64)
        #: Each member's newest state (cells, row-major) and its tick (-1: none yet).
        self.state = np.zeros((0, self.cells), dtype=np.int32)
        self.tick: list[int] = []
        #: Frames each member verified.
        self.frames: list[int] = []
        #: Verified frames not newer than their member's newest; deltas whose
        #: baseline the member did not hold (as :class:`~gameserver.sync.Mirror`).
        self.late_frames = 0
        self.missing_baselines = 0
        self._queue: list[tuple[int, int, int, int, int, bytes]] = []

    def add(self) -> int:
        """A new member (an empty mirror); its index."""
        member = len(self.tick)
        if member == self._states.shape[0]:
            grown = max(8, 2 * member)
            states = np.zeros((grown, BANK_DEPTH, self.cells), dtype=np.int32)
            states[:member] = self._states
            ticks = np.full((grown, BANK_DEPTH), -1, dtype=np.int64)
            ticks[:member] = self._ticks
            state = np.zeros((grown, self.cells), dtype=np.int32)
            state[:member] = self.state
            self._states, self._ticks, self.state = states, ticks, state
        self.tick.append(-1)
        self.frames.append(0)
        return member

    def reset(self, member: int) -> None:
        """Forget every state of ``member`` (after a desync): it needs a snapshot."""
        self._ticks[member] = -1
        self.tick[member] = -1
        self.state[member] = 0

    def submit(self, member: int, frame: StateFrame) -> None:
        """Queue a frame (as :func:`state_frame` gives it) for the next :meth:`flush`."""
        tick, base, ref, crc, _, cells = frame
        self._queue.append((member, tick, base, ref, crc, cells))

    def submit_message(self, member: int, frame: Snapshot | Delta) -> None:
        """:meth:`submit` a decoded SNAPSHOT or DELTA."""
        if isinstance(frame, Delta):
            self._queue.append((member, frame.tick, frame.baseline_tick, frame.reference_tick,
                                frame.checksum, frame.cells))  # fmt: skip
        else:
            self._queue.append((member, frame.tick, -1, -1, frame.checksum, frame.values))

    @property
    def queued(self) -> int:
        return len(self._queue)

    def flush(self) -> list[tuple[int, int, str]]:
        """Rebuild and check every queued frame: ``(member, outcome, reason)`` for
        each, in the order they were queued.

        The outcomes are what :meth:`gameserver.sync.Mirror.apply` makes of the
        frames in turn: :data:`APPLIED` (the member's newest state moved on),
        :data:`STALE` (verified, not newer), :data:`MISSING` (a baseline the
        member does not hold), :data:`DESYNC` (checksum mismatch; the member is
        reset) and :data:`MALFORMED` (``reason`` as a ProtocolError's).
        """
        queued, self._queue = self._queue, []
        results = [(item[0], MISSING, "") for item in queued]
        order = list(range(len(queued)))
        while order:
            order = self._apply(queued, order, results)
        return results

    def _apply(
        self,
        queued: list[tuple[int, int, int, int, int, bytes]],
        order: list[int],
        results: list[tuple[int, int, str]],
    ) -> list[int]:
        """One round over the frames at ``order``: those whose baselines are held,
        in one batch. A delta against a frame earlier in the queue waits for the
        next round, and so do its member's frames after it, so that each member's
        frames are applied in order, as a Mirror would. Returns the next round's.
        """
        depth, ring = BANK_DEPTH, self._ticks
        items = queued if len(order) == len(queued) else [queued[at] for at in order]
        ms, ticks, bases, refs, crcs, cells = zip(*items, strict=True)
        members = np.array(ms, dtype=np.int64)
        base = np.array(bases, dtype=np.int64)
        ref = np.array(refs, dtype=np.int64)
        held = ring[members, base % depth] == base
        held &= (ref < 0) | (ring[members, ref % depth] == ref)
        held |= base < 0
        later: list[int] = []
        if held.all():
            rows = list(range(len(items)))
        else:
            rows = []
            earlier: dict[int, set[int]] = {}  # ticks of each member's frames so far
            waiting: set[int] = set()  # members with a frame waiting for the next round
            for row, ok in enumerate(held.tolist()):
                m, tick, b, r = ms[row], ticks[row], bases[row], refs[row]
                if m in waiting:
                    later.append(order[row])
                elif ok:
                    rows.append(row)
                elif b >= 0 and (
                    b in (seen := earlier.get(m, ())) or (r in seen and ring[m, b % depth] == b)
                ):
                    later.append(order[row])
                    waiting.add(m)
                else:
                    self.missing_baselines += 1  # results[at] says MISSING already
                earlier.setdefault(m, set()).add(tick)
            if not rows:
                return later
            pick = np.array(rows, dtype=np.int64)
            members, base, ref = members[pick], base[pick], ref[pick]
            ms, ticks, crcs, cells = (tuple(c[r] for r in rows) for c in (ms, ticks, crcs, cells))
        # Rebuild; a malformed frame is left out (and the rest rebuilt again).
        good = np.ones(len(rows), dtype=bool)
        malformed: dict[int, str] = {}
        while True:
            keep = good.tolist()
            states, errors = self._rebuild(
                members[good],
                [t for t, g in zip(ticks, keep, strict=True) if g],
                base[good],
                ref[good],
                [c for c, g in zip(cells, keep, strict=True) if g],
            )
            if not errors:
                break
            kept = np.flatnonzero(good)
            for k, why in errors.items():
                malformed[int(kept[k])] = why
                good[kept[k]] = False
            if not good.any():
                break
        size = 4 * self.cells
        blob = memoryview(states.astype("<i4", copy=False).tobytes())
        crc32 = zlib.crc32
        got = [crc32(blob[at : at + size]) for at in range(0, len(blob), size)]
        newest, frames = self.tick, self.frames
        moved: dict[int, int] = {}  # member -> row of its new newest state
        desynced: set[int] = set()
        stored: list[tuple[int, int, int]] = []  # (member, tick, state row)
        srow = -1
        for k, m in enumerate(ms):
            at = order[rows[k]]
            if k in malformed:
                if m in desynced:
                    later.append(at)
                else:
                    results[at] = (m, MALFORMED, malformed[k])
                continue
            srow += 1
            if m in desynced:  # reset in this round: its other frames in the next
                later.append(at)
                continue
            tick = ticks[k]
            if got[srow] != crcs[k]:
                self.reset(m)
                desynced.add(m)
                moved.pop(m, None)
                results[at] = (m, DESYNC, f"checksum mismatch at tick {tick}")
                continue
            frames[m] += 1
            stored.append((m, tick, srow))
            if tick <= newest[m]:
                self.late_frames += 1
                results[at] = (m, STALE, "")
            else:
                newest[m] = tick
                moved[m] = srow
                results[at] = (m, APPLIED, "")
        if desynced:
            stored = [s for s in stored if s[0] not in desynced]
        if stored:
            sm, st, sr = (np.array(c, dtype=np.int64) for c in zip(*stored, strict=True))
            slot = st % depth
            newer = np.flatnonzero(ring[sm, slot] < st)
            if newer.size:  # one state per ring slot: the newest tick
                key = sm[newer] * depth + slot[newer]
                last = newer[np.lexsort((st[newer], key))]
                key = sm[last] * depth + slot[last]
                last = last[np.append(key[1:] != key[:-1], True)]
                self._states[sm[last], slot[last]] = states[sr[last]]
                ring[sm[last], slot[last]] = st[last]
        if moved:
            self.state[list(moved)] = states[list(moved.values())]
        later.sort()
        return later

    def _rebuild(
        self,
        members: Ints,
        ticks: Sequence[int],
        base: Ints,
        ref: Ints,
        cells: Sequence[bytes],
    ) -> tuple[npt.NDArray[np.int32], dict[int, str]]:
        """The states the frames describe (a row each), or which are malformed and why."""
        count, size, mask_bytes, depth = len(cells), self.cells, self.mask_bytes, BANK_DEPTH
        lengths = np.fromiter(map(len, cells), dtype=np.int64, count=count)
        delta = base >= 0
        short = np.flatnonzero(delta & (lengths < mask_bytes))
        if short.size:
            return _NO_STATES, {
                k: f"delta mask of {lengths[k]} bytes for {size} cells" for k in short.tolist()
            }
        data = np.frombuffer(b"".join(cells), dtype=np.uint8)
        ends = np.cumsum(lengths)
        starts = ends - lengths
        changed = np.ones((count, size), dtype=bool)
        rows = np.flatnonzero(delta)
        if rows.size:  # each delta's mask: the first mask_bytes of its cells
            at = starts[rows][:, None] + self._mask_at
            bits = np.unpackbits(data[at], axis=1, bitorder="little")
            past = rows[bits[:, size:].any(axis=1)]
            if past.size:
                return _NO_STATES, {
                    k: "delta mask has bits past the last cell" for k in past.tolist()
                }
            changed[rows] = bits[:, :size]
            values = np.ones(data.size, dtype=bool)
            values[at.ravel()] = False
            raw = data[values]
            lengths = lengths - mask_bytes * delta
            ends = np.cumsum(lengths)
            starts = ends - lengths
        else:
            raw = data
        # Every frame's varints as one run (sync.decode_varints, checked per frame).
        last = raw < 0x80
        seen = np.zeros(raw.size + 1, dtype=np.int64)
        np.cumsum(last, out=seen[1:])
        got = seen[ends] - seen[starts]
        expected = changed.sum(axis=1)
        closed = lengths == 0
        if raw.size:
            closed |= last[np.maximum(ends - 1, 0)]
        wrong = np.flatnonzero((got != expected) | ~closed).tolist()
        if wrong:
            return _NO_STATES, {
                k: f"expected {expected[k]} varints, got none"
                if not lengths[k]
                else f"expected {expected[k]} varints, got {got[k]} and trailing bytes"
                for k in wrong
            }
        diff = np.zeros(0, dtype=np.int64)
        stops = np.flatnonzero(last)
        if stops.size:
            firsts = np.empty_like(stops)
            firsts[0] = 0
            firsts[1:] = stops[:-1] + 1
            span = stops - firsts + 1
            errors: dict[int, str] = {}
            for bad, why in (
                (span > 10, "varint longer than 10 bytes"),
                ((span == 10) & (raw[stops] > 1), "varint exceeds 64 bits"),  # bit 63 only
            ):
                for k in (np.searchsorted(starts, stops[bad], side="right") - 1).tolist():
                    errors.setdefault(k, why)
            if errors:
                return _NO_STATES, errors
            owner = seen[1:] - last
            shifts = _SHIFTS[np.arange(raw.size) - firsts[owner]]
            value = np.add.reduceat((raw & 0x7F).astype(np.uint64) << shifts, firsts)
            value = value.astype(np.uint64)
            diff = (value >> np.uint64(1)).view(np.int64) ^ -(value & np.uint64(1)).view(np.int64)
        # What each delta is against (sync.predict); a snapshot is against zeros.
        out = np.zeros((count, size), dtype=np.int64)
        if rows.size:
            who, since = members[rows], base[rows]
            start = self._states[who, since % depth].astype(np.int64)
            if self._moving is not None:
                before = ref[rows]
                ahead = np.flatnonzero((before >= 0) & (since > before))
                if ahead.size:
                    fields = self.shape[1]
                    now = np.array(ticks, dtype=np.int64)[rows[ahead]]
                    r = self._states[who[ahead], before[ahead] % depth]
                    r = r.reshape(-1, self.shape[0], fields)[:, :, self._moving]
                    b = start[ahead].reshape(-1, self.shape[0], fields)
                    moved = b[:, :, self._moving]
                    age = (now - since[ahead])[:, None, None]
                    span_ticks = (since[ahead] - before[ahead])[:, None, None]
                    b[:, :, self._moving] = moved + (moved - r) * age // span_ticks
                    start[ahead] = b.reshape(-1, size)
            out[rows] = start
        out[changed] += diff
        state = out.astype(np.int32)
        outside = np.flatnonzero((state != out).any(axis=1))
        if outside.size:
            return _NO_STATES, dict.fromkeys(outside.tolist(), "state cell outside int32")
        return state, {}


# ------------------------------------------------------------------ inputs on the wire
#: msgpack's int headers by bytes after them (-1: a positive fixint, no header).
_INT_HEADS = {0: -1, 1: 0xCC, 2: 0xCD, 4: 0xCE, 8: 0xCF}
_FLOAT64 = 0xCB


def _int_width(values: Ints) -> Ints:
    """Bytes msgpack (shortest form) takes for each int in ``-1..2**63-1``."""
    width = np.full(values.shape, 9, dtype=np.int64)
    for limit, size in ((1 << 32, 5), (1 << 16, 3), (1 << 8, 2), (1 << 7, 1)):
        width[values < limit] = size
    width[values == -1] = 1  # a negative fixint
    return width


def _put_int(out: npt.NDArray[np.uint8], at: int, values: Ints, width: int) -> None:
    """Write ``values`` (all ``width`` bytes long in msgpack) at column ``at``."""
    if width == 1:
        out[:, at] = values.astype(np.uint8)  # -1 wraps to 0xFF, its negative fixint
        return
    out[:, at] = _INT_HEADS[width - 1]
    shifts = np.arange(8 * (width - 2), -1, -8, dtype=np.uint64)
    out[:, at + 1 : at + width] = (values.astype(np.uint64)[:, None] >> shifts) & np.uint64(0xFF)


def input_frames(seq: Ints, ack: Ints, controls: Floats, keys: bytes) -> list[memoryview]:
    """Masked client frames of INPUT ``[2, seq, ack_tick, *controls]``, one per row,
    byte for byte what ``mask_frame(OP_BINARY, msgpack.packb([...]), key)`` gives
    (ints in their shortest form, floats as float64), built in a few numpy calls
    per shape of message instead of a pack and a mask per bot."""
    count, width = controls.shape
    frames: list[memoryview] = [memoryview(b"")] * count
    if not count:
        return frames
    key = np.frombuffer(keys, dtype=np.uint8).reshape(count, 4)
    floats = np.ascontiguousarray(controls, dtype=">f8").view(np.uint8).reshape(count, width, 8)
    seq_width, ack_width = _int_width(seq), _int_width(ack)
    shape = seq_width * 16 + ack_width
    for kind in np.unique(shape).tolist():
        rows = np.flatnonzero(shape == kind)
        sw, aw = divmod(kind, 16)
        length = 2 + sw + aw + 9 * width
        if length > 125:
            raise ValueError(f"an INPUT of {length} bytes needs a longer frame header")
        out = np.empty((rows.size, 6 + length), dtype=np.uint8)
        out[:, 0] = 0x80 | OP_BINARY
        out[:, 1] = 0x80 | length
        out[:, 2:6] = key[rows]
        out[:, 6] = 0x90 | (3 + width)
        out[:, 7] = INPUT
        _put_int(out, 8, seq[rows], sw)
        _put_int(out, 8 + sw, ack[rows], aw)
        body = out[:, 8 + sw + aw :].reshape(rows.size, width, 9)
        body[:, :, 0] = _FLOAT64
        body[:, :, 1:] = floats[rows]
        out[:, 6:] ^= out[:, 2:6][:, np.arange(length) & 3]
        blob = memoryview(out.tobytes())
        size = 6 + length
        views = [blob[at : at + size] for at in range(0, len(blob), size)]
        if rows.size == count:  # one shape for all, as usual
            return views
        for row, view in zip(rows.tolist(), views, strict=True):
            frames[row] = view
    return frames


# ------------------------------------------------------------------ steering
#: Segments searched around each bot's last one (3 m each: a car does less than one
#: in an input tick at 20 Hz below 60 m/s; one found far from them is looked for anew).
WINDOW = np.arange(-1, 4)
#: A car farther than this many track widths from its window is looked for anew.
LOST_WIDTHS = 2.0


def locate(tracks: TrackSet, track_id: Ints, segment: Ints, x: Floats, y: Floats) -> Ints:
    """Each car's nearest segment, searched near its last one (``-1``: unknown)."""
    count = tracks.seg_count[track_id][:, None]
    offset = tracks.seg_offset[track_id][:, None]
    window = (segment[:, None] + WINDOW) % count + offset
    s = tracks.seg[window]
    px = x[:, None] - s[..., 0]
    py = y[:, None] - s[..., 1]
    along = np.clip(px * s[..., 2] + py * s[..., 3], 0.0, s[..., 4])
    ex, ey = px - s[..., 2] * along, py - s[..., 3] * along
    d2 = ex * ex + ey * ey
    best = d2.argmin(axis=1)
    cars = np.arange(x.size)
    found: Ints = window[cars, best] - offset[:, 0]
    far = LOST_WIDTHS * tracks.width_m[track_id]
    lost = (segment < 0) | (d2[cars, best] > far * far)
    if lost.any():
        for tid in np.unique(track_id[lost]).tolist():
            which = np.flatnonzero(lost & (track_id == tid))
            found[which] = tracks.tracks[tid].nearest(x[which], y[which])[0]
    return found


@dataclass(eq=False)
class Steering:
    """The bots of one bank's matches, as index arrays into the bank's states."""

    bank: MirrorBank
    bots: list[Bot]
    rows: Ints  # each bot's row in the tick's control array
    members: Ints  # its match's sampled bot, in the bank
    cells: Ints  # its car's first cell in that member's state
    track_id: Ints
    segment: Ints
    columns: tuple[int, ...]  # x, y, heading, speed
    scales: Floats


@dataclass(eq=False)
class Plan:
    """Who sends inputs at each input tick, and how their controls are found."""

    sampled: list[Bot]
    unpolled: list[Bot]
    steering: list[Steering]


class LoadTest:
    """Drives ``bots`` connections from one epoll loop for ``duration_s`` seconds."""

    def __init__(
        self,
        url: str,
        bots: int,
        *,
        duration_s: float,
        input_rate_hz: float = 20.0,
        send_rate_hz: int = 0,
        sample: str = "match",
        ramp_per_s: float = 500.0,
        connect_timeout_s: float = 10.0,
        until_results: bool = False,
        warmup_s: float = 0.0,
        naive: bool = False,
        max_speed_mps: float = 60.0,
        progress: Any = None,
        on_measure: Any = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"need a ws:// URL, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self.resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.count = bots
        self.duration_s = duration_s
        self.input_rate_hz = input_rate_hz
        self.send_rate_hz = send_rate_hz
        self.sample = sample
        self.ramp_per_s = ramp_per_s
        self.connect_timeout_s = connect_timeout_s
        self.until_results = until_results
        self.progress = progress
        self.warmup_s = warmup_s
        self.naive = naive
        self.max_speed_mps = max_speed_mps
        self.on_measure = on_measure
        if naive:
            self.sample = "none"
        self.bots: list[Bot] = []
        self.by_fd: dict[int, Bot] = {}
        self.matches: dict[int, MatchView] = {}
        self.failures: dict[str, int] = {}
        self.close_codes: dict[str, int] = {}
        self.epoll = select.epoll()
        self._last_progress = Progress()
        self._tracks: dict[str, Track] = {}
        self._trackset = TrackSet()
        self._banks: dict[Any, MirrorBank] = {}
        self._members: dict[int, list[Bot]] = {}  # id(bank) -> its sampled bots
        self._queued = 0
        self._unsettled: set[Bot] = set()  # connecting, not yet joined nor closed
        self._joined = 0
        self._open = 0
        self._plan: Plan | None = None  # None: bots joined or left since
        self._last_plan: Plan | None = None
        self._buffer = bytearray(READ_BYTES)
        self._view = memoryview(self._buffer)
        self._pack = msgpack.Packer().pack

    # ------------------------------------------------------------ connections
    def _connect(self, index: int, now: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bot = Bot(index=index, sock=sock, started_s=now)
        self.bots.append(bot)
        self._unsettled.add(bot)
        self._open += 1
        code = sock.connect_ex((self.host, self.port))
        if code not in (0, errno.EINPROGRESS):
            self._fail(bot, f"connect: {errno.errorcode.get(code, code)}")
            return
        self.by_fd[sock.fileno()] = bot
        self.epoll.register(sock.fileno(), select.EPOLLOUT)

    def _fail(self, bot: Bot, reason: str) -> None:
        if bot.phase == CLOSED:
            return
        if bot.phase < JOINED:
            self.failures[reason] = self.failures.get(reason, 0) + 1
        bot.error = reason
        self._close(bot)

    def _close(self, bot: Bot) -> None:
        if bot.phase == CLOSED:
            return
        if bot.phase < JOINED:
            self._unsettled.discard(bot)
        else:
            self._joined -= 1
            self._plan = None
        self._open -= 1
        bot.phase = CLOSED
        self._unpoll(bot)
        bot.sock.close()

    def _unpoll(self, bot: Bot) -> None:
        fd = bot.sock.fileno()
        if bot.polled and fd >= 0:
            self.by_fd.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)
        bot.polled = False

    def _send(self, bot: Bot, data: bytes | memoryview) -> None:
        if bot.phase == CLOSED:
            return
        bot.bytes_up += len(data)
        if bot.pending:
            bot.pending += data
            if not bot.polled:
                self._flush_pending(bot)
            return
        try:
            sent = bot.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(bot, f"send: {exc.strerror}")
            return
        if sent < len(data):
            bot.pending += data[sent:]
            if bot.polled:
                self.epoll.modify(bot.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    def _flush_pending(self, bot: Bot) -> None:
        """Send what the socket refused before (an unpolled bot, at its input tick)."""
        try:
            sent = bot.sock.send(bot.pending)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(bot, f"send: {exc.strerror}")
            return
        del bot.pending[:sent]

    def _writable(self, bot: Bot, now: float) -> None:
        if bot.phase == CONNECTING:
            err = bot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(bot, f"connect: {errno.errorcode.get(err, err)}")
                return
            request, bot.accept = handshake_request(self.netloc, self.resource, SUBPROTOCOL)
            bot.phase = HANDSHAKE
            self.epoll.modify(bot.sock.fileno(), select.EPOLLIN)
            self._send(bot, request)
            return
        if bot.pending:
            self._flush_pending(bot)
        if not bot.pending and bot.phase != CLOSED:
            self.epoll.modify(bot.sock.fileno(), select.EPOLLIN)

    def _readable(self, bot: Bot, now: float) -> None:
        """A polled bot's socket is readable: one read (epoll says if more is left)."""
        try:
            data = bot.sock.recv(READ_BYTES)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(bot, f"recv: {exc.strerror}")
            return
        if not data:
            self._dropped(bot)
            return
        bot.bytes_down += len(data)
        if bot.phase == HANDSHAKE:
            bot.head += data
            end = bot.head.find(b"\r\n\r\n")
            if end < 0:
                return
            try:
                check_handshake_response(bytes(bot.head[:end]), bot.accept)
            except FrameError as exc:
                self._fail(bot, str(exc))
                return
            bot.handshake_s = now - bot.started_s
            bot.phase = JOINING
            data = bytes(bot.head[end + 4 :])
            bot.bytes_down -= end + 4
            join = protocol.Join(f"load-{bot.index}", None, self.send_rate_hz)
            self._send(bot, mask_frame(OP_BINARY, protocol.encode(join)))
        if bot.bank is None or not bot.reader.idle:
            self._feed(bot, data, now)
            return
        # A sampled bot: short final binary frames holding a state frame are taken
        # straight from the bytes read; anything else goes through its reader.
        at, size = 0, len(data)
        while at + 4 <= size:
            length = data[at + 1]
            if data[at] != 0x82 or length > 126:
                break
            if length == 126:
                length = data[at + 2] << 8 | data[at + 3]
                body = at + 4
            else:
                body = at + 2
            end = body + length
            if end > size or length < 2 or data[body + 1] not in STATE_FRAMES:
                break
            if not 0x90 <= data[body] <= 0x9F:
                break
            self._sampled(bot, data[body:end], now)
            at = end
            if bot.phase == CLOSED:
                return
        if at < size:
            self._feed(bot, data[at:], now)

    def _dropped(self, bot: Bot) -> None:
        if bot.close_code is None:
            self._count_close(bot, 1006)
        self._fail(bot, "connection dropped")

    def _feed(self, bot: Bot, data: bytes, now: float) -> None:
        """Frame ``data`` with the bot's reader and act on every message."""
        try:
            frames = bot.reader.feed(data)
        except FrameError as exc:
            self._fail(bot, f"framing: {exc}")
            return
        for opcode, payload in frames:
            if opcode == OP_BINARY:
                self._message(bot, payload, now)
            elif opcode == OP_CLOSE:
                code, _ = close_payload(payload)
                self._count_close(bot, code)
                self._send(bot, mask_frame(OP_CLOSE, payload[:2]))
                self._close(bot)
            elif opcode == OP_PING:
                self._send(bot, mask_frame(OP_PONG, payload))
            if bot.phase == CLOSED:
                return

    def _count_close(self, bot: Bot, code: int) -> None:
        bot.close_code = code
        self.close_codes[str(code)] = self.close_codes.get(str(code), 0) + 1

    def _read(self, bot: Bot) -> None:
        """An unpolled bot's turn: take everything that arrived since its last one.

        Short final binary frames holding a SNAPSHOT or a DELTA (all but a few
        frames) are counted by walking their headers, the newest one's tick read
        for the acknowledgement; anything else goes through the bot's reader.
        """
        try:
            size = bot.sock.recv_into(self._buffer)
        except BlockingIOError:
            return
        except OSError as exc:
            self._fail(bot, f"recv: {exc.strerror}")
            return
        if not size:
            self._dropped(bot)
            return
        bot.bytes_down += size
        if not bot.reader.idle:  # in the middle of a frame or message: the reader goes on
            self._feed(bot, bytes(self._view[:size]), 0.0)
            return
        buf, naive = self._buffer, self.naive
        at = frames = 0
        newest = -1
        while at + 4 <= size:
            length = buf[at + 1]
            if buf[at] != 0x82 or length > 126:
                break
            if length == 126:
                length = buf[at + 2] << 8 | buf[at + 3]
                body = at + 4
            else:
                body = at + 2
            end = body + length
            if end > size or length < 3:
                break
            if 0x90 <= buf[body] <= 0x9F:
                kind = buf[body + 1]
                if kind in STATE_FRAMES:
                    newest = body + 2
                elif not naive or kind in KNOWN_TYPES:
                    break
            elif not naive:
                break
            frames += 1
            at = end
        bot.frames += frames
        if newest >= 0:  # the newest frame's tick (frames come in tick order)
            marker = buf[newest]
            if marker < 0x80:
                tick = marker
            elif marker == 0xCD:
                tick = buf[newest + 1] << 8 | buf[newest + 2]
            else:
                tick = _uint(buf, newest)
            if tick > bot.ack_tick:
                bot.ack_tick = tick
        if at < size:
            self._feed(bot, bytes(self._view[at:size]), 0.0)

    # ------------------------------------------------------------ messages
    def _message(self, bot: Bot, payload: bytes, now: float) -> None:
        kind = payload[1] if len(payload) > 1 and 0x90 <= payload[0] <= 0x9F else -1
        if kind in STATE_FRAMES:
            if bot.bank is not None:
                self._sampled(bot, payload, now)
                return
            bot.frames += 1
            tick = msgpack.unpackb(payload)[1]
            if tick > bot.ack_tick:
                bot.ack_tick = tick
            return
        if self.naive and kind not in KNOWN_TYPES:
            # A baseline server's full-state frame: counted, not decoded.
            bot.frames += 1
            return
        try:
            message = protocol.decode_server_message(payload)
        except ProtocolError as exc:
            self._fail(bot, f"bad message: {exc.reason}")
            return
        if isinstance(message, protocol.Welcome):
            self._welcome(bot, message)
        elif isinstance(message, protocol.Event) and message.kind == EventCode.START:
            bot.racing = True
        elif isinstance(message, protocol.Results):
            bot.results = message.results
            bot.racing = False

    def _sampled(self, bot: Bot, payload: bytes, now: float) -> None:
        """A sampled bot's SNAPSHOT or DELTA: timed, its input latency taken, queued
        on the bank to be rebuilt and verified."""
        assert bot.bank is not None
        bot.frames += 1
        if bot.last_frame_s:
            bot.gaps_s.append(now - bot.last_frame_s)
        bot.last_frame_s = now
        try:
            frame = state_frame(payload)
        except ProtocolError as exc:
            self._fail(bot, f"bad frame: {exc.reason}")
            return
        seq = frame[4]
        if seq > bot.reported_seq:
            sent = bot.sent_at.pop(seq, None)
            if sent is not None:
                bot.latencies_s.append(now - sent)
            for old in [s for s in bot.sent_at if s < seq]:
                del bot.sent_at[old]
            bot.reported_seq = seq
        bot.bank.submit(bot.member, frame)
        self._queued += 1

    def _flush_mirrors(self) -> None:
        """Rebuild and verify every sampled frame queued; update acks and desyncs."""
        if not self._queued:
            return
        self._queued = 0
        for bank in self._banks.values():
            if not bank.queued:
                continue
            members = self._members[id(bank)]
            touched = set()
            for member, outcome, reason in bank.flush():
                bot = members[member]
                touched.add(bot)
                if outcome == DESYNC:
                    bot.desyncs += 1
                elif outcome == MALFORMED:
                    self._fail(bot, f"bad frame: {reason}")
            for bot in touched:
                bot.ack_tick = bank.tick[bot.member]

    def _welcome(self, bot: Bot, welcome: protocol.Welcome) -> None:
        if bot.phase != JOINING:
            return
        bot.phase = JOINED
        self._unsettled.discard(bot)
        self._joined += 1
        self._plan = None
        bot.player_id, bot.match_id, bot.slot = welcome.player_id, welcome.match_id, welcome.slot
        view = self.matches.get(welcome.match_id)
        if view is None:
            name = str(welcome.match["track"]["name"])
            track = self._tracks.get(name) or self._tracks.setdefault(name, load_track(name))
            fields = welcome.schema["fields"]
            view = MatchView(
                match_id=welcome.match_id,
                track=track,
                scales=np.array([float(f[1]) for f in fields]),
                fields={str(f[0]): i for i, f in enumerate(fields)},
            )
            self.matches[welcome.match_id] = view
        view.bots.append(bot)
        bot.view = view
        if self.sample == "all" or (self.sample == "match" and view.sampler is None):
            bot.sampled = True
            bot.bank = self._bank(welcome.schema)
            bot.member = bot.bank.add()
            self._members[id(bot.bank)].append(bot)
            if view.sampler is None:
                view.sampler = bot
        else:
            self._unpoll(bot)  # read once per input tick from now on

    def _bank(self, schema: dict[str, Any]) -> MirrorBank:
        fields = schema["fields"]
        flags = [bool(f[3]) if len(f) > 3 else False for f in fields]
        key = (int(schema["slots"]), tuple((str(f[0]), float(f[1])) for f in fields), tuple(flags))
        bank = self._banks.get(key)
        if bank is None:
            bank = self._banks[key] = MirrorBank(int(schema["slots"]), len(fields), flags)
            self._members[id(bank)] = []
        return bank

    # ------------------------------------------------------------ inputs
    def _make_plan(self, old: Plan | None) -> Plan:
        if old is not None:  # each bot keeps its car's segment
            for group in old.steering:
                for bot, segment in zip(group.bots, group.segment.tolist(), strict=True):
                    bot.segment = segment
        joined = [b for b in self.bots if b.phase == JOINED]
        sampled = [b for b in joined if b.polled]
        unpolled = [b for b in joined if not b.polled]
        by_bank: dict[int, list[tuple[int, Bot, MatchView, MirrorBank, int]]] = {}
        for row, bot in enumerate(sampled + unpolled):
            view = bot.view
            sampler = view.sampler if view is not None else None
            if view is not None and sampler is not None and sampler.bank is not None:
                entry = (row, bot, view, sampler.bank, sampler.member)
                by_bank.setdefault(id(sampler.bank), []).append(entry)
        steering = []
        for entries in by_bank.values():
            _, _, view, bank, _ = entries[0]
            columns = tuple(view.fields[name] for name in ("x", "y", "heading", "speed"))
            steering.append(
                Steering(
                    bank=bank,
                    bots=[bot for _, bot, _, _, _ in entries],
                    rows=np.array([e[0] for e in entries], dtype=np.int64),
                    members=np.array([e[4] for e in entries], dtype=np.int64),
                    cells=np.array([e[1].slot * bank.shape[1] for e in entries], dtype=np.int64),
                    track_id=np.array(
                        [self._trackset.add(e[2].track) for e in entries], dtype=np.int64
                    ),
                    segment=np.array([e[1].segment for e in entries], dtype=np.int64),
                    columns=columns,
                    scales=view.scales[list(columns)],
                )
            )
        return Plan(sampled=sampled, unpolled=unpolled, steering=steering)

    def _controls(self, plan: Plan) -> Floats:
        """Every bot's ``[throttle, brake, steer]``, in the plan's order."""
        count = len(plan.sampled) + len(plan.unpolled)
        controls = np.zeros((count, 3))
        if self.naive:
            controls[:] = (0.6, 0.0, 0.1)  # keeps every car moving
        for group in plan.steering:
            bank = group.bank
            ready = np.array(bank.tick)[group.members] >= 0
            if not ready.any():
                continue
            flat = (group.members * bank.cells + group.cells)[ready]
            cells = bank.state.reshape(-1)
            x, y, heading, speed = (
                cells[flat + column] / scale
                for column, scale in zip(group.columns, group.scales.tolist(), strict=True)
            )
            track_id = group.track_id[ready]
            segment = locate(self._trackset, track_id, group.segment[ready], x, y)
            group.segment[ready] = segment
            throttle, brake, steer = drive_set(
                self._trackset,
                track_id,
                segment,
                x,
                y,
                heading,
                speed,
                limit_mps=self.max_speed_mps,
            )
            controls[group.rows[ready]] = np.stack([throttle, brake, steer], axis=1)
        return controls.round(3)

    def _input_tick(self) -> None:
        """Every joined bot sends an input; the unpolled ones read first (for the ack).

        The sampled bots go first. Between every :data:`CHUNK` unpolled bots the
        polled sockets are looked at, so sampled frames are still timed on arrival.
        """
        self._flush_mirrors()
        plan = self._plan
        if plan is None:
            plan = self._plan = self._last_plan = self._make_plan(self._last_plan)
        controls = self._controls(plan)
        sampled, unpolled = plan.sampled, plan.unpolled
        self._send_inputs(sampled, controls[: len(sampled)], timed=True)
        read = self._read
        for start in range(0, len(unpolled), CHUNK):
            for bot in unpolled[start : start + CHUNK]:
                if bot.phase == JOINED:
                    read(bot)
            self._poll(0.0)
        self._send_inputs(unpolled, controls[len(sampled) :])

    def _send_inputs(self, bots: list[Bot], controls: Floats, timed: bool = False) -> None:
        """An INPUT from each bot still joined (built all together), acking its newest tick."""
        live, rows, seq, ack = [], [], [], []
        for row, bot in enumerate(bots):
            if bot.phase == JOINED:
                bot.seq += 1
                live.append(bot)
                rows.append(row)
                seq.append(bot.seq)
                ack.append(bot.ack_tick)
        if len(rows) < len(bots):
            controls = controls[rows]
        frames = input_frames(
            np.array(seq, dtype=np.int64),
            np.array(ack, dtype=np.int64),
            controls,
            os.urandom(4 * len(live)),  # a fresh mask key for every frame
        )
        clock = time.perf_counter
        send = self._send
        for i, (bot, frame) in enumerate(zip(live, frames, strict=True)):
            if timed:
                bot.sent_at[bot.seq] = clock()
            elif i % CHUNK == CHUNK - 1:
                self._poll(0.0)  # the sampled bots' frames, read on time
            send(bot, frame)

    def _read_all(self) -> None:
        """Read every unpolled bot (so counters split at this moment)."""
        for bot in self.bots:
            if bot.phase == JOINED and not bot.polled:
                self._read(bot)

    # ------------------------------------------------------------ the loop
    def _poll(self, timeout: float) -> None:
        for fd, events in self.epoll.poll(timeout):
            bot = self.by_fd.get(fd)
            if bot is None:
                continue
            now = time.perf_counter()
            if events & select.EPOLLOUT:
                self._writable(bot, now)
            if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                self._readable(bot, now)
        if self._queued >= FLUSH_FRAMES:
            self._flush_mirrors()

    def run(self) -> Report:
        start = time.perf_counter()
        cpu_start = time.process_time()
        next_input = start
        period = 1.0 / self.input_rate_hz
        next_progress = start + 1.0
        next_housekeeping = start
        measure_from: float | None = None
        all_in: float | None = None
        connected = 0
        deadline = (
            start
            + self.warmup_s
            + self.duration_s
            + self.count / self.ramp_per_s
            + self.connect_timeout_s
        )
        while True:
            now = time.perf_counter()
            if connected < self.count:
                due = min(self.count, int((now - start) * self.ramp_per_s) + 1)
                while connected < due:
                    self._connect(connected, now)
                    connected += 1
            if now >= next_housekeeping and self._unsettled:
                next_housekeeping = now + HOUSEKEEPING_S
                for bot in list(self._unsettled):
                    if bot.phase < JOINING and now - bot.started_s > self.connect_timeout_s:
                        self._fail(bot, "handshake timeout")
            if all_in is None and connected == self.count and not self._unsettled:
                all_in = now
            if measure_from is None and all_in is not None and now - all_in >= self.warmup_s:
                self._read_all()  # what arrived so far belongs to the warm-up
                self._flush_mirrors()
                self._reset_counters()
                measure_from = now = time.perf_counter()
                cpu_start = time.process_time()
                if self.on_measure is not None:
                    self.on_measure()
            measured = measure_from is not None and now - measure_from >= self.duration_s
            if measured and (not self.until_results or not self._joined):
                break
            if now > deadline and not self.until_results:
                break
            if connected == self.count and not self._open:
                break
            if now >= next_input:
                self._input_tick()
                next_input += period
                if next_input < now:
                    next_input = now + period
            if self.progress is not None and now >= next_progress:
                self.progress(self._progress(now - start))
                next_progress += 1.0
            self._poll(max(0.0, min(next_input - time.perf_counter(), 0.05)))
        self._read_all()
        self._flush_mirrors()
        end = time.perf_counter()
        wall = end - (measure_from or start)
        cpu_share = (time.process_time() - cpu_start) / max(wall, 1e-9)
        for bot in self.bots:
            if bot.phase != CLOSED:
                with contextlib.suppress(OSError):
                    bot.sock.send(mask_frame(OP_CLOSE, b"\x03\xe8"))
                self._close(bot)
        self.epoll.close()
        return self._report(wall, cpu_share)

    def _reset_counters(self) -> None:
        for bot in self.bots:
            bot.frames = bot.bytes_down = bot.bytes_up = 0
            bot.gaps_s = []
            bot.latencies_s = []

    def _progress(self, elapsed: float) -> Progress:
        frames = sum(b.frames for b in self.bots)
        down = sum(b.bytes_down for b in self.bots)
        previous = self._last_progress
        rate = max(elapsed - previous.elapsed_s, 1e-9)
        progress = Progress(
            elapsed_s=elapsed,
            bots=self.count,
            connected=self._joined,
            racing=sum(1 for b in self.bots if b.racing and b.phase == JOINED),
            finished=sum(1 for b in self.bots if b.results is not None),
            frames=frames,
            frames_per_s=max(0, frames - previous.frames) / rate,
            kbit_per_s=max(0, down - previous.bytes_down) * 8 / rate / 1e3,
            bytes_down=down,
            errors=sum(self.failures.values()) + sum(b.desyncs for b in self.bots),
            matches=len(self.matches),
        )
        self._last_progress = progress
        return progress

    def _report(self, wall: float, cpu_share: float) -> Report:
        ok = [b for b in self.bots if b.handshake_s is not None]
        n = max(1, len([b for b in self.bots if b.player_id is not None]))
        frames = sum(b.frames for b in self.bots)
        down = sum(b.bytes_down for b in self.bots)
        up = sum(b.bytes_up for b in self.bots)
        latencies = [x for b in self.bots for x in b.latencies_s]
        gaps = [x for b in self.bots for x in b.gaps_s]
        sampled = [b for b in self.bots if b.sampled]
        finished = {b.match_id for b in self.bots if b.results is not None}
        saturated = cpu_share > 0.9
        notes = [
            f"{len(sampled)} bots decoded every frame into a mirror and verified its checksum "
            f"(sample={self.sample}), and timed frame arrivals and input latency; the others "
            "read frame headers once per input tick",
        ]
        if saturated:
            notes.append(
                f"the load generator used {cpu_share:.0%} of a core: it, not the server, may be "
                "the bottleneck; figures are lower bounds"
            )
        return Report(
            bots=self.count,
            duration_s=round(wall, 3),
            input_rate_hz=self.input_rate_hz,
            send_rate_hz=self.send_rate_hz,
            sampled_bots=len(sampled),
            connections_attempted=len(self.bots),
            connections_succeeded=len(ok),
            connections_failed=len(self.bots) - len(ok),
            failure_reasons=dict(self.failures),
            handshake_p50_ms=_pct([b.handshake_s for b in ok if b.handshake_s], 50),
            handshake_p99_ms=_pct([b.handshake_s for b in ok if b.handshake_s], 99),
            down_bytes_per_client_s=down / n / wall,
            up_bytes_per_client_s=up / n / wall,
            frames_per_client_s=frames / n / wall,
            bytes_per_frame=down / frames if frames else 0.0,
            input_latency_p50_ms=_pct(latencies, 50),
            input_latency_p99_ms=_pct(latencies, 99),
            input_latency_max_ms=max(latencies) * 1e3 if latencies else 0.0,
            frame_jitter_p99_ms=_pct(gaps, 99),
            desyncs=sum(b.desyncs for b in self.bots),
            frames_verified=sum(bank.frames[b.member] for b in sampled if (bank := b.bank)),
            matches_seen=len(self.matches),
            matches_finished=len(finished),
            results_received=sum(1 for b in self.bots if b.results is not None),
            close_codes=dict(self.close_codes),
            loadgen_cpu_percent=round(cpu_share * 100, 1),
            loadgen_saturated=saturated,
            notes=notes,
        )


_UINT_WIDTHS = {0xCC: 1, 0xCD: 2, 0xCE: 4, 0xCF: 8}


def _uint(buf: bytearray, at: int) -> int:
    """The msgpack unsigned int at ``buf[at]`` (a tick); -1 if it is not one."""
    marker = buf[at]
    if marker < 0x80:
        return marker
    width = _UINT_WIDTHS.get(marker)
    if width is None:
        return -1
    return int.from_bytes(buf[at + 1 : at + 1 + width], "big")


class LiveDisplay:
    """A live table on the terminal (rich), refreshed with each progress report."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(stderr=True), auto_refresh=False)
        self._live.start()

    def update(self, progress: Progress) -> None:
        from rich.table import Table

        table = Table(title=f"load test, {progress.elapsed_s:.0f} s", title_justify="left")
        for column in (
            "connected", "racing", "finished", "matches", "frames/s", "kbit/s", "errors",
        ):  # fmt: skip
            table.add_column(column, justify="right")
        table.add_row(
            f"{progress.connected}/{progress.bots}",
            str(progress.racing),
            str(progress.finished),
            str(progress.matches),
            f"{progress.frames_per_s:,.0f}",
            f"{progress.kbit_per_s:,.0f}",
            str(progress.errors),
        )
        self._live.update(table, refresh=True)

    def stop(self) -> None:
        self._live.stop()


def print_report(report: Report) -> None:
    """The summary as a rich table (plain text when not on a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="load test report", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    notes = []
    for line in format_report(report).splitlines():
        if line.startswith("note: "):
            notes.append(line)
            continue
        key, _, value = line.partition("  ")
        table.add_row(key.strip(), value.strip())
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note)


def format_report(report: Report) -> str:
    rows = [
        ("bots (sampled for full decode)", f"{report.bots} ({report.sampled_bots})"),
        ("measured for", f"{report.duration_s:.1f} s"),
        (
            "connections ok / failed",
            f"{report.connections_succeeded} / {report.connections_failed} "
            + (json.dumps(report.failure_reasons) if report.failure_reasons else ""),
        ),
        (
            "handshake p50 / p99",
            f"{report.handshake_p50_ms:.1f} / {report.handshake_p99_ms:.1f} ms",
        ),
        ("downstream per client", f"{report.down_bytes_per_client_s:,.0f} B/s"),
        ("upstream per client", f"{report.up_bytes_per_client_s:,.0f} B/s"),
        (
            "frames per client (asked for)",
            f"{report.frames_per_client_s:.1f} /s "
            f"({f'{report.send_rate_hz} /s' if report.send_rate_hz else 'server rate'})",
        ),
        ("bytes per frame (with WS header)", f"{report.bytes_per_frame:.1f}"),
        (
            "input -> applied p50 / p99 / max",
            f"{report.input_latency_p50_ms:.1f} / {report.input_latency_p99_ms:.1f} / "
            f"{report.input_latency_max_ms:.1f} ms",
        ),
        ("frame inter-arrival p99", f"{report.frame_jitter_p99_ms:.1f} ms"),
        ("desyncs (frames verified)", f"{report.desyncs} ({report.frames_verified})"),
        (
            "matches seen / finished, results",
            f"{report.matches_seen} / {report.matches_finished}, {report.results_received}",
        ),
        ("close codes", json.dumps(report.close_codes)),
        ("load generator CPU (measured)", f"{report.loadgen_cpu_percent:.0f}% of a core"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines + [f"note: {n}" for n in report.notes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="drive many real bots against a gameserver")
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--bots", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--input-rate", type=float, default=20.0, help="inputs per second per bot")
    parser.add_argument(
        "--send-rate",
        type=int,
        default=0,
        help="frames per second each bot asks for in its JOIN (0: the server's rate)",
    )
    parser.add_argument(
        "--sample",
        choices=("match", "all", "none"),
        default="match",
        help="which bots decode and verify every frame: one per match, all, or none",
    )
    parser.add_argument("--ramp", type=float, default=500.0, help="new connections per second")
    parser.add_argument("--until-results", action="store_true", help="run until matches end")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds before measuring")
    parser.add_argument(
        "--max-speed", type=float, default=60.0, help="pace the bots hold, m/s (benchmark: 30)"
    )
    parser.add_argument(
        "--naive", action="store_true", help="the server sends full-state baseline frames"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.bots < 1 or args.duration <= 0 or args.input_rate <= 0 or args.ramp <= 0:
        parser.error("--bots, --duration, --input-rate and --ramp must be positive")
    if not 0 <= args.send_rate <= 1000:
        parser.error("--send-rate must be 0 (the server's rate) to 1000")

    display = LiveDisplay() if not args.json else None
    test = LoadTest(
        args.url,
        args.bots,
        duration_s=args.duration,
        input_rate_hz=args.input_rate,
        send_rate_hz=args.send_rate,
        sample=args.sample,
        ramp_per_s=args.ramp,
        until_results=args.until_results,
        warmup_s=args.warmup,
        naive=args.naive,
        max_speed_mps=args.max_speed,
        progress=display.update if display is not None else None,
        on_measure=lambda: print("measuring", file=sys.stderr, flush=True),
    )
    try:
        report = test.run()
    finally:
        if display is not None:
            display.stop()
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_report(report)
    return 1 if report.desyncs or report.connections_failed else 0


if __name__ == "__main__":
    sys.exit(main())
