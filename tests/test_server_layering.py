"""The local backend's folders are its architecture (DESIGN.md): imports only point down.

``api -> services -> scheduling -> trial -> agents -> sandbox -> state``, with the server's
top modules around them: ``app``/``serve`` compose everything, ``context`` holds what the
scheduler and services share; ``errors``, ``settings`` and ``tasks`` sit low enough for
the layers that use them. Every
import is read with ``ast``, those inside functions too.
"""

from __future__ import annotations

import ast
from pathlib import Path

SERVER = Path(__file__).resolve().parents[1] / "envpools_cli" / "server"
PREFIX = "envpools_cli.server."

# Higher imports lower; equal ranks may import each other only inside one folder.
RANK = {
    "serve": 11,
    "app": 10,
    "view": 9,
    "api": 9,
    "services": 8,
    "scheduling": 7,
    "context": 6,
    "trial": 5,
    "agents": 4,
    "settings": 4,
    "sandbox": 3,
    "errors": 2,
    "state": 1,
    "tasks": 0,
}

# Known upward edges, each with the issue that removes it. The test fails on a new one
# and on one that is gone but still listed, so the list only shrinks.
KNOWN_DEBT: set[tuple[str, str]] = set()


def unit_of(path: Path) -> str:
    return path.relative_to(SERVER).parts[0].removesuffix(".py")


def imported_units(source: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level:
            names = [node.module or ""]
        else:
            continue
        found.update(n[len(PREFIX) :].split(".")[0] for n in names if n.startswith(PREFIX))
    return found


def server_edges() -> set[tuple[str, str]]:
    return {
        (unit_of(source), target)
        for source in sorted(SERVER.rglob("*.py"))
        if source.name != "__init__.py" or source.parent != SERVER
        for target in imported_units(source)
        if target != unit_of(source)
    }


def test_every_unit_has_a_rank() -> None:
    units = {unit_of(p) for p in SERVER.rglob("*.py") if p != SERVER / "__init__.py"}
    assert units <= set(RANK), f"give these a place in RANK: {units - set(RANK)}"


def test_server_imports_point_down() -> None:
    upward = {(a, b) for a, b in server_edges() if RANK[a] <= RANK[b]}
    assert upward - KNOWN_DEBT == set(), f"imports that run up or sideways: {upward - KNOWN_DEBT}"
    assert KNOWN_DEBT - upward == set(), (
        f"paid debt, drop it from KNOWN_DEBT: {KNOWN_DEBT - upward}"
    )
