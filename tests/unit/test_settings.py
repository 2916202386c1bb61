from __future__ import annotations

from pathlib import Path

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


# --- one resolver for the client and the CLI -------------------------------------------------


@pytest.fixture
def profile_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A config.toml whose current profile sets every setting."""
    monkeypatch.setenv("ENVPOOLS_CONFIG_DIR", str(tmp_path))
    target = tmp_path / "config.toml"
    target.write_text(
        'current_profile = "dev"\n'
        "[profiles.dev]\n"
        'api_url = "http://profile:1"\n'
        'api_version = "legacy"\n'
        'output = "yaml"\n'
        "[profiles.other]\n"
        'api_url = "http://other:2"\n'
    )
    return target


def test_cli_precedence_flag_env_profile_default(
    profile_file: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from envpools_cli import config

    got = config.resolve()
    assert (got.profile, got.api_url, got.api_url_source) == (
        "dev",
        "http://profile:1",
        "profile dev",
    )
    assert (got.api_version, got.output) == ("legacy", "yaml")
    # env beats the profile; the official SDK's names come after ours
    monkeypatch.setenv("ENV_POOLS_API_VERSION", "v1")
    monkeypatch.setenv("SYNTH_BACKEND_URL", "http://synth:3")
    got = config.resolve()
    assert (got.api_url, got.api_url_source, got.api_version) == (
        "http://synth:3",
        "env SYNTH_BACKEND_URL",
        "v1",
    )
    monkeypatch.setenv("ENVPOOLS_API_VERSION", "legacy")
    monkeypatch.setenv("ENVPOOLS_API_URL", "http://envpools:4")
    monkeypatch.setenv("ENVPOOLS_OUTPUT", "json")
    got = config.resolve()
    assert (got.api_url, got.api_version, got.output) == ("http://envpools:4", "legacy", "json")
    # the flag beats everything
    got = config.resolve(api_url_flag="http://flag:5")
    assert (got.api_url, got.api_url_source) == ("http://flag:5", "flag --api-url")
    # profile selection: flag > ENVPOOLS_PROFILE > current_profile
    for name in ("ENVPOOLS_API_URL", "SYNTH_BACKEND_URL"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("ENVPOOLS_PROFILE", "other")
    assert config.resolve().api_url == "http://other:2"
    assert config.resolve(profile_flag="dev").api_url == "http://profile:1"
    # nothing anywhere: the default, after the SDK's override variables
    profile_file.unlink()
    monkeypatch.delenv("ENVPOOLS_PROFILE")
    got = config.resolve()
    assert (got.api_url, got.api_url_source) == ("https://api.usesynth.ai", "default")
    monkeypatch.setenv("SYNTH_BACKEND_URL_OVERRIDE", "local")
    got = config.resolve()
    assert (got.api_url, got.api_url_source) == (
        "http://localhost:8000",
        "env SYNTH_BACKEND_URL_OVERRIDE",
    )


@pytest.mark.parametrize(
    ("variables", "url", "version"),
    [
        ({}, None, None),
        ({"ENV_POOLS_API_VERSION": "legacy"}, None, "legacy"),
        ({"ENVPOOLS_API_VERSION": "legacy", "ENV_POOLS_API_VERSION": "v1"}, None, "legacy"),
        ({"SYNTH_BACKEND_URL": "http://s:1/api"}, "http://s:1", None),
        ({"SYNTH_BACKEND_URL": "http://s:1", "ENVPOOLS_API_URL": "http://e:2"}, "http://e:2", None),
        ({"SYNTH_BACKEND_URL_OVERRIDE": "prod"}, "https://api.usesynth.ai", None),
        ({"ENVIRONMENT": "production"}, "https://api.usesynth.ai", None),
    ],
)
def test_client_and_cli_read_the_environment_alike(
    variables: dict[str, str],
    url: str | None,
    version: str | None,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """With no profile and no flag, the CLI and the client pick the same values."""
    from envpools_cli import config

    monkeypatch.setenv("ENVPOOLS_CONFIG_DIR", str(tmp_path))
    for name, value in variables.items():
        monkeypatch.setenv(name, value)
    cli = config.resolve()
    assert cli.api_version == version
    assert resolve_api_version() == (version or "v1")
    if url is None:  # only the last resort differs: hosted for the CLI, the SDK's for the client
        assert cli.api_url == "https://api.usesynth.ai"
        assert resolve_backend_base() == "http://localhost:8000"
    else:
        assert normalize_backend_base(cli.api_url) == resolve_backend_base() == url
    monkeypatch.setenv("SYNTH_API_KEY", "k1")
    from envpools_cli import keystore

    stored = keystore.env_key()
    assert stored is not None and stored.value == resolve_api_key() == "k1"
