"""``llm-router``: serve the gateway, check a config, explain a routing decision."""

from __future__ import annotations

import argparse
import asyncio
import errno
import ipaddress
import logging
import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

from aiohttp import web

from .config import Config, ConfigError, load_config

DEFAULT_CONFIG = os.environ.get("LLM_ROUTER_CONFIG", "plugins.toml")


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _load(path: str) -> Config:
    try:
        return load_config(path)
    except ConfigError as exc:
        for message in exc.messages:
            print(f"{path}: {message}", file=sys.stderr)
        raise SystemExit(2) from None


def serve(args: argparse.Namespace) -> None:
    import attrs

    from .app import create_app
    from .plugins import PluginHost
    from .server import bind, raise_fd_limit
    from .workers import EXIT_CONFIG, EXIT_FAILED, StartupFailed, Supervisor, run_worker

    config = _load(args.config)
    host = args.host or config.server.host
    port = args.port if args.port is not None else config.server.port
    if args.workers is not None:
        if args.workers < 1:
            print(f"--workers must be at least 1, got {args.workers}", file=sys.stderr)
            raise SystemExit(EXIT_CONFIG)
        # Plugins that keep state (limits) check the worker count at startup.
        config = attrs.evolve(config, server=attrs.evolve(config.server, workers=args.workers))
    workers = config.server.workers
    try:
        # A plugin may check client keys in place of server.api_keys (AUTHENTICATES).
        authenticated = bool(config.server.api_keys) or PluginHost(config).authenticates
    except ConfigError as exc:
        for message in exc.messages:
            print(f"{config.path}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    if not authenticated and not _is_loopback(host):
        print(
            f"refusing to listen on {host} without server.api_keys: without keys the gateway is loopback-only",
            file=sys.stderr,
        )
        raise SystemExit(EXIT_CONFIG)
    try:
        create_app(config)  # every config error before anything listens
    except ConfigError as exc:
        for message in exc.messages:
            print(f"{config.path}: {message}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG) from None
    server, problem = raise_fd_limit(config.server)
    if problem:
        print(f"{config.path}: cannot start: {problem}", file=sys.stderr)
        raise SystemExit(EXIT_CONFIG)
    config = attrs.evolve(config, server=server)
    try:
        sock = bind(host, port)
    except OSError as exc:
        reason = "the address is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        print(f"llm-router: cannot listen on {host}:{port}: {reason}", file=sys.stderr)
        raise SystemExit(EXIT_FAILED) from None
    bound_port = sock.getsockname()[1]
    url = f"http://{host}:{bound_port}/v1"
    log = logging.getLogger("llm_router")
    if not authenticated:
        log.warning("no server.api_keys: client auth is off, so the gateway stays on loopback")
    try:
        if workers == 1:
            run_worker(config, sock, url)
        else:
            raise SystemExit(Supervisor(config, sock, url, workers).run())
    except StartupFailed as exc:
        print(f"{config.path}: {exc}", file=sys.stderr)
        raise SystemExit(exc.code) from None
    finally:
        sock.close()


def check(args: argparse.Namespace) -> None:
    from .app import create_app
    from .plugins import PluginHost

    config = _load(args.config)
    try:
        create_app(config)
        host = PluginHost(config)
    except ConfigError as exc:
        for message in exc.messages:
            print(f"{args.config}: {message}", file=sys.stderr)
        raise SystemExit(2) from None
    print(f"{args.config}: ok")
    print("plugins, in call order:")
    for name, hooks in host.describe():
        print(f"  {name}: {', '.join(hooks)}")
        for line in declared(host, name):
            print(f"    {line}")
    print("providers:")
    for name, p in config.providers.items():
        state = f"key missing ({p.missing_key})" if p.missing_key else "ready"
        print(f"  {name}: kind={p.kind} zdr={str(p.zdr).lower()} {state}")


def declared(host, name: str) -> list[str]:
    """What a plugin declares (its MANIFEST) and registers, one line each, for ``check``."""
    manifest = host.manifests[name]
    lines = []
    kinds = [kind for kind, (_, owner) in host.provider_kinds.items() if owner == name]
    fields = [field for owner, declared in host.gateway_fields if owner == name for field in declared]
    for label, values in (
        ("provides scores", manifest.provides_scores),
        ("provides provider kinds", kinds),
        ("provides gateway fields", fields),
        ("requires scores", manifest.requires_scores),
        ("requires plugins", manifest.requires_plugins),
        ("requires gateway fields", manifest.requires_gateway_fields),
        ("requires provider kinds", manifest.requires_provider_kinds),
        ("after", manifest.after),
        ("before", manifest.before),
    ):
        if values:
            lines.append(f"{label}: {', '.join(values)}")
    if manifest.settings is not None:
        # The class, not the values: a table may hold a secret.
        lines.append(f"settings: [plugins.{name}] ({manifest.settings.__name__}, validated)")
    return lines


def explain(args: argparse.Namespace) -> None:
    """Run a request through every decision (no upstream call) and print the scores and the choice."""
    import orjson

    config = _load(args.config)
    try:
        raw = Path(args.file).read_bytes() if args.file != "-" else sys.stdin.buffer.read()
        body = orjson.loads(raw)
    except (OSError, orjson.JSONDecodeError) as exc:
        print(f"{args.file}: cannot read a JSON request ({exc})", file=sys.stderr)
        raise SystemExit(2) from None
    if not isinstance(body, dict):
        print(f"{args.file}: the request must be a JSON object", file=sys.stderr)
        raise SystemExit(2)
    asyncio.run(_explain(config, body))


async def _explain(config: Config, body: dict) -> None:
    from .app import create_app
    from .context import RequestContext
    from .dialects import chat, responses
    from .errors import GatewayError
    from .pipeline import RUNTIME, choose_model, choose_routes, score

    app = create_app(config)
    runner = web.AppRunner(app)
    await runner.setup()  # runs router_startup: sessions, the scorer's embeddings

    async def no_side_calls(ctx, call):
        raise GatewayError(f"explain makes no upstream calls (would call {call.model})")

    try:
        rt = app[RUNTIME]
        codec = chat.DIALECT if "messages" in body else responses.DIALECT
        ctx = RequestContext(
            call=codec.decode_request(body),
            gateway=rt.schema.parse(body.get("gateway")),
            config=rt.config,
            app=app,
            settings=rt.host.settings,
            scorer=lambda c, wanted: score(rt, c, wanted),
            complete=no_side_calls,
        )
        await rt.host.call("pre_request", ctx=ctx)
        scores = await ctx.scores(*rt.host.score_sources)  # every score the enabled plugins give
        print(f"dialect: {codec.name}   requested model: {body.get('model') or '(none)'}")
        print("scores:")
        for name, value in scores.items():
            print(f"  {name}: {value}   (from {' or '.join(rt.host.score_sources[name])})")
        await choose_model(rt, ctx)
        routes = await choose_routes(rt, ctx, ctx.call)
        print("decision:")
        print(f"  model: {ctx.call.model}")
        print(f"  routes: {', '.join(f'{r.name} ({r.model})' for r in routes)}")
        for key, value in ctx.headers.items():
            print(f"  {key}: {value}")
        for plugin, state in ctx.plugin_state.items():
            print(f"  {plugin}: {state}")
    except GatewayError as exc:
        print(f"refused ({exc.status}): {exc.message}" + (f" [param {exc.param}]" if exc.param else ""))
        raise SystemExit(1) from None
    finally:
        await runner.cleanup()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="llm-router", description="A self-hosted LLM gateway.")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("serve", help="run the gateway")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--workers", type=int, help="processes serving the port (default: server.workers, 1)")
    p.set_defaults(func=serve)
    p = sub.add_parser("check", help="validate the config and list plugins and their hooks")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.set_defaults(func=check)
    p = sub.add_parser("explain", help="show the scores and routing decision for a request, without calling upstream")
    p.add_argument("--config", default=DEFAULT_CONFIG)
    p.add_argument("--file", default="-", help="the request body as JSON (default: stdin)")
    p.set_defaults(func=explain)
    for command in entry_points(group="llm_router.commands"):  # plugins' own subcommands
        command.load()(sub)
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=os.environ.get("LLM_ROUTER_LOG", "INFO"), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    args.func(args)


if __name__ == "__main__":
    main()
