"""The results store on a real SQLite file and a real PostgreSQL server, fed by
matches a real arena played.

Matches are played by :class:`~gameserver.match.Arena` with a tiny game whose
results have the race's shape (status, times, points, rewards, stats), so
what is stored is exactly what the arena would send. Every behaviour of the
store interface is checked on both stores (the ``backend`` fixture); the
PostgreSQL server comes from ``tests/conftest.py``. The server test runs the
Trio edge over memory streams on a virtual clock, with a store that holds its
commit until the test lets it go.
"""

from __future__ import annotations

import json
import sqlite3
import threading
from collections.abc import Iterator, Sequence
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
from gameserver.results import (
    MIGRATIONS,
    ResultStore,
    SqliteResultStore,
    StoreError,
    open_result_store,
    store_in_thread,
)
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


Migrations = Sequence[Sequence[str]]


class SqliteBackend:
    """A SQLite file, and plain SQL on it from outside the store."""

    name = "sqlite"
    migrations: Migrations = MIGRATIONS
    integrity_error: type[Exception] = sqlite3.IntegrityError

    def __init__(self, path: Path) -> None:
        self.database = self.location = str(path)

    def open(self, migrations: Migrations | None = None) -> ResultStore:
        return SqliteResultStore(self.database, migrations=migrations or self.migrations)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with closing(sqlite3.connect(self.database)) as db, db:
            return db.execute(sql, params).fetchall()

    def tables(self) -> set[str]:
        return {name for (name,) in self.rows("SELECT name FROM sqlite_master")}

    def columns(self, table: str) -> set[str]:
        return {row[1] for row in self.rows(f"PRAGMA table_info({table})")}


class PostgresBackend:
    """A schema of its own in a real PostgreSQL database, and plain SQL on it."""

    name = "postgres"
    integrity_error: type[Exception]

    def __init__(self, url: str) -> None:
        import psycopg

        from gameserver import results_postgres

        self.database = url
        self.location = results_postgres.redacted(url)
        self.migrations: Migrations = results_postgres.MIGRATIONS
        self.integrity_error = psycopg.IntegrityError

    def open(self, migrations: Migrations | None = None) -> ResultStore:
        from gameserver.results_postgres import PostgresResultStore

        return PostgresResultStore(self.database, migrations=migrations or self.migrations)

    def rows(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        import psycopg

        with psycopg.connect(self.database, autocommit=True) as db:
            cursor = db.execute(sql.replace("?", "%s"), params)
            return cursor.fetchall() if cursor.description is not None else []

    def tables(self) -> set[str]:
        return {
            name
            for (name,) in self.rows(
                "SELECT table_name FROM information_schema.tables "
                "WHERE table_schema = current_schema()"
            )
        }

    def columns(self, table: str) -> set[str]:
        sql = (
            "SELECT column_name FROM information_schema.columns "
            "WHERE table_schema = current_schema() AND table_name = ?"
        )
        return {name for (name,) in self.rows(sql, table)}


Backend = SqliteBackend | PostgresBackend


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "results.sqlite3"


@pytest.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def backend(request: pytest.FixtureRequest, db_path: Path) -> Backend:
    if request.param == "sqlite":
        return SqliteBackend(db_path)
    return PostgresBackend(request.getfixturevalue("postgres_database"))


@pytest.fixture
def store(backend: Backend) -> Iterator[ResultStore]:
    with backend.open() as opened:
        yield opened


def rows(path: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(path)) as db:
        return db.execute(sql, params).fetchall()


# ---------------------------------------------------------------- round trip
def test_a_finished_match_is_stored_exactly_as_the_players_received_it(
    store: ResultStore, backend: Backend
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
    assert backend.rows(
        "SELECT position, name, status, time_ms, best_lap_ms, laps, points, coins, xp, ai "
        "FROM match_results WHERE match_id = ? ORDER BY position",
        ended.match_id,
    ) == [
        (1, "ann", "finished", 1007, 901, 1, 10, 40, 90, 0),
        (2, "ben", "finished", 2007, 902, 1, 6, 20, 80, 0),
        (3, "cy", "finished", 3007, 903, 1, 4, 13, 70, 0),
    ]
    [(stats,)] = backend.rows("SELECT stats FROM match_results WHERE name = 'ben'")
    assert json.loads(stats) == ended.results[1]["stats"]


def test_the_stored_recording_replays_the_match_bit_exactly(store: ResultStore) -> None:
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
    store: ResultStore, backend: Backend
) -> None:
    ended = play(make_arena(), {"ann": 1.0, "ben": 0.5})
    assert store.record_match(ended, 100.0)
    tables = ("matches", "match_results", "replays")
    before = [backend.rows(f"SELECT * FROM {t}") for t in tables]
    board = store.leaderboard()
    assert not store.record_match(ended, 200.0)
    with backend.open() as reopened:
        assert not reopened.record_match(ended, 300.0)
    assert [backend.rows(f"SELECT * FROM {t}") for t in tables] == before
    assert store.leaderboard() == board
    assert [(r["name"], r["matches"]) for r in board] == [("ann", 1), ("ben", 1)]


def test_another_match_under_a_stored_id_is_refused_and_changes_nothing(
    store: ResultStore, backend: Backend
) -> None:
    first = play(make_arena(), {"ann": 1.0, "ben": 0.5})
    # A second server counting match ids from the same start.
    other = play(Arena(ScoredTinyGame(rows=1, goal=GOAL), CONFIG, seed=5), {"cy": 1.0})
    assert first.match_id == other.match_id
    assert store.record_match(first, 1.0)
    before = [backend.rows(f"SELECT * FROM {t}") for t in ("matches", "player_totals")]
    with pytest.raises(StoreError, match="another match with id 1"):
        store.record_match(other, 2.0)
    assert [backend.rows(f"SELECT * FROM {t}") for t in ("matches", "player_totals")] == before
    assert store.integrity_check() == "ok"


def test_a_transaction_that_fails_halfway_leaves_nothing(
    store: ResultStore, backend: Backend
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
    with pytest.raises(backend.integrity_error):
        store.record_match(broken, 1.0)
    for table in ("matches", "match_results", "player_totals", "replays"):
        assert backend.rows(f"SELECT COUNT(*) FROM {table}") == [(0,)]
    assert store.record_match(ended, 2.0), "the store is usable after a rollback"
    assert store.integrity_check() == "ok"


# ---------------------------------------------------------------- totals
def test_totals_add_up_across_matches_and_order_the_leaderboard(store: ResultStore) -> None:
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


def test_cars_the_server_drove_are_stored_but_never_totalled(store: ResultStore) -> None:
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
    store: ResultStore,
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


def test_a_match_that_never_started_is_not_kept(store: ResultStore) -> None:
    arena = make_arena()
    player, _ = arena.join("ann")
    [ended] = ended_of(arena.leave(player.player_id))
    assert ended.start_tick < 0
    assert not store.record_match(ended, 1.0)
    assert store.match(ended.match_id) is None
    assert store.matches() == []


# ---------------------------------------------------------------- schema
def test_a_new_database_gets_the_whole_schema_and_reopens_with_its_data(
    backend: Backend,
) -> None:
    with backend.open() as store:
        assert store.schema_version == len(backend.migrations)
        ended = play(make_arena(), {"ann": 1.0})
        store.record_match(ended, 1.0)
    assert {"matches", "match_results", "player_totals", "replays"} <= backend.tables()
    with backend.open() as store:
        assert store.schema_version == len(backend.migrations)
        match = store.match(ended.match_id)
        assert match is not None
        assert match["results"] == ended.results
        assert store.integrity_check() == "ok"


def test_a_new_sqlite_file_is_in_wal_mode(db_path: Path) -> None:
    SqliteResultStore(db_path).close()
    assert rows(db_path, "PRAGMA journal_mode") == [("wal",)]


def test_a_later_migration_runs_once_and_keeps_the_data(backend: Backend) -> None:
    with backend.open() as store:
        ended = play(make_arena(), {"ann": 1.0})
        store.record_match(ended, 1.0)
    later = (*backend.migrations, ("ALTER TABLE matches ADD COLUMN region TEXT",))
    for _ in range(2):
        with backend.open(migrations=later) as store:
            assert store.schema_version == len(backend.migrations) + 1
            assert store.match(ended.match_id) is not None
    assert backend.rows("SELECT match_id, region FROM matches") == [(ended.match_id, None)]


def test_a_failing_migration_leaves_the_database_at_its_version(backend: Backend) -> None:
    backend.open().close()
    broken = (*backend.migrations, ("ALTER TABLE matches ADD COLUMN region TEXT", "NOT SQL"))
    with pytest.raises(StoreError, match="syntax error"):
        backend.open(migrations=broken)
    with backend.open() as store:
        assert store.schema_version == len(backend.migrations)
    assert "region" not in backend.columns("matches")


def test_a_database_from_a_newer_gameserver_is_refused(backend: Backend) -> None:
    backend.open(migrations=(*backend.migrations, ("SELECT 1",))).close()
    with pytest.raises(StoreError, match="schema version 2"):
        backend.open()


# ---------------------------------------------------------------- queries
def test_match_ids_continue_after_the_highest_stored_one(store: ResultStore) -> None:
    assert store.next_match_id() == 1
    arena = Arena(ScoredTinyGame(rows=1, goal=GOAL), CONFIG, seed=9, first_match_id=41)
    ended = play(arena, {"ann": 1.0})
    assert ended.match_id == 41
    store.record_match(ended, 1.0)
    assert store.next_match_id() == 42


def test_matches_come_newest_first_filtered_by_end_time(store: ResultStore) -> None:
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


def test_calls_from_many_threads_are_serialised(store: ResultStore) -> None:
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
    url = "postgresql://results@db.internal/gameserver"
    assert load_config(environ={"GAMESERVER_DATABASE": url}).database == url
    assert load_config(environ={}, overrides={"database": None}).database is None


def test_the_database_setting_selects_the_store(backend: Backend) -> None:
    with open_result_store(backend.database) as store:
        assert (
            type(store).__name__
            == {
                "sqlite": "SqliteResultStore",
                "postgres": "PostgresResultStore",
            }[backend.name]
        )
        assert store.location == backend.location
        config = CONFIG.replace(database=backend.database)
        with cli._open_configured_store(config) as configured:
            assert type(configured) is type(store)


# ---------------------------------------------------------------- the server
async def test_the_server_hook_commits_in_a_worker_thread(
    store: ResultStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    record_match = store.record_match

    def noting_the_thread(ended: MatchEnded, ended_at: float, **kwargs: Any) -> bool:
        threads.append(threading.get_ident())
        return record_match(ended, ended_at, **kwargs)

    monkeypatch.setattr(store, "record_match", noting_the_thread)
    ended = play(make_arena(), {"ann": 1.0})
    with trio.fail_after(10):
        await store_in_thread(store, tick_rate_hz=10, clock=lambda: 99.0)(ended)
    assert threads != [threading.get_ident()]
    assert len(threads) == 1
    match = store.match(ended.match_id)
    assert match is not None
    assert (match["ended_at"], match["tick_rate_hz"]) == (99.0, 10)


async def test_no_player_receives_results_before_they_are_committed(
    autojump_clock: trio.testing.MockClock, store: ResultStore
) -> None:
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


# ---------------------------------------------------------------- the commands
@pytest.fixture
def filled(backend: Backend) -> list[MatchEnded]:
    arena = make_arena()
    played = [
        play(arena, {"ann": 1.0, "ben": 0.5}),
        play(arena, {"ben": 1.0, "ann": 0.5, "cy": 0.2}),
        abort_running(arena),
    ]
    with backend.open() as store:
        for index, ended in enumerate(played):
            store.record_match(ended, 1_700_000_000.0 + 60 * index, tick_rate_hz=10)
    return played


def run_cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_results_command_prints_the_table_or_the_json(
    filled: list[MatchEnded], backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    db = backend.database
    code, out, _ = run_cli(capsys, "results", "2", "--db", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].startswith("match 2  tiny  track oval  3 laps  finished")
    assert lines[1].split()[:3] == ["Pos", "Player", "Status"]
    assert [line.split()[1] for line in lines[3:]] == ["ben", "ann", "cy"]
    code, out, _ = run_cli(capsys, "results", "2", "--db", db, "--json")
    assert (code, json.loads(out)["results"]) == (0, filled[1].results)
    code, out, _ = run_cli(capsys, "results", "3", "--db", db)
    assert "aborted" in out
    code, _, err = run_cli(capsys, "results", "9", "--db", db)
    assert (code, err) == (1, f"gameserver: no match 9 in {backend.location}\n")


def test_leaderboard_and_matches_commands(
    filled: list[MatchEnded], backend: Backend, capsys: pytest.CaptureFixture[str]
) -> None:
    db = backend.database
    code, out, _ = run_cli(capsys, "leaderboard", "--db", db, "--top", "2")
    assert code == 0
    # Level on points, wins and matches: by name.
    assert [line.split()[:5] for line in out.splitlines()[2:]] == [
        ["1", "ann", "2", "1", "16"],
        ["2", "ben", "2", "1", "16"],
    ]
    code, out, _ = run_cli(capsys, "matches", "--db", db, "--json")
    assert [(m["match_id"], m["status"]) for m in json.loads(out)] == [
        (3, "aborted"),
        (2, "finished"),
        (1, "finished"),
    ]
    since = "2023-11-14T22:14:20+00:00"  # 1_700_000_060
    code, out, _ = run_cli(capsys, "matches", "--db", db, "--since", since)
    assert [line.split()[0] for line in out.splitlines()[2:]] == ["3", "2"]
    code, out, _ = run_cli(capsys, "matches", "--db", db, "--since", "1700000120")
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
    backend: Backend,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(cli.GAMES, "tiny", lambda _hz, _slots: ScoredTinyGame(rows=1, goal=GOAL))
    code, out, err = run_cli(capsys, "replay", "2", "--db", backend.database)
    assert (code, err) == (0, "")
    assert out.startswith("match 2 reproduced:")
    code, out, _ = run_cli(capsys, "replay", "3", "--db", backend.database, "--watch")
    assert code == 0
    assert out.splitlines()[-1].startswith("match 3 reproduced:")


def test_replay_command_names_the_tick_where_a_tampered_match_diverges(
    filled: list[MatchEnded],
    backend: Backend,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(cli.GAMES, "tiny", lambda _hz, _slots: ScoredTinyGame(rows=1, goal=GOAL))
    with backend.open() as store:
        data = store.recording(1)
    assert data is not None
    recording = Recording.from_bytes(data)
    last = len(recording.input_values) - 1
    recording.input_values[last] = (0.0,)  # the winner stops pushing just before the line
    backend.rows("UPDATE replays SET recording = ? WHERE match_id = 1", recording.to_bytes())

    code, out, err = run_cli(capsys, "replay", "1", "--db", backend.database, "--json")
    assert code == 1
    report = json.loads(out)
    assert report["reproduced"] is False
    assert report["tick"] >= recording.input_ticks[last]
    assert f"diverged at tick {report['tick']}" in err
