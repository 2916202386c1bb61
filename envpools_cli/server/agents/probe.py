"""``envpools agents check``: one real, minimal model call per agent, as a rollout makes it.

For each agent: the provider and model a rollout of it would use, the organisation's
stored key and base URL for that provider (``egress.provider``: the same lookup as the
gateway's routes), and one request of the API the agent's CLI speaks (Anthropic
Messages, OpenAI Responses or Chat Completions, Gemini ``generateContent``) asking for a
word. The answer is judged as the gateway judges a rollout's calls (``provider_watch``):
``ok``, or ``provider_auth`` / ``provider_unreachable`` / ``provider_rate_limited`` /
``provider_error`` / ``provider_timeout`` with the provider's message (scrubbed of the
key) and what to do; ``request_rejected`` for any other 4xx (a model id or base URL the
provider does not know). The calls are made from the backend, not from a sandbox: the
verdict is on the key, the base URL and the model, in seconds, all agents at once.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import httpx

from envpools_cli.models import PRESET_DEFAULT_MODELS
from envpools_cli.server.agents.base import AgentContext, Harness
from envpools_cli.server.sandbox.egress import provider
from envpools_cli.server.sandbox.provider_watch import (
    ProviderWatch,
    RouteNames,
    classify_status,
    provider_message,
)

__all__ = ["CHECK_TIMEOUT_SEC", "ProbeTarget", "check_agents", "probe_target"]

CHECK_TIMEOUT_SEC = 8.0
"""The most one check waits for its answer (they run at once: the whole check too)."""
_PROMPT = "Reply with the word OK."
_BEARER_KEYS = ("ANTHROPIC_AUTH_TOKEN", "CLAUDE_CODE_OAUTH_TOKEN")


@dataclass(frozen=True)
class ProbeTarget:
    provider: str
    model: str
    api: str
    """``messages`` (Anthropic), ``responses`` / ``chat`` (OpenAI-style), ``gemini``."""


def probe_target(cls: type[Harness], model_id: str | None) -> ProbeTarget | None:
    """What a rollout of ``cls`` with ``model_id`` (default: the preset's) calls; None for
    an agent that calls no provider (oracle, nop)."""
    if cls.binary is None:
        return None
    model = model_id or PRESET_DEFAULT_MODELS.get(cls.name) or cls.default_model
    context = AgentContext("", "/app", {"model_id": model} if model else {}, None)
    harness = cls()
    providers = harness.providers(context)
    if not providers:
        return None
    target = harness.probe(context)
    if target is None:
        return None
    name, api_model = target
    api = harness.probe_api or _API_OF.get(name, "chat")
    return ProbeTarget(name, api_model, api)


_API_OF = {"anthropic": "messages", "gemini": "gemini"}


def _request(target: ProbeTarget, upstream: str, key: str, key_name: str) -> httpx.Request:
    headers = {"content-type": "application/json"}
    body: dict[str, Any]
    if target.api == "messages":
        url = f"{upstream}/v1/messages"
        if key_name in _BEARER_KEYS:
            headers["authorization"] = f"Bearer {key}"
        else:
            headers["x-api-key"] = key
        headers["anthropic-version"] = "2023-06-01"
        body = {
            "model": target.model,
            "max_tokens": 1,
            "messages": [{"role": "user", "content": _PROMPT}],
        }
    elif target.api == "gemini":
        url = f"{upstream}/v1beta/models/{target.model}:generateContent"
        headers["x-goog-api-key"] = key
        body = {
            "contents": [{"role": "user", "parts": [{"text": _PROMPT}]}],
            "generationConfig": {"maxOutputTokens": 1},
        }
    elif target.api == "responses":
        url = f"{upstream}/responses"
        headers["authorization"] = f"Bearer {key}"
        body = {"model": target.model, "input": _PROMPT, "max_output_tokens": 16}
    else:
        # No token cap: providers disagree on its name (max_tokens is refused by newer
        # OpenAI models), and the answer to this prompt is a word.
        url = f"{upstream}/chat/completions"
        headers["authorization"] = f"Bearer {key}"
        body = {"model": target.model, "messages": [{"role": "user", "content": _PROMPT}]}
    return httpx.Request("POST", url, headers=headers, json=body)


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}"


def check_one(
    name: str,
    cls: type[Harness],
    credentials: dict[str, tuple[str, str]],
    model_id: str | None = None,
    *,
    timeout: float = CHECK_TIMEOUT_SEC,
    send: Callable[[httpx.Request, float], httpx.Response] | None = None,
) -> dict[str, Any]:
    """One agent's verdict: ``{agent, provider, model, endpoint, verdict, ok, message,
    seconds}``; ``verdict`` is ``ok``, a provider code, ``credentials_missing`` or
    ``request_rejected``."""
    started = time.monotonic()
    row: dict[str, Any] = {"agent": name, "provider": None, "model": model_id, "endpoint": None}

    def verdict(code: str, message: str, **extra: Any) -> dict[str, Any]:
        seconds = round(time.monotonic() - started, 2)
        return {
            **row,
            "verdict": code,
            "ok": code == "ok",
            "message": message,
            "seconds": seconds,
            **extra,
        }

    try:
        target = probe_target(cls, model_id)
    except Exception as exc:  # a custom agent's manifest may not say
        return verdict("not_checked", f"cannot tell what {name} calls: {exc}")
    if target is None:
        return verdict("not_checked", f"{name} calls no LLM provider")
    wanted = provider(target.provider)
    row.update(provider=target.provider, model=target.model)
    context = AgentContext("", "/app", {}, None, credentials=credentials)
    key = context.secret(*wanted.key_names)
    upstream = wanted.upstream(context.secret(wanted.base_url_name))
    if not key or not upstream:
        missing = wanted.key_names[0] if not key else wanted.base_url_name
        return verdict(
            "credentials_missing",
            f"no {missing} credential: store it (envpools credentials store {missing} "
            f"--type {missing})",
        )
    key_name = context.which(*wanted.key_names) or wanted.key_names[0]
    row["endpoint"] = _origin(upstream)
    stored = upstream != wanted.upstream(None)
    names = RouteNames(key_name, wanted.base_url_name, _origin(upstream), stored_url=stored)
    watch = ProviderWatch({target.provider: names}, timeout_sec=timeout)
    request = _request(target, upstream, key, key_name)

    def scrub(text: str) -> str:
        return text.replace(key, "[redacted]")

    try:
        if send is not None:
            response = send(request, timeout)
        else:
            with httpx.Client(timeout=httpx.Timeout(timeout, connect=min(5.0, timeout))) as http:
                response = http.send(request)
    except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
        watch.unreachable(target.provider, scrub(f"connection failed ({exc})"))
    except httpx.TimeoutException:
        watch.timed_out(target.provider, f"POST {urlsplit(str(request.url)).path}: no answer")
    except httpx.HTTPError as exc:
        watch.answered(target.provider, "POST", 502, scrub(str(exc) or type(exc).__name__))
    else:
        said = scrub(provider_message(response.content)) if response.status_code >= 400 else ""
        code = classify_status(response.status_code)
        if code == "ok":
            return verdict("ok", f"{target.provider} answered {response.status_code}")
        if code is None:
            return verdict(
                "request_rejected",
                f"the provider at {names.where} answered {response.status_code}"
                f"{': ' + said if said else ''}; what to do: check the model id "
                f"({target.model}) and the {wanted.base_url_name} credential (an OpenAI-style "
                "base URL ends in /v1, an Anthropic one does not)",
                status=response.status_code,
            )
        watch.answered(target.provider, "POST", response.status_code, said)
    found = watch.verdict(final=True)
    assert found is not None  # every path above that gets here recorded a failure
    return verdict(found.code, scrub(found.message), status=found.status)


def check_agents(
    classes: dict[str, type[Harness]],
    credentials: dict[str, tuple[str, str]],
    model_id: str | None = None,
    *,
    timeout: float = CHECK_TIMEOUT_SEC,
) -> list[dict[str, Any]]:
    """Every agent of ``classes`` that calls a provider, checked at once."""
    chosen = {n: c for n, c in classes.items() if c.binary is not None}
    if not chosen:
        return []
    with ThreadPoolExecutor(len(chosen)) as pool:
        futures = [
            pool.submit(check_one, name, cls, credentials, model_id, timeout=timeout)
            for name, cls in chosen.items()
        ]
        return [f.result() for f in futures]
