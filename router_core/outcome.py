"""Request ids and the request's Outcome: the outermost middleware, which calls ``request_finished``."""

from __future__ import annotations

import asyncio
import re
import time

from aiohttp import web

from .context import Outcome, RequestContext
from .ids import uuid7_hex
from .plugins import PluginHost

REQUEST_ID_HEADER = "x-request-id"
# A client's own id is kept when it is short printable ASCII; anything else (spaces,
# control characters, a megabyte) is replaced, since it ends up in headers and logs.
_SANE_ID = re.compile(r"[\x21-\x7e]{1,128}")

REQUEST_ID = web.RequestKey("llm_router.request_id", str)
CONTEXT = web.RequestKey("llm_router.context", RequestContext)
ERROR_CODE = web.ResponseKey("llm_router.error_code", str)


def request_id(offered: str | None) -> str:
    """The client's ``x-request-id`` when it is sane, else a fresh one."""
    if offered is not None and _SANE_ID.fullmatch(offered):
        return offered
    return uuid7_hex()  # time-ordered: the ledger's index on it grows at its end


def endpoint_name(request: web.Request) -> str:
    """The route's name (``chat``, ``responses``…), else its path pattern; ``unknown`` when nothing matched."""
    route = request.match_info.route
    if route.name:
        return route.name
    resource = route.resource
    return resource.canonical if resource is not None else "unknown"


def finish_middleware(host: PluginHost):
    """Give every request an id, send it back on every answer, and report the Outcome once the answer is out."""
    report = host.implements("request_finished")

    @web.middleware
    async def finish(request: web.Request, handler) -> web.StreamResponse:
        started = time.perf_counter()
        rid = request[REQUEST_ID] = request_id(request.headers.get(REQUEST_ID_HEADER))
        try:
            resp = await handler(request)
        except web.HTTPException as exc:
            exc.headers[REQUEST_ID_HEADER] = rid
            if report:
                await finished(request, started, exc.status, None, None)
            raise
        except asyncio.CancelledError:  # the client went away (aiohttp cancels the handler)
            if report:
                # A stream's 200 went out with its first byte; otherwise nothing was sent (499, as nginx logs it).
                ctx = request.get(CONTEXT)
                status = 200 if ctx is not None and ctx.first_byte_at is not None else 499
                await finished(request, started, status, None, "client_closed")
            raise
        sent_at, error_code = None, resp.get(ERROR_CODE)
        if not resp.prepared:
            resp.headers[REQUEST_ID_HEADER] = rid
            if report:
                # Sent before the hooks run, so that no request_finished plugin delays the answer.
                sent_at = time.perf_counter()
                try:
                    await resp.prepare(request)
                    await resp.write_eof()
                except ConnectionError:  # gone before the answer went out: still reported, once
                    error_code = error_code or "client_closed"
        if report:
            await finished(request, started, resp.status, sent_at, error_code)
        return resp

    async def finished(
        request: web.Request, started: float, status: int, sent_at: float | None, error_code: str | None
    ) -> None:
        ctx = request.get(CONTEXT)
        outcome = build_outcome(request, ctx, started, status, sent_at, error_code)
        await host.notify("request_finished", ctx=ctx, outcome=outcome, app=request.app)

    return finish


def build_outcome(
    request: web.Request,
    ctx: RequestContext | None,
    started: float,
    status: int,
    sent_at: float | None,
    error_code: str | None,
) -> Outcome:
    now = time.perf_counter()
    first_byte = sent_at
    if ctx is None:
        return Outcome(
            request_id=request[REQUEST_ID],
            status=status,
            endpoint=endpoint_name(request),
            latency_ms=(now - started) * 1000,
            first_byte_ms=None if first_byte is None else (first_byte - started) * 1000,
            error_code=error_code,
        )
    first_byte = ctx.first_byte_at or first_byte
    usage = ctx.usage
    return Outcome(
        request_id=ctx.request_id,
        status=status,
        endpoint=endpoint_name(request),
        stream=bool(ctx.call.stream),
        model_requested=ctx.model_requested,
        model=ctx.call.model or None,
        provider=ctx.provider,
        fallbacks=ctx.fallbacks,
        input_tokens=usage.input_tokens if usage else 0,
        output_tokens=usage.output_tokens if usage else 0,
        planner_tokens=ctx.side_tokens,
        latency_ms=(now - started) * 1000,
        first_byte_ms=None if first_byte is None else (first_byte - started) * 1000,
        error_code=error_code or ctx.error_code,
        tokens_saved=dict(ctx.tokens_saved),
        redactions=dict(ctx.redactions),
        tag=ctx.tag,
        key_name=ctx.key_name,
    )
