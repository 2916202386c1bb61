"""Every form a secret can take in text, so that none of them is ever shown.

An error message may quote a key as typed, as Python prints it (``'\\n'`` escapes, a
``b'...'`` bytes literal), as JSON escapes it, or URL-encoded; a malformed key (an
embedded newline, a stray space) may appear in pieces. Used by the CLI's error boundary
and debug log, and by the local backend's scrubbing of events and artifacts.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from urllib.parse import quote

__all__ = ["REDACTED", "redact_text", "secret_forms"]

REDACTED = "[REDACTED]"
_PIECES = re.compile(r"[^\x21-\x7e]+")  # whitespace, controls and non-ASCII split a key
_MIN_PIECE = 6


def secret_forms(secret: str, *, pieces: bool = False) -> set[str]:
    """The secret as written, escaped by Python, JSON and URLs; with ``pieces``, also each
    run of printable ASCII in it (what is left readable of a malformed key)."""
    forms = {secret, secret.strip()}
    forms |= {
        repr(secret)[1:-1],
        repr(secret.encode("utf-8", "surrogateescape"))[2:-1],
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        quote(secret, safe=""),
    }
    forms |= {json.dumps(form)[1:-1] for form in list(forms)}  # escaped twice (JSON errors)
    if pieces:
        forms |= {piece for piece in _PIECES.split(secret) if len(piece) >= _MIN_PIECE}
    return {form for form in forms if form}


def redact_text(text: str, secrets: Iterable[str], *, pieces: bool = False) -> str:
    """``text`` with every form of every secret replaced by ``[REDACTED]``."""
    forms = {form for secret in secrets if secret for form in secret_forms(secret, pieces=pieces)}
    for form in sorted(forms, key=len, reverse=True):  # longest first: no half-replaced key
        text = text.replace(form, REDACTED)
    return text
