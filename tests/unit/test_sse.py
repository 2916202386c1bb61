"""SSE decoding of tricky streams and the resumable EventStream over MockTransport."""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator

import httpx
import pytest

from envpools_cli import client as ep
from envpools_cli.client import SSEDecoder, StreamGapError, TransportError

from .conftest import Recorder


def decode(*chunks: bytes) -> list[tuple[str, str, str | None]]:
    decoder = SSEDecoder()
    return [(e.event, e.data, e.id) for chunk in chunks for e in decoder.feed(chunk)]


class TestDecoder:
    def test_basic_event(self) -> None:
        assert decode(b'id: 1\nevent: agent\ndata: {"a":1}\n\n') == [("agent", '{"a":1}', "1")]

    def test_multi_line_data_is_joined_with_newlines(self) -> None:
        assert decode(b"data: first\ndata:second\ndata:  third\n\n") == [
            ("message", "first\nsecond\n third", None)
        ]

    @pytest.mark.parametrize("sep", [b"\r\n", b"\r", b"\n"])
    def test_any_line_ending(self, sep: bytes) -> None:
        stream = sep.join([b"id: 7", b"event: x", b"data: y", b"", b""])
        assert decode(stream) == [("x", "y", "7")]

    def test_crlf_split_across_chunks(self) -> None:
        assert decode(b"data: a\r", b"\n\r", b"\ndata: b\r\n\r\n") == [
            ("message", "a", None),
            ("message", "b", None),
        ]

    def test_event_split_at_every_byte(self) -> None:
        raw = 'id: 42\r\nevent: agent\r\ndata: {"text": "héllo ✓"}\r\n\r\n'.encode()
        assert decode(*[raw[i : i + 1] for i in range(len(raw))]) == [
            ("agent", '{"text": "héllo ✓"}', "42")
        ]

    def test_comments_and_unknown_fields_are_ignored(self) -> None:
        assert decode(b": keep-alive\nfoo: bar\ndata: x\n: mid\n\n") == [("message", "x", None)]

    def test_event_without_data_is_not_dispatched(self) -> None:
        decoder = SSEDecoder()
        assert list(decoder.feed(b"id: 5\nevent: ping\n\n")) == []
        assert decoder.last_event_id == "5"
        [event] = decoder.feed(b"data: next\n\n")
        assert event.id is None, "this event had no id of its own"
        assert event.last_event_id == "5", "the spec's last-event-id buffer persists"

    def test_retry_field(self) -> None:
        decoder = SSEDecoder()
        list(decoder.feed(b"retry: 2500\nretry: soon\n\n"))
        assert decoder.retry == 2500

    def test_id_with_nul_is_ignored(self) -> None:
        decoder = SSEDecoder()
        list(decoder.feed(b"id: a\x00b\ndata: x\n\n"))
        assert decoder.last_event_id == ""

    def test_bom_is_stripped_once(self) -> None:
        assert decode(b"\xef\xbb\xbfdata: x\n\n") == [("message", "x", None)]

    def test_field_without_colon(self) -> None:
        assert decode(b"data\n\n") == [("message", "", None)]

    def test_incomplete_event_is_reported(self) -> None:
        decoder = SSEDecoder()
        assert list(decoder.feed(b"id: 1\ndata: partial")) == []
        assert decoder.incomplete
        decoder = SSEDecoder()
        list(decoder.feed(b"data: whole\n\n"))
        assert not decoder.incomplete

    def test_oversized_event_is_refused(self) -> None:
        decoder = SSEDecoder(max_event_chars=100)
        with pytest.raises(TransportError):
            list(decoder.feed(b"data: " + b"x" * 200 + b"\n"))


# --- EventStream over MockTransport -------------------------------------------------------


def sse(seq: int, event: str = "agent", data: dict[str, object] | None = None) -> bytes:
    envelope = {
        "id": str(seq),
        "event": event,
        "seq": seq,
        "timestamp": "2026-11-28T00:00:00Z",
        "data": data if data is not None else {"line": f"line {seq}"},
    }
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(envelope)}\n\n".encode()


def terminal(seq: int) -> bytes:
    return sse(seq, "lifecycle", {"status": "succeeded"})


class Chunks(httpx.SyncByteStream):
    def __init__(self, chunks: Iterable[bytes], error: Exception | None = None) -> None:
        self.chunks = list(chunks)
        self.error = error
        self.closed = False

    def __iter__(self) -> Iterator[bytes]:
        yield from self.chunks
        if self.error is not None:
            raise self.error

    def close(self) -> None:
        self.closed = True


def sse_response(chunks: Iterable[bytes], error: Exception | None = None) -> httpx.Response:
    return httpx.Response(
        200, headers={"content-type": "text/event-stream"}, stream=Chunks(chunks, error)
    )


def script(*responses: httpx.Response) -> object:
    queue = list(responses)
    return lambda request: queue.pop(0)


def seqs(events: Iterable[dict[str, object]]) -> list[object]:
    return [e["seq"] for e in events]


def test_events_are_envelopes(recorder: Recorder) -> None:
    recorder.handler = script(sse_response([sse(1), terminal(2)]))  # type: ignore[assignment]
    events = list(ep.stream_rollout_events("r1"))
    assert events[0] == {
        "id": "1",
        "event": "agent",
        "seq": 1,
        "timestamp": "2026-11-28T00:00:00Z",
        "data": {"line": "line 1"},
    }
    request = recorder.last
    assert request.url.path == "/v1/rollouts/r1/events"
    assert request.headers["accept"] == "text/event-stream"
    assert request.headers["cache-control"] == "no-cache"
    assert "last-event-id" not in request.headers


def test_query_and_cursor_headers(recorder: Recorder) -> None:
    recorder.handler = script(sse_response([terminal(4)]))  # type: ignore[assignment]
    list(ep.stream_rollout_events("r1", since="2026-01-01T00:00:00Z", cursor="3", limit=10))
    request = recorder.last
    assert dict(request.url.params) == {
        "since": "2026-01-01T00:00:00Z",
        "cursor": "3",
        "limit": "10",
    }
    assert request.headers["last-event-id"] == "3"


def test_drop_mid_event_then_resume(recorder: Recorder) -> None:
    first = sse(1) + sse(2) + sse(3)[:25]
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([first], httpx.RemoteProtocolError("peer closed connection")),
        sse_response([sse(3), sse(4), terminal(5)]),
    )
    events = list(ep.stream_rollout_events("r1", auto_reconnect=True))
    assert seqs(events) == [1, 2, 3, 4, 5]
    resume = recorder.requests[1]
    assert resume.headers["last-event-id"] == "2"
    assert resume.url.params["cursor"] == "2"
    assert recorder.sleeps and recorder.sleeps[0] == 1.0


def test_clean_close_inside_an_event_counts_as_a_drop(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1) + b'id: 2\ndata: {"partial"']),
        sse_response([sse(2), terminal(3)]),
    )
    assert seqs(ep.stream_rollout_events("r1", auto_reconnect=True)) == [1, 2, 3]


def test_duplicates_are_dropped_when_the_server_resends(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1), sse(2)], httpx.ReadError("reset")),
        sse_response([sse(1), sse(2), sse(3), terminal(4)]),
    )
    assert seqs(ep.stream_rollout_events("r1", auto_reconnect=True)) == [1, 2, 3, 4]


def test_reconnects_on_502_503_504(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        httpx.Response(502),
        httpx.Response(503, headers={"Retry-After": "2"}),
        httpx.Response(504),
        sse_response([terminal(1)]),
    )
    events = list(ep.stream_rollout_events("r1", auto_reconnect=True, backoff_base=0.1))
    assert seqs(events) == [1]
    assert recorder.sleeps == [0.1, 2.0, 0.4]


def test_read_timeout_reconnects(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1)], httpx.ReadTimeout("silent")),
        sse_response([terminal(2)]),
    )
    assert seqs(ep.stream_rollout_events("r1", auto_reconnect=True)) == [1, 2]


def test_without_auto_reconnect_a_drop_raises(recorder: Recorder) -> None:
    recorder.handler = script(sse_response([sse(1)], httpx.ReadError("reset")))  # type: ignore[assignment]
    stream = ep.stream_rollout_events("r1")
    assert next(stream)["seq"] == 1
    with pytest.raises(TransportError):
        next(stream)


def test_gives_up_after_max_retries(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(503)
    with pytest.raises(ep.ServerError):
        list(ep.stream_rollout_events("r1", auto_reconnect=True, max_retries=3))
    assert len(recorder.requests) == 4


def test_auth_errors_are_not_retried(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(
        403, json={"error": {"code": "plan_required", "message": "x", "current_plan": "free"}}
    )
    with pytest.raises(ep.PlanGatingError):
        list(ep.stream_rollout_events("r1", auto_reconnect=True))
    assert len(recorder.requests) == 1


def test_stops_after_terminal_event_without_waiting_for_close(recorder: Recorder) -> None:
    body = Chunks([sse(1), terminal(2), sse(3)])
    recorder.handler = lambda r: httpx.Response(200, stream=body)
    assert seqs(ep.stream_rollout_events("r1")) == [1, 2]
    assert body.closed, "the connection is closed as soon as the stream ends"


def summary(status: str, last_seq: int | None) -> httpx.Response:
    last = None if last_seq is None else {"id": str(last_seq), "seq": last_seq}
    return httpx.Response(200, json={"rollout_id": "r1", "status": status, "last_event": last})


def test_a_clean_close_before_the_terminal_event_is_resumed(recorder: Recorder) -> None:
    """The silent loss of issue 13: a proxy closes the response properly, mid-rollout."""
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1), sse(2)]),
        summary("succeeded", 4),  # the rollout is over, but events 3 and 4 never came
        sse_response([sse(3), terminal(4)]),
    )
    stream = ep.stream_rollout_events("r1", auto_reconnect=True)
    assert seqs(stream) == [1, 2, 3, 4]
    assert stream.reconnects == 1 and stream.finished_terminal
    assert recorder.requests[2].headers["last-event-id"] == "2"


def test_an_empty_clean_close_asks_whether_anything_is_left(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([b"retry: 1000\n\n"]),
        summary("succeeded", 5),  # finished, and 5 events are still to come: resume
        sse_response([sse(4), terminal(5)]),
    )
    events = list(ep.stream_rollout_events("r1", cursor="3", auto_reconnect=True))
    assert seqs(events) == [4, 5]
    assert [r.url.path for r in recorder.requests] == [
        "/v1/rollouts/r1/events",
        "/v1/rollouts/r1/summary",
        "/v1/rollouts/r1/events",
    ]


def test_a_cursor_at_the_last_event_of_a_finished_rollout_ends(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([b"retry: 1000\n\n"]), summary("failed", 7)
    )
    stream = ep.stream_rollout_events("r1", cursor="7", auto_reconnect=True)
    assert list(stream) == []
    assert len(recorder.requests) == 2 and stream.reconnects == 0


def test_without_auto_reconnect_a_clean_early_close_raises(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1), sse(2)]), summary("running", 9)
    )
    stream = ep.stream_rollout_events("r1")
    assert seqs([next(stream), next(stream)]) == [1, 2]
    with pytest.raises(TransportError, match="before the rollout's terminal event"):
        next(stream)


def test_a_backend_never_reached_fails_in_seconds(recorder: Recorder) -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("connection refused", request=request)

    recorder.handler = refuse
    reconnects: list[int] = []
    stream = ep.stream_rollout_events(
        "r1",
        auto_reconnect=True,
        reconnect=ep.ReconnectPolicy.watching(),
        on_reconnect=lambda n, d, e: reconnects.append(n),
    )
    with pytest.raises(
        TransportError, match=r"could not reach the backend at http://backend\.test"
    ):
        list(stream)
    assert 4.9 <= recorder.now <= 5.1, recorder.sleeps
    assert not stream.reached and reconnects == [], "nothing was lost: no reconnect notices"


def test_an_outage_after_a_connection_is_ridden_out_then_bounded(recorder: Recorder) -> None:
    state = {"n": 0}

    def flaky(request: httpx.Request) -> httpx.Response:
        state["n"] += 1
        if state["n"] == 1:
            return sse_response([sse(1)], httpx.ReadError("reset"))
        raise httpx.ConnectError("connection refused", request=request)

    recorder.handler = flaky
    policy = ep.ReconnectPolicy(max_retries=None, backoff_max=10.0, outage_limit=60.0)
    stream = ep.stream_rollout_events("r1", auto_reconnect=True, reconnect=policy)
    assert next(stream)["seq"] == 1
    with pytest.raises(TransportError):
        next(stream)
    assert 60.0 <= recorder.now <= 75.0 and stream.reached


def test_the_deadline_ends_the_stream_without_an_error(recorder: Recorder) -> None:
    recorder.handler = lambda r: httpx.Response(503)
    policy = ep.ReconnectPolicy(max_retries=None, deadline=20.0)
    stream = ep.stream_rollout_events("r1", auto_reconnect=True, reconnect=policy)
    assert list(stream) == []
    assert stream.timed_out and recorder.now == pytest.approx(20.0)


def test_closing_early_closes_the_connection(recorder: Recorder) -> None:
    body = Chunks([sse(1), sse(2), sse(3)])
    recorder.handler = lambda r: httpx.Response(200, stream=body)
    with ep.stream_rollout_events("r1") as stream:
        assert next(stream)["seq"] == 1
    assert body.closed


def test_gap_is_reported_not_hidden(recorder: Recorder) -> None:
    recorder.handler = script(sse_response([sse(1), sse(4), terminal(5)]))  # type: ignore[assignment]
    stream = ep.stream_rollout_events("r1")
    assert next(stream)["seq"] == 1
    with pytest.raises(StreamGapError) as info:
        next(stream)
    assert (info.value.after_seq, info.value.next_seq) == (1, 4)


def test_gap_can_be_reported_in_band(recorder: Recorder) -> None:
    recorder.handler = script(sse_response([sse(1), sse(4), terminal(5)]))  # type: ignore[assignment]
    events = list(ep.stream_rollout_events("r1", on_gap="report"))
    assert [e["event"] for e in events] == ["agent", "gap", "agent", "lifecycle"]
    assert events[1]["data"] == {"after_seq": 1, "next_seq": 4, "missing": 2}


def test_limit_counts_across_reconnects(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1), sse(2)], httpx.ReadError("reset")),
        sse_response([sse(3), sse(4), sse(5)]),
    )
    events = list(ep.stream_rollout_events("r1", limit=4, auto_reconnect=True))
    assert seqs(events) == [1, 2, 3, 4]
    assert recorder.requests[1].url.params["limit"] == "2"


def test_heartbeats_without_ids_pass_through_and_never_move_the_cursor(
    recorder: Recorder,
) -> None:
    heartbeat = b'event: heartbeat\ndata: {"event": "heartbeat", "data": {}}\n\n'
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1), heartbeat], httpx.ReadError("reset")),
        sse_response([terminal(2)]),
    )
    events = list(ep.stream_rollout_events("r1", auto_reconnect=True))
    assert [e["event"] for e in events] == ["agent", "heartbeat", "lifecycle"]
    assert recorder.requests[1].headers["last-event-id"] == "1"


def test_non_envelope_data_and_missing_ids(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([b"data: plain text\n\n", b'event: note\ndata: {"x": 1}\n\n']),
        summary("succeeded", None),
    )
    events = list(ep.stream_rollout_events("r1"))
    assert events == [
        {"id": None, "event": "message", "seq": None, "timestamp": None, "data": "plain text"},
        {"id": None, "event": "note", "seq": None, "timestamp": None, "data": {"x": 1}},
    ]


def test_opaque_ids_are_deduplicated(recorder: Recorder) -> None:
    def ev(i: str) -> bytes:
        return f'id: e{i}\ndata: {{"n": "{i}"}}\n\n'.encode()

    recorder.handler = script(  # type: ignore[assignment]
        sse_response([ev("1"), ev("2")], httpx.ReadError("reset")),
        sse_response([ev("2"), ev("3")]),
        httpx.Response(200, json={"status": "succeeded", "last_event": {"id": "e3"}}),
    )
    events = list(ep.stream_rollout_events("r1", auto_reconnect=True))
    assert [e["id"] for e in events] == ["e1", "e2", "e3"]
    assert recorder.requests[1].headers["last-event-id"] == "e2"


def test_server_retry_field_sets_the_reconnect_delay(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([b"retry: 250\n\n", sse(1)], httpx.ReadError("reset")),
        sse_response([terminal(2)]),
    )
    list(ep.stream_rollout_events("r1", auto_reconnect=True))
    assert recorder.sleeps == [0.25]


def test_client_namespace_reconnects_by_default(recorder: Recorder) -> None:
    recorder.handler = script(  # type: ignore[assignment]
        sse_response([sse(1)], httpx.ReadError("reset")), sse_response([terminal(2)])
    )
    client = ep.EnvironmentPoolsClient(skip_plan_check=True)
    assert seqs(client.rollouts.events("r1")) == [1, 2]


def test_memory_stays_flat_over_a_long_stream(recorder: Recorder) -> None:
    import tracemalloc

    total = 20_000

    def body() -> Iterator[bytes]:
        for seq in range(1, total):
            yield sse(seq)
        yield terminal(total)

    class Lazy(httpx.SyncByteStream):
        def __iter__(self) -> Iterator[bytes]:
            return body()

    recorder.handler = lambda r: httpx.Response(200, stream=Lazy())
    tracemalloc.start()
    try:
        last = 0
        for event in ep.stream_rollout_events("r1"):
            last = event["seq"]  # type: ignore[assignment]
            if last == 1000:
                tracemalloc.reset_peak()
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert last == total
    assert peak < 2 * 1024 * 1024, f"peak {peak} bytes while streaming {total} events"


def test_the_backoff_stays_at_its_cap_after_thousands_of_attempts() -> None:
    from envpools_cli.client.sse import ReconnectPolicy

    policy = ReconnectPolicy(max_retries=None, backoff_base=0.5, backoff_max=5.0)
    assert policy.delay(5000, base=None, retry_after=None, rand=0.0) == 5.0
