"""Where a rollout runs and what it runs: request checks, pool routing, task sources."""

from __future__ import annotations

from importlib import resources
from pathlib import Path
from typing import Any

import pydantic

from envpools_cli.models import (
    PRESET_DEFAULT_MODELS,
    PRESET_MODELS,
    RolloutRequestV1,
    check_agent_model,
    model_id_problem,
)
from envpools_cli.server.agents import AgentContext, Harness, harness_classes
from envpools_cli.server.errors import ApiError, invalid
from envpools_cli.server.services.pools import PoolService
from envpools_cli.server.services.schemas import LocalRolloutRequest
from envpools_cli.server.state.store import Org

__all__ = ["EXAMPLE_DATASET", "Router", "examples_dir"]

EXAMPLE_DATASET = "envpools-examples"


def examples_dir() -> Path:
    """The Harbor-format example tasks shipped with the package."""
    return Path(str(resources.files("envpools_cli") / "examples" / "tasks"))


class Router:
    def __init__(self, pools: PoolService) -> None:
        self.pools = pools
        self.store = pools.store

    def parse_request(self, body: Any) -> RolloutRequestV1:
        if not isinstance(body, dict):
            raise ApiError(422, "validation_error", "the request body must be a JSON object")
        try:
            request: RolloutRequestV1 = LocalRolloutRequest.model_validate(body)
        except pydantic.ValidationError as exc:
            raise invalid(exc) from None
        harness = request.agent.harness
        offered = self.harnesses()
        if harness not in offered:
            raise ApiError(
                422,
                "validation_error",
                f"unknown harness {harness!r}; this backend offers {sorted(offered)}",
            )
        cls = offered[harness]
        model = request.agent.model_id
        if model is None and harness in PRESET_DEFAULT_MODELS:
            request.agent.model_id = PRESET_DEFAULT_MODELS[harness]
        elif model is None and cls.default_model:
            request.agent.model_id = cls.default_model
        elif cls.accepts_any_model:
            # Any id: a gateway's or proxy's names are its own (presets are suggestions).
            if model is not None and (problem := model_id_problem(model)):
                raise ApiError(422, "validation_error", problem)
        elif harness in PRESET_MODELS:
            try:
                check_agent_model(harness, model)
            except ValueError as exc:
                raise ApiError(422, "validation_error", str(exc)) from None
        elif cls.models and model is not None and model not in cls.models:
            raise ApiError(
                422,
                "validation_error",
                f"Model {model!r} is not allowed for harness {harness!r}. "
                f"Allowed models: {sorted(cls.models)}",
            )
        return request

    def harnesses(self) -> dict[str, type[Harness]]:
        """The built-in harnesses and this backend's custom agents."""
        return harness_classes(self.pools.ctx.agents.agents_dir)

    def check_credentials(self, org: Org, request: RolloutRequestV1) -> None:
        """Refuse now what would end in ``credentials_missing``: for dry runs and validate."""
        cls = self.harnesses()[request.agent.harness]
        if cls.binary is None:  # oracle, nop: nothing to check
            return
        context = AgentContext(
            instruction="",
            workdir="/app",
            agent=request.agent.model_dump(mode="json"),
            task=None,
            credentials=self.store.credential_values(org.org_id),
        )
        if missing := cls().required_secret(context):
            # A valid request the organisation's state cannot serve yet (store the key): 409.
            raise ApiError(
                409, "credentials_missing", f"harness {request.agent.harness!r}: {missing}"
            )

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
                    404,
                    "not_found",
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
                    404,
                    "not_found",
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
            "env_vars": task.get("env_vars") or {},
        }

    def route(
        self, org: Org, request: RolloutRequestV1, body: dict[str, Any]
    ) -> tuple[dict[str, Any] | None, dict[str, Any], dict[str, Any]]:
        """(pool or None for an ad-hoc environment, task source, routing debug)."""
        debug: dict[str, Any] = {}
        pool: dict[str, Any] | None = None
        if request.pool_id:
            pool = self.pools.pool_or_404(org, request.pool_id)
            debug = {"strategy": "pool_id", "pool_id": request.pool_id}
        elif request.pool_tags:
            wanted = set(request.pool_tags)
            candidates = []
            for candidate in self.store.list_pools(org.org_id):
                tags = set(candidate.get("tags") or []) | set(candidate.get("policy_tags") or [])
                if wanted <= tags:
                    load = sum(self.pools.scheduler.load(org.org_id, candidate["pool_id"]))
                    candidates.append(
                        (
                            load,
                            -(candidate.get("priority_weight") or 0),
                            candidate["pool_id"],
                            candidate,
                        )
                    )
            if not candidates:  # like a pool_id that names no pool
                raise ApiError(404, "not_found", f"no pool has all the tags {sorted(wanted)}")
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
        shown = {k: v for k, v in source.items() if k not in ("resources", "env_vars")}
        debug["task_source"] = {**shown, "env_var_names": sorted(source.get("env_vars") or {})}
        return pool, source, debug

    def _check_pool_policy(self, org: Org, pool: dict[str, Any], request: RolloutRequestV1) -> None:
        pool_id = pool["pool_id"]
        agents = pool.get("allowed_agents")
        # The pool's policy forbids what the request is otherwise entitled to: 403.
        if agents and request.agent.harness not in agents:
            raise ApiError(
                403,
                "forbidden",
                f"pool {pool_id!r} does not allow agent {request.agent.harness!r}; "
                f"allowed: {sorted(agents)}",
            )
        models = pool.get("allowed_models")
        if models and request.agent.model_id and request.agent.model_id not in models:
            raise ApiError(
                403,
                "forbidden",
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
            queued = self.pools.scheduler.load(org.org_id, pool_id)[0]
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
