"""The results store on a real SQLite file, fed by matches a real arena played.

Matches are played by :class:`~gameserver.match.Arena` with a tiny game whose
results have the race's shape (status, times, points, rewards, stats), so
what is stored is exactly what the arena would send. The server test runs
the Trio edge over memory streams on a virtual clock, with a store that holds
its commit until the test lets it go.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest
import trio
import trio.testing

from gameserver import cli, protocol
from gameserver.codes import CloseCode
from gameserver.config import ServerConfig, load_config
from gameserver.match import Arena, MatchEnded, MatchPhase, Output
from gameserver.replay import Recording, replay
from gameserver.results import MIGRATIONS, SqliteResultStore, StoreError, store_in_thread
from gameserver.server import Server

from .test_server import WAIT_S, Edge, drive
from .tinygame import TinyGame

CONFIG = ServerConfig(
    tick_rate_hz=10, send_rate_hz=10, lobby_timeout_s=1.0, countdown_s=0.5, fill_with_ai=False
)
GOAL = 100
POINTS = (10, 6, 4, 3)


class ScoredTinyGame(TinyGame):
    """The tiny game with results shaped like the race's."""

    def results(self, row: int) -> list[dict[str, Any]]:
        entries = super().results(row)
        finished = self._finish_order.get(row, [])
        for entry in entries:
            slot, position = entry["slot"], entry["position"]
            done = slot in finished
            entry.update(
                status="finished" if done else "dnf",
                time_ms=1000 * position + 7 if done else None,
                best_lap_ms=900 + position if done else None,
                laps=1 if done else 0,
                points=POINTS[position - 1] if done else 0,
                rewards={"coins": 40 // position, "xp": 100 - 10 * position},
                stats={
                    "top_speed_mps": 12.5,
                    "distance_m": float(entry["pos"]),
                    "collisions": position - 1,
                    "off_track_s": 0.25,
                },
                ai=bool(self._ai[row, slot]),
            )
        return entries


def make_arena(**changes: Any) -> Arena:
    return Arena(ScoredTinyGame(rows=1, goal=GOAL), CONFIG.replace(**changes), seed=9)


def ended_of(outputs: list[Output]) -> list[MatchEnded]:
    return [o for o in outputs if isinstance(o, MatchEnded)]


def play(arena: Arena, pushes: dict[str, float]) -> MatchEnded:
    """Seat a player per name, push each with its strength until the match ends."""
    players = [arena.join(name)[0] for name in pushes]
    for tick in range(1, 1000):
        for player, push in zip(players, pushes.values(), strict=True):
            if player.player_id in arena.players:
                arena.handle_input(player.player_id, protocol.Input(tick, -1, (push,)))
        ended = ended_of(arena.step())
        if ended:
            return ended[0]
    raise AssertionError("the match did not end")


def abort_running(arena: Arena, names: tuple[str, ...] = ("ann", "ben")) -> MatchEnded:
    """A match that started, then lost every player."""
    players = [arena.join(name)[0] for name in names]
    match = players[0].match
    while match.phase is not MatchPhase.RUNNING:
        arena.step()
    for _ in range(3):
        arena.step()
    outputs: list[Output] = []
    for player in players:
        outputs += arena.leave(player.player_id)
    [ended] = ended_of(outputs)
    return ended


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite3"


@pytest.fixture
def store(db_path: Path) -> Any:
    with SqliteResultStore(db_path) as opened:
        yield opened


def rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, params).fetchall()


# ---------------------------------------------------------------- round trip
def test_a_finished_match_is_stored_exactly_as_the_players_received_it(
    store: SqliteResultStore, db_path: Path
) -> None:
    ended = play(make_arena(), {"ann": 1.0, "ben": 0.5, "cy": 0.25})
    assert ended.results is not None
    assert store.record_match(ended, 5000.0, tick_rate_hz=10)

    match = store.match(ended.match_id)
    assert match is not None
    assert match["results"] == ended.results
    assert [r["name"] for r in match["results"]] == ["ann", "ben", "cy"]
    assert {k: match[k] for k in ("game", "track", "laps", "seed", "status")} == {
        "game": "tiny",
        "track": "oval",
        "laps": 3,
        "seed": ended.seed,
        "status": "finished",
    }
    assert match["options"] == ended.options
    assert (match["start_tick"], match["end_tick"]) == (ended.start_tick, ended.end_tick)
    assert match["ended_at"] == 5000.0
    assert match["started_at"] == pytest.approx(5000.0 - (ended.end_tick - ended.start_tick) / 10)
    assert match["tick_rate_hz"] == 10
    assert match["has_recording"]
    # The common columns are broken out of each entry.
    assert rows(
        db_path,
        "SELECT position, name, status, time_ms, best_lap_ms, laps, points, coins, xp, ai "
        "FROM match_results WHERE match_id = ? ORDER BY position",
        ended.match_id,
    ) == [
        (1, "ann", "finished", 1007, 901, 1, 10, 40, 90, 0),
        (2, "ben", "finished", 2007, 902, 1, 6, 20, 80, 0),
        (3, "cy", "finished", 3007, 903, 1, 4, 13, 70, 0),
    ]
    [(stats,)] = rows(db_path, "SELECT stats FROM match_results WHERE name = 'ben'")
    assert json.loads(stats) == ended.results[1]["stats"]


def test_the_stored_recording_replays_the_match_bit_exactly(store: SqliteResultStore) -> None:
    ended = play(make_arena(), {"ann": 0.7, "ben": 0.4})
    store.record_match(ended, 1.0)
    data = store.recording(ended.match_id)
    assert data is not None
    report = replay(ScoredTinyGame(rows=1, goal=GOAL), Recording.from_bytes(data))
    assert report.checksums_verified >= 1
    assert [r["slot"] for r in report.results] == [r["slot"] for r in ended.results or []]
    assert store.recording(ended.match_id + 1) is None


# ---------------------------------------------------------------- idempotence
def test_recording_a_match_again_changes_nothing_and_counts_nothing_twice(
    store: SqliteResultStore, db_path: Path
) -> None:
    ended = play(make_arena(), {"ann": 1.0, "ben": 0.5})
    assert store.record_match(ended, 100.0)
    before = [rows(db_path, f"SELECT * FROM {t}") for t in ("matches", "match_results")]
    board = store.leaderboard()
    assert not store.record_match(ended, 200.0)
    with SqliteResultStore(db_path) as reopened:
        assert not reopened.record_match(ended, 300.0)
    assert [rows(db_path, f"SELECT * FROM {t}") for t in ("matches", "match_results")] == before
    assert store.leaderboard() == board
    assert [(r["name"], r["matches"]) for r in board] == [("ann", 1), ("ben", 1)]


def test_a_transaction_that_fails_halfway_leaves_nothing(
    store: SqliteResultStore, db_path: Path
) -> None:
    ended = play(make_arena(), {"ann": 1.0, "ben": 0.5})
    assert ended.results is not None
    # Two entries for one slot: the second result row breaks the primary key.
    broken = MatchEnded(
        match_id=ended.match_id,
        seed=ended.seed,
        options=ended.options,
        start_tick=ended.start_tick,
        end_tick=ended.end_tick,
        results=[ended.results[0], {**ended.results[1], "slot": ended.results[0]["slot"]}],
        recording=ended.recording,
    )
    with pytest.raises(sqlite3.IntegrityError):
        store.record_match(broken, 1.0)
    for table in ("matches", "match_results", "player_totals", "replays"):
        assert rows(db_path, f"SELECT COUNT(*) FROM {table}") == [(0,)]
    assert store.record_match(ended, 2.0), "the store is usable after a rollback"
    assert store.integrity_check() == "ok"


# ---------------------------------------------------------------- totals
def test_totals_add_up_across_matches_and_order_the_leaderboard(
    store: SqliteResultStore,
) -> None:
    arena = make_arena()
    for pushes in (
        {"ann": 1.0, "ben": 0.5, "cy": 0.25},
        {"ben": 1.0, "ann": 0.5},
        {"ben": 1.0, "cy": 0.5, "dee": 0.3},
    ):
        store.record_match(play(arena, pushes), 10.0)

    board = store.leaderboard()
    summary = [(r["rank"], r["name"], r["matches"], r["wins"], r["points"]) for r in board]
    assert summary == [
        (1, "ben", 3, 2, 6 + 10 + 10),
        (2, "ann", 2, 1, 10 + 6),
        (3, "cy", 2, 0, 4 + 6),
        (4, "dee", 1, 0, 4),
    ]
    assert (board[0]["coins"], board[0]["xp"]) == (20 + 40 + 40, 80 + 90 + 90)
    assert [r["name"] for r in store.leaderboard(top=2)] == ["ben", "ann"]


def test_cars_the_server_drove_are_stored_but_never_totalled(store: SqliteResultStore) -> None:
    ended = play(make_arena(fill_with_ai=True), {"ann": 0.3})
    assert ended.results is not None
    assert sum(r["ai"] for r in ended.results) == 3
    store.record_match(ended, 1.0)
    match = store.match(ended.match_id)
    assert match is not None
    assert len(match["results"]) == 4
    assert [r["name"] for r in store.leaderboard()] == ["ann"]
    [summary] = store.matches()
    assert summary["players"] == 1


# ---------------------------------------------------------------- aborted matches
def test_an_aborted_match_is_kept_as_aborted_without_results_or_totals(
    store: SqliteResultStore,
) -> None:
    ended = abort_running(make_arena())
    assert ended.results is None
    assert store.record_match(ended, 50.0, tick_rate_hz=10)
    match = store.match(ended.match_id)
    assert match is not None
    assert (match["status"], match["results"]) == ("aborted", [])
    assert store.leaderboard() == []
    [summary] = store.matches()
    assert (summary["status"], summary["winner"]) == ("aborted", None)
    data = store.recording(ended.match_id)
    assert data is not None
    replay(ScoredTinyGame(rows=1, goal=GOAL), Recording.from_bytes(data))


def test_a_match_that_never_started_is_not_kept(store: SqliteResultStore) -> None:
    arena = make_arena()
    player, _ = arena.join("ann")
    [ended] = ended_of(arena.leave(player.player_id))
    assert ended.start_tick < 0
    assert not store.record_match(ended, 1.0)
    assert store.match(ended.match_id) is None
    assert store.matches() == []


# ---------------------------------------------------------------- schema
def test_a_new_file_gets_the_whole_schema_in_wal_mode_and_reopens_with_its_data(
    db_path: Path,
) -> None:
    with SqliteResultStore(db_path) as store:
        assert store.schema_version == len(MIGRATIONS)
        ended = play(make_arena(), {"ann": 1.0})
        store.record_match(ended, 1.0)
    tables = {name for (name,) in rows(db_path, "SELECT name FROM sqlite_master")}
    assert {"matches", "match_results", "player_totals", "replays"} <= tables
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]
    with SqliteResultStore(db_path) as store:
        assert store.schema_version == len(MIGRATIONS)
        match = store.match(ended.match_id)
        assert match is not None
        assert match["results"] == ended.results
        assert store.integrity_check() == "ok"


def test_a_later_migration_runs_once_and_keeps_the_data(db_path: Path) -> None:
    with SqliteResultStore(db_path) as store:
        ended = play(make_arena(), {"ann": 1.0})
        store.record_match(ended, 1.0)
    later = (*MIGRATIONS, ("ALTER TABLE matches ADD COLUMN region TEXT",))
    for _ in range(2):
        with SqliteResultStore(db_path, migrations=later) as store:
            assert store.schema_version == len(MIGRATIONS) + 1
            assert store.match(ended.match_id) is not None
    assert rows(db_path, "SELECT match_id, region FROM matches") == [(ended.match_id, None)]


def test_a_failing_migration_leaves_the_database_at_its_version(db_path: Path) -> None:
    SqliteResultStore(db_path).close()
    broken = (*MIGRATIONS, ("ALTER TABLE matches ADD COLUMN region TEXT", "NOT SQL"))
    with pytest.raises(StoreError, match="syntax error"):
        SqliteResultStore(db_path, migrations=broken)
    with SqliteResultStore(db_path) as store:
        assert store.schema_version == len(MIGRATIONS)
    assert "region" not in {row[1] for row in rows(db_path, "PRAGMA table_info(matches)")}


def test_a_database_from_a_newer_gameserver_is_refused(db_path: Path) -> None:
    SqliteResultStore(db_path, migrations=(*MIGRATIONS, ("SELECT 1",))).close()
    with pytest.raises(StoreError, match="schema version 2"):
        SqliteResultStore(db_path)


# ---------------------------------------------------------------- queries
def test_match_ids_continue_after_the_highest_stored_one(store: SqliteResultStore) -> None:
    assert store.next_match_id() == 1
    arena = Arena(ScoredTinyGame(rows=1, goal=GOAL), CONFIG, seed=9, first_match_id=41)
    ended = play(arena, {"ann": 1.0})
    assert ended.match_id == 41
    store.record_match(ended, 1.0)
    assert store.next_match_id() == 42


def test_matches_come_newest_first_filtered_by_end_time(store: SqliteResultStore) -> None:
    arena = make_arena()
    for ended_at in (1000.0, 2000.0, 3000.0):
        store.record_match(play(arena, {"ann": 1.0, "ben": 0.5}), ended_at)
    listed = store.matches()
    assert [(m["match_id"], m["ended_at"]) for m in listed] == [
        (3, 3000.0),
        (2, 2000.0),
        (1, 1000.0),
    ]
    assert {(m["winner"], m["players"], m["status"]) for m in listed} == {("ann", 2, "finished")}
    assert [m["match_id"] for m in store.matches(since=2000.0)] == [3, 2]
    assert [m["match_id"] for m in store.matches(limit=1)] == [3]


def test_calls_from_many_threads_are_serialised(store: SqliteResultStore) -> None:
    arena = make_arena()
    played = [play(arena, {"ann": 1.0, "ben": 0.5}) for _ in range(12)]
    errors: list[BaseException] = []

    def record(ended: MatchEnded) -> None:
        try:
            store.record_match(ended, 1.0)
            store.record_match(ended, 1.0)
            store.leaderboard()
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=record, args=(ended,)) for ended in played]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert errors == []
    assert len(store.matches()) == 12
    assert [(r["name"], r["matches"]) for r in store.leaderboard()] == [("ann", 12), ("ben", 12)]
    assert store.integrity_check() == "ok"


def test_the_database_is_a_config_key(tmp_path: Path) -> None:
    assert ServerConfig().database == "gameserver.sqlite3"
    path = str(tmp_path / "x.sqlite3")
    assert load_config(environ={"GAMESERVER_DATABASE": path}).database == path
    assert load_config(environ={}, overrides={"database": None}).database is None


# ---------------------------------------------------------------- the server
class ThreadNotingStore(SqliteResultStore):
    """A store that notes the thread each commit ran in."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        self.threads: list[int] = []

    def record_match(
        self, ended: MatchEnded, ended_at: float, *, tick_rate_hz: int | None = None
    ) -> bool:
        self.threads.append(threading.get_ident())
        return super().record_match(ended, ended_at, tick_rate_hz=tick_rate_hz)


async def test_the_server_hook_commits_in_a_worker_thread(db_path: Path) -> None:
    store = ThreadNotingStore(db_path)
    ended = play(make_arena(), {"ann": 1.0})
    with trio.fail_after(10):
        await store_in_thread(store, tick_rate_hz=10, clock=lambda: 99.0)(ended)
    assert store.threads != [threading.get_ident()]
    assert len(store.threads) == 1
    match = store.match(ended.match_id)
    assert match is not None
    assert (match["ended_at"], match["tick_rate_hz"]) == (99.0, 10)
    store.close()


async def test_no_player_receives_results_before_they_are_committed(
    autojump_clock: trio.testing.MockClock, db_path: Path
) -> None:
    store = SqliteResultStore(db_path)
    called, release = trio.Event(), trio.Event()

    async def store_when_released(ended: MatchEnded) -> None:
        # A slow disk: the commit happens only when the test says so. It runs
        # on the Trio thread, so the virtual clock stands still meanwhile.
        called.set()
        await release.wait()
        store.record_match(ended, 1234.0, tick_rate_hz=60)

    config = CONFIG.replace(tick_rate_hz=60, send_rate_hz=60)
    server = Server(
        config,
        TinyGame(rows=2, goal=GOAL),
        seed=3,
        store_results=store_when_released,
        first_match_id=7,
    )
    async with trio.open_nursery() as nursery:
        # What Server.run provides besides the listener: the nursery that stores run in.
        server._nursery = nursery
        nursery.start_soon(server.run_ticks)
        edge = Edge(server, nursery)
        peers = [await edge.connect(name) for name in ("ann", "ben")]
        for peer, push in zip(peers, (1.0, 0.5), strict=True):
            nursery.start_soon(drive, peer, push)
        with trio.fail_after(WAIT_S):
            await called.wait()
        # A second of ticks, sends and reads while the commit is pending.
        await trio.sleep(1.0)
        assert [peer.of_type(protocol.Results) for peer in peers] == [[], []]
        assert all(not peer.closed for peer in peers)
        assert store.match(7) is None
        release.set()
        closes = [await peer.wait_closed() for peer in peers]
        nursery.cancel_scope.cancel()

    assert [c.code for c in closes] == [CloseCode.NORMAL] * 2
    stored = store.match(7)
    assert stored is not None
    assert stored["ended_at"] == 1234.0
    for peer in peers:
        [results] = peer.of_type(protocol.Results)
        assert results.match_id == 7
        assert results.results == stored["results"]
        assert peer.received[-1][1] == results, "RESULTS is the last message before the close"
    store.close()


# ---------------------------------------------------------------- the commands
@pytest.fixture
def filled(db_path: Path) -> list[MatchEnded]:
    arena = make_arena()
    played = [
        play(arena, {"ann": 1.0, "ben": 0.5}),
        play(arena, {"ben": 1.0, "ann": 0.5, "cy": 0.2}),
        abort_running(arena),
    ]
    with SqliteResultStore(db_path) as store:
        for index, ended in enumerate(played):
            store.record_match(ended, 1_700_000_000.0 + 60 * index, tick_rate_hz=10)
    return played


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_results_command_prints_the_table_or_the_json(
    filled: list[MatchEnded], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "results", "2", "--db", str(db_path))
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("match 2  tiny  track oval  3 laps  finished")
    assert lines[1].split()[:3] == ["Pos", "Player", "Status"]
    assert [line.split()[1] for line in lines[3:]] == ["ben", "ann", "cy"]
    code, out, _ = run_cli(capsys, "results", "2", "--db", str(db_path), "--json")
    assert (code, json.loads(out)["results"]) == (0, filled[1].results)
    code, out, _ = run_cli(capsys, "results", "3", "--db", str(db_path))
    assert "aborted" in out
    code, _, err = run_cli(capsys, "results", "9", "--db", str(db_path))
    assert (code, err) == (1, f"gameserver: no match 9 in {db_path}\n")


def test_leaderboard_and_matches_commands(
    filled: list[MatchEnded], db_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code, out, _ = run_cli(capsys, "leaderboard", "--db", str(db_path), "--top", "2")
    assert code == 0
    # Level on points, wins and matches: by name.
    assert [line.split()[:5] for line in out.splitlines()[2:]] == [
        ["1", "ann", "2", "1", "16"],
        ["2", "ben", "2", "1", "16"],
    ]
    code, out, _ = run_cli(capsys, "matches", "--db", str(db_path), "--json")
    assert [(m["match_id"], m["status"]) for m in json.loads(out)] == [
        (3, "aborted"),
        (2, "finished"),
        (1, "finished"),
    ]
    since = "2023-11-14T22:14:20+00:00"  # 1_700_000_060
    code, out, _ = run_cli(capsys, "matches", "--db", str(db_path), "--since", since)
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["3", "2"]
    code, out, _ = run_cli(capsys, "matches", "--db", str(db_path), "--since", "1700000120")
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["3"]


def test_commands_refuse_a_database_that_does_not_exist(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    missing = tmp_path / "missing.sqlite3"
    code, _, err = run_cli(capsys, "leaderboard", "--db", str(missing))
    assert code == 2
    assert "no results database" in err
    assert not missing.exists()


def test_replay_command_reproduces_a_stored_match(
    filled: list[MatchEnded],
    db_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(cli.GAMES, "tiny", lambda _hz, _slots: ScoredTinyGame(rows=1, goal=GOAL))
    code, out, err = run_cli(capsys, "replay", "2", "--db", str(db_path))
    assert (code, err) == (0, "")
    assert out.startswith("match 2 reproduced:")
    code, out, _ = run_cli(capsys, "replay", "3", "--db", str(db_path), "--watch")
    assert code == 0
    assert out.splitlines()[-1].startswith("match 3 reproduced:")


def test_replay_command_names_the_tick_where_a_tampered_match_diverges(
    filled: list[MatchEnded],
    db_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(cli.GAMES, "tiny", lambda _hz, _slots: ScoredTinyGame(rows=1, goal=GOAL))
    with SqliteResultStore(db_path) as store:
        data = store.recording(1)
    assert data is not None
    recording = Recording.from_bytes(data)
    last = len(recording.input_values) - 1
    recording.input_values[last] = (0.0,)  # the winner stops pushing just before the line
    with closing(sqlite3.connect(db_path)) as db, db:
        db.execute("UPDATE replays SET recording = ? WHERE match_id = 1", (recording.to_bytes(),))

    code, out, err = run_cli(capsys, "replay", "1", "--db", str(db_path), "--json")
    assert code == 1
    report = json.loads(out)
    assert report["reproduced"] is False
    assert report["tick"] >= recording.input_ticks[last]
    assert f"diverged at tick {report['tick']}" in err
