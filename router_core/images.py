"""Image generation, a provider capability: OpenAI's images API, an offline picture, and a guarded fetch of image URLs."""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import logging
import socket
import struct
import zlib
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import aiohttp
import attrs
from aiohttp.abc import AbstractResolver
from aiohttp.resolver import DefaultResolver

from .call import Usage

if TYPE_CHECKING:
    from .providers import Provider

log = logging.getLogger("llm_router.images")

# Image generation is slow (tens of seconds) but should not hang a client forever.
GENERATION_TIMEOUT = 180.0
# Fetching an image a provider links to: its own short deadline, never the generation's.
FETCH_TIMEOUT = aiohttp.ClientTimeout(total=30, sock_connect=5)
# A generated image is a few MB at most; a bigger download is not an image we asked for.
MAX_IMAGE_BYTES = 20 * 1024 * 1024


@attrs.frozen
class GeneratedImage:
    """What an images API gave: the picture's bytes (base64), or only a URL the client may fetch."""

    b64_json: str | None = None
    url: str | None = None
    revised_prompt: str | None = None
    usage: Usage = attrs.field(factory=Usage)


class ImageFailure(Exception):
    """The image could not be produced or read; the message names the provider, never a key."""


async def openai_images(provider: Provider, model: str, prompt: str, options: dict[str, Any]) -> GeneratedImage:
    """``POST {base_url}/images/generations``: one image, base64 preferred, a URL fetched only when safe."""
    body: dict[str, Any] = {"model": model, "prompt": prompt, "n": 1, **options}
    if "response_format" not in body and model.startswith("dall-e"):
        body["response_format"] = "b64_json"  # DALL·E answers with a URL otherwise; gpt-image-1 always sends bytes
    answer = await provider.post_json(f"{provider.base_url}/images/generations", body, GENERATION_TIMEOUT)
    data = answer.get("data")
    image = data[0] if isinstance(data, list) and data and isinstance(data[0], dict) else None
    b64, url = (image or {}).get("b64_json"), (image or {}).get("url")
    if not isinstance(b64, str) and not isinstance(url, str):
        raise ImageFailure(f"provider '{provider.name}' answered without an image")
    if not isinstance(b64, str):
        b64 = None
        try:
            b64 = base64.b64encode(await fetch_image(url, provider.base_url)).decode()
        except ImageFailure as exc:  # the client gets the link instead of the bytes
            log.info("image from provider %s not fetched: %s", provider.name, exc)
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    revised = (image or {}).get("revised_prompt")
    return GeneratedImage(
        b64_json=b64,
        url=url if isinstance(url, str) else None,
        revised_prompt=revised if isinstance(revised, str) else None,
        usage=Usage(_count(usage.get("input_tokens")), _count(usage.get("output_tokens"))),
    )


def _count(value: Any) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 0 else 0


# ---------------------------------------------------------------- fetching a provider's image URL


def fetchable(url: str, provider_base_url: str) -> str | None:
    """Why ``url`` may not be fetched, or ``None``: https only, and only from the provider's own host."""
    parts = urlsplit(url)
    own = urlsplit(provider_base_url).hostname
    if parts.scheme != "https":
        return "not https"
    if not parts.hostname or parts.hostname != own:
        return "not the provider's own host"
    if parts.username or parts.password:
        return "credentials in the URL"
    return None


def public_address(address: str) -> bool:
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    return not (
        ip.is_loopback or ip.is_private or ip.is_link_local or ip.is_multicast or ip.is_reserved or ip.is_unspecified
    )


class PublicOnlyResolver(AbstractResolver):
    """Resolves like aiohttp, then refuses a name that points at this machine or a private network.

    Checked at connect time, on the addresses actually used, so a name that resolves
    differently later (DNS rebinding) cannot slip a loopback address in.
    """

    def __init__(self) -> None:
        self._resolver = DefaultResolver()

    async def resolve(self, host: str, port: int = 0, family: int = socket.AF_INET) -> list[dict[str, Any]]:
        hosts = await self._resolver.resolve(host, port, family)
        if not hosts or not all(public_address(h["host"]) for h in hosts):
            raise OSError(f"{host} does not resolve to public addresses only")
        return hosts

    async def close(self) -> None:
        await self._resolver.close()


async def fetch_image(url: str, provider_base_url: str, resolver: AbstractResolver | None = None) -> bytes:
    """The image behind a provider's URL: https from its own host, public addresses, no redirects, bounded."""
    why = fetchable(url, provider_base_url)
    if why:
        raise ImageFailure(f"image URL refused ({why})")
    connector = aiohttp.TCPConnector(resolver=resolver or PublicOnlyResolver(), limit=1, force_close=True)
    try:
        async with (
            aiohttp.ClientSession(connector=connector, timeout=FETCH_TIMEOUT) as session,
            session.get(url, allow_redirects=False, auto_decompress=False) as resp,
        ):
            if resp.status != 200:
                raise ImageFailure(f"image URL answered {resp.status}")
            return await read_bounded(resp, MAX_IMAGE_BYTES)
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        raise ImageFailure(f"image URL could not be fetched ({type(exc).__name__})") from None


async def read_bounded(resp: aiohttp.ClientResponse, limit: int) -> bytes:
    """The whole body, or ImageFailure as soon as it passes ``limit`` bytes (declared or read)."""
    if resp.content_length is not None and resp.content_length > limit:
        raise ImageFailure(f"image larger than {limit} bytes")
    data = bytearray()
    async for chunk in resp.content.iter_chunked(64 * 1024):
        data += chunk
        if len(data) > limit:
            raise ImageFailure(f"image larger than {limit} bytes")
    return bytes(data)


# ---------------------------------------------------------------- an offline picture (the echo provider)


def prompt_picture(prompt: str, size: int = 64) -> bytes:
    """A small PNG drawn from the prompt: two colours from its hash, a diagonal gradient between them.

    Deterministic and offline, so the image feature can be tried without a key.
    """
    digest = hashlib.sha256(prompt.encode()).digest()
    a, b = digest[:3], digest[3:6]
    rows = []
    for y in range(size):
        row = bytearray(b"\x00")  # filter type 0 for each scanline
        for x in range(size):
            t = (x + y) / (2 * size - 2)
            row += bytes(round(a[i] + (b[i] - a[i]) * t) for i in range(3))
        rows.append(bytes(row))
    return png(size, size, b"".join(rows))


def png(width: int, height: int, scanlines: bytes) -> bytes:
    """An 8-bit RGB PNG from filtered scanlines."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", zlib.compress(scanlines)) + chunk(b"IEND", b"")
    )
