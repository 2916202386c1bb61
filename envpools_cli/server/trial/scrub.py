"""Taking stored credential values out of text and files the backend publishes.

A sandbox that was handed a credential (an agent's provider key, a verifier's
``${credential:NAME}``) can print it or write it into the workspace. Events, the agent's
log, ``workspace.diff``, ``workspace.tar.gz`` and the files under ``/logs`` pass through a
``Scrubber`` holding the organisation's credential values before anyone can fetch them.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from envpools_cli.redaction import REDACTED, secret_forms

__all__ = ["REDACTED", "Scrubber"]

_MIN_SECRET = 8  # shorter values would redact ordinary words


class Scrubber:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        found = {
            form
            for value in secrets
            if len(value) >= _MIN_SECRET
            for form in secret_forms(value)
            if len(form) >= _MIN_SECRET
        }
        # Longest first: a value that contains another is replaced whole.
        self.texts = sorted(found, key=len, reverse=True)
        self.raw = [text.encode("utf-8", "surrogateescape") for text in self.texts]
        self._overlap = max((len(raw) for raw in self.raw), default=1) - 1

    def __bool__(self) -> bool:
        return bool(self.texts)

    def add(self, *secrets: str) -> Scrubber:
        return Scrubber([*self.texts, *secrets])

    def text(self, value: str) -> str:
        for secret in self.texts:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value

    def data(self, value: bytes) -> bytes:
        for secret in self.raw:
            if secret in value:
                value = value.replace(secret, REDACTED.encode())
        return value

    def stream(self, chunks: Iterable[bytes]) -> Iterator[bytes]:
        """``chunks`` with every value replaced, matches across chunk boundaries included."""
        if not self.raw:
            yield from chunks
            return
        carry = b""
        for chunk in chunks:
            buffer = self.data(carry + chunk)
            cut = max(0, len(buffer) - self._overlap)
            if cut:
                yield buffer[:cut]
            carry = buffer[cut:]
        if carry:
            yield self.data(carry)

    def found_in(self, chunks: Iterable[bytes]) -> bool:
        """Whether any value occurs in ``chunks`` (read once, a chunk at a time)."""
        if not self.raw:
            return False
        carry = b""
        for chunk in chunks:
            buffer = carry + chunk
            if any(secret in buffer for secret in self.raw):
                return True
            carry = buffer[-self._overlap :] if self._overlap else b""
        return False
