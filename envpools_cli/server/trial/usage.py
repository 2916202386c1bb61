"""Usage and cost of a rollout, priced from a table that can be configured.

The table is TOML (or JSON) with the shape of ``DEFAULT_PRICES``; entries given there
replace the defaults. Prices are USD per million tokens and per sandbox minute. Tokens of
a model the table does not price (and whose CLI reported no cost) leave ``cost_usd``
null and name the model in ``unpriced_models``: the cost is unknown, not zero.
"""

from __future__ import annotations

import copy
import json
import re
import tomllib
from pathlib import Path
from typing import Any

from envpools_cli.server.agents import TokenUsage

__all__ = ["DEFAULT_PRICES", "load_prices", "price_tokens", "usage_snapshot"]

DEFAULT_PRICES: dict[str, Any] = {
    # The local backend runs on your own machine: sandbox time is free unless you say so.
    "sandbox_minute_usd": 0.0,
    "models": {
        "claude-sonnet-4.5": {
            "provider": "anthropic",
            "input": 3.0,
            "output": 15.0,
            "cache_read": 0.30,
        },
        "gpt-5.2-codex": {"provider": "openai", "input": 1.25, "output": 10.0, "cache_read": 0.125},
        "gpt-5.1-codex-mini": {
            "provider": "openai",
            "input": 0.25,
            "output": 2.0,
            "cache_read": 0.025,
        },
        "gpt-5.3-codex-spark": {
            "provider": "openai",
            "input": 1.25,
            "output": 10.0,
            "cache_read": 0.125,
        },
        "gpt-5.2": {"provider": "openai", "input": 1.25, "output": 10.0, "cache_read": 0.125},
        "gpt-5-mini": {"provider": "openai", "input": 0.25, "output": 2.0, "cache_read": 0.025},
        "gemini-2.5-pro": {"provider": "gemini", "input": 1.25, "output": 10.0, "cache_read": 0.31},
        "gemini-2.5-flash": {
            "provider": "gemini",
            "input": 0.30,
            "output": 2.50,
            "cache_read": 0.075,
        },
        "gemini-3-pro-preview": {
            "provider": "gemini",
            "input": 2.0,
            "output": 12.0,
            "cache_read": 0.20,
        },
        "qwen3-coder-plus": {
            "provider": "dashscope",
            "input": 1.0,
            "output": 5.0,
            "cache_read": 0.10,
        },
        "qwen3-coder-flash": {
            "provider": "dashscope",
            "input": 0.30,
            "output": 1.50,
            "cache_read": 0.03,
        },
    },
}


def load_prices(path: Path | None) -> dict[str, Any]:
    prices: dict[str, Any] = copy.deepcopy(DEFAULT_PRICES)
    if path is None or not path.is_file():
        return prices
    text = path.read_text()
    loaded: dict[str, Any] = json.loads(text) if path.suffix == ".json" else tomllib.loads(text)
    if "sandbox_minute_usd" in loaded:
        prices["sandbox_minute_usd"] = float(loaded["sandbox_minute_usd"])
    for model, entry in (loaded.get("models") or {}).items():
        prices["models"][model] = {**prices["models"].get(model, {}), **entry}
    return prices


def _price_entry(prices: dict[str, Any], model: str) -> dict[str, Any] | None:
    """The price of ``model``, also as ``provider/model`` or with dashes for dots."""
    table: dict[str, Any] = prices["models"]
    bare = model.rsplit("/", 1)[-1]
    dotted = re.sub(r"(?<=\d)-(?=\d)", ".", bare)
    for candidate in (model, bare, dotted):
        if candidate in table:
            entry: dict[str, Any] = table[candidate]
            return entry
    return None


def price_tokens(
    prices: dict[str, Any], model: str | None, prompt: int, cached: int, completion: int
) -> float | None:
    """The cost of one call or run from the table (``prompt`` includes ``cached``), or None
    when the table has no price for ``model``."""
    entry = _price_entry(prices, model or "")
    if not entry:
        return None
    return (
        max(0, prompt - cached) * float(entry.get("input", 0.0))
        + cached * float(entry.get("cache_read", entry.get("input", 0.0)))
        + completion * float(entry.get("output", 0.0))
    ) / 1_000_000


def _token_cost(tokens: TokenUsage, prices: dict[str, Any]) -> tuple[str | None, float | None]:
    """(provider, cost); the cost is None when neither the CLI nor the table prices it."""
    if tokens.cost_usd is not None:
        return tokens.provider, tokens.cost_usd
    entry = _price_entry(prices, tokens.model or "")
    cost = price_tokens(
        prices, tokens.model, tokens.input_tokens, tokens.cache_tokens, tokens.output_tokens
    )
    if not entry or cost is None:
        return tokens.provider, None
    return entry.get("provider", tokens.provider), cost


def usage_snapshot(
    rollout_id: str,
    *,
    wall_time_sec: float,
    sandbox_sec: float,
    bytes_uploaded: int,
    bytes_downloaded: int,
    tokens: TokenUsage | None,
    prices: dict[str, Any],
    source: str | None = None,
    agent_reported: TokenUsage | None = None,
) -> dict[str, Any]:
    """The rollout's usage document; ``source`` says whose token counts these are (the
    agent's own report, or the gateway's record of every provider call), and
    ``agent_reported`` what the agent said when that was not used."""
    sandbox_minutes = sandbox_sec / 60.0
    provider_costs: dict[str, float] = {}
    sandbox_cost = sandbox_minutes * float(prices.get("sandbox_minute_usd", 0.0))
    provider_costs["sandbox"] = round(sandbox_cost, 6)
    tokens = tokens or TokenUsage()
    unpriced: list[str] = []
    if tokens.input_tokens or tokens.output_tokens or tokens.cost_usd:
        provider, cost = _token_cost(tokens, prices)
        name = provider or "llm"
        if cost is None:
            # Tokens were spent on a model nobody priced: the cost is unknown, never $0
            # (Harbor's agent_result.cost_usd is null then too).
            unpriced.append(tokens.model or "unknown model")
        else:
            provider_costs[name] = round(provider_costs.get(name, 0.0) + cost, 6)
    snapshot = {
        "rollout_id": rollout_id,
        "wall_time_sec": round(wall_time_sec, 3),
        "sandbox_minutes": round(sandbox_minutes, 4),
        "browser_minutes": 0.0,
        "bytes_uploaded": bytes_uploaded,
        "bytes_downloaded": bytes_downloaded,
        "llm_input_tokens": tokens.input_tokens,
        "llm_output_tokens": tokens.output_tokens,
        "llm_cache_tokens": tokens.cache_tokens,
        "model_id": tokens.model,
        "cost_usd": None if unpriced else round(sum(provider_costs.values()), 6),
        "provider_costs": provider_costs,
        "unpriced_models": unpriced,
    }
    if source is not None:
        snapshot["usage_source"] = source
    if agent_reported is not None:
        snapshot["agent_reported"] = {
            "llm_input_tokens": agent_reported.input_tokens,
            "llm_output_tokens": agent_reported.output_tokens,
            "llm_cache_tokens": agent_reported.cache_tokens,
            "cost_usd": agent_reported.cost_usd,
        }
    return snapshot
