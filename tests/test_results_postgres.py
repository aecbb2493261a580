"""What only the PostgreSQL store has to do: share a database between servers,
survive a dropped connection, keep passwords out of messages, and say clearly
what is missing. The behaviours both stores share are in ``test_results.py``.
"""

from __future__ import annotations

import sys
import threading
from collections.abc import Iterator

import psycopg
import pytest

from gameserver import cli
from gameserver.results import StoreError, open_result_store
from gameserver.results_postgres import MIGRATIONS, PostgresResultStore, redacted

from .pgcluster import free_port
from .test_results import make_arena, play

postgres = pytest.mark.postgres


@pytest.fixture
def store(postgres_database: str) -> Iterator[PostgresResultStore]:
    with PostgresResultStore(postgres_database) as opened:
        yield opened


@postgres
def test_servers_starting_together_apply_each_migration_once(postgres_database: str) -> None:
    later = (*MIGRATIONS, ("ALTER TABLE matches ADD COLUMN region TEXT",))
    opened: list[PostgresResultStore] = []
    errors: list[BaseException] = []
    ready = threading.Barrier(4)

    def start() -> None:
        try:
            ready.wait(timeout=10)
            opened.append(PostgresResultStore(postgres_database, migrations=later))
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=start) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    try:
        assert errors == []
        assert [store.schema_version for store in opened] == [len(later)] * 4
    finally:
        for store in opened:
            store.close()
    with psycopg.connect(postgres_database) as db:
        applied = db.execute("SELECT version FROM schema_version ORDER BY version").fetchall()
    assert applied == [(version,) for version in range(1, len(later) + 1)]


@postgres
def test_a_connection_the_server_dropped_is_replaced_and_the_call_retried(
    store: PostgresResultStore, postgres_database: str
) -> None:
    arena = make_arena()
    first, second = play(arena, {"ann": 1.0}), play(arena, {"ann": 1.0})
    assert store.record_match(first, 1.0)
    # What a server restart or failover does to an open connection.
    with psycopg.connect(postgres_database) as admin:
        admin.execute("SELECT pg_terminate_backend(%s)", (store._db.info.backend_pid,))
    assert store.record_match(second, 2.0)
    assert [m["match_id"] for m in store.matches()] == [2, 1]
    assert store.integrity_check() == "ok"


@postgres
def test_two_stores_on_one_database_see_each_others_matches(postgres_database: str) -> None:
    with (
        PostgresResultStore(postgres_database) as one,
        PostgresResultStore(postgres_database) as other,
    ):
        ended = play(make_arena(), {"ann": 1.0, "ben": 0.5})
        assert one.record_match(ended, 1.0)
        assert not other.record_match(ended, 2.0)
        assert other.next_match_id() == ended.match_id + 1
        assert [(r["name"], r["matches"]) for r in other.leaderboard()] == [("ann", 1), ("ben", 1)]


def test_an_unreachable_server_is_a_store_error_without_the_password(
    capsys: pytest.CaptureFixture[str],
) -> None:
    url = f"postgresql://results:hunter2@127.0.0.1:{free_port()}/gameserver"
    with pytest.raises(StoreError, match="cannot open results database") as caught:
        open_result_store(url)
    assert "hunter2" not in str(caught.value)
    assert cli.main(["leaderboard", "--db", url]) == 2
    err = capsys.readouterr().err
    assert "cannot open results database postgresql://results:***@127.0.0.1" in err
    assert "hunter2" not in err


def test_without_psycopg_a_postgres_url_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)
    monkeypatch.delitem(sys.modules, "gameserver.results_postgres")
    with pytest.raises(StoreError, match=r"pip install 'gameserver\[postgres\]'"):
        open_result_store("postgres://db.internal/gameserver")


@pytest.mark.parametrize(
    ("dsn", "shown"),
    [
        ("postgresql://u:pw@h:5/db?sslmode=require", "postgresql://u:***@h:5/db?sslmode=require"),
        ("postgresql://u@h/db?password=pw&a=b", "postgresql://u@h/db?password=***&a=b"),
        ("postgres://h/db", "postgres://h/db"),
        ("host=h password=pw dbname=db", "password=*** dbname=db host=h"),
    ],
)
def test_messages_name_the_database_without_its_password(dsn: str, shown: str) -> None:
    assert redacted(dsn) == shown
