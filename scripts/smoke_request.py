"""Start ``llm-router serve`` on a free loopback port and send it the requests a new user sends first.

Used by scripts/wheel-smoke.sh with the gateway installed from the wheel; standard library only,
so that nothing but the wheel and its dependencies is installed.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

KEY = "sk-router-wheel-smoke-test-key"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def post(base: str, path: str, body: dict) -> tuple[int, dict, dict]:
    request = urllib.request.Request(
        base + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {KEY}"},
    )
    try:
        with urllib.request.urlopen(request, timeout=30) as resp:
            return resp.status, dict(resp.headers), json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), json.loads(err.read())


def wait_ready(base: str, server: subprocess.Popen) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"llm-router serve exited with {server.returncode}")
        try:
            with urllib.request.urlopen(base + "/healthz", timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    raise SystemExit("llm-router serve did not answer /healthz within 60 s")


def main(executable: str, config: str) -> None:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = {**os.environ, "ROUTER_API_KEY": KEY}
    server = subprocess.Popen([executable, "serve", "--config", config, "--port", str(port)], env=env)
    try:
        wait_ready(base, server)
        # The README's first example, on the offline echo provider.
        status, headers, body = post(
            base,
            "/v1/responses",
            {
                "model": "echo/gpt-4o-mini",
                "input": "Summarise RFC 9110 in one line; reply to ann@example.com",
                "gateway": {"zdr": True, "redact": {"email": True}},
            },
        )
        assert status == 200, (status, body)
        assert "ann@example.com" not in json.dumps(body), "the e-mail address reached the provider"
        assert headers.get("x-router-redactions") == "email=1", headers
        assert headers.get("x-request-id"), headers
        # Intent routing: the scorer and the tags plugin, loaded from the wheel.
        tags = [
            {
                "name": "code",
                "description": "programming, code, debugging software",
                "models": ["echo/big", "echo/small"],
            },
            {"name": "chat", "description": "small talk, greetings", "models": ["echo/chat"]},
        ]
        status, headers, body = post(
            base,
            "/v1/chat/completions",
            {
                "messages": [{"role": "user", "content": "Fix the bug in this Python function that parses dates"}],
                "gateway": {"tags": tags},
            },
        )
        assert status == 200, (status, body)
        assert headers.get("x-router-tag") == "code", headers
        # Image generation, offline: the echo provider draws a picture.
        status, _, body = post(
            base,
            "/v1/responses",
            {"model": "echo/x", "input": "draw a red fox in the snow", "gateway": {"imageGenerationModel": "echo/pic"}},
        )
        assert status == 200 and body["output"][0]["type"] == "image_generation_call", (status, body)
        status, _, body = post(base, "/v1/chat/completions", {"model": "echo/x", "messages": "not a list"})
        assert status == 400 and body["error"]["param"], (status, body)
    finally:
        server.terminate()
        server.wait(timeout=10)
    print("smoke requests: ok")


if __name__ == "__main__":
    main(*sys.argv[1:])
