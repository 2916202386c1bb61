"""The agent CLI adapters' parsing, with stand-ins for the CLIs on the tool path.

Each stand-in prints what the real CLI prints (reference/HARBOR_AND_HARNESSES.md §2),
fixes the example task the way an agent would, and echoes the key it was given (the
gateway's placeholder: the stored key never enters the sandbox), which must never reach
an event, a log or an artifact. The real CLIs run in tests/agents.
"""

from __future__ import annotations

import json
import os
import shlex
from collections.abc import Iterator
from pathlib import Path

import pytest

from envpools_cli import client as ep
from envpools_cli.server.agents.adapters import ClaudeCodeHarness, CodexHarness, OpenCodeHarness
from envpools_cli.server.agents.gemini import GeminiCliHarness
from envpools_cli.server.agents.mini_swe import MiniSweAgentHarness
from envpools_cli.server.agents.qwen import QwenCodeHarness

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


def _echo(*events: dict[str, object]) -> str:
    return "".join(f"echo {shlex.quote(json.dumps(event))}\n" for event in events)


def _mini(role: str, **fields: object) -> dict[str, object]:
    return {"type": "envpools.mini", "role": role, **fields}


def _bash(call_id: str, command: str) -> list[dict[str, object]]:
    arguments = json.dumps({"command": command})
    return [
        {"id": call_id, "type": "function", "function": {"name": "bash", "arguments": arguments}}
    ]


STAND_INS.update(
    {
        "gemini": (
            "GEMINI_API_KEY",
            "sk-gemini-test-secret-321",
            "#!/bin/bash\ncat > /dev/null\n"
            + _echo(
                {"type": "init", "session_id": "s1", "model": "gemini-2.5-pro"},
                {"type": "message", "role": "user", "content": "Fix the failing test"},
                {
                    "type": "tool_use",
                    "tool_name": "run_shell_command",
                    "tool_id": "c1",
                    "parameters": {"command": "ls"},
                },
            )
            + FIX
            + "\n"
            + _echo({"type": "tool_result", "tool_id": "c1", "status": "success", "output": "x"})
            + 'echo "leak: $GEMINI_API_KEY"\n'
            + _echo(
                {"type": "message", "role": "assistant", "content": "Fixed it", "delta": True},
                {
                    "type": "result",
                    "status": "success",
                    "stats": {
                        "total_tokens": 3100,
                        "input_tokens": 3000,
                        "output_tokens": 100,
                        "cached": 1000,
                        "tool_calls": 1,
                        "models": {"gemini-2.5-pro": {}},
                    },
                },
            ),
        ),
        "qwen": (
            "DASHSCOPE_API_KEY",
            "sk-dashscope-test-secret-654",
            "#!/bin/bash\ncat > /dev/null\n"
            + _echo(
                {"type": "system", "subtype": "init", "model": "qwen3-coder-plus"},
                {
                    "type": "assistant",
                    "message": {
                        "id": "m1",
                        "content": [
                            {"type": "text", "text": "Looking"},
                            {
                                "type": "tool_use",
                                "id": "t1",
                                "name": "run_shell_command",
                                "input": {"command": "ls"},
                            },
                        ],
                        "usage": {
                            "input_tokens": 1000,
                            "cache_read_input_tokens": 400,
                            "output_tokens": 30,
                        },
                    },
                },
            )
            + FIX
            + "\n"
            + 'echo "leak: $OPENAI_API_KEY"\n'
            + _echo(
                {
                    "type": "user",
                    "message": {
                        "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "x"}]
                    },
                },
                {
                    "type": "result",
                    "subtype": "success",
                    "is_error": False,
                    "num_turns": 2,
                    "result": "Done",
                    "usage": {
                        "input_tokens": 2500,
                        "cache_read_input_tokens": 1400,
                        "output_tokens": 60,
                    },
                },
            ),
        ),
        "mini-swe-agent": (
            "OPENAI_API_KEY",
            "sk-openai-mini-secret-987",
            "#!/bin/bash\necho 'Building agent config from specs'\n"
            + _echo(
                _mini("system", content="You are a helpful assistant"),
                _mini("user", content="Please solve this issue"),
                _mini(
                    "assistant",
                    content="I will fix it",
                    tool_calls=_bash("c1", "ls"),
                    usage={
                        "prompt_tokens": 800,
                        "completion_tokens": 40,
                        "prompt_tokens_details": {"cached_tokens": 300},
                    },
                    cost=0.0,
                ),
            )
            + FIX
            + "\n"
            + _echo(_mini("tool", tool_call_id="c1", content="x", returncode=0))
            + 'echo "leak: $OPENAI_API_KEY"\n'
            + _echo(
                _mini(
                    "assistant",
                    content="Done",
                    tool_calls=_bash("c2", "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"),
                    usage={
                        "prompt_tokens": 900,
                        "completion_tokens": 10,
                        "prompt_tokens_details": {"cached_tokens": 800},
                    },
                    cost=0.0,
                ),
                _mini("exit", content="", exit_status="Submitted"),
            ),
        ),
    }
)
HARNESS_OF = {
    "codex": "codex",
    "claude": "claude-code",
    "opencode": "opencode",
    "gemini": "gemini-cli",
    "qwen": "qwen-code",
    "mini-swe-agent": "mini-swe-agent",
}


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


@pytest.mark.parametrize("binary", list(HARNESS_OF))
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
        # qwen and mini-swe-agent say their text with the tool call it comes with.
        assert "message" in kinds or binary in ("qwen", "mini-swe-agent")
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
    elif binary == "opencode":
        assert usage["llm_input_tokens"] == 100 + 900 + 50
        assert usage["llm_output_tokens"] == 30
        assert usage["provider_costs"]["anthropic"] == pytest.approx(0.03)
        assert {"tool_call", "step_finish"} <= kinds
    elif binary == "gemini":
        # Gemini counts cached tokens inside the prompt's; the price table prices them.
        assert (usage["llm_input_tokens"], usage["llm_cache_tokens"]) == (3000, 1000)
        assert usage["llm_output_tokens"] == 100
        expected = (2000 * 1.25 + 1000 * 0.31 + 100 * 10.0) / 1_000_000
        assert usage["provider_costs"]["gemini"] == pytest.approx(expected, abs=1e-6)
        assert {"tool_call", "tool_result", "result"} <= kinds
    elif binary == "qwen":
        # Qwen's input_tokens already hold the cached ones (unlike Claude Code's).
        assert (usage["llm_input_tokens"], usage["llm_cache_tokens"]) == (2500, 1400)
        assert usage["llm_output_tokens"] == 60
        expected = (1100 * 1.0 + 1400 * 0.10 + 60 * 5.0) / 1_000_000
        assert usage["provider_costs"]["dashscope"] == pytest.approx(expected, abs=1e-6)
        call = next(d for d in agent_data if d.get("kind") == "tool_call")
        assert call["text"] == "Looking" and call["input"] == {"command": "ls"}
    else:
        assert (usage["llm_input_tokens"], usage["llm_cache_tokens"]) == (1700, 1100)
        assert usage["llm_output_tokens"] == 50 and usage["model_id"] == "gpt-5-mini"
        expected = (600 * 0.25 + 1100 * 0.025 + 50 * 2.0) / 1_000_000
        assert usage["provider_costs"]["openai"] == pytest.approx(expected, abs=1e-6)
        result = next(d for d in agent_data if d.get("kind") == "result")
        assert result["is_error"] is False and result["text"] == "Done"
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
    for cls in (
        ClaudeCodeHarness,
        CodexHarness,
        OpenCodeHarness,
        GeminiCliHarness,
        QwenCodeHarness,
        MiniSweAgentHarness,
    ):
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
            gateway_urls={
                "openai": "http://gw/openai",
                "anthropic": "http://gw/anthropic",
                "gemini": "http://gw/gemini",
                "dashscope": "http://gw/dashscope",
            },
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

    gemini = GeminiCliHarness().invocation(context(None))
    assert gemini.command[:2] == ["/bin/sh", "-c"] and 'exec gemini "$@"' in gemini.command[2]
    assert gemini.command[-3:] == ["--output-format", "stream-json", "--yolo"]
    assert gemini.stdin == b"Fix it." and "Fix it." not in gemini.command
    assert gemini.env["GOOGLE_GEMINI_BASE_URL"] == "http://gw/gemini"
    assert gemini.env["GEMINI_API_KEY"] == "sk-envpools-placeholder"
    settings = json.loads(gemini.env["ENVPOOLS_GEMINI_SETTINGS"])
    assert settings["security"]["auth"]["selectedType"] == "gemini-api-key"

    qwen = QwenCodeHarness().invocation(context(None))
    assert qwen.command[:3] == ["qwen", "--auth-type", "openai"] and "--yolo" in qwen.command
    assert qwen.stdin == b"Fix it."
    assert qwen.env["OPENAI_BASE_URL"] == "http://gw/dashscope"
    assert (qwen.env["OPENAI_API_KEY"], qwen.env["OPENAI_MODEL"]) == (
        "sk-envpools-placeholder",
        "qwen3-coder-plus",
    )
    assert QwenCodeHarness().providers(context("openai/gpt-4.1")) == ["openai"]

    mini = MiniSweAgentHarness().invocation(context("anthropic/claude-sonnet-4-5"))
    assert mini.command[:2] == ["mini-swe-agent", "--python"]
    assert mini.command[mini.command.index("--model") + 1] == "anthropic/claude-sonnet-4-5"
    assert 'model.model_kwargs.api_base="http://gw/anthropic"' in mini.command
    assert mini.env["ANTHROPIC_API_KEY"] == "sk-envpools-placeholder"
    default = MiniSweAgentHarness().invocation(context(None))
    assert default.env["OPENAI_API_KEY"] == "sk-envpools-placeholder"
    assert default.command[default.command.index("--model") + 1] == "openai/gpt-5-mini"

    for invocation in (codex, claude, opencode, gemini, qwen, mini, default):
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
