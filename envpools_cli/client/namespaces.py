"""EnvironmentPoolsClient: the resources, bound to one connection, as the SDK groups them."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

from .errors import ConfigurationError, MissingAPIKeyError
from .handle import RolloutHandle
from .http import Connection, HTTPSession
from .resources import (
    Account,
    Artifacts,
    Capabilities,
    Credentials,
    Pools,
    PoolTasks,
    Queue,
    Rollouts,
    rollout_id_of,
)
from .sse import EventStream, GapPolicy, ReconnectPolicy

if TYPE_CHECKING:
    from envpools_cli.models import PoolResponse, PoolTaskInstance, PoolTemplate, RolloutRequestV1

__all__ = [
    "CapabilitiesNamespace",
    "CredentialsNamespace",
    "EnvironmentPoolsClient",
    "PoolTasksNamespace",
    "PoolsNamespace",
    "RolloutsNamespace",
]

# These families are the same on the client as in the module functions.
CapabilitiesNamespace = Capabilities
CredentialsNamespace = Credentials
PoolTasksNamespace = PoolTasks


class _Namespace:
    def __init__(self, connection: Connection) -> None:
        self.connection = connection


class RolloutsNamespace(_Namespace):
    """``/rollouts``: creating or getting one gives a RolloutHandle."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.artifacts = Artifacts(connection)

    def create(
        self,
        request: dict[str, Any] | RolloutRequestV1,
        *,
        idempotency_key: str | None = None,
        dry_run: bool | None = None,
        timeout: float = 120.0,
    ) -> RolloutHandle:
        data = Rollouts(self.connection).create(
            request=request, idempotency_key=idempotency_key, dry_run=dry_run, timeout=timeout
        )
        return RolloutHandle.on(rollout_id_of(data), self.connection)

    def get(self, rollout_id: str, *, timeout: float = 30.0) -> RolloutHandle:
        Rollouts(self.connection).get(rollout_id, timeout=timeout)
        return RolloutHandle.on(rollout_id, self.connection)

    # <generated: RolloutsNamespace>
    # From resources.py by scripts/update-client: edit that, then run it.

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
        return Rollouts(self.connection).list(
            cursor=cursor,
            limit=limit,
            status=status,
            pool_id=pool_id,
            dataset=dataset,
            task_id=task_id,
            created_after=created_after,
            created_before=created_before,
            timeout=timeout,
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
        return Rollouts(self.connection).events(
            rollout_id,
            since=since,
            cursor=cursor,
            limit=limit,
            timeout=timeout,
            auto_reconnect=auto_reconnect,
            max_retries=max_retries,
            backoff_base=backoff_base,
            backoff_max=backoff_max,
            on_gap=on_gap,
            on_reconnect=on_reconnect,
            reconnect=reconnect,
        )

    def cancel(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Cancel a rollout; cancelling a finished one returns it unchanged."""
        return Rollouts(self.connection).cancel(rollout_id, timeout=timeout)

    def usage(self, rollout_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Usage and cost (UsageSnapshot) of a rollout."""
        return Rollouts(self.connection).usage(rollout_id, timeout=timeout)

    # </generated>


def _pool_response(pool: dict[str, Any]) -> PoolResponse:
    from envpools_cli.models import PoolResponse

    return PoolResponse.from_dict(pool)


def _pool_responses(pools: builtins.list[dict[str, Any]]) -> builtins.list[PoolResponse]:
    return [_pool_response(pool) for pool in pools]


class PoolsNamespace(_Namespace):
    """``/pools``: ``list``/``get``/``create``/``update`` give PoolResponse, ``*_raw`` dicts."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.tasks = PoolTasks(connection)

    # <generated: PoolsNamespace>
    # From resources.py by scripts/update-client: edit that, then run it.

    def list(
        self, *, pool_type: str | None = None, tag: str | None = None, timeout: float = 30.0
    ) -> builtins.list[PoolResponse]:
        """Pools of the organisation, filtered by ``pool_type`` and ``tag``."""
        return _pool_responses(
            Pools(self.connection).list(pool_type=pool_type, tag=tag, timeout=timeout)
        )

    def list_raw(
        self, *, pool_type: str | None = None, tag: str | None = None, timeout: float = 30.0
    ) -> builtins.list[dict[str, Any]]:
        """Pools of the organisation, filtered by ``pool_type`` and ``tag``."""
        return Pools(self.connection).list(pool_type=pool_type, tag=tag, timeout=timeout)

    def get(self, pool_id: str, *, timeout: float = 30.0) -> PoolResponse:
        """A pool: its configuration, tasks and limits."""
        return _pool_response(Pools(self.connection).get(pool_id, timeout=timeout))

    def get_raw(self, pool_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """A pool: its configuration, tasks and limits."""
        return Pools(self.connection).get(pool_id, timeout=timeout)

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
        """Create a pool from a ``request`` dict or from ``pool_id`` + ``template`` + ``tasks``."""
        return _pool_response(
            Pools(self.connection).create(
                request=request,
                pool_id=pool_id,
                template=template,
                tasks=tasks,
                pool_type=pool_type,
                backend=backend,
                timeout=timeout,
            )
        )

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
        """Create a pool from a ``request`` dict or from ``pool_id`` + ``template`` + ``tasks``."""
        return Pools(self.connection).create(
            request=request,
            pool_id=pool_id,
            template=template,
            tasks=tasks,
            pool_type=pool_type,
            backend=backend,
            timeout=timeout,
        )

    def update(
        self, pool_id: str, *, request: dict[str, Any], timeout: float = 30.0
    ) -> PoolResponse:
        """Change any subset of a pool's fields."""
        return _pool_response(
            Pools(self.connection).update(pool_id, request=request, timeout=timeout)
        )

    def update_raw(
        self, pool_id: str, *, request: dict[str, Any], timeout: float = 30.0
    ) -> dict[str, Any]:
        """Change any subset of a pool's fields."""
        return Pools(self.connection).update(pool_id, request=request, timeout=timeout)

    def delete(self, pool_id: str, *, timeout: float = 30.0) -> None:
        """Delete a pool."""
        Pools(self.connection).delete(pool_id, timeout=timeout)

    def metrics(self, pool_id: str, *, timeout: float = 30.0) -> dict[str, Any]:
        """Queue depth, running count, totals and success rate of a pool."""
        return Pools(self.connection).metrics(pool_id, timeout=timeout)

    # </generated>


class EnvironmentPoolsClient:
    """The Environment Pools API, grouped as its URL paths are.

    ``client.rollouts`` (with ``client.rollouts.artifacts``), ``client.pools`` (with
    ``client.pools.tasks``), ``client.credentials``, ``client.capabilities`` and
    ``client.queue``, all over one ``client.connection``. Unless ``skip_plan_check``,
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
        self.connection = connection = Connection(backend_base, api_key, api_version, session)
        self._account_info: dict[str, Any] = {}
        if not skip_plan_check:
            self._account_info = Account(connection).check_plan_access()
        self.rollouts = RolloutsNamespace(connection)
        self.pools = PoolsNamespace(connection)
        self.credentials = Credentials(connection)
        self.capabilities = Capabilities(connection)
        self.queue = Queue(connection)

    @classmethod
    def from_profile(
        cls,
        name: str | None = None,
        *,
        skip_plan_check: bool = False,
        session: HTTPSession | None = None,
    ) -> EnvironmentPoolsClient:
        """A client with the URL and key of the CLI's profile ``name`` (None: the active
        one), as ``envpools --profile NAME`` uses them; ConfigurationError if it is missing."""
        from .profile import load_profile

        found = load_profile(name)
        if found is None:
            raise ConfigurationError(
                "no active profile: run 'envpools local up' or 'envpools auth login' first"
            )
        if not found.api_key:
            raise MissingAPIKeyError(
                f"profile {found.name!r} has no API key: 'envpools --profile {found.name} "
                "auth login' stores one"
            )
        return cls(
            api_key=found.api_key,
            backend_base=found.api_url,
            api_version=found.api_version,
            skip_plan_check=skip_plan_check,
            session=session,
        )

    @property
    def account_info(self) -> dict[str, Any]:
        return dict(self._account_info)

    def rollout(self, rollout_id: str) -> RolloutHandle:
        """A handle for ``rollout_id`` without fetching it first."""
        return RolloutHandle.on(rollout_id, self.connection)

    def close(self) -> None:
        if self.connection.session is not None:
            self.connection.session.close()

    def __enter__(self) -> EnvironmentPoolsClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
