"""The API as its URL paths are: one class per family, all over one ``Connection``.

``Rollouts`` (with ``Rollouts.artifacts``), ``Pools`` (with ``Pools.tasks``),
``Credentials``, ``Capabilities``, ``Queue`` and ``Account`` hold each request once,
with the official SDK's defaults, and return what the SDK returns: a dict, a list,
bytes or None. The module functions (``api.py``), ``EnvironmentPoolsClient``'s namespaces
(``namespaces.py``) and ``RolloutHandle`` (``handle.py``) are plain functions that call
these methods, generated from their signatures and docstrings by ``scripts/update-client``
(``tests/unit/test_client_surface.py`` fails when they are stale).
"""

from __future__ import annotations

import builtins
import copy
import json as jsonlib
from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager
from typing import TYPE_CHECKING, Any, ClassVar, Unpack, overload
from urllib.parse import quote

import httpx

if TYPE_CHECKING:
    # Imported where a request is built: a read takes dicts and no pydantic model.
    from envpools_cli.models import PoolTaskInstance, PoolTemplate, RolloutRequestV1

from .errors import (
    APIError,
    InvalidRequestError,
    InvalidResponseError,
    PlanGatingError,
    TransportError,
)
from .http import Connection, RequestOptions
from .request_check import backend_capabilities, check_rollout_request, clear_capabilities_cache
from .settings import quote_segment, resolve_backend_base
from .sse import EventStream, GapPolicy, ReconnectPolicy

__all__ = [
    "Account",
    "Artifacts",
    "Capabilities",
    "Credentials",
    "LocalAgents",
    "PoolTasks",
    "Pools",
    "Queue",
    "Resource",
    "Rollouts",
    "clear_capabilities_cache",
    "new_idempotency_key",
    "rollout_id_of",
]

_PLANS_WITH_ACCESS = frozenset({"pro", "team", "enterprise", "demo"})


def new_idempotency_key() -> str:
    import uuid  # here: it imports platform (~4 ms), which most commands never need

    return f"envpools-{uuid.uuid4()}"


def rollout_id_of(data: Mapping[str, Any]) -> str:
    """The id of a created rollout, wherever the backend put it (as the SDK reads it)."""
    for key in ("rollout_id", "trial_id", "id"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


def _params(**values: Any) -> dict[str, str]:
    return {name: str(value) for name, value in values.items() if value is not None}


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


def _payload(request: Any) -> dict[str, Any]:
    """A JSON-ready copy of a model or dict; the caller's object is never changed."""
    import pydantic

    from envpools_cli.models import HARNESS_ALIASES

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


def _copy(**values: Any) -> dict[str, Any]:
    return {name: copy.deepcopy(value) for name, value in values.items() if value is not None}


class Resource:
    """Requests under one URL family, sent over ``connection``."""

    _fixed: ClassVar[bool] = False
    """The family's paths ignore the API version (credentials, account)."""

    def __init__(self, connection: Connection) -> None:
        self.connection = connection

    def _send(self, method: str, suffix: str, **options: Unpack[RequestOptions]) -> httpx.Response:
        return self.connection.request(method, suffix, fixed=self._fixed, **options)

    def _object(
        self, method: str, suffix: str, **options: Unpack[RequestOptions]
    ) -> dict[str, Any]:
        data = _decode(self._send(method, suffix, **options))
        return data if isinstance(data, dict) else {}

    def _array(
        self, method: str, suffix: str, **options: Unpack[RequestOptions]
    ) -> builtins.list[dict[str, Any]]:
        data = _decode(self._send(method, suffix, **options))
        return data if isinstance(data, list) else []


# --- /rollouts ----------------------------------------------------------------------------


def _one_path(artifact_path: str | None, path: str | None) -> str:
    """The product page says ``artifact_path``, SDK 0.9.6 says ``path``: either, not both."""
    if artifact_path is not None and path is not None and artifact_path != path:
        raise TypeError("give artifact_path or path, not both")
    chosen = artifact_path if artifact_path is not None else path
    if chosen is None:
        raise TypeError("artifact_path is required")
    return chosen


class Artifacts(Resource):
    """``/rollouts/{id}/artifacts``; calling it lists them, as ``client.rollouts.artifacts(id)``."""

    @staticmethod
    def _at(rollout_id: str, path: str | None = None) -> str:
        suffix = f"rollouts/{quote_segment(rollout_id)}/artifacts"
        return suffix if path is None else f"{suffix}/{quote(path.lstrip('/'), safe='/')}"

    def list(
        self,
        rollout_id: str,
        *,
        prefix: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """The artifact manifest of a rollout (paged with ``next_cursor``)."""
        params = _params(prefix=prefix, cursor=cursor, limit=limit)
        return self._object("GET", self._at(rollout_id), timeout=timeout, params=params)

    __call__ = list

    # The product page spells the artifact ``artifact_path``, SDK 0.9.6 ``path``: one of
    # the two, positionally or by either keyword, as the overloads say.
    @overload
    def fetch(self, rollout_id: str, artifact_path: str, *, timeout: float = 60.0) -> bytes: ...

    @overload
    def fetch(self, rollout_id: str, *, path: str, timeout: float = 60.0) -> bytes: ...

    def fetch(
        self,
        rollout_id: str,
        artifact_path: str | None = None,
        *,
        path: str | None = None,
        timeout: float = 60.0,
    ) -> bytes:
        """The bytes of one artifact (``artifact_path``, or ``path=`` as SDK 0.9.6 spells it)."""
        suffix = self._at(rollout_id, _one_path(artifact_path, path))
        return self._send("GET", suffix, timeout=timeout).content

    @overload
    def open(
        self, rollout_id: str, artifact_path: str, *, timeout: float = 60.0
    ) -> AbstractContextManager[httpx.Response]: ...

    @overload
    def open(
        self, rollout_id: str, *, path: str, timeout: float = 60.0
    ) -> AbstractContextManager[httpx.Response]: ...

    def open(
        self,
        rollout_id: str,
        artifact_path: str | None = None,
        *,
        path: str | None = None,
        timeout: float = 60.0,
    ) -> AbstractContextManager[httpx.Response]:
        """Context manager: the streaming response of one artifact (for large files)."""
        suffix = self._at(rollout_id, _one_path(artifact_path, path))
        return self.connection.stream(suffix, timeout=timeout)

    def zip(
        self,
        rollout_id: str,
        *,
        prefix: str | None = None,
        limit: int | None = None,
        timeout: float = 120.0,
    ) -> bytes:
        """All artifacts of a rollout (under ``prefix``) as zip bytes."""
        suffix = f"{self._at(rollout_id)}.zip"
        params = _params(prefix=prefix, limit=limit)
        return self._send("GET", suffix, timeout=timeout, params=params).content

    def open_zip(
        self,
        rollout_id: str,
        *,
        prefix: str | None = None,
        limit: int | None = None,
        timeout: float = 120.0,
    ) -> AbstractContextManager[httpx.Response]:
        """Context manager: the streaming response of the artifacts zip."""
        params = _params(prefix=prefix, limit=limit)
        return self.connection.stream(f"{self._at(rollout_id)}.zip", timeout=timeout, params=params)


class Rollouts(Resource):
    """``/rollouts``."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.artifacts = Artifacts(connection)

    def check_request(self, payload: Mapping[str, Any]) -> None:
        """Raise InvalidRequestError if the server would certainly reject ``payload``."""
        conn = self.connection
        key = f"{resolve_backend_base(conn.backend_base)}|{conn.api_version or ''}"
        check_rollout_request(payload, lambda: backend_capabilities(key, Capabilities(conn).get))

    def create(
        self,
        *,
        request: dict[str, Any] | RolloutRequestV1,
        idempotency_key: str | None = None,
        dry_run: bool | None = None,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Create a rollout. Retries reuse one Idempotency-Key, so it is created at most once."""
        payload = _payload(request)
        self.check_request(payload)
        if dry_run is not None:
            payload["dry_run"] = dry_run
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return self._object("POST", "rollouts", timeout=timeout, json=payload, headers=headers)

    def validate(
        self, *, request: dict[str, Any] | RolloutRequestV1, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Ask the server whether a request is valid and where it would be routed."""
        body = _payload(request)
        return self._object(
            "POST", "rollouts:validate", timeout=timeout, json=body, idempotent=True
        )

    def list(
        self,
        *,
        cursor: str | None = None,
        limit: int | None = None,
        status: str | None = None,
        pool_id: str | None = None,
        dataset: str | None = None,
        task_id: str | None = None,
        created_after: str | None = None,
        created_before: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """List rollouts, newest first: ``{"rollouts": [...], "next_cursor": ...}``."""
        params = _params(
            cursor=cursor,
            limit=limit,
            status=status,
            pool_id=pool_id,
            dataset=dataset,
            task_id=task_id,
            created_after=created_after,
            created_before=created_before,
        )
        return self._object("GET", "rollouts", timeout=timeout, params=params)

    def create_batch(
        self,
        *,
        requests: Sequence[dict[str, Any] | RolloutRequestV1],
        metadata: dict[str, Any] | None = None,
        idempotency_key: str | None = None,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Create several rollouts in one request: ``{"rollouts": [...], "errors": [...]}``."""
        payloads = [_payload(request) for request in requests]
        for index, payload in enumerate(payloads):
            try:
                self.check_request(payload)
            except InvalidRequestError as exc:
                raise InvalidRequestError(f"requests[{index}]: {exc}", errors=exc.errors) from None
        body = {"requests": payloads, **_copy(metadata=metadata)}
        headers = {"Idempotency-Key": idempotency_key or new_idempotency_key()}
        return self._object("POST", "rollouts/batch", timeout=timeout, json=body, headers=headers)

    def create_concurrently(
        self,
        *,
        requests: Sequence[dict[str, Any] | RolloutRequestV1],
        idempotency_key: str | None = None,
        max_workers: int = 8,
        timeout: float = 120.0,
    ) -> dict[str, Any]:
        """Like the batch endpoint, with one create per request, at most ``max_workers`` at once.

        For backends without ``rollouts/batch``. Each request gets its own Idempotency-Key
        derived from ``idempotency_key``, so running the whole call again creates nothing
        twice. Returns ``{"rollouts": [...], "errors": [{"index", "error"}]}`` in request order.
        """
        from concurrent.futures import ThreadPoolExecutor

        base_key = idempotency_key or new_idempotency_key()

        def one(index: int) -> tuple[int, dict[str, Any] | None, dict[str, Any] | None]:
            try:
                created = self.create(
                    request=requests[index], idempotency_key=f"{base_key}-{index}", timeout=timeout
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

    def _get(self, rollout_id: str, tail: str, timeout: float) -> dict[str, Any]:
        return self._object("GET", f"rollouts/{quote_segment(rollout_id)}{tail}", timeout=timeout)

    def get(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """A rollout's current state."""
        return self._get(rollout_id, "", timeout)

    def summary(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Latest status, reward and last event of a rollout."""
        return self._get(rollout_id, "/summary", timeout)

    def usage(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Usage and cost (UsageSnapshot) of a rollout."""
        return self._get(rollout_id, "/usage", timeout)

    def support_bundle(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Request, routing, events, artifacts and usage of a rollout, secrets redacted."""
        return self._get(rollout_id, "/support_bundle", timeout)

    def replay(
        self,
        rollout_id: str,
        *,
        overrides: dict[str, Any] | None = None,
        metadata: dict[str, Any] | None = None,
        timeout: float = 120.0,
        idempotency_key: str | None = None,
    ) -> dict[str, Any]:
        """Run a rollout's request again (with ``overrides``); returns the new rollout."""
        return self._object(
            "POST",
            f"rollouts/{quote_segment(rollout_id)}/replay",
            timeout=timeout,
            json=_copy(overrides=overrides, metadata=metadata),
            headers={"Idempotency-Key": idempotency_key or new_idempotency_key()},
        )

    def cancel(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Cancel a rollout; cancelling a finished one returns it unchanged."""
        suffix = f"rollouts/{quote_segment(rollout_id)}/cancel"
        return self._object("POST", suffix, timeout=timeout, idempotent=True)

    def events(
        self,
        rollout_id: str,
        *,
        since: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
        auto_reconnect: bool = False,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        on_gap: GapPolicy = "raise",
        on_reconnect: Callable[[int, float, Exception], None] | None = None,
        reconnect: ReconnectPolicy | None = None,
    ) -> EventStream:
        """Stream a rollout's events (SSE) as EventEnvelope-shaped dicts.

        ``cursor`` resumes after that event id; ``timeout`` is the read timeout (default
        45 s, three heartbeats). With ``auto_reconnect`` the stream resumes after drops and
        early closes under ``reconnect`` (default: a ``ReconnectPolicy`` made of
        ``max_retries``, ``backoff_base`` and ``backoff_max``); without it any interruption
        raises TransportError rather than ending the iteration as if the rollout were over.
        """
        conn = self.connection
        return EventStream(
            conn.http,
            conn.url(f"rollouts/{quote_segment(rollout_id)}/events"),
            api_key=conn.key(),
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


# --- /pools -------------------------------------------------------------------------------


def _pool(pool_id: str, tail: str = "") -> str:
    return f"pools/{quote_segment(pool_id)}{tail}"


def _template_tasks(tasks: Sequence[Any], template: str | None) -> builtins.list[dict[str, Any]]:
    from envpools_cli.models import TEMPLATE_DEFAULTS

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
    from envpools_cli.models import TEMPLATE_DEFAULTS, PoolTemplate

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


class PoolTasks(Resource):
    """``/pools/{pool_id}/tasks``."""

    def list(self, pool_id: str, *, timeout: float = 30.0) -> builtins.list[dict[str, Any]]:
        """The task instances of a pool."""
        return self._array("GET", _pool(pool_id, "/tasks"), timeout=timeout)

    def create(
        self, pool_id: str, *, request: dict[str, Any] | PoolTaskInstance, timeout: float = 30.0
    ) -> dict[str, Any]:
        """Add a task instance (a dict or a PoolTaskInstance) to a pool."""
        body = _payload(request)
        return self._object("POST", _pool(pool_id, "/tasks"), timeout=timeout, json=body)

    def update(
        self,
        pool_id: str,
        task_id: str,
        *,
        request: dict[str, Any] | PoolTaskInstance,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Replace a task instance of a pool."""
        suffix = _pool(pool_id, f"/tasks/{quote_segment(task_id)}")
        return self._object("PUT", suffix, timeout=timeout, json=_payload(request))

    def delete(self, pool_id: str, task_id: str, *, timeout: float = 30.0) -> None:
        """Remove a task instance from a pool."""
        suffix = _pool(pool_id, f"/tasks/{quote_segment(task_id)}")
        self._send("DELETE", suffix, timeout=timeout)


class Pools(Resource):
    """``/pools``."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.tasks = PoolTasks(connection)

    def list(
        self, *, pool_type: str | None = None, tag: str | None = None, timeout: float = 30.0
    ) -> builtins.list[dict[str, Any]]:
        """Pools of the organisation, filtered by ``pool_type`` and ``tag``."""
        params = _params(type=pool_type, tag=tag)
        return self._array("GET", "pools", timeout=timeout, params=params)

    def get(self, pool_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """A pool: its configuration, tasks and limits."""
        return self._object("GET", _pool(pool_id), timeout=timeout)

    def create(
        self,
        *,
        request: dict[str, Any] | None = None,
        pool_id: str | None = None,
        template: PoolTemplate | str | None = None,
        tasks: Sequence[dict[str, Any] | PoolTaskInstance] | None = None,
        pool_type: str | None = None,
        backend: str | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Create a pool from a ``request`` dict or from ``pool_id`` + ``template`` + ``tasks``."""
        body = _pool_body(request, pool_id, template, tasks, pool_type, backend)
        return self._object("POST", "pools", timeout=timeout, json=body)

    def update(
        self, pool_id: str, *, request: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Change any subset of a pool's fields."""
        return self._object("PUT", _pool(pool_id), timeout=timeout, json=_payload(request))

    def delete(self, pool_id: str, *, timeout: float = 30.0) -> None:
        """Delete a pool."""
        self._send("DELETE", _pool(pool_id), timeout=timeout)

    def metrics(self, pool_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Queue depth, running count, totals and success rate of a pool."""
        return self._object("GET", _pool(pool_id, "/metrics"), timeout=timeout)


# --- /queue, /capabilities, schemas -------------------------------------------------------


class Queue(Resource):
    """``/queue``."""

    def status(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """Queue depth and running counts per pool."""
        return self._object("GET", "queue/status", timeout=timeout)


class Capabilities(Resource):
    """``/capabilities``, ``/openapi.json``, ``/schema.json``."""

    def get(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """Supported pool types, agents, models and features of the backend."""
        return self._object("GET", "capabilities", timeout=timeout)

    def openapi_schema(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """The backend's OpenAPI document."""
        return self._object("GET", "openapi.json", timeout=timeout)

    def schema_json(self, *, timeout: float = 30.0) -> dict[str, Any]:
        """JSON Schemas of the request and response models."""
        return self._object("GET", "schema.json", timeout=timeout)


# --- /api/v1/credentials and /api/v1/me (fixed paths, no API version) ---------------------

_CREDENTIALS = "api/v1/credentials"


def _secret_text(value: str | dict[str, Any]) -> str:
    return jsonlib.dumps(value) if isinstance(value, dict) else value


class Credentials(Resource):
    """``/api/v1/credentials``: values go in, never come back."""

    _fixed = True

    def store(
        self,
        *,
        credential_name: str,
        credential_type: str,
        credential_value: str | dict[str, Any],
        metadata: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        """Store a secret (DOCKER_REGISTRY, GITHUB_PAT, a provider key); dicts are JSON-encoded."""
        body = {
            "credential_name": credential_name,
            "credential_type": credential_type,
            "credential_value": _secret_text(credential_value),
            **_copy(metadata=metadata),
        }
        return self._object("POST", _CREDENTIALS, timeout=timeout, json=body)

    def list(self, *, timeout: float = 30.0) -> builtins.list[dict[str, Any]]:
        """Credentials of the organisation; values are never returned."""
        return self._array("GET", _CREDENTIALS, timeout=timeout)

    def delete(self, credential_id: str, *, timeout: float = 30.0) -> None:
        """Delete a stored credential."""
        suffix = f"{_CREDENTIALS}/{quote_segment(credential_id)}"
        self._send("DELETE", suffix, timeout=timeout)

    def rotate(
        self, credential_id: str, *, new_value: str | dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Replace a credential's value."""
        return self._object(
            "PUT",
            f"{_CREDENTIALS}/{quote_segment(credential_id)}",
            timeout=timeout,
            json={"credential_value": _secret_text(new_value)},
        )


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


class Account(Resource):
    """``/api/v1/me``: who the key belongs to."""

    _fixed = True

    def get(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """``/api/v1/me``: the organisation, plan and feature flags of the key."""
        return self._object("GET", "api/v1/me", timeout=timeout)

    def check_plan_access(self, *, timeout: float = 10.0) -> dict[str, Any]:
        """Raise PlanGatingError unless the key's plan includes Environment Pools.

        As in the official SDK, an unreachable or failing ``/api/v1/me`` allows access:
        the real calls report auth problems themselves.
        """
        try:
            account = self.get(timeout=timeout)
        except (APIError, TransportError):
            return {}
        plan = str(account.get("plan") or account.get("tier") or "free").lower()
        if plan in _PLANS_WITH_ACCESS or _flag_enabled(
            account.get("feature_flags"), "environment_pools"
        ):
            return account
        raise PlanGatingError(current_plan=plan)


# --- /local/v1 (the local backend only) -------------------------------------------------


class LocalAgents(Resource):
    """``/local/v1/agents``: what only the local backend serves about its agents."""

    _fixed = True

    def check(
        self,
        agent: str | None = None,
        *,
        model_id: str | None = None,
        timeout: float = 30.0,
    ) -> builtins.list[dict[str, Any]]:
        """Each agent's provider (or ``agent``'s), tried with one real model call through the
        stored key and base URL: ``[{agent, provider, model, endpoint, verdict, ok, message,
        seconds}]``; ``verdict`` is ``ok`` or why not (``provider_auth``, ...)."""
        body = _copy(agent=agent, model_id=model_id)
        found = self._object("POST", "local/v1/agents/check", timeout=timeout, json=body)
        agents = found.get("agents")
        return agents if isinstance(agents, builtins.list) else []
