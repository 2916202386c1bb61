"""The hostile suite again, with the backend running as an unprivileged user.

Run as root (as CI does), this test starts ``pytest tests/hostile`` as ``nobody``
through ``setpriv``: the backend then cannot change uid and sandboxes map to its own
uid inside a user namespace, and every containment above must hold that way too.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
NOBODY = 65534
RERUN = "ENVPOOLS_HOSTILE_UNPRIVILEGED"


def _readable_by_others(path: Path) -> bool:
    for part in (path, *path.parents):
        mode = part.stat().st_mode
        if not mode & stat.S_IXOTH or (part == path and not mode & stat.S_IROTH):
            return False
    return True


@pytest.mark.timeout(900)
def test_the_hostile_suite_holds_with_an_unprivileged_backend() -> None:
    if os.environ.get(RERUN):
        pytest.skip("this is the unprivileged run")
    if os.geteuid() != 0:
        pytest.skip("the suite already runs unprivileged")
    setpriv = shutil.which("setpriv")
    if setpriv is None or shutil.which("bwrap") is None:
        pytest.skip("setpriv (util-linux) and bwrap are needed")
    python = Path(sys.executable)
    if not (_readable_by_others(ROOT / "tests") and _readable_by_others(python.parent)):
        pytest.skip("the checkout or its Python is not readable by an unprivileged user")
    home = Path(tempfile.mkdtemp(prefix="envpools-unprivileged-"))
    try:
        os.chown(home, NOBODY, NOBODY)
        env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(home),
            "TMPDIR": str(home),
            "LANG": "C.UTF-8",
            "PYTHONDONTWRITEBYTECODE": "1",
            RERUN: "1",
            # The container driver would be rootless podman here: a configuration of its
            # own (subuid ranges), not what this rerun checks, and CI time it cannot spare.
            "ENVPOOLS_HOSTILE_DRIVERS": "bwrap",
        }
        if agents := os.environ.get("ENVPOOLS_TEST_AGENTS_DIR"):
            env["ENVPOOLS_TEST_AGENTS_DIR"] = agents  # the agent CLIs tests/agents installed
        command = [
            setpriv,
            f"--reuid={NOBODY}",
            f"--regid={NOBODY}",
            "--clear-groups",
            "--",
            str(python),
            "-m",
            "pytest",
            "tests/hostile",
            "-k",
            "not real_keyring",  # where the backend keeps its key, not what a task can do
            "-q",
            "-n",
            "0",  # one process: the outer run's two workers already fill the machine
            "-p",
            "no:cacheprovider",
            f"--basetemp={home / 'pytest'}",
        ]
        result = subprocess.run(
            command, cwd=ROOT, env=env, capture_output=True, text=True, timeout=850, check=False
        )
        report = result.stdout[-6000:] + result.stderr[-2000:]
        assert result.returncode == 0, report
        assert " passed" in result.stdout and " failed" not in result.stdout, report
    finally:
        shutil.rmtree(home, ignore_errors=True)
