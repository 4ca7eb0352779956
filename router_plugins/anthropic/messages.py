"""The Anthropic Messages dialect, upstream side: Call → request body, reply and stream events → canonical."""

from __future__ import annotations

import re
from typing import Any

import orjson

from router_core import (
    FILE,
    IMAGE,
    REASONING,
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
from router_core.dialects import fates

NAME = "messages"
# Anthropic requires max_tokens; this is what a request that names no limit gets.
DEFAULT_MAX_TOKENS = 4096
# Sampling fields both APIs share; other OpenAI fields are mapped below or left out.
SHARED_PARAMS = ("temperature", "top_p")
MAX_TOKENS_PARAMS = ("max_tokens", "max_completion_tokens", "max_output_tokens")
# reasoning effort → a thinking budget in tokens (Anthropic's minimum is 1024; "minimal" and
# "none" mean no extended thinking).
THINKING_BUDGET = {"low": 1024, "medium": 4096, "high": 16384, "xhigh": 32000}
MIN_THINKING_BUDGET = 1024
# Structured output (a JSON schema) is asked for as a forced call of this tool, whose input
# comes back as the answer's text: Anthropic's own way to make Claude follow a schema.
STRUCTURED_TOOL = "gateway_structured_answer"
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
    params = call.params
    if call.dialect == "responses":
        params = fates.portable_responses_params(params)
        response_format, effort = fates.text_format(params), fates.reasoning_effort(params)
    elif call.dialect == NAME:  # its own thinking is in call.native
        response_format, effort = None, None
    else:
        response_format, effort = params.get("response_format"), params.get("reasoning_effort")
    if call.dialect != NAME:
        refuse_what_claude_cannot_do(params)
    native = call.dialect == NAME
    system = [m.text for m in call.messages if m.instructions or (not native and m.role in ("system", "developer"))]
    body: dict[str, Any] = {"model": model, "max_tokens": _max_tokens(params)}
    if any(system):
        body["system"] = "\n\n".join(t for t in system if t)
    body["messages"] = encode_messages(call.messages, inline_system=native)
    for key in SHARED_PARAMS:
        if params.get(key) is not None:
            body[key] = params[key]
    stop = params.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if isinstance(body.get("temperature"), int | float):
        body["temperature"] = min(body["temperature"], 1.0)  # OpenAI allows up to 2, Anthropic up to 1
    if isinstance(params.get("user"), str):
        body["metadata"] = {"user_id": params["user"]}
    _add_thinking(body, effort, explicit_limit=any(params.get(k) is not None for k in MAX_TOKENS_PARAMS))
    tools = [_encode_tool(t) if t.type == "function" else _server_tool(t, call) for t in call.tools]
    if tools:
        body["tools"] = tools
        choice = _encode_tool_choice(call.tool_choice, params.get("parallel_tool_calls"))
        if choice is not None:
            body["tool_choice"] = choice
    if response_format is not None:
        _add_structured_output(body, response_format)
    if call.dialect == NAME:  # a Messages client's own fields, for Claude only
        blocks = call.native.get("system")
        body.update((k, v) for k, v in call.native.items() if k != "system")
        if blocks is not None and _text_of(blocks) == body.get("system", ""):
            body["system"] = blocks  # untouched by plugins: the blocks as sent, cache_control and all
    if call.stream:
        body["stream"] = True
    return body


def _text_of(blocks: Any) -> str:
    return "\n\n".join(b.get("text", "") for b in blocks if isinstance(b, dict)) if isinstance(blocks, list) else ""


# OpenAI fields with no Messages equivalent that change the answer: refused when set to anything
# but their neutral value (clients often send the neutral one). Every other OpenAI field — seed,
# logprobs, store, metadata, service_tier, prompt_cache_key, stream_options … — is left out:
# it asks for extra output or for OpenAI-side bookkeeping.
REFUSED_UNLESS_NEUTRAL = {
    "n": (None, 1),
    "frequency_penalty": (None, 0, 0.0),
    "presence_penalty": (None, 0, 0.0),
    "logit_bias": (None, {}),
    "audio": (None,),
    "modalities": (None, ["text"]),
    "prediction": (None,),
    "web_search_options": (None,),
}


def refuse_what_claude_cannot_do(params: dict[str, Any]) -> None:
    for field, neutral in REFUSED_UNLESS_NEUTRAL.items():
        if params.get(field) not in neutral:
            raise fates.Untranslatable(field, "has no equivalent in Anthropic's Messages API")


def _add_thinking(body: dict[str, Any], effort: Any, explicit_limit: bool) -> None:
    if effort in (None, "none", "minimal"):
        return
    budget = THINKING_BUDGET.get(effort)
    if budget is None:
        raise BadRequest(f"Unknown reasoning effort {effort!r}.", param="reasoning.effort")
    if not explicit_limit:
        body["max_tokens"] = DEFAULT_MAX_TOKENS + budget
    elif body["max_tokens"] <= budget:  # the limit counts thinking too, as OpenAI's counts reasoning
        budget = body["max_tokens"] // 2
        if budget < MIN_THINKING_BUDGET:
            raise fates.Untranslatable(
                "reasoning.effort",
                f"needs a token limit above {2 * MIN_THINKING_BUDGET} (Claude thinks in 1024+ tokens)",
            )
    if body.get("temperature") not in (None, 1, 1.0) or body.get("top_p") is not None:
        raise fates.Untranslatable("temperature", "cannot be combined with reasoning on Claude (thinking samples at 1)")
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}


def _add_structured_output(body: dict[str, Any], response_format: Any) -> None:
    kind = response_format.get("type") if isinstance(response_format, dict) else None
    if kind == "text":
        return
    if kind == "json_schema":
        spec = response_format.get("json_schema") or {}
        schema = spec.get("schema") if isinstance(spec.get("schema"), dict) else {"type": "object"}
        description = spec.get("description") or f"Give the answer as {spec.get('name') or 'JSON'}."
    elif kind == "json_object":
        schema, description = {"type": "object"}, "Give the answer as a JSON object."
    else:
        raise fates.Untranslatable("response_format", f"asks for output format {kind!r}, which Claude has no form for")
    if "thinking" in body:
        raise fates.Untranslatable("text.format", "forces a structured answer, which Claude cannot do while thinking")
    choice = body.get("tool_choice") or {"type": "auto"}
    if choice["type"] in ("tool", "any"):
        return  # the client forces one of its tools: that call is the answer, as at OpenAI
    tool = {"name": STRUCTURED_TOOL, "description": description, "input_schema": schema}
    offered = [t for t in body.get("tools", ()) if choice["type"] != "none"]
    body["tools"] = [*offered, tool]
    # With tools of its own the model may still call them; its final answer is the schema tool.
    forced = {"type": "any"} if offered else {"type": "tool", "name": STRUCTURED_TOOL}
    if choice.get("disable_parallel_tool_use"):
        forced["disable_parallel_tool_use"] = True
    body["tool_choice"] = forced


def _max_tokens(params: dict[str, Any]) -> int:
    for key in MAX_TOKENS_PARAMS:
        value = params.get(key)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return DEFAULT_MAX_TOKENS


def encode_messages(messages: list[Message], inline_system: bool = False) -> list[dict[str, Any]]:
    """The conversation as Anthropic turns: tool results become user turns, same-role neighbours merge.

    ``inline_system``: a Messages client's own system turns (Claude Code sends them between
    user turns) stay where they are; from other dialects system text goes top level.
    """
    turns: list[dict[str, Any]] = []
    for message in messages:
        if message.item is not None and message.item.get("type") == "item_reference":
            raise fates.Untranslatable("input", "refers to an item stored at OpenAI (item_reference)")
        inline = inline_system and message.role == "system" and not message.instructions
        if not inline and (message.instructions or message.role in ("system", "developer") or message.item is not None):
            continue  # system text goes top level; Responses reasoning items have no Anthropic form
        role = "system" if inline else "assistant" if message.role == "assistant" else "user"
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
        block = {"type": "text", "text": part.text or ""}
        if "cache_control" in part.source:  # a Messages client's prompt-cache breakpoint
            block["cache_control"] = part.source["cache_control"]
        return block
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
    if part.kind == REASONING or (part.kind not in (TEXT, IMAGE, FILE) and part.source.get("type") == part.kind):
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
        kind = choice.get("type") if isinstance(choice, dict) else choice
        raise fates.Untranslatable("tool_choice", f"asks for {kind!r}, which Claude has no form for")
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
            if block.get("name") == STRUCTURED_TOOL:
                message.parts.append(Part(TEXT, arguments))  # the structured answer itself
                continue
            message.tool_calls.append(ToolCall(block.get("id", ""), block.get("name", ""), arguments))
    finish = FINISH_BY_STOP_REASON.get(body.get("stop_reason") or "", "stop")
    return Reply(
        model=str(body.get("model", "")),
        messages=[message],
        finish_reason="stop" if finish == "tool_calls" and not message.tool_calls else finish,
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
        self.structured: int | None = None  # the block carrying a structured answer

    def feed(self, event: dict[str, Any]) -> list[StreamPiece]:
        kind = event.get("type")
        if kind == "content_block_delta":
            delta = event.get("delta") or {}
            if delta.get("type") == "text_delta" and delta.get("text"):
                return [TextDelta(delta["text"])]
            if delta.get("type") == "input_json_delta" and event.get("index") == self.structured:
                return [TextDelta(delta["partial_json"])] if delta.get("partial_json") else []
            if delta.get("type") == "input_json_delta" and event.get("index") in self.tool_index:
                return [ToolCallDelta(self.tool_index[event["index"]], None, None, delta.get("partial_json") or "")]
        elif kind == "content_block_start":
            block = event.get("content_block") or {}
            if block.get("type") == "tool_use" and block.get("name") == STRUCTURED_TOOL:
                self.structured = event.get("index", 0)
            elif block.get("type") == "tool_use":
                index = self.tool_index[event.get("index", 0)] = len(self.tool_index)
                return [ToolCallDelta(index, block.get("id"), block.get("name"), "")]
            if block.get("type") == "text" and block.get("text"):
                return [TextDelta(block["text"])]
        elif kind == "message_start":
            self.usage.update((event.get("message") or {}).get("usage") or {})
        elif kind == "message_delta":
            self.usage.update(event.get("usage") or {})
            reason = (event.get("delta") or {}).get("stop_reason")
            finish = FINISH_BY_STOP_REASON.get(reason or "", "stop")
            if finish == "tool_calls" and not self.tool_index:
                finish = "stop"  # only the structured answer's tool was called
            return [StreamEnd(finish, decode_usage(self.usage))]
        elif kind == "error":
            error = event.get("error")
            reason = error.get("type") if isinstance(error, dict) else None
            raise UpstreamFailure(f"the upstream stream failed: {reason or 'error'}")
        return []
