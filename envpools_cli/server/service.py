"""What the endpoints do: validation, routing, idempotency and the documents they return.

Routes stay thin: they authenticate, parse and call into ``Service``, which raises
``ApiError`` for every expected failure.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
import secrets
import time
from datetime import datetime
from importlib import resources
from pathlib import Path
from typing import Any

import pydantic

from envpools_cli import __version__
from envpools_cli.models import (
    PRESET_MODELS,
    TEMPLATE_DEFAULTS,
    TERMINAL_STATUSES,
    PoolConfigV1,
    PoolTaskInstance,
    RolloutRequestV1,
    check_agent_model,
)
from envpools_cli.server.api_errors import ApiError
from envpools_cli.server.context import ServerContext
from envpools_cli.server.harnesses import HARNESSES, describe_harnesses
from envpools_cli.server.scheduler import ACTIVE_STATUSES, Scheduler
from envpools_cli.server.store import Org, now_iso
from envpools_cli.server.tasks import TaskError, load_task

__all__ = ["EXAMPLE_DATASET", "Service", "examples_dir"]

EXAMPLE_DATASET = "envpools-examples"
# Names whose values are secrets: api_key, access_token, client-secret, password, ... but
# not llm_input_tokens or similar counters.
_SECRET_KEY = re.compile(
    r"(^|[_-])(api_?key|key|token|secret|password|passwd|credentials?|credential_value|"
    r"authorization|auth|cookie|private_key)$",
    re.I,
)
_SUPPORTED_BACKENDS = {"harbor"}
_KNOWN_BACKENDS = {"harbor", "openenv", "browser", "archipelago", "kernel"}


def examples_dir() -> Path:
    """The Harbor-format example tasks shipped with the package."""
    return Path(str(resources.files("envpools_cli") / "examples" / "tasks"))


def _validation_message(exc: pydantic.ValidationError) -> tuple[str, list[dict[str, Any]]]:
    details: list[dict[str, Any]] = []
    for err in exc.errors():
        details.append(
            {
                "loc": [str(p) for p in err.get("loc", ())],
                "msg": str(err.get("msg", "")).removeprefix("Value error, "),
                "type": err.get("type"),
            }
        )
    first = details[0]
    where = ".".join(first["loc"])
    return (f"{where}: {first['msg']}" if where else str(first["msg"])), details


def _request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def redact(value: Any) -> Any:
    """Replace values under secret-looking keys, recursively."""
    if isinstance(value, dict):
        return {
            k: ("[REDACTED]" if _SECRET_KEY.search(str(k)) and v not in (None, "") else redact(v))
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [redact(item) for item in value]
    return value


def _deep_merge(base: dict[str, Any], overrides: dict[str, Any]) -> dict[str, Any]:
    merged = copy.deepcopy(base)
    for key, value in overrides.items():
        if isinstance(value, dict) and isinstance(merged.get(key), dict):
            merged[key] = _deep_merge(merged[key], value)
        else:
            merged[key] = copy.deepcopy(value)
    return merged


class Service:
    def __init__(self, ctx: ServerContext, scheduler: Scheduler) -> None:
        self.ctx = ctx
        self.scheduler = scheduler
        self.store = ctx.store

    # --- idempotency ----------------------------------------------------------------------

    def idempotent(
        self, org: Org, endpoint: str, key: str | None, body: Any, create: Any
    ) -> tuple[int, Any]:
        """Run ``create()`` once per (key, body); a replay answers the first response again."""
        if not key:
            return create()  # type: ignore[no-any-return]
        digest = _request_hash(body)
        found = self.store.idempotent_response(org.org_id, endpoint, key)
        if found is not None:
            stored_hash, status, response = found
            if stored_hash != digest:
                raise ApiError(
                    409,
                    "idempotency_conflict",
                    f"Idempotency-Key {key!r} was already used with a different request body",
                )
            return status, response
        status, response = create()
        if status < 300:
            self.store.remember_response(org.org_id, endpoint, key, digest, status, response)
        return status, response

    # --- pools ----------------------------------------------------------------------------

    def _pool_or_404(self, org: Org, pool_id: str) -> dict[str, Any]:
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
        return self.pool_view(org, self._pool_or_404(org, pool_id))

    def _check_task(self, body: Any) -> dict[str, Any]:
        try:
            task = PoolTaskInstance.model_validate(body)
        except pydantic.ValidationError as exc:
            message, details = _validation_message(exc)
            raise ApiError(422, "validation_error", message, details=details) from None
        doc = task.model_dump(mode="json")
        if task.backend not in _KNOWN_BACKENDS:
            raise ApiError(
                422,
                "validation_error",
                f"backend {task.backend!r} is not one of {sorted(_KNOWN_BACKENDS)}",
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
                raise ApiError(422, "validation_error", exc.message) from None
        return doc

    def create_pool(self, org: Org, body: dict[str, Any]) -> dict[str, Any]:
        body = dict(body)
        template = body.get("template")
        if template is not None and template not in TEMPLATE_DEFAULTS:
            raise ApiError(
                422,
                "validation_error",
                f"template {template!r} is not one of {sorted(TEMPLATE_DEFAULTS)}",
            )
        if template:
            body.setdefault("pool_type", TEMPLATE_DEFAULTS[template][0])
            body.setdefault("backend", TEMPLATE_DEFAULTS[template][1])
        body.setdefault("pool_type", "sandbox")
        tasks = body.pop("tasks", None) or []
        try:
            pool = PoolConfigV1.model_validate(body)
        except pydantic.ValidationError as exc:
            message, details = _validation_message(exc)
            raise ApiError(422, "validation_error", message, details=details) from None
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", pool.pool_id):
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
        pool = self._pool_or_404(org, pool_id)
        if body.get("pool_id", pool_id) != pool_id:
            raise ApiError(422, "validation_error", "pool_id cannot be changed")
        tasks = body.get("tasks")
        merged = {**pool, **{k: v for k, v in body.items() if k not in ("tasks", "pool_id")}}
        try:
            checked_pool = PoolConfigV1.model_validate(merged)
        except pydantic.ValidationError as exc:
            message, details = _validation_message(exc)
            raise ApiError(422, "validation_error", message, details=details) from None
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
        self._pool_or_404(org, pool_id)
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
        pool = self._pool_or_404(org, pool_id)
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
        }

    # --- pool tasks -----------------------------------------------------------------------

    def list_tasks(self, org: Org, pool_id: str) -> list[dict[str, Any]]:
        self._pool_or_404(org, pool_id)
        return self.store.list_tasks(org.org_id, pool_id)

    def create_task(self, org: Org, pool_id: str, body: Any) -> dict[str, Any]:
        self._pool_or_404(org, pool_id)
        task = self._check_task(body)
        if self.store.get_task(org.org_id, pool_id, task["task_id"]) is not None:
            raise ApiError(
                409, "conflict", f"task {task['task_id']!r} already exists in pool {pool_id!r}"
            )
        self.store.put_task(org.org_id, pool_id, task)
        return task

    def update_task(self, org: Org, pool_id: str, task_id: str, body: Any) -> dict[str, Any]:
        self._pool_or_404(org, pool_id)
        existing = self.store.get_task(org.org_id, pool_id, task_id)
        if existing is None:
            raise ApiError(404, "not_found", f"task {task_id!r} not found in pool {pool_id!r}")
        merged = {**existing, **(body if isinstance(body, dict) else {}), "task_id": task_id}
        task = self._check_task(merged)
        self.store.put_task(org.org_id, pool_id, task)
        return task

    def delete_task(self, org: Org, pool_id: str, task_id: str) -> None:
        self._pool_or_404(org, pool_id)
        if not self.store.delete_task(org.org_id, pool_id, task_id):
            raise ApiError(404, "not_found", f"task {task_id!r} not found in pool {pool_id!r}")

    # --- rollouts: validation and routing -------------------------------------------------

    def parse_request(self, body: Any) -> RolloutRequestV1:
        if not isinstance(body, dict):
            raise ApiError(422, "validation_error", "the request body must be a JSON object")
        try:
            request = RolloutRequestV1.model_validate(body)
        except pydantic.ValidationError as exc:
            message, details = _validation_message(exc)
            raise ApiError(422, "validation_error", message, details=details) from None
        harness = request.agent.harness
        if harness not in HARNESSES:
            raise ApiError(
                422,
                "validation_error",
                f"unknown harness {harness!r}; this backend offers {sorted(HARNESSES)}",
            )
        if harness in PRESET_MODELS:
            try:
                check_agent_model(harness, request.agent.model_id)
            except ValueError as exc:
                raise ApiError(422, "validation_error", str(exc)) from None
        return request

    def _task_source(
        self, org: Org, pool: dict[str, Any] | None, request: RolloutRequestV1, body: dict[str, Any]
    ) -> dict[str, Any]:
        """Where the task comes from: the pool's task, the bundled dataset or a given path."""
        task_id = request.task_ref.task_id
        if pool is not None:
            tasks = self.store.list_tasks(org.org_id, pool["pool_id"])
            match = next((t for t in tasks if t["task_id"] == task_id), None)
            if match is None and tasks:
                raise ApiError(
                    422,
                    "validation_error",
                    f"task {task_id!r} is not in pool {pool['pool_id']!r}; its tasks: "
                    f"{sorted(t['task_id'] for t in tasks)}",
                )
            if match is not None:
                return self._source_of(match)
        explicit = body.get("data_source") or (
            {"type": "local", "path": body["task_path"]} if body.get("task_path") else None
        )
        if isinstance(explicit, dict) and explicit.get("path"):
            return self._source_of({"backend": "harbor", "data_source": explicit})
        if request.task_ref.dataset == EXAMPLE_DATASET:
            path = examples_dir() / task_id
            if not path.is_dir():
                raise ApiError(
                    422,
                    "validation_error",
                    f"{EXAMPLE_DATASET} has no task {task_id!r}; it has "
                    f"{sorted(p.name for p in examples_dir().iterdir())}",
                )
            return {"backend": "harbor", "path": str(path), "task_id": task_id}
        backend = (
            request.environment.backend
            if request.environment
            else ((pool or {}).get("backend") or "harbor")
        )
        return {
            "backend": backend,
            "path": None,
            "task_id": task_id,
            "reason": f"no task {task_id!r} is defined for this request: add it to the pool "
            "(pools tasks create --local PATH) or pass task_path",
        }

    @staticmethod
    def _source_of(task: dict[str, Any]) -> dict[str, Any]:
        backend = task.get("backend", "harbor")
        source = task.get("data_source") or {}
        path = source.get("path") if source.get("type") in ("local", None) else None
        if path is None and task.get("task_path") and Path(task["task_path"]).is_absolute():
            path = task["task_path"]
        reason = None
        if backend == "harbor" and path is None:
            reason = (
                "this Harbor task has no local directory (docker-only tasks need Docker, "
                "which the local backend does not use)"
            )
        return {
            "backend": backend,
            "path": path,
            "task_id": task.get("task_id"),
            "reason": reason,
            "resources": task.get("resources"),
        }

    def route(
        self, org: Org, request: RolloutRequestV1, body: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any]]:
        """(pool or None for an ad-hoc environment, task source, routing debug)."""
        debug: dict[str, Any] = {}
        pool: dict[str, Any] | None = None
        if request.pool_id:
            pool = self._pool_or_404(org, request.pool_id)
            debug = {"strategy": "pool_id", "pool_id": request.pool_id}
        elif request.pool_tags:
            wanted = set(request.pool_tags)
            candidates = []
            for candidate in self.store.list_pools(org.org_id):
                tags = set(candidate.get("tags") or []) | set(candidate.get("policy_tags") or [])
                if wanted <= tags:
                    counts = self.store.count_rollouts(org.org_id, candidate["pool_id"])
                    load = counts.get("queued", 0) + sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
                    candidates.append(
                        (
                            load,
                            -(candidate.get("priority_weight") or 0),
                            candidate["pool_id"],
                            candidate,
                        )
                    )
            if not candidates:
                raise ApiError(
                    422, "validation_error", f"no pool has all the tags {sorted(wanted)}"
                )
            candidates.sort(key=lambda c: c[:3])
            pool = candidates[0][3]
            debug = {
                "strategy": "pool_tags",
                "tags": sorted(wanted),
                "candidates": [{"pool_id": c[2], "load": c[0]} for c in candidates],
            }
        else:
            assert request.environment is not None
            debug = {"strategy": "environment", "backend": request.environment.backend}
        if pool is not None:
            self._check_pool_policy(org, pool, request)
        source = self._task_source(org, pool, request, body)
        debug["task_source"] = {k: v for k, v in source.items() if k != "resources"}
        return pool, source, debug

    def _check_pool_policy(self, org: Org, pool: dict[str, Any], request: RolloutRequestV1) -> None:
        pool_id = pool["pool_id"]
        agents = pool.get("allowed_agents")
        if agents and request.agent.harness not in agents:
            raise ApiError(
                422,
                "validation_error",
                f"pool {pool_id!r} does not allow agent {request.agent.harness!r}; "
                f"allowed: {sorted(agents)}",
            )
        models = pool.get("allowed_models")
        if models and request.agent.model_id and request.agent.model_id not in models:
            raise ApiError(
                422,
                "validation_error",
                f"pool {pool_id!r} does not allow model {request.agent.model_id!r}; "
                f"allowed: {sorted(models)}",
            )
        limit = pool.get("spend_limit_usd")
        if isinstance(limit, int | float):
            spent = self.store.pool_spend(org.org_id, pool_id)
            if spent >= limit:
                raise ApiError(
                    402,
                    "spend_limit_exceeded",
                    f"pool {pool_id!r} has spent ${spent:.4f} of its ${limit:.2f} limit",
                    spent_usd=spent,
                    spend_limit_usd=limit,
                )
        max_queue = pool.get("max_queue")
        if isinstance(max_queue, int):
            queued = self.store.count_rollouts(org.org_id, pool_id).get("queued", 0)
            if queued >= max_queue:
                raise ApiError(
                    429,
                    "queue_full",
                    f"pool {pool_id!r} already has {queued} queued rollout(s) "
                    f"(max_queue {max_queue})",
                    headers={"Retry-After": "5"},
                    queue_depth=queued,
                    max_queue=max_queue,
                )

    # --- rollouts -------------------------------------------------------------------------

    def validate(self, org: Org, body: Any) -> dict[str, Any]:
        try:
            request = self.parse_request(body)
            pool, _, debug = self.route(org, request, body)
        except ApiError as exc:
            error = {"code": exc.code, "message": exc.message}
            if exc.details is not None:
                error["details"] = exc.details
            return {"valid": False, "selected_pool_id": None, "routing_debug": None, "error": error}
        return {
            "valid": True,
            "selected_pool_id": pool["pool_id"] if pool else None,
            "routing_debug": debug,
            "error": None,
        }

    def create_rollout(
        self, org: Org, body: Any, *, replay_of: str | None = None
    ) -> tuple[int, dict[str, Any]]:
        request = self.parse_request(body)
        pool, source, debug = self.route(org, request, body)
        if request.dry_run:
            return 200, {
                "rollout_id": None,
                "status": "dry_run",
                "dry_run": True,
                "valid": True,
                "selected_pool_id": pool["pool_id"] if pool else None,
                "routing_debug": debug,
            }
        now = now_iso()
        rollout_id = f"ro_{time.time_ns():x}{secrets.token_hex(3)}"
        agent = request.agent.model_dump(mode="json")
        agent["kind"] = agent["harness"]
        doc = {
            "rollout_id": rollout_id,
            "trial_id": rollout_id,
            "org_id": org.org_id,
            "status": "queued",
            "pool_id": pool["pool_id"] if pool else None,
            "task_ref": request.task_ref.model_dump(mode="json"),
            "agent": agent,
            "environment": request.environment.model_dump(mode="json")
            if request.environment
            else None,
            "timeouts": request.timeouts.model_dump(mode="json") if request.timeouts else {},
            "priority": request.priority or 0,
            "metadata": request.metadata or {},
            "task_app_url": request.task_app_url,
            "task_app_id": request.task_app_id,
            "created_at": now,
            "started_at": None,
            "finished_at": None,
            "reward_primary": None,
            "rewards": None,
            "error": None,
            "agent_exit_code": None,
            "replay_of": replay_of,
            "dry_run": False,
            "task_source": {k: v for k, v in source.items() if k != "resources"},
            "resources": source.get("resources"),
            "routing": debug,
            "usage": None,
        }
        self.store.insert_rollout(doc, body)
        self.ctx.publish(rollout_id, "lifecycle", {"status": "queued", "pool_id": doc["pool_id"]})
        self.scheduler.wake()
        return 201, self.rollout_view(doc)

    @staticmethod
    def rollout_view(doc: dict[str, Any]) -> dict[str, Any]:
        return dict(doc)

    def _rollout_or_404(self, org: Org, rollout_id: str) -> dict[str, Any]:
        doc = self.store.get_rollout(rollout_id, org.org_id)
        if doc is None:
            raise ApiError(404, "not_found", f"rollout {rollout_id!r} not found")
        return doc

    def get_rollout(self, org: Org, rollout_id: str) -> dict[str, Any]:
        return self.rollout_view(self._rollout_or_404(org, rollout_id))

    def list_rollouts(
        self, org: Org, *, cursor: str | None, limit: int, **filters: Any
    ) -> dict[str, Any]:
        before = None
        if cursor:
            if not cursor.isdigit():
                raise ApiError(422, "validation_error", f"cursor {cursor!r} is not valid")
            before = int(cursor)
        rows = self.store.list_rollouts(org.org_id, limit=limit + 1, before_n=before, **filters)
        page = rows[:limit]
        next_cursor = str(page[-1][0]) if len(rows) > limit and page else None
        return {
            "rollouts": [self.rollout_view(doc) for _, doc in page],
            "next_cursor": next_cursor,
            "cursor": next_cursor,
        }

    def summary(self, org: Org, rollout_id: str) -> dict[str, Any]:
        doc = self._rollout_or_404(org, rollout_id)
        return {
            "rollout_id": rollout_id,
            "status": doc["status"],
            "reward_primary": doc.get("reward_primary"),
            "rewards": doc.get("rewards"),
            "error": doc.get("error"),
            "pool_id": doc.get("pool_id"),
            "task_ref": doc.get("task_ref"),
            "agent": doc.get("agent"),
            "agent_exit_code": doc.get("agent_exit_code"),
            "created_at": doc.get("created_at"),
            "started_at": doc.get("started_at"),
            "finished_at": doc.get("finished_at"),
            "last_event": self.store.last_event(rollout_id),
            "event_count": self.store.count_events(rollout_id),
        }

    def usage(self, org: Org, rollout_id: str) -> dict[str, Any]:
        doc = self._rollout_or_404(org, rollout_id)
        if doc.get("usage"):
            return dict(doc["usage"])
        wall = 0.0
        if doc.get("started_at"):
            started = datetime.fromisoformat(doc["started_at"].replace("Z", "+00:00"))
            wall = max(0.0, time.time() - started.timestamp())
        return {
            "rollout_id": rollout_id,
            "wall_time_sec": round(wall, 3),
            "sandbox_minutes": round(wall / 60, 4),
            "browser_minutes": 0.0,
            "bytes_uploaded": 0,
            "bytes_downloaded": 0,
            "llm_input_tokens": 0,
            "llm_output_tokens": 0,
            "cost_usd": 0.0,
            "provider_costs": {},
            "final": False,
        }

    def cancel(self, org: Org, rollout_id: str) -> dict[str, Any]:
        self._rollout_or_404(org, rollout_id)
        return self.rollout_view(self.scheduler.cancel(rollout_id))

    def replay(self, org: Org, rollout_id: str, body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        self._rollout_or_404(org, rollout_id)
        original = self.store.get_request(rollout_id) or {}
        overrides = body.get("overrides") or {}
        if not isinstance(overrides, dict):
            raise ApiError(422, "validation_error", "overrides must be an object")
        request = _deep_merge(original, overrides)
        request.pop("dry_run", None)
        metadata = body.get("metadata")
        if isinstance(metadata, dict):
            request["metadata"] = {**(request.get("metadata") or {}), **metadata}
        return self.create_rollout(org, request, replay_of=rollout_id)

    def batch(self, org: Org, body: Any) -> tuple[int, dict[str, Any]]:
        if not isinstance(body, dict) or not isinstance(body.get("requests"), list):
            raise ApiError(422, "validation_error", 'the body must be {"requests": [...]}')
        if len(body["requests"]) > 1000:
            raise ApiError(422, "validation_error", "at most 1000 requests per batch")
        metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
        rollouts, errors = [], []
        for index, item in enumerate(body["requests"]):
            if isinstance(item, dict) and metadata:
                item = {**item, "metadata": {**metadata, **(item.get("metadata") or {})}}
            try:
                _, created = self.create_rollout(org, item)
            except ApiError as exc:
                errors.append({"index": index, "error": {"code": exc.code, "message": exc.message}})
                continue
            rollouts.append(created)
        return 200, {"rollouts": rollouts, "errors": errors}

    def support_bundle(self, org: Org, rollout_id: str, base_url: str) -> dict[str, Any]:
        doc = self._rollout_or_404(org, rollout_id)
        events = []
        after = 0
        while True:
            batch = self.store.events_after(rollout_id, after, limit=1000)
            events += batch
            if len(batch) < 1000 or len(events) >= 5000:
                break
            after = batch[-1]["seq"]
        return {
            "rollout": redact(self.rollout_view(doc)),
            "request": redact(self.store.get_request(rollout_id) or {}),
            "routing": redact(doc.get("routing")),
            "events": redact(events),
            "events_truncated": len(events) >= 5000,
            "artifacts": self.artifact_manifest(org, rollout_id, base_url, None, None, None),
            "usage": self.usage(org, rollout_id),
            "backend": {
                "name": "envpools-local",
                "version": __version__,
                "sandbox": self.ctx.driver.name,
                "sandbox_warning": self.ctx.driver_warning,
            },
            "generated_at": now_iso(),
        }

    # --- artifacts ------------------------------------------------------------------------

    def artifact_manifest(
        self,
        org: Org,
        rollout_id: str,
        base_url: str,
        prefix: str | None,
        cursor: str | None,
        limit: int | None,
    ) -> dict[str, Any]:
        doc = self._rollout_or_404(org, rollout_id)
        page_size = limit or 1000
        entries = self.store.list_artifacts(
            rollout_id, prefix=prefix, after=cursor, limit=page_size + 1
        )
        page = entries[:page_size]
        for entry in page:
            entry["download_url"] = (
                f"{base_url.rstrip('/')}/v1/rollouts/{rollout_id}/artifacts/{entry['path']}"
            )
        everything = self.store.list_artifacts(rollout_id, prefix=prefix)
        return {
            "rollout_id": rollout_id,
            "artifacts": page,
            "total_size_bytes": sum(e["size_bytes"] for e in everything),
            "created_at": doc.get("finished_at"),
            "next_cursor": page[-1]["path"] if len(entries) > page_size and page else None,
            "complete": doc["status"] in TERMINAL_STATUSES,
        }

    # --- account, capabilities, queue -----------------------------------------------------

    def capabilities(self) -> dict[str, Any]:
        agents = describe_harnesses(self.ctx.search_path)
        return {
            "agents": agents,
            "models": {a["name"]: a["models"] for a in agents if a["models"]},
            "pool_types": ["sandbox", "browser", "openenv", "archipelago"],
            "templates": sorted(TEMPLATE_DEFAULTS),
            "backends": {
                name: {
                    "supported": name in _SUPPORTED_BACKENDS,
                    "reason": None
                    if name in _SUPPORTED_BACKENDS
                    else "the local backend stores these tasks but cannot run them",
                }
                for name in sorted(_KNOWN_BACKENDS - {"kernel"})
            },
            "features": {
                "sse_resume": True,
                "idempotency": True,
                "dry_run": True,
                "batch": True,
                "replay": True,
                "artifacts_zip": True,
                "cancel": True,
                "plan_gating": True,
            },
            "sandbox": {
                "driver": self.ctx.driver.name,
                "isolated": self.ctx.driver.isolated,
                "warning": self.ctx.driver_warning,
            },
            "datasets": {
                EXAMPLE_DATASET: sorted(p.name for p in examples_dir().iterdir() if p.is_dir())
            },
            "heartbeat_sec": self.ctx.settings.heartbeat_sec,
            "backend": "envpools-local",
            "version": __version__,
        }

    def queue_status(self, org: Org) -> dict[str, Any]:
        pools = []
        totals = {"queued": 0, "running": 0}
        pool_ids = [p["pool_id"] for p in self.store.list_pools(org.org_id)] + [None]
        for pool_id in pool_ids:
            counts = self.store.count_rollouts(org.org_id, pool_id) if pool_id else {}
            queued = counts.get("queued", 0)
            running = sum(counts.get(s, 0) for s in ACTIVE_STATUSES)
            if pool_id is None:
                continue
            totals["queued"] += queued
            totals["running"] += running
            pools.append({"pool_id": pool_id, "queued": queued, "running": running})
        adhoc = [
            doc
            for doc in self.store.rollouts_with_status("queued", *ACTIVE_STATUSES)
            if doc["org_id"] == org.org_id and doc.get("pool_id") is None
        ]
        if adhoc:
            queued = sum(1 for d in adhoc if d["status"] == "queued")
            pools.append({"pool_id": None, "queued": queued, "running": len(adhoc) - queued})
            totals["queued"] += queued
            totals["running"] += len(adhoc) - queued
        return {
            "pools": pools,
            "total_queued": totals["queued"],
            "total_running": totals["running"],
            "max_running": self.ctx.settings.max_running,
        }
