"""envpools config: where things live, profiles and their settings."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.commands._options import JsonOpt, OutputOpt, output_format
from envpools_cli.runtime import runtime

app = typer.Typer(help="Profiles and settings (config.toml); paths.", no_args_is_help=True)

KeyArg = Annotated[str, typer.Argument(help="api_url, output or api_version.")]


def _check_key(key: str) -> None:
    from envpools_cli.config import PROFILE_KEYS

    if key not in PROFILE_KEYS:
        raise UsageProblem(f"unknown setting {key!r}; settings: {', '.join(PROFILE_KEYS)}")


@app.command("path")
def path(output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """Where envpools keeps its files.

    Example: envpools config path
    """
    from envpools_cli import keystore, paths
    from envpools_cli.config import config_file
    from envpools_cli.output.formats import emit_record

    fmt = output_format(output, as_json, False)
    emit_record(
        {
            "config_file": str(config_file()),
            "key_file": str(keystore.key_file()),
            "data_dir": str(paths.data_dir()),
            "state_dir": str(paths.state_dir()),
            "cache_dir": str(paths.cache_dir()),
        },
        fmt,
    )


@app.command("get")
def get(key: KeyArg) -> None:
    """Print a setting of the current profile (as resolved: flag > env > profile).

    Example: envpools --profile local config get api_url
    """
    from envpools_cli.output.streams import write_out

    _check_key(key)
    resolved = runtime.resolved()
    value: Any = {
        "api_url": resolved.api_url,
        "output": resolved.output,
        "api_version": resolved.api_version,
    }[key]
    if value is None:
        raise typer.Exit(1)
    write_out(f"{value}\n")


@app.command("set")
def set_(key: KeyArg, value: Annotated[str, typer.Argument(help="The value.")]) -> None:
    """Set a setting of the current profile.

    Example: envpools --profile prod config set api_url https://api.usesynth.ai
    """
    from envpools_cli.config import API_VERSIONS, load_config
    from envpools_cli.output.formats import FORMATS
    from envpools_cli.output.messages import success

    _check_key(key)
    if key == "output" and value not in FORMATS:
        raise UsageProblem(f"output {value!r} is not one of {', '.join(FORMATS)}")
    if key == "api_version" and value.lower() not in API_VERSIONS:
        raise UsageProblem(f"api_version {value!r} is not one of {', '.join(API_VERSIONS)}")
    if key == "api_url":
        from envpools_cli.client import ConfigurationError, normalize_backend_base

        try:
            normalize_backend_base(value)
        except ConfigurationError as exc:
            raise UsageProblem(str(exc)) from None
    config = load_config()
    profile = runtime.resolved().profile
    config.profiles.setdefault(profile, {})[key] = value
    target = config.save()
    success(f"{profile}.{key} = {value} ({target})")


@app.command("unset")
def unset(key: KeyArg) -> None:
    """Remove a setting from the current profile.

    Example: envpools config unset output
    """
    from envpools_cli.config import load_config

    _check_key(key)
    config = load_config()
    profile = runtime.resolved().profile
    config.profiles.get(profile, {}).pop(key, None)
    config.save()


@app.command("profiles")
def profiles(output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """List profiles; the current one is marked.

    Example: envpools config profiles
    """
    from envpools_cli.config import load_config, selected_profile
    from envpools_cli.output.formats import Column, emit

    fmt = output_format(output, as_json, False)
    config = load_config()
    current = selected_profile(runtime.profile_flag, config)
    names = sorted(set(config.profiles) | {current})
    rows = [
        {
            "name": name,
            "current": name == current,
            "api_url": config.profile(name).get("api_url"),
            "output": config.profile(name).get("output"),
        }
        for name in names
    ]
    emit(
        rows,
        fmt,
        columns=[
            Column("PROFILE", "name", kind="id"),
            Column("CURRENT", "current", render=lambda v: "*" if v else ""),
            Column("API URL", "api_url"),
            Column("OUTPUT", "output"),
        ],
        id_key="name",
    )


@app.command("use")
def use(name: Annotated[str, typer.Argument(help="Profile name.")]) -> None:
    """Make a profile the current one.

    Example: envpools config use local
    """
    from envpools_cli.config import load_config
    from envpools_cli.output.messages import success

    config = load_config()
    if name not in config.profiles:
        raise UsageProblem(
            f"no profile {name!r}; profiles: {', '.join(sorted(config.profiles))}"
            if config.profiles
            else f"no profile {name!r} (none yet)"
        )
    config.current_profile = name
    config.save()
    success(f"now using profile {name!r}")
