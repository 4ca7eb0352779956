"""Real services for tests: a throwaway redis-server and PostgreSQL on free loopback ports.

``scripts/services.sh`` (run by ``.ci/run``) installs them; a test that needs one is
skipped with the reason only when the binary is missing.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterator

import pytest


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_port(port: int, proc: subprocess.Popen, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"service exited with {proc.returncode}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"service did not listen on {port} within {timeout}s")


class RedisServer:
    """A redis-server that a test may stop and start again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.dir = tempfile.mkdtemp(prefix="llm-router-redis-")
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        args = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"]
        self.proc = subprocess.Popen([*args, "--dir", self.dir], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        wait_port(self.port, self.proc)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.dir, ignore_errors=True)


def measure_on_a_redis(measure: Callable[[str, int], Awaitable[None]], default_n: int) -> None:
    """Run ``measure(url, n)`` against a throwaway redis-server, on uvloop as the gateway runs
    (the store measurements in scripts/); ``--n`` on the command line."""
    import argparse
    import asyncio

    import uvloop

    parser = argparse.ArgumentParser()
    parser.add_argument("--n", type=int, default=default_n)
    n = parser.parse_args().n
    server = RedisServer()
    server.start()
    try:
        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            runner.run(measure(server.url, n))
    finally:
        server.close()


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if not shutil.which("redis-server"):
        pytest.skip("redis-server is not installed (scripts/services.sh installs it)")
    server = RedisServer()
    server.start()
    yield server
    server.close()


def postgres_bin() -> str | None:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    return os.path.dirname(found[-1]) if found else None


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL cluster on a free port; yields its ``postgresql://`` URL."""
    bindir = postgres_bin()
    if bindir is None:
        pytest.skip("PostgreSQL is not installed (scripts/services.sh installs it)")
    root = tempfile.mkdtemp(prefix="llm-router-pg-")
    data, port = os.path.join(root, "data"), free_port()
    as_user: list[str] = []
    if os.geteuid() == 0:  # initdb refuses to run as root: run the cluster as nobody
        os.chmod(root, 0o777)
        as_user = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups"]
    run = dict(check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    subprocess.run([*as_user, f"{bindir}/initdb", "-D", data, "-U", "router", "--auth=trust"], **run)
    proc = subprocess.Popen(
        [*as_user, f"{bindir}/postgres", "-D", data, "-p", str(port), "-h", "127.0.0.1", "-k", root],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_port(port, proc)
        yield f"postgresql://router@127.0.0.1:{port}/postgres"
    finally:
        proc.terminate()
        proc.wait(20)
        shutil.rmtree(root, ignore_errors=True)
