"""Whether the server would certainly reject a rollout request, asked before sending it.

The request's shape is checked against ``RolloutRequestV1``; the harness and model
against the presets and, beyond them, the backend's capabilities (fetched once per
backend and API version, then cached for the process).
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .errors import APIError, InvalidRequestError, TransportError

if TYPE_CHECKING:
    import pydantic

__all__ = ["backend_capabilities", "check_rollout_request", "clear_capabilities_cache"]

Capabilities = Callable[[], dict[str, Any] | None]

_capabilities_cache: dict[str, dict[str, Any]] = {}
_capabilities_lock = threading.Lock()


def clear_capabilities_cache() -> None:
    """Forget the backends' capabilities learnt while validating requests."""
    with _capabilities_lock:
        _capabilities_cache.clear()


def backend_capabilities(key: str, fetch: Callable[[], dict[str, Any]]) -> dict[str, Any] | None:
    """The capabilities of the backend ``key`` names, fetched once, or None if unknown."""
    with _capabilities_lock:
        caps = _capabilities_cache.get(key)
    if caps is None:
        try:
            caps = fetch()
        except (APIError, TransportError):
            return None
        with _capabilities_lock:
            _capabilities_cache[key] = caps
    return caps


def _format_pydantic(exc: pydantic.ValidationError) -> list[str]:
    messages = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        text = str(error.get("msg", "invalid")).removeprefix("Value error, ")
        messages.append(f"{where}: {text}" if where else text)
    return messages


def _offered_agents(caps: dict[str, Any]) -> dict[str, list[str] | None]:
    """Harness -> allowed models (None: any) the backend offers."""
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


def _takes_any_model(caps: dict[str, Any], harness: str) -> bool:
    return any(
        isinstance(entry, dict)
        and entry.get("name") == harness
        and entry.get("accepts_any_model") is True
        for entry in caps.get("agents") or []
    )


def check_rollout_request(payload: Mapping[str, Any], capabilities: Capabilities) -> None:
    """Raise InvalidRequestError if the server would certainly reject ``payload``.

    ``capabilities`` is asked only when the presets cannot decide.
    """
    import pydantic

    from envpools_cli.models import (
        PRESET_MODELS,
        RolloutRequestV1,
        check_agent_model,
        model_id_problem,
    )

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
            if not _takes_any_model(capabilities() or {}, harness):
                raise InvalidRequestError(str(exc)) from None
            if model_id is not None and (problem := model_id_problem(model_id)):
                raise InvalidRequestError(problem) from None
        return
    caps = capabilities()
    if caps is None:
        return  # capabilities unknown: let the server decide
    offered = _offered_agents(caps)
    if harness not in offered:
        available = sorted(set(offered) | set(PRESET_MODELS))
        raise InvalidRequestError(
            f"Unknown harness {harness!r}. Available harnesses: {', '.join(available)}"
        )
    allowed = offered[harness]
    if model_id is not None and _takes_any_model(caps, harness):
        # The listed models are presets, not a limit (gemini-cli, a custom agent...).
        if problem := model_id_problem(model_id):
            raise InvalidRequestError(problem)
        return
    if model_id is not None and allowed is not None and model_id not in allowed:
        raise InvalidRequestError(
            f"Model {model_id!r} is not allowed for harness {harness!r}. "
            f"Allowed models: {sorted(allowed)}"
        )
