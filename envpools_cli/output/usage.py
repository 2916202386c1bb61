"""The usage panel: time, tokens, bytes and cost per provider."""

from __future__ import annotations

from typing import Any

from envpools_cli.output.streams import color_enabled, is_tty, write_out
from envpools_cli.output.units import human_bytes

__all__ = ["cost_rows", "print_usage", "usage_rows"]


def _money(value: Any) -> str:
    return f"${float(value):.4f}" if isinstance(value, int | float) else "-"


def _number(value: Any) -> str:
    return f"{int(value):,}" if isinstance(value, int | float) else "-"


def _counted_by(usage: dict[str, Any]) -> list[tuple[str, str]]:
    """Whose token counts these are, when the backend says (the gateway's, or the agent's)."""
    source = usage.get("usage_source")
    if source == "agent":
        return [("Tokens from", "the agent")]
    if source != "gateway":
        return []
    said = usage.get("agent_reported") or {}
    if isinstance(said, dict) and (said.get("llm_input_tokens") or said.get("llm_output_tokens")):
        reported = (
            f" (the agent said {_number(said.get('llm_input_tokens'))} in / "
            f"{_number(said.get('llm_output_tokens'))} out)"
        )
    else:
        reported = " (the agent said nothing)"
    return [("Tokens from", f"the gateway{reported}")]


def usage_rows(usage: dict[str, Any]) -> list[tuple[str, str]]:
    wall = usage.get("wall_time_sec")
    minutes = usage.get("sandbox_minutes")
    return [
        ("Wall time", f"{float(wall):.1f} s" if isinstance(wall, int | float) else "-"),
        ("Sandbox", f"{float(minutes):.2f} min" if isinstance(minutes, int | float) else "-"),
        ("Model", str(usage["model_id"]) if usage.get("model_id") else "-"),
        ("Tokens in", _number(usage.get("llm_input_tokens"))),
        ("Tokens cached", _number(usage.get("llm_cache_tokens"))),
        ("Tokens out", _number(usage.get("llm_output_tokens"))),
        *_counted_by(usage),
        ("Uploaded", human_bytes(usage.get("bytes_uploaded"))),
        ("Downloaded", human_bytes(usage.get("bytes_downloaded"))),
    ]


def cost_unknown(usage: dict[str, Any]) -> str | None:
    """Why the cost is unknown (tokens of a model without a price), or None when known.

    A backend that cannot price tokens leaves ``cost_usd`` null (and names the models in
    ``unpriced_models``): that is never shown as $0.
    """
    models = [str(m) for m in usage.get("unpriced_models") or [] if m]
    spent = any(usage.get(k) for k in ("llm_input_tokens", "llm_output_tokens"))
    if not models and not (usage.get("cost_usd") is None and spent):
        return None
    named = ", ".join(models) or str(usage.get("model_id") or "the model")
    return f"cost unknown: no price for {named} (ENVPOOLS_PRICE_TABLE on the backend sets one)"


def _total(usage: dict[str, Any]) -> str:
    return "unknown" if cost_unknown(usage) else _money(usage.get("cost_usd"))


def cost_rows(usage: dict[str, Any]) -> str:
    """The cost on one line: ``$0.0412 (anthropic $0.0400, sandbox $0.0012)``."""
    total = usage.get("cost_usd")
    costs = usage.get("provider_costs") or {}
    if total is None and not costs and not cost_unknown(usage):
        return ""
    parts = [
        f"{provider} {_money(cost)}"
        for provider, cost in sorted(costs.items(), key=lambda item: -float(item[1] or 0))
    ]
    if cost_unknown(usage):
        parts += [f"{model} unpriced" for model in usage.get("unpriced_models") or []]
    return _total(usage) + (f" ({', '.join(parts)})" if parts else "")


def print_usage(usage: dict[str, Any]) -> None:
    rows = usage_rows(usage)
    costs = usage.get("provider_costs") or {}
    unknown = cost_unknown(usage)
    if unknown:
        from envpools_cli.output.messages import warn

        warn(unknown)
    if not is_tty():
        lines = [f"{label}\t{value}" for label, value in rows]
        lines += [f"Cost {provider}\t{_money(cost)}" for provider, cost in sorted(costs.items())]
        lines.append(f"Cost total\t{_total(usage)}")
        write_out("".join(line + "\n" for line in lines))
        return
    from rich import box
    from rich.console import Console
    from rich.panel import Panel
    from rich.table import Table
    from rich.text import Text

    console = Console(no_color=not color_enabled(), highlight=False)
    facts = Table.grid(padding=(0, 2))
    facts.add_column(style="dim")
    facts.add_column(justify="right")
    for label, value in rows:
        facts.add_row(label, value)
    money = Table(box=box.SIMPLE_HEAD, show_edge=False, pad_edge=False)
    money.add_column("Provider")
    money.add_column("Cost", justify="right")
    for provider, cost in sorted(costs.items(), key=lambda item: -float(item[1] or 0)):
        money.add_row(Text(str(provider)), _money(cost))  # server text: no markup
    for model in usage.get("unpriced_models") or []:
        money.add_row(Text(str(model)), "unknown")
    money.add_row("[bold]total[/bold]", f"[bold]{_total(usage)}[/bold]")
    title = f"usage · {usage.get('rollout_id', '')}"
    if usage.get("final") is False:
        title += " (running)"
    # A grid, not Columns: Columns claims the whole width, and the panel would stretch
    # across the terminal around 40 columns of content.
    content = Table.grid(padding=(0, 4))
    content.add_column()
    content.add_column()
    content.add_row(facts, money)
    panel = Panel(
        content,
        title=title,
        title_align="left",
        border_style="cyan",
        expand=False,
    )
    with console.capture() as capture:
        console.print(panel)
    write_out(capture.get())
