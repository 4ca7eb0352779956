"""What a request carries through the hooks: the context, its routes, its reply and its outcome."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from .call import Call, Usage

TOKENS_SAVED_HEADER = "x-router-tokens-saved"
_UNSCORED = object()  # asked for, but no scorer gave it

if TYPE_CHECKING:
    from .config import Config
    from .dialects import Dialect
    from .providers import Provider


@attrs.frozen
class GatewayField:
    """A ``gateway`` field a plugin owns: its type, the other names a client may use, and a check.

    ``check`` runs on the structured value (requests, ``[gateway]`` and ``[policy]`` alike)
    and raises ``ValueError`` with what is wrong: the client gets a 400 naming the field,
    a bad server default stops startup.
    """

    type: Any
    aliases: tuple[str, ...] = ()
    check: Callable[[Any], None] | None = None


@attrs.define(slots=True)
class Route:
    """One way to serve the request: a provider and the model name it knows."""

    provider: Provider
    model: str  # the upstream's own model name

    @property
    def name(self) -> str:
        return self.provider.name

    def __repr__(self) -> str:
        return f"Route({self.provider.name}:{self.model})"


@attrs.frozen
class Outcome:
    """How one request ended, handed to ``request_finished`` once the answer is complete.

    ``model`` is the model the gateway chose (``provider/model``, after ``select_model``),
    ``provider`` the provider that answered (``None`` when none did), ``fallbacks`` the
    routes given up on first. Tokens come from the answer's usage (0 when the upstream
    sent none); ``planner_tokens`` counts the side calls made through ``ctx.complete``
    (the planner, an LLM scorer). ``first_byte_ms`` is when the answer's first byte went
    out (``None`` if nothing did). ``error_code`` is the error's ``code`` (``type`` when it
    has none) for a refused or failed request, ``"client_closed"`` for a stream the client
    left, ``"stream_failed"`` for one that broke after its first byte. ``tokens_saved`` and
    ``redactions`` are what plugins noted (:meth:`RequestContext.note_saved`,
    :meth:`RequestContext.note_redactions`). ``key_name`` is the client key's name as an
    auth plugin set it on ``ctx.key_name``, never the key.
    """

    request_id: str
    status: int
    endpoint: str
    stream: bool = False
    model_requested: str | None = None
    model: str | None = None
    provider: str | None = None
    fallbacks: int = 0
    input_tokens: int = 0
    output_tokens: int = 0
    planner_tokens: int = 0
    latency_ms: float = 0.0
    first_byte_ms: float | None = None
    error_code: str | None = None
    tokens_saved: dict[str, int] = attrs.field(factory=dict)
    redactions: dict[str, int] = attrs.field(factory=dict)
    tag: str | None = None
    key_name: str | None = None


@attrs.define
class ReplyBody:
    """A complete answer in the client's dialect, with dialect-neutral helpers."""

    codec: Dialect
    body: dict[str, Any]

    @property
    def dialect(self) -> str:
        return self.codec.name

    def map_text(self, fn: Callable[[str], str], arguments: Callable[[str], str] | None = None) -> None:
        """Rewrite every piece of output text with ``fn``, tool-call arguments (JSON text) with ``arguments`` or ``fn``."""
        self.codec.map_reply_text(self.body, fn, arguments)

    @property
    def usage(self) -> Usage:
        return self.codec.reply_usage(self.body)


@attrs.define
class RequestContext:
    """Per-request state handed to every request hook.

    ``gateway`` holds the validated ``gateway`` fields (server defaults and policy
    applied), keyed by their canonical names; a field absent from it was not asked for.
    Treat its values as read-only: values from server defaults are built once and shared
    by every request that does not override them.
    ``plugin_state`` is each plugin's own scratch space, keyed by plugin name.
    ``request_id`` is the client's ``x-request-id`` (when sane) or a generated one; it is
    sent back on the answer. ``tag`` is the intent tag that chose the model and
    ``key_name`` the name of the client key (set by the plugins that know them); both end
    up in the request's :class:`Outcome`.
    ``app`` is the aiohttp application: state a plugin builds once per app (caches,
    clients) lives on it under a ``web.AppKey`` set in ``router_startup``; a plugin's
    validated ``[plugins.<name>]`` settings are :meth:`settings`.
    """

    call: Call
    gateway: dict[str, Any]
    config: Config
    app: Any = None
    headers: dict[str, str] = attrs.field(factory=dict)
    plugin_state: dict[str, Any] = attrs.field(factory=dict)
    wants_stream_events: bool = False
    debug: bool = False
    # The answer's id, minted by the gateway (``gen_…``) before any hook runs: what the
    # client sees, streamed or not, and what a response store keeps it under.
    reply_id: str = ""
    # Set by a plugin that needs the complete canonical answer (``reply_complete``), streamed ones included.
    wants_reply: bool = False
    # The upstream's own id for a non-streamed answer (a store may map its id to it).
    upstream_reply_id: str | None = None
    # The answer in the client's dialect, if a ``reply_complete`` hook rendered it already
    # (``dialect.encode_reply(reply, reply.id, ctx.call)``): the pipeline sends it instead of
    # rendering it again, so the hook must be done with the dict (serialised it) by then.
    reply_body: dict[str, Any] | None = None
    request_id: str = ""
    tag: str | None = None
    key_name: str | None = None
    # What the core records on the way, for the request's Outcome (plugins report through note_*).
    model_requested: str | None = None
    provider: str | None = None
    fallbacks: int = 0
    usage: Usage | None = None
    side_tokens: int = 0
    error_code: str | None = None
    first_byte_at: float | None = None
    tokens_saved: dict[str, int] = attrs.field(factory=dict)
    redactions: dict[str, int] = attrs.field(factory=dict)
    _settings: dict[str, Any] = attrs.field(factory=dict)
    _scorer: Callable[[RequestContext, set[str]], Awaitable[dict[str, Any]]] | None = None
    _scores: dict[str, Any] = attrs.field(factory=dict)
    _complete: Callable[..., Awaitable[Any]] | None = None
    _usage_extra: dict[str, Any] = attrs.field(factory=dict)

    def settings(self, plugin: str) -> Any:
        """A plugin's ``[plugins.<name>]`` settings, as its ``Manifest.settings`` class (validated at startup)."""
        return self._settings[plugin]

    async def scores(self, *names: str) -> dict[str, Any]:
        """The named scores of this request (``await ctx.scores("tag", "complexity")``): ``{name: value}``.

        Each is computed on first use by the plugins that provide it (``score_request``)
        and cached for the request. A name that no scorer could give this time (it
        failed: optimisations fail open) is absent, so read with a neutral default:
        ``scores.get("complexity", 0.5)``. Asking for a name no enabled plugin provides
        raises ``LookupError``; declare the names in ``MANIFEST.requires_scores`` and the
        gateway refuses to start without a plugin that provides them.
        """
        missing = {name for name in names if name not in self._scores}
        if missing:
            assert self._scorer is not None
            got = await self._scorer(self, missing)
            for name in missing:
                self._scores[name] = got.get(name, _UNSCORED)
            for name, value in got.items():
                self._scores.setdefault(name, value)
        return {name: value for name in names if (value := self._scores[name]) is not _UNSCORED}

    @property
    def scored(self) -> dict[str, Any]:
        """Every score computed for this request so far (explain and the debug header show them)."""
        return {name: value for name, value in self._scores.items() if value is not _UNSCORED}

    async def complete(self, call: Call) -> Any:
        """Send a side call (planner, LLM scorer) through the provider layer; returns a ``Reply``.

        The call is routed like a request (its own model's routes, ``select_provider``
        hooks applied) but runs no ``pre_request`` hooks: redact the text first.
        """
        assert self._complete is not None
        return await self._complete(self, call)

    def add_usage_detail(self, key: str, value: Any) -> None:
        """Attach a field to the answer's ``usage`` object, streamed or not."""
        self._usage_extra[key] = value

    def note_saved(self, name: str, tokens: int) -> None:
        """Report tokens an optimisation saved (``name``: the plugin or what it removed).

        Summed per name into the request's :class:`Outcome` and the
        ``x-router-tokens-saved`` header (``history=120,tools=340``).
        """
        self.tokens_saved[name] = self.tokens_saved.get(name, 0) + max(int(tokens), 0)
        self.headers[TOKENS_SAVED_HEADER] = ",".join(f"{k}={n}" for k, n in self.tokens_saved.items())

    def note_redactions(self, kind: str, count: int) -> None:
        """Report ``count`` values of ``kind`` masked (``email``, ``custom``…); never the values."""
        if count > 0:
            self.redactions[kind] = self.redactions.get(kind, 0) + count

    def note_route(self, provider: str, fallbacks: int) -> None:
        """Record which provider answered and how many routes were given up on first.

        The core calls it for upstream answers; a plugin that answers through
        ``serve_request`` calls it for the provider it used.
        """
        self.provider = provider
        self.fallbacks = fallbacks
