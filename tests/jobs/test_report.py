"""`jobs report --html`: one self-contained file that headless Chromium renders, charts
included, without a single request leaving the file."""

from __future__ import annotations

import io
import json
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, ClassVar

import pytest
from PIL import Image

from envpools_cli.jobs.report import agent_color, pass_rate_chart
from tests.jobs.chromium import chromium_path, file_url, open_page
from tests.jobs.conftest import CLI, Backend, make_suite

pytestmark = [
    pytest.mark.sandbox,
    pytest.mark.skipif(chromium_path() is None, reason="chromium missing (.ci/run installs it)"),
]

CHARTS = """[...document.querySelectorAll('svg.chart')].map(svg => {
  const box = svg.getBoundingClientRect();
  return {label: svg.getAttribute('aria-label'), width: box.width, height: box.height,
          top: box.top + window.scrollY, left: box.left,
          bars: [...svg.querySelectorAll('rect.bar')].filter(r => r.getBBox().width > 0
                 && r.getBBox().height > 0).length,
          points: svg.querySelectorAll('circle.point').length};
}).concat([{details: document.querySelectorAll('details').length,
            rows: document.querySelectorAll('table')[2].querySelectorAll('tbody tr').length}])"""


@pytest.fixture
def report(cli: CLI, backend: Backend, tmp_path: Path) -> tuple[Path, dict[str, Any]]:
    suite = make_suite(tmp_path / "suite")
    ran = cli(
        "jobs", "run", "--tasks", str(suite), "-a", "oracle", "-a", "nop", "-k", "2",
        "--name", "report <b>&</b> test", "-o", "json",
    )  # fmt: skip
    assert ran.code == 0, ran.err
    out = tmp_path / "out" / "report.html"
    made = cli("jobs", "report", ran.json()["job"]["id"], "--html", str(out))
    assert made.code == 0, made.err
    return out, ran.json()


def test_report_is_self_contained(report: tuple[Path, dict[str, Any]]) -> None:
    path, document = report
    text = path.read_text()
    head = text[: text.index("</head>")]
    assert '<meta http-equiv="Content-Security-Policy" content="default-src \'none\';' in head
    # Nothing that could fetch: no src attributes, stylesheets links, CSS urls, frames.
    for pattern in (r"\ssrc\s*=", r"<link\b", r"url\(", r"@import", r"<iframe", r"<object",
                    r"<embed", r"http-equiv=\"refresh\"", r"<base\b"):  # fmt: skip
        assert not re.search(pattern, text, re.IGNORECASE), pattern
    assert all(href.startswith("#") for href in re.findall(r'href="([^"]*)"', text))
    scripts = re.findall(r"<script\b([^>]*)>", text)
    assert scripts == [' type="application/json" id="envpools-job-data"']
    # The job name is escaped, not markup.
    assert "report &lt;b&gt;&amp;&lt;/b&gt; test" in text and "<b>&</b>" not in text
    # The embedded data is the job's result, for machines.
    data = text.split('id="envpools-job-data">', 1)[1].split("</script>", 1)[0]
    embedded = json.loads(data)
    assert embedded["result"] == document["result"]
    assert len(embedded["rollouts"]) == 24


def test_report_renders_in_headless_chromium(
    report: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    path, _ = report
    page = open_page(file_url(path), expression=CHARTS)
    # The only request the page made is for the file itself.
    assert page.requests == [file_url(path)], page.requests
    assert page.failed == [] and page.log == [], (page.failed, page.log)

    *charts, counts = page.value
    assert counts == {"details": 24, "rows": 24}
    by_label = {c["label"]: c for c in charts}
    assert len(charts) == 4
    for chart in charts:
        assert chart["width"] > 300 and chart["height"] > 80, chart
    assert by_label["pass rate per agent and model"]["bars"] == 1  # nop passes nothing
    assert by_label["cost against pass rate per agent and model"]["points"] == 2
    assert by_label["reward distribution"]["bars"] >= 3
    assert (
        by_label["rollout duration distribution per agent and model (bins start at the label)"][
            "bars"
        ]
        >= 2
    )

    shot = tmp_path / "report.png"
    shot.write_bytes(page.screenshot)
    image = Image.open(io.BytesIO(page.screenshot)).convert("RGB")
    assert image.width == 1280 and image.height > 2000
    # The bars are painted: the charts' regions hold the series colours (each agent's own).
    oracle, nop = rgb(agent_color("oracle")), rgb(agent_color("nop"))
    for chart, colours in (
        (by_label["pass rate per agent and model"], {oracle}),
        (by_label["reward distribution"], {oracle, nop}),
    ):
        box = (
            int(chart["left"]),
            int(chart["top"]),
            int(chart["left"] + chart["width"]),
            int(chart["top"] + chart["height"]),
        )
        counts = {colour: count for count, colour in image.crop(box).getcolors(1 << 20) or []}
        for colour in colours:
            assert counts.get(colour, 0) > 500, (chart["label"], colour)


def rgb(colour: str) -> tuple[int, int, int]:
    value = int(colour.lstrip("#"), 16)
    return value >> 16, (value >> 8) & 0xFF, value & 0xFF


def test_an_agent_keeps_its_colour_from_job_to_job() -> None:
    """The colour follows the agent/model, not its place in the job."""

    def total(label: str) -> dict[str, Any]:
        return {"agent_label": label, "pass_rate": 0.5, "passes": 1, "attempts": 2,
                "ci_low": 0.1, "ci_high": 0.9, "errors": 0}  # fmt: skip

    labels = ["codex:gpt-5.1-codex-mini", "claude-code", "oracle", "my-agent:x"]
    one = pass_rate_chart([total(label) for label in labels])
    other = pass_rate_chart([total(label) for label in reversed(labels)] + [total("nop")])

    def fills(svg: str) -> dict[str, str]:
        found = re.findall(r'fill="(#[0-9a-f]{6})"><title>([^:<]+(?::[^:<]+)?):', svg)
        return {label: fill for fill, label in found}

    assert fills(one) == {label: agent_color(label) for label in labels}
    assert {k: v for k, v in fills(other).items() if k != "nop"} == fills(one)
    assert len(set(fills(one).values())) == len(labels), "distinct agents, distinct colours"
    assert agent_color("codex:gpt-5.1-codex-mini") == agent_color("codex:gpt-5.1-codex-mini")


class _Recorder(BaseHTTPRequestHandler):
    seen: ClassVar[list[str]]

    def do_GET(self) -> None:
        self.seen.append(self.path)
        self.send_response(200)
        self.send_header("Content-Type", "image/png")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[tuple[str, list[str]]]:
    seen: list[str] = []
    handler = type("Handler", (_Recorder,), {"seen": seen})
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    server.server_close()


def test_the_policy_blocks_what_a_report_could_still_try(
    report: tuple[Path, dict[str, Any]], recorder: tuple[str, list[str]], tmp_path: Path
) -> None:
    """Were a report ever to reference something outside (an agent's text that escaped
    escaping, say), the browser would refuse to fetch it; without the policy it would."""
    path, _ = report
    base, seen = recorder
    probe = (
        f'<img src="{base}/img.png"><link rel="stylesheet" href="{base}/style.css">'
        f'<div style="background:url({base}/bg.png)">x</div>'
    )
    tampered = tmp_path / "tampered.html"
    tampered.write_text(path.read_text().replace("</body>", probe + "</body>"))
    page = open_page(file_url(tampered))
    assert seen == []
    assert any("Content Security Policy" in line for line in page.log), page.log

    control = tmp_path / "control.html"
    control.write_text(
        re.sub(r"<meta http-equiv=\"Content-Security-Policy\"[^>]*>", "", tampered.read_text())
    )
    open_page(file_url(control))
    assert "/img.png" in seen  # the same markup does reach out without the policy
