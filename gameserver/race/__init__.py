"""The car race: tracks, the batched car physics as a Game, rules and the autopilot."""

from .autopilot import drive, drive_one, drive_set
from .game import RaceGame
from .rules import CarModel, RaceRules
from .track import Track, TrackSet, load_track, track_names

__all__ = [
    "CarModel",
    "RaceGame",
    "RaceRules",
    "Track",
    "TrackSet",
    "drive",
    "drive_one",
    "drive_set",
    "load_track",
    "track_names",
]
