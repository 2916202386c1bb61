"""The viewer's HTTP surface, without a browser: who gets in, and what it will fetch.

``envpools view`` runs as a subprocess in front of a real local backend; the backend's
own ``/view`` is checked too. The browser tests (tests/browser) drive the page itself.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli.server.view.sessions import CODE_TTL_SEC, SESSION_IDLE_SEC, Sessions

from .conftest import EXAMPLE, Backend, local_task


def view_process(backend: Backend, key: str, *args: str) -> subprocess.Popen[str]:
    env = {
        **os.environ,
        "ENVPOOLS_API_URL": backend.url,
        "ENVPOOLS_API_KEY": key,
        "ENVPOOLS_KEYRING": "file",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "envpools_cli", "view", *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


@pytest.fixture
def viewer(backend: Backend) -> Iterator[tuple[str, str]]:
    process = view_process(backend, backend.key)
    assert process.stdout is not None
    link = process.stdout.readline().strip()
    try:
        yield link.split("#code=")[0], link.split("#code=")[1]
    finally:
        process.terminate()
        process.wait(10)


def signed_in(base: str, code: str) -> httpx.Client:
    client = httpx.Client(timeout=10)
    answer = client.post(base + "session", json={"code": code})
    assert answer.status_code == 204, answer.text
    return client


def test_a_session_comes_from_the_link_once(viewer: tuple[str, str], backend: Backend) -> None:
    base, code = viewer
    page = httpx.get(base)
    assert (
        page.status_code == 200 and "script-src 'self'" in page.headers["content-security-policy"]
    )
    assert '<script src="static/app.js"' in page.text and "http" not in page.text.split("<body>")[1]
    assert httpx.get(base + "api/info").status_code == 401
    assert httpx.get(base + "api/v1/rollouts").status_code == 401

    client = httpx.Client(timeout=10)
    answer = client.post(base + "session", json={"code": code})
    cookie = answer.headers["set-cookie"].lower()
    assert answer.status_code == 204
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/view" in cookie
    assert client.get(base + "api/info").json()["backend"] == backend.url
    assert httpx.post(base + "session", json={"code": code}).status_code == 401, "spent"
    assert httpx.post(base + "session", json={"api_key": backend.key}).status_code == 401, (
        "envpools view takes no keys from the browser"
    )
    for body in (b"not json", b"[1]", b"{}"):
        assert httpx.post(base + "session", content=body).status_code in (401, 422)
    everything = client.get(base).text + client.get(base + "api/info").text
    assert backend.key not in everything


def test_it_fetches_what_it_shows_and_nothing_else(
    viewer: tuple[str, str], backend: Backend
) -> None:
    base, code = viewer
    client = signed_in(base, code)
    backend.pool("coding", local_task("fix-failing-test", EXAMPLE))
    rid = backend.rollout("coding", "fix-failing-test")["rollout_id"]
    backend.wait(rid)

    assert client.get(base + f"api/v1/rollouts/{rid}").json()["status"] == "succeeded"
    assert client.get(base + "api/v1/rollouts?limit=1").json()["rollouts"][0]["rollout_id"] == rid
    for refused in (
        "api/v1/rollouts/x/support_bundle",
        "api/v1/credentials",
        "api/v1/rollouts/x/replay",
        "api/v1/openapi.json",
    ):
        assert client.get(base + refused).status_code == 404, refused
    assert client.post(base + "api/v1/rollouts", json={}).status_code == 405
    sneaky = client.get(base + f"api/v1/rollouts/{rid}/artifacts/workspace.diff%23x")
    assert sneaky.status_code == 404, "an encoded '#' stays part of the name"
    assert client.get(base + "api/info", headers={"Host": "attacker.example"}).status_code == 403

    # The agent's files: sandboxed when opened, an attachment when downloaded.
    opened = client.get(base + f"api/v1/rollouts/{rid}/artifacts/agent/oracle.txt")
    assert opened.status_code == 200 and "patched" in opened.text
    assert opened.headers["content-security-policy"].startswith("sandbox")
    assert opened.headers["x-content-type-options"] == "nosniff"
    saved = client.get(base + f"api/v1/rollouts/{rid}/artifacts/workspace.diff?download=1")
    assert saved.headers["content-disposition"] == 'attachment; filename="workspace.diff"'
    assert saved.content == ep.fetch_artifact(rid, "workspace.diff", **backend.conn)

    # Events pass through as a stream, resumable from an id.
    with client.stream("GET", base + f"api/v1/rollouts/{rid}/events") as stream:
        assert stream.headers["content-type"].startswith("text/event-stream")
        ids = [line for line in stream.iter_lines() if line.startswith("id: ")]
    assert len(ids) >= 4
    with client.stream(
        "GET", base + f"api/v1/rollouts/{rid}/events", headers={"Last-Event-ID": "3"}
    ) as stream:
        resumed = [line for line in stream.iter_lines() if line.startswith("id: ")]
    assert resumed == ids[3:]


def test_the_command_checks_its_key_and_port(backend: Backend) -> None:
    wrong = view_process(backend, "sk-not-a-key-of-this-backend")
    _, err = wrong.communicate(timeout=60)
    assert wrong.returncode == 4, err
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = str(taken.getsockname()[1])
        busy = view_process(backend, backend.key, "--port", port)
        _, err = busy.communicate(timeout=60)
    assert busy.returncode == 1 and "cannot listen on 127.0.0.1" in err


def test_the_backend_serves_it_to_a_key(backend: Backend) -> None:
    base = backend.url + "/view/"
    client = httpx.Client(timeout=10)
    assert client.get(base).status_code == 200
    assert client.get(base + "api/v1/rollouts").status_code == 401
    assert client.post(base + "session", json={"api_key": "sk-wrong"}).status_code == 401
    assert client.post(base + "session", json={"api_key": backend.key}).status_code == 204
    assert client.get(base + "api/info").json() == {
        "backend": "this local backend",
        "version": client.get(base + "api/info").json()["version"],
        "jobs": False,
    }
    assert client.get(base + "api/v1/rollouts").status_code == 200
    free_plan = backend.new_key("free")
    other = httpx.Client(timeout=10)
    assert other.post(base + "session", json={"api_key": free_plan}).status_code == 401
    assert client.post(base + "logout").status_code == 204
    assert client.get(base + "api/info").status_code == 401


def test_codes_and_sessions_expire() -> None:
    now = [0.0]
    sessions = Sessions("sk-key", clock=lambda: now[0])
    late = sessions.new_code()
    now[0] += CODE_TTL_SEC + 1
    assert sessions.redeem(late) is None
    token = sessions.redeem(sessions.new_code())
    assert token is not None and sessions.key_of(token) == "sk-key"
    now[0] += SESSION_IDLE_SEC - 1
    assert sessions.key_of(token) == "sk-key", "use keeps it alive"
    now[0] += SESSION_IDLE_SEC + 1
    assert sessions.key_of(token) is None
    assert not sessions.accepts_keys and sessions.sign_in("sk-key") is None
    checked: dict[str, Any] = {}
    by_key = Sessions(check_key=lambda key: checked.setdefault(key, key == "good"))
    assert by_key.sign_in("bad") is None and by_key.sign_in("good") is not None
    with pytest.raises(RuntimeError):
        by_key.new_code()


def test_the_sign_in_body_is_small_and_needs_no_header(backend: Backend) -> None:
    """The viewer's sign-in carries its key in the body (the API's bodies need a key in a
    header first): it is let through to the viewer, which checks it, with a small cap."""
    with httpx.Client(timeout=10) as client:
        huge = client.post(backend.url + "/view/session", json={"api_key": "x" * 100_000})
        assert huge.status_code == 413, huge.text
        assert (
            client.post(backend.url + "/view/session", json={"api_key": "nope"}).status_code == 401
        )
        anonymous = client.post(backend.url + "/v1/pools", json={"pool_id": "p"})
        assert anonymous.status_code == 401, "the API still checks the key before the body"
