"""The CLI's profiles, for Python code: a key and URL nobody passed come from there.

After ``envpools local up`` (or ``envpools auth login``) the active profile holds a
backend URL (``config.toml``) and a key (the OS keyring, or the 0600 file). Client code
that passes neither, ``EnvironmentPoolsClient()`` or ``list_rollouts()``, uses them as
the CLI would: argument > ``ENVPOOLS_*`` / ``SYNTH_*`` variables > the profile > the
official SDK's default. ``EnvironmentPoolsClient.from_profile(name)`` picks one by name.

The active profile is ``ENVPOOLS_PROFILE``, else ``current_profile`` in ``config.toml``.
Reading the keyring costs a D-Bus round trip, so a profile's settings are kept for the
process while ``config.toml`` and the key file are unchanged. The keyring module is
imported only when a key is looked up there; importing the client stays light.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigurationError

__all__ = ["ProfileSettings", "active_profile", "load_profile"]


@dataclass(frozen=True)
class ProfileSettings:
    name: str
    api_url: str | None
    api_version: str | None
    api_key: str | None

    def __repr__(self) -> str:  # the key never shows, not even in a debugger
        key = "set" if self.api_key else None
        return (
            f"ProfileSettings(name={self.name!r}, api_url={self.api_url!r}, "
            f"api_version={self.api_version!r}, api_key={key})"
        )


_lock = threading.Lock()
_cache: dict[tuple[object, ...], ProfileSettings | None] = {}


def _stamp(path: Path) -> int | None:
    try:
        return os.stat(path).st_mtime_ns
    except OSError:
        return None


def _read(name: str | None, *, strict: bool) -> ProfileSettings | None:
    from envpools_cli import config, keystore
    from envpools_cli.precedence import from_env

    try:
        settings = config.load_config()
    except config.ConfigError as exc:
        if strict:
            raise ConfigurationError(str(exc)) from None
        return None
    if name is None:
        chosen = from_env("profile")
        name = chosen.value if chosen is not None else settings.current_profile
        if not name:
            return None
    if name not in settings.profiles:
        if strict:
            known = ", ".join(sorted(settings.profiles)) or "none yet (envpools local up)"
            where = config.config_file()
            raise ConfigurationError(f"no profile {name!r} in {where}; profiles: {known}")
        return None
    profile = settings.profile(name)
    try:
        key: str | None = keystore.stored_key(name).value
    except keystore.KeyNotFound:
        key = None
    url, version = profile.get("api_url"), profile.get("api_version")
    return ProfileSettings(
        name=name,
        api_url=str(url) if url else None,
        api_version=str(version) if version else None,
        api_key=key,
    )


def load_profile(name: str | None = None, *, strict: bool = True) -> ProfileSettings | None:
    """Profile ``name`` (None: the active one, or None when there is none).

    ``strict``: a profile named but missing, or an unreadable ``config.toml``, raises
    ConfigurationError; otherwise it is as if there were no profile.
    """
    from envpools_cli import config, keystore

    key = (
        name,
        os.environ.get("ENVPOOLS_PROFILE", ""),
        str(config.config_file()),
        _stamp(config.config_file()),
        _stamp(keystore.key_file()),
        os.environ.get("ENVPOOLS_KEYRING", ""),
    )
    with _lock:
        if key in _cache:
            return _cache[key]
    found = _read(name, strict=strict)
    with _lock:
        _cache.clear()  # one entry: the files changed, or another profile is asked
        _cache[key] = found
    return found


def active_profile() -> ProfileSettings | None:
    """The CLI's active profile, if there is one; never raises."""
    try:
        return load_profile(None, strict=False)
    except Exception:  # a broken keyring, an odd file: the client goes on without it
        return None
