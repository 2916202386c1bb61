"""When the provider, not the agent, ended a rollout: the egress gateway's verdict.

The gateway sees every call an agent makes to its LLM provider and what came back. From
that, ``ProviderWatch`` tells when the provider failed the rollout for good, so that the
backend ends it within seconds with a code of its own (``error_codes``: kind
``provider``) rather than waiting out the agent's timeout and blaming the agent.

The policy, careful not to end a rollout the agent would have carried on with: agent
CLIs retry a 429 or a 5xx themselves (with backoff), and one such answer followed by a
success is nothing.

- **auth** (401/403 to a model call): at once; a key the provider refuses stays refused.
- **unreachable** (connection refused, DNS, no route, connect timeout): after a second
  failed connection with no success in between (the agent's retry), or
  ``STREAK_SEC`` after the first with nothing in flight.
- **rate limited** (429) and **error** (5xx): after ``FAILURE_STREAK`` failed model calls
  in a row with no success in between (the agent's retries are evidently not getting
  through), or ``STREAK_SEC`` after the first failure of the streak with no call in
  flight (an agent that backs off for long, or gave up).
- **timeout**: a call with no response headers, or a stream that stalls, for the
  provider timeout (``ENVPOOLS_PROVIDER_TIMEOUT_SEC``): at once, the wait was the retry.

When the agent exits by itself first, ``verdict(final=True)`` names the provider's
failure if the last model call failed and nothing succeeded after it.

Only ``POST`` answers count as model calls: a CLI's ``GET /models`` or WebSocket probe
may be refused without the model calls failing. Connection failures count for any call.
Everything here is called from the gateway's event loop and read from the runner's
threads: one lock.
"""

from __future__ import annotations

import json
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

__all__ = [
    "DEFAULT_PROVIDER_TIMEOUT_SEC",
    "FAILURE_STREAK",
    "STREAK_SEC",
    "ProviderWatch",
    "RouteNames",
    "Verdict",
    "classify_status",
    "provider_message",
]

DEFAULT_PROVIDER_TIMEOUT_SEC = 120.0
"""How long a provider may take to send response headers, or be silent mid-stream."""
FAILURE_STREAK = 3
"""429/5xx answers to model calls in a row, with no success between, that end a rollout."""
CONNECT_ATTEMPTS = 2
"""Failed connections in a row that end a rollout (the agent's first retry failed too)."""
STREAK_SEC = 10.0
"""A streak of failures this old with no call in flight ends the rollout all the same."""
_KEPT = 8
_MESSAGE_CHARS = 300


def classify_status(status: int) -> str | None:
    """The provider code an HTTP answer stands for; "ok" for a success; None when it
    says nothing about the provider (a 400 or 404 is the request's, not the provider's)."""
    if status in (401, 403):
        return "provider_auth"
    if status == 429:
        return "provider_rate_limited"
    if 500 <= status <= 599:
        return "provider_error"
    if 200 <= status <= 399:
        return "ok"
    return None


def provider_message(body: bytes) -> str:
    """The provider's own message in an error body (JSON as OpenAI, Anthropic and Gemini
    write it, else the text), on one line and short."""
    text = body.decode("utf-8", errors="replace").strip()
    try:
        document: Any = json.loads(text)
    except ValueError:
        document = None
    found = _message_in(document) if document is not None else None
    flat = " ".join((found or text).split())
    return flat if len(flat) <= _MESSAGE_CHARS else flat[: _MESSAGE_CHARS - 1] + "…"


def _message_in(document: Any) -> str | None:
    if isinstance(document, list) and document:
        return _message_in(document[0])  # Gemini's streamed errors come as a list
    if not isinstance(document, dict):
        return None
    error = document.get("error")
    if isinstance(error, str) and error:
        return error
    if isinstance(error, dict) and isinstance(error.get("message"), str) and error["message"]:
        kind = error.get("type") or error.get("status") or error.get("code")
        return f"{kind}: {error['message']}" if isinstance(kind, str) else error["message"]
    for key in ("message", "detail"):
        if isinstance(document.get(key), str) and document[key]:
            return str(document[key])
    return None


@dataclass(frozen=True)
class RouteNames:
    """What a user stores for a route: to name in "what to do"."""

    key_name: str
    base_url_name: str
    origin: str
    """``scheme://host:port`` of the provider (never the key, never a path)."""
    stored_url: bool = False
    """The base URL is a stored credential: messages name it (credential values are
    redacted from everything a rollout shows, so its origin would read ``[REDACTED]``)."""

    @property
    def where(self) -> str:
        return self.base_url_name if self.stored_url else self.origin


@dataclass(frozen=True)
class Failure:
    code: str
    route: str
    status: int | None
    detail: str
    at: float
    """On the watch's clock (monotonic)."""
    when: float = 0.0
    """Wall-clock time (epoch seconds)."""

    def describe(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "route": self.route,
            "status": self.status,
            "message": self.detail,
            "at": datetime.fromtimestamp(self.when, UTC).isoformat(timespec="milliseconds"),
        }


@dataclass(frozen=True)
class Verdict:
    """The provider's failure that ended (or explains the end of) a rollout."""

    code: str
    message: str
    """What happened, the provider's own words (scrubbed) and what to do, on one line."""
    hint: str
    status: int | None
    provider_message: str
    failures: tuple[Failure, ...]

    def as_error(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "message": self.message,
            "hint": self.hint,
            "provider_status": self.status,
            "provider_message": self.provider_message,
            "provider_failures": [f.describe() for f in self.failures],
        }


@dataclass
class _State:
    in_flight: int = 0
    streak: list[Failure] = field(default_factory=list)
    """Failures since the last success (model calls, and connections)."""
    seen: deque[Failure] = field(default_factory=lambda: deque(maxlen=_KEPT))
    successes: int = 0
    verdict: Verdict | None = None


class ProviderWatch:
    """One rollout's provider calls, as the gateway saw them, and the verdict on them."""

    def __init__(
        self,
        routes: dict[str, RouteNames],
        *,
        timeout_sec: float = DEFAULT_PROVIDER_TIMEOUT_SEC,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.routes = routes
        self.timeout_sec = timeout_sec
        self._clock = clock
        self._lock = threading.Lock()
        self._state = _State()

    # --- what the gateway reports --------------------------------------------------------

    def began(self) -> None:
        with self._lock:
            self._state.in_flight += 1

    def ended(self) -> None:
        with self._lock:
            self._state.in_flight = max(0, self._state.in_flight - 1)

    def answered(self, route: str, method: str, status: int, detail: str = "") -> None:
        """The provider answered ``status`` (``detail``: its message, scrubbed)."""
        code = classify_status(status)
        if code is None or (code != "ok" and method.upper() != "POST"):
            return
        with self._lock:
            if code == "ok":
                self._state.successes += 1
                self._state.streak.clear()
                return
            self._add(Failure(code, route, status, detail, self._clock(), time.time()))

    def unreachable(self, route: str, detail: str) -> None:
        with self._lock:
            self._add(
                Failure("provider_unreachable", route, None, detail, self._clock(), time.time())
            )

    def timed_out(self, route: str, detail: str) -> None:
        with self._lock:
            self._add(Failure("provider_timeout", route, None, detail, self._clock(), time.time()))

    def _add(self, failure: Failure) -> None:
        self._state.streak.append(failure)
        self._state.seen.append(failure)

    # --- the verdict ----------------------------------------------------------------------

    @property
    def failures(self) -> list[Failure]:
        with self._lock:
            return list(self._state.seen)

    def decided(self) -> bool:
        """Whether the provider has failed the rollout (cheap: polled by the watchdog)."""
        return self.verdict() is not None

    def verdict(self, *, final: bool = False) -> Verdict | None:
        """The provider's failure that ends the rollout, once it is decisive (latched).

        ``final``: the agent has exited; a last failed call with no success after it is
        decisive whatever the counts.
        """
        with self._lock:
            state = self._state
            if state.verdict is not None:
                return state.verdict
            streak = state.streak
            if not streak:
                return None
            last = streak[-1]
            decisive = final or self._decisive(streak, state.in_flight)
            if not decisive:
                return None
            state.verdict = self._explain(last, streak, list(state.seen))
            return state.verdict

    def _decisive(self, streak: list[Failure], in_flight: int) -> bool:
        last = streak[-1]
        if last.code in ("provider_auth", "provider_timeout"):
            return True
        same = [f for f in streak if f.code == last.code]
        if last.code == "provider_unreachable" and len(same) >= CONNECT_ATTEMPTS:
            return True
        if last.code != "provider_unreachable" and len(streak) >= FAILURE_STREAK:
            return True
        return in_flight == 0 and self._clock() - streak[0].at >= STREAK_SEC

    # --- what it says -----------------------------------------------------------------------

    def _explain(self, last: Failure, streak: list[Failure], seen: list[Failure]) -> Verdict:
        names = self.routes.get(last.route) or RouteNames(
            f"{last.route.upper()}_API_KEY", f"{last.route.upper()}_BASE_URL", last.route
        )
        where = names.where
        said = f": {last.detail}" if last.detail else ""
        count = sum(1 for f in streak if f.code == last.code)
        times = f" {count} times in a row" if count > 1 else ""
        check = "`envpools agents check` tries the stored key and base URL in seconds"
        retry = (
            "it is transient: run it again later (`envpools jobs resume --retry-errors` for a job)"
        )
        if last.code == "provider_auth":
            what = f"the provider at {where} refused the stored key ({last.status}){said}"
            hint = (
                f"replace the {names.key_name} credential (envpools credentials rotate "
                f"{names.key_name}), or check that {names.base_url_name} points at the "
                f"provider the key is for; {check}"
            )
        elif last.code == "provider_unreachable":
            what = f"the provider at {where} could not be reached{said}"
            hint = (
                f"check the {names.base_url_name} credential (envpools credentials list) and "
                f"this machine's network; {check}"
            )
        elif last.code == "provider_rate_limited":
            what = f"the provider at {where} answered 429 (rate limited){times}{said}"
            hint = f"{retry}, with less concurrency, or raise the account's rate limits"
        elif last.code == "provider_error":
            what = f"the provider at {where} answered {last.status} (server error){times}{said}"
            hint = f"{retry}; if it persists, check the provider's status page"
        else:
            what = f"the provider at {where} sent no answer within {self.timeout_sec:g}s{said}"
            hint = (
                f"{retry}; if the model is slow to answer, start the backend with a larger "
                "ENVPOOLS_PROVIDER_TIMEOUT_SEC"
            )
        return Verdict(
            code=last.code,
            message=f"{what}; what to do: {hint}",
            hint=hint,
            status=last.status,
            provider_message=last.detail,
            failures=tuple(seen),
        )
