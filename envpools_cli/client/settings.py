"""Where requests go and with which key (CONTRACT.md §1).

Resolution order for each value: the explicit argument, then ``ENVPOOLS_*``, then the
variables the official SDK reads (``SYNTH_API_KEY``, ``SYNTH_BACKEND_URL``,
``ENV_POOLS_API_VERSION``), then the default.
"""

from __future__ import annotations

import os
from urllib.parse import quote, urlsplit, urlunsplit

from .errors import ConfigurationError, InvalidRequestError, MissingAPIKeyError

__all__ = [
    "DEFAULT_BACKEND_URL",
    "HOSTED_BACKEND_URL",
    "api_url",
    "fixed_url",
    "normalize_backend_base",
    "quote_segment",
    "resolve_api_key",
    "resolve_api_version",
    "resolve_backend_base",
]

#: What the official SDK uses when nothing is configured (and where the local backend listens).
DEFAULT_BACKEND_URL = "http://localhost:8000"
HOSTED_BACKEND_URL = "https://api.usesynth.ai"

_LEGACY_PREFIX = "/api/v1"
_V1_PREFIX = "/v1"
_NAMED_BACKENDS = {"local": DEFAULT_BACKEND_URL, "prod": HOSTED_BACKEND_URL}


def _env(*names: str) -> str | None:
    for name in names:
        value = os.environ.get(name, "").strip()
        if value:
            return value
    return None


def normalize_backend_base(url: str) -> str:
    """Scheme + host + optional prefix; a trailing ``/v1`` then ``/api`` is dropped."""
    try:
        parts = urlsplit(url.strip())
        parts.port  # noqa: B018 - parses the port: out of range or not a number raises here
    except ValueError as exc:
        raise ConfigurationError(f"backend URL {url!r} is malformed: {exc}") from None
    if not parts.scheme or not parts.netloc:
        raise ConfigurationError(
            f"backend URL {url!r} is not an absolute http(s) URL (e.g. http://127.0.0.1:8000)"
        )
    if parts.scheme not in ("http", "https"):
        raise ConfigurationError(f"backend URL {url!r} must use http or https")
    path = parts.path.rstrip("/")
    if path.endswith("/v1"):
        path = path[: -len("/v1")].rstrip("/")
    if path.endswith("/api"):
        path = path[: -len("/api")].rstrip("/")
    return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def resolve_backend_base(backend_base: str | None = None) -> str:
    if backend_base and backend_base.strip():
        return normalize_backend_base(backend_base)
    configured = _env("ENVPOOLS_API_URL", "SYNTH_BACKEND_URL")
    if configured:
        return normalize_backend_base(configured)
    override = _env("SYNTH_BACKEND_URL_OVERRIDE")
    if override:
        return normalize_backend_base(_NAMED_BACKENDS.get(override.lower(), override))
    if (_env("ENVIRONMENT", "APP_ENVIRONMENT") or "").lower() in ("prod", "production"):
        return HOSTED_BACKEND_URL
    return DEFAULT_BACKEND_URL


def resolve_api_key(api_key: str | None = None) -> str:
    if api_key and api_key.strip():
        return api_key
    found = _env("ENVPOOLS_API_KEY", "SYNTH_API_KEY")
    if not found:
        raise MissingAPIKeyError()
    return found


def resolve_api_version(api_version: str | None = None) -> str:
    if api_version and api_version.strip():
        return api_version.strip().lower()
    return (_env("ENV_POOLS_API_VERSION") or "v1").lower()


def quote_segment(value: str) -> str:
    """Percent-encode one path segment (an id), so ``/`` or ``?`` in it cannot re-route."""
    text = str(value)
    if not text.strip():
        raise InvalidRequestError(f"an id cannot be empty or blank, got {text!r}")
    try:
        return quote(text, safe="")
    except UnicodeEncodeError:  # undecodable bytes on argv arrive as lone surrogates
        raise InvalidRequestError(f"id {text!r} is not valid UTF-8") from None


def api_url(base: str, suffix: str, *, api_version: str | None = None) -> str:
    """``{base}/v1/{suffix}``, or ``{base}/api/v1/{suffix}`` for any other version."""
    prefix = _V1_PREFIX if resolve_api_version(api_version) == "v1" else _LEGACY_PREFIX
    return f"{base}{prefix}/{suffix.lstrip('/')}"


def fixed_url(base: str, path: str) -> str:
    """Paths that ignore the API version (credentials, account)."""
    return f"{base}/{path.lstrip('/')}"
