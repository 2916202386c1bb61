"""The gateway's record of each LLM call (llm/exchanges.jsonl), through a real gateway.

A real egress gateway on loopback forwards to the scripted provider (or to a small
upstream of the test's own, for what the stub never does: compress, echo a key); each
line must hold the body the provider got, the answer reassembled whole from its stream,
the provider's token counts, and no credential.
"""

from __future__ import annotations

import gzip
import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest

from envpools_cli.server.sandbox import exchanges as exchanges_module
from envpools_cli.server.sandbox.egress import EgressGateway, Route, open_gateway
from envpools_cli.server.sandbox.exchanges import ExchangeLog, describe, read_exchanges
from tests.agents.provider_stub import TURN_USAGE, ProviderStub

KEY = "sk-real-0123456789abcdef"
STORED = "ghp_storedcredential0123456789"
TOOLS = {
    "anthropic": [{"name": "Bash", "input_schema": {"type": "object"}}],
    "responses": [{"type": "function", "name": "exec_command", "parameters": {}}],
    "chat": [{"type": "function", "function": {"name": "bash", "parameters": {}}}],
    "gemini": [
        {
            "functionDeclarations": [
                {"name": "run_shell_command", "parametersJsonSchema": {"type": "object"}}
            ]
        }
    ],
}


@pytest.fixture
def stub() -> Iterator[ProviderStub]:
    final = f"Done; the token was {STORED}."
    with ProviderStub(command="echo hi", final_text=final, expected_key=KEY) as server:
        yield server


def gateway_for(upstream: str, log: ExchangeLog) -> EgressGateway:
    routes = [
        Route("openai", upstream + "/v1", KEY),
        Route("anthropic", upstream, KEY),
        Route("gemini", upstream, KEY),
    ]
    gateway = open_gateway(routes, isolated=False, exchanges=log)
    log.add_secrets(gateway.placeholder)
    return gateway


@pytest.fixture
def recorded(tmp_path: Path, stub: ProviderStub) -> Iterator[tuple[EgressGateway, Path]]:
    path = tmp_path / "exchanges.jsonl"
    gateway = gateway_for(stub.url, ExchangeLog(path, [KEY, STORED]))
    yield gateway, path
    gateway.close()


def call(
    gateway: EgressGateway, api: str, body: dict[str, Any], *, stream: bool = False
) -> httpx.Response:
    """One call of ``api`` (Gemini says in its path whether it streams, the others in
    the body)."""
    if api == "gemini":
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        url = gateway.url_for("gemini") + "/v1beta/models/m-1:" + method
        headers = {"x-goog-api-key": gateway.placeholder}
    elif api == "anthropic":
        url = gateway.url_for("anthropic") + "/v1/messages"
        headers = {"x-api-key": gateway.placeholder}
    else:
        tail = "/responses" if api == "responses" else "/chat/completions"
        url = gateway.url_for("openai") + tail
        headers = {"Authorization": f"Bearer {gateway.placeholder}"}
    with httpx.stream("POST", url, headers=headers, json=body, timeout=10) as response:
        response.read()
    return response


def request_body(api: str, *, stream: bool, result: bool) -> dict[str, Any]:
    body: dict[str, Any] = {"model": "m-1", "stream": stream, "tools": TOOLS[api]}
    if api == "gemini":
        answer = {"functionResponse": {"id": "c", "name": "run_shell_command", "response": {}}}
        return {
            "contents": [{"role": "user", "parts": [answer if result else {"text": "go"}]}],
            "systemInstruction": {"parts": [{"text": "Be brief."}]},
            "tools": TOOLS[api],
        }
    if api == "anthropic":
        content: Any = [{"type": "tool_result", "tool_use_id": "t", "content": "ok"}]
        body["messages"] = [{"role": "user", "content": content if result else "go"}]
        body["system"] = "Be brief."
    elif api == "responses":
        body["input"] = [{"type": "function_call_output", "call_id": "c"}] if result else []
        body["instructions"] = "Be brief."
    else:
        body["messages"] = [{"role": "system", "content": "Be brief."}] + (
            [{"role": "tool", "content": "ok", "tool_call_id": "c"}] if result else []
        )
    return body


def lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("api", ["anthropic", "responses", "chat", "gemini"])
def test_streams_are_reassembled_into_the_whole_answer(
    api: str, recorded: tuple[EgressGateway, Path], stub: ProviderStub
) -> None:
    gateway, path = recorded
    sent = []
    for stream in (False, True):
        for result in (False, True):
            sent.append(request_body(api, stream=stream, result=result))
            assert call(gateway, api, sent[-1], stream=stream).status_code == 200
    gateway.close()
    recorded_lines = sorted(lines(path), key=lambda line: line["index"])
    assert (
        [line["request"] for line in recorded_lines] == [r["body"] for r in stub.requests] == sent
    )
    assert [line["streamed"] for line in recorded_lines] == [False, False, True, True]
    usage = TURN_USAGE["tool_call"], TURN_USAGE["final"]
    for line, turn in zip(recorded_lines, usage * 2, strict=True):
        assert line["status"] == 200 and line["model"] == "m-1"
        assert line["usage"] == {
            "prompt_tokens": turn.prompt,
            "completion_tokens": turn.output,
            "cached_tokens": turn.cached,
        }
    plain, streamed = recorded_lines[:2], recorded_lines[2:]
    for whole, rebuilt in zip(plain, streamed, strict=True):
        a, b = describe(whole), describe(rebuilt)
        assert (a.text, a.system, a.tools) == (b.text, b.system, b.tools)
        assert [(c["name"], json.dumps(c["arguments"])) for c in a.tool_calls] == [
            (c["name"], json.dumps(c["arguments"])) for c in b.tool_calls
        ]
    call_view = describe(streamed[0])
    assert call_view.tool_calls and "echo hi" in json.dumps(call_view.tool_calls[0]["arguments"])
    assert call_view.system == "Be brief." and call_view.tools[0]["type"] == "function"
    assert describe(streamed[1]).text == "Done; the token was [REDACTED]."


def test_no_credential_is_recorded(recorded: tuple[EgressGateway, Path]) -> None:
    """Not the key, not the placeholder, not a stored credential the agent sent or got."""
    gateway, path = recorded
    body = request_body("anthropic", stream=True, result=True)
    body["messages"].append({"role": "user", "content": f"{STORED} {gateway.placeholder}"})
    assert call(gateway, "anthropic", body).status_code == 200
    gateway.close()
    text = path.read_text()
    assert STORED not in text and KEY not in text and gateway.placeholder not in text
    assert text.count("[REDACTED]") >= 3


class _Upstream(BaseHTTPRequestHandler):
    """What the stub never does: a gzip-compressed answer that also names the key."""

    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("content-length") or 0))
        answer = {
            "id": "chatcmpl-9",
            "model": "m-2",
            "choices": [{"index": 0, "message": {"role": "assistant", "content": KEY}}],
            "usage": {"prompt_tokens": 3, "completion_tokens": 1},
        }
        data = gzip.compress(json.dumps(answer).encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


def test_compressed_answers_are_decoded_and_scrubbed(tmp_path: Path) -> None:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Upstream)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    path = tmp_path / "exchanges.jsonl"
    try:
        with gateway_for(
            f"http://127.0.0.1:{server.server_address[1]}", ExchangeLog(path, [KEY])
        ) as gw:
            assert call(gw, "chat", {"model": "m-2", "messages": []}).status_code == 200
    finally:
        server.shutdown()
        server.server_close()
    (line,) = lines(path)
    assert line["response"]["choices"][0]["message"]["content"] == "[REDACTED]"
    assert line["usage"] == {"prompt_tokens": 3, "completion_tokens": 1, "cached_tokens": 0}


def test_unreachable_provider_and_oversized_bodies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, stub: ProviderStub
) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    path = tmp_path / "exchanges.jsonl"
    with gateway_for(f"http://127.0.0.1:{port}", ExchangeLog(path)) as gw:
        assert call(gw, "responses", {"model": "m"}).status_code == 502
    (failed,) = lines(path)
    assert failed["status"] is None and "connection failed" in failed["error"]

    monkeypatch.setattr(exchanges_module, "BODY_LIMIT", 1000)
    big = tmp_path / "big.jsonl"
    with gateway_for(stub.url, ExchangeLog(big)) as gw:
        body = request_body("chat", stream=True, result=False)
        body["padding"] = "x" * 5000
        assert call(gw, "chat", body).status_code == 200
    (line,) = lines(big)
    assert set(line["request"]) == {"not_kept"} and line["request"]["not_kept"].endswith(" bytes")
    assert line["status"] == 200 and line["usage"], "the answer, within the limit, is kept"


def test_reading_back_skips_what_is_not_a_line(tmp_path: Path) -> None:
    path = tmp_path / "exchanges.jsonl"
    path.write_text('{"index": 0, "status": 200, "usage": {"prompt_tokens": 1}}\nnot json\n[1]\n')
    (only,) = read_exchanges(path)
    assert only.index == 0 and only.answered
    assert read_exchanges(tmp_path / "missing.jsonl") == []


def test_without_a_log_nothing_is_kept(stub: ProviderStub) -> None:
    log = ExchangeLog(None)
    with gateway_for(stub.url, log) as gw:
        response = call(gw, "anthropic", request_body("anthropic", stream=True, result=False))
        assert response.status_code == 200
    assert log.count == 0 and log.written == 0 and not log.problems


def test_a_credential_streamed_in_pieces_is_scrubbed_whole(tmp_path: Path) -> None:
    """The provider streams a stored credential split over two chunks (the stub cuts
    Gemini's text after five characters): each chunk alone holds no credential, the
    reassembled answer does, and the record must not."""
    with ProviderStub(command="echo hi", final_text=f"{STORED} is it", expected_key=KEY) as stub:
        path = tmp_path / "exchanges.jsonl"
        with gateway_for(stub.url, ExchangeLog(path, [KEY, STORED])) as gw:
            body = request_body("gemini", stream=True, result=True)
            assert call(gw, "gemini", body, stream=True).status_code == 200
    (line,) = lines(path)
    assert describe(line).text == "[REDACTED] is it"
    assert STORED not in json.dumps(line) and STORED[5:] not in json.dumps(line)
