"""Crash safety with real processes: ``kill -9`` and restart on the same database.

A match is in the results store whole or not at all. Results a player
received survive a ``kill -9`` of the server right after it sent them, stored
exactly once and exactly as received; a match killed mid-race leaves nothing
(or an aborted match), never a partial one; the database stays sound. Every
wait is bounded.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, closing
from pathlib import Path

import trio

from gameserver.client import GameClient, open_client
from gameserver.codes import EventCode
from gameserver.results import SqliteResultStore

ROOT = Path(__file__).resolve().parent.parent
#: Bound of a server's start-up, in seconds.
START_S = 20.0
#: Bound of a whole one-lap race, in seconds.
RACE_S = 60.0
SERVER_ENV = {
    "GAMESERVER_HOST": "127.0.0.1",
    "GAMESERVER_PORT": "0",
    "GAMESERVER_TRACK": "sprint",
    "GAMESERVER_LAPS": "1",
    "GAMESERVER_LOBBY_TIMEOUT_S": "0.2",
    "GAMESERVER_COUNTDOWN_S": "0.2",
    "GAMESERVER_FILL_WITH_AI": "false",
    "GAMESERVER_MIN_PLAYERS": "1",
}


def environment(**extra: str) -> dict[str, str]:
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("GAMESERVER_")}
    return {**inherited, **SERVER_ENV, **extra}


def result_rows(db: Path, match_id: int) -> int:
    with closing(sqlite3.connect(db)) as connection:
        [(count,)] = connection.execute(
            "SELECT COUNT(*) FROM match_results WHERE match_id = ?", (match_id,)
        ).fetchall()
    return int(count)


def assert_whole(db: Path) -> None:
    """Every stored match is whole: its entries all there, the totals their sums."""
    with closing(sqlite3.connect(db)) as connection:
        assert connection.execute("PRAGMA integrity_check").fetchall() == [("ok",)]
        assert connection.execute("PRAGMA foreign_key_check").fetchall() == []
        for match_id, status, options in connection.execute(
            "SELECT match_id, status, options FROM matches"
        ).fetchall():
            entries = connection.execute(
                "SELECT COUNT(*) FROM match_results WHERE match_id = ?", (match_id,)
            ).fetchone()[0]
            assert entries == (0 if status == "aborted" else EXPECTED.get(options, entries))
        totals = connection.execute(
            "SELECT name, matches, wins, points, coins, xp FROM player_totals ORDER BY name"
        ).fetchall()
        summed = connection.execute(
            "SELECT name, COUNT(*), SUM(position = 1 AND status IS 'finished'), SUM(points), "
            "SUM(coins), SUM(xp) FROM match_results WHERE ai = 0 AND player_id IS NOT NULL "
            "AND name != '' GROUP BY name ORDER BY name"
        ).fetchall()
        assert totals == summed


#: Entries per match, by the options the writer below gives it.
EXPECTED = {'{"entries": 8}': 8}

#: A process that commits synthetic matches as fast as it can, saying which.
WRITER = """
import sys
from gameserver.match import MatchEnded
from gameserver.results import SqliteResultStore

store = SqliteResultStore(sys.argv[1])
first = store.next_match_id()
for match_id in range(first, first + 100_000):
    results = [
        {"slot": s, "position": s + 1, "status": "finished", "time_ms": 1000 + s,
         "best_lap_ms": 900, "laps": 1, "points": 8 - s, "rewards": {"coins": 5, "xp": 9},
         "stats": {"collisions": s}, "ai": s >= 6, "player_id": s + 1, "name": f"p{s}"}
        for s in range(8)
    ]
    ended = MatchEnded(match_id=match_id, seed=match_id, options={"entries": 8},
                       start_tick=0, end_tick=600, results=results)
    store.record_match(ended, 1000.0 + match_id, tick_rate_hz=60)
    print(match_id, flush=True)
"""


def test_kill_9_during_commits_leaves_only_whole_matches(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite3"
    committed: list[int] = []
    for round_ in range(4):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db)],
            cwd=ROOT,
            env=environment(),
            stdout=subprocess.PIPE,
            text=True,
        )
        try:
            assert writer.stdout is not None
            # A different moment of the write each round.
            for _ in range(3 + 7 * round_):
                line = writer.stdout.readline()
                assert line, "the writer stopped"
                committed.append(int(line))
        finally:
            writer.send_signal(signal.SIGKILL)
            writer.wait(timeout=10)
            if writer.stdout is not None:
                writer.stdout.close()
        assert writer.returncode == -signal.SIGKILL
        assert_whole(db)
    with SqliteResultStore(db) as store:
        stored = {m["match_id"] for m in store.matches(limit=1_000_000)}
        assert set(committed) <= stored, "every commit the writer reported is on disk"
        assert store.integrity_check() == "ok"


# ---------------------------------------------------------------- the server
@asynccontextmanager
async def server_process(tmp_path: Path, db: Path) -> AsyncIterator[tuple[trio.Process, str]]:
    """``gameserver serve`` on ``db``, yielded with its URL once it listens; killed at the end."""
    port_file = tmp_path / "port"
    port_file.unlink(missing_ok=True)
    log = (tmp_path / "server.log").open("ab")
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "gameserver.cli",
            "serve",
            "--db",
            str(db),
            "--port-file",
            str(port_file),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=environment(),
        stdout=log,
        stderr=log,
    )
    try:
        with trio.fail_after(START_S):
            while not port_file.exists():
                if process.poll() is not None:
                    raise AssertionError(
                        f"the server exited with {process.returncode}:\n"
                        + (tmp_path / "server.log").read_text()
                    )
                await trio.sleep(0.02)
        yield process, f"ws://127.0.0.1:{int(port_file.read_text())}"
    finally:
        if process.poll() is None:
            process.kill()
        with trio.fail_after(10):
            await process.wait()
        log.close()


async def kill_9(process: trio.Process) -> None:
    process.send_signal(signal.SIGKILL)
    with trio.fail_after(10):
        assert await process.wait() == -signal.SIGKILL


async def race(client: GameClient) -> None:
    """Drive with the shipped autopilot until the connection closes."""
    from gameserver.bots import drive

    await drive(client, input_rate_hz=20.0, seed=1)


async def test_results_a_player_received_survive_kill_9_exactly_once(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite3"
    async with server_process(tmp_path, db) as (server, url):
        async with open_client(url, "ann") as client, trio.open_nursery() as nursery:
            nursery.start_soon(race, client)
            with trio.fail_after(RACE_S):
                await client.wait_closed()
            await kill_9(server)  # the moment the results reached the player
        received = client.results
    assert received is not None
    assert client.close_code == 1000

    async with server_process(tmp_path, db) as (server, url):
        with SqliteResultStore(db) as store:
            match = store.match(received.match_id)
            assert match is not None
            assert match["status"] == "finished"
            assert match["results"] == received.results
            assert result_rows(db, received.match_id) == len(received.results)
            assert [m["match_id"] for m in store.matches()] == [received.match_id]
            assert store.integrity_check() == "ok"
        async with open_client(url, "ben") as client:
            assert client.match_id == received.match_id + 1, "ids continue after a restart"
        await kill_9(server)

    command = [sys.executable, "-m", "gameserver.cli", "replay", str(received.match_id)]
    with trio.fail_after(RACE_S):
        replayed = await trio.run_process(
            [*command, "--db", str(db)],
            cwd=ROOT,
            env=environment(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
        )
    assert replayed.returncode == 0, replayed.stderr.decode()
    assert b"reproduced" in replayed.stdout
    assert_whole(db)


async def test_a_match_killed_mid_race_is_never_partly_stored(tmp_path: Path) -> None:
    db = tmp_path / "results.sqlite3"
    async with server_process(tmp_path, db) as (server, url):
        async with open_client(url, "ann") as client, trio.open_nursery() as nursery:
            nursery.start_soon(race, client)
            with trio.fail_after(START_S):
                while not any(e.kind == EventCode.START for e in client.events):
                    await client.wait_frame()
                for _ in range(60):  # a second of racing
                    await client.wait_frame()
            assert not client.closed
            await kill_9(server)
        match_id = client.match_id

    async with server_process(tmp_path, db) as (server, _url):
        with SqliteResultStore(db) as store:
            match = store.match(match_id)
            assert match is None or (match["status"], match["results"]) == ("aborted", [])
            assert result_rows(db, match_id) == 0
            assert store.integrity_check() == "ok"
        await kill_9(server)
    assert_whole(db)
