"""EnvironmentPoolsClient: the resources, bound to one connection, as the SDK groups them."""

from __future__ import annotations

import builtins
from typing import Any

from envpools_cli.models import PoolResponse, RolloutRequestV1

from .bind import offer, offer_as
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

    list = offer(Rollouts, Rollouts.list)
    events = offer(Rollouts, Rollouts.events, auto_reconnect=True)
    cancel = offer(Rollouts, Rollouts.cancel)
    usage = offer(Rollouts, Rollouts.usage)


def _pool_responses(pools: builtins.list[dict[str, Any]]) -> builtins.list[PoolResponse]:
    return [PoolResponse.from_dict(pool) for pool in pools]


class PoolsNamespace(_Namespace):
    """``/pools``: ``list``/``get``/``create``/``update`` give PoolResponse, ``*_raw`` dicts."""

    def __init__(self, connection: Connection) -> None:
        super().__init__(connection)
        self.tasks = PoolTasks(connection)

    list_raw = offer(Pools, Pools.list)
    list = offer_as(Pools, Pools.list, _pool_responses)
    get_raw = offer(Pools, Pools.get)
    get = offer_as(Pools, Pools.get, PoolResponse.from_dict)
    create_raw = offer(Pools, Pools.create)
    create = offer_as(Pools, Pools.create, PoolResponse.from_dict)
    update_raw = offer(Pools, Pools.update)
    update = offer_as(Pools, Pools.update, PoolResponse.from_dict)
    delete = offer(Pools, Pools.delete)
    metrics = offer(Pools, Pools.metrics)


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
