"""Configuration: defaults < TOML < environment < flags, validated with the key's name."""

from __future__ import annotations

from pathlib import Path

import pytest

from gameserver.config import ServerConfig, load_config
from gameserver.errors import ConfigError


def test_defaults_are_a_60_hz_server() -> None:
    config = load_config(environ={})
    assert config == ServerConfig()
    assert config.tick_rate_hz == 60
    assert config.ticks(10.0) == 600


def test_layers_override_in_order(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text(
        '[server]\nport = 9000\ntick_rate_hz = 30\nsend_rate_hz = 30\ntrack = "twisty"\n'
    )
    config = load_config(
        toml_path=toml,
        environ={"GAMESERVER_PORT": "9100", "GAMESERVER_FILL_WITH_AI": "false", "HOME": "/"},
        overrides={"port": 9200, "laps": None},
    )
    assert config.port == 9200
    assert config.tick_rate_hz == 30
    assert config.track == "twisty"
    assert config.fill_with_ai is False
    assert config.laps == ServerConfig().laps


@pytest.mark.parametrize(
    ("environ", "message"),
    [
        ({"GAMESERVER_TICK_RATE_HZ": "fast"}, "GAMESERVER_TICK_RATE_HZ"),
        ({"GAMESERVER_TICK_RATE_HZ": "0"}, "tick_rate_hz"),
        ({"GAMESERVER_PORTT": "1"}, "portt"),
        ({"GAMESERVER_SEND_RATE_HZ": "120"}, "send_rate_hz"),
        ({"GAMESERVER_LOBBY_TIMEOUT_S": "nan"}, "lobby_timeout_s"),
        ({"GAMESERVER_FILL_WITH_AI": "maybe"}, "GAMESERVER_FILL_WITH_AI"),
    ],
)
def test_bad_values_name_their_key(environ: dict[str, str], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_config(environ=environ)


def test_unknown_toml_keys_and_missing_files_are_errors(tmp_path: Path) -> None:
    toml = tmp_path / "server.toml"
    toml.write_text("[server]\ntick_rte_hz = 30\n")
    with pytest.raises(ConfigError, match="tick_rte_hz"):
        load_config(toml_path=toml, environ={})
    with pytest.raises(ConfigError, match=r"missing\.toml"):
        load_config(toml_path=tmp_path / "missing.toml", environ={})


def test_seed_and_token_may_be_unset_from_the_environment() -> None:
    config = load_config(environ={"GAMESERVER_SEED": "", "GAMESERVER_AUTH_TOKEN": "s3cret"})
    assert config.seed is None
    assert config.auth_token == "s3cret"
