"""The Chat Completions dialect: request and reply codecs, stream codecs, text accessors."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any

from ..call import (
    AUDIO,
    FILE,
    IMAGE,
    REASONING,
    TEXT,
    Call,
    Message,
    Part,
    Reply,
    StreamEnd,
    StreamPiece,
    TextDelta,
    Tool,
    ToolCall,
    ToolCallDelta,
    Usage,
)
from ..errors import BadRequest
from . import ROLES, Dialect, StreamDecoder, expect, fates, markdown_image, optional, require_model, require_stream
from . import StreamEncoder as BaseStreamEncoder

NAME = "chat"
_ITEM_KEYS = frozenset({"id", "status", "type"})
_MODELLED = frozenset({"model", "messages", "tools", "tool_choice", "stream", "gateway"})


# ---------------------------------------------------------------- requests


def decode_request(body: dict[str, Any]) -> Call:
    """A Chat Completions body → Call.  Unknown fields are carried in ``params``."""
    messages = expect(body.get("messages"), list, "messages", "an array of messages")
    if not messages:
        raise BadRequest("'messages' must not be empty.", param="messages")
    return Call(
        dialect=NAME,
        model=require_model(body),
        messages=[_decode_message(m, f"messages[{i}]") for i, m in enumerate(messages)],
        tools=_decode_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"),
        stream=require_stream(body),
        params={k: v for k, v in body.items() if k not in _MODELLED},
    )


def _decode_message(raw: Any, param: str) -> Message:
    role = raw.get("role") if type(raw) is dict else None
    if type(role) is str and len(raw) == 2 and type(raw.get("content")) is str and role in ROLES:
        return Message(raw["role"], [Part(TEXT, raw["content"])], as_string=True)  # the common shape, fast
    expect(raw, dict, param, "an object")
    role = expect(raw.get("role"), str, f"{param}.role", "a string")
    if role not in ROLES:
        raise BadRequest(f"'{param}.role' must be one of {sorted(ROLES)}.", param=f"{param}.role")
    content = raw.get("content")
    message = Message(
        role,
        name=optional(raw, "name", str, f"{param}.name", "a string"),
        tool_call_id=optional(raw, "tool_call_id", str, f"{param}.tool_call_id", "a string"),
        extra={k: v for k, v in raw.items() if k not in ("role", "content", "name", "tool_call_id", "tool_calls")},
    )
    if isinstance(content, str):
        message.parts.append(Part(TEXT, content))
        message.as_string = True
    elif isinstance(content, list):
        message.parts = [_decode_part(p, f"{param}.content[{j}]") for j, p in enumerate(content)]
    elif content is not None:
        raise BadRequest(f"'{param}.content' must be a string or an array of parts.", param=f"{param}.content")
    for j, call in enumerate(optional(raw, "tool_calls", list, f"{param}.tool_calls", "an array") or ()):
        where = f"{param}.tool_calls[{j}]"
        expect(call, dict, where, "an object")
        fn = expect(call.get("function"), dict, f"{where}.function", "an object")
        message.tool_calls.append(
            ToolCall(
                id=expect(call.get("id", ""), str, f"{where}.id", "a string"),
                name=expect(fn.get("name"), str, f"{where}.function.name", "a string"),
                arguments=expect(fn.get("arguments", ""), str, f"{where}.function.arguments", "a string"),
            )
        )
    return message


def _decode_part(raw: Any, param: str) -> Part:
    expect(raw, dict, param, "an object")
    kind = raw.get("type")
    if kind == "text":
        return Part(TEXT, expect(raw.get("text"), str, f"{param}.text", "a string"))
    if kind == "image_url":
        image = raw.get("image_url")
        source = (
            {"url": image} if isinstance(image, str) else dict(expect(image, dict, f"{param}.image_url", "an object"))
        )
        return Part(IMAGE, source=source)
    if kind == "input_audio":
        return Part(AUDIO, source=dict(expect(raw.get("input_audio"), dict, f"{param}.input_audio", "an object")))
    if kind == "file":
        return Part(FILE, source=dict(expect(raw.get("file"), dict, f"{param}.file", "an object")))
    if not isinstance(kind, str):
        raise BadRequest(f"'{param}.type' must be a string.", param=f"{param}.type")
    return Part(kind, source=raw)


def _decode_tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    tools = []
    for i, tool in enumerate(expect(raw, list, "tools", "an array of tools")):
        expect(tool, dict, f"tools[{i}]", "an object")
        if tool.get("type", "function") != "function":
            tools.append(Tool(name=tool.get("type", ""), type=tool["type"], extra=tool))
            continue
        fn = expect(tool.get("function"), dict, f"tools[{i}].function", "an object")
        tools.append(
            Tool(
                name=expect(fn.get("name"), str, f"tools[{i}].function.name", "a string"),
                description=optional(fn, "description", str, f"tools[{i}].function.description", "a string") or "",
                parameters=optional(fn, "parameters", dict, f"tools[{i}].function.parameters", "an object"),
                extra={k: v for k, v in fn.items() if k not in ("name", "description", "parameters")},
            )
        )
    return tools


def encode_request(call: Call, model: str) -> dict[str, Any]:
    """Call → a Chat Completions body for ``model`` (the upstream's own name)."""
    params = _params_from_responses(call.params) if call.dialect == "responses" else call.params
    body: dict[str, Any] = {**params, "model": model, "messages": encode_messages(call.messages)}
    if call.tools:
        body["tools"] = [_encode_tool(t, call.dialect != NAME) for t in call.tools]
    if call.tool_choice is not None:
        body["tool_choice"] = _encode_tool_choice(call.tool_choice, call.dialect != NAME)
    if call.stream:
        body["stream"] = True
        if call.dialect != NAME:  # translating: the usage chunk is needed for the client's usage
            body.setdefault("stream_options", {"include_usage": True})
    return body


def _params_from_responses(params: dict[str, Any]) -> dict[str, Any]:
    """A Responses client's fields in Chat's words (fates.py says why each one goes where)."""
    out = fates.portable_responses_params(params)
    text = out.pop("text", None)
    response_format = fates.text_format({"text": text})
    if response_format is not None:
        out["response_format"] = response_format
    if isinstance(text, dict) and text.get("verbosity") is not None:
        out["verbosity"] = text["verbosity"]
    effort = fates.reasoning_effort(out)
    out.pop("reasoning", None)
    if effort is not None:
        out["reasoning_effort"] = effort
    if "max_output_tokens" in out:
        out["max_completion_tokens"] = out.pop("max_output_tokens")
    return out


def encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    for message in messages:
        if message.item is not None:
            if message.item.get("type") == "item_reference":
                raise fates.Untranslatable("input", "refers to an item stored at OpenAI (item_reference)")
            continue  # a Responses reasoning item: opaque context only OpenAI's Responses API reads
        if (
            message.role == "assistant"
            and message.tool_calls
            and not message.parts
            and out
            and out[-1]["role"] == "assistant"
            and out[-1].get("tool_calls") is not None
        ):
            out[-1]["tool_calls"].extend(_encode_tool_call(c) for c in message.tool_calls)
            continue
        out.append(_encode_message(message))
    return out


def _encode_message(message: Message) -> dict[str, Any]:
    role = "system" if message.instructions else message.role
    # A Responses item's own keys (id, status, type) are not Chat message keys.
    raw: dict[str, Any] = {k: v for k, v in message.extra.items() if k not in _ITEM_KEYS}
    raw["role"] = role
    parts = [p for p in message.parts if p.kind != REASONING]  # another dialect's reasoning: Chat cannot read it
    if message.as_string or (all(p.kind == TEXT for p in parts) and role != "user"):
        raw["content"] = message.text if parts else None
    else:
        raw["content"] = [_encode_part(p) for p in parts]
    if message.name is not None:
        raw["name"] = message.name
    if message.tool_call_id is not None:
        raw["tool_call_id"] = message.tool_call_id
    if message.tool_calls:
        raw["tool_calls"] = [_encode_tool_call(c) for c in message.tool_calls]
    return raw


def _encode_part(part: Part) -> dict[str, Any]:
    if part.kind == TEXT:
        return {"type": "text", "text": part.text or ""}
    if part.kind == IMAGE:
        source = part.source
        if "url" not in source:  # a Responses input_image: image_url is the URL itself
            if not isinstance(source.get("image_url"), str):
                raise fates.Untranslatable("input_image", "refers to an image by file_id, stored at OpenAI")
            source = {"url": source["image_url"], **({"detail": source["detail"]} if source.get("detail") else {})}
        return {"type": "image_url", "image_url": source}
    if part.kind == AUDIO:
        return {"type": "input_audio", "input_audio": part.source}
    if part.kind == FILE:
        return {"type": "file", "file": part.source}
    return part.source


def _encode_tool_call(call: ToolCall) -> dict[str, Any]:
    return {"id": call.id, "type": "function", "function": {"name": call.name, "arguments": call.arguments}}


def _encode_tool(tool: Tool, foreign: bool) -> dict[str, Any]:
    """``foreign``: the tool came from another dialect, where a non-function tool is a hosted one."""
    if tool.type != "function":
        if foreign:
            raise fates.Untranslatable("tools", f"offers a '{tool.type}' tool, which a Chat Completions API cannot run")
        return tool.extra  # a Chat client's own kind of tool (custom …), for a Chat upstream
    fn: dict[str, Any] = {"name": tool.name, **tool.extra}
    if tool.description:
        fn["description"] = tool.description
    if tool.parameters is not None:
        fn["parameters"] = tool.parameters
    return {"type": "function", "function": fn}


def _encode_tool_choice(choice: Any, foreign: bool) -> Any:
    # Responses spells a forced function {"type": "function", "name": …}; Chat nests it.
    if isinstance(choice, dict) and choice.get("type") == "function" and "name" in choice:
        return {"type": "function", "function": {"name": choice["name"]}}
    if isinstance(choice, dict) and choice.get("type") == "allowed_tools" and "tools" in choice:
        tools = [{"type": "function", "function": {"name": t.get("name")}} for t in choice["tools"]]
        return {"type": "allowed_tools", "allowed_tools": {"mode": choice.get("mode", "auto"), "tools": tools}}
    if foreign and isinstance(choice, dict) and choice.get("type") not in ("function", "allowed_tools"):
        raise fates.Untranslatable("tool_choice", f"forces a '{choice.get('type')}' tool, which Chat cannot run")
    return choice


def forced_tool(choice: Any) -> str | None:
    """The tool name a Chat ``tool_choice`` forces, if any."""
    if isinstance(choice, dict):
        fn = choice.get("function")
        if isinstance(fn, dict) and isinstance(fn.get("name"), str):
            return fn["name"]
    return None


# ---------------------------------------------------------------- replies


def decode_reply(body: dict[str, Any]) -> Reply:
    choices = body.get("choices")
    if not isinstance(choices, list) or not choices or not isinstance(choices[0], dict):
        raise ValueError("a chat completion without choices")
    choice = choices[0]
    raw = choice.get("message") or {}
    message = Message("assistant")
    if isinstance(raw.get("content"), str):
        message.parts.append(Part(TEXT, raw["content"]))
    for call in raw.get("tool_calls") or ():
        fn = call.get("function") or {}
        message.tool_calls.append(ToolCall(call.get("id", ""), fn.get("name", ""), fn.get("arguments", "")))
    return Reply(
        model=str(body.get("model", "")),
        messages=[message],
        finish_reason=choice.get("finish_reason") or "stop",
        usage=decode_usage(body.get("usage")),
        id=body.get("id"),
        created=body.get("created"),
    )


def decode_usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    details = raw.get("prompt_tokens_details") or {}
    completion = raw.get("completion_tokens_details") or {}
    return Usage(
        input_tokens=int(raw.get("prompt_tokens") or 0),
        output_tokens=int(raw.get("completion_tokens") or 0),
        cached_tokens=details.get("cached_tokens"),
        reasoning_tokens=completion.get("reasoning_tokens"),
    )


def encode_usage(usage: Usage) -> dict[str, Any]:
    out: dict[str, Any] = {
        "prompt_tokens": usage.input_tokens,
        "completion_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
    }
    if usage.cached_tokens is not None:
        out["prompt_tokens_details"] = {"cached_tokens": usage.cached_tokens}
    if usage.reasoning_tokens is not None:
        out["completion_tokens_details"] = {"reasoning_tokens": usage.reasoning_tokens}
    out.update(usage.extra)
    return out


def encode_reply(reply: Reply, reply_id: str) -> dict[str, Any]:
    content = reply.text
    for part in (p for m in reply.messages for p in m.parts if p.kind == IMAGE):
        content += ("\n\n" if content else "") + markdown_image(part)  # Chat has no image output part
    message: dict[str, Any] = {"role": "assistant", "content": content or None}
    calls = [c for m in reply.messages for c in m.tool_calls]
    if calls:
        message["tool_calls"] = [_encode_tool_call(c) for c in calls]
    return {
        "id": reply_id,
        "object": "chat.completion",
        "created": reply.created or int(time.time()),
        "model": reply.model,
        "choices": [{"index": 0, "message": message, "finish_reason": reply.finish_reason, "logprobs": None}],
        "usage": encode_usage(reply.usage),
    }


def reply_usage(body: dict[str, Any]) -> Usage:
    return decode_usage(body.get("usage"))


def map_reply_text(
    body: dict[str, Any], fn: Callable[[str], str], arguments: Callable[[str], str] | None = None
) -> None:
    for choice in body.get("choices") or ():
        message = choice.get("message") or {}
        if isinstance(message.get("content"), str):
            message["content"] = fn(message["content"])
        for call in message.get("tool_calls") or ():
            f = call.get("function") or {}
            if isinstance(f.get("arguments"), str):
                f["arguments"] = (arguments or fn)(f["arguments"])


# ---------------------------------------------------------------- streams


def decode_event(data: dict[str, Any]) -> Iterator[StreamPiece]:
    """One upstream ``chat.completion.chunk`` → canonical pieces."""
    usage = data.get("usage")
    for choice in data.get("choices") or ():
        delta = choice.get("delta") or {}
        if delta.get("content"):
            yield TextDelta(delta["content"])
        for call in delta.get("tool_calls") or ():
            fn = call.get("function") or {}
            yield ToolCallDelta(call.get("index", 0), call.get("id"), fn.get("name"), fn.get("arguments") or "")
        if choice.get("finish_reason"):
            yield StreamEnd(choice["finish_reason"], decode_usage(usage) if usage else None)
            usage = None
    if usage:  # the include_usage chunk arrives after finish_reason, with no choices
        yield StreamEnd("", decode_usage(usage))


class StreamEncoder(BaseStreamEncoder):
    """Canonical pieces → ``chat.completion.chunk`` dicts, for a client that speaks Chat."""

    def __init__(self, reply_id: str, model: str, call: Call | None = None) -> None:
        self.base = {"id": reply_id, "object": "chat.completion.chunk", "created": int(time.time()), "model": model}
        self.started = False
        self.finish: str | None = None

    def start(self) -> list[dict[str, Any]]:
        return []

    def _chunk(self, delta: dict[str, Any], finish: str | None = None) -> dict[str, Any]:
        if not self.started:
            delta = {"role": "assistant", **delta}
            self.started = True
        return {**self.base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def encode(self, piece: StreamPiece) -> list[dict[str, Any]]:
        if isinstance(piece, TextDelta):
            return [self._chunk({"content": piece.text})]
        if isinstance(piece, ToolCallDelta):
            call: dict[str, Any] = {"index": piece.index, "function": {"arguments": piece.arguments}}
            if piece.id:
                call["id"], call["type"] = piece.id, "function"
            if piece.name:
                call["function"]["name"] = piece.name
            return [self._chunk({"tool_calls": [call]})]
        out = []
        if piece.finish_reason and self.finish is None:
            self.finish = piece.finish_reason
            out.append(self._chunk({}, piece.finish_reason))
        if piece.usage is not None:
            out.append({**self.base, "choices": [], "usage": encode_usage(piece.usage)})
        return out

    def image(self, part: Part) -> list[dict[str, Any]]:
        return [self._chunk({"content": markdown_image(part)})]

    def close(self) -> list[dict[str, Any]]:
        return [] if self.finish else [self._chunk({}, "stop")]


class _ChatStreamDecoder(StreamDecoder):
    def feed(self, event: dict[str, Any]) -> list[StreamPiece]:
        return list(decode_event(event))


class ChatDialect(Dialect):
    name = NAME
    id_prefix = "gen_"
    done_marker = b"[DONE]"

    def decode_request(self, body: dict[str, Any]) -> Call:
        return decode_request(body)

    def encode_request(self, call: Call, model: str) -> dict[str, Any]:
        return encode_request(call, model)

    def decode_reply(self, body: dict[str, Any]) -> Reply:
        return decode_reply(body)

    def encode_reply(self, reply: Reply, reply_id: str, call: Call | None = None) -> dict[str, Any]:
        return encode_reply(reply, reply_id)

    def reply_usage(self, body: dict[str, Any]) -> Usage:
        return reply_usage(body)

    def map_reply_text(self, body, fn, arguments=None) -> None:
        map_reply_text(body, fn, arguments)

    def restamp_event(self, event: dict[str, Any], reply_id: str, model: str, usage_extra: dict[str, Any]) -> None:
        event["id"], event["model"] = reply_id, model
        if usage_extra and isinstance(event.get("usage"), dict):
            event["usage"].update(usage_extra)

    def stream_encoder(self, reply_id: str, model: str, call: Call | None) -> StreamEncoder:
        return StreamEncoder(reply_id, model, call)

    def stream_decoder(self) -> StreamDecoder:
        return _ChatStreamDecoder()


DIALECT = ChatDialect()
