"""Exceptions of the gameserver package.

Every error a peer can cause carries the WebSocket close code and the reason
to answer with, so the edge that caught it closes exactly that connection
with the right code and nothing else is disturbed.
"""

from __future__ import annotations

from .codes import CloseCode


class GameServerError(Exception):
    """Base class of every exception this package raises on purpose."""


class PeerError(GameServerError):
    """Something a peer sent or asked for is not acceptable.

    ``close_code`` and ``reason`` are what the connection is closed with.
    """

    default_code: CloseCode = CloseCode.PROTOCOL_ERROR

    def __init__(self, reason: str, close_code: CloseCode | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.close_code = close_code if close_code is not None else self.default_code


class ProtocolError(PeerError):
    """Bytes that do not form a valid message of the protocol."""

    default_code = CloseCode.INVALID_PAYLOAD


class InvalidInput(PeerError):
    """A well-formed input message whose values are out of range."""

    default_code = CloseCode.INVALID_INPUT


class JoinError(PeerError):
    """A join that cannot be granted (match full, unknown, already started...)."""

    default_code = CloseCode.MATCH_NOT_FOUND


class ConfigError(GameServerError, ValueError):
    """A configuration value is invalid; the message names the key."""


class DesyncError(GameServerError):
    """A client's mirror does not reproduce the server's checksum."""
