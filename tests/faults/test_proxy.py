"""The fault proxy does what each fault says, against the real backend (raw httpx, no retries)."""

from __future__ import annotations

import time
from pathlib import Path

import httpx
import pytest

from envpools_cli import client as ep
from tests.integration.conftest import Backend, local_task

from .conftest import chatty_task, rollout_request, stored_events
from .proxy import Fault, FaultProxy, RequestInfo, randomly


def _finished_rollout(backend: Backend, tmp_path: Path, lines: int = 200) -> str:
    backend.pool("p", local_task("chatty", chatty_task(tmp_path, "chatty", lines)))
    rollout = ep.create_rollout(request=rollout_request("p", "chatty"), **backend.conn)
    backend.wait(rollout["rollout_id"])
    return str(rollout["rollout_id"])


def _headers(backend: Backend) -> dict[str, str]:
    return {"Authorization": f"Bearer {backend.key}"}


def _events_url(proxy: FaultProxy, rollout_id: str) -> str:
    return f"{proxy.url}/v1/rollouts/{rollout_id}/events"


def test_forwards_untouched_and_keeps_connections_alive(
    backend: Backend, proxy: FaultProxy
) -> None:
    with httpx.Client(base_url=proxy.url, headers=_headers(backend)) as client:
        direct = httpx.get(f"{backend.url}/v1/capabilities", headers=_headers(backend)).json()
        for _ in range(5):
            assert client.get("/v1/capabilities").json() == direct
        created = client.post("/v1/pools", json={"pool_id": "kept", "pool_type": "sandbox"})
        assert created.status_code == 201, created.text
    assert proxy.summary() == {"forwarded": 6}
    assert [r.upstream_status for r in proxy.records] == [200] * 5 + [201]


def test_cut_after_n_bytes_breaks_the_message(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    rollout_id = _finished_rollout(backend, tmp_path)
    whole = httpx.get(_events_url(proxy, rollout_id), headers=_headers(backend)).content
    for reset in (False, True):
        proxy.plan = lambda request, reset=reset: Fault.cut(700, reset=reset)
        with pytest.raises(httpx.TransportError):
            httpx.get(_events_url(proxy, rollout_id), headers=_headers(backend))
        assert proxy.records[-1].client_bytes == 700
    assert len(whole) > 10_000
    proxy.plan = lambda request: Fault.cut(40)  # inside the status line and headers
    with pytest.raises(httpx.TransportError):
        httpx.get(_events_url(proxy, rollout_id), headers=_headers(backend))


def test_clean_close_ends_a_stream_properly_between_two_events(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    rollout_id = _finished_rollout(backend, tmp_path)
    whole = httpx.get(_events_url(proxy, rollout_id), headers=_headers(backend)).text
    proxy.plan = lambda request: Fault.clean_close(5_000)
    early = httpx.get(_events_url(proxy, rollout_id), headers=_headers(backend))
    assert early.status_code == 200  # a complete HTTP response: no error anywhere
    body = early.text
    assert 5_000 <= len(body) < len(whole)
    assert body.endswith("\n\n") and whole.startswith(body)
    assert body.count("\nid: ") + body.startswith("id: ") == body.count("data: ")
    assert proxy.faults("clean_close")


def test_drop_response_after_the_server_handled_the_request(
    backend: Backend, proxy: FaultProxy
) -> None:
    backend.pool("p")
    proxy.plan = lambda request: Fault.drop_response() if request.method == "POST" else None
    request = rollout_request("p", "t", environment={"backend": "harbor"})
    with pytest.raises(httpx.TransportError):
        httpx.post(
            f"{proxy.url}/v1/rollouts",
            json=request,
            headers={**_headers(backend), "Idempotency-Key": "dropped-1"},
        )
    assert proxy.records[-1].upstream_status == 201, "the server created it"
    assert len(ep.list_rollouts(**backend.conn)["rollouts"]) == 1


@pytest.mark.parametrize("status", [502, 503, 504])
def test_gateway_errors_before_or_after_the_server(
    backend: Backend, proxy: FaultProxy, status: int
) -> None:
    backend.pool("p")
    request = rollout_request("p", "t", environment={"backend": "harbor"})
    for reach_server, created in ((False, 0), (True, 1)):
        proxy.plan = lambda r, rs=reach_server: Fault.error(status, reach_server=rs)
        answer = httpx.post(f"{proxy.url}/v1/rollouts", json=request, headers=_headers(backend))
        assert answer.status_code == status
        assert answer.json()["error"]["retryable"] is True
        assert len(ep.list_rollouts(**backend.conn)["rollouts"]) == created


def test_stall_before_the_request_and_inside_a_response(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    rollout_id = _finished_rollout(backend, tmp_path, lines=20)
    proxy.plan = lambda request: Fault.stall(1.0)
    started = time.monotonic()
    assert httpx.get(_events_url(proxy, rollout_id), headers=_headers(backend)).status_code == 200
    assert time.monotonic() - started >= 1.0
    proxy.plan = lambda request: Fault.stall(5.0, after_bytes=300)
    timeout = httpx.Timeout(5.0, read=0.5)
    with pytest.raises(httpx.ReadTimeout):
        httpx.get(_events_url(proxy, rollout_id), headers=_headers(backend), timeout=timeout)


def test_unreachable_upstream_is_a_502(backend: Backend) -> None:
    with FaultProxy("http://127.0.0.1:9") as proxy:  # discard port: nothing listens
        answer = httpx.get(f"{proxy.url}/healthz")
    assert answer.status_code == 502
    assert proxy.records[0].note == "upstream unreachable"


def test_random_plan_is_reproducible_and_aims_at_one_route() -> None:
    def draw() -> list[bool]:
        plan = randomly(0.3, Fault.drop_response(), seed=7, method="POST", path=r"/rollouts$")
        hits = []
        for index in range(200):
            info = RequestInfo("POST", "/v1/rollouts", {}, b"", index)
            hits.append(plan(info) is not None)
        other = RequestInfo("GET", "/v1/rollouts", {}, b"", 0)
        assert plan(other) is None
        return hits

    first = draw()
    assert first == draw()
    assert 40 <= sum(first) <= 80


def test_stored_events_match_what_the_proxy_forwards(
    backend: Backend, proxy: FaultProxy, tmp_path: Path
) -> None:
    rollout_id = _finished_rollout(backend, tmp_path, lines=50)
    through = list(
        ep.stream_rollout_events(
            rollout_id, backend_base=proxy.url, api_key=backend.key, session=backend.session
        )
    )
    assert through == stored_events(backend.conn, rollout_id)
