"""The plugin API, held by tests: a throwaway plugin per hook, registered in a fixture."""

from __future__ import annotations

import asyncio
import inspect
from typing import Any

import attrs
import orjson
import pytest

from router_core import (
    BadRequest,
    GatewayField,
    Manifest,
    Message,
    PolicyViolation,
    Reply,
    StreamEnd,
    TextDelta,
    Usage,
    hookimpl,
    hookspecs,
)
from router_core.app import create_app
from router_core.config import ConfigError, parse_config
from tests.conftest import JSON, base_config, sdk

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]


@attrs.frozen
class Budget:
    limit: float = attrs.field(
        default=1.0, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(1))
    )
    labels: list[str] = attrs.field(factory=list)


class Recorder:
    """A throwaway plugin that implements every hook and records each call."""

    MANIFEST = Manifest(provides_scores=("complexity",), requires_scores=("complexity",))

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.replies: list = []

    @hookimpl
    def router_startup(self, app, config):
        self.calls.append("router_startup")

    @hookimpl
    def router_shutdown(self, app):
        self.calls.append("router_shutdown")

    @hookimpl
    def register_providers(self, register):
        self.calls.append("register_providers")

    @hookimpl
    def register_routes(self, app):
        self.calls.append("register_routes")

        async def ping(request):
            from aiohttp import web

            return web.json_response({"pong": True})

        app.router.add_get("/recorder/ping", ping)

    @hookimpl
    def register_middlewares(self, register, config):
        self.calls.append("register_middlewares")
        from aiohttp import web

        @web.middleware
        async def stamp(request, handler):
            response = await handler(request)
            response.headers["x-recorder-middleware"] = "1"
            return response

        register(stamp)

    @hookimpl
    def register_gate(self, register, config):  # called only for a plugin that AUTHENTICATES: see Gatekeeper
        self.calls.append("register_gate")
        register(lambda request: None)

    @hookimpl
    def gateway_fields(self):
        self.calls.append("gateway_fields")
        return {"budget": GatewayField(Budget, aliases=("costBudget",))}

    @hookimpl
    async def pre_request(self, ctx):
        self.calls.append("pre_request")
        ctx.call.messages[-1].parts[0].text += " [seen by recorder]"
        ctx.wants_stream_events = True
        ctx.wants_reply = True

    @hookimpl
    def score_request(self, ctx, wanted):
        self.calls.append("score_request")
        return {"complexity": 0.42}

    @hookimpl
    async def select_model(self, ctx):
        self.calls.append("select_model")
        scores = await ctx.scores("complexity")
        ctx.headers["x-test-complexity"] = str(scores["complexity"])

    @hookimpl
    def select_provider(self, ctx, routes):
        self.calls.append("select_provider")
        return list(reversed(routes))

    @hookimpl
    def serve_request(self, ctx, routes):
        self.calls.append("serve_request")

    @hookimpl
    def upstream_request(self, ctx, route, body):
        self.calls.append("upstream_request")
        body["metadata"] = {"via": route.name}

    @hookimpl
    def reply_complete(self, ctx, reply):
        self.calls.append("reply_complete")
        self.replies.append((ctx.reply_id, reply))

    @hookimpl
    def post_response(self, ctx, reply):
        self.calls.append("post_response")
        reply.map_text(lambda t: t + "!")
        ctx.headers["x-test-usage"] = str(reply.usage.total_tokens)

    @hookimpl
    def on_stream_event(self, ctx, piece):
        self.calls.append("on_stream_event")
        if isinstance(piece, TextDelta):
            return [piece, TextDelta("+")]
        return None

    @hookimpl
    def request_finished(self, ctx, outcome):
        self.calls.append("request_finished")


@pytest.fixture
def recorder():
    return Recorder()


@pytest.fixture
async def client(make_gateway, recorder):
    return await make_gateway(
        {"providers": {"chatonly": {"serves": {"openai/gpt-4o": "gpt-4o-via-chatonly"}}}},
        plugins=[("recorder", recorder)],
    )


async def test_request_hooks_run_in_order_and_take_effect(client, recorder, upstream):
    resp = await client.post(CHAT, data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=JSON)
    assert resp.status == 200
    body = await resp.json()
    assert body["choices"][0]["message"]["content"] == "Hello from upstream!"
    assert resp.headers["x-test-complexity"] == "0.42"
    assert resp.headers["x-test-usage"] == "18"
    # select_provider reversed the ranking: the serving provider went first.
    assert resp.headers["x-router-provider"] == "chatonly"
    assert upstream.last.json["model"] == "gpt-4o-via-chatonly"
    assert upstream.last.json["metadata"] == {"via": "chatonly"}
    assert upstream.last.json["messages"][0]["content"] == "hi [seen by recorder]"
    for _ in range(100):  # request_finished runs just after the answer went out
        if "request_finished" in recorder.calls:
            break
        await asyncio.sleep(0.01)
    request_hooks = [
        c
        for c in recorder.calls
        if c
        not in ("router_startup", "register_routes", "register_providers", "gateway_fields", "register_middlewares")
    ]
    assert request_hooks == [
        "pre_request",
        "select_model",
        "score_request",
        "select_provider",
        "serve_request",
        "upstream_request",
        "reply_complete",
        "post_response",
        "request_finished",
    ]
    reply_id, reply = recorder.replies[-1]
    assert reply.id == reply_id == body["id"] and reply_id.startswith("gen_")
    assert reply.text == "Hello from upstream" and reply.model == "openai/gpt-4o"  # as upstream said it, before hooks


async def test_reply_complete_sees_a_streamed_answer(client, recorder):
    stream = await sdk(client).chat.completions.create(model="openai/gpt-4o", messages=HI, stream=True)
    ids = {c.id async for c in stream}
    reply_id, reply = recorder.replies[-1]
    assert ids == {reply_id}
    assert reply.text == "Hello from upstream" and reply.usage.output_tokens == 4


async def test_stream_hook_can_add_pieces(client):
    stream = await sdk(client).chat.completions.create(model="openai/gpt-4o", messages=HI, stream=True)
    text = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert text == "Hel+lo+ from+ upstream+"


async def test_startup_hooks_and_routes(client, recorder):
    assert {"router_startup", "register_routes", "register_providers", "gateway_fields"} <= set(recorder.calls)
    resp = await client.get("/recorder/ping")
    assert await resp.json() == {"pong": True}


async def test_plugin_gateway_field_validated_with_path(client):
    body = {"model": "openai/gpt-4o", "messages": HI, "gateway": {"budget": {"limit": 3}}}
    resp = await client.post(CHAT, data=orjson.dumps(body), headers=JSON)
    assert resp.status == 400
    error = (await resp.json())["error"]
    assert error["param"] == "gateway.budget.limit"
    body["gateway"] = {"costBudget": {"labels": "not-a-list"}}
    resp = await client.post(CHAT, data=orjson.dumps(body), headers=JSON)
    assert (await resp.json())["error"]["param"] == "gateway.costBudget.labels"
    body["gateway"] = {"budget": {"limit": 0.5, "nope": 1}}
    resp = await client.post(CHAT, data=orjson.dumps(body), headers=JSON)
    assert resp.status == 400


class Reads:
    """Records the validated gateway object a request ends up with."""

    seen: dict[str, Any] | None = None

    @hookimpl
    def gateway_fields(self):
        return {"budget": Budget, "strict": bool}

    @hookimpl
    def pre_request(self, ctx):
        self.seen = dict(ctx.gateway)


async def test_server_defaults_fill_and_policy_wins(make_gateway):
    reads = Reads()
    client = await make_gateway(
        {"gateway": {"budget": {"limit": 0.3}}, "policy": {"strict": True}}, plugins=[("reads", reads)]
    )
    await client.post(CHAT, data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=JSON)
    assert reads.seen == {"budget": Budget(limit=0.3), "strict": True}
    body = {"model": "openai/gpt-4o", "messages": HI, "gateway": {"budget": {"labels": ["a"]}, "strict": False}}
    await client.post(CHAT, data=orjson.dumps(body), headers=JSON)
    assert reads.seen == {"budget": Budget(limit=0.3, labels=["a"]), "strict": True}


def test_bad_defaults_are_config_errors(upstream):
    raw = {**base_config(upstream.url), "gateway": {"budget": {"limit": 9}}}
    with pytest.raises(ConfigError, match=r"gateway.budget.limit"):
        create_app(parse_config(raw, env={}), [("reads", Reads())])
    raw = {**base_config(upstream.url), "gateway": {"nobody": 1}}
    with pytest.raises(ConfigError, match="no enabled plugin owns"):
        create_app(parse_config(raw, env={}), [("reads", Reads())])


class Refuses:
    FAIL_CLOSED = True

    @hookimpl
    def pre_request(self, ctx):
        raise RuntimeError("secret text that must not leak")


class Breaks:
    @hookimpl
    def pre_request(self, ctx):
        raise RuntimeError("an optimisation bug")


class Blocks:
    @hookimpl
    def select_provider(self, ctx, routes):
        raise PolicyViolation("not today")


async def test_fail_closed_plugin_refuses(make_gateway, upstream):
    client = await make_gateway(plugins=[("refuses", Refuses())])
    resp = await client.post(CHAT, data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=JSON)
    assert resp.status == 500
    text = await resp.text()
    assert "refuses" in text and "secret text" not in text
    assert not upstream.requests


async def test_fail_open_plugin_is_skipped(make_gateway, upstream):
    client = await make_gateway(plugins=[("breaks", Breaks())])
    resp = await client.post(CHAT, data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=JSON)
    assert resp.status == 200
    assert len(upstream.requests) == 1


async def test_gateway_error_from_plugin_reaches_client(make_gateway):
    client = await make_gateway(plugins=[("blocks", Blocks())])
    resp = await client.post(CHAT, data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=JSON)
    assert resp.status == 403
    assert (await resp.json())["error"]["message"] == "not today"


class Answers:
    @hookimpl
    def serve_request(self, ctx, routes):
        return Reply("local/model", [Message.of_text("assistant", "answered locally")], usage=Usage(3, 2))


@pytest.mark.parametrize("stream", [False, True])
async def test_serve_request_answers_without_upstream(make_gateway, upstream, stream):
    "serve_request"
    client = await make_gateway(plugins=[("answers", Answers())])
    if stream:
        events = [e async for e in await sdk(client).responses.create(model="openai/gpt-4o", input="hi", stream=True)]
        assert events[-1].response.output_text == "answered locally"
    else:
        answer = await sdk(client).responses.create(model="openai/gpt-4o", input="hi")
        assert answer.output_text == "answered locally"
        assert answer.usage.total_tokens == 5
    assert not upstream.requests


def test_duplicate_gateway_field_is_a_startup_error(upstream):
    with pytest.raises(ConfigError, match="claimed by both"):
        create_app(parse_config(base_config(upstream.url), env={}), [("a", Reads()), ("b", Reads())])


def test_unknown_enabled_plugin_is_a_config_error(upstream):
    raw = {**base_config(upstream.url), "plugins": {"enabled": ["no-such-plugin"]}}
    with pytest.raises(ConfigError, match="no plugin named 'no-such-plugin'"):
        create_app(parse_config(raw, env={}))


def test_every_hookspec_is_called_by_the_core_and_tested():
    """Each hook has a Recorder implementation (so the tests above exercise it) and a call site."""
    specs = {name for name, fn in inspect.getmembers(hookspecs, inspect.isfunction) if hasattr(fn, "llm_router_spec")}
    assert specs and specs <= set(Recorder.__dict__), specs - set(Recorder.__dict__)
    source = "".join(inspect.getsource(m) for m in _core_modules())
    for name in specs:
        assert f'"{name}"' in source, f"the core never calls {name}"


async def test_plugin_middleware_wraps_every_route(make_gateway, recorder):
    client = await make_gateway(plugins=[("recorder", recorder)])
    resp = await client.get("/recorder/ping")
    assert resp.headers["x-recorder-middleware"] == "1"
    resp = await client.get("/no/such/route")  # inside the error middleware: errors pass through it
    assert resp.status == 404 and (await resp.json())["error"]["code"] == "not_found"


class Gatekeeper:
    """A third party's client check: the core calls its gate, and the gate's context reaches the hooks."""

    AUTHENTICATES = True

    def __init__(self) -> None:
        import contextvars

        self.caller: contextvars.ContextVar[str | None] = contextvars.ContextVar("caller", default=None)
        self.gated: list[str] = []
        self.seen: list[str | None] = []

    @hookimpl
    def register_gate(self, register):
        def check(request):
            self.gated.append(request.path)
            caller = request.headers.get("x-caller")
            if caller is None:
                from router_core.errors import Unauthorized

                raise Unauthorized("Say who you are.")
            self.caller.set(caller)

        register(check)

    @hookimpl
    def pre_request(self, ctx):
        self.seen.append(self.caller.get())


async def test_a_plugin_gate_checks_every_request_in_its_own_context(make_gateway):
    keeper = Gatekeeper()
    # server.api_keys are the gate's to honour now: the core's own check is off
    client = await make_gateway({"server": {"api_keys": ["sk-core-key-0123456789abcdef"]}}, [("keeper", keeper)])
    body = {"model": "echo/x", "messages": HI}
    refused = await client.post(CHAT, json=body, headers={"Authorization": "Bearer sk-core-key-0123456789abcdef"})
    assert refused.status == 401 and (await refused.json())["error"]["message"] == "Say who you are."
    answers = await asyncio.gather(*(client.post(CHAT, json=body, headers={"x-caller": f"c{i}"}) for i in range(5)))
    assert [r.status for r in answers] == [200] * 5
    assert sorted(keeper.seen) == [f"c{i}" for i in range(5)]  # each request saw its own caller, none another's
    assert (await client.get("/healthz")).status == 200
    assert "/healthz" not in keeper.gated and len(keeper.gated) == 6


def test_two_plugin_gates_are_a_startup_error(upstream):
    from tests.conftest import base_config

    config = parse_config(base_config(upstream.url), env={})
    with pytest.raises(ConfigError, match="a, b each check client keys"):
        create_app(config, [("a", Gatekeeper()), ("b", Gatekeeper())])


async def test_shutdown_hook_runs(make_gateway, recorder):
    client = await make_gateway(plugins=[("recorder", recorder)])
    await client.close()
    assert recorder.calls[-1] == "router_shutdown"


def _core_modules():
    from router_core import app, outcome, pipeline, plugins, upstream

    return [app, outcome, pipeline, plugins, upstream]


async def test_stream_end_reaches_hooks_once(make_gateway):
    seen: list[Any] = []

    class Watches:
        @hookimpl
        def pre_request(self, ctx):
            ctx.wants_stream_events = True

        @hookimpl
        def on_stream_event(self, ctx, piece):
            seen.append(piece)

    client = await make_gateway(plugins=[("watches", Watches())])
    stream = await sdk(client).chat.completions.create(model="chatonly/x", messages=HI, stream=True)
    [c async for c in stream]
    ends = [p for p in seen if isinstance(p, StreamEnd)]
    assert len(ends) == 1 and seen[-1] is ends[0]
    assert ends[0].usage.output_tokens == 4


def test_bad_request_is_importable_for_plugins():
    assert issubclass(BadRequest, Exception)


class Secure:
    FAIL_CLOSED = True

    @hookimpl
    def pre_request(self, ctx):
        pass


class Optimises:
    @hookimpl
    def pre_request(self, ctx):
        pass


def test_security_plugins_must_run_first(upstream):
    config = parse_config(base_config(upstream.url), env={})
    with pytest.raises(ConfigError, match="'secure' must come before 'optimises'"):
        create_app(config, [("optimises", Optimises()), ("secure", Secure())])
    create_app(config, [("secure", Secure()), ("optimises", Optimises())])


async def test_tryfirst_and_trylast_beat_config_order(make_gateway):
    order: list[str] = []

    class Default:
        @hookimpl(trylast=True)
        def pre_request(self, ctx):
            order.append("default")

    class Override:
        @hookimpl
        def pre_request(self, ctx):
            order.append("override")

    class Early:
        @hookimpl(tryfirst=True)
        def pre_request(self, ctx):
            order.append("early")

    client = await make_gateway(plugins=[("default", Default()), ("override", Override()), ("early", Early())])
    await client.post(CHAT, data=orjson.dumps({"model": "openai/gpt-4o", "messages": HI}), headers=JSON)
    assert order == ["early", "override", "default"]


async def test_a_plugin_that_cannot_start_stops_the_gateway(make_gateway):
    class Broken:
        @hookimpl
        def router_startup(self, config):
            raise ValueError("plugins.broken.size: must be positive")

    with pytest.raises(ValueError, match="must be positive"):
        await make_gateway(plugins=[("broken", Broken())])
