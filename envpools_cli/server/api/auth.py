"""Who is calling: API keys (stored hashed) belong to an organisation with a plan."""

from __future__ import annotations

from typing import Annotated

from anyio import to_thread
from fastapi import Depends, Request
from fastapi.security import APIKeyHeader, HTTPAuthorizationCredentials, HTTPBearer

from envpools_cli.server.errors import ApiError
from envpools_cli.server.state.store import Org, Store

__all__ = ["UPGRADE_URL", "current_org", "key_from_headers", "pools_org"]

UPGRADE_URL = "https://usesynth.ai/pricing"


def key_from_headers(authorization: str, x_api_key: str) -> str | None:
    """The API key a request presents: ``Authorization: Bearer <key>``, else ``X-API-Key``."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return x_api_key.strip() or None


def _presented_key(request: Request) -> str | None:
    return key_from_headers(
        request.headers.get("authorization", ""), request.headers.get("x-api-key", "")
    )


# Declared for the OpenAPI document (either one authenticates); ``_presented_key`` reads them.
_bearer = HTTPBearer(auto_error=False, description="Authorization: Bearer <api key>")
_api_key = APIKeyHeader(name="X-API-Key", auto_error=False, description="The API key")


async def current_org(
    request: Request,
    _bearer_key: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
    _header_key: Annotated[str | None, Depends(_api_key)],
) -> Org:
    """The organisation of the presented key; 401 without a valid one."""
    key = _presented_key(request)
    if key is None:
        raise ApiError(
            401,
            "unauthorized",
            "missing API key: send 'Authorization: Bearer <key>' or 'X-API-Key'",
            headers={"WWW-Authenticate": "Bearer"},
        )
    checked = getattr(request.state, "authenticated", None)  # by the body middleware
    org: Org | None
    if checked is not None and checked[0] == key and isinstance(checked[1], Org):
        org = checked[1]
    else:
        store: Store = request.app.state.service.store
        org = await to_thread.run_sync(store.org_for_key, key)
    if org is None:
        raise ApiError(
            401,
            "unauthorized",
            "the API key is not valid (unknown or revoked)",
            headers={"WWW-Authenticate": "Bearer"},
        )
    request.state.org_id = org.org_id
    return org


async def pools_org(org: Annotated[Org, Depends(current_org)]) -> Org:
    """Like ``current_org``, but 403 ``plan_required`` when the plan lacks Environment Pools."""
    if not org.has_access:
        raise ApiError(
            403,
            "plan_required",
            f"Environment Pools requires a pro or team plan; this organisation's plan is "
            f"{org.plan!r}",
            current_plan=org.plan,
            required_plans=["pro", "team"],
            upgrade_url=UPGRADE_URL,
        )
    return org
