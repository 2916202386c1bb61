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

from envpools_cli.shared import EVENT_STREAM_HEADERS, READ_TIMEOUT_SEC, is_terminal

from .errors import APIError, StreamGapError, TransportError, parse_retry_after
from .http import HTTPSession

__all__ = [
    "DEFAULT_READ_TIMEOUT",
    "EventStream",
    "ReconnectPolicy",
    "SSEDecoder",
    "ServerSentEvent",
]

#: Three missed 15 s heartbeats mean the connection is dead even if TCP has not noticed.
DEFAULT_READ_TIMEOUT = READ_TIMEOUT_SEC
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


class _EndedEarly(Exception):
    """The server closed the stream cleanly before the rollout's terminal event."""


class _DeadlineReached(Exception):
    """The stream's overall deadline passed."""


@dataclass(frozen=True)
class ReconnectPolicy:
    """The one rule for following a stream (or waiting) through a broken network.

    After a drop, a read timeout, a clean close before the terminal event or a
    408/429/502/503/504, the stream resumes after the last event it delivered (``cursor``
    and ``Last-Event-ID``), waiting ``backoff_base * 2**(n-1)`` seconds (at most
    ``backoff_max``, less up to ``jitter`` of it; a server's ``retry:`` field or
    ``Retry-After`` replaces the base) before the n-th attempt in a row. It gives up:

    - after ``max_retries`` failed attempts in a row (None: no count limit);
    - when the backend has never answered and ``unreachable_after`` seconds have passed
      (a stopped backend fails in seconds, not minutes);
    - when the backend answered before but has been lost for ``outage_limit`` seconds;
    - at ``deadline`` seconds after the stream began (then the stream just ends, with
      ``timed_out`` set: the caller decides what a timeout means).

    ``resumed``: the stream continues one that another reader had open (``tail``'s fast
    path hands over after a cut), so the backend has answered already: a failure from the
    first attempt on is an outage, said and ridden out, not an unreachable backend.
    """

    max_retries: int | None = 5
    backoff_base: float = 1.0
    backoff_max: float = 30.0
    jitter: float = 0.25
    deadline: float | None = None
    unreachable_after: float = 5.0
    outage_limit: float | None = None
    resumed: bool = False

    @classmethod
    def watching(cls, deadline: float | None = None, *, resumed: bool = False) -> ReconnectPolicy:
        """Following a rollout to its end (CLI ``tail``/``wait``, ``RolloutHandle.wait``):
        ride out a backend restart of up to five minutes, quickly notice it coming back."""
        return cls(
            max_retries=None,
            backoff_base=0.5,
            backoff_max=5.0,
            deadline=deadline,
            outage_limit=300.0,
            resumed=resumed,
        )

    def delay(
        self, attempt: int, *, base: float | None, retry_after: float | None, rand: float
    ) -> float:
        if retry_after is not None:
            return retry_after
        first = self.backoff_base if base is None else base
        return float(
            # The exponent is capped: 2.0 ** 1024 overflows, after as many reconnects.
            min(first * (2.0 ** min(attempt - 1, 64)), self.backoff_max)
            * (1.0 - self.jitter * rand)
        )


def _is_terminal(envelope: dict[str, Any]) -> bool:
    data = envelope.get("data")
    return (
        envelope.get("event") == "lifecycle"
        and isinstance(data, dict)
        and is_terminal(data.get("status"))
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
    """Iterate a rollout's events; closes its connection when exhausted or closed.

    Ends after the terminal lifecycle event (``finished_terminal``), after ``limit``
    events, at the policy's deadline (``timed_out``), or when the rollout is known to be
    over with nothing left to send. Without ``auto_reconnect`` any interruption raises.
    """

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
        policy: ReconnectPolicy | None = None,
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
        self.policy = policy or ReconnectPolicy()
        self._on_gap = on_gap
        self._stop_on_terminal = stop_on_terminal
        self._on_reconnect = on_reconnect
        self._clock = session.clock
        self._last_seq: int | None = int(cursor) if cursor and cursor.isdigit() else None
        self._recent: deque[str] = deque(maxlen=_RECENT_IDS)
        self._recent_set: set[str] = set()
        self._server_retry: float | None = None
        self._deadline: float | None = None
        self.reached = self.policy.resumed
        """The backend has answered (any HTTP status) at least once."""
        self.delivered = 0
        self.reconnects = 0
        self.finished_terminal = False
        self.timed_out = False
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
        headers = dict(EVENT_STREAM_HEADERS)
        if self.last_event_id:
            headers["Last-Event-ID"] = self.last_event_id
        return headers

    def _limit_reached(self) -> bool:
        return self._limit is not None and self.delivered >= self._limit

    def _past_deadline(self) -> bool:
        return self._deadline is not None and self._clock() >= self._deadline

    def _run(self) -> Generator[dict[str, Any], None, None]:
        policy = self.policy
        started = self._clock()
        self._deadline = None if policy.deadline is None else started + policy.deadline
        failures = 0
        lost_since: float | None = None
        while not self._limit_reached():
            if self._past_deadline():
                self.timed_out = True
                return
            before = self.delivered
            try:
                with closing(self._connect()) as connection:
                    for envelope in connection:
                        failures, lost_since = 0, None  # it works: a later drop starts afresh
                        if envelope is None:
                            continue
                        yield envelope
                        if self._stop_on_terminal and _is_terminal(envelope):
                            self.finished_terminal = True
                            return
                        if self._limit_reached():
                            return
                if not self._stop_on_terminal or self._over(progress=self.delivered > before):
                    return
                raise _EndedEarly()
            except _DeadlineReached:
                self.timed_out = True
                return
            except (httpx.TransportError, _Dropped, _EndedEarly, APIError) as exc:
                if self._past_deadline():
                    self.timed_out = True
                    return
                retry_after = self._reconnectable(exc)
                if not self._auto_reconnect or retry_after is False:
                    raise self._final_error(exc) from exc
                now = self._clock()
                failures += 1
                if not self.reached:
                    if now - started >= policy.unreachable_after:
                        raise self._unreachable(exc, now - started) from exc
                else:
                    lost_since = now if lost_since is None else lost_since
                    if (policy.max_retries is not None and failures > policy.max_retries) or (
                        policy.outage_limit is not None and now - lost_since >= policy.outage_limit
                    ):
                        raise self._final_error(exc) from exc
                delay = self._delay(failures, retry_after, started, now)
                self.reconnects += 1
                if self._on_reconnect is not None and self.reached:
                    self._on_reconnect(failures, delay, exc)
                self._session.sleep(delay)

    def _delay(self, failures: int, retry_after: float | None, started: float, now: float) -> float:
        """The policy's delay, never past the deadline or the fail-fast horizon."""
        if retry_after is not None:
            retry_after = min(retry_after, self._session.retry.max_retry_after)
        delay = self.policy.delay(
            failures, base=self._server_retry, retry_after=retry_after, rand=self._session.rand()
        )
        if self._deadline is not None:
            delay = min(delay, max(0.0, self._deadline - now))
        if not self.reached:
            delay = min(delay, max(0.05, started + self.policy.unreachable_after - now))
        return delay

    def _over(self, *, progress: bool) -> bool:
        """After a clean close before the terminal event: is there truly nothing left?

        Only the rollout's summary can tell a finished stream (a ``cursor`` at its last
        event, or a ``since`` past it) from a connection some proxy closed early.
        """
        summary_url = self._url.rsplit("/events", 1)[0] + "/summary"
        try:
            response = self._session.request(
                "GET", summary_url, api_key=self._api_key, timeout=30.0
            )
            summary = response.json()
        except (httpx.TransportError, APIError, ValueError):
            return False
        if not isinstance(summary, dict):
            return False
        if not is_terminal(summary.get("status")):
            return False
        last = summary.get("last_event")
        if not isinstance(last, dict):
            return True
        seq = last.get("seq")
        if isinstance(seq, int) and self._last_seq is not None and seq <= self._last_seq:
            return True
        if last.get("id") is not None and str(last.get("id")) == self.last_event_id:
            return True
        return self._since is not None and not progress

    def _reconnectable(self, exc: Exception) -> float | Literal[False] | None:
        """False if ``exc`` must not be retried, else the server's Retry-After (or None)."""
        if isinstance(exc, APIError):
            if exc.status_code not in _RECONNECT_STATUSES:
                return False
            return parse_retry_after(exc.response.headers) if exc.response is not None else None
        return None

    def _unreachable(self, exc: Exception, waited: float) -> TransportError:
        request = getattr(exc, "_request", None)
        host = httpx.URL(self._url)
        return TransportError(
            f"could not reach the backend at {host.scheme}://{host.netloc.decode()} "
            f"({waited:.1f}s, {self.reconnects + 1} attempts): {exc or type(exc).__name__}",
            request=request or httpx.Request("GET", self._url),
        )

    def _final_error(self, exc: Exception) -> Exception:
        if isinstance(exc, APIError | TransportError):
            return exc
        if isinstance(exc, _Dropped):
            return TransportError(f"event stream {self._url} ended in the middle of an event")
        if isinstance(exc, _EndedEarly):
            return TransportError(
                f"event stream {self._url} ended before the rollout's terminal event "
                f"(resume with cursor={self.last_event_id!r})"
            )
        request = getattr(exc, "_request", None)
        return TransportError(
            f"event stream {self._url} failed: {exc or type(exc).__name__}", request=request
        )

    def _connect(self) -> Generator[dict[str, Any] | None, None, None]:
        """Yield each new envelope, or None for an event already delivered."""
        read = self._read_timeout
        if self._deadline is not None:
            read = max(0.05, min(read, self._deadline - self._clock()))
        try:
            with self._session.stream(
                "GET",
                self._url,
                api_key=self._api_key,
                params=self._params(),
                headers=self._headers(),
                timeout=httpx.Timeout(30.0, read=read),
                retry=False,
            ) as response:
                self.reached = True
                decoder = SSEDecoder()
                for chunk in response.iter_bytes():
                    for sse in decoder.feed(chunk):
                        if decoder.retry is not None:
                            self._server_retry = decoder.retry / 1000.0
                        yield from self._accept(sse)
                    if self._past_deadline():
                        raise _DeadlineReached()
                if decoder.incomplete:
                    raise _Dropped()
        except APIError:
            self.reached = True  # it answered, if not with a stream
            raise
        except httpx.ReadTimeout:
            if self._past_deadline():
                raise _DeadlineReached() from None
            raise

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
