"""``paths`` answers as platformdirs does, without importing it on Linux (issue 12)."""

from __future__ import annotations

import pytest
from platformdirs import PlatformDirs

from envpools_cli import paths

_KINDS = ("config", "data", "state", "cache")
_XDG = ("XDG_CONFIG_HOME", "XDG_DATA_HOME", "XDG_STATE_HOME", "XDG_CACHE_HOME")


@pytest.mark.parametrize(
    "env",
    [
        {},
        {name: f"/xdg/{name.lower()}" for name in _XDG},
        {name: "relative/not/used" for name in _XDG},
        {"XDG_CACHE_HOME": "", "HOME": "/home/someone"},
        {"HOME": "relative-home"},
    ],
)
def test_defaults_agree_with_platformdirs(
    env: dict[str, str], monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in _XDG:
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    dirs = PlatformDirs("envpools", appauthor=False)
    for kind in _KINDS:
        assert paths._default(kind) == getattr(dirs, f"user_{kind}_dir"), kind


def test_env_overrides_win(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVPOOLS_CACHE_DIR", "~/here")
    monkeypatch.setenv("HOME", "/home/x")
    assert str(paths.cache_dir()) == "/home/x/here"
