"""The official Synth SDK (synth-ai 0.9.6, unchanged) drives our local backend.

The SDK lives in its own virtualenv (``.venv-sdk``, made by ``.ci/run`` or on first use
here): it must not see this project's code.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from .conftest import EXAMPLE, Backend

ROOT = Path(__file__).resolve().parents[2]
SDK_VENV = ROOT / ".venv-sdk"
SDK_PYTHON = SDK_VENV / "bin" / "python"
DRIVER = Path(__file__).parent / "sdk" / "drive_local_backend.py"
SDK_VERSION = "0.9.6"


def sdk_python() -> Path:
    check = [str(SDK_PYTHON), "-c", "import synth_ai.sdk.environment_pools"]
    if SDK_PYTHON.exists() and subprocess.run(check, capture_output=True).returncode == 0:
        return SDK_PYTHON
    steps = [
        [sys.executable, "-m", "venv", str(SDK_VENV)],
        [str(SDK_PYTHON), "-m", "pip", "install", "-q", "--no-deps", f"synth-ai=={SDK_VERSION}"],
        [str(SDK_PYTHON), "-m", "pip", "install", "-q", "httpx", "pydantic"],
    ]
    for step in steps:
        result = subprocess.run(step, capture_output=True, text=True, timeout=300)
        if result.returncode != 0:
            pytest.skip(f"cannot install synth-ai {SDK_VERSION}: {result.stderr[-300:]}")
    return SDK_PYTHON


def drive_with_official_sdk(url: str, key: str, free_key: str) -> None:
    """Run every check of the SDK driver against the backend at ``url`` (also used by
    tests/cluster against a Ray-backed backend)."""
    python = sdk_python()
    env = {
        "PATH": os.environ.get("PATH", ""),
        "HOME": os.environ["HOME"],
        "SYNTH_BACKEND_URL": url + "/api",  # the SDK strips a trailing /api
        "SYNTH_API_KEY": key,
    }
    result = subprocess.run(
        [str(python), str(DRIVER), str(EXAMPLE), free_key],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    checked = json.loads(result.stdout.strip().splitlines()[-1])["checked"]
    assert len(checked) == 38, checked  # every check in the driver ran and held
    assert checked[-1] == "plan check gating"


def test_official_sdk_drives_the_local_backend(backend: Backend) -> None:
    drive_with_official_sdk(backend.url, backend.key, backend.new_key("free"))
