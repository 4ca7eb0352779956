"""toolOptimization: relevant, pinned, forced, used and depended-on tools are sent; the rest dropped."""

from __future__ import annotations

import time

import pytest

from router_core import Tool
from router_plugins.tools.select import dependencies
from tests.conftest import sdk
from tests.plugins.context_setup import context_gateway, tool_exchange


def function(name: str, description: str, *params: str) -> dict:
    properties = {p: {"type": "string"} for p in params}
    return {
        "type": "function",
        "function": {
            "name": name,
            "description": description,
            "parameters": {"type": "object", "properties": properties},
        },
    }


PRODUCT_TOOLS = [
    function("calculator", "Evaluate an arithmetic expression and return the result.", "expression"),
    function("send_email", "Send an email to a recipient.", "to", "subject", "body"),
    function("search_db", "Search the customer database for records matching a query.", "query", "limit"),
]
DISTRACTORS = [
    function("get_weather", "Get the current weather forecast for a city.", "city", "units"),
    function("create_calendar_event", "Create an event in the user's calendar.", "title", "start", "end"),
    function("translate_text", "Translate text into another language.", "text", "target_language"),
    function("book_flight", "Book a flight between two airports.", "origin", "destination", "date"),
    function("get_stock_price", "Look up the latest share price of a listed company.", "ticker"),
    function("play_music", "Play a song or playlist on the user's speakers.", "track"),
    function("set_reminder", "Remind the user about something at a given time.", "message", "when"),
    function("order_food", "Order a meal from a nearby restaurant.", "restaurant", "items"),
    function(
        "resize_image", "Resize an uploaded picture to the given width and height.", "image_id", "width", "height"
    ),
    function("create_ticket", "Open a support ticket in the helpdesk.", "title", "description", "priority"),
    function("list_files", "List the files in a folder of the user's drive.", "folder"),
    function("summarize_url", "Fetch a web page and summarise its content.", "url"),
    function(
        "convert_currency", "Convert an amount of money between currencies at today's rate.", "amount", "from", "to"
    ),
    function("get_directions", "Driving or walking directions between two places.", "origin", "destination"),
    function("post_to_slack", "Post a message to a Slack channel.", "channel", "text"),
    function("lookup_word", "Dictionary definition and synonyms of an English word.", "word"),
]


def sent_names(upstream) -> list[str]:
    tools = upstream.last.json.get("tools") or []
    return [t["function"]["name"] if "function" in t else t.get("name", t["type"]) for t in tools]


async def chat(client, prompt_or_messages, tools, gateway, **kw):
    messages = (
        [{"role": "user", "content": prompt_or_messages}] if isinstance(prompt_or_messages, str) else prompt_or_messages
    )
    return await sdk(client).chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages, tools=tools, extra_body={"gateway": gateway}, **kw
    )


async def test_product_example_with_always_include(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    raw = await chat(
        client, "What is 256 multiplied by 14?", PRODUCT_TOOLS, {"toolOptimization": {"alwaysInclude": ["search_db"]}}
    )
    assert sent_names(upstream) == ["calculator", "search_db"]
    assert raw.headers["x-router-tokens-saved"].startswith("tools=")
    assert int(raw.headers["x-router-tokens-saved"].split("=")[1]) > 20


async def test_product_example_without_pins_sends_the_calculator(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    await chat(client, "What is 256 multiplied by 14?", PRODUCT_TOOLS, {"toolOptimization": {}})
    assert sent_names(upstream) == ["calculator"]


@pytest.mark.parametrize(
    ("prompt", "wanted"),
    [
        ("What is 256 multiplied by 14?", "calculator"),
        ("Email the quarterly numbers to bob@example.com", "send_email"),
        ("Find the customers in Berlin in the database who ordered last week", "search_db"),
        ("What's the weather like in Lisbon tomorrow?", "get_weather"),
        ("Translate 'good morning' into Japanese", "translate_text"),
    ],
)
async def test_fifty_tools_trimmed_to_the_relevant_ones(make_gateway, upstream, prompt, wanted):
    client = await context_gateway(make_gateway, "tools")
    fillers = [
        function(f"internal_job_{i}", f"Run maintenance job number {i} on the build farm.", "job_id") for i in range(31)
    ]
    tools = PRODUCT_TOOLS + DISTRACTORS + fillers
    assert len(tools) == 50
    raw = await chat(client, prompt, tools, {"toolOptimization": {"acceptScore": 0.5}})
    names = sent_names(upstream)
    assert wanted in names and len(names) <= 4
    assert int(raw.headers["x-router-tokens-saved"].split("=")[1]) > 1000


async def test_dependencies_are_kept_transitively(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    tools = [
        function(
            "create_element",
            "Create a new UI element on a page. Call get_context first for the page id.",
            "page_id",
            "kind",
        ),
        function("get_context", "Return the editing context of the current page.", "page_ref"),
        function("list_pages", "List the pages of the site.", "site"),
        *PRODUCT_TOOLS,
    ]
    tools[1]["function"]["parameters"]["properties"]["page_ref"]["description"] = "an id from list_pages"
    await chat(client, "Create a new button element on the landing page", tools, {"toolOptimization": {}})
    assert sent_names(upstream) == ["create_element", "get_context", "list_pages"]


async def test_forced_and_required_tool_choice(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    forced = {"type": "function", "function": {"name": "send_email"}}
    await chat(client, "What is 256 multiplied by 14?", PRODUCT_TOOLS, {"toolOptimization": {}}, tool_choice=forced)
    assert sent_names(upstream) == ["calculator", "send_email"]
    assert upstream.last.json["tool_choice"] == forced
    # Nothing relevant, but the client requires a tool call: the best one is sent.
    await chat(client, "Write a haiku about autumn", PRODUCT_TOOLS, {"toolOptimization": {}}, tool_choice="required")
    assert len(sent_names(upstream)) == 1 and upstream.last.json["tool_choice"] == "required"


async def test_responses_forced_tool_and_builtin_tools(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    tools = [{"type": f["type"], **f["function"]} for f in PRODUCT_TOOLS] + [{"type": "web_search"}]
    await sdk(client).responses.create(
        model="openai/gpt-4o",
        input="Write a haiku about autumn",
        tools=tools,
        tool_choice={"type": "function", "name": "search_db"},
        extra_body={"gateway": {"toolOptimization": {}}},
    )
    assert [t.get("name", t["type"]) for t in upstream.last.json["tools"]] == ["search_db", "web_search"]


async def test_tools_already_called_are_kept(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    messages = [
        *tool_exchange(
            "Look up our customers in Berlin.",
            ("call_1", "search_db", '{"query": "Berlin"}'),
            '[{"name": "Anna"}]',
            "One customer: Anna.",
        ),
        {"role": "user", "content": "What is 256 multiplied by 14?"},
    ]
    await chat(client, messages, PRODUCT_TOOLS, {"toolOptimization": {}})
    assert sent_names(upstream) == ["calculator", "search_db"]


async def test_nothing_relevant_with_auto_sends_no_tools(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    await chat(
        client,
        "Write a haiku about autumn",
        PRODUCT_TOOLS,
        {"toolOptimization": {}},
        tool_choice="auto",
        parallel_tool_calls=True,
    )
    body = upstream.last.json
    assert "tools" not in body and "tool_choice" not in body and "parallel_tool_calls" not in body


async def test_disabled_or_absent_sends_everything(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    await chat(client, "What is 256 multiplied by 14?", PRODUCT_TOOLS, {"toolOptimization": {"enabled": False}})
    assert len(sent_names(upstream)) == 3
    await sdk(client).chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "What is 256 multiplied by 14?"}],
        tools=PRODUCT_TOOLS,
    )
    assert len(sent_names(upstream)) == 3


@pytest.mark.parametrize(
    ("value", "param"),
    [
        ({"acceptScore": 1.5}, "gateway.toolOptimization.acceptScore"),
        ({"alwaysInclude": "search_db"}, "gateway.toolOptimization.alwaysInclude"),
        ({"acceptscore": 0.5}, "gateway.toolOptimization"),
    ],
)
async def test_bad_settings_are_a_400(make_gateway, value, param):
    client = await context_gateway(make_gateway, "tools")
    resp = await client.post(
        "/v1/chat/completions",
        json={
            "model": "openai/gpt-4o",
            "messages": [{"role": "user", "content": "hi"}],
            "gateway": {"toolOptimization": value},
        },
    )
    assert resp.status == 400
    assert (await resp.json())["error"]["param"].startswith(param)


def test_dependencies_are_linear_in_the_number_of_tools():
    tools = [
        Tool(
            name=f"tool_{i}",
            description=f"Step {i}. Call tool_{i + 1} next; see also tool_{i}_v2 and my-tool_{i - 1}.",
            parameters={
                "type": "object",
                "properties": {"ref": {"type": "string", "description": f"from tool_{i + 2}"}},
            },
        )
        for i in range(500)
    ]
    start = time.perf_counter()
    closure = dependencies(tools, {"tool_0"})
    assert time.perf_counter() - start < 0.5  # about 5 ms; the pairwise regex took seconds
    assert closure == {f"tool_{i}" for i in range(500)}  # tool_0 → tool_1 → … transitively
    # Whole identifiers only: "tool_3_v2" and "my-tool_2" do not name tool_3 / tool_2.
    assert dependencies(tools[:4], {"tool_3"}) == {"tool_3"}
