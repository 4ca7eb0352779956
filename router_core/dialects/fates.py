"""What becomes of a request field the upstream's dialect cannot say: mapped, dropped or refused.

The rules, for every translation (docs/dialects.md has the table):
- a field that only asks for extra output the gateway can leave out is dropped;
- a field that would change the answer and has no equivalent is refused with a 400 that
  names the field and the provider, never silently dropped (a lenient upstream would);
- a field the gateway itself answers for (``store``, ``metadata``) is kept by the gateway.
"""

from __future__ import annotations

from typing import Any

from ..errors import BadRequest
from . import optional


class Untranslatable(BadRequest):
    """A request field the chosen upstream cannot express; the core adds the provider's name."""

    code = "unsupported_parameter"

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"'{field}' {why}", param=field)
        self.field, self.why = field, why

    def for_provider(self, name: str, kind: str) -> BadRequest:
        message = f"'{self.field}' cannot be sent to provider '{name}' (kind {kind}): it {self.why}"
        return BadRequest(message, param=self.field, code=self.code)


# Responses fields with no place in another dialect that only ask for extra output, or that the
# gateway answers for itself: left out of the upstream body.
RESPONSES_DROPPED = {
    "include": "asks for extra output items (encrypted reasoning, logprobs, search sources)",
    "store": "is answered by the gateway's response store, not the upstream",
    "metadata": "is kept by the gateway (echoed in the answer and the store)",
    "stream_options": "only tunes stream obfuscation; the gateway sets its own stream options",
    "top_logprobs": "asks for log probabilities, extra output the translated answer leaves out",
    "background": "false is the default (true is refused)",
    "truncation": "'disabled' is the default ('auto' is refused)",
}
# Responses fields that would change the answer and that another dialect cannot express.
RESPONSES_REFUSED = {
    "previous_response_id": "needs the upstream to keep the conversation; enable the 'responses-store' plugin",
    "conversation": "needs a conversation kept by the upstream",
    "prompt": "names a prompt template stored at OpenAI",
    "max_tool_calls": "limits built-in tool calls, which only OpenAI's Responses API makes",
}


def portable_responses_params(params: dict[str, Any]) -> dict[str, Any]:
    """The Responses-only fields of ``params`` settled: dropped ones removed, refused ones raised."""
    out = dict(params)
    for field, why in RESPONSES_REFUSED.items():
        if out.get(field) is not None:
            raise Untranslatable(field, why)
    if out.get("background"):
        raise Untranslatable("background", "asks for a background run the gateway does not poll")
    if out.get("truncation") not in (None, "disabled"):
        raise Untranslatable("truncation", "asks the upstream to cut the conversation to its context window")
    for field in RESPONSES_DROPPED:
        out.pop(field, None)
    for field in RESPONSES_REFUSED:
        out.pop(field, None)
    return out


def text_format(params: dict[str, Any]) -> dict[str, Any] | None:
    """The Responses ``text.format`` as a Chat ``response_format`` (None for plain text)."""
    text = optional(params, "text", dict, "text", "an object")
    if text is None:
        return None
    fmt = optional(text, "format", dict, "text.format", "an object")
    if fmt is None or fmt == {"type": "text"}:
        return None
    if fmt.get("type") == "json_object":
        return {"type": "json_object"}
    if fmt.get("type") == "json_schema":
        schema = {k: v for k, v in fmt.items() if k in ("name", "schema", "strict", "description")}
        if not isinstance(schema.get("schema"), dict) or not isinstance(schema.get("name"), str):
            raise BadRequest("'text.format' of type json_schema needs 'name' and 'schema'.", param="text.format")
        return {"type": "json_schema", "json_schema": schema}
    if fmt.get("type") == "text":
        return None
    raise Untranslatable("text.format", f"asks for output format {fmt.get('type')!r}, which has no equivalent")


def reasoning_effort(params: dict[str, Any]) -> str | None:
    """The Responses ``reasoning.effort`` (summaries are extra output, dropped)."""
    reasoning = optional(params, "reasoning", dict, "reasoning", "an object")
    if reasoning is None:
        return None
    return optional(reasoning, "effort", str, "reasoning.effort", "a string")
