"""Token estimates for media parts: OpenAI's image tile formula, audio by duration, files by size."""

from __future__ import annotations

import base64
import math
import struct

from router_core import AUDIO, IMAGE, Part

# OpenAI: 85 base tokens + 170 per 512 px tile after fitting in 2048 and scaling the short side to 768.
IMAGE_BASE, IMAGE_TILE = 85, 170
UNKNOWN_IMAGE = IMAGE_BASE + 4 * IMAGE_TILE  # a 1024×1024 picture, what "auto" detail usually costs
# gpt-4o audio input: about 10 tokens a second; undecodable audio is taken as 128 kbit/s.
AUDIO_TOKENS_PER_SECOND, AUDIO_BYTES_PER_SECOND = 10, 16_000
# Only the header is needed to read dimensions or duration.
HEAD_CHARS = 4096


def media_tokens(part: Part, model: str) -> int:
    """An estimate of what a media part costs upstream (models do not tokenise bytes as text)."""
    if part.kind == IMAGE:
        return image_tokens(part)
    if part.kind == AUDIO:
        data = part.source.get("data") or ""
        head = _head_bytes(data)
        seconds = _wav_seconds(head, len(data) * 3 // 4)
        return math.ceil(seconds * AUDIO_TOKENS_PER_SECOND)
    # Files (PDF …): providers extract text and page images; size/4 is the usual rough figure.
    data = part.source.get("file_data") or ""
    return max(len(data.split(",", 1)[-1]) * 3 // 16, 1) if data else UNKNOWN_IMAGE


def image_tokens(part: Part) -> int:
    if part.source.get("detail") == "low":
        return IMAGE_BASE
    url = part.source.get("url") or ""
    size = _image_size(_head_bytes(url)) if url.startswith("data:") else None
    if size is None:
        return UNKNOWN_IMAGE
    width, height = size
    scale = min(1.0, 2048 / max(width, height))
    width, height = width * scale, height * scale
    scale = min(1.0, 768 / min(width, height))
    tiles = math.ceil(width * scale / 512) * math.ceil(height * scale / 512)
    return IMAGE_BASE + IMAGE_TILE * tiles


def _head_bytes(data: str) -> bytes:
    payload = data.split(",", 1)[-1][:HEAD_CHARS]
    payload = payload[: len(payload) // 4 * 4]
    try:
        return base64.b64decode(payload)
    except ValueError:
        return b""


def _image_size(head: bytes) -> tuple[int, int] | None:
    """Width and height from a PNG, GIF or JPEG header."""
    if head.startswith(b"\x89PNG") and len(head) >= 24:
        return struct.unpack(">II", head[16:24])
    if head[:6] in (b"GIF87a", b"GIF89a"):
        return struct.unpack("<HH", head[6:10])
    if head.startswith(b"\xff\xd8"):
        i = 2
        while i + 9 < len(head):
            if head[i] != 0xFF:
                return None
            marker, length = head[i + 1], struct.unpack(">H", head[i + 2 : i + 4])[0]
            if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):
                height, width = struct.unpack(">HH", head[i + 5 : i + 9])
                return width, height
            i += 2 + length
    return None


def _wav_seconds(head: bytes, size: int) -> float:
    if head.startswith(b"RIFF") and head[8:12] == b"WAVE" and len(head) >= 32:
        byte_rate = struct.unpack("<I", head[28:32])[0]
        if byte_rate:
            return size / byte_rate
    return size / AUDIO_BYTES_PER_SECOND
