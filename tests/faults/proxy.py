"""A loopback HTTP/1.1 proxy that breaks requests on purpose.

``FaultProxy`` listens on 127.0.0.1 (port 0), forwards every request to an upstream
backend over real TCP, and asks its *plan* what to do with each request. The plan is any
callable ``(RequestInfo) -> Fault | None``; ``None`` forwards untouched. Faults:

- ``Fault.cut(n)``: forward the first ``n`` bytes of the response (status line and headers
  count), then close the connection (``reset=True``: with a TCP RST instead of a FIN).
  With a chunked body the client sees an incomplete message: a transport error.
- ``Fault.clean_close(n)``: forward at least ``n`` body bytes, then end the response
  *properly* at the next blank-line boundary (the last chunk, ``0\\r\\n\\r\\n``): to HTTP it
  is a complete response; to an event-stream reader the stream just ended early.
- ``Fault.drop_response()``: the server receives and answers the request; the client gets
  nothing and its connection is reset.
- ``Fault.error(status)``: answer 502/503/504 with the contract's error body, either
  without asking the server (``reach_server=False``) or after it handled the request.
- ``Fault.stall(seconds)``: wait before forwarding the request (``after_bytes=None``) or
  after that many bytes of the response, then go on.

Each connection is a thread of its own; keep-alive works (faults are per request, not per
connection). ``records`` says what happened to every request, for the tests to count.
The plan sees the request's method, target, headers and body, so it can aim at one route,
a method, or an ``Idempotency-Key``. Anything that speaks HTTP can be sent through it:
the client library, the CLI in a subprocess, the official SDK in its own virtualenv.
"""

from __future__ import annotations

import json
import random
import re
import socket
import struct
import threading
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Literal
from urllib.parse import urlsplit

import h11

__all__ = ["Fault", "FaultProxy", "Plan", "Record", "RequestInfo", "randomly"]

FaultKind = Literal["cut", "clean_close", "drop_response", "error", "stall"]
_FRAMING = {b"content-length", b"transfer-encoding"}
_REASONS = {502: b"Bad Gateway", 503: b"Service Unavailable", 504: b"Gateway Timeout"}


@dataclass(frozen=True)
class Fault:
    kind: FaultKind
    after_bytes: int | None = None
    reset: bool = False
    status: int = 502
    reach_server: bool = False
    seconds: float = 0.0

    @classmethod
    def cut(cls, after_bytes: int, *, reset: bool = False) -> Fault:
        return cls("cut", after_bytes=max(0, after_bytes), reset=reset)

    @classmethod
    def clean_close(cls, after_body_bytes: int) -> Fault:
        return cls("clean_close", after_bytes=max(0, after_body_bytes))

    @classmethod
    def drop_response(cls) -> Fault:
        return cls("drop_response", reach_server=True, reset=True)

    @classmethod
    def error(cls, status: int = 502, *, reach_server: bool = False) -> Fault:
        return cls("error", status=status, reach_server=reach_server)

    @classmethod
    def stall(cls, seconds: float, *, after_bytes: int | None = None) -> Fault:
        return cls("stall", seconds=seconds, after_bytes=after_bytes)


@dataclass(frozen=True)
class RequestInfo:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    index: int
    """0 for the proxy's first request, then 1, 2, ..."""

    @property
    def path(self) -> str:
        return urlsplit(self.target).path

    def matches(self, method: str | None = None, path: str | None = None) -> bool:
        """``path`` is a regular expression searched in the path."""
        return (method is None or self.method == method.upper()) and (
            path is None or re.search(path, self.path) is not None
        )


@dataclass
class Record:
    request: RequestInfo
    fault: Fault | None
    upstream_status: int | None = None
    """What the server answered, or None if it never saw the request or never answered."""
    client_bytes: int = 0
    """Response bytes the client was sent."""
    note: str | None = None


Plan = Callable[[RequestInfo], Fault | None]


def randomly(
    rate: float,
    fault: Fault | Callable[[random.Random], Fault],
    *,
    seed: int,
    method: str | None = None,
    path: str | None = None,
    limit: int | None = None,
) -> Plan:
    """A plan that faults a share ``rate`` of the matching requests, reproducibly.

    ``fault`` may be a callable drawing a fault from the plan's random generator (for
    random cut points); ``limit`` stops after that many faults.
    """
    rng = random.Random(seed)
    lock = threading.Lock()
    done = 0

    def plan(request: RequestInfo) -> Fault | None:
        nonlocal done
        if not request.matches(method, path):
            return None
        with lock:
            if limit is not None and done >= limit:
                return None
            if rng.random() >= rate:
                return None
            done += 1
            return fault(rng) if callable(fault) else fault

    return plan


def _no_faults(request: RequestInfo) -> Fault | None:
    return None


class _Closed(Exception):
    """A peer closed its side, or the proxy is stopping."""


class FaultProxy:
    def __init__(self, upstream: str, plan: Plan | None = None) -> None:
        self.upstream = upstream
        self.plan: Plan = plan or _no_faults
        self.records: list[Record] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._sockets: set[socket.socket] = set()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self.port: int = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._accept, name="fault-proxy", daemon=True)
        self._count = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    # --- lifetime -------------------------------------------------------------------------

    def start(self) -> FaultProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        _close(self._listener)  # shutdown() wakes the accept() that close() alone would not
        with self._lock:
            sockets = list(self._sockets)
        for sock in sockets:
            _close(sock)
        self._thread.join(5)

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # --- what happened --------------------------------------------------------------------

    def faults(self, kind: FaultKind | None = None) -> list[Record]:
        with self._lock:
            return [r for r in self.records if r.fault and kind in (None, r.fault.kind)]

    def summary(self) -> Counter[str]:
        with self._lock:
            return Counter(r.fault.kind if r.fault else "forwarded" for r in self.records)

    # --- the proxy ------------------------------------------------------------------------

    def _accept(self) -> None:
        while not self._stopping.is_set():
            try:
                client, _ = self._listener.accept()
            except OSError:
                return
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            self._track(client)
            threading.Thread(
                target=self._serve, args=(client,), name="fault-proxy-conn", daemon=True
            ).start()

    def _track(self, sock: socket.socket) -> None:
        with self._lock:
            self._sockets.add(sock)

    def _forget(self, sock: socket.socket | None) -> None:
        if sock is None:
            return
        with self._lock:
            self._sockets.discard(sock)
        _close(sock)

    def _serve(self, client: socket.socket) -> None:
        downstream = h11.Connection(h11.SERVER)
        upstream: _Upstream | None = None
        try:
            while not self._stopping.is_set():
                request, body = self._read_request(client, downstream)
                if request is None:
                    return
                with self._lock:
                    index, self._count = self._count, self._count + 1
                info = RequestInfo(
                    method=request.method.decode(),
                    target=request.target.decode(),
                    headers={k.decode().lower(): v.decode("latin-1") for k, v in request.headers},
                    body=body,
                    index=index,
                )
                fault = self.plan(info)
                record = Record(info, fault)
                with self._lock:
                    self.records.append(record)
                if fault and fault.kind == "stall" and fault.after_bytes is None:
                    self._sleep(fault.seconds)
                if fault and fault.kind == "error" and not fault.reach_server:
                    self._answer_error(client, downstream, record)
                else:
                    if upstream is None:
                        try:
                            upstream = _Upstream(self.upstream)
                        except OSError:  # the backend is down: what a gateway answers
                            record.note = "upstream unreachable"
                            self._answer_error(client, downstream, record, 502)
                            downstream.start_next_cycle()
                            continue
                        self._track(upstream.sock)
                    keep = self._exchange(client, downstream, upstream, request, body, record)
                    if not upstream.reusable:
                        self._forget(upstream.sock)
                        upstream = None
                    if not keep:
                        return
                if (
                    downstream.our_state is h11.MUST_CLOSE
                    or downstream.their_state is h11.MUST_CLOSE
                ):
                    return
                downstream.start_next_cycle()
        except (_Closed, OSError, h11.ProtocolError):
            return
        finally:
            self._forget(client)
            if upstream is not None:
                self._forget(upstream.sock)

    def _sleep(self, seconds: float) -> None:
        if self._stopping.wait(seconds):
            raise _Closed()

    @staticmethod
    def _read_request(
        client: socket.socket, downstream: h11.Connection
    ) -> tuple[h11.Request | None, bytes]:
        request: h11.Request | None = None
        body = bytearray()
        for event in _events(downstream, client):
            if isinstance(event, h11.Request):
                request = event
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                return request, bytes(body)
            elif isinstance(event, h11.ConnectionClosed):
                return None, b""
        return None, b""

    def _answer_error(
        self,
        client: socket.socket,
        downstream: h11.Connection,
        record: Record,
        status: int | None = None,
    ) -> None:
        if status is None:
            assert record.fault is not None
            status = record.fault.status
        body = json.dumps(
            {
                "error": {
                    "code": "upstream_unavailable",
                    "message": f"fault proxy: {status} {_REASONS.get(status, b'').decode()}",
                    "request_id": f"req_proxy_{record.request.index}",
                    "retryable": True,
                }
            }
        ).encode()
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(body)).encode()),
        ]
        out = downstream.send(
            h11.Response(status_code=status, headers=headers, reason=_REASONS.get(status, b""))
        )
        out = (out or b"") + (downstream.send(h11.Data(data=body)) or b"")
        out += downstream.send(h11.EndOfMessage()) or b""
        client.sendall(out)
        record.client_bytes += len(out)

    def _exchange(
        self,
        client: socket.socket,
        downstream: h11.Connection,
        upstream: _Upstream,
        request: h11.Request,
        body: bytes,
        record: Record,
    ) -> bool:
        """Forward one request and its response; False when the client connection ends."""
        fault = record.fault
        upstream.send(request, body)
        response = upstream.response()
        record.upstream_status = response.status_code
        if fault and fault.kind in ("drop_response", "error"):
            for _ in upstream.body():  # the server finishes its work and its answer
                pass
            if fault.kind == "error":
                self._answer_error(client, downstream, record)
                return True
            _close(client, reset=fault.reset)
            return False
        headers = list(response.headers)
        if fault and fault.kind == "clean_close":
            headers = [(k, v) for k, v in headers if k.lower() not in _FRAMING]
        writer = _Writer(client, record, fault, self._sleep)
        writer.write(
            downstream.send(
                h11.Response(
                    status_code=response.status_code, headers=headers, reason=response.reason
                )
            )
        )
        if writer.closed:
            upstream.reusable = False
            return False
        boundary = _Boundary()
        for chunk in upstream.body():
            if fault and fault.kind == "clean_close":
                assert fault.after_bytes is not None
                head, end = boundary.split(chunk, fault.after_bytes)
                writer.write(downstream.send(h11.Data(data=head)) if head else b"")
                if end:
                    writer.write(downstream.send(h11.EndOfMessage()))
                    upstream.reusable = False  # its response was not read to the end
                    return downstream.our_state is not h11.MUST_CLOSE
                continue
            writer.write(downstream.send(h11.Data(data=chunk)))
            if writer.closed:
                upstream.reusable = False
                return False
        writer.write(downstream.send(h11.EndOfMessage()))
        return not writer.closed


class _Boundary:
    """Where a body may end cleanly: after a blank line, once enough bytes went through."""

    _BLANK_LINE = re.compile(rb"\r\n\r\n|\n\n|\r\r")

    def __init__(self) -> None:
        self.sent = 0
        self.tail = b""  # the last bytes forwarded: a blank line may straddle two chunks

    def split(self, chunk: bytes, after: int) -> tuple[bytes, bool]:
        """(bytes to forward, whether the body ends right after them)."""
        text = self.tail + chunk
        origin = self.sent - len(self.tail)  # body offset of text[0]
        for match in self._BLANK_LINE.finditer(text):
            end = match.end()
            if end > len(self.tail) and origin + end >= after:
                cut = end - len(self.tail)
                self.sent += cut
                return chunk[:cut], True
        self.sent += len(chunk)
        self.tail = text[-3:]
        return chunk, False


class _Writer:
    """Sends response bytes to the client, applying a cut or stall at its byte offset."""

    def __init__(
        self,
        client: socket.socket,
        record: Record,
        fault: Fault | None,
        sleep: Callable[[float], None],
    ) -> None:
        self.client = client
        self.record = record
        self.fault = fault
        self.sleep = sleep
        self.closed = False
        self.stalled = False

    def write(self, data: bytes | None) -> None:
        if not data or self.closed:
            return
        fault, sent = self.fault, self.record.client_bytes
        if fault and fault.kind == "cut" and fault.after_bytes is not None:
            room = fault.after_bytes - sent
            if room < len(data):
                if room > 0:
                    self.client.sendall(data[:room])
                    self.record.client_bytes += room
                _close(self.client, reset=fault.reset)
                self.closed = True
                return
        if (
            fault
            and fault.kind == "stall"
            and fault.after_bytes is not None
            and not self.stalled
            and sent + len(data) > fault.after_bytes
        ):
            room = max(0, fault.after_bytes - sent)
            self.client.sendall(data[:room])
            self.record.client_bytes += room
            data = data[room:]
            self.stalled = True
            self.sleep(fault.seconds)
        self.client.sendall(data)
        self.record.client_bytes += len(data)


class _Upstream:
    """One keep-alive connection to the backend."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.sock = socket.create_connection((self.host, parts.port or 80), timeout=None)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.conn = h11.Connection(h11.CLIENT)
        self.reusable = True

    def send(self, request: h11.Request, body: bytes) -> None:
        if self.conn.our_state is h11.DONE and self.conn.their_state is h11.DONE:
            self.conn.start_next_cycle()
        headers = [(k, v) for k, v in request.headers if k.lower() not in _FRAMING]
        if body or request.method not in (b"GET", b"HEAD", b"DELETE", b"OPTIONS"):
            headers.append((b"content-length", str(len(body)).encode()))
        out = self.conn.send(
            h11.Request(method=request.method, target=request.target, headers=headers)
        )
        out = out or b""
        if body:
            out += self.conn.send(h11.Data(data=body)) or b""
        out += self.conn.send(h11.EndOfMessage()) or b""
        self.sock.sendall(out)

    def response(self) -> h11.Response:
        for event in _events(self.conn, self.sock):
            if isinstance(event, h11.Response):
                return event
            if isinstance(event, h11.ConnectionClosed):
                break
        self.reusable = False
        raise _Closed()

    def body(self) -> Iterator[bytes]:
        for event in _events(self.conn, self.sock):
            if isinstance(event, h11.Data):
                yield bytes(event.data)
            elif isinstance(event, h11.EndOfMessage):
                if self.conn.our_state is h11.MUST_CLOSE or self.conn.their_state is h11.MUST_CLOSE:
                    self.reusable = False
                return
            elif isinstance(event, h11.ConnectionClosed):
                break
        self.reusable = False
        raise _Closed()


def _events(conn: h11.Connection, sock: socket.socket) -> Iterator[h11.Event]:
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                data = sock.recv(65536)
            except OSError:
                data = b""
            conn.receive_data(data)
            continue
        if event is h11.PAUSED:
            return
        assert isinstance(event, h11.Event)
        yield event
        if isinstance(event, h11.EndOfMessage | h11.ConnectionClosed):
            return


def _close(sock: socket.socket, *, reset: bool = False) -> None:
    try:
        if reset:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass
    sock.close()
