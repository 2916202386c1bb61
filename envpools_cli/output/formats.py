"""Resources on stdout as table, json, jsonl, yaml or name (ids only).

JSON is written with ``json.dumps`` (never through Rich, which wraps long lines when
piped); a table is a Rich table on a terminal and plain tab-separated text otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.output.sanitize import clean
from envpools_cli.output.streams import color_enabled, dump_json, is_tty, write_out
from envpools_cli.output.units import relative_age

__all__ = [
    "FORMATS",
    "Column",
    "FieldError",
    "emit",
    "emit_record",
    "fit_widths",
    "print_table",
    "resolve_format",
]

FORMATS = ("table", "json", "jsonl", "yaml", "name")


class FieldError(UsageProblem):
    """``--fields`` named something the data does not have."""


@dataclass(frozen=True)
class Column:
    """One table column.

    ``kind`` says how the column behaves on a terminal: ``id`` is never folded or cut (it
    must be copyable), ``fixed`` keeps its width (short values: statuses, numbers), ``text``
    gives way (cut with an ellipsis, in proportion to ``ratio``) and ``age`` shows a
    timestamp as an age ("3m") on a terminal and as the timestamp everywhere else.
    ``wide`` columns appear only with ``--wide`` (or when named in ``--fields``).
    """

    header: str
    key: str
    render: Callable[[Any], str] | None = None
    style: str | None = None
    kind: Literal["text", "id", "fixed", "age"] = "text"
    wide: bool = False
    ratio: int = 1

    def value(self, item: dict[str, Any]) -> Any:
        value: Any = item
        for part in self.key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def title(self, *, terminal: bool) -> str:
        """The header; off a terminal an age column holds timestamps and says so."""
        return self.header if terminal or self.kind != "age" else self.key.upper()

    def text(self, item: dict[str, Any], *, terminal: bool = False) -> str:
        value = self.value(item)
        if self.kind == "age" and terminal:
            return relative_age(value)
        if self.render is not None:
            return self.render(value)
        return plain_value(value)


def plain_value(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, dict | list):
        return json.dumps(value, separators=(",", ":"), ensure_ascii=False)
    return clean(str(value))


def resolve_format(
    output: str | None, as_json: bool, quiet: bool, default: str | None = None
) -> str:
    """``-q``, ``--json`` or ``-o``, then the profile/env default, then table.

    Two of them saying different things (``-q -o json``) is a usage error rather than a
    silent choice: the user asked for two outputs and gets neither by surprise.
    """
    given = output.lower() if output else None
    if given is not None and given not in FORMATS:
        raise UsageProblem(f"unknown output format {given!r}; use one of {', '.join(FORMATS)}")
    asked = {
        flag: fmt
        for flag, fmt in (
            ("-q", "name" if quiet else None),
            ("--json", "json" if as_json else None),
        )
        if fmt
    }
    if given is not None:
        asked[f"-o {given}"] = given
    if len(set(asked.values())) > 1:
        raise UsageProblem(f"choose one output: {' or '.join(asked)}")
    if asked:
        return next(iter(asked.values()))
    chosen = (default or "table").lower()
    if chosen not in FORMATS:
        raise UsageProblem(f"unknown output format {chosen!r}; use one of {', '.join(FORMATS)}")
    return chosen


def parse_fields(fields: str | None) -> list[str] | None:
    if not fields:
        return None
    return [f.strip() for f in fields.split(",") if f.strip()]


def _select(item: dict[str, Any], fields: list[str] | None) -> dict[str, Any]:
    if fields is None:
        return item
    return {name: item.get(name) for name in fields}


def _check_fields(
    items: Sequence[dict[str, Any]], fields: list[str] | None, columns: Sequence[Column]
) -> None:
    if fields is None:
        return
    known = {c.key.split(".")[0] for c in columns}
    for item in items:
        known |= set(item)
    unknown = [f for f in fields if f not in known]
    if unknown:
        raise FieldError(
            f"unknown field(s) {', '.join(unknown)}; available: {', '.join(sorted(known))}"
        )


def emit(
    items: Sequence[dict[str, Any]],
    fmt: str,
    *,
    columns: Sequence[Column],
    fields: list[str] | None = None,
    id_key: str = "id",
    title: str | None = None,
    empty: str | None = None,
    wide: bool = False,
    single: bool = False,
) -> None:
    """Print resources (``wide`` adds the columns marked ``wide`` to a table).

    The shape rule of machine output: a command about one resource prints an object, a
    command about many prints a list. ``single`` says the command was about one (one id
    given, ``--count 1``); a table is a table either way.
    """
    _check_fields(items, fields, columns)
    if single and len(items) == 1 and fmt in ("json", "yaml"):
        emit_record(items[0], fmt, fields=fields, id_key=id_key)
    elif fmt == "json":
        write_out(dump_json([_select(i, fields) for i in items]) + "\n")
    elif fmt == "jsonl":
        write_out("".join(dump_json(_select(i, fields), pretty=False) + "\n" for i in items))
    elif fmt == "yaml":
        import yaml

        write_out(
            yaml.safe_dump([_select(i, fields) for i in items], sort_keys=False, allow_unicode=True)
        )
    elif fmt == "name":
        write_out("".join(f"{i.get(id_key)}\n" for i in items))
    else:
        chosen = [
            c
            for c in columns
            if (c.key.split(".")[0] in fields if fields is not None else wide or not c.wide)
        ]
        if fields is not None:
            have = {c.key.split(".")[0] for c in chosen}
            chosen += [Column(f.upper(), f) for f in fields if f not in have]
        if not items and empty:
            from envpools_cli.output.messages import info

            info(empty)
            return
        hidden = print_table(items, chosen, title)
        if wide and hidden:
            from envpools_cli.output.messages import info

            names = ", ".join(c.header for c in hidden)
            info(f"no room for {names} at this width: widen the terminal or use -o json")


def emit_record(
    item: dict[str, Any],
    fmt: str,
    *,
    fields: list[str] | None = None,
    id_key: str = "id",
    order: Sequence[str] = (),
) -> None:
    """Print one resource: key/value rows as a table."""
    _check_fields([item], fields, [])
    selected = _select(item, fields)
    if fmt == "json":
        write_out(dump_json(selected) + "\n")
    elif fmt == "jsonl":
        write_out(dump_json(selected, pretty=False) + "\n")
    elif fmt == "yaml":
        import yaml

        write_out(yaml.safe_dump(selected, sort_keys=False, allow_unicode=True))
    elif fmt == "name":
        write_out(f"{item.get(id_key)}\n")
    else:
        keys = [k for k in order if k in selected] + [k for k in selected if k not in order]
        if not is_tty():
            write_out("".join(f"{k}\t{plain_value(selected[k])}\n" for k in keys))
            return
        # On a terminal, key/value rows wrap between words (never a JSON value cut mid-word).
        from envpools_cli.output.describe import Section, print_sections

        print_sections([Section(None, [(k, plain_value(selected[k])) for k in keys])])


#: Room between two columns (Rich's blank divider plus one space of padding: the padding
#: of neighbouring cells is collapsed into one).
_GAP = 2
#: A text column is not cut below this (or its header, or its content when shorter).
_MIN_TEXT = 8


def _drop_order(columns: Sequence[Column], shown: list[int]) -> list[int]:
    """Which shown column goes first when a table cannot fit: ``--wide`` extras first, ids
    among them (so ``--wide`` never shows less than without it), then text, then the
    rest, each from the right; other ids never (unless nothing else is left: the first
    id stays)."""

    def rank(i: int) -> tuple[int, int]:
        column = columns[i]
        tier = 0 if column.wide else 1 if column.kind == "text" else 2
        return (tier, -i)

    droppable = [i for i in shown if columns[i].wide or columns[i].kind != "id"] or shown[1:]
    return sorted(droppable, key=rank)


def fit_widths(
    columns: Sequence[Column], natural: Sequence[int], room: int, *, gap: int = _GAP
) -> list[int]:
    """Column widths that fit ``room`` characters; 0 marks a column left out.

    Ids and fixed columns keep their natural width; text columns give way, the widest
    first (so ``ratio`` shares stay fair), down to a floor; when even that is not
    enough, columns are left out (see ``_drop_order``) and the widths worked out again
    for those that stay, so an id is always whole.
    """
    shown = list(range(len(columns)))

    def floor(i: int) -> int:
        return min(natural[i], max(_MIN_TEXT, len(columns[i].header)))

    def total(widths: list[int]) -> int:
        return sum(widths[i] for i in shown) + gap * max(0, len(shown) - 1)

    while True:
        widths = list(natural)
        while total(widths) > room:
            flexible = [i for i in shown if columns[i].kind == "text" and widths[i] > floor(i)]
            if not flexible:
                break
            widest = max(flexible, key=lambda i: widths[i] / columns[i].ratio)
            widths[widest] -= 1
        if total(widths) <= room:
            break
        order = _drop_order(columns, shown)
        if not order:
            break
        shown.remove(order[0])
    return [widths[i] if i in shown else 0 for i in range(len(columns))]


def print_table(
    items: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    title: str | None = None,
    *,
    header: bool = True,
    width: int | None = None,
) -> list[Column]:
    """A table on stdout: Rich, fitted to the terminal (ids whole), or tab-separated text
    when stdout is not a terminal. Returns the columns left out for want of room."""
    terminal = is_tty()
    cells = [[c.text(i, terminal=terminal) for c in columns] for i in items]
    if not terminal:
        lines = ["\t".join(c.title(terminal=False) for c in columns)] if header else []
        lines += ["\t".join(row) for row in cells]
        write_out("".join(line + "\n" for line in lines))
        return []
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(no_color=not color_enabled(), highlight=False, soft_wrap=False)
    natural = [
        max([len(c.header) if header else 0, *(len(row[n]) for row in cells)])
        for n, c in enumerate(columns)
    ]
    room = width or console.width
    widths = fit_widths(columns, natural, room)
    tight = False
    if widths != list(natural):
        # Something had to give: one space between columns may spare it.
        closer = fit_widths(columns, natural, room, gap=1)
        tight = sum(closer) > sum(widths)
        widths = closer if tight else widths
    table = Table(
        box=box.SIMPLE_HEAD,
        show_header=header,
        show_edge=False,
        title=title,
        title_justify="left",
        header_style="bold",
        pad_edge=False,
        padding=(0, 0) if tight else (0, 1),
        collapse_padding=True,
    )
    shown = [n for n, width in enumerate(widths) if width]
    for n in shown:
        column = columns[n]
        table.add_column(
            column.header,
            style=column.style,
            width=widths[n],
            no_wrap=True,
            overflow="ellipsis" if column.kind == "text" else "ignore",
        )
    for row in cells:
        table.add_row(*(Text(row[n], no_wrap=True) for n in shown))
    with console.capture() as capture:
        console.print(table)
    write_out(capture.get())
    return [column for column, width in zip(columns, widths, strict=True) if not width]
