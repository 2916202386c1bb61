"""What a task's Dockerfile may ask of the builder, read the way the builder reads it.

A Dockerfile is the task's, so it is hostile input. The builder's mounts are the known
way out of a build: ``RUN --mount=type=bind,source=<link to />`` or ``from=<a stage that
made one>`` bind the host's root into the build on podman < 4.9.4 / buildah < 1.35.1
(CVE-2024-1753), and the Docker builder had its own (CVE-2024-23651/23652/23653). So a
``RUN`` may carry one kind of flag only: ``--mount=type=tmpfs`` (a scratch folder, nothing
of the host's or another stage's). Bind, cache, secret and ssh mounts, ``from=``, and any
other flag (``--network``, ``--security``) are refused unless the backend allows mounts.

Instructions are read as BuildKit's parser reads them (the ``escape`` directive, line
continuations, comment and blank lines inside a continuation), so a flag cannot be hidden
from this check by spelling it over several lines. Anything this module cannot read with
certainty (quotes or ``$`` in a flag) is refused rather than guessed.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

__all__ = [
    "DockerfileRefused",
    "Instruction",
    "check_dockerfile",
    "instructions",
    "runs_commands",
]

_DIRECTIVE = re.compile(r"^#\s*([a-zA-Z][a-zA-Z0-9]*)\s*=\s*(.+?)\s*$")
_FLAG = re.compile(r"\s*(--\S*)")
_WORDS = re.compile(r"(\S+)\s*(.*)", re.S)


class DockerfileRefused(ValueError):
    """The Dockerfile asks for something builds here do not allow (the message says what)."""


@dataclass(frozen=True)
class Instruction:
    keyword: str
    """Upper case: ``RUN``, ``FROM``, ...; for ``ONBUILD RUN``, ``RUN`` with ``onbuild``."""
    rest: str
    line: int
    """The first line of the instruction (1-based), for messages."""
    onbuild: bool = False


def _directives(lines: list[str]) -> dict[str, str]:
    """Parser directives: ``# name=value`` lines before anything else."""
    found: dict[str, str] = {}
    for line in lines:
        match = _DIRECTIVE.match(line.strip())
        if not match:
            break
        found[match[1].lower()] = match[2]
    return found


def instructions(text: str) -> Iterator[Instruction]:
    """The Dockerfile's instructions, continuations joined, comments dropped."""
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    escape = _directives(lines).get("escape", "\\")
    if escape not in ("\\", "`"):
        raise DockerfileRefused(f"the escape directive must be \\ or `, not {escape!r}")
    continuation = re.compile(re.escape(escape) + r"[ \t]*$")
    parts: list[str] = []
    start = 0
    for number, line in enumerate(lines, 1):
        stripped = line.strip()
        if not parts and (not stripped or stripped.startswith("#")):
            continue
        if parts and (not stripped or line.lstrip().startswith("#")):
            continue  # BuildKit skips these inside a continuation
        if not parts:
            start = number
        match = continuation.search(line)
        if match:
            parts.append(line[: match.start()])
            continue
        parts.append(line)
        yield _instruction("".join(parts), start)
        parts = []
    if parts:
        yield _instruction("".join(parts), start)


def _instruction(text: str, line: int) -> Instruction:
    match = _WORDS.match(text.strip())
    keyword, rest = (match[1].upper(), match[2].strip()) if match else ("", "")
    if keyword == "ONBUILD":
        inner = _instruction(rest, line)
        return Instruction(inner.keyword, inner.rest, line, onbuild=True)
    return Instruction(keyword, rest, line)


def runs_commands(text: str) -> bool:
    """Whether building runs anything of the task's (a ``RUN``, here or on ``ONBUILD``)."""
    try:
        return any(i.keyword == "RUN" for i in instructions(text))
    except DockerfileRefused:
        return True


def _run_flags(rest: str) -> list[str]:
    flags = []
    while match := _FLAG.match(rest):
        flags.append(match[1])
        rest = rest[match.end() :]
    return flags


def _mount_problem(value: str) -> str | None:
    """Why a ``--mount=`` value is refused (None: a tmpfs, which is allowed)."""
    options: dict[str, str] = {}
    for item in value.split(","):
        key, sep, setting = item.partition("=")
        options[key.strip().lower()] = setting.strip() if sep else ""
    kind = options.get("type", "bind").lower()  # BuildKit's default type is bind
    if kind != "tmpfs":
        return f"a {kind} mount"
    if {"from", "source", "src"} & options.keys():
        return "a mount with a source"
    return None


def check_dockerfile(text: str, *, allow_mounts: bool) -> None:
    """Raise DockerfileRefused when a ``RUN`` asks for more than a tmpfs (see the module)."""
    for found in instructions(text):
        if found.keyword != "RUN":
            continue
        where = f"environment/Dockerfile line {found.line}"
        for flag in _run_flags(found.rest):
            if allow_mounts:
                continue
            if any(c in flag for c in "\"'$") or "\\" in flag:
                raise DockerfileRefused(
                    f"{where}: RUN {flag}: quotes, escapes and variables in RUN flags are "
                    "not accepted (the flag must be read here exactly as the builder reads it)"
                )
            name, _, value = flag.partition("=")
            if name == "--mount" and value and (problem := _mount_problem(value)) is None:
                continue
            what = f"asks for {problem}" if name == "--mount" and value else "is a builder flag"
            raise DockerfileRefused(
                f"{where}: RUN {flag} {what}. Builds here accept RUN --mount=type=tmpfs only: "
                "bind, cache, secret and ssh mounts and mounts from= another stage can reach "
                "the host through the builder (CVE-2024-1753). Copy what the build needs "
                "with COPY (COPY --from=<stage> for another stage's files)"
            )
