"""Headless races: many matches with bot drivers, faster than real time, no sockets.

    python -m simulations.race --matches 20 --cars 8 --track all --laps 3 --seed 1 \\
        [--plot sim.png] [--json]

The real arena, game and sync code run on a virtual clock (the arena's own
tick counter: nothing sleeps, nothing is sent). Every player is a simulated
client that does what a network client does: it decodes the frames the
arena encodes for it into a :class:`~gameserver.sync.Mirror` (every checksum
verified), steers its car from that mirrored state with the shipped
autopilot, and sends inputs at ``--input-rate`` that acknowledge the newest
state it holds; frames reach it ``--latency-ticks`` after they were built.

By default one client per match decodes and verifies every frame; the
others steer from the state such a mirror would hold (``--verify-all`` makes
every client decode, at a third of the speed).

It is how balance is studied: lap times and finishing spread per track,
points, coins and XP handed out by finishing position, and what the sync
would have cost on the wire. The same seed and arguments give the same
results, bit for bit (the timings aside).
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict, deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from gameserver import protocol
from gameserver.config import ServerConfig
from gameserver.errors import DesyncError
from gameserver.match import Arena, Close, Frames, MatchEnded, Output, Send
from gameserver.race import RaceGame, track_names
from gameserver.race.autopilot import drive
from gameserver.race.game import LAP
from gameserver.race.track import Track, load_track
from gameserver.sync import Mirror

#: Bound on a simulated match, in simulated seconds: a stuck race ends the run.
MAX_MATCH_S = 1800.0


@dataclass(slots=True)
class Client:
    """One simulated player: what a network client would hold."""

    player_id: int
    match_id: int
    slot: int
    mirror: Mirror
    #: Decodes and verifies every frame; the others take the state a verified
    #: mirror would hold (the server's, at the frame's tick) to save time.
    verify: bool
    #: Frames in flight: (arrival tick, the frame's tick, its bytes).
    inbox: deque[tuple[int, int, bytes]] = field(default_factory=deque)
    held_tick: int = -1
    state: npt.NDArray[np.int32] | None = None
    seq: int = 0
    frames: int = 0
    frame_bytes: int = 0
    wire_bytes: int = 0
    desyncs: int = 0
    results: list[dict[str, Any]] | None = None


@dataclass(slots=True)
class TrackSummary:
    track: str
    matches: int
    cars: int
    laps: int
    lap_s_mean: float
    lap_s_p50: float
    lap_s_min: float
    lap_s_max: float
    spread_s_mean: float
    dnf_rate: float
    frame_bytes: float
    wire_bytes_per_frame: float
    wire_bytes_per_client_s: float
    desyncs: int
    simulated_s: float
    wall_s: float
    points_by_position: list[float]
    coins_by_position: list[float]
    xp_by_position: list[float]
    lap_times_s: list[float]
    results: list[list[dict[str, Any]]]

    @property
    def speedup(self) -> float:
        return self.simulated_s / max(self.wall_s, 1e-9)


def ws_header_bytes(payload: int) -> int:
    """A server frame's WebSocket header: 2 bytes under 126 bytes of payload, else 4 or 10."""
    return 2 if payload < 126 else 4 if payload < 65536 else 10


def simulate_track(
    track_name: str,
    *,
    matches: int,
    cars: int,
    laps: int,
    seed: int,
    tick_rate_hz: int = 60,
    input_rate_hz: int = 20,
    latency_ticks: int = 2,
    verify_all: bool = False,
) -> TrackSummary:
    """Race ``matches`` matches of ``cars`` bot-driven cars on one track to the end."""
    config = ServerConfig(
        track=track_name,
        laps=laps,
        tick_rate_hz=tick_rate_hz,
        send_rate_hz=tick_rate_hz,
        lobby_timeout_s=0.1,
        countdown_s=0.5,
        fill_with_ai=False,
        min_players=1,
        database=None,
        max_players=matches * cars + 1,
    )
    game = RaceGame(tick_rate_hz=tick_rate_hz, rows=matches)
    arena = Arena(game, config, seed=seed)
    track = load_track(track_name)
    clients: dict[int, Client] = {}
    pending: list[Output] = []
    for _ in range(matches):
        match = arena.create_match()
        for seat in range(cars):
            player, outputs = arena.join(f"bot-{len(clients) + 1}", match.match_id)
            clients[player.player_id] = Client(
                player.player_id,
                match.match_id,
                player.slot,
                Mirror.for_schema(game.schema.to_wire()),
                verify=verify_all or seat == 0,
            )
            pending += outputs
    names = [f.name for f in game.schema.fields]
    columns = [names.index(n) for n in ("x", "y", "heading", "speed")]
    scales = np.array([game.schema.fields[i].scale for i in columns])
    rng = np.random.default_rng(seed)
    noise = rng.uniform(-0.5, 0.5, size=len(clients))
    every = max(1, tick_rate_hz // input_rate_hz)
    lap_times: list[float] = []
    ended: dict[int, MatchEnded] = {}
    wall = time.perf_counter()
    deliver(pending, clients, arena.tick, latency_ticks, lap_times, ended, tick_rate_hz)
    limit = int(MAX_MATCH_S * tick_rate_hz)
    while len(ended) < matches and arena.tick < limit:
        outputs = arena.step()
        deliver(outputs, clients, arena.tick, latency_ticks, lap_times, ended, tick_rate_hz)
        drive_clients(clients, arena, track, columns, scales, noise, every)
    wall = time.perf_counter() - wall
    return summarize(
        track_name, matches, cars, laps, clients, ended, lap_times, arena.tick, tick_rate_hz, wall
    )


def deliver(
    outputs: list[Output],
    clients: dict[int, Client],
    tick: int,
    latency_ticks: int,
    lap_times: list[float],
    ended: dict[int, MatchEnded],
    tick_rate_hz: int,
) -> None:
    """Hand the arena's outputs to the simulated clients, as the server's edge would."""
    for output in outputs:
        if isinstance(output, Frames):
            for player_id, data in zip(output.player_ids, output.data, strict=True):
                client = clients.get(player_id)
                if client is not None:
                    client.inbox.append((tick + latency_ticks, tick, data))
        elif isinstance(output, Send):
            client = clients.get(output.player_id)
            if client is not None:
                message(client, output.data, lap_times, tick_rate_hz)
        elif isinstance(output, MatchEnded):
            ended[output.match_id] = output
            deliver(list(output.deliveries), clients, tick, latency_ticks, lap_times, ended, 0)
        elif isinstance(output, Close):
            pass


def message(client: Client, data: bytes, lap_times: list[float], tick_rate_hz: int) -> None:
    """A must-arrive message: events (laps counted once, by seat 0's client) and results."""
    decoded = protocol.decode_server_message(data)
    if isinstance(decoded, protocol.Event) and decoded.kind == LAP and client.slot == 0:
        lap_times.append(float(decoded.args[1]) / 1000)
    elif isinstance(decoded, protocol.Results):
        client.results = decoded.results


def drive_clients(
    clients: dict[int, Client],
    arena: Arena,
    track: Track,
    columns: list[int],
    scales: npt.NDArray[np.float64],
    noise: npt.NDArray[np.float64],
    every: int,
) -> None:
    """Each client reads what has arrived, then (at the input rate) steers from its mirror."""
    tick = arena.tick
    due: list[Client] = []
    for index, client in enumerate(clients.values()):
        inbox = client.inbox
        while inbox and inbox[0][0] <= tick:
            _, sent_tick, data = inbox.popleft()
            client.frames += 1
            client.frame_bytes += len(data)
            client.wire_bytes += len(data) + ws_header_bytes(len(data))
            if client.verify:
                frame = protocol.decode_server_message(data)
                assert isinstance(frame, protocol.Snapshot | protocol.Delta)
                try:
                    if client.mirror.apply(frame):
                        client.held_tick, client.state = frame.tick, client.mirror.state
                except DesyncError:
                    client.desyncs += 1
            elif sent_tick > client.held_tick and client.match_id in arena.matches:
                row = arena.matches[client.match_id].row
                client.held_tick = sent_tick
                client.state = arena.history.get(row, sent_tick)
        steers = (tick + index) % every == 0 and client.state is not None
        if steers and client.player_id in arena.players:
            due.append(client)
    if not due:
        return
    held = [c.state[c.slot, columns] for c in due if c.state is not None]
    cars = np.array(held, dtype=np.float64) / scales
    indices = np.array([c.player_id for c in due]) % len(noise)
    throttle, brake, steer = drive(
        track, cars[:, 0], cars[:, 1], cars[:, 2], cars[:, 3], noise=noise[indices]
    )
    for client, t, b, s in zip(due, throttle.tolist(), brake.tolist(), steer.tolist(), strict=True):
        client.seq += 1
        arena.handle_input(
            client.player_id,
            protocol.Input(seq=client.seq, ack_tick=client.held_tick, controls=(t, b, s)),
        )


def summarize(
    track_name: str,
    matches: int,
    cars: int,
    laps: int,
    clients: dict[int, Client],
    ended: dict[int, MatchEnded],
    lap_times: list[float],
    ticks: int,
    tick_rate_hz: int,
    wall_s: float,
) -> TrackSummary:
    results = [e.results for _, e in sorted(ended.items()) if e.results is not None]
    spreads, dnf, entries = [], 0, 0
    by_position: dict[int, list[tuple[int, int, int]]] = defaultdict(list)
    for table in results:
        finished = [r["time_ms"] for r in table if r.get("status") == "finished"]
        if finished:
            spreads.append((max(finished) - min(finished)) / 1000)
        for r in table:
            entries += 1
            dnf += r.get("status") != "finished"
            rewards = r.get("rewards", {})
            by_position[int(r["position"])].append(
                (int(r.get("points", 0)), int(rewards.get("coins", 0)), int(rewards.get("xp", 0)))
            )
    frames = sum(c.frames for c in clients.values())
    seconds = ticks / tick_rate_hz

    def mean_of(position: int, item: int) -> float:
        values = [v[item] for v in by_position.get(position, [])]
        return statistics.fmean(values) if values else 0.0

    positions = range(1, cars + 1)
    return TrackSummary(
        track=track_name,
        matches=matches,
        cars=cars,
        laps=laps,
        lap_s_mean=statistics.fmean(lap_times) if lap_times else 0.0,
        lap_s_p50=statistics.median(lap_times) if lap_times else 0.0,
        lap_s_min=min(lap_times, default=0.0),
        lap_s_max=max(lap_times, default=0.0),
        spread_s_mean=statistics.fmean(spreads) if spreads else 0.0,
        dnf_rate=dnf / max(entries, 1),
        frame_bytes=sum(c.frame_bytes for c in clients.values()) / max(frames, 1),
        wire_bytes_per_frame=sum(c.wire_bytes for c in clients.values()) / max(frames, 1),
        wire_bytes_per_client_s=sum(c.wire_bytes for c in clients.values())
        / max(len(clients) * seconds, 1e-9),
        desyncs=sum(c.desyncs for c in clients.values()),
        simulated_s=seconds,
        wall_s=wall_s,
        points_by_position=[mean_of(p, 0) for p in positions],
        coins_by_position=[mean_of(p, 1) for p in positions],
        xp_by_position=[mean_of(p, 2) for p in positions],
        lap_times_s=lap_times,
        results=results,
    )


def table(summaries: list[TrackSummary]) -> str:
    """The summary as an aligned text table, one row per track."""
    header = (
        f"{'track':<8} {'matches':>7} {'cars':>4} {'laps':>4} {'lap s mean':>10} {'p50':>6} "
        f"{'min':>6} {'max':>6} {'spread s':>8} {'DNF %':>5} {'B/frame':>7} {'B/client/s':>10} "
        f"{'desyncs':>7} {'speed-up':>8}"
    )
    lines = [header, "-" * len(header)]
    for s in summaries:
        lines.append(
            f"{s.track:<8} {s.matches:>7} {s.cars:>4} {s.laps:>4} {s.lap_s_mean:>10.2f} "
            f"{s.lap_s_p50:>6.2f} {s.lap_s_min:>6.2f} {s.lap_s_max:>6.2f} {s.spread_s_mean:>8.2f} "
            f"{100 * s.dnf_rate:>5.1f} {s.wire_bytes_per_frame:>7.1f} "
            f"{s.wire_bytes_per_client_s:>10.0f} {s.desyncs:>7} {s.speedup:>7.0f}x"
        )
    lines.append("")
    lines.append("rewards by finishing position (mean points / coins / XP):")
    for s in summaries:
        cells = [
            f"{p + 1}: {pts:.0f}/{coins:.0f}/{xp:.0f}"
            for p, (pts, coins, xp) in enumerate(
                zip(s.points_by_position, s.coins_by_position, s.xp_by_position, strict=True)
            )
        ]
        lines.append(f"  {s.track:<8} " + "  ".join(cells))
    lines.append("B/frame includes the WebSocket header (2 bytes for frames under 126 bytes).")
    return "\n".join(lines)


def plot(summaries: list[TrackSummary], path: Path) -> None:
    """Lap-time distribution per track, and rewards by finishing position."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise SystemExit("--plot needs matplotlib: pip install -e '.[bench]'") from None
    fig, (laps_ax, rewards_ax) = plt.subplots(1, 2, figsize=(11, 4.5))
    laps_ax.boxplot(
        [s.lap_times_s or [0.0] for s in summaries], tick_labels=[s.track for s in summaries]
    )
    laps_ax.set_ylabel("lap time (s)")
    laps_ax.set_title("lap times by track")
    for s in summaries:
        positions = range(1, len(s.coins_by_position) + 1)
        rewards_ax.plot(positions, s.coins_by_position, marker="o", label=f"{s.track} coins")
        rewards_ax.plot(
            positions, s.points_by_position, marker="x", ls="--", label=f"{s.track} points"
        )
    rewards_ax.set_xlabel("finishing position")
    rewards_ax.set_ylabel("mean reward")
    rewards_ax.set_title("rewards by position")
    rewards_ax.legend(fontsize="small")
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(args: argparse.Namespace) -> list[TrackSummary]:
    tracks = track_names() if "all" in args.track else args.track
    return [
        simulate_track(
            name,
            matches=args.matches,
            cars=args.cars,
            laps=args.laps,
            seed=args.seed * 1000 + index,
            tick_rate_hz=args.tick_rate,
            input_rate_hz=args.input_rate,
            latency_ticks=args.latency_ticks,
            verify_all=args.verify_all,
        )
        for index, name in enumerate(tracks)
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--matches", type=int, default=10)
    parser.add_argument("--cars", type=int, default=8, help="bot-driven cars per match (1-8)")
    parser.add_argument(
        "--track", action="append", default=None, help="a track name, or all (repeatable)"
    )
    parser.add_argument("--laps", type=int, default=3)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--tick-rate", type=int, default=60)
    parser.add_argument("--input-rate", type=int, default=20)
    parser.add_argument("--latency-ticks", type=int, default=2, help="frame delivery delay")
    parser.add_argument(
        "--verify-all",
        action="store_true",
        help="every client decodes and verifies every frame (default: one per match)",
    )
    parser.add_argument("--plot", type=Path, help="write a PNG of lap times and rewards")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    args = parser.parse_args(argv)
    args.track = args.track or ["oval"]
    unknown = set(args.track) - {*track_names(), "all"}
    if unknown:
        parser.error(f"unknown track(s) {sorted(unknown)}; choose from {track_names()} or all")
    if not 1 <= args.cars <= 8 or args.matches < 1 or args.laps < 1:
        parser.error("--cars must be 1..8, --matches and --laps at least 1")
    summaries = run(args)
    if args.json:
        print(json.dumps([{**asdict(s), "speedup": s.speedup} for s in summaries], indent=1))
    else:
        print(table(summaries))
    if args.plot is not None:
        plot(summaries, args.plot)
        print(f"wrote {args.plot}", file=sys.stderr)
    tracks = " ".join(f"--track {t}" for t in args.track)
    print(
        f"reproduce: python -m simulations.race --matches {args.matches} --cars {args.cars} "
        f"{tracks} --laps {args.laps} --seed {args.seed}",
        file=sys.stderr,
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
