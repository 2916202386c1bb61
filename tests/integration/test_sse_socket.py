"""The event stream over a real socket: the server drops the connection twice mid-event."""

from __future__ import annotations

import json
import socket
import socketserver
import threading
from collections.abc import Iterator

import pytest

from envpools_cli import client as ep

TOTAL = 300
DROPS = {1: 100, 2: 220}  # connection number -> seq in the middle of which it drops


def frame(seq: int) -> bytes:
    status = "succeeded" if seq == TOTAL else None
    event = "lifecycle" if status else "agent"
    data = {"status": status} if status else {"line": f"output line {seq} " + "x" * 40}
    envelope = {
        "id": str(seq),
        "event": event,
        "seq": seq,
        "timestamp": "2026-11-28T00:00:00Z",
        "data": data,
    }
    return f"id: {seq}\nevent: {event}\ndata: {json.dumps(envelope)}\n\n".encode()


class Handler(socketserver.StreamRequestHandler):
    server: Server

    def handle(self) -> None:
        headers = {}
        request_line = self.rfile.readline().decode()
        while True:
            line = self.rfile.readline().decode().strip()
            if not line:
                break
            name, _, value = line.partition(":")
            headers[name.lower()] = value.strip()
        with self.server.lock:
            self.server.connections += 1
            number = self.server.connections
            self.server.seen.append((request_line.split()[1], headers.get("last-event-id")))
        start = int(headers.get("last-event-id") or 0) + 1
        chunked = number == 1
        head = "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\n"
        head += "transfer-encoding: chunked\r\n\r\n" if chunked else "connection: close\r\n\r\n"
        self.wfile.write(head.encode())
        drop_at = DROPS.get(number)
        for seq in range(start, TOTAL + 1):
            data = frame(seq)
            if seq == drop_at:
                data = data[: len(data) // 2]
            self.wfile.write(b"%x\r\n%s\r\n" % (len(data), data) if chunked else data)
            if seq == drop_at:
                self.wfile.flush()
                # Abort: no terminating chunk, no blank line; the peer sees a broken stream.
                self.connection.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                return
        if chunked:
            self.wfile.write(b"0\r\n\r\n")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), Handler)
        self.lock = threading.Lock()
        self.connections = 0
        self.seen: list[tuple[str, str | None]] = []


@pytest.fixture
def server() -> Iterator[Server]:
    srv = Server()
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()


def test_every_event_exactly_once_in_order_across_two_drops(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    host, port = server.server_address[:2]
    session = ep.HTTPSession(sleep=lambda s: None)
    stream = ep.stream_rollout_events(
        "r1",
        backend_base=f"http://{host}:{port}",
        api_key="sk-socket",
        auto_reconnect=True,
        backoff_base=0.01,
        session=session,
    )
    events = list(stream)
    session.close()
    assert [e["seq"] for e in events] == list(range(1, TOTAL + 1))
    assert events[-1]["data"] == {"status": "succeeded"}
    assert server.connections == 3
    assert stream.reconnects == 2
    resumed_from = [last_id for _, last_id in server.seen]
    assert resumed_from == [None, "99", "219"]
    assert all("/v1/rollouts/r1/events" in path for path, _ in server.seen)
    assert "cursor=219" in server.seen[2][0]
