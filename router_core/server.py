"""Serving the app on a listening socket: client connection limits, quiet HTTP errors, draining."""

from __future__ import annotations

import asyncio
import logging
import socket
from typing import Any

import attrs
import orjson
from aiohttp import web

from .config import ServerConfig

log = logging.getLogger("llm_router.server")
# aiohttp's own HTTP errors (a malformed request line, a header with a control byte) go
# here, by type only: its messages and tracebacks quote the offending header, a key included.
http_log = logging.getLogger("llm_router.http")
# After refusing a body (408, 413) the rest of it is read and dropped this long, so the
# client sees the answer rather than a reset; then the connection is closed whatever comes.
LINGER_SECONDS = 2.0
# Listening sockets queue this many connections the workers have not accepted yet.
BACKLOG = 1024
# File descriptors a worker needs: each client connection may hold one upstream connection
# (a stream does, for its whole length), plus these for the event loop, logs and the
# plugins' own (redis, postgres, models).
RESERVED_FDS = 64
# Client connections per worker when server.max_connections is not set (and ulimit -n allows).
DEFAULT_MAX_CONNECTIONS = 768


def _json_error(status: int, reason: str, message: str, code: str) -> bytes:
    body = orjson.dumps({"error": {"message": message, "type": "server_error", "param": None, "code": code}})
    head = (
        f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n"
    )
    return head.encode() + body


BUSY = _json_error(
    503,
    "Service Unavailable",
    "The gateway has too many open connections (server.max_connections); retry shortly.",
    "too_many_connections",
)


def handler_options(server: ServerConfig) -> dict[str, Any]:
    """What aiohttp's request handler enforces for us: header sizes and idle time."""
    return {
        "keepalive_timeout": server.keepalive_timeout,
        "max_line_size": server.max_header_bytes,
        "max_field_size": server.max_header_bytes,
        "max_headers": server.max_headers,
        # A compressed request body could inflate far past max_body_bytes before it is counted;
        # the gateway refuses Content-Encoding instead (see limits.read_body).
        "auto_decompress": False,
        "lingering_time": LINGER_SECONDS,
        "access_log": None,
        "logger": http_log,
    }


class GatewayHandler(web.RequestHandler):
    """aiohttp's request handler, answering its own HTTP errors in the API's shape, without echoing input."""

    __slots__ = ("on_lost",)

    def handle_error(
        self, request: Any, status: int = 500, exc: BaseException | None = None, message: str | None = None
    ) -> web.StreamResponse:
        http_log.info("malformed HTTP request refused with %d (%s)", status, type(exc).__name__ if exc else "-")
        if status >= 500:
            text, code = "The gateway failed to handle the request.", "server_error"
        else:
            text, code = f"The HTTP request is malformed ({type(exc).__name__ if exc else 'invalid'}).", "bad_http"
        body = {"error": {"message": text, "type": "invalid_request_error", "param": None, "code": code}}
        resp = web.Response(status=status, body=orjson.dumps(body), content_type="application/json")
        resp.force_close()
        return resp

    def connection_lost(self, exc: BaseException | None) -> None:
        super().connection_lost(exc)
        on_lost, self.on_lost = getattr(self, "on_lost", None), None
        if on_lost is not None:
            on_lost()


class _Refusal(asyncio.Protocol):
    """Over the connection cap: say 503 and close, before any byte of the request is read."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses: no isinstance check here
        transport.write(BUSY)  # type: ignore[attr-defined]
        transport.close()


class Serving:
    """``app`` served on an already bound socket until :meth:`stop`, which drains it."""

    def __init__(self, app: web.Application, server: ServerConfig) -> None:
        self.app = app
        self.server = server
        self.options = handler_options(server)
        self.open = 0  # client connections accepted and not yet closed
        self.refused = 0
        self.runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=server.drain_timeout, **self.options
        )
        self.listener: asyncio.Server | None = None

    async def start(self, sock: socket.socket) -> None:
        """Run the app's startup (plugins may refuse to start here), then accept connections."""
        await self.runner.setup()
        loop = asyncio.get_running_loop()
        self.listener = await loop.create_server(self._protocol, sock=sock, backlog=BACKLOG)

    def _protocol(self) -> asyncio.BaseProtocol:
        if self.open >= (self.server.max_connections or DEFAULT_MAX_CONNECTIONS):
            self.refused += 1
            if self.refused == 1 or self.refused % 1000 == 0:
                log.warning("connection refused: %d open (server.max_connections); %d refused", self.open, self.refused)
            return _Refusal()
        assert self.runner.server is not None
        self.open += 1
        handler = GatewayHandler(self.runner.server, loop=asyncio.get_running_loop(), **self.options)
        handler.on_lost = self._closed
        return handler

    def _closed(self) -> None:
        self.open -= 1

    async def stop(self) -> None:
        """Stop accepting; give in-flight requests and streams ``server.drain_timeout``; close."""
        if self.listener is not None:
            self.listener.close()
        await self.runner.cleanup()


def bind(host: str, port: int) -> socket.socket:
    """The one listening socket. No SO_REUSEPORT: a second gateway on this port must fail, not share it."""
    return socket.create_server((host, port), backlog=BACKLOG, reuse_port=False)


def raise_fd_limit(server: ServerConfig) -> tuple[ServerConfig, str | None]:
    """Make room for the connection cap; returns the settings to serve with and why it cannot, or None.

    An unset ``server.max_connections`` takes :data:`DEFAULT_MAX_CONNECTIONS`, or fewer when
    ``ulimit -n`` cannot be raised that far (logged); a set one that does not fit is an error.
    """
    try:
        import resource
    except ImportError:  # not a POSIX system: nothing to raise
        return server, None
    wanted = server.max_connections or DEFAULT_MAX_CONNECTIONS
    needed = 2 * wanted + RESERVED_FDS
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != resource.RLIM_INFINITY and soft < needed:
        target = needed if hard == resource.RLIM_INFINITY else min(hard, needed)
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
        soft = target
    if soft == resource.RLIM_INFINITY or soft >= needed:
        return attrs.evolve(server, max_connections=wanted), None
    fits = (soft - RESERVED_FDS) // 2
    if server.max_connections is None and fits >= 1:
        log.warning(
            "ulimit -n allows %d file descriptors: at most %d client connections per worker "
            "(server.max_connections; raise the limit for the default %d)",
            soft,
            fits,
            DEFAULT_MAX_CONNECTIONS,
        )
        return attrs.evolve(server, max_connections=fits), None
    return server, (
        f"server.max_connections = {wanted} needs {needed} file descriptors "
        f"(a client and an upstream connection each, plus {RESERVED_FDS}), but this process may open "
        f"only {soft} (ulimit -n): set it to at most {max(1, fits)} or raise the limit"
    )
