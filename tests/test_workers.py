"""``gameserver serve --workers N`` as operators run it: real processes, real sockets, one port.

The front process hands each client's socket to the worker that holds its
match; these tests check a client always lands there (joining by id reaches
the right process), whole races finish across workers with results stored
once each, and a SIGTERM stops the front and every worker.
"""

from __future__ import annotations

import os
import signal
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import trio

from gameserver.bots import run_bots
from gameserver.client import ClientError, open_client
from gameserver.codes import CloseCode
from gameserver.results import SqliteResultStore
from gameserver.workers import Router

ROOT = Path(__file__).resolve().parent.parent
START_S = 30.0


def test_quick_joins_fill_one_workers_match_before_the_next_and_ids_route_home() -> None:
    router = Router(workers=3, first_match_id=10, seats=2)
    assert [router.worker_for(None) for _ in range(7)] == [0, 0, 1, 1, 2, 2, 0]
    # Worker k numbers its matches 10 + k, 13 + k, ...
    assert [router.worker_for(m) for m in (10, 11, 12, 13, 14, 15, 100)] == [0, 1, 2, 0, 1, 2, 0]


@asynccontextmanager
async def workers_process(
    tmp_path: Path, *, lobby_s: str, workers: int = 2
) -> AsyncIterator[tuple[trio.Process, str]]:
    port_file = tmp_path / "port"
    log = (tmp_path / "server.log").open("ab")
    env = {k: v for k, v in os.environ.items() if not k.startswith("GAMESERVER_")}
    env.update(
        GAMESERVER_TRACK="sprint",
        GAMESERVER_LAPS="1",
        GAMESERVER_LOBBY_TIMEOUT_S=lobby_s,
        GAMESERVER_COUNTDOWN_S="0.2",
        GAMESERVER_FILL_WITH_AI="false",
    )
    process = await trio.lowlevel.open_process(
        [
            sys.executable,
            "-m",
            "gameserver.cli",
            "serve",
            "--workers",
            str(workers),
            "--port",
            "0",
            "--db",
            str(tmp_path / "results.sqlite3"),
            "--port-file",
            str(port_file),
            "--log-level",
            "WARNING",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=log,
    )
    try:
        with trio.fail_after(START_S):
            while not port_file.exists():
                if process.poll() is not None:
                    raise AssertionError((tmp_path / "server.log").read_text())
                await trio.sleep(0.02)
        yield process, f"ws://127.0.0.1:{int(port_file.read_text())}"
    finally:
        if process.poll() is None:
            process.kill()
        with trio.fail_after(10):
            await process.wait()
        log.close()


async def test_races_on_two_workers_finish_with_results_stored_once_each(tmp_path: Path) -> None:
    async with workers_process(tmp_path, lobby_s="3") as (process, url):
        with trio.fail_after(90):
            reports = await run_bots(url, 16, seed=5)
        assert [r.error for r in reports] == [None] * 16
        assert {r.close_code for r in reports} == {CloseCode.NORMAL}
        assert all(r.statistics is not None and r.statistics.desyncs == 0 for r in reports)
        by_match: dict[int, int] = {}
        for report in reports:
            assert report.match_id is not None
            by_match[report.match_id] = by_match.get(report.match_id, 0) + 1
        # Eight quick joins fill worker 0's match 1, the next eight worker 1's match 2.
        assert by_match == {1: 8, 2: 8}
        process.send_signal(signal.SIGTERM)
        with trio.fail_after(20):
            assert await process.wait() == 0
    with SqliteResultStore(tmp_path / "results.sqlite3") as store:
        stored = store.matches(limit=10)
        assert sorted(m["match_id"] for m in stored) == [1, 2]
        assert {m["status"] for m in stored} == {"finished"}
        for report in reports:
            match = store.match(report.match_id or 0)
            assert match is not None
            assert len(match["results"]) == 8


async def test_a_join_by_match_id_reaches_the_worker_that_holds_the_match(
    tmp_path: Path,
) -> None:
    async with workers_process(tmp_path, lobby_s="60") as (_, url), trio.open_nursery() as nursery:
        first = await nursery.start(_hold, url, None)
        assert first == 1  # worker 0
        for _ in range(7):  # fill worker 0's lobby: the next quick join moves on
            await nursery.start(_hold, url, None)
        other = await nursery.start(_hold, url, None)
        assert other == 2  # worker 1
        # By id: match 2 lives on worker 1 and has seats left.
        assert await nursery.start(_hold, url, 2) == 2
        # Match 1 exists (on worker 0) but is full: refused as full, not as unknown.
        with pytest.raises(ClientError) as full:
            async with open_client(url, "late", match_id=1):
                pass
        assert full.value.close_code in (CloseCode.MATCH_FULL, CloseCode.MATCH_STARTED)
        # Match 3 would be worker 0's next: it does not exist.
        with pytest.raises(ClientError) as unknown:
            async with open_client(url, "lost", match_id=3):
                pass
        assert unknown.value.close_code == CloseCode.MATCH_NOT_FOUND
        nursery.cancel_scope.cancel()


async def _hold(
    url: str, match_id: int | None, *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
) -> None:
    """Join and stay connected; starts with the match id the welcome names."""
    async with open_client(url, "p", match_id=match_id) as client:
        task_status.started(client.welcome.match_id)
        await trio.sleep_forever()


async def test_workers_stop_when_the_front_process_is_killed(tmp_path: Path) -> None:
    async with workers_process(tmp_path, lobby_s="60") as (process, url):
        async with open_client(url, "p"):
            pass
        children = _children(process.pid)
        assert len(children) == 2
        process.kill()
        with trio.fail_after(10):
            while True:
                if not any(_alive(pid) for pid in children):
                    return
                await trio.sleep(0.05)


def _children(pid: int) -> list[int]:
    """Child processes of ``pid``, whichever of its threads started them."""
    return [
        int(child)
        for task in Path(f"/proc/{pid}/task").iterdir()
        for child in (task / "children").read_text().split()
    ]


def _alive(pid: int) -> bool:
    """Not exited (a zombie waiting for its reaper counts as exited)."""
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"
