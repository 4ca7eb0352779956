"""Sending a Call along its ranked routes: fallback to the next route when one fails."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator
from types import ModuleType
from typing import TYPE_CHECKING, Any

import attrs

from .call import Call, Reply
from .context import RequestContext, Route
from .errors import UpstreamUnavailable
from .providers import UpstreamFailure

if TYPE_CHECKING:
    from .plugins import PluginHost

log = logging.getLogger("llm_router.upstream")


@attrs.define
class Attempt:
    """How a call was finally served: the route, the dialect spoken, the failures before it."""

    route: Route
    codec: ModuleType
    failures: list[UpstreamFailure]


async def _prepare(host: PluginHost, ctx: RequestContext, route: Route, call: Call) -> tuple[ModuleType, dict[str, Any]]:
    codec = route.provider.codec(call)
    body = route.provider.render(call, route.model)
    await host.call("upstream_request", ctx=ctx, route=route, body=body)
    return codec, body


def _give_up(failures: list[UpstreamFailure]) -> Exception:
    if not failures:
        return UpstreamUnavailable("No provider could serve the request.")
    last = failures[-1]
    if len(failures) > 1:
        tried = "; ".join(f.message for f in failures)
        last = UpstreamFailure(f"all {len(failures)} routes failed: {tried}", status=last.status, retryable=True)
    return last.to_error()


def _usable(route: Route, failures: list[UpstreamFailure]) -> bool:
    reason = route.provider.unavailable
    if reason:
        failures.append(UpstreamFailure(reason, status=503))
    return not reason


async def send(host: PluginHost, ctx: RequestContext, routes: list[Route], call: Call) -> tuple[dict[str, Any], Reply, Attempt]:
    """Send ``call`` (not streamed) along ``routes``; returns the upstream body, its canonical Reply and the attempt."""
    failures: list[UpstreamFailure] = []
    for route in routes:
        if not _usable(route, failures):
            continue
        codec, body = await _prepare(host, ctx, route, call)
        try:
            answer = await route.provider.send(codec, body)
            try:
                reply = codec.decode_reply(answer)
            except (ValueError, TypeError, AttributeError, KeyError):
                raise UpstreamFailure(f"provider '{route.name}' answered with a body that is not a {codec.NAME} reply") from None
        except UpstreamFailure as failure:
            log.warning("route %s failed: %s", route, failure.message)
            failures.append(failure)
            if not failure.retryable:
                break
            continue
        return answer, reply, Attempt(route, codec, failures)
    raise _give_up(failures)


@contextlib.asynccontextmanager
async def stream(
    host: PluginHost, ctx: RequestContext, routes: list[Route], call: Call
) -> AsyncIterator[tuple[AsyncIterator[bytes], Attempt]]:
    """Open a streamed answer along ``routes``.

    A route counts as serving once its first chunk has arrived: until then nothing
    has reached the client, so a failure still falls back to the next route.
    """
    failures: list[UpstreamFailure] = []
    for route in routes:
        if not _usable(route, failures):
            continue
        codec, body = await _prepare(host, ctx, route, call)
        async with contextlib.AsyncExitStack() as stack:
            try:
                chunks = await stack.enter_async_context(route.provider.stream(codec, body))
                with route.provider.transport_errors():
                    first = await anext(chunks, b"")
            except UpstreamFailure as failure:
                log.warning("route %s failed: %s", route, failure.message)
                failures.append(failure)
                if not failure.retryable:
                    break
                continue
            yield _prepend(first, chunks, route), Attempt(route, codec, failures)
            return
    raise _give_up(failures)


async def _prepend(first: bytes, rest: AsyncIterator[bytes], route: Route) -> AsyncIterator[bytes]:
    if first:
        yield first
    with route.provider.transport_errors():
        async for chunk in rest:
            yield chunk
