"""Trajectories: the ATIF model, each CLI's transcript, and the link to the LLM exchanges.

The real CLIs are checked end to end in tests/agents; here each piece gets the cases a
scripted run never produces: one message split over lines, parallel and sequential tool
calls, a result whose call was lost, output without end, an agent whose token report
disagrees with the provider's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from envpools_cli.atif import SCHEMA_VERSION, Trajectory, to_messages
from envpools_cli.server.agents import transcript as transcript_module
from envpools_cli.server.agents.adapters import ClaudeCodeHarness, CodexHarness, OpenCodeHarness
from envpools_cli.server.agents.base import AgentContext, Harness, TokenUsage
from envpools_cli.server.agents.gemini import GeminiCliHarness
from envpools_cli.server.agents.manifest import manifest_harness, parse_manifest
from envpools_cli.server.agents.mini_swe import MiniSweAgentHarness
from envpools_cli.server.agents.qwen import QwenCodeHarness
from envpools_cli.server.agents.transcript import MAX_STEPS, TEXT_LIMIT, Transcript
from envpools_cli.server.sandbox.exchanges import ExchangeView
from envpools_cli.server.trial.trajectory import account, build_trajectory, link_steps
from envpools_cli.server.trial.usage import DEFAULT_PRICES


def minimal(**changes: Any) -> dict[str, Any]:
    document: dict[str, Any] = {
        "schema_version": "ATIF-v1.8",
        "agent": {"name": "a", "version": "1"},
        "steps": [
            {"step_id": 1, "source": "user", "message": "hi"},
            {
                "step_id": 2,
                "source": "agent",
                "message": "",
                "tool_calls": [
                    {"tool_call_id": "c1", "function_name": "bash", "arguments": {"cmd": "ls"}}
                ],
                "observation": {"results": [{"source_call_id": "c1", "content": "a.txt"}]},
                "metrics": {"prompt_tokens": 10, "completion_tokens": 2, "cached_tokens": 0},
            },
        ],
    }
    document.update(changes)
    return document


class TestSchema:
    def test_the_version_written_is_harbors_newest(self) -> None:
        assert SCHEMA_VERSION == "ATIF-v1.8"
        assert Trajectory.model_validate(minimal()).schema_version == "ATIF-v1.8"

    def test_older_harbor_documents_validate(self) -> None:
        # As Harbor 0.26's OpenCode converter writes them (v1.7), with multimodal parts (v1.6).
        older = minimal(schema_version="ATIF-v1.7", session_id="ses_1")
        older["steps"][0]["message"] = [
            {"type": "text", "text": "look"},
            {"type": "image", "source": {"media_type": "image/png", "path": "a.png"}},
        ]
        assert Trajectory.model_validate(older).session_id == "ses_1"

    @pytest.mark.parametrize(
        ("change", "why"),
        [
            (lambda d: d["steps"][1].update(step_id=3), "step_id"),
            (
                lambda d: d["steps"][1]["observation"]["results"][0].update(source_call_id="zz"),
                "did not make",
            ),
            (lambda d: d["steps"][0].update(metrics={"prompt_tokens": 1}), "agent steps"),
            (lambda d: d["steps"][0].update(mood="happy"), "mood"),
            (lambda d: d.update(steps=[]), "at least 1"),
            (lambda d: d.update(schema_version="ATIF-v9"), "schema_version"),
            (lambda d: d["steps"][0].update(timestamp="yesterday"), "timestamp"),
            (lambda d: d["steps"][1].update(llm_call_count=0), "llm_call_count 0"),
        ],
    )
    def test_what_atif_refuses(self, change: Any, why: str) -> None:
        document = minimal()
        change(document)
        with pytest.raises(ValidationError, match=why):
            Trajectory.model_validate(document)

    def test_chat_messages(self) -> None:
        messages = to_messages(Trajectory.model_validate(minimal()))
        assert messages == [
            {"role": "user", "content": "hi"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "c1",
                        "type": "function",
                        "function": {"name": "bash", "arguments": '{"cmd": "ls"}'},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "c1", "content": "a.txt"},
        ]


def feed(harness: Harness, *records: dict[str, Any] | str) -> Transcript:
    for record in records:
        harness.read_line(record if isinstance(record, str) else json.dumps(record))
    return harness.transcript


def claude_message(
    msg_id: str, block: dict[str, Any], output_tokens: int = 1, stop: str | None = None
) -> dict[str, Any]:
    usage = {"input_tokens": 5, "cache_read_input_tokens": 100, "output_tokens": output_tokens}
    body = {"id": msg_id, "model": "claude-x", "content": [block], "usage": usage}
    body["stop_reason"] = stop
    return {"type": "assistant", "message": body, "timestamp": "2026-01-01T00:00:00Z"}


class TestTranscripts:
    def test_claude_one_step_per_message_id(self) -> None:
        transcript = feed(
            ClaudeCodeHarness(),
            {"type": "system", "subtype": "init", "session_id": "s1", "tools": ["Bash"]},
            "a plain stderr line",
            claude_message("m1", {"type": "thinking", "thinking": "hmm"}),
            claude_message("m1", {"type": "text", "text": "Let me look."}),
            claude_message("m1", {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}),
            claude_message("m1", {"type": "tool_use", "id": "t2", "name": "Read", "input": {}}),
            {
                "type": "user",
                "message": {
                    "content": [
                        {"type": "tool_result", "tool_use_id": "t2", "content": "file"},
                        {
                            "type": "tool_result",
                            "tool_use_id": "t1",
                            "content": [{"type": "text", "text": "out"}],
                            "is_error": True,
                        },
                    ]
                },
            },
            claude_message("m2", {"type": "text", "text": "Done."}, output_tokens=7, stop="end"),
            {"type": "result", "is_error": False, "total_cost_usd": 0.5, "usage": {}},
        )
        assert transcript.session_id == "s1" and transcript.tools == ["Bash"]
        first, second = transcript.steps
        assert (first.response_id, first.message, first.reasoning) == ("m1", "Let me look.", "hmm")
        assert first.metrics == {"prompt_tokens": 105, "cached_tokens": 100}, "still streaming"
        assert [c.call_id for c in first.calls] == ["t1", "t2"]
        assert [(r.call_id, r.content, r.extra) for r in first.results] == [
            ("t2", "file", {}),
            ("t1", "out", {"is_error": True}),
        ]
        assert second.message == "Done." and second.metrics == {
            "prompt_tokens": 105,
            "completion_tokens": 7,
            "cached_tokens": 100,
        }
        assert transcript.final["cost_usd"] == 0.5

    def test_codex_a_step_ends_where_the_model_was_asked_again(self) -> None:
        def command(item_id: str, done: bool) -> dict[str, Any]:
            item = {"id": item_id, "type": "command_execution", "command": f"run {item_id}"}
            if done:
                item.update(aggregated_output=f"out {item_id}", exit_code=0, status="completed")
            return {"type": "item.completed" if done else "item.started", "item": item}

        transcript = feed(
            CodexHarness(),
            {"type": "thread.started", "thread_id": "th"},
            {"type": "item.completed", "item": {"id": "r", "type": "reasoning", "text": "plan"}},
            command("a", False),
            command("b", False),  # parallel with a: the same response
            command("a", True),
            command("b", True),
            command("c", True),  # after results came in: a new response (no started line)
            {"type": "item.completed", "item": {"id": "m", "type": "agent_message", "text": "ok"}},
            {"type": "turn.completed", "usage": {"input_tokens": 9, "output_tokens": 3}},
        )
        steps = transcript.steps
        assert [[c.call_id for c in s.calls] for s in steps] == [["a", "b"], ["c"], []]
        assert steps[0].reasoning == "plan" and steps[2].message == "ok"
        assert [r.content for r in steps[0].results] == ["out a", "out b"]
        assert steps[1].results[0].extra == {"exit_code": 0}
        assert transcript.session_id == "th" and transcript.final["usage"]["input_tokens"] == 9

    def test_opencode_steps_carry_their_tokens_and_cost(self) -> None:
        def event(kind: str, **part: Any) -> dict[str, Any]:
            return {"type": kind, "timestamp": 1_700_000_000_000, "sessionID": "ses", "part": part}

        tokens = {"input": 10, "output": 4, "reasoning": 0, "cache": {"read": 90, "write": 0}}
        transcript = feed(
            OpenCodeHarness(),
            event("step_start", messageID="msg1"),
            event("text", text="Running it."),
            event(
                "tool_use",
                tool="bash",
                callID="call_1",
                state={"status": "error", "input": {"command": "x"}, "error": "boom"},
            ),
            event("step_finish", reason="tool-calls", tokens=tokens, cost=0.25),
            event("text", text="late text without a step_start"),
        )
        first, second = transcript.steps
        assert first.metrics == {
            "prompt_tokens": 100,
            "completion_tokens": 4,
            "cached_tokens": 90,
            "cost_usd": 0.25,
        }
        assert first.results[0].content == "boom" and first.results[0].extra == {"is_error": True}
        assert first.timestamp == "2023-11-14T22:13:20.000Z"
        assert second.message == "late text without a step_start"

    def test_a_result_whose_call_was_lost_still_validates(self) -> None:
        harness = ClaudeCodeHarness()
        feed(
            harness,
            {
                "type": "user",
                "message": {
                    "content": [{"type": "tool_result", "tool_use_id": "t9", "content": "x"}]
                },
            },
        )
        trajectory = build(harness, [])
        step = trajectory.steps[-1]
        assert step.tool_calls and step.tool_calls[0].tool_call_id == "t9"

    def test_output_without_end_is_bounded(self) -> None:
        harness = CodexHarness()
        big = "y" * (TEXT_LIMIT + 10)
        feed(harness, {"type": "item.completed", "item": {"type": "agent_message", "text": big}})
        assert len(harness.transcript.steps[0].message) < TEXT_LIMIT + 100
        assert "more characters not kept" in harness.transcript.steps[0].message
        for n in range(MAX_STEPS + 5):
            harness.transcript.agent_step(message=str(n))
        assert len(harness.transcript.steps) == MAX_STEPS
        assert "6 later steps" in (build(harness, []).notes or "")

    def test_output_past_the_feed_limit_is_counted_not_read(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(transcript_module, "FEED_LIMIT", 1000)
        harness = CodexHarness()
        message = {"type": "item.completed", "item": {"type": "agent_message", "text": "x" * 300}}
        feed(harness, *[message] * 10)
        assert len(harness.transcript.steps) == 2  # ~360 characters a line: two fit
        notes = build(harness, []).notes or ""
        assert "its last 8 lines are not in these steps" in notes


def view(index: int, *, tools: bool = True, **fields: Any) -> ExchangeView:
    usage = fields.pop("usage", (100, 10, 0))
    return ExchangeView(
        index=index,
        status=200,
        model="claude-sonnet-4.5",
        started_at="2026-01-01T00:00:00Z",
        usage={"prompt_tokens": usage[0], "completion_tokens": usage[1], "cached_tokens": usage[2]},
        tools=[{"type": "function", "function": {"name": "bash"}}] if tools else [],
        **fields,
    )


def build(harness: Harness, views: list[ExchangeView]) -> Trajectory:
    llm = account(harness, views, DEFAULT_PRICES)
    return build_trajectory(
        harness,
        llm,
        instruction="Do it.",
        version="1.0",
        rollout={"rollout_id": "ro_1", "status": "succeeded", "reward_primary": 1.0},
        usage={"provider_costs": {}},
        prices=DEFAULT_PRICES,
    )


class TestLinks:
    def scripted(self) -> ClaudeCodeHarness:
        harness = ClaudeCodeHarness()
        feed(
            harness,
            claude_message("m1", {"type": "tool_use", "id": "t1", "name": "Bash", "input": {}}),
            {
                "type": "user",
                "message": {
                    "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "ok"}]
                },
            },
            claude_message("m2", {"type": "text", "text": "Done."}),
        )
        return harness

    def test_steps_take_their_exchanges_tokens(self) -> None:
        harness = self.scripted()
        side = view(0, tools=False, usage=(30, 5, 0), text="A title")
        call = view(1, usage=(1200, 40, 200), tool_calls=[{"id": "t1", "name": "Bash"}])
        final = view(2, usage=(1500, 25, 1100), text="Done.", system="You are helpful.")
        harness.usage = TokenUsage(2700, 65, 1300, provider="anthropic", model="claude-sonnet-4.5")
        links = link_steps(harness.transcript.steps, [side, call, final])
        assert {i: e.index for i, e in links.items()} == {0: 1, 1: 2}

        llm = account(harness, [side, call, final], DEFAULT_PRICES)
        assert llm.source == "gateway", "the agent's report leaves the title call out"
        assert (llm.tokens.input_tokens, llm.tokens.output_tokens) == (2730, 70)
        trajectory = build(harness, [side, call, final])
        assert [s.source for s in trajectory.steps] == ["system", "user", "agent", "agent"]
        metrics = [s.metrics for s in trajectory.steps[2:]]
        assert [(m.prompt_tokens, m.completion_tokens) for m in metrics if m] == [
            (1200, 40),
            (1500, 25),
        ]
        assert trajectory.steps[2].extra == {"llm_exchange": 1}
        final_metrics = trajectory.final_metrics
        assert final_metrics is not None and final_metrics.extra is not None
        assert final_metrics.total_prompt_tokens == 2700
        assert final_metrics.extra["outside_steps"]["prompt_tokens"] == 30
        assert final_metrics.extra["outside_steps"]["llm_calls"] == 1

    def test_an_agent_that_agrees_with_the_provider_is_believed(self) -> None:
        harness = self.scripted()
        harness.usage = TokenUsage(200, 20, 0, cost_usd=0.01, model="claude-sonnet-4.5")
        llm = account(harness, [view(0), view(1, text="Done.")], DEFAULT_PRICES)
        assert llm.source == "agent" and llm.tokens.cost_usd == 0.01 and not llm.disagreed

    def test_without_exchanges_the_agents_own_figures_stand(self) -> None:
        harness = self.scripted()
        harness.usage = TokenUsage(7, 2, 0)
        llm = account(harness, [], DEFAULT_PRICES)
        assert llm.source == "agent" and llm.tokens.input_tokens == 7
        trajectory = build(harness, [])
        agent_steps = [s for s in trajectory.steps if s.source == "agent"]
        assert agent_steps[0].metrics and agent_steps[0].metrics.extra == {"source": "agent"}
        assert account(None, [], DEFAULT_PRICES).source == "none"

    def test_failed_calls_link_to_nothing(self) -> None:
        harness = self.scripted()
        failed = view(0, text="Done.")
        failed.status = 500
        assert link_steps(harness.transcript.steps, [failed]) == {}


# --- the newer agents, from their recorded output ---------------------------------------------

RECORDED = Path(__file__).parent / "recorded"
"""Each agent's output (its ``agent/<cli>.txt`` artifact, verbatim) from a real run of the
CLI against the scripted provider (tests/agents): the fix in one shell call, then the
final message, with the stub's token counts (1200/200 cached/40, then 1500/1100/25)."""

FINAL = "Fixed: slugify lower-cases before splitting; all tests pass."


def replay(harness: Harness, name: str, edit: Any = None) -> list[str]:
    """Feed ``harness`` the recorded output of ``name`` (``edit`` may change its lines)."""
    lines = (RECORDED / f"{name}.txt").read_text().splitlines()
    if edit is not None:
        lines = edit(lines)
    for line in lines:
        harness.read_line(line)
    return lines


def shape(trajectory: Trajectory) -> list[tuple[str, str, list[str], list[str]]]:
    """Each step as (source, message head, call ids, ids its results answer)."""
    return [
        (
            s.source,
            str(s.message)[:30],
            [c.tool_call_id for c in s.tool_calls or []],
            [str(r.source_call_id) for r in (s.observation.results if s.observation else [])],
        )
        for s in trajectory.steps
    ]


def tokens(trajectory: Trajectory) -> list[tuple[int | None, int | None, int | None]]:
    return [
        (s.metrics.prompt_tokens, s.metrics.cached_tokens, s.metrics.completion_tokens)
        for s in trajectory.steps
        if s.metrics is not None
    ]


def adds_up(trajectory: Trajectory, usage: TokenUsage) -> bool:
    """Steps plus what they leave out are the rollout's usage."""
    final = trajectory.final_metrics
    assert final is not None and final.extra is not None
    outside = final.extra.get("outside_steps", {})
    return (
        (final.total_prompt_tokens or 0) + outside.get("prompt_tokens", 0),
        (final.total_cached_tokens or 0) + outside.get("cached_tokens", 0),
        (final.total_completion_tokens or 0) + outside.get("completion_tokens", 0),
    ) == (usage.input_tokens, usage.cache_tokens, usage.output_tokens)


def chat_view(index: int, usage: tuple[int, int, int], **fields: Any) -> ExchangeView:
    return view(index, usage=(usage[0], usage[2], usage[1]), **fields)


class TestGeminiCli:
    def test_the_recorded_run(self) -> None:
        harness = GeminiCliHarness()
        replay(harness, "gemini-cli")
        transcript = harness.transcript
        assert transcript.model == "gemini-2.5-pro" and transcript.session_id
        trajectory = build(harness, [])
        assert shape(trajectory) == [
            ("user", "# Fix the failing test\n\nThe re", [], []),
            ("agent", "", ["run_shell_command__call_1"], ["run_shell_command__call_1"]),
            ("agent", FINAL[:30], [], []),
        ]
        assert trajectory.steps[-1].message == FINAL, "the deltas are one text"
        result = trajectory.steps[1].observation.results[0]  # type: ignore[union-attr]
        assert str(result.content).endswith("OK")
        assert trajectory.steps[1].timestamp == "2026-12-07T12:56:23.067Z"
        # gemini-cli prints no per-step tokens: without the gateway's record, the run's
        # totals are all outside the steps.
        assert tokens(trajectory) == [] and adds_up(trajectory, harness.usage)
        reported = (trajectory.extra or {})["agent_reported"]
        assert reported["status"] == "success" and reported["stats"]["input_tokens"] == 2700

    def test_steps_link_to_the_provider_calls(self) -> None:
        # gemini-cli names the call "<tool>__<provider's id>": the steps still find
        # their exchanges, in order and by the final text.
        harness = GeminiCliHarness()
        replay(harness, "gemini-cli")
        call = chat_view(0, (1200, 200, 40), tool_calls=[{"id": "call_1", "name": "x"}])
        final = chat_view(1, (1500, 1100, 25), text=FINAL, system="You are a CLI agent.")
        trajectory = build(harness, [call, final])
        assert [s.source for s in trajectory.steps] == ["system", "user", "agent", "agent"]
        assert tokens(trajectory) == [(1200, 200, 40), (1500, 1100, 25)]
        assert adds_up(trajectory, harness.usage)

    def test_a_step_ends_where_results_came_in(self) -> None:
        """Text, then two calls in one answer; results; then another call and its result."""

        def edit(lines: list[str]) -> list[str]:
            records = [json.loads(line) for line in lines if line.startswith("{")]
            init, user, use, result, *_, end = records
            said = {**records[4], "content": "Let me fix it."}
            second = {**use, "tool_id": "run_shell_command__call_2"}
            answer = {**result, "tool_id": "run_shell_command__call_2", "output": "two"}
            third = {**use, "tool_id": "run_shell_command__call_3"}
            failed = {
                "type": "tool_result",
                "tool_id": "run_shell_command__call_3",
                "status": "error",
                "error": {"type": "TOOL_EXECUTION_ERROR", "message": "boom"},
            }
            ordered = [init, user, said, use, second, result, answer, third, failed, end]
            return [json.dumps(r) for r in ordered]

        harness = GeminiCliHarness()
        replay(harness, "gemini-cli", edit)
        first, second = harness.transcript.steps[1:]
        assert first.message == "Let me fix it."
        assert [c.call_id for c in first.calls] == [r.call_id for r in first.results]
        assert [r.content for r in first.results][1] == "two"
        assert second.results[0].content == "boom" and second.results[0].extra == {"is_error": True}


class TestQwenCode:
    def test_the_recorded_run_reports_its_own_tokens(self) -> None:
        harness = QwenCodeHarness()
        replay(harness, "qwen-code")
        assert harness.transcript.version == "0.24.4"
        assert "run_shell_command" in harness.transcript.tools
        trajectory = build(harness, [])
        assert shape(trajectory) == [
            ("user", "Do it.", [], []),
            ("agent", "", ["call_1"], ["call_1"]),
            ("agent", FINAL[:30], [], []),
        ]
        # input_tokens already count the cached ones, and the last answer (no stop
        # reason) still says its output: each step is the stub's turn, and they add up
        # to the run's report with nothing outside them.
        assert tokens(trajectory) == [(1200, 200, 40), (1500, 1100, 25)]
        assert adds_up(trajectory, harness.usage)
        assert "outside_steps" not in (trajectory.final_metrics.extra or {})  # type: ignore[union-attr]

    def test_the_claude_reader_would_count_them_wrong(self) -> None:
        harness = ClaudeCodeHarness()
        replay(harness, "qwen-code")
        assert [s.metrics for s in harness.transcript.steps][1] == {
            "prompt_tokens": 2600,
            "cached_tokens": 1100,
        }, "why qwen-code has a reader of its own"


class TestMiniSweAgent:
    def test_the_recorded_run(self) -> None:
        harness = MiniSweAgentHarness()
        replay(harness, "mini-swe-agent")
        transcript = harness.transcript
        trajectory = build(harness, [])
        assert shape(trajectory) == [
            ("system", "You are a helpful assistant th", [], []),
            ("user", "Please solve this issue: # Fix", [], []),
            ("agent", "", ["call_1"], ["call_1"]),
            ("agent", FINAL[:30], ["call_2"], []),
        ]
        assert [s.response_id for s in transcript.steps if s.source == "agent"] == [
            "chatcmpl-1",
            "chatcmpl-2",
        ]
        call_step, final_step = trajectory.steps[2:]
        result = call_step.observation.results[0]  # type: ignore[union-attr]
        assert '"returncode": 0' in str(result.content) and result.extra == {"exit_code": 0}
        assert call_step.timestamp and call_step.timestamp.startswith("2026-12-07T")
        # It ends by submitting: its last answer says the final words and runs the command.
        assert final_step.tool_calls and final_step.tool_calls[0].arguments == {
            "command": "echo COMPLETE_TASK_AND_SUBMIT_FINAL_OUTPUT"
        }
        assert tokens(trajectory) == [(1200, 200, 40), (1500, 1100, 25)]
        costs = [s.metrics.cost_usd for s in trajectory.steps if s.metrics]
        assert costs == [0.000335, 0.0001775], "LiteLLM's price of each call"
        assert adds_up(trajectory, harness.usage)
        assert (trajectory.extra or {})["agent_reported"]["exit_status"] == "Submitted"

    def test_steps_link_by_response_id(self) -> None:
        harness = MiniSweAgentHarness()
        replay(harness, "mini-swe-agent")
        # Between them, a call of the same kind that the agent did not report: the ids,
        # not the order, say which is which.
        call = chat_view(0, (1200, 200, 40), response_id="chatcmpl-1")
        other = chat_view(1, (30, 0, 5), response_id="chatcmpl-9", tool_calls=[{"id": "z"}])
        final = chat_view(2, (1500, 1100, 25), response_id="chatcmpl-2")
        links = link_steps(harness.transcript.steps, [call, other, final])
        assert {i: e.response_id for i, e in links.items()} == {1: "chatcmpl-1", 2: "chatcmpl-2"}


TINY = """\
manifest_version = 1
[agent]
name = "tiny-agent"
providers = ["openai"]
[install]
files = ["agent.py"]
[run]
command = ["python3", "{agent_dir}/agent.py", "{model}", "{workdir}", "{instruction}"]
[run.env]
OPENAI_BASE_URL = "{providers.openai.base_url}"
OPENAI_API_KEY = "{providers.openai.api_key}"
[output]
parser = "PARSER"
"""


def custom(parser: str = "envpools-jsonl") -> Harness:
    return manifest_harness(parse_manifest(TINY.replace("PARSER", parser)))()


class TestEnvpoolsJsonl:
    """The tiny agent of tests/agents/test_custom_agent.py: a usage event per model call,
    printed as soon as the call returns, then what the model said and the tools' results."""

    def expected(self) -> list[tuple[str, str, list[str], list[str]]]:
        return [
            ("user", "Do it.", [], []),
            ("agent", "", ["call_1"], ["call_1"]),
            ("agent", FINAL[:30], [], []),
        ]

    def test_the_recorded_run(self) -> None:
        harness = custom()
        replay(harness, "tiny-agent")
        trajectory = build(harness, [])
        assert shape(trajectory) == self.expected()
        assert tokens(trajectory) == [(1200, 200, 40), (1500, 1100, 25)]
        assert adds_up(trajectory, harness.usage)
        assert trajectory.steps[-1].message == FINAL, "the result does not repeat it"
        result = trajectory.steps[1].observation.results[0]  # type: ignore[union-attr]
        assert result.extra == {"exit_code": 0} and str(result.content).endswith("OK\n")
        # Priced by the table, from the model each usage names.
        assert all(s.metrics.cost_usd for s in trajectory.steps if s.metrics)

    def test_usage_printed_after_what_the_model_said(self) -> None:
        def usage_last(lines: list[str]) -> list[str]:
            start, use1, call, result, use2, message, end = lines
            return [start, call, use1, result, message, use2, end]

        harness = custom()
        replay(harness, "tiny-agent", usage_last)
        trajectory = build(harness, [])
        assert shape(trajectory) == self.expected()
        assert tokens(trajectory) == [(1200, 200, 40), (1500, 1100, 25)]

    def test_a_result_without_a_message_is_the_last_answer(self) -> None:
        # As the README's example agent prints it: no message event, only the result.
        harness = custom()
        replay(harness, "tiny-agent", lambda lines: [x for x in lines if '"message"' not in x])
        trajectory = build(harness, [])
        assert shape(trajectory) == self.expected()
        assert (trajectory.extra or {})["agent_reported"]["result"]["text"] == FINAL

    def test_thinking_and_steps_without_usage(self) -> None:
        harness = custom()
        feed(
            harness,
            {"type": "thinking", "text": "look first"},
            {"type": "tool_call", "tool": "bash", "call_id": "a", "input": {"command": "ls"}},
            {"type": "tool_result", "call_id": "a", "output": "x", "is_error": True},
            {"type": "thinking", "text": "then fix"},
            {"type": "message", "text": "done"},
            {"type": "error", "text": "out of budget"},
        )
        first, second = harness.transcript.steps
        assert (first.reasoning, [c.call_id for c in first.calls]) == ("look first", ["a"])
        assert first.results[0].extra == {"is_error": True}
        assert (second.reasoning, second.message, second.metrics) == ("then fix", "done", None)
        assert harness.transcript.final == {"error": "out of budget"}
        build(harness, [])  # valid ATIF

    def test_a_text_agent_is_its_command_and_output(self) -> None:
        harness = custom("text")
        ctx = AgentContext(
            "Do it.", "/app", {}, None, gateway_urls={"openai": "http://gw"}, placeholder="ph"
        )
        harness.invocation(ctx)
        replay(harness, "tiny-agent")
        (step,) = [s for s in build(harness, []).steps if s.source == "agent"]
        assert step.tool_calls and "agent.py" in step.tool_calls[0].arguments["command"]
        assert step.observation and "tiny-agent starting" in str(
            step.observation.results[0].content
        )
        assert step.metrics is None, "a text agent reports no tokens"
