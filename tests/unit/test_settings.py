from __future__ import annotations

import pytest

from envpools_cli.client import (
    MissingAPIKeyError,
    normalize_backend_base,
    resolve_api_key,
    resolve_api_version,
    resolve_backend_base,
)
from envpools_cli.client.errors import ConfigurationError
from envpools_cli.client.settings import api_url, fixed_url


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("http://h:1", "http://h:1"),
        ("http://h:1/", "http://h:1"),
        ("http://h:1/api", "http://h:1"),
        ("http://h:1/v1", "http://h:1"),
        ("http://h:1/api/v1", "http://h:1"),
        ("http://h:1/api/v1/", "http://h:1"),
        ("http://h:1/prefix/api?x=1#frag", "http://h:1/prefix"),
        ("https://api.usesynth.ai", "https://api.usesynth.ai"),
    ],
)
def test_normalize_backend_base(raw: str, expected: str) -> None:
    assert normalize_backend_base(raw) == expected


@pytest.mark.parametrize("raw", ["localhost:8000", "ftp://h", "not a url"])
def test_normalize_rejects_non_http_urls(raw: str) -> None:
    with pytest.raises(ConfigurationError):
        normalize_backend_base(raw)


def test_backend_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_backend_base() == "http://localhost:8000"
    monkeypatch.setenv("ENVIRONMENT", "prod")
    assert resolve_backend_base() == "https://api.usesynth.ai"
    monkeypatch.setenv("SYNTH_BACKEND_URL", "http://synth:1/api")
    assert resolve_backend_base() == "http://synth:1"
    monkeypatch.setenv("ENVPOOLS_API_URL", "http://envpools:2")
    assert resolve_backend_base() == "http://envpools:2"
    assert resolve_backend_base("http://explicit:3/v1") == "http://explicit:3"
    assert resolve_backend_base("   ") == "http://envpools:2"


def test_backend_override_tokens(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_BACKEND_URL_OVERRIDE", "prod")
    assert resolve_backend_base() == "https://api.usesynth.ai"
    monkeypatch.setenv("SYNTH_BACKEND_URL_OVERRIDE", "local")
    assert resolve_backend_base() == "http://localhost:8000"


def test_missing_key_names_the_variables() -> None:
    with pytest.raises(MissingAPIKeyError) as info:
        resolve_api_key()
    assert "SYNTH_API_KEY" in str(info.value)
    assert "ENVPOOLS_API_KEY" in str(info.value)
    assert isinstance(info.value, ValueError)


def test_key_resolution_order(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SYNTH_API_KEY", "synth")
    assert resolve_api_key() == "synth"
    monkeypatch.setenv("ENVPOOLS_API_KEY", "envpools")
    assert resolve_api_key() == "envpools"
    assert resolve_api_key("explicit") == "explicit"
    assert resolve_api_key("  ") == "envpools"


def test_api_version(monkeypatch: pytest.MonkeyPatch) -> None:
    assert resolve_api_version() == "v1"
    monkeypatch.setenv("ENV_POOLS_API_VERSION", "LEGACY")
    assert resolve_api_version() == "legacy"
    assert api_url("http://h", "rollouts/r1") == "http://h/api/v1/rollouts/r1"
    assert api_url("http://h", "rollouts/r1", api_version="v1") == "http://h/v1/rollouts/r1"
    assert fixed_url("http://h", "api/v1/me") == "http://h/api/v1/me"
