"""The Environment Pools client: every function, model, error and class, importable from here.

This package plays the part ``synth_ai.sdk.environment_pools`` plays for the official
SDK, with the same names and keyword signatures. It never imports the CLI (Typer,
Rich, keyring) or the local backend.
"""

import sys as _sys
from typing import TYPE_CHECKING, Any

# httpx imports its optional command-line client (click, rich, pygments) whenever those
# happen to be installed, which roughly doubles its import time. We never use it, so
# make that optional import fail fast; only the `httpx` console script depends on it.
if "httpx" not in _sys.modules:
    _sys.modules.setdefault("httpx._main", None)  # type: ignore[arg-type]

if TYPE_CHECKING:
    from envpools_cli.models import (
        TERMINAL_STATUSES,
        AgentSpec,
        ArtifactManifest,
        ArtifactManifestEntry,
        DatasetProvenance,
        EnvironmentSpec,
        EventEnvelope,
        PoolConfigV1,
        PoolDataSource,
        PoolResources,
        PoolResponse,
        PoolTask,
        PoolTaskInstance,
        PoolTemplate,
        ReproMetadata,
        RolloutRequestV1,
        TaskRef,
        TimeoutSpec,
        UsageSnapshot,
    )

from . import api as _api
from .api import *  # noqa: F403 - the documented functions, as api.__all__ lists them
from .errors import (
    APIError,
    AuthenticationError,
    ConfigurationError,
    ConflictError,
    EnvPoolsError,
    InvalidRequestError,
    InvalidResponseError,
    MissingAPIKeyError,
    NotFoundError,
    OutcomeUnknownError,
    PaymentRequiredError,
    PermissionDeniedError,
    PlanGatingError,
    RateLimitError,
    ServerError,
    StreamGapError,
    TransportError,
    ValidationError,
)
from .handle import RolloutHandle
from .http import (
    Connection,
    HTTPSession,
    RetryPolicy,
    default_session,
    set_default_session,
    use_session,
)
from .namespaces import EnvironmentPoolsClient
from .settings import (
    normalize_backend_base,
    resolve_api_key,
    resolve_api_version,
    resolve_backend_base,
)
from .sse import EventStream, ReconnectPolicy, ServerSentEvent, SSEDecoder

SynthAPIError = APIError  # the official SDK's name for the canonical API error

# The models (pydantic classes) are imported when one is first asked for: a call that
# sends and receives dicts (most of the CLI's) does not pay ~40 ms to build 40 of them.
_MODELS = frozenset(
    {
        "TERMINAL_STATUSES",
        "AgentSpec",
        "ArtifactManifest",
        "ArtifactManifestEntry",
        "DatasetProvenance",
        "EnvironmentSpec",
        "EventEnvelope",
        "PoolConfigV1",
        "PoolDataSource",
        "PoolResources",
        "PoolResponse",
        "PoolTask",
        "PoolTaskInstance",
        "PoolTemplate",
        "ReproMetadata",
        "RolloutRequestV1",
        "TaskRef",
        "TimeoutSpec",
        "UsageSnapshot",
    }
)


def __getattr__(name: str) -> Any:
    if name in _MODELS:
        from envpools_cli import models

        value = getattr(models, name)
        globals()[name] = value
        return value
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted({*globals(), *_MODELS})


__all__ = [
    "TERMINAL_STATUSES",
    "APIError",
    "AgentSpec",
    "ArtifactManifest",
    "ArtifactManifestEntry",
    "AuthenticationError",
    "ConfigurationError",
    "ConflictError",
    "Connection",
    "DatasetProvenance",
    "EnvPoolsError",
    "EnvironmentPoolsClient",
    "EnvironmentSpec",
    "EventEnvelope",
    "EventStream",
    "HTTPSession",
    "InvalidRequestError",
    "InvalidResponseError",
    "MissingAPIKeyError",
    "NotFoundError",
    "OutcomeUnknownError",
    "PaymentRequiredError",
    "PermissionDeniedError",
    "PlanGatingError",
    "PoolConfigV1",
    "PoolDataSource",
    "PoolResources",
    "PoolResponse",
    "PoolTask",
    "PoolTaskInstance",
    "PoolTemplate",
    "RateLimitError",
    "ReconnectPolicy",
    "ReproMetadata",
    "RetryPolicy",
    "RolloutHandle",
    "RolloutRequestV1",
    "SSEDecoder",
    "ServerError",
    "ServerSentEvent",
    "StreamGapError",
    "SynthAPIError",
    "TaskRef",
    "TimeoutSpec",
    "TransportError",
    "UsageSnapshot",
    "ValidationError",
    "default_session",
    "normalize_backend_base",
    "resolve_api_key",
    "resolve_api_version",
    "resolve_backend_base",
    "set_default_session",
    "use_session",
    *_api.__all__,
]
