"""The process model: one worker in this process, or a supervisor that forks N and keeps them alive.

The socket is bound once, before any worker starts, and inherited by the workers: the
kernel spreads connections over them, and no other process can join (no SO_REUSEPORT).
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import logging
import os
import select
import signal
import socket
import sys
import time
from collections.abc import Callable

from .config import Config, ConfigError

log = logging.getLogger("llm_router.workers")

# Exit codes: 2 is a configuration the gateway refuses (as for `check`), 1 anything else.
EXIT_CONFIG = 2
EXIT_FAILED = 1
# A worker that is not serving this long after its fork is given up on (model loading included).
STARTUP_TIMEOUT = 120.0
# A worker that dies sooner than this after starting is restarted only after a pause,
# so a crash loop does not spin the CPU.
MIN_WORKER_LIFE = 5.0
# Supervisor's extra patience after the drain deadline before it kills a worker.
KILL_GRACE = 5.0
PR_SET_PDEATHSIG = 1


class StartupFailed(Exception):
    """The gateway could not start; ``code`` is the exit status."""

    def __init__(self, message: str, code: int = EXIT_FAILED) -> None:
        super().__init__(message)
        self.code = code


def _event_loop_runner() -> asyncio.Runner:
    try:
        import uvloop
    except ImportError:
        return asyncio.Runner()
    return asyncio.Runner(loop_factory=uvloop.new_event_loop)


def run_worker(config: Config, sock: socket.socket, url: str, ready: Callable[[], None] | None = None) -> None:
    """Serve on ``sock`` until SIGTERM or SIGINT, then drain. Raises StartupFailed if it cannot start."""
    with _event_loop_runner() as runner:
        runner.run(_serve(config, sock, url, ready))


async def _serve(config: Config, sock: socket.socket, url: str, ready: Callable[[], None] | None) -> None:
    from .app import create_app
    from .server import Serving

    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        app = create_app(config)
        serving = Serving(app, config.server)
        await serving.start(sock)
    except ConfigError as exc:
        raise StartupFailed("; ".join(exc.messages), EXIT_CONFIG) from None
    except (ValueError, OSError) as exc:  # a plugin refused its settings, a resource is missing
        raise StartupFailed(f"cannot start: {exc}", EXIT_CONFIG) from None
    if ready is None:
        log.info("llm-router listening on %s (pid %d)", url, os.getpid())
    else:
        ready()
        parent = os.getppid()
        watch = asyncio.create_task(_watch_parent(parent, stop))
    await stop.wait()
    log.info(
        "pid %d draining: no new connections; in-flight requests get %gs", os.getpid(), config.server.drain_timeout
    )
    if ready is not None:
        watch.cancel()
    await serving.stop()
    log.info("pid %d stopped", os.getpid())


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    """Where PR_SET_PDEATHSIG does not exist: a worker whose supervisor died stops too."""
    while os.getppid() == parent:
        await asyncio.sleep(1.0)
    log.warning("pid %d: supervisor %d is gone; stopping", os.getpid(), parent)
    stop.set()


def _die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when the supervisor dies, however it dies."""
    if not sys.platform.startswith("linux"):
        return
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)


class Supervisor:
    """Forks ``workers`` processes serving ``sock``, restarts one that dies, stops them all on SIGTERM."""

    def __init__(self, config: Config, sock: socket.socket, url: str, workers: int) -> None:
        self.config = config
        self.sock = sock
        self.url = url
        self.count = workers
        self.workers: dict[int, float] = {}  # pid → when it was started
        self.stopping = False

    def run(self) -> int:
        """Supervise until told to stop; returns the exit status."""
        for signum in (signal.SIGTERM, signal.SIGINT):
            signal.signal(signum, self._stop)
        try:
            for _ in range(self.count):
                self._start_worker()
        except StartupFailed as exc:
            print(f"llm-router: {exc}", file=sys.stderr)
            self._stop_all()
            return exc.code
        log.info("llm-router listening on %s (%d workers, supervisor pid %d)", self.url, self.count, os.getpid())
        while not self.stopping:
            self._reap()
            time.sleep(0.2)
        self._stop_all()
        return 0

    def _stop(self, signum: int, frame: object) -> None:
        self.stopping = True

    def _start_worker(self) -> None:
        read_end, write_end = os.pipe()
        pid = os.fork()
        if pid == 0:  # the worker
            os.close(read_end)
            self._worker_main(write_end)
        os.close(write_end)
        self.workers[pid] = time.monotonic()
        try:
            self._wait_ready(pid, read_end)
        finally:
            os.close(read_end)

    def _worker_main(self, ready_fd: int) -> None:
        code = 0
        try:
            _die_with_parent()
            for signum in (signal.SIGTERM, signal.SIGINT):
                signal.signal(signum, signal.SIG_DFL)

            def ready() -> None:
                os.write(ready_fd, b"1")
                os.close(ready_fd)

            run_worker(self.config, self.sock, self.url, ready)
        except StartupFailed as exc:
            print(f"llm-router worker {os.getpid()}: {exc}", file=sys.stderr)
            code = exc.code
        except BaseException as exc:  # a worker must never return into the supervisor's code
            print(f"llm-router worker {os.getpid()}: failed: {type(exc).__name__}", file=sys.stderr)
            code = EXIT_FAILED
        finally:
            logging.shutdown()
            os._exit(code)

    def _wait_ready(self, pid: int, read_end: int) -> None:
        deadline = time.monotonic() + STARTUP_TIMEOUT
        while True:
            readable, _, _ = select.select([read_end], [], [], 0.2)
            if readable and os.read(read_end, 1):
                return
            done, status = os.waitpid(pid, os.WNOHANG)
            if done or readable:  # exited, or closed the pipe without saying ready
                if not done:
                    _, status = os.waitpid(pid, 0)
                self.workers.pop(pid, None)
                code = os.waitstatus_to_exitcode(status)
                raise StartupFailed(
                    f"worker {pid} failed to start ({_describe(code)})", EXIT_CONFIG if code == EXIT_CONFIG else 1
                )
            if self.stopping:
                raise StartupFailed("stopped while starting", 0)
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                self.workers.pop(pid, None)
                raise StartupFailed(f"worker {pid} was not serving after {STARTUP_TIMEOUT:g}s")

    def _reap(self) -> None:
        while self.workers:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            started = self.workers.pop(pid, None)
            if started is None or self.stopping:
                continue
            log.error("worker %d died (%s); starting another", pid, _describe(os.waitstatus_to_exitcode(status)))
            if time.monotonic() - started < MIN_WORKER_LIFE:
                time.sleep(1.0)
            try:
                self._start_worker()
            except StartupFailed as exc:
                log.error("cannot restart a worker: %s", exc)

    def _stop_all(self) -> None:
        """SIGTERM every worker (each drains), SIGKILL whichever outlives the drain deadline."""
        for pid in self.workers:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + self.config.server.drain_timeout + KILL_GRACE
        while self.workers and time.monotonic() < deadline:
            for pid in list(self.workers):
                with contextlib.suppress(ChildProcessError):
                    done, _ = os.waitpid(pid, os.WNOHANG)
                    if not done:
                        continue
                self.workers.pop(pid, None)
            time.sleep(0.05)
        for pid in self.workers:
            log.warning("worker %d outlived the drain deadline; killing it", pid)
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)
        self.workers.clear()


def _describe(code: int) -> str:
    return f"killed by signal {-code}" if code < 0 else f"exit code {code}"
