"""The request path, top to bottom: parse → hooks → upstream → hooks → render."""

from __future__ import annotations

import logging
import re
import time
import uuid
from types import ModuleType
from typing import Any

import aiohttp
import attrs
import orjson
from aiohttp import web

from . import upstream
from .call import Call, Reply, StreamEnd, StreamPiece, TextDelta, ToolCallDelta, Usage
from .config import Config, ServerConfig
from .context import ReplyBody, RequestContext, Route
from .dialects import chat, responses
from .errors import BadRequest, GatewayError, UpstreamError
from .gateway import GatewaySchema
from .limits import check_counts, check_depth, read_body
from .outcome import CONTEXT, REQUEST_ID
from .plugins import PluginHost
from .providers import Routes, UpstreamFailure
from .streaming import DONE, encode_event, sse_data

log = logging.getLogger("llm_router.pipeline")

_HEADER_UNSAFE = re.compile(r"[^\x20-\x7e]")
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@attrs.define
class Runtime:
    """Everything the request path needs, built once at startup."""

    config: Config
    host: PluginHost
    schema: GatewaySchema
    routes: Routes


RUNTIME = web.AppKey("runtime", Runtime)


# ---------------------------------------------------------------- ingress


async def read_json(request: web.Request, server: ServerConfig) -> dict[str, Any]:
    raw = await read_body(request, server)  # 408 when it stalls, 413 when it is too big
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise BadRequest(f"The request body is not valid JSON ({exc.msg}).", code="invalid_json") from None
    if not isinstance(body, dict):
        raise BadRequest("The request body must be a JSON object.", code="invalid_json")
    check_depth(raw, body)
    check_counts(body, server)
    return body


async def handle(request: web.Request, codec: ModuleType) -> web.StreamResponse:
    """One request in ``codec``'s dialect, answered in the same dialect."""
    rt = request.app[RUNTIME]
    body = await read_json(request, rt.config.server)
    call = codec.decode_request(body)
    rid = request[REQUEST_ID]
    ctx = request[CONTEXT] = RequestContext(
        call=call,
        gateway=rt.schema.parse(body.get("gateway")),
        config=rt.config,
        app=request.app,
        headers={"x-request-id": rid},
        debug=request.headers.get("x-router-debug") == "1",
        request_id=rid,
        model_requested=call.model or None,
        scorer=lambda ctx, wanted: score(rt, ctx, wanted),
        complete=lambda ctx, call: complete(rt, ctx, call),
    )
    await rt.host.call("pre_request", ctx=ctx)
    await choose_model(rt, ctx)
    routes = await choose_routes(rt, ctx, ctx.call)
    local = await rt.host.call("serve_request", ctx=ctx, routes=routes)
    if local is not None:
        return await answer_locally(request, rt, ctx, codec, local)
    if ctx.call.stream:
        return await stream_answer(request, rt, ctx, routes, codec)
    answer, reply, attempt = await upstream.send(rt.host, ctx, routes, ctx.call)
    set_route_headers(ctx, attempt)
    ctx.usage = reply.usage
    return await respond(rt, ctx, ReplyBody(codec, render_reply(ctx, codec, answer, reply, attempt)))


async def respond(rt: Runtime, ctx: RequestContext, out: ReplyBody) -> web.Response:
    await rt.host.call("post_response", ctx=ctx, reply=out)
    return web.Response(body=orjson.dumps(out.body), content_type="application/json", headers=safe_headers(ctx.headers))


async def score(rt: Runtime, ctx: RequestContext, wanted: set[str]) -> dict[str, Any]:
    scores = await rt.host.score(ctx, wanted)
    if ctx.debug:  # x-router-debug: 1 asks to see the scores behind the decision
        ctx.headers["x-router-scores"] = orjson.dumps({**ctx.scored, **scores}, default=str).decode()
    return scores


async def choose_model(rt: Runtime, ctx: RequestContext) -> None:
    def use(model: str) -> None:
        ctx.call.model = model

    await rt.host.chain("select_model", {"ctx": ctx}, use)
    if not ctx.call.model:
        raise BadRequest("'model' is required: no plugin chose a model for this request.", param="model")


async def choose_routes(rt: Runtime, ctx: RequestContext, call: Call) -> list[Route]:
    kwargs: dict[str, Any] = {"ctx": ctx, "routes": rt.routes.for_model(call.model)}

    def use(routes: list[Route]) -> None:
        kwargs["routes"] = routes

    await rt.host.chain("select_provider", kwargs, use)
    if not kwargs["routes"]:
        raise UpstreamError(f"No provider may serve '{call.model}' for this request.", code="no_route")
    return kwargs["routes"]


async def complete(rt: Runtime, ctx: RequestContext, call: Call) -> Reply:
    """A side call (planner, LLM scorer): routed like a request, never streamed."""
    call.stream = False
    routes = await choose_routes(rt, ctx, call)
    _, reply, _ = await upstream.send(rt.host, ctx, routes, call)
    ctx.side_tokens += reply.usage.total_tokens
    return reply


async def answer_locally(
    request: web.Request, rt: Runtime, ctx: RequestContext, codec: ModuleType, reply: Reply
) -> web.StreamResponse:
    """A plugin answered (``serve_request``): render its Reply as if an upstream had sent it."""
    ctx.headers.setdefault("x-router-model", ctx.call.model)
    reply.usage.extra.update(ctx._usage_extra)
    ctx.usage = reply.usage
    if not ctx.call.stream:
        return await respond(rt, ctx, ReplyBody(codec, encode_reply(ctx, codec, reply)))
    resp = web.StreamResponse(headers={**SSE_HEADERS, **safe_headers(ctx.headers)})
    await resp.prepare(request)
    ctx.first_byte_at = time.perf_counter()
    encoder = codec.StreamEncoder(new_reply_id(codec), reply.model, ctx.call)
    named = codec is responses
    await write_events(resp, encoder.start(), named)
    pieces: list[StreamPiece] = [TextDelta(reply.text)] if reply.text else []
    pieces += [ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(reply.tool_calls)]
    for piece in (*pieces, StreamEnd(reply.finish_reason, reply.usage)):
        await write_pieces(resp, rt, ctx, encoder, piece, named)
    await write_events(resp, encoder.close(), named)
    if not named:
        await resp.write(b"data: [DONE]\n\n")
    await resp.write_eof()
    return resp


def encode_reply(ctx: RequestContext, codec: ModuleType, reply: Reply) -> dict[str, Any]:
    if codec is responses:
        return responses.encode_reply(reply, new_reply_id(codec), ctx.call)
    return chat.encode_reply(reply, new_reply_id(codec))


def safe_headers(headers: dict[str, str]) -> dict[str, str]:
    """Header values as HTTP allows them: a plugin may echo client text (a tag name) into one."""
    return {k: v if v.isprintable() and v.isascii() else _HEADER_UNSAFE.sub("?", v) for k, v in headers.items()}


def set_route_headers(ctx: RequestContext, attempt: upstream.Attempt) -> None:
    ctx.headers["x-router-model"] = ctx.call.model
    ctx.headers["x-router-provider"] = attempt.route.name
    ctx.headers["x-router-fallbacks"] = str(len(attempt.failures))
    ctx.note_route(attempt.route.name, len(attempt.failures))


def new_reply_id(codec: ModuleType) -> str:
    return ("resp_" if codec is responses else "chatcmpl-") + uuid.uuid4().hex


def render_reply(
    ctx: RequestContext, codec: ModuleType, answer: dict[str, Any], reply: Reply, attempt: upstream.Attempt
) -> dict[str, Any]:
    """The upstream's answer in the client's dialect: as is when the dialects match."""
    if attempt.codec is codec:
        body = answer
        if ctx._usage_extra and isinstance(body.get("usage"), dict):
            body["usage"].update(ctx._usage_extra)
        return body
    reply.usage.extra.update(ctx._usage_extra)
    return encode_reply(ctx, codec, reply)


# ---------------------------------------------------------------- streams


async def stream_answer(
    request: web.Request, rt: Runtime, ctx: RequestContext, routes: list[Route], codec: ModuleType
) -> web.StreamResponse:
    async with upstream.stream(rt.host, ctx, routes, ctx.call) as (chunks, attempt):
        set_route_headers(ctx, attempt)
        resp = web.StreamResponse(headers={**SSE_HEADERS, **safe_headers(ctx.headers)})
        await resp.prepare(request)
        ctx.first_byte_at = time.perf_counter()
        relay = (
            passthrough if attempt.codec is codec and not (ctx.wants_stream_events or ctx._usage_extra) else translate
        )
        try:
            await relay(resp, rt, ctx, chunks, attempt.codec, codec)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            log.info("client went away mid-stream; upstream request closed")
            ctx.error_code = "client_closed"
            return resp
        except (UpstreamFailure, GatewayError) as exc:
            log.warning("stream from %s failed mid-way: %s", attempt.route, type(exc).__name__)
            ctx.error_code = "stream_failed"
            await resp.write(stream_error(codec, exc.message))
        except Exception as exc:  # garbage from upstream or a bug: the status is sent, so end the stream cleanly
            log.warning("stream from %s broke mid-way: %s", attempt.route, type(exc).__name__)
            ctx.error_code = "stream_failed"
            await resp.write(stream_error(codec, f"the answer from provider '{attempt.route.name}' broke off"))
        await resp.write_eof()
        return resp


async def passthrough(resp, rt, ctx, chunks, upstream_codec, codec) -> None:
    """Same dialect, nothing to change: bytes go out as they arrive (the usage event is read on the side)."""
    tap = UsageTap(upstream_codec)
    async for chunk in chunks:
        await resp.write(chunk)
        tap.feed(chunk)
    ctx.usage = tap.usage


class UsageTap:
    """Finds the usage in a stream relayed as bytes, parsing only the lines that carry one."""

    # A line longer than this without an end is not one we can afford to hold.
    MAX_PENDING = 1024 * 1024

    def __init__(self, codec: ModuleType) -> None:
        self.codec = codec
        self.pending = b""
        self.usage: Usage | None = None

    def feed(self, chunk: bytes) -> None:
        data = self.pending + chunk if self.pending else chunk
        cut = data.rfind(b"\n")
        if cut < 0:
            self.pending = data if len(data) <= self.MAX_PENDING else b""
            return
        self.pending = data[cut + 1 :] if len(data) - cut - 1 <= self.MAX_PENDING else b""
        if b'"usage"' not in data:
            return
        for line in data[:cut].split(b"\n"):
            if line.startswith(b"data:") and b'"usage"' in line:
                self.read(line[5:].strip())

    def read(self, payload: bytes) -> None:
        try:
            pieces = list(self.codec.decode_event(orjson.loads(payload)))
        except (ValueError, TypeError, AttributeError, KeyError):
            return  # the relayed bytes are the client's to judge; the outcome just lacks tokens
        for piece in pieces:
            if isinstance(piece, StreamEnd) and piece.usage is not None:
                self.usage = piece.usage


async def translate(resp: web.StreamResponse, rt: Runtime, ctx: RequestContext, chunks, upstream_codec, codec) -> None:
    """Upstream events → canonical pieces → stream hooks → the client's dialect."""
    encoder = codec.StreamEncoder(new_reply_id(codec), ctx.call.model, ctx.call)
    named = codec is responses
    end = StreamEnd("")
    await write_events(resp, encoder.start(), named)
    async for data in sse_data(chunks):
        if data == DONE:
            break
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            raise ValueError("the upstream stream carried invalid JSON") from None
        for piece in upstream_codec.decode_event(event):
            if isinstance(piece, StreamEnd):  # held back: hooks see exactly one, last
                end.finish_reason = end.finish_reason or piece.finish_reason
                end.usage = piece.usage or end.usage
                continue
            await write_pieces(resp, rt, ctx, encoder, piece, named)
    end.finish_reason = end.finish_reason or "stop"
    end.usage = end.usage or Usage()
    end.usage.extra.update(ctx._usage_extra)
    ctx.usage = end.usage
    await write_pieces(resp, rt, ctx, encoder, end, named)
    await write_events(resp, encoder.close(), named)
    if not named:
        await resp.write(b"data: [DONE]\n\n")


async def write_pieces(resp, rt: Runtime, ctx: RequestContext, encoder, piece: StreamPiece, named: bool) -> None:
    pieces = [piece]
    if ctx.wants_stream_events:
        for impl in rt.host.impls("on_stream_event"):
            passed: list[StreamPiece] = []
            for p in pieces:
                result = await rt.host.run(impl, {"ctx": ctx, "piece": p})
                passed.extend([p] if result is None else result)
            pieces = passed
    for p in pieces:
        await write_events(resp, encoder.encode(p), named)


async def write_events(resp: web.StreamResponse, events: list[dict[str, Any]], named: bool) -> None:
    if events:
        await resp.write(b"".join(encode_event(e, named) for e in events))


def stream_error(codec: ModuleType, message: str) -> bytes:
    """The event that ends a stream that failed after its first byte."""
    if codec is responses:
        return encode_event(
            {"type": "error", "code": "upstream_error", "message": message, "param": None, "sequence_number": 0}, True
        )
    return encode_event(
        {"error": {"message": message, "type": "upstream_error", "param": None, "code": "upstream_error"}}, False
    )
