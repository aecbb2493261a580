"""The server's tick loop without sockets: the real arena stepped on a virtual clock.

The arena is pure (it reads no clock and does no I/O): the Trio server calls
:meth:`~gameserver.match.Arena.step` once per tick and carries out the
outputs. :class:`HeadlessServer` does the same in a plain loop, as fast as the
CPU allows, and gives every player a :class:`HeadlessClient` in place of a
WebSocket. A headless client does with the bytes what a network client does:
it decodes every message with :func:`~gameserver.protocol.decode_server_message`,
rebuilds the match state in a :class:`~gameserver.sync.Mirror` (so every
frame's checksum is verified), acknowledges what it holds and sends inputs
encoded with :func:`~gameserver.protocol.encode`. Only the socket is missing,
so the frames counted are, byte for byte, the ones the server would have sent.

The network is a fixed round trip of ``round_trip_ticks``: the client reads a
message in the tick the arena emits it, and what it sends back reaches the
arena in time for the step ``round_trip_ticks`` later. An acknowledgement of
tick T is therefore first used as a baseline by the frame of tick
``T + round_trip_ticks``, as ``benchmarks.bandwidth --ack-delay`` models it,
and an input computed from the state of tick T first moves the car in the
step to that tick.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from gameserver import protocol
from gameserver.codes import EventCode
from gameserver.errors import DesyncError, ProtocolError
from gameserver.match import Arena, Close, Frames, MatchEnded, Output, Send
from gameserver.sync import Mirror

#: Bytes a client adds to each message it sends besides the header: the mask key.
CLIENT_MASK_BYTES = 4


def ws_header_bytes(payload: int) -> int:
    """The header of an unmasked (server-to-client) WebSocket frame carrying ``payload`` bytes.

    RFC 6455: 2 bytes up to 125 bytes of payload, 4 up to 65535, else 10.
    """
    return 2 if payload < 126 else 4 if payload < 65536 else 10


@dataclass(slots=True)
class ClientFigures:
    """What one client received and sent. Byte counts are message payloads
    (no WebSocket header) unless the name says ``wire``."""

    frames: int = 0
    snapshots: int = 0
    deltas: int = 0
    frame_bytes: int = 0
    frame_wire_bytes: int = 0
    #: Frames of the race itself, from the START event to the END event.
    racing_frames: int = 0
    racing_frame_bytes: int = 0
    racing_frame_wire_bytes: int = 0
    #: Must-arrive messages: WELCOME, EVENTs, RESULTS.
    messages: int = 0
    message_bytes: int = 0
    #: INPUTs and ACKs the client sent (the wire adds a header and a mask key).
    sent_messages: int = 0
    sent_bytes: int = 0
    sent_wire_bytes: int = 0
    inputs: int = 0
    desyncs: int = 0


class HeadlessClient:
    """One player's side of the protocol, fed by :class:`HeadlessServer` instead of a socket."""

    def __init__(self, player_id: int, *, joined_tick: int, round_trip_ticks: int) -> None:
        self.player_id = player_id
        self.joined_tick = joined_tick
        self.closed_tick = -1
        self.close_code: int | None = None
        self.welcome: protocol.Welcome | None = None
        self.mirror: Mirror | None = None
        self.events: list[protocol.Event] = []
        self.results: protocol.Results | None = None
        #: Between the START and END events: the race is on.
        self.racing = False
        self.figures = ClientFigures()
        self._round_trip_ticks = round_trip_ticks
        self._outbox: deque[tuple[int, bytes]] = deque()  # (arrival tick, message)
        self._seq = 0
        self._ack_due = False

    @property
    def closed(self) -> bool:
        return self.closed_tick >= 0

    @property
    def slot(self) -> int:
        if self.welcome is None:
            raise RuntimeError("no WELCOME yet")
        return self.welcome.slot

    @property
    def tick(self) -> int:
        """Tick of the newest state held (-1 before the first frame)."""
        return -1 if self.mirror is None else self.mirror.tick

    @property
    def late_frames(self) -> int:
        return 0 if self.mirror is None else self.mirror.late_frames

    @property
    def missing_baselines(self) -> int:
        return 0 if self.mirror is None else self.mirror.missing_baselines

    # ------------------------------------------------------------ receiving
    def receive(self, data: bytes) -> None:
        """One message from the server, as the client's socket would have read it."""
        message = protocol.decode_server_message(data)
        if isinstance(message, protocol.Snapshot | protocol.Delta):
            self._frame(message, len(data))
            return
        figures = self.figures
        figures.messages += 1
        figures.message_bytes += len(data)
        if isinstance(message, protocol.Welcome):
            self.welcome = message
            self.mirror = Mirror.for_schema(message.schema)
        elif isinstance(message, protocol.Event):
            self.events.append(message)
            if message.kind == EventCode.START:
                self.racing = True
            elif message.kind in (EventCode.END, EventCode.ABORTED):
                self.racing = False
        elif isinstance(message, protocol.Results):
            self.results = message

    def _frame(self, frame: protocol.Snapshot | protocol.Delta, size: int) -> None:
        mirror = self.mirror
        if mirror is None:
            raise ProtocolError("a state frame before the WELCOME")
        figures = self.figures
        wire = size + ws_header_bytes(size)
        figures.frames += 1
        figures.frame_bytes += size
        figures.frame_wire_bytes += wire
        if isinstance(frame, protocol.Snapshot):
            figures.snapshots += 1
        else:
            figures.deltas += 1
        if self.racing:
            figures.racing_frames += 1
            figures.racing_frame_bytes += size
            figures.racing_frame_wire_bytes += wire
        try:
            newest = mirror.apply(frame)
        except DesyncError:
            figures.desyncs += 1
            mirror.reset()  # acknowledging -1 asks the server for a snapshot
            self._ack_due = True
            return
        if newest:
            self._ack_due = True

    def close(self, code: int, tick: int) -> None:
        """The server closed the connection: nothing more is sent or received."""
        self.closed_tick = tick
        self.close_code = code
        self._outbox.clear()
        self._ack_due = False

    # ------------------------------------------------------------ sending
    def send_input(self, controls: tuple[float, ...], tick: int) -> None:
        """Controls for the car; the INPUT also acknowledges the newest state held."""
        self._seq += 1
        self._send(protocol.Input(seq=self._seq, ack_tick=self.tick, controls=controls), tick)
        self.figures.inputs += 1
        self._ack_due = False

    def flush(self, tick: int) -> None:
        """End of the client's tick: acknowledge a new state that no INPUT carried."""
        if self._ack_due:
            self._send(protocol.Ack(ack_tick=self.tick), tick)
            self._ack_due = False

    def _send(self, message: protocol.ClientMessage, tick: int) -> None:
        if self.closed:
            return
        data = protocol.encode(message)
        figures = self.figures
        figures.sent_messages += 1
        figures.sent_bytes += len(data)
        figures.sent_wire_bytes += len(data) + ws_header_bytes(len(data)) + CLIENT_MASK_BYTES
        self._outbox.append((tick + self._round_trip_ticks, data))

    def deliver(self, arena: Arena, before_tick: int) -> None:
        """Hand the arena what has arrived by the step to ``before_tick``, as the edge would."""
        outbox = self._outbox
        while outbox and outbox[0][0] <= before_tick:
            message = protocol.decode_client_message(outbox.popleft()[1])
            if isinstance(message, protocol.Input):
                arena.handle_input(self.player_id, message)
            elif isinstance(message, protocol.Ack):
                arena.acknowledge(self.player_id, message.ack_tick)


class HeadlessServer:
    """An :class:`~gameserver.match.Arena` and its :class:`HeadlessClient` s on a virtual clock."""

    def __init__(self, arena: Arena, *, round_trip_ticks: int) -> None:
        if round_trip_ticks < 1:
            raise ValueError(f"round_trip_ticks must be at least 1, got {round_trip_ticks}")
        self.arena = arena
        self.round_trip_ticks = round_trip_ticks
        #: Connected clients by player id; a closed client is dropped from here.
        self.clients: dict[int, HeadlessClient] = {}

    @property
    def tick(self) -> int:
        return self.arena.tick

    def join(self, name: str, match_id: int | None = None) -> HeadlessClient:
        """A client joins, as a JOIN on a new connection would; raises ``JoinError``."""
        player, outputs = self.arena.join(name, match_id)
        client = HeadlessClient(
            player.player_id, joined_tick=self.arena.tick, round_trip_ticks=self.round_trip_ticks
        )
        self.clients[player.player_id] = client
        self._carry_out(outputs)
        return client

    def step(self) -> list[MatchEnded]:
        """One tick: clients' messages that have arrived, the arena's step, its outputs.

        Returns the matches that ended in this tick; their clients have
        received the results and been closed.
        """
        arena = self.arena
        arrival = arena.tick + 1
        for client in self.clients.values():
            client.deliver(arena, arrival)
        return self._carry_out(arena.step())

    def flush(self) -> None:
        """Every client's end of tick (after the caller sent this tick's inputs)."""
        tick = self.arena.tick
        for client in self.clients.values():
            client.flush(tick)

    def _carry_out(self, outputs: Iterable[Output]) -> list[MatchEnded]:
        clients = self.clients
        ended: list[MatchEnded] = []
        for output in outputs:
            if isinstance(output, Frames):
                for player_id, data in zip(output.player_ids, output.data, strict=True):
                    clients[player_id].receive(data)
            elif isinstance(output, Send):
                clients[output.player_id].receive(output.data)
            elif isinstance(output, Close):
                client = clients.pop(output.player_id, None)
                if client is not None:
                    client.close(int(output.code), self.arena.tick)
            elif isinstance(output, MatchEnded):
                # The server stores the results first; nothing to store here.
                ended.append(output)
                self._carry_out(output.deliveries)
        return ended
