"""The Responses dialect: request and reply codecs, stream codecs, text accessors."""

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
from . import Dialect, StreamDecoder, expect, optional, require_model, require_stream
from . import StreamEncoder as BaseStreamEncoder

NAME = "responses"
_MODELLED = frozenset({"model", "input", "instructions", "tools", "tool_choice", "stream", "gateway"})
_INPUT_TEXT = frozenset({"input_text", "output_text", "text"})
_MESSAGE_ROLES = frozenset({"system", "developer", "user", "assistant"})
# usage.planning_usage_details when no plan was made: the seed's answer always carries the object.
NO_PLANNING = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0, "cost": 0.0}
_FINISH_BY_REASON = {"max_output_tokens": "length", "content_filter": "content_filter"}


# ---------------------------------------------------------------- requests


def decode_request(body: dict[str, Any]) -> Call:
    """A Responses body → Call.  Unknown fields are carried in ``params``."""
    call = Call(
        dialect=NAME,
        model=require_model(body),
        tools=_decode_tools(body.get("tools")),
        tool_choice=body.get("tool_choice"),
        stream=require_stream(body),
        params={k: v for k, v in body.items() if k not in _MODELLED},
    )
    instructions = optional(body, "instructions", str, "instructions", "a string")
    if instructions:
        call.messages.append(Message.of_text("system", instructions, instructions=True))
    raw = body.get("input")
    if isinstance(raw, str):
        call.messages.append(Message.of_text("user", raw))
    elif isinstance(raw, list):
        call.messages.extend(_decode_item(item, f"input[{i}]") for i, item in enumerate(raw))
    else:
        raise BadRequest("'input' must be a string or an array of input items.", param="input")
    if not call.messages:
        raise BadRequest("'input' must not be empty.", param="input")
    return call


def decode_items(items: list[Any], param: str = "input") -> list[Message]:
    """Responses input (or output) items → canonical messages: how a stored conversation is replayed."""
    return [_decode_item(item, f"{param}[{i}]") for i, item in enumerate(items)]


def encode_input(messages: list[Message]) -> list[dict[str, Any]]:
    """Canonical messages → Responses input items (``instructions`` left out, as OpenAI keeps them per response)."""
    items: list[dict[str, Any]] = []
    for m in messages:
        if m.instructions:
            continue
        if m.as_string and m.role != "tool" and m.item is None and not m.extra and not m.tool_calls:
            items.append({"role": m.role, "content": m.text})  # the common shape, fast
        else:
            items.extend(_encode_items(m))
    return items


def _decode_item(raw: Any, param: str) -> Message:
    role = raw.get("role") if type(raw) is dict else None
    if type(role) is str and len(raw) == 2 and type(raw.get("content")) is str and role in _MESSAGE_ROLES:
        return Message(raw["role"], [Part(TEXT, raw["content"])], as_string=True)  # the common shape, fast
    expect(raw, dict, param, "an object")
    kind = raw.get("type", "message")
    if kind == "message":
        role = expect(raw.get("role"), str, f"{param}.role", "a string")
        if role not in _MESSAGE_ROLES:
            raise BadRequest(
                f"'{param}.role' must be one of user, assistant, system, developer.", param=f"{param}.role"
            )
        message = Message(role, extra={k: v for k, v in raw.items() if k not in ("role", "content", "type")})
        return _with_content(message, raw.get("content"), f"{param}.content")
    if kind == "function_call":
        return Message(
            "assistant",
            tool_calls=[
                ToolCall(
                    id=expect(raw.get("call_id"), str, f"{param}.call_id", "a string"),
                    name=expect(raw.get("name"), str, f"{param}.name", "a string"),
                    arguments=expect(raw.get("arguments", ""), str, f"{param}.arguments", "a string"),
                )
            ],
            extra={k: v for k, v in raw.items() if k in ("id", "status")},
        )
    if kind == "function_call_output":
        message = Message(
            "tool",
            tool_call_id=expect(raw.get("call_id"), str, f"{param}.call_id", "a string"),
            extra={k: v for k, v in raw.items() if k in ("id", "status")},
        )
        return _with_content(message, raw.get("output"), f"{param}.output")
    expect(kind, str, f"{param}.type", "a string")
    return Message("assistant" if kind == "reasoning" else "user", item=raw)


def _with_content(message: Message, content: Any, param: str) -> Message:
    """A message's ``content`` (or a tool output's ``output``): a plain string or an array of parts."""
    if isinstance(content, str):
        message.parts.append(Part(TEXT, content))
        message.as_string = True
    else:
        parts = expect(content, list, param, "a string or an array of parts")
        message.parts = [_decode_part(p, f"{param}[{j}]") for j, p in enumerate(parts)]
    return message


def _decode_part(raw: Any, param: str) -> Part:
    expect(raw, dict, param, "an object")
    kind = expect(raw.get("type"), str, f"{param}.type", "a string")
    if kind in _INPUT_TEXT:
        return Part(TEXT, expect(raw.get("text"), str, f"{param}.text", "a string"))
    source = {k: v for k, v in raw.items() if k != "type"}
    if kind == "input_image":
        return Part(IMAGE, source=source)
    if kind == "input_file":
        return Part(FILE, source=source)
    if kind == "input_audio":
        audio = source.get("input_audio", source)
        return Part(AUDIO, source=dict(expect(audio, dict, f"{param}.input_audio", "an object")))
    expect(kind, str, f"{param}.type", "a string")
    return Part(kind, source=raw)


def _decode_tools(raw: Any) -> list[Tool]:
    if raw is None:
        return []
    tools = []
    for i, tool in enumerate(expect(raw, list, "tools", "an array of tools")):
        expect(tool, dict, f"tools[{i}]", "an object")
        if tool.get("type") != "function":
            tools.append(Tool(name=str(tool.get("name") or tool.get("type")), type=str(tool.get("type")), extra=tool))
            continue
        tools.append(
            Tool(
                name=expect(tool.get("name"), str, f"tools[{i}].name", "a string"),
                description=optional(tool, "description", str, f"tools[{i}].description", "a string") or "",
                parameters=optional(tool, "parameters", dict, f"tools[{i}].parameters", "an object"),
                extra={k: v for k, v in tool.items() if k not in ("type", "name", "description", "parameters")},
            )
        )
    return tools


def encode_request(call: Call, model: str) -> dict[str, Any]:
    """Call → a Responses body for ``model`` (the upstream's own name)."""
    body: dict[str, Any] = {**call.params, "model": model}
    instructions = [m.text for m in call.messages if m.instructions]
    if instructions:
        body["instructions"] = "\n\n".join(instructions)
    body["input"] = [item for m in call.messages if not m.instructions for item in _encode_items(m)]
    if call.tools:
        body["tools"] = [_encode_tool(t) for t in call.tools]
    if call.tool_choice is not None:
        body["tool_choice"] = _encode_tool_choice(call.tool_choice)
    if call.stream:
        body["stream"] = True
    return body


def _encode_items(message: Message) -> Iterator[dict[str, Any]]:
    if message.item is not None:
        yield message.item
        return
    if message.role == "tool":
        output: Any = (
            message.text
            if message.as_string or all(p.kind == TEXT for p in message.parts)
            else [_encode_part(p, "user") for p in message.parts]
        )
        yield {**message.extra, "type": "function_call_output", "call_id": message.tool_call_id or "", "output": output}
        return
    if message.parts or not message.tool_calls:
        item: dict[str, Any] = {"role": message.role, **_strip_item_keys(message)}
        if message.as_string:
            item["content"] = message.text
        else:
            item["content"] = [_encode_part(p, message.role) for p in message.parts if p.kind != REASONING]
        if message.role == "assistant" and "id" in message.extra:
            item["type"] = "message"
        yield item
    for call in message.tool_calls:
        yield {"type": "function_call", "call_id": call.id, "name": call.name, "arguments": call.arguments}


def _strip_item_keys(message: Message) -> dict[str, Any]:
    # Chat-only message keys (name, refusal …) have no place in a Responses item.
    if message.role == "assistant" and "id" in message.extra:
        return message.extra
    return {k: v for k, v in message.extra.items() if k in ("type", "id", "status")}


def _encode_part(part: Part, role: str) -> dict[str, Any]:
    if part.kind == TEXT:
        return {"type": "output_text" if role == "assistant" else "input_text", "text": part.text or ""}
    if part.kind == IMAGE:
        source = part.source
        if isinstance(source.get("image_url"), str) or "file_id" in source:
            return {"type": "input_image", **source}
        return {"type": "input_image", "image_url": source.get("url"), "detail": source.get("detail", "auto")}
    if part.kind == FILE:
        return {"type": "input_file", **part.source}
    if part.kind == AUDIO:
        return {"type": "input_audio", "input_audio": part.source}
    return part.source


def _encode_tool(tool: Tool) -> dict[str, Any]:
    if tool.type != "function":
        return tool.extra
    out: dict[str, Any] = {"type": "function", "name": tool.name, **tool.extra}
    if tool.description:
        out["description"] = tool.description
    if tool.parameters is not None:
        out["parameters"] = tool.parameters
    return out


def _encode_tool_choice(choice: Any) -> Any:
    if isinstance(choice, dict) and isinstance(choice.get("function"), dict):
        return {"type": "function", "name": choice["function"].get("name")}
    return choice


def forced_tool(choice: Any) -> str | None:
    """The tool name a Responses ``tool_choice`` forces, if any."""
    if isinstance(choice, dict) and choice.get("type") == "function" and isinstance(choice.get("name"), str):
        return choice["name"]
    return None


# ---------------------------------------------------------------- replies


def decode_reply(body: dict[str, Any]) -> Reply:
    output = body.get("output")
    if not isinstance(output, list):
        raise ValueError("a response without output")
    message = Message("assistant")
    for item in output:
        if not isinstance(item, dict):
            continue
        if item.get("type") == "message":
            for part in item.get("content") or ():
                if isinstance(part, dict) and isinstance(part.get("text"), str):
                    message.parts.append(Part(TEXT, part["text"]))
        elif item.get("type") == "function_call":
            message.tool_calls.append(
                ToolCall(item.get("call_id", ""), item.get("name", ""), item.get("arguments", ""))
            )
    incomplete = body.get("incomplete_details") or {}
    finish = _FINISH_BY_REASON.get(incomplete.get("reason"), "tool_calls" if message.tool_calls else "stop")
    return Reply(
        model=str(body.get("model", "")),
        messages=[message],
        finish_reason=finish,
        usage=decode_usage(body.get("usage")),
        id=body.get("id"),
        created=body.get("created_at"),
    )


def decode_usage(raw: Any) -> Usage:
    if not isinstance(raw, dict):
        return Usage()
    return Usage(
        input_tokens=int(raw.get("input_tokens") or 0),
        output_tokens=int(raw.get("output_tokens") or 0),
        cached_tokens=(raw.get("input_tokens_details") or {}).get("cached_tokens"),
        reasoning_tokens=(raw.get("output_tokens_details") or {}).get("reasoning_tokens"),
    )


def encode_usage(usage: Usage) -> dict[str, Any]:
    return {
        "input_tokens": usage.input_tokens,
        "output_tokens": usage.output_tokens,
        "total_tokens": usage.total_tokens,
        "input_tokens_details": {"cached_tokens": usage.cached_tokens or 0},
        "output_tokens_details": {"reasoning_tokens": usage.reasoning_tokens or 0},
        "planning_usage_details": dict(NO_PLANNING),
        **usage.extra,
    }


def output_items(reply: Reply, reply_id: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    for n, message in enumerate(reply.messages):
        if any(p.kind == TEXT for p in message.parts):
            items.append(_message_item(f"msg_{reply_id}_{n}", message.text, "completed"))
        items.extend(_image_item(f"ig_{reply_id}_{n}_{k}", p) for k, p in enumerate(message.parts) if p.kind == IMAGE)
        items.extend(_function_item(f"fc_{reply_id}_{n}_{k}", c, "completed") for k, c in enumerate(message.tool_calls))
    return items


def _image_item(item_id: str, part: Part) -> dict[str, Any]:
    """A generated image, as the Responses API's image_generation_call item (base64 result)."""
    item = {
        "type": "image_generation_call",
        "id": item_id,
        "status": "completed",
        "result": part.source.get("b64_json"),
    }
    if part.source.get("revised_prompt"):
        item["revised_prompt"] = part.source["revised_prompt"]
    return item


def _message_item(item_id: str, text: str, status: str) -> dict[str, Any]:
    content = (
        [{"type": "output_text", "text": text, "annotations": [], "logprobs": []}] if status == "completed" else []
    )
    return {"type": "message", "id": item_id, "status": status, "role": "assistant", "content": content}


def _function_item(item_id: str, call: ToolCall, status: str) -> dict[str, Any]:
    return {
        "type": "function_call",
        "id": item_id,
        "call_id": call.id,
        "name": call.name,
        "arguments": call.arguments,
        "status": status,
    }


def response_object(reply_id: str, model: str, created: int, status: str, call: Call | None) -> dict[str, Any]:
    """The Response envelope, echoing the request's settings as OpenAI does."""
    params = call.params if call else {}
    instructions = [m.text for m in call.messages if m.instructions] if call else []
    return {
        "id": reply_id,
        "object": "response",
        "created_at": created,
        "status": status,
        "model": model,
        "output": [],
        "output_text": "",
        "error": None,
        "incomplete_details": None,
        "instructions": "\n\n".join(instructions) or None,
        "metadata": params.get("metadata") or {},
        "parallel_tool_calls": params.get("parallel_tool_calls", True),
        "temperature": params.get("temperature", 1.0),
        "top_p": params.get("top_p", 1.0),
        "max_output_tokens": params.get("max_output_tokens"),
        "tool_choice": (call.tool_choice if call and call.tool_choice is not None else "auto"),
        "tools": [_encode_tool(t) for t in call.tools] if call else [],
        "text": params.get("text") or {"format": {"type": "text"}},
        "usage": None,
    }


def encode_reply(reply: Reply, reply_id: str, call: Call | None = None) -> dict[str, Any]:
    created = reply.created or int(time.time())
    body = response_object(reply_id, reply.model, created, "completed", call)
    body["output"] = output_items(reply, reply_id)
    body["output_text"] = reply.text
    body["usage"] = encode_usage(reply.usage)
    body["completed_at"] = int(time.time())
    if reply.finish_reason in ("length", "content_filter"):
        body["status"] = "incomplete"
        reason = "max_output_tokens" if reply.finish_reason == "length" else "content_filter"
        body["incomplete_details"] = {"reason": reason}
    return body


def reply_usage(body: dict[str, Any]) -> Usage:
    return decode_usage(body.get("usage"))


def map_reply_text(
    body: dict[str, Any], fn: Callable[[str], str], arguments: Callable[[str], str] | None = None
) -> None:
    _map_output(body.get("output"), fn, arguments or fn)
    if isinstance(body.get("output_text"), str):
        body["output_text"] = fn(body["output_text"])


def _map_output(output: Any, fn: Callable[[str], str], arguments: Callable[[str], str]) -> None:
    for item in output or ():
        _map_item(item, fn, arguments)


def _map_item(item: Any, fn: Callable[[str], str], arguments: Callable[[str], str]) -> None:
    if not isinstance(item, dict):
        return
    if item.get("type") == "message":
        for part in item.get("content") or ():
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                part["text"] = fn(part["text"])
    elif item.get("type") == "function_call" and isinstance(item.get("arguments"), str):
        item["arguments"] = arguments(item["arguments"])


# ---------------------------------------------------------------- streams


def decode_event(data: dict[str, Any]) -> Iterator[StreamPiece]:
    """One upstream Responses stream event → canonical pieces."""
    kind = data.get("type")
    if kind == "response.output_text.delta":
        yield TextDelta(data.get("delta") or "")
    elif kind == "response.output_item.added" and (data.get("item") or {}).get("type") == "function_call":
        item = data["item"]
        yield ToolCallDelta(data.get("output_index", 0), item.get("call_id"), item.get("name"), "")
    elif kind == "response.function_call_arguments.delta":
        yield ToolCallDelta(data.get("output_index", 0), None, None, data.get("delta") or "")
    elif kind in ("response.completed", "response.incomplete"):
        response = data.get("response") or {}
        reply = decode_reply({"output": [], **response})
        has_calls = any((i or {}).get("type") == "function_call" for i in response.get("output") or ())
        finish = "tool_calls" if has_calls and reply.finish_reason == "stop" else reply.finish_reason
        yield StreamEnd(finish, reply.usage)


class StreamEncoder(BaseStreamEncoder):
    """Canonical pieces → Responses stream events, for a client that speaks Responses.

    Emits the full event sequence the official SDK's stream helpers expect:
    created → in_progress → output_item.added → content_part.added → output_text.delta …
    → output_text.done → content_part.done → output_item.done → completed.
    """

    def __init__(self, reply_id: str, model: str, call: Call | None) -> None:
        self.reply_id, self.model, self.call = reply_id, model, call
        self.created = int(time.time())
        self.seq = 0
        self.text: list[str] | None = None  # the open message's text so far
        self.message_index = -1
        self.calls: dict[int, tuple[int, ToolCall]] = {}  # upstream index → (output index, call)
        self.output: list[dict[str, Any]] = []
        self.open_call: int | None = None
        self.finish = "stop"
        self.usage: Usage | None = None

    def _event(self, kind: str, **fields: Any) -> dict[str, Any]:
        self.seq += 1
        return {"type": kind, "sequence_number": self.seq - 1, **fields}

    def _text_event(self, kind: str, **fields: Any) -> dict[str, Any]:
        """An event about the open message's text part (its one content part)."""
        return self._event(kind, item_id=self._message_id, output_index=self.message_index, content_index=0, **fields)

    def _envelope(self, status: str) -> dict[str, Any]:
        return response_object(self.reply_id, self.model, self.created, status, self.call)

    def start(self) -> list[dict[str, Any]]:
        return [
            self._event("response.created", response=self._envelope("in_progress")),
            self._event("response.in_progress", response=self._envelope("in_progress")),
        ]

    @property
    def _message_id(self) -> str:
        return f"msg_{self.reply_id}_{self.message_index}"

    def _close_message(self) -> list[dict[str, Any]]:
        if self.text is None:
            return []
        text, index = "".join(self.text), self.message_index
        self.text = None
        part = {"type": "output_text", "text": text, "annotations": [], "logprobs": []}
        item = _message_item(self._message_id, text, "completed")
        self.output.append(item)
        return [
            self._text_event("response.output_text.done", text=text, logprobs=[]),
            self._text_event("response.content_part.done", part=part),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def _close_call(self) -> list[dict[str, Any]]:
        if self.open_call is None:
            return []
        index, call = self.calls[self.open_call]
        self.open_call = None
        item = _function_item(f"fc_{self.reply_id}_{index}", call, "completed")
        self.output.append(item)
        return [
            self._event(
                "response.function_call_arguments.done",
                item_id=item["id"],
                output_index=index,
                arguments=call.arguments,
                name=call.name,
            ),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def encode(self, piece: StreamPiece) -> list[dict[str, Any]]:
        if isinstance(piece, TextDelta):
            out = self._close_call()
            if self.text is None:
                self.message_index = len(self.output)
                self.text = []
                item = _message_item(self._message_id, "", "in_progress")
                part = {"type": "output_text", "text": "", "annotations": [], "logprobs": []}
                out.append(self._event("response.output_item.added", output_index=self.message_index, item=item))
                out.append(self._text_event("response.content_part.added", part=part))
            self.text.append(piece.text)
            out.append(self._text_event("response.output_text.delta", delta=piece.text, logprobs=[]))
            return out
        if isinstance(piece, ToolCallDelta):
            out = []
            if piece.index not in self.calls:
                out += self._close_message() + self._close_call()
                index = len(self.output)
                call = ToolCall(piece.id or f"call_{index}", piece.name or "", "")
                self.calls[piece.index] = (index, call)
                self.open_call = piece.index
                item = _function_item(f"fc_{self.reply_id}_{index}", call, "in_progress")
                out.append(self._event("response.output_item.added", output_index=index, item=item))
            index, call = self.calls[piece.index]
            if piece.arguments:
                call.arguments += piece.arguments
                out.append(
                    self._event(
                        "response.function_call_arguments.delta",
                        item_id=f"fc_{self.reply_id}_{index}",
                        output_index=index,
                        delta=piece.arguments,
                    )
                )
            return out
        self.finish = piece.finish_reason or self.finish
        self.usage = piece.usage or self.usage
        return []

    def image(self, part: Part) -> list[dict[str, Any]]:
        out = self._close_message() + self._close_call()
        index = len(self.output)
        item = _image_item(f"ig_{self.reply_id}_{index}", part)
        self.output.append(item)
        added = {**item, "status": "in_progress", "result": None}
        return [
            *out,
            self._event("response.output_item.added", output_index=index, item=added),
            self._event("response.image_generation_call.completed", output_index=index, item_id=item["id"]),
            self._event("response.output_item.done", output_index=index, item=item),
        ]

    def close(self) -> list[dict[str, Any]]:
        out = self._close_message() + self._close_call()
        finish = self.finish
        body = self._envelope("completed")
        body["output"] = self.output
        body["output_text"] = "".join(
            p["text"] for item in self.output if item["type"] == "message" for p in item["content"]
        )
        body["usage"] = encode_usage(self.usage or Usage())
        body["completed_at"] = int(time.time())
        kind = "response.completed"
        if finish in ("length", "content_filter"):
            body["status"], kind = "incomplete", "response.incomplete"
            body["incomplete_details"] = {"reason": "max_output_tokens" if finish == "length" else "content_filter"}
        out.append(self._event(kind, response=body))
        return out


class _ResponsesStreamDecoder(StreamDecoder):
    def feed(self, event: dict[str, Any]) -> list[StreamPiece]:
        if event.get("type") in ("response.created", "response.completed", "response.incomplete"):
            response = event.get("response")
            if isinstance(response, dict) and isinstance(response.get("id"), str):
                self.reply_id = response["id"]
        return list(decode_event(event))


class ResponsesDialect(Dialect):
    name = NAME
    id_prefix = "gen_"
    named_events = True
    # Every Responses event names the response's id and model: a native stream is re-encoded
    # so that what the client sees (and a store keeps) is the gateway's id, never the upstream's.
    passthrough_streams = False

    def restamp(self, body: dict[str, Any], reply: Reply) -> None:
        super().restamp(body, reply)
        body["output_text"] = reply.text  # the SDKs compute it; the raw JSON must carry it too (seed)
        usage = body.get("usage")
        body["usage"] = {**encode_usage(reply.usage), **usage} if isinstance(usage, dict) else encode_usage(reply.usage)

    def decode_request(self, body: dict[str, Any]) -> Call:
        return decode_request(body)

    def encode_request(self, call: Call, model: str) -> dict[str, Any]:
        return encode_request(call, model)

    def decode_reply(self, body: dict[str, Any]) -> Reply:
        return decode_reply(body)

    def encode_reply(self, reply: Reply, reply_id: str, call: Call | None = None) -> dict[str, Any]:
        return encode_reply(reply, reply_id, call)

    def restamp_event(self, event: dict[str, Any], reply_id: str, model: str, usage_extra: dict[str, Any]) -> None:
        response = event.get("response")
        if not isinstance(response, dict):
            return
        response["id"], response["model"] = reply_id, model
        if event.get("type") in ("response.completed", "response.incomplete"):
            output = response.get("output")
            response["output_text"] = "".join(
                part.get("text") or ""
                for item in (output if isinstance(output, list) else ())
                if isinstance(item, dict) and item.get("type") == "message"
                for part in item.get("content") or ()
                if isinstance(part, dict) and part.get("type") == "output_text"
            )
            usage = response.get("usage")
            if isinstance(usage, dict):
                usage.setdefault("planning_usage_details", dict(NO_PLANNING))
                usage.update(usage_extra)

    def reply_usage(self, body: dict[str, Any]) -> Usage:
        return reply_usage(body)

    def map_reply_text(self, body, fn, arguments=None) -> None:
        map_reply_text(body, fn, arguments)

    def stream_encoder(self, reply_id: str, model: str, call: Call | None) -> StreamEncoder:
        return StreamEncoder(reply_id, model, call)

    def stream_decoder(self) -> StreamDecoder:
        return _ResponsesStreamDecoder()

    def stream_error(self, message: str) -> dict[str, Any]:
        return {"type": "error", "code": "upstream_error", "message": message, "param": None, "sequence_number": 0}


DIALECT = ResponsesDialect()
