"""The built-in detectors: vetted patterns compiled once, cheap prefilters, checksums after."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterator
from typing import NamedTuple

import re2

from . import masking
from .finding import Finding, starts_clean
from .phones import PHONE_SEED, find_phones
from .tokens import TOKEN_SEED, find_tokens


class Detector(NamedTuple):
    """``find`` is exact but runs in Python; ``seed`` is a loose RE2 superset of what it finds.

    All enabled seeds run as one RE2 set in a single linear pass over the text, and only
    the detectors whose seed matched run ``find``: text without PII costs one DFA pass.
    """

    name: str
    find: Callable[[str], Iterator[Finding]]
    seed: str


def clean_before(text: str, i: int, separators: str) -> bool:
    """:func:`starts_clean`, and not right after one of ``separators`` (a longer number's tail)."""
    return starts_clean(text, i) and (i == 0 or text[i - 1] not in separators)


def clean_findings(
    pattern: re.Pattern[str], text: str, separators: str, kind: str, mask: Callable[[str], str]
) -> Iterator[Finding]:
    """Every match of ``pattern`` that passes :func:`clean_before`, as a ``kind`` finding masked by ``mask``."""
    for m in pattern.finditer(text):
        if clean_before(text, m.start(), separators):
            yield Finding(m.start(), m.end(), kind, mask(m.group()))


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
    """``scheme://user:pass@host`` and ``ssh://git@host`` are URLs, not addresses (the token detector owns passwords).

    Only the authority: after the path's first "/" an address is an address
    (``https://cdn.example.com/jane@example.org.png``).
    """
    if start == 0 or text[start - 1] not in ":/":
        return False
    run = text[max(0, start - 256) : start].rsplit(None, 1)[-1] if not text[start - 1].isspace() else ""
    scheme = run.rfind("://")
    return scheme != -1 and "/" not in run[scheme + 3 :]


# ---------------------------------------------------------------- ip

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
_IPV4 = re.compile(rf"(?:{_OCTET}\.){{3}}{_OCTET}(?![\w]|\.\d)")
# Every IPv6 address has two colons with at most four hex digits between them; the
# candidate grows from there and ``ipaddress`` decides.
_IPV6_SEED = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = frozenset("0123456789abcdefABCDEF:.")


# Three one-digit octets first: read as a version unless an address word comes before.
_VERSION_LIKE = re.compile(r"\d\.\d\.\d\.")
_IP_WORDS = re2.compile(r"(?i)\b(?:ip|ipv4|address|addr|host|server|dns|ping|gateway|resolver|connect|from|to)\b")
# "section 4.2.1.3", "version 1.2.3.4", "§ 12.3.4.5": dotted numbers that are not addresses.
_NOT_IP_WORDS = re2.compile(
    r"(?i)(?:\b(?:sections?|chapters?|clauses?|articles?|paragraphs?|versions?|releases?|appendix|figures?|tables?"
    r"|footnotes?|rfc)|§)[\s\"'(]*$"
)


def find_ips(text: str) -> Iterator[Finding]:
    if "." in text:
        for m in _IPV4.finditer(text):
            before = text[max(0, m.start() - 24) : m.start()]
            if not clean_before(text, m.start(), ".") or _NOT_IP_WORDS.search(before):
                continue
            if _VERSION_LIKE.match(m.group()) and not _IP_WORDS.search(before):
                continue  # 2.7.2.2, 3.1.1.6: a version or a section, unless introduced as an address
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
    return clean_findings(_UUID, text, "-", "uuid", masking.mask_uuid)


_MAC = re.compile(
    r"(?:[0-9A-Fa-f]{2}([:\-])(?:[0-9A-Fa-f]{2}\1){4}[0-9A-Fa-f]{2}"
    r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4})(?![\w:\-]|\.\w)"
)


def find_macs(text: str) -> Iterator[Finding]:
    return clean_findings(_MAC, text, ":-.", "mac", masking.mask_mac)


# ---------------------------------------------------------------- credit card

# Printed card formats: unbroken 12-19 digits, 4-4-4-0..7 groups, or 4-6-4/5 (Amex, Diners).
_CARD = re.compile(
    r"(?:(?<![\w\-.])|(?<=\\[nrtbf]))(?:\d{12,19}|\d{4}([ \-])\d{4}\1\d{4}(?:\1\d{1,4}){0,2}|\d{4}([ \-])\d{6}\2\d{4,5})(?![\w\-]|\.\d)"
)

# Issuer prefixes (IIN ranges) and the lengths each brand issues: a Luhn-valid number
# outside them (a timestamp, an order number) is not a card.
_BRANDS: tuple[tuple[str, frozenset[int]], ...] = (
    (r"4", frozenset({13, 16, 19})),  # Visa
    (r"5[1-5]|222[1-9]|22[3-9]\d|2[3-6]\d\d|27[01]\d|2720", frozenset({16})),  # Mastercard
    (r"3[47]", frozenset({15})),  # Amex
    (r"30[0-5]|309|36|38|39", frozenset({14, 16, 19})),  # Diners
    (r"6011|64[4-9]|65|622", frozenset({16, 17, 18, 19})),  # Discover
    (r"35", frozenset({16, 17, 18, 19})),  # JCB (3528-3589 issued; all of 35 is reserved to it)
    (r"1800|2131", frozenset({15})),  # JCB (old 15-digit)
    (r"5018|5020|5038|5[6-8]|6304|6759|676[1-3]|0604|6390|67", frozenset(range(12, 20))),  # Maestro
    (r"62|81", frozenset({16, 17, 18, 19})),  # UnionPay
    (r"220[0-4]", frozenset({16, 17, 18, 19})),  # Mir
)
_BRAND_PATTERNS = tuple((re.compile(prefix), lengths) for prefix, lengths in _BRANDS)
# Words saying a long number is something else: near them a number is a card only when
# it is also a card by its printed grouping.
# ... when the word introduces the number ("EAN 4006381333931", "timestamp=1700000000000"),
# not when it is anywhere before ("I mean 4111…", "your order: card 4111…").
_NOT_CARD_WORDS = re2.compile(
    r"(?i)\b(?:ean|ean-13|gtin|upc|isbn|barcode|invoice|order|tracking|timestamp|epoch|serial|imei|iccid|ref"
    r"|reference)\b\.?[\s:#.=\-]{0,3}(?:no\.?|nr\.?|number|num\.?|code|#)?[\s:#.=\-]{0,3}$"
)


def luhn_valid(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def ean13_valid(digits: str) -> bool:
    return (
        len(digits) == 13
        and sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12])) % 10 == (10 - int(digits[12])) % 10
    )


def card_brand_valid(digits: str) -> bool:
    """Whether an issuer uses this prefix with this length."""
    return any(pattern.match(digits) and len(digits) in lengths for pattern, lengths in _BRAND_PATTERNS)


def _card_in(value: str) -> str | None:
    """The card number ``value`` is, or begins with (a grouped card followed by one more group, a year)."""
    while True:
        digits = value.replace(" ", "").replace("-", "")
        if len(digits) < 12:
            return None
        if luhn_valid(digits) and card_brand_valid(digits):
            return value
        cut = max(value.rfind(" "), value.rfind("-"))
        if cut == -1:
            return None
        value = value[:cut]


def find_cards(text: str) -> Iterator[Finding]:
    for m in _CARD.finditer(text):
        start, value = m.start(), _card_in(m.group())
        if value is None:
            # A grouped card after another group ("+1 201 555 0143 4111 1111 1111 1111"): from a later group on.
            start, value = _card_after(m.group(), start)
            if value is None:
                continue
        digits = value.replace(" ", "").replace("-", "")
        if len(digits) == len(value) and _NOT_CARD_WORDS.search(text[max(0, start - 40) : start]):
            continue  # an unbroken number introduced as a barcode, an invoice …
        if len(digits) == 13 == len(value) and ean13_valid(digits):
            continue  # 13-digit Visa is gone from circulation; an EAN-13 is on every product
        yield Finding(start, start + len(value), "credit_card", masking.mask_card(value))


def _card_after(run: str, start: int) -> tuple[int, str | None]:
    """The card that begins at one of ``run``'s later groups, with its offset in the text: 15
    digits at least (the common card lengths), since a shorter Luhn-valid run inside a long
    number is as likely chance."""
    for i, ch in enumerate(run):
        if ch in " -":
            value = _card_in(run[i + 1 :])
            if value is not None and len(value) - value.count(" ") - value.count("-") >= 15:
                return start + i + 1, value
    return start, None


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
    # The mod-97 check decides; a length off by one from the country's (a typo, a
    # generator's bug) still leaves an account number to hide.
    expected = IBAN_LENGTHS.get(compact[:2])
    if expected is not None and abs(len(compact) - expected) > 1:
        return False
    if not 14 <= len(compact) <= 34:
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
# Nine digits in a row are an SSN only when introduced as one.
_SSN_UNBROKEN = re.compile(r"(?<![\w\-.])(?!000|666|9)\d{3}(?!00)\d{2}(?!0000)\d{4}(?![\w\-]|\.\d)")
_SSN_WORD_LIST = r"ssn|social security|soc\.? ?sec|ss ?#|ss no|taxpayer|\btin\b|itin"
_SSN_WORDS = re2.compile(f"(?i)(?:{_SSN_WORD_LIST})")
SSN_SEED = rf"\d{{3}}-\d{{2}}-\d{{4}}|\d{{3}} \d{{2}} \d{{4}}|(?i:{_SSN_WORD_LIST})[^\n]*\n?[^\n]*\d{{9}}"


def find_ssns(text: str) -> Iterator[Finding]:
    yield from clean_findings(_SSN, text, "-.", "ssn", masking.mask_ssn)
    for m in _SSN_UNBROKEN.finditer(text):
        if _SSN_WORDS.search(text[max(0, m.start() - 40) : m.start()]):
            yield Finding(m.start(), m.end(), "ssn", masking.mask_ssn(m.group()))


# ---------------------------------------------------------------- the set


DETECTORS: dict[str, Detector] = {
    d.name: d
    for d in (
        Detector("email", find_emails, r"[A-Za-z0-9._%+'\-]@[A-Za-z0-9]"),
        Detector("phone", find_phones, PHONE_SEED),
        Detector(
            "ip",
            find_ips,
            # IPv6 as the finder takes it: two groups around "::", or eight groups ("std::B" still
            # fires, "Foo::Bar" does not)
            r"\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}|[0-9A-Fa-f]::[0-9A-Fa-f]|[0-9A-Fa-f]:[0-9A-Fa-f]{1,4}::"
            r"|::[0-9A-Fa-f]{1,4}:[0-9A-Fa-f]|(?:[0-9A-Fa-f]{1,4}:){6}[0-9A-Fa-f]",
        ),
        Detector("uuid", find_uuids, r"[0-9A-Fa-f]{8}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{4}-[0-9A-Fa-f]{12}"),
        Detector("token", find_tokens, TOKEN_SEED),
        Detector("credit_card", find_cards, r"\d{12}|\d{4}[ \-]\d{4}[ \-]\d{4}|\d{4}[ \-]\d{6}[ \-]\d{4}"),
        Detector("iban", find_ibans, r"[A-Z]{2}\d{2} ?[A-Z0-9]{4} ?[A-Z0-9]{4}"),
        Detector("ssn", find_ssns, SSN_SEED),
        Detector(
            "mac",
            find_macs,
            r"[0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}[:\-][0-9A-Fa-f]{2}"
            r"|[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}\.[0-9A-Fa-f]{4}",
        ),
    )
}
