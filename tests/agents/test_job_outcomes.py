"""A job where each kind of outcome happens once, and every view puts it where it belongs.

The real codex CLI runs against the scripted provider with a model the backend has no
price for, next to the oracle, on three tasks:

- ``fix-failing-test``: both pass; codex's cost is unknown (never $0);
- ``broken-verifier``: the tests exit without a reward: a *verifier error* for both,
  not a failure of either agent (as Harbor counts it);
- ``provider-down``: the provider answers every call of codex on this task (its
  instruction carries a marker) with a 429; codex gives up, and the egress gateway
  ends the rollout in ``error`` with ``provider_rate_limited`` (transient).

The result table, ``--rollouts``, JSON, the JUnit file and the HTML report must each show
the verifier error and the provider error in the errors column (by kind), the unknown
cost as unknown, and the job must exit 7 with the command that retries the transient
error; ``jobs resume --retry-errors`` then runs it again and it passes.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from envpools_cli import client as ep
from tests.agents.conftest import require_agent
from tests.agents.provider_stub import FIX_COMMAND, ProviderStub
from tests.integration.conftest import EXAMPLE, start_backend

# The real agent CLIs: opencode alone needs ~10 s of CPU to start, minutes on a busy machine.
pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(360)]

MODEL = "stub-model-without-a-price"
DOWN = "PROVIDER-DOWN-FOR-THIS-TASK"
"""In the provider-down task's instruction: the stub 429s every call that holds it."""


def suite(root: Path) -> Path:
    for name in ("fix-failing-test", "broken-verifier", "provider-down"):
        shutil.copytree(EXAMPLE, root / name)
    (root / "broken-verifier" / "tests" / "test.sh").write_text(
        "#!/bin/bash\necho 'the verifier crashed' >&2\nexit 3\n"
    )
    instruction = root / "provider-down" / "instruction.md"
    instruction.write_text(instruction.read_text() + f"\n({DOWN})\n")
    return root


def envpools(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "envpools_cli", *args],
        capture_output=True,
        text=True,
        env=env,
        timeout=600,
        check=False,
    )


def test_verifier_error_unpriced_model_and_provider_failure_each_in_place(
    agents_dir: Path, tmp_path: Path
) -> None:
    require_agent("codex")
    stub = ProviderStub(
        command=FIX_COMMAND, expected_key="sk-test-job-outcomes", failure="429", fail_when=DOWN
    ).start()
    thread = start_backend(tmp_path / "data")
    try:
        _, key = thread.create_key()
        conn = {"backend_base": thread.url, "api_key": key}
        for name, value in (
            ("OPENAI_API_KEY", "sk-test-job-outcomes"),
            ("OPENAI_BASE_URL", stub.url + "/v1"),
        ):
            ep.store_credential(
                credential_name=name, credential_type=name, credential_value=value, **conn
            )
        env = {**os.environ, "ENVPOOLS_API_URL": thread.url, "ENVPOOLS_API_KEY": key}
        junit, html = tmp_path / "junit.xml", tmp_path / "report.html"
        tasks = suite(tmp_path / "suite")
        job = subprocess.Popen(
            [sys.executable, "-m", "envpools_cli", "jobs", "run", "--tasks", str(tasks),
             "-a", f"codex:{MODEL}", "-a", "oracle", "-n", "6", "--agent-timeout", "240",
             "--junit", str(junit), "-q"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        out, err = job.communicate(timeout=600)
        job_id = out.strip()
        (down,) = [
            r
            for r in ep.list_rollouts(task_id="provider-down", limit=50, **conn)["rollouts"]
            if r["agent"]["harness"] == "codex"
        ]
        ended = down["rollout_id"]
        assert down["status"] == "error" and down["error"]["code"] == "provider_rate_limited"
        assert stub.failed >= 1, "the provider did answer codex's call with a 429"

        # The job is not done: a transient error has no verdict. It says how to retry.
        assert job.returncode == 7, err
        assert f"envpools jobs resume {job_id} --retry-errors" in err
        assert f"no price for {MODEL}" in err and "cost unknown" in err

        shown = envpools("jobs", "show", job_id, "-o", "json", env=env)
        result = json.loads(shown.stdout)["result"]
        rows = {(g["task_id"], g["agent"]): g for g in result["groups"]}
        assert rows[("provider-down", "codex")]["errors_by_kind"] == {"provider": 1}
        assert rows[("provider-down", "codex")]["attempts"] == 0
        for agent in ("codex", "oracle"):
            row = rows[("broken-verifier", agent)]
            assert (row["errors_by_kind"], row["attempts"], row["failures"]) == (
                {"verifier": 1}, 0, 0
            ), row  # fmt: skip
        assert rows[("fix-failing-test", "codex")]["passes"] == 1
        totals = {t["agent"]: t for t in result["totals"]}
        codex, oracle = totals["codex"], totals["oracle"]
        assert codex["errors_by_kind"] == {"verifier": 1, "provider": 1}
        assert codex["transient_errors"] == 1 and oracle["errors_by_kind"] == {"verifier": 1}
        assert codex["cost_usd"] is None and codex["unpriced_models"] == [MODEL]
        assert codex["models_used"] == [MODEL] and codex["cache_tokens"] > 0
        assert oracle["cost_usd"] is not None
        assert (result["errors"], result["errors_by_kind"]) == (
            3, {"verifier": 2, "provider": 1}
        )  # fmt: skip

        # The table people read: ERR apart from PASS, COST unknown (plain text when piped).
        table = envpools("jobs", "show", job_id, env=env).stdout.splitlines()
        head = table[0].split("\t")
        cells = {
            (line.split("\t")[0], line.split("\t")[1]): dict(zip(head, line.split("\t"), strict=True))
            for line in table[1:]
            if line.count("\t") == len(head) - 1 and line.split("\t")[0] in (
                "fix-failing-test", "broken-verifier", "provider-down"
            )
        }  # fmt: skip
        label = f"codex:{MODEL}"
        assert cells[("provider-down", label)]["ERR"] == "1"
        assert cells[("provider-down", label)]["PASS"] == "0/0+"
        assert cells[("broken-verifier", "oracle")]["ERR"] == "1"
        assert cells[("fix-failing-test", label)]["COST"] == "unknown"
        assert cells[("fix-failing-test", "oracle")]["COST"].startswith("$")
        listed = envpools("jobs", "show", job_id, "--rollouts", "-o", "json", env=env)
        by_id = {r["rollout_id"]: r for r in json.loads(listed.stdout)}
        assert by_id[ended]["error_kind"] == "provider" and by_id[ended]["transient_error"]

        # JUnit: errors as <error> with their kind, never as failures; cost unknown said.
        root = ET.parse(junit).getroot()
        suites = {s.get("name"): s for s in root.iter("testsuite")}
        codex_suite = next(s for n, s in suites.items() if n and n.endswith(f"[{label}]"))
        assert (codex_suite.get("failures"), codex_suite.get("errors")) == ("0", "2")
        cases = {c.get("name"): c for c in codex_suite.iter("testcase")}
        provider = cases["provider-down"].find("error")
        assert provider is not None and provider.get("type") == "provider:provider_rate_limited"
        verifier = cases["broken-verifier"].find("error")
        assert verifier is not None and verifier.get("type") == "verifier:reward_missing"
        assert cases["fix-failing-test"].find("error") is None
        assert cases["fix-failing-test"].find("failure") is None
        props = {p.get("name"): p.get("value") for p in cases["fix-failing-test"].iter("property")}
        assert props["cost_unknown"] == MODEL and props["cost_usd"] == ""

        # The HTML report: the same in its tables, and said in words at the top.
        made = envpools("jobs", "report", job_id, "--html", str(html), "--no-events", env=env)
        assert made.returncode == 0, made.stderr
        page = html.read_text()
        assert "provider: provider_rate_limited" in page and "verifier: reward_missing" in page
        assert "2 errors (verifier 1, provider 1)" in page
        assert "cost unknown for" in page and MODEL in page
        assert '<span class="unknown">unknown</span>' in page

        # The transient error is worth running again: now the provider answers.
        stub.failure = None
        resumed = envpools("jobs", "resume", job_id, "--retry-errors", "-o", "json", env=env)
        assert resumed.returncode == 0, resumed.stderr
        again = json.loads(resumed.stdout)["result"]
        rows = {(g["task_id"], g["agent"]): g for g in again["groups"]}
        assert rows[("provider-down", "codex")]["passes"] == 1
        assert rows[("broken-verifier", "codex")]["errors_by_kind"] == {"verifier": 1}
    finally:
        thread.stop()
        stub.stop()
