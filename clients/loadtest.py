"""Load generator: one process drives many real bots over real WebSocket connections.

    python -m clients.loadtest --url ws://127.0.0.1:8765 --bots 1000 --duration 20

Every bot opens its own TCP connection, performs the WebSocket handshake,
joins by quick join, acknowledges what it receives and sends inputs at
``--input-rate``. To stay lean on two cores, all sockets are served from one
epoll loop with minimal framing (:mod:`clients.wsframe`), and only a sample of
bots (by default one per match) decodes every frame into a mirror and checks
its checksum; the rest read each frame's header fields (tick and the applied
input sequence) and count bytes. All bots of a match steer with the shipped
autopilot from their match's sampled mirror, in one vectorised call per match.
The report says which bots were sampled, and whether the load generator's own
CPU was the bottleneck.
"""

from __future__ import annotations

import argparse
import contextlib
import errno
import json
import select
import socket
import sys
import time
from dataclasses import asdict, dataclass, field
from typing import Any
from urllib.parse import urlsplit

import msgpack
import numpy as np

from clients.wsframe import (
    OP_BINARY,
    OP_CLOSE,
    OP_PING,
    OP_PONG,
    FrameError,
    FrameReader,
    check_handshake_response,
    close_payload,
    handshake_request,
    mask_frame,
)
from gameserver import protocol
from gameserver.codes import SUBPROTOCOL, EventCode, MessageType
from gameserver.errors import DesyncError, ProtocolError
from gameserver.race.autopilot import drive
from gameserver.race.track import Track, load_track
from gameserver.sync import Mirror

CONNECTING, HANDSHAKE, JOINING, JOINED, CLOSED = range(5)
SNAPSHOT, DELTA = int(MessageType.SNAPSHOT), int(MessageType.DELTA)
KNOWN_TYPES = frozenset(int(t) for t in MessageType)


@dataclass(eq=False)
class Bot:
    index: int
    sock: socket.socket
    started_s: float
    accept: bytes = b""
    phase: int = CONNECTING
    reader: FrameReader = field(default_factory=FrameReader)
    head: bytearray = field(default_factory=bytearray)
    handshake_s: float | None = None
    player_id: int | None = None
    match_id: int | None = None
    slot: int = -1
    sampled: bool = False
    mirror: Mirror | None = None
    frames: int = 0
    bytes_down: int = 0
    bytes_up: int = 0
    last_frame_s: float = 0.0
    gaps_s: list[float] = field(default_factory=list)
    ack_tick: int = -1
    seq: int = 0
    sent_at: dict[int, float] = field(default_factory=dict)
    reported_seq: int = 0
    latencies_s: list[float] = field(default_factory=list)
    desyncs: int = 0
    racing: bool = False
    results: list[dict[str, Any]] | None = None
    close_code: int | None = None
    error: str | None = None
    pending: bytearray = field(default_factory=bytearray)


@dataclass(eq=False)
class MatchView:
    match_id: int
    track: Track
    scales: np.ndarray
    fields: dict[str, int]
    sampler: Bot | None = None
    bots: list[Bot] = field(default_factory=list)


@dataclass
class Progress:
    """Live figures, once a second."""

    elapsed_s: float = 0.0
    bots: int = 0
    connected: int = 0
    racing: int = 0
    finished: int = 0
    frames: int = 0
    frames_per_s: float = 0.0
    kbit_per_s: float = 0.0
    bytes_down: int = 0
    errors: int = 0
    matches: int = 0


@dataclass
class Report:
    """The load test's findings; ``--json`` prints this."""

    bots: int
    duration_s: float
    input_rate_hz: float
    sampled_bots: int
    connections_attempted: int
    connections_succeeded: int
    connections_failed: int
    failure_reasons: dict[str, int]
    handshake_p50_ms: float
    handshake_p99_ms: float
    down_bytes_per_client_s: float
    up_bytes_per_client_s: float
    frames_per_client_s: float
    bytes_per_frame: float
    input_latency_p50_ms: float
    input_latency_p99_ms: float
    input_latency_max_ms: float
    frame_jitter_p99_ms: float
    desyncs: int
    frames_verified: int
    matches_seen: int
    matches_finished: int
    results_received: int
    close_codes: dict[str, int]
    loadgen_cpu_percent: float
    loadgen_saturated: bool
    notes: list[str]


def _pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q)) * 1e3 if values else 0.0


class LoadTest:
    """Drives ``bots`` connections from one epoll loop for ``duration_s`` seconds."""

    def __init__(
        self,
        url: str,
        bots: int,
        *,
        duration_s: float,
        input_rate_hz: float = 20.0,
        sample: str = "match",
        ramp_per_s: float = 500.0,
        connect_timeout_s: float = 10.0,
        until_results: bool = False,
        warmup_s: float = 0.0,
        naive: bool = False,
        max_speed_mps: float = 60.0,
        progress: Any = None,
        on_measure: Any = None,
    ) -> None:
        parts = urlsplit(url)
        if parts.scheme != "ws" or not parts.hostname:
            raise ValueError(f"need a ws:// URL, got {url!r}")
        self.host = parts.hostname
        self.port = parts.port or 80
        self.netloc = parts.netloc
        self.resource = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self.count = bots
        self.duration_s = duration_s
        self.input_rate_hz = input_rate_hz
        self.sample = sample
        self.ramp_per_s = ramp_per_s
        self.connect_timeout_s = connect_timeout_s
        self.until_results = until_results
        self.progress = progress
        self.warmup_s = warmup_s
        self.naive = naive
        self.max_speed_mps = max_speed_mps
        self.on_measure = on_measure
        if naive:
            self.sample = "none"
        self.bots: list[Bot] = []
        self.by_fd: dict[int, Bot] = {}
        self.matches: dict[int, MatchView] = {}
        self.failures: dict[str, int] = {}
        self.close_codes: dict[str, int] = {}
        self.epoll = select.epoll()
        self._last_progress = Progress()
        self._tracks: dict[str, Track] = {}

    # ------------------------------------------------------------ connections
    def _connect(self, index: int, now: float) -> None:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        bot = Bot(index=index, sock=sock, started_s=now)
        self.bots.append(bot)
        code = sock.connect_ex((self.host, self.port))
        if code not in (0, errno.EINPROGRESS):
            self._fail(bot, f"connect: {errno.errorcode.get(code, code)}")
            return
        self.by_fd[sock.fileno()] = bot
        self.epoll.register(sock.fileno(), select.EPOLLOUT)

    def _fail(self, bot: Bot, reason: str) -> None:
        if bot.phase == CLOSED:
            return
        if bot.phase < JOINED:
            self.failures[reason] = self.failures.get(reason, 0) + 1
        bot.error = reason
        self._close(bot)

    def _close(self, bot: Bot) -> None:
        bot.phase = CLOSED
        fd = bot.sock.fileno()
        if fd >= 0:
            self.by_fd.pop(fd, None)
            with contextlib.suppress(OSError, ValueError):
                self.epoll.unregister(fd)
        bot.sock.close()

    def _send(self, bot: Bot, data: bytes) -> None:
        if bot.phase == CLOSED:
            return
        bot.bytes_up += len(data)
        if bot.pending:
            bot.pending += data
            return
        try:
            sent = bot.sock.send(data)
        except BlockingIOError:
            sent = 0
        except OSError as exc:
            self._fail(bot, f"send: {exc.strerror}")
            return
        if sent < len(data):
            bot.pending += data[sent:]
            self.epoll.modify(bot.sock.fileno(), select.EPOLLIN | select.EPOLLOUT)

    def _writable(self, bot: Bot, now: float) -> None:
        if bot.phase == CONNECTING:
            err = bot.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            if err:
                self._fail(bot, f"connect: {errno.errorcode.get(err, err)}")
                return
            request, bot.accept = handshake_request(self.netloc, self.resource, SUBPROTOCOL)
            bot.phase = HANDSHAKE
            self.epoll.modify(bot.sock.fileno(), select.EPOLLIN)
            self._send(bot, request)
            return
        if bot.pending:
            try:
                sent = bot.sock.send(bot.pending)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(bot, f"send: {exc.strerror}")
                return
            del bot.pending[:sent]
        if not bot.pending:
            self.epoll.modify(bot.sock.fileno(), select.EPOLLIN)

    def _readable(self, bot: Bot, now: float) -> None:
        while bot.phase != CLOSED:
            try:
                data = bot.sock.recv(262144)
            except BlockingIOError:
                return
            except OSError as exc:
                self._fail(bot, f"recv: {exc.strerror}")
                return
            if not data:
                if bot.close_code is None:
                    self._count_close(bot, 1006)
                self._fail(bot, "connection dropped")
                return
            bot.bytes_down += len(data)
            if bot.phase == HANDSHAKE:
                bot.head += data
                end = bot.head.find(b"\r\n\r\n")
                if end < 0:
                    continue
                try:
                    check_handshake_response(bytes(bot.head[:end]), bot.accept)
                except FrameError as exc:
                    self._fail(bot, str(exc))
                    return
                bot.handshake_s = now - bot.started_s
                bot.phase = JOINING
                data = bytes(bot.head[end + 4 :])
                bot.bytes_down -= end + 4
                self._send(
                    bot, mask_frame(OP_BINARY, protocol.encode(protocol.Join(f"load-{bot.index}")))
                )
            try:
                frames = bot.reader.feed(data)
            except FrameError as exc:
                self._fail(bot, f"framing: {exc}")
                return
            for opcode, payload in frames:
                if opcode == OP_BINARY:
                    self._message(bot, payload, now)
                elif opcode == OP_CLOSE:
                    code, _ = close_payload(payload)
                    self._count_close(bot, code)
                    self._send(bot, mask_frame(OP_CLOSE, payload[:2]))
                    self._close(bot)
                    return
                elif opcode == OP_PING:
                    self._send(bot, mask_frame(OP_PONG, payload))

    def _count_close(self, bot: Bot, code: int) -> None:
        bot.close_code = code
        self.close_codes[str(code)] = self.close_codes.get(str(code), 0) + 1

    # ------------------------------------------------------------ messages
    def _message(self, bot: Bot, payload: bytes, now: float) -> None:
        kind = payload[1] if len(payload) > 1 and 0x90 <= payload[0] <= 0x9F else -1
        if kind in (DELTA, SNAPSHOT):
            bot.frames += 1
            if bot.last_frame_s:
                bot.gaps_s.append(now - bot.last_frame_s)
            bot.last_frame_s = now
            if bot.mirror is not None:
                frame = self._decode_frame(bot, payload)
                if frame is None:
                    return
                seq = frame.input_seq
            else:
                fields = msgpack.unpackb(payload)
                tick = fields[1]
                seq = fields[4] if kind == DELTA else fields[3]
                if tick > bot.ack_tick:
                    bot.ack_tick = tick
            if seq > bot.reported_seq:
                sent = bot.sent_at.pop(seq, None)
                if sent is not None:
                    bot.latencies_s.append(now - sent)
                for old in [s for s in bot.sent_at if s < seq]:
                    del bot.sent_at[old]
                bot.reported_seq = seq
            return
        if self.naive and kind not in KNOWN_TYPES:
            # A baseline server's full-state frame: counted, not decoded.
            bot.frames += 1
            if bot.last_frame_s:
                bot.gaps_s.append(now - bot.last_frame_s)
            bot.last_frame_s = now
            return
        try:
            message = protocol.decode_server_message(payload)
        except ProtocolError as exc:
            self._fail(bot, f"bad message: {exc.reason}")
            return
        if isinstance(message, protocol.Welcome):
            self._welcome(bot, message)
        elif isinstance(message, protocol.Event) and message.kind == EventCode.START:
            bot.racing = True
        elif isinstance(message, protocol.Results):
            bot.results = message.results
            bot.racing = False

    def _decode_frame(self, bot: Bot, payload: bytes) -> protocol.Snapshot | protocol.Delta | None:
        """Rebuild the state into the bot's mirror and verify the checksum."""
        assert bot.mirror is not None
        try:
            frame = protocol.decode_server_message(payload)
            assert isinstance(frame, protocol.Snapshot | protocol.Delta)
            if bot.mirror.apply(frame):
                bot.ack_tick = bot.mirror.tick
            return frame
        except DesyncError:
            bot.desyncs += 1
            bot.mirror.reset()
            bot.ack_tick = -1
        except ProtocolError as exc:
            self._fail(bot, f"bad frame: {exc.reason}")
        return None

    def _welcome(self, bot: Bot, welcome: protocol.Welcome) -> None:
        bot.phase = JOINED
        bot.player_id, bot.match_id, bot.slot = welcome.player_id, welcome.match_id, welcome.slot
        view = self.matches.get(welcome.match_id)
        if view is None:
            name = str(welcome.match["track"]["name"])
            track = self._tracks.get(name) or self._tracks.setdefault(name, load_track(name))
            fields = welcome.schema["fields"]
            view = MatchView(
                match_id=welcome.match_id,
                track=track,
                scales=np.array([float(f[1]) for f in fields]),
                fields={str(f[0]): i for i, f in enumerate(fields)},
            )
            self.matches[welcome.match_id] = view
        view.bots.append(bot)
        if self.sample == "all" or (self.sample == "match" and view.sampler is None):
            bot.sampled = True
            bot.mirror = Mirror.for_schema(welcome.schema)
            if view.sampler is None:
                view.sampler = bot

    # ------------------------------------------------------------ inputs
    def _send_inputs(self, now: float) -> None:
        for view in self.matches.values():
            live = [b for b in view.bots if b.phase == JOINED]
            if not live:
                continue
            sampler = view.sampler
            if sampler is not None and sampler.mirror is not None and sampler.mirror.tick >= 0:
                state = sampler.mirror.state
                slots = np.array([b.slot for b in live])
                f = view.fields
                cars = state[slots]
                throttle, brake, steer = drive(
                    view.track,
                    cars[:, f["x"]] / view.scales[f["x"]],
                    cars[:, f["y"]] / view.scales[f["y"]],
                    cars[:, f["heading"]] / view.scales[f["heading"]],
                    cars[:, f["speed"]] / view.scales[f["speed"]],
                    max_speed_mps=self.max_speed_mps,
                )
                controls = np.stack([throttle, brake, steer], axis=1).round(3).tolist()
            elif self.naive:
                controls = [[0.6, 0.0, 0.1]] * len(live)  # keeps every car moving
            else:
                controls = [[0.0, 0.0, 0.0]] * len(live)
            for bot, values in zip(live, controls, strict=True):
                bot.seq += 1
                bot.sent_at[bot.seq] = now
                message = msgpack.packb([MessageType.INPUT, bot.seq, bot.ack_tick, *values])
                self._send(bot, mask_frame(OP_BINARY, message))

    # ------------------------------------------------------------ the loop
    def run(self) -> Report:
        start = time.perf_counter()
        cpu_start = time.process_time()
        next_input = start
        period = 1.0 / self.input_rate_hz
        next_progress = start + 1.0
        measure_from: float | None = None
        all_in: float | None = None
        connected = 0
        deadline = (
            start
            + self.warmup_s
            + self.duration_s
            + self.count / self.ramp_per_s
            + self.connect_timeout_s
        )
        while True:
            now = time.perf_counter()
            due = min(self.count, int((now - start) * self.ramp_per_s) + 1)
            while connected < due:
                self._connect(connected, now)
                connected += 1
            for bot in self.bots:
                if bot.phase < JOINING and now - bot.started_s > self.connect_timeout_s:
                    self._fail(bot, "handshake timeout")
            joined = sum(1 for b in self.bots if b.phase == JOINED)
            if (
                all_in is None
                and connected == self.count
                and all(b.phase in (JOINED, CLOSED) for b in self.bots)
            ):
                all_in = now
            if measure_from is None and all_in is not None and now - all_in >= self.warmup_s:
                measure_from = now
                self._reset_counters()
                if self.on_measure is not None:
                    self.on_measure()
            measured = measure_from is not None and now - measure_from >= self.duration_s
            if measured and (
                not self.until_results or not any(b.phase == JOINED for b in self.bots)
            ):
                break
            if now > deadline and not self.until_results:
                break
            if connected == self.count and not any(b.phase != CLOSED for b in self.bots):
                break
            if now >= next_input:
                self._send_inputs(now)
                next_input += period
                if next_input < now:
                    next_input = now + period
            if self.progress is not None and now >= next_progress:
                self.progress(self._progress(joined, now - start))
                next_progress += 1.0
            timeout = max(0.0, min(next_input - time.perf_counter(), 0.05))
            for fd, events in self.epoll.poll(timeout):
                ready = self.by_fd.get(fd)
                if ready is None:
                    continue
                bot = ready
                now = time.perf_counter()
                if events & select.EPOLLOUT:
                    self._writable(bot, now)
                if events & (select.EPOLLIN | select.EPOLLHUP | select.EPOLLERR):
                    self._readable(bot, now)
        wall = time.perf_counter() - (measure_from or start)
        cpu = time.process_time() - cpu_start
        total_wall = time.perf_counter() - start
        for bot in self.bots:
            if bot.phase != CLOSED:
                with contextlib.suppress(OSError):
                    bot.sock.send(mask_frame(OP_CLOSE, b"\x03\xe8"))
                self._close(bot)
        self.epoll.close()
        return self._report(wall, cpu / total_wall)

    def _reset_counters(self) -> None:
        for bot in self.bots:
            bot.frames = bot.bytes_down = bot.bytes_up = 0
            bot.gaps_s = []
            bot.latencies_s = []

    def _progress(self, joined: int, elapsed: float) -> Progress:
        frames = sum(b.frames for b in self.bots)
        down = sum(b.bytes_down for b in self.bots)
        previous = self._last_progress
        rate = max(elapsed - previous.elapsed_s, 1e-9)
        progress = Progress(
            elapsed_s=elapsed,
            bots=self.count,
            connected=joined,
            racing=sum(1 for b in self.bots if b.racing and b.phase == JOINED),
            finished=sum(1 for b in self.bots if b.results is not None),
            frames=frames,
            frames_per_s=max(0, frames - previous.frames) / rate,
            kbit_per_s=max(0, down - previous.bytes_down) * 8 / rate / 1e3,
            bytes_down=down,
            errors=sum(self.failures.values()) + sum(b.desyncs for b in self.bots),
            matches=len(self.matches),
        )
        self._last_progress = progress
        return progress

    def _report(self, wall: float, cpu_share: float) -> Report:
        ok = [b for b in self.bots if b.handshake_s is not None]
        n = max(1, len([b for b in self.bots if b.player_id is not None]))
        frames = sum(b.frames for b in self.bots)
        down = sum(b.bytes_down for b in self.bots)
        up = sum(b.bytes_up for b in self.bots)
        latencies = [x for b in self.bots for x in b.latencies_s]
        gaps = [x for b in self.bots for x in b.gaps_s]
        sampled = [b for b in self.bots if b.sampled]
        finished = {b.match_id for b in self.bots if b.results is not None}
        saturated = cpu_share > 0.9
        notes = [
            f"{len(sampled)} bots decoded every frame into a mirror and verified its checksum "
            f"(sample={self.sample}); the others read frame headers only",
        ]
        if saturated:
            notes.append(
                f"the load generator used {cpu_share:.0%} of a core: it, not the server, may be "
                "the bottleneck; figures are lower bounds"
            )
        return Report(
            bots=self.count,
            duration_s=round(wall, 3),
            input_rate_hz=self.input_rate_hz,
            sampled_bots=len(sampled),
            connections_attempted=len(self.bots),
            connections_succeeded=len(ok),
            connections_failed=len(self.bots) - len(ok),
            failure_reasons=dict(self.failures),
            handshake_p50_ms=_pct([b.handshake_s for b in ok if b.handshake_s], 50),
            handshake_p99_ms=_pct([b.handshake_s for b in ok if b.handshake_s], 99),
            down_bytes_per_client_s=down / n / wall,
            up_bytes_per_client_s=up / n / wall,
            frames_per_client_s=frames / n / wall,
            bytes_per_frame=down / frames if frames else 0.0,
            input_latency_p50_ms=_pct(latencies, 50),
            input_latency_p99_ms=_pct(latencies, 99),
            input_latency_max_ms=max(latencies) * 1e3 if latencies else 0.0,
            frame_jitter_p99_ms=_pct(gaps, 99),
            desyncs=sum(b.desyncs for b in self.bots),
            frames_verified=sum(b.mirror.frames for b in sampled if b.mirror is not None),
            matches_seen=len(self.matches),
            matches_finished=len(finished),
            results_received=sum(1 for b in self.bots if b.results is not None),
            close_codes=dict(self.close_codes),
            loadgen_cpu_percent=round(cpu_share * 100, 1),
            loadgen_saturated=saturated,
            notes=notes,
        )


class LiveDisplay:
    """A live table on the terminal (rich), refreshed with each progress report."""

    def __init__(self) -> None:
        from rich.console import Console
        from rich.live import Live

        self._live = Live(console=Console(stderr=True), auto_refresh=False)
        self._live.start()

    def update(self, progress: Progress) -> None:
        from rich.table import Table

        table = Table(title=f"load test, {progress.elapsed_s:.0f} s", title_justify="left")
        for column in (
            "connected", "racing", "finished", "matches", "frames/s", "kbit/s", "errors",
        ):  # fmt: skip
            table.add_column(column, justify="right")
        table.add_row(
            f"{progress.connected}/{progress.bots}",
            str(progress.racing),
            str(progress.finished),
            str(progress.matches),
            f"{progress.frames_per_s:,.0f}",
            f"{progress.kbit_per_s:,.0f}",
            str(progress.errors),
        )
        self._live.update(table, refresh=True)

    def stop(self) -> None:
        self._live.stop()


def print_report(report: Report) -> None:
    """The summary as a rich table (plain text when not on a terminal)."""
    from rich.console import Console
    from rich.table import Table

    table = Table(title="load test report", title_justify="left", show_header=False)
    table.add_column("figure")
    table.add_column("value", justify="right")
    notes = []
    for line in format_report(report).splitlines():
        if line.startswith("note: "):
            notes.append(line)
            continue
        key, _, value = line.partition("  ")
        table.add_row(key.strip(), value.strip())
    console = Console()
    console.print(table)
    for note in notes:
        console.print(note)


def format_report(report: Report) -> str:
    rows = [
        ("bots (sampled for full decode)", f"{report.bots} ({report.sampled_bots})"),
        ("measured for", f"{report.duration_s:.1f} s"),
        (
            "connections ok / failed",
            f"{report.connections_succeeded} / {report.connections_failed} "
            + (json.dumps(report.failure_reasons) if report.failure_reasons else ""),
        ),
        (
            "handshake p50 / p99",
            f"{report.handshake_p50_ms:.1f} / {report.handshake_p99_ms:.1f} ms",
        ),
        ("downstream per client", f"{report.down_bytes_per_client_s:,.0f} B/s"),
        ("upstream per client", f"{report.up_bytes_per_client_s:,.0f} B/s"),
        ("frames per client", f"{report.frames_per_client_s:.1f} /s"),
        ("bytes per frame (with WS header)", f"{report.bytes_per_frame:.1f}"),
        (
            "input -> applied p50 / p99 / max",
            f"{report.input_latency_p50_ms:.1f} / {report.input_latency_p99_ms:.1f} / "
            f"{report.input_latency_max_ms:.1f} ms",
        ),
        ("frame inter-arrival p99", f"{report.frame_jitter_p99_ms:.1f} ms"),
        ("desyncs (frames verified)", f"{report.desyncs} ({report.frames_verified})"),
        (
            "matches seen / finished, results",
            f"{report.matches_seen} / {report.matches_finished}, {report.results_received}",
        ),
        ("close codes", json.dumps(report.close_codes)),
        ("load generator CPU", f"{report.loadgen_cpu_percent:.0f}% of a core"),
    ]
    width = max(len(k) for k, _ in rows)
    lines = [f"{k:<{width}}  {v}" for k, v in rows]
    return "\n".join(lines + [f"note: {n}" for n in report.notes])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="drive many real bots against a gameserver")
    parser.add_argument("--url", default="ws://127.0.0.1:8765")
    parser.add_argument("--bots", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds measured")
    parser.add_argument("--input-rate", type=float, default=20.0, help="inputs per second per bot")
    parser.add_argument(
        "--sample",
        choices=("match", "all", "none"),
        default="match",
        help="which bots decode and verify every frame: one per match, all, or none",
    )
    parser.add_argument("--ramp", type=float, default=500.0, help="new connections per second")
    parser.add_argument("--until-results", action="store_true", help="run until matches end")
    parser.add_argument("--warmup", type=float, default=0.0, help="seconds before measuring")
    parser.add_argument(
        "--max-speed", type=float, default=60.0, help="pace the bots hold, m/s (benchmark: 30)"
    )
    parser.add_argument(
        "--naive", action="store_true", help="the server sends full-state baseline frames"
    )
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    args = parser.parse_args(argv)
    if args.bots < 1 or args.duration <= 0 or args.input_rate <= 0 or args.ramp <= 0:
        parser.error("--bots, --duration, --input-rate and --ramp must be positive")

    display = LiveDisplay() if not args.json else None
    test = LoadTest(
        args.url,
        args.bots,
        duration_s=args.duration,
        input_rate_hz=args.input_rate,
        sample=args.sample,
        ramp_per_s=args.ramp,
        until_results=args.until_results,
        warmup_s=args.warmup,
        naive=args.naive,
        max_speed_mps=args.max_speed,
        progress=display.update if display is not None else None,
        on_measure=lambda: print("measuring", file=sys.stderr, flush=True),
    )
    try:
        report = test.run()
    finally:
        if display is not None:
            display.stop()
    if args.json:
        print(json.dumps(asdict(report), indent=2))
    else:
        print_report(report)
    return 1 if report.desyncs or report.connections_failed else 0


if __name__ == "__main__":
    sys.exit(main())
