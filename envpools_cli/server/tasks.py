"""Harbor-format tasks from a local directory, and the workspace an image would hold.

A task directory holds ``instruction.md``, ``task.toml``, ``environment/``,
``solution/solve.sh`` (optional) and ``tests/test.sh``. Without Docker, the workspace is
what ``environment/Dockerfile`` copies into its ``WORKDIR`` (``COPY``/``ADD`` sources from
``environment/``, laid out at their destinations); ``RUN`` lines are not executed and
are reported so that a failure from a missing tool is easy to read.
"""

from __future__ import annotations

import errno
import json
import posixpath
import re
import shlex
import shutil
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = [
    "DockerLayout",
    "HarborTask",
    "TaskError",
    "expand_env",
    "load_task",
    "parse_dockerfile",
    "task_environment",
]

DEFAULT_WORKDIR = "/app"
#: ``${credential:NAME}``: the one way a task's env values reach beyond their own text.
#: Reading a task fails for these because of the machine, whatever the task holds.
_MACHINE_ERRORS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOMEM})
_CREDENTIAL = re.compile(r"\$\{credential:([A-Za-z_][A-Za-z0-9_.-]*)\}")
_HOST_VARIABLE = re.compile(r"\$\{?[A-Za-z_][A-Za-z0-9_]*(?::-[^}]*)?\}?")
#: Parts of a task folder that must be what they say, not links to elsewhere on the host.
_NO_LINKS = (
    "instruction.md",
    "task.toml",
    "environment",
    "environment/Dockerfile",
    "tests",
    "solution",
)


class TaskError(Exception):
    """The task cannot be run here; ``code`` says why (it becomes the rollout's error code)."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


@dataclass
class CopyStep:
    sources: list[str]
    dest: str
    """Absolute destination inside the image."""


@dataclass
class DockerLayout:
    workdir: str = DEFAULT_WORKDIR
    copies: list[CopyStep] = field(default_factory=list)
    runs: list[str] = field(default_factory=list)
    env: dict[str, str] = field(default_factory=dict)
    skipped: list[str] = field(default_factory=list)
    base_image: str | None = None


def _logical_lines(text: str) -> list[str]:
    lines: list[str] = []
    current = ""
    for raw in text.splitlines():
        stripped = raw.strip()
        if not current and (not stripped or stripped.startswith("#")):
            continue
        if stripped.startswith("#"):
            continue  # comment inside a continued instruction
        if stripped.endswith("\\"):
            current += stripped[:-1].rstrip() + " "
            continue
        current += stripped
        lines.append(current)
        current = ""
    if current.strip():
        lines.append(current)
    return lines


def _args(rest: str) -> list[str]:
    rest = rest.strip()
    if rest.startswith("["):
        try:
            parsed = json.loads(rest)
        except ValueError:
            pass
        else:
            if isinstance(parsed, list):
                return [str(item) for item in parsed]
    return shlex.split(rest)


def _resolve(path: str, workdir: str) -> str:
    return posixpath.normpath(path if path.startswith("/") else posixpath.join(workdir, path))


def parse_dockerfile(text: str) -> DockerLayout:
    """Read the final stage's WORKDIR, COPY/ADD, ENV and RUN instructions."""
    layout = DockerLayout()
    for line in _logical_lines(text):
        keyword, _, rest = line.partition(" ")
        keyword = keyword.upper()
        if keyword == "FROM":
            layout = DockerLayout(base_image=_args(rest)[0] if rest.strip() else None)
        elif keyword == "WORKDIR":
            layout.workdir = _resolve(rest.strip().strip('"'), layout.workdir)
        elif keyword in ("COPY", "ADD"):
            args = _args(rest)
            flags = [a for a in args if a.startswith("--")]
            paths = [a for a in args if not a.startswith("--")]
            if any(f.startswith("--from") for f in flags) or len(paths) < 2:
                layout.skipped.append(line)
                continue
            sources = paths[:-1]
            if any("://" in s for s in sources):
                layout.skipped.append(line)
                continue
            dest = paths[-1]
            absolute = _resolve(dest, layout.workdir)
            if dest.endswith("/") or len(sources) > 1:
                absolute += "/"
            layout.copies.append(CopyStep(sources, absolute))
        elif keyword == "ENV":
            args = shlex.split(rest)
            if args and "=" in args[0]:
                for item in args:
                    name, _, value = item.partition("=")
                    layout.env[name] = value
            elif len(args) >= 2:
                layout.env[args[0]] = " ".join(args[1:])
        elif keyword == "RUN":
            layout.runs.append(rest.strip())
    return layout


@dataclass
class HarborTask:
    root: Path
    instruction: str
    config: dict[str, Any]
    layout: DockerLayout
    has_dockerfile: bool

    @property
    def workdir(self) -> str:
        return self.layout.workdir

    @property
    def tests_dir(self) -> Path:
        return self.root / "tests"

    @property
    def solution_dir(self) -> Path:
        return self.root / "solution"

    @property
    def has_solution(self) -> bool:
        return (self.solution_dir / "solve.sh").is_file()

    def _section(self, name: str) -> dict[str, Any]:
        value = self.config.get(name)
        return value if isinstance(value, dict) else {}

    @property
    def agent_timeout_sec(self) -> float | None:
        value = self._section("agent").get("timeout_sec")
        return float(value) if isinstance(value, int | float) else None

    @property
    def verifier_timeout_sec(self) -> float | None:
        value = self._section("verifier").get("timeout_sec")
        return float(value) if isinstance(value, int | float) else None

    @property
    def verifier_env(self) -> dict[str, str]:
        """``[verifier.env]`` as written: see ``expand_env`` for ``${credential:NAME}``."""
        return _env_table(self._section("verifier").get("env"))

    @property
    def solution_env(self) -> dict[str, str]:
        return _env_table(self._section("solution").get("env"))

    @property
    def environment(self) -> dict[str, Any]:
        """``[environment]``: resources (``cpus``, ``memory_mb``, ...) and network policy."""
        return self._section("environment")

    @property
    def verifier_network(self) -> bool:
        env = self._section("environment")
        return env.get("allow_internet") is True or env.get("network_mode") == "public"

    def seed_workspace(self, workspace: Path) -> list[str]:
        """Lay out the workspace; return notes for the rollout's events."""
        workspace.mkdir(parents=True, exist_ok=True)
        context = self.root / "environment"
        notes: list[str] = []
        if not self.has_dockerfile:
            if context.is_dir():
                _copy_tree(context, workspace)
            notes.append("no environment/Dockerfile: the workspace is all of environment/")
            return notes
        for step in self.layout.copies:
            notes += _apply_copy(step, context, workspace, self.workdir)
        if self.layout.runs:
            shown = "; ".join(run[:120] for run in self.layout.runs[:5])
            more = f" (+{len(self.layout.runs) - 5} more)" if len(self.layout.runs) > 5 else ""
            notes.append(
                f"RUN lines were not executed, the host's tools stand in for the image "
                f"({self.layout.base_image or 'no base image'}): {shown}{more}"
            )
        notes += [f"skipped (not supported without Docker): {line}" for line in self.layout.skipped]
        return notes


def _env_table(value: Any) -> dict[str, str]:
    if not isinstance(value, dict):
        return {}
    return {str(k): str(v) for k, v in value.items()}


def expand_env(
    values: dict[str, str], section: str, credential: Callable[[str], str | None]
) -> tuple[dict[str, str], list[str], list[str]]:
    """(env, secret values, notes): values are literal but for ``${credential:NAME}``.

    Harbor expands ``${VAR}`` from the host's environment; here the host is the backend,
    whose environment is nobody's business, so such text is passed as written (with a
    note saying how to pass a stored credential instead). A missing credential raises.
    """
    env: dict[str, str] = {}
    secrets: list[str] = []
    notes: list[str] = []

    def substitute(match: re.Match[str]) -> str:
        value = credential(match[1])
        if value is None:
            raise TaskError(
                "credentials_missing",
                f"task.toml [{section}] refers to credential {match[1]!r}, which is not "
                "stored (envpools credentials store)",
            )
        secrets.append(value)
        return value

    for name, raw in values.items():
        env[name] = _CREDENTIAL.sub(substitute, raw)
        if _HOST_VARIABLE.search(_CREDENTIAL.sub("", raw)):
            notes.append(
                f"task.toml [{section}] {name} is passed as written ({raw[:60]!r}): the local "
                "backend does not expand its own environment; use ${credential:NAME} to pass "
                "a stored credential"
            )
    return env, secrets, notes


def _copy_tree(source: Path, target: Path) -> None:
    shutil.copytree(source, target, symlinks=True, dirs_exist_ok=True)


def _inside(path: Path, root: Path) -> bool:
    try:
        path.resolve().relative_to(root.resolve())
    except ValueError:
        return False
    return True


def _apply_copy(step: CopyStep, context: Path, workspace: Path, workdir: str) -> list[str]:
    notes: list[str] = []
    dest = step.dest
    root = workdir.rstrip("/") + "/"
    if not (dest == root or dest.startswith(root) or dest.rstrip("/") == workdir):
        return [f"COPY to {dest} is outside WORKDIR {workdir}: not placed in the workspace"]
    relative = dest[len(root) :] if dest.startswith(root) else ""
    target = workspace / relative if relative else workspace
    for pattern in step.sources:
        matches = (
            sorted(context.glob(pattern.lstrip("/")))
            if any(ch in pattern for ch in "*?[")
            else [context / pattern.lstrip("/")]
        )
        matches = [m for m in matches if m.exists() and _inside(m, context)]
        if not matches:
            notes.append(f"COPY source {pattern!r} not found in environment/")
            continue
        for match in matches:
            if match.is_dir():  # Docker copies a directory's contents, not the directory
                _copy_tree(match, target)
            elif dest.endswith("/"):
                target.mkdir(parents=True, exist_ok=True)
                shutil.copy2(match, target / match.name)
            else:
                target.parent.mkdir(parents=True, exist_ok=True)
                shutil.copy2(match, target)
    return notes


def _not_a_task(path: str | Path) -> TaskError:
    # One message whether the folder is missing, unreadable or not a task: the API must
    # not tell a caller which host paths exist.
    return TaskError(
        "bad_task_source",
        f"{str(path)!r} is not a Harbor task folder the local backend can read "
        "(it needs instruction.md and tests/test.sh)",
    )


_ENVIRONMENTS: dict[tuple[str, int, int], dict[str, Any]] = {}


def task_environment(path: str | Path) -> dict[str, Any]:
    """``task.toml``'s ``[environment]`` ({} when it cannot be read: the run will say why).

    Read at every create (what a rollout reserves), so kept per file version.
    """
    toml_file = Path(path).expanduser() / "task.toml"
    try:
        if toml_file.is_symlink():
            return {}
        info = toml_file.stat()
        key = (str(toml_file), info.st_mtime_ns, info.st_size)
        if (found := _ENVIRONMENTS.get(key)) is None:
            section = tomllib.loads(toml_file.read_text()).get("environment")
            found = section if isinstance(section, dict) else {}
            if len(_ENVIRONMENTS) > 1024:
                _ENVIRONMENTS.clear()
            _ENVIRONMENTS[key] = found
    except (OSError, ValueError):
        return {}
    return dict(found)


def load_task(path: str | Path) -> HarborTask:
    root = Path(path).expanduser()
    try:
        if not (root.is_dir() and (root / "instruction.md").is_file()):
            raise _not_a_task(path)
        if not (root / "tests" / "test.sh").is_file():
            raise _not_a_task(path)
        for part in _NO_LINKS:
            if (root / part).is_symlink():
                raise TaskError(
                    "bad_task_source",
                    f"{str(path)!r}: {part} is a symbolic link; a task folder must hold its "
                    "own files (a link could copy any host folder into the sandbox)",
                )
        instruction = (root / "instruction.md").read_text(errors="replace")
        config: dict[str, Any] = {}
        toml_file = root / "task.toml"
        if toml_file.is_file():
            try:
                config = tomllib.loads(toml_file.read_text())
            except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
                raise TaskError("bad_task_source", f"task.toml: invalid TOML: {exc}") from None
        dockerfile = root / "environment" / "Dockerfile"
        layout = DockerLayout()
        if dockerfile.is_file():
            layout = parse_dockerfile(dockerfile.read_text(errors="replace"))
    except OSError as exc:
        if exc.errno in _MACHINE_ERRORS:
            raise  # the machine's (no file left to open), not the task's: said as such
        raise _not_a_task(path) from None
    return HarborTask(
        root=root,
        instruction=instruction,
        config=config,
        layout=layout,
        has_dockerfile=dockerfile.is_file(),
    )
