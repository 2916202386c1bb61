"""``envpools view`` in a real browser, while a job runs on a real local backend.

The job (three oracle tasks, one at a time, each a few seconds) and the viewer are the
real commands, as subprocesses sharing the user's data dir; the browser opens the link
the viewer printed. It checks: the job's progress moves without a reload, a rollout page
streams new events as they happen, then shows the trajectory and the diff, and an
artifact downloads byte for byte. Nothing the browser asks for leaves loopback.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from envpools_cli import client as ep
from envpools_cli.server.serve import BackendThread
from envpools_cli.server.settings import ServerSettings

from .conftest import Browser

pytestmark = pytest.mark.sandbox

SLOW_SOLVE = textwrap.dedent(
    """\
    for i in 1 2 3 4 5 6; do echo "working, step $i"; sleep 0.7; done
    echo 42 > /app/answer.txt
    echo 'print("hello")' > /app/hello.py
    """
)
CHECK = (
    'if [ "$(cat /app/answer.txt)" = "42" ]; then echo 1; else echo 0; fi'
    " > /logs/verifier/reward.txt"
)


def make_task(root: Path, name: str) -> Path:
    task = root / name
    (task / "environment" / "repo").mkdir(parents=True)
    (task / "solution").mkdir()
    (task / "tests").mkdir()
    (task / "instruction.md").write_text(f"Write 42 to /app/answer.txt ({name}).\n")
    (task / "task.toml").write_text('version = "1.0"\n')
    (task / "environment" / "Dockerfile").write_text(
        "FROM python:3.12-slim\nWORKDIR /app\nCOPY repo/ /app/\n"
    )
    (task / "environment" / "repo" / "answer.txt").write_text("0\n")
    (task / "solution" / "solve.sh").write_text("#!/bin/bash\n" + SLOW_SOLVE)
    (task / "tests" / "test.sh").write_text("#!/bin/bash\n" + CHECK + "\n")
    return task


class Viewer:
    def __init__(self, env: dict[str, str]) -> None:
        self.process = subprocess.Popen(
            [sys.executable, "-m", "envpools_cli", "view"],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        assert self.process.stdout is not None
        self.link = self.process.stdout.readline().strip()
        assert self.link.startswith("http://127.0.0.1:"), self.process.stderr.read()  # type: ignore[union-attr]
        self.base = self.link.split("#", 1)[0]

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(10)


@pytest.fixture
def setup(tmp_path: Path) -> Iterator[dict[str, Any]]:
    settings = ServerSettings(data_dir=tmp_path / "backend", heartbeat_sec=1.0)
    backend = BackendThread(settings).start()
    _, key = backend.create_key("pro", name="viewer")
    env = {
        **os.environ,
        "ENVPOOLS_API_URL": backend.url,
        "ENVPOOLS_API_KEY": key,
        "ENVPOOLS_KEYRING": "file",
    }
    viewer = Viewer(env)
    try:
        yield {"backend": backend, "key": key, "env": env, "viewer": viewer, "tmp": tmp_path}
    finally:
        viewer.stop()
        backend.stop()


def test_the_viewer_follows_a_running_job_live(setup: dict[str, Any], browser: Browser) -> None:
    tmp, env, viewer = setup["tmp"], setup["env"], setup["viewer"]
    conn = {"backend_base": setup["backend"].url, "api_key": setup["key"]}
    tasks = tmp / "tasks"
    for name in ("alpha", "bravo", "charlie"):
        make_task(tasks, name)
    job = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "envpools_cli",
            "jobs",
            "run",
            "--tasks",
            str(tasks),
            "-a",
            "oracle",
            "-n",
            "1",
            "-q",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    page = browser.page
    try:
        page.goto(viewer.link)
        # The link signed this browser in, once, and left the address bar.
        page.wait_for_selector("table#jobs a", timeout=20_000)
        assert "code=" not in page.url
        page.click("table#jobs a")
        page.wait_for_selector("#job-progress .count", timeout=10_000)
        page.evaluate("window.__same_page = true")
        first = page.inner_text("#job-progress .count")
        done, total = (int(n) for n in first.split("/"))
        assert total == 3 and done < 3, first
        # Progress moves while the page stays: no reload (the marker survives).
        page.wait_for_function(
            "(seen) => document.querySelector('#job-progress .count').textContent !== seen",
            arg=first,
            timeout=30_000,
        )
        assert page.evaluate("window.__same_page") is True
        running = page.wait_for_selector("#job-rollouts tr:has(.status-running) a", timeout=20_000)
        assert running is not None
        rollout_id = running.inner_text()
        browser.screenshot("job-live")

        # The running rollout's page: its events arrive as they happen.
        running.click()
        page.wait_for_selector("#event-list li", timeout=10_000)
        page.evaluate("window.__same_page = true")
        count = page.locator("#event-list li").count()
        page.wait_for_function(
            "(n) => document.querySelectorAll('#event-list li').length > n",
            arg=count,
            timeout=20_000,
        )
        page.wait_for_selector("#event-list li.event-reward", timeout=30_000)
        texts = page.locator("#event-list li .text").all_inner_texts()
        assert any("working, step" in t for t in texts), texts
        seqs = [int(s) for s in page.locator("#event-list li .seq").all_inner_texts()]
        assert seqs == sorted(set(seqs)), "each event once, in order"
        page.wait_for_selector("#rollout-status .status-succeeded", timeout=20_000)
        assert page.evaluate("window.__same_page") is True

        # Its trajectory, step by step, with the tool call folded and its result.
        page.wait_for_selector("#trajectory article.step", state="attached", timeout=20_000)
        page.click("#tab-trajectory")
        steps = page.locator("#trajectory article.step")
        assert steps.count() == 2
        assert "Write 42" in steps.nth(0).inner_text()
        call = steps.nth(1).locator("details.call summary")
        assert "bash" in call.inner_text() and "solve.sh" in call.inner_text()
        result = steps.nth(1).locator("details.result")
        assert not result.evaluate("node => node.open")
        result.locator("summary").click()
        assert "working, step 6" in result.locator("pre").inner_text()
        browser.screenshot("rollout-trajectory")

        # The workspace diff, rendered as a diff.
        page.click("#tab-diff")
        added = page.locator("#diff .line.add").all_inner_texts()
        assert "+42" in added and '+print("hello")' in added, added
        assert page.locator("#diff .line.del").all_inner_texts() == ["-0"]
        browser.screenshot("rollout-diff")

        # Artifacts: one opens as text, one downloads with the bytes the API serves.
        page.click("#tab-artifacts")
        row = page.locator("#artifact-table tr", has_text="agent/oracle.txt")
        row.get_by_text("open").click()
        page.wait_for_function(
            "() => document.querySelector('#artifact-view').textContent.includes('working, step 1')"
        )
        with page.expect_download() as info:
            row.locator("a.download").click()
        downloaded = Path(info.value.path()).read_bytes()
        served = ep.fetch_artifact(rollout_id, "agent/oracle.txt", **conn)
        assert hashlib.sha256(downloaded).digest() == hashlib.sha256(served).digest()
        assert info.value.suggested_filename == "oracle.txt"
        browser.screenshot("rollout-artifacts")

        # Back on the job: it finishes, and its result table says so.
        page.goto(viewer.base + "#/jobs")
        page.click("table#jobs a")
        page.wait_for_selector("#job-progress .count", timeout=10_000)
        page.wait_for_function(
            "() => document.querySelector('#job-progress .count').textContent === '3/3'",
            timeout=60_000,
        )
        page.wait_for_selector("#job-status .status-finished", timeout=20_000)
        assert page.locator("#job-totals tbody tr").inner_text().startswith("oracle")
        assert page.locator(".chart-box svg").count() == 4
        browser.screenshot("job-finished")
    finally:
        job.wait(120)
    assert job.returncode == 0, job.stderr.read() if job.stderr else ""
    assert browser.refused == [], f"requests that would have left loopback: {browser.refused}"
    assert all(url.startswith(viewer.base.split("/view/")[0]) for url in browser.requests)


def test_a_browser_without_the_link_sees_nothing(setup: dict[str, Any], browser: Browser) -> None:
    """No session, no data: the page asks to sign in; a spent link does not work twice."""
    viewer = setup["viewer"]
    page = browser.page
    page.goto(viewer.base)
    page.wait_for_selector("form.signin")
    assert page.evaluate("fetch('api/v1/rollouts').then(r => r.status)") == 401
    page.goto(viewer.link)
    page.wait_for_selector("#nav-jobs.here, #nav-rollouts.here")
    other = browser.context.browser.new_context()
    try:
        second = other.new_page()
        second.goto(viewer.link)
        second.wait_for_selector("p.error")
        assert "used already" in second.inner_text("main")
    finally:
        other.close()
