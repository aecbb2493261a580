"""The numeric codes of wire protocol v1: message types, event kinds, close codes.

They live apart from the codec so that exceptions can carry close codes
without import cycles. Every member is documented in docs/protocol.md, and a
test checks the document's tables against these enums.
"""

from __future__ import annotations

from enum import IntEnum

#: WebSocket subprotocol that names this version of the protocol.
SUBPROTOCOL = "gameserver.v1"
#: Protocol version number carried in the welcome.
PROTOCOL_VERSION = 1


class MessageType(IntEnum):
    """First element of every message array."""

    # client -> server
    JOIN = 1  # ask for a seat: quick join or a given match
    INPUT = 2  # controls for the next tick, plus the newest state tick held
    ACK = 3  # the newest state tick held, without new controls
    PING = 4  # round-trip probe, answered by PONG
    LEAVE = 5  # leave the match; the server closes with 1000
    # server -> client
    WELCOME = 16  # seat granted: ids, rates, game schema, match description
    SNAPSHOT = 17  # full quantised state of the match at a tick
    DELTA = 18  # quantised state at a tick, as changes from an acked tick
    EVENT = 19  # something happened: lobby, countdown, lap, finish...
    RESULTS = 20  # final results of the match, sent to every player
    PONG = 21  # answer to PING, echoing its timestamp


class EventCode(IntEnum):
    """Event kinds of the match lifecycle; codes 16..127 belong to the game."""

    PLAYER_JOINED = 1  # slot, args: player_id, name, is_ai
    PLAYER_LEFT = 2  # slot, args: player_id
    LOBBY = 3  # slot -1, args: tick at which the lobby closes
    COUNTDOWN = 4  # slot -1, args: tick at which the match starts
    START = 5  # slot -1, the match is running from this tick
    END = 6  # slot -1, the match is over; RESULTS follows
    ABORTED = 7  # slot -1, the match was abandoned; no results follow


class CloseCode(IntEnum):
    """WebSocket close codes the server uses (1000-1011 are RFC 6455's)."""

    NORMAL = 1000  # match over and results delivered, or the client left
    GOING_AWAY = 1001  # the server is shutting down
    PROTOCOL_ERROR = 1002  # a frame or message that breaks the protocol
    UNSUPPORTED_DATA = 1003  # a text frame: the protocol is binary only
    INVALID_PAYLOAD = 1007  # a binary message that is not a valid message
    POLICY_VIOLATION = 1008  # e.g. a message before JOIN, or a second JOIN
    MESSAGE_TOO_BIG = 1009  # a message larger than max_message_bytes
    INTERNAL_ERROR = 1011  # the server failed; a bug, logged on the server
    MATCH_FULL = 4000  # the requested match has no free seat
    MATCH_NOT_FOUND = 4001  # no open match with that id
    INVALID_INPUT = 4002  # controls out of range, NaN or of the wrong type
    TOO_SLOW = 4003  # the client did not read its frames in time
    IDLE_TIMEOUT = 4004  # nothing received for idle_timeout_s
    JOIN_TIMEOUT = 4005  # no JOIN within join_timeout_s of connecting
    MATCH_STARTED = 4006  # the requested match is no longer in its lobby
    MATCH_ABORTED = 4007  # the match was abandoned (e.g. every player left)
    SERVER_FULL = 4008  # the server holds as many players as it may
