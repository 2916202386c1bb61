"""Every path envpools uses, platformdirs' user dirs, each overridable by env.

    ENVPOOLS_CONFIG_DIR   config.toml (profiles), the 0600 key file fallback
    ENVPOOLS_DATA_DIR     the local backend's SQLite database and rollout trials
    ENVPOOLS_STATE_DIR    local backend pid/address file and logs
    ENVPOOLS_CACHE_DIR    caches

A leaf module (stdlib + platformdirs only) shared by the CLI and the local backend.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

__all__ = ["cache_dir", "config_dir", "data_dir", "state_dir"]

# XDG variable and default under $HOME, per kind (platformdirs' rules on Linux).
_XDG = {
    "config": ("XDG_CONFIG_HOME", ".config"),
    "data": ("XDG_DATA_HOME", ".local/share"),
    "state": ("XDG_STATE_HOME", ".local/state"),
    "cache": ("XDG_CACHE_HOME", ".cache"),
}


def _default(kind: str) -> str:
    """platformdirs' ``user_<kind>_dir``, without its ~12 ms import on the common Linux case.

    A Tab press and ``--help`` read the cache dir; importing platformdirs (tempfile,
    shutil, random...) would cost more than the rest of them. ``tests/unit`` checks that
    both answers agree.
    """
    variable, under_home = _XDG[kind]
    home = os.environ.get("HOME", "")
    if sys.platform == "linux" and home.startswith("/"):
        base = os.environ.get(variable, "")
        return os.path.join(
            base if base.startswith("/") else os.path.join(home, under_home), "envpools"
        )
    from platformdirs import PlatformDirs

    return str(getattr(PlatformDirs("envpools", appauthor=False), f"user_{kind}_dir"))


def _pick(env: str, kind: str) -> Path:
    value = os.environ.get(env, "").strip()
    return Path(value).expanduser() if value else Path(_default(kind))


def config_dir() -> Path:
    return _pick("ENVPOOLS_CONFIG_DIR", "config")


def data_dir() -> Path:
    return _pick("ENVPOOLS_DATA_DIR", "data")


def state_dir() -> Path:
    return _pick("ENVPOOLS_STATE_DIR", "state")


def cache_dir() -> Path:
    return _pick("ENVPOOLS_CACHE_DIR", "cache")
