"""The sans-IO core stays pure: it imports no trio, sockets, clocks or randomness."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "gameserver"
PURE_MODULES = [
    "codes.py",
    "errors.py",
    "protocol.py",
    "sync.py",
    "game.py",
    "match.py",
    "metrics.py",
    "websocket.py",
    "race/__init__.py",
    "race/track.py",
    "race/game.py",
    "race/physics.py",
    "race/rules.py",
    "race/autopilot.py",
]
FORBIDDEN = {"trio", "trio_websocket", "socket", "time", "random", "asyncio", "sqlite3", "os"}


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            roots.add(node.module.split(".")[0])
        elif isinstance(node, ast.ImportFrom) and node.level and node.module:
            roots.add("." + node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_imports_no_io_or_clock(module: str) -> None:
    path = PACKAGE / module
    assert path.exists(), f"{module} is listed as pure but does not exist"
    assert imported_roots(path) & FORBIDDEN == set()


@pytest.mark.parametrize("module", PURE_MODULES)
def test_pure_module_does_not_import_the_edges(module: str) -> None:
    edges = {".server", ".transport", ".client", ".cli", ".bots"}
    assert imported_roots(PACKAGE / module) & edges == set()


def test_the_package_has_no_grab_bag_modules() -> None:
    names = {p.stem for p in PACKAGE.rglob("*.py")}
    assert names & {"utils", "common", "helpers", "misc"} == set()
