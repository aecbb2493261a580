"""Headless simulation: whole races on the real arena and sync code, no sockets, deterministic."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from gameserver import protocol
from gameserver.config import ServerConfig
from gameserver.match import Arena
from gameserver.race import RaceGame, drive_one, load_track
from simulations.headless import HeadlessServer
from simulations.race import document, main, simulate
from simulations.racing import Settings, TrackRun, drive_like_bots
from simulations.report import MissingDependency, plot, render, tables

ROOT = Path(__file__).resolve().parent.parent
#: Small and quick: two 4-car matches of one lap of the short track at 30 Hz.
ARGS = ["--matches", "2", "--cars", "4", "--track", "sprint", "--laps", "1", "--tick-rate", "30",
        "--input-rate", "10", "--countdown-s", "0", "--seed", "1"]  # fmt: skip
SMALL = Settings(
    tracks=("sprint",),
    matches=2,
    cars=4,
    laps=1,
    tick_rate_hz=30,
    input_rate_hz=10,
    countdown_s=0,
    seed=1,
)


def run(settings: Settings) -> tuple[list[TrackRun], dict[str, Any]]:
    runs, timing = simulate(settings)
    # Through JSON, as a machine reading --json would see it.
    loaded: dict[str, Any] = json.loads(json.dumps(document(settings, runs, timing)))
    return runs, loaded


def without_timing(doc: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in doc.items() if key != "timing"}


@pytest.fixture(scope="module")
def small_run() -> tuple[list[TrackRun], dict[str, Any]]:
    return run(SMALL)


@pytest.fixture
def small(small_run: tuple[list[TrackRun], dict[str, Any]]) -> dict[str, Any]:
    return small_run[1]


def test_every_match_races_to_the_end_and_every_mirror_stays_exact(small: dict[str, Any]) -> None:
    matches = small["matches"]
    assert len(matches) == 2
    for match in matches:
        assert match["finished"]
        assert [car["position"] for car in match["results"]] == [1, 2, 3, 4]
        assert all(car["status"] == "finished" for car in match["results"])
        assert all(len(car["lap_times_ms"]) == 1 for car in match["results"])
        assert match["finishing_spread_ms"] > 0
        sync = match["sync"]
        assert sync["clients"] == 4
        assert sync["desyncs"] == sync["missing_baselines"] == sync["results_mismatches"] == 0
        # Until the first acknowledgement is back, a round trip later, frames are snapshots.
        assert sync["snapshots"] == 4 * SMALL.ack_delay_ticks
        # Every frame is under 126 bytes: the server's WebSocket header adds 2.
        assert sync["frame_wire_bytes"] == sync["frame_bytes"] + 2 * sync["frames"]
    summary = small["summary"]["overall"]
    assert summary["sync"]["bytes_per_frame"] > 0
    assert summary["dnf_rate"] == 0
    assert [p["points"] for p in summary["by_position"]] == [10, 8, 6, 5]
    assert small["timing"]["speed_up"] > 1


def test_the_same_seed_gives_the_same_json_even_in_another_process(small: dict[str, Any]) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "simulations.race", *ARGS, "--json"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    assert without_timing(json.loads(out.stdout)) == without_timing(small)


def test_another_seed_races_differently(small: dict[str, Any]) -> None:
    _, other = run(dataclasses.replace(SMALL, seed=2))
    assert other["matches"][0]["seed"] != small["matches"][0]["seed"]
    assert other["matches"][0]["results"] != small["matches"][0]["results"]


def test_deltas_are_built_on_the_state_acknowledged_a_round_trip_earlier() -> None:
    config = ServerConfig(countdown_s=0, lobby_timeout_s=0, fill_with_ai=False, database=None)
    arena = Arena(RaceGame(rows=1, slots=2), config, seed=1)
    server = HeadlessServer(arena, round_trip_ticks=4)
    match = arena.create_match({"track": "sprint", "laps": 1})
    first, second = server.join("a", match.match_id), server.join("b", match.match_id)
    seen: list[protocol.ServerMessage] = []
    receive = first.receive

    def spy(data: bytes) -> None:
        seen.append(protocol.decode_server_message(data))
        receive(data)

    first.receive = spy  # type: ignore[method-assign]
    for _ in range(30):
        server.step()
        server.flush()
    frames = [m for m in seen if isinstance(m, protocol.Snapshot | protocol.Delta)]
    assert [type(f) for f in frames[:4]] == [protocol.Snapshot] * 4
    assert {f.tick - f.baseline_tick for f in frames[4:] if isinstance(f, protocol.Delta)} == {4}
    assert len(frames) == 30
    assert first.figures.desyncs == second.figures.desyncs == 0


@pytest.mark.parametrize("noise", [0.0, 0.7])
def test_the_batched_autopilot_drives_as_each_bot_would(noise: float) -> None:
    track = load_track("twisty")
    cars = np.array([[0.0, 0.0, 0.0, 0.0], [50.0, 3.0, 0.2, 30.0], [120.0, -40.0, 4.0, 12.0]])
    rngs = [np.random.default_rng(seed) for seed in range(3)]
    batched = drive_like_bots(track, cars, rngs, [noise, -noise, noise / 2])
    one_by_one = [
        drive_one(track, *car, noise=fixed, rng=np.random.default_rng(seed))
        for seed, (car, fixed) in enumerate(zip(cars, [noise, -noise, noise / 2], strict=True))
    ]
    np.testing.assert_allclose(batched, np.array(one_by_one), rtol=0, atol=1e-12)


def test_the_tables_name_every_track_and_what_the_bytes_count(small: dict[str, Any]) -> None:
    text = render(tables(small["summary"]))
    assert "sprint" in text
    assert "WebSocket header" in text


def test_the_figure_is_a_png(
    small_run: tuple[list[TrackRun], dict[str, Any]], tmp_path: Path
) -> None:
    pytest.importorskip("matplotlib")
    runs, doc = small_run
    plot(doc["summary"], list(runs[0].matches), tmp_path / "sim.png")
    assert (tmp_path / "sim.png").read_bytes().startswith(b"\x89PNG")


def test_without_matplotlib_the_figure_says_how_to_get_it(
    small: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # as if it were not installed
    with pytest.raises(MissingDependency, match="pip install"):
        plot(small["summary"], [], tmp_path / "sim.png")


def test_bad_arguments_are_refused_naming_the_setting(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_:
        main(["--cars", "20"])
    assert exit_.value.code == 2
    assert "cars" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["--track", "moon"])
    assert "unknown ['moon']" in capsys.readouterr().err
