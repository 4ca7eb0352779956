"""Real `llm-router serve` processes on one redis-server: one key's limit holds across all of them."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid

import aiohttp

from tests.services import free_port, wait_port

ECHO = {"model": "echo/x", "messages": [{"role": "user", "content": "hi"}]}


def write_config(tmp_path, redis_url: str | None, key: str, rpm: int) -> str:
    store = f'[store]\nurl = "{redis_url}"\n' if redis_url else ""
    path = tmp_path / f"plugins-{uuid.uuid4().hex[:6]}.toml"
    path.write_text(
        f'[plugins]\nenabled = ["keys"]\n{store}'
        f'[keys.{uuid.uuid4().hex[:8]}]\nkey = "{key}"\nrpm = {rpm}\n'
        '[providers.echo]\nkind = "echo"\nzdr = true\n'
    )
    return str(path)


def serve(config: str, port: int, workers: int) -> subprocess.Popen:
    env = {**os.environ, "LLM_ROUTER_LOG": "WARNING"}
    command = [sys.executable, "-m", "router_core.cli", "serve", "--config", config, "--port", str(port)]
    return subprocess.Popen(
        [*command, "--workers", str(workers)], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


async def test_instances_and_workers_share_one_limit(tmp_path, redis_server):
    """Two instances, one of them with two workers: 3 processes, one rpm of 12, 36 requests."""
    key = f"sk-router-{uuid.uuid4().hex}"
    config = write_config(tmp_path, redis_server.url, key, rpm=12)
    ports = [free_port(), free_port()]
    procs = [serve(config, ports[0], 2), serve(config, ports[1], 1)]
    try:
        for port, proc in zip(ports, procs, strict=True):
            wait_port(port, proc, timeout=60)
        headers = {"Authorization": f"Bearer {key}"}
        async with aiohttp.ClientSession() as session:

            async def ask(port: int) -> int:
                # A fresh connection each time, so the kernel spreads them over both workers.
                async with session.post(
                    f"http://127.0.0.1:{port}/v1/chat/completions",
                    json=ECHO,
                    headers={**headers, "Connection": "close"},
                ) as resp:
                    await resp.read()
                    return resp.status

            statuses = await asyncio.gather(*[ask(ports[i % 2]) for i in range(36)])
        assert statuses.count(200) == 12 and statuses.count(429) == 24
    finally:
        for proc in procs:
            stop(proc)


def test_workers_with_limits_on_a_memory_store_refuse_to_start(tmp_path):
    config = write_config(tmp_path, None, f"sk-router-{uuid.uuid4().hex}", rpm=5)
    proc = serve(config, free_port(), 2)
    try:
        _, err = proc.communicate(timeout=60)
    finally:
        stop(proc)
    assert proc.returncode == 2
    text = err.decode()
    assert "2 workers would each count the limits" in text and 'set [store] url = "redis://' in text
