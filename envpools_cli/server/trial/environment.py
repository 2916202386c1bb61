"""A rollout's environment: its image and workspace, as the backend's sandbox driver can have it.

With the container driver the task's image is built (or found in the cache, or pulled)
and the workspace is a copy of the image's working folder, so it holds what the
Dockerfile's ``COPY`` *and* ``RUN`` lines put there. With bubblewrap or plain processes
there is no image: the workspace is what ``COPY`` would place and the host's tools stand
in for the rest; a task whose Dockerfile installs Debian packages this host lacks is
refused at once, with a message naming the driver, instead of failing later for reasons
that have nothing to do with the agent.

When the container driver was not asked for by name (``auto``) and a task's image cannot
be had (its base is not on this machine and cannot be pulled: no registry), the rollout
runs with bubblewrap instead, if this task can run that way (``fallback_problem``); the
runner says so in an ``environment`` event and the rollout's ``sandbox`` field.
"""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli.server.sandbox.container import ContainerDriver
from envpools_cli.server.sandbox.drivers import SandboxDriver
from envpools_cli.server.sandbox.images import BuildFailed, Stop
from envpools_cli.server.sandbox.limits import Limits
from envpools_cli.server.tasks import HarborTask, TaskError
from envpools_cli.server.trial.phase_log import Events, PhaseLog

__all__ = [
    "ImageUnavailable",
    "Prepared",
    "apt_packages",
    "fallback_problem",
    "missing_host_packages",
    "prepare_environment",
]

DEFAULT_BUILD_TIMEOUT_SEC = 600.0
_SEPARATORS = re.compile(r"&&|\|\||[;|\n]")
_APT = ("apt-get", "apt", "aptitude")


class ImageUnavailable(TaskError):
    """The task's image is not on this machine and cannot be pulled (``image_unavailable``).

    ``summary`` says so without advice; ``fixes`` are the ways out ``message`` lists.
    """

    def __init__(self, failed: BuildFailed) -> None:
        super().__init__("image_unavailable", failed.message)
        self.image = failed.image or ""
        self.summary = failed.summary
        self.fixes = failed.fixes

    def refusal(self, why_not: str) -> str:
        """The message when bubblewrap cannot stand in either: the fixes that remain."""
        fixes = [f for f in self.fixes if "--sandbox bwrap" not in f]
        advice = f" Fix: {'; or '.join(fixes)}" if fixes else ""
        return f"{self.summary}, and bubblewrap cannot stand in for it: {why_not}.{advice}"


def fallback_problem(task: HarborTask) -> str | None:
    """Why the host's tools (bubblewrap) cannot stand in for this task's image (None: they can).

    The same rule as for a backend on bubblewrap, plus: a task that names a ready-made image
    (``docker_image``) has nothing but that image to go by.
    """
    if task.environment.get("docker_image"):
        return (
            "the task names a ready-made image ([environment] docker_image) that the "
            "host's tools cannot stand in for"
        )
    if not task.has_dockerfile:
        return "the task has no environment/Dockerfile"
    if missing := missing_host_packages(task.layout.runs):
        return (
            f"environment/Dockerfile installs {', '.join(missing)} (RUN apt-get install), "
            "which this machine lacks"
        )
    return None


@dataclass
class Prepared:
    workdir: str
    image: str | None = None
    notes: list[str] = field(default_factory=list)


class _Build:
    """Build reports as the rollout's ``environment`` events and its ``build.log``."""

    def __init__(self, events: Events, log: PhaseLog) -> None:
        self.events = events
        self.log = log

    def status(self, message: str, **data: Any) -> None:
        self.events.publish("environment", {"message": message, **data})

    def line(self, text: str) -> None:
        self.log(text)


def apt_packages(runs: list[str]) -> list[str]:
    """Debian packages that ``RUN`` lines install with apt-get / apt (without versions)."""
    found: list[str] = []
    for run in runs:
        for command in _SEPARATORS.split(run):
            try:
                words = shlex.split(command)
            except ValueError:
                continue
            while words and (words[0] in ("sudo", "env") or "=" in words[0]):
                words = words[1:]
            if not words or words[0].rsplit("/", 1)[-1] not in _APT or "install" not in words:
                continue
            for word in words[words.index("install") + 1 :]:
                if word.startswith("-") or "$" in word or "*" in word:
                    continue
                name = re.split(r"[=:]", word, maxsplit=1)[0]
                if name and name not in found:
                    found.append(name)
    return found


def missing_host_packages(runs: list[str]) -> list[str]:
    """The packages of ``apt_packages`` this host has not installed ([] off Debian)."""
    wanted = apt_packages(runs)
    dpkg = shutil.which("dpkg-query")
    if not wanted or dpkg is None:
        return []
    done = subprocess.run(
        [dpkg, "-W", "-f=${Package} ${db:Status-Status}\\n", *wanted],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    installed = {
        line.split()[0].split(":")[0]
        for line in done.stdout.splitlines()
        if line.strip().endswith(" installed")
    }
    return [name for name in wanted if name not in installed]


def prepare_environment(
    driver: SandboxDriver,
    task: HarborTask,
    workspace: Path,
    *,
    events: Events,
    build_log: Path,
    limits: Limits,
    cancel: threading.Event,
    owner: str,
) -> Prepared:
    """Lay out ``workspace`` for ``task`` (building its image first where the driver runs one).

    Raises TaskError when the environment cannot be had, ``images.Stop`` on a cancel.
    """
    if isinstance(driver, ContainerDriver):
        return _from_image(driver, task, workspace, events, build_log, limits, cancel, owner)
    notes = task.seed_workspace(workspace)
    if task.has_dockerfile and (missing := missing_host_packages(task.layout.runs)):
        raise TaskError(
            "environment_unsupported",
            f"environment/Dockerfile installs {', '.join(missing)} (RUN apt-get install), "
            f"which this machine lacks. The {driver.name} sandbox driver runs tasks with the "
            "host's own tools and does not execute RUN lines: run this task with the "
            "container driver (envpools local up --sandbox container), or install "
            f"{' '.join(missing)} on this machine",
        )
    return Prepared(workdir=task.workdir, notes=notes)


def _from_image(
    driver: ContainerDriver,
    task: HarborTask,
    workspace: Path,
    events: Events,
    build_log: Path,
    limits: Limits,
    cancel: threading.Event,
    owner: str,
) -> Prepared:
    environment = task.environment
    timeout = environment.get("build_timeout_sec")
    if not isinstance(timeout, int | float) or isinstance(timeout, bool) or timeout <= 0:
        timeout = DEFAULT_BUILD_TIMEOUT_SEC
    docker_image = environment.get("docker_image")
    dockerfile = task.root / "environment" / "Dockerfile"
    log = PhaseLog(events, "environment", build_log, limits)
    try:
        image = driver.images.ensure(
            task_name=task.root.name,
            context=task.root / "environment",
            dockerfile=dockerfile.read_text(errors="replace") if dockerfile.is_file() else None,
            docker_image=str(docker_image) if docker_image else None,
            timeout=float(timeout),
            cancel=cancel,
            events=_Build(events, log),
        )
    except BuildFailed as exc:
        if exc.code == "image_unavailable" and exc.image:
            raise ImageUnavailable(exc) from None
        raise TaskError(exc.code, exc.message) from None
    finally:
        log.close()
    workdir = image.workdir if image.workdir and image.workdir != "/" else task.workdir
    if cancel.is_set():
        raise Stop()
    notes = []
    try:
        if not driver.images.seed_workspace(image, workdir, workspace, owner=owner):
            notes.append(f"the image has no {workdir}: the workspace starts empty")
    except BuildFailed as exc:
        raise TaskError(exc.code, exc.message) from None
    events.publish(
        "environment",
        {
            "message": f"workspace {workdir} copied from the image",
            "image": image.ref,
            "image_id": image.image_id,
            "workdir": workdir,
            "built": image.built,
        },
    )
    return Prepared(workdir=workdir, image=image.ref, notes=notes)
