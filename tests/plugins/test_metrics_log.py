"""The request log's writer: what `serve`'s handler gets, what other handlers get, when lines go out."""

from __future__ import annotations

import asyncio
import io
import logging
import os
import signal
import subprocess
import sys
import time
import uuid

import aiohttp
import orjson

from router_plugins.metrics.requestlog import PIPE_BUF, RequestLog
from tests.services import free_port, wait_port

SERVE_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"  # router_core/cli.py's basicConfig


class Writes(io.StringIO):
    """A stream that remembers each write."""

    def __init__(self) -> None:
        super().__init__()
        self.writes: list[str] = []

    def write(self, s: str) -> int:
        self.writes.append(s)
        return super().write(s)


def alone(fmt: str = SERVE_FORMAT) -> tuple[logging.Logger, logging.StreamHandler, Writes]:
    """A logger whose records reach one stream handler only (pytest's own handlers sit on the root)."""
    logger = logging.getLogger(f"llm_router.requests.test-{uuid.uuid4().hex[:8]}")
    logger.propagate = False
    stream = Writes()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logging.Formatter(fmt))
    logger.addHandler(handler)
    logger.setLevel(logging.INFO)
    return logger, handler, stream


def lines_of(n: int, size: int = 0) -> list[tuple[float, bytes]]:
    start = time.time()
    return [
        (start + i * 0.0137, orjson.dumps({"request_id": f"r-{i}", "pad": "x" * size, "model": "modèle/ü"}))
        for i in range(n)
    ]


async def test_serve_handler_gets_the_lines_logging_would_write_in_one_write_per_turn():
    logger, handler, stream = alone()
    log = RequestLog(logger)
    lines = lines_of(5)
    for ts, line in lines:
        log.add(ts, line)
    assert stream.getvalue() == ""  # queued until the end of the loop turn
    await asyncio.sleep(0)
    assert len(stream.writes) == 1 and log.plain_handler() is handler
    fast = stream.getvalue()
    # the same lines as LogRecords through the same handler (a filter on it keeps them off the fast path)
    stream.seek(0), stream.truncate()
    handler.addFilter(lambda record: True)
    assert log.plain_handler() is None
    for ts, line in lines:
        log.add(ts, line)
    await asyncio.sleep(0)
    assert stream.getvalue() == fast and len(fast.splitlines()) == 5
    assert fast.splitlines()[0].endswith(f"INFO {logger.name}: {lines[0][1].decode()}")


async def test_batches_stay_within_pipe_buf_and_end_at_a_line():
    logger, _, stream = alone()
    log = RequestLog(logger)
    lines = lines_of(40, size=300)
    for ts, line in lines:
        log.add(ts, line)
    await asyncio.sleep(0)
    assert len(stream.writes) > 3
    assert all(len(w.encode()) <= PIPE_BUF and w.endswith("\n") for w in stream.writes)
    got = [orjson.loads(ln.split(": ", 1)[1]) for ln in stream.getvalue().splitlines()]
    assert [g["request_id"] for g in got] == [f"r-{i}" for i in range(40)]


async def test_other_handlers_get_records_dated_when_the_request_finished():
    logger, handler, stream = alone("%(message)s|%(created)f|%(process)d")
    seen: list[logging.LogRecord] = []
    handler.addFilter(lambda record: seen.append(record) or True)
    log = RequestLog(logger)
    lines = lines_of(3)
    for ts, line in lines:
        log.add(ts, line)
    await asyncio.sleep(0)
    assert [r.getMessage() for r in seen] == [line.decode() for _, line in lines]
    assert [r.created for r in seen] == [ts for ts, _ in lines]
    assert all(r.levelno == logging.INFO and r.name == logger.name for r in seen)
    assert stream.getvalue().splitlines()[0] == f"{lines[0][1].decode()}|{lines[0][0]:f}|{os.getpid()}"


async def test_a_formatter_of_another_shape_is_not_bypassed():
    logger, _, stream = alone("%(levelname)s %(message)s")
    log = RequestLog(logger)
    log.add(*lines_of(1)[0])
    await asyncio.sleep(0)
    assert log.plain_handler() is None and stream.getvalue().startswith("INFO {")


async def test_a_failing_stream_hands_the_lines_to_logging(monkeypatch):
    logger, handler, stream = alone()
    failures: list[logging.LogRecord] = []
    monkeypatch.setattr(handler, "handleError", failures.append)

    def broken(s: str) -> int:
        raise OSError("disk full")

    monkeypatch.setattr(stream, "write", broken)
    log = RequestLog(logger)
    for ts, line in lines_of(2):
        log.add(ts, line)
    await asyncio.sleep(0)  # no exception escapes into the loop; logging reports each line its own way
    assert [r.getMessage()[:18] for r in failures] == ['{"request_id":"r-0', '{"request_id":"r-1']


async def test_a_raising_filter_costs_its_line_only(caplog):
    logger, handler, stream = alone("%(message)s")

    def picky(record: logging.LogRecord) -> bool:
        if "r-0" in record.getMessage():
            raise ValueError("no")
        return True

    handler.addFilter(picky)
    log = RequestLog(logger)
    for ts, line in lines_of(2):
        log.add(ts, line)
    await asyncio.sleep(0)
    assert [orjson.loads(ln)["request_id"] for ln in stream.getvalue().splitlines()] == ["r-1"]
    assert "a request log line was not logged (ValueError)" in caplog.text


async def test_a_line_is_written_even_if_the_process_is_killed_right_after(tmp_path):
    """`serve` with its own stderr handler, SIGKILLed 0.2 s after its last answer: every line is in the log."""
    config = tmp_path / "plugins.toml"
    config.write_text('[plugins]\nenabled = ["metrics"]\n[providers.echo]\nkind = "echo"\nzdr = true\n')
    port, err = free_port(), tmp_path / "stderr.log"
    with open(err, "w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "router_core.cli", "serve", "--config", str(config), "--port", str(port)],
            env={**os.environ, "LLM_ROUTER_LOG": "INFO"},
            stdout=subprocess.DEVNULL,
            stderr=out,
        )
    try:
        wait_port(port, proc, timeout=60)
        body = {"model": "echo/x", "messages": [{"role": "user", "content": "hi"}]}
        async with aiohttp.ClientSession() as session:

            async def ask(i: int) -> int:
                url = f"http://127.0.0.1:{port}/v1/chat/completions"
                async with session.post(url, json=body, headers={"x-request-id": f"kill-{i}"}) as resp:
                    await resp.read()
                    return resp.status

            assert await asyncio.gather(*[ask(i) for i in range(20)]) == [200] * 20
        await asyncio.sleep(0.2)
        proc.send_signal(signal.SIGKILL)
        proc.wait(10)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    logged = [ln for ln in err.read_text().splitlines() if " INFO llm_router.requests: " in ln]
    ids = sorted(orjson.loads(ln.split(": ", 1)[1])["request_id"] for ln in logged)
    assert ids == sorted(f"kill-{i}" for i in range(20))
