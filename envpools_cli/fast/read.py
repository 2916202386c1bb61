"""Simple reads answered without Typer, httpx or pydantic (issue 12).

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
from urllib.parse import quote, urlencode, urlsplit

__all__ = ["fast_read", "get_json"]

_JSON_FLAGS = (["-o", "json"], ["--output", "json"], ["-ojson"], ["--output=json"], ["--json"])
_PROXY_VARS = ("HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "all_proxy")
_LIST_LIMIT = 50  # the default of ``rollouts list --limit``


_JSONL_FLAGS = (["-o", "jsonl"], ["--output", "jsonl"], ["-ojsonl"], ["--output=jsonl"])


def _plan(argv: list[str]) -> tuple[str, str | None] | None:
    """``("get", id)``, ``("list", None)`` or ``("tail", id)`` for a plain read, else None."""
    if len(argv) < 3 or argv[0] != "rollouts":
        return None
    plain_id = len(argv) >= 4 and not argv[2].startswith("-")
    if argv[1] == "tail" and plain_id and argv[3:] in _JSONL_FLAGS:
        return "tail", argv[2]
    if argv[1] == "get" and plain_id and argv[3:] in _JSON_FLAGS:
        return "get", argv[2]
    if argv[1] == "list" and argv[2:] in _JSON_FLAGS:
        return "list", None
    return None


def _base_url() -> tuple[str, str] | None:
    """The API root (``.../v1``) and the key, resolved as ``runtime.conn`` does."""
    from envpools_cli.config import ConfigError, resolve
    from envpools_cli.keystore import env_key, stored_file_key

    try:
        resolved = resolve(None, None)
    except ConfigError:
        return None
    key = env_key() or stored_file_key(resolved.profile)
    if key is None:
        return None  # in the keyring, or nowhere: the full CLI says which
    parts = urlsplit(resolved.api_url.strip())
    if parts.scheme != "http" or not parts.netloc or parts.query or parts.fragment:
        return None  # https (certificates, as httpx checks them) and odd URLs: full path
    path = parts.path.rstrip("/")
    for suffix in ("/v1", "/api"):  # as client.settings.normalize_backend_base
        if path.endswith(suffix):
            path = path[: -len(suffix)].rstrip("/")
    version = (resolved.api_version or os.environ.get("ENV_POOLS_API_VERSION") or "v1").strip()
    prefix = "/v1" if version.lower() == "v1" else "/api/v1"
    return f"{parts.netloc}\n{path}{prefix}", key.value


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
        where, key = target
        netloc, root = where.split("\n", 1)
        kind, rollout_id = plan
        if kind == "tail":
            from envpools_cli.fasttail import tail_jsonl

            return tail_jsonl(netloc, root, key, str(rollout_id), argv)
        if kind == "get":
            found = get_json(netloc, f"{root}/rollouts/{quote(str(rollout_id), safe='')}", key)
            if not isinstance(found, dict):
                return None
            shown: Any = found
        else:
            items: list[Any] = []
            cursor: str | None = None
            while len(items) < _LIST_LIMIT:
                query = {"limit": str(min(500, _LIST_LIMIT - len(items)))}
                if cursor:
                    query["cursor"] = cursor
                page = get_json(netloc, f"{root}/rollouts?{urlencode(query)}", key)
                if not isinstance(page, dict) or not isinstance(page.get("rollouts", []), list):
                    return None
                items += page.get("rollouts") or []
                cursor = page.get("next_cursor")
                if not cursor or not page.get("rollouts"):
                    break
            if not all(isinstance(item, dict) for item in items):
                return None
            shown = items[:_LIST_LIMIT]
    except (OSError, ValueError, UnicodeError):
        return None  # refused, reset, timed out, not JSON: the full CLI retries and explains
    from envpools_cli.output.streams import PipeClosed, is_tty, write_out

    # As output.formats.dump_json: indented for a person, one line for a pipe.
    text = json.dumps(shown, indent=2 if is_tty() else None, ensure_ascii=False, default=str)
    with contextlib.suppress(PipeClosed):  # `| head -c 10`: quiet, as the full CLI
        write_out(text + "\n")
    return 0
