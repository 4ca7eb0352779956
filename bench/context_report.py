"""Tokens saved by history, media and tool optimisation on realistic conversations, and what was kept."""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from router_core import Call, Config, RequestContext
from router_core.dialects import chat
from router_lib.tokens import encoding_name, message_tokens, tool_tokens
from router_plugins.history.compress import Limits, compress
from router_plugins.history.plugin import HistorySettings
from router_plugins.history.plugin import pre_request as history
from router_plugins.media.plugin import MediaSettings
from router_plugins.media.plugin import pre_request as media
from router_plugins.scorer import plugin as scorer
from router_plugins.scorer.embed import embedder
from router_plugins.tools.plugin import ToolSettings
from router_plugins.tools.plugin import pre_request as tools
from tests.plugins.test_media import png
from tests.plugins.test_tools import DISTRACTORS, PRODUCT_TOOLS

MODEL = "openai/gpt-4o"
TRACEBACK = "\n".join(
    [
        f'  File "/srv/app/orders/service.py", line {40 + i}, in handler_{i}\n    total += line.price * line.qty'
        for i in range(40)
    ]
    + ["TypeError: unsupported operand type(s) for *: 'Decimal' and 'float'"]
)
SOURCE = "\n".join(
    f"def step_{i}(order):\n    '''Apply pricing rule {i}.'''\n    return order.total * {1 + i / 100}\n"
    for i in range(80)
)
DEBUG = [
    {"role": "system", "content": "You are a senior Python engineer helping a colleague."},
    {"role": "user", "content": f"Our order service crashes in production with this traceback:\n{TRACEBACK}"},
    {
        "role": "assistant",
        "content": "price is a Decimal and qty a float: convert qty with Decimal(str(qty)) before multiplying.",
    },
    {"role": "user", "content": f"Here is the pricing module, which rule is wrong?\n{SOURCE}"},
    {
        "role": "assistant",
        "content": "Every step multiplies a Decimal total by a float literal; use Decimal('1.01') etc.",
    },
]
CHART = [
    {
        "role": "user",
        "content": [
            {"type": "text", "text": "Here is our monthly revenue chart for 2024."},
            {"type": "image_url", "image_url": {"url": png(1600, 900)}},
        ],
    },
    {"role": "assistant", "content": "Revenue rises from January to a peak in November, then dips in December."},
]
WEATHER_CALL = {
    "id": "call_1",
    "type": "function",
    "function": {"name": "get_weather", "arguments": '{"city": "Oslo"}'},
}
AGENT = [
    {"role": "user", "content": "What's the weather in Oslo?"},
    {"role": "assistant", "content": None, "tool_calls": [WEATHER_CALL]},
    {"role": "tool", "tool_call_id": "call_1", "content": '{"temp_c": 2, "sky": "snow", "wind_kmh": 30}'},
    {"role": "assistant", "content": "2°C with snow and a strong wind in Oslo."},
]
ALL_TOOLS = PRODUCT_TOOLS + DISTRACTORS

SCENARIOS: list[tuple[str, list[dict[str, Any]], list[dict[str, Any]], dict[str, Any]]] = [
    (
        "debugging, then a new topic",
        [*DEBUG, {"role": "user", "content": "New topic: draft a polite email declining Friday's meeting."}],
        [],
        {"history": True},
    ),
    (
        "debugging, then a follow-up",
        [*DEBUG, {"role": "user", "content": "Why does it only fail with the second rule you listed?"}],
        [],
        {"history": True},
    ),
    (
        "debugging, unrelated question on one file",
        [*DEBUG, {"role": "user", "content": "Unrelated: how should pricing rule 7 round the order total?"}],
        [],
        {"history": True},
    ),
    (
        "chart, then a textual question",
        [*CHART, {"role": "user", "content": "Write the SQL to create an orders table."}],
        [],
        {"media": True},
    ),
    (
        "chart, then a question about it",
        [*CHART, {"role": "user", "content": "In the chart, which month had the lowest revenue?"}],
        [],
        {"media": True},
    ),
    (
        "agent, 19 tools, product example",
        [{"role": "user", "content": "What is 256 multiplied by 14?"}],
        ALL_TOOLS,
        {"tools": ["search_db"]},
    ),
    (
        "agent, tool loop in history",
        [*AGENT, {"role": "user", "content": "Set a reminder to buy a scarf tomorrow at 9."}],
        ALL_TOOLS,
        {"history": True, "tools": []},
    ),
    (
        "everything on",
        [*CHART, *DEBUG[1:], {"role": "user", "content": "New question: email Bob the Q3 numbers."}],
        ALL_TOOLS,
        {"history": True, "media": True, "tools": []},
    ),
]


def size(call: Call) -> int:
    return sum(message_tokens(m, MODEL) for m in call.messages) + sum(tool_tokens(t, MODEL) for t in call.tools)


async def run(
    messages: list[dict[str, Any]], tool_list: list[dict[str, Any]], on: dict[str, Any]
) -> tuple[int, int, str, str]:
    call = chat.decode_request({"model": MODEL, "messages": messages, **({"tools": tool_list} if tool_list else {})})
    gateway: dict[str, Any] = {}
    if on.get("history"):
        gateway["chatHistoryCompression"] = HistorySettings()
    if on.get("media"):
        gateway["mediaOptimization"] = True
    if "tools" in on:
        gateway["toolOptimization"] = ToolSettings(alwaysInclude=on["tools"])

    async def score(ctx: RequestContext, wanted: set[str]) -> Any:
        return await scorer.score_request(ctx, frozenset(wanted))

    ctx = RequestContext(call=call, gateway=gateway, config=CONFIG, app=APP, settings=SETTINGS, scorer=score)
    before = size(call)
    for hook in (history, media, tools):
        await hook(ctx)
    return before, size(call), ctx.headers.get("x-router-tokens-saved", "—"), kept(ctx)


def kept(ctx: RequestContext) -> str:
    notes = []
    state = ctx.plugin_state
    if "history" in state:
        h = state["history"]
        if h.get("action") == "compressed":
            turns = len(h["kept_turns"])
            notes.append(
                f"dependency {h['dependency']:.2f}: {h['dropped_messages']} msgs dropped, {turns} old turn(s) kept, {h['shortened_blocks']} shortened"
            )
        else:
            notes.append(f"dependency {h['dependency']:.2f}: history kept")
    if "media" in state:
        notes.append(f"media kept {state['media']['kept'] or 'none'}")
    if "tools" in state:
        notes.append("tools " + ", ".join(state["tools"]["kept"]) if state["tools"]["kept"] else "no tools")
    return "; ".join(notes)


TOPICS = [
    "the Postgres connection pool exhausting under load",
    "hiking trails near Grenoble",
    "a Python KeyError reading a config dict",
    "a React list re-rendering on every keystroke",
    "sourdough that does not rise",
    "Kubernetes pods OOMKilled after a rollout",
]


def long_conversation(reply_chars: int) -> list[dict[str, Any]]:
    """20 earlier turns (a question, a reply of about ``reply_chars``), then a reworded question about the first."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": "You are a helpful assistant."}]
    for i in range(20):
        topic = TOPICS[i % len(TOPICS)]
        reply = f"About {topic}: check the settings, the logs and what changed in the last deploy first. "
        messages += [
            {"role": "user", "content": f"Question {i}: what should I look at first about {topic}?"},
            {"role": "assistant", "content": (reply * (1 + reply_chars // len(reply)))[:reply_chars]},
        ]
    return [*messages, {"role": "user", "content": "Going back to the database issue: how big should it be?"}]


def compress_ms(messages: list[dict[str, Any]], with_embeddings: bool, runs: int = 300) -> float:
    """Median time of the turn selection and shortening alone (the scorer's own time is not included)."""
    model, limits = (embedder() if with_embeddings else None), Limits()
    calls = [chat.decode_request({"model": MODEL, "messages": messages}) for _ in range(runs + 20)]
    times = []
    for call in calls:
        start = time.perf_counter()
        compress(call, limits, model)
        times.append(time.perf_counter() - start)
    return 1000 * sorted(times[20:])[runs // 2]


# What router_startup keeps per app, for the plugins this report calls directly.
CONFIG = Config()
APP: dict[Any, Any] = {}
SETTINGS = {"history": Limits(), "media": MediaSettings()}  # the defaults, as the core would structure them


async def main() -> None:
    scorer.router_startup(APP, scorer.Settings())
    print(f"Counted with tiktoken {encoding_name(MODEL)} for {MODEL}; images by OpenAI's tile rule.\n")
    print("| conversation | tokens before | after | saved (x-router-tokens-saved) | what was kept |")
    print("|---|---:|---:|---|---|")
    total_before = total_after = 0
    for name, messages, tool_list, on in SCENARIOS:
        before, after, header, notes = await run(messages, tool_list, on)
        total_before, total_after = total_before + before, total_after + after
        print(f"| {name} | {before} | {after} | {header} | {notes} |")
    print(
        f"| **total** | {total_before} | {total_after} | {100 * (total_before - total_after) / total_before:.0f}% saved | |"
    )
    print("\nTurn selection on 20 earlier turns (median ms; the prompt shares words with some turns only):\n")
    print("| replies of | words only | words + WordLlama |")
    print("|---|---:|---:|")
    for reply_chars in (100, 300, 2000):
        messages = long_conversation(reply_chars)
        print(f"| {reply_chars} chars | {compress_ms(messages, False):.2f} | {compress_ms(messages, True):.2f} |")


if __name__ == "__main__":
    asyncio.run(main())
