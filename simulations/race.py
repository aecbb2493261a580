"""Headless races for balance studies: M matches per track, bot drivers, no sockets, seeded.

    python -m simulations.race --matches 20 --cars 8 --track all --laps 3 --seed 1 \\
        [--json] [--plot out.png]

The real arena, race game and sync code run on a virtual clock (the arena's
tick counter; nothing sleeps and nothing goes over a socket) as fast as the
CPU allows. Every player is a headless client that decodes each frame the
arena encodes for it into a mirror, verifies its checksum, acknowledges it
``--ack-delay`` ticks later and drives with the shipped autopilot at
``--input-rate`` (see :mod:`simulations.racing`). The run prints lap times,
finishing spread, DNFs, the points, coins and XP handed out by finishing
position, and the bytes the sync sent; ``--json`` prints everything for
machines instead, ``--plot`` writes a figure. Rewards and time limits are
flags, so a change to the rules can be tried before it ships.

The same arguments give the same output, bit for bit, except the
``timing`` entry (wall-clock figures). Exit status 1 when a mirror desynced,
a result went missing, a match did not finish or a replay diverged.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import shlex
import shutil
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from gameserver.race import RaceRules, track_names

from .racing import MatchReport, Settings, TrackRun, run_track
from .report import MissingDependency, plot, render, tables, timing_line
from .summary import problems, summarize


def _counts(text: str) -> tuple[int, ...]:
    try:
        return tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None


def parser() -> argparse.ArgumentParser:
    rules = RaceRules()
    p = argparse.ArgumentParser(
        prog="python -m simulations.race",
        description="Race M matches per track with bot drivers, headless and seeded; "
        "print statistics (lap times, finishing spread, rewards, bytes per frame).",
    )
    p.add_argument("--matches", type=int, default=10, help="matches per track (default 10)")
    p.add_argument("--cars", type=int, default=8, help="simulated players per match (default 8)")
    p.add_argument(
        "--ai-cars", type=int, default=0, help="server-driven cars beside them (default 0)"
    )
    p.add_argument(
        "--track",
        action="append",
        metavar="NAME",
        help=f"{', '.join(track_names())} or all; repeat to compare tracks (default oval)",
    )
    p.add_argument("--laps", type=int, default=None, help="default: each track's own")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--tick-rate", type=int, default=60, metavar="HZ")
    p.add_argument("--send-rate", type=int, default=None, metavar="HZ", help="default: tick rate")
    p.add_argument("--input-rate", type=float, default=20.0, metavar="HZ")
    p.add_argument(
        "--ack-delay",
        type=int,
        default=3,
        metavar="TICKS",
        help="round trip: ticks from a frame to the first frame built on its ack (default 3)",
    )
    p.add_argument("--countdown-s", type=float, default=3.0, help="default 3, as the server")
    p.add_argument(
        "--concurrency", type=int, default=32, help="matches racing at once per track (32)"
    )
    p.add_argument(
        "--driver-spread",
        type=float,
        default=0.0,
        metavar="X",
        help="each player's fixed autopilot noise in +-X (0..1): drivers of differing skill "
        "(default 0: all drive as gameserver.bots, and the grid decides the order)",
    )
    p.add_argument("--points", type=_counts, default=rules.points, metavar="P1,P2,...")
    p.add_argument("--coins", type=_counts, default=rules.coins, metavar="C1,C2,...")
    p.add_argument("--xp", type=_counts, default=rules.xp, metavar="X1,X2,...")
    p.add_argument("--finish-timeout-s", type=float, default=rules.finish_timeout_s)
    p.add_argument(
        "--verify-replays",
        action="store_true",
        help="re-simulate each match from its recording and compare",
    )
    p.add_argument("--json", action="store_true", help="print JSON instead of tables")
    p.add_argument("--plot", type=Path, metavar="FILE.png", help="write a figure (matplotlib)")
    return p


def settings_from(args: argparse.Namespace) -> Settings:
    """Raises ``ValueError`` naming the setting that is wrong."""
    named = args.track or ["oval"]
    tracks = tuple(track_names()) if "all" in named else tuple(dict.fromkeys(named))
    rules = RaceRules(
        points=args.points,
        coins=args.coins,
        xp=args.xp,
        finish_timeout_s=args.finish_timeout_s,
    )
    return Settings(
        tracks=tracks,
        matches=args.matches,
        cars=args.cars,
        ai_cars=args.ai_cars,
        laps=args.laps,
        seed=args.seed,
        tick_rate_hz=args.tick_rate,
        send_rate_hz=args.send_rate,
        input_rate_hz=args.input_rate,
        ack_delay_ticks=args.ack_delay,
        countdown_s=args.countdown_s,
        concurrency=args.concurrency,
        driver_spread=args.driver_spread,
        rules=rules,
        verify_replays=args.verify_replays,
    )


def simulate(
    settings: Settings, *, progress: bool = False
) -> tuple[list[TrackRun], dict[str, Any]]:
    """Run every track; returns the runs and the wall-clock ``timing``."""
    started = time.perf_counter()
    runs = []
    track_wall_s = {}
    for track in settings.tracks:
        begun = time.perf_counter()
        runs.append(run_track(settings, track))
        track_wall_s[track] = round(time.perf_counter() - begun, 3)
        if progress:
            print(
                f"{track}: {settings.matches} matches in {track_wall_s[track]} s", file=sys.stderr
            )
    wall_s = time.perf_counter() - started
    ticks = sum(r.ticks for r in runs)
    match_ticks = sum(m.end_tick - m.created_tick for r in runs for m in r.matches)
    rate = settings.tick_rate_hz
    # Speed-up: match time raced per second of wall time, i.e. against running
    # the matches at real time one after another. The arena's own clock runs
    # slower than that whenever several matches race in it at once.
    timing = {
        "matches": sum(len(r.matches) for r in runs),
        "ticks": ticks,
        "arena_s": round(ticks / rate, 3),
        "match_s": round(match_ticks / rate, 3),
        "wall_s": round(wall_s, 3),
        "speed_up": round(match_ticks / rate / wall_s, 2) if wall_s > 0 else None,
        "arena_speed_up": round(ticks / rate / wall_s, 2) if wall_s > 0 else None,
        "concurrency": min(settings.concurrency, settings.matches),
        "track_wall_s": track_wall_s,
    }
    return runs, timing


def document(
    settings: Settings, runs: Sequence[TrackRun], timing: dict[str, Any]
) -> dict[str, Any]:
    """Everything a run found, as JSON-able data; only ``timing`` differs between equal runs."""
    matches: list[MatchReport] = [m for r in runs for m in r.matches]
    return {
        "settings": {
            **dataclasses.asdict(settings),
            "send_rate_hz": settings.effective_send_rate_hz,
            "input_every_ticks": settings.input_every_ticks,
        },
        "summary": summarize(matches, settings.tick_rate_hz),
        "matches": [dataclasses.asdict(m) for m in matches],
        "timing": timing,
    }


def main(argv: Sequence[str] | None = None) -> int:
    p = parser()
    args = p.parse_args(argv)
    try:
        settings = settings_from(args)
    except ValueError as exc:
        p.error(str(exc))
    if args.plot is not None:
        try:
            import matplotlib  # noqa: F401
        except ImportError:
            p.error(str(MissingDependency("--plot needs matplotlib: pip install -e '.[bench]'")))
    runs, timing = simulate(settings, progress=not args.json)
    doc = document(settings, runs, timing)
    if args.json:
        print(json.dumps(doc, indent=1))
    else:
        width = shutil.get_terminal_size((140, 24)).columns if sys.stdout.isatty() else 140
        print(render(tables(doc["summary"]), width=width))
        print(timing_line(timing))
        given = sys.argv[1:] if argv is None else list(argv)
        print(f"reproduce: {shlex.join(['python', '-m', 'simulations.race', *given])}")
    if args.plot is not None:
        plot(doc["summary"], [m for r in runs for m in r.matches], args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    found = problems(doc["summary"])
    for problem in found:
        print(f"simulation: {problem}", file=sys.stderr)
    return 1 if found else 0


if __name__ == "__main__":
    sys.exit(main())
