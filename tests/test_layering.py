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


def command_imports(source: Path, package: str = PACKAGE) -> set[str]:
    """Command modules (not ``_``-helpers, nor the package) that ``source`` imports;
    ``package`` is the one ``source`` is in, for its relative imports."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(source.read_text(), filename=str(source))):
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against the source's package
                parts = package.split(".")
                base = ".".join(parts[: len(parts) - node.level + 1])
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
    """(importer, command module) for every module of the commands package, helpers too:
    a ``_``-helper importing a command would carry the edge in by the back door."""
    return {
        (source.stem, target)
        for source in sorted(COMMANDS.glob("*.py"))
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
    below = tmp_path / "progress.py"
    below.write_text("from ..commands import rollouts\nfrom .formats import emit\n")
    assert command_imports(below, "envpools_cli.output") == {"rollouts"}


def test_no_command_module_imports_another() -> None:
    # The seven edges recorded when this test was written (issue 10) are all gone: shared
    # logic lives in local_backend, watch, downloads, config and commands/_harbor.
    found = edges()
    assert not found, f"command modules importing command modules (move the logic down): {found}"


def test_only_app_composes_commands() -> None:
    """Below the commands (local_backend, watch, downloads, output, jobs...) nothing imports
    one; ``app.py`` composes the groups and ``__main__`` starts it."""
    root = COMMANDS.parent
    importers = {
        str(source.relative_to(root))
        for source in sorted(root.rglob("*.py"))
        if COMMANDS not in source.parents
        and command_imports(
            source, ".".join(("envpools_cli", *source.relative_to(root).parts[:-1]))
        )
    }
    assert importers <= {"app.py"}, f"modules below the commands importing them: {importers}"
