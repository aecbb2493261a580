"""The ``gameserver`` command: ``serve`` for operators, ``demo`` to watch a race end to end,
and ``results``, ``leaderboard``, ``matches`` and ``replay`` to read the results store.

The race is imported only by the commands that run it, so reading the store
needs nothing but the database.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime
from functools import partial
from pathlib import Path
from typing import Any

import trio

from .config import ServerConfig, load_config
from .errors import ConfigError, GameServerError
from .game import Game
from .replay import Recording, ReplayDivergence, game_results, replay
from .results import ResultStore, is_postgres_url, open_result_store, store_in_thread
from .server import Server, tune_garbage_collector

log = logging.getLogger("gameserver")
Printer = Callable[[str], None]


# ------------------------------------------------------------------ formatting
def format_ms(ms: Any) -> str:
    if ms is None:
        return "-"
    minutes, rest = divmod(int(ms), 60_000)
    return f"{minutes}:{rest / 1000:06.3f}"


def format_results(results: Sequence[dict[str, Any]]) -> str:
    """The final results of a match as a table."""
    header = (
        f"{'Pos':>3}  {'Player':<12} {'Status':<8} {'Time':>9} {'Best lap':>9} {'Laps':>4} "
        f"{'Pts':>3} {'Coins':>5} {'XP':>4} {'Top km/h':>8} {'Hits':>4} {'Off s':>5}"
    )
    lines = [header, "-" * len(header)]
    for r in results:
        stats, rewards = r.get("stats", {}), r.get("rewards", {})
        lines.append(
            f"{r['position']:>3}  {str(r.get('name', ''))[:12]:<12} {r.get('status', ''):<8} "
            f"{format_ms(r.get('time_ms')):>9} {format_ms(r.get('best_lap_ms')):>9} "
            f"{r.get('laps', 0):>4} {r.get('points', 0):>3} {rewards.get('coins', 0):>5} "
            f"{rewards.get('xp', 0):>4} {stats.get('top_speed_mps', 0) * 3.6:>8.1f} "
            f"{stats.get('collisions', 0):>4} {stats.get('off_track_s', 0):>5.1f}"
        )
    return "\n".join(lines)


def format_standings(server: Server) -> list[str]:
    """One line per running match: the live order with laps."""
    from .race import RaceGame

    lines = []
    arena = server.arena
    game = arena.game
    for match in arena.matches.values():
        if match.phase.value != "running" or not isinstance(game, RaceGame):
            continue
        laps = match.options.get("laps")
        order = []
        for entry in game.standings(match.row):
            seat = match.seats.get(entry["slot"])
            name = seat.name if seat else "?"
            done = "*" if entry.get("finished") else ""
            order.append(f"{entry['rank']}.{name}{done}(L{entry['lap']})")
        lines.append(f"match {match.match_id} [{laps} laps]  " + "  ".join(order))
    return lines


def format_when(epoch_s: float | None) -> str:
    """A stored wall time in local time."""
    if epoch_s is None:
        return "-"
    return datetime.fromtimestamp(epoch_s).strftime("%Y-%m-%d %H:%M:%S")


def format_match(match: dict[str, Any]) -> str:
    """A stored match: one line about it, then its results table."""
    duration = (
        f" ({match['ended_at'] - match['started_at']:.1f} s)"
        if match["started_at"] is not None
        else ""
    )
    head = (
        f"match {match['match_id']}  {match['game']}  track {match['track'] or '-'}  "
        f"{match['laps'] or '-'} laps  {match['status']}  ended {format_when(match['ended_at'])}"
        f"{duration}  seed {match['seed']}"
    )
    if match["status"] != "finished":
        return f"{head}\nno results: the match was aborted"
    return f"{head}\n{format_results(match['results'])}"


def format_leaderboard(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        f"{'Rank':>4}  {'Player':<16} {'Matches':>7} {'Wins':>5} {'Points':>7} "
        f"{'Coins':>7} {'XP':>7}  {'Last played':<19}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['rank']:>4}  {str(r['name'])[:16]:<16} {r['matches']:>7} {r['wins']:>5} "
            f"{r['points']:>7} {r['coins']:>7} {r['xp']:>7}  {format_when(r['updated']):<19}"
        )
    return "\n".join(line.rstrip() for line in lines)


def format_matches(rows: Sequence[dict[str, Any]]) -> str:
    header = (
        f"{'Match':>6}  {'Ended':<19}  {'Game':<6} {'Track':<10} {'Laps':>4} {'Status':<8} "
        f"{'Players':>7}  {'Winner':<16}"
    )
    lines = [header, "-" * len(header)]
    for r in rows:
        lines.append(
            f"{r['match_id']:>6}  {format_when(r['ended_at']):<19}  {str(r['game'])[:6]:<6} "
            f"{str(r['track'] or '-')[:10]:<10} {r['laps'] or '-':>4} {r['status']:<8} "
            f"{r['players']:>7}  {str(r['winner'] or '-')[:16]:<16}"
        )
    return "\n".join(line.rstrip() for line in lines)


# ------------------------------------------------------------------ commands
def _store_hooks(config: ServerConfig, store: ResultStore | None) -> dict[str, Any]:
    """Server arguments that keep every match in ``store``, continuing its match ids."""
    if store is None:
        return {}
    return {
        "store_results": store_in_thread(store, tick_rate_hz=config.tick_rate_hz),
        "first_match_id": store.next_match_id(),
    }


@contextmanager
def _open_configured_store(config: ServerConfig) -> Iterator[ResultStore | None]:
    """The configured results database, created and migrated if need be; None if unset."""
    if not config.database:
        yield None
        return
    with open_result_store(config.database) as store:
        log.info("results database %s (schema %d)", store.location, store.schema_version)
        yield store


def _write_port_file(path: str, port: int) -> None:
    """Write the bound port whole (a reader never sees half a file)."""
    temporary = f"{path}.tmp"
    with open(temporary, "w") as file:
        file.write(f"{port}\n")
    os.replace(temporary, path)


async def _serve(
    config: ServerConfig,
    seed: int,
    *,
    store: ResultStore | None = None,
    port_file: str | None = None,
) -> None:
    from .race import RaceGame

    game = RaceGame(tick_rate_hz=config.tick_rate_hz)
    server = Server(config, game, seed=seed, **_store_hooks(config, store))
    tune_garbage_collector()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        if port_file is not None:
            _write_port_file(port_file, port)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("signal %d: closing connections and stopping", signum)
                await server.shutdown()
                break
        nursery.cancel_scope.cancel()


def _serve_workers(config: ServerConfig, workers: int, seed: int, port_file: str | None) -> int:
    """``serve --workers N``: a front process and N worker processes (gameserver.workers)."""
    from .workers import run_front

    first_match_id = 1
    with _open_configured_store(config) as store:
        if store is not None:
            first_match_id = store.next_match_id()
    on_listening = partial(_write_port_file, port_file) if port_file is not None else None
    front = partial(run_front, first_match_id=first_match_id, on_listening=on_listening)
    return trio.run(front, config, workers, seed)


async def _demo(
    config: ServerConfig,
    *,
    matches: int,
    bots: int,
    seed: int,
    out: Printer,
    store: ResultStore | None = None,
) -> int:
    from .bots import run_bots, summarize
    from .race import RaceGame

    game = RaceGame(tick_rate_hz=config.tick_rate_hz)
    server = Server(config, game, seed=seed, **_store_hooks(config, store))
    tune_garbage_collector()
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        url = f"ws://127.0.0.1:{port}"
        out(
            f"server on {url}: {matches} match(es) x {bots} bots, track {config.track}, "
            f"{config.laps} laps, {config.tick_rate_hz} Hz"
        )

        async def show() -> None:
            shown: list[str] = []
            while True:
                await trio.sleep(2.0)
                lines = format_standings(server)
                if lines != shown:
                    for line in lines:
                        out(line)
                    shown = lines

        nursery.start_soon(show)
        reports = await run_bots(url, matches * bots, seed=seed)
        nursery.cancel_scope.cancel()
    shown: set[int] = set()
    for report in reports:
        if report.match_id is None or report.match_id in shown or not report.results:
            continue
        shown.add(report.match_id)
        out(f"\nFinal results of match {report.match_id}:")
        out(format_results(report.results))
    out("\nWhat each bot saw:")
    out(summarize(reports))
    stats = server.statistics()
    out(
        f"\nserver: {stats.ticks.ticks} ticks, late {stats.ticks.late_ticks}, missed "
        f"{stats.ticks.missed_ticks}, tick p50 {stats.ticks.tick_p50_ms:.2f} ms p99 "
        f"{stats.ticks.tick_p99_ms:.2f} ms; {stats.frames_sent} frames, "
        f"{stats.bytes_sent} bytes sent"
    )
    failed = [r for r in reports if r.results is None]
    desyncs = sum(r.statistics.desyncs for r in reports if r.statistics)
    return 1 if failed or desyncs else 0


# ------------------------------------------------------------------ the results store
def _race_game(tick_rate_hz: int, slots: int) -> Game:
    from .race import RaceGame

    game: Game = RaceGame(tick_rate_hz=tick_rate_hz, rows=1, slots=slots)
    return game


#: Games a recording can be replayed with, by the game name in the recording.
GAMES: dict[str, Callable[[int, int], Game]] = {"race": _race_game}


def _open_store(args: argparse.Namespace) -> ResultStore:
    """The database of ``--db``, else the configured one; a SQLite file must exist already."""
    database = args.db if args.db is not None else load_config(toml_path=args.config).database
    if not database:
        raise ConfigError("no results database: pass --db PATH or set database")
    if not is_postgres_url(database) and not Path(database).is_file():
        raise ConfigError(f"database: no results database at {database}")
    return open_result_store(database)


def _show(data: Any, table: str, *, as_json: bool, out: Printer) -> None:
    out(json.dumps(data, indent=2) if as_json else table)


def _watcher(match: dict[str, Any], tick_rate_hz: int, out: Printer) -> Callable[[int, Game], None]:
    """Print the live order once a second of game time, from the start."""
    names = {int(r["slot"]): str(r.get("name") or "") for r in match.get("results") or ()}
    start = int(match["start_tick"])

    def on_tick(tick: int, game: Game) -> None:
        if tick <= start or (tick - start) % tick_rate_hz:
            return
        line = f"{(tick - start) // tick_rate_hz:>4} s  tick {tick}"
        standings = getattr(game, "standings", None)
        if standings is not None:
            order = []
            for entry in standings(0):
                name = names.get(int(entry["slot"])) or f"slot {entry['slot']}"
                done = "*" if entry.get("finished") else ""
                order.append(f"{entry.get('rank', '?')}.{name}{done}(L{entry.get('lap', '?')})")
            line += "  " + "  ".join(order)
        out(line)

    return on_tick


def _replay(
    store: ResultStore,
    match_id: int,
    *,
    watch: bool,
    as_json: bool,
    out: Printer,
    err: Printer,
) -> int:
    """Re-simulate a stored match and check it against its checksums and stored results."""
    match = store.match(match_id)
    data = store.recording(match_id)
    if match is None or data is None:
        err(f"gameserver: no recording of match {match_id} in {store.location}")
        return 2
    recording = Recording.from_bytes(data)
    make_game = GAMES.get(recording.game)
    if make_game is None:
        err(f"gameserver: match {match_id} is a {recording.game!r} match; no such game here")
        return 2
    tick_rate_hz = int(match["tick_rate_hz"] or ServerConfig().tick_rate_hz)
    game = make_game(tick_rate_hz, recording.slots)
    on_tick = _watcher(match, tick_rate_hz, out) if watch else None
    try:
        report = replay(game, recording, on_tick=on_tick)
        if match["status"] == "finished" and game_results(match["results"]) != report.results:
            raise ReplayDivergence(recording.end_tick, "final results differ from the stored ones")
    except ReplayDivergence as exc:
        if as_json:
            out(json.dumps({"match_id": match_id, "reproduced": False, "tick": exc.tick}))
        err(f"gameserver: match {match_id} does not reproduce: {exc}")
        return 1
    if as_json:
        out(
            json.dumps(
                {
                    "match_id": match_id,
                    "reproduced": True,
                    "ticks": report.ticks,
                    "checksums_verified": report.checksums_verified,
                    "results": report.results,
                }
            )
        )
    else:
        out(
            f"match {match_id} reproduced: {report.ticks} ticks, "
            f"{report.checksums_verified} state checksums and the final results identical"
        )
    return 0


def _store_command(args: argparse.Namespace, out: Printer, err: Printer) -> int:
    with _open_store(args) as store:
        if args.command == "results":
            match = store.match(args.match_id)
            if match is None:
                err(f"gameserver: no match {args.match_id} in {store.location}")
                return 1
            _show(match, format_match(match), as_json=args.json, out=out)
        elif args.command == "leaderboard":
            rows = store.leaderboard(args.top)
            _show(rows, format_leaderboard(rows), as_json=args.json, out=out)
        elif args.command == "matches":
            rows = store.matches(since=args.since, limit=args.limit)
            _show(rows, format_matches(rows), as_json=args.json, out=out)
        else:
            return _replay(
                store, args.match_id, watch=args.watch, as_json=args.json, out=out, err=err
            )
    return 0


# ------------------------------------------------------------------ arguments
def _epoch_s(text: str) -> float:
    """``--since``: epoch seconds, or an ISO date/time (local time unless it has an offset)."""
    try:
        return float(text)
    except ValueError:
        pass
    try:
        return datetime.fromisoformat(text).timestamp()
    except ValueError:
        raise argparse.ArgumentTypeError(f"not epoch seconds or an ISO date: {text!r}") from None


def _add_store_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--db",
        help="results database, a SQLite file or a postgresql:// URL (default: the configured one)",
    )
    parser.add_argument("--config", help="TOML file ([server] table) that names the database")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")


def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file ([server] table)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tick-rate", dest="tick_rate_hz", type=int)
    parser.add_argument("--send-rate", dest="send_rate_hz", type=int)
    parser.add_argument("--track", help="a shipped track (gameserver tracks)")
    parser.add_argument("--laps", type=int)
    parser.add_argument("--lobby-timeout", dest="lobby_timeout_s", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument(
        "--db",
        dest="database",
        help='results database, a SQLite file or a postgresql:// URL; "" keeps nothing',
    )
    parser.add_argument("--log-level", default="INFO")


def _config(args: argparse.Namespace, **defaults: Any) -> ServerConfig:
    keys = (
        "host",
        "port",
        "tick_rate_hz",
        "send_rate_hz",
        "track",
        "laps",
        "lobby_timeout_s",
        "database",
        "status_port",
    )
    given = {k: getattr(args, k, None) for k in keys}
    overrides = {**defaults, **{k: v for k, v in given.items() if v is not None}}
    if args.seed is not None:
        overrides["seed"] = args.seed
    return load_config(toml_path=args.config, overrides=overrides)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="gameserver", description="Authoritative multiplayer game state-sync server."
    )
    commands = parser.add_subparsers(dest="command", required=True)
    serve = commands.add_parser("serve", help="run the server until SIGINT/SIGTERM")
    _add_server_flags(serve)
    demo = commands.add_parser("demo", help="a server and bots racing full matches, in-process")
    _add_server_flags(demo)
    demo.add_argument("--matches", type=int, default=1)
    demo.add_argument("--bots", type=int, default=8, help="bots per match")
    serve.add_argument("--port-file", help="write the listening port to this file")
    serve.add_argument(
        "--workers",
        type=int,
        default=1,
        help="worker processes, one per core; a front process routes each client to its match",
    )
    serve.add_argument(
        "--status-port",
        dest="status_port",
        type=int,
        help="serve /stats, /metrics and /healthz over HTTP on this port (0: any free port)",
    )
    commands.add_parser("tracks", help="list the shipped tracks")
    results = commands.add_parser("results", help="the stored results of one match")
    results.add_argument("match_id", type=int)
    _add_store_flags(results)
    leaderboard = commands.add_parser("leaderboard", help="players by total points")
    leaderboard.add_argument("--top", type=int, default=10)
    _add_store_flags(leaderboard)
    matches = commands.add_parser("matches", help="stored matches, newest first")
    matches.add_argument(
        "--since", type=_epoch_s, help="only matches that ended since (ISO date or epoch s)"
    )
    matches.add_argument("--limit", type=int, default=50)
    _add_store_flags(matches)
    replayer = commands.add_parser(
        "replay", help="re-simulate a stored match and verify its checksums and results"
    )
    replayer.add_argument("match_id", type=int)
    replayer.add_argument("--watch", action="store_true", help="print the standings every second")
    _add_store_flags(replayer)
    args = parser.parse_args(argv)

    if args.command in ("results", "leaderboard", "matches", "replay"):
        try:
            return _store_command(args, print, lambda line: print(line, file=sys.stderr))
        except GameServerError as exc:
            print(f"gameserver: {exc}", file=sys.stderr)
            return 2
    from .race import track_names

    if args.command == "tracks":
        for name in track_names():
            print(name)
        return 0
    if args.track is not None and args.track not in track_names():
        parser.error(f"--track: no track {args.track!r} (choose from {', '.join(track_names())})")
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            config = _config(args)
            seed = config.seed if config.seed is not None else int.from_bytes(os.urandom(4))
            if args.workers > 1:
                return _serve_workers(config, args.workers, seed, args.port_file)
            with _open_configured_store(config) as store:
                trio.run(partial(_serve, config, seed, store=store, port_file=args.port_file))
            return 0
        if args.matches < 1 or args.bots < 1:
            parser.error("--matches and --bots must be at least 1")
        logging.getLogger("gameserver").setLevel(logging.WARNING)
        # The demo keeps nothing unless given --db.
        config = _config(args, port=0, laps=2, lobby_timeout_s=3.0, countdown_s=2.0, database=None)
        seed = config.seed if config.seed is not None else 1
        with _open_configured_store(config) as store:
            return trio.run(
                lambda: _demo(
                    config, matches=args.matches, bots=args.bots, seed=seed, out=print, store=store
                )
            )
    except GameServerError as exc:
        print(f"gameserver: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
