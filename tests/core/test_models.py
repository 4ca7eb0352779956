"""/v1/models tells the truth: what can answer now, one model by id, and a startup hint for newcomers."""

from __future__ import annotations

import logging

import openai
import pytest

from tests.conftest import sdk

PRICED = {"models": {"openai/gpt-4o": {"input_per_mtok": 2.5, "output_per_mtok": 10.0}}}


async def test_lists_models_whose_provider_has_a_key_and_the_echo_demo(make_gateway):
    client = sdk(
        await make_gateway(
            {
                **PRICED,
                "providers": {
                    "groq": {"kind": "openai-chat", "base_url": "http://127.0.0.1:9/v1", "api_key": "env:NO_SUCH_KEY"},
                    "chatonly": {"serves": {"meta/llama-3.1-8b": "llama-3.1-8b-instant"}},
                },
                "models": {**PRICED["models"], "groq/llama-70b": {"input_per_mtok": 0.1, "output_per_mtok": 0.1}},
            }
        )
    )
    listed = {m.id: m.owned_by async for m in client.models.list()}
    assert listed == {"openai/gpt-4o": "openai", "meta/llama-3.1-8b": "chatonly", "echo/demo": "echo"}
    # every listed model answers
    for model in listed:
        answer = await client.chat.completions.create(model=model, messages=[{"role": "user", "content": "hi"}])
        assert answer.choices[0].message.content


async def test_echo_only_config_lists_the_echo_model(make_gateway):
    client = sdk(
        await make_gateway(
            {"providers": {"openai": {"api_key": "env:UNSET_1"}, "chatonly": {"api_key": "env:UNSET_2"}}}
        )
    )
    assert [m.id async for m in client.models.list()] == ["echo/demo"]


async def test_retrieve_one_model(gateway):
    client = sdk(gateway)
    assert (await client.models.retrieve("echo/anything")).owned_by == "echo"
    assert (await client.models.retrieve("chatonly/llama-3")).owned_by == "chatonly"
    with pytest.raises(openai.NotFoundError):
        await client.models.retrieve("nowhere/model")


async def test_startup_log_names_a_model_that_answers_offline(make_gateway, caplog):
    with caplog.at_level(logging.INFO, logger="llm_router"):
        await make_gateway()
    assert "try model 'echo/demo'" in caplog.text
