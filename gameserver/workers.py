"""One process per core: ``gameserver serve --workers N``.

A Python process ticks on one core, so a machine's cores are used by running
one worker process per core, each with its own tick loop and its own
matches. Clients still connect to one port: the front process accepts every
client, completes the WebSocket handshake (auth and subprotocol checks
included), reads the JOIN, and passes the socket itself (``SCM_RIGHTS`` over a
Unix ``SOCK_SEQPACKET`` socket) with the JOIN and any bytes after it to the
worker that holds the match. From then on the front is out of the path:
frames go from the worker's tick loop straight to the client's socket.

Routing needs no shared state. Worker ``k`` of ``n`` numbers its matches
``first + k``, ``first + k + n``, ... so a JOIN that names a match goes to
worker ``(match_id - first) % n``; quick joins fill one worker's lobby (a
match's seats) before moving on to the next worker.

If a worker dies, the front stops too (exit status 1), so a supervisor
restarts the whole server rather than leaving some matches unreachable.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import signal
import socket
import sys
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial
from typing import Any

import trio

from . import protocol
from .codes import CloseCode
from .config import ServerConfig
from .edge import SocketConnection, SocketEdge, encode_handoff
from .errors import PeerError, ProtocolError
from .results import open_result_store, store_in_thread
from .server import (
    Authorizer,
    Server,
    handshake_verdict,
    token_authorizer,
    tune_garbage_collector,
)
from .transport import HandshakeInfo

log = logging.getLogger("gameserver.workers")

#: Seconds the front waits for its workers to stop after asking them to.
STOP_TIMEOUT_S = 10.0


@dataclass(slots=True)
class Router:
    """Which worker a JOIN goes to."""

    workers: int
    first_match_id: int
    seats: int
    quick_joins: int = 0

    def worker_for(self, match_id: int | None) -> int:
        if match_id is None:
            worker = (self.quick_joins // self.seats) % self.workers
            self.quick_joins += 1
            return worker
        return (match_id - self.first_match_id) % self.workers


class Front:
    """The front process's side of each client: handshake, JOIN, hand-off."""

    def __init__(
        self,
        config: ServerConfig,
        router: Router,
        channels: list[socket.socket],
        authorize: Authorizer | None = None,
    ) -> None:
        self.config = config
        self.router = router
        self.channels = channels
        if authorize is None and config.auth_token:
            authorize = token_authorizer(config.auth_token)
        self._authorize = authorize
        self.handed_over = [0] * len(channels)
        self.connections_rejected = 0

    def accept(self, request: HandshakeInfo) -> tuple[int, str] | str:
        verdict = handshake_verdict(self._authorize, request)
        if isinstance(verdict, tuple):
            self.connections_rejected += 1
        return verdict

    def opened(self, connection: SocketConnection) -> None:
        connection.parser.pause_after_message = True

    def received(self, connection: SocketConnection, data: bytes) -> None:
        """The first message: a JOIN, handed with the socket to its match's worker."""
        message = protocol.decode_client_message(data)
        if not isinstance(message, protocol.Join):
            raise ProtocolError("the first message must be JOIN", CloseCode.POLICY_VIOLATION)
        worker = self.router.worker_for(message.match_id)
        packet = encode_handoff(connection.remote, data, connection.parser.take_unparsed())
        try:
            socket.send_fds(self.channels[worker], [packet], [connection.fd])
        except OSError as exc:
            log.warning("handing %s to worker %d failed: %s", connection.remote, worker, exc)
            raise PeerError("no worker could take the connection", CloseCode.SERVER_FULL) from None
        self.handed_over[worker] += 1
        connection.detach()

    def closed(self, connection: SocketConnection) -> None:
        pass

    def idle(self, connection: SocketConnection, now: float) -> PeerError | None:
        if now - connection.opened_at > self.config.join_timeout_s:
            return PeerError("no JOIN in time", CloseCode.JOIN_TIMEOUT)
        return None


def worker_config(config: ServerConfig, index: int) -> ServerConfig:
    """A worker's own settings: no listening port; its own status port when one is set."""
    status = config.status_port
    if status:
        status = status + 1 + index
    return config.replace(port=0, status_port=status)


async def run_front(
    config: ServerConfig,
    workers: int,
    seed: int,
    *,
    first_match_id: int = 1,
    on_listening: Callable[[int], None] | None = None,
) -> int:
    """Start ``workers`` worker processes and route clients to them until a signal.

    Returns the exit status: 0 after a requested stop, 1 if a worker died.
    """
    channels: list[socket.socket] = []
    processes: list[trio.Process] = []
    status = 0
    async with trio.open_nursery() as nursery:
        for index in range(workers):
            ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
            ours.setblocking(False)
            channels.append(ours)
            command = [
                sys.executable,
                "-m",
                "gameserver.workers",
                "--index",
                str(index),
                "--workers",
                str(workers),
                "--first-match-id",
                str(first_match_id),
                "--seed",
                str(seed),
                "--channel-fd",
                str(theirs.fileno()),
                "--log-level",
                logging.getLevelName(logging.getLogger("gameserver").getEffectiveLevel()),
                "--config",
                json.dumps(dataclasses.asdict(worker_config(config, index))),
            ]
            process = await trio.lowlevel.open_process(command, pass_fds=[theirs.fileno()])
            theirs.close()
            processes.append(process)
        seats = _seats()
        front = Front(config, Router(workers, first_match_id, seats), channels)
        edge = SocketEdge(
            front,
            max_message_bytes=config.max_message_bytes,
            handshake_timeout_s=config.join_timeout_s,
            slow_client_timeout_s=config.slow_client_timeout_s,
            max_queued_messages=config.max_queued_messages,
            # Socket options travel with the socket to the worker.
            send_buffer_bytes=config.send_buffer_bytes or None,
        )
        port: int = await nursery.start(partial(edge.serve, config.host, config.port))
        log.info("front on ws://%s:%d with %d workers", config.host, port, workers)
        if on_listening is not None:
            on_listening(port)
        died, stopping = trio.Event(), trio.Event()
        for index, process in enumerate(processes):
            nursery.start_soon(_watch, index, process, died, stopping)
        with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            async with trio.open_nursery() as waiting:
                waiting.start_soon(_first_signal, signals, waiting.cancel_scope)
                await died.wait()
                status = 1
                waiting.cancel_scope.cancel()
        stopping.set()
        for process in processes:
            if process.returncode is None:
                process.send_signal(signal.SIGTERM)
        with trio.move_on_after(STOP_TIMEOUT_S + config.drain_timeout_s):
            for process in processes:
                await process.wait()
        for process in processes:
            if process.returncode is None:
                process.kill()
        for channel in channels:
            channel.close()
        nursery.cancel_scope.cancel()
    return status


async def _first_signal(signals: Any, scope: trio.CancelScope) -> None:
    async for signum in signals:
        log.info("signal %d: stopping the workers", signum)
        scope.cancel()
        return


async def _watch(index: int, process: trio.Process, died: trio.Event, stopping: trio.Event) -> None:
    code = await process.wait()
    if stopping.is_set():
        log.info("worker %d stopped (status %d)", index, code)
    elif not died.is_set():
        log.error("worker %d exited with status %d: stopping the server", index, code)
        died.set()


def _seats() -> int:
    from .race import RaceGame

    return RaceGame(tick_rate_hz=60).schema.slots


# ------------------------------------------------------------------ the worker process
async def _run_worker(
    config: ServerConfig,
    index: int,
    workers: int,
    first_match_id: int,
    seed: int,
    channel: socket.socket,
) -> None:
    from .race import RaceGame

    store = open_result_store(config.database) if config.database else None
    try:
        hooks: dict[str, Any] = {}
        if store is not None:
            hooks["store_results"] = store_in_thread(store, tick_rate_hz=config.tick_rate_hz)
        server = Server(
            config,
            RaceGame(tick_rate_hz=config.tick_rate_hz),
            seed=seed + index * 7919,
            first_match_id=first_match_id + index,
            match_id_step=workers,
            **hooks,
        )
        tune_garbage_collector()
        async with trio.open_nursery() as nursery:

            async def serve(
                *, task_status: trio.TaskStatus[int] = trio.TASK_STATUS_IGNORED
            ) -> None:
                # Returns after a shutdown, including the one the front's exit starts.
                await server.run(channel=channel, task_status=task_status)
                nursery.cancel_scope.cancel()

            await nursery.start(serve)
            if server.status_port is not None:
                log.info("worker %d status on port %d", index, server.status_port)
            with trio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
                async for signum in signals:
                    log.info("worker %d: signal %d, closing connections", index, signum)
                    await server.shutdown()
                    break
            nursery.cancel_scope.cancel()
    finally:
        if store is not None:
            store.close()


def main(argv: list[str] | None = None) -> int:
    """Entry point of one worker process (started by the front, not by hand)."""
    parser = argparse.ArgumentParser(description="a gameserver worker process")
    parser.add_argument("--index", type=int, required=True)
    parser.add_argument("--workers", type=int, required=True)
    parser.add_argument("--first-match-id", type=int, required=True)
    parser.add_argument("--seed", type=int, required=True)
    parser.add_argument("--channel-fd", type=int, required=True)
    parser.add_argument("--config", required=True)
    parser.add_argument("--log-level", default="INFO")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=args.log_level,
        format=f"%(asctime)s %(levelname)s worker{args.index} %(name)s: %(message)s",
    )
    config = ServerConfig(**json.loads(args.config))
    channel = socket.socket(fileno=args.channel_fd)
    trio.run(_run_worker, config, args.index, args.workers, args.first_match_id, args.seed, channel)
    return 0


if __name__ == "__main__":
    sys.exit(main())

__all__ = ["Front", "Router", "run_front"]
