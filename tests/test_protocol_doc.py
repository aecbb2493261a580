"""docs/protocol.md stays true: its tables and hex examples are checked against the code."""

from __future__ import annotations

import re
from enum import IntEnum
from pathlib import Path

import numpy as np
import pytest

from gameserver import protocol
from gameserver.codes import SUBPROTOCOL, CloseCode, EventCode, MessageType
from gameserver.race import RaceGame
from gameserver.sync import checksum, decode_delta_cells, decode_snapshot_cells

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text()


def table_rows(first_header: str) -> dict[str, int]:
    """``NAME -> code`` from the markdown table whose header starts with ``first_header``."""
    lines = DOC.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header} |"))
    rows = {}
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        cells = [c.strip() for c in line.strip("|").split("|")]
        rows[cells[0]] = int(cells[1])
    return rows


@pytest.mark.parametrize(
    ("header", "enum"), [("name", MessageType), ("event", EventCode), ("close", CloseCode)]
)
def test_every_code_is_documented_with_its_number(header: str, enum: type[IntEnum]) -> None:
    assert table_rows(header) == {member.name: member.value for member in enum}


def test_the_race_event_kinds_match_the_schema() -> None:
    documented = table_rows("race event")
    schema = RaceGame().schema
    assert documented == {k.name: k.code for k in schema.event_kinds}


def test_the_race_fields_match_the_schema() -> None:
    documented = re.findall(r"^\| `(\w+)`(?:, `(\w+)`)? \| (\d+) \|", DOC, re.MULTILINE)
    names = [n for first, second, _ in documented for n in (first, second) if n]
    assert names == [f.name for f in RaceGame().schema.fields]


def test_the_subprotocol_is_the_one_the_server_speaks() -> None:
    assert f"**`{SUBPROTOCOL}`**" in DOC


def hex_examples() -> list[bytes]:
    blocks = re.findall(r"```hex\n(.*?)```", DOC, re.DOTALL)
    return [bytes.fromhex(block) for block in blocks]


def test_every_hex_example_decodes_to_a_message_of_its_section() -> None:
    examples = hex_examples()
    assert len(examples) >= 13
    seen = set()
    for data in examples:
        kind = data[1]
        if kind < 16:
            message: protocol.Message = protocol.decode_client_message(data)
        else:
            message = protocol.decode_server_message(data)
        assert protocol.encode(message) == data, "examples are in the canonical encoding"
        seen.add(MessageType(kind))
    assert seen == set(MessageType)


def test_the_worked_delta_example_rebuilds_the_state_it_claims() -> None:
    examples = [protocol.decode_server_message(d) for d in hex_examples() if d[1] >= 16]
    snapshot = next(m for m in examples if isinstance(m, protocol.Snapshot))
    delta = next(m for m in examples if isinstance(m, protocol.Delta))
    baseline = decode_snapshot_cells(snapshot.values, (2, 3))
    assert baseline.tolist() == [[1000, -500, 314], [0, 0, 1]]
    assert checksum(baseline) == snapshot.checksum
    state = decode_delta_cells(baseline, delta.mask, delta.values)
    assert state.tolist() == [[1050, -500, 320], [0, 0, 1]]
    assert checksum(state) == delta.checksum == 0xD4AB1CBC
    assert np.array_equal(state, np.array([[1050, -500, 320], [0, 0, 1]], dtype=np.int32))
