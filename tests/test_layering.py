"""Layering read from the source: no command module imports another command module.

Commands are leaves (DESIGN.md): logic two commands share lives below them (jobs, output,
a backend module), and ``app.py`` composes the command groups. Every import is read with
``ast``, those inside functions too, since a lazy import is still a dependency.
"""

from __future__ import annotations

import ast
from pathlib import Path

COMMANDS = Path(__file__).resolve().parents[1] / "envpools_cli" / "commands"
PACKAGE = "envpools_cli.commands"

# Debt recorded when this test was written (issue 10, part 2): each edge is to be moved down
# into a non-command module. The test fails on any edge not listed here AND on a listed
# edge that is gone, so this list can only shrink.
KNOWN_DEBT = {
    ("demo", "rollouts_files"),
    ("demo", "rollouts_watch"),
    ("pools", "tasks"),
    ("rollouts", "rollouts_files"),
    ("rollouts", "rollouts_watch"),
}


def command_imports(source: Path) -> set[str]:
    """Command modules (not ``_``-helpers, nor the package) that ``source`` imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the commands package
                base = PACKAGE if node.level == 1 else "envpools_cli"
                module = f"{base}.{node.module}" if node.module else base
            else:
                module = node.module or ""
            if module == PACKAGE:
                names = [f"{PACKAGE}.{alias.name}" for alias in node.names]
            else:
                names = [module]
        else:
            continue
        for name in names:
            if name.startswith(f"{PACKAGE}."):
                leaf = name[len(PACKAGE) + 1 :].split(".")[0]
                if not leaf.startswith("_") and leaf != source.stem:
                    found.add(leaf)
    return found


def edges() -> set[tuple[str, str]]:
    return {
        (source.stem, target)
        for source in sorted(COMMANDS.glob("*.py"))
        if not source.stem.startswith("_")
        for target in command_imports(source)
    }


def test_the_reader_sees_every_import_form(tmp_path: Path) -> None:
    sample = tmp_path / "demo.py"
    sample.write_text(
        "from envpools_cli.commands import local, _options\n"
        "import envpools_cli.commands.auth\n"
        "def f():\n"
        "    from envpools_cli.commands.rollouts import show_rollouts\n"
        "    from .tasks import app\n"
        "from envpools_cli.output import formats\n"
    )
    assert command_imports(sample) == {"local", "auth", "rollouts", "tasks"}


def test_no_command_module_imports_another() -> None:
    found = edges()
    new = found - KNOWN_DEBT
    assert not new, f"command modules importing command modules (move the logic down): {new}"
    paid = KNOWN_DEBT - found
    assert not paid, f"gone, remove from KNOWN_DEBT so it cannot come back: {paid}"
