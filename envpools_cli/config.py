"""Profiles in ``config.toml`` and the precedence flag > env > profile > default.

    current_profile = "local"

    [profiles.local]
    api_url = "http://127.0.0.1:8000"
    output = "table"
    api_version = "v1"

The profile in use is ``--profile``, else ``ENVPOOLS_PROFILE``, else ``current_profile``,
else ``default``. API keys are not stored here (see ``keystore.py``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envpools_cli import paths
from envpools_cli.precedence import HOSTED_BACKEND_URL, Choice, SettingName, choose

__all__ = [
    "API_VERSIONS",
    "DEFAULT_API_URL",
    "PROFILE_KEYS",
    "BadSetting",
    "Config",
    "ConfigError",
    "Resolved",
    "config_file",
    "load_config",
    "resolve",
    "save_profile",
]

#: The CLI's last resort is the hosted service; the client's is the official SDK's
#: (localhost:8000). Every step before the default is shared (``precedence.py``).
DEFAULT_API_URL = HOSTED_BACKEND_URL
DEFAULT_PROFILE = "default"
PROFILE_KEYS = {
    "api_url": "Backend URL of this profile",
    "output": "Default output format (table, json, jsonl, yaml, name)",
    "api_version": "API path version: v1 (default) or legacy",
}


class ConfigError(Exception):
    """The configuration file or a value in it is unusable."""


class BadSetting(ConfigError):
    """A setting (from the environment or a profile) has a value that means nothing."""


API_VERSIONS = ("v1", "legacy")


def config_file() -> Path:
    return paths.config_dir() / "config.toml"


@dataclass
class Config:
    current_profile: str | None
    profiles: dict[str, dict[str, Any]]

    def profile(self, name: str) -> dict[str, Any]:
        return self.profiles.get(name, {})

    def to_toml(self) -> str:
        import tomli_w

        document: dict[str, Any] = {}
        if self.current_profile:
            document["current_profile"] = self.current_profile
        document["profiles"] = self.profiles
        return tomli_w.dumps(document)

    def save(self) -> Path:
        target = config_file()
        target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        temporary = target.with_suffix(".toml.tmp")
        temporary.write_text(self.to_toml())
        os.chmod(temporary, 0o600)
        temporary.replace(target)  # atomic: a crash never leaves half a file
        return target


def load_config() -> Config:
    target = config_file()
    if not target.is_file():
        return Config(None, {})
    import tomllib  # here: without a config file (CI, a first run) nothing needs it

    try:
        document = tomllib.loads(target.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{target} is not valid TOML: {exc}") from None
    profiles = document.get("profiles") or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{target}: 'profiles' must be a table")
    current = document.get("current_profile")
    return Config(
        str(current) if current else None,
        {str(k): dict(v) for k, v in profiles.items() if isinstance(v, dict)},
    )


def save_profile(profile: str, api_url: str | None, *, make_current: bool) -> None:
    """Remember ``api_url`` for ``profile`` (kept as is when None); optionally make it current."""
    config = load_config()
    settings = dict(config.profiles.get(profile, {}))
    if api_url:
        settings["api_url"] = api_url
    config.profiles[profile] = settings
    if make_current:
        config.current_profile = profile
    config.save()


@dataclass(frozen=True)
class Resolved:
    """The settings a command runs with, and where each came from."""

    profile: str
    api_url: str
    api_url_source: str
    api_version: str | None
    output: str | None


def selected_profile(flag: str | None, config: Config) -> str:
    chosen = choose("profile", flag=flag, default=config.current_profile or DEFAULT_PROFILE)
    return chosen.value or DEFAULT_PROFILE


def resolve(profile_flag: str | None = None, api_url_flag: str | None = None) -> Resolved:
    """flag > env > profile > default, by the resolver the client uses (``precedence.py``)."""
    config = load_config()
    profile = selected_profile(profile_flag, config)
    settings = config.profile(profile)

    def pick(name: SettingName, flag: str | None = None, default: str | None = None) -> Choice:
        return choose(
            name,
            flag=flag,
            flag_source=f"flag --{name.replace('_', '-')}",
            profile=settings,
            profile_name=profile,
            default=default,
        )

    api_url = pick("api_url", api_url_flag, DEFAULT_API_URL)
    version = pick("api_version")
    if version.value is not None and version.value.lower() not in API_VERSIONS:
        raise BadSetting(
            f"api_version {version.value!r} (from {version.source}) is not one of "
            f"{', '.join(API_VERSIONS)}"
        )
    return Resolved(
        profile=profile,
        api_url=api_url.value or DEFAULT_API_URL,
        api_url_source=api_url.source,
        api_version=version.value,
        output=pick("output").value,
    )
