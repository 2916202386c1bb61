"""Where requests go and with which key (CONTRACT.md §1).

Each value is chosen by ``envpools_cli.precedence`` (the resolver the CLI uses too):
the explicit argument, then ``ENVPOOLS_*``, then the variables the official SDK reads
(``SYNTH_API_KEY``, ``SYNTH_BACKEND_URL``, ``ENV_POOLS_API_VERSION``), then the CLI's
active profile (``profile.py``: what ``envpools local up`` or ``auth login`` set up),
then the default.
"""

from __future__ import annotations

from urllib.parse import quote, urlunsplit

from envpools_cli.precedence import (
    HOSTED_BACKEND_URL,
    SDK_DEFAULT_BACKEND_URL,
    SettingName,
    choose,
    from_env,
)
from envpools_cli.shared import api_prefix, split_backend_url

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
DEFAULT_BACKEND_URL = SDK_DEFAULT_BACKEND_URL


def normalize_backend_base(url: str) -> str:
    """Scheme + host + optional prefix; a trailing ``/v1`` then ``/api`` is dropped."""
    try:
        scheme, netloc, path = split_backend_url(url)
    except ValueError as exc:
        raise ConfigurationError(str(exc)) from None
    return urlunsplit((scheme, netloc, path, "", ""))


def _from_profile(name: SettingName, given: str | None) -> dict[str, str]:
    """The active profile's value of ``name``, as ``choose`` takes a profile, when neither
    an argument nor the environment gives one (only then is the profile read)."""
    if (given is not None and given.strip()) or from_env(name) is not None:
        return {}
    from .profile import active_profile

    found = active_profile()
    value = getattr(found, name, None) if found is not None else None
    return {name: value} if value else {}


def resolve_backend_base(backend_base: str | None = None) -> str:
    profile = _from_profile("api_url", backend_base)
    url = choose("api_url", flag=backend_base, profile=profile, default=DEFAULT_BACKEND_URL).value
    return normalize_backend_base(url or DEFAULT_BACKEND_URL)


def resolve_api_key(api_key: str | None = None) -> str:
    found = choose("api_key", flag=api_key, profile=_from_profile("api_key", api_key)).value
    if not found:
        raise MissingAPIKeyError()
    return found


def resolve_api_version(api_version: str | None = None) -> str:
    profile = _from_profile("api_version", api_version)
    chosen = choose("api_version", flag=api_version, profile=profile, default="v1").value
    return (chosen or "v1").strip().lower()


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
    return f"{base}{api_prefix(resolve_api_version(api_version))}/{suffix.lstrip('/')}"


def fixed_url(base: str, path: str) -> str:
    """Paths that ignore the API version (credentials, account)."""
    return f"{base}/{path.lstrip('/')}"
