"""Every documented Environment Pools function, with the official SDK's signatures.

Each function resolves the backend, key and API version (``settings.py``), sends one
logical request through the shared ``HTTPSession`` (retries, typed errors) and
returns what the SDK returns: a dict, a list, bytes or None. Every function also
takes ``session=`` so a client object can route calls through its own session.
"""

from __future__ import annotations

import copy
import json as jsonlib
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import quote

import httpx
import pydantic

from envpools_cli.models import (
    HARNESS_ALIASES,
    PRESET_MODELS,
    TEMPLATE_DEFAULTS,
    PoolTaskInstance,
    PoolTemplate,
    RolloutRequestV1,
    check_agent_model,
    model_id_problem,
)

from .errors import (
    APIError,
    InvalidRequestError,
    InvalidResponseError,
    PlanGatingError,
    TransportError,
)
from .http import HTTPSession, default_session
from .settings import (
    api_url,
    fixed_url,
    quote_segment,
    resolve_api_key,
    resolve_backend_base,
)
from .sse import EventStream, GapPolicy, ReconnectPolicy

__all__ = [
    "cancel_rollout",
    "check_plan_access",
    "clear_capabilities_cache",
    "create_pool",
    "create_pool_task",
    "create_rollout",
    "create_rollouts_batch",
    "create_rollouts_concurrently",
    "delete_credential",
    "delete_pool",
    "delete_pool_task",
    "download_artifacts_zip",
    "fetch_artifact",
    "get_account",
    "get_capabilities",
    "get_openapi_schema",
    "get_pool",
    "get_pool_metrics",
    "get_queue_status",
    "get_rollout",
    "get_rollout_summary",
    "get_rollout_support_bundle",
    "get_rollout_usage",
    "get_schema_json",
    "list_credentials",
    "list_pool_tasks",
    "list_pools",
    "list_rollout_artifacts",
    "list_rollouts",
    "new_idempotency_key",
    "open_artifact",
    "open_artifacts_zip",
    "replay_rollout",
    "rotate_credential",
    "store_credential",
    "stream_rollout_events",
    "stream_rollout_events_resilient",
    "update_pool",
    "update_pool_task",
    "validate_rollout",
]

_CREDENTIALS = "api/v1/credentials"
_ME = "api/v1/me"
_PLANS_WITH_ACCESS = frozenset({"pro", "team", "enterprise", "demo"})


# --- plumbing ---------------------------------------------------------------------------


def new_idempotency_key() -> str:
    return f"envpools-{uuid.uuid4()}"


def _params(**values: Any) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


def _send(
    method: str,
    suffix: str,
    *,
    backend_base: str | None,
    api_key: str | None,
    api_version: str | None = None,
    timeout: float | None,
    session: HTTPSession | None,
    fixed: bool = False,
    params: Mapping[str, str] | None = None,
    json: Any = None,
    headers: Mapping[str, str] | None = None,
    idempotent: bool | None = None,
) -> httpx.Response:
    base = resolve_backend_base(backend_base)
    key = resolve_api_key(api_key)
    url = fixed_url(base, suffix) if fixed else api_url(base, suffix, api_version=api_version)
    return (session or default_session()).request(
        method,
        url,
        api_key=key,
        json=json,
        params=params or None,
        headers=headers,
        timeout=timeout,
        idempotent=idempotent,
    )


def _decode(response: httpx.Response) -> Any:
    if not response.content:
        return None
    try:
        return response.json()
    except ValueError:
        kind = response.headers.get("content-type", "no content type").split(";")[0]
        raise InvalidResponseError(
            f"{response.request.method} {response.request.url} answered "
            f"{response.status_code} with {kind}, not JSON"
        ) from None


def _object(response: httpx.Response) -> dict[str, Any]:
    data = _decode(response)
    return data if isinstance(data, dict) else {}


def _array(response: httpx.Response) -> list[dict[str, Any]]:
    data = _decode(response)
    return data if isinstance(data, list) else []


def _payload(request: Any) -> dict[str, Any]:
    """A JSON-ready copy of a model or dict; the caller's object is never changed."""
    if isinstance(request, pydantic.BaseModel):
        payload = request.model_dump(mode="json", exclude_none=True)
    elif isinstance(request, Mapping):
        payload = copy.deepcopy(dict(request))
    else:
        raise TypeError("request must be a dict or a pydantic model")
    agent = payload.get("agent")
    if isinstance(agent, dict):
        if "harness" not in agent and "kind" in agent:
            agent["harness"] = agent["kind"]
        if agent.get("harness") in HARNESS_ALIASES:
            agent["harness"] = agent["kind"] = HARNESS_ALIASES[agent["harness"]]
        if "kind" not in agent and "harness" in agent:
            agent["kind"] = agent["harness"]
    return payload


# --- client-side validation ---------------------------------------------------------------

_capabilities_cache: dict[str, dict[str, Any]] = {}
_capabilities_lock = threading.Lock()


def clear_capabilities_cache() -> None:
    """Forget the backends' capabilities learnt while validating requests."""
    with _capabilities_lock:
        _capabilities_cache.clear()


def _backend_capabilities(
    backend_base: str | None,
    api_key: str | None,
    api_version: str | None,
    session: HTTPSession | None,
) -> dict[str, Any] | None:
    """The backend's capabilities, fetched once per process, or None if unknown."""
    cache_key = f"{resolve_backend_base(backend_base)}|{api_version or ''}"
    with _capabilities_lock:
        caps = _capabilities_cache.get(cache_key)
    if caps is None:
        try:
            caps = get_capabilities(
                backend_base=backend_base,
                api_key=api_key,
                api_version=api_version,
                session=session,
            )
        except (APIError, TransportError):
            return None
        with _capabilities_lock:
            _capabilities_cache[cache_key] = caps
    return caps


def _backend_agents(
    backend_base: str | None,
    api_key: str | None,
    api_version: str | None,
    session: HTTPSession | None,
) -> dict[str, list[str] | None] | None:
    """Harness -> allowed models (None: any) the backend offers, or None if unknown."""
    caps = _backend_capabilities(backend_base, api_key, api_version, session)
    if caps is None:
        return None
    agents: dict[str, list[str] | None] = {}
    models = caps.get("models") if isinstance(caps.get("models"), dict) else {}
    for entry in caps.get("agents") or []:
        name = entry.get("name") if isinstance(entry, dict) else entry
        if not isinstance(name, str):
            continue
        if isinstance(entry, dict) and entry.get("available") is False:
            continue
        allowed = entry.get("models") if isinstance(entry, dict) else None
        if allowed is None and isinstance(models, dict):
            allowed = models.get(name)
        agents[name] = list(allowed) if isinstance(allowed, list) and allowed else None
    return agents


def _takes_any_model(
    harness: str,
    backend_base: str | None,
    api_key: str | None,
    api_version: str | None,
    session: HTTPSession | None,
) -> bool:
    """Whether the backend's capabilities say it accepts any model id for ``harness``."""
    caps = _backend_capabilities(backend_base, api_key, api_version, session) or {}
    return any(
        isinstance(entry, dict)
        and entry.get("name") == harness
        and entry.get("accepts_any_model") is True
        for entry in caps.get("agents") or []
    )


def _format_pydantic(exc: pydantic.ValidationError) -> list[str]:
    messages = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        messages.append(f"{where}: {text}" if where else text)
    return messages


def validate_rollout_request(
    payload: Mapping[str, Any],
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> None:
    """Raise InvalidRequestError if the server would certainly reject ``payload``."""
    try:
        request = RolloutRequestV1.model_validate(payload)
    except pydantic.ValidationError as exc:
        errors = _format_pydantic(exc)
        message = "invalid rollout request: " + "; ".join(errors)
        raise InvalidRequestError(message, errors=errors) from None
    harness, model_id = request.agent.harness, request.agent.model_id
    if harness in PRESET_MODELS:
        try:
            check_agent_model(harness, model_id)
        except ValueError as exc:
            # Beyond the presets' lists, the backend's capabilities decide: a gateway's
            # model ids are welcome where the backend says it takes any model.
            if not _takes_any_model(harness, backend_base, api_key, api_version, session):
                raise InvalidRequestError(str(exc)) from None
            if model_id is not None and (problem := model_id_problem(model_id)):
                raise InvalidRequestError(problem) from None
        return
    offered = _backend_agents(backend_base, api_key, api_version, session)
    if offered is None:
        return  # capabilities unknown: let the server decide
    if harness not in offered:
        available = sorted(set(offered) | set(PRESET_MODELS))
        raise InvalidRequestError(f"Unknown harness {harness!r}. Available harnesses: {available}")
    allowed = offered[harness]
    if model_id is not None and allowed is not None and model_id not in allowed:
        raise InvalidRequestError(
            f"Model {model_id!r} is not allowed for harness {harness!r}. "
            f"Allowed models: {sorted(allowed)}"
        )


# --- rollouts -----------------------------------------------------------------------------


def create_rollout(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    request: dict[str, Any] | RolloutRequestV1,
    idempotency_key: str | None = None,
    dry_run: bool | None = None,
    timeout: float = 120.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Create a rollout. Retries reuse one Idempotency-Key, so it is created at most once."""
    payload = _payload(request)
    validate_rollout_request(
        payload,
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        session=session,
    )
    if dry_run is not None:
        payload["dry_run"] = dry_run
    response = _send(
        "POST",
        "rollouts",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=payload,
        headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
    )
    return _object(response)


def validate_rollout(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    request: dict[str, Any] | RolloutRequestV1,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Ask the server whether a request is valid and where it would be routed."""
    response = _send(
        "POST",
        "rollouts:validate",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=_payload(request),
        idempotent=True,
    )
    return _object(response)


def list_rollouts(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    status: str | None = None,
    pool_id: str | None = None,
    dataset: str | None = None,
    task_id: str | None = None,
    created_after: str | None = None,
    created_before: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """List rollouts, newest first: ``{"rollouts": [...], "next_cursor": ...}``."""
    response = _send(
        "GET",
        "rollouts",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        params=_params(
            cursor=cursor,
            limit=limit,
            status=status,
            pool_id=pool_id,
            dataset=dataset,
            task_id=task_id,
            created_after=created_after,
            created_before=created_before,
        ),
    )
    return _object(response)


def create_rollouts_batch(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    requests: Sequence[dict[str, Any] | RolloutRequestV1],
    metadata: dict[str, Any] | None = None,
    idempotency_key: str | None = None,
    timeout: float = 120.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Create several rollouts in one request: ``{"rollouts": [...], "errors": [...]}``."""
    payloads = [_payload(request) for request in requests]
    for index, payload in enumerate(payloads):
        try:
            validate_rollout_request(
                payload,
                backend_base=backend_base,
                api_key=api_key,
                api_version=api_version,
                session=session,
            )
        except InvalidRequestError as exc:
            raise InvalidRequestError(f"requests[{index}]: {exc}", errors=exc.errors) from None
    body: dict[str, Any] = {"requests": payloads}
    if metadata is not None:
        body["metadata"] = copy.deepcopy(metadata)
    response = _send(
        "POST",
        "rollouts/batch",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=body,
        headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
    )
    return _object(response)


def create_rollouts_concurrently(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    requests: Sequence[dict[str, Any] | RolloutRequestV1],
    idempotency_key: str | None = None,
    max_workers: int = 8,
    timeout: float = 120.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Like the batch endpoint, with one create per request, at most ``max_workers`` at once.

    For backends without ``rollouts/batch``. Each request gets its own Idempotency-Key
    derived from ``idempotency_key``, so running the whole call again creates nothing twice.
    Returns ``{"rollouts": [...], "errors": [{"index", "error"}]}`` in request order.
    """
    from concurrent.futures import ThreadPoolExecutor

    base_key = idempotency_key or new_idempotency_key()

    def one(index: int) -> tuple[int, dict[str, Any] | None, dict[str, Any] | None]:
        try:
            created = create_rollout(
                backend_base=backend_base,
                api_key=api_key,
                request=requests[index],
                idempotency_key=f"{base_key}-{index}",
                timeout=timeout,
                api_version=api_version,
                session=session,
            )
        except (APIError, TransportError, InvalidRequestError) as exc:
            code = getattr(exc, "code", type(exc).__name__)
            return index, None, {"code": code, "message": str(exc)}
        return index, created, None

    with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(requests) or 1))) as pool:
        results = sorted(pool.map(one, range(len(requests))), key=lambda r: r[0])
    return {
        "rollouts": [created for _, created, _ in results if created is not None],
        "errors": [{"index": i, "error": error} for i, _, error in results if error],
    }


def _rollout_get(
    rollout_id: str,
    tail: str,
    *,
    backend_base: str | None,
    api_key: str | None,
    timeout: float,
    api_version: str | None,
    session: HTTPSession | None,
) -> dict[str, Any]:
    response = _send(
        "GET",
        f"rollouts/{quote_segment(rollout_id)}{tail}",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )
    return _object(response)


def get_rollout(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """A rollout's current state."""
    return _rollout_get(
        rollout_id,
        "",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


def get_rollout_summary(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Latest status, reward and last event of a rollout."""
    return _rollout_get(
        rollout_id,
        "/summary",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


def get_rollout_usage(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Usage and cost (UsageSnapshot) of a rollout."""
    return _rollout_get(
        rollout_id,
        "/usage",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


def get_rollout_support_bundle(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Request, routing, events, artifacts and usage of a rollout, secrets redacted."""
    return _rollout_get(
        rollout_id,
        "/support_bundle",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


def replay_rollout(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    overrides: dict[str, Any] | None = None,
    metadata: dict[str, Any] | None = None,
    timeout: float = 120.0,
    api_version: str | None = None,
    idempotency_key: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Run a rollout's request again (with ``overrides``); returns the new rollout."""
    body: dict[str, Any] = {}
    if overrides is not None:
        body["overrides"] = copy.deepcopy(overrides)
    if metadata is not None:
        body["metadata"] = copy.deepcopy(metadata)
    response = _send(
        "POST",
        f"rollouts/{quote_segment(rollout_id)}/replay",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=body,
        headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
    )
    return _object(response)


def cancel_rollout(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Cancel a rollout; cancelling a finished one returns it unchanged."""
    response = _send(
        "POST",
        f"rollouts/{quote_segment(rollout_id)}/cancel",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        idempotent=True,
    )
    return _object(response)


def stream_rollout_events(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    since: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    timeout: float | None = None,
    api_version: str | None = None,
    auto_reconnect: bool = False,
    max_retries: int = 5,
    backoff_base: float = 1.0,
    backoff_max: float = 30.0,
    on_gap: GapPolicy = "raise",
    on_reconnect: Callable[[int, float, Exception], None] | None = None,
    reconnect: ReconnectPolicy | None = None,
    session: HTTPSession | None = None,
) -> EventStream:
    """Stream a rollout's events (SSE) as EventEnvelope-shaped dicts.

    ``cursor`` resumes after that event id; ``timeout`` is the read timeout (default
    45 s, three heartbeats). With ``auto_reconnect`` the stream resumes after drops and
    early closes under ``reconnect`` (default: a ``ReconnectPolicy`` made of
    ``max_retries``, ``backoff_base`` and ``backoff_max``); without it any interruption
    raises TransportError rather than ending the iteration as if the rollout were over.
    """
    base = resolve_backend_base(backend_base)
    url = api_url(base, f"rollouts/{quote_segment(rollout_id)}/events", api_version=api_version)
    return EventStream(
        session or default_session(),
        url,
        api_key=resolve_api_key(api_key),
        since=since,
        cursor=cursor,
        limit=limit,
        read_timeout=timeout,
        auto_reconnect=auto_reconnect,
        policy=reconnect
        or ReconnectPolicy(
            max_retries=max_retries, backoff_base=backoff_base, backoff_max=backoff_max
        ),
        on_gap=on_gap,
        on_reconnect=on_reconnect,
    )


def stream_rollout_events_resilient(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    since: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    timeout: float | None = None,
    api_version: str | None = None,
    max_retries: int = 5,
    backoff_base: float = 1.0,
    backoff_max: float = 30.0,
    session: HTTPSession | None = None,
) -> EventStream:
    """``stream_rollout_events`` with ``auto_reconnect=True``."""
    return stream_rollout_events(
        rollout_id,
        backend_base=backend_base,
        api_key=api_key,
        since=since,
        cursor=cursor,
        limit=limit,
        timeout=timeout,
        api_version=api_version,
        auto_reconnect=True,
        max_retries=max_retries,
        backoff_base=backoff_base,
        backoff_max=backoff_max,
        session=session,
    )


# --- artifacts ----------------------------------------------------------------------------


def _artifact_suffix(rollout_id: str, path: str) -> str:
    return f"rollouts/{quote_segment(rollout_id)}/artifacts/{quote(path.lstrip('/'), safe='/')}"


def list_rollout_artifacts(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    prefix: str | None = None,
    cursor: str | None = None,
    limit: int | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """The artifact manifest of a rollout (paged with ``next_cursor``)."""
    response = _send(
        "GET",
        f"rollouts/{quote_segment(rollout_id)}/artifacts",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        params=_params(prefix=prefix, cursor=cursor, limit=limit),
    )
    return _object(response)


def _one_path(artifact_path: str | None, path: str | None) -> str:
    """The product page says ``artifact_path``, SDK 0.9.6 says ``path``: either, not both."""
    if artifact_path is not None and path is not None and artifact_path != path:
        raise TypeError("give artifact_path or path, not both")
    chosen = artifact_path if artifact_path is not None else path
    if chosen is None:
        raise TypeError("artifact_path is required")
    return chosen


def fetch_artifact(
    rollout_id: str,
    artifact_path: str | None = None,
    *,
    path: str | None = None,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> bytes:
    """The bytes of one artifact (``artifact_path``, or ``path=`` as SDK 0.9.6 spells it)."""
    response = _send(
        "GET",
        _artifact_suffix(rollout_id, _one_path(artifact_path, path)),
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )
    return response.content


def download_artifacts_zip(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
    timeout: float = 120.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> bytes:
    """All artifacts of a rollout (under ``prefix``) as zip bytes."""
    response = _send(
        "GET",
        f"rollouts/{quote_segment(rollout_id)}/artifacts.zip",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        params=_params(prefix=prefix, limit=limit),
    )
    return response.content


@contextmanager
def _open_stream(
    suffix: str,
    *,
    backend_base: str | None,
    api_key: str | None,
    api_version: str | None,
    timeout: float,
    session: HTTPSession | None,
    params: Mapping[str, str] | None = None,
) -> Iterator[httpx.Response]:
    base = resolve_backend_base(backend_base)
    with (session or default_session()).stream(
        "GET",
        api_url(base, suffix, api_version=api_version),
        api_key=resolve_api_key(api_key),
        params=params or None,
        timeout=timeout,
    ) as response:
        yield response


def open_artifact(
    rollout_id: str,
    artifact_path: str | None = None,
    *,
    path: str | None = None,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 60.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> Any:
    """Context manager: the streaming response of one artifact (for large files)."""
    return _open_stream(
        _artifact_suffix(rollout_id, _one_path(artifact_path, path)),
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )


def open_artifacts_zip(
    rollout_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    prefix: str | None = None,
    limit: int | None = None,
    timeout: float = 120.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> Any:
    """Context manager: the streaming response of the artifacts zip."""
    return _open_stream(
        f"rollouts/{quote_segment(rollout_id)}/artifacts.zip",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        params=_params(prefix=prefix, limit=limit),
    )


# --- pools and pool tasks -----------------------------------------------------------------


def list_pools(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    pool_type: str | None = None,
    tag: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> list[dict[str, Any]]:
    """Pools of the organisation, filtered by ``pool_type`` and ``tag``."""
    response = _send(
        "GET",
        "pools",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        params=_params(type=pool_type, tag=tag),
    )
    return _array(response)


def get_pool(
    pool_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    response = _send(
        "GET",
        f"pools/{quote_segment(pool_id)}",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )
    return _object(response)


def _template_tasks(tasks: Sequence[Any], template: str | None) -> list[dict[str, Any]]:
    normalized = []
    for task in tasks:
        payload = _payload(task)
        if template:
            config = payload.get("config")
            merged = dict(config) if isinstance(config, dict) else {}
            merged["template"] = template
            payload["config"] = merged
            if "backend" not in payload and template in TEMPLATE_DEFAULTS:
                payload["backend"] = TEMPLATE_DEFAULTS[template][1]
        normalized.append(payload)
    return normalized


def _pool_body(
    request: dict[str, Any] | None,
    pool_id: str | None,
    template: PoolTemplate | str | None,
    tasks: Sequence[dict[str, Any] | PoolTaskInstance] | None,
    pool_type: str | None,
    backend: str | None,
) -> dict[str, Any]:
    template_value = template.value if isinstance(template, PoolTemplate) else template
    defaults = TEMPLATE_DEFAULTS.get(template_value or "")
    if request is None:
        if pool_id is None:
            raise ValueError("pool_id is required when request is not provided")
        body: dict[str, Any] = {"pool_id": pool_id}
        if template_value:
            body["template"] = template_value
        if tasks is not None:
            body["tasks"] = _template_tasks(tasks, template_value)
        if pool_type is not None:
            body["pool_type"] = pool_type
        elif defaults:
            body["pool_type"] = defaults[0]
        if backend is not None:
            body["backend"] = backend
        elif defaults:
            body["backend"] = defaults[1]
        return body
    body = _payload(request)
    if template_value:
        body.setdefault("template", template_value)
        if defaults:
            body.setdefault("pool_type", defaults[0])
            body.setdefault("backend", defaults[1])
        if isinstance(body.get("tasks"), list):
            body["tasks"] = _template_tasks(body["tasks"], template_value)
    return body


def create_pool(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    request: dict[str, Any] | None = None,
    pool_id: str | None = None,
    template: PoolTemplate | str | None = None,
    tasks: Sequence[dict[str, Any] | PoolTaskInstance] | None = None,
    pool_type: str | None = None,
    backend: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Create a pool from a ``request`` dict or from ``pool_id`` + ``template`` + ``tasks``."""
    body = _pool_body(request, pool_id, template, tasks, pool_type, backend)
    response = _send(
        "POST",
        "pools",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=body,
    )
    return _object(response)


def update_pool(
    pool_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    request: dict[str, Any],
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Change any subset of a pool's fields."""
    response = _send(
        "PUT",
        f"pools/{quote_segment(pool_id)}",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=_payload(request),
    )
    return _object(response)


def delete_pool(
    pool_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> None:
    _send(
        "DELETE",
        f"pools/{quote_segment(pool_id)}",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )


def get_pool_metrics(
    pool_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Queue depth, running count, totals and success rate of a pool."""
    response = _send(
        "GET",
        f"pools/{quote_segment(pool_id)}/metrics",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )
    return _object(response)


def list_pool_tasks(
    pool_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> list[dict[str, Any]]:
    response = _send(
        "GET",
        f"pools/{quote_segment(pool_id)}/tasks",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )
    return _array(response)


def create_pool_task(
    pool_id: str,
    *,
    request: dict[str, Any] | PoolTaskInstance,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    response = _send(
        "POST",
        f"pools/{quote_segment(pool_id)}/tasks",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=_payload(request),
    )
    return _object(response)


def update_pool_task(
    pool_id: str,
    task_id: str,
    *,
    request: dict[str, Any] | PoolTaskInstance,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    response = _send(
        "PUT",
        f"pools/{quote_segment(pool_id)}/tasks/{quote_segment(task_id)}",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
        json=_payload(request),
    )
    return _object(response)


def delete_pool_task(
    pool_id: str,
    task_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> None:
    _send(
        "DELETE",
        f"pools/{quote_segment(pool_id)}/tasks/{quote_segment(task_id)}",
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )


# --- queue, capabilities, schemas ---------------------------------------------------------


def _simple_get(
    suffix: str,
    *,
    backend_base: str | None,
    api_key: str | None,
    timeout: float,
    api_version: str | None,
    session: HTTPSession | None,
) -> dict[str, Any]:
    response = _send(
        "GET",
        suffix,
        backend_base=backend_base,
        api_key=api_key,
        api_version=api_version,
        timeout=timeout,
        session=session,
    )
    return _object(response)


def get_queue_status(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Queue depth and running counts per pool."""
    return _simple_get(
        "queue/status",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


def get_capabilities(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Supported pool types, agents, models and features of the backend."""
    return _simple_get(
        "capabilities",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


def get_openapi_schema(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """The backend's OpenAPI document."""
    return _simple_get(
        "openapi.json",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


def get_schema_json(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    api_version: str | None = None,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """JSON Schemas of the request and response models."""
    return _simple_get(
        "schema.json",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        api_version=api_version,
        session=session,
    )


# --- credentials (fixed path, no API version) ---------------------------------------------


def _secret_text(value: str | dict[str, Any]) -> str:
    return jsonlib.dumps(value) if isinstance(value, dict) else value


def store_credential(
    *,
    credential_name: str,
    credential_type: str,
    credential_value: str | dict[str, Any],
    metadata: dict[str, Any] | None = None,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Store a secret (DOCKER_REGISTRY, GITHUB_PAT, provider keys, ...); dicts are JSON-encoded."""
    body: dict[str, Any] = {
        "credential_name": credential_name,
        "credential_type": credential_type,
        "credential_value": _secret_text(credential_value),
    }
    if metadata is not None:
        body["metadata"] = copy.deepcopy(metadata)
    response = _send(
        "POST",
        _CREDENTIALS,
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        session=session,
        fixed=True,
        json=body,
    )
    return _object(response)


def list_credentials(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    session: HTTPSession | None = None,
) -> list[dict[str, Any]]:
    """Credentials of the organisation; values are never returned."""
    response = _send(
        "GET",
        _CREDENTIALS,
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        session=session,
        fixed=True,
    )
    return _array(response)


def delete_credential(
    credential_id: str,
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    session: HTTPSession | None = None,
) -> None:
    _send(
        "DELETE",
        f"{_CREDENTIALS}/{quote_segment(credential_id)}",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        session=session,
        fixed=True,
    )


def rotate_credential(
    credential_id: str,
    *,
    new_value: str | dict[str, Any],
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 30.0,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Replace a credential's value."""
    response = _send(
        "PUT",
        f"{_CREDENTIALS}/{quote_segment(credential_id)}",
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        session=session,
        fixed=True,
        json={"credential_value": _secret_text(new_value)},
    )
    return _object(response)


# --- account ------------------------------------------------------------------------------


def get_account(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """``/api/v1/me``: the organisation, plan and feature flags of the key."""
    response = _send(
        "GET",
        _ME,
        backend_base=backend_base,
        api_key=api_key,
        timeout=timeout,
        session=session,
        fixed=True,
    )
    return _object(response)


def _flag_enabled(flags: Any, feature: str) -> bool:
    if isinstance(flags, dict):
        flag = flags.get(feature)
        return flag is True or (isinstance(flag, dict) and bool(flag.get("enabled")))
    if isinstance(flags, list):
        return any(
            flag == feature
            or (isinstance(flag, dict) and flag.get("feature") == feature and flag.get("enabled"))
            for flag in flags
        )
    return False


def check_plan_access(
    *,
    backend_base: str | None = None,
    api_key: str | None = None,
    timeout: float = 10.0,
    session: HTTPSession | None = None,
) -> dict[str, Any]:
    """Raise PlanGatingError unless the key's plan includes Environment Pools.

    As in the official SDK, an unreachable or failing ``/api/v1/me`` allows access:
    the real calls report auth problems themselves.
    """
    try:
        account = get_account(
            backend_base=backend_base, api_key=api_key, timeout=timeout, session=session
        )
    except (APIError, TransportError):
        return {}
    plan = str(account.get("plan") or account.get("tier") or "free").lower()
    if plan in _PLANS_WITH_ACCESS or _flag_enabled(
        account.get("feature_flags"), "environment_pools"
    ):
        return account
    raise PlanGatingError(current_plan=plan)
