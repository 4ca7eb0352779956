"""``llm-router usage``: requests, tokens and cost per key, model, provider, tag or day, from the ledger."""

from __future__ import annotations

import argparse
import asyncio
import re
import sys
import time
from typing import Any

import orjson

from router_core.config import ConfigError, load_config

from .backends import LedgerUnavailable, open_ledger
from .schema import BY


def register(subparsers: Any) -> None:
    p = subparsers.add_parser("usage", help="requests, tokens and cost from the usage ledger")
    p.add_argument("--by", choices=sorted(BY), default="key", help="group by (default: key)")
    p.add_argument("--since", default="30d", help="a UTC day (2026-11-01) or a number of days (7d); default 30d")
    p.add_argument("--json", action="store_true")
    p.add_argument("--config", default=None)
    p.set_defaults(func=main)


def since_day(text: str, now: float | None = None) -> str:
    """``7d`` → the UTC day six days before today (today counts); ``YYYY-MM-DD`` as is."""
    if re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
        return text
    m = re.fullmatch(r"(\d+)d", text)
    if not m or int(m[1]) < 1:
        raise ValueError(f"--since: expected a UTC day like 2026-11-01 or a number of days like 7d, got {text!r}")
    then = (time.time() if now is None else now) - (int(m[1]) - 1) * 86400
    return time.strftime("%Y-%m-%d", time.gmtime(then))


def fail(message: str) -> None:
    print(f"llm-router usage: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(args: argparse.Namespace) -> None:
    from router_core.cli import DEFAULT_CONFIG

    from .plugin import usage_settings

    try:
        settings = usage_settings(load_config(args.config or DEFAULT_CONFIG))
        since = since_day(args.since)
    except ConfigError as exc:
        fail("; ".join(exc.messages))
    except ValueError as exc:
        fail(str(exc))
    rows = asyncio.run(read(settings.database, args.by, since))
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    print(render(rows, args.by, since))


async def read(url: str, by: str, since: str) -> list[dict[str, Any]]:
    ledger = open_ledger(url)
    try:
        await ledger.start()
        return await ledger.usage(by, since)
    except LedgerUnavailable as exc:
        fail(str(exc))
        raise
    finally:
        await ledger.close()


def render(rows: list[dict[str, Any]], by: str, since: str) -> str:
    header = (by, "requests", "errors", "input_tokens", "output_tokens", "planner_tokens", "tokens_saved", "cost_usd")
    lines = [header]
    for r in rows:
        lines.append(
            (
                r["name"] or "(none)",
                *(str(int(r[k] or 0)) for k in header[1:-1]),
                f"{float(r['cost_usd'] or 0):.4f}",
            )
        )
    widths = [max(len(line[i]) for line in lines) for i in range(len(header))]
    out = [f"usage since {since} (UTC), by {by}:"]
    for line in lines:
        out.append(
            "  ".join(c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(line, widths, strict=True)))
        )
    if not rows:
        out.append("(no requests)")
    return "\n".join(out)
