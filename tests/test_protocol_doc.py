"""docs/protocol.md stays true: its tables, defaults and hex examples are checked against code."""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path

import numpy as np
import pytest

from gameserver import protocol
from gameserver.codes import PROTOCOL_VERSION, SUBPROTOCOL, CloseCode, EventCode, MessageType
from gameserver.config import ServerConfig
from gameserver.race import RaceGame
from gameserver.sync import (
    DEFAULT_HISTORY_TICKS,
    DEFAULT_MIRROR_TICKS,
    checksum,
    decode_delta_cells,
    decode_snapshot_cells,
    predict,
)

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()
LINES = DOC.splitlines()


def table(first_header: str) -> list[list[str]]:
    """The body rows (stripped cells) of the one table whose header starts ``first_header``."""
    starts = [i for i, line in enumerate(LINES) if line.startswith(f"| {first_header} |")]
    assert len(starts) == 1, f"expected one table headed {first_header!r}, found {len(starts)}"
    rows = []
    for line in LINES[starts[0] + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows


def ticked(cell: str) -> list[str]:
    """The `backticked` names in a table cell."""
    return re.findall(r"`([^`]+)`", cell)


@pytest.mark.parametrize(
    ("header", "enum"), [("name", MessageType), ("event", EventCode), ("close", CloseCode)]
)
def test_every_code_is_in_its_table_with_its_number_and_nothing_else(
    header: str, enum: type[IntEnum]
) -> None:
    rows = [(row[0], int(row[1])) for row in table(header)]
    assert rows == [(member.name, member.value) for member in enum]


def test_the_message_table_gives_each_message_its_code_first() -> None:
    for name, code, _, elements in table("name"):
        assert elements.startswith(f"`[{code}"), name


def test_the_subprotocol_is_the_one_the_server_speaks() -> None:
    named = set(re.findall(r"gameserver\.v\d+", DOC)) - {"gameserver.v2"}  # v2: the example
    assert named == {SUBPROTOCOL}
    assert f"Sec-WebSocket-Protocol: {SUBPROTOCOL}" in DOC
    assert DOC.startswith(f"# Wire protocol v{PROTOCOL_VERSION}\n")


def test_documented_defaults_are_the_configuration_defaults() -> None:
    documented = re.findall(r"`(\w+)`\s+\(default\s+([\d.]+)", DOC)
    assert len(documented) >= 10
    defaults = ServerConfig()
    for key, value in documented:
        assert float(value) == getattr(defaults, key), key


def test_documented_limits_are_the_codec_and_sync_limits() -> None:
    assert f"at most **{protocol.MAX_CLIENT_MESSAGE_BYTES} bytes**" in DOC
    assert f"1..{protocol.MAX_NAME_CHARS} characters" in DOC
    assert f"`history_ticks` (default {DEFAULT_HISTORY_TICKS})" in DOC
    assert f"last {DEFAULT_MIRROR_TICKS} states" in DOC


# ------------------------------------------------------------------ the race's schema
def test_the_race_fields_are_the_schema_fields() -> None:
    rows = [
        (ticked(name), float(scale), unit, moving == "yes")
        for name, scale, unit, moving, _ in table("field")
    ]
    fields = RaceGame().schema.fields
    assert rows == [([f.name], f.scale, f.unit, f.extrapolate) for f in fields]


def test_the_race_controls_are_the_schema_controls() -> None:
    rows = [(ticked(name), float(low), float(high)) for name, low, high, _ in table("control")]
    controls = RaceGame().schema.controls
    assert rows == [([c.name], c.low, c.high) for c in controls]


def test_the_race_event_kinds_are_the_schema_event_kinds() -> None:
    rows = [(name, int(code), ticked(args)) for name, code, _, args in table("race event")]
    kinds = RaceGame().schema.event_kinds
    assert rows == [(k.name, k.code, list(k.args)) for k in kinds]


def test_lifecycle_events_about_the_whole_match_have_slot_minus_one() -> None:
    slots = {row[0]: row[2] for row in table("event")}
    assert slots[EventCode.PLAYER_JOINED.name] == "the seat"
    assert all(slots[e.name] == "-1" for e in EventCode if e >= EventCode.LOBBY)


def race_results_entry() -> dict[str, object]:
    """A results entry as the server sends it: the race's keys plus the match layer's."""
    game = RaceGame()
    game.create(0, seed=1, options={"track": "sprint", "laps": 1})
    game.join(0, 0, ai=False)
    return {**game.results(0)[0], "player_id": 1, "name": "alice"}


def keyed_table_after(heading: str) -> dict[str, str]:
    """``key -> meaning`` of the first ``| key |`` table after ``heading``."""
    start = LINES.index(heading)
    header = next(i for i in range(start, len(LINES)) if LINES[i].startswith("| key |"))
    rows = {}
    for line in LINES[header + 2 :]:
        if not line.startswith("|"):
            break
        key, _, meaning = (cell.strip() for cell in line.strip().strip("|").split("|"))
        rows[ticked(key)[0]] = meaning
    return rows


def test_results_keys_are_the_keys_of_a_race_result() -> None:
    documented = keyed_table_after("### RESULTS (20)")
    entry = race_results_entry()
    assert set(documented) == set(entry)
    for key, value in entry.items():
        if isinstance(value, dict):
            assert set(value) <= set(ticked(documented[key])), key


def test_schema_keys_are_the_keys_of_the_wire_schema() -> None:
    documented = keyed_table_after("`schema` keys (`GameSchema.to_wire`):")
    assert list(documented) == list(RaceGame().schema.to_wire())


def test_match_keys_are_the_keys_of_the_race_description() -> None:
    documented = keyed_table_after("`match` keys for the race:")
    game = RaceGame()
    description = game.create(0, seed=1, options={"track": "sprint"})
    assert set(documented) == {*description, "options"}
    assert set(description["track"]) <= set(ticked(documented["track"]))


# ------------------------------------------------------------------ hex examples
def hex_examples() -> list[tuple[str, bytes]]:
    """``(section heading, bytes)`` of every ```hex block, in document order."""
    examples = []
    heading = ""
    block: list[str] | None = None
    for line in LINES:
        if block is not None:
            if line.startswith("```"):
                examples.append((heading, bytes.fromhex(" ".join(block))))
                block = None
            else:
                block.append(line)
        elif line.startswith("```hex"):
            block = []
        elif line.startswith("### "):
            heading = line
    return examples


def decode(data: bytes) -> protocol.Message:
    kind = protocol.peek_type(data)
    assert kind is not None
    if MessageType(kind) < MessageType.WELCOME:
        return protocol.decode_client_message(data)
    return protocol.decode_server_message(data)


@pytest.mark.parametrize(("heading", "data"), hex_examples())
def test_every_hex_example_is_a_message_of_its_section(heading: str, data: bytes) -> None:
    message = decode(data)
    kind = MessageType(data[1])
    assert heading.startswith(f"### {kind.name} ({kind.value})")
    assert protocol.encode(message) == data, "examples are in the encoding the code produces"


def test_every_message_type_has_a_hex_example() -> None:
    assert {MessageType(data[1]) for _, data in hex_examples()} == set(MessageType)


def example(kind: type[protocol.Message]) -> protocol.Message:
    return next(m for m in map(decode, (d for _, d in hex_examples())) if isinstance(m, kind))


def test_the_welcome_example_carries_the_race_schema() -> None:
    welcome = example(protocol.Welcome)
    assert isinstance(welcome, protocol.Welcome)
    assert welcome.version == PROTOCOL_VERSION
    assert welcome.schema == RaceGame().schema.to_wire()
    keys = keyed_table_after("`match` keys for the race:")
    assert set(welcome.match) == set(keys)


def test_the_results_example_has_the_keys_of_a_race_result() -> None:
    results = example(protocol.Results)
    assert isinstance(results, protocol.Results)
    entry = race_results_entry()
    for sent in results.results:
        assert set(sent) == set(entry)
        assert {k: set(v) for k, v in sent.items() if isinstance(v, dict)} == {
            k: set(v) for k, v in entry.items() if isinstance(v, dict)
        }


def test_the_worked_delta_example_rebuilds_the_state_it_claims() -> None:
    snapshot = example(protocol.Snapshot)
    delta = example(protocol.Delta)
    assert isinstance(snapshot, protocol.Snapshot)
    assert isinstance(delta, protocol.Delta)
    assert delta.baseline_tick == snapshot.tick
    assert delta.reference_tick == -1
    baseline = decode_snapshot_cells(snapshot.values, (2, 3))
    assert checksum(baseline) == snapshot.checksum
    state = decode_delta_cells(baseline, delta.cells[:1], delta.cells[1:])
    assert checksum(state) == delta.checksum
    for claim in (f"`{baseline.tolist()}`", f"`{state.tolist()}`"):
        assert claim in DOC
    assert f"`{delta.checksum:#010x}`" in DOC
    assert f"`{snapshot.checksum:#010x}`" in DOC
    little_endian = " ".join(f"{b:02x}" for b in state.astype("<i4").tobytes())
    assert f"`{little_endian}`" in DOC.replace("\n", " ")


def test_the_worked_extrapolation_gives_the_prediction_it_claims() -> None:
    baseline = np.array([[1050, -500, 320], [0, -1000, 1]], dtype=np.int32)
    reference = np.array([[1000, -500, 314], [0, 0, 1]], dtype=np.int32)
    for claim in (baseline, reference):
        assert f"`{claim.tolist()}`" in DOC
    predicted = predict(baseline, reference, 2, 3, np.array([True, True, False]))
    assert f"`{predicted.tolist()}`" in DOC
