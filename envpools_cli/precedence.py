"""The one place a setting's value is chosen: flag > env > profile > default.

Used by the client (``client/settings.py``: argument > env > default, no profiles) and by
the CLI (``config.py``: flag > env > profile > default), so both read the same variables
in the same order. A leaf module (stdlib only): the CLI's startup path imports it.

    api_url      ENVPOOLS_API_URL, SYNTH_BACKEND_URL
                 then SYNTH_BACKEND_URL_OVERRIDE (a URL, or "local"/"prod") and
                 ENVIRONMENT=prod, as the official SDK reads them
    api_key      ENVPOOLS_API_KEY, SYNTH_API_KEY
    api_version  ENVPOOLS_API_VERSION, ENV_POOLS_API_VERSION (the SDK's)
    output       ENVPOOLS_OUTPUT
    profile      ENVPOOLS_PROFILE
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

__all__ = [
    "ENV_NAMES",
    "HOSTED_BACKEND_URL",
    "SDK_DEFAULT_BACKEND_URL",
    "Choice",
    "SettingName",
    "choose",
    "debug_from_env",
    "from_env",
]

SettingName = Literal["api_url", "api_key", "api_version", "output", "profile"]

#: What the official SDK uses when nothing is configured (where the local backend listens).
SDK_DEFAULT_BACKEND_URL = "http://localhost:8000"
HOSTED_BACKEND_URL = "https://api.usesynth.ai"
_NAMED_BACKENDS = {"local": SDK_DEFAULT_BACKEND_URL, "prod": HOSTED_BACKEND_URL}

ENV_NAMES: dict[SettingName, tuple[str, ...]] = {
    "api_url": ("ENVPOOLS_API_URL", "SYNTH_BACKEND_URL"),
    "api_key": ("ENVPOOLS_API_KEY", "SYNTH_API_KEY"),
    "api_version": ("ENVPOOLS_API_VERSION", "ENV_POOLS_API_VERSION"),
    "output": ("ENVPOOLS_OUTPUT",),
    "profile": ("ENVPOOLS_PROFILE",),
}


@dataclass(frozen=True)
class Choice:
    """A setting's value and where it came from (``flag --api-url``, ``env X``, ...)."""

    value: str | None
    source: str


def from_env(name: SettingName) -> Choice | None:
    """The first non-blank variable of ``name``, or None."""
    for variable in ENV_NAMES[name]:
        value = os.environ.get(variable, "").strip()
        if value:
            return Choice(value, f"env {variable}")
    return None


def _default_api_url(fallback: str) -> Choice:
    override = os.environ.get("SYNTH_BACKEND_URL_OVERRIDE", "").strip()
    if override:
        url = _NAMED_BACKENDS.get(override.lower(), override)
        return Choice(url, "env SYNTH_BACKEND_URL_OVERRIDE")
    environment = os.environ.get("ENVIRONMENT", "") or os.environ.get("APP_ENVIRONMENT", "")
    if environment.strip().lower() in ("prod", "production"):
        return Choice(HOSTED_BACKEND_URL, "env ENVIRONMENT")
    return Choice(fallback, "default")


def choose(
    name: SettingName,
    *,
    flag: str | None = None,
    flag_source: str = "argument",
    profile: Mapping[str, Any] | None = None,
    profile_name: str | None = None,
    default: str | None = None,
) -> Choice:
    """flag > env > profile > default; blank values count as unset."""
    if flag is not None and flag.strip():
        return Choice(flag, flag_source)
    found = from_env(name)
    if found is not None:
        return found
    value = (profile or {}).get(name)
    if value is not None and str(value).strip():
        return Choice(str(value), f"profile {profile_name}" if profile_name else "profile")
    if name == "api_url" and default is not None:
        return _default_api_url(default)
    return Choice(default, "default")


# Click's own true spellings: ENVPOOLS_DEBUG is the --debug option's envvar, and what is
# read before Click parses it must agree ("false" is off, not "set, so on").
_TRUE = frozenset({"1", "true", "t", "yes", "y", "on"})


def debug_from_env(environ: Mapping[str, str] | None = None) -> bool:
    """ENVPOOLS_DEBUG as ``--debug`` reads it; a value Click refuses counts as off here."""
    value = (os.environ if environ is None else environ).get("ENVPOOLS_DEBUG", "")
    return value.strip().lower() in _TRUE
