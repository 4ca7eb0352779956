"""The canonical conversation: every ingress decodes into a Call, every provider renders one."""

from __future__ import annotations

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

    def map_text(self, fn: Callable[[str], str]) -> None:
        """Replace every piece of text that goes upstream with ``fn(text)``.

        Covers message parts of every role (instructions included), tool-call
        arguments, and every string inside what the gateway does not model but still
        forwards: unmodelled items and parts, unknown message keys, tool definitions and
        the pass-through ``params`` (``metadata``, ``user`` …). Never media bytes or ids:
        see :func:`map_strings`. Redaction relies on this being exhaustive.
        """
        for message in self.messages:
            for part in message.parts:
                if part.text:
                    part.text = fn(part.text)
                elif part.kind not in MEDIA_KINDS:
                    map_strings(part.source, fn)
            for call in message.tool_calls:
                call.arguments = fn(call.arguments)
            if message.item is not None:
                map_strings(message.item, fn)
            map_strings(message.extra, fn)
        for tool in self.tools:
            tool.description = fn(tool.description) if tool.description else tool.description
            map_strings(tool.parameters, fn)
            map_strings(tool.extra, fn)
        map_strings(self.params, fn)
        map_strings(self.native, fn)


# Keys whose strings are identifiers, enums or media bytes: rewriting them breaks the
# request and can never un-leak anything (base64 is not text a detector should read).
_OPAQUE_KEYS = frozenset(
    {
        "type",
        "id",
        "call_id",
        "role",
        "status",
        "model",
        "image_url",
        "url",
        "data",
        "file_data",
        "file_id",
        "file_url",
        "format",
        "detail",
        "encrypted_content",
        "result",
        "b64_json",
        "mime_type",
        "media_type",
    }
)


def map_strings(value: Any, fn: Callable[[str], str]) -> None:
    """Apply ``fn`` in place to every string inside dicts and lists, skipping opaque keys."""
    if isinstance(value, dict):
        for key, item in value.items():
            if key in _OPAQUE_KEYS:
                continue
            if isinstance(item, str):
                if item and not item.startswith("data:"):
                    value[key] = fn(item)
            elif isinstance(item, dict | list):
                map_strings(item, fn)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            if isinstance(item, str):
                if item and not item.startswith("data:"):
                    value[i] = fn(item)
            elif isinstance(item, dict | list):
                map_strings(item, fn)


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
