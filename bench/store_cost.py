"""What a plugin costs: two gateways, with and without it, measured in alternation in the same minutes.

``bench/run.py`` measures one configuration per run, and on a shared machine two runs a
minute apart differ by more than the cost of one plugin. This script starts the fake
upstream once and two gateways side by side on the gateway's core (the repo's
``plugins.toml``, one with the plugin, one without; idle until measured), then alternates:
round r measures A then B, round r+1 B then A, at each concurrency. Besides wrk's requests/s
it reads each gateway's CPU time from ``/proc`` (every thread of the process) and divides it
by the requests answered: CPU per request is what one core's throughput is made of, and it
is less disturbed by other processes than a rate is.

    flock /tmp/bench.lock .venv/bin/python bench/store_cost.py            # responses-store, c8 and c1, 5 rounds
    .venv/bin/python bench/store_cost.py --plugin responses-store --rounds 8 --concurrency 8

It reuses ``bench/run.py``'s pieces (fake upstream, gateway config, wrk script, pinning).
"""

from __future__ import annotations

import argparse
import atexit
import os
import statistics
import sys
import tempfile
import tomllib
from pathlib import Path
from typing import Any

import run as bench

TICK = os.sysconf("SC_CLK_TCK")


def cpu_jiffies(pid: int) -> int:
    """utime + stime of every thread of ``pid`` (threads that ended count in the process's own line)."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rpartition(")")[2].split()
    return int(fields[11]) + int(fields[12])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--plugin", default="responses-store", help="the plugin whose cost is measured")
    parser.add_argument("--endpoint", choices=["chat", "responses"], default="responses")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=int, default=3, help="measured per point, after 1 s of warm-up")
    parser.add_argument("--concurrency", default="8,1", help="comma-separated wrk connection counts")
    parser.add_argument(
        "--commit-before-answer", action="store_true", help="responses-store: each answer waits for its commit"
    )
    parser.add_argument(
        "--retention-seconds",
        type=float,
        help="responses-store: keep records this long, so the store is full and purging while measured",
    )
    args = parser.parse_args(argv)
    levels = [int(c) for c in args.concurrency.split(",")]

    enabled = tomllib.loads((bench.REPO / "plugins.toml").read_text())["plugins"]["enabled"]
    if args.plugin not in enabled:
        raise SystemExit(f"{args.plugin} is not in plugins.toml's [plugins].enabled")
    configs = {"with": enabled, "without": [p for p in enabled if p != args.plugin]}

    procs = bench.Processes()
    atexit.register(procs.stop_all)
    target_core, load_core = bench.cores()
    tmp = Path(tempfile.mkdtemp(prefix="llm-router-cost-"))
    wrk = bench.find_wrk(allow_install=False)
    if not wrk:
        raise SystemExit("needs wrk (apt-get install wrk)")
    py = sys.executable
    up_port = bench.free_port()
    upstream = procs.start(
        "upstream",
        [py, str(bench.BENCH / "servers.py"), "upstream", "--port", str(up_port), "--stream-delay", "0.2"],
        load_core,
        tmp / "upstream.log",
    )
    bench.wait_ready("fake upstream", upstream, up_port, tmp / "upstream.log")
    body = bench.chat_body()
    path = "/v1/responses" if args.endpoint == "responses" else "/v1/chat/completions"
    if args.endpoint == "responses":
        body = bench.responses_body(body)
    (tmp / "body.json").write_bytes(body)
    load = bench.Load(procs, load_core, wrk, bench.wrk_script(tmp, body), tmp / "body.json")

    gateways: dict[str, tuple[int, int]] = {}  # name → (port, pid)
    for name, plugins in configs.items():
        port = bench.free_port()
        config, _ = bench.gateway_config(up_port, port, plugins, tmp=tmp / name)
        if args.retention_seconds and "responses-store" in config["plugins"]:
            config["plugins"]["responses-store"]["retention_days"] = args.retention_seconds / 86400
        if args.commit_before_answer and "responses-store" in config["plugins"]:
            config["plugins"]["responses-store"]["commit_before_answer"] = True
        (tmp / name).mkdir()
        (tmp / name / "plugins.toml").write_text(bench.to_toml(config))
        cli = Path(py).parent / "llm-router"
        argv = [str(cli), "serve", "--config", str(tmp / name / "plugins.toml"), "--host", bench.HOST]
        gateway = procs.start(name, [*argv, "--port", str(port)], target_core, tmp / name / "gateway.log")
        bench.wait_ready(f"gateway {name}", gateway, port, tmp / name / "gateway.log")
        bench.sanity(name, port, body, path)
        gateways[name] = (port, gateway.pid)

    print(f"{args.plugin}: {args.endpoint} endpoint, {args.rounds} rounds, {args.seconds} s per point")
    runs: dict[tuple[str, int], list[dict[str, Any]]] = {(n, c): [] for n in gateways for c in levels}
    for r in range(args.rounds):
        order = list(gateways) if r % 2 == 0 else list(reversed(gateways))
        for c in levels:
            for name in order:
                port, pid = gateways[name]
                url = f"http://{bench.HOST}:{port}{path}"
                load.measure(url, c, 1, 0)  # warm-up
                before = cpu_jiffies(pid)
                m = load.measure(url, c, args.seconds, 0)
                m["cpu_us"] = (cpu_jiffies(pid) - before) / TICK / max(m["requests"], 1) * 1e6
                runs[(name, c)].append(m)
                print(
                    f"  round {r} {name:<7} c{c:<2} {m['rps']:7.0f} rps  p50 {m['p50_ms']:.2f} ms  "
                    f"p99 {m['p99_ms']:.2f} ms  CPU {m['cpu_us']:4.0f} us/request  "
                    f"non-2xx {m['non2xx']}  other CPU {m['foreign_cpu_pct']:.0f}%",
                    flush=True,
                )
    print()
    print("Medians over the rounds, and each round's cost (the pair measured seconds apart):")
    print(
        "| c | rps with / without | cost | each round (their median) | p50 with / without | CPU/request with / without |"
    )
    print("|---|---|---|---|---|---|")
    for c in levels:
        a, b = runs[("with", c)], runs[("without", c)]
        rps_a, rps_b = statistics.median(m["rps"] for m in a), statistics.median(m["rps"] for m in b)
        costs = [100 * (1 - x["rps"] / y["rps"]) for x, y in zip(a, b, strict=True)]
        rounds = ", ".join(f"{x:.0f}%" for x in costs) + f" ({statistics.median(costs):.1f} %)"
        p50 = f"{statistics.median(m['p50_ms'] for m in a):.2f} / {statistics.median(m['p50_ms'] for m in b):.2f} ms"
        cpu_a, cpu_b = statistics.median(m["cpu_us"] for m in a), statistics.median(m["cpu_us"] for m in b)
        print(
            f"| {c} | {rps_a:,.0f} / {rps_b:,.0f} | {100 * (1 - rps_a / rps_b):.1f} % | {rounds} | {p50} "
            f"| {cpu_a:.0f} / {cpu_b:.0f} us ({100 * (cpu_a / cpu_b - 1):+.1f} %) |"
        )
    print()
    print("Best of the rounds (other processes only ever slow a point down, so the best is the least disturbed):")
    print("| c | best rps with / without | cost | least CPU/request with / without | cost |")
    print("|---|---|---|---|---|")
    for c in levels:
        a, b = runs[("with", c)], runs[("without", c)]
        rps_a, rps_b = max(m["rps"] for m in a), max(m["rps"] for m in b)
        cpu_a, cpu_b = min(m["cpu_us"] for m in a), min(m["cpu_us"] for m in b)
        print(
            f"| {c} | {rps_a:,.0f} / {rps_b:,.0f} | {100 * (1 - rps_a / rps_b):.1f} % "
            f"| {cpu_a:.0f} / {cpu_b:.0f} us | {100 * (cpu_a / cpu_b - 1):+.1f} % |"
        )
    disturbed = sum(m["foreign_cpu_pct"] > bench.NOISE_PCT for ms in runs.values() for m in ms)
    if disturbed:
        print(f"\nWARNING: other processes used > {bench.NOISE_PCT:.0f}% of a core during {disturbed} points")
    return 0


if __name__ == "__main__":
    sys.exit(main())
