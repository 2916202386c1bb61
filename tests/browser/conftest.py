"""Playwright for Python driving the system Chromium (no browser download), on loopback only.

Every request the browser makes is routed through the test: anything that is not
``http://127.0.0.1`` is aborted and recorded, so a test can assert that none happened.
Screenshots are kept in ``$ENVPOOLS_TEST_ARTIFACTS/browser`` (default
``.cache/test-artifacts/browser`` in the repository) for a person to look at.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]


def shots_dir() -> Path:
    base = os.environ.get("ENVPOOLS_TEST_ARTIFACTS")
    folder = (Path(base) if base else ROOT / ".cache" / "test-artifacts") / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


_SHOTS = shots_dir()  # read before the autouse fixture drops ENVPOOLS_* variables


@dataclass
class Browser:
    page: Any
    context: Any
    refused: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)
    shots: Path = _SHOTS

    def screenshot(self, name: str) -> Path:
        path = self.shots / f"{name}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path


@pytest.fixture
def browser() -> Iterator[Browser]:
    sync_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")
    executable = shutil.which("chromium") or shutil.which("chromium-browser")
    if executable is None:
        pytest.skip("no system Chromium (apt-get install chromium)")
    with sync_api.sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=executable,
            args=[
                "--no-sandbox",  # the tests run as root
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        context = chromium.new_context(
            viewport={"width": 1280, "height": 900}, accept_downloads=True
        )
        found = Browser(page=None, context=context)

        def route(request_route: Any) -> None:
            url = request_route.request.url
            found.requests.append(url)
            if url.startswith("http://127.0.0.1:"):
                request_route.continue_()
            else:
                found.refused.append(url)
                request_route.abort()

        context.route("**/*", route)
        found.page = context.new_page()
        try:
            yield found
        finally:
            context.close()
            chromium.close()
