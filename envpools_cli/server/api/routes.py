"""HTTP routes of CONTRACT §2. One router serves ``/v1``, ``/api/v1`` and
``/api/v1/environment-pools``; credentials and the account live at fixed paths.

Request bodies are the contract's models (refined in ``schemas.py``), so FastAPI checks
their shape; each route documents what it answers, its errors included, with the models of
``envpools_cli.models`` (``responses=``, without re-validating the answer at run time).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator
from typing import Annotated, Any

from anyio import to_thread
from fastapi import APIRouter, Depends, Header, Query, Request, Response
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import BaseModel, WithJsonSchema

from envpools_cli import __version__
from envpools_cli.models import (
    TERMINAL_STATUSES,
    Account,
    ArtifactPage,
    Capabilities,
    Credential,
    CredentialCreate,
    CredentialRotate,
    ErrorResponse,
    Pool,
    PoolMetrics,
    PoolTaskInstance,
    QueueStatus,
    ReplayRequest,
    Rollout,
    RolloutBatchRequest,
    RolloutBatchResult,
    RolloutDryRun,
    RolloutPage,
    RolloutStatus,
    RolloutSummary,
    RolloutValidation,
    SchemaDocument,
    SupportBundle,
    UsageSnapshot,
)
from envpools_cli.server.api.auth import current_org, pools_org
from envpools_cli.server.errors import ApiError, EncodedJSONResponse
from envpools_cli.server.services.agent_check import CHECK_PATH, agents_check
from envpools_cli.server.services.rollouts import Service
from envpools_cli.server.services.schemas import (
    CURSOR_PATTERN,
    LocalPoolCreate,
    LocalPoolTask,
    LocalPoolTaskUpdate,
    LocalPoolUpdate,
    LocalRolloutRequest,
)
from envpools_cli.server.state.events import Frame, heartbeat_frame
from envpools_cli.server.state.store import Org, parse_time
from envpools_cli.server.trial.artifacts import (
    ArtifactPathError,
    open_artifact,
    resolve_artifact,
    zip_stream,
)

__all__ = ["account_router", "pools_router"]

pools_router = APIRouter()
account_router = APIRouter()

PoolsOrg = Annotated[Org, Depends(pools_org)]
AnyOrg = Annotated[Org, Depends(current_org)]
# Optional parameters are documented as their type alone: a query string or a header has no
# null, and a schema offering one invites clients to send the text "null".
IdempotencyKey = Annotated[
    str | None,
    Header(description="One key per logical create: a retry with it answers the first response"),
    WithJsonSchema({"type": "string"}),
]
DateTime = Annotated[str | None, Query(), WithJsonSchema({"type": "string", "format": "date-time"})]
Text = Annotated[str | None, Query(), WithJsonSchema({"type": "string"})]
Cursor = Annotated[
    str | None,
    Query(pattern=CURSOR_PATTERN),
    WithJsonSchema({"type": "string", "pattern": CURSOR_PATTERN}),
]
Status = Annotated[
    RolloutStatus | None,
    Query(),
    WithJsonSchema({"type": "string", "enum": [s.value for s in RolloutStatus]}),
]
_EVENT_ID = r"^[0-9]{0,18}$"
EventCursor = Annotated[
    str | None, Query(pattern=_EVENT_ID), WithJsonSchema({"type": "string", "pattern": _EVENT_ID})
]
LastEventId = Annotated[
    str | None, Header(pattern=_EVENT_ID), WithJsonSchema({"type": "string", "pattern": _EVENT_ID})
]


EventLimit = Annotated[int | None, Query(ge=1), WithJsonSchema({"type": "integer", "minimum": 1})]
PageLimit = Annotated[
    int | None,
    Query(ge=1, le=10_000),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 10_000}),
]
ZipLimit = Annotated[
    int | None,
    Query(ge=1, le=1_000_000),
    WithJsonSchema({"type": "integer", "minimum": 1, "maximum": 1_000_000}),
]


_ERRORS = {
    401: "Missing or unknown API key",
    402: "The pool's spend limit is reached",
    403: "The plan does not include Environment Pools, or the pool's policy forbids this",
    404: "No such resource (in this organisation)",
    409: "Conflicts with the current state (exists already, still in use, key reused)",
    422: "The request is not valid: `details` names the fields",
    429: "The pool's queue is full: retry after `Retry-After` seconds",
    503: "`resource_exhausted`: the backend ran out of open files; retry after `Retry-After`",
    507: "`disk_full`: the backend's data folder is below its free-space floor; the message "
    "says where and how much is needed",
}
# What a create may meet on the backend's machine (state/exhaustion.py).
_EXHAUSTED = (503, 507)
# One event of the stream as an SSE parser hands it over (CONTRACT §5): heartbeats have
# no id; every other event's id is its seq, and its data the JSON of an EventEnvelope.
_SSE_EVENT: dict[str, Any] = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string"},
        "id": {"type": "string", "pattern": "^[0-9]+$"},
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {"$ref": "#/components/schemas/EventEnvelope"},
        },
    },
}
_POOLS = (401, 403, 422)
_ACCOUNT = (401, 422)


def service(request: Request) -> Service:
    svc: Service = request.app.state.service
    return svc


Svc = Annotated[Service, Depends(service)]


def doc(
    answer: Any, *errors: int, status: int = 200, media: str | None = None, **more: Any
) -> dict[str, Any]:
    """Route options documenting the answer (a model, or a media type) and the errors."""
    ok: dict[str, Any] = {"description": "OK" if status < 300 else "Created"}
    if media is not None:
        schema = _SSE_EVENT if media == "text/event-stream" else {"type": "string"}
        ok["content"] = {media: {"schema": schema}}
    elif answer is not None:
        ok["model"] = answer
    else:
        ok["description"] = "Done, no content"
    responses: dict[int | str, dict[str, Any]] = {status: ok}
    for code in sorted(errors):
        responses[code] = {"model": ErrorResponse, "description": _ERRORS[code]}
    for code, extra in more.pop("extra_responses", {}).items():
        responses[code] = extra
    return {"status_code": status, "response_model": None, "responses": responses, **more}


def _json(status: int, body: Any) -> JSONResponse:
    return EncodedJSONResponse(body, status_code=status)


def _sent(body: BaseModel) -> dict[str, Any]:
    """The fields the caller sent (explicit nulls included), as JSON values."""
    return body.model_dump(mode="json", exclude_unset=True, exclude_none=False)


# --- rollouts -------------------------------------------------------------------------------


@pools_router.post(
    "/rollouts",
    tags=["rollouts"],
    **doc(
        Rollout,
        *_POOLS,
        402,
        404,
        409,
        429,
        *_EXHAUSTED,
        status=201,
        extra_responses={
            200: {"model": RolloutDryRun, "description": "With dry_run: nothing created"}
        },
    ),
)
def create_rollout(
    org: PoolsOrg, svc: Svc, body: LocalRolloutRequest, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Create a rollout (or, with ``dry_run``, validate and route it without creating)."""
    request = _sent(body)
    status, result = svc.idempotent(
        org, "rollouts", idempotency_key, request, lambda: svc.create_rollout(org, request)
    )
    return _json(status, result)


@pools_router.post("/rollouts:validate", tags=["rollouts"], **doc(RolloutValidation, *_POOLS))
def validate_rollout(org: PoolsOrg, svc: Svc, body: dict[str, Any]) -> dict[str, Any]:
    """Check any object as a RolloutRequestV1 and report the pool it would be routed to;
    a request that is not valid is answered 200 with ``valid: false`` and the error."""
    return svc.validate(org, body)


@pools_router.post(
    "/rollouts/batch", tags=["rollouts"], **doc(RolloutBatchResult, *_POOLS, 409, *_EXHAUSTED)
)
def create_batch(
    org: PoolsOrg, svc: Svc, body: RolloutBatchRequest, idempotency_key: IdempotencyKey = None
) -> JSONResponse:
    """Create many rollouts: ``{"rollouts": [...], "errors": [{index, error}]}``."""
    request = _sent(body)
    status, result = svc.idempotent(
        org, "rollouts/batch", idempotency_key, request, lambda: svc.batch(org, request)
    )
    return _json(status, result)


@pools_router.get("/rollouts", tags=["rollouts"], **doc(RolloutPage, *_POOLS))
def list_rollouts(
    org: PoolsOrg,
    svc: Svc,
    cursor: Cursor = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    status: Status = None,
    pool_id: Text = None,
    dataset: Text = None,
    task_id: Text = None,
    created_after: DateTime = None,
    created_before: DateTime = None,
) -> dict[str, Any]:
    """Rollouts of the organisation, newest first, paged by ``next_cursor``."""
    try:
        after = parse_time(created_after) if created_after is not None else None
        before = parse_time(created_before) if created_before is not None else None
    except ValueError as exc:
        raise ApiError(422, "validation_error", f"invalid timestamp: {exc}") from None
    return svc.list_rollouts(
        org,
        cursor=cursor,
        limit=limit,
        status=status.value if status else None,
        pool_id=pool_id,
        dataset=dataset,
        task_id=task_id,
        created_after=after,
        created_before=before,
    )


@pools_router.get("/rollouts/{rollout_id}", tags=["rollouts"], **doc(Rollout, *_POOLS, 404))
def get_rollout(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    return svc.get_rollout(org, rollout_id)


@pools_router.get(
    "/rollouts/{rollout_id}/summary", tags=["rollouts"], **doc(RolloutSummary, *_POOLS, 404)
)
def rollout_summary(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    return svc.summary(org, rollout_id)


@pools_router.get(
    "/rollouts/{rollout_id}/usage", tags=["rollouts"], **doc(UsageSnapshot, *_POOLS, 404)
)
def rollout_usage(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    return svc.usage(org, rollout_id)


@pools_router.get(
    "/rollouts/{rollout_id}/support_bundle",
    tags=["rollouts"],
    **doc(SupportBundle, *_POOLS, 404),
)
def support_bundle(org: PoolsOrg, svc: Svc, rollout_id: str, request: Request) -> dict[str, Any]:
    return svc.support_bundle(org, rollout_id, str(request.base_url))


@pools_router.post(
    "/rollouts/{rollout_id}/replay",
    tags=["rollouts"],
    **doc(Rollout, *_POOLS, 402, 404, 409, 429, *_EXHAUSTED, status=201),
)
def replay_rollout(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    body: ReplayRequest | None = None,
    idempotency_key: IdempotencyKey = None,
) -> JSONResponse:
    """Run the rollout's request again, with ``overrides`` deep-merged into it."""
    payload = _sent(body) if body is not None else {}
    status, result = svc.idempotent(
        org,
        f"rollouts/{rollout_id}/replay",
        idempotency_key,
        payload,
        lambda: svc.replay(org, rollout_id, payload),
    )
    return _json(status, result)


@pools_router.post("/rollouts/{rollout_id}/cancel", tags=["rollouts"], **doc(Rollout, *_POOLS, 404))
def cancel_rollout(org: PoolsOrg, svc: Svc, rollout_id: str) -> dict[str, Any]:
    """Cancel at any stage; a finished rollout is returned unchanged."""
    return svc.cancel(org, rollout_id)


def _start_seq(cursor: str | None, last_event_id: str | None) -> int:
    value = cursor if cursor not in (None, "") else last_event_id
    return int(value) if value else 0


@pools_router.get(
    "/rollouts/{rollout_id}/events",
    tags=["events"],
    response_class=StreamingResponse,
    **doc(None, *_POOLS, 404, media="text/event-stream"),
)
async def rollout_events(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    since: DateTime = None,
    cursor: EventCursor = None,
    limit: EventLimit = None,
    last_event_id: LastEventId = None,
) -> StreamingResponse:
    """Server-sent events: history after ``cursor``/``Last-Event-ID``, then live events;
    the stream ends after the terminal lifecycle event."""
    await to_thread.run_sync(svc.get_rollout, org, rollout_id)
    start = _start_seq(cursor, last_event_id)
    try:
        since_norm = parse_time(since) if since is not None else None
    except ValueError:
        raise ApiError(422, "validation_error", f"since {since!r} is not a timestamp") from None
    ctx = svc.ctx
    heartbeat = ctx.settings.heartbeat_sec
    batch_size = ctx.settings.event_batch

    def finished(last_seq: int) -> bool:
        kept = ctx.ends.pending(rollout_id)
        if kept is not None and kept.seq <= last_seq:
            return True
        last = ctx.store.last_event(rollout_id)
        if last is None or last["event"] != "lifecycle":
            return False
        if str(last["data"].get("status", "")).lower() not in TERMINAL_STATUSES:
            return False
        return bool(last["seq"] <= last_seq or (since_norm and last["timestamp"] <= since_norm))

    def read(after: int, wanted: int) -> list[Frame]:
        rows = ctx.store.event_frames_after(rollout_id, after, limit=wanted, since=since_norm)
        if len(rows) < wanted:  # an end the store has not taken yet comes last
            kept = ctx.ends.frame_after(rollout_id, rows[-1][0] if rows else after)
            if kept is not None:
                rows.append(kept)
        return rows

    async def stream() -> AsyncIterator[bytes]:
        # Frames come encoded (from the bus's cache or from SQLite) and leave as one
        # message per batch: no JSON round trip and no ASGI send per event.
        yield b"retry: 1000\n\n"
        last, sent = start, 0
        with ctx.bus.subscribe(rollout_id) as flag:
            while True:
                flag.clear()
                wanted = batch_size if limit is None else min(batch_size, limit - sent)
                batch = [] if since_norm else ctx.bus.recent_after(rollout_id, last, wanted)
                if not batch:
                    batch = await to_thread.run_sync(read, last, wanted)
                end = next((i + 1 for i, row in enumerate(batch) if row[1]), len(batch))
                if batch:
                    yield b"".join([row[2] for row in batch[:end]])
                    last, sent = batch[end - 1][0], sent + end
                    if end < len(batch) or batch[end - 1][1]:
                        return  # the terminal lifecycle event went out
                    if limit is not None and sent >= limit:
                        return
                if len(batch) == wanted:
                    continue
                # Nothing more now: ended already (a cursor at its end, or ``since`` after
                # it)? A batch that was sent ends with a terminal event or there is more.
                if not batch and await to_thread.run_sync(finished, last):
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


@pools_router.get(
    "/rollouts/{rollout_id}/artifacts", tags=["artifacts"], **doc(ArtifactPage, *_POOLS, 404)
)
def list_artifacts(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    request: Request,
    prefix: Text = None,
    cursor: Text = None,
    limit: PageLimit = None,
) -> dict[str, Any]:
    return svc.artifact_manifest(org, rollout_id, str(request.base_url), prefix, cursor, limit)


@pools_router.get(
    "/rollouts/{rollout_id}/artifacts.zip",
    tags=["artifacts"],
    response_class=StreamingResponse,
    **doc(None, *_POOLS, 404, media="application/zip"),
)
def artifacts_zip(
    org: PoolsOrg,
    svc: Svc,
    rollout_id: str,
    prefix: Text = None,
    limit: ZipLimit = None,
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
    **doc(None, *_POOLS, 404, media="*/*"),
)
def fetch_artifact(org: PoolsOrg, svc: Svc, rollout_id: str, path: str) -> StreamingResponse:
    """One artifact's bytes (its own content type); paths outside the rollout are refused."""
    svc.get_rollout(org, rollout_id)
    trial = svc.ctx.trial_dir(rollout_id)
    try:
        relative, _ = resolve_artifact(trial, path)
    except ArtifactPathError as exc:  # names no artifact of this rollout
        raise ApiError(404, "not_found", str(exc)) from None
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


@pools_router.get("/pools", tags=["pools"], **doc(list[Pool], *_POOLS))
def list_pools(
    org: PoolsOrg,
    svc: Svc,
    type: Text = None,
    tag: Text = None,
) -> list[dict[str, Any]]:
    """Pools as a bare JSON array."""
    return svc.pools.list_pools(org, type, tag)


@pools_router.post("/pools", tags=["pools"], **doc(Pool, *_POOLS, 409, status=201))
def create_pool(org: PoolsOrg, svc: Svc, body: LocalPoolCreate) -> dict[str, Any]:
    return svc.pools.create_pool(org, _sent(body))


@pools_router.get("/pools/{pool_id}", tags=["pools"], **doc(Pool, *_POOLS, 404))
def get_pool(org: PoolsOrg, svc: Svc, pool_id: str) -> dict[str, Any]:
    return svc.pools.get_pool(org, pool_id)


@pools_router.put("/pools/{pool_id}", tags=["pools"], **doc(Pool, *_POOLS, 404, 409))
def update_pool(org: PoolsOrg, svc: Svc, pool_id: str, body: LocalPoolUpdate) -> dict[str, Any]:
    """Change the fields given (``null`` clears one); ``tasks``, if given, replaces them all."""
    return svc.pools.update_pool(org, pool_id, _sent(body))


@pools_router.delete("/pools/{pool_id}", tags=["pools"], **doc(None, *_POOLS, 404, 409, status=204))
def delete_pool(org: PoolsOrg, svc: Svc, pool_id: str) -> Response:
    svc.pools.delete_pool(org, pool_id)
    return Response(status_code=204)


@pools_router.get("/pools/{pool_id}/metrics", tags=["pools"], **doc(PoolMetrics, *_POOLS, 404))
def pool_metrics(org: PoolsOrg, svc: Svc, pool_id: str) -> dict[str, Any]:
    return svc.pools.pool_metrics(org, pool_id)


@pools_router.get(
    "/pools/{pool_id}/tasks", tags=["tasks"], **doc(list[PoolTaskInstance], *_POOLS, 404)
)
def list_tasks(org: PoolsOrg, svc: Svc, pool_id: str) -> list[dict[str, Any]]:
    """Tasks of a pool as a bare JSON array."""
    return svc.pools.list_tasks(org, pool_id)


@pools_router.post(
    "/pools/{pool_id}/tasks",
    tags=["tasks"],
    **doc(PoolTaskInstance, *_POOLS, 404, 409, status=201),
)
def create_task(org: PoolsOrg, svc: Svc, pool_id: str, body: LocalPoolTask) -> dict[str, Any]:
    return svc.pools.create_task(org, pool_id, _sent(body))


@pools_router.put(
    "/pools/{pool_id}/tasks/{task_id}",
    tags=["tasks"],
    **doc(PoolTaskInstance, *_POOLS, 404, 409),
)
def update_task(
    org: PoolsOrg, svc: Svc, pool_id: str, task_id: str, body: LocalPoolTaskUpdate
) -> dict[str, Any]:
    """Replace the task's definition: what the body leaves out is gone."""
    return svc.pools.update_task(org, pool_id, task_id, _sent(body))


@pools_router.delete(
    "/pools/{pool_id}/tasks/{task_id}", tags=["tasks"], **doc(None, *_POOLS, 404, status=204)
)
def delete_task(org: PoolsOrg, svc: Svc, pool_id: str, task_id: str) -> Response:
    svc.pools.delete_task(org, pool_id, task_id)
    return Response(status_code=204)


# --- queue, capabilities, schemas -----------------------------------------------------------


@pools_router.get("/queue/status", tags=["queue"], **doc(QueueStatus, 401, 403))
def queue_status(org: PoolsOrg, svc: Svc) -> dict[str, Any]:
    return svc.queue_status(org)


@pools_router.get("/capabilities", tags=["capabilities"], **doc(Capabilities, 401))
def capabilities(org: AnyOrg, svc: Svc) -> dict[str, Any]:
    return svc.capabilities()


@pools_router.get("/openapi.json", tags=["capabilities"], include_in_schema=False)
def openapi_document(request: Request) -> dict[str, Any]:
    document: dict[str, Any] = request.app.openapi()
    return document


@pools_router.get("/schema.json", tags=["capabilities"], **doc(SchemaDocument))
def schema_json(request: Request) -> dict[str, Any]:
    """JSON Schemas of the wire models (no key needed)."""
    schemas: dict[str, Any] = request.app.state.model_schemas
    return schemas


# --- credentials and account (fixed paths) --------------------------------------------------


@account_router.get("/api/v1/me", tags=["account"], **doc(Account, 401))
def me(org: AnyOrg) -> dict[str, Any]:
    return {
        "org_id": org.org_id,
        "org_name": org.name,
        "plan": org.plan,
        "feature_flags": org.feature_flags,
        "environment_pools": org.has_access,
    }


@account_router.post(
    "/api/v1/credentials", tags=["credentials"], **doc(Credential, *_ACCOUNT, 409, status=201)
)
def store_credential(org: AnyOrg, svc: Svc, body: CredentialCreate) -> dict[str, Any]:
    """Store a secret for the agents (as an environment variable); it is never returned."""
    name = body.credential_name
    if any(c["credential_name"] == name for c in svc.store.list_credentials(org.org_id)):
        raise ApiError(
            409, "conflict", f"a credential named {name!r} already exists; rotate it instead"
        )
    return svc.store.insert_credential(
        org.org_id, name, body.credential_type, body.credential_value, body.metadata or {}
    )


@account_router.get("/api/v1/credentials", tags=["credentials"], **doc(list[Credential], 401))
def list_credentials(org: AnyOrg, svc: Svc) -> list[dict[str, Any]]:
    """Credentials as a bare JSON array; values are never returned."""
    return svc.store.list_credentials(org.org_id)


@account_router.put(
    "/api/v1/credentials/{credential_id}",
    tags=["credentials"],
    **doc(Credential, *_ACCOUNT, 404),
)
def rotate_credential(
    org: AnyOrg, svc: Svc, credential_id: str, body: CredentialRotate
) -> dict[str, Any]:
    if not svc.store.rotate_credential(org.org_id, credential_id, body.credential_value):
        raise ApiError(404, "not_found", f"credential {credential_id!r} not found")
    found = svc.store.get_credential(org.org_id, credential_id)
    assert found is not None
    return found


@account_router.delete(
    "/api/v1/credentials/{credential_id}",
    tags=["credentials"],
    **doc(None, *_ACCOUNT, 404, status=204),
)
def delete_credential(org: AnyOrg, svc: Svc, credential_id: str) -> Response:
    if not svc.store.deactivate_credential(org.org_id, credential_id):
        raise ApiError(404, "not_found", f"credential {credential_id!r} not found")
    return Response(status_code=204)


class AgentCheckRequest(BaseModel):
    agent: str | None = None
    """One agent (default: every agent that calls a provider)."""
    model_id: str | None = None
    """The model to try (default: each agent's preset)."""


@account_router.post(CHECK_PATH, tags=["agents"], include_in_schema=False)
def check_agent_providers(org: AnyOrg, svc: Svc, body: AgentCheckRequest) -> dict[str, Any]:
    """Each agent's provider, tried with one real model call through the stored key and
    base URL (local backend only: the path is outside the hosted API's)."""
    return agents_check(svc.ctx, org.org_id, body.agent, body.model_id)


@account_router.get("/healthz", include_in_schema=False)
def healthz(request: Request) -> dict[str, Any]:
    svc: Service = request.app.state.service
    report = svc.ctx.sandbox_report()
    return {
        "status": "ok",
        "version": __version__,
        "sandbox": svc.ctx.driver.name,
        "sandbox_detail": {k: v for k, v in report.items() if k != "driver"},
        "scheduling": svc.scheduling_summary(),
        "limits": svc.ctx.settings.limits.describe(),
    }
