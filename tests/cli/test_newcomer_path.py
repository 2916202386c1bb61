"""A newcomer's first hour, as the README tells it: `local up`, then Python that passes no key.

The README's Python example runs as written (no key, no URL) once `envpools local up` has
set up the `local` profile: the client takes the CLI's active profile after the argument
and the environment, and `EnvironmentPoolsClient.from_profile(name)` picks one by name.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.client.profile import load_profile
from envpools_cli.config import save_profile
from envpools_cli.keystore import set_key

from .conftest import CLI, EXAMPLE, Local, envpools_subprocess

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_python() -> str:
    section = README.read_text().split("## Python client", 1)[1]
    found = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert found is not None, "the README's Python client section has an example"
    return found.group(1)


def test_the_readme_example_runs_as_written_after_local_up(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("ENVPOOLS_KEYRING", "file")
    code = readme_python()
    assert "api_key" not in code and "EnvironmentPoolsClient()" in code
    try:
        up = envpools_subprocess("local", "up", "--port", "0")
        assert up.returncode == 0, up.stderr
        env = {k: v for k, v in os.environ.items() if not k.startswith(("ENVPOOLS_API", "SYNTH_"))}
        ran = subprocess.run(
            [sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=300
        )
    finally:
        envpools_subprocess("local", "down")
    assert ran.returncode == 0, ran.stderr
    lines = ran.stdout.splitlines()
    assert lines[-1] == "succeeded", ran.stdout
    assert any(" reward " in line for line in lines), "the events were printed"


def test_argument_then_environment_then_profile_then_default(
    backend: Local, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("ENVPOOLS_API_URL")
    monkeypatch.delenv("ENVPOOLS_API_KEY")
    with pytest.raises(ep.MissingAPIKeyError, match="envpools local up"):
        ep.list_pools()
    save_profile("mine", backend.url, make_current=True)
    set_key("mine", backend.key)
    assert ep.list_pools() == [], "the active profile's URL and key"
    client = ep.EnvironmentPoolsClient()
    assert client.pools.list() == []
    # The environment wins over the profile, and an argument over both.
    monkeypatch.setenv("ENVPOOLS_API_KEY", "ep_wrong_key_0123456789")
    with pytest.raises(ep.AuthenticationError):
        ep.list_pools()
    assert ep.list_pools(api_key=backend.key) == []
    monkeypatch.delenv("ENVPOOLS_API_KEY")
    monkeypatch.setenv("ENVPOOLS_PROFILE", "nobody")
    with pytest.raises(ep.MissingAPIKeyError):
        ep.list_pools()  # a profile named nowhere is no profile


def test_from_profile_by_name(backend: Local, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("ENVPOOLS_API_URL")
    monkeypatch.delenv("ENVPOOLS_API_KEY")
    save_profile("staging", backend.url, make_current=False)
    set_key("staging", backend.key)
    client = ep.EnvironmentPoolsClient.from_profile("staging")
    assert client.pools.list() == []
    assert "ep_" not in repr(load_profile("staging"))
    with pytest.raises(ep.ConfigurationError, match=r"no profile 'prod'.*staging"):
        ep.EnvironmentPoolsClient.from_profile("prod")
    save_profile("keyless", backend.url, make_current=False)
    with pytest.raises(ep.MissingAPIKeyError, match="auth login"):
        ep.EnvironmentPoolsClient.from_profile("keyless")


def test_a_task_of_the_pool_by_its_id(cli: CLI, backend: Local) -> None:
    """`--task NAME --pool P` runs P's task NAME; without a pool the message says what to add."""
    assert cli("pools", "create", "coding", "--local", str(EXAMPLE)).code == 0
    done = cli("rollouts", "create", "--agent", "oracle", "--task", "fix-failing-test",
               "--pool", "coding", "--wait", "-o", "json")  # fmt: skip
    assert done.code == 0, done.err
    assert done.json()["task_ref"] == {"dataset": "coding", "task_id": "fix-failing-test"}
    assert done.json()["reward_primary"] == 1.0
    unknown = cli("rollouts", "create", "--agent", "oracle", "--task", "fix-failing",
                  "--pool", "coding")  # fmt: skip
    assert unknown.code == 6
    assert "is not in pool 'coding'; its tasks: fix-failing-test" in unknown.err
    nowhere = cli("rollouts", "create", "--agent", "oracle", "--task", "fix-failing-test")
    assert nowhere.code == 2 and "add --pool POOL" in nowhere.err


def test_tasks_init_then_check(cli: CLI, tmp_path: Path) -> None:
    """A new task passes its check as made; a check says which half of it is unsound."""
    task = tmp_path / "my-task"
    made = cli("tasks", "init", str(task))
    assert made.code == 0, made.err
    assert {p.relative_to(task).as_posix() for p in task.rglob("*") if p.is_file()} == {
        "instruction.md", "task.toml", "environment/Dockerfile", "environment/repo/README.md",
        "solution/solve.sh", "tests/test.sh",
    }  # fmt: skip
    assert cli("tasks", "init", str(task)).code == 2, "an existing task is never overwritten"

    sound = cli("tasks", "check", str(task), "-o", "json")
    assert sound.code == 0, sound.err
    checks = {c["agent"]: c for c in sound.json()["checks"]}
    assert checks["oracle"]["reward"] == 1.0 and checks["nop"]["reward"] == 0.0

    # Tests that pass whatever the agent does: nop must not pass.
    test = task / "tests" / "test.sh"
    test.write_text("#!/bin/bash\necho 'all good' && echo 1 > /logs/verifier/reward.txt\n")
    lax = cli("tasks", "check", str(task))
    assert lax.code == 5
    assert "nop: doing nothing scores 1: the tests do not check the work" in lax.err
    # A solution that does not solve it: the oracle must pass, and the verifier says why.
    test.write_text(
        "#!/bin/bash\necho \"greeting is '$(cat /app/greeting.txt 2>/dev/null)'\"\n"
        "grep -qx hello /app/greeting.txt && r=1 || r=0; echo $r > /logs/verifier/reward.txt\n"
    )
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\necho bye > /app/greeting.txt\n")
    wrong = cli("tasks", "check", str(task))
    assert wrong.code == 5
    assert "oracle: solution/solve.sh does not solve it: reward 0, not 1" in wrong.err
    assert "| greeting is 'bye'" in wrong.err

    (task / "task.toml").write_text("version = \n")
    broken = cli("tasks", "check", str(task))
    assert broken.code == 2 and "invalid TOML" in broken.err and str(task) in broken.err


def test_a_broken_task_toml_among_good_tasks_is_named(
    cli: CLI, backend: Local, tmp_path: Path
) -> None:
    suite = tmp_path / "suite"
    for name in ("good", "bad"):
        shutil.copytree(EXAMPLE, suite / name)
    (suite / "bad" / "task.toml").write_text("version = \n")
    ran = cli("jobs", "run", "--tasks", str(suite), "-a", "oracle")
    assert ran.code == 2
    assert f"{suite / 'bad' / 'task.toml'}: not valid TOML" in ran.err
    assert "--exclude bad" in ran.err
    pool = cli(
        "pools", "create", "p", "--local", str(suite / "good"), "--local", str(suite / "bad")
    )
    assert pool.code == 1 and "task 'bad'" in pool.err
