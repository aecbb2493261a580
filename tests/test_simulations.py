"""Headless simulation: whole races on the real arena and sync code, no sockets, deterministic."""

from __future__ import annotations

import json
import subprocess
import sys
from dataclasses import asdict
from pathlib import Path

from simulations.race import TrackSummary, simulate_track

ROOT = Path(__file__).resolve().parent.parent


def run(seed: int) -> TrackSummary:
    return simulate_track("sprint", matches=2, cars=4, laps=1, seed=seed)


def without_timings(summary: TrackSummary) -> dict[str, object]:
    return {k: v for k, v in asdict(summary).items() if k != "wall_s"}


def test_every_match_finishes_with_a_full_table_and_no_desync() -> None:
    summary = run(seed=3)
    assert len(summary.results) == 2
    for table in summary.results:
        assert sorted(r["position"] for r in table) == [1, 2, 3, 4]
        assert all(r["status"] == "finished" for r in table)
        winner = min(table, key=lambda r: r["position"])
        assert winner["points"] == max(r["points"] for r in table)
    assert summary.desyncs == 0
    assert len(summary.lap_times_s) == 2 * 4  # one lap each, counted once per match
    assert 0 < summary.lap_s_min <= summary.lap_s_p50 <= summary.lap_s_max
    assert summary.spread_s_mean > 0
    assert 10 < summary.wire_bytes_per_frame < 200
    assert summary.simulated_s > summary.lap_s_max


def test_the_same_seed_gives_the_same_races_and_another_seed_others() -> None:
    first, again, other = run(seed=5), run(seed=5), run(seed=6)
    assert without_timings(first) == without_timings(again)
    assert first.results != other.results


def test_verifying_every_client_changes_nothing_but_the_time_it_takes() -> None:
    sampled = run(seed=7)
    everyone = simulate_track("sprint", matches=2, cars=4, laps=1, seed=7, verify_all=True)
    assert everyone.desyncs == 0
    assert everyone.results == sampled.results
    assert everyone.wire_bytes_per_frame == sampled.wire_bytes_per_frame


def test_the_command_prints_json_for_machines() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "simulations.race", "--matches", "1", "--cars", "2",
         "--track", "sprint", "--laps", "1", "--seed", "2", "--json"],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )  # fmt: skip
    (summary,) = json.loads(out.stdout)
    assert summary["track"] == "sprint"
    assert summary["desyncs"] == 0
    assert summary["speedup"] > 1
    assert "reproduce: python -m simulations.race" in out.stderr
