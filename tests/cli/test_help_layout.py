"""Every ``--help`` at 80 columns: no Python types, no word cut, examples that paste whole.

The screens are the ones a terminal of 80 columns or more shows (``app.help_screen``,
what the fast path keeps). An example broken at a hyphen (``--task envpools-`` /
``examples/...``) pastes as two commands; ``<list[str]>`` is Python, not a usage line.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from envpools_cli.app import full_command, help_screen, plain_lists
from envpools_cli.help_format import shell_lines, split_command

PYTHON_TYPE = re.compile(r"<(str|int|float|bool|path|list\[[^\]]*\]|[a-z_]+\[[^\]]*\])>")


def commands(node: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[tuple[str, ...], Any]]:
    subs = getattr(node, "commands", None)
    if path:
        yield path, node
    for name, sub in (subs or {}).items():
        yield from commands(sub, (*path, name))


ALL = sorted(path for path, _ in commands(full_command()))


def example_of(command: Any) -> str | None:
    """The example as the docstring writes it, spaces normalised."""
    text = command.help or ""
    found = re.search(r"^\s*Examples?:(.*?)(?:\n\s*\n|\Z)", text, re.MULTILINE | re.DOTALL)
    return " ".join(found.group(1).split()) if found else None


def shown_example(screen: str) -> str | None:
    """The example as the screen shows it, continuation lines joined back as a shell would."""
    lines = screen.splitlines()
    for index, line in enumerate(lines):
        stripped = line.strip()
        if not stripped.startswith(("Example:", "Examples:")):
            continue
        rest = stripped.split(":", 1)[1].strip()
        if rest:
            return rest
        parts = []
        for follow in lines[index + 1 :]:
            part = follow.strip()
            if part.endswith(" \\"):
                parts.append(part[:-2])
                continue
            parts.append(part)
            break
        return " ".join(parts)
    return None


@pytest.mark.parametrize("path", ALL, ids=[" ".join(p) for p in ALL])
def test_help_fits_and_speaks_no_python(path: tuple[str, ...]) -> None:
    found = help_screen(list(path))
    if found is None:
        pytest.skip("no --help of its own")
    screen = found[0]
    assert all(len(line) <= 80 for line in screen.splitlines()), screen
    assert not PYTHON_TYPE.search(screen), PYTHON_TYPE.search(screen)
    assert not re.search(r"\{[a-z_]+\}", screen.splitlines()[0]), "Typer's {name} in usage"
    node = full_command()
    for name in path:
        node = node.commands[name]
    wanted = example_of(node)
    if wanted is None:
        return
    shown = shown_example(screen)
    assert shown == wanted, f"the example pastes as {shown!r}, not {wanted!r}\n{screen}"
    for line in screen.splitlines():
        if line.strip().endswith(" \\"):
            continue
        # Outside examples, a line never ends inside a word (at a hyphen, a slash).
        last = line.split()[-1] if line.split() else ""
        assert not (last.endswith("-") and not last.startswith("-") and len(last) > 1), line


def test_the_old_breaks_are_gone() -> None:
    """The two screens the issue names, exactly where they broke before."""
    create = help_screen(["rollouts", "create"])
    assert create is not None
    assert "envpools-examples/fix-failing-test" in create[0]
    wait = help_screen(["rollouts", "wait"])
    assert wait is not None
    assert "ROLLOUT_ID..." in wait[0] and "<list[str]>" not in wait[0]


def test_shell_lines_keep_quotes_and_paste_back() -> None:
    command = "envpools jobs list -o json | jq '.[] | select(.status == \"interrupted\") | .id'"
    assert split_command(command)[-1] == "'.[] | select(.status == \"interrupted\") | .id'"
    lines = shell_lines(command, 40, "  ", "    ")
    assert all(line.endswith(" \\") for line in lines[:-1])
    assert " ".join(line.strip().removesuffix(" \\") for line in lines) == command


def test_errors_show_lists_in_words() -> None:
    text = "Model 'x' is not allowed for harness 'codex'. Allowed models: ['a-1', 'b.2']"
    assert (
        plain_lists(text)
        == "Model 'x' is not allowed for harness 'codex'. Allowed models: a-1, b.2"
    )
    assert plain_lists("no list [here]") == "no list [here]"
