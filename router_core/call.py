"""The canonical conversation: every ingress decodes into a Call, every provider renders one."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from typing import Any

import attrs

# Part kinds. Media parts keep the dialect-neutral fields they need in ``source``.
TEXT = "text"
IMAGE = "image"
AUDIO = "audio"
FILE = "file"
# The model's earlier reasoning (an Anthropic thinking block …): opaque context that only an
# upstream of the dialect it came from can read; ``source`` is that dialect's own dict.
REASONING = "reasoning"
MEDIA_KINDS = frozenset({IMAGE, AUDIO, FILE})


@attrs.define(slots=True)
class Part:
    """One piece of a message's content.

    ``kind`` is ``text``, ``image``, ``audio``, ``file`` or any other string for a
    part the gateway does not understand (then ``source`` is the client's own dict,
    passed through untouched).  Media ``source`` keys: image → ``url``/``file_id``/
    ``detail``; audio → ``data``/``format``; file → ``file_data``/``file_id``/``filename``.
    """

    kind: str
    text: str | None = None
    source: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(slots=True)
class ToolCall:
    id: str
    name: str
    arguments: str  # JSON text, exactly as the model wrote it


@attrs.define(slots=True)
class Message:
    """One turn.  ``role`` is system, developer, user, assistant or tool.

    ``item`` holds an input item the gateway does not model (a Responses reasoning
    item, an item reference …): it is passed through to dialects that know it.
    """

    role: str
    parts: list[Part] = attrs.field(factory=list)
    tool_calls: list[ToolCall] = attrs.field(factory=list)
    tool_call_id: str | None = None
    name: str | None = None
    as_string: bool = False  # content arrived as a plain string
    instructions: bool = False  # came from the Responses ``instructions`` field
    extra: dict[str, Any] = attrs.field(factory=dict)  # unknown keys, carried
    item: dict[str, Any] | None = None

    @property
    def text(self) -> str:
        """The message's text parts, joined by newlines."""
        return "\n".join(p.text for p in self.parts if p.kind == TEXT and p.text)

    @classmethod
    def of_text(cls, role: str, text: str, **kw: Any) -> Message:
        return cls(role, [Part(TEXT, text)], as_string=True, **kw)


@attrs.define(slots=True)
class Tool:
    """A tool offered to the model.  Non-function tools (web_search …) keep their dict in ``extra``."""

    name: str
    description: str = ""
    parameters: dict[str, Any] | None = None
    type: str = "function"
    extra: dict[str, Any] = attrs.field(factory=dict)


@attrs.define(slots=True)
class Call:
    """A request as the gateway sees it, whatever dialect it arrived in.

    ``params`` carries every body field the gateway does not model (temperature,
    max tokens, response_format, reasoning …) so it reaches the upstream untouched.
    """

    dialect: str  # "responses" | "chat": what the client speaks and gets back
    model: str
    messages: list[Message] = attrs.field(factory=list)
    tools: list[Tool] = attrs.field(factory=list)
    tool_choice: Any = None
    stream: bool = False
    params: dict[str, Any] = attrs.field(factory=dict)
    # Fields only an upstream speaking the client's own dialect understands (a Messages
    # client's ``thinking``, ``top_k`` …): sent there, never rendered into another dialect.
    native: dict[str, Any] = attrs.field(factory=dict)

    def last_user_message(self) -> Message | None:
        for message in reversed(self.messages):
            if message.role == "user":
                return message
        return None

    @property
    def prompt(self) -> str:
        """The latest user message's text: what scorers match against."""
        last = self.last_user_message()
        return last.text if last else ""

    def texts(self) -> Iterator[str]:
        """Yield the conversation's text: message parts and tool-call arguments."""
        for message in self.messages:
            for part in message.parts:
                if part.text:
                    yield part.text
            for call in message.tool_calls:
                yield call.arguments

    def map_text(self, fn: Callable[[str], str], join: Callable[[list[str]], list[str]] | None = None) -> None:
        """Replace every string that goes upstream with ``fn(string)``: coverage by position.

        Every string at every depth is passed through ``fn``, dict keys included: message
        parts of every role, message and tool names, tool-call arguments, file names and
        image URLs, tool definitions and their JSON schemas, ``tool_choice``, unmodelled
        items and parts, unknown message keys and the pass-through ``params``. The only
        strings skipped are those whose *position* makes them opaque *and* whose content
        has that shape (see :data:`OPAQUE_ITEM_KEYS` and friends): an upstream-issued id
        that looks like one, a base64 media payload, a ``type``/``role``/``status`` enum.
        An ``id`` key inside a tool schema or a pass-through param is text.

        ``join``, when given, receives the text parts of one message together (so a value
        split across two parts can be found) and returns their replacements.
        Redaction relies on this being exhaustive.
        """
        for message in self.messages:
            self._map_parts(message, fn, join)
            for call in message.tool_calls:
                if not is_upstream_id(call.id):
                    call.id = fn(call.id)
                call.name = fn(call.name)
                call.arguments = fn(call.arguments)
            if message.tool_call_id and not is_upstream_id(message.tool_call_id):
                message.tool_call_id = fn(message.tool_call_id)
            if message.name:
                message.name = fn(message.name)
            if message.item is not None:
                map_strings(message.item, fn, OPAQUE_ITEM_KEYS)
            map_strings(message.extra, fn)
        for tool in self.tools:
            tool.name = fn(tool.name)
            if tool.description:
                tool.description = fn(tool.description)
            if tool.parameters is not None:
                map_strings(tool.parameters, fn)
            map_strings(tool.extra, fn, OPAQUE_TOOL_KEYS)
        if isinstance(self.tool_choice, str):
            if not is_enum(self.tool_choice):
                self.tool_choice = fn(self.tool_choice)
        elif self.tool_choice is not None:
            map_strings(self.tool_choice, fn, OPAQUE_ITEM_KEYS)
        map_strings(self.params, fn, OPAQUE_PARAMS)
        map_strings(self.native, fn, OPAQUE_PARAMS)

    @staticmethod
    def _map_parts(message: Message, fn: Callable[[str], str], join: Callable[[list[str]], list[str]] | None) -> None:
        texts = [p for p in message.parts if p.kind == TEXT and p.text]
        if join is not None and len(texts) > 1:
            for part, text in zip(texts, join([p.text or "" for p in texts]), strict=True):
                part.text = text
        else:
            for part in texts:
                part.text = fn(part.text or "")
        for part in message.parts:
            if part.kind == TEXT:
                if part.text is None:
                    map_strings(part.source, fn, OPAQUE_ITEM_KEYS)
            elif part.kind in MEDIA_KINDS:
                map_strings(part.source, fn, OPAQUE_MEDIA_KEYS)
            else:  # a part the gateway does not model: the client's own dict
                map_strings(part.source, fn, OPAQUE_ITEM_KEYS)


# ---------------------------------------------------------------- opaque positions
# A string is left unscanned only where its position says "opaque" *and* its content
# has that shape: rewriting an id or a base64 payload breaks the request and a detector
# cannot read base64 anyway. Anything else in such a position (an e-mail as an "id")
# is scanned like all other text.

# Upstream-issued ids: a known prefix, then a random-looking body. A body may not hold
# 7+ digits in a row, so a phone number, SSN or card number can never pass as an id.
_UPSTREAM_ID = re.compile(
    r"(?:call|fc|msg|rs|resp|toolu|srvtoolu|file|img|ig|ws|ctc|mcp|mcpr|mcpl|cu|lsh|ci|cntr|fs|item|chatcmpl"
    r"|pmpt|conv|vs|asst|thread|run|step|batch|ft|req|tc|ctool|ctco|ct)[_\-](?=[A-Za-z0-9_\-]*[0-9])"
    r"(?=[A-Za-z0-9_\-]*[A-Za-z])(?![A-Za-z0-9_\-]*[0-9]{7})[A-Za-z0-9_\-]{6,200}"
)
_BASE64 = re.compile(r"[A-Za-z0-9+/=_\-\s]{16,}")
_DATA_URL = re.compile(r"data:[\w.+\-]{1,64}/[\w.+\-]{1,64}(?:;[\w.+\-]{1,32}=[\w.+\-]{1,64})*;base64,")
_ENUM = re.compile(r"[a-z][a-z0-9_.\-]{0,63}")


def is_upstream_id(value: str) -> bool:
    return _UPSTREAM_ID.fullmatch(value) is not None


def is_base64(value: str) -> bool:
    return _BASE64.fullmatch(value) is not None


def is_data_url(value: str) -> bool:
    """``data:image/png;base64,<base64>``: only a base64 payload is opaque (``data:text/plain,…`` is text)."""
    head = _DATA_URL.match(value)
    return head is not None and (head.end() == len(value) or is_base64(value[head.end() :]))


def is_enum(value: str) -> bool:
    return _ENUM.fullmatch(value) is not None


def _media_payload(value: str) -> bool:
    return is_data_url(value) or is_base64(value)


# key → predicate: the value at that key (top level of the dict walked) is skipped when it holds.
Opaque = dict[str, Any]  # key → predicate, or a nested Opaque for a dict under that key

OPAQUE_ITEM_KEYS: Opaque = {
    "type": is_enum,
    "role": is_enum,
    "status": is_enum,
    "id": is_upstream_id,
    "call_id": is_upstream_id,
    "file_id": is_upstream_id,
    "encrypted_content": is_base64,
}
OPAQUE_MEDIA_KEYS: Opaque = {
    "url": is_data_url,  # an image URL on the web is text; an inline image's bytes are not
    "image_url": is_data_url,
    "file_url": is_data_url,
    "data": _media_payload,
    "file_data": _media_payload,
    "file_id": is_upstream_id,
    "format": is_enum,
    "detail": is_enum,
    "type": is_enum,
}
OPAQUE_TOOL_KEYS: Opaque = {"type": is_enum, "vector_store_ids": is_upstream_id}
OPAQUE_PARAMS: Opaque = {
    "previous_response_id": is_upstream_id,
    "conversation": {"id": is_upstream_id},
    "prompt": {"id": is_upstream_id},
    "include": is_enum,
    "service_tier": is_enum,
    "truncation": is_enum,
}


def map_strings(value: Any, fn: Callable[[str], str], opaque: Opaque | None = None) -> None:
    """Apply ``fn`` in place to every string inside dicts and lists, dict keys included.

    ``opaque`` names the positions (keys of ``value`` itself, or of a list of dicts at
    the top) whose strings are skipped when their predicate holds; deeper levels have
    no exemptions unless ``opaque`` nests a table for that key.
    """
    if isinstance(value, dict):
        _map_dict(value, fn, opaque or {})
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                value[i] = fn(item)
            elif isinstance(item, dict | list):
                map_strings(item, fn, opaque)


def _skip(rule: Any, item: Any) -> bool:
    return callable(rule) and isinstance(item, str) and rule(item)


def _map_dict(value: dict[str, Any], fn: Callable[[str], str], opaque: Opaque) -> None:
    renamed: dict[str, str] = {}
    for key, item in value.items():
        rule = opaque.get(key)
        if isinstance(item, str):
            if item and not _skip(rule, item):
                value[key] = fn(item)
        elif isinstance(item, list) and callable(rule):
            for i, element in enumerate(item):
                if isinstance(element, str):
                    if not rule(element):
                        item[i] = fn(element)
                elif isinstance(element, dict | list):
                    map_strings(element, fn)
        elif isinstance(item, dict | list):
            map_strings(item, fn, rule if isinstance(rule, dict) else None)
        if isinstance(key, str) and key and (new := fn(key)) != key:
            renamed[key] = new
    if renamed:
        # Keys are text too ("properties": {"jane@x.org": …}): rebuild in order. Two keys
        # that mask alike stay apart, never silently merged.
        items = list(value.items())
        value.clear()
        for key, item in items:
            new = renamed.get(key, key)
            while new in value:
                new = f"{new}_"
            value[new] = item


@attrs.define(slots=True)
class Usage:
    input_tokens: int = 0
    output_tokens: int = 0
    cached_tokens: int | None = None
    reasoning_tokens: int | None = None
    extra: dict[str, Any] = attrs.field(factory=dict)  # extra usage fields for the client

    @property
    def total_tokens(self) -> int:
        return self.input_tokens + self.output_tokens


@attrs.define(slots=True)
class Reply:
    """A complete answer in canonical form: what the translators pivot through."""

    model: str
    messages: list[Message] = attrs.field(factory=list)  # assistant output
    finish_reason: str = "stop"  # stop | length | tool_calls | content_filter
    usage: Usage = attrs.field(factory=Usage)
    id: str | None = None
    created: int | None = None

    @property
    def text(self) -> str:
        return "".join(m.text for m in self.messages)

    @property
    def tool_calls(self) -> list[ToolCall]:
        return [c for m in self.messages for c in m.tool_calls]


# Stream events in canonical form (cross-dialect translation only).
@attrs.define(slots=True)
class TextDelta:
    text: str


@attrs.define(slots=True)
class ToolCallDelta:
    index: int
    id: str | None = None
    name: str | None = None
    arguments: str = ""


@attrs.define(slots=True)
class StreamEnd:
    finish_reason: str = "stop"
    usage: Usage | None = None


StreamPiece = TextDelta | ToolCallDelta | StreamEnd
