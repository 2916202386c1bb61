"""ATIF, the Agent Trajectory Interchange Format: what an agent did, step by step.

These models follow Harbor's own definitions, ``harbor/models/trajectories/*.py`` in the
``harbor`` 0.26.0 wheel on PyPI, whose newest schema version is **ATIF-v1.8** (Harbor's
RFC 0001, "Agent Trajectory Interchange Format"). A trajectory is a list of steps, each
from ``system``, ``user`` or ``agent``; an agent step carries its message, its tool calls
(id, function name, arguments) and the observation those calls returned (results keyed
by the call id), with per-step token metrics; ``final_metrics`` sums them. ATIF has no
``tool`` source: a tool's result is the observation of the agent step that called it.

Documents of every version Harbor knows (v1.0 to v1.8) validate here; envpools writes
``SCHEMA_VERSION``. Shared by the local backend (which writes ``trajectory.json``) and
the CLI (which reads, shows and exports it), so it imports nothing of either.
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any, Final, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

__all__ = [
    "SCHEMA_VERSION",
    "Agent",
    "ContentPart",
    "FinalMetrics",
    "Metrics",
    "Observation",
    "ObservationResult",
    "Step",
    "ToolCall",
    "Trajectory",
    "message_text",
    "to_messages",
]

SCHEMA_VERSION: Final = "ATIF-v1.8"
"""The version envpools writes: Harbor 0.26.0's newest (harbor/models/trajectories)."""

SchemaVersion = Literal[
    "ATIF-v1.0",
    "ATIF-v1.1",
    "ATIF-v1.2",
    "ATIF-v1.3",
    "ATIF-v1.4",
    "ATIF-v1.5",
    "ATIF-v1.6",
    "ATIF-v1.7",
    "ATIF-v1.8",
]


class _Strict(BaseModel):
    # As in Harbor: an unknown field is an error (custom data goes under ``extra``).
    model_config = ConfigDict(extra="forbid")


class MediaSource(_Strict):
    """A file or URL holding an image (v1.6) or audio (v1.8) part."""

    media_type: str
    path: str
    duration_sec: float | None = Field(default=None, ge=0)


class ContentPart(_Strict):
    """One part of a multimodal message (v1.6): text, or an image or audio source."""

    type: Literal["text", "image", "audio"]
    text: str | None = None
    source: MediaSource | None = None

    @model_validator(mode="after")
    def _fields_match_type(self) -> ContentPart:
        if self.type == "text":
            if self.text is None or self.source is not None:
                raise ValueError("a text part has 'text' and no 'source'")
        elif self.source is None or self.text is not None:
            raise ValueError(f"an {self.type} part has a 'source' and no 'text'")
        elif not self.source.media_type.startswith(f"{self.type}/"):
            raise ValueError(f"an {self.type} part needs an {self.type}/* media type")
        return self


class ToolCall(_Strict):
    tool_call_id: str
    function_name: str
    arguments: dict[str, Any]
    extra: dict[str, Any] | None = None


class ObservationResult(_Strict):
    source_call_id: str | None = None
    """The ``tool_call_id`` this result answers (None: not from a tool call)."""
    content: str | list[ContentPart] | None = None
    subagent_trajectory_ref: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None


class Observation(_Strict):
    results: list[ObservationResult]


class Metrics(_Strict):
    """One step's LLM usage: ``prompt_tokens`` includes ``cached_tokens``."""

    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    cached_tokens: int | None = None
    cost_usd: float | None = None
    prompt_token_ids: list[int] | None = None
    completion_token_ids: list[int] | None = None
    logprobs: list[float] | None = None
    extra: dict[str, Any] | None = None


class Step(_Strict):
    step_id: int = Field(ge=1)
    timestamp: str | None = None
    source: Literal["system", "user", "agent"]
    model_name: str | None = None
    reasoning_effort: str | float | None = None
    message: str | list[ContentPart]
    reasoning_content: str | None = None
    tool_calls: list[ToolCall] | None = None
    observation: Observation | None = None
    metrics: Metrics | None = None
    is_copied_context: bool | None = None
    llm_call_count: int | None = Field(default=None, ge=0)
    extra: dict[str, Any] | None = None

    @field_validator("timestamp")
    @classmethod
    def _iso_8601(cls, value: str | None) -> str | None:
        if value is not None:
            datetime.fromisoformat(value.replace("Z", "+00:00"))
        return value

    @model_validator(mode="after")
    def _agent_only_fields(self) -> Step:
        if self.source != "agent":
            for name in ("model_name", "reasoning_effort", "reasoning_content", "tool_calls"):
                if getattr(self, name) is not None:
                    raise ValueError(f"{name!r} belongs to agent steps, not {self.source!r}")
            if self.metrics is not None:
                raise ValueError(f"'metrics' belongs to agent steps, not {self.source!r}")
        no_llm = self.source == "agent" and self.llm_call_count == 0
        if no_llm and (self.metrics is not None or self.reasoning_content is not None):
            raise ValueError("a step without an LLM call (llm_call_count 0) has no metrics")
        return self


class Agent(_Strict):
    name: str
    version: str
    model_name: str | None = None
    tool_definitions: list[dict[str, Any]] | None = None
    extra: dict[str, Any] | None = None


class FinalMetrics(_Strict):
    """Sums over the steps (``total_steps`` other than the step count is explained in notes)."""

    total_prompt_tokens: int | None = None
    total_completion_tokens: int | None = None
    total_cached_tokens: int | None = None
    total_cost_usd: float | None = None
    total_steps: int | None = Field(default=None, ge=0)
    extra: dict[str, Any] | None = None


class Trajectory(_Strict):
    schema_version: SchemaVersion = SCHEMA_VERSION
    session_id: str | None = None
    trajectory_id: str | None = None
    agent: Agent
    steps: list[Step] = Field(min_length=1)
    notes: str | None = None
    final_metrics: FinalMetrics | None = None
    continued_trajectory_ref: str | None = None
    extra: dict[str, Any] | None = None
    subagent_trajectories: list[Trajectory] | None = None

    @model_validator(mode="after")
    def _step_ids_count_from_one(self) -> Trajectory:
        for index, step in enumerate(self.steps, start=1):
            if step.step_id != index:
                raise ValueError(f"steps[{index - 1}].step_id is {step.step_id}, not {index}")
        return self

    @model_validator(mode="after")
    def _results_answer_this_steps_calls(self) -> Trajectory:
        for step in self.steps:
            if step.observation is None:
                continue
            ids = {call.tool_call_id for call in step.tool_calls or []}
            for result in step.observation.results:
                if result.source_call_id is not None and result.source_call_id not in ids:
                    raise ValueError(
                        f"step {step.step_id}: an observation answers call "
                        f"{result.source_call_id!r}, which the step did not make"
                    )
        return self

    @model_validator(mode="after")
    def _embedded_subagents_have_ids(self) -> Trajectory:
        seen: set[str] = set()
        for sub in self.subagent_trajectories or []:
            if sub.trajectory_id is None or sub.trajectory_id in seen:
                raise ValueError("embedded subagent trajectories need unique trajectory_ids")
            seen.add(sub.trajectory_id)
        return self

    def to_json_dict(self) -> dict[str, Any]:
        return self.model_dump(mode="json", exclude_none=True)


def message_text(message: str | list[ContentPart] | None) -> str:
    """A message or observation content as plain text (media parts named, not inlined)."""
    if message is None:
        return ""
    if isinstance(message, str):
        return message
    return "\n".join(
        part.text or "" if part.type == "text" else f"[{part.type}: {part.source.path}]"  # type: ignore[union-attr]
        for part in message
    )


def to_messages(trajectory: Trajectory) -> list[dict[str, Any]]:
    """The conversation as OpenAI-style chat messages, tool calls and tool results included.

    An agent step becomes an ``assistant`` message (its tool calls with JSON-encoded
    arguments), followed by one ``tool`` message per result that answers a call; a result
    that answers no call is a ``user`` message, as the model would have read it.
    """
    messages: list[dict[str, Any]] = []
    for step in trajectory.steps:
        text = message_text(step.message)
        if step.source != "agent":
            messages.append({"role": step.source, "content": text})
            continue
        entry: dict[str, Any] = {"role": "assistant", "content": text or None}
        if step.reasoning_content:
            entry["reasoning_content"] = step.reasoning_content
        if step.tool_calls:
            entry["tool_calls"] = [
                {
                    "id": call.tool_call_id,
                    "type": "function",
                    "function": {
                        "name": call.function_name,
                        "arguments": json.dumps(call.arguments, ensure_ascii=False),
                    },
                }
                for call in step.tool_calls
            ]
        messages.append(entry)
        for result in step.observation.results if step.observation else []:
            content = message_text(result.content)
            if result.source_call_id is None:
                messages.append({"role": "user", "content": content})
            else:
                messages.append(
                    {"role": "tool", "tool_call_id": result.source_call_id, "content": content}
                )
    return messages
