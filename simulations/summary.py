"""Summary statistics of simulated matches, per track and overall, as plain JSON-able data.

Everything here is a pure function of the match reports, so a run's summary
is as reproducible as its matches. Figures are rounded (seconds to the
millisecond, bytes to a tenth) so that the JSON reads well and compares
exactly.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from .racing import MatchReport

#: Said wherever byte figures are given, so nobody has to guess what they count.
BYTES_NOTE = (
    "bytes are the encoded messages as the arena emitted them, without the WebSocket "
    "frame header; 'wire' figures add the server's header (2 bytes under 126 bytes of "
    "payload, else 4) or, upstream, a client's (2 + a 4-byte mask key)"
)


def describe(values: Sequence[float]) -> dict[str, Any]:
    """Count, mean, median, min and max (None for each when there are no values)."""
    if not values:
        return {"n": 0, "mean": None, "p50": None, "min": None, "max": None}
    data = np.asarray(values, dtype=np.float64)
    return {
        "n": int(data.size),
        "mean": _round(data.mean()),
        "p50": _round(np.percentile(data, 50)),
        "min": _round(data.min()),
        "max": _round(data.max()),
    }


def _round(value: float | np.floating[Any], digits: int = 3) -> float:
    return round(float(value), digits)


def _ratio(numerator: float, denominator: float, digits: int = 3) -> float | None:
    return None if denominator == 0 else round(numerator / denominator, digits)


def summarize_group(matches: Sequence[MatchReport], tick_rate_hz: int) -> dict[str, Any]:
    """Races, rewards and sync figures of a set of matches (one track's, or all)."""
    cars = [car for m in matches for car in m.results]
    positions = max((len(m.results) for m in matches), default=0)
    by_position = []
    for position in range(1, positions + 1):
        at = [
            (car, m)
            for m in matches
            for car in m.results
            if car.position == position and m.finished
        ]
        gaps = [
            (car.time_ms - m.results[0].time_ms) / 1000
            for car, m in at
            if car.status == "finished" and car.time_ms is not None and m.results[0].time_ms
        ]
        by_position.append(
            {
                "position": position,
                "cars": len(at),
                "finished_rate": _ratio(sum(car.status == "finished" for car, _ in at), len(at)),
                "points": _ratio(sum(car.points for car, _ in at), len(at)),
                "coins": _ratio(sum(car.coins for car, _ in at), len(at)),
                "xp": _ratio(sum(car.xp for car, _ in at), len(at)),
                "gap_to_winner_s": describe(gaps)["mean"],
            }
        )
    winners = [m.results[0] for m in matches if m.results]
    return {
        "matches": len(matches),
        "finished_matches": sum(m.finished for m in matches),
        "cars": len(cars),
        "laps": sorted({m.laps for m in matches}),
        "race_s": describe([(m.end_tick - m.start_tick) / tick_rate_hz for m in matches]),
        "winning_time_s": describe(
            [w.time_ms / 1000 for w in winners if w.status == "finished" and w.time_ms]
        ),
        "lap_time_s": describe([t / 1000 for car in cars for t in car.lap_times_ms]),
        "best_lap_s": describe([car.best_lap_ms / 1000 for car in cars if car.best_lap_ms]),
        "finishing_spread_s": describe(
            [m.finishing_spread_ms / 1000 for m in matches if m.finishing_spread_ms is not None]
        ),
        "dnf_rate": _ratio(sum(car.status == "dnf" for car in cars), len(cars)),
        "collisions_per_car": _ratio(sum(car.collisions for car in cars), len(cars)),
        "off_track_s_per_car": _ratio(sum(car.off_track_s for car in cars), len(cars)),
        "top_speed_mps": describe([car.top_speed_mps for car in cars]),
        "rewards_per_match": {
            "points": _ratio(sum(car.points for car in cars), len(matches)),
            "coins": _ratio(sum(car.coins for car in cars), len(matches)),
            "xp": _ratio(sum(car.xp for car in cars), len(matches)),
        },
        "by_position": by_position,
        "sync": summarize_sync(matches, tick_rate_hz),
        "ticks": sum(m.end_tick - m.created_tick for m in matches),
        "replays_verified": _replays(matches),
    }


def summarize_sync(matches: Sequence[MatchReport], tick_rate_hz: int) -> dict[str, Any]:
    """Bytes per frame and per client-second the sync sent, and whether every mirror held."""

    def total(name: str) -> int:
        return sum(int(getattr(m.sync, name)) for m in matches)

    frames, racing = total("frames"), total("racing_frames")
    client_s = total("client_ticks") / tick_rate_hz
    return {
        "clients": total("clients"),
        "frames": frames,
        "snapshots": total("snapshots"),
        "deltas": total("deltas"),
        "bytes_per_frame": _ratio(total("frame_bytes"), frames, 1),
        "wire_bytes_per_frame": _ratio(total("frame_wire_bytes"), frames, 1),
        "racing_frames": racing,
        "racing_bytes_per_frame": _ratio(total("racing_frame_bytes"), racing, 1),
        "racing_wire_bytes_per_frame": _ratio(total("racing_frame_wire_bytes"), racing, 1),
        "bytes_per_client_s": _ratio(total("frame_bytes"), client_s, 1),
        "wire_bytes_per_client_s": _ratio(total("frame_wire_bytes"), client_s, 1),
        "other_bytes_per_client": _ratio(total("message_bytes"), total("clients"), 1),
        "upstream_bytes_per_client_s": _ratio(total("sent_bytes"), client_s, 1),
        "upstream_wire_bytes_per_client_s": _ratio(total("sent_wire_bytes"), client_s, 1),
        "inputs": total("inputs"),
        "desyncs": total("desyncs"),
        "late_frames": total("late_frames"),
        "missing_baselines": total("missing_baselines"),
        "results_mismatches": total("results_mismatches"),
        "bytes_note": BYTES_NOTE,
    }


def _replays(matches: Sequence[MatchReport]) -> dict[str, int] | None:
    checked = [m.replay_verified for m in matches if m.replay_verified is not None]
    if not checked:
        return None
    return {"verified": sum(checked), "diverged": len(checked) - sum(checked)}


def summarize(matches: Sequence[MatchReport], tick_rate_hz: int) -> dict[str, Any]:
    """``{"tracks": {name: group}, "overall": group}`` (see :func:`summarize_group`)."""
    tracks: dict[str, list[MatchReport]] = {}
    for match in matches:
        tracks.setdefault(match.track, []).append(match)
    return {
        "tracks": {name: summarize_group(group, tick_rate_hz) for name, group in tracks.items()},
        "overall": summarize_group(matches, tick_rate_hz),
    }


def problems(summary: dict[str, Any]) -> list[str]:
    """What makes a run fail: desyncs, lost results, unfinished matches, diverged replays."""
    overall = summary["overall"]
    sync = overall["sync"]
    found = []
    if overall["finished_matches"] != overall["matches"]:
        found.append(f"{overall['matches'] - overall['finished_matches']} match(es) aborted")
    for key in ("desyncs", "missing_baselines", "results_mismatches"):
        if sync[key]:
            found.append(f"{sync[key]} {key.replace('_', ' ')}")
    replays = overall["replays_verified"]
    if replays and replays["diverged"]:
        found.append(f"{replays['diverged']} replay(s) diverged")
    return found
