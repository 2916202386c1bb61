"""EnvironmentPoolsClient: the module functions grouped by URL path, bound to one connection."""

from __future__ import annotations

import builtins
from collections.abc import Sequence
from typing import Any

from envpools_cli.models import PoolResponse, PoolTaskInstance, PoolTemplate, RolloutRequestV1

from . import api
from .handle import RolloutHandle
from .http import HTTPSession
from .sse import EventStream

__all__ = [
    "CapabilitiesNamespace",
    "CredentialsNamespace",
    "EnvironmentPoolsClient",
    "PoolTasksNamespace",
    "PoolsNamespace",
    "RolloutsNamespace",
]


class _Bound:
    def __init__(
        self,
        backend_base: str | None,
        api_key: str | None,
        api_version: str | None,
        session: HTTPSession | None,
    ) -> None:
        self._backend_base = backend_base
        self._api_key = api_key
        self._api_version = api_version
        self._session = session

    def _conn(self) -> dict[str, Any]:
        return {
            "backend_base": self._backend_base,
            "api_key": self._api_key,
            "api_version": self._api_version,
            "session": self._session,
        }

    def _handle(self, rollout_id: str) -> RolloutHandle:
        return RolloutHandle(rollout_id, **self._conn())


def rollout_id_of(data: dict[str, Any]) -> str:
    for key in ("rollout_id", "trial_id", "id"):
        value = data.get(key)
        if isinstance(value, str) and value.strip():
            return value
    return ""


class RolloutsNamespace(_Bound):
    """``/rollouts``."""

    def create(
        self,
        request: dict[str, Any] | RolloutRequestV1,
        *,
        idempotency_key: str | None = None,
        dry_run: bool | None = None,
        timeout: float = 120.0,
    ) -> RolloutHandle:
        data = api.create_rollout(
            request=request,
            idempotency_key=idempotency_key,
            dry_run=dry_run,
            timeout=timeout,
            **self._conn(),
        )
        return self._handle(rollout_id_of(data))

    def get(self, rollout_id: str, *, timeout: float = 30.0) -> RolloutHandle:
        api.get_rollout(rollout_id, timeout=timeout, **self._conn())
        return self._handle(rollout_id)

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
        return api.list_rollouts(
            cursor=cursor,
            limit=limit,
            status=status,
            pool_id=pool_id,
            dataset=dataset,
            task_id=task_id,
            created_after=created_after,
            created_before=created_before,
            timeout=timeout,
            **self._conn(),
        )

    def events(
        self,
        rollout_id: str,
        *,
        since: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float | None = None,
        auto_reconnect: bool = True,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
    ) -> EventStream:
        return api.stream_rollout_events(
            rollout_id,
            since=since,
            cursor=cursor,
            limit=limit,
            timeout=timeout,
            auto_reconnect=auto_reconnect,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            **self._conn(),
        )

    def cancel(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.cancel_rollout(rollout_id, timeout=timeout, **self._conn())

    def artifacts(
        self,
        rollout_id: str,
        *,
        prefix: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        return api.list_rollout_artifacts(
            rollout_id, prefix=prefix, cursor=cursor, limit=limit, timeout=timeout, **self._conn()
        )

    def usage(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_rollout_usage(rollout_id, timeout=timeout, **self._conn())


class PoolTasksNamespace(_Bound):
    """``/pools/{pool_id}/tasks``."""

    def list(self, pool_id: str, *, timeout: float = 30.0) -> builtins.list[dict[str, Any]]:
        return api.list_pool_tasks(pool_id, timeout=timeout, **self._conn())

    def create(
        self, pool_id: str, *, request: dict[str, Any] | PoolTaskInstance, timeout: float = 30.0
    ) -> dict[str, Any]:
        return api.create_pool_task(pool_id, request=request, timeout=timeout, **self._conn())

    def update(
        self,
        pool_id: str,
        task_id: str,
        *,
        request: dict[str, Any] | PoolTaskInstance,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        return api.update_pool_task(
            pool_id, task_id, request=request, timeout=timeout, **self._conn()
        )

    def delete(self, pool_id: str, task_id: str, *, timeout: float = 30.0) -> None:
        api.delete_pool_task(pool_id, task_id, timeout=timeout, **self._conn())


class PoolsNamespace(_Bound):
    """``/pools``."""

    def __init__(
        self,
        backend_base: str | None,
        api_key: str | None,
        api_version: str | None,
        session: HTTPSession | None,
    ) -> None:
        super().__init__(backend_base, api_key, api_version, session)
        self.tasks = PoolTasksNamespace(backend_base, api_key, api_version, session)

    def list_raw(
        self, *, pool_type: str | None = None, tag: str | None = None, timeout: float = 30.0
    ) -> builtins.list[dict[str, Any]]:
        return api.list_pools(pool_type=pool_type, tag=tag, timeout=timeout, **self._conn())

    def list(
        self, *, pool_type: str | None = None, tag: str | None = None, timeout: float = 30.0
    ) -> builtins.list[PoolResponse]:
        raw = self.list_raw(pool_type=pool_type, tag=tag, timeout=timeout)
        return [PoolResponse.from_dict(pool) for pool in raw]

    def get_raw(self, pool_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_pool(pool_id, timeout=timeout, **self._conn())

    def get(self, pool_id: str, *, timeout: float = 30.0) -> PoolResponse:
        return PoolResponse.from_dict(self.get_raw(pool_id, timeout=timeout))

    def create_raw(
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
        return api.create_pool(
            request=request,
            pool_id=pool_id,
            template=template,
            tasks=tasks,
            pool_type=pool_type,
            backend=backend,
            timeout=timeout,
            **self._conn(),
        )

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
    ) -> PoolResponse:
        return PoolResponse.from_dict(
            self.create_raw(
                request=request,
                pool_id=pool_id,
                template=template,
                tasks=tasks,
                pool_type=pool_type,
                backend=backend,
                timeout=timeout,
            )
        )

    def update_raw(
        self, pool_id: str, *, request: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        return api.update_pool(pool_id, request=request, timeout=timeout, **self._conn())

    def update(
        self, pool_id: str, *, request: dict[str, Any], timeout: float = 30.0
    ) -> PoolResponse:
        return PoolResponse.from_dict(self.update_raw(pool_id, request=request, timeout=timeout))

    def delete(self, pool_id: str, *, timeout: float = 30.0) -> None:
        api.delete_pool(pool_id, timeout=timeout, **self._conn())

    def metrics(self, pool_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_pool_metrics(pool_id, timeout=timeout, **self._conn())


class CredentialsNamespace(_Bound):
    """``/api/v1/credentials``."""

    def _creds(self) -> dict[str, Any]:
        return {
            "backend_base": self._backend_base,
            "api_key": self._api_key,
            "session": self._session,
        }

    def store(
        self,
        *,
        credential_name: str,
        credential_type: str,
        credential_value: str | dict[str, Any],
        metadata: dict[str, Any] | None = None,
        timeout: float = 30.0,
    ) -> dict[str, Any]:
        return api.store_credential(
            credential_name=credential_name,
            credential_type=credential_type,
            credential_value=credential_value,
            metadata=metadata,
            timeout=timeout,
            **self._creds(),
        )

    def list(self, *, timeout: float = 30.0) -> builtins.list[dict[str, Any]]:
        return api.list_credentials(timeout=timeout, **self._creds())

    def delete(self, credential_id: str, *, timeout: float = 30.0) -> None:
        api.delete_credential(credential_id, timeout=timeout, **self._creds())

    def rotate(
        self, credential_id: str, *, new_value: str | dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        return api.rotate_credential(
            credential_id, new_value=new_value, timeout=timeout, **self._creds()
        )


class CapabilitiesNamespace(_Bound):
    """``/capabilities``, ``/openapi.json``, ``/schema.json``."""

    def get(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_capabilities(timeout=timeout, **self._conn())

    def openapi_schema(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_openapi_schema(timeout=timeout, **self._conn())

    def schema_json(self, *, timeout: float = 30.0) -> dict[str, Any]:
        return api.get_schema_json(timeout=timeout, **self._conn())


class EnvironmentPoolsClient:
    """The Environment Pools API, grouped as its URL paths are.

    ``client.rollouts``, ``client.pools`` (with ``client.pools.tasks``),
    ``client.credentials`` and ``client.capabilities``. Unless ``skip_plan_check``,
    the constructor asks ``/api/v1/me`` whether the plan includes Environment Pools
    and raises PlanGatingError if not.
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        backend_base: str | None = None,
        api_version: str | None = None,
        skip_plan_check: bool = False,
        session: HTTPSession | None = None,
    ) -> None:
        self._api_key = api_key
        self._backend_base = backend_base
        self._api_version = api_version
        self._session = session
        self._account_info: dict[str, Any] = {}
        if not skip_plan_check:
            self._account_info = api.check_plan_access(
                backend_base=backend_base, api_key=api_key, session=session
            )
        args = (backend_base, api_key, api_version, session)
        self.rollouts = RolloutsNamespace(*args)
        self.pools = PoolsNamespace(*args)
        self.credentials = CredentialsNamespace(*args)
        self.capabilities = CapabilitiesNamespace(*args)

    @property
    def account_info(self) -> dict[str, Any]:
        return dict(self._account_info)

    def rollout(self, rollout_id: str) -> RolloutHandle:
        """A handle for ``rollout_id`` without fetching it first."""
        return RolloutHandle(
            rollout_id,
            backend_base=self._backend_base,
            api_key=self._api_key,
            api_version=self._api_version,
            session=self._session,
        )

    def close(self) -> None:
        if self._session is not None:
            self._session.close()

    def __enter__(self) -> EnvironmentPoolsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
