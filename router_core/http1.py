"""The gateway's HTTP/1.1 client for upstream calls: keep-alive connections per host, answers
parsed by llhttp (through ``httptools``, the parser uvicorn uses).

Why not aiohttp's ``ClientSession``, which the gateway used before: per POST it builds a
request and a response object with their multidicts, URL objects, cookie and trace hooks, and
a timer or two; measured on this project's benchmark machine it costs 80–100 µs of CPU per
upstream call against ~25 µs here (``python bench/compare/http_client.py``), and every answered
request makes one. The upstream side needs much less: POST a body to a handful of fixed URLs,
read the status, a few headers and the body, whole or as it arrives.

What it does and does not do:
- One request at a time per connection; idle connections are reused (last in, first out)
  until the server closes them or they have been idle ``keepalive`` seconds; at most
  ``limit_per_host`` connections per host, further requests wait for one.
- A reused connection that the server closed before answering (the keep-alive race) is retried
  once on a new connection; nothing else is retried here.
- Redirects are never followed and bodies are never inflated: callers see the status and the
  raw bytes (see ``providers.py``, which bounds the inflating).
- Timeouts: ``connect_timeout`` for the connection (and TLS handshake), ``read_timeout`` for
  each wait for bytes (the first byte and every later gap), ``deadline`` (loop time) for the whole
  answer. A response left unfinished is closed with its connection.
- Back-pressure: reading pauses while more than ``HIGH_WATER`` bytes wait for the caller.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

HIGH_WATER = 1024 * 1024  # bytes buffered before reading pauses
LOW_WATER = 256 * 1024  # ... and resumes
KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)


class HTTPError(Exception):
    """A transport failure: no usable HTTP answer."""


class ConnectError(HTTPError):
    """The connection (or its TLS handshake) failed."""


class ConnectTimeout(ConnectError):
    """The connection was not made within ``connect_timeout``."""


class ReadTimeout(HTTPError):
    """No byte arrived for ``read_timeout`` seconds."""


class DeadlineExceeded(HTTPError, TimeoutError):
    """The whole answer did not arrive before its deadline."""


class Disconnected(HTTPError):
    """The server closed the connection before the answer was complete."""


class ProtocolError(HTTPError):
    """The server's bytes were not an HTTP/1.1 answer."""


class Headers(dict[str, str]):
    """An answer's headers: lower-cased names, repeated ones joined with ', '."""

    def get(self, name: str, default: Any = None) -> Any:  # type: ignore[override]
        return dict.get(self, name.lower(), default)


class Target:
    """A URL with fixed headers, encoded once: what every POST to it starts with."""

    __slots__ = ("head", "host", "key", "port", "tls")

    def __init__(self, url: str, headers: dict[str, str]) -> None:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {url!r}")
        self.tls = parts.scheme == "https"
        self.host = parts.hostname
        self.port = parts.port or (443 if self.tls else 80)
        self.key = (self.tls, self.host, self.port)
        default_port = self.port == (443 if self.tls else 80)
        host = f"[{self.host}]" if ":" in self.host else self.host
        authority = host if default_port else f"{host}:{self.port}"
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        lines = [f"POST {path} HTTP/1.1", f"Host: {authority}"]
        for name, value in headers.items():
            if name.lower() in ("host", "content-length", "transfer-encoding", "connection"):
                continue  # the client writes these itself
            check_header(name, value)
            lines.append(f"{name}: {value}")
        self.head = ("\r\n".join(lines) + "\r\nContent-Length: ").encode("latin-1")

    def request(self, body: bytes) -> bytes:
        return self.head + b"%d\r\n\r\n" % len(body) + body


def check_header(name: str, value: str) -> None:
    """Refuse a header that cannot be sent as it is (a line break would start another header)."""
    if not name or not name.isascii() or any(c in name for c in ' \t\r\n:()<>@,;\\"/[]?={}'):
        raise ValueError(f"invalid header name {name!r}")
    if "\r" in value or "\n" in value or "\0" in value:
        raise ValueError(f"header {name!r} has a line break in its value")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError:
        raise ValueError(f"header {name!r} has a value that is not latin-1") from None


class Response:
    """An answer whose status and headers have arrived; its body is read with :meth:`read` or
    :meth:`iter_any`. Close it (or use ``async with``) to give its connection back."""

    def __init__(self, conn: _Connection) -> None:
        self._conn = conn
        self.status = 0
        self.reason = ""
        self.headers = Headers()
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: BaseException | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._read_timeout: float | None = None
        self._deadline: float | None = None

    @property
    def content_length(self) -> int | None:
        value = self.headers.get("content-length")
        try:
            return int(value) if value is not None else None
        except ValueError:
            return None

    @property
    def content_type(self) -> str:
        return self.headers.get("content-type", "application/octet-stream").partition(";")[0].strip().lower()

    def is_eof(self) -> bool:
        """The whole body has arrived (it may still be unread)."""
        return self._complete

    async def read(self) -> bytes:
        """The rest of the body, whole."""
        parts: list[bytes] = []
        while True:
            if self._chunks:  # taken as they come, so that reading never pauses for them
                parts.extend(self._chunks)
                self._take_all()
            if self._complete:
                return parts[0] if len(parts) == 1 else b"".join(parts)
            await self._wait()

    async def iter_any(self) -> AsyncIterator[bytes]:
        """The body in the pieces it arrives in."""
        while True:
            if self._chunks:
                data = b"".join(self._chunks)
                self._take_all()
                yield data
            elif self._complete:
                return
            else:
                await self._wait()

    def close(self) -> None:
        """Give the connection back (a complete, reusable answer) or drop it."""
        conn, self._conn = self._conn, None
        if conn is not None:
            conn.finished(self)

    async def __aenter__(self) -> Response:
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.close()

    def _take_all(self) -> None:
        self._chunks.clear()
        self._buffered = 0
        if self._conn is not None:
            self._conn.drained()

    async def _wait(self) -> None:
        if self._error is not None:
            raise self._error
        if self._conn is None:
            raise Disconnected("the answer was closed")
        waiter = self._waiter = self._conn.loop.create_future()
        try:
            await self._until(waiter)
        finally:
            self._waiter = None

    async def _until(self, future: asyncio.Future[Any]) -> None:
        """Await ``future``, failing it at the read timeout or the deadline, whichever comes first."""
        limit = self._deadline
        if self._read_timeout is not None:
            gap = future.get_loop().time() + self._read_timeout
            limit = gap if limit is None else min(limit, gap)
        if limit is None:
            await future
            return
        timer = future.get_loop().call_at(limit, self._timed_out, future)
        try:
            await future
        finally:
            timer.cancel()

    def _timed_out(self, waiter: asyncio.Future[Any]) -> None:
        if waiter.done():
            return
        if self._deadline is not None and waiter.get_loop().time() >= self._deadline:
            waiter.set_exception(DeadlineExceeded("the answer did not arrive in time"))
        else:
            waiter.set_exception(ReadTimeout("no byte arrived in time"))

    def _wake(self) -> None:
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _fail(self, exc: BaseException) -> None:
        self._error = exc
        waiter = self._waiter
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)


class _SecondAnswer(Exception):
    """Raised inside the parser when bytes after a complete answer start another one."""


class _Connection(asyncio.Protocol):
    """One upstream connection; one answer at a time."""

    def __init__(self, pool: _HostPool, loop: asyncio.AbstractEventLoop) -> None:
        self.pool = pool
        self.loop = loop
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpResponseParser(self)
        self.response: Response | None = None
        self.head: asyncio.Future[Response] | None = None
        self.closed = False
        self.paused = False
        self.got_bytes = False
        self.idle_since = 0.0
        self.reusable = False

    # asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        response = self.response
        if response is None or response._complete:  # bytes nobody asked for: not to be trusted again
            self.reusable = False
            self.abort()
            return
        self.got_bytes = True
        try:
            self.parser.feed_data(data)
        except (httptools.HttpParserError, httptools.HttpParserUpgrade) as exc:
            self._broken(ProtocolError(f"not an HTTP answer ({type(exc).__name__})"))

    def eof_received(self) -> bool:
        return False  # close the transport

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self.pool.lost(self)
        response = self.response
        if response is None or response._complete:
            return
        if self.head is None and not _length_delimited(response):
            response._complete = True  # an answer delimited by the connection's end
            self.reusable = False
            response._wake()
            return
        self._broken(Disconnected("the server closed the connection before the answer was complete"))

    # httptools callbacks
    def on_message_begin(self) -> None:
        response = self.response
        if response is None or response._complete:
            # A second answer to one request: stop parsing (feed_data raises), so that nothing
            # of it lands in the first answer, which stays readable; the connection is dropped.
            raise _SecondAnswer

    def on_status(self, status: bytes) -> None:
        self.response.reason += status.decode("latin-1")  # type: ignore[union-attr]

    def on_header(self, name: bytes, value: bytes) -> None:
        headers = self.response.headers  # type: ignore[union-attr]
        key = name.decode("latin-1").lower()
        text = value.decode("latin-1")
        headers[key] = f"{headers[key]}, {text}" if key in headers else text

    def on_headers_complete(self) -> None:
        response = self.response
        response.status = self.parser.get_status_code()  # type: ignore[union-attr]
        if 100 <= response.status < 200:  # type: ignore[union-attr]
            response.headers = Headers()  # an interim answer: the real one follows
            response.reason = ""  # type: ignore[union-attr]
            return
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_result(response)  # type: ignore[arg-type]

    def on_body(self, body: bytes) -> None:
        response = self.response
        response._chunks.append(body)  # type: ignore[union-attr]
        response._buffered += len(body)  # type: ignore[union-attr]
        if response._buffered > HIGH_WATER and not self.paused and self.transport is not None:  # type: ignore[union-attr]
            self.paused = True
            self.transport.pause_reading()
        response._wake()  # type: ignore[union-attr]

    def on_message_complete(self) -> None:
        response = self.response
        if response is None or 100 <= response.status < 200:
            return
        response._complete = True
        self.reusable = self.parser.should_keep_alive()
        response._wake()

    # the client's side
    def send(self, target: Target, body: bytes) -> asyncio.Future[Response]:
        self.response = Response(self)
        self.head = self.loop.create_future()
        self.got_bytes = False
        self.reusable = False
        self.transport.write(target.request(body))  # type: ignore[union-attr]
        return self.head

    def drained(self) -> None:
        if self.paused and self.transport is not None:
            self.paused = False
            self.transport.resume_reading()

    def finished(self, response: Response) -> None:
        """The caller is done with ``response``: keep the connection for the next request if it can be."""
        self.response = None
        self.head = None
        if response._complete and self.reusable and not self.closed and not self.paused:
            self.idle_since = self.loop.time()
            self.pool.release(self)
        else:
            self.abort()

    def abort(self) -> None:
        if not self.closed:
            self.closed = True
            if self.transport is not None:
                self.transport.abort()
            self.pool.lost(self)

    def _broken(self, exc: HTTPError) -> None:
        head, self.head = self.head, None
        if head is not None and not head.done():
            head.set_exception(exc)
        if self.response is not None:
            self.response._fail(exc)
        self.abort()


def _length_delimited(response: Response) -> bool:
    te = response.headers.get("transfer-encoding", "").lower()
    return "content-length" in response.headers or "chunked" in te


class _HostPool:
    """The connections to one (scheme, host, port)."""

    def __init__(self, client: Client, target: Target) -> None:
        self.client = client
        self.idle: list[_Connection] = []
        self.open: set[_Connection] = set()
        self.opening = 0
        self.waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self.host, self.port, self.tls = target.host, target.port, target.tls

    def lost(self, conn: _Connection) -> None:
        if conn in self.open:
            self.open.discard(conn)
            with contextlib.suppress(ValueError):
                self.idle.remove(conn)
            self._wake_one()

    def release(self, conn: _Connection) -> None:
        self.idle.append(conn)
        self._wake_one()

    def _wake_one(self) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_result(None)
                return

    def _idle_connection(self) -> _Connection | None:
        now = self.client.loop.time()
        while self.idle:
            conn = self.idle.pop()
            if not conn.closed and not conn.transport.is_closing() and now - conn.idle_since < self.client.keepalive:
                return conn
            conn.abort()
        return None

    async def acquire(self, connect_timeout: float | None) -> tuple[_Connection, bool]:
        """A connection to send on, and whether it was used before."""
        while True:
            conn = self._idle_connection()
            if conn is not None:
                return conn, True
            if len(self.open) + self.opening < self.client.limit_per_host:
                return await self._connect(connect_timeout), False
            waiter = self.client.loop.create_future()
            self.waiters.append(waiter)
            try:
                await waiter
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self._wake_one()  # pass the turn on
                raise

    async def _connect(self, connect_timeout: float | None) -> _Connection:
        loop = self.client.loop
        self.opening += 1
        try:
            async with asyncio.timeout(connect_timeout):
                _, conn = await loop.create_connection(
                    lambda: _Connection(self, loop),
                    self.host,
                    self.port,
                    ssl=self.client.ssl_context if self.tls else None,
                    server_hostname=self.host if self.tls else None,
                )
        except TimeoutError:
            raise ConnectTimeout(f"no connection to {self.host}:{self.port} within {connect_timeout} s") from None
        except (OSError, ssl.SSLError) as exc:
            raise ConnectError(f"cannot connect to {self.host}:{self.port} ({type(exc).__name__})") from None
        finally:
            self.opening -= 1
            if len(self.open) + self.opening < self.client.limit_per_host:
                self._wake_one()
        self.open.add(conn)
        return conn


class Client:
    """Keep-alive HTTP/1.1 POSTs to upstreams; one per gateway process."""

    def __init__(
        self,
        limit_per_host: int = 256,
        keepalive: float = KEEPALIVE,
        ssl_context: ssl.SSLContext | None = None,
    ) -> None:
        self.limit_per_host = limit_per_host
        self.keepalive = keepalive
        self.ssl_context = ssl_context or ssl.create_default_context()
        self.pools: dict[tuple[bool, str, int], _HostPool] = {}
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def loop(self) -> asyncio.AbstractEventLoop:
        if self._loop is None:
            self._loop = asyncio.get_running_loop()
        return self._loop

    async def post(
        self,
        target: Target,
        body: bytes,
        *,
        connect_timeout: float | None = None,
        read_timeout: float | None = None,
        deadline: float | None = None,
    ) -> Response:
        """POST ``body`` to ``target``; returns once the answer's status and headers have arrived."""
        pool = self.pools.get(target.key)
        if pool is None:
            pool = self.pools[target.key] = _HostPool(self, target)
        for retry in (True, False):
            conn, reused = await pool.acquire(connect_timeout)
            try:
                head = conn.send(target, body)
                response = conn.response
                response._read_timeout, response._deadline = read_timeout, deadline  # type: ignore[union-attr]
                if not head.done():
                    await response._until(head)  # type: ignore[union-attr]
                return head.result()
            except Disconnected:
                if retry and reused and not conn.got_bytes:
                    continue  # the server had closed this idle connection: once more, on a new one
                raise
            except BaseException:
                conn.abort()
                raise
        raise AssertionError("unreachable")

    async def close(self) -> None:
        for pool in self.pools.values():
            for conn in list(pool.open):
                conn.abort()
        self.pools.clear()
