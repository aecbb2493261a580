"""The load generator against a real server process: its report's numbers are sane; its
batched mirrors, batched masks and header-walking reads against the plain ones."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import msgpack
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from clients.loadtest import (
    APPLIED,
    DESYNC,
    JOINED,
    MALFORMED,
    MISSING,
    STALE,
    Bot,
    LoadTest,
    MirrorBank,
    format_report,
    input_frames,
    main,
    state_frame,
)
from clients.wsframe import FrameReader, mask_frame
from gameserver import protocol
from gameserver.codes import EventCode, MessageType
from gameserver.errors import DesyncError, ProtocolError
from gameserver.protocol import Delta, Snapshot
from gameserver.sync import Mirror, StateHistory, build_payload

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def server(tmp_path: Path) -> Iterator[tuple[str, int]]:
    port_file = tmp_path / "port"
    status_port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gameserver.cli", "serve", "--port", "0",
         "--port-file", str(port_file), "--status-port", str(status_port),
         "--track", "sprint", "--laps", "1", "--lobby-timeout", "1", "--db", ""],
        cwd=REPO,
        env={**os.environ, "GAMESERVER_FILL_WITH_AI": "false", "GAMESERVER_COUNTDOWN_S": "0.5"},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 20
        while not port_file.exists():
            assert process.poll() is None, "the server exited"
            assert time.monotonic() < deadline, "the server did not start"
            time.sleep(0.05)
        yield f"ws://127.0.0.1:{int(port_file.read_text())}", status_port
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_a_short_load_test_reports_sane_figures(server: tuple[str, int]) -> None:
    url, status_port = server
    test = LoadTest(url, 8, duration_s=2.0, input_rate_hz=20, until_results=True)
    report = test.run()
    assert report.connections_succeeded == 8
    assert report.connections_failed == 0
    assert report.desyncs == 0
    assert report.frames_verified > 100
    assert report.sampled_bots == 1, "one bot per match decodes every frame"
    assert report.matches_seen == 1
    assert report.matches_finished == 1
    assert report.results_received == 8
    assert report.close_codes == {"1000": 8}
    assert 10 < report.frames_per_client_s <= 61
    assert 20 < report.bytes_per_frame < 200
    assert report.down_bytes_per_client_s > 500
    assert report.up_bytes_per_client_s > 100
    assert 0 < report.input_latency_p50_ms < 500
    assert report.handshake_p50_ms > 0
    assert "desyncs" in format_report(report)
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/stats", timeout=5) as reply:
        stats = json.loads(reply.read())
    assert stats["matches_finished"] == 1
    assert stats["ticks"]["ticks"] > 0
    assert stats["close_codes"] == {"1000": 8}
    with urllib.request.urlopen(f"http://127.0.0.1:{status_port}/metrics", timeout=5) as reply:
        assert b"gameserver_ticks_ticks " in reply.read()


def test_client_frames_are_masked_and_server_frames_are_split() -> None:
    frame = mask_frame(0x2, b"hello", mask=b"\x01\x02\x03\x04")
    assert frame[:2] == b"\x82\x85"
    assert bytes(b ^ frame[2 + i % 4] for i, b in enumerate(frame[6:])) == b"hello"
    reader = FrameReader()
    stream = b"\x82\x03abc" + b"\x02\x02de" + b"\x80\x01f" + b"\x88\x02\x03\xe8"
    assert reader.feed(stream[:4]) == []
    assert reader.feed(stream[4:]) == [(0x2, b"abc"), (0x2, b"def"), (0x8, b"\x03\xe8")]


def test_a_bot_asks_for_its_send_rate_in_its_join(server: tuple[str, int]) -> None:
    url, _ = server
    report = LoadTest(url, 8, duration_s=1.5, send_rate_hz=20, until_results=True).run()
    assert report.send_rate_hz == 20
    assert report.desyncs == 0
    assert report.connections_failed == 0
    assert 10 < report.frames_per_client_s <= 21, "20 frames a second, not the server's 60"
    assert "20 /s" in format_report(report)


@pytest.mark.parametrize("flag", ["-1", "1001", "x"])
def test_the_send_rate_flag_is_checked(flag: str) -> None:
    with pytest.raises(SystemExit):
        main(["--send-rate", flag])


@given(
    st.lists(
        st.tuples(
            st.sampled_from([1, 127, 128, 255, 256, 65535, 65536, 2**32 - 1, 2**32, 2**63 - 1])
            | st.integers(1, 2**63 - 1),
            st.sampled_from([-1, 0, 127, 128, 255, 256, 65535, 65536, 2**32])
            | st.integers(-1, 2**63 - 1),
            st.tuples(*[st.floats(-1, 1) | st.sampled_from([0.0, -0.0, 1.0, -1.0])] * 3),
        ),
        max_size=20,
    )
)
def test_inputs_built_together_are_those_packed_and_masked_one_by_one(
    inputs: list[tuple[int, int, tuple[float, float, float]]],
) -> None:
    keys = os.urandom(4 * len(inputs))
    frames = input_frames(
        np.array([s for s, _, _ in inputs], dtype=np.int64),
        np.array([a for _, a, _ in inputs], dtype=np.int64),
        np.array([c for _, _, c in inputs], dtype=np.float64).reshape(-1, 3),
        keys,
    )
    assert [bytes(f) for f in frames] == [
        mask_frame(0x2, msgpack.packb([2, s, a, *c]), keys[4 * i : 4 * i + 4])
        for i, (s, a, c) in enumerate(inputs)
    ]


def server_frame(payload: bytes) -> bytes:
    if len(payload) < 126:
        return bytes([0x82, len(payload)]) + payload
    return bytes([0x82, 126]) + len(payload).to_bytes(2, "big") + payload


def test_an_unpolled_bot_counts_frames_by_their_headers_and_reads_the_rest() -> None:
    test = LoadTest("ws://127.0.0.1:9", 1, duration_s=1)
    ours, theirs = socket.socketpair()
    ours.setblocking(False)
    bot = Bot(index=0, sock=ours, started_s=0.0, phase=JOINED, polled=False)
    test.bots.append(bot)
    test._joined = test._open = 1
    frames = [  # in tick order, as a server sends them: the last one's tick is the newest
        protocol.encode_snapshot(5, 1, 0, b"\x00" * 8),
        protocol.encode_delta(200, 199, -1, 2, 3, b"\x00", bytes(300)),  # 16-bit length
        protocol.encode_delta(70_000, 69_999, -1, 2, 3, b"\x00", b""),  # a 4-byte tick
    ]
    start = protocol.encode(protocol.Event(tick=70_000, kind=EventCode.START, slot=-1))
    theirs.sendall(b"".join(server_frame(f) for f in frames) + server_frame(start))
    test._read(bot)
    assert (bot.frames, bot.ack_tick, bot.racing) == (3, 70_000, True)
    assert bot.bytes_down == sum(len(server_frame(f)) for f in [*frames, start])
    # Half a frame waits in the reader, whose next read completes it.
    tail = server_frame(protocol.encode_delta(70_001, 70_000, -1, 2, 3, b"\x00", b""))
    theirs.sendall(tail[:5])
    test._read(bot)
    assert bot.frames == 3
    assert not bot.reader.idle
    theirs.sendall(tail[5:] + bytes([0x89, 0]))  # and a ping, answered
    test._read(bot)
    assert (bot.frames, bot.ack_tick) == (4, 70_001)
    assert theirs.recv(64)[:2] == b"\x8a\x80"
    theirs.sendall(bytes([0x88, 2, 0x03, 0xE8]))
    test._read(bot)
    assert test.close_codes == {"1000": 1}
    assert bot.phase != JOINED
    theirs.close()


# ------------------------------------------------------------------ batched mirrors
def frames_for(
    history: StateHistory, tick: int, ack: int, ref: int, moving: np.ndarray, seq: int
) -> Snapshot | Delta:
    p = build_payload(history, 0, tick, ack, ref, moving)
    if p.baseline_tick < 0:
        return Snapshot(tick, p.checksum, seq, p.values)
    return Delta(tick, p.baseline_tick, p.reference_tick, p.checksum, seq, p.mask + p.values)


def spoiled(frame: Snapshot | Delta, how: int) -> Snapshot | Delta:
    """The frame with a wrong checksum (0), a byte too few (1) or one too many (2)."""
    if how == 0:
        if isinstance(frame, Delta):
            return Delta(frame.tick, frame.baseline_tick, frame.reference_tick,
                         frame.checksum ^ 1, 0, frame.cells)  # fmt: skip
        return Snapshot(frame.tick, frame.checksum ^ 1, 0, frame.values)
    cells = frame.cells if isinstance(frame, Delta) else frame.values
    cells = cells[:-1] if how == 1 else cells + b"\x01"
    if isinstance(frame, Delta):
        return Delta(
            frame.tick, frame.baseline_tick, frame.reference_tick, frame.checksum, 0, cells
        )
    return Snapshot(frame.tick, frame.checksum, 0, cells)


def mirror_outcome(mirror: Mirror, frame: Snapshot | Delta) -> int:
    missing = mirror.missing_baselines
    try:
        newest = mirror.apply(frame)
    except DesyncError:
        mirror.reset()
        return DESYNC
    except ProtocolError:
        return MALFORMED
    if newest:
        return APPLIED
    return MISSING if mirror.missing_baselines > missing else STALE


@settings(max_examples=40, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_mirror_bank_does_what_a_mirror_per_bot_does(seed: int) -> None:
    """Three bots on one match: frames lost, late, corrupted, against baselines not
    held or still queued, flushed at any moment; each outcome and state as a Mirror's.

    (Baselines stay recent, as the server's do: a Mirror keeps its last 64 states,
    a bank member its last 128 ticks.)"""
    rng = np.random.default_rng(seed)
    slots, fields = int(rng.integers(1, 5)), int(rng.integers(1, 7))
    moving = rng.random(fields) < 0.5
    history = StateHistory(1, slots, fields, depth=32)
    bank = MirrorBank(slots, fields, moving.tolist())
    mirrors = [Mirror(slots, fields, extrapolate=moving.tolist()) for _ in range(3)]
    members = [bank.add() for _ in mirrors]
    acks = [[-1, -1] for _ in mirrors]  # the server's newest ack of each bot, and the one before
    state = rng.integers(-1000, 1000, (slots, fields)).astype(np.int64)
    velocity = rng.integers(-50, 50, (slots, fields))
    sent: list[list[Snapshot | Delta]] = [[] for _ in mirrors]
    expected: list[tuple[int, int]] = []
    for tick in range(1, 160):
        state += np.where(moving, velocity, 0) + rng.integers(-3, 4, state.shape) * (
            rng.random(state.shape) < 0.3
        )
        if rng.random() < 0.02:
            state[rng.integers(slots), rng.integers(fields)] = rng.choice([-(2**31), 2**31 - 1])
        history.record(tick, np.clip(state, -(2**31), 2**31 - 1).astype(np.int32)[None])
        for bot, mirror in enumerate(mirrors):
            if rng.random() < 0.25:
                continue  # no frame this tick, or a lost one
            ack, ref = acks[bot]
            if rng.random() < 0.05:  # against a tick this bot never had
                ack, ref = max(0, tick - int(rng.integers(1, 20))), -1
            frame = frames_for(history, tick, ack, ref, moving, tick)
            roll = rng.random()
            if roll < 0.1:
                frame = spoiled(frame, int(rng.integers(0, 3)))
            elif roll < 0.15 and sent[bot]:  # late, again (baselines both still hold)
                frame = sent[bot][-int(rng.integers(1, min(len(sent[bot]), 20) + 1))]
            sent[bot].append(frame)
            expected.append((members[bot], mirror_outcome(mirror, frame)))
            bank.submit_message(members[bot], frame)
            if rng.random() < 0.3:  # the bot acks what its mirror holds, before the bank has it
                if mirror.tick > acks[bot][0]:
                    acks[bot] = [mirror.tick, acks[bot][0]]
                elif mirror.tick < 0:
                    acks[bot] = [-1, -1]
        if rng.random() < 0.3 or tick == 159:
            got = [(m, outcome) for m, outcome, _ in bank.flush()]
            assert got == expected
            expected = []
            for bot, mirror in enumerate(mirrors):
                assert bank.tick[members[bot]] == mirror.tick
                assert np.array_equal(bank.state[members[bot]].reshape(slots, fields), mirror.state)
                assert bank.frames[members[bot]] == mirror.frames
            assert bank.missing_baselines == sum(m.missing_baselines for m in mirrors)
            assert bank.late_frames == sum(m.late_frames for m in mirrors)


FIELD = st.one_of(
    st.integers(-(2**63), 2**64 - 1),
    st.sampled_from([-1, 0, 1, 2, 2**32 - 1, 2**32, 2**63 - 1, 2**63]),
    st.binary(max_size=6),
    st.floats(allow_nan=False),
    st.booleans(),
    st.none(),
    st.text(max_size=2),
)


NEAR = st.sampled_from([-1, 0, 1, 2, 3, 2**32 - 1, 2**32, 2**63 - 1]) | st.integers(-2, 70)


@settings(max_examples=300, deadline=None)
@given(
    st.sampled_from([int(MessageType.SNAPSHOT), int(MessageType.DELTA), 18.0, True]),
    st.lists(FIELD, max_size=8)
    | st.tuples(NEAR, NEAR, NEAR, NEAR, NEAR, st.binary(max_size=4)).map(list)
    | st.tuples(NEAR, NEAR, NEAR, st.binary(max_size=4)).map(list),
    st.binary(max_size=3),
)
def test_state_frames_are_checked_as_the_decoder_checks_them(
    kind: object, fields: list[object], tail: bytes
) -> None:
    """The fast path of sampled frames takes what the protocol's decoder takes."""
    for payload in (msgpack.packb([kind, *fields]), msgpack.packb([kind, *fields]) + tail):
        try:
            message = protocol.decode_server_message(payload)
        except ProtocolError:
            with pytest.raises(ProtocolError):
                state_frame(payload)
            continue
        if not isinstance(message, Snapshot | Delta) or not 0 <= message.tick < 2**63:
            with pytest.raises(ProtocolError):
                state_frame(payload)
            continue
        tick, base, ref, crc, seq, cells = state_frame(payload)
        assert (tick, crc, seq) == (message.tick, message.checksum, message.input_seq)
        if isinstance(message, Delta):
            assert (base, ref, cells) == (
                message.baseline_tick,
                message.reference_tick,
                message.cells,
            )
        else:
            assert (base, ref, cells) == (-1, -1, message.values)
