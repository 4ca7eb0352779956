"""Fake OpenAI-compatible upstreams that run inside the test process, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from typing import Any

import attrs
import orjson
from aiohttp import web


def chat_completion(text: str = "Hello from upstream", model: str = "gpt-test", **extra: Any) -> dict[str, Any]:
    return {
        "id": "chatcmpl-upstream",
        "object": "chat.completion",
        "created": 1700000000,
        "model": model,
        "choices": [{"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}],
        "usage": {"prompt_tokens": 11, "completion_tokens": 7, "total_tokens": 18},
        **extra,
    }


def response_object(text: str = "Hello from upstream", model: str = "gpt-test") -> dict[str, Any]:
    return {
        "id": "resp_upstream",
        "object": "response",
        "created_at": 1700000000,
        "status": "completed",
        "model": model,
        "output": [
            {
                "type": "message",
                "id": "msg_1",
                "status": "completed",
                "role": "assistant",
                "content": [{"type": "output_text", "text": text, "annotations": []}],
            }
        ],
        "parallel_tool_calls": True,
        "tool_choice": "auto",
        "tools": [],
        "usage": {
            "input_tokens": 11,
            "output_tokens": 7,
            "total_tokens": 18,
            "input_tokens_details": {"cached_tokens": 0},
            "output_tokens_details": {"reasoning_tokens": 0},
        },
    }


def chat_chunks(pieces: list[str], model: str = "gpt-test") -> list[bytes]:
    base = {"id": "chatcmpl-up", "object": "chat.completion.chunk", "created": 1700000000, "model": model}
    out = [{**base, "choices": [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]}]
    out += [{**base, "choices": [{"index": 0, "delta": {"content": p}, "finish_reason": None}]} for p in pieces]
    out.append({**base, "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}]})
    out.append(
        {
            **base,
            "choices": [],
            "usage": {"prompt_tokens": 5, "completion_tokens": len(pieces), "total_tokens": 5 + len(pieces)},
        }
    )
    return [b"data: " + orjson.dumps(e) + b"\n\n" for e in out] + [b"data: [DONE]\n\n"]


def responses_chunks(pieces: list[str], model: str = "gpt-test") -> list[bytes]:
    final = response_object("".join(pieces), model)
    events = [{"type": "response.created", "response": {**final, "status": "in_progress", "output": []}}]
    events += [
        {"type": "response.output_text.delta", "item_id": "msg_1", "output_index": 0, "content_index": 0, "delta": p}
        for p in pieces
    ]
    events.append({"type": "response.completed", "response": final})
    return [
        b"event: " + e["type"].encode() + b"\ndata: " + orjson.dumps({**e, "sequence_number": i}) + b"\n\n"
        for i, e in enumerate(events)
    ]


Handler = Callable[[web.Request, dict[str, Any]], Awaitable[web.StreamResponse]]

# The request fields each real API knows (OpenAI's and Anthropic's API references, Nov 2026):
# anything else is refused with the 400 the real API sends, so a translation that leaks a
# field of another dialect fails here as it would in production.
CHAT_FIELDS = frozenset(
    {
        "model", "messages", "audio", "frequency_penalty", "function_call", "functions", "logit_bias", "logprobs",
        "max_completion_tokens", "max_tokens", "metadata", "modalities", "n", "parallel_tool_calls", "prediction",
        "presence_penalty", "prompt_cache_key", "prompt_cache_retention", "reasoning_effort", "response_format",
        "safety_identifier", "seed", "service_tier", "stop", "store", "stream", "stream_options", "temperature",
        "tool_choice", "tools", "top_logprobs", "top_p", "user", "verbosity", "web_search_options",
    }
)  # fmt: skip
CHAT_MESSAGE_KEYS = frozenset(
    {"role", "content", "name", "tool_calls", "tool_call_id", "refusal", "audio", "function_call"}
)
RESPONSES_FIELDS = frozenset(
    {
        "model", "input", "background", "conversation", "include", "instructions", "max_output_tokens",
        "max_tool_calls", "metadata", "parallel_tool_calls", "previous_response_id", "prompt", "prompt_cache_key",
        "prompt_cache_retention", "reasoning", "safety_identifier", "service_tier", "store", "stream",
        "stream_options", "temperature", "text", "tool_choice", "tools", "top_logprobs", "top_p", "truncation", "user",
    }
)  # fmt: skip
MESSAGES_FIELDS = frozenset(
    {
        "model", "messages", "max_tokens", "container", "context_management", "mcp_servers", "metadata", "output_config",
        "service_tier", "stop_sequences", "stream", "system", "temperature", "thinking", "tool_choice", "tools",
        "top_k", "top_p",
    }
)  # fmt: skip


def refusal(path: str, body: dict[str, Any]) -> web.Response | None:
    """The real API's 400 for a field it does not know, or None when the body is acceptable."""
    if path.endswith("/chat/completions"):
        unknown = [k for k in body if k not in CHAT_FIELDS]
        if unknown:
            return openai_400(f"Unrecognized request argument supplied: {unknown[0]}")
        for i, message in enumerate(body.get("messages") or ()):
            extra = [k for k in message if k not in CHAT_MESSAGE_KEYS] if isinstance(message, dict) else []
            if extra:
                return openai_400(
                    f"Additional properties are not allowed ('{extra[0]}' was unexpected) - 'messages.{i}'"
                )
    elif path.endswith("/responses"):
        unknown = [k for k in body if k not in RESPONSES_FIELDS]
        if unknown:
            return openai_400(f"Unknown parameter: '{unknown[0]}'.", param=unknown[0])
    elif path.endswith("/messages"):
        unknown = [k for k in body if k not in MESSAGES_FIELDS]
        if unknown:
            error = {"type": "invalid_request_error", "message": f"{unknown[0]}: Extra inputs are not permitted"}
            return web.json_response({"type": "error", "error": error}, status=400)
        if not isinstance(body.get("max_tokens"), int):
            error = {"type": "invalid_request_error", "message": "max_tokens: Field required"}
            return web.json_response({"type": "error", "error": error}, status=400)
    return None


def openai_400(message: str, param: str | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": param, "code": None}
    return web.json_response({"error": error}, status=400)


@attrs.define
class Seen:
    path: str
    headers: dict[str, str]
    json: dict[str, Any]


@attrs.define
class FakeUpstream:
    """Answers like OpenAI by default; ``handler`` can be swapped per test to fail on cue."""

    requests: list[Seen] = attrs.field(factory=list)
    handler: Handler | None = None
    text: str = "Hello from upstream"
    stream_pieces: list[str] = attrs.field(factory=lambda: ["Hel", "lo", " from", " upstream"])
    disconnected: asyncio.Event = attrs.field(factory=asyncio.Event)
    url: str = ""
    strict: bool = True  # refuse unknown fields like the real APIs do

    @property
    def last(self) -> Seen:
        return self.requests[-1]

    async def __call__(self, request: web.Request) -> web.StreamResponse:
        body = orjson.loads(await request.read())
        self.requests.append(Seen(request.path, dict(request.headers), body))
        refused = refusal(request.path, body) if self.strict else None
        if refused is not None:
            return refused
        if self.handler is not None:
            return await self.handler(request, body)
        return await self.default(request, body)

    async def default(self, request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        is_chat = request.path.endswith("/chat/completions")
        if body.get("stream"):
            chunks = (
                chat_chunks(self.stream_pieces, body["model"])
                if is_chat
                else responses_chunks(self.stream_pieces, body["model"])
            )
            return await self.send_stream(request, chunks)
        answer = chat_completion(self.text, body["model"]) if is_chat else response_object(self.text, body["model"])
        return web.json_response(answer, dumps=lambda o: orjson.dumps(o).decode())

    async def send_stream(self, request: web.Request, chunks: list[bytes], delay: float = 0.0) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        try:
            for chunk in chunks:
                await resp.write(chunk)
                if delay:
                    await asyncio.sleep(delay)
        except (ConnectionResetError, asyncio.CancelledError):
            self.disconnected.set()
            raise
        await resp.write_eof()
        return resp


FAKE = web.AppKey("fake", FakeUpstream)


def fake_app(upstream: FakeUpstream) -> web.Application:
    app = web.Application(client_max_size=64 * 1024 * 1024)
    app[FAKE] = upstream  # in_sequence falls back to the fake's default answer

    async def handle(request: web.Request) -> web.StreamResponse:
        return await upstream(request)

    app.router.add_post("/v1/{tail:.*}", handle)
    return app


# ---------------------------------------------------------------- failing on cue (routing and fallback tests)


async def start_fake(aiohttp_server, fake: FakeUpstream | None = None) -> FakeUpstream:
    """Another fake upstream on its own loopback port; ``fake.url`` is its ``/v1`` base URL."""
    fake = fake or FakeUpstream()
    server = await aiohttp_server(fake_app(fake))
    fake.url = str(server.make_url("/v1"))
    return fake


def closed_port_url() -> str:
    """A loopback base URL nothing listens on: connecting to it is refused at once."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/v1"


def failing(status: int, message: str = "upstream broke", headers: dict[str, str] | None = None) -> Handler:
    """A handler that answers ``status`` with an OpenAI-shaped error body."""

    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        error = {"error": {"message": message, "type": "server_error"}}
        return web.json_response(error, status=status, headers=headers)

    return handler


async def hang(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
    """A handler that never answers; it returns once the gateway gives up and closes the connection."""
    while request.transport is not None and not request.transport.is_closing():
        await asyncio.sleep(0.02)
    return web.Response(status=499)


def in_sequence(*handlers: Handler | None) -> Handler:
    """Each request gets the next handler (``None``: the default answer); the last one repeats."""
    queue = list(handlers)

    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        current = queue.pop(0) if len(queue) > 1 else queue[0]
        fake = request.app[FAKE]
        return await (current or fake.default)(request, body)

    return handler


def cut_stream(after: int) -> Handler:
    """A streamed answer that breaks off (connection dropped) after ``after`` chunks."""

    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        fake = request.app[FAKE]
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in chat_chunks(fake.stream_pieces, body["model"])[:after]:
            await resp.write(chunk)
        await asyncio.sleep(0.05)  # let the chunks reach the gateway before the line drops
        assert request.transport is not None
        request.transport.close()
        return resp

    return handler


def raw_answer(payload: bytes, content_type: str = "application/json") -> Handler:
    """A 200 answer with exactly ``payload`` as its body (invalid JSON, an empty stream …)."""

    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        return web.Response(body=payload, content_type=content_type)

    return handler


def trickle(gap: float) -> Handler:
    """A 200 answer that sends its headers, then a byte every ``gap`` seconds, never finishing in time."""

    async def handler(request: web.Request, body: dict[str, Any]) -> web.StreamResponse:
        resp = web.StreamResponse(headers={"Content-Type": "application/json"})
        await resp.prepare(request)
        with contextlib.suppress(ConnectionError):
            while request.transport is not None and not request.transport.is_closing():
                await resp.write(b" ")
                await asyncio.sleep(gap)
        return resp

    return handler
