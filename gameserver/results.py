"""The results store: finished matches, per-player results, totals and replays, kept durably.

The server hands every :class:`~gameserver.match.MatchEnded` to a
:class:`ResultStore` and sends RESULTS to the players only once
:meth:`ResultStore.record_match` has returned, so what a player is told is
always on disk. A match is written in one transaction, keyed by its match id:
recording it twice changes nothing.

:class:`SqliteResultStore` is the embedded default (WAL, ``synchronous=FULL``).
Its schema is versioned by ``PRAGMA user_version`` and upgraded by the ordered
:data:`MIGRATIONS`. A fleet of servers shares one PostgreSQL database through
:class:`~gameserver.results_postgres.PostgresResultStore` (the ``postgres``
extra) instead; :func:`open_result_store` picks the store from the configured
``database``, and the match code sees only the :class:`ResultStore` interface.

Methods are synchronous and thread-safe; the server calls them from worker
threads (:func:`store_in_thread`).
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any, Protocol, Self

import trio

from .errors import GameServerError
from .match import MatchEnded

#: Schema migrations, in order; each is a sequence of statements run in one
#: transaction. ``PRAGMA user_version`` is the number applied. Append, never edit.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE matches (
            match_id     INTEGER PRIMARY KEY,
            game         TEXT NOT NULL,
            track        TEXT,
            laps         INTEGER,
            seed         INTEGER NOT NULL,
            options      TEXT NOT NULL,
            tick_rate_hz INTEGER,
            start_tick   INTEGER NOT NULL,
            end_tick     INTEGER NOT NULL,
            started_at   REAL,
            ended_at     REAL NOT NULL,
            status       TEXT NOT NULL CHECK (status IN ('finished', 'aborted'))
        )
        """,
        "CREATE INDEX matches_by_end ON matches (ended_at)",
        """
        CREATE TABLE match_results (
            match_id    INTEGER NOT NULL REFERENCES matches (match_id) ON DELETE CASCADE,
            slot        INTEGER NOT NULL,
            player_id   INTEGER,
            name        TEXT NOT NULL,
            ai          INTEGER NOT NULL,
            position    INTEGER NOT NULL,
            status      TEXT,
            time_ms     INTEGER,
            best_lap_ms INTEGER,
            laps        INTEGER,
            points      INTEGER NOT NULL,
            coins       INTEGER NOT NULL,
            xp          INTEGER NOT NULL,
            stats       TEXT NOT NULL,
            entry       TEXT NOT NULL,
            PRIMARY KEY (match_id, slot)
        )
        """,
        "CREATE INDEX match_results_by_name ON match_results (name)",
        """
        CREATE TABLE player_totals (
            name    TEXT PRIMARY KEY,
            matches INTEGER NOT NULL,
            wins    INTEGER NOT NULL,
            points  INTEGER NOT NULL,
            coins   INTEGER NOT NULL,
            xp      INTEGER NOT NULL,
            updated REAL NOT NULL
        )
        """,
        """
        CREATE TABLE replays (
            match_id  INTEGER PRIMARY KEY REFERENCES matches (match_id) ON DELETE CASCADE,
            recording BLOB NOT NULL
        )
        """,
    ),
)

#: Seconds a connection waits for another process's write lock before failing.
BUSY_TIMEOUT_S = 10.0


#: How a ``database`` setting names a PostgreSQL database rather than a SQLite file.
POSTGRES_URL_SCHEMES = ("postgresql://", "postgres://")


class StoreError(GameServerError):
    """The results database cannot be opened or upgraded, or holds another match under an id."""


class ResultStore(Protocol):
    """Where finished matches are kept. Synchronous; safe to call from any thread."""

    @property
    def location(self) -> str:
        """The database, for messages (a file path, or a URL without its password)."""
        ...

    @property
    def schema_version(self) -> int:
        """The number of migrations applied."""
        ...

    def record_match(
        self, ended: MatchEnded, ended_at: float, *, tick_rate_hz: int | None = None
    ) -> bool:
        """Keep ``ended`` (ended at wall time ``ended_at``) in one transaction.

        Returns False, changing nothing, when the match is already stored or
        never started. Raises :class:`StoreError`, changing nothing, when
        another match (other seed or ticks) is stored under its id, as when
        two servers hand out the same ids. ``tick_rate_hz`` dates the start
        and lets a replay rebuild the game.
        """
        ...

    def match(self, match_id: int) -> dict[str, Any] | None:
        """One match with its ``results`` (the entries as sent), or None."""
        ...

    def matches(self, *, since: float | None = None, limit: int = 50) -> list[dict[str, Any]]:
        """Matches that ended at or after ``since`` (epoch seconds), newest first."""
        ...

    def leaderboard(self, top: int = 10) -> list[dict[str, Any]]:
        """The ``top`` players by points, then wins."""
        ...

    def recording(self, match_id: int) -> bytes | None:
        """The match's :class:`~gameserver.replay.Recording` bytes, or None."""
        ...

    def next_match_id(self) -> int:
        """One more than the highest stored match id, so ids stay unique across restarts."""
        ...

    def integrity_check(self) -> str:
        """``"ok"``, or the problems the database reports."""
        ...

    def close(self) -> None: ...

    def __enter__(self) -> Self: ...

    def __exit__(self, *exc: object) -> None: ...


def is_postgres_url(database: str) -> bool:
    """Whether a ``database`` setting names a PostgreSQL database."""
    return database.lower().startswith(POSTGRES_URL_SCHEMES)


def open_result_store(database: str) -> ResultStore:
    """The store a ``database`` setting names, created and migrated if need be.

    A ``postgresql://`` or ``postgres://`` URL opens a PostgreSQL database
    (psycopg is imported only then); anything else is a SQLite file path.
    """
    if is_postgres_url(database):
        try:
            from .results_postgres import PostgresResultStore
        except ImportError as exc:
            if not (exc.name or "").startswith("psycopg"):
                raise
            raise StoreError(
                "a postgresql:// database needs psycopg: pip install 'gameserver[postgres]'"
            ) from None
        return PostgresResultStore(database)
    return SqliteResultStore(database)


# ------------------------------------------------------------------ rows
@dataclass(frozen=True, slots=True)
class MatchRows:
    """One match as the rows it is stored as, computed before the transaction."""

    match: tuple[Any, ...]
    results: list[tuple[Any, ...]]
    totals: list[tuple[Any, ...]]
    recording: bytes | None


def _int(value: Any) -> int | None:
    """A number as an int column; anything else (None, NaN, text) as NULL."""
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return int(value)


def started(ended: MatchEnded) -> bool:
    """Whether the match ran (an abort in its lobby or countdown is not kept)."""
    return 0 <= ended.start_tick <= ended.end_tick


def match_rows(ended: MatchEnded, ended_at: float, tick_rate_hz: int | None) -> MatchRows:
    """The rows of ``ended``, in the column order of the INSERT statements."""
    options = ended.options
    started_at = (
        ended_at - (ended.end_tick - ended.start_tick) / tick_rate_hz if tick_rate_hz else None
    )
    recording = ended.recording
    match = (
        ended.match_id,
        recording.game if recording is not None else "",
        str(options["track"]) if "track" in options else None,
        _int(options.get("laps")),
        ended.seed,
        json.dumps(options),
        tick_rate_hz,
        ended.start_tick,
        ended.end_tick,
        started_at,
        ended_at,
        "aborted" if ended.results is None else "finished",
    )
    results: list[tuple[Any, ...]] = []
    totals: list[tuple[Any, ...]] = []
    for entry in ended.results or ():
        rewards = entry.get("rewards")
        rewards = rewards if isinstance(rewards, dict) else {}
        name = str(entry.get("name") or "")
        ai = bool(entry.get("ai", False))
        position = int(entry["position"])
        status = entry.get("status")
        points = _int(entry.get("points")) or 0
        coins = _int(rewards.get("coins")) or 0
        xp = _int(rewards.get("xp")) or 0
        results.append(
            (
                ended.match_id,
                int(entry["slot"]),
                _int(entry.get("player_id")),
                name,
                int(ai),
                position,
                None if status is None else str(status),
                _int(entry.get("time_ms")),
                _int(entry.get("best_lap_ms")),
                _int(entry.get("laps")),
                points,
                coins,
                xp,
                json.dumps(entry.get("stats", {})),
                json.dumps(entry),
            )
        )
        # Totals are per human who was still seated at the end: a car that
        # left has no name to count under.
        if not ai and name and entry.get("player_id") is not None:
            won = position == 1 and status in (None, "finished")
            totals.append((name, 1, int(won), points, coins, xp, ended_at))
    return MatchRows(
        match=match,
        results=results,
        totals=totals,
        recording=recording.to_bytes() if recording is not None else None,
    )


def check_same_match(ended: MatchEnded, stored: Sequence[Any], location: str) -> None:
    """Refuse ``ended`` if the match stored under its id, ``(seed, start_tick,
    end_tick)``, is another one: recording a match again is harmless, reusing
    its id for a different match would lose that match."""
    if tuple(stored) != (ended.seed, ended.start_tick, ended.end_tick):
        raise StoreError(
            f"results database {location} already holds another match with id "
            f"{ended.match_id}; do two servers hand out the same match ids?"
        )


# ------------------------------------------------------------------ SQLite
class SqliteResultStore:
    """The embedded store: one SQLite file in WAL mode, every commit synced to disk.

    One connection serves every thread, one call at a time.
    """

    def __init__(
        self, path: str | Path, *, migrations: Sequence[Sequence[str]] = MIGRATIONS
    ) -> None:
        self.path = str(path)
        try:
            self._db = sqlite3.connect(
                self.path, timeout=BUSY_TIMEOUT_S, isolation_level=None, check_same_thread=False
            )
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open results database {self.path}: {exc}") from None
        self._lock = threading.Lock()
        try:
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.execute("PRAGMA synchronous = FULL")
            self._db.execute("PRAGMA foreign_keys = ON")
            self._migrate(migrations)
        except sqlite3.Error as exc:
            self._db.close()
            raise StoreError(f"results database {self.path}: {exc}") from None
        except BaseException:
            self._db.close()
            raise

    def __enter__(self) -> SqliteResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def location(self) -> str:
        return self.path

    @property
    def schema_version(self) -> int:
        with self._lock:
            return int(self._db.execute("PRAGMA user_version").fetchone()[0])

    def _migrate(self, migrations: Sequence[Sequence[str]]) -> None:
        db = self._db
        for version, statements in enumerate(migrations, start=1):
            db.execute("BEGIN IMMEDIATE")
            try:
                # Read under the write lock: another process may have just migrated.
                current = int(db.execute("PRAGMA user_version").fetchone()[0])
                if current < version:
                    for statement in statements:
                        db.execute(statement)
                    db.execute(f"PRAGMA user_version = {version:d}")
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        current = int(db.execute("PRAGMA user_version").fetchone()[0])
        if current > len(migrations):
            raise StoreError(
                f"results database {self.path} has schema version {current}; "
                f"this gameserver knows versions up to {len(migrations)}"
            )

    # ------------------------------------------------------------ writing
    def record_match(
        self, ended: MatchEnded, ended_at: float, *, tick_rate_hz: int | None = None
    ) -> bool:
        if not started(ended):
            return False
        rows = match_rows(ended, ended_at, tick_rate_hz)
        with self._lock:
            db = self._db
            db.execute("BEGIN IMMEDIATE")
            try:
                found = db.execute(
                    "SELECT seed, start_tick, end_tick FROM matches WHERE match_id = ?",
                    (ended.match_id,),
                ).fetchone()
                if found is not None:
                    db.execute("ROLLBACK")
                    check_same_match(ended, found, self.path)
                    return False
                db.execute(
                    "INSERT INTO matches (match_id, game, track, laps, seed, options, "
                    "tick_rate_hz, start_tick, end_tick, started_at, ended_at, status) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows.match,
                )
                db.executemany(
                    "INSERT INTO match_results (match_id, slot, player_id, name, ai, position, "
                    "status, time_ms, best_lap_ms, laps, points, coins, xp, stats, entry) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    rows.results,
                )
                db.executemany(
                    "INSERT INTO player_totals (name, matches, wins, points, coins, xp, updated) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?) "
                    "ON CONFLICT (name) DO UPDATE SET "
                    "matches = player_totals.matches + excluded.matches, "
                    "wins = player_totals.wins + excluded.wins, "
                    "points = player_totals.points + excluded.points, "
                    "coins = player_totals.coins + excluded.coins, "
                    "xp = player_totals.xp + excluded.xp, "
                    "updated = excluded.updated",
                    rows.totals,
                )
                if rows.recording is not None:
                    db.execute(
                        "INSERT INTO replays (match_id, recording) VALUES (?, ?)",
                        (ended.match_id, rows.recording),
                    )
                db.execute("COMMIT")
            except BaseException:
                if db.in_transaction:
                    db.execute("ROLLBACK")
                raise
        return True

    # ------------------------------------------------------------ reading
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[sqlite3.Row]:
        with self._lock:
            cursor = self._db.cursor()
            cursor.row_factory = sqlite3.Row
            return cursor.execute(sql, params).fetchall()

    def match(self, match_id: int) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT m.*, EXISTS (SELECT 1 FROM replays r WHERE r.match_id = m.match_id) "
            "AS has_recording FROM matches m WHERE m.match_id = ?",
            (match_id,),
        )
        if not rows:
            return None
        match = match_dict(rows[0])
        match["has_recording"] = bool(rows[0]["has_recording"])
        entries = self._query(
            "SELECT entry FROM match_results WHERE match_id = ? ORDER BY position, slot",
            (match_id,),
        )
        match["results"] = [json.loads(row["entry"]) for row in entries]
        return match

    def matches(self, *, since: float | None = None, limit: int = 50) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT m.*, "
            "(SELECT COUNT(*) FROM match_results r WHERE r.match_id = m.match_id AND r.ai = 0) "
            "AS players, "
            "(SELECT r.name FROM match_results r WHERE r.match_id = m.match_id "
            "ORDER BY r.position, r.slot LIMIT 1) AS winner "
            "FROM matches m WHERE ? IS NULL OR m.ended_at >= ? "
            "ORDER BY m.ended_at DESC, m.match_id DESC LIMIT ?",
            (since, since, limit),
        )
        summaries = []
        for row in rows:
            summary = match_dict(row)
            summary["players"] = int(row["players"])
            summary["winner"] = row["winner"] if summary["status"] == "finished" else None
            summaries.append(summary)
        return summaries

    def leaderboard(self, top: int = 10) -> list[dict[str, Any]]:
        rows = self._query(
            "SELECT name, matches, wins, points, coins, xp, updated FROM player_totals "
            "ORDER BY points DESC, wins DESC, matches ASC, name ASC LIMIT ?",
            (top,),
        )
        return [{"rank": rank, **dict(row)} for rank, row in enumerate(rows, start=1)]

    def recording(self, match_id: int) -> bytes | None:
        rows = self._query("SELECT recording FROM replays WHERE match_id = ?", (match_id,))
        return bytes(rows[0]["recording"]) if rows else None

    def next_match_id(self) -> int:
        rows = self._query("SELECT COALESCE(MAX(match_id), 0) + 1 AS next FROM matches")
        return int(rows[0]["next"])

    def integrity_check(self) -> str:
        problems = [str(row[0]) for row in self._query("PRAGMA integrity_check")]
        problems += [
            f"foreign key: {row['table']} row {row['rowid']} -> {row['parent']}"
            for row in self._query("PRAGMA foreign_key_check")
        ]
        return "\n".join(problems) if problems != ["ok"] else "ok"


def match_dict(row: Any) -> dict[str, Any]:
    """A ``matches`` row (anything indexed by column name) as the dict the queries return."""
    return {
        "match_id": row["match_id"],
        "game": row["game"],
        "track": row["track"],
        "laps": row["laps"],
        "seed": row["seed"],
        "options": json.loads(row["options"]),
        "tick_rate_hz": row["tick_rate_hz"],
        "start_tick": row["start_tick"],
        "end_tick": row["end_tick"],
        "started_at": row["started_at"],
        "ended_at": row["ended_at"],
        "status": row["status"],
    }


# ------------------------------------------------------------------ the Trio edge
def store_in_thread(
    store: ResultStore, *, tick_rate_hz: int, clock: Callable[[], float] = time.time
) -> Callable[[MatchEnded], Awaitable[None]]:
    """The server's ``store_results`` hook: ``record_match`` in a worker thread.

    The thread is not abandoned on cancellation, so a shutting-down server
    still finishes (or never starts) each transaction.
    """

    async def store_results(ended: MatchEnded) -> None:
        ended_at = clock()
        await trio.to_thread.run_sync(
            partial(store.record_match, ended, ended_at, tick_rate_hz=tick_rate_hz)
        )

    return store_results
