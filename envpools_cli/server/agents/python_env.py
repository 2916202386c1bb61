"""A Python agent's own environment: a venv made with the sandbox's Python, filled by pip.

A sandbox sees the host's ``/usr`` and nothing else of it, so the venv is made with
``/usr/bin/python3`` (the interpreter every bubblewrap sandbox has) rather than with the
Python envpools itself runs on, which may live anywhere. pip installs into it as usual.

A venv's console scripts start with this machine's path to the venv, which the sandbox
does not see (it mounts the folder at ``/envpools/agents/<name>``), so an agent is started
through a launcher of ours instead (``launcher_script``): it finds the venv from its own
location, answers ``--version`` from the package metadata, and runs ``python -m <module>``.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Callable, Sequence
from pathlib import Path

__all__ = [
    "LAUNCHER_DIR",
    "SANDBOX_PYTHON",
    "PythonEnvError",
    "launcher_script",
    "make_venv",
    "pip_install",
    "write_launcher",
]

SANDBOX_PYTHON = "/usr/bin/python3"
"""The interpreter a sandbox runs Python agents with: the host's own, under ``/usr``."""
LAUNCHER_DIR = "envpools-bin"
"""The folder of launchers put on PATH (never the venv's ``bin``: its ``python`` would
shadow the system one for every command the agent runs)."""
MIN_PYTHON = (3, 10)
_TIMEOUT = 1800


class PythonEnvError(Exception):
    """The environment could not be made, with what to do about it."""


def _tail(text: str, lines: int = 12) -> str:
    return "\n".join(text.strip().splitlines()[-lines:])


def _python_version(python: str) -> tuple[int, int] | None:
    try:
        done = subprocess.run(
            [python, "-I", "-c", "import sys; print(*sys.version_info[:2])"],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
            stdin=subprocess.DEVNULL,
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    parts = done.stdout.split()
    if done.returncode != 0 or len(parts) != 2:
        return None
    return int(parts[0]), int(parts[1])


def make_venv(target: Path, python: str = SANDBOX_PYTHON) -> None:
    """A venv at ``target`` made with ``python`` (which the sandbox must also have)."""
    version = _python_version(python)
    if version is None:
        raise PythonEnvError(
            f"{python} does not run: Python agents run on the system Python the sandbox "
            "sees; install it (for example `apt-get install python3 python3-venv`)"
        )
    if version < MIN_PYTHON:
        wanted = ".".join(map(str, MIN_PYTHON))
        raise PythonEnvError(f"{python} is Python {version[0]}.{version[1]}; {wanted}+ is needed")
    done = subprocess.run(
        [python, "-m", "venv", str(target)],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
        stdin=subprocess.DEVNULL,
    )
    if done.returncode != 0:
        raise PythonEnvError(
            f"`{python} -m venv` failed (exit {done.returncode}):\n"
            f"{_tail(done.stderr or done.stdout)}\n"
            "on Debian or Ubuntu, install the venv module: `apt-get install python3-venv`"
        )


def pip_install(
    venv: Path, requirements: Sequence[str], progress: Callable[[str], None] = lambda _: None
) -> None:
    """``pip install`` ``requirements`` into ``venv`` (its own pip, this machine's pip config)."""
    shown = " ".join(requirements)
    progress(f"pip install {shown} (this downloads a few hundred MB the first time)")
    command = [
        str(venv / "bin" / "python"),
        "-m",
        "pip",
        "install",
        "--disable-pip-version-check",
        "--no-input",
        "--quiet",
        "--",
        *requirements,
    ]
    env = {**os.environ, "PIP_NO_INPUT": "1"}
    try:
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            timeout=_TIMEOUT,
            check=False,
            env=env,
            stdin=subprocess.DEVNULL,
        )
    except subprocess.TimeoutExpired:
        raise PythonEnvError(f"pip install {shown} did not finish in 30 minutes") from None
    if done.returncode != 0:
        errors = [
            line for line in (done.stderr or done.stdout).splitlines() if "is ignored" not in line
        ]
        raise PythonEnvError(
            f"pip install {shown} failed (exit {done.returncode}):\n"
            f"{_tail(chr(10).join(errors))}\n"
            "check the version exists (`pip index versions NAME`) and that the package "
            "index is reachable"
        )


def launcher_script(binary: str, distribution: str, module: str) -> str:
    """A POSIX shell launcher for ``python -m module`` of the venv one folder up."""
    return f"""#!/bin/sh
# {binary}: {distribution} in its own Python environment, installed by envpools.
# It finds the environment from where it is mounted, so it runs in any sandbox.
root=$(cd -P "$(dirname "$0")/.." && pwd)
if [ ! -x "$root/bin/python" ]; then
    echo "{binary} needs {SANDBOX_PYTHON} in the sandbox (the bwrap driver has it)" >&2
    exit 126
fi
case "$1" in
--version)
    exec "$root/bin/python" -I -c \\
        'from importlib.metadata import version; print(version("{distribution}"))' ;;
--python)
    shift
    exec "$root/bin/python" "$@" ;;
esac
exec "$root/bin/python" -m {module} "$@"
"""


def write_launcher(venv: Path, binary: str, distribution: str, module: str) -> Path:
    folder = venv / LAUNCHER_DIR
    folder.mkdir(exist_ok=True, mode=0o755)
    path = folder / binary
    path.write_text(launcher_script(binary, distribution, module))
    path.chmod(0o755)
    return path
