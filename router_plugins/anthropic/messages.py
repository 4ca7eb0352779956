"""The Anthropic Messages dialect, upstream side: Call → request body, reply and stream events → canonical."""

from __future__ import annotations

import re
from typing import Any

import orjson

from router_core import (
    FILE,
    IMAGE,
    TEXT,
    BadRequest,
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
    UpstreamFailure,
    Usage,
)
from router_core import StreamDecoder as BaseStreamDecoder

NAME = "messages"
# Fields a Messages client sent that the ingress turned into canonical ones (re-encoded below).
_REMAPPED = frozenset({"stop", "parallel_tool_calls", "max_tokens"})
# Anthropic requires max_tokens; this is what a request that names no limit gets.
DEFAULT_MAX_TOKENS = 4096
# Sampling fields both APIs share; any other OpenAI field would make Anthropic answer 400.
SHARED_PARAMS = ("temperature", "top_p", "top_k", "stop_sequences", "thinking")
MAX_TOKENS_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
FINISH_BY_STOP_REASON = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}
_DATA_URL = re.compile(r"data:(?P<type>[\w.+-]+/[\w.+-]+);base64,(?P<data>.*)", re.DOTALL)


# ---------------------------------------------------------------- requests


def encode_request(call: Call, model: str) -> dict[str, Any]:
    """Call → a Messages API body for ``model`` (Anthropic's own model name)."""
    system = [m.text for m in call.messages if m.instructions or m.role in ("system", "developer")]
    body: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(call.params)}
    if any(system):
        body["system"] = "\n\n".join(t for t in system if t)
    body["messages"] = encode_messages(call.messages)
    if call.dialect == NAME:  # a Messages client: its own fields go back as they came
        body.update((k, v) for k, v in call.params.items() if k not in _REMAPPED)
    for key in SHARED_PARAMS:
        if call.params.get(key) is not None:
            body[key] = call.params[key]
    stop = call.params.get("stop")
    if stop and "stop_sequences" not in body:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("temperature"), int | float):
        body["temperature"] = min(body["temperature"], 1.0)  # OpenAI allows up to 2, Anthropic up to 1
    tools = [_encode_tool(t) if t.type == "function" else _server_tool(t, call) for t in call.tools]
    if tools:
        body["tools"] = tools
        choice = _encode_tool_choice(call.tool_choice, call.params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if call.stream:
        body["stream"] = True
    return body


def _max_tokens(params: dict[str, Any]) -> int:
    for key in MAX_TOKENS_PARAMS:
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_MAX_TOKENS


def encode_messages(messages: list[Message]) -> list[dict[str, Any]]:
    """The conversation as Anthropic turns: tool results become user turns, same-role neighbours merge."""
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.instructions or message.role in ("system", "developer") or message.item is not None:
            continue  # system text goes top level; Responses-only items have no Anthropic form
        role = "assistant" if message.role == "assistant" else "user"
        blocks = _blocks(message)
        if not blocks:
            continue
        if turns and turns[-1]["role"] == role:  # Anthropic requires alternating roles
            turns[-1]["content"].extend(blocks)
        else:
            turns.append({"role": role, "content": blocks})
    return turns


def _blocks(message: Message) -> list[dict[str, Any]]:
    if message.role == "tool":
        content = [_encode_part(p) for p in message.parts if p.kind != TEXT or p.text]
        result: dict[str, Any] = {"type": "tool_result", "tool_use_id": message.tool_call_id or ""}
        if message.extra.get("is_error"):
            result["is_error"] = True
        if message.parts and all(p.kind == TEXT for p in message.parts):
            result["content"] = message.text
        elif content:
            result["content"] = content
        return [result]
    blocks = [_encode_part(p) for p in message.parts if p.kind != TEXT or p.text]  # empty text is refused
    for call in message.tool_calls:
        blocks.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)})
    return blocks


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        value = None
    return value if isinstance(value, dict) else {}  # Anthropic's input must be an object


def _encode_part(part: Part) -> dict[str, Any]:
    if part.kind == TEXT:
        return {"type": "text", "text": part.text or ""}
    if part.kind == IMAGE:
        url = part.source.get("url") or part.source.get("image_url")
        if isinstance(url, str):
            data = _DATA_URL.match(url)
            if data:
                return {"type": "image", "source": {"type": "base64", "media_type": data["type"], "data": data["data"]}}
            return {"type": "image", "source": {"type": "url", "url": url}}
    if part.kind == FILE:
        data = _DATA_URL.match(str(part.source.get("file_data") or ""))
        if data:
            return {"type": "document", "source": {"type": "base64", "media_type": data["type"], "data": data["data"]}}
    if part.kind not in (TEXT, IMAGE, FILE) and part.source.get("type") == part.kind:
        return part.source  # a block the gateway does not model (thinking …), from a Messages client
    raise BadRequest(
        f"The anthropic provider cannot send a '{part.kind}' part of this form "
        "(images need a URL or data: URL, files a data: URL).",
        code="unsupported_content",
    )


def _server_tool(tool: Tool, call: Call) -> dict[str, Any]:
    if call.dialect == NAME:
        return tool.extra  # an Anthropic server tool (web_search_…), as the client sent it
    raise BadRequest(
        f"The anthropic provider has no '{tool.type}' tool; only function tools can be translated.",
        param="tools",
        code="unsupported_tool",
    )


def _encode_tool(tool: Tool) -> dict[str, Any]:
    out: dict[str, Any] = {"name": tool.name, "input_schema": tool.parameters or {"type": "object", "properties": {}}}
    if tool.description:
        out["description"] = tool.description
    return out


def _encode_tool_choice(choice: Any, parallel: Any) -> dict[str, Any] | None:
    out: dict[str, Any] | None
    if choice in (None, "auto"):
        out = {"type": "auto"} if parallel is False else None
    elif choice == "required":
        out = {"type": "any"}
    elif choice == "none":
        return {"type": "none"}
    elif isinstance(choice, dict) and choice.get("type") == "function":
        fn = choice.get("function")
        name = fn.get("name") if isinstance(fn, dict) else choice.get("name")
        out = {"type": "tool", "name": name}
    else:
        out = None
    if out is not None and parallel is False:
        out["disable_parallel_tool_use"] = True
    return out


# ---------------------------------------------------------------- replies


def decode_reply(body: dict[str, Any]) -> Reply:
    """A Messages API answer → Reply; raises ValueError for anything that is not one."""
    content = body.get("content")
    if body.get("type") != "message" or not isinstance(content, list):
        raise ValueError("not an Anthropic message")
    message = Message("assistant")
    for block in content:
        if not isinstance(block, dict):
            continue
        if block.get("type") == "text":
            message.parts.append(Part(TEXT, block.get("text") or ""))
        elif block.get("type") == "tool_use":
            arguments = orjson.dumps(block.get("input") or {}).decode()
            message.tool_calls.append(ToolCall(block.get("id", ""), block.get("name", ""), arguments))
    return Reply(
        model=str(body.get("model", "")),
        messages=[message],
        finish_reason=FINISH_BY_STOP_REASON.get(body.get("stop_reason") or "", "stop"),
        usage=decode_usage(body.get("usage")),
        id=body.get("id"),
    )


def decode_usage(raw: Any) -> Usage:
    """Anthropic counts cached input apart; OpenAI's input count includes it."""
    if not isinstance(raw, dict):
        return Usage()
    cache_read = int(raw.get("cache_read_input_tokens") or 0)
    cache_write = int(raw.get("cache_creation_input_tokens") or 0)
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0) + cache_read + cache_write,
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=cache_read if "cache_read_input_tokens" in raw else None,
    )


# ---------------------------------------------------------------- streams


class StreamDecoder(BaseStreamDecoder):
    """One upstream Messages stream → canonical pieces.

    Input tokens arrive in ``message_start`` and output tokens in ``message_delta``, and
    a tool-use block's ``index`` counts text blocks too: this object keeps both across
    the stream, so the canonical tool index is the call's position among tool calls.
    """

    def __init__(self) -> None:
        self.usage: dict[str, Any] = {}
        self.tool_index: dict[int, int] = {}

    def feed(self, event: dict[str, Any]) -> list[StreamPiece]:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if delta.get("type") == "input_json_delta" and event.get("index") in self.tool_index:
                return [ToolCallDelta(self.tool_index[event["index"]], None, None, delta.get("partial_json") or "")]
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use":
                index = self.tool_index[event.get("index", 0)] = len(self.tool_index)
                return [ToolCallDelta(index, block.get("id"), block.get("name"), "")]
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(block["text"])]
        elif kind == "message_start":
            self.usage.update((event.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            return [StreamEnd(FINISH_BY_STOP_REASON.get(reason or "", "stop"), decode_usage(self.usage))]
        elif kind == "error":
            error = event.get("error")
            reason = error.get("type") if isinstance(error, dict) else None
            raise UpstreamFailure(f"the upstream stream failed: {reason or 'error'}")
        return []
