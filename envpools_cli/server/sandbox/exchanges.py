"""The LLM exchanges of a rollout, as its egress gateway saw them: ``llm/exchanges.jsonl``.

The gateway (``egress.py``) tells an ``ExchangeLog`` about every call it forwards: the
request body when it leaves, the status and each chunk of the response as they come
back, and the end. One JSON line per call is written when the call ends, in the order the
calls began::

    {"index", "provider", "method", "path", "api", "model", "started_at", "latency_ms",
     "status", "streamed", "request", "response", "usage", "error"}

``request`` is the body the agent sent (messages, tools, sampling parameters) as JSON;
``response`` is what came back, a streamed response reassembled into the one document
the provider would have returned without streaming (Anthropic Messages, OpenAI Responses
and Chat Completions, Gemini's ``generateContent``; other streams keep their events);
``usage`` is the provider's own token count in one shape (``prompt_tokens`` including
``cached_tokens``, and ``completion_tokens``, which counts a model's reasoning tokens:
they are billed as output). Headers are not kept, and every credential value the rollout
could hold (the provider key, the gateway's placeholder, the organisation's stored
credentials) is replaced by ``[REDACTED]`` before anything is parsed or written.

Bodies are bounded (``BODY_LIMIT`` each, the file ``FILE_LIMIT``): past them a line keeps
its figures and says what it left out. ``describe`` reads a line back: the response's id,
text and tool calls, the tools offered, the system prompt; the trajectory links its steps
to exchanges with it.
"""

from __future__ import annotations

import json
import os
import threading
import time
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from envpools_cli.redaction import REDACTED, secret_forms

__all__ = [
    "EXCHANGES_FILE",
    "Exchange",
    "ExchangeLog",
    "ExchangeView",
    "describe",
    "read_exchanges",
]

EXCHANGES_FILE = "llm/exchanges.jsonl"
"""Where a rollout's exchanges are, relative to its trial folder (an artifact path)."""
BODY_LIMIT = 8 * 1024 * 1024
FILE_LIMIT = 256 * 1024 * 1024
_HEAD = 64 * 1024
_MIN_SECRET = 6


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _api(path: str) -> str:
    path = path.split("?", 1)[0].rstrip("/")
    if path.endswith("/messages"):
        return "anthropic-messages"
    if path.endswith("/responses"):
        return "openai-responses"
    if path.endswith("/chat/completions"):
        return "openai-chat"
    if path.endswith((":generateContent", ":streamGenerateContent")):
        return "gemini"
    return "other"


def _path_model(path: str) -> str | None:
    """The model a Gemini call names in its path: ``.../models/<model>:generateContent``."""
    _, found, tail = path.split("?", 1)[0].rpartition("/models/")
    return (tail.split(":", 1)[0] or None) if found else None


class _Scrub:
    """Replaces secret values in bytes: as written, and as JSON, Python or URLs escape them."""

    def __init__(self, secrets: Iterable[str]) -> None:
        forms = {
            form.encode("utf-8", "surrogateescape")
            for secret in secrets
            if len(secret) >= _MIN_SECRET
            for form in secret_forms(secret)
            if len(form) >= _MIN_SECRET
        }
        self.forms = sorted(forms, key=len, reverse=True)  # longest first: none half-replaced

    def __call__(self, data: bytes) -> bytes:
        for form in self.forms:
            if form in data:
                data = data.replace(form, REDACTED.encode())
        return data


class _Body:
    """Bytes kept up to ``BODY_LIMIT``; past it, the count of what was not kept."""

    def __init__(self) -> None:
        self.parts: list[bytes] = []
        self.size = 0
        self.dropped = 0

    def add(self, data: bytes) -> None:
        room = BODY_LIMIT - self.size
        if room > 0:
            self.parts.append(data[:room])
            self.size += min(len(data), room)
        self.dropped += max(0, len(data) - max(room, 0))

    def value(self) -> bytes:
        return b"".join(self.parts)


def _decoded(data: bytes, encoding: str) -> tuple[bytes, str | None]:
    """The body without its content encoding (gzip, deflate), or why it stays encoded."""
    encoding = encoding.strip().lower()
    if encoding in ("", "identity"):
        return data, None
    if encoding in ("gzip", "x-gzip", "deflate"):
        try:
            wbits = 47 if encoding != "deflate" else 15
            return zlib.decompressobj(wbits).decompress(data, BODY_LIMIT), None
        except zlib.error as exc:
            return b"", f"{encoding} body could not be decoded: {exc}"
    return b"", f"{encoding}-encoded body not decoded"


def _json_or_text(data: bytes) -> Any:
    text = data.decode("utf-8", "replace")
    try:
        return json.loads(text)
    except ValueError:
        return {"text": text[:_HEAD]} if len(text) > _HEAD else {"text": text}


def _sse_events(data: bytes) -> Iterator[Any]:
    """The data of each server-sent event, as JSON where it is JSON."""
    text = data.decode("utf-8", "replace").replace("\r\n", "\n")
    for block in text.split("\n\n"):
        lines = [line[5:].lstrip(" ") for line in block.split("\n") if line.startswith("data:")]
        if not lines:
            continue
        payload = "\n".join(lines)
        if payload == "[DONE]":
            continue
        try:
            yield json.loads(payload)
        except ValueError:
            yield payload


def _anthropic_stream(events: list[Any]) -> dict[str, Any] | None:
    message: dict[str, Any] | None = None
    blocks: dict[int, dict[str, Any]] = {}
    partial: dict[int, str] = {}
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = event.get("type")
        if kind == "message_start" and isinstance(event.get("message"), dict):
            message = dict(event["message"])
        elif kind == "content_block_start" and isinstance(event.get("content_block"), dict):
            blocks[int(event.get("index") or 0)] = dict(event["content_block"])
        elif kind == "content_block_delta" and isinstance(event.get("delta"), dict):
            index, delta = int(event.get("index") or 0), event["delta"]
            block = blocks.setdefault(index, {"type": "text", "text": ""})
            if delta.get("type") == "text_delta":
                block["text"] = str(block.get("text") or "") + str(delta.get("text") or "")
            elif delta.get("type") == "thinking_delta":
                block["thinking"] = str(block.get("thinking") or "") + str(
                    delta.get("thinking") or ""
                )
            elif delta.get("type") == "input_json_delta":
                partial[index] = partial.get(index, "") + str(delta.get("partial_json") or "")
        elif kind == "message_delta" and message is not None:
            message.update(event.get("delta") or {})
            if isinstance(event.get("usage"), dict):
                # The final usage: output tokens so far, and input counts when resent.
                message["usage"] = {**(message.get("usage") or {}), **event["usage"]}
    if message is None:
        return None
    for index, text in partial.items():
        try:
            blocks[index]["input"] = json.loads(text) if text else {}
        except ValueError:
            blocks[index]["input"] = {"partial_json": text}
    message["content"] = [blocks[i] for i in sorted(blocks)]
    return message


def _responses_stream(events: list[Any]) -> dict[str, Any] | None:
    final: dict[str, Any] | None = None
    items: dict[int, Any] = {}
    for event in events:
        if not isinstance(event, dict):
            continue
        kind = str(event.get("type") or "")
        if kind in ("response.completed", "response.failed", "response.incomplete"):
            final = event.get("response") if isinstance(event.get("response"), dict) else final
        elif kind in ("response.created", "response.in_progress") and final is None:
            started = event.get("response")
            final = dict(started) if isinstance(started, dict) else final
        elif kind == "response.output_item.done":
            items[int(event.get("output_index") or 0)] = event.get("item")
    if final is None:
        return None
    if not final.get("output") and items:
        final = {**final, "output": [items[i] for i in sorted(items)]}
    return final


def _chat_stream(events: list[Any]) -> dict[str, Any] | None:
    base: dict[str, Any] | None = None
    content: dict[int, str] = {}
    calls: dict[int, dict[int, dict[str, Any]]] = {}
    finish: dict[int, Any] = {}
    usage = None
    for event in events:
        if not isinstance(event, dict) or event.get("object") != "chat.completion.chunk":
            continue
        if base is None:
            base = {k: event.get(k) for k in ("id", "created", "model")}
        if isinstance(event.get("usage"), dict):
            usage = event["usage"]
        for choice in event.get("choices") or []:
            if not isinstance(choice, dict):
                continue
            index = int(choice.get("index") or 0)
            delta = _dict(choice.get("delta"))
            if delta.get("content"):
                content[index] = content.get(index, "") + str(delta["content"])
            for call in delta.get("tool_calls") or []:
                slot = calls.setdefault(index, {}).setdefault(
                    int(call.get("index") or 0),
                    {"id": None, "type": "function", "function": {"name": "", "arguments": ""}},
                )
                slot["id"] = call.get("id") or slot["id"]
                function = call.get("function") or {}
                slot["function"]["name"] += str(function.get("name") or "")
                slot["function"]["arguments"] += str(function.get("arguments") or "")
            if choice.get("finish_reason"):
                finish[index] = choice["finish_reason"]
    if base is None:
        return None
    choices = []
    for index in sorted(set(content) | set(calls) | set(finish) or {0}):
        message: dict[str, Any] = {"role": "assistant", "content": content.get(index)}
        if calls.get(index):
            message["tool_calls"] = [calls[index][i] for i in sorted(calls[index])]
        choices.append({"index": index, "message": message, "finish_reason": finish.get(index)})
    return {**base, "object": "chat.completion", "choices": choices, "usage": usage}


def _gemini_stream(events: list[Any]) -> dict[str, Any] | None:
    """Gemini's chunks as one ``GenerateContentResponse``.

    Each chunk carries the next parts of each candidate: consecutive text parts of the same
    kind (answer or thought) are one text; a function call comes whole. The usage of the
    last chunk that has one is the call's (each chunk's counts are the totals so far).
    """
    chunks = [e for e in events if isinstance(e, dict)]
    if not chunks:
        return None
    whole: dict[str, Any] = {}
    candidates: dict[int, dict[str, Any]] = {}
    for chunk in chunks:
        for key, value in chunk.items():
            if key != "candidates" and value is not None:
                whole[key] = value  # usageMetadata, modelVersion, responseId: the latest
        for candidate in _list(chunk.get("candidates")):
            if not isinstance(candidate, dict):
                continue
            index = _int(candidate.get("index"))
            into = candidates.setdefault(index, {"content": {"role": "model", "parts": []}})
            for key, value in candidate.items():
                if key != "content" and value is not None:
                    into[key] = value
            content = _dict(candidate.get("content"))
            parts: list[dict[str, Any]] = into["content"]["parts"]
            for part in _list(content.get("parts")):
                if not isinstance(part, dict):
                    continue
                last = parts[-1] if parts else None
                joins = (
                    last is not None
                    and isinstance(part.get("text"), str)
                    and isinstance(last.get("text"), str)
                    and bool(part.get("thought")) == bool(last.get("thought"))
                    and not (set(part) | set(last)) - {"text", "thought", "thoughtSignature"}
                )
                if joins and last is not None:
                    last["text"] += part["text"]
                    if part.get("thoughtSignature"):
                        last["thoughtSignature"] = part["thoughtSignature"]
                else:
                    parts.append(dict(part))
    whole["candidates"] = [candidates[i] for i in sorted(candidates)]
    return whole


def _reassemble(api: str, data: bytes) -> Any:
    events = list(_sse_events(data))
    assemble = {
        "anthropic-messages": _anthropic_stream,
        "openai-responses": _responses_stream,
        "openai-chat": _chat_stream,
        "gemini": _gemini_stream,
    }.get(api)
    whole = assemble(events) if assemble else None
    if whole is not None:
        return whole
    return {"events": events[:1000], "events_not_kept": max(0, len(events) - 1000)}


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _int(value: Any) -> int:
    return int(value) if isinstance(value, int | float) and not isinstance(value, bool) else 0


def usage_of(api: str, response: Any) -> dict[str, int] | None:
    """The provider's token count in one shape, or None when the response has none."""
    if api == "gemini" and isinstance(response, dict):
        metadata = response.get("usageMetadata")
        if not isinstance(metadata, dict):
            return None
        # promptTokenCount includes the cached part; tool-use prompts and thoughts are
        # counted apart, and billed as input and output.
        return {
            "prompt_tokens": _int(metadata.get("promptTokenCount"))
            + _int(metadata.get("toolUsePromptTokenCount")),
            "completion_tokens": _int(metadata.get("candidatesTokenCount"))
            + _int(metadata.get("thoughtsTokenCount")),
            "cached_tokens": _int(metadata.get("cachedContentTokenCount")),
        }
    if not isinstance(response, dict) or not isinstance(response.get("usage"), dict):
        return None
    usage = response["usage"]
    if api == "anthropic-messages" or "cache_read_input_tokens" in usage:
        cached = _int(usage.get("cache_read_input_tokens"))
        created = _int(usage.get("cache_creation_input_tokens"))
        prompt = _int(usage.get("input_tokens")) + cached + created
        return {
            "prompt_tokens": prompt,
            "completion_tokens": _int(usage.get("output_tokens")),
            "cached_tokens": cached,
        }
    if "input_tokens" in usage:  # OpenAI Responses: input includes the cached part
        details = usage.get("input_tokens_details") or {}
        return {
            "prompt_tokens": _int(usage.get("input_tokens")),
            "completion_tokens": _int(usage.get("output_tokens")),
            "cached_tokens": _int(details.get("cached_tokens") if isinstance(details, dict) else 0),
        }
    details = usage.get("prompt_tokens_details") or {}
    return {
        "prompt_tokens": _int(usage.get("prompt_tokens")),
        "completion_tokens": _int(usage.get("completion_tokens")),
        "cached_tokens": _int(details.get("cached_tokens") if isinstance(details, dict) else 0),
    }


class Exchange:
    """One call through the gateway, told what happens to it by the proxy."""

    def __init__(self, log: ExchangeLog, index: int, provider: str, method: str, path: str) -> None:
        self.log = log
        self.index = index
        self.provider = provider
        self.method = method
        self.path = "/" + path.lstrip("/")
        self.started_at = _now()
        self.started = time.monotonic()
        self.request = _Body()
        self.status: int | None = None
        self.content_type = ""
        self.encoding = ""
        self.body = _Body()
        self.ended = False

    def response(self, status: int, headers: Iterable[tuple[bytes, bytes]]) -> None:
        self.status = status
        for name, value in headers:
            lower = name.lower()
            if lower == b"content-type":
                self.content_type = value.decode("latin-1").lower()
            elif lower == b"content-encoding":
                self.encoding = value.decode("latin-1")

    def sent(self, data: bytes) -> None:
        """A piece of the request body, as it streams out."""
        if self.log.path is not None:
            self.request.add(data)

    def chunk(self, data: bytes) -> None:
        if self.log.path is not None:
            self.body.add(data)

    def end(self, error: str | None = None) -> None:
        if self.ended or self.log.path is None:
            self.ended = True
            return
        self.ended = True
        try:
            self.log.write(self._line(error))
        except Exception as exc:  # a record lost must never break the agent's call
            self.log.problems.append(f"exchange {self.index}: {type(exc).__name__}: {exc}")

    def _line(self, error: str | None) -> dict[str, Any]:
        scrub = self.log.scrub
        api = _api(self.path)
        line: dict[str, Any] = {
            "index": self.index,
            "provider": self.provider,
            "method": self.method,
            "path": self.path,
            "api": api,
            "model": None,
            "started_at": self.started_at,
            "latency_ms": round((time.monotonic() - self.started) * 1000, 1),
            "status": self.status,
            "streamed": "text/event-stream" in self.content_type,
            "request": None,
            "response": None,
            "usage": None,
            "error": error,
        }
        if self.request.dropped:
            line["request"] = {"not_kept": f"{self.request.size + self.request.dropped:,} bytes"}
        elif self.request.size:
            line["request"] = _json_or_text(scrub(self.request.value()))
        raw, problem = _decoded(self.body.value(), self.encoding)
        raw = scrub(raw)
        if problem:
            line["response"] = {"not_decoded": problem}
        elif self.body.dropped:
            line["response"] = {
                "not_kept": f"{self.body.size + self.body.dropped:,} bytes",
                "head": raw[:_HEAD].decode("utf-8", "replace"),
            }
        elif raw:
            line["response"] = _reassemble(api, raw) if line["streamed"] else _json_or_text(raw)
            if api == "gemini" and isinstance(line["response"], list):
                # streamGenerateContent without ?alt=sse: the chunks as one JSON array.
                line["response"] = _gemini_stream(line["response"]) or line["response"]
        line["usage"] = usage_of(api, line["response"])
        for part in (line["response"], line["request"]):
            if not isinstance(part, dict):
                continue
            model = part.get("model") or (part.get("modelVersion") if api == "gemini" else None)
            if isinstance(model, str) and model:
                line["model"] = model
                break
        if line["model"] is None and api == "gemini":
            line["model"] = _path_model(self.path)
        return line


class ExchangeLog:
    """Where a gateway records the calls it forwards (``None`` path: nothing is kept)."""

    def __init__(self, path: Path | None, secrets: Iterable[str] = ()) -> None:
        self.path = path
        self.secrets = list(secrets)
        self.scrub = _Scrub(self.secrets)
        self.problems: list[str] = []
        self.written = 0
        self.count = 0
        self._next = 0
        self._lock = threading.Lock()

    def add_secrets(self, *secrets: str) -> None:
        """More values to scrub (the gateway's placeholder, known once it is open)."""
        self.scrub = _Scrub([*self.secrets, *secrets])
        self.secrets = [*self.secrets, *secrets]

    def begin(self, provider: str, method: str, path: str) -> Exchange:
        """A call starts; its request body follows with ``Exchange.sent``."""
        with self._lock:
            index, self._next = self._next, self._next + 1
        return Exchange(self, index, provider, method, path)

    def write(self, line: dict[str, Any]) -> None:
        if self.path is None:
            return
        text = json.dumps(line, ensure_ascii=False, separators=(",", ":"))
        if self.written + len(text) > FILE_LIMIT:
            kept = {k: v for k, v in line.items() if k not in ("request", "response")}
            text = json.dumps({**kept, "bodies_not_kept": "llm/exchanges.jsonl is full"})
        # Once more on the line as written: a credential the provider streamed in pieces
        # is whole only in the reassembled answer.
        data = self.scrub((text + "\n").encode("utf-8", "surrogateescape"))
        with self._lock:
            # O_APPEND, no link followed: the folder is the backend's, never the sandbox's.
            flags = os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC
            fd = os.open(self.path, flags, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            self.written += len(data)
            self.count += 1


# --- reading it back ----------------------------------------------------------------------


@dataclass
class ExchangeView:
    """One recorded exchange, with what the trajectory needs of it."""

    index: int
    status: int | None
    model: str | None
    started_at: str | None
    usage: dict[str, int] | None
    response_id: str | None = None
    text: str = ""
    tool_calls: list[dict[str, Any]] = field(default_factory=list)
    """``{"id", "name", "arguments"}`` of each call the model made."""
    tools: list[dict[str, Any]] = field(default_factory=list)
    """The tools offered, as OpenAI function definitions."""
    system: str | None = None

    @property
    def answered(self) -> bool:
        return self.status is not None and 200 <= self.status < 300 and self.usage is not None


def _texts(blocks: Any, *kinds: str) -> list[str]:
    if isinstance(blocks, str):
        return [blocks]
    return [
        str(block.get("text") or "")
        for block in (blocks if isinstance(blocks, list) else [])
        if isinstance(block, dict) and block.get("type") in kinds
    ]


def _function(name: Any, description: Any, parameters: Any) -> dict[str, Any]:
    function: dict[str, Any] = {"name": str(name or "")}
    if description:
        function["description"] = str(description)
    if isinstance(parameters, dict):
        function["parameters"] = parameters
    return {"type": "function", "function": function}


def describe(line: dict[str, Any]) -> ExchangeView:
    """The parts of one ``exchanges.jsonl`` line a trajectory links to."""
    api = line.get("api")
    request = _dict(line.get("request"))
    response = _dict(line.get("response"))
    usage = line.get("usage") if isinstance(line.get("usage"), dict) else None
    view = ExchangeView(
        index=_int(line.get("index")),
        status=line.get("status") if isinstance(line.get("status"), int) else None,
        model=line.get("model") if isinstance(line.get("model"), str) else None,
        started_at=line.get("started_at") if isinstance(line.get("started_at"), str) else None,
        usage={k: _int(v) for k, v in usage.items()} if usage else None,
        response_id=str(response.get("id")) if response.get("id") else None,
    )
    tools = _list(request.get("tools"))
    tools = [t for t in tools if isinstance(t, dict)]
    if api == "anthropic-messages":
        view.system = "\n".join(_texts(request.get("system"), "text")) or None
        view.tools = [
            _function(t.get("name"), t.get("description"), t.get("input_schema"))
            for t in tools
            if t.get("name")
        ]
        view.text = "\n".join(_texts(response.get("content"), "text"))
        view.tool_calls = [
            {"id": b.get("id"), "name": b.get("name"), "arguments": b.get("input")}
            for b in response.get("content") or []
            if isinstance(b, dict) and b.get("type") == "tool_use"
        ]
    elif api == "openai-responses":
        system = [str(request.get("instructions") or "")]
        for item in _list(request.get("input")):
            if not isinstance(item, dict) or item.get("role") not in ("system", "developer"):
                break
            system += _texts(item.get("content"), "input_text", "text")
        view.system = "\n\n".join(s for s in system if s) or None
        view.tools = [
            _function(t.get("name"), t.get("description"), t.get("parameters"))
            for t in tools
            if t.get("type") == "function" and t.get("name")
        ]
        output = _list(response.get("output"))
        view.text = "\n".join(
            text
            for item in output
            if isinstance(item, dict) and item.get("type") == "message"
            for text in _texts(item.get("content"), "output_text", "text")
        )
        view.tool_calls = [
            {
                "id": i.get("call_id") or i.get("id"),
                "name": i.get("name"),
                "arguments": i.get("arguments"),
            }
            for i in output
            if isinstance(i, dict) and i.get("type") == "function_call"
        ]
    elif api == "openai-chat":
        messages = _list(request.get("messages"))
        system = []
        for message in messages:
            if not isinstance(message, dict) or message.get("role") not in ("system", "developer"):
                break
            system += _texts(message.get("content"), "text")
        view.system = "\n\n".join(s for s in system if s) or None
        view.tools = [t for t in tools if t.get("type") == "function"]
        choices = _list(response.get("choices"))
        first = choices[0] if choices and isinstance(choices[0], dict) else {}
        message = _dict(first.get("message"))
        view.text = str(message.get("content") or "")
        view.tool_calls = [
            {
                "id": c.get("id"),
                "name": (c.get("function") or {}).get("name"),
                "arguments": (c.get("function") or {}).get("arguments"),
            }
            for c in message.get("tool_calls") or []
            if isinstance(c, dict)
        ]
    elif api == "gemini":
        _describe_gemini(view, request, response)
    return view


def _describe_gemini(view: ExchangeView, request: dict[str, Any], response: dict[str, Any]) -> None:
    view.response_id = str(response.get("responseId")) if response.get("responseId") else None
    instruction = _dict(request.get("systemInstruction"))
    view.system = (
        "\n".join(str(p.get("text")) for p in _list(instruction.get("parts")) if _text_part(p))
        or None
    )
    view.tools = [
        _function(
            d.get("name"),
            d.get("description"),
            d.get("parametersJsonSchema") or d.get("parameters"),
        )
        for tool in _list(request.get("tools"))
        if isinstance(tool, dict)
        for d in _list(tool.get("functionDeclarations"))
        if isinstance(d, dict) and d.get("name")
    ]
    candidates = _list(response.get("candidates"))
    first = candidates[0] if candidates and isinstance(candidates[0], dict) else {}
    parts = _list(_dict(first.get("content")).get("parts"))
    view.text = "".join(str(p["text"]) for p in parts if _text_part(p) and not p.get("thought"))
    view.tool_calls = [
        {"id": call.get("id"), "name": call.get("name"), "arguments": call.get("args")}
        for part in parts
        if isinstance(part, dict)
        for call in [_dict(part.get("functionCall"))]
        if call
    ]


def _text_part(part: Any) -> bool:
    return isinstance(part, dict) and isinstance(part.get("text"), str)


def read_exchanges(path: Path) -> list[ExchangeView]:
    """The exchanges recorded in ``path`` (none when there is no file); bad lines skipped."""
    views: list[ExchangeView] = []
    try:
        handle = path.open("rb")
    except OSError:
        return views
    with handle:
        for raw in handle:
            try:
                line = json.loads(raw)
            except ValueError:
                continue
            if isinstance(line, dict):
                views.append(describe(line))
    return views
