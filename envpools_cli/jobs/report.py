"""A job as one self-contained HTML file: tables, SVG charts, every rollout with its events.

The page loads nothing: styles are inline, charts are inline SVG, there is no script
to run (the data is embedded as JSON for machines), and a Content-Security-Policy of
``default-src 'none'`` makes the browser refuse any request the page might still
make. Links only point inside the page. Agent text is escaped.
"""

from __future__ import annotations

import hashlib
import html
import json
import re
from collections import deque
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from importlib.resources import files
from typing import Any

from envpools_cli import client as ep
from envpools_cli.models import RolloutStatus

__all__ = ["CSP", "fetch_details", "render_report"]

CSP = (
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; "
    "form-action 'none'"
)
#: Colours by harness, one shade per model: an agent keeps its colour from one report to
#: the next (a series is never coloured by its position in the job).
_FAMILIES = {
    "claude-code": ("#ea580c", "#9a3412", "#f59e0b", "#c2410c"),
    "codex": ("#16a34a", "#166534", "#65a30d", "#0d9488"),
    "opencode": ("#2563eb", "#1e40af", "#0891b2", "#6366f1"),
    "oracle": ("#4b5563", "#1f2937"),
    "nop": ("#dc2626", "#be123c"),
}
_OTHERS = ("#7c3aed", "#db2777", "#ca8a04", "#0e7490", "#9333ea", "#b45309", "#be185d", "#4d7c0f")
_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]|\x1b\[[0-?]*[ -/]*[@-~]")


def _text(value: Any) -> str:
    return html.escape(_CONTROLS.sub("", str(value)), quote=True)


# --- data from the backend ------------------------------------------------------------------


def _describe(event: dict[str, Any]) -> str:
    data = event.get("data")
    kind = event.get("event")
    if not isinstance(data, dict):
        return str(data)
    if kind == "lifecycle":
        text = str(data.get("status", ""))
        error = data.get("error")
        if isinstance(error, dict):
            text += f" ({error.get('code')}: {error.get('message')})"
        elif data.get("message"):
            text += f" {data['message']}"
        return text
    if kind == "reward":
        return f"reward {data.get('reward')}"
    for key in ("text", "message", "summary"):
        if isinstance(data.get(key), str):
            return str(data[key])
    return json.dumps(data, ensure_ascii=False, separators=(",", ":"))[:500]


def _details(rollout_id: str, conn: dict[str, Any], max_events: int) -> dict[str, Any]:
    events: deque[dict[str, Any]] = deque(maxlen=max_events)
    total = 0
    with ep.stream_rollout_events(
        rollout_id, auto_reconnect=True, on_gap="report", **conn
    ) as stream:
        for event in stream:
            if event.get("event") == "heartbeat":
                continue
            total += 1
            events.append(
                {
                    "seq": event.get("seq"),
                    "time": str(event.get("timestamp") or "")[11:23],
                    "type": event.get("event"),
                    "text": _describe(event)[:2000],
                }
            )
    manifest = ep.list_rollout_artifacts(rollout_id, limit=200, **conn)
    artifacts = [
        {
            "path": a.get("path"),
            "size_bytes": a.get("size_bytes"),
            "provenance": a.get("provenance"),
            "sha256": a.get("sha256"),
        }
        for a in manifest.get("artifacts") or []
        if isinstance(a, dict)
    ]
    return {"events": list(events), "event_count": total, "artifacts": artifacts}


def fetch_details(
    rollout_ids: Sequence[str], conn: dict[str, Any], *, max_events: int = 200, workers: int = 8
) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """({rollout id: {events, event_count, artifacts}}, problems) for finished rollouts."""
    conn = {k: conn[k] for k in ("backend_base", "api_key", "api_version", "session") if k in conn}
    out: dict[str, dict[str, Any]] = {}
    problems: list[str] = []

    def one(rollout_id: str) -> None:
        try:
            out[rollout_id] = _details(rollout_id, conn, max_events)
        except (ep.APIError, ep.TransportError, ep.StreamGapError) as exc:
            problems.append(f"{rollout_id}: {exc}")

    with ThreadPoolExecutor(max_workers=max(1, min(workers, len(rollout_ids) or 1))) as pool:
        list(pool.map(one, rollout_ids))
    return out, problems


# --- SVG charts -----------------------------------------------------------------------------


def _stable(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:4], "big")


def agent_color(label: str) -> str:
    """The colour of an agent/model (``codex:gpt-5.1-codex-mini``): the harness picks the
    family, the model the shade, and nothing else (not the job, not the order)."""
    harness, _, model = label.partition(":")
    family = _FAMILIES.get(harness)
    if family is None:
        return _OTHERS[_stable(label) % len(_OTHERS)]
    return family[_stable(model) % len(family)] if model else family[0]


def _line(x1: float, y1: float, x2: float, y2: float, cls: str) -> str:
    return f'<line class="{cls}" x1="{x1:.1f}" y1="{y1:.1f}" x2="{x2:.1f}" y2="{y2:.1f}"/>'


def _svg(width: int, height: int, body: str, label: str) -> str:
    return (
        f'<svg class="chart" role="img" aria-label="{_text(label)}" '
        f'viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}">{body}</svg>'
    )


def pass_rate_chart(totals: Sequence[dict[str, Any]]) -> str:
    """Horizontal bars: pass rate per agent/model, with its 95% Wilson interval."""
    left, right, bar, gap = 170, 60, 22, 12
    width = 640
    plot = width - left - right
    height = 30 + len(totals) * (bar + gap) + 20
    parts = []
    for tick in range(0, 101, 25):
        x = left + plot * tick / 100
        parts.append(
            f'<line x1="{x:.1f}" y1="20" x2="{x:.1f}" y2="{height - 20}" class="grid"/>'
            f'<text x="{x:.1f}" y="14" class="tick" text-anchor="middle">{tick}%</text>'
        )
    for index, row in enumerate(totals):
        y = 30 + index * (bar + gap)
        rate = row.get("pass_rate")
        parts.append(
            f'<text x="{left - 8}" y="{y + bar * 0.7:.1f}" text-anchor="end" class="label">'
            f"{_text(row['agent_label'])}</text>"
        )
        errors = int(row.get("errors") or 0)
        if rate is None:
            text = "no attempts" + (f", {_errors_text(row)}" if errors else "")
            parts.append(
                f'<text x="{left + 4}" y="{y + bar * 0.7:.1f}" class="tick">{_text(text)}</text>'
            )
            continue
        parts.append(
            f'<rect class="bar" x="{left}" y="{y}" width="{plot * rate:.1f}" height="{bar}" '
            f'fill="{agent_color(row["agent_label"])}"><title>{_text(row["agent_label"])}: '
            f"{100 * rate:.1f}% ({row['passes']}/{row['attempts']})"
            + (f"; {_text(_errors_text(row))} not counted" if errors else "")
            + "</title></rect>"
        )
        low, high = row.get("ci_low"), row.get("ci_high")
        if low is not None and high is not None:
            x1, x2, mid = left + plot * low, left + plot * high, y + bar / 2
            parts.append(
                _line(x1, mid, x2, mid, "whisker")
                + _line(x1, y + 4, x1, y + bar - 4, "whisker")
                + _line(x2, y + 4, x2, y + bar - 4, "whisker")
            )
        parts.append(
            f'<text x="{left + plot + 6}" y="{y + bar * 0.7:.1f}" class="value">'
            f"{100 * rate:.0f}%</text>"
        )
        if errors:
            parts.append(
                f'<text x="{left + plot * rate + 6:.1f}" y="{y + bar * 0.7:.1f}" class="tick '
                f'errors">+{errors} error{"s" if errors != 1 else ""}</text>'
            )
    return _svg(width, height, "".join(parts), "pass rate per agent and model")


def _errors_text(row: dict[str, Any]) -> str:
    """``2 errors (verifier 1, provider 1)``."""
    errors = int(row.get("errors") or 0)
    kinds = row.get("errors_by_kind") or {}
    detail = ", ".join(f"{kind} {count}" for kind, count in kinds.items())
    return f"{errors} error{'s' if errors != 1 else ''}" + (f" ({detail})" if detail else "")


def _histogram(
    series: Sequence[tuple[str, Sequence[float]]],
    assign: Callable[[float], int],
    labels: Sequence[str],
    title: str,
) -> str:
    """Grouped bars: for each bin, one bar per series (counts); ``assign`` bins a value."""
    width, height, left, bottom, top = 640, 220, 40, 40, 16
    plot_w, plot_h = width - left - 10, height - bottom - top
    bins = len(labels)
    counts = []
    for _, values in series:
        row = [0] * bins
        for value in values:
            row[min(max(assign(value), 0), bins - 1)] += 1
        counts.append(row)
    peak = max([max(row) for row in counts] + [1])
    slot = plot_w / bins
    inner = slot * 0.8 / max(1, len(series))
    parts = [_line(left, top + plot_h, width - 10, top + plot_h, "axis")]
    for tick in sorted({0, peak // 2, peak}):
        y = top + plot_h - plot_h * tick / peak
        parts.append(
            _line(left, y, width - 10, y, "grid")
            + f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{tick}</text>'
        )
    for b in range(bins):
        x0 = left + b * slot + slot * 0.1
        for s, row in enumerate(counts):
            h = plot_h * row[b] / peak
            x = x0 + s * inner
            parts.append(
                f'<rect class="bar" x="{x:.1f}" y="{top + plot_h - h:.1f}" '
                f'width="{max(inner - 1, 1):.1f}" '
                f'height="{h:.1f}" fill="{agent_color(series[s][0])}"><title>{_text(series[s][0])} '
                f"{_text(labels[b])}: {row[b]}</title></rect>"
            )
        parts.append(
            f'<text x="{left + b * slot + slot / 2:.1f}" y="{top + plot_h + 16}" class="tick" '
            f'text-anchor="middle">{_text(labels[b])}</text>'
        )
    return _svg(width, height, "".join(parts), title) + _legend([name for name, _ in series])


def _linear_bins(values: Sequence[float], lo: float, hi: float, bins: int = 10) -> Any:
    span = (hi - lo) or 1.0
    return lambda value: int((value - lo) / span * bins) if value < hi else bins - 1


def _legend(names: Sequence[str]) -> str:
    items = "".join(
        f'<span class="key"><i style="background:{agent_color(n)}"></i>{_text(n)}</span>'
        for n in names
    )
    return f'<div class="legend">{items}</div>'


def _series(rows: Sequence[dict[str, Any]], agents: Sequence[str], key: str) -> list[Any]:
    return [
        (a, [float(r[key]) for r in rows if r["agent_label"] == a and r.get(key) is not None])
        for a in agents
    ]


def reward_chart(rows: Sequence[dict[str, Any]], agents: Sequence[str]) -> str:
    """Counts per reward: one bar per distinct value when there are few (0/1 rewards)."""
    series = _series(rows, agents, "reward")
    values = sorted({v for _, vs in series for v in vs})
    if len(values) <= 11:
        values = values or [0.0, 1.0]
        index = {v: i for i, v in enumerate(values)}
        return _histogram(
            series, lambda v: index[v], [f"{v:g}" for v in values], "reward distribution"
        )
    lo, hi = min(values), max(values)
    labels = [f"{lo + (hi - lo) * i / 10:.2g}" for i in range(10)]
    return _histogram(series, _linear_bins(values, lo, hi), labels, "reward distribution")


def duration_chart(rows: Sequence[dict[str, Any]], agents: Sequence[str]) -> str:
    series = _series(rows, agents, "duration_sec")
    hi = max([v for _, values in series for v in values] + [1e-3])
    labels = [_duration(hi * i / 10, fine=True) for i in range(10)]
    return _histogram(
        series,
        _linear_bins([], 0.0, hi),
        labels,
        "rollout duration distribution per agent and model (bins start at the label)",
    )


def cost_chart(totals: Sequence[dict[str, Any]]) -> str:
    """One point per agent/model: mean cost per attempt (x) against pass rate (y)."""
    width, height, left, bottom, top, right = 640, 260, 56, 40, 16, 150
    plot_w, plot_h = width - left - right, height - bottom - top
    # An agent whose cost is unknown (a model without a price) has no point: placing it
    # at $0 would read as free.
    points = [
        (
            row["agent_label"],
            row["cost_usd"] / row["attempts"] if row["attempts"] else 0.0,
            row.get("pass_rate"),
        )
        for row in totals
        if row.get("cost_usd") is not None
    ]
    unknown = [row["agent_label"] for row in totals if row.get("cost_usd") is None]
    peak = max([p[1] for p in points] + [0.0]) or 1.0
    parts = [
        _line(left, top + plot_h, left + plot_w, top + plot_h, "axis"),
        f'<line x1="{left}" y1="{top}" x2="{left}" y2="{top + plot_h}" class="axis"/>',
        f'<text x="{left + plot_w / 2:.1f}" y="{height - 6}" class="tick" text-anchor="middle">'
        "mean cost per attempt (USD)</text>",
    ]
    for tick in (0, 50, 100):
        y = top + plot_h - plot_h * tick / 100
        parts.append(
            f'<line x1="{left}" y1="{y:.1f}" x2="{left + plot_w}" y2="{y:.1f}" class="grid"/>'
            f'<text x="{left - 6}" y="{y + 4:.1f}" class="tick" text-anchor="end">{tick}%</text>'
        )
    for frac in (0.0, 0.5, 1.0):
        x = left + plot_w * frac
        parts.append(
            f'<text x="{x:.1f}" y="{top + plot_h + 16}" class="tick" text-anchor="middle">'
            f"${peak * frac:.4g}</text>"
        )
    for index, name in enumerate(unknown):
        parts.append(
            f'<text x="{left + plot_w + 8}" y="{top + 12 + 14 * index}" class="tick">'
            f"{_text(name)}: cost unknown</text>"
        )
    for label, cost, rate in points:
        if rate is None:
            continue
        x = left + plot_w * cost / peak
        y = top + plot_h - plot_h * rate
        parts.append(
            f'<circle class="point" cx="{x:.1f}" cy="{y:.1f}" r="7" fill="{agent_color(label)}">'
            f"<title>{_text(label)}: ${cost:.4g} per attempt, "
            f"{100 * rate:.1f}% pass</title></circle>"
            f'<text x="{x + 10:.1f}" y="{y + 4:.1f}" class="label">{_text(label)}</text>'
        )
    return _svg(width, height, "".join(parts), "cost against pass rate per agent and model")


# --- the page -------------------------------------------------------------------------------


def _duration(seconds: Any, *, fine: bool = False) -> str:
    if seconds is None:
        return "-"
    seconds = float(seconds)
    if fine and seconds < 1:
        return f"{1000 * seconds:.0f}ms"
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, sec = divmod(round(seconds), 60)
    return f"{minutes}m{sec:02d}s" if minutes < 60 else f"{minutes // 60}h{minutes % 60:02d}m"


def _rate(value: Any) -> str:
    return "-" if value is None else f"{float(value):.2f}"


def _cost(value: Any) -> str:
    if value is None:
        return "-"
    return "$0" if value == 0 else f"${float(value):.4g}"


def _row_cost(row: dict[str, Any]) -> str:
    """A row's cost: ``unknown`` (with what is known) when a model has no price."""
    if row.get("cost_usd") is not None:
        return _cost(row["cost_usd"])
    known = float(row.get("cost_usd_known") or 0.0)
    return '<span class="unknown">unknown</span>' + (f" (&ge;{_cost(known)})" if known > 0 else "")


def _ci(row: dict[str, Any]) -> str:
    if row.get("ci_low") is None:
        return "-"
    return f"{row['ci_low']:.2f}&ndash;{row['ci_high']:.2f}"


def _anchor(rollout_id: str) -> str:
    return "ro-" + re.sub(r"[^A-Za-z0-9_-]", "_", rollout_id)


def _table(headers: Sequence[str], rows: Sequence[Sequence[str]], *, text: int = 1) -> str:
    """A table whose first ``text`` columns are left-aligned text, the rest figures."""

    def cell(tag: str, index: int, value: str) -> str:
        return f'<{tag} class="l">{value}</{tag}>' if index < text else f"<{tag}>{value}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(headers))
    body = "".join(
        "<tr>" + "".join(cell("td", i, c) for i, c in enumerate(row)) + "</tr>" for row in rows
    )
    # Wide tables scroll inside their box; the page itself never gets wider than the window.
    table = f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"
    return f'<div class="scroll">{table}</div>'


def _heat(rate: Any) -> str:
    if rate is None:
        return "background:#f3f4f6"
    hue = 120 * float(rate)
    return f"background:hsl({hue:.0f},70%,85%)"


def _style() -> str:
    return (files("envpools_cli.jobs") / "report.css").read_text(encoding="utf-8")


def render_report(
    job: dict[str, Any],
    result: dict[str, Any],
    rollouts: Sequence[dict[str, Any]],
    details: dict[str, dict[str, Any]],
) -> str:
    totals = result["totals"]
    groups = result["groups"]
    agents = [t["agent_label"] for t in totals]
    k = result["k"]
    ended = [r for r in rollouts if RolloutStatus.terminal(r.get("status"))]
    known_cost = sum(float(t.get("cost_usd_known", t["cost_usd"]) or 0.0) for t in totals)
    unknown_cost = any(t.get("cost_usd") is None for t in totals)
    attempts = sum(int(t["attempts"]) for t in totals)
    passes = sum(int(t["passes"]) for t in totals)
    errors = sum(int(t.get("errors") or 0) for t in totals)

    cards = "".join(
        f'<div class="card">{label}<b>{value}</b></div>'
        for label, value in (
            ("rollouts ended", f"{result['ended']}/{result['planned']}"),
            ("passed", f"{passes}/{attempts}"),
            ("pass rate", "-" if not attempts else f"{100 * passes / attempts:.1f}%"),
            ("errors", str(errors)),
            (
                "cost",
                _row_cost(
                    {"cost_usd": None if unknown_cost else known_cost, "cost_usd_known": known_cost}
                ),
            ),
            ("status", _text(job["status"])),
        )
    )
    warnings = []
    if errors:
        kinds = ", ".join(f"{kind} {n}" for kind, n in (result.get("errors_by_kind") or {}).items())
        warnings.append(
            f"{errors} rollout(s) reached no verdict ({_text(kinds)}): errors are not "
            "attempts, and count in no pass rate"
            + (
                f"; {result['transient_errors']} may pass if run again "
                f"(<code>envpools jobs resume {_text(job['id'])} --retry-errors</code>)"
                if result.get("transient_errors")
                else ""
            )
        )
    if result.get("unpriced_rollouts"):
        models = ", ".join(result.get("unpriced_models") or []) or "their model"
        warnings.append(
            f"cost unknown for {result['unpriced_rollouts']} rollout(s): no price for "
            f"{_text(models)} (the backend's table: <code>ENVPOOLS_PRICE_TABLE</code>)"
        )
    notes = "".join(f'<p class="warning">{text}</p>' for text in warnings)
    totals_table = _table(
        [
            "agent / model",
            "tasks",
            "pass",
            "errors",
            "rate",
            "95% CI",
            "pass@1",
            f"pass@{k}",
            "reward",
            "time",
            "tokens in/out",
            "cache",
            "cost",
            "cost/success",
            "model used",
        ],
        [
            [
                _text(t["agent_label"]),
                str(t["tasks"]),
                f"{t['passes']}/{t['attempts']}",
                _text(_errors_text(t)) if t.get("errors") else "0",
                "-" if t["pass_rate"] is None else f"{100 * t['pass_rate']:.1f}%",
                _ci(t),
                _rate(t["pass_at_1"]),
                _rate(t["pass_at_k"]),
                _rate(t["mean_reward"]),
                _duration(t["mean_duration_sec"]),
                f"{t['input_tokens']}/{t['output_tokens']}",
                str(t.get("cache_tokens", 0)),
                _row_cost(t),
                _cost(t["cost_per_success"]),
                _text(", ".join(t.get("models_used") or []) or "-"),
            ]
            for t in totals
        ],
    )
    group_table = _table(
        [
            "task",
            "agent / model",
            "pass",
            "pass@1",
            f"pass@{k}",
            "95% CI",
            "reward",
            "time",
            "cost",
            "errors",
        ],
        [
            [
                _text(g["task_id"]),
                _text(g["agent_label"]),
                f'<span style="{_heat(g["pass_rate"])};padding:0 6px;border-radius:3px">'
                f"{g['passes']}/{g['attempts']}</span>",
                _rate(g["pass_at_1"]),
                _rate(g["pass_at_k"]),
                _ci(g),
                _rate(g["mean_reward"]),
                _duration(g["mean_duration_sec"]),
                _row_cost(g),
                _text(_errors_text(g)) if g.get("errors") else "0",
            ]
            for g in groups
        ],
        text=2,
    )

    def rollout_row(row: dict[str, Any]) -> list[str]:
        rid = str(row["rollout_id"])
        status = str(row.get("status") or "")
        error = (row.get("error") or {}).get("code") if isinstance(row.get("error"), dict) else None
        kind = row.get("error_kind")
        if kind and error:
            error = f"{kind}: {error}"
        has = rid in details
        links = (
            f'<a href="#{_anchor(rid)}">events</a> · '
            f'<a href="#{_anchor(rid)}-artifacts">artifacts</a>'
            if has
            else "-"
        )
        reward = row.get("reward")
        return [
            f'<code id="{_anchor(rid)}-row">{_text(rid)}</code>',
            _text(row["task_id"]),
            _text(row["agent_label"]),
            str(row["attempt"]),
            f'<span class="status-{_text(status)}{" pass" if row.get("passed") else ""}">'
            f"{_text(status)}{' ✓' if row.get('passed') else ''}</span>",
            "-" if reward is None else f"{float(reward):g}",
            _duration(row.get("duration_sec")),
            _row_cost(row) if "cost_usd" in row else "-",
            _text(error) if error else "",
            links,
        ]

    rollout_table = _table(
        ["rollout", "task", "agent / model", "#", "status", "reward", "time", "cost", "error", ""],
        [rollout_row(r) for r in rollouts],
        text=3,
    )
    blocks = []
    for row in rollouts:
        rid = str(row["rollout_id"])
        detail = details.get(rid)
        if detail is None:
            continue
        lines = "\n".join(
            f"{_text(e['time'])}  {_text(e['type']):<9}  {_text(e['text'])}"
            for e in detail["events"]
        )
        shown = len(detail["events"])
        note = (
            f" (last {shown} of {detail['event_count']})" if detail["event_count"] > shown else ""
        )
        artifacts = _table(
            ["path", "size", "from", "sha256"],
            [
                [
                    _text(a["path"]),
                    str(a.get("size_bytes") or 0),
                    _text(a.get("provenance") or ""),
                    f"<code>{_text(str(a.get('sha256') or '')[:16])}</code>",
                ]
                for a in detail["artifacts"]
            ],
            text=3,
        )
        blocks.append(
            f'<details id="{_anchor(rid)}"><summary><code>{_text(rid)}</code> '
            f"{_text(row['task_id'])} · {_text(row['agent_label'])} · #{row['attempt']} · "
            f"{_text(row.get('status'))}</summary>"
            f'<p>events{note} · <a href="#{_anchor(rid)}-row">back to the table</a></p>'
            f"<pre>{lines}</pre>"
            f'<p id="{_anchor(rid)}-artifacts">artifacts ({len(detail["artifacts"])}) · fetch with '
            f"<code>envpools rollouts download {_text(rid)}</code></p>{artifacts}</details>"
        )
    data = json.dumps(
        {"job": job, "result": result, "rollouts": list(rollouts)}, ensure_ascii=False, default=str
    ).replace("</", "<\\/")
    title = f"envpools job {job['name']} ({job['id']})"
    body = f"""
<h1>{_text(job["name"])}</h1>
<div class="meta">job <code>{_text(job["id"])}</code> · created {_text(job["created_at"])}
· pool <code>{_text(job["pool_id"])}</code> · {_text(job["tasks"])} tasks &times;
{len(agents)} agent(s) &times; {_text(job["attempts"])} attempt(s) · a rollout passes with
reward &ge;
{_text(job["pass_reward"])}</div>
<div class="cards">{cards}</div>
{notes}
<h2>Totals per agent and model</h2>{totals_table}
<p class="meta">pass@k: the unbiased estimator 1 &minus; C(n&minus;c,k)/C(n,k) per task,
averaged over tasks;
95% CI: Wilson score interval on the pass rate; reward: mean over attempts (no reward counts 0);
cancelled rollouts and errors (no verdict: a verifier without a reward, a provider or
infrastructure failure) are not attempts.</p>
<div class="grid2">
<section><h2>Pass rate</h2>{pass_rate_chart(totals)}</section>
<section><h2>Cost vs pass rate</h2>{cost_chart(totals)}</section>
<section><h2>Reward distribution</h2>{reward_chart(ended, agents)}</section>
<section><h2>Duration distribution</h2>{duration_chart(ended, agents)}</section>
</div>
<h2>Per task</h2>{group_table}
<h2>Rollouts</h2>{rollout_table}
<h2>Events and artifacts</h2>{"".join(blocks) or '<p class="meta">not included</p>'}
"""
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{CSP}">
<meta name="viewport" content="width=device-width, initial-scale=1">
<meta name="referrer" content="no-referrer">
<title>{_text(title)}</title><style>{_style()}</style></head>
<body>{body}
<script type="application/json" id="envpools-job-data">{data}</script>
</body></html>
"""
