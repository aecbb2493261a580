"""The ``gameserver`` command: ``serve`` for operators, ``demo`` to watch a race end to end."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

import trio

from .config import ServerConfig, load_config
from .errors import ConfigError
from .race import RaceGame, track_names
from .server import Server

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


# ------------------------------------------------------------------ commands
async def _serve(config: ServerConfig, seed: int) -> None:
    game = RaceGame(tick_rate_hz=config.tick_rate_hz)
    server = Server(config, game, seed=seed)
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async for signum in signals:
                log.info("signal %d: closing connections and stopping", signum)
                await server.shutdown()
                break
        nursery.cancel_scope.cancel()


async def _demo(config: ServerConfig, *, matches: int, bots: int, seed: int, out: Printer) -> int:
    from .bots import run_bots, summarize

    game = RaceGame(tick_rate_hz=config.tick_rate_hz)
    server = Server(config, game, seed=seed)
    async with trio.open_nursery() as nursery:
        port = await nursery.start(server.run)
        url = f"ws://127.0.0.1:{port}"
        out(
            f"server on {url}: {matches} match(es) x {bots} bots, track {config.track}, "
            f"{config.laps} laps, {config.tick_rate_hz} Hz"
        )

        async def show() -> None:
            while True:
                await trio.sleep(1.0)
                for line in format_standings(server):
                    out(line)

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


# ------------------------------------------------------------------ arguments
def _add_server_flags(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--config", help="TOML file ([server] table)")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    parser.add_argument("--tick-rate", dest="tick_rate_hz", type=int)
    parser.add_argument("--send-rate", dest="send_rate_hz", type=int)
    parser.add_argument("--track", choices=track_names())
    parser.add_argument("--laps", type=int)
    parser.add_argument("--lobby-timeout", dest="lobby_timeout_s", type=float)
    parser.add_argument("--seed", type=int)
    parser.add_argument("--log-level", default="INFO")


def _config(args: argparse.Namespace, **defaults: Any) -> ServerConfig:
    keys = ("host", "port", "tick_rate_hz", "send_rate_hz", "track", "laps", "lobby_timeout_s")
    overrides = {**defaults, **{k: getattr(args, k) for k in keys if getattr(args, k) is not None}}
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
    commands.add_parser("tracks", help="list the shipped tracks")
    args = parser.parse_args(argv)

    if args.command == "tracks":
        for name in track_names():
            print(name)
        return 0
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    try:
        if args.command == "serve":
            config = _config(args)
            seed = config.seed if config.seed is not None else int.from_bytes(os.urandom(4))
            trio.run(_serve, config, seed)
            return 0
        if args.matches < 1 or args.bots < 1:
            parser.error("--matches and --bots must be at least 1")
        logging.getLogger("gameserver").setLevel(logging.WARNING)
        config = _config(args, port=0, laps=2, lobby_timeout_s=3.0, countdown_s=2.0)
        seed = config.seed if config.seed is not None else 1
        return trio.run(
            lambda: _demo(config, matches=args.matches, bots=args.bots, seed=seed, out=print)
        )
    except ConfigError as exc:
        print(f"gameserver: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
