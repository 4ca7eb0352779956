"""The ``token`` detector: provider API keys, JWTs, bearer tokens, private keys and passwords."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import NamedTuple

from .finding import Finding, starts_clean
from .masking import SECRET, mask_token

# Where a key ends: the next character is not part of it.
END = r"(?![A-Za-z0-9_\-])"
# Where a key may start: what ``detectors.starts_clean`` accepts, checked inside the
# pattern so a start in the middle of a word costs nothing.
START = r"(?:(?<!\w)|(?<=\\[nrtbf]))"

# Linear time: every pattern here runs on client text with Python's backtracking ``re``.
# Bodies are possessive (``++``, ``{m,}+``): a run that fails is never re-split; and a
# pattern is only tried where it can start, so a long run is scanned from one place,
# not from each of its characters.


class KeyPattern(NamedTuple):
    """A key format: it is only searched for when ``trigger`` occurs in the text."""

    trigger: str
    pattern: re.Pattern[str]
    prefix_group: int  # the group kept in the mask (the key's recognisable prefix)


def _key(trigger: str, prefix: str, body: str) -> KeyPattern:
    return KeyPattern(trigger, re.compile(f"{START}({prefix}){body}" + END), 1)


KEYS: tuple[KeyPattern, ...] = (
    _key("sk-ant-", r"sk-ant-(?:api\d\d-|admin\d\d-)?", r"[A-Za-z0-9_\-]{20,}+"),
    _key("sk-", r"sk-(?:proj-|svcacct-|admin-)?", r"(?!ant-)[A-Za-z0-9_\-]{20,}+"),
    _key("AKIA", r"AKIA", r"[A-Z0-9]{16}"),
    _key("ASIA", r"ASIA", r"[A-Z0-9]{16}"),
    _key("gh", r"gh[pousr]_", r"[A-Za-z0-9]{30,}+"),
    _key("github_pat_", r"github_pat_", r"[A-Za-z0-9_]{22,}+"),
    # A body may contain '-' and so the next key's start: bounded, or "xoxb-" * n + "_"
    # would scan to its end from every "xoxb-".
    _key("xox", r"xox[abposre]-", r"[A-Za-z0-9\-]{10,255}+"),
    _key("AIza", r"AIza", r"[0-9A-Za-z_\-]{35}"),
    _key("_live_", r"(?:sk|rk)_live_", r"[0-9A-Za-z]{16,}+"),
    _key("_test_", r"(?:sk|rk)_test_", r"[0-9A-Za-z]{16,}+"),
    _key("glpat-", r"glpat-", r"[0-9A-Za-z_\-]{20}"),
    _key("hf_", r"hf_", r"[A-Za-z0-9]{30,}+"),
    # JWT: the header is a short JSON object; bounded for the same reason as xox.
    _key("eyJ", r"eyJ", r"[A-Za-z0-9_\-]{5,1024}+\.eyJ[A-Za-z0-9_\-]{5,}+\.[A-Za-z0-9_\-]*+"),
)

# Bearer credentials must contain a digit, so "a bearer authentication scheme" stays.
_BEARER = re.compile(r"\b([Bb]earer\s+)(?=[A-Za-z._~+/\-]*\d)([A-Za-z0-9._~+/\-]{16,}=*)")
# The body cannot contain "-----", so the search for its END stops at the first marker
# instead of running to the end of the text from every BEGIN.
_PEM_BODY = r"[A-Za-z0-9+/=\s:,\\]*+(?:-(?!----)[A-Za-z0-9+/=\s:,\\]*+)*+"
_PEM = re.compile(r"-----BEGIN ((?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY)-----" + _PEM_BODY + r"(?:-----END \1-----)?")
# scheme://user:PASSWORD@host: only the password goes.
# Searched from the "://" (a literal), not from every letter of a scheme-like run.
_URL_PASSWORD = re.compile(r"(?<=[A-Za-z0-9+.\-])://[^\s:/@\"'<>]*+:([^\s@/\"'<>]++)@")
_SECRET_NAMES = (
    r"(?:password|passwd|pwd|secret|api[_\-]?key|apikey|access[_\-]?key|account[_\-]?key|sharedaccesskey"
    r"|(?:auth|access|refresh|api|bearer|session|id)[_\-]?token|private[_\-]?key|client[_\-]?secret|credentials?)"
)
# password=hunter2, "api_key": "…", DB_PASSWORD: 'x', secret = foo. The name starts
# after a non-alphanumeric character ("DB_" before "PASSWORD" needs no pattern of its
# own: a "(?:[A-Za-z0-9]+[_\-])*" prefix made every "a_a_a_…" run quadratic).
_ASSIGNMENT = re.compile(
    r"(?i)(?<![A-Za-z0-9])" + _SECRET_NAMES + r"[\"']?\s*+(?:=|:(?!//))\s*+"
    r"(?:\"([^\"\n]{1,256})\"|'([^'\n]{1,256})'|([^\s\"',;&<>]{1,256}))"
)
_ASSIGNMENT_TRIGGERS = ("pass", "pwd", "secret", "key", "token", "credential")

# A loose RE2 superset of everything above (see detectors.Detector).
TOKEN_SEED = (
    r"sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abposre]-|AIza|[sr]k_(?:live|test)_|glpat-|hf_[A-Za-z0-9]{30}"
    r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ|(?i:bearer)\s|PRIVATE KEY-----|://[^\s:/@]*:[^\s@/]+@"
    r"|(?i:password|passwd|pwd|secret|api[_\-]?key|apikey|access[_\-]?key|account[_\-]?key|sharedaccesskey"
    r"|token|private[_\-]?key|credentials?)[\"']?\s*[:=]"
)


def find_tokens(text: str) -> Iterator[Finding]:
    for key in KEYS:
        if key.trigger in text:
            for m in key.pattern.finditer(text):
                if starts_clean(text, m.start()):
                    yield Finding(m.start(), m.end(), "token", mask_token(m.group(key.prefix_group)))
    if "earer" in text:
        for m in _BEARER.finditer(text):
            yield Finding(m.start(2), m.end(2), "token", SECRET)
    if "PRIVATE KEY-----" in text:
        for m in _PEM.finditer(text):
            label = m.group(1)
            yield Finding(m.start(), m.end(), "token", f"-----BEGIN {label}----- {SECRET} -----END {label}-----")
    if "://" in text:
        for m in _URL_PASSWORD.finditer(text):
            yield Finding(m.start(1), m.end(1), "token", SECRET)
    lowered = text.lower()
    if any(trigger in lowered for trigger in _ASSIGNMENT_TRIGGERS):
        for m in _ASSIGNMENT.finditer(text):
            group = 1 if m.group(1) is not None else 2 if m.group(2) is not None else 3
            yield Finding(m.start(group), m.end(group), "token", SECRET)
