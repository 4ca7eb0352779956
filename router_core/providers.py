"""Upstream providers: how a Call is rendered for, sent to and read back from each kind."""

from __future__ import annotations

import asyncio
import base64
import contextlib
import importlib.metadata
import zlib
from collections.abc import AsyncIterator
from typing import Any, ClassVar

import orjson

from .breaker import Breaker, MemoryBreaker
from .call import Call, Message, Reply, StreamEnd, TextDelta, Usage
from .config import Config, ConfigError, ProviderConfig
from .context import Route
from .dialects import Dialect, chat, responses
from .errors import ModelNotFound, UpstreamError, UpstreamTimeout, UpstreamUnavailable
from .http1 import Client, ConnectError, ConnectTimeout, HTTPError, ReadTimeout, Response, Target
from .ids import random_hex
from .images import GeneratedImage, ImageFailure, openai_images, prompt_picture


def _version() -> str:
    try:
        return importlib.metadata.version("llm-router")
    except importlib.metadata.PackageNotFoundError:
        return "dev"


# Upstream error bodies are read for their message only; a bigger one is garbage.
MAX_ERROR_BYTES = 64 * 1024
# An upstream answer above this is refused rather than buffered (non-streaming path).
# It bounds the decompressed bytes: a 0.5 MB gzip body can inflate to gigabytes.
MAX_REPLY_BYTES = 32 * 1024 * 1024
# Answers are inflated this much at a time, with a pause for the event loop between
# pieces, so a big (or hostile) compressed answer neither floods memory nor stalls others.
INFLATE_PIECE = 256 * 1024
# Sent upstream unless the provider's own headers set them. Some API fronts refuse a request
# without a User-Agent.
DEFAULT_HEADERS = {
    "Content-Type": "application/json",
    "Accept": "*/*",
    "Accept-Encoding": "gzip, deflate",  # what inflate() can bound
    "User-Agent": f"llm-router/{_version()}",
}
# What the gateway can inflate itself; any other Content-Encoding is a broken answer.
DECODERS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


class UpstreamFailure(Exception):
    """One attempt on one route failed.

    ``retryable`` says whether the next route may be tried (connection errors,
    timeouts, 429, 5xx, garbage); ``status`` is what the client sees if it was the
    last; ``retry_after`` is the upstream's Retry-After in seconds, if it sent one.
    ``message`` is what the client may read; ``detail`` (the upstream's own words, for
    a request it refused) is added to it but never logged: it may quote the request.
    ``counts`` says whether it counts against the provider's circuit breaker (see
    docs/operations-hardening.md: a slow answer to a long request does not); ``timed_out``
    marks a timeout.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int = 502,
        retryable: bool = True,
        retry_after: float | None = None,
        upstream_status: int | None = None,
        detail: str | None = None,
        counts: bool = True,
        timed_out: bool = False,
    ) -> None:
        super().__init__(message)
        self.counts = counts
        self.timed_out = timed_out
        self.summary = message
        self.message = f"{message}: {detail}" if detail else message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.upstream_status = upstream_status

    def to_error(self) -> Exception:
        from .errors import RateLimited, UpstreamRejected

        if not self.retryable and self.upstream_status:
            return UpstreamRejected(self.upstream_status, self.message)
        kind = {503: UpstreamUnavailable, 504: UpstreamTimeout, 429: RateLimited}.get(self.status, UpstreamError)
        return kind(self.message)


class Provider:
    """Base of every provider kind.  Subclasses set ``kind`` and may override any step.

    The default speaks OpenAI's HTTP conventions: JSON POST to ``base_url`` + a
    dialect's path, ``Authorization: Bearer`` with the key, SSE for streams.
    """

    kind: ClassVar[str]
    paths: ClassVar[dict[str, str]] = {"chat": "/chat/completions", "responses": "/responses"}
    # What the kind can do besides answering a Call: "images" (``generate_image``).
    capabilities: ClassVar[frozenset[str]] = frozenset()
    # Whether it sends requests over HTTP (``echo`` answers by itself).
    remote: ClassVar[bool] = True

    def __init__(self, name: str, config: ProviderConfig, client: Client, breaker: Breaker | None = None) -> None:
        self.name = name
        self.config = config
        self.client = client
        self.breaker = breaker or MemoryBreaker()  # Routes hands every provider the app's one breaker
        self.base_url = config.base_url.rstrip("/")
        own = {**config.headers, **self.auth_headers()}
        taken = {name.lower() for name in own}  # a configured header replaces a default, whatever its case
        self.headers = {**{k: v for k, v in DEFAULT_HEADERS.items() if k.lower() not in taken}, **own}
        # Each endpoint's request head, encoded once (a header that cannot be sent stops startup).
        self._targets: dict[str, Target] = {}
        if self.remote and self.unavailable is None:
            for path in self.paths.values():
                self.target(self.base_url + path)

    def target(self, url: str) -> Target:
        """``url`` with the provider's headers, ready to POST to."""
        target = self._targets.get(url)
        if target is None:
            try:
                target = self._targets[url] = Target(url, self.headers)
            except ValueError as exc:
                raise ConfigError([f"providers.{self.name}: {exc}"]) from None
        return target

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.config.api_key}"} if self.config.api_key else {}

    @property
    def secrets(self) -> list[str]:
        """Values that must never reach a client or a log."""
        return [v for v in (self.config.api_key, *self.config.headers.values()) if v]

    @property
    def unavailable(self) -> str | None:
        """Why this provider cannot be used at all, or None."""
        if self.config.missing_key:
            return f"provider '{self.name}' has no API key (environment variable {self.config.missing_key} is unset)"
        return None

    def codec(self, call: Call) -> Dialect:
        """The dialect to speak upstream for this call."""
        return chat.DIALECT

    def render(self, call: Call, model: str) -> dict[str, Any]:
        return self.codec(call).encode_request(call, model)

    def url(self, codec: Dialect) -> str:
        return self.base_url + self.paths[codec.name]

    async def send(self, codec: Dialect, body: dict[str, Any]) -> dict[str, Any]:
        """POST ``body`` in ``codec``'s dialect; returns the parsed JSON answer or raises UpstreamFailure."""
        return await self.post_json(self.url(codec), body)

    async def post_json(
        self, url: str, body: dict[str, Any], first_byte_timeout: float | None = None
    ) -> dict[str, Any]:
        """POST ``body`` to any of the provider's endpoints (a plugin's too, e.g. images) with its
        key, timeouts, error mapping and size limit; returns the JSON object it answered."""
        loop = asyncio.get_running_loop()
        total = loop.time() + self.config.total_timeout
        with self.transport_errors():
            # One timer: up to the headers it bounds the first byte (a non-streamed answer's first
            # byte is the whole answer being ready), then the whole answer.
            first = loop.time() + (first_byte_timeout or self.config.first_byte_timeout)
            async with asyncio.timeout_at(min(first, total)) as deadline:
                resp = await self.client.post(
                    self.target(url),
                    orjson.dumps(body),
                    connect_timeout=self.config.connect_timeout,
                )
                if not resp.is_eof():  # most answers came whole with their headers
                    deadline.reschedule(total)
                async with resp:
                    await self._check(resp)
                    raw = await self._read_reply(resp)
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError:
            raise UpstreamFailure(f"provider '{self.name}' answered with invalid JSON") from None
        if not isinstance(answer, dict):
            raise UpstreamFailure(f"provider '{self.name}' answered with JSON that is not an object")
        return answer

    async def _read_reply(self, resp: Response) -> bytes:
        identity = _encoding(resp) is None
        if identity and resp.content_length is not None and resp.content_length <= MAX_REPLY_BYTES:
            return await resp.read()  # the common case: one read, no copies
        raw = await self._collect(resp, MAX_REPLY_BYTES + 1)
        if len(raw) > MAX_REPLY_BYTES:
            raw.clear()  # now, not when the collector finds the failure's traceback
            raise UpstreamFailure(f"provider '{self.name}' answered more than {MAX_REPLY_BYTES} bytes")
        return bytes(raw)

    async def read_limited(self, resp: Response, limit: int) -> bytes:
        """Up to ``limit`` bytes of the (inflated) body."""
        return bytes((await self._collect(resp, limit))[:limit])

    async def _collect(self, resp: Response, limit: int) -> bytearray:
        raw = bytearray()
        async for piece in self.body_pieces(resp):
            raw += piece
            if len(raw) >= limit:
                break
        return raw

    def body_pieces(self, resp: Response) -> AsyncIterator[bytes]:
        """The body as it arrives, inflated piece by piece when the upstream compressed it."""
        encoding = _encoding(resp)
        if encoding is None:
            return resp.iter_any()
        if encoding not in DECODERS:
            raise UpstreamFailure(f"provider '{self.name}' answered with an unsupported encoding")
        return self._inflated(resp.iter_any(), DECODERS[encoding])

    async def _inflated(self, chunks: AsyncIterator[bytes], wbits: int) -> AsyncIterator[bytes]:
        inflater = zlib.decompressobj(wbits)
        try:
            async for chunk in chunks:
                data = chunk
                while data:
                    piece = inflater.decompress(data, INFLATE_PIECE)
                    data = inflater.unconsumed_tail
                    if piece:
                        yield piece
                    if data:
                        await asyncio.sleep(0)  # a big inflate shares the loop
            if tail := inflater.flush():
                yield tail
        except zlib.error:
            raise UpstreamFailure(f"provider '{self.name}' sent a corrupt compressed answer") from None

    @contextlib.asynccontextmanager
    async def stream(self, codec: Dialect, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[bytes]]:
        """Open a streamed answer; yields its raw byte chunks once the status is known good.

        ``first_byte_timeout`` bounds the wait for the first byte and every later gap between
        bytes; ``total_timeout`` the whole stream. Redirects are never followed (the key and the
        prompt would go to another host, and its answer would be served); answers are inflated
        by :meth:`body_pieces`, bounded."""
        with self.transport_errors():
            resp = await self.client.post(
                self.target(self.url(codec)),
                orjson.dumps(body),
                connect_timeout=self.config.connect_timeout,
                read_timeout=self.config.first_byte_timeout,
                deadline=asyncio.get_running_loop().time() + self.config.total_timeout,
            )
        try:
            with self.transport_errors():
                await self._check(resp)
            if resp.content_type != "text/event-stream":
                raise UpstreamFailure(f"provider '{self.name}' answered a stream request with {resp.content_type}")
            yield self.body_pieces(resp)
        finally:
            resp.close()  # also cancels the upstream request when the client went away

    @contextlib.contextmanager
    def transport_errors(self):
        """Turn transport errors into UpstreamFailure, naming the provider and nothing secret."""
        try:
            yield
        except ConnectTimeout:
            raise UpstreamFailure(f"could not connect to provider '{self.name}' in time", status=504) from None
        except ReadTimeout:
            # No byte for first_byte_timeout: before a stream's first event, the provider is stuck.
            raise UpstreamFailure(f"provider '{self.name}' timed out", status=504, timed_out=True) from None
        except TimeoutError:
            # The whole answer took too long: how long depends on what was asked, so one
            # tenant's long generations must not open the breaker for everyone.
            raise UpstreamFailure(
                f"provider '{self.name}' timed out", status=504, timed_out=True, counts=False
            ) from None
        except ConnectError:
            raise UpstreamFailure(f"could not connect to provider '{self.name}'", status=503) from None
        except HTTPError as exc:
            raise UpstreamFailure(f"provider '{self.name}' failed: {type(exc).__name__}", status=502) from None

    async def _check(self, resp: Response) -> None:
        if resp.status < 300:
            return
        if resp.status < 400:  # a redirect (never followed) or a 304: not an answer
            raise UpstreamFailure(f"provider '{self.name}' answered {resp.status} (redirects are not followed)")
        try:
            raw = await self.read_limited(resp, MAX_ERROR_BYTES)
        except UpstreamFailure:
            raw = b""  # an undecodable error body: the status still says what happened
        retry_after = _retry_after(resp.headers.get("Retry-After"))
        text = f"provider '{self.name}' answered {resp.status}"
        if resp.status == 429:
            raise UpstreamFailure(text, status=429, retry_after=retry_after, upstream_status=429)
        if resp.status >= 500 or resp.status in (408, 409):
            raise UpstreamFailure(text, status=502, retry_after=retry_after, upstream_status=resp.status)
        if resp.status in (401, 403):
            # The gateway's own credentials were refused: not the client's fault, and
            # another provider may well serve the request.
            raise UpstreamFailure(f"provider '{self.name}' refused the gateway's credentials ({resp.status})")
        # The upstream refused the request itself: the client needs its words to fix it.
        detail = self.scrub(_error_message(raw) or resp.reason or "error")
        raise UpstreamFailure(text, status=resp.status, retryable=False, upstream_status=resp.status, detail=detail)

    async def generate_image(self, model: str, prompt: str, options: dict[str, Any]) -> GeneratedImage:
        """One image for ``prompt`` (kinds with the ``images`` capability); raises UpstreamFailure."""
        raise UpstreamFailure(f"provider '{self.name}' ({self.kind}) cannot generate images", retryable=False)

    def scrub(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "[provider key]")
        return text


def _encoding(resp: Response) -> str | None:
    """The answer's Content-Encoding, lower-cased, or None for an uncompressed one."""
    encoding = resp.headers.get("Content-Encoding", "").strip().lower()
    return None if encoding in ("", "identity") else encoding


def _error_message(raw: bytes) -> str | None:
    try:
        body = orjson.loads(raw)
    except orjson.JSONDecodeError:
        return None
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and isinstance(error.get("message"), str):
        return error["message"][:500]
    if isinstance(error, str):
        return error[:500]
    return None


def _retry_after(value: str | None) -> float | None:
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # an HTTP date; rare from LLM APIs, and a guess is worse than none


class OpenAIProvider(Provider):
    """OpenAI itself: native Responses and Chat Completions."""

    kind = "openai"
    capabilities = frozenset({"images"})

    def codec(self, call: Call) -> Dialect:
        return responses.DIALECT if call.dialect == responses.NAME else chat.DIALECT

    async def generate_image(self, model: str, prompt: str, options: dict[str, Any]) -> GeneratedImage:
        try:
            return await openai_images(self, model, prompt, options)
        except ImageFailure as exc:
            raise UpstreamFailure(str(exc)) from None


class OpenAIChatProvider(Provider):
    """Any OpenAI-compatible server that only speaks Chat Completions (Groq, vLLM, Ollama …)."""

    kind = "openai-chat"


class EchoProvider(Provider):
    """Answers with the request it would have sent upstream: the offline default and the demo."""

    kind = "echo"
    capabilities = frozenset({"images"})
    remote = False

    async def generate_image(self, model: str, prompt: str, options: dict[str, Any]) -> GeneratedImage:
        """A small picture drawn from the prompt, offline: the image feature works without a key."""
        picture = base64.b64encode(prompt_picture(prompt)).decode()
        return GeneratedImage(b64_json=picture, revised_prompt=prompt, usage=Usage(len(prompt) // 4, 0))

    @property
    def unavailable(self) -> str | None:
        return None

    def codec(self, call: Call) -> Dialect:
        return responses.DIALECT if call.dialect == responses.NAME else chat.DIALECT

    def _reply(self, body: dict[str, Any]) -> Reply:
        text = orjson.dumps(body, option=orjson.OPT_INDENT_2).decode()
        tokens = len(text) // 4  # a rough count: echo calls no tokenizer
        return Reply(body["model"], [Message.of_text("assistant", text)], usage=Usage(tokens, tokens))

    async def send(self, codec: Dialect, body: dict[str, Any]) -> dict[str, Any]:
        return codec.encode_reply(self._reply(body), f"echo_{random_hex()}")

    @contextlib.asynccontextmanager
    async def stream(self, codec: Dialect, body: dict[str, Any]) -> AsyncIterator[AsyncIterator[bytes]]:
        yield self._chunks(codec, body)

    async def _chunks(self, codec: Dialect, body: dict[str, Any]) -> AsyncIterator[bytes]:
        reply = self._reply(body)
        encoder = codec.stream_encoder(f"echo_{random_hex()}", reply.model, None)
        text = reply.text
        events = encoder.start()
        for piece in (*(TextDelta(text[i : i + 64]) for i in range(0, len(text), 64)), StreamEnd("stop", reply.usage)):
            events += encoder.encode(piece)
        yield codec.frames(events + encoder.close()) + codec.end_of_stream


BUILTIN_PROVIDERS: dict[str, type[Provider]] = {p.kind: p for p in (OpenAIProvider, OpenAIChatProvider, EchoProvider)}


class Routes:
    """Every configured provider, the candidate routes for a model, and the circuit breaker they share."""

    def __init__(
        self,
        config: Config,
        kinds: dict[str, type[Provider]],
        client: Client,
        breaker: Breaker | None = None,
    ) -> None:
        self.breaker = breaker or MemoryBreaker()
        self.providers = {name: kinds[p.kind](name, p, client, self.breaker) for name, p in config.providers.items()}
        self.serving: dict[str, list[tuple[Provider, str]]] = {}
        for provider in self.providers.values():
            for model, upstream in provider.config.serves.items():
                self.serving.setdefault(model, []).append((provider, upstream))

    def for_model(self, model: str) -> list[Route]:
        """The model's own provider first, then every provider that serves it, in file order."""
        vendor, _, name = model.partition("/")
        routes = [Route(self.providers[vendor], name)] if vendor in self.providers and name else []
        routes += [Route(p, upstream) for p, upstream in self.serving.get(model, ()) if p.name != vendor]
        if not routes:
            raise ModelNotFound(
                f"The model '{model}' does not exist or no configured provider serves it; "
                "model names are 'provider/model'.",
                param="model",
            )
        return routes

    @property
    def secrets(self) -> list[str]:
        return [s for p in self.providers.values() for s in p.secrets]
