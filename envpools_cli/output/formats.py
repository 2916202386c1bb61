"""Resources on stdout as table, json, jsonl, yaml or name (ids only).

JSON is written with ``json.dumps`` (never through Rich, which wraps long lines when
piped); a table is a Rich table on a terminal and plain tab-separated text otherwise.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from envpools_cli.cli_errors import UsageProblem
from envpools_cli.output.sanitize import clean
from envpools_cli.output.streams import color_enabled, is_tty, write_out

__all__ = ["FORMATS", "Column", "FieldError", "emit", "emit_record", "resolve_format"]

FORMATS = ("table", "json", "jsonl", "yaml", "name")


class FieldError(UsageProblem):
    """``--fields`` named something the data does not have."""


@dataclass(frozen=True)
class Column:
    header: str
    key: str
    render: Callable[[Any], str] | None = None
    style: str | None = None

    def value(self, item: dict[str, Any]) -> Any:
        value: Any = item
        for part in self.key.split("."):
            value = value.get(part) if isinstance(value, dict) else None
        return value

    def text(self, item: dict[str, Any]) -> str:
        value = self.value(item)
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
    """``-q`` > ``--json`` > ``-o`` > the profile/env default > table."""
    if quiet:
        return "name"
    if as_json:
        return "json"
    chosen = (output or default or "table").lower()
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


def dump_json(value: Any, *, pretty: bool | None = None) -> str:
    pretty = is_tty() if pretty is None else pretty
    return json.dumps(value, indent=2 if pretty else None, ensure_ascii=False, default=str)


def emit(
    items: Sequence[dict[str, Any]],
    fmt: str,
    *,
    columns: Sequence[Column],
    fields: list[str] | None = None,
    id_key: str = "id",
    title: str | None = None,
    empty: str | None = None,
) -> None:
    """Print a list of resources."""
    _check_fields(items, fields, columns)
    if fmt == "json":
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
        chosen = [c for c in columns if fields is None or c.key.split(".")[0] in fields]
        if fields is not None:
            have = {c.key.split(".")[0] for c in chosen}
            chosen += [Column(f.upper(), f) for f in fields if f not in have]
        if not items and empty:
            from envpools_cli.output.messages import info

            info(empty)
            return
        _table(items, chosen, title)


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
        rows = [{"field": k, "value": selected[k]} for k in keys]
        _table(rows, [Column("FIELD", "field"), Column("VALUE", "value")], None, header=False)


def _table(
    items: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    title: str | None,
    *,
    header: bool = True,
) -> None:
    if not is_tty():
        lines = ["\t".join(c.header for c in columns)] if header else []
        lines += ["\t".join(c.text(i) for c in columns) for i in items]
        write_out("".join(line + "\n" for line in lines))
        return
    from rich import box
    from rich.console import Console
    from rich.table import Table
    from rich.text import Text

    console = Console(no_color=not color_enabled(), highlight=False, soft_wrap=False)
    table = Table(
        box=box.SIMPLE_HEAD, show_header=header, title=title, header_style="bold", pad_edge=False
    )
    for column in columns:
        table.add_column(column.header, style=column.style, overflow="fold")
    for item in items:
        table.add_row(*(Text(c.text(item)) for c in columns))
    with console.capture() as capture:
        console.print(table)
    write_out(capture.get())
