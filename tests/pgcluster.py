"""A throwaway PostgreSQL server for the tests: its own cluster in a temporary
directory, listening on a free loopback port, stopped and deleted afterwards.

The cluster is made with the server's own ``initdb`` and ``pg_ctl`` (Debian
keeps them in ``/usr/lib/postgresql/VERSION/bin``); the system's PostgreSQL
service is never touched. PostgreSQL refuses to run as root, so as root the
cluster belongs to, and runs as, the ``postgres`` user.
"""

from __future__ import annotations

import os
import pwd
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg

#: Bound of initdb, start-up and shut-down, each, in seconds.
STEP_S = 60.0
#: The database the tests get.
DATABASE = "gameserver_test"


@dataclass(frozen=True)
class ClusterTimes:
    """Seconds spent making and starting the cluster."""

    initdb_s: float
    start_s: float


def server_binaries() -> Path | None:
    """The directory holding ``initdb`` and ``pg_ctl``, newest version first; None if absent."""
    versions = sorted(
        Path("/usr/lib/postgresql").glob("*/bin"),
        key=lambda path: int(path.parent.name) if path.parent.name.isdigit() else 0,
        reverse=True,
    )
    for directory in versions:
        if (directory / "initdb").exists() and (directory / "pg_ctl").exists():
            return directory
    initdb, pg_ctl = shutil.which("initdb"), shutil.which("pg_ctl")
    if initdb and pg_ctl and Path(initdb).parent == Path(pg_ctl).parent:
        return Path(initdb).parent
    return None


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def _as_owner(argv: list[str]) -> list[str]:
    """``argv`` run as the ``postgres`` user when we are root."""
    if os.geteuid() != 0:
        return argv
    return ["runuser", "-u", "postgres", "--", *argv]


def _run(argv: list[str], what: str, log: Path | None = None) -> None:
    done = subprocess.run(
        _as_owner(argv), capture_output=True, text=True, timeout=STEP_S, check=False
    )
    if done.returncode != 0:
        detail = done.stderr or done.stdout
        if log is not None and log.exists():
            detail += f"\n{log}:\n{log.read_text(errors='replace')}"
        raise RuntimeError(f"{what} failed ({done.returncode}): {detail}")


@contextmanager
def running_cluster(binaries: Path) -> Iterator[tuple[str, ClusterTimes]]:
    """Start a cluster; yield a URL of its test database and how long it took."""
    root = Path(tempfile.mkdtemp(prefix="gameserver-pg-"))
    data, sockets, log = root / "data", root / "sockets", root / "server.log"
    sockets.mkdir(mode=0o700)
    if os.geteuid() == 0:
        owner = pwd.getpwnam("postgres")
        for path in (root, sockets):
            os.chown(path, owner.pw_uid, owner.pw_gid)
    port = free_port()
    pg_ctl = [str(binaries / "pg_ctl"), "--pgdata", str(data), "--timeout", str(int(STEP_S))]
    # Durability is not under test here: without fsync the cluster is fast.
    options = (
        f"-c port={port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={sockets} "
        "-c fsync=off -c synchronous_commit=off -c full_page_writes=off"
    )
    began = time.monotonic()
    try:
        _run(
            [
                str(binaries / "initdb"),
                *("--pgdata", str(data), "--username", "postgres", "--auth", "trust"),
                *("--encoding", "UTF8", "--locale", "C", "--no-sync"),
            ],
            "initdb",
        )
        initialised = time.monotonic()
        try:
            start = [*pg_ctl, "start", "--wait", "--log", str(log), "--options", options]
            _run(start, "pg_ctl start", log)
            times = ClusterTimes(
                initdb_s=initialised - began, start_s=time.monotonic() - initialised
            )
            url = f"postgresql://postgres@127.0.0.1:{port}"
            with psycopg.connect(f"{url}/postgres", autocommit=True) as admin:
                admin.execute(f"CREATE DATABASE {DATABASE}")
            yield f"{url}/{DATABASE}", times
        finally:
            if (data / "postmaster.pid").exists():
                _run([*pg_ctl, "stop", "--wait", "--mode", "immediate"], "pg_ctl stop")
    finally:
        shutil.rmtree(root, ignore_errors=True)
