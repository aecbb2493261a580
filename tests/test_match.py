"""The arena: lifecycle, joins, inputs and frames, driven tick by tick without sockets."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from gameserver import protocol
from gameserver.codes import CloseCode, EventCode, MessageType
from gameserver.config import ServerConfig
from gameserver.errors import InvalidInput, JoinError
from gameserver.match import Arena, Close, Frames, MatchEnded, MatchPhase, Output, Player, Send
from gameserver.sync import Mirror

from .tinygame import FINISH, TinyGame

CONFIG = ServerConfig(tick_rate_hz=10, send_rate_hz=10, lobby_timeout_s=1.0, countdown_s=0.5)


def make_arena(**changes: Any) -> Arena:
    return Arena(TinyGame(rows=1, goal=50), CONFIG.replace(**changes), seed=7)


def flatten(outputs: list[Output]) -> list[Output]:
    """Outputs with each ended match's deliveries in place, as the server carries them out."""
    flat: list[Output] = []
    for output in outputs:
        if isinstance(output, Frames):
            flat.extend(output.sends())
            continue
        flat.append(output)
        if isinstance(output, MatchEnded):
            flat.extend(output.deliveries)
    return flat


def messages_to(outputs: list[Output], player_id: int) -> list[protocol.ServerMessage]:
    return [
        protocol.decode_server_message(o.data)
        for o in flatten(outputs)
        if isinstance(o, Send) and o.player_id == player_id
    ]


def events_of(outputs: list[Output], player_id: int, kind: int) -> list[protocol.Event]:
    return [
        m
        for m in messages_to(outputs, player_id)
        if isinstance(m, protocol.Event) and m.kind == kind
    ]


def phase_of(player: Player) -> MatchPhase:
    return player.match.phase


def run(arena: Arena, ticks: int) -> list[Output]:
    outputs: list[Output] = []
    for _ in range(ticks):
        outputs += arena.step()
    return outputs


def test_join_sends_welcome_first_with_schema_and_match() -> None:
    arena = make_arena()
    player, outputs = arena.join("alice")
    first = messages_to(outputs, player.player_id)[0]
    assert isinstance(first, protocol.Welcome)
    assert first.player_id == player.player_id
    assert first.slot == 0
    assert first.tick_rate_hz == 10
    assert first.schema["game"] == "tiny"
    assert first.match["goal"] == 50
    assert events_of(outputs, player.player_id, EventCode.LOBBY)[0].args == (10,)


def test_quick_join_fills_one_lobby_and_a_full_lobby_counts_down_at_once() -> None:
    arena = make_arena()
    players = [arena.join(f"p{i}")[0] for i in range(3)]
    assert {p.match.match_id for p in players} == {players[0].match.match_id}
    assert [p.slot for p in players] == [0, 1, 2]
    last, outputs = arena.join("p3")
    assert phase_of(last) is MatchPhase.COUNTDOWN
    countdown = events_of(outputs, players[0].player_id, EventCode.COUNTDOWN)
    assert countdown[0].args == (arena.tick + 5,)
    fifth, _ = arena.join("p4")
    assert fifth.match is not last.match


def test_lobby_timeout_starts_with_who_is_there_and_fills_with_ai() -> None:
    arena = make_arena()
    alice, _ = arena.join("alice")
    outputs = run(arena, 10)
    joined = events_of(outputs, alice.player_id, EventCode.PLAYER_JOINED)
    assert [e.args[1] for e in joined] == ["AI 2", "AI 3", "AI 4"]
    assert all(e.args[2] is True for e in joined)
    assert phase_of(alice) is MatchPhase.COUNTDOWN
    outputs = run(arena, 5)
    assert events_of(outputs, alice.player_id, EventCode.START)[0].tick == 15
    assert phase_of(alice) is MatchPhase.RUNNING


def test_lobby_without_ai_waits_for_min_players() -> None:
    arena = make_arena(min_players=2, fill_with_ai=False)
    alice, _ = arena.join("alice")
    run(arena, 25)
    assert phase_of(alice) is MatchPhase.LOBBY
    arena.join("bob")
    run(arena, 4)
    assert phase_of(alice) is MatchPhase.LOBBY
    run(arena, 1)
    assert phase_of(alice) is MatchPhase.COUNTDOWN


def test_join_errors_carry_their_close_codes() -> None:
    arena = make_arena()
    with pytest.raises(JoinError) as missing:
        arena.join("x", match_id=99)
    assert missing.value.close_code == CloseCode.MATCH_NOT_FOUND
    players = [arena.join(f"p{i}")[0] for i in range(4)]
    with pytest.raises(JoinError) as started:
        arena.join("x", match_id=players[0].match.match_id)
    assert started.value.close_code == CloseCode.MATCH_STARTED
    small = make_arena(max_players=1)
    small.join("a")
    with pytest.raises(JoinError) as full:
        small.join("b")
    assert full.value.close_code == CloseCode.SERVER_FULL


def test_inputs_apply_at_tick_boundaries_and_the_latest_wins() -> None:
    arena = make_arena(fill_with_ai=False)
    alice, _ = arena.join("alice")
    run(arena, 15)
    assert phase_of(alice) is MatchPhase.RUNNING
    arena.handle_input(alice.player_id, protocol.Input(seq=1, ack_tick=-1, controls=(0.1,)))
    arena.handle_input(alice.player_id, protocol.Input(seq=2, ack_tick=-1, controls=(0.5,)))
    arena.handle_input(alice.player_id, protocol.Input(seq=1, ack_tick=-1, controls=(1.0,)))
    outputs = arena.step()
    assert int(arena.game.state()[alice.match.row, 0, 0]) == 5
    frame = messages_to(outputs, alice.player_id)[-1]
    assert isinstance(frame, protocol.Snapshot)
    assert frame.input_seq == 2


@pytest.mark.parametrize("controls", [(1.5,), (-0.1,), (0.5, 0.5), ()])
def test_out_of_range_or_miscounted_controls_are_rejected(controls: tuple[float, ...]) -> None:
    arena = make_arena()
    alice, _ = arena.join("alice")
    with pytest.raises(InvalidInput) as error:
        arena.handle_input(alice.player_id, protocol.Input(seq=1, ack_tick=-1, controls=controls))
    assert error.value.close_code == CloseCode.INVALID_INPUT


def test_frames_are_deltas_against_the_acknowledged_tick_and_rebuild_the_state() -> None:
    arena = make_arena()
    alice, _ = arena.join("alice")
    mirror = Mirror(4, 2)
    kinds = []
    for _ in range(40):
        for message in messages_to(arena.step(), alice.player_id):
            if isinstance(message, protocol.Snapshot | protocol.Delta):
                kinds.append(message.__class__.__name__)
                mirror.apply(message)
                arena.acknowledge(alice.player_id, mirror.tick)
                assert np.array_equal(mirror.state, arena.game.state()[alice.match.row])
    assert kinds[0] == "Snapshot"
    assert set(kinds[1:]) == {"Delta"}


def test_a_lower_send_rate_sends_every_nth_tick() -> None:
    arena = make_arena()
    phone, _ = arena.join("phone", send_rate_hz=5)
    frames = [
        m
        for m in messages_to(run(arena, 20), phone.player_id)
        if isinstance(m, protocol.Snapshot | protocol.Delta)
    ]
    assert len(frames) == 10
    assert len({f.tick % 2 for f in frames}) == 1


def test_every_player_gets_the_results_then_a_normal_close() -> None:
    arena = make_arena(fill_with_ai=False)
    players = [arena.join(f"p{i}")[0] for i in range(4)]
    run(arena, 5)
    for i, player in enumerate(players):
        push = 1.0 if i < 2 else 0.5
        arena.handle_input(player.player_id, protocol.Input(seq=1, ack_tick=-1, controls=(push,)))
    outputs = run(arena, 20)
    ended = [o for o in outputs if isinstance(o, MatchEnded)]
    assert len(ended) == 1
    assert ended[0].results is not None
    for player in players:
        sent = messages_to(outputs, player.player_id)
        results = [m for m in sent if isinstance(m, protocol.Results)]
        assert len(results) == 1
        assert results[0].results == ended[0].results
        assert [r["name"] for r in results[0].results][:2] == ["p0", "p1"]
        finishes = events_of(outputs, player.player_id, FINISH)
        assert len(finishes) == 4
        closes = [
            o for o in flatten(outputs) if isinstance(o, Close) and o.player_id == player.player_id
        ]
        assert closes == [Close(player.player_id, CloseCode.NORMAL, "match over")]
    assert arena.matches == {}
    assert arena.players == {}


def test_the_match_is_aborted_when_every_player_leaves() -> None:
    arena = make_arena()
    alice, _ = arena.join("alice")
    bob, _ = arena.join("bob")
    run(arena, 20)
    outputs = arena.leave(alice.player_id)
    assert events_of(outputs, bob.player_id, EventCode.PLAYER_LEFT)[0].args == (alice.player_id,)
    outputs = arena.leave(bob.player_id)
    ended = [o for o in outputs if isinstance(o, MatchEnded)]
    assert ended[0].results is None
    assert arena.statistics().matches_aborted == 1
    assert arena.leave(bob.player_id) == []


def test_leaving_a_lobby_frees_the_seat() -> None:
    arena = make_arena()
    alice, _ = arena.join("alice")
    bob, _ = arena.join("bob")
    arena.leave(alice.player_id)
    carol, _ = arena.join("carol")
    assert carol.slot == alice.slot
    assert carol.match is bob.match


def test_many_matches_grow_the_columns_and_step_together() -> None:
    arena = make_arena(fill_with_ai=False)
    players = [arena.join(f"p{i}")[0] for i in range(4 * 5)]
    assert len(arena.matches) == 5
    assert arena.game.rows >= 5
    run(arena, 6)
    for player in players:
        arena.handle_input(player.player_id, protocol.Input(seq=1, ack_tick=-1, controls=(1.0,)))
    arena.step()
    positions = arena.game.state()[[p.match.row for p in players], [p.slot for p in players], 0]
    assert positions.tolist() == [10] * 20


def test_bad_match_options_do_not_leak_a_row() -> None:
    arena = make_arena()
    with pytest.raises(ValueError, match="nowhere"):
        arena.create_match({"track": "nowhere"})
    match = arena.create_match()
    assert match.row == 0


def test_pong_echoes_the_client_time_and_the_tick() -> None:
    arena = make_arena()
    run(arena, 3)
    pong = protocol.decode_server_message(arena.pong(protocol.Ping(client_time=123)))
    assert pong == protocol.Pong(client_time=123, tick=3)
    assert protocol.encode(pong)[1] == MessageType.PONG


def test_acknowledging_nothing_asks_for_a_snapshot() -> None:
    arena = make_arena()
    alice, _ = arena.join("alice")
    run(arena, 3)
    arena.acknowledge(alice.player_id, arena.tick)
    assert isinstance(messages_to(arena.step(), alice.player_id)[-1], protocol.Delta)
    arena.acknowledge(alice.player_id, -1)
    assert isinstance(messages_to(arena.step(), alice.player_id)[-1], protocol.Snapshot)


def test_a_player_who_left_mid_match_keeps_their_name_in_the_results() -> None:
    arena = make_arena(fill_with_ai=False)
    alice, _ = arena.join("alice")
    bob, _ = arena.join("bob")
    run(arena, 16)
    arena.leave(bob.player_id)
    arena.handle_input(alice.player_id, protocol.Input(seq=1, ack_tick=-1, controls=(1.0,)))
    ended = [o for o in run(arena, 20) if isinstance(o, MatchEnded)]
    assert ended[0].results is not None
    by_slot = {r["slot"]: r for r in ended[0].results}
    assert (by_slot[bob.slot]["player_id"], by_slot[bob.slot]["name"]) == (bob.player_id, "bob")
