"""The root command, its global options, and THE error boundary.

Every expected failure (the client's error tree, the CLI's own errors, usage errors)
becomes a message on stderr, one JSON object on stderr in JSON modes, and an exit code
from ``cli_errors``; anything else is a bug: a short message, and the traceback only
with ``--debug``.
"""

from __future__ import annotations

import functools
import logging
import os
import re
import sys
from collections.abc import Sequence
from typing import Annotated, Any

import typer

from envpools_cli import __version__
from envpools_cli.cli_errors import (
    EXIT_AUTH,
    EXIT_ERROR,
    EXIT_INTERRUPTED,
    EXIT_NOT_FOUND,
    EXIT_OK,
    EXIT_TRANSIENT,
    EXIT_USAGE,
    CLIError,
)
from envpools_cli.lazy_groups import Builder, LazyGroup, name_metavars
from envpools_cli.precedence import debug_from_env
from envpools_cli.runtime import runtime
from envpools_cli.shared import HELP_OPTIONS, HELP_WIDTH

__all__ = ["COMMANDS", "app", "run"]

# The commands under the root, in the order help lists them: "module:name" under
# envpools_cli.commands of a Typer app (a group) or a function (a command), and the parts
# a group takes from other modules. A group's modules are imported when a command line
# names it (or a help screen lists it): `envpools pools list` imports the pools and tasks
# modules and none of the others (Click's lazy group pattern).
COMMANDS: dict[str, tuple[str, dict[str, str]]] = {
    "demo": ("demo:demo", {}),
    "pools": ("pools:app", {"tasks": "tasks:app"}),
    "tasks": ("tasks:app", {}),
    "rollouts": (
        "rollouts:app",
        {
            "wait": "rollouts_watch:wait",
            "tail": "rollouts_watch:tail",
            "artifacts": "rollouts_files:artifacts",
            "download": "rollouts_files:download",
            "trajectory": "rollouts_files:trajectory",
            "export": "rollouts_files:export",
        },
    ),
    "jobs": ("jobs:app", {}),
    "credentials": ("credentials:app", {}),
    "capabilities": ("capabilities:app", {}),
    "queue": ("queue:app", {}),
    "auth": ("auth:app", {}),
    "config": ("config_cmd:app", {}),
    "local": ("local:app", {"images": "local_images:app"}),
    "agents": ("agents:app", {}),
    "completion": ("completion:app", {}),
    "view": ("view:view", {}),
}


def _root(command: Any) -> Any:
    """The root group, its commands to be built from COMMANDS when asked for."""
    assert isinstance(command, LazyGroup)
    builder = Builder(app)

    def build(name: str, where: str, parts: dict[str, str]) -> Any:
        built = builder.named(name, f"envpools_cli.commands.{where}")
        for part, part_where in parts.items():
            built.lazy[part] = functools.partial(
                builder.named, part, f"envpools_cli.commands.{part_where}"
            )
        return built

    command.lazy = {
        name: functools.partial(build, name, where, parts)
        for name, (where, parts) in COMMANDS.items()
    }
    name_metavars(command)
    return command


app = typer.Typer(
    name="envpools",
    help="Operate environment pools and agent rollouts, on Synth or on this machine.\n\n"
    "Data goes to stdout, everything else to stderr. Exit codes: 0 ok, 1 error, 2 usage, "
    "3 timed out, 4 auth/plan, 5 rollout not successful, 6 not found, 7 transient "
    "(retry), 130 interrupted.",
    cls=LazyGroup,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    pretty_exceptions_show_locals=False,
    add_completion=False,
    context_settings={"help_option_names": list(HELP_OPTIONS)},
    rich_markup_mode=None,
)


def _version(value: bool) -> None:
    if value:
        sys.stdout.write(f"envpools {__version__}\n")
        raise typer.Exit(0)


@app.callback()
def root(
    profile: Annotated[
        str | None,
        typer.Option(
            "--profile",
            "-p",
            metavar="NAME",
            help="Profile to use (env ENVPOOLS_PROFILE).",
            show_default=False,
        ),
    ] = None,
    api_url: Annotated[
        str | None,
        typer.Option(
            "--api-url",
            metavar="URL",
            help="Backend URL (env ENVPOOLS_API_URL, then SYNTH_BACKEND_URL).",
            show_default=False,
        ),
    ] = None,
    debug: Annotated[
        bool,
        typer.Option(
            "--debug",
            help="Log HTTP traffic (secrets redacted) and show tracebacks.",
            envvar="ENVPOOLS_DEBUG",
        ),
    ] = False,
    no_input: Annotated[
        bool,
        typer.Option("--no-input", help="Never prompt (also when CI or ENVPOOLS_NO_INPUT is set)."),
    ] = False,
    color: Annotated[
        str,
        typer.Option(
            "--color", metavar="WHEN", help="Colour: auto, always or never (NO_COLOR is honoured)."
        ),
    ] = "auto",
    version: Annotated[
        bool,
        typer.Option(
            "--version", "-V", help="Print the version and exit.", callback=_version, is_eager=True
        ),
    ] = False,
) -> None:
    """Operate environment pools and agent rollouts."""
    from envpools_cli.output.streams import set_color

    if color not in ("auto", "always", "never"):
        raise typer.BadParameter(f"{color!r}: use auto, always or never", param_hint="--color")
    set_color(color)
    runtime.profile_flag = profile
    runtime.api_url_flag = api_url
    runtime.debug = runtime.debug or debug
    runtime.no_input = no_input
    if runtime.debug:
        _enable_debug_logging()


class _RedactingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return _scrub_text(super().format(record))


_DEBUG_LOGGERS = ("envpools", "httpx")
_debug_handlers: list[logging.Handler] = []


def _enable_debug_logging() -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(_RedactingFormatter("debug: %(name)s: %(message)s"))
    _debug_handlers.append(handler)
    for name in _DEBUG_LOGGERS:
        logger = logging.getLogger(name)
        logger.setLevel(logging.DEBUG)
        logger.addHandler(handler)


def _disable_debug_logging() -> None:
    while _debug_handlers:
        handler = _debug_handlers.pop()
        for name in _DEBUG_LOGGERS:
            logging.getLogger(name).removeHandler(handler)


# --- the error boundary ---------------------------------------------------------------------


def _wants_json(argv: list[str]) -> bool:
    for index, arg in enumerate(argv):
        if arg == "--json":
            return True
        following = argv[index + 1] if index + 1 < len(argv) else ""
        if arg in ("-o", "--output") and following in ("json", "jsonl", "yaml"):
            return True
        if arg.startswith(("--output=", "-o=")) and arg.split("=", 1)[1] in (
            "json",
            "jsonl",
            "yaml",
        ):
            return True
        if arg.startswith("-o") and arg[2:] in ("json", "jsonl", "yaml"):
            return True
    return os.environ.get("ENVPOOLS_OUTPUT", "") in ("json", "jsonl", "yaml")


def _loopback(host: str) -> bool:
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


def _network_hint(exc: Any) -> str:
    """Refused on this machine means the local backend is not running: say how to start it."""
    try:
        url = exc.request.url
    except RuntimeError:  # httpx: no request attached (a stream that broke mid-event)
        url = None
    if url is not None and _loopback(url.host):
        return (
            f"nothing is listening on {url.scheme}://{url.netloc.decode()}: start the local "
            "backend with 'envpools local up' (or point --api-url / the profile elsewhere)"
        )
    return "is the backend running and reachable?"


def _retry_command(argv: Sequence[str], key: str) -> str:
    """The command line that was run, with ``--idempotency-key key`` (replacing any)."""
    import shlex

    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--idempotency-key":
            skip = True
        elif not arg.startswith("--idempotency-key="):
            kept.append(arg)
    return shlex.join(["envpools", *kept, "--idempotency-key", key])


# The backend's machine ran out of something: said as such, not as a passing hiccup.
_EXHAUSTED = {
    "disk_full": (
        EXIT_ERROR,
        "free some space on the backend's disk (the message says where), then run this again",
    ),
    "resource_exhausted": (
        EXIT_TRANSIENT,
        "the backend is out of open files: try again when fewer rollouts run, or raise its "
        "limit (the message says how)",
    ),
}


def classify(
    exc: BaseException, argv: Sequence[str] = ()
) -> tuple[int, dict[str, Any], str | None]:
    """(exit code, JSON error object, hint) for an expected failure."""
    from envpools_cli import client as ep

    if isinstance(exc, CLIError):
        return exc.exit_code, {"code": exc.code, "message": exc.message}, exc.hint
    if isinstance(exc, ep.PlanGatingError):
        return EXIT_AUTH, exc.to_dict(), f"upgrade at {exc.upgrade_url}"
    if isinstance(exc, ep.AuthenticationError | ep.PermissionDeniedError):
        return EXIT_AUTH, exc.to_dict(), "check the key: 'envpools auth status'"
    if isinstance(exc, ep.MissingAPIKeyError):
        return (
            EXIT_AUTH,
            {"code": "auth_missing", "message": str(exc)},
            ("run 'envpools auth login' or set ENVPOOLS_API_KEY"),
        )
    if isinstance(exc, ep.NotFoundError):
        return EXIT_NOT_FOUND, exc.to_dict(), None
    if isinstance(exc, ep.APIError) and exc.code in _EXHAUSTED:
        code, hint = _EXHAUSTED[exc.code]
        return code, exc.to_dict(), hint
    if isinstance(exc, ep.RateLimitError | ep.ServerError):
        return EXIT_TRANSIENT, exc.to_dict(), "this is transient: try again later"
    if isinstance(exc, ep.APIError):
        return EXIT_ERROR, exc.to_dict(), None
    if isinstance(exc, ep.OutcomeUnknownError):
        return (
            EXIT_TRANSIENT,
            {
                "code": "outcome_unknown",
                "message": str(exc),
                "idempotency_key": exc.idempotency_key,
                "retryable": True,
            },
            "it may have been created: this retries it safely, creating nothing twice: "
            + _retry_command(argv, exc.idempotency_key),
        )
    if isinstance(exc, ep.TransportError):
        return (
            EXIT_TRANSIENT,
            {"code": "network_error", "message": str(exc), "retryable": True},
            _network_hint(exc),
        )
    if isinstance(exc, ep.InvalidRequestError | ep.ConfigurationError):
        return EXIT_USAGE, {"code": "invalid_request", "message": str(exc)}, None
    if isinstance(exc, ep.InvalidResponseError):
        return (
            EXIT_ERROR,
            {"code": "invalid_response", "message": str(exc)},
            "is the backend URL right? 'envpools auth status' shows which one is used",
        )
    if isinstance(exc, ep.StreamGapError):
        return EXIT_ERROR, {"code": "stream_gap", "message": str(exc)}, None
    if isinstance(exc, ep.EnvPoolsError):
        return EXIT_ERROR, {"code": "error", "message": str(exc)}, None
    if isinstance(exc, OSError) and exc.filename:
        # A path that cannot be used (a file where a folder should be, no permission, a
        # full disk): the environment, not a bug.
        where = exc.filename if exc.filename2 is None else f"{exc.filename} -> {exc.filename2}"
        return (
            EXIT_ERROR,
            {"code": "file_error", "message": f"{where}: {exc.strerror or exc}"},
            "check the path (and the ENVPOOLS_*_DIR variables)",
        )
    raise exc


def _scrub_text(text: str) -> str:
    """Error text may quote anything, the key included, in any escaped or broken form."""
    from envpools_cli.redaction import redact_text

    key = runtime._key.value if runtime._key else None
    keys = [key] if key else []
    keys += [os.environ[n] for n in ("ENVPOOLS_API_KEY", "SYNTH_API_KEY") if os.environ.get(n)]
    return redact_text(text, keys, pieces=True) if keys else text


def _scrub(value: Any) -> Any:
    if isinstance(value, str):
        return _scrub_text(value)
    if isinstance(value, dict):
        return {k: _scrub(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_scrub(item) for item in value]
    return value


_PYTHON_LIST = re.compile(r"\[((?:'[^'\[\]\n]*'(?:, )?)+)\]")


def plain_lists(text: str) -> str:
    """``Allowed models: ['a', 'b']`` reads ``Allowed models: a, b``: the client keeps the
    official SDK's wording (and its Python lists) for code; people get words."""
    return _PYTHON_LIST.sub(lambda m: ", ".join(re.findall(r"'([^']*)'", m.group(1))), text)


def report(exit_code: int, payload: dict[str, Any], hint: str | None) -> None:
    from envpools_cli.output import messages

    payload = {k: _scrub(v) for k, v in payload.items() if v is not None}
    if isinstance(payload.get("message"), str):
        payload["message"] = plain_lists(payload["message"])
    hint = _scrub(hint)
    if runtime.json_errors:
        messages.error_json({**payload, "exit_code": exit_code, **({"hint": hint} if hint else {})})
        return
    message = str(payload.get("message", "failed"))
    if payload.get("request_id"):
        message += f" (request_id: {payload['request_id']})"
    messages.error(message)
    if hint:
        messages.hint(hint)


@functools.cache
def full_command() -> Any:
    """The root command with every command under it built (~0.2 s): what help and Tab show."""
    command = _root(typer.main.get_command(app))
    command.load_all()
    return command


def help_screen(path: Sequence[str]) -> tuple[str, tuple[str, ...]] | None:
    """``envpools PATH --help`` as it prints on a terminal of ``HELP_WIDTH`` columns or more.

    ``(text, flags)``: the text exactly as Click writes it (this runs the real command with
    ``--help``) and the flags that ask for it there (a command with a ``-h`` option of its
    own takes only ``--help``); None when PATH names no command. ``scripts/update-screens``
    writes them into ``fast/screens.py``, from where ``fast/help.py`` serves them.
    """
    import contextlib
    import io

    command = full_command()
    node: Any = command
    for name in path:
        node = getattr(node, "commands", {}).get(name)
        if node is None:
            return None
    taken = {name for param in node.params for name in (*param.opts, *param.secondary_opts)}
    flags = tuple(flag for flag in HELP_OPTIONS if flag not in taken)
    if not flags:
        return None
    out = io.StringIO()
    saved = os.environ.get("COLUMNS")
    os.environ["COLUMNS"] = str(HELP_WIDTH)
    try:
        with contextlib.redirect_stdout(out):
            args = [*path, flags[-1]]  # --help, unless a command took it for itself
            code = command.main(args=args, prog_name="envpools", standalone_mode=False)
    finally:
        if saved is None:
            os.environ.pop("COLUMNS", None)
        else:
            os.environ["COLUMNS"] = saved
        runtime.reset()
    return (out.getvalue(), flags) if code in (0, None) else None


def run(argv: list[str] | None = None) -> int:
    """Invoke the CLI; return the exit code. Never lets an expected error escape."""
    from typer._click import exceptions as click_exceptions

    from envpools_cli.output.streams import PipeClosed

    argv = list(sys.argv[1:] if argv is None else argv)
    runtime.reset()
    runtime.json_errors = _wants_json(argv)
    runtime.debug = "--debug" in argv or debug_from_env()
    command = _root(typer.main.get_command(app))
    try:
        result = command.main(args=argv, prog_name="envpools", standalone_mode=False)
        return result if isinstance(result, int) else EXIT_OK
    except click_exceptions.NoArgsIsHelpError as exc:
        exc.show()  # a bare group: its help, on stderr
        return exc.exit_code
    except click_exceptions.ClickException as exc:
        # The same shape as every other error (one line, then a hint), not Click's
        # usage block: scripts and people look for "error:" on the first line.
        message = " ".join(exc.format_message().split())
        context = getattr(exc, "ctx", None)
        hint = f"see '{context.command_path} --help'" if context is not None else None
        report(exc.exit_code, {"code": "usage_error", "message": message}, hint)
        return exc.exit_code
    except typer.Abort:
        return EXIT_INTERRUPTED
    except typer.Exit as exc:
        return exc.exit_code
    except PipeClosed:
        return EXIT_OK
    except KeyboardInterrupt:
        return EXIT_INTERRUPTED
    except Exception as exc:
        try:
            code, payload, hint = classify(exc, argv)
        except Exception:
            if runtime.debug:
                import traceback

                sys.stderr.write(_scrub_text("".join(traceback.format_exception(exc))))
            report(
                EXIT_ERROR,
                {"code": "internal", "message": f"internal error: {type(exc).__name__}: {exc}"},
                "this is a bug in envpools"
                + ("" if runtime.debug else "; run with --debug for the traceback"),
            )
            return EXIT_ERROR
        report(code, payload, hint)
        return code
    finally:
        runtime.close()
        _disable_debug_logging()
