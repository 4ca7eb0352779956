"""The Anthropic Messages dialect, client side: a ``/v1/messages`` body → Call, a Reply → a Messages answer or stream."""

from __future__ import annotations

from typing import Any

import orjson

from router_core import (
    FILE,
    IMAGE,
    REASONING,
    TEXT,
    BadRequest,
    Call,
    GatewayError,
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
from router_core import StreamEncoder as BaseStreamEncoder
from router_core.dialects import expect, markdown_image, optional, require_model, require_stream

NAME = "messages"
# Body fields the gateway models; every other one is carried in ``Call.params``.
_MODELLED = frozenset(
    {"model", "messages", "system", "tools", "tool_choice", "stream", "gateway", "max_tokens", "stop_sequences"}
)
# Fields both sides share (as the canonical, Chat-spelled params).
PORTABLE = ("temperature", "top_p")
# Messages-only fields that another provider kind can do without: thinking and output_config.effort
# become a reasoning effort, metadata.user_id the user, service_tier only picks Anthropic's capacity
# pool, context_management only trims Claude's own context (old thinking, tool results). Every other
# Messages-only field (top_k, container, mcp_servers …) is refused for non-Claude routes.
DROPPED_ELSEWHERE = frozenset(
    {"system", "thinking", "metadata", "service_tier", "output_config", "context_management"}
)  # system: the blocks as sent (cache_control), its text is the system message everywhere
# Anthropic's output_config.effort → OpenAI's reasoning_effort.
EFFORT_BY_ANTHROPIC_EFFORT = {"low": "low", "medium": "medium", "high": "high", "max": "high"}
STOP_REASON_BY_FINISH = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "content_filter": "refusal",
}
# Anthropic's error types by HTTP status (https://docs.anthropic.com/en/api/errors).
ERROR_TYPE_BY_STATUS = {
    400: "invalid_request_error",
    401: "authentication_error",
    403: "permission_error",
    404: "not_found_error",
    405: "invalid_request_error",
    413: "request_too_large",
    429: "rate_limit_error",
    503: "overloaded_error",
}


# ---------------------------------------------------------------- requests


def decode_request(body: dict[str, Any]) -> Call:
    """A Messages API body → Call.  Unknown fields are carried in ``params``."""
    raw = expect(body.get("messages"), list, "messages", "an array of messages")
    if not raw:
        raise BadRequest("'messages' must not be empty.", param="messages")
    max_tokens = body.get("max_tokens")
    if max_tokens is None:
        raise BadRequest("'max_tokens' is required.", param="max_tokens")
    expect(max_tokens, int, "max_tokens", "an integer")
    call = Call(
        dialect=NAME,
        model=require_model(body),
        tools=_decode_tools(body.get("tools")),
        stream=require_stream(body),
        params={k: body[k] for k in PORTABLE if body.get(k) is not None},
        native={k: v for k, v in body.items() if k not in _MODELLED and k not in PORTABLE},
    )
    call.params["max_completion_tokens"] = max_tokens
    effort = _effort(call.native.get("thinking"), call.native.get("output_config"))
    if effort:
        call.params["reasoning_effort"] = effort
    user = (call.native.get("metadata") or {}).get("user_id") if isinstance(call.native.get("metadata"), dict) else None
    if isinstance(user, str):
        call.params["user"] = user
    stop = optional(body, "stop_sequences", list, "stop_sequences", "an array of strings")
    if stop:
        call.params["stop"] = stop
    call.tool_choice, parallel = _decode_tool_choice(body.get("tool_choice"))
    if parallel is False:
        call.params["parallel_tool_calls"] = False
    system = body.get("system")
    if system is not None:
        text = _system_text(system)
        if text:
            call.messages.append(Message.of_text("system", text, instructions=True))
        if isinstance(system, list):  # blocks with cache_control: Claude gets them as sent
            call.native["system"] = system
    for i, message in enumerate(raw):
        call.messages.extend(_decode_message(message, f"messages[{i}]"))
    return call


def _effort(thinking: Any, output_config: Any) -> str | None:
    """A thinking budget (or ``output_config.effort``) as the nearest OpenAI reasoning effort."""
    effort = output_config.get("effort") if isinstance(output_config, dict) else None
    if isinstance(effort, str):
        return EFFORT_BY_ANTHROPIC_EFFORT.get(effort, "medium")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int):
        return "medium"
    return "low" if budget < 4096 else "medium" if budget < 16384 else "high"


def refused_elsewhere(call: Call) -> str | None:
    """The first of a Messages client's own fields that only Claude can honour, if it sent one."""
    for field in call.native:
        if field not in DROPPED_ELSEWHERE:
            return field
    return None


def _system_text(system: Any) -> str:
    if isinstance(system, str):
        return system
    blocks = expect(system, list, "system", "a string or an array of text blocks")
    texts = []
    for j, block in enumerate(blocks):
        expect(block, dict, f"system[{j}]", "an object")
        texts.append(expect(block.get("text"), str, f"system[{j}].text", "a string"))
    return "\n\n".join(texts)


def _decode_message(raw: Any, param: str) -> list[Message]:
    """One Messages turn → canonical messages: a user turn's tool results become tool messages first."""
    expect(raw, dict, param, "an object")
    role = raw.get("role")
    if role not in ("user", "assistant", "system"):
        raise BadRequest(f"'{param}.role' must be 'user', 'assistant' or 'system'.", param=f"{param}.role")
    content = raw.get("content")
    if isinstance(content, str):
        return [Message.of_text(role, content)]
    blocks = expect(content, list, f"{param}.content", "a string or an array of content blocks")
    message = Message(role)
    results: list[Message] = []
    for j, block in enumerate(blocks):
        where = f"{param}.content[{j}]"
        expect(block, dict, where, "an object")
        kind = block.get("type")
        if kind == "tool_use" and role == "assistant":
            arguments = orjson.dumps(expect(block.get("input", {}), dict, f"{where}.input", "an object")).decode()
            message.tool_calls.append(
                ToolCall(expect(block.get("id"), str, f"{where}.id", "a string"), str(block.get("name", "")), arguments)
            )
        elif kind == "tool_result" and role == "user":
            result = Message(
                "tool", tool_call_id=expect(block.get("tool_use_id"), str, f"{where}.tool_use_id", "a string")
            )
            inner = block.get("content")
            if isinstance(inner, str) or inner is None:
                result.parts.append(Part(TEXT, inner or ""))
                result.as_string = True
            else:
                items = expect(inner, list, f"{where}.content", "a string or an array of blocks")
                result.parts = [_decode_part(b, f"{where}.content[{k}]") for k, b in enumerate(items)]
            if block.get("is_error"):
                result.extra["is_error"] = True
            results.append(result)
        else:
            message.parts.append(_decode_part(block, where))
    out = results
    if message.parts or message.tool_calls or not results:
        out = [*results, message]
    return out


def _decode_part(block: Any, param: str) -> Part:
    expect(block, dict, param, "an object")
    kind = block.get("type")
    if kind == "text":
        text = expect(block.get("text"), str, f"{param}.text", "a string")
        return Part(TEXT, text, source={"cache_control": block["cache_control"]} if "cache_control" in block else {})
    if kind in ("image", "document"):
        source = expect(block.get("source"), dict, f"{param}.source", "an object")
        if source.get("type") == "base64":
            url = f"data:{source.get('media_type')};base64,{source.get('data')}"
        elif source.get("type") == "url":
            url = expect(source.get("url"), str, f"{param}.source.url", "a string")
        else:
            raise BadRequest(f"'{param}.source.type' must be 'base64' or 'url'.", param=f"{param}.source.type")
        if kind == "image":
            return Part(IMAGE, source={"url": url})
        return Part(FILE, source={"file_data": url, "filename": block.get("title") or "document"})
    if kind in ("thinking", "redacted_thinking"):
        return Part(REASONING, source=block)
    expect(kind, str, f"{param}.type", "a string")
    return Part(kind, source=block)  # server tool blocks …: only an anthropic upstream takes them


def _decode_tools(raw: Any) -> list[Tool]:
    tools = []
    for i, tool in enumerate(optional({"t": raw}, "t", list, "tools", "an array of tools") or ()):
        expect(tool, dict, f"tools[{i}]", "an object")
        if tool.get("type") not in (None, "custom"):  # a server tool (web_search_…, bash_…)
            tools.append(Tool(name=str(tool.get("name") or tool["type"]), type=str(tool["type"]), extra=tool))
            continue
        tools.append(
            Tool(
                name=expect(tool.get("name"), str, f"tools[{i}].name", "a string"),
                description=optional(tool, "description", str, f"tools[{i}].description", "a string") or "",
                parameters=expect(tool.get("input_schema"), dict, f"tools[{i}].input_schema", "an object"),
            )
        )
    return tools


def _decode_tool_choice(raw: Any) -> tuple[Any, bool | None]:
    """Anthropic's tool_choice → the canonical (Chat-spelled) choice and ``parallel_tool_calls``."""
    if raw is None:
        return None, None
    expect(raw, dict, "tool_choice", "an object")
    parallel = False if raw.get("disable_parallel_tool_use") else None
    kind = raw.get("type")
    if kind == "auto":
        return "auto", parallel
    if kind == "any":
        return "required", parallel
    if kind == "none":
        return "none", parallel
    if kind == "tool":
        name = expect(raw.get("name"), str, "tool_choice.name", "a string")
        return {"type": "function", "function": {"name": name}}, parallel
    raise BadRequest("'tool_choice.type' must be auto, any, tool or none.", param="tool_choice.type")


# ---------------------------------------------------------------- replies


def encode_usage(usage: Usage) -> dict[str, Any]:
    """OpenAI counts cached input inside input_tokens; Anthropic apart."""
    cached = usage.cached_tokens or 0
    return {
        "input_tokens": max(usage.input_tokens - cached, 0),
        "output_tokens": usage.output_tokens,
        "cache_read_input_tokens": cached,
        "cache_creation_input_tokens": 0,
    }


def _arguments(text: str) -> dict[str, Any]:
    try:
        value = orjson.loads(text or "{}")
    except orjson.JSONDecodeError:
        return {}
    return value if isinstance(value, dict) else {}


def encode_reply(reply: Reply, reply_id: str) -> dict[str, Any]:
    content: list[dict[str, Any]] = []
    if reply.text:
        content.append({"type": "text", "text": reply.text})
    for part in (p for m in reply.messages for p in m.parts if p.kind == IMAGE):
        content.append({"type": "text", "text": markdown_image(part)})  # Messages has no image output block
    for call in reply.tool_calls:
        content.append({"type": "tool_use", "id": call.id, "name": call.name, "input": _arguments(call.arguments)})
    return {
        "id": reply_id,
        "type": "message",
        "role": "assistant",
        "model": reply.model,
        "content": content,
        "stop_reason": STOP_REASON_BY_FINISH.get(reply.finish_reason, "end_turn"),
        "stop_sequence": None,
        "usage": encode_usage(reply.usage),
    }


def error_body(error: GatewayError) -> dict[str, Any]:
    kind = ERROR_TYPE_BY_STATUS.get(error.status, "api_error")
    return {"type": "error", "error": {"type": kind, "message": error.message}}


# ---------------------------------------------------------------- streams


class StreamEncoder(BaseStreamEncoder):
    """Canonical pieces → the Messages event sequence the Anthropic SDK expects.

    message_start → (content_block_start → content_block_delta … → content_block_stop)…
    → message_delta (stop reason, usage) → message_stop.
    """

    def __init__(self, reply_id: str, model: str, call: Call | None = None) -> None:
        self.reply_id, self.model = reply_id, model
        self.block = -1  # index of the open content block
        self.open: str | None = None  # "text" | "tool" | None
        self.tools: dict[int, int] = {}  # canonical tool index → block index
        self.finish = "stop"
        self.usage = Usage()

    def start(self) -> list[dict[str, Any]]:
        message = {
            "id": self.reply_id,
            "type": "message",
            "role": "assistant",
            "model": self.model,
            "content": [],
            "stop_reason": None,
            "stop_sequence": None,
            "usage": {"input_tokens": 0, "output_tokens": 0},
        }
        return [{"type": "message_start", "message": message}]

    def _close(self) -> list[dict[str, Any]]:
        if self.open is None:
            return []
        self.open = None
        return [{"type": "content_block_stop", "index": self.block}]

    def encode(self, piece: StreamPiece) -> list[dict[str, Any]]:
        if isinstance(piece, TextDelta):
            out = []
            if self.open != "text":
                out = self._close()
                self.block += 1
                self.open = "text"
                out.append(
                    {"type": "content_block_start", "index": self.block, "content_block": {"type": "text", "text": ""}}
                )
            out.append(
                {
                    "type": "content_block_delta",
                    "index": self.block,
                    "delta": {"type": "text_delta", "text": piece.text},
                }
            )
            return out
        if isinstance(piece, ToolCallDelta):
            out = []
            if piece.index not in self.tools:
                out = self._close()
                self.block += 1
                self.open = "tool"
                self.tools[piece.index] = self.block
                block = {
                    "type": "tool_use",
                    "id": piece.id or f"toolu_{piece.index}",
                    "name": piece.name or "",
                    "input": {},
                }
                out.append({"type": "content_block_start", "index": self.block, "content_block": block})
            if piece.arguments:
                delta = {"type": "input_json_delta", "partial_json": piece.arguments}
                out.append({"type": "content_block_delta", "index": self.tools[piece.index], "delta": delta})
            return out
        assert isinstance(piece, StreamEnd)
        self.finish = piece.finish_reason or self.finish
        self.usage = piece.usage or self.usage
        return []

    def image(self, part: Part) -> list[dict[str, Any]]:
        return self.encode(TextDelta(markdown_image(part)))  # Messages has no image output block

    def close(self) -> list[dict[str, Any]]:
        delta = {"stop_reason": STOP_REASON_BY_FINISH.get(self.finish, "end_turn"), "stop_sequence": None}
        return [
            *self._close(),
            {"type": "message_delta", "delta": delta, "usage": encode_usage(self.usage)},
            {"type": "message_stop"},
        ]


def stream_error(message: str) -> dict[str, Any]:
    return {"type": "error", "error": {"type": "api_error", "message": message}}
