"""What the endpoints do: validation, routing, idempotency and the documents they return.

Routes stay thin: they authenticate, parse and call into ``Service``, which raises
``ApiError`` for every expected failure.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any

from envpools_cli import __version__
from envpools_cli.models import (
    TEMPLATE_DEFAULTS,
    TERMINAL_STATUSES,
)
from envpools_cli.redaction import redact_fields
from envpools_cli.server.agents import HARNESSES, describe_harnesses
from envpools_cli.server.context import ServerContext
from envpools_cli.server.errors import ApiError
from envpools_cli.server.scheduling.admission import Reservation, reservation_for
from envpools_cli.server.scheduling.scheduler import ACTIVE_STATUSES, Scheduler
from envpools_cli.server.services.placement import EXAMPLE_DATASET, Router, examples_dir
from envpools_cli.server.services.pools import KNOWN_BACKENDS, PoolService
from envpools_cli.server.state.exhaustion import low_on_disk
from envpools_cli.server.state.store import Org, now_iso
from envpools_cli.server.tasks import task_environment

__all__ = ["Service", "redact"]

_SUPPORTED_BACKENDS = {"harbor"}


def _request_hash(body: Any) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()


def redact(value: Any) -> Any:
    """Secret-named fields and credential-like strings replaced, at any depth."""
    return redact_fields(value)


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
        self.pools = PoolService(ctx, scheduler)
        self.router = Router(self.pools)

    # --- idempotency ----------------------------------------------------------------------

    def idempotent(
        self,
        org: Org,
        endpoint: str,
        key: str | None,
        body: Any,
        create: Callable[[], tuple[int, Any]],
    ) -> tuple[int, Any]:
        """Run ``create()`` once per (key, body); a replay answers the first response again.

        The lookup, the creation and the record of its response are one write transaction:
        requests racing with one key queue on it, and the first to get it is the only one
        that creates; a crash in between leaves neither a rollout nor a record behind.
        """
        if not key:
            return create()
        digest = _request_hash(body)
        with self.store.tx():
            found = self.store.idempotent_response(org.org_id, endpoint, key)
            if found is not None:
                stored_hash, status, response = found
                if stored_hash != digest:
                    message = (
                        f"Idempotency-Key {key!r} was already used with a different request body"
                    )
                    raise ApiError(409, "idempotency_conflict", message)
                return status, response
            status, response = create()
            if status < 300:
                self.store.remember_response(org.org_id, endpoint, key, digest, status, response)
        return status, response

    # --- rollouts -------------------------------------------------------------------------

    def reservation(self, source: dict[str, Any], harness: str | None) -> Reservation:
        """What a rollout of this task and agent reserves; 422 when it could never run here."""
        path = source.get("path")
        agent = HARNESSES.get(harness or "")
        reservation, asked = reservation_for(
            task_environment(path) if path else None,
            source.get("resources"),
            max_memory_mb=self.ctx.settings.limit_maxima.memory_mb,
            agent_cpus=agent.needs_cpus if agent else None,
            agent_memory_mb=agent.needs_memory_mb if agent else None,
        )
        if problem := self.scheduler.refusal(reservation, asked):
            raise ApiError(422, "exceeds_capacity", problem)
        return reservation

    def validate(self, org: Org, body: Any) -> dict[str, Any]:
        try:
            request = self.router.parse_request(body)
            pool, source, debug = self.router.route(org, request, body)
            self.reservation(source, request.agent.harness)
            self.router.check_credentials(org, request)
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
        request = self.router.parse_request(body)
        pool, source, debug = self.router.route(org, request, body)
        reservation = self.reservation(source, request.agent.harness)
        if request.dry_run:
            self.router.check_credentials(org, request)
            return 200, {
                "rollout_id": None,
                "status": "dry_run",
                "dry_run": True,
                "valid": True,
                "selected_pool_id": pool["pool_id"] if pool else None,
                "routing_debug": debug,
            }
        self._room_for_rollouts()
        now = now_iso()
        rollout_id = f"ro_{time.time_ns():x}{secrets.token_hex(3)}"
        # Secrets belong in stored credentials: what a client sent that looks like one (a
        # secret-named field, a "Bearer ..." or "sk-..." value, at any depth) is kept, and
        # echoed by create/get/list, only as "[REDACTED]".
        agent = redact(request.agent.model_dump(mode="json"))
        agent["kind"] = agent["harness"]
        doc = {
            "rollout_id": rollout_id,
            "trial_id": rollout_id,
            "org_id": org.org_id,
            "status": "queued",
            "pool_id": pool["pool_id"] if pool else None,
            "task_ref": request.task_ref.model_dump(mode="json"),
            "agent": agent,
            "environment": redact(request.environment.model_dump(mode="json"))
            if request.environment
            else None,
            "timeouts": request.timeouts.model_dump(mode="json") if request.timeouts else {},
            "priority": request.priority or 0,
            "metadata": redact(request.metadata or {}),
            "task_app_url": redact(request.task_app_url),
            "task_app_id": redact(request.task_app_id),
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
            "reservation": reservation.describe(),
            "routing": debug,
            "usage": None,
        }
        stored = redact(dict(body))
        order = self.store.insert_rollout(doc, stored)
        self.ctx.publish(rollout_id, "lifecycle", {"status": "queued", "pool_id": doc["pool_id"]})

        def enqueue() -> None:  # once committed (a create may be part of an idempotent one)
            self.scheduler.enqueue(
                rollout_id,
                org_id=org.org_id,
                pool_id=doc["pool_id"],
                priority=int(doc["priority"]),
                order=order,
                reservation=reservation,
            )

        self.store.after_commit(enqueue)
        return 201, self.rollout_view(doc)

    def _room_for_rollouts(self) -> None:
        """Below the data folder's free-space floor a new rollout would fail half-way:
        refused now, 507 ``disk_full`` with what is full and what is needed."""
        settings = self.ctx.settings
        if (low := low_on_disk(settings.data_dir, settings.min_free_mb)) is not None:
            raise ApiError(low.status, low.code, low.message)

    @staticmethod
    def rollout_view(doc: dict[str, Any]) -> dict[str, Any]:
        return dict(doc)

    def _rollout_or_404(self, org: Org, rollout_id: str) -> dict[str, Any]:
        doc = self.store.get_rollout(rollout_id, org.org_id)
        if doc is None:
            raise ApiError(404, "not_found", f"rollout {rollout_id!r} not found")
        return self.ctx.ends.overlay(doc)  # ended, even when the store has not taken it yet

    def get_rollout(self, org: Org, rollout_id: str) -> dict[str, Any]:
        view = self.rollout_view(self._rollout_or_404(org, rollout_id))
        if view["status"] == "queued" and (waiting := self.scheduler.waiting(rollout_id)):
            view["waiting"] = waiting
        return view

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
        overlay = self.ctx.ends.overlay
        return {
            "rollouts": [self.rollout_view(overlay(doc)) for _, doc in page],
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
            **self._last_event(rollout_id),
        }

    def _last_event(self, rollout_id: str) -> dict[str, Any]:
        last, count = self.store.last_event(rollout_id), self.store.count_events(rollout_id)
        kept = self.ctx.ends.pending(rollout_id)
        if kept is not None and (last is None or last["seq"] < kept.seq):
            last, count = kept.envelope, count + 1
        return {"last_event": last, "event_count": count}

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
        self._room_for_rollouts()
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
        agents = describe_harnesses(self.ctx.agents)
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
                for name in sorted(KNOWN_BACKENDS - {"kernel"})
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
            "sandbox": self.ctx.sandbox_report(),
            "datasets": {
                EXAMPLE_DATASET: sorted(p.name for p in examples_dir().iterdir() if p.is_dir())
            },
            "heartbeat_sec": self.ctx.settings.heartbeat_sec,
            "scheduling": self.scheduling_summary(),
            "backend": "envpools-local",
            "version": __version__,
        }

    def scheduling_summary(self) -> dict[str, Any]:
        """How many rollouts run at once and what to change for more (capabilities,
        ``local status``, and the ``jobs run -n`` warning read it)."""
        described = self.scheduler.executor.describe()
        capacity = described["capacity"]
        settings = self.ctx.settings
        return {
            "executor": described["name"],
            "runs_at_once": capacity.get("runs_at_once"),
            "limited_by": capacity.get("limited_by"),
            "max_running": settings.max_running,
            "cpu_overcommit": settings.cpu_overcommit,
            "memory_fraction": settings.memory_fraction,
            "default_concurrency": settings.default_concurrency,
            "agent_reservations": {
                name: {"cpus": cls.needs_cpus, "memory_mb": cls.needs_memory_mb}
                for name, cls in sorted(HARNESSES.items())
                if cls.needs_cpus is not None or cls.needs_memory_mb is not None
            },
            "capacity": capacity,
            "nodes": described.get("nodes", []),
            "how_to_raise": _how_to_raise(str(capacity.get("limited_by")), described["name"]),
        }

    def queue_status(self, org: Org) -> dict[str, Any]:
        """Queued and running rollouts per pool (one count query, not the queue itself),
        why each pool's next rollout waits, and the executor's capacity and nodes."""
        counts = self.store.count_by_pool(org.org_id, ("queued", *ACTIVE_STATUSES))
        pool_ids = [p["pool_id"] for p in self.store.list_pools(org.org_id)]
        if any(pool is None for pool, _ in counts):
            pool_ids.append(None)
        reasons = self.scheduler.queue_report(org.org_id)
        nodes = self.store.running_on_nodes(org.org_id, ACTIVE_STATUSES)
        pools = []
        for pool_id in pool_ids:
            queued = counts.get((pool_id, "queued"), 0)
            entry: dict[str, Any] = {
                "pool_id": pool_id,
                "queued": queued,
                "running": sum(counts.get((pool_id, s), 0) for s in ACTIVE_STATUSES),
            }
            where = {n: c for (p, n), c in nodes.items() if p == pool_id}
            if where:
                entry["running_on"] = where
            if (found := reasons.get((org.org_id, pool_id))) is not None:
                entry["next"] = found["next"]
                entry["waiting"] = found["waiting"]
            pools.append(entry)
        scheduling = self.scheduler.describe()
        return {
            "pools": pools,
            "total_queued": sum(p["queued"] for p in pools),
            "total_running": sum(p["running"] for p in pools),
            "max_running": self.ctx.settings.max_running,
            "runs_at_once": scheduling["capacity"].get("runs_at_once"),
            "scheduling": scheduling,
        }


def _how_to_raise(limit: str, executor: str) -> str:
    if executor == "ray":
        return "add worker nodes to the Ray cluster (README: Running at scale)"
    return {
        "cpus": "envpools local up --cpu-overcommit X (ENVPOOLS_CPU_OVERCOMMIT)",
        "memory": "envpools local up with a higher ENVPOOLS_MEMORY_FRACTION, or smaller "
        "tasks (memory_mb)",
        "open_files": "raise the open-files hard limit (ulimit -Hn) before starting the backend",
        "max_running": "envpools local up --max-running N (ENVPOOLS_MAX_RUNNING)",
    }.get(limit, "envpools local up --max-running N --cpu-overcommit X")
