"""A simulation's summary for people: tables on the terminal and a figure.

Tables are drawn with ``rich`` (in the ``dev`` extra) and fall back to
aligned plain text without it; the figure needs matplotlib (the ``bench``
extra), imported only when a figure is asked for.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .racing import MatchReport


@dataclass(frozen=True, slots=True)
class Table:
    """Rows of text under a title; the first column is a label, the others numbers."""

    title: str
    columns: tuple[str, ...]
    rows: tuple[tuple[str, ...], ...]
    caption: str = ""


class MissingDependency(RuntimeError):
    """An optional package a requested output needs is not installed."""


def _num(value: Any, digits: int = 1, scale: float = 1.0) -> str:
    return "-" if value is None else f"{value * scale:,.{digits}f}"


def tables(summary: dict[str, Any]) -> list[Table]:
    """The summary as tables: races, difficulty and rewards, rewards by position, sync."""
    groups = list(summary["tracks"].items())
    if len(groups) > 1:
        groups.append(("all", summary["overall"]))
    races = []
    difficulty = []
    sync = []
    for name, g in groups:
        laps, spread = g["lap_time_s"], g["finishing_spread_s"]
        races.append(
            (
                name,
                str(g["matches"]),
                "/".join(str(n) for n in g["laps"]),
                str(laps["n"]),
                _num(laps["mean"], 2),
                _num(laps["p50"], 2),
                _num(laps["min"], 2),
                _num(laps["max"], 2),
                _num(g["winning_time_s"]["p50"], 2),
                _num(spread["mean"], 2),
                _num(spread["max"], 2),
                _num(g["dnf_rate"], 1, 100.0),
            )
        )
        rewards = g["rewards_per_match"]
        difficulty.append(
            (
                name,
                _num(g["collisions_per_car"], 2),
                _num(g["off_track_s_per_car"], 2),
                _num(g["top_speed_mps"]["p50"], 1, 3.6),
                _num(rewards["points"], 1),
                _num(rewards["coins"], 1),
                _num(rewards["xp"], 1),
            )
        )
        s = g["sync"]
        sync.append(
            (
                name,
                f"{s['frames']:,}",
                f"{s['snapshots']:,}",
                _num(s["bytes_per_frame"]),
                _num(s["wire_bytes_per_frame"]),
                _num(s["racing_bytes_per_frame"]),
                _num(s["racing_wire_bytes_per_frame"]),
                _num(s["bytes_per_client_s"], 0),
                _num(s["wire_bytes_per_client_s"], 0),
                _num(s["upstream_wire_bytes_per_client_s"], 0),
                str(s["desyncs"]),
            )
        )
    positions = [
        (
            str(p["position"]),
            str(p["cars"]),
            _num(p["finished_rate"], 1, 100.0),
            _num(p["points"], 2),
            _num(p["coins"], 1),
            _num(p["xp"], 1),
            _num(p["gap_to_winner_s"], 2),
        )
        for p in summary["overall"]["by_position"]
    ]
    result = [
        Table(
            "Races (times in seconds)",
            ("Track", "Matches", "Laps", "Laps timed", "Lap mean", "Lap p50", "Lap min",
             "Lap max", "Win p50", "Spread mean", "Spread max", "DNF %"),
            tuple(races),
            "spread: the winner's time to the last finisher's",
        ),
        Table(
            "Difficulty and rewards handed out",
            ("Track", "Hits/car", "Off-track s/car", "Top km/h p50", "Points/match",
             "Coins/match", "XP/match"),
            tuple(difficulty),
        ),
        Table(
            "By finishing position (all tracks; means)",
            ("Pos", "Cars", "Finished %", "Points", "Coins", "XP", "Gap to winner s"),
            tuple(positions),
        ),
        Table(
            "Sync: what the server sent each client",
            ("Track", "Frames", "Snapshots", "B/frame", "wire", "Racing B/frame", "wire",
             "B/client/s", "wire", "Up wire B/client/s", "Desyncs"),
            tuple(sync),
            "B: message bytes without the WebSocket header; wire: with the server's "
            "2-byte header (4 from 126 B); racing: START to END",
        ),
    ]  # fmt: skip
    return result


def timing_line(timing: dict[str, Any]) -> str:
    """How fast the virtual clock ran against real time."""
    return (
        f"{timing['matches']} matches, {timing['match_s']:,.1f} s of match time simulated in "
        f"{timing['wall_s']:,.1f} s: {timing['speed_up']:.1f}x real time "
        f"({timing['ticks']:,} arena ticks, {timing['arena_s']:,.1f} s, with up to "
        f"{timing['concurrency']} matches at once: {timing['arena_speed_up']:.2f}x)"
    )


def render(tables_: Sequence[Table], width: int = 140) -> str:
    """The tables as text: drawn by rich when it is installed, else aligned plainly."""
    try:
        from rich.console import Console
        from rich.table import Table as RichTable
    except ImportError:
        return "\n\n".join(plain(table) for table in tables_)
    buffer = io.StringIO()
    console = Console(file=buffer, width=width, color_system=None, highlight=False)
    for table in tables_:
        shown = RichTable(title=table.title, caption=table.caption or None, title_justify="left")
        for index, column in enumerate(table.columns):
            shown.add_column(column, justify="left" if index == 0 else "right")
        for row in table.rows:
            shown.add_row(*row)
        console.print(shown)
    return "\n".join(line.rstrip() for line in buffer.getvalue().rstrip("\n").splitlines())


def plain(table: Table) -> str:
    """One table as aligned text."""
    widths = [
        max(len(column), *(len(row[i]) for row in table.rows)) if table.rows else len(column)
        for i, column in enumerate(table.columns)
    ]

    def line(cells: Sequence[str]) -> str:
        return "  ".join(
            cell.ljust(width) if i == 0 else cell.rjust(width)
            for i, (cell, width) in enumerate(zip(cells, widths, strict=True))
        ).rstrip()

    lines = [table.title, line(table.columns), "  ".join("-" * w for w in widths)]
    lines += [line(row) for row in table.rows]
    if table.caption:
        lines.append(table.caption)
    return "\n".join(lines)


def plot(summary: dict[str, Any], matches: Sequence[MatchReport], path: Path) -> None:
    """Write a PNG: lap times and finishing spread per track, rewards by position,
    and bytes per racing frame per match."""
    try:
        import matplotlib
    except ImportError:
        raise MissingDependency(
            "--plot needs matplotlib, which is not installed: pip install -e '.[bench]'"
        ) from None
    matplotlib.use("Agg")  # files only: no display needed
    import matplotlib.pyplot as plt

    tracks = list(summary["tracks"])
    by_track = {name: [m for m in matches if m.track == name] for name in tracks}
    fig, axes = plt.subplots(2, 2, figsize=(12, 8.5))
    (laps_ax, spread_ax), (reward_ax, bytes_ax) = axes
    laps_ax.boxplot(
        [[t / 1000 for m in by_track[n] for c in m.results for t in c.lap_times_ms] or [0.0]
         for n in tracks]
    )  # fmt: skip
    laps_ax.set_title("Lap times")
    laps_ax.set_ylabel("s")
    spread_ax.boxplot(
        [[m.finishing_spread_ms / 1000 for m in by_track[n] if m.finishing_spread_ms is not None]
         or [0.0] for n in tracks]
    )  # fmt: skip
    spread_ax.set_title("Finishing spread (winner to last finisher)")
    spread_ax.set_ylabel("s")
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for index, name in enumerate(tracks):
        rows = summary["tracks"][name]["by_position"]
        position = [r["position"] for r in rows]
        colour = colours[index % len(colours)]
        reward_ax.plot(position, [r["coins"] for r in rows], "o-", color=colour,
                       label=f"{name} coins")  # fmt: skip
        reward_ax.plot(position, [r["xp"] for r in rows], "s--", color=colour,
                       label=f"{name} XP")  # fmt: skip
    reward_ax.set_title("Rewards by finishing position (mean)")
    reward_ax.set_xlabel("position")
    reward_ax.set_xticks(range(1, len(summary["overall"]["by_position"]) + 1))
    reward_ax.legend(fontsize="small", ncols=2)
    bytes_ax.boxplot(
        [[m.sync.racing_frame_wire_bytes / m.sync.racing_frames for m in by_track[n]
          if m.sync.racing_frames] or [0.0] for n in tracks]
    )  # fmt: skip
    bytes_ax.set_title("Bytes per racing frame on the wire, per match")
    bytes_ax.set_ylabel("bytes (WebSocket header included)")
    for ax in (laps_ax, spread_ax, bytes_ax):
        # Set after boxplot, whose label keyword changed name in matplotlib 3.9.
        ax.set_xticks(range(1, len(tracks) + 1), tracks)
    fig.suptitle(
        f"{summary['overall']['matches']} simulated matches, "
        f"{len(summary['overall']['by_position'])} cars each"
    )
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
