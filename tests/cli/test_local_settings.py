"""``local up`` remembers its settings until they are changed; ``local status`` shows them.

Real processes: ``envpools local up`` starts a real backend in the background, whose
``/healthz`` says what it runs with. No ``ENVPOOLS_SANDBOX`` in these processes (the test
suite sets it for every other test), so a remembered sandbox is what picks the driver.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator

import httpx
import pytest

from envpools_cli import paths


def _envpools(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items() if k != "ENVPOOLS_SANDBOX"}
    return subprocess.run(
        [sys.executable, "-m", "envpools_cli", *args],
        capture_output=True,
        text=True,
        env={**full, **env},
        timeout=120,
        check=False,
    )


@pytest.fixture
def down() -> Iterator[None]:
    yield
    _envpools("local", "down")


def _health(up: subprocess.CompletedProcess[str]) -> dict[str, object]:
    assert up.returncode == 0, up.stderr
    body: dict[str, object] = httpx.get(json.loads(up.stdout)["url"] + "/healthz").json()
    return body


@pytest.mark.timeout(300)  # a dozen envpools processes, one after the other
def test_local_up_remembers_its_settings_until_changed_or_reset(down: None) -> None:
    if shutil.which("bwrap") is None:
        pytest.skip("bubblewrap missing")
    first = _envpools(
        "local", "up", "--port", "0", "--sandbox", "bwrap", "--max-running", "3",
        "--limits", "memory_mb=1536,processes=300", "-o", "json",
    )  # fmt: skip
    health = _health(first)
    remembered = {
        "sandbox": "bwrap",
        "limits": "memory_mb=1536,processes=300",
        "max_running": 3,
    }
    assert json.loads(first.stdout)["remembered"] == remembered
    assert _envpools("local", "down").returncode == 0

    plain = _envpools("local", "up", "--port", "0", "-o", "json")
    health = _health(plain)
    assert health["sandbox"] == "bwrap", "the remembered driver, not auto's choice"
    assert health["scheduling"]["max_running"] == 3  # type: ignore[index]
    limits = health["limits"]
    assert limits["memory_mb"] == 1536 and limits["processes"] == 300  # type: ignore[index]

    status = _envpools("local", "status", "-o", "json")
    assert status.returncode == 0, status.stderr
    shown = json.loads(status.stdout)
    assert shown["remembered"] == remembered
    assert shown["remembered_file"] == str(paths.config_dir() / "local-backend.toml")
    table = _envpools("local", "status")
    assert "sandbox bwrap, limits memory_mb=1536,processes=300, max running 3" in table.stdout
    assert "local up --reset forgets" in table.stdout
    assert _envpools("local", "down").returncode == 0

    # A flag given again changes its value and keeps the others; a variable wins for one
    # run and is not remembered.
    changed = _envpools(
        "local", "up", "--port", "0", "--cpu-overcommit", "4", "-o", "json",
        ENVPOOLS_MAX_RUNNING="2",
    )  # fmt: skip
    health = _health(changed)
    assert health["scheduling"]["cpu_overcommit"] == 4  # type: ignore[index]
    assert health["scheduling"]["max_running"] == 2  # type: ignore[index]
    assert json.loads(changed.stdout)["remembered"] == {**remembered, "cpu_overcommit": 4.0}
    assert _envpools("local", "down").returncode == 0

    reset = _envpools("local", "up", "--port", "0", "--reset", "--max-running", "5", "-o", "json")
    assert "forgot the remembered settings" in reset.stderr
    health = _health(reset)
    assert json.loads(reset.stdout)["remembered"] == {"max_running": 5}
    assert health["scheduling"]["max_running"] == 5  # type: ignore[index]
    assert health["sandbox_detail"]["requested"] == "auto"  # type: ignore[index]


@pytest.mark.timeout(120)
def test_bad_remembered_settings_are_a_clear_usage_error(down: None) -> None:
    stored = paths.config_dir() / "local-backend.toml"
    stored.parent.mkdir(parents=True, exist_ok=True)
    stored.write_text('sandbox = "kvm"\nmax_running = "many"\n')
    for command in (("local", "up", "--port", "0"), ("demo",)):
        refused = _envpools(*command)
        assert refused.returncode == 2, (command, refused.stderr)
        assert "Traceback" not in refused.stderr
        assert str(stored) in refused.stderr and "max_running = 'many'" in refused.stderr
        assert "envpools local up --reset" in refused.stderr, refused.stderr
    stored.write_text('sandbox = "kvm"\n')
    refused = _envpools("local", "up", "--port", "0")
    assert refused.returncode == 2 and "sandbox 'kvm': expected one of" in refused.stderr

    status = _envpools("local", "status", "-o", "json")
    assert status.returncode == 1, "not running"
    assert "sandbox 'kvm'" in json.loads(status.stdout)["remembered_error"]

    stored.write_text("sandbox = [unclosed\n")
    refused = _envpools("local", "up", "--port", "0")
    assert refused.returncode == 2 and "not valid TOML" in refused.stderr, refused.stderr
    assert "Traceback" not in refused.stderr

    # --reset forgets, but not before the flags given with it are known to be good.
    bad_flag = _envpools("local", "up", "--port", "0", "--reset", "--limits", "memory_mb=lots")
    assert bad_flag.returncode == 2 and "limits 'memory_mb=lots'" in bad_flag.stderr
    assert stored.is_file(), "the bad flag was refused before anything was forgotten"
    fixed = _envpools("local", "up", "--port", "0", "--reset", "--sandbox", "process")
    assert fixed.returncode == 0, fixed.stderr
    assert stored.read_text().count("=") == 1 and 'sandbox = "process"' in stored.read_text()
