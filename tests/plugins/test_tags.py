"""Intent routing through HTTP: the tag by meaning, the model by complexity, the 400 when nothing fits."""

from __future__ import annotations

import openai
import pytest

from tests.conftest import sdk

SUPPORT = [
    {
        "name": "billing",
        "description": "billing questions, refunds",
        "models": ["openai/big", "openai/mid", "openai/small"],
    },
    {
        "name": "coding",
        "description": "writing, reviewing and debugging code",
        "models": ["openai/coder-xl", "openai/coder"],
    },
]
HARD = (
    "Our finance team needs a reconciliation: list every charge on our enterprise account since January, explain each "
    "proration and credit, identify which of the three disputed charges qualify for a refund under your terms, and "
    "propose how the corrected invoices should be reissued so that tax amounts stay consistent across both entities."
)
MID = "I cancelled my plan on the 3rd but was still charged on the 5th; can you explain why and get my money back?"


@pytest.fixture
async def client(make_gateway):
    return sdk(await make_gateway({"plugins": {"enabled": ["scorer", "tags"]}}))


@pytest.mark.parametrize(
    ("prompt", "model"),
    [("refund please", "openai/small"), (MID, "openai/mid"), (HARD, None)],
)
async def test_tag_then_model_by_complexity(client, upstream, prompt, model):
    from router_plugins.tags.plugin import pick_model

    raw = await client.chat.completions.with_raw_response.create(
        model="", messages=[{"role": "user", "content": prompt}], extra_body={"gateway": {"tags": SUPPORT}}
    )
    assert raw.headers["x-router-tag"] == "billing"
    complexity = float(raw.headers["x-router-complexity"])
    assert 0.0 <= complexity <= 1.0
    assert raw.headers["x-router-model"] == (model or pick_model(SUPPORT[0]["models"], complexity))
    assert upstream.last.json["model"] == raw.headers["x-router-model"].removeprefix("openai/")


async def test_responses_without_model(client, upstream):
    raw = await client.responses.with_raw_response.create(
        input="why does my python function raise KeyError on d['a'] += 1", extra_body={"gateway": {"tags": SUPPORT}}
    )
    assert raw.headers["x-router-tag"] == "coding"
    assert upstream.last.json["model"].startswith("coder")


async def test_no_match_keeps_model_or_refuses(client, upstream):
    tags = {"gateway": {"tags": SUPPORT}}
    answer = await client.chat.completions.create(
        model="openai/default", messages=[{"role": "user", "content": "what's the weather in Oslo"}], extra_body=tags
    )
    assert answer.choices[0].message.content and upstream.last.json["model"] == "default"
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model="", messages=[{"role": "user", "content": "what's the weather in Oslo"}], extra_body=tags
        )
    assert err.value.body["param"] == "gateway.tags"


@pytest.mark.parametrize(
    ("tags", "param"),
    [
        ([{"name": "x", "description": "d", "models": []}], "gateway.tags[0].models"),
        ([{"name": "x", "description": "d", "models": ["nomodel"]}], "gateway.tags[0].models"),
        ([{"name": "x", "models": ["a/b"]}], "gateway.tags[0].description"),
        ("billing", "gateway.tags"),
    ],
)
async def test_bad_tags_are_400(client, tags, param):
    with pytest.raises(openai.BadRequestError) as err:
        await client.chat.completions.create(
            model="openai/x", messages=[{"role": "user", "content": "hi"}], extra_body={"gateway": {"tags": tags}}
        )
    assert err.value.body["param"] == param


async def test_debug_header_shows_scores(make_gateway):
    client = sdk(await make_gateway({"plugins": {"enabled": ["scorer", "tags"]}}))
    raw = await client.chat.completions.with_raw_response.create(
        model="",
        messages=[{"role": "user", "content": "refund please"}],
        extra_body={"gateway": {"tags": SUPPORT}},
        extra_headers={"x-router-debug": "1"},
    )
    assert '"tag":"billing"' in raw.headers["x-router-scores"]


def test_pick_model_bands():
    from router_plugins.tags.plugin import pick_model

    models = ["a/1", "a/2", "a/3"]
    assert [pick_model(models, c) for c in (0.9, 0.5, 0.1, 1.0, 0.0)] == ["a/1", "a/2", "a/3", "a/1", "a/3"]
    assert pick_model(["a/only"], 0.3) == "a/only"


def test_explain_prints_scores_and_decision(tmp_path, capsys):
    import json

    from router_core.cli import main

    (tmp_path / "plugins.toml").write_text(
        '[plugins]\nenabled = ["scorer", "tags"]\n[providers.openai]\nkind = "openai"\nbase_url = "http://127.0.0.1:9/v1"\n'
    )
    (tmp_path / "req.json").write_text(
        json.dumps({"messages": [{"role": "user", "content": "refund please"}], "gateway": {"tags": SUPPORT}})
    )
    main(["explain", "--config", str(tmp_path / "plugins.toml"), "--file", str(tmp_path / "req.json")])
    out = capsys.readouterr().out
    assert "tag: billing" in out and "model: openai/small" in out and "complexity:" in out
