"""A rollout's trajectory (``trajectory.json``, ATIF) and the LLM usage it reports.

Two sources meet here. The agent's transcript (``server/agents/transcript.py``) says
what the agent did, in its own words: messages, tool calls, results, and whatever token
counts it prints. The egress gateway's exchanges (``server/sandbox/exchanges.py``) say
what the provider was actually sent and answered, with the provider's own token counts,
for every call, the ones the agent does not report included (a title, a summary).

Each agent step is linked to the exchange that produced it (same response id, same tool
call ids, same text; else the next answered exchange of the same kind, in order), and
takes its tokens from it; a step no exchange matches keeps the agent's own figures.

The rollout's usage is the agent's report when it agrees with the gateway's record, and
the gateway's when the agent reported nothing or something else; ``usage_source`` says
which (``agent``, ``gateway``, or ``none``). ``final_metrics`` sums the steps, and its
``extra.outside_steps`` holds the rest of the rollout's usage (calls outside the
conversation), so that steps plus outside_steps is exactly the rollout's usage.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from envpools_cli import __version__
from envpools_cli.atif import (
    SCHEMA_VERSION,
    Agent,
    FinalMetrics,
    Metrics,
    Observation,
    ObservationResult,
    Step,
    ToolCall,
    Trajectory,
)
from envpools_cli.server.agents import Harness, TokenUsage
from envpools_cli.server.agents.transcript import DraftStep
from envpools_cli.server.sandbox.exchanges import EXCHANGES_FILE, ExchangeView
from envpools_cli.server.sandbox.safefs import open_dir, write_at
from envpools_cli.server.trial.usage import price_tokens

__all__ = ["TRAJECTORY_FILE", "LlmAccount", "account", "build_trajectory", "write_trajectory"]

TRAJECTORY_FILE = "trajectory.json"


@dataclass
class LlmAccount:
    """The rollout's LLM usage, and where each figure came from."""

    tokens: TokenUsage
    source: str
    """``agent`` (its own report), ``gateway`` (the exchanges) or ``none``."""
    agent: TokenUsage
    links: dict[int, ExchangeView] = field(default_factory=dict)
    """Index of an agent step in the transcript -> the exchange it came from."""
    exchanges: list[ExchangeView] = field(default_factory=list)

    @property
    def disagreed(self) -> bool:
        return self.source == "gateway" and bool(
            self.agent.input_tokens or self.agent.output_tokens
        )


def _same(text: str, other: str) -> bool:
    return bool(text.strip()) and text.strip() == other.strip()


def _strong(step: DraftStep, exchange: ExchangeView) -> bool:
    if step.response_id and step.response_id == exchange.response_id:
        return True
    ids = {str(call.get("id")) for call in exchange.tool_calls if call.get("id")}
    if any(call.call_id in ids for call in step.calls):
        return True
    return _same(step.message, exchange.text)


def link_steps(steps: list[DraftStep], exchanges: list[ExchangeView]) -> dict[int, ExchangeView]:
    """Each agent step's exchange, in order: a sure match first, else the next of its kind."""
    answered = [e for e in exchanges if e.answered]
    links: dict[int, ExchangeView] = {}
    start = 0
    for position, step in enumerate(steps):
        if step.source != "agent" or step.llm_calls == 0:
            continue
        rest = list(enumerate(answered))[start:]
        found = next((i for i, e in rest if _strong(step, e)), None)
        if found is None:
            found = next(
                (i for i, e in rest if e.tools and bool(e.tool_calls) == bool(step.calls)), None
            )
        if found is not None:
            links[position] = answered[found]
            start = found + 1
    return links


def _sum(exchanges: list[ExchangeView], prices: dict[str, Any]) -> TokenUsage:
    total = TokenUsage()
    cost: float | None = 0.0
    for exchange in exchanges:
        usage = exchange.usage or {}
        prompt, cached = usage.get("prompt_tokens", 0), usage.get("cached_tokens", 0)
        completion = usage.get("completion_tokens", 0)
        total.input_tokens += prompt
        total.cache_tokens += cached
        total.output_tokens += completion
        total.model = exchange.model or total.model
        priced = price_tokens(prices, exchange.model, prompt, cached, completion)
        cost = None if priced is None or cost is None else cost + priced
    total.cost_usd = cost
    return total


def account(
    harness: Harness | None, exchanges: list[ExchangeView], prices: dict[str, Any]
) -> LlmAccount:
    """Whose token counts the rollout reports, and the step-to-exchange links."""
    agent = harness.usage if harness is not None else TokenUsage()
    answered = [e for e in exchanges if e.answered]
    links = link_steps(harness.transcript.steps, exchanges) if harness is not None else {}
    if not answered:
        source = "agent" if agent.input_tokens or agent.output_tokens or agent.cost_usd else "none"
        return LlmAccount(agent, source, agent, links, exchanges)
    gateway = _sum(answered, prices)
    gateway.provider = agent.provider
    gateway.model = agent.model or gateway.model
    same = (agent.input_tokens, agent.output_tokens, agent.cache_tokens) == (
        gateway.input_tokens,
        gateway.output_tokens,
        gateway.cache_tokens,
    )
    if same:
        return LlmAccount(agent, "agent", agent, links, exchanges)
    if gateway.cost_usd is None:
        # The table has no price for the model: the agent's own figure is all there is.
        gateway.cost_usd = agent.cost_usd
    return LlmAccount(gateway, "gateway", agent, links, exchanges)


def _metrics(
    step: DraftStep, exchange: ExchangeView | None, model: str | None, prices: dict[str, Any]
) -> Metrics | None:
    if exchange is not None and exchange.usage:
        usage = exchange.usage
        prompt, cached = usage.get("prompt_tokens", 0), usage.get("cached_tokens", 0)
        completion = usage.get("completion_tokens", 0)
        cost = price_tokens(prices, exchange.model or model, prompt, cached, completion)
        if cost is None and step.metrics:
            cost = step.metrics.get("cost_usd")
        return Metrics(
            prompt_tokens=prompt,
            completion_tokens=completion,
            cached_tokens=cached,
            cost_usd=round(cost, 8) if cost is not None else None,
            extra={"source": "gateway", "llm_exchange": exchange.index},
        )
    if not step.metrics:
        return None
    reported = dict(step.metrics)
    prompt, cached = int(reported.pop("prompt_tokens", 0)), int(reported.pop("cached_tokens", 0))
    out = reported.pop("completion_tokens", None)  # None: the agent did not say
    cost = reported.pop("cost_usd", None)
    if cost is None and out is not None:
        cost = price_tokens(prices, step.model or model, prompt, cached, int(out))
    return Metrics(
        prompt_tokens=prompt,
        completion_tokens=out,
        cached_tokens=cached,
        cost_usd=round(cost, 8) if cost is not None else None,
        extra={"source": "agent", **reported},
    )


def _step(
    step_id: int,
    draft: DraftStep,
    exchange: ExchangeView | None,
    model: str | None,
    prices: dict[str, Any],
) -> Step:
    extra = dict(draft.extra)
    if exchange is not None:
        extra["llm_exchange"] = exchange.index
    if draft.source != "agent":
        return Step(
            step_id=step_id,
            source=draft.source,
            message=draft.message,
            timestamp=draft.timestamp,
            extra=extra or None,
        )
    calls = [
        ToolCall(tool_call_id=c.call_id, function_name=c.name, arguments=c.arguments)
        for c in draft.calls
    ]
    results = [
        ObservationResult(source_call_id=r.call_id, content=r.content, extra=r.extra or None)
        for r in draft.results
    ]
    return Step(
        step_id=step_id,
        source="agent",
        timestamp=draft.timestamp or (exchange.started_at if exchange else None),
        model_name=draft.model if draft.model and draft.model != model else None,
        message=draft.message,
        reasoning_content=draft.reasoning or None,
        tool_calls=calls or None,
        observation=Observation(results=results) if results else None,
        metrics=None if draft.llm_calls == 0 else _metrics(draft, exchange, model, prices),
        llm_call_count=draft.llm_calls,
        extra=extra or None,
    )


def _final_metrics(steps: list[Step], llm: LlmAccount, cost_usd: float | None) -> FinalMetrics:
    metrics = [s.metrics for s in steps if s.metrics is not None]
    prompt = sum(m.prompt_tokens or 0 for m in metrics)
    completion = sum(m.completion_tokens or 0 for m in metrics)
    cached = sum(m.cached_tokens or 0 for m in metrics)
    costs = [m.cost_usd for m in metrics if m.cost_usd is not None]
    step_cost = round(sum(costs), 8) if costs else None
    extra: dict[str, Any] = {"usage_source": llm.source}
    outside: dict[str, Any] = {
        "prompt_tokens": llm.tokens.input_tokens - prompt,
        "completion_tokens": llm.tokens.output_tokens - completion,
        "cached_tokens": llm.tokens.cache_tokens - cached,
    }
    if any(outside.values()):
        linked = {e.index for e in llm.links.values()}
        outside["llm_calls"] = sum(1 for e in llm.exchanges if e.answered and e.index not in linked)
        if cost_usd is not None:
            outside["cost_usd"] = round(cost_usd - (step_cost or 0.0), 8)
        extra["outside_steps"] = outside
    return FinalMetrics(
        total_prompt_tokens=prompt,
        total_completion_tokens=completion,
        total_cached_tokens=cached,
        total_cost_usd=step_cost,
        total_steps=len(steps),
        extra=extra,
    )


def build_trajectory(
    harness: Harness,
    llm: LlmAccount,
    *,
    instruction: str,
    version: str | None,
    rollout: dict[str, Any],
    usage: dict[str, Any],
    prices: dict[str, Any],
) -> Trajectory:
    """The rollout's trajectory, checked against the ATIF model (raises if it is not valid)."""
    transcript = harness.transcript
    transcript.finish()
    model = harness.usage.model or transcript.model or (rollout.get("agent") or {}).get("model_id")
    # What the model was given besides the conversation: from the first exchange of it.
    conversation = [*llm.links.values(), *(e for e in llm.exchanges if e.answered and e.tools)]
    system = next((e.system for e in conversation if e.system), None) or transcript.system
    tools = next((e.tools for e in conversation if e.tools), None)
    drafts: list[tuple[DraftStep, ExchangeView | None]] = []
    if system:
        drafts.append((DraftStep("system", system, llm_calls=None), None))
    if not transcript.steps or transcript.steps[0].source != "user":
        drafts.append((DraftStep("user", instruction, llm_calls=None), None))
    drafts += [(step, llm.links.get(i)) for i, step in enumerate(transcript.steps)]
    steps = [_step(n, d, e, model, prices) for n, (d, e) in enumerate(drafts, start=1)]
    notes = []
    if transcript.dropped_steps:
        notes.append(f"{transcript.dropped_steps:,} later steps were not kept")
    if transcript.dropped_lines:
        notes.append(
            f"the agent printed more than the transcript reads: its last "
            f"{transcript.dropped_lines:,} lines are not in these steps"
        )
    costs = usage.get("provider_costs") or {}
    llm_cost = sum(v for k, v in costs.items() if k != "sandbox" and isinstance(v, int | float))
    extra: dict[str, Any] = {
        "rollout_id": rollout.get("rollout_id"),
        "task": rollout.get("task_ref"),
        "status": rollout.get("status"),
        "reward": rollout.get("reward_primary"),
        "rewards": rollout.get("rewards"),
        "metadata": rollout.get("metadata") or None,
    }
    if llm.exchanges:
        extra["llm_exchanges"] = EXCHANGES_FILE
    if transcript.final:
        extra["agent_reported"] = transcript.final
    agent_extra = {"tools": transcript.tools} if transcript.tools else None
    return Trajectory(
        schema_version=SCHEMA_VERSION,
        session_id=transcript.session_id or rollout.get("rollout_id"),
        trajectory_id=rollout.get("rollout_id"),
        agent=Agent(
            name=harness.name,
            version=version
            or transcript.version
            or (None if harness.binary else __version__)
            or "unknown",
            model_name=model,
            tool_definitions=tools,
            extra=agent_extra,
        ),
        steps=steps,
        notes="; ".join(notes) or None,
        final_metrics=_final_metrics(steps, llm, llm_cost if costs else None),
        extra={k: v for k, v in extra.items() if v is not None},
    )


def write_trajectory(
    trial: Path, trajectory: Trajectory, scrub: Callable[[str], str] = lambda text: text
) -> None:
    """``trajectory.json`` at the top of the trial folder (the sandbox never sees it),
    through ``scrub`` (the rollout's credential values out, as from every artifact)."""
    text = scrub(json.dumps(trajectory.to_json_dict(), ensure_ascii=False, indent=1))
    folder = open_dir(trial)
    try:
        write_at(folder, TRAJECTORY_FILE, [text.encode("utf-8", "surrogateescape")])
    finally:
        os.close(folder)
