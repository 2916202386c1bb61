"""Typer apps as Click groups that build each command when it is first asked for.

Typer converts a whole app at once: for every command it reads the function's
parameters, resolves their type hints and makes a pydantic TypeAdapter for each: about
0.2 s for this CLI's ~80 commands, and importing every command module first. Here a
group holds, for each name, how to build the command (Click's lazy group pattern): a
command line builds the groups and the one command it runs, a help screen what it lists.
Typer's own functions do each conversion, so a command is the same either way.
"""

from __future__ import annotations

import copy
import functools
import importlib
from collections.abc import Callable
from typing import Any

import typer
from typer._click import exceptions as click_exceptions
from typer.core import TyperGroup
from typer.main import get_command_from_info, get_command_name, get_group_from_info
from typer.models import CommandInfo, TyperInfo

__all__ = ["Builder", "LazyGroup", "name_metavars"]


def name_metavars(command: Any) -> None:
    """Help shows ``--pool POOL`` and ``ROLLOUT_ID...`` rather than Typer's ``<str>`` and
    ``rollout_ids <list[str]>``, and wraps between words (``help_format``)."""
    from envpools_cli.help_format import polish

    polish(command)


class LazyGroup(TyperGroup):
    """A group whose commands are built on first use, in the order ``lazy`` lists them."""

    def __init__(self, **attrs: Any) -> None:
        super().__init__(**attrs)
        self.lazy: dict[str, Callable[[], Any]] = {}

    def list_commands(self, ctx: Any) -> list[str]:
        return [*self.lazy, *(name for name in self.commands if name not in self.lazy)]

    def get_command(self, ctx: Any, cmd_name: str) -> Any:
        if cmd_name not in self.commands and cmd_name in self.lazy:
            command = self.lazy[cmd_name]()
            name_metavars(command)
            self.commands[cmd_name] = command
        return self.commands.get(cmd_name)

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click_exceptions.UsageError as exc:
            import difflib

            # Typer suggests close names among the commands built so far: all of them here.
            close = difflib.get_close_matches(args[0], self.list_commands(ctx)) if args else []
            if close and "Did you mean" not in exc.message:
                names = ", ".join(repr(name) for name in close)
                exc.message = f"{exc.message.rstrip('.')}. Did you mean {names}?"
            raise

    def load_all(self) -> None:
        """Build every command below this group (help screens and Tab list them all)."""
        for name in self.list_commands(None):
            command = self.get_command(None, name)
            if isinstance(command, LazyGroup):
                command.load_all()


class Builder:
    """Converts Typer apps and command functions with the root app's settings."""

    def __init__(self, root: typer.Typer) -> None:
        self._root = root

    def group(self, info: TyperInfo) -> LazyGroup:
        """``info``'s Typer app as a LazyGroup: its own options now, its commands later."""
        app = info.typer_instance
        assert app is not None
        shell = copy.copy(app)
        shell.registered_commands = []
        shell.registered_groups = []
        outline = copy.copy(info)
        outline.typer_instance = shell
        outline.cls = LazyGroup
        group = get_group_from_info(
            outline,
            pretty_exceptions_short=self._root.pretty_exceptions_short,
            rich_markup_mode=self._root.rich_markup_mode,
            suggest_commands=self._root.suggest_commands,
        )
        assert isinstance(group, LazyGroup)
        for command in app.registered_commands:
            assert command.callback is not None
            name = command.name or get_command_name(command.callback.__name__)
            group.lazy[name] = functools.partial(self.command, command)
        for sub in app.registered_groups:
            assert sub.name, "every group is added with a name"
            group.lazy[str(sub.name)] = functools.partial(self.group, sub)
        return group

    def command(self, info: CommandInfo) -> Any:
        return get_command_from_info(
            info,
            pretty_exceptions_short=self._root.pretty_exceptions_short,
            rich_markup_mode=self._root.rich_markup_mode,
        )

    def named(self, name: str, where: str) -> Any:
        """``module:attribute``, a Typer app (a group) or a function (a command), as ``name``."""
        module, attribute = where.split(":")
        found = getattr(importlib.import_module(module), attribute)
        if isinstance(found, typer.Typer):
            return self.group(TyperInfo(found, name=name))
        return self.command(CommandInfo(name=name, callback=found))
