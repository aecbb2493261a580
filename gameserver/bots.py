"""Bots that race real matches over WebSocket, driving with the shipped autopilot.

Each bot is a full protocol client: it joins by quick join, mirrors the state
from snapshots and deltas (every checksum verified), steers its own car from
the mirrored state, sends inputs at a fixed rate, and collects the results.
``gameserver demo`` and ``python -m clients.bots`` run them.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import trio

from .client import ClientError, ClientStatistics, GameClient, open_client
from .race.autopilot import drive_one
from .race.track import Track, load_track


@dataclass(slots=True)
class BotReport:
    """What one bot saw of its match."""

    name: str
    player_id: int | None
    match_id: int | None
    results: list[dict[str, Any]] | None
    statistics: ClientStatistics | None
    close_code: int | None
    error: str | None = None


def track_of(client: GameClient) -> Track:
    """The track the welcome describes, loaded from the shipped tracks by name."""
    return load_track(str(client.welcome.match["track"]["name"]))


async def drive(client: GameClient, *, input_rate_hz: float, seed: int) -> None:
    """Steer this client's car from its mirror until the connection closes."""
    track = track_of(client)
    rng = np.random.default_rng(seed)
    # A lasting bias of line and pace per bot: with only fresh zero-mean jitter
    # every bot drives alike and a race finishes in grid order.
    skill = float(rng.uniform(-0.6, 0.6))
    names = client.field_names
    ix, iy, ih, iv = (names.index(n) for n in ("x", "y", "heading", "speed"))
    scales = client.welcome.schema["fields"]
    period = 1.0 / input_rate_hz
    deadline = trio.current_time()
    while not client.closed:
        deadline += period
        with trio.move_on_at(deadline):
            await client.wait_closed()
        if client.closed:
            return
        if client.tick < 0:
            continue
        car = client.state[client.slot]
        x, y = car[ix] / scales[ix][1], car[iy] / scales[iy][1]
        heading, speed = car[ih] / scales[ih][1], car[iv] / scales[iv][1]
        throttle, brake, steer = drive_one(track, x, y, heading, speed, noise=skill, rng=rng)
        try:
            await client.send_input(throttle, brake, steer)
        except ClientError:
            # Closed while sending: let the reader take in what preceded the close.
            with trio.move_on_after(2.0):
                await client.wait_closed()
            return


async def run_bot(
    url: str,
    name: str,
    *,
    input_rate_hz: float = 20.0,
    seed: int = 0,
    match_id: int | None = None,
    token: str | None = None,
) -> BotReport:
    """Connect, join, race to the end, and report what was seen."""
    try:
        async with open_client(url, name, match_id=match_id, token=token) as client:
            await drive(client, input_rate_hz=input_rate_hz, seed=seed)
            results = client.results.results if client.results else None
            return BotReport(
                name=name,
                player_id=client.player_id,
                match_id=client.match_id,
                results=results,
                statistics=client.statistics,
                close_code=client.close_code,
            )
    except ClientError as exc:
        return BotReport(name, None, None, None, None, exc.close_code, error=str(exc))


async def run_bots(
    url: str,
    count: int,
    *,
    input_rate_hz: float = 20.0,
    seed: int = 0,
    token: str | None = None,
    stagger_s: float = 0.01,
) -> list[BotReport]:
    """Run ``count`` bots concurrently; returns their reports in start order."""
    reports: list[BotReport | None] = [None] * count

    async def one(index: int) -> None:
        reports[index] = await run_bot(
            url, f"bot-{index + 1}", input_rate_hz=input_rate_hz, seed=seed + index, token=token
        )

    async with trio.open_nursery() as nursery:
        for index in range(count):
            nursery.start_soon(one, index)
            await trio.sleep(stagger_s)
    return [r for r in reports if r is not None]


def summarize(reports: list[BotReport]) -> str:
    """A short human summary of the bots' reports."""
    lines = []
    for report in reports:
        stats = report.statistics
        if report.error or stats is None:
            lines.append(f"{report.name:>8}  error: {report.error}")
            continue
        mine = next(
            (r for r in report.results or [] if r.get("player_id") == report.player_id), None
        )
        place = f"P{mine['position']}" if mine else "-"
        latency = (
            f"{np.percentile(stats.input_latencies_s, 50) * 1e3:5.1f} ms"
            if stats.input_latencies_s
            else "   -    "
        )
        lines.append(
            f"{report.name:>8}  match {report.match_id}  {place:>3}  frames {stats.frames:6d}  "
            f"desyncs {stats.desyncs}  bytes {stats.bytes_received:8d}  "
            f"input->ack p50 {latency}  close {report.close_code}"
        )
    return "\n".join(lines)
