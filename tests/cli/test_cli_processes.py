"""envpools as a real process: local up/down, the demo, pipes, a real Secret Service."""

from __future__ import annotations

import json
import os
import pty
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.models import PoolTask

from .conftest import EXAMPLE, Local, envpools_subprocess


@pytest.fixture
def file_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")


def _down() -> None:
    envpools_subprocess("local", "down")


@pytest.mark.timeout(300)  # a dozen envpools processes, one after the other
def test_local_up_status_keys_down(file_keys: None) -> None:
    try:
        up = envpools_subprocess(
            "local", "up", "--port", "0", "--max-running", "40", "--cpu-overcommit", "16", "--json"
        )
        assert up.returncode == 0, up.stderr
        state = json.loads(up.stdout)
        assert state["running"] and state["profile"] == "local" and state["new_key"]
        assert state["current_profile"] is True, "a fresh machine now uses the local profile"
        again = envpools_subprocess("local", "up", "--port", "0", "-o", "json")
        assert json.loads(again.stdout)["started"] is False
        assert json.loads(again.stdout)["new_key"] is False, "the stored key still works"
        other = envpools_subprocess("local", "up", "--port", "0", "--max-running", "3")
        assert other.returncode == 1 and "--max-running 40" in other.stderr, other.stderr

        status = envpools_subprocess("local", "status", "--json")
        assert status.returncode == 0 and json.loads(status.stdout)["url"] == state["url"]
        scheduling = json.loads(status.stdout)["scheduling"]
        assert scheduling["max_running"] == 40 and scheduling["cpu_overcommit"] == 16
        table = envpools_subprocess("local", "status")
        assert "overcommit 16" in table.stdout and "max running: 40" in table.stdout, table
        pools = envpools_subprocess("pools", "create", "p", "--local", str(EXAMPLE), "-q")
        assert pools.returncode == 0, pools.stderr
        run = envpools_subprocess(
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "p",
            "--wait",
            "-o",
            "json",
        )
        assert run.returncode == 0, run.stderr
        assert json.loads(run.stdout)["reward_primary"] == 1.0

        free = envpools_subprocess("local", "keys", "create", "--plan", "free")
        assert free.returncode == 0, free.stderr
        assert "ep_local_" not in free.stdout + free.stderr.replace("ep_loc…", "")
        gated = envpools_subprocess("--profile", "local-free", "pools", "list")
        assert gated.returncode == 4 and "plan" in gated.stderr

        shown = envpools_subprocess("local", "keys", "create", "--plan", "team", "--show")
        assert shown.stdout.startswith("ep_local_"), "--show prints the key, once, on stdout"

        logs = envpools_subprocess("local", "logs", "-n", "5")
        assert logs.returncode == 0 and logs.stdout
    finally:
        down = envpools_subprocess("local", "down")
    assert down.returncode == 0
    stopped = envpools_subprocess("local", "status")
    assert stopped.returncode == 1
    assert envpools_subprocess("pools", "list").returncode == 7


def test_demo_on_a_fresh_machine(file_keys: None, tmp_path: Path) -> None:
    where_the_user_is = tmp_path / "cwd"
    where_the_user_is.mkdir()
    data = tmp_path / "data"
    try:
        demo = subprocess.run(
            [sys.executable, "-m", "envpools_cli", "demo"],
            capture_output=True,
            text=True,
            cwd=where_the_user_is,
            env={**os.environ, "ENVPOOLS_DATA_DIR": str(data)},
            timeout=300,
            check=False,
        )
        again = envpools_subprocess(
            "demo", "--dir", str(tmp_path / "artifacts"), env={"ENVPOOLS_DATA_DIR": str(data)}
        )
    finally:
        _down()
    assert demo.returncode == 0, demo.stdout + demo.stderr
    assert "status succeeded" in demo.stdout
    assert "Cost total" in demo.stdout
    assert list(where_the_user_is.iterdir()) == [], "nothing lands in the current directory"
    (kept,) = (data / "demo").iterdir()
    assert kept.name.startswith("ro_") and f"artifacts in {kept}" in demo.stderr
    assert (kept / "verifier" / "reward.txt").read_text().strip() == "1"
    assert (kept / "workspace.diff").is_file()
    assert again.returncode == 0, again.stdout + again.stderr
    assert (tmp_path / "artifacts" / "verifier" / "reward.txt").read_text().strip() == "1"
    assert len(list((data / "demo").iterdir())) == 1, "--dir says where instead"


def test_closing_the_pipe_early_is_quiet(backend: Local) -> None:
    # The pool and its 30 tasks are made through the API: 31 CLI processes would cost
    # ~20 s of CI for a test about the last one.
    conn = {"backend_base": backend.url, "api_key": backend.key}
    ep.create_pool(pool_id="p", **conn)
    for i in range(30):
        ep.create_pool_task("p", request=PoolTask.from_docker(f"t{i}", "img"), **conn)
    shell = f"set -o pipefail; {sys.executable} -m envpools_cli tasks list p -o jsonl | head -1"
    result = subprocess.run(["bash", "-c", shell], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["task_id"] == "t0"
    assert result.stderr == ""


def test_live_tail_on_a_terminal(backend: Local) -> None:
    subprocess.run(
        [sys.executable, "-m", "envpools_cli", "pools", "create", "p", "--local", str(EXAMPLE)],
        capture_output=True,
        check=True,
    )
    rid = subprocess.run(
        [
            sys.executable,
            "-m",
            "envpools_cli",
            "rollouts",
            "create",
            "--agent",
            "oracle",
            "--task",
            "d/fix-failing-test",
            "--pool",
            "p",
            "-q",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    primary, replica = pty.openpty()
    process = subprocess.Popen(
        [sys.executable, "-m", "envpools_cli", "rollouts", "tail", rid, "--exit-status"],
        stdin=replica,
        stdout=replica,
        stderr=replica,
        env={**os.environ, "COLUMNS": "120"},
    )
    os.close(replica)
    output = b""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            chunk = os.read(primary, 65536)
        except OSError:
            break
        if not chunk:
            break
        output += chunk
    assert process.wait(timeout=30) == 0
    os.close(primary)
    text = output.decode(errors="replace")
    assert "patched textutils.slugify" in text
    assert "reward 1" in text
    assert "\x1b[" in text, "colours and the live status line on a terminal"


def test_tab_completion() -> None:
    env = {**os.environ, "_ENVPOOLS_COMPLETE": "bash"}
    result = subprocess.run(
        [sys.executable, "-m", "envpools_cli", "2", "envpools", "rollouts", "ta"],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert result.returncode == 0
    assert result.stdout.split() == ["values", "tail"]


# --- a real Secret Service ------------------------------------------------------------------


@pytest.fixture
def secret_service(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A private D-Bus session with gnome-keyring's Secret Service, unlocked."""
    if not (shutil.which("dbus-daemon") and shutil.which("gnome-keyring-daemon")):
        pytest.skip("dbus-daemon and gnome-keyring-daemon are needed (.ci/run installs them)")
    runtime_dir = tmp_path / "run"
    runtime_dir.mkdir(mode=0o700)
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(runtime_dir))
    bus = subprocess.Popen(
        ["dbus-daemon", "--session", "--nofork", "--print-address=1"],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert bus.stdout is not None
    address = bus.stdout.readline().strip()
    monkeypatch.setenv("DBUS_SESSION_BUS_ADDRESS", address)
    daemon = subprocess.Popen(
        ["gnome-keyring-daemon", "--foreground", "--unlock", "--components=secrets"],
        stdin=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        env=os.environ.copy(),
    )
    assert daemon.stdin is not None
    daemon.stdin.write(b"keyring-test-password")
    daemon.stdin.close()
    monkeypatch.delenv("ENVPOOLS_KEYRING", raising=False)
    probe = (
        "import keyring, sys; kr = keyring.get_keyring(); "
        "sys.exit(0 if type(kr).__module__.endswith('SecretService') else 1)"
    )
    deadline = time.monotonic() + 20
    while subprocess.run([sys.executable, "-c", probe], check=False).returncode != 0:
        if time.monotonic() > deadline:
            pytest.fail("the Secret Service did not come up")
        time.sleep(0.2)
    yield address
    for process in (daemon, bus):
        process.send_signal(signal.SIGTERM)
        process.wait(timeout=10)


def test_key_in_a_real_secret_service_never_appears(
    secret_service: str, backend: Local, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    key = backend.key
    monkeypatch.delenv("ENVPOOLS_API_KEY")
    monkeypatch.delenv("ENVPOOLS_API_URL")
    outputs: list[str] = []

    def run(*args: str, stdin: str | None = None) -> subprocess.CompletedProcess[str]:
        result = envpools_subprocess(*args, stdin=stdin)
        outputs.append(result.stdout + result.stderr)
        return result

    login = run("--profile", "ci", "auth", "login", "--api-url", backend.url, stdin=key)
    assert login.returncode == 0, login.stderr
    assert "keyring (SecretService.Keyring)" in login.stderr
    from envpools_cli.keystore import key_file

    assert not key_file().exists(), "nothing fell back to the file"
    lookup = subprocess.run(
        ["secret-tool", "lookup", "service", "envpools", "username", "ci"],
        capture_output=True,
        text=True,
        check=False,
    )
    if shutil.which("secret-tool"):
        assert lookup.stdout.strip() == key, "the key is in the Secret Service"
    status = run("--profile", "ci", "auth", "status", "--json")
    assert status.returncode == 0, status.stderr
    assert json.loads(status.stdout)["api_key_source"].startswith("keyring")
    run("--profile", "ci", "pools", "create", "p", "--local", str(EXAMPLE))
    rid = run(
        "--profile",
        "ci",
        "rollouts",
        "create",
        "--agent",
        "oracle",
        "--task",
        "d/fix-failing-test",
        "--pool",
        "p",
        "--wait",
        "-q",
    ).stdout.strip()
    assert rid.startswith("ro_")
    run("--profile", "ci", "--debug", "rollouts", "get", rid, "-o", "json")
    run("--profile", "ci", "rollouts", "tail", rid, "-o", "jsonl")
    bundle = tmp_path / "bundle.json"
    run("--profile", "ci", "rollouts", "support-bundle", rid, "--out", str(bundle))
    run("--profile", "ci", "--debug", "rollouts", "get", "ro_missing")
    log_text = "".join(
        p.read_text(errors="replace")
        for p in backend.thread.settings.data_dir.rglob("*")
        if p.is_file() and p.suffix in (".txt", ".json", ".log", ".diff")
    )
    for text in [*outputs, bundle.read_text(), log_text]:
        assert key not in text
    from envpools_cli.config import config_file

    assert key not in config_file().read_text()
    assert run("--profile", "ci", "auth", "logout").returncode == 0
    assert run("--profile", "ci", "pools", "list").returncode == 4
