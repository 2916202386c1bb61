"""The client as type checkers see it: ``user_script.py`` under mypy --strict and pyright strict.

Each checker must reveal, on every ``reveal_type`` line, the type its ``# revealed:``
comment names (``A || B``: mypy's spelling, then pyright's, where they differ), report an
error on every line marked ``# error`` and on no other line. The script is checked as a
user's code would be: without this project's mypy configuration (no pydantic plugin).
"""

from __future__ import annotations

import ast
import inspect
import json
import re
import subprocess
import sys
import tokenize
from dataclasses import dataclass, field
from pathlib import Path

import pytest

import envpools_cli.client as surface
from envpools_cli.client import resources
from envpools_cli.client.namespaces import PoolsNamespace, RolloutsNamespace
from envpools_cli.models import AgentSpec, PoolResponse, PoolTask

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = Path(__file__).with_name("user_script.py")


@dataclass
class Findings:
    revealed: dict[int, str] = field(default_factory=dict)
    errors: dict[int, list[str]] = field(default_factory=dict)


def _expected() -> tuple[dict[int, list[str]], set[int]]:
    """(line -> accepted revealed types, lines marked ``# error``), 1-based."""
    revealed: dict[int, list[str]] = {}
    errors: set[int] = set()
    one_line = {
        node.lineno
        for node in ast.walk(ast.parse(SCRIPT.read_text()))
        if isinstance(node, ast.stmt) and node.lineno == node.end_lineno
    }
    with SCRIPT.open("rb") as source:
        comments = [t for t in tokenize.tokenize(source.readline) if t.type == tokenize.COMMENT]
    for comment in comments:
        number = comment.start[0]
        if comment.string.startswith(("# revealed", "# error")):
            assert number in one_line, f"user_script.py:{number}: one case a line, one line a case"
        found = re.match(r"# revealed: (.+)$", comment.string)
        if found:
            revealed[number] = [_plain(t) for t in found[1].split("||")]
        if re.match(r"# error\b", comment.string):
            errors.add(number)
    return revealed, errors


def _plain(type_text: str) -> str:
    """Module paths dropped and spaces folded: ``builtins.dict[builtins.str, Any]`` -> ``dict[str, Any]``."""
    text = re.sub(r"\b(?:[A-Za-z_]\w*\.)+([A-Za-z_]\w*)", r"\1", type_text.strip())
    return " ".join(text.split())


def _mypy(tmp_path: Path) -> Findings:
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\n")
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            "--no-error-summary",
            str(SCRIPT.relative_to(ROOT)),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    findings = Findings()
    pattern = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<kind>error|note): (?P<text>.*)$")
    for row in done.stdout.splitlines():
        match = pattern.match(row)
        if not match or Path(match["file"]).name != SCRIPT.name:
            continue
        line = int(match["line"])
        revealed = re.match(r'Revealed type is "(.*)"$', match["text"])
        if match["kind"] == "note" and revealed:
            findings.revealed[line] = _plain(revealed[1])
        elif match["kind"] == "error":
            findings.errors.setdefault(line, []).append(match["text"])
    assert findings.revealed, done.stdout + done.stderr
    return findings


def _pyright() -> Findings:
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "pyright",
            "--outputjson",
            "--pythonpath",
            sys.executable,
            str(SCRIPT),
        ],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    try:
        report = json.loads(done.stdout)
    except ValueError:
        pytest.fail(f"pyright did not run: {done.stdout[-2000:]} {done.stderr[-2000:]}")
    findings = Findings()
    for item in report["generalDiagnostics"]:
        if Path(item["file"]).name != SCRIPT.name:
            continue
        line = item["range"]["start"]["line"] + 1
        revealed = re.match(r'Type of ".*" is "(.*)"$', item["message"], re.S)
        if item["severity"] == "information" and revealed:
            findings.revealed[line] = _plain(revealed[1])
        elif item["severity"] == "error":
            findings.errors.setdefault(line, []).append(item["message"])
    assert findings.revealed, done.stdout[-2000:]
    return findings


def _check(findings: Findings, checker: int) -> None:
    expected, marked = _expected()
    problems = []
    wrong = {
        line: (findings.revealed.get(line), accepted[min(checker, len(accepted) - 1)])
        for line, accepted in expected.items()
        if findings.revealed.get(line) != accepted[min(checker, len(accepted) - 1)]
    }
    if wrong:
        problems.append(f"revealed types other than expected, line: (seen, expected): {wrong}")
    missed = sorted(marked - set(findings.errors))
    if missed:
        problems.append(f"mistakes let through, lines {missed}")
    unexpected = {line: texts for line, texts in findings.errors.items() if line not in marked}
    if unexpected:
        problems.append(f"errors on correct code: {unexpected}")
    assert not problems, "\n".join(problems)


def test_mypy_strict_sees_the_types_and_refuses_the_mistakes(tmp_path: Path) -> None:
    _check(_mypy(tmp_path), checker=0)


def test_pyright_strict_sees_the_types_and_refuses_the_mistakes() -> None:
    _check(_pyright(), checker=1)


def test_the_script_calls_every_public_function_and_method() -> None:
    """A function or method added to the client must be added here, typed, too."""
    text = SCRIPT.read_text()
    functions = [
        name
        for name in surface.__all__
        if inspect.isfunction(getattr(surface, name)) and not name.startswith("_")
    ]
    classes = [
        surface.EnvironmentPoolsClient,
        RolloutsNamespace,
        PoolsNamespace,
        surface.RolloutHandle,
        resources.Artifacts,
        resources.PoolTasks,
        resources.Credentials,
        resources.Capabilities,
        resources.Queue,
        AgentSpec,
        PoolTask,
        PoolResponse,
    ]
    methods = {
        f"{cls.__name__}.{name}": name
        for cls in classes
        for name, value in vars(cls).items()
        if not name.startswith("_")
        and (isinstance(value, (classmethod, staticmethod)) or inspect.isfunction(value))
    }
    assert len(functions) > 40 and len(methods) > 50
    missing = [name for name in functions if not re.search(rf"\b{name}\(", text)]
    missing += [qualified for qualified, name in methods.items() if f".{name}(" not in text]
    assert not missing, f"not exercised by user_script.py: {missing}"
