"""An example third-party plugin: ``gateway.shout = true`` upper-cases the answer, streamed or not."""

import attrs

from router_core import Manifest, ReplyBody, RequestContext, StreamEnd, TextDelta, hookimpl


@attrs.frozen
class ShoutSettings:
    """``[plugins.shout]``, validated by the gateway at startup and in ``llm-router check``."""

    suffix: str = attrs.field(default="", validator=attrs.validators.max_len(8))  # added after a shouted answer


# Upper-casing must come after redact puts masked values back (restore mode), or the
# placeholders it looks for would be upper-cased first: the gateway refuses the other order.
MANIFEST = Manifest(after=("redact",), settings=ShoutSettings)


@hookimpl
def gateway_fields():
    return {"shout": bool}


@hookimpl
def pre_request(ctx: RequestContext) -> None:
    if ctx.gateway.get("shout"):
        ctx.wants_stream_events = True


@hookimpl
def post_response(ctx: RequestContext, reply: ReplyBody) -> None:
    if ctx.gateway.get("shout"):
        suffix = ctx.settings("shout").suffix
        reply.map_text(lambda text: text.upper() + suffix, lambda arguments: arguments)


@hookimpl
def on_stream_event(ctx: RequestContext, piece):
    if not ctx.gateway.get("shout"):
        return None
    if isinstance(piece, TextDelta):
        piece.text = piece.text.upper()
    elif isinstance(piece, StreamEnd) and ctx.settings("shout").suffix:
        return [TextDelta(ctx.settings("shout").suffix), piece]
    return None
