"""Server CPU per client on the hot path, without a load generator in the way.

    python -m benchmarks.hotpath [--clients 256,700,1024] [--ticks 600] [--send-rate 60]

The reference workload (circle track, 8 cars a match, 60 Hz ticks, inputs at
20 Hz that acknowledge a tick two ticks old) driven in one process through
the real server code: every client is a real socket pair, its inputs are
masked WebSocket frames the server reads with ``recv`` and parses with its
frame parser, and every frame the tick produces is framed and written with a
non-blocking ``send``, over TCP on loopback. Only the server's side is timed; the client ends are
drained outside the timed sections. On a shared machine this is steadier
than the sweep, whose load generator competes for the same two cores, so it
is the figure to compare hot-path designs with; the sweep says what clients
actually receive.

Prints, per client count: microseconds per client per tick for inputs (read,
parse, apply), the tick (game step, sync, frame encoding) and the writes
(framing, ``send``), their total as server CPU milliseconds per
client-second, and the share of one core that is at that tick rate.
"""

from __future__ import annotations

import argparse
import socket
import statistics
import sys
import time
from dataclasses import dataclass

import numpy as np
import trio

from clients.wsframe import mask_frame
from gameserver import protocol
from gameserver.config import ServerConfig
from gameserver.edge import SocketConnection, SocketEdge
from gameserver.race import RaceGame
from gameserver.server import Server, tune_garbage_collector

INPUT_HZ = 20


@dataclass(slots=True)
class Figures:
    clients: int
    send_rate_hz: int
    inputs_us: float
    tick_us: float
    writes_us: float

    @property
    def total_us(self) -> float:
        return self.inputs_us + self.tick_us + self.writes_us

    def row(self, tick_rate_hz: int) -> str:
        per_client_s = self.total_us * tick_rate_hz / 1000
        core = per_client_s * self.clients / 10
        return (
            f"| {self.clients:>5} | {self.send_rate_hz:>3} | {self.inputs_us:>6.2f} | "
            f"{self.tick_us:>6.2f} | {self.writes_us:>6.2f} | {self.total_us:>6.2f} | "
            f"{per_client_s:>6.3f} | {core:>5.0f}% |"
        )


HEADER = (
    "|     N |  Hz | inputs | tick   | writes | total  | ms/client-s | core % at 60 Hz |\n"
    "|---|---|---|---|---|---|---|---|"
)


async def measure(clients: int, ticks: int, send_rate_hz: int, seed: int) -> Figures:
    config = ServerConfig(
        port=0,
        database=None,
        track="circle",
        laps=1000,
        lobby_timeout_s=0.5,
        countdown_s=0.1,
        fill_with_ai=False,
        max_players=100_000,
        send_rate_hz=60,
    )
    server = Server(config, RaceGame(tick_rate_hz=60, rows=max(8, clients // 8 + 1)), seed=1)
    edge = SocketEdge(
        server,
        max_message_bytes=config.max_message_bytes,
        handshake_timeout_s=10,
        slow_client_timeout_s=10,
        max_queued_messages=1024,
    )
    ours: list[SocketConnection] = []
    theirs: list[socket.socket] = []
    listener = socket.create_server(("127.0.0.1", 0), backlog=clients)
    for _ in range(clients):
        # TCP over loopback, as clients connect: a send costs what it costs in service.
        b = socket.create_connection(listener.getsockname())
        a, _ = listener.accept()
        a.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        b.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        a.setblocking(False)
        b.setblocking(False)
        connection = SocketConnection(
            a,
            "bench",
            max_message_bytes=config.max_message_bytes,
            slow_client_timeout_s=10,
            max_queued_messages=1024,
            opened_at=0.0,
        )
        server.opened(connection)
        join = protocol.Join(name="bot", send_rate_hz=send_rate_hz)
        edge._received(connection, mask_frame(0x2, protocol.encode(join)), 0.0)
        ours.append(connection)
        theirs.append(b)

    def drain() -> None:
        for b in theirs:
            try:
                while b.recv(1 << 20):
                    pass
            except BlockingIOError:
                pass

    rng = np.random.default_rng(seed)
    arena = server.arena
    warmup = 120
    inputs_s: list[float] = []
    tick_s: list[float] = []
    writes_s: list[float] = []
    seqs = [0] * clients
    for tick in range(warmup + ticks):
        # Inputs: a third of the clients each tick (20 Hz), as masked frames on the wire.
        due = range(tick % 3, clients, 60 // INPUT_HZ)
        for i in due:
            seqs[i] += 1
            steer = float(rng.uniform(-0.2, 0.2))
            message = protocol.Input(
                seq=seqs[i], ack_tick=max(-1, arena.tick - 2), controls=(0.8, 0.0, steer)
            )
            theirs[i].send(mask_frame(0x2, protocol.encode(message)))
        start = time.perf_counter()
        for i in due:
            connection = ours[i]
            data = connection.sock.recv(65536)
            edge._received(connection, data, float(tick))
        read = time.perf_counter()
        outputs = arena.step()
        stepped = time.perf_counter()
        server.dispatch(outputs)
        written = time.perf_counter()
        drain()
        if tick >= warmup:
            inputs_s.append(read - start)
            tick_s.append(stepped - read)
            writes_s.append(written - stepped)
    for connection, b in zip(ours, theirs, strict=True):
        connection.sock.close()
        b.close()
    listener.close()

    def per_client_us(samples: list[float]) -> float:
        return statistics.median(samples) * 1e6 / clients

    return Figures(
        clients,
        send_rate_hz,
        per_client_us(inputs_s),
        per_client_us(tick_s),
        per_client_us(writes_s),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--clients", default="256,700,1024")
    parser.add_argument("--ticks", type=int, default=600)
    parser.add_argument("--send-rate", type=int, default=60)
    args = parser.parse_args(argv)
    print("microseconds per client per tick (medians over ticks), reference workload")
    print(HEADER)
    tune_garbage_collector()  # as gameserver serve does
    for count in (int(c) for c in args.clients.split(",")):
        figures = trio.run(measure, count, args.ticks, args.send_rate, 1)
        print(figures.row(60), flush=True)
    print(
        f"\nreproduce: python -m benchmarks.hotpath --clients {args.clients} "
        f"--ticks {args.ticks} --send-rate {args.send_rate}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
