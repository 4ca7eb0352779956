"""One Redis connection that pipelines on its own: the hot path of limits (an admission and a settling per request).

redis-py spends ~100 µs of CPU per command (connection pool, retry wrapper, command
packing, response parsing in Python layers); a busy gateway pays that twice per limited
request. Here a command goes out at once when the connection is idle; while replies are
awaited, the commands issued in one turn of the event loop go out in one write. Replies
come back in order (Redis answers a connection's commands first in, first out) and are
parsed by hiredis (C). Everything else (the startup check, the key registry,
``spend``, Redis Cluster) stays with redis-py.

A command that gets no reply within ``timeout`` seconds aborts the connection, which
fails every command waiting on it; the next command connects again.
"""

from __future__ import annotations

import asyncio
import collections
import ssl
from typing import Any

import hiredis
from redis.asyncio.connection import SSLConnection, UnixDomainSocketConnection, parse_url

#: What a ``redis://`` / ``rediss://`` / ``unix://`` URL may carry for this connection; any other
#: option (TLS files, timeouts in the URL…) makes the store keep redis-py for every command.
SUPPORTED = frozenset({"host", "port", "db", "username", "password", "path", "connection_class", "ssl_cert_reqs"})


class ReplyError(Exception):
    """Redis answered a command with an error (``NOSCRIPT …``, ``NOPERM …``, ``ERR unknown command``)."""


def pipe_address(url: str) -> dict[str, Any] | None:
    """Where a :class:`Pipe` connects for ``url``, or ``None`` when the URL needs redis-py."""
    if "+cluster://" in url:
        return None
    options = parse_url(url)
    if not set(options) <= SUPPORTED:
        return None
    kind = options.pop("connection_class", None)
    tls = None
    if kind is SSLConnection:
        tls = ssl.create_default_context()
        if str(options.pop("ssl_cert_reqs", "required")).lower() in ("none", "optional"):
            tls.check_hostname, tls.verify_mode = False, ssl.CERT_NONE
    elif "ssl_cert_reqs" in options or (kind is not None and kind is not UnixDomainSocketConnection):
        return None
    return {**options, "ssl": tls}


class Pipe(asyncio.Protocol):
    """Commands in, replies out, in order; reconnects on the next command after a failure."""

    def __init__(self, address: dict[str, Any], timeout: float) -> None:
        self.address = address
        self.timeout = timeout
        self.transport: asyncio.Transport | None = None
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.waiting: collections.deque[tuple[asyncio.Future, float]] = collections.deque()
        self.outgoing: list[bytes] = []
        self.flush_at: asyncio.Handle | None = None
        self.watchdog: asyncio.TimerHandle | None = None
        self.connecting: asyncio.Future | None = None
        self.lost_because: BaseException | None = None
        self.loop: asyncio.AbstractEventLoop | None = None

    # ------------------------------------------------------------ commands

    def send(self, *args: Any) -> asyncio.Future:
        """Send a command on the open connection; the future gets its reply (or the failure).

        With nothing else on its way the command is written at once, so the caller's other
        work overlaps the round trip; otherwise it joins what this turn of the loop sends.
        """
        loop = self.loop
        fut = loop.create_future()
        if self.transport is None:  # lost since the caller looked
            fut.set_exception(ConnectionError("Redis connection lost"))
            return fut
        idle = not self.waiting
        self.waiting.append((fut, loop.time()))
        if idle and self.flush_at is None:
            self.transport.write(hiredis.pack_command(args))
            if self.watchdog is None:
                self.watchdog = loop.call_later(self.timeout, self._check)
            return fut
        self.outgoing.append(hiredis.pack_command(args))
        if self.flush_at is None:
            self.flush_at = loop.call_soon(self._flush)
        return fut

    async def call(self, *args: Any) -> Any:
        """One command's reply; raises :class:`ReplyError`, ``ConnectionError`` or ``TimeoutError``."""
        if self.transport is None:
            await self.connect()
        return await self.send(*args)

    @property
    def connected(self) -> bool:
        return self.transport is not None

    def _flush(self) -> None:
        self.flush_at = None
        if not self.outgoing:
            return
        data, self.outgoing = b"".join(self.outgoing), []
        if self.transport is None:  # lost between send and flush: connection_lost failed the futures
            return
        self.transport.write(data)
        if self.watchdog is None:
            self.watchdog = self.loop.call_later(self.timeout, self._check)

    def _check(self) -> None:
        """Abort the connection when its oldest command has waited ``timeout`` seconds (Redis hangs)."""
        self.watchdog = None
        if not self.waiting or self.transport is None:
            return
        overdue = self.waiting[0][1] + self.timeout - self.loop.time()
        if overdue <= 0:
            self.lost_because = TimeoutError(f"Redis did not answer within {self.timeout} s")
            self.transport.abort()
            return
        self.watchdog = self.loop.call_later(overdue, self._check)

    # ------------------------------------------------------------ connection

    async def connect(self) -> None:
        if self.connecting is None:
            self.loop = asyncio.get_running_loop()
            self.connecting = self.loop.create_task(self._open())
        connecting = self.connecting
        try:
            await asyncio.shield(connecting)
        finally:
            if connecting.done():
                connecting.exception()  # retrieved: every caller sees it through the await above
                if self.connecting is connecting:
                    self.connecting = None

    async def _open(self) -> None:
        address, loop = self.address, asyncio.get_running_loop()
        async with asyncio.timeout(self.timeout):
            if address.get("path"):
                await loop.create_unix_connection(lambda: self, address["path"])
            else:
                host = address.get("host", "localhost")
                tls = address.get("ssl")
                await loop.create_connection(
                    lambda: self, host, address.get("port", 6379), ssl=tls, server_hostname=host if tls else None
                )
            hello = []
            if address.get("password") is not None:
                auth = (address["username"], address["password"]) if address.get("username") else (address["password"],)
                hello.append(self.send(b"AUTH", *auth))
            if address.get("db"):
                hello.append(self.send(b"SELECT", address["db"]))
            try:
                for reply in hello:
                    await reply
            except BaseException:
                self.close()
                raise

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        self.reader = hiredis.Reader(replyError=ReplyError)
        self.lost_because = None

    def data_received(self, data: bytes) -> None:
        reader, waiting = self.reader, self.waiting
        reader.feed(data)
        try:
            while (reply := reader.gets()) is not False:
                fut = waiting.popleft()[0]
                if fut.done():  # its caller gave up (cancelled)
                    continue
                if isinstance(reply, ReplyError):
                    fut.set_exception(reply)
                else:
                    fut.set_result(reply)
        except (hiredis.ProtocolError, IndexError) as exc:  # not Redis, or a reply nobody asked for
            self.lost_because = ConnectionError(f"Redis protocol error ({type(exc).__name__})")
            self.transport.abort()

    def connection_lost(self, exc: Exception | None) -> None:
        self.transport = None
        reason = self.lost_because or exc or ConnectionError("Redis closed the connection")
        if not isinstance(reason, (ConnectionError, TimeoutError)):
            reason = ConnectionError(f"Redis connection lost ({type(reason).__name__})")
        self.lost_because = None
        if self.watchdog is not None:
            self.watchdog.cancel()
            self.watchdog = None
        self.outgoing = []
        waiting, self.waiting = self.waiting, collections.deque()
        for fut, _ in waiting:
            if not fut.done():
                fut.set_exception(reason)
                fut.exception()  # a settling nobody awaits must not warn

    # ------------------------------------------------------------ end

    async def drain(self, timeout: float = 5.0) -> None:
        """Wait (at most ``timeout`` s) for the replies of every command already sent."""
        if self.waiting:
            last = self.waiting[-1][0]
            await asyncio.wait([last], timeout=timeout)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()
