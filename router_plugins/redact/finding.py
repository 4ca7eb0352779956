"""What a detector finds, and where a value may start: shared by every detector module."""

from __future__ import annotations

from typing import NamedTuple


class Finding(NamedTuple):
    """One value to hide: ``text[start:end]`` of kind ``detector``, shown upstream as ``mask``."""

    start: int
    end: int
    detector: str
    mask: str


def starts_clean(text: str, i: int) -> bool:
    """Whether a value may start at ``text[i]``: not glued to a preceding word character.

    A value may sit right after a JSON escape inside tool-call arguments ("\\nsk-…"),
    where the escape's letter must not count as part of a word.
    """
    if i == 0:
        return True
    before = text[i - 1]
    if not (before.isalnum() or before == "_"):
        return True
    return i >= 2 and text[i - 2] == "\\" and before in "nrtbf"
