"""Hooks of the response store: expand ``previous_response_id``, keep each answer, serve GET/DELETE/input_items."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import attrs
import orjson
from aiohttp import web

from router_core import GatewayError, Manifest, Reply, RequestContext, Route, hookimpl
from router_core.config import resolve_secret
from router_core.dialects import responses
from router_core.errors import BadRequest, NotFound
from router_core.pipeline import RUNTIME
from router_lib.store import KEY_NAME
from router_plugins.responses_store.store import RedisStore, ResponseStore, SQLiteStore

log = logging.getLogger("llm_router.responses_store")

# A store that fails while a conversation is being replayed must refuse the request: going on
# would send the follow-up without its history, a silently different question.
FAIL_CLOSED = True

BACKENDS = ("sqlite", "redis")
DEFAULT_PATH = "data/responses.sqlite3"
DEFAULT_RETENTION_DAYS = 30.0
# input_items pages, as OpenAI's: 20 by default, at most 100.
DEFAULT_PAGE, MAX_PAGE = 20, 100


def _one_of(*choices: str):
    def check(instance: Any, attribute: attrs.Attribute, value: str) -> None:
        if value not in choices:
            raise ValueError(f"{attribute.name}: {value!r} is not one of {', '.join(choices)}")

    return check


def _positive(instance: Any, attribute: attrs.Attribute, value: float) -> None:
    if not value > 0:
        raise ValueError(f"{attribute.name}: expected a number > 0, got {value!r}")


@attrs.frozen
class Settings:
    """``[plugins.responses-store]``, structured and validated by the core at startup and in ``check``."""

    backend: str = attrs.field(default="sqlite", validator=_one_of(*BACKENDS))
    path: str = DEFAULT_PATH  # the SQLite file (its directory is created)
    redis_url: str | None = None  # literal or env:NAME; required with backend = "redis"
    retention_days: float = attrs.field(default=DEFAULT_RETENTION_DAYS, validator=_positive)
    # SQLite: hold each answer until its record is committed (a crash then loses no answered
    # response; other workers on the file see it at once), at the cost of throughput. Off: records
    # are committed every 20 ms in the background, and a crash loses the last ones.
    commit_before_answer: bool = attrs.field(default=False, validator=attrs.validators.instance_of(bool))

    def __attrs_post_init__(self) -> None:
        if self.backend == "redis" and not self.redis_url:
            raise ValueError("redis_url: required with backend = 'redis'")


def redis_url(settings: Settings, env: dict[str, str]) -> str:
    url, missing = resolve_secret(settings.redis_url, env)
    if missing or not url:
        raise ValueError(f"plugins.responses-store.redis_url: environment variable {missing} is unset")
    return url


# After redact: what is stored and replayed is what went upstream, masked.
MANIFEST = Manifest(after=("redact",), settings=Settings)
PLUGIN = "responses-store"
STORE = web.AppKey("responses_store.store", object)
SETTINGS = web.AppKey("responses_store.settings", Settings)


@hookimpl
async def router_startup(app: web.Application, settings: Settings) -> None:
    if settings.backend == "redis":
        store: ResponseStore = await RedisStore(redis_url(settings, dict(os.environ))).open()
    else:
        store = await SQLiteStore(Path(settings.path), settings.commit_before_answer).open()
    app[SETTINGS], app[STORE] = settings, store
    log.info("response store: %s, kept %g days", settings.backend, settings.retention_days)


@hookimpl
async def router_shutdown(app: web.Application) -> None:
    await app[STORE].close()


# ---------------------------------------------------------------- the request path


class StoreUnavailable(GatewayError):
    status = 503
    type = "server_error"
    code = "store_unavailable"


@hookimpl
async def pre_request(ctx: RequestContext) -> None:
    """Replay the stored conversation in front of the new input; ask for the answer if it is to be kept.

    Runs after redaction: what was stored is what went upstream, and the new input is masked already.
    """
    call = ctx.call
    if call.dialect != responses.NAME:
        return
    previous = call.params.pop("previous_response_id", None)
    if previous is not None:
        if not isinstance(previous, str):
            raise BadRequest("'previous_response_id' must be a string.", param="previous_response_id")
        try:
            record = await ctx.app[STORE].get(previous)
        except Exception as exc:
            log.error("response store: could not read %s: %s", previous, type(exc).__name__)
            raise StoreUnavailable(
                "The response store is unavailable; previous_response_id cannot be resolved."
            ) from None
        if record is None or record.get("owner") != ctx.key_name:  # another key's response is not there
            raise NotFound(
                f"Previous response with id '{previous}' not found.",
                param="previous_response_id",
                code="previous_response_not_found",
            )
        history = responses.decode_items(record["input"] + record["response"]["output"], "previous_response_id")
        instructions = [m for m in call.messages if m.instructions]
        call.messages = instructions + history + [m for m in call.messages if not m.instructions]
        upstream = record.get("upstream")
        if upstream:  # the upstream keeps this conversation itself: upstream_request may point at it
            ctx.plugin_state[PLUGIN] = Replay(upstream["provider"], upstream["id"], responses.encode_input(history))
    if call.params.get("store", True) is not False and not ctx.gateway.get("zdr"):
        ctx.wants_reply = True


@hookimpl
async def reply_complete(ctx: RequestContext, reply: Reply) -> None:
    """Keep the answer under its gateway id before the client can ask for it (streamed ones too)."""
    if ctx.call.dialect != responses.NAME or not ctx.wants_reply:
        return
    settings: Settings = ctx.app[SETTINGS]
    # The output items live inside the response: a replay reads them from there.
    record = {
        "response": responses.encode_reply(reply, reply.id, ctx.call),
        "input": responses.encode_input(ctx.call.messages),
        "provider": ctx.provider,
        "owner": ctx.key_name,  # with client keys, only the key that made it reads it back
    }
    if ctx.upstream_reply_id and ctx.provider and _speaks_responses(ctx, ctx.provider):
        # A native Responses upstream stored it too (``store: false`` and zdr never reach here).
        record["upstream"] = {"provider": ctx.provider, "id": ctx.upstream_reply_id}
    try:
        await ctx.app[STORE].put(reply.id, record, settings.retention_days * 86400)
    except Exception as exc:  # the answer is good; a follow-up on it will say the id is unknown
        log.error("response store: could not keep %s: %s", reply.id, type(exc).__name__)
    # Serialised by now: the client gets the same response, rendered once (the pipeline may change it).
    ctx.reply_body = record["response"]


@attrs.frozen
class Replay:
    """A replayed conversation the provider that answered it keeps too, under its own id."""

    provider: str
    upstream_id: str
    items: list[dict[str, Any]]  # the replayed history as Responses input items


def _speaks_responses(ctx: RequestContext, provider: str) -> bool:
    routes = ctx.app[RUNTIME].routes
    return provider in routes.providers and routes.providers[provider].codec(ctx.call).name == responses.NAME


@hookimpl
def upstream_request(ctx: RequestContext, route: Route, body: dict[str, Any]) -> None:
    """Back on the provider that answered the previous response, natively: send its own id and
    only the new input, so it reuses what it kept (reasoning items, its cache) instead of a replay."""
    replay = ctx.plugin_state.get(PLUGIN)
    if not isinstance(replay, Replay) or route.name != replay.provider or "input" not in body:
        return
    sent = body["input"]
    n = len(replay.items)
    if isinstance(sent, list) and sent[:n] == replay.items:  # no plugin changed the replayed part
        body["input"] = sent[n:]
        body["previous_response_id"] = replay.upstream_id


# ---------------------------------------------------------------- routes


@hookimpl
def register_routes(app: web.Application) -> None:
    app.router.add_get("/v1/responses/{id}", get_response)
    app.router.add_delete("/v1/responses/{id}", delete_response)
    app.router.add_get("/v1/responses/{id}/input_items", list_input_items)


async def _record(request: web.Request) -> dict[str, Any]:
    response_id = request.match_info["id"]
    record = await request.app[STORE].get(response_id)
    if record is None or record.get("owner") != request.get(KEY_NAME):
        raise NotFound(f"No response found with id '{response_id}'.", code="response_not_found")
    return record


def _json(body: Any) -> web.Response:
    return web.Response(body=orjson.dumps(body), content_type="application/json")


async def get_response(request: web.Request) -> web.Response:
    return _json((await _record(request))["response"])


async def delete_response(request: web.Request) -> web.Response:
    response_id = (await _record(request))["response"]["id"]
    if not await request.app[STORE].delete(response_id):
        raise NotFound(f"No response found with id '{response_id}'.", code="response_not_found")
    return _json({"id": response_id, "object": "response.deleted", "deleted": True})


def _as_listed(item: dict[str, Any], fallback_id: str) -> dict[str, Any]:
    """An input item as OpenAI lists it: an id, and a message's content as typed parts."""
    item = {"id": item.get("id") or fallback_id, **item}
    if "role" in item:
        item.setdefault("type", "message")
        item.setdefault("status", "completed")
        if isinstance(item.get("content"), str):
            kind = "output_text" if item["role"] == "assistant" else "input_text"
            item["content"] = [{"type": kind, "text": item["content"]}]
    return item


async def list_input_items(request: web.Request) -> web.Response:
    record = await _record(request)
    order = request.query.get("order", "desc")
    if order not in ("asc", "desc"):
        raise BadRequest("'order' must be 'asc' or 'desc'.", param="order")
    try:
        limit = int(request.query.get("limit", DEFAULT_PAGE))
    except ValueError:
        raise BadRequest("'limit' must be a whole number.", param="limit") from None
    if not 1 <= limit <= MAX_PAGE:
        raise BadRequest(f"'limit' must be between 1 and {MAX_PAGE}.", param="limit")
    response_id = request.match_info["id"]
    items = [_as_listed(item, f"item_{response_id}_{n}") for n, item in enumerate(record["input"])]
    if order == "desc":
        items.reverse()
    after = request.query.get("after")
    if after is not None:
        ids = [i["id"] for i in items]
        if after not in ids:
            raise BadRequest(f"No input item with id '{after}'.", param="after")
        items = items[ids.index(after) + 1 :]
    page = items[:limit]
    return _json(
        {
            "object": "list",
            "data": page,
            "first_id": page[0]["id"] if page else None,
            "last_id": page[-1]["id"] if page else None,
            "has_more": len(items) > limit,
        }
    )
