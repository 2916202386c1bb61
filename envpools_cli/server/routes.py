"""HTTP routes of CONTRACT §2. One router serves ``/v1``, ``/api/v1`` and
``/api/v1/environment-pools``; credentials and the account live at fixed paths."""

from __future__ import annotations

import asyncio
import functools
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Body, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse

from envpools_cli import __version__
from envpools_cli.models import TERMINAL_STATUSES
from envpools_cli.server.api_errors import ApiError
from envpools_cli.server.artifacts import (
    ArtifactPathError,
    open_artifact,
    resolve_artifact,
    zip_stream,
)
from envpools_cli.server.auth import current_org, pools_org
from envpools_cli.server.events import heartbeat_frame, sse_frame
from envpools_cli.server.service import Service
from envpools_cli.server.store import Org, parse_time

__all__ = ["account_router", "pools_router"]

pools_router = APIRouter()
account_router = APIRouter()

PoolsOrg = Annotated[Org, Depends(pools_org)]
AnyOrg = Annotated[Org, Depends(current_org)]
JsonBody = Annotated[Any, Body()]
OptionalBody = Annotated[Any, Body()]


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


Svc = Annotated[Service, Depends(service)]


def _json(status: int, body: Any) -> JSONResponse:
    return JSONResponse(body, status_code=status)


# --- rollouts -------------------------------------------------------------------------------


@pools_router.post("/rollouts", status_code=201, tags=["rollouts"])
def create_rollout(
    org: PoolsOrg,
    svc: Svc,
    body: JsonBody,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Create a rollout (or, with ``dry_run``, validate and route it without creating)."""
    status, result = svc.idempotent(
        org, "rollouts", idempotency_key, body, lambda: svc.create_rollout(org, body)
    )
    return _json(status, result)


@pools_router.post("/rollouts:validate", tags=["rollouts"])
def validate_rollout(org: PoolsOrg, svc: Svc, body: JsonBody) -> dict[str, Any]:
    """Check a request and report the pool it would be routed to."""
    return svc.validate(org, body)


@pools_router.post("/rollouts/batch", tags=["rollouts"])
def create_batch(
    org: PoolsOrg,
    svc: Svc,
    body: JsonBody,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    """Create many rollouts: ``{"rollouts": [...], "errors": [{index, error}]}``."""
    status, result = svc.idempotent(
        org, "rollouts/batch", idempotency_key, body, lambda: svc.batch(org, body)
    )
    return _json(status, result)


@pools_router.get("/rollouts", tags=["rollouts"])
def list_rollouts(
    org: PoolsOrg,
    svc: Svc,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: str | None = None,
    pool_id: str | None = None,
    dataset: str | None = None,
    task_id: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
) -> dict[str, Any]:
    """Rollouts of the organisation, newest first, paged by ``next_cursor``."""
    try:
        after = parse_time(created_after) if created_after else None
        before = parse_time(created_before) if created_before else None
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"invalid timestamp: {exc}") from None
    return svc.list_rollouts(
        org,
        cursor=cursor,
        limit=limit,
        status=status,
        pool_id=pool_id,
        dataset=dataset,
        task_id=task_id,
        created_after=after,
        created_before=before,
    )


@pools_router.get("/rollouts/{rollout_id}", tags=["rollouts"])
def get_rollout(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    return svc.get_rollout(org, rollout_id)


@pools_router.get("/rollouts/{rollout_id}/summary", tags=["rollouts"])
def rollout_summary(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    return svc.summary(org, rollout_id)


@pools_router.get("/rollouts/{rollout_id}/usage", tags=["rollouts"])
def rollout_usage(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    return svc.usage(org, rollout_id)


@pools_router.get("/rollouts/{rollout_id}/support_bundle", tags=["rollouts"])
def support_bundle(org: PoolsOrg, svc: Svc, rollout_id: str, request: Request) -> dict[str, Any]:
    return svc.support_bundle(org, rollout_id, str(request.base_url))


@pools_router.post("/rollouts/{rollout_id}/replay", status_code=201, tags=["rollouts"])
def replay_rollout(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    body: Annotated[dict[str, Any] | None, Body()] = None,
    idempotency_key: Annotated[str | None, Header()] = None,
) -> JSONResponse:
    payload = body or {}
    status, result = svc.idempotent(
        org,
        f"rollouts/{rollout_id}/replay",
        idempotency_key,
        payload,
        lambda: svc.replay(org, rollout_id, payload),
    )
    return _json(status, result)


@pools_router.post("/rollouts/{rollout_id}/cancel", tags=["rollouts"])
def cancel_rollout(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    """Cancel at any stage; a finished rollout is returned unchanged."""
    return svc.cancel(org, rollout_id)


def _start_seq(cursor: str | None, last_event_id: str | None) -> int:
    value = cursor if cursor not in (None, "") else last_event_id
    if value in (None, ""):
        return 0
    assert value is not None
    if not value.strip().isdigit():
        raise ApiError(422, "validation_error", f"cursor {value!r} is not an event id")
    return int(value)


@pools_router.get(
    "/rollouts/{rollout_id}/events", tags=["events"], response_class=StreamingResponse
)
async def rollout_events(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    request: Request,
    since: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
    last_event_id: Annotated[str | None, Header()] = None,
) -> StreamingResponse:
    """Server-sent events: history after ``cursor``/``Last-Event-ID``, then live events."""
    await to_thread.run_sync(svc.get_rollout, org, rollout_id)
    start = _start_seq(cursor, last_event_id)
    try:
        since_norm = parse_time(since) if since else None
    except ValueError:
        raise ApiError(422, "validation_error", f"since {since!r} is not a timestamp") from None
    ctx = svc.ctx
    heartbeat = ctx.settings.heartbeat_sec
    batch_size = ctx.settings.event_batch

    def finished(last_seq: int) -> bool:
        last = ctx.store.last_event(rollout_id)
        if last is None or last["event"] != "lifecycle":
            return False
        if str(last["data"].get("status", "")).lower() not in TERMINAL_STATUSES:
            return False
        return bool(last["seq"] <= last_seq or (since_norm and last["timestamp"] <= since_norm))

    async def stream() -> AsyncIterator[bytes]:
        yield b"retry: 1000\n\n"
        last, sent = start, 0
        with ctx.bus.subscribe(rollout_id) as flag:
            while True:
                flag.clear()
                wanted = batch_size if limit is None else min(batch_size, limit - sent)
                batch = await to_thread.run_sync(
                    functools.partial(
                        ctx.store.events_after, rollout_id, last, limit=wanted, since=since_norm
                    )
                )
                for envelope in batch:
                    yield sse_frame(envelope)
                    last, sent = envelope["seq"], sent + 1
                    if limit is not None and sent >= limit:
                        return
                    data = envelope["data"]
                    if (
                        envelope["event"] == "lifecycle"
                        and str(data.get("status", "")).lower() in TERMINAL_STATUSES
                    ):
                        return
                if len(batch) == wanted:
                    continue
                if await to_thread.run_sync(finished, last):
                    return
                try:
                    await asyncio.wait_for(flag.wait(), heartbeat)
                except TimeoutError:
                    yield heartbeat_frame()

    return StreamingResponse(
        stream(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


# --- artifacts ------------------------------------------------------------------------------


@pools_router.get("/rollouts/{rollout_id}/artifacts", tags=["artifacts"])
def list_artifacts(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    request: Request,
    prefix: str | None = None,
    cursor: str | None = None,
    limit: Annotated[int | None, Query(ge=1, le=10000)] = None,
) -> dict[str, Any]:
    return svc.artifact_manifest(org, rollout_id, str(request.base_url), prefix, cursor, limit)


@pools_router.get(
    "/rollouts/{rollout_id}/artifacts.zip", tags=["artifacts"], response_class=StreamingResponse
)
def artifacts_zip(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    prefix: str | None = None,
    limit: Annotated[int | None, Query(ge=1)] = None,
) -> StreamingResponse:
    """All artifacts (under ``prefix``) as a zip, streamed as it is built."""
    svc.get_rollout(org, rollout_id)
    entries = svc.store.list_artifacts(rollout_id, prefix=prefix, limit=limit)
    trial = svc.ctx.trial_dir(rollout_id)
    return StreamingResponse(
        zip_stream(trial, [e["path"] for e in entries]),
        media_type="application/zip",
        headers={"Content-Disposition": f'attachment; filename="{rollout_id}-artifacts.zip"'},
    )


@pools_router.get(
    "/rollouts/{rollout_id}/artifacts/{path:path}",
    tags=["artifacts"],
    response_class=StreamingResponse,
)
def fetch_artifact(org: PoolsOrg, svc: Svc, rollout_id: str, path: str) -> StreamingResponse:
    """One artifact's bytes; paths outside the rollout's folder are refused."""
    svc.get_rollout(org, rollout_id)
    trial = svc.ctx.trial_dir(rollout_id)
    try:
        relative, _ = resolve_artifact(trial, path)
    except ArtifactPathError as exc:
        raise ApiError(400, "invalid_path", str(exc)) from None
    indexed = {e["path"]: e for e in svc.store.list_artifacts(rollout_id, prefix=relative)}
    entry = indexed.get(relative)
    fd = open_artifact(trial, relative) if entry is not None else None
    if entry is None or fd is None:
        raise ApiError(404, "not_found", f"rollout {rollout_id!r} has no artifact {relative!r}")
    size = os.fstat(fd).st_size

    def chunks() -> Any:
        with os.fdopen(fd, "rb") as handle:
            yield from iter(lambda: handle.read(64 * 1024), b"")

    return StreamingResponse(
        chunks(),
        media_type=entry["content_type"],
        headers={"Content-Length": str(size), "ETag": f'"{entry["sha256"]}"'},
    )


# --- pools and tasks ------------------------------------------------------------------------


@pools_router.get("/pools", tags=["pools"])
def list_pools(
    org: PoolsOrg,
    svc: Svc,
    type: str | None = None,
    tag: str | None = None,
) -> list[dict[str, Any]]:
    """Pools as a bare JSON array."""
    return svc.pools.list_pools(org, type, tag)


@pools_router.post("/pools", status_code=201, tags=["pools"])
def create_pool(org: PoolsOrg, svc: Svc, body: JsonBody) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "the request body must be a JSON object")
    return svc.pools.create_pool(org, body)


@pools_router.get("/pools/{pool_id}", tags=["pools"])
def get_pool(org: PoolsOrg, svc: Svc, pool_id: str) -> dict[str, Any]:
    return svc.pools.get_pool(org, pool_id)


@pools_router.put("/pools/{pool_id}", tags=["pools"])
def update_pool(org: PoolsOrg, svc: Svc, pool_id: str, body: JsonBody) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "the request body must be a JSON object")
    return svc.pools.update_pool(org, pool_id, body)


@pools_router.delete("/pools/{pool_id}", status_code=204, tags=["pools"])
def delete_pool(org: PoolsOrg, svc: Svc, pool_id: str) -> Response:
    svc.pools.delete_pool(org, pool_id)
    return Response(status_code=204)


@pools_router.get("/pools/{pool_id}/metrics", tags=["pools"])
def pool_metrics(org: PoolsOrg, svc: Svc, pool_id: str) -> dict[str, Any]:
    return svc.pools.pool_metrics(org, pool_id)


@pools_router.get("/pools/{pool_id}/tasks", tags=["tasks"])
def list_tasks(org: PoolsOrg, svc: Svc, pool_id: str) -> list[dict[str, Any]]:
    """Tasks of a pool as a bare JSON array."""
    return svc.pools.list_tasks(org, pool_id)


@pools_router.post("/pools/{pool_id}/tasks", status_code=201, tags=["tasks"])
def create_task(org: PoolsOrg, svc: Svc, pool_id: str, body: JsonBody) -> dict[str, Any]:
    return svc.pools.create_task(org, pool_id, body)


@pools_router.put("/pools/{pool_id}/tasks/{task_id}", tags=["tasks"])
def update_task(
    org: PoolsOrg, svc: Svc, pool_id: str, task_id: str, body: JsonBody
) -> dict[str, Any]:
    return svc.pools.update_task(org, pool_id, task_id, body)


@pools_router.delete("/pools/{pool_id}/tasks/{task_id}", status_code=204, tags=["tasks"])
def delete_task(org: PoolsOrg, svc: Svc, pool_id: str, task_id: str) -> Response:
    svc.pools.delete_task(org, pool_id, task_id)
    return Response(status_code=204)


# --- queue, capabilities, schemas -----------------------------------------------------------


@pools_router.get("/queue/status", tags=["queue"])
def queue_status(org: PoolsOrg, svc: Svc) -> dict[str, Any]:
    return svc.queue_status(org)


@pools_router.get("/capabilities", tags=["capabilities"])
def capabilities(org: AnyOrg, svc: Svc) -> dict[str, Any]:
    return svc.capabilities()


@pools_router.get("/openapi.json", tags=["capabilities"], include_in_schema=False)
def openapi_document(request: Request) -> dict[str, Any]:
    document: dict[str, Any] = request.app.openapi()
    return document


@pools_router.get("/schema.json", tags=["capabilities"])
def schema_json(request: Request) -> dict[str, Any]:
    schemas: dict[str, Any] = request.app.state.model_schemas
    return schemas


# --- credentials and account (fixed paths) --------------------------------------------------


@account_router.get("/api/v1/me", tags=["account"])
def me(org: AnyOrg) -> dict[str, Any]:
    return {
        "org_id": org.org_id,
        "org_name": org.name,
        "plan": org.plan,
        "feature_flags": org.feature_flags,
        "environment_pools": org.has_access,
    }


@account_router.post("/api/v1/credentials", status_code=201, tags=["credentials"])
def store_credential(org: AnyOrg, svc: Svc, body: JsonBody) -> dict[str, Any]:
    if not isinstance(body, dict):
        raise ApiError(422, "validation_error", "the request body must be a JSON object")
    name, ctype, value = (
        body.get("credential_name"),
        body.get("credential_type"),
        body.get("credential_value"),
    )
    for field, item in (
        ("credential_name", name),
        ("credential_type", ctype),
        ("credential_value", value),
    ):
        if not isinstance(item, str) or not item:
            raise ApiError(422, "validation_error", f"{field} must be a non-empty string")
    assert isinstance(name, str) and isinstance(ctype, str) and isinstance(value, str)
    if any(c["credential_name"] == name for c in svc.store.list_credentials(org.org_id)):
        raise ApiError(
            409, "conflict", f"a credential named {name!r} already exists; rotate it instead"
        )
    metadata = body.get("metadata") if isinstance(body.get("metadata"), dict) else {}
    return svc.store.insert_credential(org.org_id, name, ctype, value, metadata or {})


@account_router.get("/api/v1/credentials", tags=["credentials"])
def list_credentials(org: AnyOrg, svc: Svc) -> list[dict[str, Any]]:
    """Credentials as a bare JSON array; values are never returned."""
    return svc.store.list_credentials(org.org_id)


@account_router.put("/api/v1/credentials/{credential_id}", tags=["credentials"])
def rotate_credential(org: AnyOrg, svc: Svc, credential_id: str, body: JsonBody) -> dict[str, Any]:
    value = body.get("credential_value") if isinstance(body, dict) else None
    if not isinstance(value, str) or not value:
        raise ApiError(422, "validation_error", "credential_value must be a non-empty string")
    if not svc.store.rotate_credential(org.org_id, credential_id, value):
        raise ApiError(404, "not_found", f"credential {credential_id!r} not found")
    found = svc.store.get_credential(org.org_id, credential_id)
    assert found is not None
    return found


@account_router.delete("/api/v1/credentials/{credential_id}", status_code=204, tags=["credentials"])
def delete_credential(org: AnyOrg, svc: Svc, credential_id: str) -> Response:
    if not svc.store.deactivate_credential(org.org_id, credential_id):
        raise ApiError(404, "not_found", f"credential {credential_id!r} not found")
    return Response(status_code=204)


@account_router.get("/healthz", include_in_schema=False)
def healthz(request: Request) -> dict[str, Any]:
    svc: Service = request.app.state.service
    report = svc.ctx.sandbox_report()
    return {
        "status": "ok",
        "version": __version__,
        "sandbox": svc.ctx.driver.name,
        "sandbox_detail": {k: v for k, v in report.items() if k != "driver"},
    }
