"""Pools and their task definitions."""

from __future__ import annotations

import re
from typing import Any

import pydantic

from envpools_cli.models import TEMPLATE_DEFAULTS, TERMINAL_STATUSES
from envpools_cli.server.context import ServerContext
from envpools_cli.server.errors import ApiError, invalid
from envpools_cli.server.scheduling.scheduler import ACTIVE_STATUSES, Scheduler
from envpools_cli.server.services.schemas import (
    BACKENDS,
    POOL_ID_PATTERN,
    LocalPoolCreate,
    LocalPoolTask,
)
from envpools_cli.server.state.store import Org, now_iso
from envpools_cli.server.tasks import TaskError, load_task

__all__ = ["KNOWN_BACKENDS", "PoolService"]

KNOWN_BACKENDS = frozenset(BACKENDS)


class PoolService:
    def __init__(self, ctx: ServerContext, scheduler: Scheduler) -> None:
        self.ctx = ctx
        self.scheduler = scheduler
        self.store = ctx.store

    def pool_or_404(self, org: Org, pool_id: str) -> dict[str, Any]:
        pool = self.store.get_pool(org.org_id, pool_id)
        if pool is None:
            raise ApiError(404, "not_found", f"pool {pool_id!r} not found")
        return pool

    def pool_view(self, org: Org, pool: dict[str, Any]) -> dict[str, Any]:
        view = dict(pool)
        view["tasks"] = self.store.list_tasks(org.org_id, pool["pool_id"])
        view["status"] = "ready"
        view.setdefault("concurrency", self.ctx.settings.default_concurrency)
        return view

    def list_pools(self, org: Org, pool_type: str | None, tag: str | None) -> list[dict[str, Any]]:
        pools = []
        for pool in self.store.list_pools(org.org_id):
            if pool_type and pool.get("pool_type") != pool_type:
                continue
            tags = set(pool.get("tags") or []) | set(pool.get("policy_tags") or [])
            if tag and tag not in tags:
                continue
            pools.append(self.pool_view(org, pool))
        return pools

    def get_pool(self, org: Org, pool_id: str) -> dict[str, Any]:
        return self.pool_view(org, self.pool_or_404(org, pool_id))

    def _check_task(self, body: Any) -> dict[str, Any]:
        try:
            task = LocalPoolTask.model_validate(body)
        except pydantic.ValidationError as exc:
            raise invalid(exc) from None
        doc = task.model_dump(mode="json")
        if task.backend not in KNOWN_BACKENDS:
            raise ApiError(
                422,
                "validation_error",
                f"backend {task.backend!r} is not one of {sorted(KNOWN_BACKENDS)}",
            )
        source = task.data_source
        if task.backend == "harbor" and source is not None and source.type == "local":
            if not source.path:
                raise ApiError(
                    422, "validation_error", "data_source.path is required for a local task"
                )
            try:
                load_task(source.path)
            except TaskError as exc:
                # Name the task: among many, "task.toml: invalid TOML" says not which one.
                message = exc.message
                if source.path not in message:
                    message = f"task {task.task_id!r} ({source.path}): {message}"
                raise ApiError(422, "validation_error", message) from None
        return doc

    def create_pool(self, org: Org, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        template = _template(body)
        pool_type, backend = TEMPLATE_DEFAULTS[template] if template else ("sandbox", None)
        if body.get("pool_type") is None:
            body["pool_type"] = pool_type
        if body.get("backend") is None and backend:
            body["backend"] = backend
        tasks = body.pop("tasks", None) or []
        try:
            pool = LocalPoolCreate.model_validate(body)
        except pydantic.ValidationError as exc:
            raise invalid(exc) from None
        if not re.fullmatch(POOL_ID_PATTERN, pool.pool_id):
            raise ApiError(
                422,
                "validation_error",
                "pool_id may hold letters, digits, '.', '_' and '-' (max 128)",
            )
        if self.store.get_pool(org.org_id, pool.pool_id) is not None:
            raise ApiError(409, "conflict", f"pool {pool.pool_id!r} already exists")
        checked = [self._check_task(task) for task in tasks]
        stamp = now_iso()
        doc = {
            **pool.model_dump(mode="json"),
            "org_id": org.org_id,
            "created_at": stamp,
            "updated_at": stamp,
        }
        self.store.put_pool(org.org_id, doc)
        for task in checked:
            self.store.put_task(org.org_id, pool.pool_id, task)
        return self.pool_view(org, doc)

    def update_pool(self, org: Org, pool_id: str, body: dict[str, Any]) -> dict[str, Any]:
        pool = self.pool_or_404(org, pool_id)
        if body.get("pool_id", pool_id) not in (pool_id, None):
            raise ApiError(
                409, "conflict", f"the body's pool_id is not {pool_id!r}: it cannot change"
            )
        _template(body)
        tasks = body.get("tasks")
        merged = {**pool, **{k: v for k, v in body.items() if k not in ("tasks", "pool_id")}}
        try:
            checked_pool = LocalPoolCreate.model_validate(merged)
        except pydantic.ValidationError as exc:
            raise invalid(exc) from None
        checked_tasks = [self._check_task(t) for t in tasks] if isinstance(tasks, list) else None
        doc = {
            **pool,
            **checked_pool.model_dump(mode="json"),
            "org_id": org.org_id,
            "created_at": pool["created_at"],
            "updated_at": now_iso(),
        }
        self.store.put_pool(org.org_id, doc)
        if checked_tasks is not None:
            for old in self.store.list_tasks(org.org_id, pool_id):
                self.store.delete_task(org.org_id, pool_id, old["task_id"])
            for task in checked_tasks:
                self.store.put_task(org.org_id, pool_id, task)
        self.scheduler.wake()
        return self.pool_view(org, doc)

    def delete_pool(self, org: Org, pool_id: str) -> None:
        self.pool_or_404(org, pool_id)
        counts = self.store.count_rollouts(org.org_id, pool_id)
        active = sum(counts.get(s, 0) for s in ("queued", *ACTIVE_STATUSES))
        if active:
            raise ApiError(
                409,
                "conflict",
                f"pool {pool_id!r} has {active} queued or running rollout(s); cancel them first",
            )
        self.store.delete_pool(org.org_id, pool_id)

    def pool_metrics(self, org: Org, pool_id: str) -> dict[str, Any]:
        pool = self.pool_or_404(org, pool_id)
        counts = self.store.count_rollouts(org.org_id, pool_id)
        finished = sum(counts.get(s, 0) for s in TERMINAL_STATUSES)
        running = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
        return {
            "pool_id": pool_id,
            "queue_depth": counts.get("queued", 0),
            "running": running,
            "total_count": sum(counts.values()),
            "succeeded": counts.get("succeeded", 0),
            "failed": counts.get("failed", 0),
            "cancelled": counts.get("cancelled", 0),
            "error": counts.get("error", 0),
            "success_rate": round(counts.get("succeeded", 0) / finished, 4) if finished else None,
            "concurrency": pool.get("concurrency") or self.ctx.settings.default_concurrency,
            "max_queue": pool.get("max_queue"),
            "spend_usd": round(self.store.pool_spend(org.org_id, pool_id), 6),
            "spend_limit_usd": pool.get("spend_limit_usd"),
            "running_on": {
                node: n
                for (owner, node), n in self.store.running_on_nodes(
                    org.org_id, ACTIVE_STATUSES
                ).items()
                if owner == pool_id
            },
            "executor": self.scheduler.executor.name,
        }

    # --- pool tasks -----------------------------------------------------------------------

    def list_tasks(self, org: Org, pool_id: str) -> list[dict[str, Any]]:
        self.pool_or_404(org, pool_id)
        return self.store.list_tasks(org.org_id, pool_id)

    def create_task(self, org: Org, pool_id: str, body: Any) -> dict[str, Any]:
        self.pool_or_404(org, pool_id)
        task = self._check_task(body)
        if self.store.get_task(org.org_id, pool_id, task["task_id"]) is not None:
            raise ApiError(
                409, "conflict", f"task {task['task_id']!r} already exists in pool {pool_id!r}"
            )
        self.store.put_task(org.org_id, pool_id, task)
        return task

    def update_task(
        self, org: Org, pool_id: str, task_id: str, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Replace the task's definition (PUT): fields left out are gone, not kept."""
        self.pool_or_404(org, pool_id)
        if self.store.get_task(org.org_id, pool_id, task_id) is None:
            raise ApiError(404, "not_found", f"task {task_id!r} not found in pool {pool_id!r}")
        if body.get("task_id", task_id) not in (task_id, None):
            raise ApiError(
                409, "conflict", f"the body's task_id is not {task_id!r}: it cannot change"
            )
        task = self._check_task({**body, "task_id": task_id})
        self.store.put_task(org.org_id, pool_id, task)
        return task

    def delete_task(self, org: Org, pool_id: str, task_id: str) -> None:
        self.pool_or_404(org, pool_id)
        if not self.store.delete_task(org.org_id, pool_id, task_id):
            raise ApiError(404, "not_found", f"task {task_id!r} not found in pool {pool_id!r}")


def _template(body: dict[str, Any]) -> str | None:
    template = body.get("template")
    if template is not None and template not in TEMPLATE_DEFAULTS:
        raise ApiError(
            422,
            "validation_error",
            f"template {template!r} is not one of {sorted(TEMPLATE_DEFAULTS)}",
        )
    return str(template) if template else None
