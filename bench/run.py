"""``make bench``: the gateway against a fast fake upstream, next to a bare aiohttp passthrough.

Layout (DESIGN §7): the fake upstream and the load generator share core 1; the target under
test (bare passthrough or the gateway, one worker, every plugin of the repo's plugins.toml
``[plugins].enabled``) runs alone on core 0.  Load comes from ``wrk`` (installed with apt when
missing and running as root) or, failing that, from ``bench/loadgen.py`` (aiohttp client).

Measured for each target at concurrency 1, 8 and 64: requests/s, p50 and p99 latency, non-2xx
answers, and how much CPU processes the benchmark did not start used meanwhile (a point they
disturbed is measured again, up to ``--retries`` times).  Then a streaming check: time to first byte through the gateway when the upstream
sends its first chunk and then waits 200 ms.

    .venv/bin/python bench/run.py            # ~1 minute of load, 5 s per point after 1 s warm-up
    .venv/bin/python bench/run.py --quick    # ~30 s
    .venv/bin/python bench/run.py --profile  # also py-spy the gateway under c8 (needs py-spy)

Only 127.0.0.1; every process it starts is killed when it ends, on error or Ctrl-C too.
"""

from __future__ import annotations

import argparse
import asyncio
import atexit
import collections
import http.client
import json
import os
import platform
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import tomllib
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
HOST = "127.0.0.1"
CONCURRENCIES = (1, 8, 64)
NOISE_PCT = 10.0  # % of a core used by foreign processes above which a point counts as disturbed
STREAM_DELAY = 0.2  # seconds the fake upstream waits after the first streamed chunk

# ---------------------------------------------------------------- processes


class Processes:
    """Every child, each in its own session so a kill reaches its whole group."""

    def __init__(self) -> None:
        self.children: list[tuple[str, subprocess.Popen]] = []

    def start(
        self, name: str, argv: list[str], core: int | None, log: Path | None = None, **kw: Any
    ) -> subprocess.Popen:
        out = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - closed with the process
        proc = subprocess.Popen(
            argv,
            stdout=kw.pop("stdout", out),
            stderr=kw.pop("stderr", subprocess.STDOUT if log else subprocess.DEVNULL),
            stdin=subprocess.DEVNULL,
            preexec_fn=pin(core),
            start_new_session=True,
            cwd=REPO,
            **kw,
        )
        self.children.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, grace: float = 3.0) -> None:
        if proc.poll() is None:
            with _quiet():
                os.killpg(proc.pid, signal.SIGTERM)
            try:
                proc.wait(grace)
            except subprocess.TimeoutExpired:
                with _quiet():
                    os.killpg(proc.pid, signal.SIGKILL)
                with _quiet():
                    proc.wait(grace)

    def stop_all(self) -> None:
        while self.children:
            _, proc = self.children.pop()
            self.stop(proc)


class _quiet:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: object) -> bool:
        return exc[0] is not None and issubclass(exc[0], (ProcessLookupError, PermissionError, ChildProcessError))


def pin(core: int | None):
    if core is None:
        return None
    return lambda: os.sched_setaffinity(0, {core})


def cores() -> tuple[int | None, int | None]:
    """(core for the target, core for upstream + load), or no pinning on a 1-core machine."""
    available = os.sched_getaffinity(0)
    if {0, 1} <= available:
        return 0, 1
    print(f"note: fewer than 2 usable cores ({sorted(available)}); nothing is pinned", file=sys.stderr)
    return None, None


def free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return s.getsockname()[1]


def wait_ready(name: str, proc: subprocess.Popen, port: int, log: Path | None, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            conn = http.client.HTTPConnection(HOST, port, timeout=1)
            conn.request("GET", "/healthz")
            if conn.getresponse().status == 200:
                conn.close()
                return
            conn.close()
        except OSError:
            pass
        time.sleep(0.05)
    tail = log.read_text(errors="replace")[-4000:] if log and log.exists() else ""
    state = f"exited with {proc.returncode}" if proc.poll() is not None else f"not ready after {timeout:.0f} s"
    raise SystemExit(f"{name} {state}; its log:\n{tail}")


def wait_redis(proc: subprocess.Popen, port: int, timeout: float = 15.0) -> None:
    """Redis speaks RESP, not HTTP: ready when PING answers PONG."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            with socket.create_connection((HOST, port), timeout=1) as conn:
                conn.sendall(b"PING\r\n")
                if conn.recv(16).startswith(b"+PONG"):
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise SystemExit(f"redis-server on port {port} did not answer PING within {timeout:.0f} s")


# ---------------------------------------------------------------- the request and the config


def chat_body() -> bytes:
    """A realistic ~2 KB chat request."""
    system = (
        "You are a careful assistant for an engineering team. Answer concisely, cite the file and line "
        "you rely on, and say so plainly when you are not sure. Prefer short code examples over prose."
    )
    code = (
        "async def fetch_all(session, urls):\n"
        "    tasks = [session.get(u) for u in urls]\n"
        "    for resp in await asyncio.gather(*tasks):\n"
        "        data = await resp.json()\n"
        "        print(data['items'][0]['name'])\n"
    )
    messages = [
        {"role": "system", "content": system},
        {
            "role": "user",
            "content": "Our service fetches a few hundred URLs at once and sometimes hangs. Here is the code:\n" + code,
        },
        {
            "role": "assistant",
            "content": (
                "The responses are never released: use `async with session.get(u) as resp` inside a helper, "
                "and bound concurrency with an asyncio.Semaphore so you do not open hundreds of sockets at once. "
                "Also set a ClientTimeout; the default total timeout is five minutes."
            ),
        },
        {
            "role": "user",
            "content": (
                "Thanks. We also see 'Cannot connect to host' errors under load and the logs show many TIME_WAIT "
                "sockets. Should we raise the connector limit, reuse one ClientSession for the whole process, or "
                "both? Please show the corrected function with a semaphore of 20, a 10 second timeout and retries "
                "with exponential backoff for 429 and 5xx answers, and explain each change in one sentence."
            ),
        },
    ]
    body = {"model": "bench/m", "messages": messages, "temperature": 0.2, "max_tokens": 512, "user": "bench-user-1"}
    raw = json.dumps(body).encode()
    pad = max(0, 2048 - len(raw))
    body["metadata"] = {"trace": "x" * max(0, pad - 27)}
    return json.dumps(body).encode()


BENCH_KEY = "sk-router-bench-0123456789abcdef"
OPS_PLUGINS = ("keys", "ledger", "metrics")


def responses_body(chat: bytes) -> bytes:
    """The same conversation as a Responses request (stored by responses-store when it is on)."""
    body = json.loads(chat)
    return json.dumps(
        {
            "model": body["model"],
            "input": body["messages"],
            "temperature": body["temperature"],
            "max_output_tokens": body["max_tokens"],
            "user": body["user"],
        }
    ).encode()


def gateway_config(
    upstream_port: int,
    gateway_port: int,
    plugins: list[str] | None = None,
    ops: str | None = None,
    tmp: Path | None = None,
) -> tuple[dict[str, Any], list[str]]:
    """The repo's plugins.toml with its [plugins], [gateway], [policy] (and [store]) kept,
    the providers replaced by one `bench` provider on the fake upstream, and no client keys."""
    repo_cfg = tomllib.loads((REPO / "plugins.toml").read_text())
    server = repo_cfg.get("server", {})
    config: dict[str, Any] = {
        "server": {"host": HOST, "port": gateway_port, "api_keys": []},
        "plugins": repo_cfg.get("plugins", {"enabled": []}),
        "gateway": repo_cfg.get("gateway", {}),
        "policy": repo_cfg.get("policy", {}),
        "providers": {
            "bench": {
                "kind": "openai-chat",
                "base_url": f"http://{HOST}:{upstream_port}/v1",
                "api_key": "bench-upstream-key",
                "zdr": True,
            }
        },
        "models": {"bench/m": {"input_per_mtok": 1.0, "output_per_mtok": 2.0, "context_window": 128000}},
    }
    if plugins is not None:
        config["plugins"] = {**config["plugins"], "enabled": plugins}
    if "max_body_bytes" in server:
        config["server"]["max_body_bytes"] = server["max_body_bytes"]
    if "store" in repo_cfg:
        config["store"] = repo_cfg["store"]
    if tmp is not None and "responses-store" in config["plugins"]:  # a fresh store each run, not the repo's data/
        config["plugins"] = {**config["plugins"], "responses-store": {**config["plugins"]["responses-store"]}}
        config["plugins"]["responses-store"]["path"] = str(tmp / "responses.sqlite3")
    if ops is not None:  # what a team runs in production: keyed clients with limits, a ledger, metrics
        enabled = [p for p in config["plugins"]["enabled"] if p not in OPS_PLUGINS]
        config["plugins"] = {**config["plugins"], "enabled": ["keys", *enabled, "ledger", "metrics"]}
        # limits far above what the benchmark sends, so every request is admitted and counted
        config["keys"] = {
            "bench": {"key": BENCH_KEY, "rpm": 10_000_000, "tpm": 10_000_000_000, "daily_budget_usd": 1e9}
        }
        config["store"] = {"url": ops, "on_error": "fail_closed"}
        config["usage"] = {"url": f"sqlite:///{tmp}/usage.db"}
    return config, list(config["plugins"].get("enabled", []))


_BARE = re.compile(r"^[A-Za-z0-9_-]+$")


def _key(k: str) -> str:
    return k if _BARE.match(k) else json.dumps(k)


def _value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v, ensure_ascii=False)
    if isinstance(v, (list, tuple)):
        return "[" + ", ".join(_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_key(k)} = {_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def to_toml(doc: dict[str, Any], prefix: str = "") -> str:
    """Enough TOML for a config: scalars first, then each sub-table under its dotted header."""
    lines = [f"{_key(k)} = {_value(v)}" for k, v in doc.items() if not isinstance(v, dict)]
    out = "\n".join(lines) + ("\n" if lines else "")
    for k, v in doc.items():
        if isinstance(v, dict):
            name = f"{prefix}.{_key(k)}" if prefix else _key(k)
            out += f"\n[{name}]\n" + to_toml(v, name)
    return out


# ---------------------------------------------------------------- load


def find_wrk(allow_install: bool) -> str | None:
    wrk = shutil.which("wrk")
    if wrk or not allow_install or os.geteuid() != 0 or not shutil.which("apt-get"):
        return wrk
    print("wrk is missing; trying apt-get install -y wrk …", file=sys.stderr)
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for step in (
        ["apt-get", "install", "-y", "-qq", "wrk"],
        ["apt-get", "update", "-qq"],
        ["apt-get", "install", "-y", "-qq", "wrk"],
    ):
        try:
            subprocess.run(
                step, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120, check=False
            )
        except subprocess.TimeoutExpired:
            break
        if shutil.which("wrk"):
            break
    return shutil.which("wrk")


def wrk_script(tmp: Path, body: bytes, key: str | None = None, name: str = "post.lua") -> Path:
    text = body.decode()
    level = "=" * 4
    assert f"]{level}]" not in text
    script = tmp / name
    script.write_text(
        'wrk.method = "POST"\n'
        'wrk.headers["Content-Type"] = "application/json"\n'
        + (f'wrk.headers["Authorization"] = "Bearer {key}"\n' if key else "")
        + f"wrk.body = [{level}[{text}]{level}]\n"
        "done = function(summary, latency, requests)\n"
        "  local e = summary.errors\n"
        '  io.write(string.format("BENCH_RESULT %d %d %d %d %g %g\\n", summary.requests, summary.duration,\n'
        "    e.status, e.connect + e.read + e.write + e.timeout, latency:percentile(50), latency:percentile(99)))\n"
        "end\n"
    )
    return script


def _busy_jiffies() -> int:
    """All CPUs' non-idle time, excluding irq/softirq (loopback traffic lands there)."""
    with open("/proc/stat") as f:
        fields = [int(x) for x in f.readline().split()[1:]]
    user, nice, system = fields[0], fields[1], fields[2]
    steal = fields[7] if len(fields) > 7 else 0
    return user + nice + system + steal


def _pid_jiffies(pid: int) -> int:
    """A process's CPU time so far (all its threads), in clock ticks; 0 when it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rpartition(")")[2].split()
        return int(fields[11]) + int(fields[12])  # utime, stime
    except (OSError, IndexError, ValueError):
        return 0


def _own_jiffies(pids: list[int]) -> int:
    total = sum(os.times()[:4]) * os.sysconf("SC_CLK_TCK")  # this script and its reaped children
    return int(total) + sum(_pid_jiffies(pid) for pid in pids)


class CpuWatch:
    """CPU used on this machine by processes that are not ours, as % of one core, and the
    CPU time the target process spent (which other processes disturb far less than its rps)."""

    def __init__(self, procs: Processes, target_pid: int | None = None) -> None:
        self.procs, self.target_pid = procs, target_pid

    def __enter__(self) -> CpuWatch:
        self.t0, self.busy0, self.own0 = time.monotonic(), _busy_jiffies(), _own_jiffies(self._pids())
        self.target0 = _pid_jiffies(self.target_pid) if self.target_pid else 0
        return self

    def __exit__(self, *exc: object) -> None:
        elapsed = max(time.monotonic() - self.t0, 1e-3)
        tick = os.sysconf("SC_CLK_TCK")
        foreign = (_busy_jiffies() - self.busy0) - (_own_jiffies(self._pids()) - self.own0)
        self.foreign_pct = max(0.0, 100 * foreign / tick / elapsed)
        self.target_seconds = (_pid_jiffies(self.target_pid) - self.target0) / tick if self.target_pid else 0.0

    def _pids(self) -> list[int]:
        return [p.pid for name, p in self.procs.children if name != "load" and p.poll() is None]


class Load:
    def __init__(
        self, procs: Processes, core: int | None, wrk: str | None, script: Path | None, body_file: Path
    ) -> None:
        self.procs, self.core, self.wrk, self.script, self.body_file = procs, core, wrk, script, body_file

    @property
    def tool(self) -> str:
        return "wrk" if self.wrk else "bench/loadgen.py (aiohttp)"

    def wrk_argv(self, url: str, connections: int, seconds: int) -> list[str]:
        return [self.wrk, "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "10s", "-s", str(self.script), url]

    def _run(self, argv: list[str], timeout: float) -> str:
        proc = self.procs.start("load", argv, self.core, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            out, err = proc.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.procs.stop(proc)
            raise SystemExit(f"load generator did not finish in {timeout:.0f} s: {argv}") from None
        if proc.returncode != 0:
            raise SystemExit(f"load generator failed ({proc.returncode}): {err.decode(errors='replace')[-2000:]}")
        return out.decode(errors="replace")

    def measure(
        self, url: str, connections: int, seconds: int, warmup: int, target_pid: int | None = None
    ) -> dict[str, Any]:
        if self.wrk:
            if warmup:
                self._run(self.wrk_argv(url, connections, warmup), warmup + 30)
            with CpuWatch(self.procs, target_pid) as watch:
                out = self._run(self.wrk_argv(url, connections, seconds), seconds + 30)
            line = next((ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT")), None)
            if line is None:
                raise SystemExit(f"wrk printed no result:\n{out}")
            requests, micros, status, socket_errors, p50, p99 = line.split()[1:]
            secs = int(micros) / 1e6
            return {
                "requests": int(requests),
                "rps": int(requests) / secs,
                "p50_ms": float(p50) / 1000,
                "p99_ms": float(p99) / 1000,
                "non2xx": int(status),
                "errors": int(socket_errors),
                "foreign_cpu_pct": round(watch.foreign_pct, 1),
                # the target's CPU per answered request (µs): what a core costs per request
                "cpu_us": round(1e6 * watch.target_seconds / max(int(requests), 1), 1),
            }
        argv = [sys.executable, str(BENCH / "loadgen.py"), "--url", url, "--body", str(self.body_file)]
        argv += ["--connections", str(connections), "--duration", str(seconds), "--warmup", str(warmup)]
        with CpuWatch(self.procs, target_pid) as watch:
            result = json.loads(self._run(argv, seconds + warmup + 30).strip().splitlines()[-1])
        cpu_us = round(1e6 * watch.target_seconds / max(int(result.get("requests", 0)), 1), 1)
        return {**result, "foreign_cpu_pct": round(watch.foreign_pct, 1), "cpu_us": cpu_us}


# Extra request headers per port (the gateway's client key with --ops).
AUTH: dict[int, dict[str, str]] = {}


def sanity(name: str, port: int, body: bytes, path: str = "/v1/chat/completions") -> None:
    conn = http.client.HTTPConnection(HOST, port, timeout=10)
    conn.request("POST", path, body=body, headers={"Content-Type": "application/json", **AUTH.get(port, {})})
    resp = conn.getresponse()
    raw = resp.read()
    conn.close()
    try:
        answer = json.loads(raw)
        content = answer["output_text"] if path.endswith("/responses") else answer["choices"][0]["message"]["content"]
    except (ValueError, KeyError, IndexError, TypeError):
        content = None
    if resp.status != 200 or not content:
        raise SystemExit(f"{name}: sanity request failed: {resp.status} {raw[:2000]!r}")


# ---------------------------------------------------------------- streaming


async def _ttfb_once(port: int, body: bytes) -> tuple[float, float, float, bytes]:
    import aiohttp

    async with aiohttp.ClientSession() as session:
        t0 = time.perf_counter()
        async with session.post(
            f"http://{HOST}:{port}/v1/chat/completions",
            data=body,
            headers={"Content-Type": "application/json", **AUTH.get(port, {})},
        ) as resp:
            t_headers = time.perf_counter()
            if resp.status != 200:
                raise SystemExit(
                    f"streaming request on port {port} answered {resp.status}: {(await resp.read())[:2000]!r}"
                )
            first = await resp.content.readany()
            t_first = time.perf_counter()
            rest = await resp.read()
            t_end = time.perf_counter()
    return t_headers - t0, t_first - t0, t_end - t0, first + rest


def streaming_check(ports: dict[str, int], body: bytes, repeats: int) -> dict[str, dict[str, float]]:
    stream_body = json.dumps({**json.loads(body), "stream": True}).encode()
    results: dict[str, dict[str, float]] = {}
    for name, port in ports.items():
        samples = [asyncio.run(_ttfb_once(port, stream_body)) for _ in range(repeats)]
        for *_, payload in samples:
            if b"Hello" not in payload or b"[DONE]" not in payload:
                raise SystemExit(f"{name}: the streamed answer lacks its text or [DONE]: {payload[:2000]!r}")
        results[name] = {
            "headers_ms": statistics.median(s[0] for s in samples) * 1000,
            "first_byte_ms": statistics.median(s[1] for s in samples) * 1000,
            "total_ms": statistics.median(s[2] for s in samples) * 1000,
        }
    return results


# ---------------------------------------------------------------- profile


def profile(procs: Processes, load: Load, gateway_pid: int, url: str, seconds: int, core: int | None, tmp: Path) -> str:
    pyspy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    if not Path(pyspy).exists():
        return "py-spy not found (pip install py-spy), no profile"
    if not load.wrk:
        return "profile needs wrk, skipped"
    raw = Path(os.environ.get("BENCH_PROFILE_RAW") or tmp / "profile.txt")
    driver = procs.start("load", load.wrk_argv(url, 8, seconds + 3), core)
    time.sleep(1)
    spy = procs.start(
        "py-spy",
        [
            pyspy,
            "record",
            "--pid",
            str(gateway_pid),
            "--duration",
            str(seconds),
            "--rate",
            "250",
            "--format",
            "raw",
            "--output",
            str(raw),
            "--nonblocking",
        ],
        core,
        log=tmp / "py-spy.log",
    )
    try:
        spy.wait(seconds + 30)
    except subprocess.TimeoutExpired:
        procs.stop(spy)
    procs.stop(driver)
    if not raw.exists():
        return "py-spy produced nothing: " + (tmp / "py-spy.log").read_text(errors="replace")[-1000:]
    own: collections.Counter[str] = collections.Counter()
    packages: collections.Counter[str] = collections.Counter()
    inclusive: collections.Counter[str] = collections.Counter()
    total = 0
    for line in raw.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        total += n
        frames = [re.sub(r":\d+\)$", ")", f) for f in stack.split(";")]
        frames = [re.sub(r"\(.*/(site-packages|lib/python3\.\d+)/", "(", f) for f in frames]
        frames = [f.replace(str(REPO) + "/", "") for f in frames]
        own[frames[-1]] += n
        packages[_package(frames[-1])] += n
        for f in set(frames):
            inclusive[f] += n
    if not total:
        return "py-spy recorded no samples"
    lines = [
        f"py-spy, gateway under wrk c8, {seconds} s, {total} samples (only while Python runs; idle time in the event loop's C code is not sampled)"
    ]
    lines.append("self time by package: " + ", ".join(f"{p} {100 * n / total:.0f}%" for p, n in packages.most_common()))
    lines.append("top self time (run_app's own share is the event loop's C code: polling, socket calls):")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in own.most_common(15)]
    lines.append("top inclusive time:")
    lines += [f"  {100 * n / total:5.1f}%  {f}" for f, n in inclusive.most_common(25)]
    return "\n".join(lines)


def _package(frame: str) -> str:
    """``func (pkg/mod.py)`` → ``pkg``."""
    where = frame.rpartition("(")[2].rstrip(")")
    if "/" in where:
        return where.split("/")[0]
    if where.startswith("<attrs generated"):
        return "attrs-generated"
    return where.removesuffix(".py") if where.endswith(".py") else "other"


# ---------------------------------------------------------------- report


def fmt_rps(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return f"{x:.2f} ms" if x < 10 else f"{x:.1f} ms"


LABELS = {
    "direct": "upstream called directly",
    "passthrough": "bare aiohttp passthrough (one ClientSession, orjson, nothing else)",
    "gateway": "llm-router gateway (all default plugins, one worker)",
}


def report(
    results: dict[str, dict[int, dict[str, Any]]], stream: dict[str, dict[str, float]], plugins: list[str]
) -> tuple[str, list[str]]:
    labels = {**LABELS, "gateway": f"llm-router gateway (one worker; plugins enabled: {', '.join(plugins) or 'none'})"}
    out = ["| target | rps c1 | p50 c1 | rps c8 | p99 c8 | rps c64 |", "|---|---|---|---|---|---|"]
    for name, by_c in results.items():
        c1, c8, c64 = by_c[1], by_c[8], by_c[64]
        out.append(
            f"| {labels[name]} | {fmt_rps(c1['rps'])} | {fmt_ms(c1['p50_ms'])} | {fmt_rps(c8['rps'])} | {fmt_ms(c8['p99_ms'])} | {fmt_rps(c64['rps'])} |"
        )
    out += [
        "",
        "All points (non-2xx = answers with status ≥ 400 as wrk counts them; errors = socket errors and timeouts;"
        " other CPU = CPU used meanwhile by processes the benchmark did not start, % of one core):",
        "",
    ]
    out += ["| target | conc. | rps | p50 | p99 | non-2xx | errors | other CPU |", "|---|---|---|---|---|---|---|---|"]
    for name, by_c in results.items():
        for c, r in by_c.items():
            out.append(
                f"| {name} | {c} | {fmt_rps(r['rps'])} | {fmt_ms(r['p50_ms'])} | {fmt_ms(r['p99_ms'])} | {r['non2xx']} | {r['errors']} | {r['foreign_cpu_pct']:.0f}% |"
            )

    gw, bare, direct = results["gateway"], results["passthrough"], results["direct"]
    add_p50 = gw[1]["p50_ms"] - direct[1]["p50_ms"]
    add_p99 = gw[1]["p99_ms"] - direct[1]["p99_ms"]
    share8 = 100 * gw[8]["rps"] / bare[8]["rps"]
    share64 = 100 * gw[64]["rps"] / bare[64]["rps"]
    bad = sum(r["non2xx"] + r["errors"] for r in gw.values())
    ttfb = stream["gateway"]["first_byte_ms"]
    checks = [
        (f"gateway rps ≥ 70% of bare passthrough at c8: {share8:.0f}%", share8 >= 70),
        (f"gateway rps ≥ 70% of bare passthrough at c64: {share64:.0f}%", share64 >= 70),
        (f"p50 added over direct at c1 ≤ 0.5 ms: +{add_p50:.2f} ms", add_p50 <= 0.5),
        (f"p99 added over direct at c1 ≤ 2 ms: +{add_p99:.2f} ms", add_p99 <= 2.0),
        (f"zero non-2xx / errors through the gateway: {bad}", bad == 0),
        (
            f"streaming first byte through the gateway ≪ {STREAM_DELAY * 1000:.0f} ms upstream pause: {ttfb:.1f} ms",
            ttfb < STREAM_DELAY * 1000 / 4,
        ),
    ]
    out += ["", "Gateway against the budget (DESIGN §7):", ""]
    out += [f"- {'PASS' if ok else 'MISS'} {text}" for text, ok in checks]
    pass_p50 = bare[1]["p50_ms"] - direct[1]["p50_ms"]
    out.append(f"- (for scale: the bare passthrough itself adds +{pass_p50:.2f} ms p50 at c1)")
    out += [
        "",
        f"Streaming (median of runs; upstream sends its first chunk, then waits {STREAM_DELAY * 1000:.0f} ms):",
        "",
    ]
    out += ["| target | headers | first body byte | whole answer |", "|---|---|---|---|"]
    for name, s in stream.items():
        out.append(f"| {name} | {fmt_ms(s['headers_ms'])} | {fmt_ms(s['first_byte_ms'])} | {fmt_ms(s['total_ms'])} |")
    noisy = max(r["foreign_cpu_pct"] for by_c in results.values() for r in by_c.values())
    if noisy > NOISE_PCT:
        out += [
            "",
            f"WARNING: other processes used up to {noisy:.0f}% of a core during some points; those figures are disturbed.",
        ]
    out += ["", f"Plugins enabled in the gateway (in call order): {', '.join(plugins) or 'none'}"]
    return "\n".join(out), [text for text, ok in checks if not ok]


def gateway_log_summary(log: Path) -> str:
    text = log.read_text(errors="replace") if log.exists() else ""
    bad = [ln for ln in text.splitlines() if re.search(r"Traceback|ERROR|CRITICAL|WARNING|Exception", ln)]
    if not bad:
        return "gateway log: no warnings or errors"
    head = "\n".join(bad[:20])
    return f"gateway log: {len(bad)} warning/error lines, first ones:\n{head}"


def environment(load: Load) -> str:
    import aiohttp

    try:
        with open("/proc/cpuinfo") as f:
            cpu = next((ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name")), "")
    except OSError:
        cpu = ""
    wrk_version = ""
    if load.wrk:
        wrk_version = (
            subprocess.run([load.wrk, "-v"], capture_output=True, text=True, check=False).stdout.split("\n")[0].strip()
        )
    return (
        f"machine: {os.cpu_count()} cores ({cpu or platform.machine()}), Linux {platform.release()}; "
        f"Python {platform.python_version()}, aiohttp {aiohttp.__version__}; load: {wrk_version or load.tool}"
    )


# ---------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="~30 s: 2 s per point after 1 s warm-up")
    parser.add_argument("--duration", type=int, help="seconds measured per point (default 5, quick 2)")
    parser.add_argument("--warmup", type=int, help="warm-up seconds per point (default 1)")
    parser.add_argument("--no-install", action="store_true", help="never apt-get install wrk")
    parser.add_argument("--python-load", action="store_true", help="use bench/loadgen.py even if wrk is there")
    parser.add_argument("--profile", action="store_true", help="py-spy the gateway under c8 load for 5 s")
    parser.add_argument(
        "--plugins", help="comma-separated plugins to enable instead of plugins.toml's [plugins].enabled"
    )
    parser.add_argument(
        "--retries", type=int, default=2, help="re-measure a point disturbed by other processes (default 2)"
    )
    parser.add_argument("--json", type=Path, help="also write the raw results here")
    parser.add_argument(
        "--ops",
        choices=["memory", "redis"],
        help="the gateway as a team runs it: a client key with limits (store: memory:// or a redis-server "
        "the bench starts), the SQLite ledger and metrics",
    )
    parser.add_argument(
        "--endpoint",
        choices=["chat", "responses"],
        default="chat",
        help="what the gateway is sent (direct and passthrough always get the chat body)",
    )
    parser.add_argument(
        "--cpu-only",
        action="store_true",
        help="a quick comparison while developing: passthrough and gateway at c8 only, with their CPU per "
        "request (robust to other processes on the machine), no report",
    )
    parser.add_argument(
        "--rounds",
        type=int,
        default=1,
        help="with --cpu-only: measure passthrough then gateway this many times in turn, and print the medians",
    )
    args = parser.parse_args(argv)
    seconds = args.duration or (2 if args.quick else 5)
    warmup = args.warmup if args.warmup is not None else 1

    procs = Processes()
    atexit.register(procs.stop_all)

    def on_signal(signum, frame):
        raise SystemExit(f"stopped by signal {signum}")

    def on_alarm(signum, frame):
        raise TimeoutError("the benchmark ran over its time limit")

    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started in the background
    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)
    signal.signal(signal.SIGALRM, on_alarm)
    points = max(len(CONCURRENCIES) * 3, 2 * args.rounds if args.cpu_only else 0)
    signal.alarm(
        300 + points * (seconds + warmup) * (1 + args.retries) + (20 if args.profile else 0)
    )  # installing wrk may take a while

    target_core, load_core = cores()
    if load_core is not None:
        os.sched_setaffinity(0, {load_core})  # this script's own work stays off the target's core
    tmp = Path(tempfile.mkdtemp(prefix="llm-router-bench-"))
    try:
        body = chat_body()
        body_file = tmp / "body.json"
        body_file.write_bytes(body)
        wrk = None if args.python_load else find_wrk(not args.no_install)
        load = Load(procs, load_core, wrk, wrk_script(tmp, body) if wrk else None, body_file)
        if not wrk:
            print(
                "note: wrk unavailable; using the Python load generator, whose own ceiling is far below wrk's",
                file=sys.stderr,
            )

        up_port, bare_port, gw_port = free_port(), free_port(), free_port()
        py = sys.executable
        up_log, bare_log, gw_log = tmp / "upstream.log", tmp / "passthrough.log", tmp / "gateway.log"
        upstream = procs.start(
            "upstream",
            [py, str(BENCH / "servers.py"), "upstream", "--port", str(up_port), "--stream-delay", str(STREAM_DELAY)],
            load_core,
            up_log,
        )
        wait_ready("fake upstream", upstream, up_port, up_log)
        up_url = f"http://{HOST}:{up_port}"
        bare = procs.start(
            "passthrough",
            [py, str(BENCH / "servers.py"), "passthrough", "--port", str(bare_port), "--upstream", up_url],
            target_core,
            bare_log,
        )

        store_url = None
        if args.ops == "memory":
            store_url = "memory://"
        elif args.ops == "redis":
            redis_port = free_port()
            redis = procs.start(
                "redis",
                ["redis-server", "--port", str(redis_port), "--bind", HOST, "--save", "", "--appendonly", "no"],
                load_core,
                tmp / "redis.log",
            )
            wait_redis(redis, redis_port)
            store_url = f"redis://{HOST}:{redis_port}/0"
        config, plugins = gateway_config(
            up_port,
            gw_port,
            None if args.plugins is None else [p for p in args.plugins.split(",") if p],
            ops=store_url,
            tmp=tmp,
        )
        if store_url is not None:
            AUTH[gw_port] = {"Authorization": f"Bearer {BENCH_KEY}"}
        gw_path = "/v1/responses" if args.endpoint == "responses" else "/v1/chat/completions"
        gw_body = responses_body(body) if args.endpoint == "responses" else body
        gw_body_file = tmp / "gateway-body.json"
        gw_body_file.write_bytes(gw_body)
        key = BENCH_KEY if store_url is not None else None
        if key and not wrk:
            raise SystemExit("--ops needs wrk (the Python load generator sends no client key)")
        gw_load = Load(
            procs, load_core, wrk, wrk_script(tmp, gw_body, key, "gateway.lua") if wrk else None, gw_body_file
        )
        config_file = tmp / "plugins.toml"
        config_file.write_text(to_toml(config))
        cli = Path(sys.executable).parent / "llm-router"
        serve = [str(cli)] if cli.exists() else [py, "-m", "router_core.cli"]
        gateway = procs.start(
            "gateway",
            [*serve, "serve", "--config", str(config_file), "--host", HOST, "--port", str(gw_port)],
            target_core,
            gw_log,
        )
        wait_ready("bare passthrough", bare, bare_port, bare_log)
        wait_ready("gateway", gateway, gw_port, gw_log)

        ports = {"direct": up_port, "passthrough": bare_port, "gateway": gw_port}
        pids = {"direct": upstream.pid, "passthrough": bare.pid, "gateway": gateway.pid}
        for name, port in ports.items():
            sanity(name, port, *((gw_body, gw_path) if name == "gateway" else (body,)))

        print(environment(load))
        print(f"plugins enabled: {', '.join(plugins) or 'none'}; {seconds} s per point after {warmup} s warm-up")
        print(
            f"gateway sent {gw_path}" + (f"; store {store_url}, ledger SQLite, client key with limits" if key else "")
        )
        results: dict[str, dict[int, dict[str, Any]]] = {}
        if args.cpu_only:
            del ports["direct"]
        ratios: list[tuple[float, float]] = []  # --cpu-only: (rps, CPU) ratio of each round
        for name, port in [*ports.items()] * (args.rounds if args.cpu_only else 1):
            results[name] = {}
            target, url = (
                (gw_load, f"http://{HOST}:{port}{gw_path}")
                if name == "gateway"
                else (load, f"http://{HOST}:{port}/v1/chat/completions")
            )
            for c in (8,) if args.cpu_only else CONCURRENCIES:
                # On a shared machine, a point disturbed by other processes is measured again
                # (at most twice more) and the least disturbed measurement is kept.
                r = target.measure(url, c, seconds, warmup, pids[name])
                for _ in range(args.retries):
                    if r["foreign_cpu_pct"] <= NOISE_PCT:
                        break
                    print(
                        f"  {name:<12} c{c:<3} disturbed (other CPU {r['foreign_cpu_pct']:.0f}%), measuring again",
                        flush=True,
                    )
                    again = target.measure(url, c, seconds, warmup, pids[name])
                    r = min(r, again, key=lambda x: x["foreign_cpu_pct"])
                results[name][c] = r
                print(
                    f"  {name:<12} c{c:<3} {fmt_rps(r['rps']):>8} rps  p50 {fmt_ms(r['p50_ms']):>9}  p99 {fmt_ms(r['p99_ms']):>9}  non-2xx {r['non2xx']}  errors {r['errors']}  other CPU {r['foreign_cpu_pct']:.0f}%  CPU/request {r['cpu_us']:.0f} µs",
                    flush=True,
                )
                if gateway.poll() is not None:
                    raise SystemExit(
                        "the gateway died under load; its log:\n" + gw_log.read_text(errors="replace")[-4000:]
                    )
            if args.cpu_only and name == "gateway":  # a round: the passthrough, then the gateway
                gw, bare = results["gateway"][8], results["passthrough"][8]
                ratios.append((gw["rps"] / bare["rps"], bare["cpu_us"] / gw["cpu_us"]))
                print(
                    f"gateway/passthrough at c8: rps {100 * ratios[-1][0]:.0f} %, "
                    f"CPU per request {gw['cpu_us']:.0f} / {bare['cpu_us']:.0f} µs = {100 * ratios[-1][1]:.0f} %",
                    flush=True,
                )

        if args.cpu_only:
            if len(ratios) > 1:
                rps, cpu = (sorted(r[i] for r in ratios) for i in (0, 1))
                print(
                    f"{len(ratios)} rounds: rps ratio median {100 * statistics.median(rps):.0f} % "
                    f"(range {100 * rps[0]:.0f}–{100 * rps[-1]:.0f} %), CPU ratio median "
                    f"{100 * statistics.median(cpu):.0f} % (range {100 * cpu[0]:.0f}–{100 * cpu[-1]:.0f} %)"
                )
            return 0
        stream = streaming_check({"direct": up_port, "gateway": gw_port}, body, repeats=3 if args.quick else 7)
        table, misses = report(results, stream, plugins)
        print()
        print(table)
        print()
        print(gateway_log_summary(gw_log))
        if args.profile:
            print()
            print(profile(procs, gw_load, gateway.pid, f"http://{HOST}:{gw_port}{gw_path}", 5, load_core, tmp))
        if args.json:
            args.json.write_text(
                json.dumps({"results": results, "stream": stream, "plugins": plugins, "misses": misses}, indent=2)
            )
        return 0
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        signal.alarm(0)
        procs.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
