"""How a browser signs in to the viewer without ever holding an API key.

``envpools view`` mints a **one-time code** and prints (or opens) a URL that carries it
after ``#``: a fragment is never sent in a request, so the code is in no server log or
``Referer``. The page posts it once to ``/view/session`` and gets a **session cookie**
(random, HttpOnly, SameSite=Strict, path ``/view``); the code is then spent. On the local
backend, a person can instead post an API key (never in a URL); the session keeps the
key server-side, and the viewer calls the API with it.

Tokens are kept as their SHA-256 only, and compared by that digest.
"""

from __future__ import annotations

import hashlib
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["COOKIE", "Sessions"]

COOKIE = "envpools_view"
CODE_TTL_SEC = 3600.0
SESSION_IDLE_SEC = 12 * 3600.0
_MAX_SESSIONS = 1000


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).hexdigest()


@dataclass
class _Entry:
    key: str
    expires: float


class Sessions:
    """One-time codes and the sessions they open; thread-safe.

    ``key`` is the API key the viewer uses for every session opened with a code (the
    CLI's own); ``check_key`` (the local backend's) says whether a posted key is valid,
    and without it no key can be posted.
    """

    def __init__(
        self,
        key: str | None = None,
        *,
        check_key: Callable[[str], bool] | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._key = key
        self._check_key = check_key
        self._clock = clock
        self._codes: dict[str, float] = {}
        self._sessions: dict[str, _Entry] = {}
        self._lock = threading.Lock()

    @property
    def accepts_keys(self) -> bool:
        return self._check_key is not None

    def new_code(self) -> str:
        """A code that opens one session, once, within ``CODE_TTL_SEC``."""
        if self._key is None:
            raise RuntimeError("no API key to open sessions with")
        code = secrets.token_urlsafe(24)
        with self._lock:
            self._codes[_digest(code)] = self._clock() + CODE_TTL_SEC
        return code

    def _open(self, key: str) -> str:
        token = secrets.token_urlsafe(32)
        now = self._clock()
        with self._lock:
            self._sessions = {d: e for d, e in self._sessions.items() if e.expires > now}
            if len(self._sessions) >= _MAX_SESSIONS:  # the oldest gives way
                oldest = min(self._sessions, key=lambda d: self._sessions[d].expires)
                del self._sessions[oldest]
            self._sessions[_digest(token)] = _Entry(key, now + SESSION_IDLE_SEC)
        return token

    def redeem(self, code: str) -> str | None:
        """A new session token for a valid, unspent code (which is then spent), else None."""
        with self._lock:
            expires = self._codes.pop(_digest(code), None)
        if expires is None or expires < self._clock() or self._key is None:
            return None
        return self._open(self._key)

    def sign_in(self, key: str) -> str | None:
        """A session for a posted API key the backend accepts, else None."""
        if self._check_key is None or not key or not self._check_key(key):
            return None
        return self._open(key)

    def key_of(self, token: str | None) -> str | None:
        """The API key of a live session (its idle time restarts), else None."""
        if not token:
            return None
        now = self._clock()
        with self._lock:
            entry = self._sessions.get(_digest(token))
            if entry is None or entry.expires < now:
                return None
            entry.expires = now + SESSION_IDLE_SEC
            return entry.key

    def end(self, token: str | None) -> None:
        if token:
            with self._lock:
                self._sessions.pop(_digest(token), None)
