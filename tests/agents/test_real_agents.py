"""The real agent CLIs, in the bubblewrap sandbox, against the stub.

codex, claude, opencode, gemini (Gemini's streamGenerateContent), qwen (chat completions)
and mini-swe-agent (chat completions through LiteLLM).

Each test runs the bundled example task with one agent through the real local backend:
the CLI reaches the scripted provider only through the rollout's egress gateway, fixes
the task with the scripted shell tool call, and ends with the scripted message. The
provider key carries a unique marker that must appear nowhere the user can see: events,
logs, artifacts (downloaded as a zip too), the support bundle, the usage. The scripted
tool call also looks for it inside the sandbox (environment, every process's environment
and command line, the files the agent can write): it must not be there either.

The same runs check the rollout's record of itself against the stub's ledger: the
trajectory (ATIF) has the scripted call, its result and the final message, with each
model step's tokens those the stub handed out for that turn; the LLM exchanges hold
every call the stub saw, byte for byte the bodies it was sent, with no key.
"""

from __future__ import annotations

import io
import json
import tarfile
import uuid
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.atif import Trajectory
from envpools_cli.jobs.export import export, items_of_rollouts
from envpools_cli.server.sandbox.exchanges import describe
from tests.agents.conftest import require_agent
from tests.agents.provider_stub import FIX_COMMAND, TURN_USAGE, ProviderStub, Usage
from tests.integration.conftest import EXAMPLE, fast_session, local_task, start_backend

# The real agent CLIs: opencode alone needs ~10 s of CPU to start, minutes on a busy machine.
pytestmark = [pytest.mark.sandbox, pytest.mark.timeout(360)]
pq = pytest.importorskip("pyarrow.parquet", reason="the parquet export needs pyarrow")

SEEN = "KEY-VISIBLE-IN-SANDBOX"
SCANNED = "SANDBOX-SCAN-DONE"


def scan_for(marker: str, folders: tuple[str, ...] = ("/tmp", "/app", "/logs", "/run")) -> str:
    """A shell line that prints SEEN if ``marker`` is anywhere the agent could read it.

    The marker and both words are split in the command, so that the command itself (which
    events show, and which sits in every /proc/*/cmdline of the scan) never holds them.
    """
    half = len(marker) // 2
    script = (
        "import os,pathlib,stat;"
        f"m={marker[:half]!r}+{marker[half:]!r};"
        "P=pathlib.Path;"
        "r=lambda f:(f.read_bytes() if stat.S_ISREG(f.lstat().st_mode) "
        "and f.lstat().st_size<2**24 else b'');"
        "t=repr(dict(os.environ)).encode();"
        "fs=[p/f for p in P('/proc').iterdir() if p.name.isdigit() for f in ('environ','cmdline')];"
        f"fs+=[P(a,n) for d in {folders!r} for a,_,ns in os.walk(d) for n in ns];"
        "\nfor f in fs:\n try: t+=r(f)\n except OSError: pass\n"
        "m=m.encode();"
        "print(('KEY-VISIBLE'+'-IN-SANDBOX') if m in t else ('SANDBOX-SCAN'+'-DONE'))"
    )
    return f'python3 -c "{script}"'


@dataclass
class AgentCase:
    harness: str
    key_name: str
    base_url_name: str
    base_url_suffix: str
    model: str | None
    turns: tuple[str, ...]
    """The stub's answers the agent's own usage report covers."""
    finish_command: str | None = None
    streams: bool = True
    """Whether the CLI asks for streamed answers (mini-swe-agent's LiteLLM calls do not)."""


CASES = {
    "codex": AgentCase(
        "codex", "OPENAI_API_KEY", "OPENAI_BASE_URL", "/v1", None, ("tool_call", "final")
    ),
    "claude-code": AgentCase(
        "claude-code", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "", None, ("tool_call", "final")
    ),
    "opencode": AgentCase(
        "opencode", "ANTHROPIC_API_KEY", "ANTHROPIC_BASE_URL", "", None, ("tool_call", "final")
    ),
    "gemini-cli": AgentCase(
        "gemini-cli", "GEMINI_API_KEY", "GEMINI_BASE_URL", "", None, ("tool_call", "final")
    ),
    "qwen-code": AgentCase(
        "qwen-code", "DASHSCOPE_API_KEY", "DASHSCOPE_BASE_URL", "/v1", None, ("tool_call", "final")
    ),
    "mini-swe-agent": AgentCase(
        "mini-swe-agent",
        "OPENAI_API_KEY",
        "OPENAI_BASE_URL",
        "/v1",
        None,
        ("tool_call", "final"),
        finish_command="echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT",
        streams=False,
    ),
}


@dataclass
class Run:
    stub: ProviderStub
    marker: str
    rollout: dict[str, Any]
    events: list[dict[str, Any]]
    usage: dict[str, Any]
    artifacts: dict[str, bytes]
    conn: dict[str, Any]
    visible: str
    """Everything the user can read about the rollout, as one text."""


def _trial_text(trial: Path) -> str:
    parts = []
    for path in sorted(trial.rglob("*")):
        if not path.is_file() or path.is_symlink():
            continue
        if path.suffix == ".gz":
            with tarfile.open(path) as tar:
                for member in tar.getmembers():
                    handle = tar.extractfile(member) if member.isfile() else None
                    if handle is not None:
                        parts.append(handle.read().decode(errors="replace"))
        else:
            parts.append(path.read_text(errors="replace"))
    return "\n".join(parts)


def _zip_text(data: bytes) -> str:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return "\n".join(archive.read(name).decode(errors="replace") for name in archive.namelist())


def run_agent(
    tmp_path: Path,
    case: AgentCase,
    command: str | None = None,
    pool_fields: dict[str, Any] | None = None,
    *,
    provider_key: str | None = None,
    **settings: Any,
) -> Iterator[Run]:
    """One rollout of ``case``; the scripted tool call fixes the task, then scans for the key.

    ``provider_key``: the only key the provider takes (default: the one stored).
    """
    marker = uuid.uuid4().hex
    key = f"sk-test-{marker}"
    command = command or f"{FIX_COMMAND}; {scan_for(marker)}"
    stub = ProviderStub(
        command=command, expected_key=provider_key or key, finish_command=case.finish_command
    ).start()
    thread = start_backend(tmp_path / "data", **settings)
    session = fast_session()
    try:
        _, api_key = thread.create_key()
        conn = {"backend_base": thread.url, "api_key": api_key, "session": session}
        for name, value in (
            (case.key_name, key),
            (case.base_url_name, stub.url + case.base_url_suffix),
        ):
            ep.store_credential(
                credential_name=name, credential_type=name, credential_value=value, **conn
            )
        ep.create_pool(
            request={
                "pool_id": "agents",
                "pool_type": "sandbox",
                "tasks": [local_task("fix", EXAMPLE).model_dump()],
                **(pool_fields or {}),
            },
            **conn,
        )
        spec: dict[str, Any] = {"harness": case.harness}
        if case.model:
            spec["model_id"] = case.model
        request = {
            "task_ref": {"dataset": "d", "task_id": "fix"},
            "agent": spec,
            "pool_id": "agents",
            "task_app_id": "",
            "timeouts": {"agent_sec": 240},
        }
        rid = ep.create_rollout(request=request, **conn)["rollout_id"]
        done = ep.RolloutHandle(rid, **conn).wait(timeout=300)
        events = list(ep.stream_rollout_events(rid, **conn))
        usage = ep.get_rollout_usage(rid, **conn)
        bundle = ep.get_rollout_support_bundle(rid, **conn)
        archive = ep.download_artifacts_zip(rid, **conn)
        with zipfile.ZipFile(io.BytesIO(archive)) as opened:
            artifacts = {name: opened.read(name) for name in opened.namelist()}
        visible = "\n".join(
            [
                json.dumps(done),
                json.dumps(events),
                json.dumps(usage),
                json.dumps(bundle),
                _zip_text(archive),
                _trial_text(tmp_path / "data" / "trials" / rid),
            ]
        )
        yield Run(stub, marker, done, events, usage, artifacts, conn, visible)
    finally:
        session.close()
        thread.stop()
        stub.stop()


def agent_data(run: Run) -> list[dict[str, Any]]:
    return [e["data"] for e in run.events if e["event"] == "agent"]


@pytest.mark.parametrize("harness", list(CASES))
def test_real_agent_fixes_the_task_through_the_gateway(
    harness: str, agents_dir: Path, tmp_path: Path
) -> None:
    require_agent(harness)
    case = CASES[harness]
    for run in run_agent(tmp_path, case):
        assert run.rollout["status"] == "succeeded", run.rollout
        assert run.rollout["reward_primary"] == 1.0, "the scripted tool call fixed the task"

        data = agent_data(run)
        calls = [d for d in data if d.get("kind") == "tool_call"]
        assert calls, data
        assert any("sed -i" in json.dumps(d.get("input")) for d in calls), calls
        assert any(isinstance(d.get("input"), dict) for d in calls), "tool input as JSON"
        texts = [d.get("text") for d in data if d.get("kind") in ("message", "result")]
        assert run.stub.final_text in texts, texts
        assert SEEN not in run.visible, "the provider key was visible inside the sandbox"
        assert SCANNED in json.dumps(data), "the scan inside the sandbox ran"

        # The stub saw only the real key (the gateway swapped the placeholder for it),
        # and the agent's turns were the scripted ones.
        assert run.stub.keys_seen == {f"sk-test-{run.marker}"}
        assert [t for t in run.stub.turns() if t != "side"] == ["tool_call", "final"]

        # The usage is every token the provider handed out: the agent's own report when
        # it covers them all, else the gateway's record of each call (a CLI's title or
        # summary calls are not in its own report).
        expected: Usage = run.stub.totals()
        assert run.usage["llm_input_tokens"] == expected.prompt
        assert run.usage["llm_cache_tokens"] == expected.cached
        assert run.usage["llm_output_tokens"] == expected.output
        reported_all = set(run.stub.turns()) <= set(case.turns)
        assert run.usage["usage_source"] == ("agent" if reported_all else "gateway")
        assert run.usage["cost_usd"] > 0
        assert run.usage["model_id"]

        check_exchanges(run, streams=case.streams)
        check_trajectory(run)
        check_export(run, tmp_path / "export")
        assert run.marker not in run.visible, "the provider key leaked"


@pytest.mark.parametrize("harness", ["gemini-cli", "qwen-code", "mini-swe-agent"])
def test_a_refused_key_ends_in_provider_auth_with_what_to_do(
    harness: str, agents_dir: Path, tmp_path: Path
) -> None:
    """The provider answers 401: the gateway ends the rollout (provider_auth), so no tests
    run on the workspace of an agent that did nothing."""
    require_agent(harness)
    case = CASES[harness]
    for run in run_agent(tmp_path, case, provider_key="sk-another-key-entirely"):
        assert run.rollout["status"] == "error", run.rollout
        error = run.rollout["error"]
        assert error["code"] == "provider_auth", error
        assert "refused the stored key (401)" in error["message"]
        assert "invalid x-api-key" in error["message"], "the provider's own words"
        assert f"replace the {case.key_name} credential" in error["message"]
        assert {f["status"] for f in error["provider_failures"]} == {401}
        assert run.rollout.get("reward_primary") is None
        assert run.marker not in run.visible


def check_export(run: Run, folder: Path) -> None:
    """The chat export is the conversation: the call, its result, the final answer."""
    items = items_of_rollouts([run.rollout])
    for fmt in ("messages", "parquet"):
        result = export(items, folder, fmt, run.conn)
        assert result.written == [run.rollout["rollout_id"]], result
    (line,) = [json.loads(text) for text in (folder / "messages.jsonl").read_text().splitlines()]
    messages = line["messages"]
    assert [m["role"] for m in messages[:2]] == ["system", "user"]
    call = next(m for m in messages if m.get("tool_calls"))["tool_calls"][0]
    assert "sed -i" in call["function"]["arguments"]
    answer = next(m for m in messages if m.get("tool_call_id") == call["id"])
    assert SCANNED in answer["content"]
    last = messages[-1]
    if run.stub.finish_command:
        # An agent that ends by running a command says its last words with that call.
        (finish,) = last.pop("tool_calls")
        assert json.loads(finish["function"]["arguments"]) == {"command": run.stub.finish_command}
    assert last == {"role": "assistant", "content": run.stub.final_text}
    assert line["tools"] and line["metadata"]["reward"] == 1.0
    assert line["metadata"]["agent"] == run.rollout["agent"]["harness"]
    table = pq.read_table(folder / "rollouts.parquet").to_pylist()
    assert table[0]["messages"][-1]["content"] == run.stub.final_text


def exchanges_of(run: Run) -> list[dict[str, Any]]:
    lines = run.artifacts["llm/exchanges.jsonl"].decode().splitlines()
    return sorted((json.loads(line) for line in lines), key=lambda e: e["index"])


def check_exchanges(run: Run, *, streams: bool = True) -> None:
    """One line per call the stub saw, with the very body it got, its answer, no key."""
    exchanges = exchanges_of(run)
    text = run.artifacts["llm/exchanges.jsonl"].decode()
    assert run.marker not in text and "sk-envpools-" not in text, "a key was recorded"
    assert [e["index"] for e in exchanges] == list(range(len(exchanges)))
    assert len(exchanges) == len(run.stub.requests), (exchanges, run.stub.requests)
    seen = sorted(json.dumps(r.get("body"), sort_keys=True) for r in run.stub.requests)
    sent = sorted(json.dumps(e["request"], sort_keys=True) for e in exchanges)
    assert sent == seen, "the recorded request bodies are the ones the provider got"
    for exchange in exchanges:
        match = [r for r in run.stub.requests if r["path"].endswith(exchange["path"])]
        assert match and exchange["method"] == match[0]["method"], exchange["path"]
    answered = [e for e in exchanges if e["usage"]]
    assert sorted(
        (e["usage"]["prompt_tokens"], e["usage"]["cached_tokens"], e["usage"]["completion_tokens"])
        for e in answered
    ) == sorted((a.usage.prompt, a.usage.cached, a.usage.output) for a in run.stub.answers)
    streamed = [e for e in answered if e["streamed"]]
    assert bool(streamed) == streams, "the CLIs that stream their answers are recorded so"
    for exchange in answered:
        # The whole answer (a stream reassembled), as the stub scripted it for that turn.
        assert exchange["status"] == 200 and exchange["latency_ms"] >= 0
        view = describe(exchange)
        said = [view.text] + [json.dumps(c["arguments"]) for c in view.tool_calls]
        assert any(
            "sed -i" in text or text in (run.stub.final_text, "Fix slugify") for text in said
        ), said


def check_trajectory(run: Run) -> None:
    """The trajectory validates, and its steps are the stub's script, with its tokens."""
    document = json.loads(run.artifacts["trajectory.json"])
    trajectory = Trajectory.model_validate(document)
    assert document["schema_version"] == "ATIF-v1.8"
    assert trajectory.trajectory_id == run.rollout["rollout_id"]
    assert trajectory.extra and trajectory.extra["reward"] == 1.0
    sources = [s.source for s in trajectory.steps]
    assert sources[:2] == ["system", "user"], sources
    assert "Fix the failing test" in str(trajectory.steps[1].message)
    agent = [s for s in trajectory.steps if s.source == "agent"]
    # tool call -> observation (answering that call) -> final message
    call_step = next(s for s in agent if s.tool_calls)
    call = call_step.tool_calls[0]  # type: ignore[index]
    assert "sed -i" in json.dumps(call.arguments)
    assert call_step.observation is not None
    result = call_step.observation.results[0]
    assert result.source_call_id == call.tool_call_id
    assert SCANNED in str(result.content) and "OK" in str(result.content)
    # What the agent observed is what the provider was sent back as the call's result.
    followups = [json.dumps(r.get("body")) for r in run.stub.requests[1:]]
    assert any(SCANNED in body for body in followups)
    assert agent[-1].message == run.stub.final_text
    assert agent.index(call_step) < len(agent) - 1

    # Each model step carries the tokens the stub handed out for that turn.
    expected = {"tool_call": TURN_USAGE["tool_call"], "final": TURN_USAGE["final"]}
    for step, turn in ((call_step, "tool_call"), (agent[-1], "final")):
        assert step.metrics is not None, step
        usage = expected[turn]
        assert (step.metrics.prompt_tokens, step.metrics.cached_tokens) == (
            usage.prompt,
            usage.cached,
        )
        assert step.metrics.completion_tokens == usage.output
        assert step.metrics.extra and step.metrics.extra["source"] == "gateway"
        index = step.metrics.extra["llm_exchange"]
        linked = exchanges_of(run)[index]
        assert linked["usage"]["completion_tokens"] == usage.output

    # Steps plus what happened outside them add up to the rollout's usage, exactly.
    final = trajectory.final_metrics
    assert final is not None and final.extra is not None
    outside = final.extra.get("outside_steps", {})
    assert (final.total_prompt_tokens or 0) + outside.get("prompt_tokens", 0) == run.usage[
        "llm_input_tokens"
    ]
    assert (final.total_completion_tokens or 0) + outside.get("completion_tokens", 0) == run.usage[
        "llm_output_tokens"
    ]
    assert (final.total_cached_tokens or 0) + outside.get("cached_tokens", 0) == run.usage[
        "llm_cache_tokens"
    ]
    assert outside.get("llm_calls", 0) == run.stub.turns().count("side")
    assert final.total_steps == len(trajectory.steps)
    assert final.extra["usage_source"] == run.usage["usage_source"]


def test_without_isolation_the_agent_still_goes_through_the_gateway(
    agents_dir: Path, tmp_path: Path
) -> None:
    """The plain-process driver: no sandbox, but the key still stays with the backend."""
    require_agent("codex")
    # Unsandboxed, the workspace is not at /app: the agent works in its own directory
    # (and scanning the host for the key would prove nothing).
    fix = FIX_COMMAND.replace("cd /app && ", "")
    off = {"record_llm_exchanges": False}  # and a pool that keeps no LLM exchanges
    for run in run_agent(tmp_path, CASES["codex"], fix, off, sandbox="process"):
        assert run.rollout["status"] == "succeeded", run.rollout
        assert run.rollout["reward_primary"] == 1.0
        assert run.stub.keys_seen == {f"sk-test-{run.marker}"}
        assert run.marker not in run.visible
        assert "llm/exchanges.jsonl" not in run.artifacts
        assert run.usage["usage_source"] == "agent"
        assert run.usage["llm_input_tokens"] == run.stub.totals().prompt
        trajectory = Trajectory.model_validate_json(run.artifacts["trajectory.json"])
        assert trajectory.extra and "llm_exchanges" not in trajectory.extra
        assert trajectory.steps[0].source == "user", "no system prompt known"


def test_token_totals_are_the_stubs_fixed_numbers() -> None:
    """The expectations above are the fixed numbers, not whatever the stub happened to do."""
    both = (TURN_USAGE["tool_call"], TURN_USAGE["final"])
    assert sum(u.prompt for u in both) == 2700
    assert sum(u.cached for u in both) == 1300
    assert sum(u.output for u in both) == 65


def test_the_sandbox_scan_finds_a_visible_key(tmp_path: Path) -> None:
    """The scan would have said so: a marker in the environment or in a file is found."""
    import os
    import subprocess

    marker = uuid.uuid4().hex
    folder = tmp_path / "scanned"
    folder.mkdir()

    def scan(**env: str) -> str:
        done = subprocess.run(
            ["bash", "-c", scan_for(marker, (str(folder),))],
            env={**os.environ, **env},
            capture_output=True,
            text=True,
            check=True,
        )
        return done.stdout

    assert SCANNED in scan() and SEEN not in scan()
    assert SEEN in scan(LEAK=f"sk-{marker}")
    (folder / "state.json").write_text(json.dumps({"key": f"sk-{marker}"}))
    assert SEEN in scan()
