"""Client-supplied ``custom`` patterns: hostile input, so RE2 (linear time), capped and cached."""

from __future__ import annotations

import functools
from collections.abc import Iterator, Sequence
from typing import Any

import re2

from router_core import BadRequest

from .detectors import Finding
from .masking import SECRET

MAX_CUSTOM_PATTERNS = 16  # each pattern is one more pass over every text of the request
MAX_CUSTOM_PATTERN_LENGTH = 512  # long enough for any honest pattern, short enough to compile fast
# Clients resend the same patterns on every request. Each entry holds at most its
# program plus RE2_MAX_MEM of automaton, so the cache is bounded to ~64 × 1 MB.
COMPILED_CACHE_SIZE = 64
RE2_MAX_MEM = 1 << 20  # bytes of automaton per pattern; a program that needs more is refused, not built
# RE2's program size (its instruction count) is what a match's cost scales with.
# "ACME-\d{5}" is ~20, a 50-word alternation ~400; "(.{0,100}){10}" is ~9,000.
MAX_PROGRAM_SIZE = 2_000

_OPTIONS = re2.Options()
_OPTIONS.max_mem = RE2_MAX_MEM
_OPTIONS.log_errors = False  # RE2 would print the client's pattern to stderr


class InvalidPattern(ValueError):
    """RE2 refused a pattern; the message is RE2's reason."""


@functools.lru_cache(maxsize=COMPILED_CACHE_SIZE)
def _compile(pattern: str) -> Any:
    try:
        compiled = re2.compile(pattern, _OPTIONS)
    except re2.error as exc:
        reason = exc.args[0] if exc.args else "invalid pattern"
        return InvalidPattern(reason.decode(errors="replace") if isinstance(reason, bytes) else str(reason))
    if compiled.programsize > MAX_PROGRAM_SIZE:
        return InvalidPattern(
            f"its program has {compiled.programsize} instructions, more than {MAX_PROGRAM_SIZE} (bounded repeats multiply)"
        )
    return compiled


def compile_custom(patterns: Sequence[str]) -> list[Any]:
    """The request's ``custom`` patterns compiled with RE2, or a 400 naming the bad one."""
    if len(patterns) > MAX_CUSTOM_PATTERNS:
        raise BadRequest(
            f"At most {MAX_CUSTOM_PATTERNS} custom redaction patterns are allowed.",
            param="gateway.redact.custom",
            code="invalid_gateway_field",
        )
    compiled = []
    for i, pattern in enumerate(patterns):
        param = f"gateway.redact.custom[{i}]"
        if len(pattern) > MAX_CUSTOM_PATTERN_LENGTH:
            raise BadRequest(
                f"Custom redaction pattern {i} is longer than {MAX_CUSTOM_PATTERN_LENGTH} characters.",
                param=param,
                code="invalid_gateway_field",
            )
        # Failures are cached too, so a client resending a bad pattern costs no compile.
        result = _compile(pattern)
        if isinstance(result, InvalidPattern):
            raise BadRequest(
                f"Custom redaction pattern {i} is not a valid RE2 regular expression: {result}.",
                param=param,
                code="invalid_gateway_field",
            )
        compiled.append(result)
    return compiled


def find_custom(text: str, compiled: Sequence[Any]) -> Iterator[Finding]:
    for pattern in compiled:
        for m in pattern.finditer(text):
            if m.end() > m.start():  # an empty match hides nothing
                yield Finding(m.start(), m.end(), "custom", SECRET)
