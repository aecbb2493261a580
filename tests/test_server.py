"""The Trio edge over in-memory streams, on a virtual clock.

Each test runs the server's tick loop and real trio-websocket connections over
``trio.testing`` stream pairs, with ``MockClock(autojump_threshold=0)`` (the
``autojump_clock`` fixture): the clock jumps to the next deadline whenever every
task waits, so a lobby or slow-client timeout takes milliseconds and the virtual
time at which each message arrives is exact. Every wait is bounded by
``trio.fail_after`` in virtual seconds.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

import msgpack
import pytest
import trio
import trio.testing
import trio_websocket

from gameserver import protocol
from gameserver.codes import SUBPROTOCOL, CloseCode, EventCode, MessageType
from gameserver.config import ServerConfig
from gameserver.match import Output
from gameserver.server import Server
from gameserver.sync import Mirror

from .tinygame import FINISH, TinyGame

CONFIG = ServerConfig(
    tick_rate_hz=60,
    send_rate_hz=60,
    lobby_timeout_s=1.0,
    countdown_s=0.5,
    fill_with_ai=False,
)
PERIOD_S = CONFIG.tick_s
#: Upper bound of every wait, in virtual seconds.
WAIT_S = 60.0
#: Tolerance when comparing virtual times (the clock adds floats).
TIME_TOLERANCE_S = 1e-9

Frame = protocol.Snapshot | protocol.Delta
Condition = Callable[[], object]
M = TypeVar("M", bound=protocol.ServerMessage)


def make_server(**changes: Any) -> Server:
    return Server(CONFIG.replace(**changes), TinyGame(rows=2, goal=100), seed=3)


def at(start: float, tick: int) -> Any:
    """The virtual time of ``tick`` on a loop started at ``start``, for ``==``."""
    return pytest.approx(start + tick * PERIOD_S, abs=TIME_TOLERANCE_S)


async def serve(server: Server, stream: trio.abc.Stream) -> None:
    """What ``trio_websocket.serve_websocket`` does for one connection, over ``stream``."""
    async with trio.open_nursery() as nursery:
        request = await trio_websocket.wrap_server_stream(
            nursery, stream, max_message_size=server.config.max_message_bytes
        )
        await server.handle_request(request)
        # Ends trio-websocket's reader task after a rejected handshake.
        await stream.aclose()


@dataclass(eq=False)
class Peer:
    """A test client: its connection, each message it received with the virtual time, its close."""

    ws: trio_websocket.WebSocketConnection
    received: list[tuple[float, protocol.ServerMessage]] = field(default_factory=list)
    close: trio_websocket.CloseReason | None = None
    mirror: Mirror = field(
        default_factory=lambda: Mirror(TinyGame.schema.slots, len(TinyGame.schema.fields))
    )
    #: While False the application does not call ``get_message`` (a client that stopped reading).
    reading: bool = True
    _changed: trio.Event = field(default_factory=trio.Event)

    @property
    def closed(self) -> bool:
        return self.close is not None

    @property
    def welcome(self) -> protocol.Welcome | None:
        found = self.of_type(protocol.Welcome)
        return found[0] if found else None

    def of_type(self, kind: type[M]) -> list[M]:
        return [m for _, m in self.received if isinstance(m, kind)]

    def events(self, kind: int) -> list[protocol.Event]:
        return [e for e in self.of_type(protocol.Event) if e.kind == kind]

    def frames(self) -> list[tuple[float, Frame]]:
        return [(t, m) for t, m in self.received if isinstance(m, Frame)]

    def arrival(self, message: protocol.ServerMessage) -> float:
        return next(t for t, m in self.received if m is message)

    async def send(self, message: protocol.ClientMessage) -> None:
        await self.ws.send_message(protocol.encode(message))

    async def wait_until(self, condition: Condition) -> None:
        with trio.fail_after(WAIT_S):
            while not condition():
                await self._changed.wait()

    async def next_message(self) -> None:
        """Wait for one more message, or the close."""
        held = len(self.received)
        await self.wait_until(lambda: len(self.received) > held or self.closed)

    async def wait_closed(self) -> trio_websocket.CloseReason:
        await self.wait_until(lambda: self.closed)
        assert self.close is not None
        return self.close

    def pause(self) -> None:
        self.reading = False

    def resume(self) -> None:
        self.reading = True
        self._notify()

    def _notify(self) -> None:
        self._changed.set()
        self._changed = trio.Event()

    async def run_reader(self) -> None:
        try:
            while True:
                while not self.reading:
                    await self._changed.wait()
                data = await self.ws.get_message()
                assert isinstance(data, bytes), "the server sends binary frames only"
                message = protocol.decode_server_message(data)
                if isinstance(message, Frame):
                    self.mirror.apply(message)  # raises DesyncError on a bad checksum
                self.received.append((trio.current_time(), message))
                self._notify()
        except trio_websocket.ConnectionClosed as exc:
            self.close = exc.reason
            self._notify()


class Edge:
    """A ticking server and the server side of its in-memory connections."""

    def __init__(self, server: Server, nursery: trio.Nursery) -> None:
        self.server = server
        self.nursery = nursery
        self._serving = 0
        self._changed = trio.Event()

    async def connect(
        self, name: str | None = "player", *, match_id: int | None = None, lockstep: bool = False
    ) -> Peer:
        """Open a connection; with a name, JOIN and wait for the answer.

        ``lockstep`` uses a stream on which the server's writes wait until this
        client reads, so a client that stops reading pushes back on the server.
        """
        make_pair = (
            trio.testing.lockstep_stream_pair if lockstep else trio.testing.memory_stream_pair
        )
        client_stream, server_stream = make_pair()
        self.nursery.start_soon(self._serve, server_stream)
        ws = await trio_websocket.wrap_client_stream(
            self.nursery,
            client_stream,  # type: ignore[arg-type]
            "localhost",
            "/",
            subprotocols=[SUBPROTOCOL],
        )
        peer = Peer(ws)
        self.nursery.start_soon(peer.run_reader)
        if name is not None:
            await peer.send(protocol.Join(name=name, match_id=match_id))
            await peer.wait_until(lambda: peer.welcome is not None or peer.closed)
        return peer

    async def served(self) -> None:
        """Wait until every connection's handler has returned (and its close is counted)."""
        with trio.fail_after(WAIT_S):
            while self._serving:
                await self._changed.wait()

    async def _serve(self, stream: trio.abc.Stream) -> None:
        self._serving += 1
        try:
            await serve(self.server, stream)
        finally:
            self._serving -= 1
            self._changed.set()
            self._changed = trio.Event()


@asynccontextmanager
async def running(server: Server) -> AsyncIterator[Edge]:
    """``server`` ticking from the current virtual time, until the block exits."""
    async with trio.open_nursery() as nursery:
        nursery.start_soon(server.run_ticks)
        yield Edge(server, nursery)
        nursery.cancel_scope.cancel()


async def handshake(
    server: Server,
    *,
    subprotocols: Sequence[str] = (SUBPROTOCOL,),
    resource: str = "/",
    headers: list[tuple[bytes, bytes]] | None = None,
) -> int:
    """The HTTP status the server answers a WebSocket handshake with (101 when accepted)."""
    client_stream, server_stream = trio.testing.memory_stream_pair()
    rejected: list[trio_websocket.ConnectionRejected] = []
    with trio.fail_after(WAIT_S):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(serve, server, server_stream)
            try:
                async with trio.open_nursery() as client:
                    ws = await trio_websocket.wrap_client_stream(
                        client,
                        client_stream,  # type: ignore[arg-type]
                        "localhost",
                        resource,
                        subprotocols=list(subprotocols),
                        extra_headers=headers,
                    )
                    await ws.aclose()
            except* trio_websocket.ConnectionRejected as group:
                rejected += [
                    e for e in group.exceptions if isinstance(e, trio_websocket.ConnectionRejected)
                ]
            await client_stream.aclose()
    if rejected:
        return int(rejected[0].status_code)
    return 101


async def drive(peer: Peer, push: float) -> None:
    """From START until the connection closes: push, acknowledging the newest frame held."""
    await peer.wait_until(lambda: peer.events(EventCode.START) or peer.closed)
    seq = 0
    while not peer.closed:
        seq += 1
        try:
            await peer.send(protocol.Input(seq=seq, ack_tick=peer.mirror.tick, controls=(push,)))
        except trio_websocket.ConnectionClosed:
            return
        await peer.next_message()


def assert_one_frame_per_tick(peer: Peer, start: float) -> list[int]:
    """Every tick from the first frame to the last brought its frame, at that tick's time."""
    frames = peer.frames()
    ticks = [frame.tick for _, frame in frames]
    assert ticks == list(range(ticks[0], ticks[0] + len(ticks)))
    assert [t for t, _ in frames] == [at(start, tick) for tick in ticks]
    return ticks


# ---------------------------------------------------------------- the tick loop
async def test_tick_loop_is_drift_free(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    step_times: list[float] = []
    step = server.arena.step

    def timed_step() -> list[Output]:
        step_times.append(trio.current_time())
        outputs = step()
        autojump_clock.jump(0.001)  # every tick takes a millisecond, as real ones do
        return outputs

    monkeypatch.setattr(server.arena, "step", timed_step)
    seconds = 10
    start = trio.current_time()
    async with running(server):
        await trio.sleep(seconds + PERIOD_S / 2)

    ticks = server.statistics().ticks
    assert ticks.ticks == 60 * seconds
    assert (ticks.late_ticks, ticks.missed_ticks) == (0, 0)
    assert server.arena.tick == 60 * seconds
    assert step_times == [at(start, tick) for tick in range(1, 60 * seconds + 1)]


async def test_slow_tick_is_late_its_skipped_deadlines_are_missed_and_the_schedule_holds(
    autojump_clock: trio.testing.MockClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    server = make_server()
    step_times: list[float] = []
    step = server.arena.step

    def slow_tenth_step() -> list[Output]:
        step_times.append(trio.current_time())
        outputs = step()
        if len(step_times) == 10:
            autojump_clock.jump(0.5)  # this tick takes half a second: 30 periods
        return outputs

    monkeypatch.setattr(server.arena, "step", slow_tenth_step)
    start = trio.current_time()
    async with running(server):
        await trio.sleep(2 + PERIOD_S / 2)

    # Tick 10 ends at the deadline of tick 40: ticks 11..39 are skipped, tick 40
    # runs late (at its own deadline, one deadline late for the loop), and every
    # later tick runs on the original grid.
    ticks = server.statistics().ticks
    assert ticks.late_ticks == 1
    assert ticks.missed_ticks == 29
    assert ticks.ticks == 120 - 29
    expected = [*range(1, 11), *range(40, 121)]
    assert step_times == [at(start, tick) for tick in expected]


# ---------------------------------------------------------------- lifecycle
async def test_lobby_timeout_countdown_and_start_happen_at_the_configured_ticks(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server()
    start = trio.current_time()
    async with running(server) as edge:
        alice = await edge.connect("alice")
        await alice.wait_until(lambda: alice.events(EventCode.START))

    lobby_ticks = CONFIG.ticks(CONFIG.lobby_timeout_s)
    start_tick = lobby_ticks + CONFIG.ticks(CONFIG.countdown_s)
    assert (lobby_ticks, start_tick) == (60, 90)
    [lobby] = alice.events(EventCode.LOBBY)
    assert (lobby.tick, lobby.args) == (0, (lobby_ticks,))
    assert alice.arrival(lobby) == at(start, 0)
    [countdown] = alice.events(EventCode.COUNTDOWN)
    assert (countdown.tick, countdown.args) == (lobby_ticks, (start_tick,))
    assert alice.arrival(countdown) == at(start, lobby_ticks)
    [started] = alice.events(EventCode.START)
    assert started.tick == start_tick
    assert alice.arrival(started) == at(start, start_tick)
    assert server.arena.tick == start_tick


async def test_a_whole_match_ends_with_identical_results_and_a_normal_close(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server()
    pushes = {"ann": 1.0, "ben": 0.5, "cy": 0.25}
    async with running(server) as edge:
        peers = [await edge.connect(name) for name in pushes]
        for peer, push in zip(peers, pushes.values(), strict=True):
            edge.nursery.start_soon(drive, peer, push)
        closes = [await peer.wait_closed() for peer in peers]
        await edge.served()

    assert [(c.code, c.reason) for c in closes] == [(CloseCode.NORMAL, "match over")] * 3
    [ended] = server.ended
    assert ended.results is not None
    match_ids = {peer.welcome.match_id for peer in peers if peer.welcome}
    assert match_ids == {ended.match_id}
    for peer in peers:
        [results] = peer.of_type(protocol.Results)
        assert results.results == ended.results
        assert [r["name"] for r in results.results] == list(pushes)
        assert [r["position"] for r in results.results] == [1, 2, 3]
        finishes = peer.events(FINISH)
        assert [(e.slot, e.args) for e in finishes] == [(0, (1,)), (1, (2,)), (2, (3,))]
        assert peer.received[-1][1] == results, "RESULTS is the last message before the close"
        assert peer.of_type(protocol.Delta), "acknowledged frames come as deltas"
    stats = server.statistics()
    assert stats.matches_finished == 1
    assert stats.close_codes == {CloseCode.NORMAL: 3}


# ---------------------------------------------------------------- bad peers
async def test_malformed_frame_closes_only_that_connection(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server()
    start = trio.current_time()
    async with running(server) as edge:
        good = await edge.connect("good")
        bad = await edge.connect("bad")
        edge.nursery.start_soon(drive, good, 0.5)
        await bad.wait_until(lambda: bad.events(EventCode.START))
        await bad.ws.send_message(b"\xc1 is never valid msgpack")
        bad_close = await bad.wait_closed()
        left_at = trio.current_time()
        good_close = await good.wait_closed()
        await edge.served()

    assert bad_close.code == CloseCode.INVALID_PAYLOAD
    assert bad_close.reason
    assert "msgpack" in bad_close.reason
    assert good_close.code == CloseCode.NORMAL
    assert bad.welcome is not None
    [left] = good.events(EventCode.PLAYER_LEFT)
    assert (left.slot, left.args) == (bad.welcome.slot, (bad.welcome.player_id,))
    ticks = assert_one_frame_per_tick(good, start)
    assert ticks[0] == 1
    assert start + ticks[-1] * PERIOD_S > left_at + 0.1, "the match went on after the close"
    [results] = good.of_type(protocol.Results)
    assert [r["name"] for r in results.results] == ["good", "bad"]  # who left is ranked last
    assert server.statistics().close_codes == {
        CloseCode.INVALID_PAYLOAD: 1,
        CloseCode.NORMAL: 1,
    }


JOIN = protocol.encode(protocol.Join(name="eve"))


def input_bytes(*controls: float) -> bytes:
    return protocol.encode(protocol.Input(seq=1, ack_tick=-1, controls=controls))


@pytest.mark.parametrize(
    ("messages", "code"),
    [
        pytest.param([JOIN, "a text frame"], CloseCode.UNSUPPORTED_DATA, id="text-frame"),
        pytest.param(["a text frame"], CloseCode.UNSUPPORTED_DATA, id="text-before-join"),
        pytest.param([JOIN, b"\x93\x01"], CloseCode.INVALID_PAYLOAD, id="truncated-msgpack"),
        pytest.param(
            [protocol.encode(protocol.Ping(client_time=1))],
            CloseCode.POLICY_VIOLATION,
            id="ping-before-join",
        ),
        pytest.param([JOIN, JOIN], CloseCode.POLICY_VIOLATION, id="second-join"),
        pytest.param(
            [protocol.encode(protocol.Join(name="eve", match_id=99))],
            CloseCode.MATCH_NOT_FOUND,
            id="unknown-match",
        ),
        pytest.param([JOIN, input_bytes(1.5)], CloseCode.INVALID_INPUT, id="out-of-range"),
        pytest.param([JOIN, input_bytes(0.5, 0.5)], CloseCode.INVALID_INPUT, id="two-controls"),
        pytest.param([JOIN, input_bytes(math.nan)], CloseCode.INVALID_INPUT, id="nan"),
        pytest.param([JOIN, input_bytes(math.inf)], CloseCode.INVALID_INPUT, id="infinity"),
        pytest.param(
            [JOIN, msgpack.packb([MessageType.INPUT, 1, -1, "full"])],
            CloseCode.INVALID_INPUT,
            id="text-control",
        ),
    ],
)
async def test_bad_messages_close_the_connection_with_their_code(
    autojump_clock: trio.testing.MockClock, messages: list[bytes | str], code: CloseCode
) -> None:
    server = make_server()
    async with running(server) as edge:
        peer = await edge.connect(None)
        for message in messages:
            await peer.ws.send_message(message)
        close = await peer.wait_closed()
        await edge.served()

    assert close.code == code
    assert close.reason, "the close carries a reason"
    assert server.statistics().close_codes == {code: 1}
    assert server.arena.players == {}


async def test_an_oversized_message_closes_with_1009(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server()
    async with running(server) as edge:
        peer = await edge.connect("big")
        await peer.ws.send_message(bytes(server.config.max_message_bytes + 1))
        close = await peer.wait_closed()
        await edge.served()

    assert close.code == CloseCode.MESSAGE_TOO_BIG
    assert server.statistics().close_codes == {CloseCode.MESSAGE_TOO_BIG: 1}
    assert server.arena.players == {}


async def test_no_join_in_time_closes_with_4005(autojump_clock: trio.testing.MockClock) -> None:
    server = make_server(join_timeout_s=3.0)
    start = trio.current_time()
    async with running(server) as edge:
        peer = await edge.connect(None)
        close = await peer.wait_closed()
        closed_at = trio.current_time()

    assert close.code == CloseCode.JOIN_TIMEOUT
    assert closed_at == pytest.approx(start + 3.0, abs=TIME_TOLERANCE_S)


async def test_silence_after_join_closes_with_4004(autojump_clock: trio.testing.MockClock) -> None:
    server = make_server(idle_timeout_s=5.0)
    async with running(server) as edge:
        peer = await edge.connect("quiet")
        joined_at = trio.current_time()
        await trio.sleep(4.0)
        await peer.send(protocol.Ack(ack_tick=-1))  # any message restarts the idle timer
        acked_at = trio.current_time()
        close = await peer.wait_closed()
        closed_at = trio.current_time()
        await edge.served()

    assert close.code == CloseCode.IDLE_TIMEOUT
    assert acked_at == pytest.approx(joined_at + 4.0, abs=TIME_TOLERANCE_S)
    assert closed_at == pytest.approx(acked_at + 5.0, abs=TIME_TOLERANCE_S)
    assert server.statistics().matches_aborted == 1


# ---------------------------------------------------------------- handshake
async def test_handshake_without_the_subprotocol_is_rejected_with_400(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server()
    assert await handshake(server, subprotocols=()) == 400
    assert await handshake(server, subprotocols=("chat",)) == 400
    assert await handshake(server, subprotocols=("chat", SUBPROTOCOL)) == 101
    stats = server.statistics()
    assert (stats.connections_rejected, stats.connections_accepted) == (2, 1)


async def test_handshake_needs_the_configured_token(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server(auth_token="s3cret")
    assert await handshake(server) == 401
    assert await handshake(server, headers=[(b"Authorization", b"Bearer wrong")]) == 401
    assert await handshake(server, resource="/?token=wrong") == 401
    assert await handshake(server, headers=[(b"Authorization", b"Bearer s3cret")]) == 101
    assert await handshake(server, resource="/?token=s3cret") == 101
    stats = server.statistics()
    assert (stats.connections_rejected, stats.connections_accepted) == (3, 2)


# ---------------------------------------------------------------- slow clients
async def test_a_client_that_stops_reading_never_delays_others_and_gets_the_newest_frame(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server(lobby_timeout_s=30.0, slow_client_timeout_s=2.0)
    start = trio.current_time()
    async with running(server) as edge:
        fast = await edge.connect("fast")
        slow = await edge.connect("slow", lockstep=True)
        # Half a period off the tick grid, so every tick's sends have settled.
        await trio.sleep(0.5 + PERIOD_S / 2)
        slow.pause()
        paused_tick = server.arena.tick
        await trio.sleep(1.5)
        resumed_tick = server.arena.tick
        slow.resume()
        await trio.sleep(0.5)
        end_tick = server.arena.tick

    assert resumed_tick - paused_tick == 90
    fast_ticks = assert_one_frame_per_tick(fast, start)
    assert fast_ticks == list(range(1, end_tick + 1))
    slow_ticks = [frame.tick for _, frame in slow.frames()]
    assert slow_ticks == sorted(set(slow_ticks))
    # Before the stall and after it, one frame per tick; of the stall, only
    # the frames its buffers held, then the newest.
    gaps = [(a, b) for a, b in itertools.pairwise(slow_ticks) if b - a > 1]
    [(before, after)] = gaps
    # Held when it stopped: the frame its pending get_message takes, trio-websocket's
    # queue of one, the message its reader holds, and the send in flight.
    assert paused_tick < before <= paused_tick + 4
    assert after == resumed_tick
    assert slow_ticks[-1] == end_tick
    assert slow.close is None
    assert server.statistics().close_codes == {}


async def test_a_client_that_stops_reading_is_dropped_after_the_slow_client_timeout(
    autojump_clock: trio.testing.MockClock,
) -> None:
    timeout_s = 2.0
    server = make_server(lobby_timeout_s=30.0, slow_client_timeout_s=timeout_s)
    start = trio.current_time()
    async with running(server) as edge:
        fast = await edge.connect("fast")
        slow = await edge.connect("slow", lockstep=True)
        await trio.sleep(0.5 + PERIOD_S / 2)
        slow.pause()
        paused_at = trio.current_time()
        await fast.wait_until(lambda: fast.events(EventCode.PLAYER_LEFT))
        await trio.sleep(0.5)
        slow.resume()
        close = await slow.wait_closed()

    assert server.statistics().close_codes == {CloseCode.TOO_SLOW: 1}
    [left] = fast.events(EventCode.PLAYER_LEFT)
    assert slow.welcome is not None
    assert left.args == (slow.welcome.player_id,)
    # The writer's send blocks once the client's buffers are full, a few ticks
    # after it stopped reading; the client is dropped a timeout later.
    dropped_at = fast.arrival(left)
    assert paused_at + timeout_s <= dropped_at <= paused_at + timeout_s + 5 * PERIOD_S
    assert_one_frame_per_tick(fast, start)
    assert fast.frames()[-1][1].tick > left.tick + 20
    # Dropped without a closing handshake: a cancelled send leaves no room for one.
    assert close.code == 1006


# ---------------------------------------------------------------- shutdown
async def test_shutdown_closes_every_client_with_1001(
    autojump_clock: trio.testing.MockClock,
) -> None:
    server = make_server()
    async with running(server) as edge:
        peers = [await edge.connect(name) for name in ("ann", "ben", "cy")]
        edge.nursery.start_soon(drive, peers[0], 0.1)
        await peers[0].wait_until(lambda: peers[0].events(EventCode.START))
        with trio.fail_after(WAIT_S):
            await server.shutdown()
        closes = [await peer.wait_closed() for peer in peers]

    assert [(c.code, c.reason) for c in closes] == [
        (CloseCode.GOING_AWAY, "server shutting down")
    ] * 3
    stats = server.statistics()
    assert stats.connections == 0
    assert stats.close_codes == {CloseCode.GOING_AWAY: 3}


def test_the_serving_process_collects_garbage_rarely_and_not_its_start_up_objects() -> None:
    import gc

    from gameserver.server import GC_YOUNG_THRESHOLD, tune_garbage_collector

    before = gc.get_threshold()
    try:
        tune_garbage_collector()
        assert gc.get_threshold()[0] == GC_YOUNG_THRESHOLD
        assert gc.get_freeze_count() > 0
    finally:
        gc.unfreeze()
        gc.set_threshold(*before)
