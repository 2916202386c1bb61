"""SSE frames of events, built once when an event is stored and kept as they are sent.

A stored event is its frame (CONTRACT §5: ``id``, ``event``, one ``data:`` line holding
the whole envelope, a blank line), so a replay selects bytes and writes them out: no
JSON decode and encode per event, no string building per event (measured: building the
frames at read time, in SQL or in Python, halves the replay rate). ``event`` and
``timestamp`` are written by the server itself (a fixed set of names, RFC 3339 text) and
need no escaping; JSON text never holds a raw line break, so the frame stays one line.
"""

from __future__ import annotations

import json
from typing import Any

from envpools_cli.models import TERMINAL_STATUSES

__all__ = [
    "FRAME_SQL",
    "TERMINAL_SQL",
    "data_text",
    "frame_envelope",
    "frame_text",
    "is_terminal",
]

#: The frame of an older ``events`` row that kept ``data`` (must match ``frame_text``):
#: used once, to move such a database to stored frames.
FRAME_SQL = (
    "'id: ' || seq || char(10) || 'event: ' || event || char(10)"
    ' || \'data: {"id":"\' || seq || \'","event":"\' || event || \'","seq":\' || seq'
    " || ',\"timestamp\":\"' || timestamp || '\",\"data\":' || data || '}'"
    " || char(10) || char(10)"
)

#: ``is_terminal`` of an older row (JSON is only looked into for lifecycle rows).
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


def frame_envelope(frame: bytes) -> dict[str, Any]:
    """The envelope a stored frame carries (its one ``data:`` line)."""
    start = frame.index(b"\ndata: ") + 7
    envelope: dict[str, Any] = json.loads(frame[start : frame.index(b"\n", start)])
    return envelope
