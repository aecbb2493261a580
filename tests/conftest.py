"""Fixtures shared across test modules: a real PostgreSQL server for the results store.

``postgres_url`` is a session's PostgreSQL database: ``GAMESERVER_TEST_POSTGRES_DSN``
(a ``postgresql://`` URL) if set, else a throwaway cluster started from the
server binaries on this machine (:mod:`tests.pgcluster`). Without either the
tests that need it are skipped, except under ``CI=true``, where they fail: CI
installs PostgreSQL (``.ci/run``), so a missing server there is a broken build.
``postgres_database`` gives each test a schema of its own in that database.
"""

from __future__ import annotations

import os
import pwd
import uuid
from collections.abc import Iterator
from typing import NoReturn
from urllib.parse import quote

import pytest

DSN_VARIABLE = "GAMESERVER_TEST_POSTGRES_DSN"
_CLUSTER_TIMES = pytest.StashKey[str]()


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("CI") == "true":
        pytest.fail(f"PostgreSQL tests cannot run in CI: {reason}", pytrace=False)
    pytest.skip(f"no PostgreSQL: {reason}")


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> Iterator[str]:
    try:
        import psycopg  # noqa: F401
    except ImportError:
        _unavailable("psycopg is not installed (pip install -e '.[dev]')")
    given = os.environ.get(DSN_VARIABLE)
    if given:
        if not given.startswith(("postgresql://", "postgres://")):
            pytest.fail(f"{DSN_VARIABLE} must be a postgresql:// URL", pytrace=False)
        yield given
        return
    from .pgcluster import running_cluster, server_binaries

    binaries = server_binaries()
    if binaries is None:
        _unavailable(f"no initdb/pg_ctl (apt-get install postgresql) and {DSN_VARIABLE} unset")
    if os.geteuid() == 0:
        try:
            pwd.getpwnam("postgres")
        except KeyError:
            _unavailable("running as root and there is no postgres user to run the server as")
    with running_cluster(binaries) as (url, times):
        request.config.stash[_CLUSTER_TIMES] = (
            f"PostgreSQL test cluster ({binaries}): initdb {times.initdb_s:.2f} s, "
            f"start {times.start_s:.2f} s"
        )
        yield url


@pytest.fixture
def postgres_database(postgres_url: str) -> Iterator[str]:
    """A URL of the test database whose search path is a new, empty schema."""
    import psycopg

    schema = f"test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(postgres_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
        separator = "&" if "?" in postgres_url else "?"
        yield f"{postgres_url}{separator}options={quote(f'-c search_path={schema}', safe='')}"
        admin.execute(f"DROP SCHEMA {schema} CASCADE")


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter) -> None:
    times = terminalreporter.config.stash.get(_CLUSTER_TIMES, None)
    if times is not None:
        terminalreporter.write_line(times)
