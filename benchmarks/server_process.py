"""A server process for the benchmark sweep: ours, or a naive full-state baseline.

    python -m benchmarks.server_process --design ours --port-file /tmp/p

Designs:
- ``ours``: the real server (quantised deltas against each client's acked tick)
  on its default socket edge (non-blocking writes from the tick loop).
- ``ours-tws``: the same server on the trio-websocket edge (a reader and a
  writer task per client): the hot path before the socket edge.
- ``json``: the same server, but every frame is the full state as JSON text
  (per-car maps with string keys and float values), as naive servers send it.
- ``msgpack``: the full state as msgpack with string keys.
The baselines reuse the real match lifecycle, tick loop and transport, so the
sweep compares only what goes on the wire and what it costs to build it.

The reference workload: the ``circle`` track (radius 200 m, 8 gates), 8 cars
a match, 1000 laps so no match finishes while measured.
"""

from __future__ import annotations

import argparse
import json
import sys
from functools import partial
from pathlib import Path

import msgpack
import trio

from gameserver.config import ServerConfig
from gameserver.match import Arena, Output, Send
from gameserver.race import RaceGame
from gameserver.server import Server, tune_garbage_collector


class FullStateArena(Arena):
    """Sends every due player the whole state of its match, encoded naively."""

    encoding = "json"

    def _frames(self) -> list[Output]:
        outputs: list[Output] = []
        tick = self.tick
        fields = self.game.schema.fields
        state = self.game.state()
        encoded: dict[int, bytes] = {}
        for player in self.players.values():
            if player.ai or (tick - player.send_phase) % player.send_every:
                continue
            row = player.match.row
            data = encoded.get(row)
            if data is None:
                cars = [
                    {
                        "slot": slot,
                        **{f.name: float(car[i]) / f.scale for i, f in enumerate(fields)},
                    }
                    for slot, car in enumerate(state[row].tolist())
                    if car[-1] & 1
                ]
                message = {"type": "state", "tick": tick, "cars": cars}
                if self.encoding == "json":
                    data = json.dumps(message).encode()
                else:
                    data = msgpack.packb(message)
                encoded[row] = data
            player.frames_sent += 1
            player.bytes_sent += len(data)
            self.frames_sent += 1
            self.bytes_sent += len(data)
            outputs.append(Send(player.player_id, data, False))
        return outputs


def reference_config(port: int, status_port: int, send_rate_hz: int) -> ServerConfig:
    return ServerConfig(
        port=port,
        status_port=status_port,
        tick_rate_hz=60,
        send_rate_hz=send_rate_hz,
        track="circle",
        laps=1000,
        lobby_timeout_s=1.0,
        countdown_s=0.5,
        fill_with_ai=False,
        max_players=100_000,
        idle_timeout_s=60.0,
        join_timeout_s=30.0,
    )


async def run(design: str, config: ServerConfig, port_file: Path) -> None:
    game = RaceGame(tick_rate_hz=config.tick_rate_hz, rows=256)
    if design == "ours-tws":
        config = config.replace(transport="trio-websocket")
    server = Server(config, game, seed=1)
    if design in ("json", "msgpack"):
        arena = FullStateArena(game, config, seed=1)
        arena.encoding = design
        server.arena = arena
    tune_garbage_collector()  # as gameserver serve does
    async with trio.open_nursery() as nursery:
        await nursery.start(server.run)
        await trio.Path(port_file).write_text(f"{server.port} {server.status_port}\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--design", choices=("ours", "ours-tws", "json", "msgpack"), default="ours")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--status-port", type=int, default=0)
    parser.add_argument("--send-rate", type=int, default=60)
    parser.add_argument("--port-file", type=Path, required=True)
    args = parser.parse_args(argv)
    config = reference_config(args.port, args.status_port, args.send_rate)
    trio.run(partial(run, args.design, config, args.port_file))
    return 0


if __name__ == "__main__":
    sys.exit(main())
