"""llm-router's core: what a plugin may import."""

from . import hookspecs

# The canonical conversation model: what a request is, then what an answer is.
from .call import AUDIO, FILE, IMAGE, MEDIA_KINDS, REASONING, TEXT, Call, Message, Part, Tool, ToolCall

# isort: split
from .call import Reply, StreamEnd, StreamPiece, TextDelta, ToolCallDelta, Usage

# isort: split
from .config import Config
from .context import GatewayField, Outcome, ReplyBody, RequestContext, Route
from .dialects import Dialect, StreamDecoder, StreamEncoder
from .errors import BadRequest, GatewayError, ModelNotFound, PolicyViolation, UpstreamError
from .images import GeneratedImage
from .plugins import Manifest, hookimpl
from .providers import Provider, UpstreamFailure
from .streaming import sse_data
from .upstream import try_routes

__all__ = [
    "AUDIO",
    "FILE",
    "IMAGE",
    "MEDIA_KINDS",
    "REASONING",
    "TEXT",
    "BadRequest",
    "Call",
    "Config",
    "Dialect",
    "StreamDecoder",
    "StreamEncoder",
    "GatewayError",
    "GatewayField",
    "GeneratedImage",
    "Message",
    "Manifest",
    "ModelNotFound",
    "Outcome",
    "Part",
    "PolicyViolation",
    "Provider",
    "Reply",
    "ReplyBody",
    "RequestContext",
    "Route",
    "StreamEnd",
    "StreamPiece",
    "TextDelta",
    "Tool",
    "ToolCall",
    "ToolCallDelta",
    "UpstreamError",
    "UpstreamFailure",
    "Usage",
    "hookimpl",
    "sse_data",
    "try_routes",
    "hookspecs",
]
