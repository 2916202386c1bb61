"""The agent CLIs a backend can run: installs (npm or pip), tool trees, availability probes.

``envpools agents install codex`` runs ``npm install`` for the pinned package into
``<agents dir>/<harness>/<version>`` (the agents dir is ``<data dir>/agents`` unless
``ENVPOOLS_AGENTS_DIR`` says otherwise) and records it in ``installed.json``. A Python
agent (mini-swe-agent) gets a venv of its own there instead, made with the system Python
the sandbox sees, and a launcher (``python_env.py``). A rollout's sandbox gets that tree
read-only at ``/envpools/agents/<harness>`` with its launchers (``node_modules/.bin``,
or ``envpools-bin``) first on PATH, so npm's relative ``.bin`` links resolve inside.

Folders on ``ENVPOOLS_TOOL_PATH`` keep working: each is bound at its own path, and so is
the real package folder (the nearest ``node_modules``) that any symlink in it points to.

Whether an agent is available is decided by running ``<binary> --version`` inside the
sandbox, as a rollout would, not by looking at the host.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
import tempfile
import threading
import time
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envpools_cli.models import HARNESS_ALIASES
from envpools_cli.server.agents import RESERVED_NAMES
from envpools_cli.server.agents.base import Harness
from envpools_cli.server.agents.custom import CustomAgent, custom_agents
from envpools_cli.server.agents.manifest import AgentManifest
from envpools_cli.server.agents.npm import NpmError, npm_install
from envpools_cli.server.agents.python_env import (
    LAUNCHER_DIR,
    PythonEnvError,
    make_venv,
    pip_install,
    write_launcher,
)
from envpools_cli.server.sandbox.drivers import Mount, SandboxDriver, SandboxSpec, SandboxUser

__all__ = [
    "AGENT_PACKAGES",
    "AgentInstallError",
    "AgentPackage",
    "AgentTools",
    "Availability",
    "InstalledAgent",
    "Probe",
    "ToolTree",
    "canonical_agent",
    "install_agent",
    "install_agents",
    "installed_agents",
    "remove_agent",
]

SANDBOX_AGENTS = "/envpools/agents"
_RECORD = "installed.json"
_SYSTEM_PREFIXES = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/etc/")
_PROBE_TIMEOUT = 60.0
_PARALLEL_INSTALLS = 3
_RECORD_LOCK = threading.Lock()
_SANDBOX_PATH = "/usr/local/bin:/usr/bin:/bin"
_PROBE_SCRIPT = 'command -v "$0" >/dev/null || exit 127; exec "$0" --version'
_RUN_SCRIPT = 'command -v "$0" >/dev/null || exit 127; exec "$@"'
_EXISTS_SCRIPT = (
    'p=$(command -v "$0") || exit 127; test -x "$p" || { echo "$0 is not executable"; exit 126; }'
)


@dataclass(frozen=True)
class Probe:
    """How to tell that an agent's CLI runs: a shell script and its arguments."""

    script: str
    args: tuple[str, ...]
    hint: str
    """What to do when the command is not there."""
    version: str | None = None
    """The version to report when the script does not print one."""

    def shown(self, binary: str) -> str:
        if self.script == _PROBE_SCRIPT:
            return f"{binary} --version"
        return " ".join(self.args[1:]) or binary


@dataclass(frozen=True)
class AgentPackage:
    harness: str
    package: str
    version: str
    """The default version: the one this release of envpools is tested with."""
    binary: str
    registry: str = "npm"
    """``npm`` (a Node.js CLI) or ``pypi`` (a Python package in a venv of its own)."""
    module: str | None = None
    """For ``pypi``: what the launcher runs with ``python -m``."""
    executables: tuple[str, ...] = ()
    """Globs of files the package ships without their executable bit (made executable)."""

    @property
    def bin_dir(self) -> str:
        """Where the installed tree keeps what goes on PATH."""
        return "node_modules/.bin" if self.registry == "npm" else LAUNCHER_DIR

    def spec(self, version: str) -> str:
        if self.registry == "npm":
            return f"{self.package}@{version}"
        return f"{self.package}=={version}"


AGENT_PACKAGES: dict[str, AgentPackage] = {
    p.harness: p
    for p in (
        AgentPackage("codex", "@openai/codex", "0.171.0", "codex"),
        AgentPackage("claude-code", "@anthropic-ai/claude-code", "2.1.332", "claude"),
        AgentPackage("opencode", "opencode-ai", "1.18.33", "opencode"),
        AgentPackage("gemini-cli", "@google/gemini-cli", "0.61.0", "gemini"),
        AgentPackage(
            "qwen-code",
            "@qwen-code/qwen-code",
            "0.24.4",
            "qwen",
            # Its bundled ripgrep is published 0644: qwen would fall back to a slow grep.
            executables=("node_modules/@qwen-code/qwen-code/vendor/ripgrep/*/rg",),
        ),
        AgentPackage(
            "mini-swe-agent",
            "mini-swe-agent",
            "2.4.6",
            "mini-swe-agent",
            registry="pypi",
            module="minisweagent.run.mini",
        ),
    )
}


def canonical_agent(name: str) -> str:
    """The harness name for ``name`` (``claude`` is ``claude-code``)."""
    return HARNESS_ALIASES.get(name, name)


class AgentInstallError(Exception):
    """An install that could not be done, with what to do about it."""


@dataclass(frozen=True)
class InstalledAgent:
    harness: str
    package: str
    version: str
    root: Path
    installed_at: str
    binary: str
    bin_dir: str = "node_modules/.bin"

    @property
    def sandbox_root(self) -> str:
        return f"{SANDBOX_AGENTS}/{self.harness}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "harness": self.harness,
            "package": self.package,
            "version": self.version,
            "path": str(self.root),
            "installed_at": self.installed_at,
            "binary": self.binary,
        }


def _read_record(agents_dir: Path) -> dict[str, Any]:
    try:
        loaded = json.loads((agents_dir / _RECORD).read_text())
    except (FileNotFoundError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _read_json_file(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


def _write_record(agents_dir: Path, record: dict[str, Any]) -> None:
    staged = agents_dir / f".{_RECORD}.{os.getpid()}"
    staged.write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
    os.replace(staged, agents_dir / _RECORD)


def installed_agents(agents_dir: Path) -> dict[str, InstalledAgent]:
    """The recorded installs whose folder still exists."""
    found = {}
    for harness, entry in _read_record(agents_dir).items():
        package = AGENT_PACKAGES.get(harness)
        if package is None or not isinstance(entry, dict):
            continue
        root = agents_dir / str(entry.get("path", ""))
        if not entry.get("path") or not root.is_dir():
            continue
        found[harness] = InstalledAgent(
            harness=harness,
            package=str(entry.get("package") or package.package),
            version=str(entry.get("version", "")),
            root=root,
            installed_at=str(entry.get("installed_at", "")),
            binary=package.binary,
            bin_dir=package.bin_dir,
        )
    return found


def is_version(text: str) -> bool:
    """An npm version as we pass it on: letters, digits, dots and dashes (never a shell word)."""
    return bool(text) and text.replace(".", "").replace("-", "").isalnum() and text.isascii()


def install_agent(
    agents_dir: Path,
    harness: str,
    version: str | None = None,
    *,
    force: bool = False,
    npm: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> tuple[InstalledAgent, bool]:
    """Install ``harness`` with npm or pip; (the install, whether anything was installed)."""
    harness = canonical_agent(harness)
    package = AGENT_PACKAGES.get(harness)
    if package is None:
        raise AgentInstallError(
            f"no agent named {harness!r}; installable agents: {', '.join(sorted(AGENT_PACKAGES))}"
        )
    version = version or package.version
    if not is_version(version):
        raise AgentInstallError(f"{version!r} is not a version (for example {package.version})")
    current = installed_agents(agents_dir).get(harness)
    if current is not None and current.version == version and not force:
        return current, False
    if package.registry == "npm":
        npm = npm or shutil.which("npm")
        if npm is None:
            raise AgentInstallError(
                "npm is not installed: install Node.js 18 or newer with npm "
                "(for example `apt-get install nodejs npm`), then run this again"
            )
    agents_dir.mkdir(parents=True, exist_ok=True, mode=0o755)
    home = agents_dir / harness
    home.mkdir(exist_ok=True, mode=0o755)
    staging = Path(tempfile.mkdtemp(prefix=".install-", dir=home))
    try:
        if package.registry == "npm":
            assert npm is not None
            try:
                npm_install(npm, staging, [package.spec(version)], progress)
            except NpmError as exc:
                raise AgentInstallError(str(exc)) from None
        else:
            _python_install(staging, package, version, progress)
        for pattern in package.executables:
            for path in staging.glob(pattern):
                path.chmod(path.stat().st_mode | 0o111)
        binary = staging / package.bin_dir / package.binary
        reported = _version_of(binary)
        if reported is None:
            raise AgentInstallError(
                f"{package.spec(version)} was installed but `{package.binary} --version` "
                "does not run; this platform may not be supported by that version"
            )
        progress(f"{package.binary} --version: {reported}")
        target = home / version
        staging.chmod(0o755)
        if target.exists():
            shutil.rmtree(target)
        os.replace(staging, target)
    finally:
        if staging.exists():
            shutil.rmtree(staging, ignore_errors=True)
    with _RECORD_LOCK:  # installs run side by side (install_agents)
        record = _read_record(agents_dir)
        previous = record.get(harness) if isinstance(record.get(harness), dict) else None
        record[harness] = {
            "package": package.package,
            "version": version,
            "path": f"{harness}/{version}",
            "installed_at": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "reported_version": reported,
        }
        _write_record(agents_dir, record)
    if previous and previous.get("path") != record[harness]["path"]:
        shutil.rmtree(agents_dir / str(previous.get("path")), ignore_errors=True)
    result = installed_agents(agents_dir)[harness]
    return result, True


def _python_install(
    staging: Path, package: AgentPackage, version: str, progress: Callable[[str], None]
) -> None:
    assert package.module is not None
    try:
        make_venv(staging)
        pip_install(staging, [package.spec(version)], progress)
    except PythonEnvError as exc:
        raise AgentInstallError(str(exc)) from None
    write_launcher(staging, package.binary, package.package, package.module)


def install_agents(
    agents_dir: Path,
    harnesses: list[str],
    version: str | None = None,
    *,
    force: bool = False,
    progress: Callable[[str, str], None] = lambda _agent, _message: None,
) -> dict[str, tuple[InstalledAgent, bool] | AgentInstallError]:
    """Install several agents side by side (npm and pip mostly wait on the network)."""
    unique = list(dict.fromkeys(canonical_agent(h) for h in harnesses))
    if not unique:
        return {}

    def one(harness: str) -> tuple[InstalledAgent, bool] | AgentInstallError:
        try:
            return install_agent(
                agents_dir,
                harness,
                version,
                force=force,
                progress=lambda message: progress(harness, message),
            )
        except AgentInstallError as exc:
            return exc
        except OSError as exc:  # e.g. an agents dir that cannot be written
            return AgentInstallError(f"{harness} could not be installed: {exc}")

    with ThreadPoolExecutor(min(_PARALLEL_INSTALLS, len(unique))) as pool:
        return dict(zip(unique, pool.map(one, unique), strict=True))


def remove_agent(agents_dir: Path, harness: str) -> InstalledAgent | None:
    harness = canonical_agent(harness)
    current = installed_agents(agents_dir).get(harness)
    with _RECORD_LOCK:
        record = _read_record(agents_dir)
        if record.pop(harness, None) is not None:
            _write_record(agents_dir, record)
    if current is not None:
        shutil.rmtree(current.root, ignore_errors=True)
    return current


def _version_of(binary: Path) -> str | None:
    try:
        done = subprocess.run(
            [str(binary), "--version"],
            capture_output=True,
            text=True,
            timeout=_PROBE_TIMEOUT,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    lines = done.stdout.strip().splitlines()
    return lines[-1].strip() if done.returncode == 0 and lines else None


# --- what a sandbox gets -----------------------------------------------------------------


@dataclass
class ToolTree:
    """Read-only mounts and PATH entries that make an agent's CLI runnable in a sandbox."""

    mounts: list[Mount] = field(default_factory=list)
    path: list[str] = field(default_factory=list)
    source: str = "system"
    version: str | None = None


def _package_folder(target: Path) -> Path:
    """The folder to bind so that ``target`` and its package's siblings resolve."""
    for parent in target.parents:
        if parent.name == "node_modules":
            return parent
    return target.parent


def tool_path_tree(tool_paths: Iterable[Path]) -> ToolTree:
    """Mounts for ``ENVPOOLS_TOOL_PATH``: each folder, and what its symlinks point into."""
    tree = ToolTree(source="ENVPOOLS_TOOL_PATH")
    folders: list[Path] = []
    for folder in tool_paths:
        if not folder.is_dir():
            continue
        folders.append(folder)
        tree.path.append(str(folder))
        with contextlib.suppress(OSError):
            for entry in folder.iterdir():
                if not entry.is_symlink():
                    continue
                real = entry.resolve()
                inside = real.is_relative_to(folder.resolve())
                if inside or str(real).startswith(_SYSTEM_PREFIXES) or not real.exists():
                    continue
                folders.append(_package_folder(real))
    kept: list[Path] = []
    for folder in sorted(set(folders), key=lambda p: len(p.parts)):
        if not any(folder.is_relative_to(k) for k in kept):
            kept.append(folder)
    tree.mounts = [Mount(p, str(p)) for p in kept]
    return tree


@dataclass(frozen=True)
class Availability:
    available: bool
    reason: str | None = None
    version: str | None = None
    source: str | None = None


class AgentTools:
    """The agent CLIs of one backend: where each comes from and whether it runs."""

    def __init__(
        self,
        agents_dir: Path,
        tool_paths: list[Path],
        driver: SandboxDriver,
        users: tuple[Callable[[], SandboxUser], Callable[[SandboxUser], None]] | None = None,
        checks_file: Path | None = None,
    ) -> None:
        self.agents_dir = agents_dir
        self.checks_file = checks_file
        """Where successful checks are remembered across processes (``agents list``)."""
        self.tool_paths = tool_paths
        self.driver = driver
        self.users = users
        """Take and release a sandbox uid: the probe runs as a rollout would."""
        self._probes: dict[tuple[Any, ...], tuple[float, Availability]] = {}
        self._lock = threading.Lock()

    def installed(self) -> dict[str, InstalledAgent]:
        return installed_agents(self.agents_dir)

    def custom(self) -> dict[str, CustomAgent]:
        return custom_agents(self.agents_dir, RESERVED_NAMES)[0]

    def tree(self, harness: str) -> ToolTree:
        """What the sandbox of ``harness`` mounts: its install, else the tool path."""
        shared = tool_path_tree(self.tool_paths)
        install = self.installed().get(harness)
        if install is not None:
            own = Mount(install.root, install.sandbox_root)
            return ToolTree(
                mounts=[own, *shared.mounts],
                path=[f"{install.sandbox_root}/{install.bin_dir}", *shared.path],
                source=f"envpools agents install ({install.package}@{install.version})",
                version=install.version,
            )
        agent = self.custom().get(harness) if harness not in AGENT_PACKAGES else None
        if agent is None:
            return shared
        root = agent.manifest.sandbox_root
        path = [f"{root}/node_modules/.bin"] if agent.has_npm else []
        return ToolTree(
            mounts=[Mount(agent.root, root), *shared.mounts],
            path=[*path, *shared.path],
            source=f"envpools agents add ({agent.source})",
            version=agent.manifest.version,
        )

    def availability_of(self, harness: type[Harness]) -> Availability:
        """Whether ``harness`` runs here: its CLI answers in the sandbox, as a rollout's would."""
        manifest: AgentManifest | None = getattr(harness, "manifest", None)
        if manifest is None or harness.binary is None:
            return self.availability(harness.name, harness.binary)
        agent = self.custom().get(harness.name)
        source = agent.source if agent is not None else "PATH"
        hint = f"add it again with `envpools agents add {source} --force`"
        if manifest.version_command:
            version = manifest.filled(manifest.version_command)
            probe = Probe(_RUN_SCRIPT, (harness.binary, *version), hint)
        else:
            probe = Probe(_EXISTS_SCRIPT, (harness.binary,), hint, manifest.version)
        return self.availability(harness.name, harness.binary, probe)

    def availability(
        self, harness: str, binary: str | None, probe: Probe | None = None
    ) -> Availability:
        """Whether ``binary`` runs in this backend's sandbox (cached while nothing changes)."""
        if binary is None:
            return Availability(True)
        tree = self.tree(harness)
        probe = probe or Probe(
            _PROBE_SCRIPT,
            (binary,),
            f"install it with `envpools agents install {harness}`",
        )
        key = (harness, binary, probe, *self._fingerprint(tree))
        with self._lock:
            cached = self._probes.get(key)
        if cached is not None and (cached[1].available or time.monotonic() - cached[0] < 30):
            return cached[1]
        remembered = self._remembered(key)
        if remembered is not None:
            return remembered
        result = self._probe(harness, binary, tree, probe)
        with self._lock:
            self._probes[key] = (time.monotonic(), result)
        if result.available:
            self._remember(key, result)
        return result

    def _disk_key(self, key: tuple[Any, ...]) -> str:
        return json.dumps([self.driver.name, repr(key)])

    def _remembered(self, key: tuple[Any, ...]) -> Availability | None:
        """A success recorded by an earlier process for exactly this install and probe."""
        if self.checks_file is None:
            return None
        entry = _read_json_file(self.checks_file).get(self._disk_key(key))
        if not isinstance(entry, dict):
            return None
        return Availability(True, version=entry.get("version"), source=entry.get("source"))

    def _remember(self, key: tuple[Any, ...], result: Availability) -> None:
        if self.checks_file is None:
            return
        with self._lock, contextlib.suppress(OSError):
            known = _read_json_file(self.checks_file)
            known[self._disk_key(key)] = {"version": result.version, "source": result.source}
            staged = self.checks_file.with_name(f".{self.checks_file.name}.{os.getpid()}")
            staged.write_text(json.dumps(known, indent=1, sort_keys=True) + "\n")
            os.replace(staged, self.checks_file)

    @staticmethod
    def _fingerprint(tree: ToolTree) -> tuple[Any, ...]:
        stamps = []
        for mount in tree.mounts:
            with contextlib.suppress(OSError):
                stamps.append((str(mount.source), mount.source.stat().st_mtime_ns))
        return (tuple(tree.path), tuple(stamps))

    def _probe(self, harness: str, binary: str, tree: ToolTree, probe: Probe) -> Availability:
        user = self.users[0]() if self.users else None
        with tempfile.TemporaryDirectory(prefix="envpools-probe-") as scratch:
            workspace = Path(scratch)
            workspace.chmod(0o755)  # the sandbox's own uid starts in it
            base = _SANDBOX_PATH if self.driver.isolated else os.environ.get("PATH", "")
            search = ":".join([*tree.path, base])
            spec = SandboxSpec(
                command=["/bin/sh", "-c", probe.script, *probe.args],
                workspace=workspace,
                workdir="/app" if self.driver.isolated else str(workspace),
                mounts=list(tree.mounts),
                env={"PATH": search},
                user=user,
            )
            lines: list[str] = []
            try:
                result = self.driver.run(
                    spec, timeout=_PROBE_TIMEOUT, cancel=threading.Event(), on_line=lines.append
                )
            except OSError as exc:
                return Availability(False, f"the sandbox could not start: {exc}")
            finally:
                if self.users and user is not None:
                    self.users[1](user)
        output = "\n".join(lines[-5:]).strip()
        shown = probe.shown(binary)
        if result.timed_out:
            return Availability(False, f"`{shown}` hung in the sandbox", source=tree.source)
        if result.exit_code == 127 and not lines:
            return Availability(
                False,
                f"the {binary!r} command is not installed: {probe.hint}",
                source=tree.source,
            )
        if result.exit_code != 0:
            again = probe.hint.replace("install it with", "reinstall it with")
            if again.endswith(f"install {harness}`"):
                again = again[:-1] + " --force`"
            return Availability(
                False,
                f"`{shown}` failed in the sandbox (exit {result.exit_code}): "
                f"{output[-300:] or 'no output'}; {again}",
                source=tree.source,
            )
        version = probe.version or (lines[-1].strip() if lines else None)
        return Availability(True, version=version, source=tree.source)
