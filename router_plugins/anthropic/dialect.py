"""The Anthropic Messages API as a Dialect: spoken to Claude upstream, and by Anthropic SDK clients on /v1/messages."""

from __future__ import annotations

from typing import Any

from router_core import Call, Dialect, GatewayError, Reply, StreamDecoder, StreamEncoder, Usage
from router_plugins.anthropic import ingress, messages


class MessagesDialect(Dialect):
    name = messages.NAME
    id_prefix = "msg_gen_"
    named_events = True
    key_header = "x-api-key"

    def decode_request(self, body: dict[str, Any]) -> Call:
        return ingress.decode_request(body)

    def encode_request(self, call: Call, model: str) -> dict[str, Any]:
        return messages.encode_request(call, model)

    def decode_reply(self, body: dict[str, Any]) -> Reply:
        return messages.decode_reply(body)

    def encode_reply(self, reply: Reply, reply_id: str, call: Call | None = None) -> dict[str, Any]:
        return ingress.encode_reply(reply, reply_id)

    def reply_usage(self, body: dict[str, Any]) -> Usage:
        return messages.decode_usage(body.get("usage"))

    def map_reply_text(self, body, fn, arguments=None) -> None:
        for block in body.get("content") or ():
            if isinstance(block, dict) and block.get("type") == "text" and isinstance(block.get("text"), str):
                block["text"] = fn(block["text"])

    def stream_encoder(self, reply_id: str, model: str, call: Call | None) -> StreamEncoder:
        return ingress.StreamEncoder(reply_id, model, call)

    def stream_decoder(self) -> StreamDecoder:
        return messages.StreamDecoder()

    def stream_error(self, message: str) -> dict[str, Any]:
        return ingress.stream_error(message)

    def error_body(self, error: GatewayError) -> dict[str, Any]:
        return ingress.error_body(error)


DIALECT = MessagesDialect()
