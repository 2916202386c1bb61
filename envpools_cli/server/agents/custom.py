"""Custom agents on disk: ``envpools agents add PATH|PACKAGE``, listing and removal.

Each lives in ``<agents dir>/custom/<name>/``, which a rollout's sandbox mounts read-only
at ``/envpools/agents/<name>``::

    agent.toml      the manifest (manifest.py), as added
    record.json     where it came from and when
    files/          install.files, copied from beside the manifest   -> {agent_dir}
    venv/           install.pip, or the PACKAGE, with the sandbox's Python -> {python}
    node_modules/   install.npm; its .bin goes first on PATH

``PATH`` is a folder holding ``agent.toml`` (or the file itself). Anything else is a
``PACKAGE`` for pip (a requirement such as ``my-agent==1.2``, a wheel, a project folder):
it is installed into the agent's venv, and one of its distributions names its manifest
with an ``envpools.agents`` entry point whose value is the Python package that holds
``agent.toml`` (``my-agent = "my_agent"``). Its run command uses ``{python}``.

Everything is staged next to the final folder and swapped in only once it is complete
and checked, so a failed ``add`` leaves the previous agent of that name as it was.
"""

from __future__ import annotations

import contextlib
import importlib.metadata
import json
import os
import shutil
import tempfile
import threading
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envpools_cli.server.agents.manifest import (
    FILES_DIR,
    MANIFEST_NAME,
    VENV_DIR,
    AgentManifest,
    ManifestError,
    load_manifest,
)
from envpools_cli.server.agents.npm import NpmError, npm_install
from envpools_cli.server.agents.python_env import PythonEnvError, make_venv, pip_install

__all__ = [
    "ENTRY_POINT_GROUP",
    "AgentAddError",
    "CustomAgent",
    "add_agent",
    "custom_agents",
    "remove_custom_agent",
]

CUSTOM_DIR = "custom"
ENTRY_POINT_GROUP = "envpools.agents"
_RECORD = "record.json"
_SANDBOX_PATH = ("/usr/local/bin", "/usr/bin", "/bin")
_VISIBLE = ("/usr/", "/bin/", "/sbin/", "/lib/", "/lib64/", "/etc/", "/opt/")


class AgentAddError(Exception):
    """``agents add`` could not add the agent, and why.

    ``invalid``: the manifest or package is wrong (fix it); else its install failed
    (npm, pip, the network), and trying again may work.
    """

    def __init__(self, message: str, *, invalid: bool = True) -> None:
        super().__init__(message)
        self.invalid = invalid


@dataclass(frozen=True)
class CustomAgent:
    manifest: AgentManifest
    root: Path
    source: str
    added_at: str
    package: str | None = None

    @property
    def has_npm(self) -> bool:
        return (self.root / "node_modules").is_dir()

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.manifest.describe(),
            "path": str(self.root),
            "source": self.source,
            "package": self.package,
            "added_at": self.added_at,
        }


def custom_dir(agents_dir: Path) -> Path:
    return agents_dir / CUSTOM_DIR


_cache: dict[Path, tuple[tuple[Any, ...], dict[str, CustomAgent], dict[str, str]]] = {}
_cache_lock = threading.Lock()


def _stamp(folder: Path) -> tuple[Any, ...]:
    stamps: list[Any] = []
    with contextlib.suppress(OSError):
        stamps.append(folder.stat().st_mtime_ns)
        for entry in sorted(folder.iterdir()):
            with contextlib.suppress(OSError):
                stamps.append((entry.name, (entry / MANIFEST_NAME).stat().st_mtime_ns))
    return tuple(stamps)


def custom_agents(
    agents_dir: Path, builtin: frozenset[str] = frozenset()
) -> tuple[dict[str, CustomAgent], dict[str, str]]:
    """The custom agents added here, and those whose folder no longer holds a valid one."""
    folder = custom_dir(agents_dir)
    stamp = (_stamp(folder), builtin)
    with _cache_lock:
        cached = _cache.get(folder)
    if cached is not None and cached[0] == stamp:
        return dict(cached[1]), dict(cached[2])
    found: dict[str, CustomAgent] = {}
    broken: dict[str, str] = {}
    with contextlib.suppress(OSError):
        for entry in sorted(folder.iterdir()):
            if entry.name.startswith(".") or not entry.is_dir():
                continue
            try:
                manifest = load_manifest(entry / MANIFEST_NAME, builtin)
            except ManifestError as exc:
                broken[entry.name] = str(exc)
                continue
            if manifest.name != entry.name:
                broken[entry.name] = f"its manifest names another agent ({manifest.name!r})"
                continue
            record = _read_json(entry / _RECORD)
            found[manifest.name] = CustomAgent(
                manifest=manifest,
                root=entry,
                source=str(record.get("source", "")),
                added_at=str(record.get("added_at", "")),
                package=record.get("package"),
            )
    with _cache_lock:
        _cache[folder] = (stamp, found, broken)
    return dict(found), dict(broken)


def _read_json(path: Path) -> dict[str, Any]:
    try:
        loaded = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return loaded if isinstance(loaded, dict) else {}


# --- adding --------------------------------------------------------------------------------


def _manifest_path(source: str) -> Path | None:
    """The manifest ``source`` names (a folder holding one, or the file), else None."""
    path = Path(source).expanduser()
    if path.is_dir() and (path / MANIFEST_NAME).is_file():
        return path / MANIFEST_NAME
    if path.is_file() and path.suffix == ".toml":
        return path
    return None


def add_agent(
    agents_dir: Path,
    source: str,
    *,
    builtin: frozenset[str] = frozenset(),
    force: bool = False,
    npm: str | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> CustomAgent:
    """Check, install and register the agent at ``source`` (PATH or PACKAGE)."""
    folder = custom_dir(agents_dir)
    folder.mkdir(parents=True, exist_ok=True, mode=0o755)
    stage = Path(tempfile.mkdtemp(prefix=".add-", dir=folder))
    try:
        manifest_file = _manifest_path(source)
        if manifest_file is not None:
            manifest = load_manifest(manifest_file, builtin)
            _refuse_existing(folder, manifest.name, force)
            shutil.copyfile(manifest_file, stage / MANIFEST_NAME)
            record: dict[str, Any] = {"source": str(manifest_file.parent.resolve())}
            _install(manifest, manifest_file.parent, stage, npm, progress)
        else:
            manifest = _install_package(source, stage, builtin, progress)
            _refuse_existing(folder, manifest.name, force)
            record = {"source": source, "package": source}
        _check_program(manifest, stage)
        record["added_at"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        record["name"] = manifest.name
        (stage / _RECORD).write_text(json.dumps(record, indent=2, sort_keys=True) + "\n")
        stage.chmod(0o755)
        target = folder / manifest.name
        if target.exists():
            old = folder / f".old-{manifest.name}-{os.getpid()}"
            os.replace(target, old)
            os.replace(stage, target)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.replace(stage, target)
    except ManifestError as exc:
        raise AgentAddError(str(exc)) from None
    finally:
        if stage.exists():
            shutil.rmtree(stage, ignore_errors=True)
    found, broken = custom_agents(agents_dir, builtin)
    if manifest.name not in found:
        raise AgentAddError(broken.get(manifest.name, f"{manifest.name} did not register"))
    return found[manifest.name]


def _refuse_existing(folder: Path, name: str, force: bool) -> None:
    if (folder / name).exists() and not force:
        raise AgentAddError(
            f"a custom agent named {name!r} is already added: `envpools agents add "
            "--force` replaces it, `envpools agents remove` removes it"
        )


def _install(
    manifest: AgentManifest,
    source_dir: Path,
    stage: Path,
    npm: str | None,
    progress: Callable[[str], None],
) -> None:
    files = stage / FILES_DIR
    for item in manifest.files:
        origin = source_dir / item
        if not origin.exists():
            raise ManifestError(
                f"install.files: {item!r} does not exist next to the manifest ({source_dir})"
            )
        target = files / item
        target.parent.mkdir(parents=True, exist_ok=True)
        if origin.is_dir():
            shutil.copytree(origin, target, dirs_exist_ok=True)
        else:
            shutil.copy2(origin, target)
    if files.exists():
        for path in [files, *files.rglob("*")]:
            mode = path.stat().st_mode
            # Readable by the sandbox's own user; executable bits kept as given.
            path.chmod(mode | 0o444 | (0o111 if path.is_dir() or mode & 0o100 else 0))
    if manifest.pip:
        try:
            make_venv(stage / VENV_DIR)
            pip_install(stage / VENV_DIR, manifest.pip, progress)
        except PythonEnvError as exc:
            raise AgentAddError(str(exc), invalid=False) from None
    if manifest.npm:
        npm = npm or shutil.which("npm")
        if npm is None:
            raise AgentAddError(
                "install.npm needs npm: install Node.js with npm first", invalid=False
            )
        try:
            npm_install(npm, stage, manifest.npm, progress)
        except NpmError as exc:
            raise AgentAddError(str(exc), invalid=False) from None


def _install_package(
    source: str, stage: Path, builtin: frozenset[str], progress: Callable[[str], None]
) -> AgentManifest:
    path = Path(source).expanduser()
    spec = str(path.resolve()) if path.exists() else source
    if not path.exists() and (not source.strip() or source.startswith("-")):
        raise AgentAddError(f"{source!r} is neither a manifest nor a package")
    venv = stage / VENV_DIR
    try:
        make_venv(venv)
        pip_install(venv, [spec], progress)
    except PythonEnvError as exc:
        raise AgentAddError(str(exc), invalid=False) from None
    found = []
    for site in sorted(venv.glob("lib/python*/site-packages")):
        for dist in importlib.metadata.distributions(path=[str(site)]):
            for entry in dist.entry_points.select(group=ENTRY_POINT_GROUP):
                found.append((site, dist.metadata["Name"], entry))
    if not found:
        raise AgentAddError(
            f"{source} has no {ENTRY_POINT_GROUP!r} entry point: a packaged agent declares "
            f'[project.entry-points."{ENTRY_POINT_GROUP}"] my-agent = "my_agent" where '
            f"the Python package my_agent holds {MANIFEST_NAME}"
        )
    if len(found) > 1:
        names = sorted(f"{dist}:{entry.name}" for _, dist, entry in found)
        raise AgentAddError(f"{source} declares several agents ({names}); add one per package")
    site, _, entry = found[0]
    module = entry.value.split(":", 1)[0].strip()
    manifest_file = site.joinpath(*module.split(".")) / MANIFEST_NAME
    manifest = load_manifest(manifest_file, builtin)
    if manifest.files or manifest.pip or manifest.npm:
        raise ManifestError(
            "a packaged agent's manifest installs nothing itself ([install] is empty): "
            "its package and that package's dependencies are its install"
        )
    shutil.copyfile(manifest_file, stage / MANIFEST_NAME)
    return manifest


def _check_program(manifest: AgentManifest, stage: Path) -> None:
    """Refuse a command that cannot start: its program is not installed anywhere."""
    program = manifest.program
    root = manifest.sandbox_root + "/"
    if program.startswith(root):
        path = stage / program[len(root) :]
        if not path.exists():
            where = {
                FILES_DIR: "install.files",
                VENV_DIR: "install.pip (or a PACKAGE)",
            }.get(program[len(root) :].split("/", 1)[0], "the install")
            raise AgentAddError(
                f"run.command's program {program} is missing: {where} does not provide it"
            )
        if not os.access(path, os.X_OK):
            raise AgentAddError(
                f"run.command's program {program} is not executable: `chmod +x` it, or run "
                "it with an interpreter (for example python3 {agent_dir}/agent.py)"
            )
        return
    if "/" in program:
        if not program.startswith(_VISIBLE):
            raise AgentAddError(
                f"run.command's program {program} is outside what the sandbox sees "
                "(/usr, /bin, /opt and the agent's own folder)"
            )
        if not os.access(program, os.X_OK):
            raise AgentAddError(f"run.command's program {program} does not exist here")
        return
    if (stage / "node_modules" / ".bin" / program).exists():
        return
    if shutil.which(program, path=os.pathsep.join(_SANDBOX_PATH)) is None:
        raise AgentAddError(
            f"run.command's program {program!r} is not installed: it is not on the "
            f"sandbox's PATH ({':'.join(_SANDBOX_PATH)}) nor among install.npm's commands"
        )


# --- removing ------------------------------------------------------------------------------


def remove_custom_agent(agents_dir: Path, name: str) -> bool:
    target = custom_dir(agents_dir) / name
    if not target.is_dir() or name.startswith("."):
        return False
    old = custom_dir(agents_dir) / f".old-{name}-{os.getpid()}"
    os.replace(target, old)
    shutil.rmtree(old, ignore_errors=True)
    return True
