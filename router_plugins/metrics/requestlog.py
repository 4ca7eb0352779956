"""The request log: one JSON line per request on the ``llm_router.requests`` logger, written once per loop turn.

``add`` only queues the line; a callback at the end of the event loop's turn hands the
turn's lines on, so a line is out before the loop next waits for I/O (a process killed
later has written it). Where they go:

- When the only handler a record of the logger would reach is a plain stream or file
  handler (``llm-router serve``'s stderr handler is one), nothing filters on the way, and
  its formatter renders a probe record exactly as :meth:`RequestLog.render` does, the lines
  are written by ``RequestLog`` itself: a cached date per second, one write and one flush per
  batch (batches cut at ``PIPE_BUF`` so that several workers sharing a pipe never split a line).
- Anywhere else (handlers of the user's own, filters, a JSON formatter, pytest's caplog)
  each line is a ``LogRecord`` handed to the logger as ``logger.info`` would, dated when
  the request finished.
"""

from __future__ import annotations

import asyncio
import logging
import time

PIPE_BUF = 4096  # POSIX: a write of at most this many bytes to a pipe is not interleaved with others
PROBE_TS = 1_700_000_000.25


log = logging.getLogger("llm_router.metrics")


class RequestLog:
    """The lines of one app, queued on the event loop and handed on at the end of its turn."""

    def __init__(self, logger: logging.Logger) -> None:
        self.logger = logger
        self.pending: list[tuple[float, bytes]] = []
        self.scheduled: asyncio.Handle | None = None
        self.levelname = logging.getLevelName(logging.INFO)
        self.formatters: dict[logging.Formatter, bool] = {}  # does it render lines as render() does?
        self.second, self.date = -1, ""

    def add(self, ts: float, line: bytes) -> None:
        """Queue one request's line (JSON, UTF-8) finished at ``ts`` (``time.time()``)."""
        self.pending.append((ts, line))
        if self.scheduled is None:
            self.scheduled = asyncio.get_running_loop().call_soon(self.flush)

    def flush(self) -> None:
        """Hand on every queued line (also called at shutdown)."""
        if self.scheduled is not None:
            self.scheduled.cancel()
            self.scheduled = None
        lines, self.pending = self.pending, []
        if not lines:
            return
        handler = self.plain_handler()
        written = self.write(handler, lines) if handler is not None else 0
        for ts, line in lines[written:]:
            try:
                self.emit(ts, line)
            except Exception as exc:  # a filter of the user's raised: that line is lost, not the others
                log.warning("a request log line was not logged (%s)", type(exc).__name__)

    def emit(self, ts: float, line: bytes) -> None:
        """One line as a LogRecord through the logger's handlers and filters (no search of the call stack)."""
        logger = self.logger
        record = logger.makeRecord(
            logger.name, logging.INFO, __file__, 0, line.decode(), None, None, "request_finished"
        )
        record.relativeCreated += (ts - record.created) * 1000
        record.created, record.msecs = ts, int((ts - int(ts)) * 1000) + 0.0
        logger.handle(record)

    def render(self, ts: float, message: str) -> str:
        """``llm-router serve``'s log format (``%(asctime)s %(levelname)s %(name)s: %(message)s``)."""
        second = int(ts)
        if second != self.second:
            self.second, self.date = second, time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(second))
        return f"{self.date},{int((ts - second) * 1000):03d} {self.levelname} {self.logger.name}: {message}"

    def write(self, handler: logging.StreamHandler, lines: list[tuple[float, bytes]]) -> int:
        """Write the lines in batches of at most PIPE_BUF bytes; returns how many went out."""
        written, stream, end = 0, handler.stream, handler.terminator
        handler.acquire()
        try:
            batch: list[str] = []
            size = 0
            for ts, line in lines:
                message = line.decode()
                text = f"{self.render(ts, message)}{end}"
                n = len(text) + len(line) - len(message)  # in bytes: only the JSON may be non-ASCII
                if batch and size + n > PIPE_BUF:
                    stream.write("".join(batch))
                    stream.flush()
                    written += len(batch)
                    batch, size = [], 0
                batch.append(text)
                size += n
            stream.write("".join(batch))
            stream.flush()
            written += len(batch)
        except Exception:  # the stream's trouble: the rest go through logging, which reports it its own way
            pass
        finally:
            handler.release()
        return written

    def plain_handler(self) -> logging.StreamHandler | None:
        """The stream handler every line can be written to directly, or None (see the module's docstring)."""
        logger = self.logger
        if logger.disabled:
            return None
        found: logging.StreamHandler | None = None
        node: logging.Logger | None = logger
        while node is not None:
            if node.filters:
                return None
            for handler in node.handlers:
                if found is not None or not self.is_plain(handler):
                    return None
                found = handler  # type: ignore[assignment]
            if not node.propagate:
                break
            node = node.parent
        return found

    def is_plain(self, handler: logging.Handler) -> bool:
        if type(handler) not in (logging.StreamHandler, logging.FileHandler) or handler.filters:
            return False
        if handler.level > logging.INFO or getattr(handler, "stream", None) is None:
            return False
        formatter = handler.formatter
        if formatter is None:
            return False
        same = self.formatters.get(formatter)
        if same is None:
            probe = self.logger.makeRecord(self.logger.name, logging.INFO, __file__, 0, "{}", None, None, "probe")
            probe.created, probe.msecs = PROBE_TS, 250.0
            try:
                same = formatter.format(probe) == self.render(PROBE_TS, "{}")
            except Exception:  # a formatter of the user's that wants more than a plain record: it gets records
                same = False
            self.formatters[formatter] = same
        return same
