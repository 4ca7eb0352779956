"""The request path, top to bottom: parse → hooks → upstream → hooks → render."""

from __future__ import annotations

import logging
import re
import time
from typing import TYPE_CHECKING, Any

import aiohttp
import attrs
import orjson
from aiohttp import web

from . import upstream
from .call import IMAGE, TEXT, Message, Part, Reply, StreamEnd, TextDelta, ToolCall, ToolCallDelta, Usage
from .config import Config, ServerConfig
from .context import ReplyBody, RequestContext, Route
from .dialects import Dialect, StreamEncoder
from .errors import BadRequest, GatewayError, UpstreamError
from .gateway import GatewaySchema
from .limits import check_counts, check_depth, read_body
from .outcome import CONTEXT, REQUEST_ID
from .plugins import PluginHost
from .providers import Routes, UpstreamFailure
from .streaming import DONE, sse_data

if TYPE_CHECKING:
    from .call import Call, StreamPiece

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


async def handle(request: web.Request, dialect: Dialect) -> web.StreamResponse:
    """One request in ``dialect``, answered in the same dialect."""
    rt = request.app[RUNTIME]
    body = await read_json(request, rt.config.server)
    call = dialect.decode_request(body)
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
        settings=rt.host.settings,
        scorer=lambda ctx, wanted: score(rt, ctx, wanted),
        complete=lambda ctx, call: complete(rt, ctx, call),
        reply_id=dialect.new_id(),
    )
    await rt.host.call("pre_request", ctx=ctx)
    await choose_model(rt, ctx)
    routes = await choose_routes(rt, ctx, ctx.call)
    local = await rt.host.call("serve_request", ctx=ctx, routes=routes)
    if local is not None:
        return await answer_locally(request, rt, ctx, dialect, local)
    if ctx.call.stream:
        return await stream_answer(request, rt, ctx, routes, dialect)
    answer, reply, attempt = await upstream.send(rt.host, ctx, routes, ctx.call)
    set_route_headers(ctx, attempt)
    ctx.headers["x-router-upstream-model"] = reply.model or attempt.route.model
    ctx.upstream_reply_id = reply.id
    reply.id, reply.model = ctx.reply_id, ctx.call.model
    ctx.usage = reply.usage
    if ctx.wants_reply:
        await rt.host.call("reply_complete", ctx=ctx, reply=reply)
    return await respond(rt, ctx, ReplyBody(dialect, render_reply(ctx, dialect, answer, reply, attempt)))


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
    request: web.Request, rt: Runtime, ctx: RequestContext, dialect: Dialect, reply: Reply
) -> web.StreamResponse:
    """A plugin answered (``serve_request``): render its Reply as if an upstream had sent it."""
    ctx.headers.setdefault("x-router-model", ctx.call.model)
    reply.usage.extra.update(ctx._usage_extra)
    reply.id, reply.model = ctx.reply_id, ctx.call.model
    ctx.usage = reply.usage
    if not ctx.call.stream:
        if ctx.wants_reply:
            await rt.host.call("reply_complete", ctx=ctx, reply=reply)
        return await respond(rt, ctx, ReplyBody(dialect, encode_reply(ctx, dialect, reply)))
    resp = web.StreamResponse(headers={**SSE_HEADERS, **safe_headers(ctx.headers)})
    await resp.prepare(request)
    ctx.first_byte_at = time.perf_counter()
    encoder = dialect.stream_encoder(ctx.reply_id, ctx.call.model, ctx.call)
    await write_events(resp, dialect, encoder.start())
    pieces: list[StreamPiece] = [TextDelta(reply.text)] if reply.text else []
    pieces += [ToolCallDelta(i, c.id, c.name, c.arguments) for i, c in enumerate(reply.tool_calls)]
    for piece in pieces:
        await write_pieces(resp, rt, ctx, dialect, encoder, piece)
    for part in (p for m in reply.messages for p in m.parts if p.kind == IMAGE):
        # Images skip the stream hooks: bytes, not text a plugin rewrites.
        await write_events(resp, dialect, encoder.image(part))
    await write_pieces(resp, rt, ctx, dialect, encoder, StreamEnd(reply.finish_reason, reply.usage))
    if ctx.wants_reply:
        await rt.host.call("reply_complete", ctx=ctx, reply=reply)
    await write_events(resp, dialect, encoder.close())
    await resp.write(dialect.end_of_stream)
    await resp.write_eof()
    return resp


def encode_reply(ctx: RequestContext, dialect: Dialect, reply: Reply) -> dict[str, Any]:
    body, ctx.reply_body = ctx.reply_body, None
    if body is not None and dialect.name == ctx.call.dialect and isinstance(body.get("usage"), dict):
        body["usage"].update(reply.usage.extra)  # what was added since (planning's usage)
        return body
    return dialect.encode_reply(reply, ctx.reply_id, ctx.call)


def safe_headers(headers: dict[str, str]) -> dict[str, str]:
    """Header values as HTTP allows them: a plugin may echo client text (a tag name) into one."""
    return {k: v if v.isprintable() and v.isascii() else _HEADER_UNSAFE.sub("?", v) for k, v in headers.items()}


def set_route_headers(ctx: RequestContext, attempt: upstream.Attempt) -> None:
    ctx.headers["x-router-model"] = ctx.call.model
    ctx.headers["x-router-provider"] = attempt.route.name
    ctx.headers["x-router-fallbacks"] = str(len(attempt.failures))
    ctx.note_route(attempt.route.name, len(attempt.failures))


def render_reply(
    ctx: RequestContext, dialect: Dialect, answer: dict[str, Any], reply: Reply, attempt: upstream.Attempt
) -> dict[str, Any]:
    """The upstream's answer in the client's dialect: as is when the dialects match, under the gateway's id."""
    if attempt.codec.name == dialect.name:
        dialect.restamp(answer, reply)
        if ctx._usage_extra and isinstance(answer.get("usage"), dict):
            answer["usage"].update(ctx._usage_extra)
        return answer
    reply.usage.extra.update(ctx._usage_extra)
    return encode_reply(ctx, dialect, reply)


# ---------------------------------------------------------------- streams


async def stream_answer(
    request: web.Request, rt: Runtime, ctx: RequestContext, routes: list[Route], dialect: Dialect
) -> web.StreamResponse:
    async with upstream.stream(rt.host, ctx, routes, ctx.call) as (chunks, attempt):
        set_route_headers(ctx, attempt)
        ctx.headers["x-router-upstream-model"] = attempt.route.model
        resp = web.StreamResponse(headers={**SSE_HEADERS, **safe_headers(ctx.headers)})
        await resp.prepare(request)
        ctx.first_byte_at = time.perf_counter()
        same = attempt.codec.name == dialect.name
        if (
            same
            and dialect.passthrough_streams
            and not (ctx.wants_stream_events or ctx.wants_reply or ctx._usage_extra)
        ):
            relay = passthrough
        elif same and not ctx.wants_stream_events:
            relay = restamped  # the upstream's own events (hosted tools, reasoning …), under the gateway's id
        else:
            relay = translate
        try:
            await relay(resp, rt, ctx, chunks, attempt.codec, dialect)
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            log.info("client went away mid-stream; upstream request closed")
            ctx.error_code = "client_closed"
            return resp
        except (UpstreamFailure, GatewayError) as exc:
            log.warning("stream from %s failed mid-way: %s", attempt.route, type(exc).__name__)
            ctx.error_code = "stream_failed"
            await resp.write(dialect.frame(dialect.stream_error(exc.message)))
        except Exception as exc:  # garbage from upstream or a bug: the status is sent, so end the stream cleanly
            log.warning("stream from %s broke mid-way: %s", attempt.route, type(exc).__name__)
            ctx.error_code = "stream_failed"
            message = f"the answer from provider '{attempt.route.name}' broke off"
            await resp.write(dialect.frame(dialect.stream_error(message)))
        await resp.write_eof()
        return resp


async def passthrough(resp, rt, ctx, chunks, upstream_dialect, dialect) -> None:
    """Same dialect, nothing to change: bytes go out as they arrive (the usage event is read on the side)."""
    tap = UsageTap(upstream_dialect)
    async for chunk in chunks:
        await resp.write(chunk)
        tap.feed(chunk)
    ctx.usage = tap.usage


async def restamped(
    resp: web.StreamResponse, rt: Runtime, ctx: RequestContext, chunks, upstream_dialect: Dialect, dialect: Dialect
) -> None:
    """Same dialect, no stream hooks: each upstream event goes out as it came, restamped by the
    dialect (the gateway's id and model name), and is read on the side for the usage and, when
    a plugin asked for it, the complete answer (given to ``reply_complete`` before the last event)."""
    decoder = upstream_dialect.stream_decoder()
    collected = Collector(ctx.reply_id, ctx.call.model) if ctx.wants_reply else None
    end = StreamEnd("")
    async for data in sse_data(chunks):
        if data == DONE:
            break
        event = parse_event(data)
        for piece in decoder.feed(event):
            if isinstance(piece, StreamEnd):
                end.finish_reason = end.finish_reason or piece.finish_reason
                end.usage = piece.usage or end.usage
                ctx.usage, ctx.upstream_reply_id = end.usage, decoder.reply_id
                if collected is not None:  # the answer is complete: keep it before the client has it
                    await rt.host.call("reply_complete", ctx=ctx, reply=collected.reply(end))
                    collected = None
            elif collected is not None:
                collected.add(piece)
        dialect.restamp_event(event, ctx.reply_id, ctx.call.model, ctx._usage_extra)
        await resp.write(dialect.frame(event))
    await resp.write(dialect.end_of_stream)


def parse_event(data: bytes) -> dict[str, Any]:
    try:
        event = orjson.loads(data)
    except orjson.JSONDecodeError:
        raise ValueError("the upstream stream carried invalid JSON") from None
    if not isinstance(event, dict):
        raise ValueError("the upstream stream carried an event that is not an object")
    return event


class UsageTap:
    """Finds the usage in a stream relayed as bytes, parsing only the lines that carry one."""

    # A line longer than this without an end is not one we can afford to hold.
    MAX_PENDING = 1024 * 1024

    def __init__(self, dialect: Dialect) -> None:
        self.decoder = dialect.stream_decoder()
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
            event = orjson.loads(payload)
            pieces = self.decoder.feed(event) if isinstance(event, dict) else []
        except (ValueError, TypeError, AttributeError, KeyError, UpstreamFailure):
            return  # the relayed bytes are the client's to judge; the outcome just lacks tokens
        for piece in pieces:
            if isinstance(piece, StreamEnd) and piece.usage is not None:
                self.usage = piece.usage


async def translate(
    resp: web.StreamResponse, rt: Runtime, ctx: RequestContext, chunks, upstream_dialect: Dialect, dialect: Dialect
) -> None:
    """Upstream events → canonical pieces → stream hooks → the client's dialect."""
    decoder = upstream_dialect.stream_decoder()
    encoder = dialect.stream_encoder(ctx.reply_id, ctx.call.model, ctx.call)
    collected = Collector(ctx.reply_id, ctx.call.model) if ctx.wants_reply else None
    end = StreamEnd("")
    await write_events(resp, dialect, encoder.start())
    async for data in sse_data(chunks):
        if data == DONE:
            break
        event = parse_event(data)
        for piece in decoder.feed(event):
            if isinstance(piece, StreamEnd):  # held back: hooks see exactly one, last
                end.finish_reason = end.finish_reason or piece.finish_reason
                end.usage = piece.usage or end.usage
                continue
            if collected is not None:
                collected.add(piece)
            await write_pieces(resp, rt, ctx, dialect, encoder, piece)
    end.finish_reason = end.finish_reason or "stop"
    end.usage = end.usage or Usage()
    ctx.upstream_reply_id = decoder.reply_id
    if collected is not None:
        await rt.host.call("reply_complete", ctx=ctx, reply=collected.reply(end))
    end.usage.extra.update(ctx._usage_extra)
    ctx.usage = end.usage
    await write_pieces(resp, rt, ctx, dialect, encoder, end)
    await write_events(resp, dialect, encoder.close())
    await resp.write(dialect.end_of_stream)


class Collector:
    """A streamed answer's pieces, gathered into the Reply a ``reply_complete`` hook sees."""

    def __init__(self, reply_id: str, model: str) -> None:
        self.id, self.model = reply_id, model
        self.text: list[str] = []
        self.calls: dict[int, ToolCall] = {}

    def add(self, piece: StreamPiece) -> None:
        if isinstance(piece, TextDelta):
            self.text.append(piece.text)
        elif isinstance(piece, ToolCallDelta):
            call = self.calls.setdefault(piece.index, ToolCall(piece.id or f"call_{piece.index}", piece.name or "", ""))
            call.arguments += piece.arguments

    def reply(self, end: StreamEnd) -> Reply:
        message = Message("assistant", tool_calls=list(self.calls.values()))
        if self.text:
            message.parts.append(Part(TEXT, "".join(self.text)))
        usage = attrs.evolve(end.usage or Usage(), extra={})
        return Reply(self.model, [message], end.finish_reason, usage, id=self.id)


async def write_pieces(
    resp, rt: Runtime, ctx: RequestContext, dialect: Dialect, encoder: StreamEncoder, piece: StreamPiece
) -> None:
    pieces = [piece]
    if ctx.wants_stream_events:
        for impl in rt.host.impls("on_stream_event"):
            passed: list[StreamPiece] = []
            for p in pieces:
                result = await rt.host.run(impl, {"ctx": ctx, "piece": p})
                passed.extend([p] if result is None else result)
            pieces = passed
    for p in pieces:
        await write_events(resp, dialect, encoder.encode(p))


async def write_events(resp: web.StreamResponse, dialect: Dialect, events: list[dict[str, Any]]) -> None:
    if events:
        await resp.write(dialect.frames(events))
