"""``llm-router keys create|list|revoke|rotate``: run-time client keys, kept hashed in the shared store."""

from __future__ import annotations

import argparse
import asyncio
import sys
import time
from typing import Any

import attrs
import orjson

from router_core.config import Config, ConfigError, load_config
from router_lib.store import KeyRecord, Limits, Store, StoreUnavailable, open_store, store_settings
from router_lib.store.base import NAME

from .settings import new_key, parse_expiry, record


def register(subparsers: Any) -> None:
    keys = subparsers.add_parser("keys", help="create, list, revoke and rotate client keys (in the shared store)")
    sub = keys.add_subparsers(dest="keys_command", required=True)
    create = sub.add_parser("create", help="make a key and print it once")
    create.add_argument("name")
    create.add_argument("--rpm", type=int)
    create.add_argument("--tpm", type=int)
    create.add_argument("--max-parallel", type=int)
    create.add_argument("--daily-budget-usd", type=float)
    create.add_argument("--monthly-budget-usd", type=float)
    create.add_argument("--models", help="comma-separated globs, e.g. 'openai/*,anthropic/claude-*'")
    create.add_argument("--providers", help="comma-separated provider names")
    create.add_argument("--policy", help="enforced gateway values as JSON, e.g. '{\"zdr\": true}'")
    create.add_argument("--expires", help="UTC date or time: 2026-12-31 or 2026-12-31T18:00:00Z")
    sub.add_parser("list", help="every run-time key (never the key itself)").add_argument("--json", action="store_true")
    sub.add_parser("revoke", help="delete a key; every instance refuses it within a second").add_argument("name")
    sub.add_parser("rotate", help="replace a key's secret, keeping its limits; prints the new key").add_argument("name")
    for p in sub.choices.values():
        p.add_argument("--config", default=None)
    keys.set_defaults(func=main)


def fail(message: str) -> None:
    print(f"llm-router keys: {message}", file=sys.stderr)
    raise SystemExit(2)


def main(args: argparse.Namespace) -> None:
    from router_core.cli import DEFAULT_CONFIG

    path = args.config or DEFAULT_CONFIG
    try:
        config = load_config(path)
        settings = store_settings(config)
    except ConfigError as exc:
        fail("; ".join(exc.messages))
    if not settings.shared:
        fail(
            'run-time keys live in the shared store, and [store] url is "memory://" (one process, gone on exit); '
            'set [store] url = "redis://host:6379/0", or define the key as a [keys.<name>] table'
        )
    if "keys" not in config.plugins.enabled:
        print(
            'llm-router keys: note: "keys" is not in [plugins].enabled, so no gateway checks these keys yet',
            file=sys.stderr,
        )
    asyncio.run(run(args, config, open_store(settings)))


async def run(args: argparse.Namespace, config: Config, store: Store) -> None:
    try:
        await store.start()
        await COMMANDS[args.keys_command](args, config, store)
    except StoreUnavailable as exc:
        fail(str(exc))
    finally:
        await store.close()


def _list(text: str | None) -> tuple[str, ...]:
    return tuple(p.strip() for p in text.split(",") if p.strip()) if text else ()


def _check_name(config: Config, name: str) -> None:
    if not NAME.match(name):
        fail(f"{name!r}: a key name is letters, digits, '_', '.', '-' (at most 64)")
    if name in config.keys or name == "server":
        fail(f"{name!r} is defined in {config.path} ([keys.{name}] or server.api_keys); choose another name")


def _check_policy(config: Config, policy: dict[str, Any]) -> None:
    from router_core.app import build_schema
    from router_core.plugins import PluginHost

    try:
        build_schema(config, PluginHost(config)).enforce({}, policy, "--policy")
    except ConfigError as exc:
        fail("; ".join(exc.messages))


async def create(args: argparse.Namespace, config: Config, store: Store) -> None:
    _check_name(config, args.name)
    for option in ("rpm", "tpm", "max_parallel"):
        if getattr(args, option) is not None and getattr(args, option) < 1:
            fail(f"--{option.replace('_', '-')} must be at least 1")
    for option in ("daily_budget_usd", "monthly_budget_usd"):
        if getattr(args, option) is not None and getattr(args, option) < 0:
            fail(f"--{option.replace('_', '-')} must not be negative")
    try:
        policy = orjson.loads(args.policy) if args.policy else {}
        expires_at = parse_expiry(args.expires) if args.expires else None
    except (orjson.JSONDecodeError, ValueError) as exc:
        fail(str(exc))
    if not isinstance(policy, dict):
        fail("--policy must be a JSON object")
    _check_policy(config, policy)
    key = new_key()
    limits = Limits(args.rpm, args.tpm, args.max_parallel, args.daily_budget_usd, args.monthly_budget_usd)
    made = record(
        args.name,
        key,
        limits=limits,
        models=_list(args.models),
        providers=_list(args.providers),
        policy=policy,
        expires_at=expires_at,
    )
    if not await store.add_key(made):
        fail(f"a key named {args.name!r} exists; rotate or revoke it")
    print(key)
    print(f"key {args.name!r} created; it is shown only now (the store keeps its sha256)", file=sys.stderr)


def describe(r: KeyRecord) -> dict[str, Any]:
    limits = {k: v for k, v in attrs.asdict(r.limits).items() if v is not None}
    expires = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.expires_at)) if r.expires_at else None
    return {
        "name": r.name,
        "fingerprint": r.digest[:12],  # the sha256's start: tells keys apart, reveals nothing
        "created": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(r.created_at)),
        "expires": expires,
        **limits,
        "models": list(r.models),
        "providers": list(r.providers),
        "policy": r.policy,
    }


async def list_keys(args: argparse.Namespace, config: Config, store: Store) -> None:
    rows = [describe(r) for r in sorted(await store.keys(), key=lambda r: r.name)]
    if args.json:
        print(orjson.dumps(rows, option=orjson.OPT_INDENT_2).decode())
        return
    for row in rows:
        extras = " ".join(
            f"{k}={orjson.dumps(v).decode()}" for k, v in row.items() if k != "name" and v not in (None, [], {})
        )
        print(f"{row['name']}  {extras}")
    if not rows:
        print("no run-time keys", file=sys.stderr)


async def revoke(args: argparse.Namespace, config: Config, store: Store) -> None:
    if not await store.remove_key(args.name):
        fail(f"no run-time key named {args.name!r}")
    print(f"key {args.name!r} revoked", file=sys.stderr)


async def rotate(args: argparse.Namespace, config: Config, store: Store) -> None:
    old = next((r for r in await store.keys() if r.name == args.name), None)
    if old is None:
        fail(f"no run-time key named {args.name!r}")
    key = new_key()
    await store.add_key(attrs.evolve(old, digest=record(old.name, key).digest, created_at=time.time()), replace=True)
    print(key)
    print(f"key {args.name!r} rotated; the old key stops working within a second", file=sys.stderr)


COMMANDS = {"create": create, "list": list_keys, "revoke": revoke, "rotate": rotate}
