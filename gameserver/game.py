"""The contract between the match layer and a game.

The match, tick and sync layers know nothing about racing: a game plugs in by
implementing :class:`Game`. One ``Game`` instance holds *every* match of the
process as rows of numpy columns (shape ``rows x slots``), so a tick steps,
quantises and diffs all matches with a handful of numpy calls; per-match Python
runs only on events (join, leave, start, lap, finish, end).

The interface follows the handful of lifecycle hooks game authors know from
Nakama and Colyseus (create, join, leave, tick, end), with two differences that
make replays exact: time advances only in whole ticks of a fixed length, and
every random choice comes from the seed given to :meth:`Game.create`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

#: Quantised state of every match: ``int32[rows, slots, fields]``.
StateArray = npt.NDArray[np.int32]
#: Controls of every player: ``float64[rows, slots, controls]``.
ControlArray = npt.NDArray[np.float64]
#: One flag per match row.
RowMask = npt.NDArray[np.bool_]


@dataclass(frozen=True, slots=True, kw_only=True)
class StateField:
    """One column of the synced state.

    The synced value is ``round(value * scale)`` as an int32; a client recovers
    the game value as ``quantised / scale`` in ``unit``.
    """

    name: str
    scale: float
    unit: str
    doc: str
    #: The value moves smoothly (a position, a heading, a speed): deltas are taken
    #: against its linear extrapolation, so steady motion costs almost nothing.
    extrapolate: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class Control:
    """One player control, a number in ``[low, high]``."""

    name: str
    low: float
    high: float
    doc: str


@dataclass(frozen=True, slots=True, kw_only=True)
class EventKind:
    """A game event kind: its wire code (16..127), name and argument names."""

    code: int
    name: str
    args: tuple[str, ...]
    doc: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GameEvent:
    """Something that happened in one match during a step.

    ``slot`` is -1 for events about the whole match. ``kind`` is one of the
    game's :attr:`Game.event_kinds` codes, or :data:`MATCH_OVER`.
    """

    row: int
    slot: int
    kind: int
    args: tuple[int, ...] = ()


#: Event kind a game emits (with ``slot=-1``) when a match has ended and its
#: results are final. It never goes on the wire as a game event.
MATCH_OVER = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class GameSchema:
    """What a client needs to interpret the synced state; sent in the welcome."""

    game: str
    slots: int
    fields: tuple[StateField, ...]
    controls: tuple[Control, ...]
    event_kinds: tuple[EventKind, ...] = field(default=())

    def to_wire(self) -> dict[str, Any]:
        """The schema as plain msgpack-able data (documented in docs/protocol.md)."""
        return {
            "game": self.game,
            "slots": self.slots,
            "fields": [[f.name, f.scale, f.unit, f.extrapolate] for f in self.fields],
            "controls": [[c.name, c.low, c.high] for c in self.controls],
            "events": [[k.code, k.name, list(k.args)] for k in self.event_kinds],
        }


class Game(Protocol):
    """A game: every match of the process, as rows of numpy columns.

    Rows are allocated by the match layer. A row is ``create``-d, gets players
    with ``join``, is ``start``-ed when its countdown ends, is stepped while
    running until the game reports :data:`MATCH_OVER`, then ``release``-d.
    Methods must be deterministic functions of the seed, the calls made and
    the controls given; they never read a clock or do I/O.
    """

    schema: GameSchema

    @property
    def rows(self) -> int:
        """How many match rows the columns currently hold."""
        ...

    def grow(self, rows: int) -> None:
        """Enlarge the columns to hold at least ``rows`` matches (existing rows are kept)."""
        ...

    def create(self, row: int, *, seed: int, options: Mapping[str, Any]) -> dict[str, Any]:
        """Set up ``row`` for a new match.

        ``options`` are game-specific (for the race: ``track``, ``laps``).
        Returns the match description sent to every player in the welcome
        (for the race: the track geometry). Raises ``ValueError`` for bad options.
        """
        ...

    def join(self, row: int, slot: int, *, ai: bool) -> None:
        """Put a participant in ``slot``; ``ai=True`` means the game drives it."""
        ...

    def leave(self, row: int, slot: int) -> None:
        """Remove the participant of ``slot`` (before the start: free the slot)."""
        ...

    def start(self, row: int) -> None:
        """The match begins: from the next step, this row runs."""
        ...

    def step(self, running: RowMask, controls: ControlArray) -> Sequence[GameEvent]:
        """Advance every running row by one tick with these controls.

        ``controls`` has shape ``(rows, slots, len(schema.controls))``; entries of
        slots that are empty or AI-driven are ignored. Returns the tick's events.
        """
        ...

    def state(self) -> StateArray:
        """The quantised state of all rows, ``int32[rows, slots, fields]`` (a view)."""
        ...

    def results(self, row: int) -> list[dict[str, Any]]:
        """Final results of a row: one dict per participant, best position first.

        Each has at least ``slot`` and ``position`` (1-based); the rest is
        game-specific and documented in docs/protocol.md.
        """
        ...

    def release(self, row: int) -> None:
        """Forget ``row`` so it can hold another match."""
        ...
