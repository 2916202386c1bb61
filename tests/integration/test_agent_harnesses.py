"""The agent CLI adapters' parsing, with stand-ins for the CLIs on the tool path.

Each stand-in prints what the real CLI prints (reference/HARBOR_AND_HARNESSES.md §2),
fixes the example task the way an agent would, and echoes the key it was given (the
gateway's placeholder: the stored key never enters the sandbox), which must never reach
an event, a log or an artifact. The real CLIs run in tests/agents.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.server.agents.adapters import ClaudeCodeHarness, CodexHarness, OpenCodeHarness

from .conftest import EXAMPLE, Backend, fast_session, local_task, start_backend

FIX = (
    "python3 -c \"import pathlib; p = pathlib.Path('/app/textutils.py'); "
    "p.write_text(p.read_text().replace('re.findall(r\\\"[a-z0-9]+\\\", text)', "
    '\'re.findall(r\\"[a-z0-9]+\\", text.lower())\'))"'
)

STAND_INS = {
    "codex": (
        "OPENAI_API_KEY",
        "sk-openai-test-secret-123",
        f"""#!/bin/bash
echo '{{"type":"thread.started","thread_id":"t1"}}'
echo '{{"type":"item.completed","item":{{"id":"i1","type":"agent_message","text":"Fixing slugify"}}}}'
echo '{{"type":"item.completed","item":{{"id":"i2","type":"command_execution","command":"bash -lc ls","aggregated_output":"README","exit_code":0,"status":"completed"}}}}'
{FIX}
echo "debug: my key is $CODEX_API_KEY and model $4"
echo '{{"type":"turn.completed","usage":{{"input_tokens":24763,"cached_input_tokens":24448,"output_tokens":122}}}}'
""",
    ),
    "claude": (
        "ANTHROPIC_API_KEY",
        "sk-ant-test-secret-456",
        f"""#!/bin/bash
read -r prompt
echo '{{"type":"system","subtype":"init","model":"claude-sonnet-4-5"}}'
echo '{{"type":"assistant","message":{{"id":"m1","content":[{{"type":"text","text":"Looking"}}],"usage":{{"input_tokens":2,"cache_read_input_tokens":9600,"output_tokens":58}}}}}}'
echo '{{"type":"assistant","message":{{"id":"m1","content":[{{"type":"tool_use","name":"Edit","input":{{"file_path":"/app/textutils.py"}}}}],"usage":{{"input_tokens":2,"cache_read_input_tokens":9600,"output_tokens":58}}}}}}'
{FIX}
echo "leak: $ANTHROPIC_API_KEY"
echo '{{"type":"result","subtype":"success","is_error":false,"num_turns":3,"result":"Done","total_cost_usd":0.0412,"usage":{{"input_tokens":9,"cache_creation_input_tokens":1200,"cache_read_input_tokens":27700,"output_tokens":77}}}}'
""",
    ),
    "opencode": (
        "ANTHROPIC_API_KEY",
        "sk-ant-test-secret-789",
        f"""#!/bin/bash
echo '{{"type":"step_start","part":{{"type":"step-start"}}}}'
echo '{{"type":"text","part":{{"type":"text","text":"I will fix it"}}}}'
{FIX}
echo '{{"type":"tool_use","part":{{"type":"tool","tool":"bash","state":{{"status":"completed","input":{{"command":"ls"}},"output":"README"}}}}}}'
echo '{{"type":"step_finish","part":{{"type":"step-finish","reason":"tool-calls","cost":0.01,"tokens":{{"input":100,"output":20,"cache":{{"read":900,"write":0}}}}}}}}'
echo '{{"type":"step_finish","part":{{"type":"step-finish","reason":"stop","cost":0.02,"tokens":{{"input":50,"output":10,"cache":{{"read":0,"write":0}}}}}}}}'
echo "$OPENCODE_CONFIG_CONTENT"
""",
    ),
}
HARNESS_OF = {"codex": "codex", "claude": "claude-code", "opencode": "opencode"}


@pytest.fixture
def tools(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    folder = tmp_path / "tools"
    folder.mkdir()
    for name, (_, _, script) in STAND_INS.items():
        path = folder / name
        path.write_text(script)
        path.chmod(0o755)
    monkeypatch.setenv("ENVPOOLS_TOOL_PATH", str(folder))
    yield folder


@pytest.mark.parametrize("binary", ["codex", "claude", "opencode"])
def test_agent_cli_adapter(tools: Path, tmp_path: Path, binary: str) -> None:
    credential, secret, _ = STAND_INS[binary]
    harness = HARNESS_OF[binary]
    thread = start_backend(tmp_path / "data")
    try:
        _, key = thread.create_key()
        conn = {"backend_base": thread.url, "api_key": key, "session": fast_session()}
        agents = {a["name"]: a for a in ep.get_capabilities(**conn)["agents"]}
        assert agents[harness]["available"], agents[harness]
        ep.create_pool(
            request={
                "pool_id": "p",
                "pool_type": "sandbox",
                "tasks": [local_task("fix", EXAMPLE).model_dump()],
            },
            **conn,
        )
        request = {
            "task_ref": {"dataset": "d", "task_id": "fix"},
            "agent": {"harness": harness},
            "pool_id": "p",
            "task_app_id": "",
            "timeouts": {"agent_sec": 60},
        }
        missing = ep.create_rollout(request=request, **conn)
        failed = ep.RolloutHandle(missing["rollout_id"], **conn).wait(timeout=60)
        assert failed["status"] == "error"
        assert failed["error"]["code"] == "credentials_missing"

        ep.store_credential(
            credential_name=credential,
            credential_type=credential,
            credential_value=secret,
            backend_base=thread.url,
            api_key=key,
        )
        rid = ep.create_rollout(request=request, **conn)["rollout_id"]
        events = list(ep.stream_rollout_events(rid, **conn))
        done = ep.get_rollout(rid, **conn)
        assert done["status"] == "succeeded", done
        assert done["reward_primary"] == 1.0, "the stand-in agent fixed the task"
        agent_data = [e["data"] for e in events if e["event"] == "agent"]
        kinds = {d.get("kind") for d in agent_data}
        assert "message" in kinds
        usage = ep.get_rollout_usage(rid, **conn)
        trial = tmp_path / "data" / "trials" / rid
        every_text = (
            json.dumps(events)
            + json.dumps(usage)
            + "".join(
                p.read_text(errors="replace")
                for p in trial.rglob("*")
                if p.is_file() and p.suffix != ".gz"
            )
        )
        assert secret not in every_text, "the agent's echo of its key was redacted"
        assert "[REDACTED]" in every_text
    finally:
        thread.stop()
    if binary == "codex":
        assert usage["llm_input_tokens"] == 24763 and usage["llm_output_tokens"] == 122
        expected = (315 * 1.25 + 24448 * 0.125 + 122 * 10.0) / 1_000_000
        assert usage["provider_costs"]["openai"] == pytest.approx(expected, abs=1e-6)
        assert {"tool_result"} <= kinds
    elif binary == "claude":
        assert usage["llm_input_tokens"] == 9 + 1200 + 27700
        assert usage["llm_output_tokens"] == 77
        assert usage["provider_costs"]["anthropic"] == pytest.approx(0.0412)
        assert {"tool_call", "result"} <= kinds
    else:
        assert usage["llm_input_tokens"] == 100 + 900 + 50
        assert usage["llm_output_tokens"] == 30
        assert usage["provider_costs"]["anthropic"] == pytest.approx(0.03)
        assert {"tool_call", "step_finish"} <= kinds
    assert usage["cost_usd"] == pytest.approx(sum(usage["provider_costs"].values()))


def test_claude_usage_without_a_result_line_dedupes_messages() -> None:
    harness = ClaudeCodeHarness()
    line = json.dumps(
        {
            "type": "assistant",
            "message": {
                "id": "m1",
                "content": [{"type": "text", "text": "hi"}],
                "usage": {"input_tokens": 2, "cache_read_input_tokens": 100, "output_tokens": 5},
            },
        }
    )
    harness.on_line(line)
    harness.on_line(line)  # one line per content block repeats the usage
    assert (harness.usage.input_tokens, harness.usage.output_tokens) == (102, 5)
    assert harness.usage.cost_usd is None, "priced from the table later"


def test_adapters_tolerate_plain_text_lines() -> None:
    for cls in (ClaudeCodeHarness, CodexHarness, OpenCodeHarness):
        assert cls().on_line("npm WARN something") == {
            "stream": "output",
            "text": "npm WARN something",
        }
        assert cls().on_line("{not json")["text"] == "{not json"


def test_commands_are_headless_and_never_carry_keys(tmp_path: Path) -> None:
    """Each CLI is pointed at the gateway its own way and only ever holds the placeholder."""
    from envpools_cli.server.agents import AgentContext
    from envpools_cli.server.tasks import load_task

    def context(model: str | None) -> AgentContext:
        return AgentContext(
            instruction="Fix it.",
            workdir="/app",
            agent={"model_id": model},
            task=load_task(EXAMPLE),
            credentials={
                "OPENAI_API_KEY": ("OPENAI_API_KEY", "sk-1234567890"),
                "ANTHROPIC_API_KEY": ("ANTHROPIC_API_KEY", "sk-ant-0987654321"),
            },
            gateway_urls={"openai": "http://gw/openai", "anthropic": "http://gw/anthropic"},
            placeholder="sk-envpools-placeholder",
        )

    codex = CodexHarness().invocation(context(None))
    assert codex.command[:2] == ["codex", "exec"] and "--json" in codex.command
    assert codex.command[-1] == "Fix it." and not codex.network
    provider = next(a for a in codex.command if a.startswith("model_providers.envpools="))
    assert 'base_url="http://gw/openai"' in provider and "supports_websockets=false" in provider
    assert codex.env == {"CODEX_API_KEY": "sk-envpools-placeholder"}

    claude = ClaudeCodeHarness().invocation(context(None))
    assert claude.env["ANTHROPIC_BASE_URL"] == "http://gw/anthropic"
    assert claude.env["ANTHROPIC_API_KEY"] == "sk-envpools-placeholder"
    assert claude.env["ANTHROPIC_MODEL"] == "claude-sonnet-4-5"

    opencode = OpenCodeHarness().invocation(context("openai/gpt-4.1"))
    assert "--model=openai/gpt-4.1" in opencode.command
    config = json.loads(opencode.env["OPENCODE_CONFIG_CONTENT"])
    options = config["provider"]["openai"]["options"]
    assert options == {"baseURL": "http://gw/openai", "apiKey": "sk-envpools-placeholder"}
    anthropic = json.loads(
        OpenCodeHarness().invocation(context(None)).env["OPENCODE_CONFIG_CONTENT"]
    )
    assert anthropic["provider"]["anthropic"]["options"]["baseURL"] == "http://gw/anthropic/v1"

    for invocation in (codex, claude, opencode):
        text = " ".join(invocation.command) + json.dumps(invocation.env)
        assert "sk-1234567890" not in text and "sk-ant-0987654321" not in text
    assert os.environ.get("CODEX_API_KEY") is None


def test_dry_run_and_validate_find_a_missing_credential(backend: Backend) -> None:
    backend.pool("p", local_task("fix", EXAMPLE))
    request = {
        "task_ref": {"dataset": "d", "task_id": "fix"},
        "agent": {"harness": "claude"},
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {},
    }
    with pytest.raises(ep.ConflictError, match="store a ANTHROPIC_API_KEY credential") as info:
        ep.create_rollout(request=request, dry_run=True, **backend.conn)
    assert info.value.code == "credentials_missing"
    checked = ep.validate_rollout(request=request, **backend.conn)
    assert checked["valid"] is False and checked["error"]["code"] == "credentials_missing"

    ep.store_credential(
        credential_name="ANTHROPIC_API_KEY",
        credential_type="ANTHROPIC_API_KEY",
        credential_value="sk-ant-0123456789",
        **backend.conn,
    )
    assert ep.create_rollout(request=request, dry_run=True, **backend.conn)["valid"] is True
    created = ep.create_rollout(request=request, **backend.conn)
    assert created["agent"]["harness"] == "claude-code", "--agent claude is claude-code"
    assert created["agent"]["model_id"] == "claude-sonnet-4.5", "the model is resolved"


def test_an_unknown_provider_needs_its_base_url(backend: Backend) -> None:
    """opencode with a self-hosted provider: its key and its base URL are both needed."""
    backend.pool("p", local_task("fix", EXAMPLE))
    request = {
        "task_ref": {"dataset": "d", "task_id": "fix"},
        "agent": {"harness": "opencode", "model_id": "vllm/qwen3-coder"},
        "pool_id": "p",
        "task_app_id": "",
        "timeouts": {},
    }
    with pytest.raises(ep.ConflictError, match="VLLM_API_KEY"):
        ep.create_rollout(request=request, dry_run=True, **backend.conn)
    ep.store_credential(
        credential_name="VLLM_API_KEY",
        credential_type="VLLM_API_KEY",
        credential_value="local-0123456789",
        **backend.conn,
    )
    with pytest.raises(ep.ConflictError, match="VLLM_BASE_URL"):
        ep.create_rollout(request=request, dry_run=True, **backend.conn)
