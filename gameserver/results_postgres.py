"""The results store on PostgreSQL, for a fleet of servers sharing one database.

:class:`PostgresResultStore` keeps the same tables, columns and semantics as
:class:`~gameserver.results.SqliteResultStore`: one transaction per match,
idempotent on the match id, totals counted once, the entries kept exactly as
the players received them. Column types are PostgreSQL's (``BIGINT``,
``DOUBLE PRECISION``, ``BYTEA``). Applied migrations are rows of a
``schema_version`` table, and each migration runs under a transaction-scoped
advisory lock, so servers starting together upgrade the database once.

Needs psycopg 3 (``pip install 'gameserver[postgres]'``); importing this module
imports it, and :func:`~gameserver.results.open_result_store` imports this
module only for a ``postgresql://`` URL.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Sequence
from typing import Any, TypeVar
from urllib.parse import urlsplit, urlunsplit

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row

from .match import MatchEnded
from .results import (
    StoreError,
    check_same_match,
    is_postgres_url,
    match_dict,
    match_rows,
    started,
)

T = TypeVar("T")
Connection = psycopg.Connection[DictRow]

#: Schema migrations for PostgreSQL, in order, each run in one transaction: the
#: SQLite store's :data:`~gameserver.results.MIGRATIONS` with PostgreSQL's
#: column types. Append, never edit; a new migration goes into both.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """
        CREATE TABLE matches (
            match_id     BIGINT PRIMARY KEY,
            game         TEXT NOT NULL,
            track        TEXT,
            laps         BIGINT,
            seed         BIGINT NOT NULL,
            options      TEXT NOT NULL,
            tick_rate_hz BIGINT,
            start_tick   BIGINT NOT NULL,
            end_tick     BIGINT NOT NULL,
            started_at   DOUBLE PRECISION,
            ended_at     DOUBLE PRECISION NOT NULL,
            status       TEXT NOT NULL CHECK (status IN ('finished', 'aborted'))
        )
        """,
        "CREATE INDEX matches_by_end ON matches (ended_at)",
        """
        CREATE TABLE match_results (
            match_id    BIGINT NOT NULL REFERENCES matches (match_id) ON DELETE CASCADE,
            slot        BIGINT NOT NULL,
            player_id   BIGINT,
            name        TEXT NOT NULL,
            ai          BIGINT NOT NULL,
            position    BIGINT NOT NULL,
            status      TEXT,
            time_ms     BIGINT,
            best_lap_ms BIGINT,
            laps        BIGINT,
            points      BIGINT NOT NULL,
            coins       BIGINT NOT NULL,
            xp          BIGINT NOT NULL,
            stats       TEXT NOT NULL,
            entry       TEXT NOT NULL,
            PRIMARY KEY (match_id, slot)
        )
        """,
        "CREATE INDEX match_results_by_name ON match_results (name)",
        """
        CREATE TABLE player_totals (
            name    TEXT PRIMARY KEY,
            matches BIGINT NOT NULL,
            wins    BIGINT NOT NULL,
            points  BIGINT NOT NULL,
            coins   BIGINT NOT NULL,
            xp      BIGINT NOT NULL,
            updated DOUBLE PRECISION NOT NULL
        )
        """,
        """
        CREATE TABLE replays (
            match_id  BIGINT PRIMARY KEY REFERENCES matches (match_id) ON DELETE CASCADE,
            recording BYTEA NOT NULL
        )
        """,
    ),
)

#: Seconds to wait for the database server to answer a connection attempt.
CONNECT_TIMEOUT_S = 10

#: The advisory lock key that serialises migrations across servers ("gsrv").
MIGRATION_LOCK = 0x67737276

#: Every table of the schema, read by :meth:`PostgresResultStore.integrity_check`.
TABLES = ("matches", "match_results", "player_totals", "replays")


def redacted(dsn: str) -> str:
    """``dsn`` without its password, for messages and logs."""
    if is_postgres_url(dsn):
        parts = urlsplit(dsn)
        if parts.password is not None:
            user, _, host = parts.netloc.rpartition("@")
            parts = parts._replace(netloc=f"{user.partition(':')[0]}:***@{host}")
        query = re.sub(r"(?i)(^|&)(password=)[^&]*", r"\1\2***", parts.query)
        return urlunsplit(parts._replace(query=query))
    try:
        params = conninfo_to_dict(dsn)
    except psycopg.ProgrammingError:
        return "(unparsable connection string)"
    if "password" not in params:
        return dsn
    params["password"] = "***"
    return make_conninfo("", **params)


class PostgresResultStore:
    """The shared store: one PostgreSQL connection per server process.

    ``dsn`` is a libpq connection URL or ``key=value`` string. One connection
    serves every thread, one call at a time. A connection the server dropped
    (restart, failover, idle timeout) is replaced and the call run once more:
    every call is a read or an idempotent :meth:`record_match`.
    """

    def __init__(self, dsn: str, *, migrations: Sequence[Sequence[str]] = MIGRATIONS) -> None:
        self._dsn = dsn
        self.location = redacted(dsn)
        self._lock = threading.Lock()
        self._db = self._connect()
        try:
            self._migrate(migrations)
        except psycopg.Error as exc:
            self._db.close()
            raise StoreError(f"results database {self.location}: {exc}") from None
        except BaseException:
            self._db.close()
            raise

    def _connect(self) -> Connection:
        try:
            return psycopg.connect(
                self._dsn,
                autocommit=True,
                row_factory=dict_row,
                connect_timeout=CONNECT_TIMEOUT_S,
            )
        except psycopg.Error as exc:
            raise StoreError(f"cannot open results database {self.location}: {exc}") from None

    def __enter__(self) -> PostgresResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, work: Callable[[Connection], T]) -> T:
        """``work`` on the connection, under the lock; once more on a new
        connection if the server dropped this one."""
        with self._lock:
            if self._db.closed:
                self._db = self._connect()
            try:
                return work(self._db)
            except psycopg.OperationalError:
                if not self._db.broken:
                    raise
            self._db.close()
            self._db = self._connect()
            return work(self._db)

    @property
    def schema_version(self) -> int:
        return self._run(_schema_version)

    def _migrate(self, migrations: Sequence[Sequence[str]]) -> None:
        db = self._db
        for version, statements in enumerate(migrations, start=1):
            with db.transaction():
                # Under the lock: another server may have just migrated.
                db.execute("SELECT pg_advisory_xact_lock(%s)", (MIGRATION_LOCK,))
                db.execute(
                    "CREATE TABLE IF NOT EXISTS schema_version ("
                    "version INTEGER PRIMARY KEY, "
                    "applied_at TIMESTAMPTZ NOT NULL DEFAULT now())"
                )
                if _schema_version(db) < version:
                    for statement in statements:
                        db.execute(statement)
                    db.execute("INSERT INTO schema_version (version) VALUES (%s)", (version,))
        current = _schema_version(db)
        if current > len(migrations):
            raise StoreError(
                f"results database {self.location} has schema version {current}; "
                f"this gameserver knows versions up to {len(migrations)}"
            )

    # ------------------------------------------------------------ writing
    def record_match(
        self, ended: MatchEnded, ended_at: float, *, tick_rate_hz: int | None = None
    ) -> bool:
        if not started(ended):
            return False
        rows = match_rows(ended, ended_at, tick_rate_hz)

        def record(db: Connection) -> bool:
            with db.transaction():
                inserted = db.execute(
                    "INSERT INTO matches (match_id, game, track, laps, seed, options, "
                    "tick_rate_hz, start_tick, end_tick, started_at, ended_at, status) "
                    "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s) "
                    "ON CONFLICT (match_id) DO NOTHING",
                    rows.match,
                ).rowcount
                if inserted == 0:
                    found = db.execute(
                        "SELECT seed, start_tick, end_tick FROM matches WHERE match_id = %s",
                        (ended.match_id,),
                    ).fetchone()
                    assert found is not None
                    check_same_match(ended, tuple(found.values()), self.location)
                    return False
                with db.cursor() as cursor:
                    cursor.executemany(
                        "INSERT INTO match_results (match_id, slot, player_id, name, ai, "
                        "position, status, time_ms, best_lap_ms, laps, points, coins, xp, "
                        "stats, entry) "
                        "VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s)",
                        rows.results,
                    )
                    cursor.executemany(
                        "INSERT INTO player_totals (name, matches, wins, points, coins, xp, "
                        "updated) VALUES (%s, %s, %s, %s, %s, %s, %s) "
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
                        "INSERT INTO replays (match_id, recording) VALUES (%s, %s)",
                        (ended.match_id, rows.recording),
                    )
            return True

        return self._run(record)

    # ------------------------------------------------------------ reading
    def _query(self, sql: str, params: Sequence[Any] = ()) -> list[DictRow]:
        return self._run(lambda db: db.execute(sql, params).fetchall())

    def match(self, match_id: int) -> dict[str, Any] | None:
        rows = self._query(
            "SELECT m.*, EXISTS (SELECT 1 FROM replays r WHERE r.match_id = m.match_id) "
            "AS has_recording FROM matches m WHERE m.match_id = %s",
            (match_id,),
        )
        if not rows:
            return None
        match = match_dict(rows[0])
        match["has_recording"] = bool(rows[0]["has_recording"])
        entries = self._query(
            "SELECT entry FROM match_results WHERE match_id = %s ORDER BY position, slot",
            (match_id,),
        )
        match["results"] = [json.loads(row["entry"]) for row in entries]
        return match

    def matches(self, *, since: float | None = None, limit: int = 50) -> list[dict[str, Any]]:
        # A NULL parameter has no type in PostgreSQL: leave the filter out instead.
        where = "" if since is None else "WHERE m.ended_at >= %s"
        params = [limit] if since is None else [since, limit]
        rows = self._query(
            "SELECT m.*, "
            "(SELECT COUNT(*) FROM match_results r WHERE r.match_id = m.match_id AND r.ai = 0) "
            "AS players, "
            "(SELECT r.name FROM match_results r WHERE r.match_id = m.match_id "
            "ORDER BY r.position, r.slot LIMIT 1) AS winner "
            f"FROM matches m {where} "
            "ORDER BY m.ended_at DESC, m.match_id DESC LIMIT %s",
            params,
        )
        summaries = []
        for row in rows:
            summary = match_dict(row)
            summary["players"] = int(row["players"])
            summary["winner"] = row["winner"] if summary["status"] == "finished" else None
            summaries.append(summary)
        return summaries

    def leaderboard(self, top: int = 10) -> list[dict[str, Any]]:
        # Names in byte order whatever the database's collation, as in SQLite.
        rows = self._query(
            "SELECT name, matches, wins, points, coins, xp, updated FROM player_totals "
            'ORDER BY points DESC, wins DESC, matches ASC, name COLLATE "C" ASC LIMIT %s',
            (top,),
        )
        return [{"rank": rank, **row} for rank, row in enumerate(rows, start=1)]

    def recording(self, match_id: int) -> bytes | None:
        rows = self._query("SELECT recording FROM replays WHERE match_id = %s", (match_id,))
        return bytes(rows[0]["recording"]) if rows else None

    def next_match_id(self) -> int:
        rows = self._query("SELECT COALESCE(MAX(match_id), 0) + 1 AS next FROM matches")
        return int(rows[0]["next"])

    def integrity_check(self) -> str:
        """Every table readable and no result without its match; PostgreSQL
        checks its own pages and enforces the constraints."""

        def check(db: Connection) -> list[str]:
            problems = []
            for table in TABLES:
                try:
                    with db.transaction():
                        db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()
                except psycopg.DatabaseError as exc:
                    problems.append(f"{table}: {exc}")
            if problems:
                return problems
            orphans = db.execute(
                "SELECT COUNT(*) AS n FROM match_results r "
                "LEFT JOIN matches m ON m.match_id = r.match_id WHERE m.match_id IS NULL"
            ).fetchone()
            if orphans is not None and orphans["n"]:
                problems.append(f"foreign key: {orphans['n']} match_results rows without a match")
            return problems

        problems = self._run(check)
        return "\n".join(problems) if problems else "ok"


def _schema_version(db: Connection) -> int:
    row = db.execute("SELECT COALESCE(MAX(version), 0) AS version FROM schema_version").fetchone()
    return int(row["version"]) if row is not None else 0
