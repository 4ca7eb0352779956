"""The built-in detectors: vetted patterns compiled once, cheap prefilters, checksums after."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

from . import masking
from .tokens import TOKEN_SEED, find_tokens


class Finding(NamedTuple):
    """One value to hide: ``text[start:end]`` of kind ``detector``, shown upstream as ``mask``."""

    start: int
    end: int
    detector: str
    mask: str


class Detector(NamedTuple):
    """``find`` is exact but runs in Python; ``seed`` is a loose RE2 superset of what it finds.

    All enabled seeds run as one RE2 set in a single linear pass over the text, and only
    the detectors whose seed matched run ``find``: text without PII costs one DFA pass.
    """

    name: str
    find: Callable[[str], Iterator[Finding]]
    seed: str


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


def clean_before(text: str, i: int, separators: str) -> bool:
    """:func:`starts_clean`, and not right after one of ``separators`` (a longer number's tail)."""
    return starts_clean(text, i) and (i == 0 or text[i - 1] not in separators)


# ---------------------------------------------------------------- email

_EMAIL_DOMAIN = re.compile(r"@((?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24})(?![A-Za-z0-9-])")
_LOCAL_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._%+-'")
MAX_LOCAL_PART = 64  # RFC 5321


def find_emails(text: str) -> Iterator[Finding]:
    if "@" not in text:
        return
    for match in _EMAIL_DOMAIN.finditer(text):
        # Searching from the '@' and walking back is far faster than a pattern that
        # starts with the local part and so tries every word character in the text.
        at = match.start()
        start = at
        while start > 0 and at - start < MAX_LOCAL_PART and text[start - 1] in _LOCAL_CHARS:
            if start >= 2 and text[start - 2] == "\\" and text[start - 1] in "nrtbf":
                break  # the letter belongs to a JSON escape, not to the address
            start -= 1
        while start < at and text[start] in ".'":
            start += 1
        if start == at or _in_url_authority(text, start):
            continue
        value = text[start : match.end()]
        yield Finding(start, match.end(), "email", masking.mask_email(value))


def _in_url_authority(text: str, start: int) -> bool:
    """``scheme://user:pass@host`` and ``ssh://git@host`` are URLs, not addresses (the token detector owns passwords)."""
    if start == 0 or text[start - 1] not in ":/":
        return False
    run = text[max(0, start - 256) : start].rsplit(None, 1)[-1] if not text[start - 1].isspace() else ""
    return "://" in run


# ---------------------------------------------------------------- phone

# Possessive digit groups: a run of digits is split into groups one way only, so a long
# run after a "+" fails at once instead of trying every way of cutting it.
_PHONE_INTL = re.compile(r"(?<!\+)\+[1-9]\d{0,3}+(?:[ .\-]?\(\d{1,4}\)|[ .\-]?\d{1,6}+){1,6}(?![\w])")
_PHONE_NANP = re.compile(r"(?:1[ .\-])?(?:\(\d{3}\)[ .\-]?|\d{3}[ .\-])\d{3}[ .\-]\d{4}(?![\w\-]|\.\d)")
# Trunk-prefix national formats (UK 020 7946 0958, FR 06 12 34 56 78, DE 030 12345678).
_PHONE_NATIONAL = re.compile(r"0\d{1,4}(?:[ \-/.]\d{2,8}){1,4}(?![\w\-/:]|\.\d)")


def _digit_count(value: str) -> int:
    return sum(ch.isdigit() for ch in value)


def find_phones(text: str) -> Iterator[Finding]:
    if "+" in text:
        for m in _PHONE_INTL.finditer(text):
            if starts_clean(text, m.start()) and 8 <= _digit_count(m.group()) <= 15:  # E.164
                yield Finding(m.start(), m.end(), "phone", masking.mask_phone(m.group()))
    for m in _PHONE_NANP.finditer(text):
        if clean_before(text, m.start(), "+-."):
            yield Finding(m.start(), m.end(), "phone", masking.mask_phone(m.group()))
    for m in _PHONE_NATIONAL.finditer(text):
        if clean_before(text, m.start(), "+-./:") and 10 <= _digit_count(m.group()) <= 12:
            yield Finding(m.start(), m.end(), "phone", masking.mask_phone(m.group()))


# ---------------------------------------------------------------- ip

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
# Every IPv6 address has two colons with at most four hex digits between them; the
# candidate grows from there and ``ipaddress`` decides.
_IPV6_SEED = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


def find_ips(text: str) -> Iterator[Finding]:
    if "." in text:
        for m in _IPV4.finditer(text):
            if clean_before(text, m.start(), "."):
                yield Finding(m.start(), m.end(), "ip", masking.mask_ipv4(m.group()))
    if ":" not in text:
        return
    pos = 0
    while (seed := _IPV6_SEED.search(text, pos)) is not None:
        start, end = seed.start(), seed.end()
        while start > 0 and text[start - 1] in _IPV6_CHARS:
            start -= 1
        while end < len(text) and text[end] in _IPV6_CHARS:
            end += 1
        pos = end
        if not starts_clean(text, start) or (end < len(text) and (text[end].isalnum() or text[end] == "_")):
            continue
        value = text[start:end].rstrip(".")
        if _is_ipv6(value):
            yield Finding(start, start + len(value), "ip", masking.mask_ipv6(value))


def _is_ipv6(value: str) -> bool:
    groups = [g for g in value.split(":") if g]
    # "::1" and "a::b" read as code far more often than as addresses.
    if len(groups) < 2 or sum(len(g) for g in groups) < 4:
        return False
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    return True


# ---------------------------------------------------------------- uuid, mac

_UUID = re.compile(r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}(?![\w\-])")


def find_uuids(text: str) -> Iterator[Finding]:
    for m in _UUID.finditer(text):
        if clean_before(text, m.start(), "-"):
            yield Finding(m.start(), m.end(), "uuid", masking.mask_uuid(m.group()))


_MAC = re.compile(
    r"(?:[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:\-]|\.\w)"
)


def find_macs(text: str) -> Iterator[Finding]:
    for m in _MAC.finditer(text):
        if clean_before(text, m.start(), ":-."):
            yield Finding(m.start(), m.end(), "mac", masking.mask_mac(m.group()))


# ---------------------------------------------------------------- credit card

# Printed card formats only: unbroken 13-19 digits, 4-4-4-1..4(-3), or 4-6-4/5 (Amex, Diners).
_CARD = re.compile(
    r"(?:[2-6]\d{12,18}|[2-6]\d{3}([ \-])\d{4}\1\d{4}\1\d{1,4}(?:\1\d{3})?"
    r"|[2-6]\d{3}([ \-])\d{6}\2\d{4,5})(?![\w\-]|\.\d)"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def find_cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        if not clean_before(text, m.start(), "-."):
            continue
        value = m.group()
        digits = value.replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            yield Finding(m.start(), m.end(), "credit_card", masking.mask_card(value))


# ---------------------------------------------------------------- iban

_IBAN = re.compile(r"[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?(?![\w])")
IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AT": 20, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29, "CH": 21, "CY": 28,
    "CZ": 24, "DE": 22, "DK": 18, "EE": 20, "ES": 24, "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GI": 23,
    "GL": 18, "GR": 27, "HR": 21, "HU": 28, "IE": 22, "IL": 23, "IS": 26, "IT": 27, "KW": 30, "KZ": 20,
    "LB": 28, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "ME": 22, "MK": 19, "MT": 31, "MU": 30,
    "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SE": 24,
    "SI": 19, "SK": 24, "SM": 27, "TN": 24, "TR": 26, "UA": 29,
}  # fmt: skip


def iban_valid(compact: str) -> bool:
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and len(compact) != expected:
        return False
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    return int("".join(str(int(ch, 36)) for ch in rearranged)) % 97 == 1


def find_ibans(text: str) -> Iterator[Finding]:
    for m in _IBAN.finditer(text):
        value = m.group()
        if starts_clean(text, m.start()) and iban_valid(value.replace(" ", "")):
            yield Finding(m.start(), m.end(), "iban", masking.mask_iban(value))


# ---------------------------------------------------------------- ssn

# Area 000, 666 and 900-999, group 00 and serial 0000 are never issued.
_SSN = re.compile(r"(?!000|666|9)\d{3}([\- ])(?!00)\d{2}\1(?!0000)\d{4}(?![\w\-]|\.\d)")


def find_ssns(text: str) -> Iterator[Finding]:
    for m in _SSN.finditer(text):
        if clean_before(text, m.start(), "-."):
            yield Finding(m.start(), m.end(), "ssn", masking.mask_ssn(m.group()))


# ---------------------------------------------------------------- the set


DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector("email", find_emails, r"[A-Za-z0-9._%+'\-]@[A-Za-z0-9]"),
        Detector(
            "phone",
            find_phones,
            r"\+[1-9][\d .\-()]{6,}\d|\d{3}[ .\-)]{1,2}\d{3}[ .\-]\d{4}"
            r"|(?:^|[^\w+\-./:]|\\[nrtbf])0\d{1,4}(?:(?:[ \-/.]\d\d)*[ \-/.]\d{3}|(?:[ \-/.]\d\d){3})",
        ),
        Detector(
            "ip",
            find_ips,
            r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]::|::[0-9A-Fa-f]|(?:[0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]",
        ),
        Detector("uuid", find_uuids, r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"),
        Detector("token", find_tokens, TOKEN_SEED),
        Detector(
            "credit_card",
            find_cards,
            r"[2-6]\d{12}|[2-6]\d{3}[ \-]\d{4}[ \-]\d{4}[ \-]\d|[2-6]\d{3}[ \-]\d{6}[ \-]\d{4}",
        ),
        Detector("iban", find_ibans, r"[A-Z]{2}\d{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}"),
        Detector("ssn", find_ssns, r"\d{3}[\- ]\d{2}[\- ]\d{4}"),
        Detector(
            "mac",
            find_macs,
            r"[0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}"
            r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}",
        ),
    )
}
