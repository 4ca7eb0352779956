"""``llm-router serve`` as real processes: one socket, a supervisor that restarts and stops its
workers, clear failures, and a SIGTERM that lets in-flight streams finish."""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from tests.fakes import chat_chunks

HI = [{"role": "user", "content": "hi"}]
JSON = {"Content-Type": "application/json"}


def write_config(tmp_path: Path, upstream_url: str, extra: str = "") -> Path:
    path = tmp_path / "plugins.toml"
    path.write_text(
        f"""
[server]
drain_timeout = 5
{extra}
[providers.openai]
kind = "openai-chat"
base_url = "{upstream_url}"
api_key = "sk-test-provider-secret-123"
"""
    )
    return path


def serve_command(config: Path, *args: str) -> list[str]:
    """``llm-router serve --config config *args``, run by this interpreter."""
    return [sys.executable, "-m", "router_core.cli", "serve", "--config", str(config), *args]


class Gateway:
    """A ``llm-router serve`` process; ``port`` is read from its 'listening' log line."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.log: list[str] = []
        self.port = 0

    @classmethod
    async def start(cls, config: Path, *args: str, expect_listening: bool = True, preexec_fn=None) -> Gateway:
        proc = await asyncio.create_subprocess_exec(
            *serve_command(config, *args),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
            env={**os.environ, "LLM_ROUTER_LOG": "INFO"},
            preexec_fn=preexec_fn,
        )
        gateway = cls(proc)
        gateway.reader = asyncio.create_task(gateway._read())
        if expect_listening:
            async with asyncio.timeout(60):
                while not gateway.port:
                    if proc.returncode is not None:
                        raise AssertionError("\n".join(gateway.log))
                    await asyncio.sleep(0.05)
        return gateway

    async def _read(self) -> None:
        assert self.proc.stderr is not None
        async for raw in self.proc.stderr:
            line = raw.decode(errors="replace").rstrip()
            self.log.append(line)
            if "listening on http://" in line:
                self.port = int(line.split("listening on http://", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])

    async def wait(self, timeout: float) -> int:
        async with asyncio.timeout(timeout):
            code = await self.proc.wait()
            await self.reader
            return code

    def text(self) -> str:
        return "\n".join(self.log)

    def workers(self) -> set[int]:
        children = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return {int(p) for p in children.read_text().split()} if children.exists() else set()

    async def stop(self) -> None:
        if self.proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                self.proc.kill()
            await self.proc.wait()
        self.reader.cancel()


@pytest.fixture
async def gateways():
    started: list[Gateway] = []

    async def start(*args: Any, **kw: Any) -> Gateway:
        gateway = await Gateway.start(*args, **kw)
        started.append(gateway)
        return gateway

    yield start
    for gateway in started:
        await gateway.stop()


@pytest.fixture
async def slow_upstream(aiohttp_server):
    """An OpenAI-compatible fake whose streams take ~1.5 s (30 chunks, 50 ms apart)."""

    async def handle(request: web.Request) -> web.StreamResponse:
        body = await request.json()
        if not body.get("stream"):
            return web.json_response(
                {
                    "id": "c",
                    "object": "chat.completion",
                    "created": 1,
                    "model": body["model"],
                    "choices": [
                        {"index": 0, "message": {"role": "assistant", "content": "ok"}, "finish_reason": "stop"}
                    ],
                    "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                }
            )
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await resp.prepare(request)
        for chunk in chat_chunks(["tick"] * 30, body["model"]):
            await resp.write(chunk)
            await asyncio.sleep(0.05)
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/v1/chat/completions", handle)
    server = await aiohttp_server(app)
    return str(server.make_url("/v1"))


async def ask(port: int, stream: bool = False) -> tuple[int, bytes]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20)) as session:
        body = {"model": "openai/m", "messages": HI, "stream": stream}
        async with session.post(f"http://127.0.0.1:{port}/v1/chat/completions", json=body, headers=JSON) as resp:
            return resp.status, await resp.read()


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with contextlib.suppress(FileNotFoundError):
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    return False


async def until(predicate, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.05)
    return predicate()


# ---------------------------------------------------------------- starting


async def test_port_in_use_fails_clearly(gateways, tmp_path, slow_upstream):
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        for workers in ("1", "2"):
            gateway = await gateways(
                write_config(tmp_path, slow_upstream), "--port", str(port), "--workers", workers, expect_listening=False
            )
            assert await gateway.wait(30) == 1
            assert "already in use" in gateway.text()
            assert "Traceback" not in gateway.text() and "listening" not in gateway.text()


async def test_a_second_gateway_cannot_share_the_port(gateways, tmp_path, slow_upstream):
    config = write_config(tmp_path, slow_upstream)
    first = await gateways(config, "--port", "0", "--workers", "2")
    second = await gateways(config, "--port", str(first.port), expect_listening=False)
    assert await second.wait(30) == 1
    assert "already in use" in second.text()


@pytest.mark.parametrize("workers", ["1", "3"])
async def test_a_gateway_that_cannot_start_exits_non_zero(gateways, tmp_path, slow_upstream, workers):
    # A plugin that refuses its settings when it starts (router_startup, in each worker).
    extra = '[plugins]\nenabled = ["llm-scorer", "scorer"]\n[plugins.llm-scorer]\ntimeout = -1\n'
    gateway = await gateways(
        write_config(tmp_path, slow_upstream, extra), "--port", "0", "--workers", workers, expect_listening=False
    )
    assert await gateway.wait(60) == 2
    assert "llm-scorer" in gateway.text() and "listening" not in gateway.text()
    assert "Traceback" not in gateway.text()


async def test_an_empty_client_key_stops_serve_and_check(gateways, tmp_path, slow_upstream):
    # Other unusable keys: tests/core/test_hardening.py::test_unusable_client_keys_are_a_config_error
    config = write_config(tmp_path, slow_upstream, 'api_keys = [""]')
    gateway = await gateways(config, "--port", "0", expect_listening=False)
    assert await gateway.wait(30) == 2
    assert "server.api_keys" in gateway.text()
    check = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "router_core.cli", "check", "--config", str(config), stderr=asyncio.subprocess.PIPE
    )
    _, err = await check.communicate()
    assert check.returncode == 2 and b"server.api_keys" in err


# ---------------------------------------------------------------- supervising


async def test_workers_die_with_a_killed_supervisor(gateways, tmp_path, slow_upstream):
    gateway = await gateways(write_config(tmp_path, slow_upstream), "--port", "0", "--workers", "2")
    workers = gateway.workers()
    assert len(workers) == 2
    assert (await ask(gateway.port))[0] == 200
    gateway.proc.kill()
    await gateway.proc.wait()
    assert await until(lambda: not any(alive(pid) for pid in workers), 10), "orphaned workers still serving"


async def test_a_dead_worker_is_logged_and_replaced(gateways, tmp_path, slow_upstream):
    gateway = await gateways(write_config(tmp_path, slow_upstream), "--port", "0", "--workers", "2")
    workers = gateway.workers()
    victim = min(workers)
    os.kill(victim, signal.SIGKILL)
    assert await until(lambda: len(gateway.workers() - {victim}) == 2, 15), gateway.text()
    assert f"worker {victim} died (killed by signal 9)" in gateway.text()
    for _ in range(6):
        assert (await ask(gateway.port))[0] == 200


# ---------------------------------------------------------------- draining


@pytest.mark.parametrize("workers", ["1", "2"])
async def test_sigterm_lets_in_flight_streams_finish_then_exits(gateways, tmp_path, slow_upstream, workers):
    gateway = await gateways(write_config(tmp_path, slow_upstream), "--port", "0", "--workers", workers)
    streams = [asyncio.create_task(ask(gateway.port, stream=True)) for _ in range(4)]
    await asyncio.sleep(0.4)  # the streams are under way
    gateway.proc.send_signal(signal.SIGTERM)
    await asyncio.sleep(0.3)
    with pytest.raises(aiohttp.ClientError):  # no longer accepting
        await ask(gateway.port)
    for status, body in await asyncio.gather(*streams):
        assert status == 200
        assert body.count(b'"tick"') == 30 and body.endswith(b"data: [DONE]\n\n")
    assert await gateway.wait(10) == 0
    assert "draining" in gateway.text()


async def test_drain_deadline_bounds_the_exit(gateways, tmp_path, slow_upstream):
    config = write_config(tmp_path, slow_upstream, "").read_text().replace("drain_timeout = 5", "drain_timeout = 0.5")
    path = tmp_path / "short.toml"
    path.write_text(config)
    gateway = await gateways(path, "--port", "0")
    stream = asyncio.create_task(ask(gateway.port, stream=True))
    await asyncio.sleep(0.3)
    started = time.monotonic()
    gateway.proc.send_signal(signal.SIGTERM)
    assert await gateway.wait(10) == 0
    assert time.monotonic() - started < 3
    with contextlib.suppress(aiohttp.ClientError):
        _, body = await stream
        assert body.count(b'"tick"') < 30  # cut at the deadline


def _low_fd_limit() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_NOFILE, (256, 256))


async def test_too_few_file_descriptors_for_the_connection_cap_stops_serve(tmp_path, slow_upstream):
    proc = await asyncio.create_subprocess_exec(
        *serve_command(write_config(tmp_path, slow_upstream, "max_connections = 768"), "--port", "0"),
        stderr=asyncio.subprocess.PIPE,
        preexec_fn=_low_fd_limit,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode == 2
    assert b"server.max_connections = 768 needs 1600 file descriptors" in err
    assert b"at most 96" in err and b"listening" not in err


async def test_the_default_connection_cap_fits_a_low_fd_limit_and_refuses_the_rest_cleanly(
    gateways, tmp_path, slow_upstream
):
    """At ulimit -n 256 an unset cap becomes 96: idle connections past it are refused cleanly, and the
    gateway serves again as soon as they leave (the issue: 1,100 idle connections at 1,024 broke every request)."""
    gateway = await gateways(write_config(tmp_path, slow_upstream), "--port", "0", preexec_fn=_low_fd_limit)
    assert "at most 96 client connections per worker" in gateway.text()
    idle = [await asyncio.open_connection("127.0.0.1", gateway.port) for _ in range(150)]
    try:
        await asyncio.sleep(0.2)
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        refused = await asyncio.wait_for(reader.read(), 5)  # answered at once, before any request
        writer.close()
        assert refused.startswith(b"HTTP/1.1 503") and b"too_many_connections" in refused
    finally:
        for _, idle_writer in idle:
            idle_writer.close()
    await asyncio.sleep(0.5)
    async with aiohttp.ClientSession() as session, session.get(f"http://127.0.0.1:{gateway.port}/healthz") as resp:
        assert resp.status == 200
    assert "Traceback" not in gateway.text()  # the refusals run on uvloop's transports too


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def test_memory_of_stalled_uploads_goes_back_to_the_os(gateways, tmp_path, slow_upstream):
    gateway = await gateways(write_config(tmp_path, slow_upstream, "body_timeout = 2"), "--port", "0")
    before = rss_mb(gateway.proc.pid)
    size = 8 * 1024 * 1024

    async def stall() -> bytes:  # one byte short of 8 MB, then nothing
        reader, writer = await asyncio.open_connection("127.0.0.1", gateway.port)
        head = "POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
        writer.write(f"{head}Content-Length: {size}\r\n\r\n".encode())
        for sent in range(0, size - 1, 1 << 16):
            writer.write(bytes(min(1 << 16, size - 1 - sent)))
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(100), 30)
        writer.close()
        return answer

    answers = await asyncio.gather(*(stall() for _ in range(60)))
    assert all(a.startswith(b"HTTP/1.1 408") for a in answers)
    assert await until(lambda: rss_mb(gateway.proc.pid) < before + 40, 5), (before, rss_mb(gateway.proc.pid))
