"""Finding 2 (MEDIUM): the real provider key came back to the agent.

The gateway swapped the placeholder for the real key in every request header that held
it (``X-Reflect: <placeholder>`` too) and scrubbed response headers but not bodies, so an
upstream that echoes requests (debugging endpoints, some gateways) handed the agent the
real key. Here the upstream echoes everything it gets, in its headers and its body,
plainly, gzip-compressed, and streamed in pieces that cut the key in two; the agent's
side must never see the key, and the provider must get it only in its key header.
"""

from __future__ import annotations

import gzip
import http.server
import json
import threading
import time
from collections.abc import Iterator
from typing import Any, ClassVar

import httpx
import pytest

from envpools_cli.server.sandbox.egress import EgressGateway, KeyScrubber, Route, open_gateway

KEY = "sk-proj-REALKEY-5f0c2a9e81d4b7c6"


class Echo(http.server.BaseHTTPRequestHandler):
    """Answers with everything it was sent: headers, query and body."""

    protocol_version = "HTTP/1.1"
    seen: ClassVar[list[dict[str, Any]]] = []

    def _handle(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length).decode("utf-8", "replace") if length else ""
        record = {"path": self.path, "headers": dict(self.headers.items()), "body": body}
        Echo.seen.append(record)
        payload = json.dumps(record).encode()
        mode = self.path.split("?")[0].rsplit("/", 1)[-1]
        status = 500 if mode == "error" else 200
        self.send_response(status)
        for name, value in self.headers.items():
            self.send_header(f"X-Echo-{name}", value)
        self.send_header("Content-Type", "application/json")
        if mode == "gzip":
            payload = gzip.compress(payload)
            self.send_header("Content-Encoding", "gzip")
        if mode == "stream":
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            # Pieces of 5 bytes: the key arrives cut across many chunks.
            for start in range(0, len(payload), 5):
                piece = payload[start : start + 5]
                self.wfile.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                self.wfile.flush()
                time.sleep(0.0005)
            self.wfile.write(b"0\r\n\r\n")
            return
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    do_GET = do_POST = _handle

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def gateway() -> Iterator[EgressGateway]:
    Echo.seen = []
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Echo)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    upstream = f"http://127.0.0.1:{server.server_address[1]}"
    with open_gateway(
        [Route("openai", upstream + "/v1", KEY), Route("anthropic", upstream, KEY)],
        isolated=False,
    ) as gw:
        yield gw
    server.shutdown()


@pytest.mark.parametrize("mode", ["plain", "gzip", "stream", "error"])
def test_a_reflecting_upstream_never_hands_back_the_key(gateway: EgressGateway, mode: str) -> None:
    placeholder = gateway.placeholder
    with httpx.stream(
        "POST",
        f"{gateway.url_for('openai')}/{mode}?key={placeholder}",
        headers={
            "Authorization": f"Bearer {placeholder}",
            "X-Reflect": placeholder,
            "X-Api-Key": placeholder,  # not OpenAI's key header: left as it is
            "Accept-Encoding": "gzip",
        },
        json={"model": "m", "input": f"echo {placeholder}"},
        timeout=30,
    ) as response:
        chunks = list(response.iter_raw())
        headers = list(response.headers.raw)
    raw = b"".join(chunks)
    assert KEY.encode() not in raw
    assert not any(KEY.encode() in k + v for k, v in headers)
    assert response.status_code == (500 if mode == "error" else 200)

    # What the provider got: the key in its key header, nowhere else.
    (seen,) = Echo.seen
    sent = {k.lower(): v for k, v in seen["headers"].items()}
    assert sent["authorization"] == f"Bearer {KEY}"
    assert sent["x-reflect"] == placeholder, "another header keeps the placeholder"
    assert sent["x-api-key"] == placeholder
    assert sent["accept-encoding"] == "identity"
    assert f"key={placeholder}" in seen["path"] and KEY not in seen["path"]
    assert placeholder in seen["body"] and KEY not in seen["body"]
    # What the agent got back: the placeholder where the echo held the key.
    echoed = {k.lower(): v for k, v in json.loads(raw)["headers"].items()}
    assert echoed["authorization"] == f"Bearer {placeholder}"
    assert (b"x-echo-authorization", f"Bearer {placeholder}".encode()) in [
        (k.lower(), v) for k, v in headers
    ]


def test_anthropic_takes_its_key_in_x_api_key_only(gateway: EgressGateway) -> None:
    response = httpx.post(
        f"{gateway.url_for('anthropic')}/v1/messages",
        headers={"x-api-key": gateway.placeholder, "X-Other": gateway.placeholder},
        json={},
        timeout=30,
    )
    assert response.status_code == 200 and KEY not in response.text
    sent = {k.lower(): v for k, v in Echo.seen[0]["headers"].items()}
    assert sent["x-api-key"] == KEY and sent["x-other"] == gateway.placeholder
    # The placeholder only in a header the provider does not read: refused, nothing sent.
    refused = httpx.post(
        f"{gateway.url_for('openai')}/responses",
        headers={"X-Reflect": gateway.placeholder, "Authorization": "Bearer sk-other"},
        json={},
        timeout=30,
    )
    assert refused.status_code == 401 and len(Echo.seen) == 1


def test_the_scrubber_catches_the_key_split_at_every_point() -> None:
    text = b"before " + KEY.encode() + b" middle " + KEY.encode() + KEY.encode()[:-1]
    for cut in range(1, len(text)):
        for step in (1, 3, cut):
            scrubber = KeyScrubber(KEY.encode(), b"PLACEHOLDER")
            pieces = [text[:cut]] + [text[i : i + step] for i in range(cut, len(text), step)]
            out = b"".join(scrubber.feed(p) for p in pieces) + scrubber.flush()
            assert out == text.replace(KEY.encode(), b"PLACEHOLDER"), (cut, step)
