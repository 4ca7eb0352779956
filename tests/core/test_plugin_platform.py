"""The plugin platform: declared dependencies, order and settings, a strict host, scores asked for by name."""

from __future__ import annotations

import asyncio
import logging
import subprocess
import sys
from importlib.metadata import entry_points
from pathlib import Path

import attrs
import pytest

from router_core import BadRequest, GatewayField, Manifest, Message, Part, Reply, hookimpl
from router_core.app import create_app
from router_core.config import ConfigError, parse_config
from tests.conftest import base_config

CHAT = "/v1/chat/completions"
HI = [{"role": "user", "content": "hi"}]
BUILT_IN = sorted(ep.name for ep in entry_points(group="llm_router"))


def build(upstream, enabled=(), plugins=(), **tables):
    raw = {**base_config(upstream.url), "plugins": {"enabled": list(enabled), **tables}}
    return create_app(parse_config(raw, env={}), list(plugins))


def refused(upstream, enabled=(), plugins=(), **tables) -> str:
    with pytest.raises(ConfigError) as info:
        build(upstream, enabled, plugins, **tables)
    return "\n".join(info.value.messages)


# ---------------------------------------------------------------- each plugin alone, and with what it declares


@pytest.mark.parametrize("name", BUILT_IN)
def test_each_plugin_alone_starts_or_names_what_to_enable(upstream, name):
    try:
        build(upstream, [name])
    except ConfigError as exc:
        for message in exc.messages:
            assert f"{name!r} requires" in message and ("enable '" in message or "enable it" in message), message


@pytest.mark.parametrize(
    ("name", "missing", "hint"),
    [
        ("tags", "the scores 'tag', 'tag_scores', 'complexity'", "enable 'llm-scorer' or 'scorer'"),
        ("planning", "the score 'complexity'", "enable 'llm-scorer' or 'scorer'"),
        ("image", "the score 'wants_image'", "enable 'llm-scorer' or 'scorer'"),
        ("history", "the score 'history_dependency'", "enable 'llm-scorer' or 'scorer'"),
        ("media", "the score 'media_relevance'", "enable 'scorer'"),  # the LLM scorer does not give it
        ("tools", "the score 'tool_relevance'", "enable 'llm-scorer' or 'scorer'"),
        ("llm-scorer", "the 'scorer' plugin", "enable it"),
    ],
)
def test_a_plugin_without_its_dependency_is_a_startup_error(upstream, name, missing, hint):
    message = refused(upstream, [name])
    assert f"{name!r} requires {missing}" in message and hint in message


@pytest.mark.parametrize("name", [n for n in BUILT_IN if n not in ("scorer", "llm-scorer", "redact")])
def test_each_plugin_starts_with_the_scorer(upstream, name):
    build(upstream, ["scorer", name])


def test_a_provider_kind_of_a_disabled_plugin_names_it(upstream):
    raw = {**base_config(upstream.url), "providers": {"claude": {"kind": "anthropic", "base_url": "http://x"}}}
    with pytest.raises(ConfigError) as info:
        create_app(parse_config(raw, env={}))
    assert "providers.claude.kind: unknown kind 'anthropic'" in info.value.messages[0]
    assert "enable 'anthropic'" in info.value.messages[0]


class NeedsTags:
    MANIFEST = Manifest(
        requires_gateway_fields=("tags",), requires_plugins=("redact",), requires_provider_kinds=("anthropic",)
    )


def test_required_fields_and_plugins(upstream):
    message = refused(upstream, plugins=[("needy", NeedsTags())])
    assert "'needy' requires the 'redact' plugin; enable it" in message
    assert "'needy' requires the gateway field 'tags', which no enabled plugin provides; enable 'tags'" in message
    assert (
        "'needy' requires the provider kind 'anthropic', which no enabled plugin provides; enable 'anthropic'"
        in message
    )
    build(upstream, ["redact", "scorer", "tags", "anthropic"], plugins=[("needy", NeedsTags())])


# ---------------------------------------------------------------- order


@pytest.mark.parametrize(
    ("enabled", "expected"),
    [
        (["scorer", "planning", "tags"], "'tags' must come before 'planning' ('planning' declares it)"),
        (["scorer", "image", "tags"], "'tags' must come before 'image' ('image' declares it)"),
    ],
)
def test_a_wrong_order_names_the_order_to_use(upstream, enabled, expected):
    assert expected in refused(upstream, enabled)


async def test_planning_after_tags_plans_the_model_a_tag_chose(make_gateway, upstream):
    """With the declared order, a tag can choose a planning model string and planning resolves it."""
    tags = [{"name": "code", "description": "programming and code", "models": ["openai/exec:planning:chatonly/plan"]}]
    client = await make_gateway({"plugins": {"enabled": ["scorer", "tags", "planning"]}})
    body = {"messages": [{"role": "user", "content": "write python code"}], "gateway": {"tags": tags}}
    resp = await client.post(CHAT, json={**body, "gateway": {**body["gateway"], "planningTriggerScore": 0.0}})
    assert resp.status == 200
    assert [r.json["model"] for r in upstream.requests] == ["plan", "exec"]


# ---------------------------------------------------------------- a strict host


class Misspelt:
    @hookimpl
    def pre_requset(self, ctx):
        pass


class Wrapper:
    @hookimpl(wrapper=True)
    def pre_request(self, ctx):
        return (yield)


class WrongArgument:
    @hookimpl
    def pre_request(self, ctx, request):
        pass


@pytest.mark.parametrize(
    ("plugin", "expected"),
    [
        (Misspelt(), "plugin 'odd': 'pre_requset' is not a hook"),
        (Wrapper(), "plugin 'odd': pre_request is a wrapper implementation"),
        (WrongArgument(), "plugin 'odd':"),
    ],
)
def test_the_host_refuses_what_it_cannot_run(upstream, plugin, expected):
    assert expected in refused(upstream, plugins=[("odd", plugin)])


class AsyncDeclarations:
    @hookimpl
    async def gateway_fields(self):
        await asyncio.sleep(0)
        return {"shade": GatewayField(str, aliases=("colour",))}

    @hookimpl
    async def pre_request(self, ctx):
        if ctx.gateway.get("shade") == "none":
            raise BadRequest("no shade", param="gateway.shade")


async def test_declaration_hooks_may_be_async(make_gateway):
    client = await make_gateway(plugins=[("shady", AsyncDeclarations())])
    ok = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, "gateway": {"colour": "red"}})
    assert ok.status == 200
    bad = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, "gateway": {"shade": 3}})
    assert bad.status == 400 and (await bad.json())["error"]["param"] == "gateway.shade"


class Answers:
    def __init__(self, text: str, seen: list[str]) -> None:
        self.text, self.seen = text, seen

    @hookimpl
    async def serve_request(self, ctx, routes):
        self.seen.append(self.text)
        return Reply(model=ctx.call.model, messages=[Message("assistant", [Part("text", self.text)])])


async def test_firstresult_is_honoured_for_async_impls(make_gateway):
    seen: list[str] = []
    client = await make_gateway(plugins=[("one", Answers("first", seen)), ("two", Answers("second", seen))])
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI})
    assert (await resp.json())["choices"][0]["message"]["content"] == "first"
    assert seen == ["first"]


# ---------------------------------------------------------------- declared settings


@attrs.frozen
class Knobs:
    level: int = attrs.field(default=1, validator=attrs.validators.ge(0))
    label: str = "x"


class Configurable:
    MANIFEST = Manifest(settings=Knobs)

    def __init__(self) -> None:
        self.got = None

    @hookimpl
    def router_startup(self, settings):
        self.got = settings


async def test_settings_reach_router_startup_structured(make_gateway):
    plugin = Configurable()
    await make_gateway({"plugins": {"knobs": {"level": 3}}}, plugins=[("knobs", plugin)])
    assert plugin.got == Knobs(level=3)


@pytest.mark.parametrize(
    ("tables", "expected"),
    [
        ({"history": {"max_chars": "lots"}}, "plugins.history.max_chars: expected an integer, got str"),
        ({"history": {"max_char": 10}}, "plugins.history.max_char: unknown setting"),
        ({"history": {"max_chars": 100}}, "plugins.history.max_chars: 'max_chars' must be greater than"),
        ({"redact": {"mode": "masked"}}, "plugins.redact.mode: 'mode' must be in ('mask', 'restore')"),
        ({"redact": {"display": "ssn"}}, "plugins.redact.display: expected an array"),
        ({"image": {"response_format": "gif"}}, "plugins.image.response_format:"),
        ({"image": {"sise": "1x1"}}, "plugins.image.sise: unknown setting"),
        ({"media": {"threshold": 2}}, "plugins.media.threshold:"),
        ({"media": {"threshold": "high"}}, "plugins.media.threshold: expected a number, got str"),
        ({"media": {"treshold": 0.4}}, "plugins.media.treshold: unknown setting (known: threshold)"),
        ({"tags": {"anything": 1}}, "plugins.tags: the 'tags' plugin takes no settings"),
    ],
)
def test_a_bad_settings_table_is_a_startup_error(upstream, tables, expected):
    enabled = ["redact", "scorer", "history", "media", "tags", "image"]
    assert expected in refused(upstream, enabled, **tables)


@pytest.mark.parametrize("command", ["check", "serve"])
def test_check_and_serve_refuse_the_same_tables(tmp_path, command):
    path = tmp_path / "plugins.toml"
    path.write_text(
        '[plugins]\nenabled = ["redact", "scorer", "history"]\n'
        '[plugins.history]\nmax_chars = "lots"\n[plugins.redact]\nmode = "masked"\n'
    )
    port = ["--port", "0"] if command == "serve" else []
    cli = [sys.executable, "-m", "router_core.cli", command, "--config", str(path), *port]
    result = subprocess.run(cli, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2, result.stderr
    assert "plugins.history.max_chars: expected an integer, got str" in result.stderr
    assert "plugins.redact.mode: 'mode' must be in ('mask', 'restore')" in result.stderr


# ---------------------------------------------------------------- scores by name


class Scorer:
    def __init__(self, name: str, gives: dict, seen: list) -> None:
        self.MANIFEST = Manifest(provides_scores=tuple(gives))
        self.name, self.gives, self.seen = name, gives, seen

    @hookimpl
    def score_request(self, ctx, wanted):
        self.seen.append((self.name, set(wanted)))
        return {k: v for k, v in self.gives.items() if k in wanted or self.name == "greedy"}


class Asker:
    MANIFEST = Manifest(requires_scores=("a", "b"))

    def __init__(self) -> None:
        self.got: list[dict] = []

    @hookimpl
    async def pre_request(self, ctx):
        self.got.append(await ctx.scores("a", "b"))
        self.got.append(await ctx.scores("b"))  # cached: nobody is asked again
        ctx.headers["x-test-scored"] = ",".join(sorted(ctx.scored))


async def test_scores_merge_per_name_in_hook_order(make_gateway):
    seen: list = []
    asker = Asker()
    plugins = [
        ("first", Scorer("greedy", {"a": 1, "c": 3}, seen)),
        ("second", Scorer("second", {"a": 2, "b": 2}, seen)),
        ("asker", asker),
    ]
    client = await make_gateway(plugins=plugins)
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI})
    assert resp.status == 200
    assert asker.got == [{"a": 1, "b": 2}, {"b": 2}]
    assert seen == [("greedy", {"a", "b"}), ("second", {"b"})]
    assert resp.headers["x-test-scored"] == "a,b,c"  # the extra score the first gave is kept


class Rude:
    @hookimpl
    async def pre_request(self, ctx):
        await ctx.scores("complexity")


async def test_asking_for_a_score_nobody_provides_fails_open_and_says_why(make_gateway, caplog):
    client = await make_gateway(plugins=[("rude", Rude())])
    with caplog.at_level(logging.WARNING):
        resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI})
    assert resp.status == 200
    assert "plugin rude failed in pre_request (LookupError)" in caplog.text


async def test_llm_scorer_and_scorer_cover_every_score(make_gateway, upstream):
    """The LLM scorer gives what it can; media relevance, which it does not, comes from the local scorer."""
    config = {
        "plugins": {"enabled": ["llm-scorer", "scorer", "media"], "llm-scorer": {"model": "chatonly/scorer"}},
    }
    client = await make_gateway(config)
    image = {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}
    messages = [
        {"role": "user", "content": [{"type": "text", "text": "my cat"}, image]},
        {"role": "assistant", "content": "A cat."},
        {"role": "user", "content": "What is the capital of Australia?"},
    ]
    resp = await client.post(
        CHAT, json={"model": "openai/gpt-4o", "messages": messages, "gateway": {"mediaOptimization": True}}
    )
    assert resp.status == 200
    assert [r.json["model"] for r in upstream.requests] == ["gpt-4o"]  # the LLM scorer was not asked
    assert "image_url" not in str(upstream.last.json["messages"][0]["content"])


def test_core_knows_no_feature():
    """No fixed Scores class, no feature's field name in the core's messages."""
    import router_core
    from router_core import pipeline

    assert not hasattr(router_core, "Scores")
    assert "gateway.tags" not in Path(pipeline.__file__).read_text()


@pytest.mark.parametrize(
    ("gateway", "expected"),
    [
        ({"planningTriggerScore": 2.0}, "gateway.planningTriggerScore: must be between 0 and 1, got 2.0"),
        ({"imageGenerationModel": "dalle"}, "gateway.imageGenerationModel: expected 'provider/model', got 'dalle'"),
    ],
)
async def test_a_gateway_field_check_covers_server_defaults_and_requests(make_gateway, upstream, gateway, expected):
    raw = {**base_config(upstream.url), "plugins": {"enabled": ["scorer", "planning", "image"]}, "gateway": gateway}
    with pytest.raises(ConfigError, match=expected):
        create_app(parse_config(raw, env={}))
    client = await make_gateway({"plugins": {"enabled": ["scorer", "planning", "image"]}})
    resp = await client.post(CHAT, json={"model": "openai/gpt-4o", "messages": HI, "gateway": gateway})
    error = (await resp.json())["error"]
    assert resp.status == 400 and error["param"] == next(f"gateway.{k}" for k in gateway)


class Boasts:
    MANIFEST = Manifest(provides_scores=("complexity",))


def test_providing_scores_needs_a_score_request(upstream):
    assert "plugin 'boasts': declares provides_scores but implements no score_request" in refused(
        upstream, plugins=[("boasts", Boasts())]
    )


def test_check_lists_what_each_plugin_declares():
    root = Path(__file__).parents[2]
    cli = [sys.executable, "-m", "router_core.cli", "check", "--config", str(root / "plugins.toml")]
    out = subprocess.run(cli, capture_output=True, text=True, timeout=60).stdout
    tags = out[out.index("  tags:") : out.index("  image:")]
    assert "requires scores: tag, tag_scores, complexity" in tags and "provides gateway fields: tags" in tags
    assert "after: tags" in out[out.index("  planning:") :]
    assert "settings: [plugins.history] (Limits, validated)" in out
