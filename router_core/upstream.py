"""Sending a Call along its ranked routes: retries with backoff, circuit breaking, fallback."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any, TypeVar

import attrs
import orjson

from .call import Call, Reply
from .config import ProviderConfig
from .context import RequestContext, Route
from .dialects import Dialect
from .dialects.fates import Untranslatable
from .errors import UpstreamUnavailable
from .providers import UpstreamFailure
from .streaming import DONE, MAX_LINE_BYTES, sse_data

if TYPE_CHECKING:
    from .plugins import PluginHost

log = logging.getLogger("llm_router.upstream")

# The longest Retry-After waited out on one route; a longer one means "go elsewhere now",
# since a client would rather get an answer from the next route than wait minutes.
MAX_RETRY_AFTER = 10.0

T = TypeVar("T")


@attrs.define
class Attempt:
    """How a call was finally served: the route, the dialect spoken, what went wrong before.

    ``failures`` holds one entry per route given up on (its last failure), so its
    length is the number of fallbacks; ``retries`` counts repeated attempts on a route.
    """

    route: Route
    codec: Dialect
    failures: list[UpstreamFailure]
    retries: int = 0


def backoff(config: ProviderConfig, retry: int, retry_after: float | None) -> float | None:
    """Seconds to wait before retry number ``retry`` (from 0) on a route, or ``None``: do not retry it."""
    if retry_after is not None:
        return retry_after if retry_after <= MAX_RETRY_AFTER else None
    ceiling = min(config.backoff_max, config.backoff_base * 2**retry)
    # Full-range jitter would allow 0; half of it keeps a floor so a flapping upstream gets a breather.
    return random.uniform(ceiling / 2, ceiling)


async def _prepare(host: PluginHost, ctx: RequestContext, route: Route, call: Call) -> tuple[Dialect, dict[str, Any]]:
    codec = route.provider.codec(call)
    try:
        body = route.provider.render(call, route.model)
    except Untranslatable as exc:
        raise exc.for_provider(route.name, route.provider.kind) from None
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


async def try_routes(
    routes: list[Route], attempt: Callable[[Route], Awaitable[T]]
) -> tuple[T, Route, list[UpstreamFailure], int]:
    """Run ``attempt`` along ``routes``: retry a route while it may be retried, then fall back.

    Returns the first result with its route, the routes' failures before it and the
    retry count. A non-retryable failure (the upstream refused the request itself)
    ends the walk at once: every other route would refuse it too.
    """
    failures: list[UpstreamFailure] = []
    retries = 0
    for route in routes:
        provider = route.provider
        if provider.unavailable:
            failures.append(UpstreamFailure(provider.unavailable, status=503))
            continue
        last: UpstreamFailure | None = None
        for n in range(provider.config.max_retries + 1):
            if not provider.breaker.allow(provider):
                last = last or UpstreamFailure(
                    f"provider '{provider.name}' is cooling down after repeated failures", status=503
                )
                break
            try:
                result = await attempt(route)
            except UpstreamFailure as failure:
                # Kept in ``failures`` while this frame is in its traceback: a cycle that would
                # hold the failed attempt's buffers until a full garbage collection.
                failure.__traceback__ = None
                log.warning("route %s failed (attempt %d): %s", route, n + 1, failure.summary)
                last = failure
                if not failure.retryable:
                    raise failure.to_error() from None
                if failure.counts:
                    provider.breaker.failure(provider)
                delay = backoff(provider.config, n, failure.retry_after) if n < provider.config.max_retries else None
                if delay is None:
                    break
                retries += 1
                await asyncio.sleep(delay)
                continue
            provider.breaker.success(provider)
            return result, route, failures, retries
        assert last is not None
        failures.append(last)
    raise _give_up(failures)


async def send(
    host: PluginHost, ctx: RequestContext, routes: list[Route], call: Call
) -> tuple[dict[str, Any], Reply, Attempt]:
    """Send ``call`` (not streamed) along ``routes``; returns the upstream body, its canonical Reply and the attempt."""

    async def attempt(route: Route) -> tuple[Dialect, dict[str, Any], Reply]:
        codec, body = await _prepare(host, ctx, route, call)
        answer = await route.provider.send(codec, body)
        try:
            reply = codec.decode_reply(answer)
            # What response hooks walk (restore's map_text, usage) must hold up too; the walk
            # with an identity function rewrites nothing. A dialect without them has no such hooks.
            with contextlib.suppress(NotImplementedError):
                codec.map_reply_text(answer, _same)
                codec.reply_usage(answer)
            return codec, answer, reply
        except (ValueError, TypeError, AttributeError, KeyError, IndexError):
            raise UpstreamFailure(
                f"provider '{route.name}' answered with a body that is not a {codec.name} reply"
            ) from None

    (codec, answer, reply), route, failures, retries = await try_routes(routes, attempt)
    return answer, reply, Attempt(route, codec, failures, retries)


@contextlib.asynccontextmanager
async def stream(
    host: PluginHost, ctx: RequestContext, routes: list[Route], call: Call
) -> AsyncIterator[tuple[AsyncIterator[bytes], Attempt]]:
    """Open a streamed answer along ``routes``.

    A route counts as serving once its first chunk has arrived: until then nothing
    has reached the client, so a failure is still retried or falls back.
    """

    async def attempt(route: Route) -> tuple[contextlib.AsyncExitStack, Dialect, bytes, AsyncIterator[bytes]]:
        codec, body = await _prepare(host, ctx, route, call)
        stack = contextlib.AsyncExitStack()
        try:
            chunks = await stack.enter_async_context(route.provider.stream(codec, body))
            with route.provider.transport_errors():
                first = await opening(route, chunks, codec)
        except BaseException:  # also a cancelled client: the upstream response must be closed
            await stack.aclose()
            raise
        return stack, codec, first, chunks

    (stack, codec, first, chunks), route, failures, retries = await try_routes(routes, attempt)
    async with stack:
        yield _relay(first, chunks, route), Attempt(route, codec, failures, retries)


def _same(text: str) -> str:
    return text


SSE_FIELDS = (b"data:", b"event:", b"id:", b"retry:", b":")


async def opening(route: Route, chunks: AsyncIterator[bytes], codec: Dialect | None = None) -> bytes:
    """The stream's bytes up to its first complete event, checked to be SSE carrying a JSON object.

    Nothing has reached the client yet, so garbage, a JSON body or a malformed first
    event is a route failure here and the next route is tried.
    """
    name = route.name
    buffered = b""
    try:
        while not _has_event(buffered):
            chunk = await anext(chunks, b"")
            if not chunk:
                break
            buffered += chunk
            if len(buffered) > MAX_LINE_BYTES:
                raise UpstreamFailure(f"provider '{name}' sent no event in its first {MAX_LINE_BYTES} bytes")
    except UpstreamFailure:
        raise
    except (ValueError, TypeError, AttributeError, KeyError, IndexError):  # a provider's own relay choked on it
        raise UpstreamFailure(f"provider '{name}' sent a malformed first stream event") from None
    if not buffered.strip():
        raise UpstreamFailure(f"provider '{name}' closed the stream before sending anything")
    if not buffered.lstrip().startswith(SSE_FIELDS):
        raise UpstreamFailure(f"provider '{name}' answered a stream request with something other than events")
    async for data in sse_data(_once(buffered)):
        if data == DONE:
            break
        try:
            event = orjson.loads(data)
        except orjson.JSONDecodeError:
            event = None
        if not isinstance(event, dict):
            raise UpstreamFailure(f"provider '{name}' sent a first stream event that is not a JSON object")
        if codec is not None:
            try:  # the dialect's own reading of it: a malformed event of the right type is garbage too
                codec.stream_decoder().feed(event)
            except (ValueError, TypeError, AttributeError, KeyError, IndexError):
                raise UpstreamFailure(f"provider '{name}' sent a malformed first stream event") from None
        break
    return buffered


def _has_event(buffered: bytes) -> bool:
    return b"\n\n" in buffered or b"\r\n\r\n" in buffered


async def _once(data: bytes) -> AsyncIterator[bytes]:
    yield data


async def _relay(first: bytes, rest: AsyncIterator[bytes], route: Route) -> AsyncIterator[bytes]:
    """The stream after its first chunk; a failure now can only end it.

    A broken connection counts against the provider; a timeout does not: the provider
    was serving, and a long generation (or a long pause in one) is the request's doing.
    """
    yield first
    try:
        with route.provider.transport_errors():
            async for chunk in rest:
                yield chunk
    except UpstreamFailure as failure:
        if failure.counts and not failure.timed_out:
            route.provider.breaker.failure(route.provider)
        raise
