"""Benchmark servers, each run as its own process by ``bench/run.py``.

``upstream``     a fast fake OpenAI-compatible upstream: precomputed chat.completion bytes
                 for POST /v1/chat/completions; a request with ``"stream": true`` gets an
                 SSE answer whose first chunk is sent at once, the rest after ``--stream-delay``.
``passthrough``  the floor for this stack: one aiohttp ClientSession, orjson in and out,
                 forwards the request to the upstream and returns its answer, nothing else.

Usage: python bench/servers.py upstream --port P
       python bench/servers.py passthrough --port P --upstream http://127.0.0.1:Q
"""

from __future__ import annotations

import argparse
import asyncio

import aiohttp
import orjson
from aiohttp import web


def chat_completion(
    model: str = "m", text: str = "Sure. Here is a short answer from the benchmark upstream, fixed bytes every time."
) -> bytes:
    """A chat.completion answer as OpenAI sends it (the fake upstreams of bench/ share it)."""
    return orjson.dumps(
        {
            "id": "chatcmpl-bench",
            "object": "chat.completion",
            "created": 1700000000,
            "model": model,
            "system_fingerprint": "fp_bench",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None},
                    "logprobs": None,
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 512, "completion_tokens": 18, "total_tokens": 530},
        }
    )


ANSWER = chat_completion()
JSON = "application/json"


def stream_chunks() -> tuple[bytes, list[bytes]]:
    """(the first SSE chunk, the rest): the first one already carries text."""
    base = {"id": "chatcmpl-bench", "object": "chat.completion.chunk", "created": 1700000000, "model": "m"}

    def event(choices, **extra) -> bytes:
        return b"data: " + orjson.dumps({**base, "choices": choices, **extra}) + b"\n\n"

    first = event([{"index": 0, "delta": {"role": "assistant", "content": "Hello"}, "finish_reason": None}])
    rest = [
        event([{"index": 0, "delta": {"content": " from the stream"}, "finish_reason": None}]),
        event([{"index": 0, "delta": {}, "finish_reason": "stop"}]),
        event([], usage={"prompt_tokens": 512, "completion_tokens": 4, "total_tokens": 516}),
        b"data: [DONE]\n\n",
    ]
    return first, rest


def upstream_app(stream_delay: float) -> web.Application:
    first, rest = stream_chunks()

    async def chat(request: web.Request) -> web.StreamResponse:
        raw = await request.read()
        if b'"stream"' in raw and orjson.loads(raw).get("stream"):
            resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
            await resp.prepare(request)
            await resp.write(first)
            await asyncio.sleep(stream_delay)
            for chunk in rest:
                await resp.write(chunk)
            await resp.write_eof()
            return resp
        return web.Response(body=ANSWER, content_type=JSON)

    app = web.Application()
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", healthz)
    return app


def passthrough_app(upstream: str) -> web.Application:
    url = upstream.rstrip("/") + "/v1/chat/completions"
    key = web.AppKey("session", aiohttp.ClientSession)

    async def session_ctx(app: web.Application):
        connector = aiohttp.TCPConnector(limit=0, limit_per_host=256)
        async with aiohttp.ClientSession(connector=connector) as session:
            app[key] = session
            yield

    async def chat(request: web.Request) -> web.Response:
        body = orjson.loads(await request.read())
        async with request.app[key].post(url, data=orjson.dumps(body), headers={"Content-Type": JSON}) as resp:
            answer = orjson.loads(await resp.read())
            status = resp.status
        return web.Response(status=status, body=orjson.dumps(answer), content_type=JSON)

    app = web.Application()
    app.cleanup_ctx.append(session_ctx)
    app.router.add_post("/v1/chat/completions", chat)
    app.router.add_get("/healthz", healthz)
    return app


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type=JSON)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("role", choices=["upstream", "passthrough"])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--upstream", default="")
    parser.add_argument("--stream-delay", type=float, default=0.2)
    args = parser.parse_args()
    try:
        import uvloop

        uvloop.install()  # the gateway uses it too
    except ImportError:
        pass
    app = upstream_app(args.stream_delay) if args.role == "upstream" else passthrough_app(args.upstream)
    web.run_app(app, host="127.0.0.1", port=args.port, access_log=None, print=None, backlog=1024)


if __name__ == "__main__":
    main()
