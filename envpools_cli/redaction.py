"""Every form a secret can take in text, so that none of them is ever shown.

An error message may quote a key as typed, as Python prints it (``'\\n'`` escapes, a
``b'...'`` bytes literal), as JSON escapes it, or URL-encoded; a malformed key (an
embedded newline, a stray space) may appear in pieces. Used by the CLI's error boundary
and debug log, and by the local backend's scrubbing of events and artifacts.

Secrets the backend does not know can still be recognised: ``redact_fields`` replaces,
at any depth of a document a client sent, the value of every field named like a secret
(``api_key``, ``token``, ``creds``, ...) and every string that looks like a credential
(``Bearer ...``, ``sk-...`` and other providers' key prefixes).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable
from typing import Any
from urllib.parse import quote

__all__ = [
    "CREDENTIAL_VALUE",
    "REDACTED",
    "SECRET_NAME",
    "redact_fields",
    "redact_text",
    "secret_forms",
]

REDACTED = "[REDACTED]"
_PIECES = re.compile(r"[^\x21-\x7e]+")  # whitespace, controls and non-ASCII split a key
_MIN_PIECE = 6

#: Field names whose values are secrets: api_key, access_token, client-secret, creds, ...
#: but not max_tokens or llm_input_tokens.
SECRET_NAME = re.compile(
    r"(^|[_-])(api_?key|apikey|key|token|secret|secrets|password|passwd|pwd|"
    r"credentials?|creds?|credential_value|authorization|auth|cookie|private_key|"
    r"access_key|secret_key|client_secret|bearer)$",
    re.I,
)
#: Strings that are credentials whatever field holds them: a bearer token, and the
#: key formats of the providers and services a task or an agent is likely to carry.
CREDENTIAL_VALUE = re.compile(
    r"(?i:\bbearer)\s+[A-Za-z0-9._~+/=-]{8,}"
    r"|\b(?:sk-[A-Za-z0-9_-]{16,}"  # OpenAI (sk-proj-), Anthropic (sk-ant-), OpenRouter
    r"|sk_(?:live|test)_[A-Za-z0-9]{16,}|rk_(?:live|test)_[A-Za-z0-9]{16,}"  # Stripe
    r"|gh[pousr]_[A-Za-z0-9]{30,}|github_pat_[A-Za-z0-9_]{30,}|glpat-[A-Za-z0-9_-]{20,}"
    r"|xox[abeprs]-[A-Za-z0-9-]{10,}|AKIA[0-9A-Z]{16}|AIza[0-9A-Za-z_-]{35}"
    r"|hf_[A-Za-z0-9]{30,}|ep_local_[A-Za-z0-9_-]{20,})"
)


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


def redact_fields(value: Any) -> Any:
    """``value`` (a JSON document) with secret-named fields and credential-like strings
    replaced by ``[REDACTED]``, at any depth."""
    if isinstance(value, dict):
        return {
            k: REDACTED
            if SECRET_NAME.search(str(k)) and v not in (None, "", [], {})
            else redact_fields(v)
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [redact_fields(item) for item in value]
    if isinstance(value, str):
        return CREDENTIAL_VALUE.sub(REDACTED, value)
    return value
