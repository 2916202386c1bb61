"""RolloutHandle.wait: returns the moment the rollout is terminal, with an overall timeout."""

from __future__ import annotations

import json
from itertools import count

import httpx
import pytest

from envpools_cli.client import RolloutHandle, TransportError

from .conftest import Recorder


def lifecycle(seq: int, status: str) -> bytes:
    envelope = {"id": str(seq), "event": "lifecycle", "seq": seq, "data": {"status": status}}
    return f"id: {seq}\nevent: lifecycle\ndata: {json.dumps(envelope)}\n\n".encode()


def test_wait_returns_on_the_terminal_event_without_polling(recorder: Recorder) -> None:
    state = {"status": "running"}

    def handler(request: httpx.Request) -> httpx.Response:
        path = request.url.path
        if path.endswith("/summary"):
            return httpx.Response(200, json={"status": "running", "last_event": {"id": "7"}})
        if path.endswith("/events"):
            state["status"] = "succeeded"
            return httpx.Response(
                200, content=lifecycle(8, "verifying") + lifecycle(9, "succeeded")
            )
        return httpx.Response(200, json={"rollout_id": "r1", **state})

    recorder.handler = handler
    result = RolloutHandle("r1").wait(timeout=30, poll_interval=5)
    assert result["status"] == "succeeded"
    assert recorder.sleeps == [], "no poll interval was slept"
    events_request = next(r for r in recorder.requests if r.url.path.endswith("/events"))
    assert events_request.headers["last-event-id"] == "7", "resumes after the last seen event"


def test_wait_returns_immediately_for_a_finished_rollout(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(200, json={"rollout_id": "r1", "status": "FAILED"})
    assert RolloutHandle("r1").wait()["status"] == "FAILED"
    assert len(recorder.requests) == 1


def test_wait_times_out_and_returns_the_last_state(recorder: Recorder) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/events"):
            return httpx.Response(503)  # the backend answers, but no stream comes
        return httpx.Response(200, json={"rollout_id": "r1", "status": "running"})

    recorder.handler = handler
    result = RolloutHandle("r1").wait(timeout=10, poll_interval=2)
    assert result["status"] == "running"
    assert recorder.now == pytest.approx(10.0), "the overall deadline, on the session's clock"
    assert all(s <= 5.0 for s in recorder.sleeps)
    streams = [r for r in recorder.requests if r.url.path.endswith("/events")]
    assert 3 <= len(streams) <= 10


def test_wait_survives_transient_errors(recorder: Recorder) -> None:
    calls, gets = count(), count()

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/summary"):
            return httpx.Response(200, json={"last_event": {"id": "1"}})
        if request.url.path.endswith("/events"):
            n = next(calls)
            if n == 0:
                return httpx.Response(200, content=lifecycle(2, "running"))  # clean close
            if n < 4:
                return httpx.Response(502)
            return httpx.Response(200, content=lifecycle(3, "cancelled"))
        return httpx.Response(200, json={"status": "cancelled" if next(gets) else "queued"})

    recorder.handler = handler
    seen: list[str] = []
    assert RolloutHandle("r1").wait(timeout=60, on_status=seen.append)["status"] == "cancelled"
    assert seen == ["queued", "running", "cancelled"]


def test_wait_fails_fast_when_the_backend_is_down(recorder: Recorder) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    recorder.handler = refuse
    with pytest.raises(TransportError):
        RolloutHandle("r1").wait(timeout=3600)
    assert recorder.now < 2.0, "the request's own retries, not an hour"


def test_custom_terminal_set(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(200, json={"status": "running"})
    assert RolloutHandle("r1").wait(terminal={"RUNNING"})["status"] == "running"


def test_wait_reports_each_status_once(recorder: Recorder) -> None:
    state = {"status": "running"}

    def handler(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/summary"):
            return httpx.Response(200, json={"last_event": {"id": "2"}})
        if request.url.path.endswith("/events"):
            state["status"] = "succeeded"
            return httpx.Response(
                200,
                content=lifecycle(3, "running")
                + lifecycle(4, "verifying")
                + lifecycle(5, "succeeded"),
            )
        return httpx.Response(200, json={"rollout_id": "r1", **state})

    recorder.handler = handler
    seen: list[str] = []
    RolloutHandle("r1").wait(timeout=30, on_status=seen.append)
    assert seen == ["running", "verifying", "succeeded"]
