"""The aiohttp application: middlewares, routes, and the resources that live as long as it."""

from __future__ import annotations

import asyncio
import functools
import gc
import hashlib
import hmac
import ipaddress
import logging
from collections.abc import AsyncIterator, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import orjson
from aiohttp import web

from .config import Config, ConfigError
from .dialects import Dialect, chat, responses
from .errors import (
    Forbidden,
    GatewayError,
    MethodNotAllowed,
    ModelNotFound,
    NotFound,
    PayloadTooLarge,
    RequestTimeout,
    Unauthorized,
    UnsupportedMediaType,
)
from .gateway import GatewaySchema
from .http1 import Client
from .limits import TRIM, MemoryTrim
from .outcome import ERROR_CODE, finish_middleware
from .pipeline import RUNTIME, Runtime, handle
from .plugins import PluginHost
from .providers import BUILTIN_PROVIDERS, Provider, Routes

log = logging.getLogger("llm_router")

OPEN_PATHS = frozenset({"/healthz"})
# Allocations between collections of the youngest generation (CPython's default is 700).
GC_YOUNG = 20_000
# Upstream connections kept per host: enough for high concurrency without exhausting fds.
CONNECTIONS_PER_HOST = 256


# The dialect each POST path speaks, so an error (auth included) is rendered in the client's shape.
ROUTE_DIALECTS = web.AppKey("route_dialects", dict)


def json_error(error: GatewayError, dialect: Dialect | None = None) -> web.Response:
    body = dialect.error_body(error) if dialect is not None else error.body()
    resp = web.Response(
        status=error.status, body=orjson.dumps(body), content_type="application/json", headers=error.headers
    )
    resp[ERROR_CODE] = error.code or error.type  # for the request's Outcome
    return resp


def serve_dialect(app: web.Application, path: str, dialect: Dialect, endpoint=None, name: str | None = None) -> None:
    """Answer ``POST path`` in ``dialect`` (a plugin's ingress, e.g. /v1/messages).

    By default through the request pipeline; ``endpoint`` is another handler for a route of
    the same dialect (its errors and client key header are then the dialect's too).
    """

    app[ROUTE_DIALECTS][path] = dialect
    # A partial, not a wrapping coroutine: one frame less on every request.
    app.router.add_post(path, endpoint or functools.partial(handle, dialect=dialect), name=name or dialect.name)


def errors_middleware(gate: Callable[[web.Request], None] | None = None):
    """The one place exceptions become error bodies in the client's dialect.

    ``gate`` (the client key check, or the loopback-only check without keys) runs first
    inside it: a plain call rather than another middleware layer on every request.
    """

    @web.middleware
    async def errors(request: web.Request, handler) -> web.StreamResponse:
        try:
            if gate is not None and request.path not in OPEN_PATHS:
                gate(request)
            return await handler(request)
        except (PayloadTooLarge, RequestTimeout) as error:
            # The rest of the body is not worth reading: answer and hang up.
            resp = json_error(error, request.app[ROUTE_DIALECTS].get(request.path))
            resp.force_close()
            return resp
        except GatewayError as error:
            return json_error(error, request.app[ROUTE_DIALECTS].get(request.path))
        except (ConnectionResetError, aiohttp.ClientConnectionResetError):
            # The client went away while its answer was being written: nothing to answer, nothing
            # failed. Handled as the cancellation it is (aiohttp closes the connection quietly).
            log.debug("client went away on %s %s", request.method, request.path)
            raise asyncio.CancelledError from None
        except web.HTTPRequestEntityTooLarge:
            return json_error(
                PayloadTooLarge("The request body is larger than the gateway's limit (server.max_body_bytes).")
            )
        except web.HTTPNotFound:
            return json_error(NotFound(f"No route for {request.method} {request.path}."))
        except web.HTTPMethodNotAllowed:
            return json_error(MethodNotAllowed(f"{request.method} is not allowed on {request.path}."))
        except web.HTTPException:
            raise
        except Exception as exc:
            # The type only (traceback at debug level): an exception's message may quote request text.
            log.error(
                "unhandled %s on %s %s",
                type(exc).__name__,
                request.method,
                request.path,
                exc_info=log.isEnabledFor(logging.DEBUG),
            )
            return json_error(GatewayError("The gateway failed to handle the request."))

    return errors


def plugin_gate(host: PluginHost, config: Config) -> Callable[[web.Request], None] | None:
    """The client key check an enabled plugin registered (``register_gate``), if one did."""
    registered: list[tuple[str, Callable[[web.Request], None]]] = []
    for impl in host.impls("register_gate"):

        def register(check: Callable[[web.Request], None], name: str = impl.plugin_name) -> None:
            registered.append((name, check))

        host.call_declaration(impl, {"register": register, "config": config})
    if len(registered) > 1:
        names = ", ".join(name for name, _ in registered)
        raise ConfigError([f"plugins: {names} each check client keys (register_gate); enable one of them"])
    return registered[0][1] if registered else None


def key_check(keys: tuple[str, ...]) -> Callable[[web.Request], None]:
    """Bearer-key auth; digests are compared in constant time and keys never logged."""
    digests = [hashlib.sha256(k.encode()).digest() for k in keys]

    def check_key(request: web.Request) -> None:
        header = request.headers.get("Authorization", "")
        scheme, _, key = header.partition(" ")
        dialect = request.app[ROUTE_DIALECTS].get(request.path)
        if not header and dialect is not None and dialect.key_header in request.headers:
            scheme, key = "bearer", request.headers[dialect.key_header]
        # surrogateescape: a header with stray bytes is a wrong key, not a crash
        offered = hashlib.sha256(key.strip().encode("utf-8", "surrogateescape")).digest()
        matched = False
        for digest in digests:  # no early exit: timing says nothing about which key
            matched |= hmac.compare_digest(offered, digest)
        if scheme.lower() != "bearer" or not matched:
            raise Unauthorized("Missing or invalid API key; send 'Authorization: Bearer <key>'.")

    return check_key


LOOPBACK_NAMES = frozenset({"localhost", "localhost."})


@functools.lru_cache(maxsize=256)
def is_loopback_name(host: str) -> bool:
    """``localhost``, ``x.localhost`` or a loopback address (``127.0.0.1``, ``[::1]``), any port."""
    host = host.strip().lower()
    if host.startswith("["):  # [v6]:port
        host = host[1 : host.find("]")] if "]" in host else ""
    elif host.count(":") == 1:
        host = host.partition(":")[0]
    if host in LOOPBACK_NAMES or host.endswith((".localhost", ".localhost.")):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def is_json(request: web.Request) -> bool:
    """``Content-Type: application/json`` (any parameters, any case)."""
    given = request.headers.get("Content-Type", "")
    return given == "application/json" or request.content_type == "application/json"


def loopback_only(request: web.Request) -> None:
    """Without client keys only this machine may call, so a web page must not call for it.

    A browser sends cross-site ``text/plain`` or form POSTs without asking first (CSRF),
    and a DNS-rebinding page talks to 127.0.0.1 under its own host name: so requests
    must name a loopback ``Host`` (and ``Origin``, when sent) and carry JSON.
    """
    if not is_loopback_name(request.host):
        raise Forbidden(
            "Without server.api_keys the gateway answers only requests addressed to a loopback "
            "host (localhost, 127.0.0.1, [::1])."
        )
    origin = request.headers.get("Origin")
    if origin is not None and not is_loopback_name(urlsplit(origin).netloc):
        raise Forbidden("Without server.api_keys the gateway refuses requests from web pages of other origins.")
    if request.method == "POST" and not is_json(request):
        raise UnsupportedMediaType(
            "Send the request body as JSON with 'Content-Type: application/json'.", param="Content-Type"
        )


def provider_kinds(host: PluginHost) -> dict[str, type[Provider]]:
    """The built-in provider kinds and those the plugins registered (the host checked the config's kinds)."""
    kinds: dict[str, type[Provider]] = dict(BUILTIN_PROVIDERS)
    for kind, (cls, plugin) in host.provider_kinds.items():
        if kind in kinds:
            raise ConfigError([f"provider kind {kind!r} registered by both 'core' and {plugin!r}"])
        kinds[kind] = cls
    return kinds


def build_schema(config: Config, host: PluginHost) -> GatewaySchema:
    return GatewaySchema(host.gateway_fields, config.gateway, config.policy, host.names)


def describe_providers(config: Config) -> None:
    for name, p in config.providers.items():
        if p.missing_key:
            log.warning(
                "provider %s (%s): API key missing, environment variable %s is unset", name, p.kind, p.missing_key
            )
        else:
            log.info("provider %s (%s) ready%s", name, p.kind, ", zero data retention" if p.zdr else "")


def point_at_a_model(routes: Routes, config: Config) -> None:
    """Tell a newcomer which model answers right now, offline if an echo provider is configured."""
    listed = listed_models(routes, config)
    offline = next((m for m, owner in listed.items() if config.providers[owner].kind == "echo"), None)
    if offline:
        log.info("try model %r: it answers offline with the request the gateway would send upstream", offline)
    elif listed:
        log.info("models that can answer now: %s", ", ".join(listed))
    elif not any(p.unavailable is None for p in routes.providers.values()):
        log.warning("no model can answer: every provider lacks its API key (GET /v1/models lists what can)")


def create_app(config: Config, extra_plugins: list[tuple[str, object]] = ()) -> web.Application:
    """Build the gateway.  Raises ConfigError for anything wrong in the config."""
    host = PluginHost(config, list(extra_plugins))
    kinds = provider_kinds(host)
    schema = build_schema(config, host)

    if host.authenticates:
        # An enabled plugin checks client keys (and server.api_keys): in a gate of its own, or in its middleware.
        gate = plugin_gate(host, config)
    elif config.server.api_keys:
        gate = key_check(config.server.api_keys)
    else:
        gate = loopback_only
    middlewares: list[Any] = [finish_middleware(host), errors_middleware(gate)]
    host.call_startup("register_middlewares", register=middlewares.append, config=config)
    app = web.Application(middlewares=middlewares, client_max_size=config.server.max_body_bytes)
    app[TRIM] = MemoryTrim()

    async def resources(app: web.Application) -> AsyncIterator[None]:
        client = Client(limit_per_host=CONNECTIONS_PER_HOST)
        try:
            app[RUNTIME] = Runtime(config, host, schema, Routes(config, kinds, client))
            describe_providers(config)
            await host.start(app, config)  # a plugin that cannot start stops the gateway
            log.info("plugins enabled, in call order: %s", ", ".join(host.names) or "none")
            point_at_a_model(app[RUNTIME].routes, config)
            # Everything built so far lives as long as the process: keep the collector from
            # re-scanning it on every full collection (pauses that show up as p99 latency).
            gc.collect()
            gc.freeze()
            # The youngest generation is scanned every GC_YOUNG allocations, and each scan walks
            # every young object still alive: all in-flight requests' state. At 64 concurrent
            # requests the default (700) spent ~15 % of the gateway's CPU there (bench/run.py,
            # CPU per request at c64: 287 µs with this setting, 319–382 µs with the default).
            gc.set_threshold(GC_YOUNG, 20, 10)
            yield
            await host.stop(app)
        finally:
            await client.close()

    app.cleanup_ctx.append(resources)
    app[ROUTE_DIALECTS] = {}
    serve_dialect(app, "/v1/responses", responses.DIALECT)
    serve_dialect(app, "/v1/chat/completions", chat.DIALECT)
    app.router.add_get("/v1/models", list_models)
    app.router.add_get("/v1/models/{model:.+}", get_model)
    app.router.add_get("/healthz", healthz)
    host.call_startup("register_routes", app=app)
    return app


# The model an echo provider is listed under (it answers any name): what a newcomer can try offline.
ECHO_DEMO_MODEL = "demo"


def servable(routes: Routes, model: str) -> str | None:
    """The provider that would answer ``model`` now (the first route with its key present), or None."""
    try:
        candidates = routes.for_model(model)
    except ModelNotFound:
        return None
    return next((r.name for r in candidates if r.provider.unavailable is None), None)


def listed_models(routes: Routes, config: Config) -> dict[str, str]:
    """What ``/v1/models`` lists: model id → the provider that would answer it now.

    The configured ``[models]``, every provider's ``serves``, and each echo provider's demo
    model; a model whose every provider lacks its key is left out (it could only answer 503).
    """
    listed: dict[str, str] = {}
    candidates = [*config.models, *(m for p in config.providers.values() for m in p.serves)]
    candidates += [f"{name}/{ECHO_DEMO_MODEL}" for name, p in config.providers.items() if p.kind == "echo"]
    for model in candidates:
        owner = servable(routes, model)
        if owner is not None:
            listed.setdefault(model, owner)
    return listed


def model_object(model: str, owner: str) -> dict[str, Any]:
    return {"id": model, "object": "model", "created": 0, "owned_by": owner}


async def list_models(request: web.Request) -> web.Response:
    rt = request.app[RUNTIME]
    data = [model_object(m, owner) for m, owner in listed_models(rt.routes, rt.config).items()]
    return web.Response(body=orjson.dumps({"object": "list", "data": data}), content_type="application/json")


async def get_model(request: web.Request) -> web.Response:
    """One model, if a request for it would be served now (an echo provider serves any name)."""
    model = request.match_info["model"]
    owner = servable(request.app[RUNTIME].routes, model)
    if owner is None:
        raise ModelNotFound(f"The model '{model}' does not exist or no provider with its key can serve it.")
    return web.Response(body=orjson.dumps(model_object(model, owner)), content_type="application/json")


async def healthz(request: web.Request) -> web.Response:
    return web.Response(body=b'{"status":"ok"}', content_type="application/json")
