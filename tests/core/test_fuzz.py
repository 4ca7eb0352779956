"""Hostile bodies, generated: the gateway answers each with a clean status, never a 500."""

from __future__ import annotations

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.conftest import JSON

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**40), 2**40) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)
# Non-string enums (lists and objects are unhashable: a set lookup on them used to raise).
NOT_STRINGS = st.sampled_from([3, None, ["user"], {"role": "user"}, 1.5, True])
ROLES = st.sampled_from(["user", "assistant", "system", "developer", "tool", "wizard"]) | NOT_STRINGS
PART_TYPES = (
    st.sampled_from(["text", "image_url", "input_text", "input_image", "input_audio", "file", "input_file", "x"])
    | NOT_STRINGS
)
part = st.fixed_dictionaries(
    {"type": PART_TYPES},
    optional={"text": json_values, "image_url": json_values, "input_audio": json_values, "file": json_values},
)
message = st.fixed_dictionaries(
    {"role": ROLES},
    optional={
        "content": st.one_of(json_values, st.lists(part, max_size=3)),
        "tool_calls": st.one_of(
            json_values, st.lists(st.fixed_dictionaries({"id": json_values, "function": json_values}), max_size=2)
        ),
        "type": st.sampled_from(["message", "function_call", "function_call_output", "reasoning"]) | NOT_STRINGS,
        "call_id": json_values,
        "output": json_values,
    },
)
GATEWAY_FIELDS = [
    "redact",
    "zdr",
    "only",
    "order",
    "tags",
    "planningTriggerScore",
    "imageGenerationModel",
    "chatHistoryCompression",
    "mediaOptimization",
    "toolOptimization",
    "nope",
]
body = st.fixed_dictionaries(
    {"model": st.one_of(st.just("echo/fuzz"), json_values)},
    optional={
        "messages": st.one_of(json_values, st.lists(message, max_size=3)),
        "input": st.one_of(json_values, st.lists(message, max_size=3)),
        "instructions": json_values,
        "tools": st.one_of(json_values, st.lists(json_values, max_size=3)),
        "tool_choice": json_values,
        "stream": json_values,
        "gateway": st.one_of(json_values, st.dictionaries(st.sampled_from(GATEWAY_FIELDS), json_values, max_size=3)),
    },
)

# A valid skeleton with hostile parts, so that requests get past parsing into the plugins.
valid_text = st.text(max_size=60)
deep_body = st.fixed_dictionaries(
    {
        "model": st.sampled_from(["echo/fuzz", "echo/a:planning:echo/b", ""]),
        "messages": st.lists(
            st.fixed_dictionaries({"role": st.sampled_from(["user", "assistant", "system"]), "content": valid_text}),
            min_size=1,
            max_size=4,
        ),
        "gateway": st.dictionaries(st.sampled_from(GATEWAY_FIELDS[:-1]), json_values, max_size=4),
    },
    optional={
        "tools": st.lists(
            st.fixed_dictionaries(
                {
                    "type": st.just("function"),
                    "function": st.fixed_dictionaries(
                        {"name": st.text(min_size=1, max_size=10)}, optional={"description": valid_text}
                    ),
                }
            ),
            max_size=4,
        )
    },
)

ALL_PLUGINS = [
    "redact",
    "history",
    "media",
    "tools",
    "scorer",
    "tags",
    "image",
    "planning",
    "only",
    "zdr",
    "order",
    "anthropic",
]


def nested(depth: int, leaf: bytes = b"1") -> bytes:
    """JSON text nested ``depth`` levels (orjson will not write one past 254 levels itself)."""
    opener, closer = (b'{"k":', b"}") if depth % 2 else (b"[", b"]")
    return opener * depth + leaf + closer * depth


DEPTHS = st.sampled_from([1, 50, 200, 239, 240, 241, 253, 254, 255, 400, 1000])
DEEP_FIELDS = st.sampled_from(["metadata", "response_format", "x_unknown", "tool_choice", "gateway"])


async def test_generated_deep_nesting_never_crashes_the_gateway(make_gateway):
    client = await make_gateway({"plugins": {"enabled": ALL_PLUGINS}})
    cases: list[bytes] = []

    @settings(max_examples=40, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(DEPTHS, DEEP_FIELDS, st.booleans())
    def collect(depth, field, in_message):
        head = b'{"model":"echo/fuzz","messages":[{"role":"user","content":"hi"'
        if in_message:
            cases.append(head + b',"' + field.encode() + b'":' + nested(depth) + b"}]}")
        else:
            cases.append(head + b'}],"' + field.encode() + b'":' + nested(depth) + b"}")

    collect()
    for raw in cases:
        for path in ("/v1/chat/completions", "/v1/responses"):
            body = raw if path.endswith("completions") else raw.replace(b'"messages"', b'"input"')
            resp = await client.post(path, data=body, headers=JSON)
            assert resp.status != 500, (path, body[:120], await resp.text())


async def test_generated_bodies_never_crash_the_gateway(make_gateway):
    client = await make_gateway({"plugins": {"enabled": ALL_PLUGINS}})
    cases: list[bytes] = []

    @settings(max_examples=300, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(st.one_of(body, deep_body))
    def collect(generated):
        cases.append(orjson.dumps(generated))

    collect()  # hypothesis draws the bodies; the gateway then answers every one
    statuses: set[int] = set()
    for raw in cases:
        for path in ("/v1/chat/completions", "/v1/responses"):
            resp = await client.post(path, data=raw, headers=JSON)
            text = await resp.text()
            assert resp.status != 500, (path, raw, text)
            statuses.add(resp.status)
            if resp.status >= 400:
                error = orjson.loads(text)["error"]
                assert set(error) == {"message", "type", "param", "code"}
    assert 200 in statuses and 400 in statuses  # both paths were really exercised
