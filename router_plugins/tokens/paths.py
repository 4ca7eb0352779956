"""Where the offline tiktoken vocabularies live."""

from __future__ import annotations

import sys
from pathlib import Path


def default_dir() -> Path:
    """Inside the active environment, so ``make clean`` removes it and nothing lands in git."""
    return Path(sys.prefix) / "share" / "llm-router" / "tiktoken"
