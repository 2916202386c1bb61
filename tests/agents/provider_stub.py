"""A scripted LLM provider on loopback, speaking the APIs the real agent CLIs call.

It answers the OpenAI Responses API (streaming; a WebSocket upgrade gets a quick 404 so
a client falls back to HTTP), Chat Completions (streaming or not), the Anthropic
Messages API (streaming or not) and Gemini's ``generateContent`` and
``streamGenerateContent`` (``?alt=sse``), with the same script for every conversation:

1. a request that offers tools and holds no tool result yet gets one shell tool call,
   running ``command`` (the tool each CLI offers: codex ``exec_command``, claude
   ``Bash``, opencode and mini-swe-agent ``bash``, gemini-cli and qwen-code
   ``run_shell_command``);
2. a request that already holds a tool result gets the final message ``final_text``
   (with ``finish_command``, for an agent that ends by running a command, the final
   message also calls the shell tool with it);
3. a request that offers no tools (titles, summaries, quota probes) gets a short text.

Every answer carries fixed token counts (``TURN_USAGE``) and is written to a ledger,
so a test can compare what an agent reported with what it was actually given. A request
whose key is not ``expected_key`` gets a 401, as a real provider would answer.

``failure`` makes it a failing provider (``FAILURES``): every POST gets a 401, a 429 or a
500 with the provider's error body (``FAILURE_MESSAGES``), no answer at all (``hang``:
the request is read and the connection held until the stub stops), or a stream that
starts and then stalls (``stall``). With ``fail_first``,
only that many POSTs fail and the rest are answered as usual (a transient failure); with
``fail_when``, only POSTs whose body holds that text (one task's instruction). An
unreachable provider is a closed port (``closed_port``).

Run it by hand for a manual trial: ``python tests/agents/provider_stub.py --port 8765``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

__all__ = [
    "FAILURES",
    "FAILURE_MESSAGES",
    "FIX_COMMAND",
    "TURN_USAGE",
    "ProviderStub",
    "Usage",
    "closed_port",
]

FAILURES = {"401": 401, "429": 429, "500": 500, "hang": None, "stall": 200}
"""The failure modes: the status every POST gets (None: no answer at all; ``stall``: the
headers of a stream and one event, then nothing)."""
FAILURE_MESSAGES = {
    401: ("authentication_error", "invalid x-api-key"),
    429: ("rate_limit_error", "stub-provider: rate limit exceeded, slow down"),
    500: ("api_error", "stub-provider: internal server error, upstream exploded"),
}


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Usage:
    """One answer's tokens: ``prompt`` includes ``cached`` (the OpenAI convention)."""

    prompt: int
    cached: int
    output: int

    @property
    def uncached(self) -> int:
        return self.prompt - self.cached


TURN_USAGE = {
    "tool_call": Usage(prompt=1200, cached=200, output=40),
    "final": Usage(prompt=1500, cached=1100, output=25),
    "side": Usage(prompt=30, cached=0, output=5),
}

FIX_COMMAND = (
    "cd /app && sed -i 's/, text)$/, text.lower())/' textutils.py && python3 -m unittest 2>&1"
)
"""The fix of the bundled example task ``fix-failing-test``."""

_SHELL_TOOLS = {
    "exec_command": "cmd",  # codex (unified exec)
    "shell_command": "command",  # codex, older
    "bash": "command",  # opencode
    "Bash": "command",  # claude code
    "run_shell_command": "command",  # gemini-cli, qwen-code
}


@dataclass
class Answer:
    api: str
    turn: str
    model: str
    usage: Usage
    path: str


@dataclass
class ProviderStub:
    command: str
    final_text: str = "Fixed: slugify lower-cases before splitting; all tests pass."
    expected_key: str | None = None
    finish_command: str | None = None
    """For agents that end with a tool call (mini-swe-agent): the final answer runs it."""
    failure: str | None = None
    """A key of FAILURES: how every POST fails (None: answer as scripted)."""
    fail_first: int | None = None
    """Only the first this many POSTs fail (None: all of them)."""
    fail_when: str | None = None
    """Only POSTs whose body holds this text fail (None: any)."""
    host: str = "127.0.0.1"
    port: int = 0
    answers: list[Answer] = field(default_factory=list)
    requests: list[dict[str, Any]] = field(default_factory=list)
    keys_seen: set[str] = field(default_factory=set)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stopped: threading.Event = field(default_factory=threading.Event)
    _failed: int = 0

    # --- server -------------------------------------------------------------------------

    def start(self) -> ProviderStub:
        stub = self

        class Handler(_Handler):
            provider = stub

        self.server = ThreadingHTTPServer((self.host, self.port), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()
        return self

    def stop(self) -> None:
        self._stopped.set()  # held (hanging) requests end
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> ProviderStub:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    # --- the ledger ---------------------------------------------------------------------

    def totals(self, *turns: str) -> Usage:
        """The tokens handed out, over the answers of the given turns (all when none)."""
        chosen = [a for a in self.answers if not turns or a.turn in turns]
        return Usage(
            prompt=sum(a.usage.prompt for a in chosen),
            cached=sum(a.usage.cached for a in chosen),
            output=sum(a.usage.output for a in chosen),
        )

    def turns(self) -> list[str]:
        return [a.turn for a in self.answers]

    def next_id(self) -> int:
        with self._lock:
            return next(self._ids)

    def record(self, answer: Answer) -> None:
        with self._lock:
            self.answers.append(answer)

    def failing(self, body: bytes = b"") -> str | None:
        """The failure this POST gets, if any (counted)."""
        if self.failure is None:
            return None
        if self.fail_when is not None and self.fail_when.encode() not in body:
            return None
        with self._lock:
            if self.fail_first is not None and self._failed >= self.fail_first:
                return None
            self._failed += 1
            return self.failure

    @property
    def failed(self) -> int:
        """POSTs that got the failure."""
        with self._lock:
            return self._failed

    def hold(self) -> None:
        """Keep a request unanswered until the stub stops."""
        self._stopped.wait()

    def authorised(self, headers: Any) -> bool:
        offered = [
            value.removeprefix("Bearer ").strip()
            for name in ("authorization", "x-api-key", "api-key", "x-goog-api-key")
            if (value := headers.get(name))
        ]
        with self._lock:
            self.keys_seen.update(offered)
        return self.expected_key is None or self.expected_key in offered


def _turn(tools: list[Any], has_result: bool) -> str:
    if not tools:
        return "side"
    return "final" if has_result else "tool_call"


def _shell_tool(names: list[str]) -> tuple[str, str]:
    for name in names:
        if name in _SHELL_TOOLS:
            return name, _SHELL_TOOLS[name]
    raise LookupError(f"no shell tool among {names}")


class _Handler(BaseHTTPRequestHandler):
    provider: ProviderStub
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass

    # --- plumbing -----------------------------------------------------------------------

    def _json(self, status: int, body: Any) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _start_stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        self.close_connection = True

    def _sse(self, data: Any, event: str | None = None) -> None:
        text = "" if event is None else f"event: {event}\n"
        text += "data: " + (data if isinstance(data, str) else json.dumps(data)) + "\n\n"
        self.wfile.write(text.encode())
        self.wfile.flush()

    def do_GET(self) -> None:
        self.provider.requests.append({"method": "GET", "path": self.path.split("?", 1)[0]})
        if self.headers.get("upgrade", "").lower() == "websocket":
            # No WebSocket here: a plain 404 sends the client to HTTP at once.
            self._json(404, {"error": {"message": "websockets are not served here"}})
        elif self.path.rstrip("/").endswith("/models"):
            self._json(200, {"object": "list", "data": []})
        else:
            self._json(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        length = int(self.headers.get("content-length") or 0)
        raw = self.rfile.read(length)
        try:
            body = json.loads(raw or b"{}")
        except ValueError:
            self._json(400, {"error": {"message": "body is not JSON"}})
            return
        path = self.path.split("?", 1)[0]
        self.provider.requests.append({"method": "POST", "path": path, "body": body})
        if not self.provider.authorised(self.headers):
            message = {"type": "authentication_error", "message": "invalid x-api-key"}
            self._json(401, {"type": "error", "error": message})
            return
        failure = self.provider.failing(raw)
        if failure is not None:
            status = FAILURES[failure]
            if status is None or failure == "stall":
                if failure == "stall":
                    self._start_stream()
                    self._sse({"type": "ping"}, "ping")
                self.provider.hold()
                self.close_connection = True
                return
            kind, text = FAILURE_MESSAGES[status]
            self._json(status, {"type": "error", "error": {"type": kind, "message": text}})
            return
        if path.endswith("/messages/count_tokens"):
            self._json(200, {"input_tokens": 100})
        elif path.endswith("/messages"):
            self._anthropic(body, path)
        elif path.endswith("/responses"):
            self._responses(body, path)
        elif path.endswith("/chat/completions"):
            self._chat(body, path)
        elif path.endswith(":countTokens"):
            self._json(200, {"totalTokens": 100})
        elif path.endswith((":generateContent", ":streamGenerateContent")):
            self._gemini(body, path)
        else:
            self._json(404, {"error": {"message": f"no route {path}"}})

    # --- OpenAI Responses ---------------------------------------------------------------

    def _responses(self, body: dict[str, Any], path: str) -> None:
        items = body.get("input") if isinstance(body.get("input"), list) else []
        has_result = any(
            isinstance(i, dict) and str(i.get("type", "")).endswith("call_output") for i in items
        )
        tools = body.get("tools") or []
        turn = _turn(tools, has_result)
        n = self.provider.next_id()
        usage = TURN_USAGE[turn]
        if turn == "tool_call":
            name, arg = _shell_tool([t.get("name", "") for t in tools if isinstance(t, dict)])
            item: dict[str, Any] = {
                "type": "function_call",
                "id": f"fc_{n}",
                "call_id": f"call_{n}",
                "name": name,
                "arguments": json.dumps({arg: self.provider.command}),
                "status": "completed",
            }
        else:
            text = self.provider.final_text if turn == "final" else "Fix slugify"
            item = {
                "type": "message",
                "id": f"msg_{n}",
                "role": "assistant",
                "status": "completed",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        model = str(body.get("model") or "")
        response = {
            "id": f"resp_{n}",
            "object": "response",
            "created_at": int(time.time()),
            "model": model,
            "status": "completed",
            "output": [item],
            "usage": {
                "input_tokens": usage.prompt,
                "input_tokens_details": {"cached_tokens": usage.cached},
                "output_tokens": usage.output,
                "output_tokens_details": {"reasoning_tokens": 0},
                "total_tokens": usage.prompt + usage.output,
            },
        }
        self.provider.record(Answer("responses", turn, model, usage, path))
        if not body.get("stream"):
            self._json(200, response)
            return
        self._start_stream()
        started = {**response, "status": "in_progress", "output": [], "usage": None}
        self._sse({"type": "response.created", "response": started}, "response.created")
        added = {"type": "response.output_item.added", "output_index": 0, "item": item}
        self._sse(added, "response.output_item.added")
        if item["type"] == "message":
            delta = {
                "type": "response.output_text.delta",
                "item_id": item["id"],
                "output_index": 0,
                "content_index": 0,
                "delta": item["content"][0]["text"],
            }
            self._sse(delta, "response.output_text.delta")
        done = {"type": "response.output_item.done", "output_index": 0, "item": item}
        self._sse(done, "response.output_item.done")
        self._sse({"type": "response.completed", "response": response}, "response.completed")

    # --- OpenAI Chat Completions --------------------------------------------------------

    def _chat(self, body: dict[str, Any], path: str) -> None:
        messages = body.get("messages") or []
        has_result = any(isinstance(m, dict) and m.get("role") == "tool" for m in messages)
        tools = body.get("tools") or []
        turn = _turn(tools, has_result)
        n = self.provider.next_id()
        usage = TURN_USAGE[turn]
        model = str(body.get("model") or "")
        message: dict[str, Any] = {"role": "assistant", "content": None}
        if turn == "tool_call":
            names = [(t.get("function") or {}).get("name", "") for t in tools]
            name, arg = _shell_tool(names)
            message["tool_calls"] = [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": json.dumps({arg: self.provider.command, "description": "fix"}),
                    },
                }
            ]
            finish = "tool_calls"
        elif turn == "final" and self.provider.finish_command:
            names = [(t.get("function") or {}).get("name", "") for t in tools]
            name, arg = _shell_tool(names)
            message["content"] = self.provider.final_text
            message["tool_calls"] = [
                {
                    "id": f"call_{n}",
                    "type": "function",
                    "function": {
                        "name": name,
                        "arguments": json.dumps({arg: self.provider.finish_command}),
                    },
                }
            ]
            finish = "tool_calls"
        else:
            message["content"] = self.provider.final_text if turn == "final" else "Fix slugify"
            finish = "stop"
        usage_body = {
            "prompt_tokens": usage.prompt,
            "completion_tokens": usage.output,
            "total_tokens": usage.prompt + usage.output,
            "prompt_tokens_details": {"cached_tokens": usage.cached},
        }
        self.provider.record(Answer("chat", turn, model, usage, path))
        base = {"id": f"chatcmpl-{n}", "created": int(time.time()), "model": model}
        if not body.get("stream"):
            choice = {"index": 0, "message": message, "finish_reason": finish}
            self._json(
                200,
                {**base, "object": "chat.completion", "choices": [choice], "usage": usage_body},
            )
            return
        self._start_stream()

        def chunk(delta: dict[str, Any], reason: str | None = None) -> None:
            choice = {"index": 0, "delta": delta, "finish_reason": reason}
            self._sse({**base, "object": "chat.completion.chunk", "choices": [choice]})

        chunk({"role": "assistant", "content": ""})
        if message.get("content"):
            chunk({"content": message["content"]})
        if message.get("tool_calls"):
            call = message["tool_calls"][0]
            chunk({"tool_calls": [{"index": 0, **call}]})
        chunk({}, finish)
        self._sse({**base, "object": "chat.completion.chunk", "choices": [], "usage": usage_body})
        self._sse("[DONE]")

    # --- Gemini generateContent / streamGenerateContent -------------------------------

    def _gemini(self, body: dict[str, Any], path: str) -> None:
        contents = [c for c in body.get("contents") or [] if isinstance(c, dict)]
        has_result = any(
            isinstance(part, dict) and "functionResponse" in part
            for content in contents
            for part in content.get("parts") or []
        )
        declarations = [
            d
            for tool in body.get("tools") or []
            if isinstance(tool, dict)
            for d in tool.get("functionDeclarations") or []
            if isinstance(d, dict)
        ]
        turn = _turn(declarations, has_result)
        n = self.provider.next_id()
        usage = TURN_USAGE[turn]
        # The model is in the path: /v1beta/models/<model>:generateContent
        model = path.rsplit("/", 1)[-1].split(":", 1)[0]
        part: dict[str, Any]
        if turn == "tool_call":
            name, arg = _shell_tool([str(d.get("name", "")) for d in declarations])
            args = {arg: self.provider.command, "description": "fix"}
            part = {"functionCall": {"id": f"call_{n}", "name": name, "args": args}}
        else:
            part = {"text": self.provider.final_text if turn == "final" else "Fix slugify"}
        response = {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [part]},
                    "finishReason": "STOP",
                    "index": 0,
                }
            ],
            "usageMetadata": {
                "promptTokenCount": usage.prompt,
                "cachedContentTokenCount": usage.cached,
                "candidatesTokenCount": usage.output,
                "totalTokenCount": usage.prompt + usage.output,
            },
            "modelVersion": model,
            "responseId": f"resp_{n}",
        }
        self.provider.record(Answer("gemini", turn, model, usage, path))
        if not path.endswith(":streamGenerateContent"):
            self._json(200, response)
            return
        self._start_stream()
        if "text" not in part:
            self._sse(response)
            return
        # As Gemini streams: the text in pieces, each chunk with the counts so far (the
        # prompt's at first), the finish reason and the whole count with the last one.
        text = part["text"]
        head = {"content": {"role": "model", "parts": [{"text": text[:5]}]}, "index": 0}
        metadata = {"promptTokenCount": usage.prompt, "totalTokenCount": usage.prompt}
        self._sse(
            {**response, "candidates": [head], "usageMetadata": metadata},
        )
        tail = {
            **response["candidates"][0],
            "content": {"role": "model", "parts": [{"text": text[5:]}]},
        }
        self._sse({**response, "candidates": [tail]})

    # --- Anthropic Messages -------------------------------------------------------------

    def _anthropic(self, body: dict[str, Any], path: str) -> None:
        has_result = any(
            isinstance(m, dict)
            and isinstance(m.get("content"), list)
            and any(isinstance(b, dict) and b.get("type") == "tool_result" for b in m["content"])
            for m in body.get("messages") or []
        )
        tools = body.get("tools") or []
        turn = _turn(tools, has_result)
        n = self.provider.next_id()
        usage = TURN_USAGE[turn]
        model = str(body.get("model") or "")
        if turn == "tool_call":
            name, arg = _shell_tool([t.get("name", "") for t in tools if isinstance(t, dict)])
            block: dict[str, Any] = {
                "type": "tool_use",
                "id": f"toolu_{n:04d}",
                "name": name,
                "input": {arg: self.provider.command, "description": "Fix slugify"},
            }
            stop = "tool_use"
        else:
            text = self.provider.final_text if turn == "final" else "Fix slugify"
            block = {"type": "text", "text": text}
            stop = "end_turn"
        usage_body = {
            "input_tokens": usage.uncached,
            "cache_creation_input_tokens": 0,
            "cache_read_input_tokens": usage.cached,
            "output_tokens": usage.output,
        }
        message = {
            "id": f"msg_{n:04d}",
            "type": "message",
            "role": "assistant",
            "model": model,
            "content": [block],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": usage_body,
        }
        self.provider.record(Answer("anthropic", turn, model, usage, path))
        if not body.get("stream"):
            self._json(200, message)
            return
        self._start_stream()
        started = {**message, "content": [], "stop_reason": None, "usage": {**usage_body}}
        started["usage"]["output_tokens"] = 1
        self._sse({"type": "message_start", "message": started}, "message_start")
        if block["type"] == "tool_use":
            empty = {**block, "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        else:
            empty = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        start = {"type": "content_block_start", "index": 0, "content_block": empty}
        self._sse(start, "content_block_start")
        self._sse(
            {"type": "content_block_delta", "index": 0, "delta": delta}, "content_block_delta"
        )
        self._sse({"type": "content_block_stop", "index": 0}, "content_block_stop")
        final = {
            "type": "message_delta",
            "delta": {"stop_reason": stop, "stop_sequence": None},
            "usage": {"output_tokens": usage.output},
        }
        self._sse(final, "message_delta")
        self._sse({"type": "message_stop"}, "message_stop")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--key", default=None, help="the only key accepted (default: any)")
    parser.add_argument(
        "--command",
        default=FIX_COMMAND,
        help="the shell command of the scripted tool call",
    )
    args = parser.parse_args()
    stub = ProviderStub(command=args.command, expected_key=args.key, port=args.port).start()
    print(f"provider stub on {stub.url} (Ctrl-C to stop)", flush=True)
    try:
        stub.thread.join()
    except KeyboardInterrupt:
        stub.stop()


if __name__ == "__main__":
    main()
