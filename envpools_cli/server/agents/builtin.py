"""Harnesses every machine can run: ``oracle`` (the task's reference solution) and ``nop``."""

from __future__ import annotations

from envpools_cli.server.agents.base import AgentContext, Harness, Invocation
from envpools_cli.server.agents.transcript import OutputTranscript

SOLVE = "/solution/solve.sh"


class OracleHarness(Harness):
    """Runs ``solution/solve.sh``: checks that a task is solvable and its tests pass."""

    name = "oracle"
    description = "runs the task's solution/solve.sh"
    log_name = "oracle.txt"
    transcript_class = OutputTranscript

    def invocation(self, ctx: AgentContext) -> Invocation:
        assert ctx.task is not None
        env = {"DEBIAN_FRONTEND": "noninteractive", **ctx.task.solution_env}
        if isinstance(self.transcript, OutputTranscript):
            self.transcript.command = f"bash {SOLVE}"
        return Invocation(["/bin/bash", SOLVE], env=env, bind_solution=True)

    def required_secret(self, ctx: AgentContext) -> str | None:
        if ctx.task is not None and not ctx.task.has_solution:
            return "the task has no solution/solve.sh for the oracle to run"
        return None


class NopHarness(Harness):
    """Does nothing: checks that the tests fail on the untouched workspace."""

    name = "nop"
    description = "does nothing (the tests should fail)"
    log_name = "nop.txt"
    transcript_class = OutputTranscript

    def invocation(self, ctx: AgentContext) -> Invocation:
        return Invocation(["/bin/true"])
