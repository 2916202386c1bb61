"""Agents the backend does not ship, declared by a manifest (``agent.toml``, version 1).

A manifest says how to install the agent, how to run it (a command template with the
instruction, model and workdir; environment from the rollout's providers and stored
credentials, by reference), which LLM providers it talks to (the egress gateway opens
routes to exactly those, swaps the key and scrubs it), and how to read its output (a
built-in agent's parser, or ``envpools-jsonl``: ``events_jsonl.py``)::

    manifest_version = 1

    [agent]
    name = "my-agent"
    description = "Our in-house agent"
    version = "0.3.0"
    providers = ["openai"]
    models = ["gpt-5-mini"]
    default_model = "gpt-5-mini"

    [install]
    files = ["agent.py"]

    [run]
    command = ["python3", "{agent_dir}/agent.py", "--model", "{model}", "{instruction}"]

    [run.env]
    OPENAI_BASE_URL = "{providers.openai.base_url}"
    OPENAI_API_KEY = "{providers.openai.api_key}"

    [output]
    parser = "envpools-jsonl"

``load_manifest`` refuses a broken one with the reason (``ManifestError``) — a missing
command, an unknown parser, a provider the gateway would not route — so that ``envpools
agents add`` says it, not the first rollout. ``manifest_harness`` turns a valid one into
a ``Harness`` the registry serves next to the built-ins.
"""

from __future__ import annotations

import re
import shlex
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any, ClassVar, cast

from envpools_cli.server.agents.adapters import (
    ClaudeCodeHarness,
    CodexHarness,
    OpenCodeHarness,
    missing_credential,
)
from envpools_cli.server.agents.base import AgentContext, Harness, Invocation
from envpools_cli.server.agents.events_jsonl import FORMAT, JsonlEventParser
from envpools_cli.server.agents.gemini import GeminiCliHarness
from envpools_cli.server.agents.qwen import QwenCodeHarness
from envpools_cli.server.agents.transcript import OutputTranscript
from envpools_cli.server.sandbox.egress import PROVIDERS

__all__ = [
    "MANIFEST_NAME",
    "MANIFEST_VERSION",
    "PARSERS",
    "AgentManifest",
    "ManifestError",
    "ManifestHarness",
    "load_manifest",
    "manifest_harness",
    "parse_manifest",
]

MANIFEST_NAME = "agent.toml"
MANIFEST_VERSION = 1
SANDBOX_AGENTS = "/envpools/agents"
FILES_DIR = "files"
VENV_DIR = "venv"


class PlainOutput(Harness):
    """``parser = "text"``: every line is output; the trajectory is one step running the
    agent's command, its observation what the command printed."""

    name = "text"
    transcript_class = OutputTranscript


PARSERS: dict[str, type[Harness]] = {
    FORMAT: JsonlEventParser,
    "claude-code": ClaudeCodeHarness,
    "codex": CodexHarness,
    "opencode": OpenCodeHarness,
    "gemini-cli": GeminiCliHarness,
    "qwen-code": QwenCodeHarness,
    "text": PlainOutput,
}
"""``[output] parser``: our JSON Lines format, a built-in agent's output format, or text."""

_NAME = re.compile(r"^[a-z][a-z0-9-]{0,39}$")
_PROVIDER = re.compile(r"^[a-z][a-z0-9_-]{0,39}$")
_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,127}$")
_CREDENTIAL = re.compile(r"^[A-Za-z0-9_.-]{1,128}$")
_FIELD = re.compile(r"\{([^{}]*)\}")
_RESERVED_ENV = {"PATH", "HOME"}
_SECTIONS = {
    "manifest_version": None,
    "agent": {
        "name",
        "description",
        "version",
        "providers",
        "models",
        "default_model",
        "accepts_any_model",
    },
    "install": {"files", "pip", "npm"},
    "run": {"command", "env", "stdin", "version_command"},
    "output": {"parser"},
}


class ManifestError(Exception):
    """A manifest that cannot be used, and why (one sentence a person can act on)."""


@dataclass(frozen=True)
class AgentManifest:
    name: str
    command: tuple[str, ...]
    providers: tuple[str, ...] = ()
    description: str = ""
    version: str | None = None
    models: tuple[str, ...] = ()
    default_model: str | None = None
    accepts_any_model: bool = True
    files: tuple[str, ...] = ()
    pip: tuple[str, ...] = ()
    npm: tuple[str, ...] = ()
    env: dict[str, str] = field(default_factory=dict)
    stdin: str = "none"
    version_command: tuple[str, ...] = ()
    parser: str = FORMAT

    @property
    def sandbox_root(self) -> str:
        return f"{SANDBOX_AGENTS}/{self.name}"

    @property
    def program(self) -> str:
        """The command's first word with the install's paths filled in."""
        return self.filled(self.command[:1])[0]

    def filled(self, items: tuple[str, ...]) -> tuple[str, ...]:
        """``items`` (which use no placeholder but the install's paths) filled in."""
        paths = self._paths()
        return tuple(fill(item, paths.__getitem__) for item in items)

    def _paths(self) -> dict[str, str]:
        return {
            "agent_dir": f"{self.sandbox_root}/{FILES_DIR}",
            "python": f"{self.sandbox_root}/{VENV_DIR}/bin/python",
        }

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "description": self.description,
            "version": self.version,
            "providers": list(self.providers),
            "models": list(self.models),
            "default_model": self.default_model,
            "parser": self.parser,
        }


# --- placeholders ---------------------------------------------------------------------------


def fill(template: str, value: Callable[[str], str]) -> str:
    """``template`` with each ``{field}`` replaced by ``value(field)``; ``{{``, ``}}``: braces."""
    parts = re.split(r"(\{\{|\}\})", template)
    out = []
    for part in parts:
        if part in ("{{", "}}"):
            out.append(part[0])
        else:
            out.append(_FIELD.sub(lambda m: value(m.group(1)), part))
    return "".join(out)


def fields(template: str) -> list[str]:
    found: list[str] = []

    def note(name: str) -> str:
        found.append(name)
        return ""

    fill(template, note)
    return found


_PLAIN_FIELDS = {"instruction", "model", "workdir", "agent_dir", "python"}
_PATH_FIELDS = {"agent_dir", "python"}


def _is_secret(name: str) -> bool:
    return name.startswith("credentials.") or (
        name.startswith("providers.") and name.endswith(".api_key")
    )


def _check_field(name: str, where: str, declared: tuple[str, ...]) -> None:
    if name in _PLAIN_FIELDS:
        return
    parts = name.split(".")
    if parts[0] == "providers" and len(parts) == 3 and parts[2] in ("base_url", "api_key"):
        if parts[1] not in declared:
            raise ManifestError(
                f"{where} uses provider {parts[1]!r}, which agent.providers does not "
                f"declare: the gateway would not route it (declared: {list(declared)})"
            )
        return
    if parts[0] == "credentials" and len(parts) == 2 and _CREDENTIAL.match(parts[1]):
        owner = next(
            (
                p.name
                for p in PROVIDERS.values()
                if parts[1] in p.key_names or parts[1] == p.base_url_name
            ),
            None,
        )
        if owner is not None:
            raise ManifestError(
                f"{where} reads the {parts[1]} credential directly; it is provider "
                f"{owner!r}'s: declare the provider and use {{providers.{owner}.api_key}} "
                f"and {{providers.{owner}.base_url}} (the gateway keeps the key)"
            )
        return
    raise ManifestError(
        f"{where} has an unknown placeholder {{{name}}}; placeholders: instruction, model, "
        "workdir, agent_dir, python, providers.<name>.base_url, providers.<name>.api_key, "
        "credentials.<NAME> (write {{ and }} for literal braces)"
    )


# --- parsing ------------------------------------------------------------------------------


def _strings(value: Any, where: str, *, allow_empty: bool = True) -> tuple[str, ...]:
    if isinstance(value, str):
        value = [value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ManifestError(f"{where} must be a list of strings")
    if not allow_empty and (not value or not value[0].strip()):
        raise ManifestError(f"{where} is empty")
    return tuple(value)


def _text(table: dict[str, Any], key: str, where: str) -> str | None:
    value = table.get(key)
    if value is None:
        return None
    if not isinstance(value, str):
        raise ManifestError(f"{where}.{key} must be a string")
    return value


def _table(data: dict[str, Any], key: str) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise ManifestError(f"[{key}] must be a table")
    unknown = sorted(set(value) - cast(set[str], _SECTIONS[key]))
    if unknown:
        known = ", ".join(sorted(cast(set[str], _SECTIONS[key])))
        raise ManifestError(f"[{key}] has unknown keys {unknown}; it takes {known}")
    return value


def parse_manifest(text: str, builtin: set[str] | frozenset[str] = frozenset()) -> AgentManifest:
    """The manifest in ``text``, checked; ``builtin``: names a custom agent may not take."""
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ManifestError(f"{MANIFEST_NAME} is not valid TOML: {exc}") from None
    version = data.get("manifest_version")
    if version is None:
        raise ManifestError(
            f"manifest_version is missing: write manifest_version = {MANIFEST_VERSION} "
            "at the top of the manifest"
        )
    if version != MANIFEST_VERSION or isinstance(version, bool):
        raise ManifestError(
            f"manifest_version {version!r} is not supported: this envpools reads "
            f"version {MANIFEST_VERSION}"
        )
    unknown = sorted(set(data) - set(_SECTIONS))
    if unknown:
        raise ManifestError(
            f"unknown sections or keys {unknown}; a manifest has manifest_version, "
            "[agent], [install], [run] and [output]"
        )
    agent, install, run, output = (_table(data, k) for k in ("agent", "install", "run", "output"))

    name = agent.get("name")
    if not isinstance(name, str) or not _NAME.match(name):
        raise ManifestError(
            "agent.name must be 1-40 lower-case letters, digits and dashes, starting with a "
            f"letter (got {name!r})"
        )
    if name in builtin:
        raise ManifestError(f"agent.name {name!r} is a built-in agent's; choose another name")

    providers = _strings(agent.get("providers", []), "agent.providers")
    for item in providers:
        if not _PROVIDER.match(item):
            raise ManifestError(f"agent.providers: {item!r} is not a provider id")

    if "command" not in run:
        raise ManifestError(
            "run.command is missing: the command that starts the agent, for example "
            'command = ["python3", "{agent_dir}/agent.py", "{instruction}"]'
        )
    command = _strings(run["command"], "run.command", allow_empty=False)
    version_command = _strings(run.get("version_command", []), "run.version_command")
    env = run.get("env", {})
    if not isinstance(env, dict) or not all(isinstance(v, str) for v in env.values()):
        raise ManifestError("run.env must be a table of strings")
    for key in env:
        if not _ENV_NAME.match(key) or key in _RESERVED_ENV:
            raise ManifestError(f"run.env: {key!r} cannot be set (the sandbox sets PATH and HOME)")
    stdin = run.get("stdin", "none")
    if stdin not in ("none", "instruction"):
        raise ManifestError(f"run.stdin must be 'none' or 'instruction', not {stdin!r}")

    for where, values in (("run.command", command), ("run.version_command", version_command)):
        for item in values:
            for placeholder in fields(item):
                _check_field(placeholder, where, providers)
                if _is_secret(placeholder):
                    raise ManifestError(
                        f"{where} uses {{{placeholder}}}: a command line is visible to "
                        "every process, so secrets go in [run.env]"
                    )
    programs = (("run.command's program", command[:1]), ("run.version_command", version_command))
    for where, values in programs:
        for item in values:
            if not set(fields(item)) <= _PATH_FIELDS:
                raise ManifestError(f"{where} may use only {{agent_dir}} and {{python}}: {item!r}")
    used_providers: set[str] = set()
    for key, value in env.items():
        for placeholder in fields(value):
            _check_field(placeholder, f"run.env.{key}", providers)
            if placeholder.startswith("providers.") and placeholder.endswith(".base_url"):
                used_providers.add(placeholder.split(".")[1])
    for item in command:
        for placeholder in fields(item):
            if placeholder.startswith("providers.") and placeholder.endswith(".base_url"):
                used_providers.add(placeholder.split(".")[1])
    for item in providers:
        if item not in used_providers:
            raise ManifestError(
                f"provider {item!r} is declared but the agent is never told where the "
                "gateway routes it (the sandbox reaches nothing else): pass "
                f"{{providers.{item}.base_url}} in [run.env] or run.command"
            )

    parser = output.get("parser", FORMAT)
    if parser not in PARSERS:
        raise ManifestError(f"unknown parser {parser!r} in [output]; parsers: {sorted(PARSERS)}")

    files = _strings(install.get("files", []), "install.files")
    for item in files:
        path = PurePosixPath(item)
        if path.is_absolute() or ".." in path.parts or not item.strip():
            raise ManifestError(
                f"install.files: {item!r} must be a path inside the manifest's folder"
            )
    pip = _strings(install.get("pip", []), "install.pip")
    npm = _strings(install.get("npm", []), "install.npm")
    for spec in (*pip, *npm):
        if not spec.strip() or spec.lstrip().startswith("-"):
            raise ManifestError(f"install: {spec!r} is not a package")
    uses = {f for item in (*command, *version_command, *env.values()) for f in fields(item)}
    if "agent_dir" in uses and not files:
        raise ManifestError("run uses {agent_dir} but install.files copies nothing there")
    models = _strings(agent.get("models", []), "agent.models")
    accepts_any = agent.get("accepts_any_model", True)
    if not isinstance(accepts_any, bool):
        raise ManifestError("agent.accepts_any_model must be true or false")
    default_model = _text(agent, "default_model", "agent")
    if default_model is not None and models and not accepts_any and default_model not in models:
        raise ManifestError(f"agent.default_model {default_model!r} is not in agent.models")
    return AgentManifest(
        name=name,
        command=command,
        providers=providers,
        description=_text(agent, "description", "agent") or f"custom agent {name}",
        version=_text(agent, "version", "agent"),
        models=models,
        default_model=default_model,
        accepts_any_model=accepts_any,
        files=files,
        pip=pip,
        npm=npm,
        env=dict(env),
        stdin=stdin,
        version_command=version_command,
        parser=parser,
    )


def load_manifest(path: Path, builtin: set[str] | frozenset[str] = frozenset()) -> AgentManifest:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ManifestError(f"no {MANIFEST_NAME} at {path}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ManifestError(f"{path} cannot be read: {exc}") from None
    return parse_manifest(text, builtin)


# --- the harness ----------------------------------------------------------------------------


class ManifestHarness(Harness):
    """A manifest's agent: its command filled in, its output read by its parser."""

    manifest: ClassVar[AgentManifest]
    custom = True

    def __init__(self) -> None:
        self._parser = PARSERS[self.manifest.parser]()
        super().__init__()
        # One set of counters: the parser's.
        self.usage = self._parser.usage
        self.errors = self._parser.errors
        self.tail = self._parser.tail
        self.transcript = self._parser.transcript
        if self.manifest.providers:
            self.usage.provider = self.manifest.providers[0]

    @property
    def progress(self) -> bool:
        return self._parser.progress

    @progress.setter
    def progress(self, value: bool) -> None:
        self._parser.progress = value

    def providers(self, ctx: AgentContext) -> list[str]:
        return list(self.manifest.providers)

    def required_secret(self, ctx: AgentContext) -> str | None:
        for name in self.manifest.providers:
            if missing := missing_credential(ctx, name):
                return missing
        for item in self.manifest.env.values():
            for placeholder in fields(item):
                if placeholder.startswith("credentials.") and not ctx.secret(placeholder[12:]):
                    wanted = placeholder[12:]
                    return (
                        f"store a {wanted} credential "
                        f"(envpools credentials store {wanted} --type {wanted})"
                    )
        return None

    def invocation(self, ctx: AgentContext) -> Invocation:
        manifest = self.manifest
        model = ctx.model_id or manifest.default_model or ""
        self.usage.model = self.usage.model or model or None
        values = {
            "instruction": ctx.instruction,
            "model": model,
            "workdir": ctx.workdir,
            **manifest._paths(),
        }

        def value(name: str) -> str:
            if name in values:
                return values[name]
            parts = name.split(".")
            if parts[0] == "providers":
                if parts[2] == "api_key":
                    return ctx.placeholder
                return ctx.gateway_urls.get(parts[1], "")
            return ctx.secret(parts[1]) or ""

        command = [fill(item, value) for item in manifest.command]
        env: dict[str, str] = {}
        secret: list[str] = []
        for key, template in manifest.env.items():
            env[key] = fill(template, value)
            if any(_is_secret(f) for f in fields(template)):
                secret.append(key)
        stdin = ctx.instruction.encode() if manifest.stdin == "instruction" else None
        if isinstance(self.transcript, OutputTranscript):
            self.transcript.command = shlex.join(command)
        return Invocation(command, env=env, stdin=stdin, secret_env=tuple(secret))

    def on_line(self, line: str) -> dict[str, Any]:
        return self._parser.on_line(line)

    def diagnose(self) -> str | None:
        return self._parser.diagnose()


def manifest_harness(manifest: AgentManifest) -> type[Harness]:
    """The harness class of a manifest's agent (one class per manifest)."""
    attrs: dict[str, Any] = {
        "name": manifest.name,
        "binary": manifest.program,
        "description": manifest.description,
        "models": manifest.models or None,
        "accepts_any_model": manifest.accepts_any_model,
        "default_model": manifest.default_model,
        "log_name": f"{manifest.name}.txt",
        "manifest": manifest,
    }
    title = "".join(part.title() for part in manifest.name.split("-"))
    return cast(type[Harness], type(f"{title}Harness", (ManifestHarness,), attrs))
