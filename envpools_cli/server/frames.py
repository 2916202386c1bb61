"""SSE frames of stored events, built from the stored JSON text without decoding it.

An event row keeps ``data`` as JSON text; its frame (CONTRACT §5: ``id``, ``event``, one
``data:`` line holding the whole envelope, a blank line) is that text spliced into the
envelope. The same frame is built in two places: in Python when an event is published
(for tailers that are already caught up) and in SQL when history is replayed, so a
stream never decodes and re-encodes an event's JSON. ``event`` and ``timestamp`` are
written by the server itself (a fixed set of names, RFC 3339 text) and need no escaping;
JSON text never holds a raw line break, so the frame stays one ``data:`` line.
"""

from __future__ import annotations

import json
from typing import Any

from envpools_cli.models import TERMINAL_STATUSES

__all__ = ["FRAME_SQL", "TERMINAL_SQL", "data_text", "frame_text", "is_terminal"]

#: The frame of an ``events`` row, computed by SQLite (must match ``frame_text``).
FRAME_SQL = (
    "'id: ' || seq || char(10) || 'event: ' || event || char(10)"
    " || 'data: {\"id\":\"' || seq || '\",\"event\":\"' || event || '\",\"seq\":' || seq"
    " || ',\"timestamp\":\"' || timestamp || '\",\"data\":' || data || '}'"
    " || char(10) || char(10)"
)

#: 1 for the terminal lifecycle event, after which a stream ends (JSON is only looked
#: into for lifecycle rows, a handful per rollout).
TERMINAL_SQL = (
    "CASE WHEN event = 'lifecycle' THEN lower(COALESCE(json_extract(data, '$.status'), ''))"
    " IN ({}) ELSE 0 END".format(", ".join(f"'{s}'" for s in sorted(TERMINAL_STATUSES)))
)


def data_text(data: dict[str, Any]) -> str:
    """How an event's ``data`` is stored: compact JSON, UTF-8 where it can be."""
    text = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    if not text.isascii():
        try:
            text.encode()
        except UnicodeEncodeError:  # a lone surrogate: only the escaped form is valid UTF-8
            text = json.dumps(data, separators=(",", ":"))
    return text


def frame_text(seq: int, event: str, timestamp: str, data: str) -> str:
    return (
        f'id: {seq}\nevent: {event}\ndata: {{"id":"{seq}","event":"{event}","seq":{seq},'
        f'"timestamp":"{timestamp}","data":{data}}}\n\n'
    )


def is_terminal(event: str, data: dict[str, Any]) -> bool:
    return event == "lifecycle" and str(data.get("status") or "").lower() in TERMINAL_STATUSES
