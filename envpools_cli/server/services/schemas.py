"""The request documents of the local backend: the contract's models with this backend's limits.

Each extends the wire model of ``envpools_cli.models`` it refines, so FastAPI checks a request
with the contract's own rules. What this backend adds is either a bound that pydantic enforces
(numbers SQLite can store, timeouts a timer can wait for) or a rule the service checks with a
message of its own (harness names, preset models, pool ids, backends), written into the JSON
Schema here so that the OpenAPI document says it too.
"""

from __future__ import annotations

import copy
from typing import Annotated, Any

from pydantic import (
    BeforeValidator,
    ConfigDict,
    Field,
    Strict,
    StringConstraints,
    WithJsonSchema,
)

from envpools_cli.models import (
    HARNESS_ALIASES,
    PRESET_MODELS,
    TEMPLATE_DEFAULTS,
    AgentSpec,
    OpenWireModel,
    PoolConfigV1,
    PoolResources,
    PoolTaskInstance,
    PoolUpdate,
    RolloutRequestV1,
    TimeoutSpec,
)
from envpools_cli.server.agents import HARNESSES

__all__ = [
    "BACKENDS",
    "CURSOR_PATTERN",
    "MODEL_ID_PATTERN",
    "POOL_ID_PATTERN",
    "LocalPoolCreate",
    "LocalPoolTask",
    "LocalPoolTaskUpdate",
    "LocalPoolUpdate",
    "LocalRolloutRequest",
    "with_custom_agents",
]

BACKENDS = ("archipelago", "browser", "harbor", "kernel", "openenv")
POOL_ID_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$"
CURSOR_PATTERN = r"^[0-9]{1,18}$"
_INT32 = 2**31 - 1
_WEEK_SEC = 7 * 24 * 3600
_TEMPLATES: list[Any] = [*sorted(TEMPLATE_DEFAULTS), None]


def _whole(value: Any) -> Any:
    """JSON Schema's integers include 3.0; pydantic's strict ones do not."""
    return int(value) if isinstance(value, float) and value.is_integer() else value


# JSON types as JSON Schema means them: no "5" for 5, no 0 for false (pydantic's lax mode
# takes both, and the schema would then promise a refusal that never comes).
Count = Annotated[int, Strict(), Field(ge=0, le=_INT32), BeforeValidator(_whole)]
Signed = Annotated[int, Strict(), Field(ge=-_INT32, le=_INT32), BeforeValidator(_whole)]
Seconds = Annotated[int, Strict(), Field(ge=0, le=_WEEK_SEC), BeforeValidator(_whole)]
Usd = Annotated[float, Strict(), Field(ge=0, allow_inf_nan=False)]
Flag = Annotated[bool, Strict()]
EnvName = Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", max_length=256)]
EnvValue = Annotated[str, StringConstraints(pattern=r"^[^\x00]*$")]
_ENV_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {
            "type": "object",
            "propertyNames": {"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$", "maxLength": 256},
            "additionalProperties": {"type": "string", "pattern": r"^[^\x00]*$"},
        },
        {"type": "null"},
    ]
}
TaskId = Annotated[str, StringConstraints(min_length=1, max_length=256, pattern=r"^[^/]+$")]


class LocalTimeouts(TimeoutSpec):
    agent_sec: Seconds | None = None
    verifier_sec: Seconds | None = None
    build_sec: Seconds | None = None


# A subset of what ``model_id_problem`` lets through: segments without spaces or control
# characters (Python strips \x1c-\x1f and \x85, which a JSON Schema \s does not cover), one
# "/" apart.
_SEGMENT = r"[^\s/\x00-\x1f\x7f-\x9f]+"
MODEL_ID_PATTERN = rf"^{_SEGMENT}(/{_SEGMENT})*$"


def _agent_schema(schema: dict[str, Any]) -> None:
    """Harnesses this backend runs (and their aliases), and the model ids each takes."""
    names = {name: name for name in HARNESSES}
    names.update({alias: name for alias, name in HARNESS_ALIASES.items() if name in HARNESSES})
    schema["properties"]["harness"]["enum"] = sorted(names)
    branches: list[dict[str, Any]] = []
    free = []
    for name, target in sorted(names.items()):
        model: dict[str, Any]
        if HARNESSES[target].accepts_any_model:
            model = {"type": "string", "pattern": MODEL_ID_PATTERN}
        elif target in PRESET_MODELS:
            model = {"enum": sorted(PRESET_MODELS[target])}
        else:
            free.append(name)
            continue
        model_id = {"anyOf": [model, {"type": "null"}]}
        branches.append({"properties": {"harness": {"const": name}, "model_id": model_id}})
    if free:
        branches.append({"properties": {"harness": {"enum": free}}})
    schema["anyOf"] = branches


def with_custom_agents(document: dict[str, Any], custom: dict[str, Any]) -> dict[str, Any]:
    """The OpenAPI ``document`` naming this backend's custom agents (``agents add``) too.

    They come and go while the backend runs, so each request for the document adds the
    current ones (name -> harness class) to the built-ins the cached document names.
    """
    spec = document.get("components", {}).get("schemas", {}).get("LocalAgentSpec")
    if not custom or not isinstance(spec, dict):
        return document
    document = copy.deepcopy(document)
    spec = document["components"]["schemas"]["LocalAgentSpec"]
    harness = spec["properties"]["harness"]
    harness["enum"] = sorted({*harness.get("enum", []), *custom})
    for name, cls in sorted(custom.items()):
        model: dict[str, Any]
        if cls.accepts_any_model or not cls.models:
            model = {"type": "string", "pattern": MODEL_ID_PATTERN}
        else:
            model = {"enum": sorted(cls.models)}
        model_id = {"anyOf": [model, {"type": "null"}]}
        spec.setdefault("anyOf", []).append(
            {"properties": {"harness": {"const": name}, "model_id": model_id}}
        )
    return document


class LocalAgentSpec(AgentSpec):
    model_config = ConfigDict(json_schema_extra=_agent_schema)


class LocalRolloutRequest(RolloutRequestV1):
    agent: LocalAgentSpec
    timeouts: LocalTimeouts | None = None
    priority: Signed | None = None
    dry_run: Flag | None = None


class LocalResources(PoolResources):
    cpus: Count | None = None
    memory_mb: Count | None = None
    storage_mb: Count | None = None


class LocalPoolTask(PoolTaskInstance):
    task_id: TaskId
    backend: str = Field(..., json_schema_extra={"enum": list(BACKENDS)})
    env_vars: Annotated[dict[EnvName, EnvValue] | None, WithJsonSchema(_ENV_SCHEMA)] = Field(
        default=None,
        description="Set in the sandbox of every phase, as written (no expansion)",
    )
    resources: LocalResources | None = None


class LocalPoolTaskUpdate(LocalPoolTask):
    """``PUT pools/{pool_id}/tasks/{task_id}``: the task's whole new definition."""

    task_id: TaskId | None = Field(  # type: ignore[assignment]
        default=None, description="If given, the task's own id (it cannot change)"
    )


class _LocalPoolLimits(OpenWireModel):
    """What this backend accepts in a pool's fields, for creating and changing one."""

    template: str | None = Field(default=None, json_schema_extra={"enum": _TEMPLATES})
    resources: LocalResources | None = None
    tasks: list[LocalPoolTask] | None = None
    capacity: Count | None = None
    concurrency: Count | None = None
    priority_weight: Signed | None = None
    max_queue: Count | None = None
    max_running: Count | None = None
    spend_limit_usd: Usd | None = None
    idle_timeout_sec: Count | None = None
    max_session_age_sec: Count | None = None
    prewarm: Count | None = None
    record_llm_exchanges: Flag | None = Field(
        default=None,
        description="Keep each agent's LLM calls as llm/exchanges.jsonl (default true)",
    )


class LocalPoolCreate(_LocalPoolLimits, PoolConfigV1):
    """``POST pools``: ``pool_type`` defaults from the template, else ``sandbox``."""

    pool_id: str = Field(..., json_schema_extra={"pattern": POOL_ID_PATTERN})
    pool_type: str | None = None  # type: ignore[assignment]


class LocalPoolUpdate(_LocalPoolLimits, PoolUpdate):
    pool_type: str = Field(default=None, description="Cannot be cleared")  # type: ignore[assignment]
