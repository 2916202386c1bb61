"""envpools auth: API keys per profile, kept in the OS keyring."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from envpools_cli.cli_errors import EXIT_AUTH, CLIError, UsageProblem
from envpools_cli.commands._options import JsonOpt, OutputOpt, output_format
from envpools_cli.commands._secrets import read_secret
from envpools_cli.runtime import runtime

app = typer.Typer(
    help="Log in and out: API keys per profile in the OS keyring.", no_args_is_help=True
)


@app.command("login")
def login(
    api_url: Annotated[
        str | None, typer.Option("--api-url", help="Backend URL to remember for this profile.")
    ] = None,
    key_file: Annotated[
        Path | None,
        typer.Option("--key-file", help="Read the key from a file instead of stdin or a prompt."),
    ] = None,
    insecure_storage: Annotated[
        bool,
        typer.Option(
            "--insecure-storage", help="Store the key in a 0600 file, not the OS keyring."
        ),
    ] = False,
) -> None:
    """Check an API key against the backend and store it for the profile.

    The key is read from stdin or a hidden prompt, never from arguments.

    Example: printf %s "$KEY" | envpools --profile prod auth login --api-url https://api.usesynth.ai
    """
    from envpools_cli import client as ep
    from envpools_cli import keystore
    from envpools_cli.config import load_config, save_profile
    from envpools_cli.output.messages import success, warn

    resolved = runtime.resolved()
    base = ep.normalize_backend_base(api_url or resolved.api_url)
    key = read_secret("API key", key_file)
    problem = keystore.key_problem(key)
    if problem:
        raise UsageProblem(f"this API key {problem}; nothing was stored")
    try:
        account = ep.get_account(backend_base=base, api_key=key, session=runtime.session())
    except ep.AuthenticationError:
        raise CLIError(
            f"{base} rejected this key; nothing was stored",
            exit_code=EXIT_AUTH,
            code="auth_rejected",
        ) from None
    where = keystore.set_key(resolved.profile, key, warn=warn, insecure_storage=insecure_storage)
    save_profile(resolved.profile, api_url, make_current=load_config().current_profile is None)
    plan = account.get("plan") or account.get("tier") or "unknown"
    success(
        f"logged in to {base} as {account.get('org_id', 'an organisation')} "
        f"(plan {plan}); key stored in {where} for profile {resolved.profile!r}"
    )


@app.command("logout")
def logout() -> None:
    """Forget the profile's API key.

    Example: envpools --profile prod auth logout
    """
    from envpools_cli import keystore
    from envpools_cli.output.messages import info, success

    profile = runtime.resolved().profile
    removed = keystore.delete_key(profile)
    if removed:
        success(f"removed the key of profile {profile!r} from {' and '.join(removed)}")
    else:
        info(f"profile {profile!r} had no stored key")


@app.command("status")
def status(output: OutputOpt = None, as_json: JsonOpt = False) -> None:
    """Which backend, which key (masked, and where it comes from), which plan.

    Example: envpools auth status --json
    """
    from envpools_cli import client as ep
    from envpools_cli.keystore import mask
    from envpools_cli.output.formats import emit_record

    fmt = output_format(output, as_json, False)
    resolved = runtime.resolved()
    key = runtime.api_key()
    info: dict[str, Any] = {
        "profile": resolved.profile,
        "api_url": resolved.api_url,
        "api_url_source": resolved.api_url_source,
        "api_key": mask(key.value),
        "api_key_source": key.source,
    }
    try:
        account = ep.get_account(**runtime.conn(versioned=False))
        info.update(
            {
                "org_id": account.get("org_id"),
                "plan": account.get("plan"),
                "feature_flags": account.get("feature_flags"),
                "reachable": True,
            }
        )
        info["authenticated"] = True
    except ep.AuthenticationError:
        info.update({"authenticated": False, "reachable": True})
    except (ep.TransportError, ep.APIError) as exc:
        info.update({"reachable": False, "problem": str(exc)})
    emit_record(info, fmt, id_key="profile")
    if info.get("authenticated") is False:
        raise typer.Exit(EXIT_AUTH)
