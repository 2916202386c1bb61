"""Server-sent events: a WHATWG decoder and a stream that survives dropped connections.

``SSEDecoder`` follows the "event stream interpretation" rules of the HTML standard:
lines end in CRLF, LF or CR (also when split across chunks), ``data`` lines are joined
with ``\\n``, comments and unknown fields are ignored, ``retry`` sets the reconnection
delay, an ``id`` containing NUL is ignored, and an event without data is not dispatched.

``EventStream`` yields EventEnvelope-shaped dicts (``id, event, seq, timestamp, data``).
It reconnects after connection errors, read timeouts and 408/429/502/503/504, resuming
after the last id with ``cursor`` and ``Last-Event-ID``; it drops repeated events,
reports a gap in ``seq`` instead of hiding it, and ends after the terminal lifecycle
event or when the server closes the stream. Memory use does not grow with the stream.
"""

from __future__ import annotations

import codecs
import json
import re
from collections import deque
from collections.abc import Callable, Generator, Iterator
from contextlib import closing
from dataclasses import dataclass
from typing import Any, Literal

import httpx

from envpools_cli.models import TERMINAL_STATUSES

from .errors import APIError, StreamGapError, TransportError, parse_retry_after
from .http import HTTPSession

__all__ = ["DEFAULT_READ_TIMEOUT", "EventStream", "SSEDecoder", "ServerSentEvent"]

#: Three missed 15 s heartbeats mean the connection is dead even if TCP has not noticed.
DEFAULT_READ_TIMEOUT = 45.0
MAX_EVENT_CHARS = 16 * 1024 * 1024
_RECONNECT_STATUSES = frozenset({408, 429, 502, 503, 504})
_LINE_END = re.compile(r"\r\n|\r|\n")
_RECENT_IDS = 4096

GapPolicy = Literal["raise", "report", "ignore"]


@dataclass(frozen=True)
class ServerSentEvent:
    event: str
    data: str
    id: str | None
    """The id field of this event, or None when it had none."""
    last_event_id: str
    """The stream's last event id buffer when this event was dispatched (per the spec)."""
    retry: int | None = None


class SSEDecoder:
    """Incremental decoder: feed bytes, get complete events."""

    def __init__(self, max_event_chars: int = MAX_EVENT_CHARS) -> None:
        self._utf8 = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._partial = ""
        self._pending_cr = False
        self._started = False
        self._max = max_event_chars
        self._event = ""
        self._data: list[str] = []
        self._data_chars = 0
        self._id: str | None = None
        self.last_event_id = ""
        self.retry: int | None = None

    def feed(self, chunk: bytes) -> Iterator[ServerSentEvent]:
        text = self._utf8.decode(chunk)
        if not self._started and text:
            self._started = True
            text = text.removeprefix("\ufeff")
        if self._pending_cr and text.startswith("\n"):
            text = text[1:]
        self._pending_cr = False
        buffer = self._partial + text
        position = 0
        for match in _LINE_END.finditer(buffer):
            event = self._line(buffer[position : match.start()])
            position = match.end()
            if event is not None:
                yield event
        self._partial = buffer[position:]
        self._pending_cr = position == len(buffer) and buffer.endswith("\r")
        if len(self._partial) > self._max:
            raise TransportError(f"server-sent event line longer than {self._max} characters")

    @property
    def incomplete(self) -> bool:
        """True when the stream ended inside an event (its blank line never came)."""
        return bool(self._partial or self._data or self._event or self._id is not None)

    def _line(self, line: str) -> ServerSentEvent | None:
        if not line:
            return self._dispatch()
        if line.startswith(":"):
            return None
        name, sep, value = line.partition(":")
        if sep and value.startswith(" "):
            value = value[1:]
        if name == "data":
            self._data.append(value)
            self._data_chars += len(value) + 1
            if self._data_chars > self._max:
                raise TransportError(f"server-sent event larger than {self._max} characters")
        elif name == "event":
            self._event = value
        elif name == "id":
            if "\0" not in value:
                self._id = value
                self.last_event_id = value
        elif name == "retry" and value.isascii() and value.isdigit():
            self.retry = int(value)
        return None

    def _dispatch(self) -> ServerSentEvent | None:
        event_id, self._id = self._id, None
        event_type, self._event = self._event, ""
        if not self._data:
            return None
        data = "\n".join(self._data)
        self._data = []
        self._data_chars = 0
        return ServerSentEvent(
            event=event_type or "message",
            data=data,
            id=event_id,
            last_event_id=self.last_event_id,
            retry=self.retry,
        )


class _Dropped(Exception):
    """The connection ended in the middle of an event."""


def _is_terminal(envelope: dict[str, Any]) -> bool:
    data = envelope.get("data")
    return (
        envelope.get("event") == "lifecycle"
        and isinstance(data, dict)
        and str(data.get("status", "")).lower() in TERMINAL_STATUSES
    )


def envelope_from(sse: ServerSentEvent) -> dict[str, Any]:
    """An EventEnvelope-shaped dict from one decoded event."""
    try:
        data: Any = json.loads(sse.data)
    except ValueError:
        data = sse.data
    if isinstance(data, dict) and "data" in data and ("seq" in data or "event" in data):
        envelope = {
            "id": data.get("id"),
            "event": data.get("event"),
            "seq": data.get("seq"),
            "timestamp": data.get("timestamp"),
            "data": data.get("data"),
        }
        for key, value in data.items():
            envelope.setdefault(key, value)
    else:
        envelope = {"id": None, "event": None, "seq": None, "timestamp": None, "data": data}
    if sse.id is not None:
        envelope["id"] = sse.id
    if sse.event != "message" or not envelope["event"]:
        envelope["event"] = sse.event
    return envelope


class EventStream(Iterator[dict[str, Any]]):
    """Iterate a rollout's events; closes its connection when exhausted or closed."""

    def __init__(
        self,
        session: HTTPSession,
        url: str,
        *,
        api_key: str,
        since: str | None = None,
        cursor: str | None = None,
        limit: int | None = None,
        read_timeout: float | None = None,
        auto_reconnect: bool = False,
        max_retries: int = 5,
        backoff_base: float = 1.0,
        backoff_max: float = 30.0,
        on_gap: GapPolicy = "raise",
        stop_on_terminal: bool = True,
        on_reconnect: Callable[[int, float, Exception], None] | None = None,
    ) -> None:
        self._session = session
        self._url = url
        self._api_key = api_key
        self._since = since
        self.last_event_id = cursor
        self._limit = limit
        self._read_timeout = DEFAULT_READ_TIMEOUT if read_timeout is None else read_timeout
        self._auto_reconnect = auto_reconnect
        self._max_retries = max_retries
        self._backoff_base = backoff_base
        self._backoff_max = backoff_max
        self._on_gap = on_gap
        self._stop_on_terminal = stop_on_terminal
        self._on_reconnect = on_reconnect
        self._last_seq: int | None = int(cursor) if cursor and cursor.isdigit() else None
        self._recent: deque[str] = deque(maxlen=_RECENT_IDS)
        self._recent_set: set[str] = set()
        self._server_retry: float | None = None
        self.delivered = 0
        self.reconnects = 0
        self.finished_terminal = False
        self._iterator = self._run()

    def __iter__(self) -> EventStream:
        return self

    def __next__(self) -> dict[str, Any]:
        return next(self._iterator)

    def close(self) -> None:
        self._iterator.close()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _params(self) -> dict[str, str]:
        params: dict[str, str] = {}
        if self._since is not None:
            params["since"] = self._since
        if self.last_event_id:
            params["cursor"] = self.last_event_id
        if self._limit is not None:
            params["limit"] = str(self._limit - self.delivered)
        return params

    def _headers(self) -> dict[str, str]:
        headers = {"Accept": "text/event-stream", "Cache-Control": "no-cache"}
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _run(self) -> Generator[dict[str, Any], None, None]:
        retries = 0
        while True:
            if self._limit is not None and self.delivered >= self._limit:
                return
            try:
                with closing(self._connect()) as connection:
                    for envelope in connection:
                        retries = 0  # the connection works: a later drop starts afresh
                        if envelope is None:
                            continue
                        yield envelope
                        if self._stop_on_terminal and _is_terminal(envelope):
                            self.finished_terminal = True
                            return
                        if self._limit is not None and self.delivered >= self._limit:
                            return
                return
            except (httpx.TransportError, _Dropped, APIError) as exc:
                retry_after = self._reconnectable(exc)
                if not self._auto_reconnect or retry_after is False or retries >= self._max_retries:
                    raise self._final_error(exc) from exc
                retries += 1
                self.reconnects += 1
                delay = self._delay(retries, retry_after)
                if self._on_reconnect is not None:
                    self._on_reconnect(retries, delay, exc)
                self._session.sleep(delay)

    def _reconnectable(self, exc: Exception) -> float | Literal[False] | None:
        """False if ``exc`` must not be retried, else the server's Retry-After (or None)."""
        if isinstance(exc, APIError):
            if exc.status_code not in _RECONNECT_STATUSES:
                return False
            return parse_retry_after(exc.response.headers) if exc.response is not None else None
        return None

    def _final_error(self, exc: Exception) -> Exception:
        if isinstance(exc, APIError | TransportError):
            return exc
        if isinstance(exc, _Dropped):
            return TransportError(f"event stream {self._url} ended in the middle of an event")
        request = getattr(exc, "_request", None)
        return TransportError(
            f"event stream {self._url} failed: {exc or type(exc).__name__}", request=request
        )

    def _delay(self, attempt: int, retry_after: float | None) -> float:
        if retry_after is not None:
            return min(retry_after, self._session.retry.max_retry_after)
        base = self._server_retry if self._server_retry is not None else self._backoff_base
        delay = min(base * (2 ** (attempt - 1)), self._backoff_max)
        return float(delay * (1.0 - 0.25 * self._session.rand()))

    def _connect(self) -> Generator[dict[str, Any] | None, None, None]:
        """Yield each new envelope, or None for an event already delivered."""
        timeout = httpx.Timeout(30.0, read=self._read_timeout)
        with self._session.stream(
            "GET",
            self._url,
            api_key=self._api_key,
            params=self._params(),
            headers=self._headers(),
            timeout=timeout,
            retry=False,
        ) as response:
            decoder = SSEDecoder()
            for chunk in response.iter_bytes():
                for sse in decoder.feed(chunk):
                    if decoder.retry is not None:
                        self._server_retry = decoder.retry / 1000.0
                    yield from self._accept(sse)
            if decoder.incomplete:
                raise _Dropped()

    def _accept(self, sse: ServerSentEvent) -> Iterator[dict[str, Any] | None]:
        envelope = envelope_from(sse)
        event_id = envelope.get("id")
        seq = envelope.get("seq")
        if isinstance(seq, bool) or not isinstance(seq, int):
            seq = None
        if self._is_duplicate(event_id, seq):
            yield None
            return
        if seq is not None:
            if self._last_seq is not None and seq > self._last_seq + 1:
                gap = StreamGapError(
                    after_seq=self._last_seq, next_seq=seq, last_event_id=self.last_event_id
                )
                if self._on_gap == "raise":
                    raise gap
                if self._on_gap == "report":
                    yield self._gap_envelope(gap)
            self._last_seq = seq
        if event_id is not None:
            self.last_event_id = str(event_id)
            self._remember(str(event_id))
        self.delivered += 1
        yield envelope

    def _is_duplicate(self, event_id: Any, seq: int | None) -> bool:
        if seq is not None:
            return self._last_seq is not None and seq <= self._last_seq
        return event_id is not None and str(event_id) in self._recent_set

    def _remember(self, event_id: str) -> None:
        if len(self._recent) == self._recent.maxlen:
            self._recent_set.discard(self._recent[0])
        self._recent.append(event_id)
        self._recent_set.add(event_id)

    @staticmethod
    def _gap_envelope(gap: StreamGapError) -> dict[str, Any]:
        return {
            "id": None,
            "event": "gap",
            "seq": None,
            "timestamp": None,
            "data": {
                "after_seq": gap.after_seq,
                "next_seq": gap.next_seq,
                "missing": gap.next_seq - gap.after_seq - 1,
            },
        }
