"""What the fast paths and the full CLI (and the client under it) must agree on.

The fast paths (``fast/``: ``--help``, plain reads, ``tail -o jsonl``; ``completion/``:
Tab presses) answer without Typer, httpx or pydantic, so they cannot import the modules
that use these values in the full CLI; both import them from here instead, and a value
or a rule changed here changes for both. A leaf: the standard library only, and nothing
imported at module level that ``--help`` or a Tab press would pay for.
"""

from __future__ import annotations

TYPE_CHECKING = False  # typing costs a Tab press more than this whole module
if TYPE_CHECKING:
    from collections.abc import Callable
    from typing import Any

__all__ = [
    "DEFAULT_API_VERSION",
    "EVENT_STREAM_HEADERS",
    "HELP_OPTIONS",
    "HELP_WIDTH",
    "JSON_FLAG",
    "OUTPUT_OPTION",
    "PAGE_LIMIT",
    "READ_TIMEOUT_SEC",
    "ROLLOUTS_LIST_LIMIT",
    "TERMINAL_STATUSES",
    "api_prefix",
    "end_event",
    "follow_rollout_pages",
    "is_terminal",
    "output_spellings",
    "split_backend_url",
]

# --- rollouts -------------------------------------------------------------------------------

#: Statuses after which a rollout never changes again (CONTRACT §4). ``completed`` is the
#: hosted service's older spelling of ``succeeded``.
TERMINAL_STATUSES: frozenset[str] = frozenset(
    {"succeeded", "completed", "failed", "error", "cancelled"}
)


def is_terminal(status: object) -> bool:
    """Whether a wire status (any case, or missing) is terminal."""
    return str(status or "").lower() in TERMINAL_STATUSES


#: An event stream's read timeout: three missed 15 s heartbeats mean the connection is
#: dead even if TCP has not noticed.
READ_TIMEOUT_SEC = 45.0
#: What a request for an event stream asks for (besides the key and ``Last-Event-ID``).
EVENT_STREAM_HEADERS = (("Accept", "text/event-stream"), ("Cache-Control", "no-cache"))


def end_event(reason: str, status: str | None) -> dict[str, Any]:
    """The last line of ``rollouts tail -o jsonl``: why the tail ended, and the status then."""
    return {
        "event": "end",
        "id": None,
        "seq": None,
        "timestamp": None,
        "data": {"reason": reason, "status": status},
    }


#: ``rollouts list --limit``'s default.
ROLLOUTS_LIST_LIMIT = 50
#: The most rollouts one page of ``GET /rollouts`` holds.
PAGE_LIMIT = 500


def follow_rollout_pages(
    fetch_page: Callable[[str | None, int], Any], limit: int, cursor: str | None = None
) -> list[Any] | None:
    """Up to ``limit`` rollouts, following ``next_cursor`` from ``cursor``.

    ``fetch_page(cursor, page_size)`` returns one page of ``GET /rollouts``; None when a
    page is not one (not an object, ``rollouts`` not a list).
    """
    found: list[Any] = []
    while len(found) < limit:
        page = fetch_page(cursor, min(PAGE_LIMIT, limit - len(found)))
        if not isinstance(page, dict) or not isinstance(page.get("rollouts") or [], list):
            return None
        found += page.get("rollouts") or []
        cursor = page.get("next_cursor")
        if not cursor or not page.get("rollouts"):
            break
    return found[:limit]


# --- where requests go (CONTRACT §1) ------------------------------------------------------

DEFAULT_API_VERSION = "v1"


def api_prefix(api_version: str | None) -> str:
    """``/v1`` for API version ``v1`` (the default); any other version: ``/api/v1``."""
    version = (api_version or DEFAULT_API_VERSION).strip().lower()
    return "/v1" if version == DEFAULT_API_VERSION else "/api/v1"


def split_backend_url(url: str) -> tuple[str, str, str]:
    """``(scheme, netloc, path)`` of a backend URL, as the official SDK normalises it.

    Query and fragment are dropped, then a trailing ``/v1``, then ``/api``, and trailing
    slashes: ``http://h:1/api/v1/`` is ``("http", "h:1", "")``. ValueError says what is
    wrong with anything else.
    """
    from urllib.parse import urlsplit

    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parses the port: out of range or not a number raises here
    except ValueError as exc:
        raise ValueError(f"backend URL {url!r} is malformed: {exc}") from None
    if not parts.scheme or not parts.netloc:
        raise ValueError(
            f"backend URL {url!r} is not an absolute http(s) URL (e.g. http://127.0.0.1:8000)"
        )
    if parts.scheme not in ("http", "https"):
        raise ValueError(f"backend URL {url!r} must use http or https")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")].rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")].rstrip("/")
    return parts.scheme, parts.netloc, path


# --- the command line ----------------------------------------------------------------------

#: The option every command that prints a resource takes (``-o json``), and its shorthand.
OUTPUT_OPTION = ("--output", "-o")
JSON_FLAG = "--json"


def output_spellings(fmt: str) -> list[list[str]]:
    """Every way of writing ``-o FMT`` alone as Click reads it (``--json`` for json)."""
    long, short = OUTPUT_OPTION
    found = [[long, fmt], [short, fmt], [f"{short}{fmt}"], [f"{long}={fmt}"]]
    return [*found, [JSON_FLAG]] if fmt == "json" else found


#: The options that print a command's help (``context_settings``), in the order help shows.
HELP_OPTIONS = ("-h", "--help")
#: Click wraps help to ``min(columns, 80) - 2``: every terminal this wide or wider sees the
#: same text, which is what the generated help screens hold.
HELP_WIDTH = 80
