"""End to end over real WebSocket on loopback: a real server task and real clients race."""

from __future__ import annotations

from collections import defaultdict

import numpy as np
import pytest
import trio

from gameserver.bots import BotReport, run_bots
from gameserver.client import ClientError, open_client
from gameserver.config import ServerConfig
from gameserver.race import RaceGame
from gameserver.replay import game_results, replay
from gameserver.server import Server

pytestmark = pytest.mark.filterwarnings("error")

CONFIG = ServerConfig(
    port=0,
    track="sprint",
    laps=2,
    lobby_timeout_s=5.0,
    countdown_s=0.5,
    fill_with_ai=False,
)


async def test_two_matches_of_four_bots_race_two_laps_to_identical_results() -> None:
    server = Server(CONFIG, RaceGame(tick_rate_hz=CONFIG.tick_rate_hz, slots=4), seed=11)
    with trio.fail_after(90):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)
            reports = await run_bots(f"ws://127.0.0.1:{port}", 8, seed=3)
            nursery.cancel_scope.cancel()

    assert [r.error for r in reports] == [None] * 8
    by_match: dict[int, list[BotReport]] = defaultdict(list)
    for report in reports:
        assert report.match_id is not None
        by_match[report.match_id].append(report)
    assert sorted(len(group) for group in by_match.values()) == [4, 4]

    ended = {e.match_id: e for e in server.ended}
    for match_id, group in by_match.items():
        first = group[0].results
        assert first is not None
        for report in group:
            assert report.results == first, "every bot receives the same final results"
            assert report.close_code == 1000
            stats = report.statistics
            assert stats is not None
            assert stats.desyncs == 0, "every frame's checksum matched the mirror"
            assert stats.frames > 100
            assert stats.input_latencies_s, "frames report the inputs they applied"
        server_results = ended[match_id].results
        assert server_results is not None
        assert [(r["slot"], r["position"]) for r in first] == [
            (r["slot"], r["position"]) for r in server_results
        ]
        assert [r["position"] for r in first] == [1, 2, 3, 4]
        assert {r["status"] for r in first} == {"finished"}
        assert all(r["laps"] == 2 for r in first)
        times = [r["time_ms"] for r in first]
        assert times == sorted(times)
        assert {r["player_id"] for r in first} == {r.player_id for r in group}
        recording = ended[match_id].recording
        assert recording is not None
        replayed = replay(RaceGame(tick_rate_hz=CONFIG.tick_rate_hz, rows=1, slots=4), recording)
        assert replayed.checksums_verified >= 10, "every match replays bit-exactly"
        assert replayed.results == game_results(server_results)
    server_stats = server.statistics()
    assert server_stats.matches_finished == 2
    assert server_stats.ticks.missed_ticks < server_stats.ticks.ticks * 0.05


async def test_final_mirrored_ranks_agree_with_the_results() -> None:
    config = CONFIG.replace(laps=1)
    server = Server(config, RaceGame(tick_rate_hz=config.tick_rate_hz, slots=2), seed=5)
    finals: list[tuple[int, np.ndarray, list[dict[str, object]]]] = []

    async def racer(url: str, name: str) -> None:
        from gameserver.bots import drive

        async with open_client(url, name) as client:
            await drive(client, input_rate_hz=20.0, seed=len(name))
            assert client.results is not None
            rank = client.column("rank").astype(int)
            finals.append((client.slot, rank, client.results.results))

    with trio.fail_after(60):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)
            async with trio.open_nursery() as clients:
                clients.start_soon(racer, f"ws://127.0.0.1:{port}", "ann")
                clients.start_soon(racer, f"ws://127.0.0.1:{port}", "bobby")
            nursery.cancel_scope.cancel()

    assert len(finals) == 2
    for _slot, rank, results in finals:
        for entry in results:
            assert rank[int(entry["slot"])] == entry["position"]  # type: ignore[call-overload]


async def test_handshake_without_the_subprotocol_or_token_is_refused() -> None:
    server = Server(CONFIG.replace(auth_token="s3cret"), RaceGame(tick_rate_hz=60), seed=1)
    with trio.fail_after(20):
        async with trio.open_nursery() as nursery:
            port = await nursery.start(server.run)
            url = f"ws://127.0.0.1:{port}"
            with pytest.raises(ClientError, match="401"):
                async with open_client(url, "mallory"):
                    pass
            async with open_client(url, "alice", token="s3cret") as client:
                assert client.welcome.match["track"]["name"] == "sprint"
            nursery.cancel_scope.cancel()
