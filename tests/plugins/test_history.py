"""chatHistoryCompression: topic switches pruned, follow-ups kept, tool pairs intact, savings reported."""

from __future__ import annotations

import re

import pytest

from router_plugins.scorer import plugin as scorer_plugin
from tests.conftest import sdk
from tests.plugins.context_setup import context_gateway, tool_exchange

PYTHON_TURNS = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "How do I fix this Python KeyError when I read config['timeout'] from a dict?"},
    {
        "role": "assistant",
        "content": "Use config.get('timeout', 30) so a missing key returns a default instead of raising KeyError.",
    },
    {"role": "user", "content": "Can you show the same with a dataclass holding the config values?"},
    {
        "role": "assistant",
        "content": "Sure: @dataclass class Config: timeout: int = 30 — then Config(**raw) fills the defaults.",
    },
]


def sent_texts(upstream) -> list[str]:
    return [
        m["content"] if isinstance(m["content"], str) else str(m["content"]) for m in upstream.last.json["messages"]
    ]


async def chat(client, messages, gateway=None, **kw):
    extra = {"gateway": gateway} if gateway is not None else {}
    return await sdk(client).chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages, extra_body=extra, **kw
    )


async def test_new_topic_drops_old_turns_and_reports_tokens(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    messages = [*PYTHON_TURNS, {"role": "user", "content": "New topic: write a haiku about autumn leaves."}]
    raw = await chat(client, messages, {"chatHistoryCompression": {"score": 0.6}})
    assert sent_texts(upstream) == ["You are a helpful assistant.", "New topic: write a haiku about autumn leaves."]
    saved = dict(kv.split("=") for kv in raw.headers["x-router-tokens-saved"].split(","))
    assert int(saved["history"]) > 40


@pytest.mark.parametrize(
    "follow_up",
    [
        "Why does the dataclass version not raise the KeyError any more?",
        "And what about nested keys in it?",
        "Fix the error in the second example you sent.",
    ],
)
async def test_follow_up_keeps_the_history(make_gateway, upstream, follow_up):
    client = await context_gateway(make_gateway, "history")
    messages = [*PYTHON_TURNS, {"role": "user", "content": follow_up}]
    raw = await chat(client, messages, {"chatHistoryOptimization": {}})  # the alias, defaults
    assert len(upstream.last.json["messages"]) == len(messages)
    assert "x-router-tokens-saved" not in raw.headers


async def test_unrelated_question_keeps_only_turns_it_shares_words_with(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    messages = [
        {"role": "user", "content": "Recommend three hiking trails near Grenoble for a weekend trip."},
        {"role": "assistant", "content": "Try the Moucherotte, the Chamechaude and the Lac du Crozet trails."},
        *PYTHON_TURNS[1:],
        {"role": "user", "content": "Which of the Grenoble hiking trails suits children best?"},
    ]
    await chat(client, messages, {"chatHistoryCompression": {"score": 0.99}})
    texts = sent_texts(upstream)
    assert texts[0].startswith("Recommend three hiking trails") and texts[1].startswith("Try the Moucherotte")
    assert not any("KeyError" in t for t in texts)


async def test_disabled_or_absent_does_nothing(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    messages = [*PYTHON_TURNS, {"role": "user", "content": "New topic: write a haiku about autumn leaves."}]
    await chat(client, messages, {"chatHistoryCompression": {"enabled": False}})
    assert len(upstream.last.json["messages"]) == len(messages)
    await chat(client, messages)
    assert len(upstream.last.json["messages"]) == len(messages)


async def test_long_kept_blocks_are_shortened(make_gateway, upstream):
    client = await context_gateway(
        make_gateway, "history", settings={"history": {"max_chars": 300, "head_chars": 150, "tail_chars": 100}}
    )
    log = "\n".join(f"2024-05-01 12:00:{i:02d} nginx worker {i} upstream timed out" for i in range(60))
    messages = [
        {"role": "user", "content": f"Here is my nginx log:\n{log}"},
        {"role": "assistant", "content": "The nginx upstream timed out repeatedly; raise proxy_read_timeout."},
        {"role": "user", "content": "Unrelated: which nginx directive sets the worker count?"},
    ]
    raw = await chat(client, messages, {"chatHistoryCompression": {"score": 0.95}})
    first = upstream.last.json["messages"][0]["content"]
    assert "characters omitted by llm-router" in first and len(first) < 700
    assert first.startswith("Here is my nginx log:") and first.rstrip().endswith("upstream timed out")
    assert upstream.last.json["messages"][-1]["content"] == messages[-1]["content"]
    assert int(raw.headers["x-router-tokens-saved"].split("=")[1]) > 500


async def test_tool_call_and_result_stay_paired(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    messages = [
        *tool_exchange(
            "What's the weather in Paris today?",
            ("call_1", "get_weather", '{"city": "Paris"}'),
            '{"temp_c": 18, "sky": "cloudy"}',
            "It is 18°C and cloudy in Paris.",
        ),
        {"role": "user", "content": "New topic: translate 'good morning' into Italian."},
    ]
    await chat(client, messages, {"chatHistoryCompression": {}})
    sent = upstream.last.json["messages"]
    assert [m["role"] for m in sent] == ["user"]
    # The same conversation when the model is mid tool-loop: everything is needed.
    messages = [messages[-1], messages[1], messages[2]]
    await chat(client, messages, {"chatHistoryCompression": {}})
    assert [m["role"] for m in upstream.last.json["messages"]] == ["user", "assistant", "tool"]


async def test_kept_turn_keeps_its_tool_pair(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    messages = [
        *tool_exchange(
            "Where is my order A-17 with the blue bicycle helmet?",
            ("call_9", "lookup_order", '{"order": "A-17"}'),
            '{"status": "shipped"}',
            "Order A-17 has shipped.",
        ),
        {"role": "user", "content": "Tell me a joke about penguins."},
        {"role": "assistant", "content": "Why don't penguins fly? They're not ready to leave the nest egg."},
        {"role": "user", "content": "Does the blue bicycle helmet come in other sizes?"},
    ]
    await chat(client, messages, {"chatHistoryCompression": {"score": 1.0}})
    sent = upstream.last.json["messages"]
    assert [m["role"] for m in sent] == ["user", "assistant", "tool", "assistant", "user"]
    assert sent[1]["tool_calls"][0]["id"] == sent[2]["tool_call_id"] == "call_9"


async def test_responses_instructions_and_function_items_kept(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    items = [
        {"role": "user", "content": "Look up the weather in Oslo."},
        {"type": "function_call", "call_id": "c1", "name": "get_weather", "arguments": '{"city":"Oslo"}'},
        {"type": "function_call_output", "call_id": "c1", "output": "2°C, snow"},
        {"role": "assistant", "content": "It is 2°C and snowing in Oslo."},
        {"role": "user", "content": "New topic: what is a monad in Haskell?"},
    ]
    await sdk(client).responses.create(
        model="openai/gpt-4o",
        input=items,
        instructions="Be brief",
        extra_body={"gateway": {"chatHistoryCompression": {}}},
    )
    body = upstream.last.json
    assert body["instructions"] == "Be brief"
    assert body["input"] == [{"role": "user", "content": "New topic: what is a monad in Haskell?"}]


async def test_bad_score_is_a_400(make_gateway):
    client = await context_gateway(make_gateway, "history")
    resp = await client.post(
        "/v1/chat/completions",
        json={
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "gateway": {"chatHistoryCompression": {"score": 2}},
        },
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["param"] == "gateway.chatHistoryCompression.score"


@pytest.mark.parametrize(
    ("table", "key"),
    [
        ({"max_chars": "2000"}, "plugins.history.max_chars"),
        ({"head_chars": -1}, "plugins.history.head_chars"),
        ({"max_chars": 300, "head_chars": 200, "tail_chars": 100}, "plugins.history.max_chars"),
        ({"max_char": 300}, "plugins.history.max_char"),
    ],
)
async def test_a_bad_table_stops_startup(make_gateway, table, key):
    with pytest.raises(Exception, match=re.escape(key)):  # the core may wrap it; the message names the key
        await context_gateway(make_gateway, "history", settings={"history": table})


DATABASE_TURNS = [
    {"role": "system", "content": "You are a helpful assistant."},
    {"role": "user", "content": "Under load our Postgres server hits max_connections and the API times out."},
    {
        "role": "assistant",
        "content": "Release each connection as soon as the query finishes and front the server with pgbouncer.",
    },
    {"role": "user", "content": "Recommend three hiking trails near Grenoble for a weekend trip."},
    {"role": "assistant", "content": "Try the Moucherotte, the Chamechaude and the Lac du Crozet trails."},
]
# Shares one content word ("connection") with the Postgres turn: words alone would drop it.
REWORDED = "Going back to the database issue — how many connections should the pool allow?"


async def test_reworded_follow_up_keeps_the_turn_it_is_about(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    messages = [*DATABASE_TURNS, {"role": "user", "content": REWORDED}]
    raw = await chat(client, messages, {"chatHistoryCompression": {"score": 1.0}})
    texts = sent_texts(upstream)
    assert texts == [m["content"] for m in [*DATABASE_TURNS[:3], messages[-1]]]
    assert int(raw.headers["x-router-tokens-saved"].split("=")[1]) > 20  # the hiking turn


async def test_without_embeddings_turns_are_kept_on_words_only(make_gateway, upstream, monkeypatch):
    monkeypatch.setattr(scorer_plugin, "loaded_embedder", lambda: None)  # the embeddings failed to load
    client = await context_gateway(make_gateway, "history")
    messages = [*DATABASE_TURNS, {"role": "user", "content": REWORDED}]
    await chat(client, messages, {"chatHistoryCompression": {"score": 1.0}})
    assert sent_texts(upstream) == ["You are a helpful assistant.", REWORDED]
    messages[-1] = {"role": "user", "content": "Which of the Grenoble hiking trails suits children best?"}
    await chat(client, messages, {"chatHistoryCompression": {"score": 1.0}})
    assert sent_texts(upstream) == [m["content"] for m in [DATABASE_TURNS[0], *DATABASE_TURNS[3:], messages[-1]]]
