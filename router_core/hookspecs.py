"""The plugin API: every hook a plugin may implement, in the order the core calls them.

Calling convention (decided once, here): the core walks the implementations itself,
``tryfirst`` ones first and ``trylast`` ones last, otherwise in the order of
``[plugins].enabled`` in plugins.toml (plugins registered later, such as a test's
throwaway plugin, come after); it passes each only the arguments it names and awaits
any result that is awaitable. So every hook may be ``def`` or ``async def``, the
declaration hooks (``register_providers``, ``gateway_fields``, ``register_routes``,
run while the app is built) included. ``firstresult`` below means the core stops at
the first result that is not ``None`` *after* awaiting it; ``select_model`` and
``select_provider`` are chained (each implementation sees the previous one's choice).

The host refuses at startup what it cannot run: an ``@hookimpl`` whose name is not a
hook below (a misspelling), an argument a hook does not have, and ``wrapper`` /
``hookwrapper`` implementations. What a plugin provides and requires (scores,
``gateway`` fields, provider kinds, other plugins), its order constraints and its
``[plugins.<name>]`` settings class are declared in its module's
``MANIFEST = router_core.Manifest(...)`` and checked at startup and by ``llm-router check``.

Failure: a ``GatewayError`` raised by a request hook reaches the client as is. Any
other exception from a plugin whose module sets ``FAIL_CLOSED = True`` (redact, zdr)
refuses the request with a 500; from any other plugin it is logged (type only),
counted, and the plugin is skipped for that call (optimisations fail open). Such
security plugins must come before every other ``pre_request`` implementation: the
gateway refuses to start otherwise. An exception from ``router_startup`` or a
declaration hook stops startup; one from ``router_shutdown`` or ``request_finished``
is logged.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from aiohttp import web

    from .call import Reply, StreamPiece
    from .config import Config
    from .context import Outcome, ReplyBody, RequestContext, Route

hookspec = pluggy.HookspecMarker("llm_router")

# ---------------------------------------------------------------- startup


@hookspec
def router_startup(app: web.Application, config: Config, settings: Any) -> None:
    """Called once when the app starts, before the first request; returns nothing.

    :param app: the aiohttp application; keep resources on it under an ``AppKey``.
    :param config: the parsed plugins.toml.
    :param settings: this plugin's own ``[plugins.<name>]`` table as an instance of the
        attrs class its ``MANIFEST.settings`` declares (validated by the core, the same
        in ``serve`` and ``llm-router check``); ``None`` when it declares none.
    An exception stops startup.
    """


@hookspec
def router_shutdown(app: web.Application) -> None:
    """Called once when the app stops; close what ``router_startup`` opened."""


@hookspec
def register_providers(register: Any) -> None:
    """Called at startup to add provider kinds; returns nothing.

    :param register: ``register(kind, provider_class)``; the class is a
        :class:`router_core.providers.Provider` subclass. A kind registered twice is
        a startup error naming both plugins.
    """


@hookspec
def register_middlewares(register: Any, config: Config) -> None:
    """Called once while the app is built, to add aiohttp middlewares; returns nothing.

    :param register: ``register(middleware)`` appends an ``@web.middleware`` function;
        it runs inside the core's error middleware (so a ``GatewayError`` it raises is
        rendered as usual), in plugin order.
    :param config: the parsed plugins.toml. A plugin that provides client
        authentication sets ``AUTHENTICATES = True`` in its module: the core then drops
        its own ``server.api_keys`` check and the plugin's gate (``register_gate``) or
        middleware does it instead.
        Raise ``ConfigError`` here for a bad table, so ``llm-router check`` sees it too.
    """


@hookspec
def register_gate(register: Any, config: Config) -> None:
    """Called once while the app is built, by a plugin that checks client keys itself; returns nothing.

    :param register: ``register(check)`` gives the core ``check(request)``, a plain function
        (not ``async``) that the core calls first for every request but ``GET /healthz``,
        inside its error middleware: it raises a ``GatewayError`` (``Unauthorized`` …) to
        refuse, rendered in the client's dialect. It runs in the request's own task, so a
        ``contextvars.ContextVar`` it sets is seen by the request's hooks and by no other
        request. The plugin sets ``AUTHENTICATES = True`` in its module, and the core then
        drops its own ``server.api_keys`` check. One gate per app: two plugins registering
        one is a startup error. (A plugin may check keys in a middleware of its own instead;
        a gate is one call, not one more coroutine layer on every request.)
    :param config: the parsed plugins.toml; raise ``ConfigError`` for a bad table.
    """


@hookspec
def register_routes(app: web.Application) -> None:
    """Called at startup to add HTTP routes (metrics, admin); returns nothing."""


@hookspec
def gateway_fields() -> dict[str, Any]:
    """Called at startup; returns the ``gateway`` fields this plugin owns.

    The result maps a field name to a type or attrs class (structured by the core's
    cattrs converter, so attrs validators run) or to a
    :class:`router_core.GatewayField` for aliases and a ``check`` of the value. A field
    owned by two plugins is a startup error. A request naming a field no enabled plugin
    owns is refused (400); a value that fails is a 400 whose ``param`` names the path.
    """


# ---------------------------------------------------------------- request in


@hookspec
def pre_request(ctx: RequestContext) -> None:
    """Called for each request after parsing and validation; returns nothing.

    :param ctx: the request context; mutate ``ctx.call`` (messages, tools, params)
        and ``ctx.headers`` in place. Raise a ``GatewayError`` to refuse the request.
        A plugin that must see the answer's stream sets ``ctx.wants_stream_events``.
    """


@hookspec
def score_request(ctx: RequestContext, wanted: frozenset[str]) -> dict[str, Any] | None:
    """Called lazily when a plugin awaits ``ctx.scores("tag", "complexity")``; returns the scores it can give.

    :param wanted: the score names asked for that no earlier scorer has given yet; a
        plugin is only called when it declares one of them in ``MANIFEST.provides_scores``.
    Returns ``{score name: value}`` (names it did not declare are ignored; it may give
    more than asked, and the extras are kept), or ``None`` for none. The core calls the
    scorers in plugin order and merges per name: the first value given wins, so an LLM
    scorer (``tryfirst``) answers what it can and the local scorer (``trylast``) the rest.
    Each name is computed once per request; the values are shared, so do not mutate them.
    """


# ---------------------------------------------------------------- model


@hookspec
def select_model(ctx: RequestContext) -> str | None:
    """Called after ``pre_request`` to choose the model; returns a model id or ``None``.

    Implementations run in plugin order, each seeing ``ctx.call.model`` as the
    previous one left it: a returned string replaces the model (``provider/model``),
    ``None`` keeps it. Chained rather than first-wins so that a tag can choose
    ``a:planning:b`` and the planning plugin can then resolve it.
    """


# ---------------------------------------------------------------- route


@hookspec
def select_provider(ctx: RequestContext, routes: list[Route]) -> list[Route] | None:
    """Called before sending to rank and filter the candidate routes.

    :param routes: the previous implementation's result (first: the config's default
        ranking: the model's own provider, then the providers that ``serve`` it).
    Returns the new list, or ``None`` to keep it. Prefer raising a ``GatewayError`` that
    says why nothing may serve the request (403 for a policy); if the final list is
    empty anyway, the core answers 502 ``no_route``.
    """


@hookspec(firstresult=True)
def serve_request(ctx: RequestContext, routes: list[Route]) -> Reply | None:
    """Called after the routes are chosen; returns a ``Reply`` to answer without the usual upstream call.

    For plugins that produce the answer another way (image generation through a
    provider's images API, a cache). The core renders the Reply in the client's
    dialect, streamed if asked, and runs ``post_response`` / ``on_stream_event`` on it.
    ``None`` means "not mine". Stops at the first non-``None`` result.
    """


@hookspec
def upstream_request(ctx: RequestContext, route: Route, body: dict[str, Any]) -> None:
    """Called with the body about to be sent on ``route`` (once per attempt); returns nothing.

    Mutate ``body`` in place to add a provider's own switches (e.g. ``store: false``).
    """


# ---------------------------------------------------------------- response out


@hookspec
def post_response(ctx: RequestContext, reply: ReplyBody) -> None:
    """Called after a complete (non-streamed) answer, before it is sent; returns nothing.

    :param reply: a :class:`router_core.ReplyBody`: the answer in the client's
        dialect (``reply.body``) with dialect-neutral helpers ``map_text`` and ``usage``.
        Mutate it and ``ctx.headers`` in place.
    """


@hookspec
def reply_complete(ctx: RequestContext, reply: Reply) -> None:
    """Called once the whole answer is known, before its last byte reaches the client; returns nothing.

    Only for requests where a plugin set ``ctx.wants_reply`` in ``pre_request``.
    :param reply: the canonical :class:`router_core.Reply` with the content the upstream
        (or a ``serve_request`` plugin) gave, before ``post_response`` / ``on_stream_event``
        rewrote it; ``reply.id`` is ``ctx.reply_id`` and ``reply.model`` the model as the
        client named it (the upstream's own id is ``ctx.upstream_reply_id``). For a store:
        the client may send a follow-up as soon as it has the answer, so make it readable
        before returning (written to disk then, or kept in memory until a later commit).
        A hook that renders the answer in the client's dialect may leave it in ``ctx.reply_body``
        for the pipeline to send instead of rendering it again.
    """


@hookspec
def on_stream_event(ctx: RequestContext, piece: StreamPiece) -> list[StreamPiece] | None:
    """Called for each piece of a streamed answer, if ``ctx.wants_stream_events`` is set.

    :param piece: a canonical ``TextDelta``, ``ToolCallDelta`` or ``StreamEnd``.
    Returns ``None`` to pass the piece on (mutated or not), or a list of pieces to
    send instead (empty: drop it). The last piece is always a ``StreamEnd``.
    """


# ---------------------------------------------------------------- finished


@hookspec
def request_finished(ctx: RequestContext | None, outcome: Outcome, app: web.Application) -> None:
    """Called exactly once per HTTP request, after its answer is complete; returns nothing
    (an ``async def`` implementation, or a plain one returning an awaitable it wants awaited).

    For metrics, logs and the usage ledger. It runs after the last byte was sent (or the
    client hung up), for answers and errors alike, including requests refused before a
    context existed (auth, a body that is not JSON): then ``ctx`` is ``None``.

    :param ctx: the request context, or ``None``; read it, do not change it.
    :param app: the aiohttp application (where a plugin's per-app state lives, also
        when ``ctx`` is ``None``).
    :param outcome: a :class:`router_core.Outcome`: status, endpoint, model and provider,
        tokens, latency, error code, tokens saved and redactions per plugin.
    An exception is logged (its type only) and never changes the answer; slow work (a
    database write) belongs in a queue the plugin drains off the request path.
    """
