"""The backend's side of the trial seam: the inputs it hands over, and the reporter that
writes what a trial reports into its database (the one writer)."""

from __future__ import annotations

from typing import Any

from envpools_cli.server.context import ServerContext
from envpools_cli.server.state.vault import VaultError
from envpools_cli.server.state.writer import EventWriter
from envpools_cli.server.trial.reporter import TrialInput, TrialSettings

__all__ = ["StoreReporter", "trial_input"]


def trial_input(ctx: ServerContext, rollout_id: str) -> TrialInput:
    """What a claimed rollout's trial starts from; KeyError when the rollout is gone."""
    doc = ctx.store.get_rollout(rollout_id)
    if doc is None:
        raise KeyError(rollout_id)
    problem = None
    try:
        credentials = ctx.store.credential_values(doc["org_id"])
    except VaultError as exc:
        credentials, problem = {}, str(exc)
    settings = ctx.settings
    return TrialInput(
        rollout_id=rollout_id,
        doc=doc,
        settings=TrialSettings(
            limits=settings.limits,
            limit_maxima=settings.limit_maxima,
            default_agent_timeout_sec=settings.default_agent_timeout_sec,
            default_verifier_timeout_sec=settings.default_verifier_timeout_sec,
            finish_timeout_sec=settings.finish_timeout_sec,
            provider_timeout_sec=settings.provider_timeout_sec,
        ),
        credentials=credentials,
        credentials_problem=problem,
        prices=ctx.prices,
        record_llm_exchanges=_records_exchanges(ctx, doc),
    )


def _records_exchanges(ctx: ServerContext, doc: dict[str, Any]) -> bool:
    pool_id = doc.get("pool_id")
    pool = ctx.store.get_pool(doc["org_id"], pool_id) if pool_id else None
    return pool is None or pool.get("record_llm_exchanges") is not False


class StoreReporter:
    """A trial's reports, written to the store. With ``writer`` (a trial in a thread of
    this process) its events go through the event writer, many to a transaction; a
    lifecycle event waits until it is stored, and all before it."""

    def __init__(
        self, ctx: ServerContext, rollout_id: str, writer: EventWriter | None = None
    ) -> None:
        self.ctx = ctx
        self.rollout_id = rollout_id
        self.writer = writer

    def update(self, **changes: Any) -> dict[str, Any]:
        return self.ctx.store.update_rollout(self.rollout_id, **changes)

    def event(self, event: str, data: dict[str, Any]) -> None:
        if self.writer is None:
            self.ctx.publish(self.rollout_id, event, data)
        else:
            self.writer.publish(self.rollout_id, event, data, wait=event == "lifecycle")

    def artifacts(self, entries: list[dict[str, Any]]) -> None:
        self.ctx.store.put_artifacts(self.rollout_id, entries)

    def end(
        self,
        changes: dict[str, Any],
        data: dict[str, Any],
        entries: list[dict[str, Any]] | None,
        *,
        fallback: dict[str, Any],
    ) -> dict[str, Any]:
        if self.writer is not None:
            self.writer.flush()  # the events before the end are stored before it
        return self.ctx.ends.end(self.rollout_id, changes, data, entries=entries, fallback=fallback)
