"""Recordings re-simulate matches exactly, and a replay that diverges names the tick."""

from __future__ import annotations

import pytest

from gameserver import protocol
from gameserver.config import ServerConfig
from gameserver.match import Arena, MatchEnded
from gameserver.replay import Recording, ReplayDivergence, replay

from .tinygame import TinyGame

CONFIG = ServerConfig(tick_rate_hz=10, send_rate_hz=10, lobby_timeout_s=1.0, countdown_s=0.5)


def play_a_match() -> MatchEnded:
    arena = Arena(TinyGame(rows=1, goal=200), CONFIG, seed=3, checksum_every=4)
    alice, _ = arena.join("alice")
    bob, _ = arena.join("bob")
    seq = 0
    for tick in range(200):
        if tick % 3 == 0:
            seq += 1
            push = (tick % 7) / 7
            arena.handle_input(alice.player_id, protocol.Input(seq, -1, (push,)))
            if tick < 40:
                arena.handle_input(bob.player_id, protocol.Input(seq, -1, (1.0 - push,)))
        if tick == 40:
            arena.leave(bob.player_id)
        ended = [o for o in arena.step() if isinstance(o, MatchEnded)]
        if ended:
            return ended[0]
    raise AssertionError("the match did not end")


def test_a_recorded_match_replays_bit_exactly_from_its_bytes() -> None:
    ended = play_a_match()
    assert ended.recording is not None
    recording = Recording.from_bytes(ended.recording.to_bytes())
    report = replay(TinyGame(rows=1, goal=200), recording)
    assert report.checksums_verified >= 10
    assert [r["slot"] for r in report.results] == [r["slot"] for r in ended.results or []]


def test_a_changed_input_makes_the_replay_diverge_at_a_named_tick() -> None:
    ended = play_a_match()
    assert ended.recording is not None
    recording = Recording.from_bytes(ended.recording.to_bytes())
    changed = len(recording.input_values) - 2  # during the race
    recording.input_values[changed] = (1.0 - recording.input_values[changed][0],)
    with pytest.raises(ReplayDivergence) as error:
        replay(TinyGame(rows=1, goal=200), recording)
    assert error.value.tick >= recording.input_ticks[changed]
    assert "diverged at tick" in str(error.value)
