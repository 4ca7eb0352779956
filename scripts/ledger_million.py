"""Fill a usage ledger with a million synthetic rows and time ``llm-router usage`` on it.

Not a test (it takes a minute): ``python scripts/ledger_million.py [--url sqlite:///tmp/x.db] [--rows N]``.
Rows go through the same batched write path the gateway uses (rows + daily totals per batch).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_plugins.ledger.backends import open_ledger
from router_plugins.ledger.schema import Batch, Row

KEYS = [f"team-{i}" for i in range(25)]
MODELS = ["openai/gpt-4o", "openai/gpt-4o-mini", "anthropic/claude-sonnet", "meta/llama-3.1-8b", "openai/o3"]
PROVIDERS = ["openai", "anthropic", "groq", "together"]
TAGS = [None, "code", "chat", "math", "summary"]


def rows(n: int, now: float, rng: random.Random):
    for i in range(n):
        failed = rng.random() < 0.03
        inp, out = rng.randint(20, 4000), rng.randint(1, 800)
        yield Row(
            ts=now - rng.random() * 30 * 86400,
            request_id=f"{i:016x}",
            key_name=rng.choice(KEYS),
            endpoint=rng.choice(("chat", "responses")),
            stream=rng.random() < 0.5,
            status=502 if failed else 200,
            error_code="bad_gateway" if failed else None,
            model_requested=None,
            model=rng.choice(MODELS),
            provider=rng.choice(PROVIDERS),
            tag=rng.choice(TAGS),
            fallbacks=int(failed),
            latency_ms=rng.uniform(50, 5000),
            first_byte_ms=rng.uniform(20, 800),
            input_tokens=inp,
            output_tokens=out,
            planner_tokens=0,
            cost_usd=(inp * 2.5 + out * 10) / 1e6,
            tokens_saved={"history": rng.randint(0, 300)} if rng.random() < 0.3 else {},
            redactions={"email": 1} if rng.random() < 0.05 else {},
        )


async def fill(url: str, n: int, batch: int) -> float:
    ledger = open_ledger(url)
    await ledger.start()
    started = time.perf_counter()
    pending: list[Row] = []
    for row in rows(n, time.time(), random.Random(13)):
        pending.append(row)
        if len(pending) == batch:
            await ledger.write(Batch.of(pending))
            pending = []
    await ledger.write(Batch.of(pending))
    await ledger.close()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url")
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--batch", type=int, default=500, help="rows per write, as the gateway's writer batches")
    args = parser.parse_args()
    tmp = tempfile.mkdtemp(prefix="ledger-million-")
    url = args.url or f"sqlite:///{tmp}/usage.db"
    took = asyncio.run(fill(url, args.rows, args.batch))
    print(f"wrote {args.rows} rows in {took:.1f} s ({args.rows / took:,.0f} rows/s, batches of {args.batch})")
    config = Path(tmp) / "plugins.toml"
    config.write_text(f'[plugins]\nenabled = ["ledger"]\n[usage]\nurl = "{url}"\n')
    env = {**os.environ, "LLM_ROUTER_LOG": "WARNING"}
    for by in ("key", "model", "provider", "tag", "day"):
        command = [sys.executable, "-m", "router_core.cli", "usage", "--by", by, "--config", str(config)]
        started = time.perf_counter()
        done = subprocess.run(command, capture_output=True, text=True, env=env, check=True)
        whole = time.perf_counter() - started
        started = time.perf_counter()
        from router_plugins.ledger.cli import read

        asyncio.run(read(url, by, "2000-01-01"))
        query = time.perf_counter() - started
        lines = done.stdout.splitlines()
        print(f"llm-router usage --by {by}: {whole:.2f} s for the whole command, {query * 1000:.0f} ms open + query")
        if by == "model":
            print("\n".join(lines))


if __name__ == "__main__":
    main()
