"""One gateway, one load point: the gateway's CPU time per answered request (all its threads).

Starts the fake upstream and ``llm-router serve`` from the Python running this script (so
``PYTHONPATH=<another checkout>`` measures that checkout's code), runs wrk for ``--seconds``
and prints ``rps N  cpu/req N us``. ``--plugins default`` keeps plugins.toml's list.
With ``CPROF_OUT=<file>`` the gateway runs under cProfile (figures then include its overhead).
Used by ``alternate.sh``; needs wrk (bench/run.py installs it).

With ``--ops`` (keys, ledger and metrics on, as ``bench/run.py --ops`` sets them up),
``--drop ledger,metrics`` leaves some of them out and ``--no-request-log`` switches the
request log line off: what each costs. The gateway is warmed up for 3 s first; p50 and p99
of the measured seconds are printed with the requests.

usage: python bench/compare/cpu_point.py [--plugins a,b|default] [--conns 8] [--seconds 4] [--ops memory://]
       [--drop keys,ledger,metrics] [--no-request-log]
"""

import argparse
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

BENCH = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BENCH))
import run as B  # noqa: E402  bench/run.py: its config writer, wrk script and /proc readers

if (Path.cwd() / "plugins.toml").is_file():  # the measured checkout's own plugins.toml (alternate.sh cds there)
    B.REPO = Path.cwd()

ap = argparse.ArgumentParser()
ap.add_argument("--plugins", default="")
ap.add_argument("--seconds", type=int, default=6)
ap.add_argument("--ops", default=None)
ap.add_argument("--conns", type=int, default=8)
ap.add_argument("--drop", default="", help="with --ops: operations plugins to leave out (keys, ledger, metrics)")
ap.add_argument("--no-request-log", action="store_true", help="with --ops: metrics without the request log line")
ap.add_argument("probe", nargs="*")
a = ap.parse_args()
tmp = Path(tempfile.mkdtemp())
body = B.chat_body()
(tmp / "body.json").write_bytes(body)
up, gw = B.free_port(), B.free_port()
py = sys.executable
procs = []


def start(argv, core, log):
    with open(log, "w") as out:  # the child keeps its own copy of the descriptor
        p = subprocess.Popen(["taskset", "-c", str(core), *argv], stdout=out, stderr=subprocess.STDOUT)
    procs.append(p)
    return p


try:
    start([py, str(BENCH / "servers.py"), "upstream", "--port", str(up), "--stream-delay", "0.2"], 1, tmp / "up.log")
    cfg, plugins = B.gateway_config(
        up, gw, None if a.plugins == "default" else [p for p in a.plugins.split(",") if p], ops=a.ops, tmp=tmp
    )
    for name in [d for d in a.drop.split(",") if d]:
        cfg["plugins"]["enabled"].remove(name)
        if name == "ledger":
            cfg.pop("usage", None)
        if name == "keys":  # and the tables only it reads
            cfg.pop("keys", None)
            cfg.pop("store", None)
    if a.no_request_log:
        cfg["plugins"].setdefault("metrics", {})["request_log"] = False
    (tmp / "p.toml").write_text(B.to_toml(cfg))
    cli = str(Path(py).parent / "llm-router")
    if os.environ.get("CPROF_OUT"):
        g = start(
            [
                py,
                str(Path(__file__).resolve().parent / "cprof_serve.py"),
                "serve",
                "--config",
                str(tmp / "p.toml"),
                "--host",
                "127.0.0.1",
                "--port",
                str(gw),
            ],
            0,
            tmp / "gw.log",
        )
    else:
        g = start(
            [cli, "serve", "--config", str(tmp / "p.toml"), "--host", "127.0.0.1", "--port", str(gw)], 0, tmp / "gw.log"
        )
    for _ in range(200):
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{gw}/healthz", timeout=1)
            break
        except Exception:
            time.sleep(0.1)
    script = B.wrk_script(tmp, body, B.BENCH_KEY, "gateway.lua") if a.ops else B.wrk_script(tmp, body)
    wrk = B.find_wrk(False)
    url = f"http://127.0.0.1:{gw}/v1/chat/completions"
    # warm-up: the first requests load vocabularies and fill caches
    subprocess.run(
        ["taskset", "-c", "1", wrk, "-t1", f"-c{a.conns}", "-d3s", "-s", str(script), url], stdout=subprocess.DEVNULL
    )
    w = subprocess.Popen(
        [
            "taskset",
            "-c",
            "1",
            wrk,
            "-t1",
            f"-c{a.conns}",
            f"-d{a.seconds + 2}s",
            "-s",
            str(script),
            url,
        ],
        stdout=subprocess.PIPE,
    )
    time.sleep(1)
    # find the worker pid (child of serve, if any)
    kids = subprocess.run(["pgrep", "-P", str(g.pid)], capture_output=True, text=True).stdout.split()
    pid = kids[0] if kids else str(g.pid)
    j0 = B._pid_jiffies(int(pid))
    if a.probe:
        subprocess.run([x.replace("{pid}", pid) for x in a.probe])
    out = w.communicate()[0].decode()
    j1 = B._pid_jiffies(int(pid))
    line = next(ln for ln in out.splitlines() if ln.startswith("BENCH_RESULT")).split()
    n, us = int(line[1]), int(line[2])
    # wrk measured a+2 s; we watched from 1 s in until the end: scale requests
    watched = (us / 1e6) - 1
    print(f"requests {n} non2xx {line[3]} p50 {float(line[5]) / 1000:.2f} ms p99 {float(line[6]) / 1000:.2f} ms")
    print(
        f"rps {n / (us / 1e6):.0f}  cpu/req {1e6 * (j1 - j0) / os.sysconf('SC_CLK_TCK') / (n * watched / (us / 1e6)):.0f} us"
    )
finally:
    for p in procs:
        p.terminate()
    for p in procs:
        try:
            p.wait(20)
        except Exception:
            p.kill()
