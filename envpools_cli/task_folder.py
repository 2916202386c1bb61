"""A Harbor task folder on this machine: a new one scaffolded, an existing one checked.

``scaffold`` writes a small task that works as it is (its oracle passes, doing nothing
fails), to edit from there. ``check`` runs the task the way ``harbor tasks check`` does:
the oracle (``solution/solve.sh``) must pass and ``nop`` (no change at all) must not, on a
backend of its own (a temporary data folder, this machine's sandbox), so no ``local up``
is needed and nothing is left behind.
"""

from __future__ import annotations

import tempfile
import textwrap
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["TEMPLATE", "Verdict", "check", "scaffold"]

TEMPLATE: dict[str, str] = {
    "instruction.md": """\
        Write the word `hello` to `/app/greeting.txt`.
        """,
    "task.toml": """\
        version = "1.0"

        [metadata]
        difficulty = "easy"
        category = "example"

        [agent]
        timeout_sec = 600

        [verifier]
        timeout_sec = 120

        [environment]
        memory_mb = 2048
        """,
    "environment/Dockerfile": """\
        FROM python:3.12-slim
        WORKDIR /app
        COPY repo/ /app/
        """,
    "environment/repo/README.md": """\
        The files the agent starts from (copied to /app).
        """,
    "solution/solve.sh": """\
        #!/bin/bash
        # The reference solution: what the oracle runs. It must make the tests pass.
        echo hello > /app/greeting.txt
        """,
    "tests/test.sh": """\
        #!/bin/bash
        # The verifier: writes the reward (1 solved, 0 not) to /logs/verifier/reward.txt.
        # A test that writes no reward is an error, not a failure of the agent.
        if [ "$(cat /app/greeting.txt 2>/dev/null)" = "hello" ]; then
          echo 1 > /logs/verifier/reward.txt
        else
          echo 0 > /logs/verifier/reward.txt
        fi
        """,
}


def scaffold(folder: Path) -> list[Path]:
    """Write the template into ``folder`` (which must not exist or be empty)."""
    if folder.exists() and (not folder.is_dir() or any(folder.iterdir())):
        raise FileExistsError(f"{folder} exists and is not an empty folder")
    written = []
    for relative, text in TEMPLATE.items():
        target = folder / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(textwrap.dedent(text))
        if target.suffix == ".sh":
            target.chmod(0o755)
        written.append(target)
    return written


@dataclass
class Verdict:
    """How one agent's rollout of the task went, against what a sound task gives."""

    agent: str
    expected: str
    """``pass`` (the oracle) or ``fail`` (nop)."""
    ok: bool
    status: str
    reward: float | None
    rollout_id: str | None
    why: str
    verifier_output: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {
            "agent": self.agent,
            "expected": self.expected,
            "ok": self.ok,
            "status": self.status,
            "reward": self.reward,
            "rollout_id": self.rollout_id,
            "why": self.why,
            "verifier_output": self.verifier_output,
        }


def _judge(agent: str, doc: dict[str, Any], output: list[str]) -> Verdict:
    status = str(doc.get("status") or "")
    reward = doc.get("reward_primary")
    reward = float(reward) if isinstance(reward, int | float) else None
    error = doc.get("error") if isinstance(doc.get("error"), dict) else {}
    said = f"{error.get('code')}: {error.get('message')}" if error else ""
    rid = doc.get("rollout_id")
    if agent == "oracle":
        ok = status == "succeeded" and reward is not None and reward >= 1.0
        if ok:
            why = "the solution solves it (reward 1)"
        elif status == "succeeded":
            why = f"solution/solve.sh does not solve it: reward {reward:g}, not 1"
        else:
            why = f"the oracle's rollout ended {status}" + (f" ({said})" if said else "")
        return Verdict(agent, "pass", ok, status, reward, rid, why, output)
    ok = status == "succeeded" and (reward or 0.0) <= 0.0
    if ok:
        why = "doing nothing does not pass (reward 0)"
    elif status == "succeeded":
        why = f"doing nothing scores {reward:g}: the tests do not check the work"
    else:
        why = f"the nop rollout ended {status}" + (f" ({said})" if said else "")
    return Verdict(agent, "fail", ok, status, reward, rid, why, output)


def _verifier_output(rollout_id: str, conn: dict[str, Any], lines: int = 8) -> list[str]:
    from envpools_cli import client as ep

    found: list[str] = []
    try:
        with ep.stream_rollout_events(rollout_id, **conn) as stream:
            for event in stream:
                data = event.get("data")
                if event.get("event") == "verifier" and isinstance(data, dict):
                    found.append(str(data.get("text") or ""))
    except (ep.APIError, ep.TransportError):
        return []
    return [line for line in found if line][-lines:]


def check(
    folder: Path,
    *,
    sandbox: str | None = None,
    timeout: float = 900.0,
    say: Callable[[str], None] = lambda _: None,
) -> list[Verdict]:
    """Run the oracle and nop on the task at ``folder``; a Verdict for each.

    Raises ``TaskError`` (from the backend's own reader) when the folder is not a task it
    can read (``task.toml`` that does not parse, a missing ``tests/test.sh``...).
    """
    from envpools_cli import client as ep
    from envpools_cli.server.serve import BackendThread
    from envpools_cli.server.settings import ServerSettings
    from envpools_cli.server.tasks import load_task

    root = folder.expanduser().resolve()
    load_task(root)  # what the backend would refuse, said before anything starts
    with tempfile.TemporaryDirectory(prefix="envpools-check-") as data:
        settings = ServerSettings.from_env(Path(data))
        if sandbox:
            settings.sandbox = sandbox
        thread = BackendThread(settings).start()
        try:
            _, key = thread.create_key("pro", name="tasks check")
            conn: dict[str, Any] = {"backend_base": thread.url, "api_key": key}
            say(f"checking {root.name} on a backend of its own ({thread.backend.ctx.driver.name})")
            ep.create_pool(
                request={
                    "pool_id": "check",
                    "pool_type": "sandbox",
                    "concurrency": 2,
                    "tasks": [ep.PoolTask.from_local(root.name, str(root)).model_dump()],
                },
                **conn,
            )
            ids = {}
            for agent in ("oracle", "nop"):
                request = {
                    "task_ref": {"dataset": "check", "task_id": root.name},
                    "agent": {"harness": agent},
                    "pool_id": "check",
                    "task_app_id": "",
                    "timeouts": {},
                }
                ids[agent] = str(ep.create_rollout(request=request, **conn)["rollout_id"])
            docs: dict[str, dict[str, Any]] = {}

            def wait(agent: str) -> None:
                docs[agent] = ep.RolloutHandle(ids[agent], **conn).wait(timeout=timeout)

            waiters = [threading.Thread(target=wait, args=(a,), daemon=True) for a in ids]
            for waiter in waiters:
                waiter.start()
            for waiter in waiters:
                waiter.join(timeout + 30)
            verdicts = []
            for agent in ("oracle", "nop"):
                doc = docs.get(agent) or {"rollout_id": ids[agent], "status": "timed out"}
                verdict = _judge(agent, doc, [])
                if not verdict.ok:
                    verdict.verifier_output = _verifier_output(ids[agent], conn)
                verdicts.append(verdict)
            return verdicts
        finally:
            thread.stop()
