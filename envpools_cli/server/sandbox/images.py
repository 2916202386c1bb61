"""Task images: built from ``environment/Dockerfile`` with the engine's own builder, cached.

An image is named for its task and a hash of everything that goes into it: every file of
``environment/`` (names, modes, contents, link targets), the Dockerfile as built, and the
ids of its base images. A second rollout of an unchanged task finds the image and builds
nothing; a changed file, or a re-made base image, builds a new one.

``[environment] docker_image`` in ``task.toml`` is used as it is (pulled if missing).
Base images that cannot be pulled here can be mapped to local ones with
``ENVPOOLS_IMAGE_MAP`` (``python:3.12-slim=localhost/envpools/bookworm,...``): the build
uses the local image instead, and the rollout's events say so.

The Dockerfile and its context are the task's, so a build treats them as hostile, in
layers that each stop the known builder escapes on their own:

- the context is copied into a folder of the backend's first, without any symbolic
  link that leads out of it (``build_context``);
- ``RUN`` flags other than ``--mount=type=tmpfs`` are refused (``dockerfile``), unless
  ``ENVPOOLS_BUILD_MOUNTS=allow`` and the build is isolated or the engine has no known
  builder escape;
- a build that runs anything (a ``RUN``) runs without host privileges: with a root
  backend on podman, in the build sandbox (``build_sandbox``: a user namespace of
  unprivileged uids, a store of its own, user-mode network). A Dockerfile without
  ``RUN`` runs nothing of the task's and is built by the engine directly.

Engine versions with known builder escapes (``engine.builder_advisories``) are named in
``local status`` and ``capabilities``. Builds run with explicit ulimits and the task's
``build_timeout_sec``; their output becomes ``environment`` events. Images this module
made carry the label ``envpools.managed=env``: ``envpools local images list|prune``
see those and nothing else.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import tarfile
import tempfile
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, Protocol

from envpools_cli.server.sandbox.build_context import copy_context
from envpools_cli.server.sandbox.build_sandbox import BuildSandbox
from envpools_cli.server.sandbox.dockerfile import (
    DockerfileRefused,
    check_dockerfile,
    runs_commands,
)
from envpools_cli.server.sandbox.engine import MANAGED_LABEL, ContainerRuntime, builder_advisories

__all__ = [
    "BuildFailed",
    "ImageInfo",
    "Images",
    "environment_hash",
    "normalize_ref",
    "parse_image_map",
]

HASH_LABEL = "envpools.env-hash"
TASK_LABEL = "envpools.task"
_FORMAT = "envpools-image-2"
"""Part of every hash: a change in how images are built makes new ones."""
_TAIL = 12
_STOP_GRACE_SEC = 5.0
_DESCRIBE_WAIT_SEC = 2.0
"""How long status waits for the build sandbox's check under way (health checks poll it)."""
_FROM = re.compile(r"^(\s*FROM\s+)((?:--\S+\s+)*)(\S+)(.*)$", re.I | re.M)


#: How long a base image that could not be pulled is taken as unavailable: the rollouts
#: after the first (a job's, a pool's) fail over or fail at once instead of each waiting
#: on the registry again. An image loaded meanwhile is found all the same.
UNPULLABLE_SEC = 300.0


class BuildFailed(Exception):
    """An image could not be had; ``code`` becomes the rollout's error code.

    For ``image_unavailable``: ``image`` is the image that could not be had, ``summary``
    says so without advice, and ``fixes`` are the ways out ``message`` lists.
    """

    def __init__(
        self,
        code: str,
        message: str,
        *,
        image: str | None = None,
        summary: str | None = None,
        fixes: tuple[str, ...] = (),
    ) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.image = image
        self.summary = summary or message
        self.fixes = fixes


class Stop(Exception):
    """The build was cancelled."""


def normalize_ref(ref: str) -> str:
    """``python:3.12`` and ``docker.io/library/python:3.12`` name the same image."""
    name, _, digest = ref.partition("@")
    last = name.rsplit("/", 1)[-1]
    if ":" not in last and not digest:
        name += ":latest"
    first = name.split("/", 1)[0]
    if "/" not in name:
        name = f"docker.io/library/{name}"
    elif "." not in first and ":" not in first and first != "localhost":
        name = f"docker.io/{name}"
    return f"{name}@{digest}" if digest else name


def parse_image_map(text: str | None) -> dict[str, str]:
    """``FROM=TO,FROM=TO`` (``ENVPOOLS_IMAGE_MAP``): registry images and their local stand-ins."""
    found: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        source, sep, target = item.partition("=")
        if not sep or not source.strip() or not target.strip():
            raise ValueError(f"{item.strip()!r}: expected IMAGE=LOCAL_IMAGE")
        found[normalize_ref(source.strip())] = target.strip()
    return found


def environment_hash(context: Path, dockerfile: str, bases: list[str]) -> str:
    """A digest of what an image is built from (see the module's docstring)."""
    digest = hashlib.sha256()
    digest.update(f"{_FORMAT}\0{dockerfile}\0{','.join(bases)}\0".encode())
    for path in _walk(context):
        relative = path.relative_to(context).as_posix()
        info = path.lstat()
        if stat.S_ISLNK(info.st_mode):
            digest.update(f"L\0{relative}\0{os.readlink(path)}\0".encode())
        elif stat.S_ISDIR(info.st_mode):
            digest.update(f"D\0{relative}\0{info.st_mode & 0o7777:o}\0".encode())
        elif stat.S_ISREG(info.st_mode):
            digest.update(f"F\0{relative}\0{info.st_mode & 0o7777:o}\0{info.st_size}\0".encode())
            with path.open("rb") as handle:
                for chunk in iter(lambda: handle.read(1 << 20), b""):
                    digest.update(chunk)
    return digest.hexdigest()


def _walk(root: Path) -> Iterator[Path]:
    if not root.is_dir():
        return
    for entry in sorted(root.iterdir(), key=lambda p: p.name):
        yield entry
        if entry.is_dir() and not entry.is_symlink():
            yield from _walk(entry)


def _bases(dockerfile: str) -> list[str]:
    """The base images a Dockerfile pulls in (not ``scratch``, earlier stages or ``$ARG``s)."""
    bases: list[str] = []
    names: set[str] = set()
    for match in _FROM.finditer(dockerfile):
        image = match[3]
        alias = re.match(r"\s+AS\s+(\S+)", match[4] or "", re.I)
        if image.lower() != "scratch" and image.lower() not in names and "$" not in image:
            bases.append(image)
        if alias:
            names.add(alias[1].lower())
    return bases


def _swap_from(match: re.Match[str], *, substitutions: dict[str, str]) -> str:
    target = substitutions.get(match[3])
    return f"{match[1]}{match[2]}{target}{match[4]}" if target else match[0]


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9._-]+", "-", name.lower()).strip("-._")
    return (slug or "task")[:60]


@dataclass
class ImageInfo:
    ref: str
    image_id: str
    workdir: str | None
    env: dict[str, str] = field(default_factory=dict)
    user: str | None = None
    built: bool = False
    """Built by this call (False: found in the cache, or given by the task)."""
    substitutions: dict[str, str] = field(default_factory=dict)


class BuildEvents(Protocol):
    """Where a build reports: status lines and the builder's own output (the runner's)."""

    def status(self, message: str, **data: Any) -> None: ...

    def line(self, text: str) -> None: ...


class Images:
    """The task images of one backend on one engine."""

    def __init__(
        self,
        runtime: ContainerRuntime,
        *,
        image_map: dict[str, str] | None = None,
        build_network: str | None = None,
        workspace_cache: Path | None = None,
        sandbox: BuildSandbox | None = None,
        allow_mounts: bool = False,
    ) -> None:
        self.runtime = runtime
        self.image_map = image_map or {}
        self.build_network = build_network
        self.workspace_cache = workspace_cache
        """Where each image's working folder is kept once unpacked (None: unpack each time)."""
        self.sandbox = sandbox
        """Where builds that run task code run (None: the engine builds them itself)."""
        self.allow_mounts = allow_mounts
        """``ENVPOOLS_BUILD_MOUNTS=allow``: RUN --mount of any type (see ``mounts_allowed``)."""
        self.advisories = builder_advisories(runtime.engine, runtime.version)
        self._locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._unpullable: dict[str, tuple[float, str]] = {}
        """Images a pull failed for: (when, the engine's reason), see ``UNPULLABLE_SEC``."""

    # --- the build policy --------------------------------------------------------------

    def isolation_problem(self) -> str | None:
        """Why builds that run task code are not isolated here (None: they are)."""
        if self.sandbox is None:
            return "no build sandbox for this engine (it builds with its own builder)"
        return self.sandbox.problem()

    @property
    def mounts_allowed(self) -> bool:
        """RUN --mount beyond tmpfs: only when asked for, and never on an engine with a known
        builder escape unless the build is isolated."""
        if not self.allow_mounts:
            return False
        return not self.advisories or self.isolation_problem() is None

    def describe(self) -> dict[str, Any]:
        """How builds are made here, for ``local status`` and ``capabilities``: what the
        build sandbox's check found, or that it is under way (it is not waited for long)."""
        if self.sandbox is None:
            checked, problem = True, self.isolation_problem()
        else:
            checked, problem = self.sandbox.known(wait=_DESCRIBE_WAIT_SEC)
        if not checked:
            isolation = "being checked (a user namespace, if podman runs in one here)"
            mounts = "tmpfs only" if not self.allow_mounts else "allowed if builds are isolated"
        else:
            isolation = (
                f"user namespace (host uids {self.sandbox.uid}+), own store "
                f"{self.sandbox.area}, user-mode network"
                if problem is None and self.sandbox is not None
                else f"none: {problem}"
            )
            allowed = self.allow_mounts and (not self.advisories or problem is None)
            mounts = "allowed" if allowed else "tmpfs only"
        return {
            "isolation": isolation,
            "context": "copied without links that leave it",
            "run_mounts": mounts,
            "engine_advisories": list(self.advisories),
        }

    # --- looking ---------------------------------------------------------------------

    def inspect(self, ref: str) -> ImageInfo | None:
        done = subprocess.run(
            self.runtime.command("image", "inspect", ref),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            return None
        try:
            found = json.loads(done.stdout)
        except ValueError:
            return None
        data = found[0] if isinstance(found, list) and found else found
        if not isinstance(data, dict):
            return None
        config = data.get("Config") or {}
        env = {}
        for item in config.get("Env") or []:
            name, _, value = str(item).partition("=")
            env[name] = value
        return ImageInfo(
            ref=ref,
            image_id=str(data.get("Id", "")),
            workdir=config.get("WorkingDir") or None,
            env=env,
            user=config.get("User") or None,
        )

    def mapped(self, ref: str) -> str | None:
        return self.image_map.get(normalize_ref(ref))

    def listing(self) -> list[dict[str, Any]]:
        """The images this backend built (label ``envpools.managed=env``)."""
        # podman prints one JSON array (``--format json``); docker one object per line.
        fmt = "json" if self.runtime.engine == "podman" else "{{json .}}"
        argv = ["images", "--filter", f"label={MANAGED_LABEL}=env", "--format", fmt]
        done = subprocess.run(
            self.runtime.command(*argv), capture_output=True, timeout=60, check=False
        )
        if done.returncode != 0:
            raise RuntimeError(_last(done.stderr.decode("utf-8", "replace")))
        text = done.stdout.decode("utf-8", "replace")
        try:
            parsed = json.loads(text or "[]")
            items = parsed if isinstance(parsed, list) else [parsed]
        except ValueError:
            items = []
            for line in text.splitlines():
                with contextlib.suppress(ValueError):
                    items.append(json.loads(line))
        rows = []
        seen: set[str] = set()
        for item in items:
            if not isinstance(item, dict):
                continue
            image_id = str(item.get("Id") or item.get("ID") or "")
            if not image_id or image_id in seen:
                continue
            seen.add(image_id)
            rows.append(self._row(image_id, item))
        return rows

    def _row(self, image_id: str, item: dict[str, Any]) -> dict[str, Any]:
        names = item.get("Names") or []
        if not names and item.get("Repository"):
            names = [f"{item['Repository']}:{item.get('Tag', '')}"]
        labels = item.get("Labels") or {}
        if isinstance(labels, str):  # docker prints labels as "a=b,c=d"
            labels = dict(pair.partition("=")[::2] for pair in labels.split(",") if pair)
        created = item.get("CreatedAt") or item.get("Created")
        if isinstance(created, int | float):
            created = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(created))
        return {
            "image": names[0] if names else image_id[:12],
            "names": list(names),
            "id": image_id.removeprefix("sha256:")[:12],
            "task": labels.get(TASK_LABEL),
            "env_hash": (labels.get(HASH_LABEL) or "")[:16],
            "size_bytes": item.get("Size") if isinstance(item.get("Size"), int) else None,
            "size": item.get("Size") if isinstance(item.get("Size"), str) else None,
            "created": created,
        }

    def task_image_prefix(self, task_name: str) -> str:
        """How the images of ``task_name`` are named (before the environment hash)."""
        return f"localhost/envpools/task-{_slug(task_name)}:"

    def matching(self, task_name: str | None = None) -> list[dict[str, Any]]:
        """The listing, narrowed to the names of one task's images when given."""
        rows = self.listing()
        if task_name is None:
            return rows
        prefix = self.task_image_prefix(task_name)
        narrowed = []
        for row in rows:
            names = [n for n in row["names"] if n.startswith(prefix)]
            if names:
                narrowed.append({**row, "image": names[0], "names": names, "task": task_name})
        return narrowed

    def prune(self, *, task_name: str | None = None) -> tuple[list[str], list[str]]:
        """Remove task images (of one task when given); (removed, kept with the reason).

        Every name of an image is removed (an image shared by tasks of one environment
        has one per task); with ``task_name`` only that task's names, so an image other
        tasks share stays theirs.
        """
        removed, kept = [], []
        for row in self.matching(task_name):
            done = subprocess.run(
                self.runtime.command("rmi", *(row["names"] or [row["image"]])),
                capture_output=True,
                timeout=120,
                check=False,
            )
            if done.returncode == 0:
                removed.append(row["image"])
            else:
                reason = _last(done.stderr.decode("utf-8", "replace"))
                kept.append(f"{row['image']}: {reason}")
        return removed, kept

    # --- getting ---------------------------------------------------------------------

    def ensure(
        self,
        *,
        task_name: str,
        context: Path,
        dockerfile: str | None,
        docker_image: str | None,
        timeout: float,
        cancel: threading.Event,
        events: BuildEvents,
    ) -> ImageInfo:
        """The task's image: given, cached, or built now (raises BuildFailed, Stop)."""
        deadline = time.monotonic() + timeout
        if docker_image:
            ref, given = self._base(docker_image, deadline, cancel, events)
            info = self.inspect(ref)
            if info is None:
                raise BuildFailed(
                    "image_unavailable", f"the image {ref} is not in the store", image=ref
                )
            info.substitutions = given
            events.status(f"image {ref} (task.toml docker_image)", image=ref, cached=True)
            return info
        if dockerfile is None:
            raise BuildFailed(
                "environment_missing",
                "the task has neither environment/Dockerfile nor [environment] docker_image; "
                "the container sandbox driver needs one of them",
            )
        try:
            check_dockerfile(dockerfile, allow_mounts=self.mounts_allowed)
        except DockerfileRefused as exc:
            raise BuildFailed("environment_unsupported", str(exc)) from None
        bases, text = _bases(dockerfile), dockerfile
        substitutions: dict[str, str] = {}
        ids = []
        for base in bases:
            local, swapped = self._base(base, deadline, cancel, events)
            substitutions.update(swapped)
            base_info = self.inspect(local)
            ids.append(base_info.image_id if base_info else local)
        text = _FROM.sub(functools.partial(_swap_from, substitutions=substitutions), text)
        digest = environment_hash(context, text, ids)
        ref = f"{self.task_image_prefix(task_name)}{digest[:16]}"
        with self._lock(digest):
            found = self.inspect(ref) or self._same_environment(digest, ref)
            if found is not None:
                found.substitutions = substitutions
                events.status(
                    f"image {ref} is cached (environment unchanged)", image=ref, cached=True
                )
                return found
            self._build(ref, digest, task_name, context, text, deadline, cancel, events)
        built = self.inspect(ref)
        if built is None:
            raise BuildFailed("environment_build_failed", f"the build did not make {ref}")
        built.built = True
        built.substitutions = substitutions
        return built

    def _same_environment(self, digest: str, ref: str) -> ImageInfo | None:
        """An image built from the same environment for another task, tagged ``ref`` too.

        Tasks of one suite often share an environment folder byte for byte: one build
        serves them all.
        """
        done = subprocess.run(
            self.runtime.command(
                "images", "-q", "--no-trunc", "--filter", f"label={HASH_LABEL}={digest}"
            ),
            capture_output=True,
            timeout=60,
            check=False,
        )
        ids = done.stdout.decode().split() if done.returncode == 0 else []
        if not ids:
            return None
        tagged = subprocess.run(
            self.runtime.command("tag", ids[0], ref), capture_output=True, timeout=60, check=False
        )
        return self.inspect(ref) if tagged.returncode == 0 else None

    def _lock(self, key: str) -> threading.Lock:
        with self._locks_guard:
            return self._locks.setdefault(key, threading.Lock())

    def _base(
        self, ref: str, deadline: float, cancel: threading.Event, events: BuildEvents
    ) -> tuple[str, dict[str, str]]:
        """A base image present in the store (pulled if needed): its local ref and any swap."""
        swapped: dict[str, str] = {}
        local = ref
        if target := self.mapped(ref):
            swapped[ref] = target
            local = target
            events.status(
                f"base image {ref} is replaced by the local image {target} (ENVPOOLS_IMAGE_MAP)",
                image=ref,
                substituted_by=target,
            )
        if self.inspect(local) is not None:
            return local, swapped
        failed = self._unpullable.get(local)
        if failed is not None and time.monotonic() - failed[0] < UNPULLABLE_SEC:
            ago = time.monotonic() - failed[0]
            raise self._unavailable(ref, local, f"{failed[1]}; tried {ago:.0f}s ago")
        events.status(f"pulling {local}", image=local)
        code, why, tail = run_streaming(
            self.runtime.command("pull", local),
            deadline=deadline,
            cancel=cancel,
            on_line=events.line,
        )
        if why == "cancel":
            raise Stop()
        if code != 0 or why:
            reason = "it took longer than build_timeout_sec" if why else (tail[-1] if tail else "")
            self._unpullable[local] = (time.monotonic(), reason)
            raise self._unavailable(ref, local, reason)
        self._unpullable.pop(local, None)
        return local, swapped

    def _unavailable(self, ref: str, local: str, reason: str) -> BuildFailed:
        summary = f"the image {local} is not on this machine and could not be pulled ({reason})"
        fixes = (
            f"pull it where a registry is reachable and load it ({self.runtime.engine} load)",
            f"map it to a local image: ENVPOOLS_IMAGE_MAP='{ref}=<local image>'",
            "run the backend with the host's tools: envpools local up --sandbox bwrap",
        )
        message = f"{summary}. {fixes[0].capitalize()}, {fixes[1]}, or {fixes[2]}"
        return BuildFailed("image_unavailable", message, image=local, summary=summary, fixes=fixes)

    def _build(
        self,
        ref: str,
        digest: str,
        task_name: str,
        context: Path,
        dockerfile: str,
        deadline: float,
        cancel: threading.Event,
        events: BuildEvents,
    ) -> None:
        # Only a build that runs task code needs the sandbox; the others are the engine's.
        sandbox = self.sandbox if runs_commands(dockerfile) else None
        if sandbox is not None and sandbox.problem() is not None:
            sandbox = None
        builder = _Builder(self.runtime, sandbox)
        events.status(
            f"building image {ref} from environment/Dockerfile"
            + (" in the build sandbox" if sandbox else ""),
            image=ref,
            cached=False,
            isolated=sandbox is not None,
        )
        started = time.monotonic()
        with builder.scratch() as scratch:
            left_out = copy_context(context, scratch / "context", owner=builder.owner)
            for name in left_out:
                events.status(
                    f"environment/{name} is left out of the build: a symbolic link that "
                    "leads out of environment/, or not a file or folder",
                    left_out=name,
                )
            file = scratch / "Dockerfile"
            file.write_text(dockerfile)
            if builder.owner is not None:
                os.chown(file, *builder.owner)
            if sandbox is not None:
                self._bring_in(sandbox, dockerfile)
            with self._named_bases(dockerfile, builder) as dockerfile:
                file.write_text(dockerfile)
                argv = ["build", "-f", builder.path(file), "-t", ref]
                for label in (
                    f"{MANAGED_LABEL}=env",
                    f"{HASH_LABEL}={digest}",
                    f"{TASK_LABEL}={task_name}",
                ):
                    argv += ["--label", label]
                if self.runtime.engine == "podman":
                    # No intermediate layer images: the cache is the final image, by hash.
                    argv += ["--layers=false", "--force-rm", "--pull=missing"]
                    argv += self.runtime.ulimits(nofile=65536, nproc=32768)
                if sandbox is not None:
                    # Its own network namespace: user-mode egress, or loopback only.
                    argv += ["--network", "host"]
                elif self.build_network:
                    argv += ["--network", self.build_network]
                argv.append(builder.path(scratch / "context"))
                code, why, tail = run_streaming(
                    builder.argv(*argv), deadline=deadline, cancel=cancel, on_line=events.line
                )
            if code == 0 and not why and sandbox is not None:
                try:
                    sandbox.take_out(ref)
                except OSError as exc:
                    raise BuildFailed("environment_build_failed", str(exc)) from None
        took = time.monotonic() - started
        if why == "cancel":
            raise Stop()
        if why == "timeout":
            raise BuildFailed(
                "environment_build_timeout",
                f"building the image took longer than build_timeout_sec ({took:.0f}s); "
                "raise [environment] build_timeout_sec in task.toml",
            )
        if code != 0:
            shown = "\n".join(tail[-_TAIL:])
            raise BuildFailed(
                "environment_build_failed",
                f"building the image from environment/Dockerfile failed (exit {code}):\n{shown}",
            )
        events.status(
            f"built image {ref} in {took:.1f}s", image=ref, cached=False, build_sec=round(took, 1)
        )

    def _bring_in(self, sandbox: BuildSandbox, dockerfile: str) -> None:
        """Copy the Dockerfile's base images into the build store."""
        for base in dict.fromkeys(_bases(dockerfile)):
            info = self.inspect(base)
            if info is None:
                continue  # not on this machine: the build pulls it (or says it cannot)
            try:
                sandbox.bring_in(base, info.image_id)
            except OSError as exc:
                raise BuildFailed("environment_build_failed", str(exc)) from None

    @contextlib.contextmanager
    def _named_bases(self, dockerfile: str, builder: _Builder) -> Iterator[str]:
        """The Dockerfile with each base image under a name of this build's own.

        podman's builder leaves its working container behind when a build is stopped
        (cancel, build timeout), named for the base image: a unique name makes it ours
        to remove afterwards. Docker's builder tidies up itself.
        """
        if self.runtime.engine != "podman":
            yield dockerfile
            return
        token = os.urandom(5).hex()
        names: dict[str, str] = {}
        for n, base in enumerate(dict.fromkeys(_bases(dockerfile))):  # each base once
            name = f"envpools-build-{token}-{n}"
            if builder.call("tag", base, f"localhost/{name}:latest").returncode == 0:
                names[base] = f"localhost/{name}:latest"
        try:
            yield _FROM.sub(functools.partial(_swap_from, substitutions=names), dockerfile)
        finally:
            for image in names.values():
                short = image.removeprefix("localhost/").removesuffix(":latest")
                # ``untag IMAGE NAME``: with no NAME, untag would drop every name it has.
                builder.call("rm", "-f", f"{short}-working-container")
                builder.call("untag", image, image)

    # --- the workspace -----------------------------------------------------------------

    def seed_workspace(self, image: ImageInfo, folder: str, target: Path, *, owner: str) -> bool:
        """``copy_out`` through the cache: an image's folder is unpacked once, then copied.

        Getting a folder out of an image costs three engine calls (create, cp, rm); a
        copy of a local folder costs a few milliseconds. The cache is keyed by the image
        id, which changes with every build; ``forget_workspaces`` drops stale entries.
        """
        if self.workspace_cache is None or not image.image_id:
            return self.copy_out(image.ref, folder, target, owner=owner)
        key = image.image_id.removeprefix("sha256:")[:32]
        slot = self.workspace_cache / key / hashlib.sha256(folder.encode()).hexdigest()[:16]
        if not slot.is_dir():
            self.workspace_cache.mkdir(parents=True, exist_ok=True, mode=0o700)
            staging = Path(tempfile.mkdtemp(prefix=".unpack-", dir=self.workspace_cache))
            try:
                present = self.copy_out(image.ref, folder, staging / "tree", owner=owner)
                if not present:
                    (staging / "absent").touch()
                slot.parent.mkdir(exist_ok=True)
                with contextlib.suppress(OSError):  # another rollout got there first
                    staging.rename(slot)
            finally:
                shutil.rmtree(staging, ignore_errors=True)
        if (slot / "absent").exists():
            target.mkdir(parents=True, exist_ok=True)
            return False
        shutil.copytree(slot / "tree", target, symlinks=True, dirs_exist_ok=True)
        return True

    def forget_workspaces(self) -> None:
        """Drop cached working folders of images that no longer exist."""
        if self.workspace_cache is None or not self.workspace_cache.is_dir():
            return
        done = subprocess.run(
            self.runtime.command("images", "-q", "--no-trunc"),
            capture_output=True,
            timeout=60,
            check=False,
        )
        if done.returncode != 0:
            return
        present = {line.removeprefix("sha256:")[:32] for line in done.stdout.decode().split()}
        for entry in self.workspace_cache.iterdir():
            if entry.name not in present:
                shutil.rmtree(entry, ignore_errors=True)

    def copy_out(self, ref: str, folder: str, target: Path, *, owner: str) -> bool:
        """Copy ``folder`` of the image into ``target``; False when the image has no such folder.

        The tar stream is the task's, so it is unpacked with the ``data`` filter: no
        absolute paths, no links out of ``target``, no devices, no set-uid bits.
        """
        name = f"envpools-seed-{os.urandom(6).hex()}"
        created = subprocess.run(
            self.runtime.command(
                "create", "--name", name, "--label", f"{MANAGED_LABEL}=seed",
                "--label", f"envpools.backend={owner}", ref, "/bin/true",
            ),
            capture_output=True,
            timeout=120,
            check=False,
        )  # fmt: skip
        if created.returncode != 0:
            reason = _last(created.stderr.decode("utf-8", "replace"))
            raise BuildFailed(
                "environment_unavailable", f"could not open the image {ref}: {reason}"
            )
        try:
            proc = subprocess.Popen(
                self.runtime.command("cp", f"{name}:{folder.rstrip('/')}/.", "-"),
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
            )
            assert proc.stdout is not None
            try:
                _unpack(proc.stdout, target)
            finally:
                proc.stdout.close()
                errors = proc.stderr.read() if proc.stderr else b""
                code = proc.wait()
            if code != 0:
                text = errors.decode("utf-8", "replace")
                if "no such file" in text.lower() or "could not find" in text.lower():
                    return False
                raise BuildFailed(
                    "environment_unavailable",
                    f"could not copy {folder} out of the image {ref}: {_last(text)}",
                )
            return True
        finally:
            subprocess.run(
                self.runtime.command("rm", "-f", name),
                capture_output=True,
                timeout=120,
                check=False,
            )


def _unpack(stream: IO[bytes], target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    try:
        with tarfile.open(fileobj=stream, mode="r|") as archive:
            for member in archive:
                if member.name in (".", "./"):
                    continue
                archive.extract(member, target, filter="data")
    except tarfile.ReadError:
        return  # nothing came: the engine's error says why
    except (tarfile.FilterError, OSError) as exc:
        raise BuildFailed(
            "environment_unavailable", f"the image's working folder cannot be unpacked: {exc}"
        ) from None


def _last(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return (lines[-1] if lines else "no output")[:300]


class _Builder:
    """Where one build runs: the engine itself, or the build sandbox."""

    def __init__(self, runtime: ContainerRuntime, sandbox: BuildSandbox | None) -> None:
        self.runtime = runtime
        self.sandbox = sandbox

    @property
    def owner(self) -> tuple[int, int] | None:
        """Who must own what the build reads (the sandbox's uid; None: root reads it)."""
        return None if self.sandbox is None else (self.sandbox.uid, self.sandbox.uid)

    @contextlib.contextmanager
    def scratch(self) -> Iterator[Path]:
        """A new folder for the context copy and the Dockerfile, removed afterwards."""
        if self.sandbox is None:
            folder = Path(tempfile.mkdtemp(prefix="envpools-build-"))
        else:
            folder = self.sandbox.area / "contexts" / os.urandom(8).hex()
            folder.mkdir(mode=0o700)
            os.chown(folder, self.sandbox.uid, self.sandbox.uid)
        try:
            yield folder
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    def path(self, path: Path) -> str:
        """``path`` as the builder sees it."""
        return str(path) if self.sandbox is None else self.sandbox.inside(path)

    def argv(self, *args: str) -> list[str]:
        if self.sandbox is None:
            return self.runtime.command(*args)
        return self.sandbox.command(*args)

    def call(self, *args: str) -> subprocess.CompletedProcess[bytes]:
        if self.sandbox is not None:
            return self.sandbox.run(*args)
        return subprocess.run(
            self.runtime.command(*args), capture_output=True, timeout=60, check=False
        )


def run_streaming(
    argv: list[str],
    *,
    deadline: float,
    cancel: threading.Event,
    on_line: Callable[[str], None],
    env: dict[str, str] | None = None,
) -> tuple[int | None, str | None, list[str]]:
    """Run ``argv`` feeding each output line to ``on_line``; (exit code, why stopped, tail).

    On a cancel or the deadline the process group gets SIGTERM (the engine tidies up its
    build containers), then SIGKILL after a grace period.
    """
    proc = subprocess.Popen(
        argv,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        start_new_session=True,
        env=env,
    )
    tail: deque[str] = deque(maxlen=_TAIL)
    stopped: dict[str, str] = {}
    finished = threading.Event()

    def watchdog() -> None:
        while not finished.wait(0.1):
            why = "cancel" if cancel.is_set() else "timeout" if time.monotonic() >= deadline else ""
            if why:
                stopped["why"] = why
                _signal(proc, signal.SIGTERM)
                if not finished.wait(_STOP_GRACE_SEC):
                    _signal(proc, signal.SIGKILL)
                return

    guard = threading.Thread(target=watchdog, name="image-watchdog", daemon=True)
    guard.start()
    assert proc.stdout is not None
    try:
        for raw in iter(lambda: proc.stdout.readline(64 * 1024), b""):  # type: ignore[union-attr]
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            tail.append(line)
            on_line(line)
    finally:
        proc.stdout.close()
        code = proc.wait()
        finished.set()
        guard.join()
    return code, stopped.get("why"), list(tail)


def _signal(proc: subprocess.Popen[bytes], which: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(proc.pid, which)
