"""What ``envpools local up`` remembers: the backend's settings, until they are changed.

``local up --sandbox bwrap --max-running 4`` (any of the flags in ``FIELDS``) writes what it
was given to ``<config dir>/local-backend.toml`` once the backend runs; a later plain
``local up``, and ``envpools demo``, start the backend with them. A flag given again
replaces its value; an ``ENVPOOLS_*`` variable wins for the one run it is set in and is
not remembered. ``local up --reset`` forgets them all (so does deleting the file), and
``local status`` shows them.

The file is the user's to edit, so what it holds is checked before use: a bad value is a
usage error naming the file, the setting and the way out, never a traceback.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from envpools_cli.cli_errors import UsageProblem

__all__ = ["FIELDS", "LocalSettings", "forget", "load", "save", "settings_file"]

#: Each remembered setting, with the variable that overrides it for one run.
FIELDS = {
    "sandbox": "ENVPOOLS_SANDBOX",
    "limits": "ENVPOOLS_SANDBOX_LIMITS",
    "max_running": "ENVPOOLS_MAX_RUNNING",
    "cpu_overcommit": "ENVPOOLS_CPU_OVERCOMMIT",
    "executor": "ENVPOOLS_EXECUTOR",
    "ray_address": "ENVPOOLS_RAY_ADDRESS",
}
_HEADER = (
    "# The local backend's settings, as `envpools local up` was last given them.\n"
    "# A later `envpools local up` (and `envpools demo`) uses them; a flag changes one;\n"
    "# `envpools local up --reset` (or deleting this file) forgets them.\n"
)


def settings_file() -> Path:
    from envpools_cli import paths

    return paths.config_dir() / "local-backend.toml"


@dataclass(frozen=True)
class LocalSettings:
    """The backend's settings ``local up`` passes on to ``local serve`` (None: not set)."""

    sandbox: str | None = None
    limits: str | None = None
    """``NAME=N,...`` as in ``ENVPOOLS_SANDBOX_LIMITS`` (``memory_mb=4096,processes=512``)."""
    max_running: int | None = None
    cpu_overcommit: float | None = None
    executor: str | None = None
    ray_address: str | None = None

    def values(self) -> dict[str, Any]:
        """The settings that are set, in ``FIELDS`` order."""
        return {name: getattr(self, name) for name in FIELDS if getattr(self, name) is not None}

    def over(self, base: LocalSettings) -> LocalSettings:
        """These settings where set, ``base``'s elsewhere."""
        return dataclasses.replace(base, **self.values())

    def without_environment(self) -> LocalSettings:
        """Without the settings an ``ENVPOOLS_*`` variable sets for this run."""
        overridden = {name: None for name, env in FIELDS.items() if os.environ.get(env)}
        return dataclasses.replace(self, **overridden)

    def check(self, where: str, *, stored: bool = True) -> None:
        """Raise UsageProblem naming ``where`` for a value the backend cannot start with
        (``stored``: read from the file, and the hint says how to forget it)."""
        from envpools_cli.local_backend import SANDBOXES
        from envpools_cli.server.sandbox.limits import DEFAULT_LIMITS, parse_limits
        from envpools_cli.server.settings import EXECUTORS

        problems: list[str] = []
        if self.sandbox is not None and self.sandbox not in SANDBOXES:
            problems.append(f"sandbox {self.sandbox!r}: expected one of {', '.join(SANDBOXES)}")
        if self.limits is not None:
            try:
                parse_limits(self.limits, DEFAULT_LIMITS)
            except ValueError as exc:
                problems.append(f"limits {exc}")
        if self.max_running is not None and self.max_running < 1:
            problems.append(f"max_running {self.max_running}: expected 1 or more")
        if self.cpu_overcommit is not None and not 0 < self.cpu_overcommit <= 1000:
            problems.append(
                f"cpu_overcommit {self.cpu_overcommit:g}: expected above 0, at most 1000"
            )
        if self.executor is not None and self.executor not in EXECUTORS:
            problems.append(f"executor {self.executor!r}: expected one of {', '.join(EXECUTORS)}")
        if problems:
            raise UsageProblem(f"{where}: " + "; ".join(problems), hint=_hint() if stored else None)


def _hint() -> str:
    return f"fix it, or forget them: envpools local up --reset (or delete {settings_file()})"


def _typed(name: str, value: Any) -> Any:
    """A value as read from the file, in its field's type (ValueError: it is not)."""
    if name == "max_running":
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"{name} = {value!r}: expected a whole number")
        return value
    if name == "cpu_overcommit":
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise ValueError(f"{name} = {value!r}: expected a number")
        return float(value)
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"{name} = {value!r}: expected a non-empty string")
    return value.strip()


def load() -> LocalSettings:
    """The remembered settings (none when there is no file); UsageProblem when unusable."""
    import tomllib

    target = settings_file()
    try:
        text = target.read_text()
    except FileNotFoundError:
        return LocalSettings()
    except OSError as exc:
        raise UsageProblem(f"cannot read the remembered settings {target}: {exc}") from None
    where = f"the remembered local backend settings in {target}"
    try:
        document = tomllib.loads(text)
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UsageProblem(f"{where} are not valid TOML: {exc}", hint=_hint()) from None
    values: dict[str, Any] = {}
    problems: list[str] = []
    for name, value in document.items():
        if name not in FIELDS:
            problems.append(f"{name}: not a setting (known: {', '.join(FIELDS)})")
            continue
        try:
            values[name] = _typed(name, value)
        except ValueError as exc:
            problems.append(str(exc))
    if problems:
        raise UsageProblem(f"{where}: " + "; ".join(problems), hint=_hint())
    settings = LocalSettings(**values)
    settings.check(where)
    return settings


def save(settings: LocalSettings) -> Path:
    """Write ``settings`` (replacing what was remembered); the file."""
    import tomli_w

    target = settings_file()
    target.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    temporary = target.with_suffix(".toml.tmp")
    temporary.write_text(_HEADER + tomli_w.dumps(settings.values()))
    temporary.replace(target)  # atomic: a crash never leaves half a file
    return target


def forget() -> bool:
    """Forget the remembered settings; whether there were any."""
    try:
        settings_file().unlink()
    except FileNotFoundError:
        return False
    return True
