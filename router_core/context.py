"""What a request carries through the hooks: the context, its routes, scores and reply."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import attrs

from .call import Call, Usage

if TYPE_CHECKING:
    from .config import Config
    from .dialects import Dialect
    from .providers import Provider


@attrs.frozen
class GatewayField:
    """A ``gateway`` field a plugin owns: its type and the other names a client may use."""

    type: Any
    aliases: tuple[str, ...] = ()


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


@attrs.define
class Scores:
    """What the scorer says about a request; every value is explainable in ``reasons``.

    ``tag`` is the best-matching tag name (``None`` when none matches well enough),
    ``tag_scores`` every tag's match 0..1, ``complexity`` 0..1, ``wants_image`` whether
    the prompt asks for an image as output, ``history_dependency`` how much the latest
    message needs the earlier ones 0..1, ``media_relevance`` per earlier media part
    (keyed ``"<message index>:<part index>"``) 0..1, ``tool_relevance`` per tool name 0..1.
    """

    complexity: float = 0.5
    tag: str | None = None
    tag_scores: dict[str, float] = attrs.field(factory=dict)
    wants_image: bool = False
    history_dependency: float = 1.0
    media_relevance: dict[str, float] = attrs.field(factory=dict)
    tool_relevance: dict[str, float] = attrs.field(factory=dict)
    reasons: dict[str, Any] = attrs.field(factory=dict)


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
    ``app`` is the aiohttp application: state a plugin builds once per app (parsed
    ``[plugins.<name>]`` settings, caches) lives on it under a ``web.AppKey`` set in
    ``router_startup``.
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
    _scorer: Callable[[RequestContext], Awaitable[Scores]] | None = None
    _scores: Scores | None = None
    _complete: Callable[..., Awaitable[Any]] | None = None
    _usage_extra: dict[str, Any] = attrs.field(factory=dict)

    async def scores(self) -> Scores:
        """The request's scores, computed on first use (by ``score_request``) and cached."""
        if self._scores is None:
            assert self._scorer is not None
            self._scores = await self._scorer(self)
        return self._scores

    @property
    def scored(self) -> bool:
        """Whether any plugin asked for scores (explain output uses this)."""
        return self._scores is not None

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
