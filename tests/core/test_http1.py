"""The upstream HTTP/1.1 client (router_core/http1.py) against raw loopback servers that
misbehave on purpose: keep-alive races, chunked and connection-delimited bodies, garbage,
stalls, early closes, back-pressure, the per-host limit, cancellation."""

from __future__ import annotations

import asyncio
import contextlib
import ssl

import pytest
import trustme

from router_core.http1 import (
    Client,
    ConnectError,
    ConnectTimeout,
    DeadlineExceeded,
    Disconnected,
    ProtocolError,
    ReadTimeout,
    Target,
)

OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"


class Server:
    """A loopback server that answers each request with ``answer(n, body) -> list of (delay, bytes)``,
    then closes if the answer says so; counts connections and requests."""

    def __init__(self, answer) -> None:
        self.answer = answer
        self.connections = 0
        self.requests = 0
        self.bodies: list[bytes] = []
        self.server: asyncio.Server | None = None

    async def __aenter__(self) -> Server:
        self.server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.sockets[0].getsockname()[1]}/v1/x"

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                length = int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0])
                body = await reader.readexactly(length)
                self.requests += 1
                self.bodies.append(body)
                for delay, data in self.answer(self.requests, body):
                    if delay:
                        await asyncio.sleep(delay)
                    if data is None:
                        writer.close()
                        return
                    writer.write(data)
                    await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()


def target(server: Server, **headers: str) -> Target:
    return Target(server.url, {"Content-Type": "application/json", **headers})


async def test_connections_are_kept_alive_and_reused():
    async with Server(lambda n, body: [(0, OK)]) as server:
        client = Client()
        for _ in range(3):
            async with await client.post(target(server), b"{}") as resp:
                assert resp.status == 200 and await resp.read() == b"{}"
        assert server.connections == 1 and server.requests == 3
        await client.close()


async def test_the_request_carries_the_headers_and_body():
    seen = []

    def answer(n, body):
        seen.append(body)
        return [(0, OK)]

    async with Server(answer) as server:
        client = Client()
        async with await client.post(target(server, Authorization="Bearer k"), b'{"a":1}') as resp:
            await resp.read()
        assert seen == [b'{"a":1}']
        await client.close()


async def test_a_connection_the_server_closed_while_idle_is_retried_once_on_a_new_one():
    # The server answers and closes without saying so: the keep-alive race.
    async with Server(lambda n, body: [(0, OK), (0, None)]) as server:
        client = Client()
        for _ in range(3):
            async with await client.post(target(server), b"{}") as resp:
                assert await resp.read() == b"{}"
            await asyncio.sleep(0)  # the close may or may not have been seen yet
        assert server.requests == 3
        await client.close()


async def test_chunked_and_connection_delimited_bodies():
    chunked = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n"
    until_close = b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\nall of it"
    async with Server(lambda n, body: [(0, chunked)]) as server:
        client = Client()
        async with await client.post(target(server), b"{}") as resp:
            assert [p async for p in resp.iter_any()] and resp.is_eof()
        async with await client.post(target(server), b"{}") as resp:
            assert await resp.read() == b"abcde"
        assert server.connections == 1
    async with Server(lambda n, body: [(0, until_close), (0.05, None)]) as server:
        async with await client.post(target(server), b"{}") as resp:
            assert await resp.read() == b"all of it"
        async with await client.post(target(server), b"{}") as resp:  # not reused: a new connection
            assert await resp.read() == b"all of it"
        assert server.connections == 2
        await client.close()


@pytest.mark.parametrize(
    "answer",
    [
        [(0, b"SSH-2.0-OpenSSH_9.6\r\n\r\n")],
        [(0, b"HTTP/1.1 200 OK\r\nContent-Length: nope\r\n\r\n")],
        [(0, b"HTTP/1.1 200 OK\r\nBad Header\r\n\r\n")],
    ],
)
async def test_garbage_is_a_protocol_error(answer):
    async with Server(lambda n, body: answer) as server:
        client = Client()
        with pytest.raises(ProtocolError):
            await client.post(target(server), b"{}")
        await client.close()


async def test_a_close_mid_body_is_disconnected_and_mid_head_too():
    partial = b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\nonly this"
    async with Server(lambda n, body: [(0, partial), (0.01, None)]) as server:
        client = Client()
        resp = await client.post(target(server), b"{}")
        with pytest.raises(Disconnected):
            await resp.read()
        resp.close()
    async with Server(lambda n, body: [(0, b"HTTP/1.1 200 OK\r\nContent-"), (0.01, None)]) as server:
        with pytest.raises(Disconnected):
            await client.post(target(server), b"{}")
        await client.close()


async def test_read_timeout_bounds_every_gap_and_the_deadline_the_whole():
    slow_head = [(0.5, OK)]
    stalled_body = [(0, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc"), (5, b"defghij")]
    trickle = [(0, b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n")] + [(0.05, b"x")] * 10
    client = Client()
    loop = asyncio.get_running_loop()
    async with Server(lambda n, body: slow_head) as server:
        with pytest.raises(ReadTimeout):
            await client.post(target(server), b"{}", read_timeout=0.1)
    async with Server(lambda n, body: stalled_body) as server:
        resp = await client.post(target(server), b"{}", read_timeout=0.1)
        with pytest.raises(ReadTimeout):
            await resp.read()
        resp.close()
    async with Server(lambda n, body: trickle) as server:
        resp = await client.post(target(server), b"{}", read_timeout=0.2, deadline=loop.time() + 0.2)
        with pytest.raises(DeadlineExceeded) as caught:
            await resp.read()
        assert isinstance(caught.value, TimeoutError)
        resp.close()
    await client.close()


async def test_an_unfinished_answer_does_not_go_back_to_the_pool():
    big = b"HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\n"
    async with Server(lambda n, body: [(0, big), (0.05, b"abcdef")]) as server:
        client = Client()
        resp = await client.post(target(server), b"{}")
        resp.close()  # before its body
        async with await client.post(target(server), b"{}") as resp:
            assert await resp.read() == b"abcdef"
        assert server.connections == 2
        await client.close()


async def test_bytes_after_a_complete_answer_make_the_connection_untrusted():
    async with Server(lambda n, body: [(0, OK + b"HTTP/1.1 200 OK\r\n")]) as server:
        client = Client()
        async with await client.post(target(server), b"{}") as resp:
            assert await resp.read() == b"{}"
        async with await client.post(target(server), b"{}") as resp:
            assert await resp.read() == b"{}"
        assert server.connections == 2
        await client.close()


async def test_cancelled_mid_answer_closes_the_connection():
    async with Server(lambda n, body: [(0.3 if n == 1 else 0, OK)]) as server:
        client = Client()
        task = asyncio.ensure_future(client.post(target(server), b"{}"))
        await asyncio.sleep(0.05)
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        async with await client.post(target(server), b"{}") as resp:
            assert await resp.read() == b"{}"
        assert server.connections == 2
        await client.close()


async def test_at_most_limit_per_host_connections_and_every_request_served():
    async with Server(lambda n, body: [(0.05, OK)]) as server:
        client = Client(limit_per_host=2)

        async def one() -> bytes:
            async with await client.post(target(server), b"{}") as resp:
                return await resp.read()

        assert await asyncio.gather(*(one() for _ in range(7))) == [b"{}"] * 7
        assert server.connections == 2
        await client.close()


async def test_a_big_answer_pauses_reading_and_arrives_whole():
    size = 5 * 1024 * 1024
    payload = bytes(range(256)) * (size // 256)
    head = b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % size
    async with Server(lambda n, body: [(0, head + payload)]) as server:
        client = Client()
        resp = await client.post(target(server), b"{}")
        await asyncio.sleep(0.2)  # let the buffer fill past the high-water mark
        got = bytearray()
        async for piece in resp.iter_any():
            got += piece
        resp.close()
        assert got == payload
        async with await client.post(target(server), b"{}") as resp:  # and the connection is reusable
            assert len(await resp.read()) == size
        assert server.connections == 1
        await client.close()


async def test_connect_failures():
    client = Client()
    async with Server(lambda n, body: [(0, OK)]) as server:
        closed = target(server)
    with pytest.raises(ConnectError):
        await client.post(closed, b"{}", connect_timeout=1)

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await asyncio.sleep(2)  # a TLS handshake that never gets an answer
        writer.close()

    server = await asyncio.start_server(silent, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    with pytest.raises(ConnectTimeout):
        await client.post(Target(f"https://127.0.0.1:{port}/v1", {}), b"{}", connect_timeout=0.2)
    server.close()
    await client.close()


@pytest.mark.parametrize(
    "headers",
    [{"X-Evil": "a\r\nHost: other"}, {"X Bad": "v"}, {"X-Text": "caf\u00e9\u2603"}, {"": "v"}],
)
def test_headers_that_cannot_be_sent_are_refused_when_the_target_is_built(headers):
    with pytest.raises(ValueError):
        Target("http://127.0.0.1:1/v1", headers)


def test_a_target_is_encoded_once_with_host_and_length():
    t = Target("https://api.example.com/v1/chat/completions?x=1", {"Authorization": "Bearer k", "Host": "evil"})
    request = t.request(b"{}")
    assert request.startswith(b"POST /v1/chat/completions?x=1 HTTP/1.1\r\nHost: api.example.com\r\n")
    assert b"Host: evil" not in request and request.endswith(b"Content-Length: 2\r\n\r\n{}")
    assert t.key == (True, "api.example.com", 443)
    with pytest.raises(ValueError):
        Target("ftp://example.com/x", {})


async def test_tls_upstreams_are_verified_and_kept_alive():
    ca = trustme.CA()
    cert = ca.issue_cert("localhost")
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(server_ctx)
    connections = 0

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal connections
        connections += 1
        with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                await reader.readexactly(int(head.lower().split(b"content-length: ")[1].split(b"\r\n")[0]))
                writer.write(OK)
        writer.close()

    server = await asyncio.start_server(serve, "localhost", 0, ssl=server_ctx)
    port = server.sockets[0].getsockname()[1]
    url = f"https://localhost:{port}/v1/chat/completions"
    trusting = ssl.create_default_context()
    ca.configure_trust(trusting)
    client = Client(ssl_context=trusting)
    for _ in range(2):
        async with await client.post(Target(url, {}), b"{}", connect_timeout=5) as resp:
            assert resp.status == 200 and await resp.read() == b"{}"
    assert connections == 1
    await client.close()
    # The system's trust store does not know this CA: refused, as a connection failure.
    strict = Client()
    with pytest.raises(ConnectError):
        await strict.post(Target(url, {}), b"{}", connect_timeout=5)
    await strict.close()
    server.close()


async def test_a_second_answer_in_the_same_bytes_does_not_touch_the_first():
    second = b"HTTP/1.1 503 Busy\r\nX-Second: 1\r\nContent-Length: 0\r\n\r\n"
    async with Server(lambda n, body: [(0, OK + second)]) as server:
        client = Client()
        async with await client.post(target(server), b"{}") as resp:
            assert await resp.read() == b"{}"
            assert resp.status == 200 and resp.reason == "OK" and "x-second" not in resp.headers
        async with await client.post(target(server), b"{}") as resp:
            assert resp.status == 200
        assert server.connections == 2
        await client.close()
