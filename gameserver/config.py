"""Server configuration: one frozen dataclass, layered defaults < TOML < environment < flags.

Every value is validated in one place, with a message that names the key, so a
typo in a deployment fails at start-up rather than mid-match.
"""

from __future__ import annotations

import dataclasses
import math
import os
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from .errors import ConfigError

ENV_PREFIX = "GAMESERVER_"
TRANSPORTS = ("socket", "trio-websocket")


@dataclass(frozen=True, slots=True, kw_only=True)
class ServerConfig:
    """Everything an operator can set. Units are in the names."""

    host: str = "127.0.0.1"
    port: int = 8765
    tick_rate_hz: int = 60
    send_rate_hz: int = 60
    #: Seconds a lobby waits for players before the match starts with who is there.
    lobby_timeout_s: float = 10.0
    countdown_s: float = 3.0
    #: Humans needed for a lobby to start when it times out.
    min_players: int = 1
    #: Fill empty grid slots with server-driven cars when the lobby closes.
    fill_with_ai: bool = True
    track: str = "oval"
    laps: int = 3
    #: Base of every match's seed; None draws one at start-up.
    seed: int | None = None
    join_timeout_s: float = 10.0
    idle_timeout_s: float = 30.0
    #: A client whose socket accepts nothing for this long is closed (code 4003).
    slow_client_timeout_s: float = 5.0
    #: Must-arrive messages queued for one client before it is closed as too slow.
    max_queued_messages: int = 1024
    max_players: int = 4096
    max_message_bytes: int = 1024
    history_ticks: int = 32
    #: When set, clients must present it (``?token=`` or ``Authorization: Bearer``).
    auth_token: str | None = None
    #: Seconds a shutting-down server waits for running matches to finish.
    drain_timeout_s: float = 0.0
    #: Port of the HTTP status endpoint (/stats, /metrics, /healthz); None: off.
    status_port: int | None = None
    #: Where results and replays are kept: a SQLite file, or a ``postgresql://``
    #: URL (needs the ``postgres`` extra); None or "" keeps nothing.
    database: str | None = "gameserver.sqlite3"
    #: The WebSocket edge: "socket" (non-blocking writes from the tick loop, one
    #: reader for all clients) or "trio-websocket" (a reader and a writer task per
    #: client; slower, kept for comparison).
    transport: str = "socket"
    #: SO_SNDBUF of each client socket: small, so a client that stops reading
    #: blocks a write (and is timed out) soon instead of after megabytes.
    send_buffer_bytes: int = 16384
    #: A path on which the socket edge echoes every message (protocol
    #: conformance testing, e.g. "/echo"); None: off.
    echo_path: str | None = None

    def __post_init__(self) -> None:
        def positive(name: str) -> None:
            value = getattr(self, name)
            if not (isinstance(value, int | float) and math.isfinite(value) and value > 0):
                raise ConfigError(f"{name} must be a positive number, got {value!r}")

        for name in (
            "tick_rate_hz",
            "send_rate_hz",
            "join_timeout_s",
            "idle_timeout_s",
            "slow_client_timeout_s",
            "max_queued_messages",
            "max_players",
            "max_message_bytes",
            "laps",
            "min_players",
        ):
            positive(name)
        for name in ("lobby_timeout_s", "countdown_s", "drain_timeout_s"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{name} must be >= 0, got {value!r}")
        if self.tick_rate_hz > 1000:
            raise ConfigError(f"tick_rate_hz must be at most 1000, got {self.tick_rate_hz}")
        if self.send_rate_hz > self.tick_rate_hz:
            raise ConfigError(
                f"send_rate_hz ({self.send_rate_hz}) must not exceed tick_rate_hz "
                f"({self.tick_rate_hz})"
            )
        for name in ("port", "status_port"):
            value = getattr(self, name)
            if value is not None and not 0 <= value <= 65535:
                raise ConfigError(f"{name} must be in 0..65535, got {value}")
        if self.transport not in TRANSPORTS:
            raise ConfigError(
                f"transport must be one of {', '.join(TRANSPORTS)}, got {self.transport!r}"
            )
        if self.send_buffer_bytes < 0:
            raise ConfigError(f"send_buffer_bytes must be >= 0, got {self.send_buffer_bytes}")
        if self.history_ticks < 2:
            raise ConfigError(f"history_ticks must be at least 2, got {self.history_ticks}")

    @property
    def tick_s(self) -> float:
        return 1.0 / self.tick_rate_hz

    def ticks(self, seconds: float) -> int:
        """A duration in whole ticks (at least 1 for a positive duration)."""
        if seconds <= 0:
            return 0
        return max(1, round(seconds * self.tick_rate_hz))

    def replace(self, **changes: Any) -> ServerConfig:
        return dataclasses.replace(self, **changes)


def _coerce(name: str, kind: Any, raw: Any) -> Any:
    """Turn a TOML or environment value into the field's type, naming the key on failure."""
    text = isinstance(raw, str)
    try:
        if kind in ("bool",):
            if text:
                lowered = raw.strip().lower()
                if lowered in ("1", "true", "yes", "on"):
                    return True
                if lowered in ("0", "false", "no", "off"):
                    return False
                raise ValueError(raw)
            if isinstance(raw, bool):
                return raw
            raise ValueError(raw)
        if kind in ("int", "int | None"):
            if kind == "int | None" and (raw is None or (text and raw.strip() == "")):
                return None
            if isinstance(raw, bool | float):
                raise ValueError(raw)
            return int(raw)
        if kind == "float":
            if isinstance(raw, bool):
                raise ValueError(raw)
            return float(raw)
        if kind in ("str", "str | None"):
            if kind == "str | None" and raw is None:
                return None
            if not isinstance(raw, str):
                raise ValueError(raw)
            return raw
    except (TypeError, ValueError):
        raise ConfigError(f"{name}: cannot use {raw!r} as {kind}") from None
    raise ConfigError(f"{name}: unsupported type {kind}")


def load_config(
    *,
    toml_path: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    overrides: Mapping[str, Any] | None = None,
) -> ServerConfig:
    """Build the config: defaults, then a TOML file, then ``GAMESERVER_*`` variables, then flags.

    Unknown keys in the TOML file or the environment are errors (they are
    almost always typos).
    """
    kinds = {f.name: f.type for f in fields(ServerConfig)}
    values: dict[str, Any] = {}
    if toml_path is not None:
        try:
            with open(toml_path, "rb") as file:
                data = tomllib.load(file)
        except OSError as exc:
            raise ConfigError(f"config file {toml_path}: {exc.strerror}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"config file {toml_path}: {exc}") from None
        section = data.get("server", data)
        for key, raw in section.items():
            if key not in kinds:
                raise ConfigError(f"config file {toml_path}: unknown key {key!r}")
            values[key] = _coerce(key, kinds[key], raw)
    env = os.environ if environ is None else environ
    for var, raw in env.items():
        if not var.startswith(ENV_PREFIX):
            continue
        key = var[len(ENV_PREFIX) :].lower()
        if key not in kinds:
            raise ConfigError(f"environment variable {var}: unknown key {key!r}")
        values[key] = _coerce(var, kinds[key], raw)
    for key, raw in (overrides or {}).items():
        if raw is None and key not in ("seed", "auth_token", "database", "echo_path"):
            continue
        if key not in kinds:
            raise ConfigError(f"unknown setting {key!r}")
        values[key] = raw if not isinstance(raw, str) else _coerce(key, kinds[key], raw)
    return ServerConfig(**values)
