"""What an agent did, step by step, read from its own output: the draft of its trajectory.

Every harness owns a ``Transcript`` (``Harness.transcript_class``): the runner feeds it
each line the agent prints, and after the run ``server/trial/trajectory.py`` turns its
``steps`` into an ATIF document, adding what only the backend knows (the instruction,
the LLM exchanges the egress gateway recorded, prices, the rollout).

To support a new agent CLI, subclass ``Transcript`` and override ``record`` (one JSON
object the CLI printed) and, if the CLI prints plain text worth keeping, ``text``; use
``agent_step`` / ``call`` / ``result`` to build the steps. A step is one model response:
its text, reasoning and tool calls, and the results of those calls (which ATIF keeps as
the step's observation, keyed by call id). Give a step the provider's response id
(``response_id``) or keep the provider's tool call ids when the CLI prints them: they
link the step to the exchange the gateway recorded, which has the exact tokens.

Everything here is the agent's output, hence hostile: each text is clipped, the number of
steps is bounded, and past ``FEED_LIMIT`` characters of output nothing more is read, so a
run that prints without end cannot exhaust memory.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

__all__ = ["DraftCall", "DraftStep", "OutputTranscript", "Transcript", "clip"]

TEXT_LIMIT = 256 * 1024
"""Characters kept of one message, argument or tool output (the rest is marked cut)."""
MAX_STEPS = 5000
FEED_LIMIT = 64 * 1024 * 1024
"""Characters of output a transcript reads; the rest is counted, not kept."""


def clip(value: Any, limit: int = TEXT_LIMIT) -> str:
    """``value`` as text of at most ``limit`` characters, saying how much was cut."""
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    if len(text) <= limit:
        return text
    return text[:limit] + f"\n[… {len(text) - limit:,} more characters not kept]"


def _arguments(value: Any) -> dict[str, Any]:
    """Tool arguments as ATIF wants them (an object), whatever the CLI printed."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError:
            return {"input": clip(value)}
    if not isinstance(value, dict):
        return {} if value in (None, "") else {"input": value}
    text = json.dumps(value, ensure_ascii=False)
    if len(text) > TEXT_LIMIT:
        return {"input": clip(text)}
    return value


@dataclass
class DraftCall:
    call_id: str
    name: str
    arguments: dict[str, Any]


@dataclass
class DraftResult:
    call_id: str | None
    content: str
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class DraftStep:
    """One step before it is checked against the ATIF model."""

    source: str  # system, user or agent
    message: str = ""
    reasoning: str | None = None
    calls: list[DraftCall] = field(default_factory=list)
    results: list[DraftResult] = field(default_factory=list)
    timestamp: str | None = None
    model: str | None = None
    response_id: str | None = None
    """The provider's id of the response this step is (links it to an LLM exchange)."""
    metrics: dict[str, Any] | None = None
    """What the agent itself reported for this step: prompt/completion/cached tokens, cost."""
    llm_calls: int | None = 1
    extra: dict[str, Any] = field(default_factory=dict)

    def has_call(self, call_id: str) -> bool:
        return any(call.call_id == call_id for call in self.calls)


class Transcript:
    """The steps of one run, built from the agent's output lines (one subclass per CLI)."""

    def __init__(self) -> None:
        self.steps: list[DraftStep] = []
        self.session_id: str | None = None
        self.model: str | None = None
        self.version: str | None = None
        self.tools: list[str] = []
        """Tool names the agent says it offers (its tool definitions come from the exchanges)."""
        self.system: str | None = None
        """The system prompt, when the agent prints it (the exchanges' one comes first)."""
        self.final: dict[str, Any] = {}
        """What the agent reported about the whole run (its totals, an error), if anything."""
        self.dropped_steps = 0
        self.fed = 0
        self.dropped_lines = 0

    # --- what the runner calls ------------------------------------------------------------

    def feed(self, line: str) -> None:
        """One line the agent printed: a JSON object goes to ``record``, else to ``text``."""
        self.fed += len(line)
        if self.fed > FEED_LIMIT:
            self.dropped_lines += 1
            return
        stripped = line.strip()
        if stripped.startswith("{"):
            try:
                value = json.loads(stripped)
            except ValueError:
                value = None
            if isinstance(value, dict):
                self.record(value)
                return
        self.text(line)

    # --- what a subclass overrides --------------------------------------------------------

    def record(self, message: dict[str, Any]) -> None:
        """One JSON object the agent printed."""

    def text(self, line: str) -> None:
        """One plain line (stderr, progress): ignored unless the CLI's steps are plain text."""

    def finish(self) -> None:
        """The run is over (called once, before the steps are read)."""

    # --- building blocks ------------------------------------------------------------------

    def add(self, step: DraftStep) -> DraftStep:
        """Append ``step`` (past ``MAX_STEPS`` it is counted and dropped)."""
        if len(self.steps) >= MAX_STEPS:
            self.dropped_steps += 1
            return step
        self.steps.append(step)
        return step

    def agent_step(self, **fields: Any) -> DraftStep:
        return self.add(DraftStep("agent", **fields))

    def current(self) -> DraftStep | None:
        return self.steps[-1] if self.steps and self.steps[-1].source == "agent" else None

    @staticmethod
    def call(step: DraftStep, call_id: Any, name: Any, arguments: Any) -> DraftCall:
        """A tool call of ``step`` (one with this id already there is kept, not doubled)."""
        call_id = str(call_id or f"call_{len(step.calls) + 1}")
        for existing in step.calls:
            if existing.call_id == call_id:
                return existing
        made = DraftCall(call_id, str(name or "tool"), _arguments(arguments))
        step.calls.append(made)
        return made

    def result(self, call_id: Any, content: Any, **extra: Any) -> None:
        """The result of call ``call_id``, kept on the step that made the call.

        A result for a call no step made (its call line was lost) gets a step of its own,
        with the call, so that the observation still answers a call of its step.
        """
        key = str(call_id) if call_id not in (None, "") else None
        owner = next((s for s in reversed(self.steps) if key and s.has_call(key)), None)
        if owner is None:
            owner = self.agent_step(llm_calls=None)
            if key:
                self.call(owner, key, extra.pop("name", None) or "tool", {})
        extra.pop("name", None)
        text = "" if content is None else clip(content)
        # An exit code 0 is worth keeping; a None or a False flag is not.
        kept = {k: v for k, v in extra.items() if v is not None and v is not False}
        for existing in owner.results:
            if key and existing.call_id == key:
                existing.content, existing.extra = text, kept
                return
        owner.results.append(DraftResult(key, text, kept))


class OutputTranscript(Transcript):
    """A harness whose output is plain text (oracle, nop): one step running its command.

    The agent step calls the harness's ``command`` (set by the harness) and its
    observation is what the command printed, clipped.
    """

    def __init__(self) -> None:
        super().__init__()
        self.command: str | None = None
        self.lines: list[str] = []
        self.size = 0
        self.cut = 0

    def text(self, line: str) -> None:
        if self.size + len(line) + 1 > TEXT_LIMIT:
            self.cut += 1
            return
        self.lines.append(line)
        self.size += len(line) + 1

    def finish(self) -> None:
        """Make the one step from what was printed (called once, after the run)."""
        if self.steps:
            return
        if self.command is None:
            self.agent_step(message="(did nothing)", llm_calls=0)
            return
        step = self.agent_step(message="", llm_calls=0)
        self.call(step, "call_1", "bash", {"command": self.command})
        output = "\n".join(self.lines)
        if self.cut:
            output += f"\n[… {self.cut:,} more lines not kept]"
        step.results.append(DraftResult("call_1", output))
