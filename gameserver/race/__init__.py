"""The car race: tracks, the batched car physics as a Game, rules and the autopilot."""

from .autopilot import drive, drive_one
from .game import RaceGame
from .rules import RaceRules
from .track import Track, load_track, track_names

__all__ = ["RaceGame", "RaceRules", "Track", "drive", "drive_one", "load_track", "track_names"]
