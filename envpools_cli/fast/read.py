"""Plain reads answered without Typer, httpx or pydantic (issue 12).

``envpools rollouts get ID -o json`` and ``envpools rollouts list -o json`` in their plain
forms spend most of their time importing (Typer's app ~100 ms, httpx + pydantic ~90 ms)
before one GET whose JSON is printed as it came. This module recognises exactly those
forms, resolves the profile, URL and key the way the full CLI does (``config.resolve``;
the key from the environment or the file fallback, never the keyring), makes the GET
with the standard library, and prints the same bytes the full command prints.

Anything else - another flag, a key only the keyring holds, a proxy, an HTTP error, an
answer that is not what a read returns - gives ``None``: the full CLI then runs the
command from the start, with its retries, messages and exit codes. The fast path never
prints an error of its own, so it cannot disagree with the full one.
"""

from __future__ import annotations

import contextlib
import json
import os
from typing import Any
from urllib.parse import quote, urlencode

from envpools_cli.shared import (
    ROLLOUTS_LIST_LIMIT,
    api_prefix,
    follow_rollout_pages,
    output_spellings,
    split_backend_url,
)

__all__ = ["fast_read", "get_json"]

# httpx honours these; http.client does not: the full CLI goes through the proxy.
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")


def _plan(argv: list[str]) -> tuple[str, str | None] | None:
    """``("get", id)``, ``("list", None)`` or ``("tail", id)`` for a plain read, else None."""
    if len(argv) < 3 or argv[0] != "rollouts":
        return None
    plain_id = len(argv) >= 4 and not argv[2].startswith("-")
    if argv[1] == "tail" and plain_id and argv[3:] in output_spellings("jsonl"):
        return "tail", argv[2]
    if argv[1] == "get" and plain_id and argv[3:] in output_spellings("json"):
        return "get", argv[2]
    if argv[1] == "list" and argv[2:] in output_spellings("json"):
        return "list", None
    return None


def _base_url() -> tuple[str, str, str] | None:
    """The host, the API root path (``.../v1``) and the key, resolved as ``runtime.conn`` does."""
    from envpools_cli.config import ConfigError, resolve
    from envpools_cli.keystore import env_key, key_problem, stored_file_key

    try:
        resolved = resolve(None, None)
        scheme, netloc, path = split_backend_url(resolved.api_url)
    except (ConfigError, ValueError):
        return None  # the full CLI says what is wrong
    key = env_key() or stored_file_key(resolved.profile)
    if key is None or key_problem(key.value):
        return None  # in the keyring, nowhere, or unusable: the full CLI says which
    if scheme != "http":
        return None  # https: certificates, as httpx checks them
    return netloc, f"{path}{api_prefix(resolved.api_version)}", key.value


def get_json(netloc: str, path: str, key: str) -> Any:
    """The JSON of a 200 answer to GET ``path``; None for any other answer."""
    import http.client

    from envpools_cli import __version__

    connection = http.client.HTTPConnection(netloc, timeout=30)
    try:
        connection.request(
            "GET",
            path,
            headers={
                "Authorization": f"Bearer {key}",
                "User-Agent": f"envpools/{__version__} fast-read",
                "Accept": "application/json",
            },
        )
        answer = connection.getresponse()
        body = answer.read()
        if answer.status != 200:
            return None
        return json.loads(body)
    finally:
        connection.close()


def fast_read(argv: list[str]) -> int | None:
    """Answer a plain read and return 0, or None for the full CLI to run it."""
    plan = _plan(argv)
    if plan is None or any(os.environ.get(name) for name in _PROXY_VARS):
        return None
    from envpools_cli.precedence import debug_from_env

    if debug_from_env():
        return None  # the full CLI logs its requests
    try:
        target = _base_url()
        if target is None:
            return None
        netloc, root, key = target
        kind, rollout_id = plan
        if kind == "tail":
            from envpools_cli.fast.tail import tail_jsonl

            return tail_jsonl(netloc, root, key, str(rollout_id), argv)
        if kind == "get":
            found = get_json(netloc, f"{root}/rollouts/{quote(str(rollout_id), safe='')}", key)
            if not isinstance(found, dict):
                return None
            shown: Any = found
        else:

            def page(cursor: str | None, size: int) -> Any:
                query = {"limit": str(size), **({"cursor": cursor} if cursor else {})}
                return get_json(netloc, f"{root}/rollouts?{urlencode(query)}", key)

            items = follow_rollout_pages(page, ROLLOUTS_LIST_LIMIT)
            if items is None or not all(isinstance(item, dict) for item in items):
                return None
            shown = items
    except (OSError, ValueError, UnicodeError):
        return None  # refused, reset, timed out, not JSON: the full CLI retries and explains
    from envpools_cli.output.streams import PipeClosed, dump_json, write_out

    with contextlib.suppress(PipeClosed):  # `| head -c 10`: quiet, as the full CLI
        write_out(dump_json(shown) + "\n")
    return 0
