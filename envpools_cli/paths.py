"""Every path envpools uses, from one platformdirs object, each overridable by env.

    ENVPOOLS_CONFIG_DIR   config.toml (profiles), the 0600 key file fallback
    ENVPOOLS_DATA_DIR     the local backend's SQLite database and rollout trials
    ENVPOOLS_STATE_DIR    local backend pid/address file and logs
    ENVPOOLS_CACHE_DIR    caches

A leaf module (stdlib + platformdirs only) shared by the CLI and the local backend.
"""

from __future__ import annotations

import os
from pathlib import Path

from platformdirs import PlatformDirs

__all__ = ["cache_dir", "config_dir", "data_dir", "state_dir"]

_DIRS = PlatformDirs("envpools", appauthor=False)


def _pick(env: str, default: str) -> Path:
    value = os.environ.get(env, "").strip()
    return Path(value).expanduser() if value else Path(default)


def config_dir() -> Path:
    return _pick("ENVPOOLS_CONFIG_DIR", _DIRS.user_config_dir)


def data_dir() -> Path:
    return _pick("ENVPOOLS_DATA_DIR", _DIRS.user_data_dir)


def state_dir() -> Path:
    return _pick("ENVPOOLS_STATE_DIR", _DIRS.user_state_dir)


def cache_dir() -> Path:
    return _pick("ENVPOOLS_CACHE_DIR", _DIRS.user_cache_dir)
