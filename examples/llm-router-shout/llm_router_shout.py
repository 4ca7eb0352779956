"""An example third-party plugin: ``gateway.shout = true`` upper-cases the answer, streamed or not."""

from router_core import ReplyBody, RequestContext, TextDelta, hookimpl


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
        reply.map_text(str.upper)


@hookimpl
def on_stream_event(ctx: RequestContext, piece):
    if ctx.gateway.get("shout") and isinstance(piece, TextDelta):
        piece.text = piece.text.upper()
