"""Where the offline tiktoken vocabularies live."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

# Where tiktoken would download a vocabulary from: it names its cached copy by this URL.
BASE_URL = "https://openaipublic.blob.core.windows.net/encodings/"


def default_dir() -> Path:
    """Inside the active environment, so ``make clean`` removes it and nothing lands in git."""
    return Path(sys.prefix) / "share" / "llm-router" / "tiktoken"


def cache_name(encoding: str) -> str:
    """tiktoken names a cached file by the sha1 of the vocabulary's URL."""
    return hashlib.sha1(f"{BASE_URL}{encoding}.tiktoken".encode()).hexdigest()


def vocabulary_file(encoding: str) -> Path:
    return default_dir() / cache_name(encoding)
