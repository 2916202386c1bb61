"""Wire models shared by the client and the local backend (CONTRACT.md §3).

Field names are the wire names. Request models keep unknown fields (``extra="allow"``)
because servers must accept and keep them, and every model dumps with
``exclude_none=True`` by default so that optional fields a caller did not set never
reach the wire as ``null``.
"""

from __future__ import annotations

import os
from collections.abc import Iterator, KeysView, Mapping
from enum import StrEnum
from typing import Any, ClassVar

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, field_validator, model_validator

from envpools_cli.shared import TERMINAL_STATUSES as TERMINAL_NAMES

__all__ = [
    "ACTIVE_STATUSES",
    "SUCCESS_STATUSES",
    "TERMINAL_STATUSES",
    "Account",
    "AgentSpec",
    "ArtifactManifest",
    "ArtifactManifestEntry",
    "ArtifactPage",
    "Capabilities",
    "Credential",
    "CredentialCreate",
    "CredentialRotate",
    "DatasetProvenance",
    "EnvironmentSpec",
    "ErrorBody",
    "ErrorResponse",
    "EventEnvelope",
    "Pool",
    "PoolConfigV1",
    "PoolDataSource",
    "PoolMetrics",
    "PoolResources",
    "PoolResponse",
    "PoolTask",
    "PoolTaskInstance",
    "PoolTemplate",
    "PoolUpdate",
    "QueueEntry",
    "QueueStatus",
    "ReplayRequest",
    "ReproMetadata",
    "Rollout",
    "RolloutBatchError",
    "RolloutBatchRequest",
    "RolloutBatchResult",
    "RolloutDryRun",
    "RolloutError",
    "RolloutPage",
    "RolloutRequestV1",
    "RolloutStatus",
    "RolloutSummary",
    "RolloutValidation",
    "SchemaDocument",
    "SupportBundle",
    "TaskRef",
    "TimeoutSpec",
    "UsageSnapshot",
]


class RolloutStatus(StrEnum):
    """A rollout's lifecycle status (CONTRACT §4); members compare equal to their wire strings.

    ``completed`` is the hosted service's older spelling of ``succeeded``; both are accepted.
    """

    QUEUED = "queued"
    STARTING = "starting"
    RUNNING = "running"
    VERIFYING = "verifying"
    SUCCEEDED = "succeeded"
    COMPLETED = "completed"
    FAILED = "failed"
    ERROR = "error"
    CANCELLED = "cancelled"

    @classmethod
    def parse(cls, value: object) -> RolloutStatus | None:
        """The status a wire value names (any case), or None for a missing or unknown one."""
        try:
            return cls(str(value).strip().lower()) if value is not None else None
        except ValueError:
            return None

    @property
    def is_terminal(self) -> bool:
        """True once the rollout can never change again."""
        return self in TERMINAL_STATUSES

    @property
    def is_success(self) -> bool:
        """True when the agent ran and the verifier produced a reward (any value)."""
        return self in SUCCESS_STATUSES

    @staticmethod
    def terminal(value: object) -> bool:
        """Whether a wire value (a rollout's ``status``) is a terminal status."""
        status = RolloutStatus.parse(value)
        return status is not None and status.is_terminal

    @staticmethod
    def succeeded(value: object) -> bool:
        """Whether a wire value is a success status (``succeeded`` or ``completed``)."""
        status = RolloutStatus.parse(value)
        return status is not None and status.is_success


#: Statuses after which a rollout never changes again (CONTRACT §4).
TERMINAL_STATUSES: frozenset[str] = frozenset(RolloutStatus(name) for name in TERMINAL_NAMES)
#: Terminal statuses that mean the verifier produced a reward.
SUCCESS_STATUSES: frozenset[str] = frozenset({RolloutStatus.SUCCEEDED, RolloutStatus.COMPLETED})
#: Statuses of a rollout that holds a sandbox (started, not yet ended).
ACTIVE_STATUSES: frozenset[str] = frozenset(
    {RolloutStatus.STARTING, RolloutStatus.RUNNING, RolloutStatus.VERIFYING}
)

#: Models each preset harness accepts; the first entry of a preset is not special,
#: the default lives in ``PRESET_DEFAULT_MODELS``.
PRESET_MODELS: dict[str, frozenset[str]] = {
    "claude-code": frozenset({"claude-sonnet-4.5"}),
    "opencode": frozenset({"claude-sonnet-4.5"}),
    "codex": frozenset({"gpt-5.2-codex", "gpt-5.1-codex-mini", "gpt-5.3-codex-spark"}),
}
HARNESS_ALIASES: dict[str, str] = {"claude": "claude-code"}
"""Other names people use for a harness (the CLI's binary), accepted in ``AgentSpec``."""
PRESET_DEFAULT_MODELS: dict[str, str] = {
    "claude-code": "claude-sonnet-4.5",
    "opencode": "claude-sonnet-4.5",
    "codex": "gpt-5.2-codex",
}


class WireModel(BaseModel):
    """Base of every wire model: ``exclude_none`` dumps, names as on the wire.

    A model is also a read-only mapping of the fields it was given (by the server, for a
    response), so code written for the dicts the seed documents keeps working:
    ``pool["pool_id"]``, ``pool.get("tasks")``, ``"status" in pool``, ``dict(pool)``.
    """

    # A model's validator is built when it is first used, not when this module is
    # imported: a command that validates nothing (most) does not pay ~60 ms for 40 models.
    model_config = ConfigDict(populate_by_name=True, defer_build=True)

    #: Other names a key may be read under (the SDK's spelling -> the wire field).
    KEY_ALIASES: ClassVar[dict[str, str]] = {}

    def _as_mapping(self) -> dict[str, Any]:
        return super().model_dump(exclude_unset=True)

    def _key(self, key: str) -> str:
        view = self._as_mapping()
        return key if key in view else self.KEY_ALIASES.get(key, key)

    def __getitem__(self, key: str) -> Any:
        return self._as_mapping()[self._key(key)]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._key(key) in self._as_mapping()

    def __iter__(self) -> Iterator[str]:  # type: ignore[override]
        return iter(self._as_mapping())

    def __len__(self) -> int:
        return len(self._as_mapping())

    def get(self, key: str, default: Any = None) -> Any:
        return self._as_mapping().get(self._key(key), default)

    def keys(self) -> KeysView[str]:
        return self._as_mapping().keys()

    def values(self) -> list[Any]:
        return list(self._as_mapping().values())

    def items(self) -> list[tuple[str, Any]]:
        return list(self._as_mapping().items())

    def model_dump(self, *, exclude_none: bool = True, **kwargs: Any) -> dict[str, Any]:
        return super().model_dump(exclude_none=exclude_none, **kwargs)

    def model_dump_json(self, *, exclude_none: bool = True, **kwargs: Any) -> str:
        return super().model_dump_json(exclude_none=exclude_none, **kwargs)

    def to_payload(self) -> dict[str, Any]:
        """The JSON-ready dict sent on the wire."""
        return self.model_dump(mode="json", by_alias=False)


class OpenWireModel(WireModel):
    """A request model that keeps fields it does not know."""

    model_config = ConfigDict(populate_by_name=True, extra="allow", defer_build=True)


Mapping.register(WireModel)


class ContainerNames:
    """The SDK 0.9.6 spelling of the task app fields, readable next to the seed's.

    The seed says ``task_app_url``/``task_app_id``; SDK 0.9.6 says ``container_url``/
    ``container_id``. Both are accepted as input (validation aliases) and both read back.
    """

    KEY_ALIASES: ClassVar[dict[str, str]] = {
        "container_url": "task_app_url",
        "container_id": "task_app_id",
    }
    task_app_url: str | None
    task_app_id: str | None

    @property
    def container_url(self) -> str | None:
        return self.task_app_url

    @property
    def container_id(self) -> str | None:
        return self.task_app_id


class TaskRef(OpenWireModel):
    dataset: str = Field(..., description="Dataset identifier")
    task_id: str = Field(..., description="Task identifier within the dataset")
    version: str | None = Field(default=None, description="Dataset/task version")


def check_agent_model(harness: str, model_id: str | None) -> str | None:
    """Validate ``model_id`` for a preset harness; return the model to use.

    Raises ValueError with the SDK's exact texts. Harnesses that are not presets are
    returned unchanged: whether a backend offers them is the backend's call.
    """
    allowed = PRESET_MODELS.get(harness)
    if allowed is None:
        return model_id
    if model_id is None:
        return PRESET_DEFAULT_MODELS[harness]
    if model_id not in allowed:
        raise ValueError(
            f"Model {model_id!r} is not allowed for harness {harness!r}. "
            f"Allowed models: {sorted(allowed)}"
        )
    return model_id


def model_id_problem(model_id: str) -> str | None:
    """Why ``model_id`` cannot be any provider's model id, or None when it can be."""
    if not model_id.strip() or model_id != model_id.strip():
        return f"{model_id!r} is not a model id (it is blank or has spaces around it)"
    if model_id.startswith("/") or model_id.endswith("/") or "//" in model_id:
        return f"{model_id!r} is not a model id (write provider/model, or just the model)"
    return None


class AgentSpec(OpenWireModel):
    harness: str = Field(
        ...,
        validation_alias=AliasChoices("harness", "kind"),
        description="Agent harness (claude-code, opencode, codex, or a backend harness)",
    )
    harness_version: str | None = Field(default=None, description="Pinned harness version")
    model_id: str | None = Field(default=None, description="Provider model id")
    permission_mode: str | None = None
    agent_mode: str | None = None
    variant: str | None = None

    @field_validator("harness")
    @classmethod
    def _canonical_harness(cls, value: str) -> str:
        return HARNESS_ALIASES.get(value, value)

    @classmethod
    def preset(
        cls, name: str, *, model_id: str | None = None, harness_version: str | None = None
    ) -> AgentSpec:
        """An AgentSpec for a known harness, with its model checked against the allow-list."""
        if name not in PRESET_DEFAULT_MODELS:
            raise ValueError(
                f"Unknown preset {name!r}. Available presets: {sorted(PRESET_DEFAULT_MODELS)}"
            )
        resolved = check_agent_model(name, model_id)
        return cls(harness=name, model_id=resolved, harness_version=harness_version)

    @classmethod
    def claude_code(
        cls, *, model_id: str | None = None, harness_version: str | None = None
    ) -> AgentSpec:
        return cls.preset("claude-code", model_id=model_id, harness_version=harness_version)

    @classmethod
    def opencode(
        cls, *, model_id: str | None = None, harness_version: str | None = None
    ) -> AgentSpec:
        return cls.preset("opencode", model_id=model_id, harness_version=harness_version)

    @classmethod
    def codex(cls, *, model_id: str | None = None, harness_version: str | None = None) -> AgentSpec:
        return cls.preset("codex", model_id=model_id, harness_version=harness_version)


class EnvironmentSpec(OpenWireModel):
    backend: str = Field(
        ..., description="Backend provider (harbor, browser, openenv, archipelago)"
    )
    docker_image: str | None = None


class TimeoutSpec(OpenWireModel):
    agent_sec: int | None = None
    verifier_sec: int | None = None
    build_sec: int | None = None


class PoolResources(OpenWireModel):
    cpus: int | None = None
    memory_mb: int | None = None
    storage_mb: int | None = None


class DatasetProvenance(OpenWireModel):
    git_url: str | None = None
    git_commit_id: str | None = None
    task_path: str | None = None
    dataset_ref: str | None = None
    task_id: str | None = None
    version: str | None = None


class ReproMetadata(OpenWireModel):
    git_ref: str | None = None
    git_commit_id: str | None = None
    image_digest: str | None = None
    agent_version: str | None = None
    sandbox_agent_version: str | None = None
    model_id: str | None = None
    dataset: DatasetProvenance | None = None


class PoolDataSource(OpenWireModel):
    type: str | None = None
    url: str | None = None
    git_ref: str | None = None
    subdir: str | None = None
    credential: str | None = None
    repo: str | None = None
    revision: str | None = None
    path: str | None = None
    upload_id: str | None = None


class PoolTaskInstance(OpenWireModel):
    task_id: str
    backend: str
    data_source: PoolDataSource | None = None
    docker_image: str | None = None
    registry_credential: str | None = None
    task_path: str | None = None
    env_vars: dict[str, str] | None = None
    resources: PoolResources | None = None
    harbor: dict[str, Any] | None = None
    harbor_input: dict[str, Any] | None = None
    browser: dict[str, Any] | None = None
    openenv_deployment: dict[str, Any] | None = None
    openenv_rollout: dict[str, Any] | None = None
    archipelago: dict[str, Any] | None = None
    config: dict[str, Any] | None = None


def _rollout_request_schema(schema: dict[str, Any]) -> None:
    """What ``_check_required`` enforces, in JSON Schema: a target, a task app, timeouts."""
    target = [
        {"required": ["pool_id"], "properties": {"pool_id": {"type": "string", "minLength": 1}}},
        {"required": ["pool_tags"], "properties": {"pool_tags": {"type": "array", "minItems": 1}}},
        {"required": ["environment"], "properties": {"environment": {"type": "object"}}},
    ]
    app = [
        {"required": [name], "properties": {name: {"type": "string"}}}
        for name in ("task_app_url", "task_app_id")
    ]
    schema["allOf"] = [{"anyOf": target}, {"anyOf": app}]
    schema.setdefault("required", []).append("timeouts")
    schema["properties"]["timeouts"] = {
        "allOf": [
            {"type": "object"},
            schema["properties"]["timeouts"],
        ]
    }


class RolloutRequestV1(ContainerNames, OpenWireModel):
    model_config = ConfigDict(
        populate_by_name=True, extra="allow", json_schema_extra=_rollout_request_schema
    )

    task_ref: TaskRef
    agent: AgentSpec
    environment: EnvironmentSpec | None = None
    timeouts: TimeoutSpec | None = None
    pool_id: str | None = None
    pool_tags: list[str] | None = None
    priority: int | None = None
    dry_run: bool | None = None
    task_app_url: str | None = Field(
        default=None, validation_alias=AliasChoices("task_app_url", "container_url")
    )
    task_app_id: str | None = Field(
        default=None, validation_alias=AliasChoices("task_app_id", "container_id")
    )
    metadata: dict[str, Any] | None = None
    repro_metadata: ReproMetadata | None = None

    @model_validator(mode="after")
    def _check_required(self) -> RolloutRequestV1:
        # Order and texts are part of the contract: callers match on them.
        if not (self.pool_id or self.pool_tags or self.environment):
            raise ValueError("Provide pool_id, pool_tags, or environment")
        if self.task_app_url is None and self.task_app_id is None:
            raise ValueError("Provide either task_app_url or task_app_id")
        if self.timeouts is None:
            raise ValueError("timeouts is required")
        return self


class PoolTemplate(StrEnum):
    """Pool templates for hosted task apps."""

    HARBOR_CODING = "HARBOR_CODING"
    HARBOR_BROWSER = "HARBOR_BROWSER"
    ARCHIPELAGO = "ARCHIPELAGO"
    OPENENV = "OPENENV"


#: template -> (pool_type, backend)
TEMPLATE_DEFAULTS: dict[str, tuple[str, str]] = {
    PoolTemplate.HARBOR_CODING.value: ("sandbox", "harbor"),
    PoolTemplate.HARBOR_BROWSER.value: ("browser", "kernel"),
    PoolTemplate.ARCHIPELAGO.value: ("archipelago", "archipelago"),
    PoolTemplate.OPENENV.value: ("openenv", "openenv"),
}


class PoolConfigV1(OpenWireModel):
    pool_id: str
    pool_type: str
    org_id: str | None = None
    backend: str | None = None
    template: str | None = None
    capacity: int | None = None
    concurrency: int | None = None
    priority_weight: int | None = None
    resources: PoolResources | None = None
    tags: list[str] | None = None
    policy_tags: list[str] | None = None
    allowed_agents: list[str] | None = None
    allowed_models: list[str] | None = None
    tasks: list[PoolTaskInstance] | None = None
    max_queue: int | None = None
    max_running: int | None = None
    spend_limit_usd: float | None = None
    idle_timeout_sec: int | None = None
    max_session_age_sec: int | None = None
    reuse_policy: str | None = None
    prewarm: int | None = None


class EventEnvelope(OpenWireModel):
    """Canonical SSE event envelope."""

    id: str | None = Field(default=None, description="Event ID for resume")
    event: str = Field(
        default="message", description="Event type (lifecycle, agent, verifier, reward, heartbeat)"
    )
    seq: int | None = Field(default=None, description="Monotonic sequence number")
    timestamp: str | None = Field(default=None, description="RFC 3339 UTC timestamp")
    data: dict[str, Any] | str | None = Field(default=None, description="Event payload")


class ArtifactManifestEntry(OpenWireModel):
    path: str = Field(..., description="Artifact path relative to rollout root")
    size_bytes: int | None = None
    sha256: str | None = None
    content_type: str | None = None
    created_at: str | None = None
    provenance: str | None = Field(default=None, description="agent, verifier or worker")
    download_url: str | None = None


class ArtifactManifest(OpenWireModel):
    rollout_id: str
    artifacts: list[ArtifactManifestEntry] = Field(default_factory=list)
    total_size_bytes: int | None = None
    created_at: str | None = None


class UsageSnapshot(OpenWireModel):
    rollout_id: str
    wall_time_sec: float | None = None
    sandbox_minutes: float | None = None
    browser_minutes: float | None = None
    bytes_uploaded: int | None = None
    bytes_downloaded: int | None = None
    llm_input_tokens: int | None = None
    llm_output_tokens: int | None = None
    cost_usd: float | None = Field(
        default=None, description="Estimated cost in USD; null when some usage is unpriced"
    )
    provider_costs: dict[str, float] | None = Field(
        default=None, description="Per-provider cost breakdown"
    )
    llm_cache_tokens: int | None = Field(
        default=None, description="Input tokens served from the provider's cache"
    )
    model_id: str | None = Field(default=None, description="The model the agent reported")
    unpriced_models: list[str] | None = Field(
        default=None, description="Models whose tokens have no price: the cost is unknown"
    )


class PoolResponse(ContainerNames, OpenWireModel):
    """A pool as the API returns it."""

    pool_id: str
    pool_type: str | None = None
    backend: str | None = None
    template: str | None = None
    task_app_url: str | None = Field(
        default=None, validation_alias=AliasChoices("task_app_url", "container_url")
    )
    task_app_id: str | None = Field(
        default=None, validation_alias=AliasChoices("task_app_id", "container_id")
    )
    org_id: str | None = None
    capacity: int | None = None
    concurrency: int | None = None
    tasks: list[dict[str, Any]] | None = None
    status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PoolResponse:
        """Build from a raw API dict; the id may be under ``pool_id`` or ``id``."""
        body = dict(data)
        body["pool_id"] = str(body.get("pool_id") or body.get("id") or "")
        return cls.model_validate(body)


def _task_app_url(task_app_url: str | None, container_url: str | None, *, given: bool) -> str:
    """The one task app URL of a factory call, under either name."""
    if task_app_url is not None and container_url is not None and task_app_url != container_url:
        raise ValueError("give task_app_url or container_url, not both")
    url = task_app_url if task_app_url is not None else container_url
    if url is None and not given:
        raise TypeError("task_app_url (or container_url) is required")
    return url or ""


def _resources(value: PoolResources | dict[str, Any] | None) -> PoolResources | None:
    if isinstance(value, dict):
        return PoolResources.model_validate(value)
    return value


class PoolTask:
    """Factories for PoolTaskInstance objects of the common backends."""

    @staticmethod
    def from_docker(
        task_id: str,
        image: str,
        *,
        env: dict[str, str] | None = None,
        resources: PoolResources | dict[str, Any] | None = None,
        registry_credential: str | None = None,
        task_path: str | None = None,
        config: dict[str, Any] | None = None,
    ) -> PoolTaskInstance:
        return PoolTaskInstance(
            task_id=task_id,
            backend="harbor",
            docker_image=image,
            env_vars=env,
            resources=_resources(resources),
            registry_credential=registry_credential,
            task_path=task_path,
            config=config,
        )

    @staticmethod
    def from_openenv(
        task_id: str,
        task_app_url: str | None = None,
        *,
        container_url: str | None = None,
        env: dict[str, str] | None = None,
        resources: PoolResources | dict[str, Any] | None = None,
        openenv_deployment: dict[str, Any] | None = None,
        openenv_rollout: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> PoolTaskInstance:
        """An OpenEnv task; ``container_url=`` is SDK 0.9.6's name for ``task_app_url``."""
        url = _task_app_url(task_app_url, container_url, given=openenv_deployment is not None)
        return PoolTaskInstance(
            task_id=task_id,
            backend="openenv",
            env_vars=env,
            resources=_resources(resources),
            openenv_deployment=openenv_deployment or {"task_app_url": url},
            openenv_rollout=openenv_rollout,
            config=config,
        )

    @staticmethod
    def from_browser(
        task_id: str,
        task_app_url: str | None = None,
        *,
        container_url: str | None = None,
        profile: str | None = None,
        env: dict[str, str] | None = None,
        resources: PoolResources | dict[str, Any] | None = None,
        browser: dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> PoolTaskInstance:
        """A browser task; ``container_url=`` is SDK 0.9.6's name for ``task_app_url``."""
        url = _task_app_url(task_app_url, container_url, given=bool(browser))
        browser_config = dict(browser) if browser else {"task_app_url": url}
        if profile is not None:
            browser_config.setdefault("profile", profile)
        return PoolTaskInstance(
            task_id=task_id,
            backend="browser",
            env_vars=env,
            resources=_resources(resources),
            browser=browser_config,
            config=config,
        )

    @staticmethod
    def from_local(
        task_id: str,
        path: str,
        *,
        env: dict[str, str] | None = None,
        resources: PoolResources | dict[str, Any] | None = None,
        config: dict[str, Any] | None = None,
    ) -> PoolTaskInstance:
        """A Harbor-format task directory on the machine running the local backend."""
        return PoolTaskInstance(
            task_id=task_id,
            backend="harbor",
            data_source=PoolDataSource(type="local", path=os.path.abspath(path)),
            env_vars=env,
            resources=_resources(resources),
            config=config,
        )


# --- documents the API answers with (CONTRACT §2), and the error envelope (§6) ---------------
#
# They describe responses: every field a server may leave out is optional, and unknown fields
# are allowed (a newer server may add some). The local backend documents its OpenAPI with them.


class ErrorBody(OpenWireModel):
    code: str = Field(..., description="Stable machine-readable code, e.g. not_found")
    message: str
    request_id: str | None = Field(default=None, description="Also in the x-request-id header")
    retryable: bool = False
    details: Any = Field(default=None, description="For validation_error: the fields at fault")


class ErrorResponse(OpenWireModel):
    """Every non-2xx response body."""

    error: ErrorBody


class RolloutError(OpenWireModel):
    code: str
    message: str


class Rollout(OpenWireModel):
    rollout_id: str
    status: RolloutStatus
    pool_id: str | None = None
    task_ref: TaskRef | None = None
    agent: dict[str, Any] | None = None
    environment: dict[str, Any] | None = None
    timeouts: dict[str, Any] | None = None
    priority: int | None = None
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    started_at: str | None = None
    finished_at: str | None = None
    reward_primary: float | None = None
    rewards: dict[str, float] | None = None
    error: RolloutError | None = None
    agent_exit_code: int | None = None
    replay_of: str | None = None
    usage: UsageSnapshot | None = None


class RolloutDryRun(OpenWireModel):
    """``POST rollouts`` with ``dry_run``: what would happen, nothing created."""

    rollout_id: None = None
    status: str = "dry_run"
    dry_run: bool = True
    valid: bool = True
    selected_pool_id: str | None = None
    routing_debug: dict[str, Any] | None = None


class RolloutValidation(OpenWireModel):
    valid: bool
    selected_pool_id: str | None = None
    routing_debug: dict[str, Any] | None = None
    error: dict[str, Any] | None = None


class RolloutBatchRequest(OpenWireModel):
    requests: list[dict[str, Any]] = Field(
        ...,
        max_length=1000,
        description="RolloutRequestV1 objects; each is checked on its own and a failure is "
        "reported in `errors` by its index",
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Merged into every request's metadata"
    )


class RolloutBatchError(OpenWireModel):
    index: int
    error: RolloutError


class RolloutBatchResult(OpenWireModel):
    rollouts: list[Rollout]
    errors: list[RolloutBatchError]


class RolloutPage(OpenWireModel):
    rollouts: list[Rollout]
    next_cursor: str | None = None


class RolloutSummary(OpenWireModel):
    rollout_id: str
    status: RolloutStatus
    reward_primary: float | None = None
    rewards: dict[str, float] | None = None
    error: RolloutError | None = None
    last_event: EventEnvelope | None = None
    event_count: int | None = None


class ReplayRequest(OpenWireModel):
    overrides: dict[str, Any] | None = Field(
        default=None, description="Deep-merged into the original request"
    )
    metadata: dict[str, Any] | None = Field(
        default=None, description="Merged into the original metadata"
    )


class ArtifactPage(ArtifactManifest):
    next_cursor: str | None = None
    complete: bool | None = Field(default=None, description="False while the rollout runs")


class SupportBundle(OpenWireModel):
    """Everything about one rollout for a bug report; secret-looking values redacted."""

    rollout: dict[str, Any]
    request: dict[str, Any]
    routing: dict[str, Any] | None = None
    events: list[EventEnvelope]
    events_truncated: bool | None = None
    artifacts: ArtifactPage
    usage: UsageSnapshot
    backend: dict[str, Any] | None = None
    generated_at: str | None = None


class Pool(PoolConfigV1):
    """A pool as the API returns it: its configuration, tasks and state."""

    status: str | None = None
    created_at: str | None = None
    updated_at: str | None = None


class PoolUpdate(PoolConfigV1):
    """``PUT pools/{pool_id}``: any subset of the pool's fields; ``tasks`` replaces them all."""

    pool_id: str | None = Field(  # type: ignore[assignment]
        default=None, description="If given, the pool's own id"
    )
    pool_type: str | None = None  # type: ignore[assignment]


class PoolMetrics(OpenWireModel):
    pool_id: str
    queue_depth: int
    running: int
    total_count: int
    success_rate: float | None = None
    concurrency: int | None = None


class QueueEntry(OpenWireModel):
    pool_id: str | None = None
    queued: int
    running: int


class QueueStatus(OpenWireModel):
    pools: list[QueueEntry]
    total_queued: int
    total_running: int
    max_running: int | None = None


class Capabilities(OpenWireModel):
    agents: list[dict[str, Any]]
    models: dict[str, list[str]] | None = None
    pool_types: list[str] | None = None
    backends: dict[str, Any] | None = None
    features: dict[str, bool] | None = None


class SchemaDocument(OpenWireModel):
    version: str
    schemas: dict[str, Any]


class Account(OpenWireModel):
    org_id: str
    plan: str
    feature_flags: dict[str, Any] = Field(default_factory=dict)


class CredentialCreate(OpenWireModel):
    credential_name: str = Field(..., min_length=1)
    credential_type: str = Field(..., min_length=1)
    credential_value: str = Field(..., min_length=1, description="Stored; never returned")
    metadata: dict[str, Any] | None = None


class CredentialRotate(OpenWireModel):
    credential_value: str = Field(..., min_length=1)


class Credential(OpenWireModel):
    """A stored credential, without its value."""

    credential_id: str
    credential_name: str
    credential_type: str
    metadata: dict[str, Any] | None = None
    created_at: str | None = None
    updated_at: str | None = None
    active: bool | None = None
