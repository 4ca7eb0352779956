"""The ``phone`` detector: candidates by shape, decided by libphonenumber's metadata and context.

A candidate is a run of digits with the separators phone numbers are written with
(spaces, dots, dashes, slashes, parentheses), an optional ``+`` or ``00`` prefix and an
optional extension (``x62737``, ``ext. 12``). What is then decided:

- ``+CC …`` / ``00CC …``: the country code must exist and the national number be a
  possible length for it (``phonenumbers``).
- a national number: a phone word nearby (``tel``, ``call``, ``mobile`` …) accepts it;
  a reference word (``invoice``, ``order``, ``ref``, ``ISBN`` …) or the shape of a date
  or a version refuses it; otherwise its grouping must look like a phone number (a
  trunk ``0``, parentheses, or 3-3-4 / 2-2-2-2 style groups) and be valid in one of the
  regions libphonenumber knows.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterator

import phonenumbers
import re2

from . import masking
from .finding import Finding

# Linear: the body is bounded and each start is a digit, "+" or "(" not glued to a word.
_CANDIDATE = re.compile(
    r"(?<![\w+\-./])\+?(?:\(\+?\d{1,5}\)|\d)(?:[ \-./]{0,2}(?:\(\d{1,5}\)|\d)){5,20}"
    r"(?:\s*+(?:x|ext\.?|extension|#)\s*+\d{1,6}+)?(?![\w\-]|[./:]\d)",
    re.IGNORECASE,
)
_EXTENSION = re.compile(r"\s*(?:x|ext\.?|extension|#)\s*\d{1,6}$", re.IGNORECASE)
_DATE = re.compile(r"\d{4}[./\-]\d{1,2}[./\-]\d{1,2}(?:[ T]\d.*)?|\d{1,2}[./\-]\d{1,2}[./\-]\d{2,4}(?:\s.*)?")
_DOTTED_VERSION = re.compile(r"\d{1,3}(?:\.\d{1,3}){2,}(?:/\d{1,2})?")  # and an IPv4 network
_LOCAL = re.compile(r"\d{3}-\d{4}|\d{4}[ \-]\d{4}|\d{2}(?: \d{2}){3}|\(\d{2,5}\) ?\d{3,8}(?:[ \-]\d{2,4})?")
_EMBEDDED_DATE = re.compile(r"(?:19|20)\d\d[-/.](?:0[1-9]|1[0-2])[-/.](?:0[1-9]|[12]\d|3[01])")
_NUMBER_VALUE = re.compile(r"[:=]\s*$")
_DECIMALS = re.compile(r"\d+\.\d+(?:\s+\d+\.\d+)+")
_DECIMAL = re.compile(r"\d+\.\d+")
_ISBN13 = re.compile(r"97[89]-\d{1,5}-\d{1,7}-\d{1,7}-\d")
_ISBN10 = re.compile(r"\d{1,5}-\d{1,7}-\d{1,7}-[\dXx]")
_YEARS = re.compile(r"(?:1[89]|20)\d\d(?:[ \-/](?:1[89]|20)\d\d)+")

# Context words are matched with RE2: a case-insensitive alternation costs Python's
# engine ~20-50 µs per 40 characters, RE2's DFA ~1.5 µs.
# Whole words ("string" holds no "ring", "recall" no "call"); the CJK words stand alone.
_PHONE_WORD_LIST = (
    r"\b(?:phone|tel|telephone|call|mobile|cell|fax|sms|text me|whats ?app|dial|ring|reach|contact"
    r"|hotline|landline|número|numero|telefon|téléphone|teléfono|телефон)|电话|電話|携帯"
)
_PHONE_WORDS = re2.compile(f"(?i)(?:{_PHONE_WORD_LIST})")
# A reference word counts when it introduces the number: "Invoice 123…", "order no. 123…", "Ref: 123…".
_REFERENCE_WORDS = re2.compile(
    r"(?i)(?:\b(?:invoice|inv|order|ref|reference|ticket|case|tracking|serial|sku|ean|isbn|issn|gtin|upc"
    r"|account|acct|iban|po|nr|no|id|version|build|release|patent|part|model"
    r"|item|customer|transaction|txn|receipt|batch|lot|shipment|parcel|booking|policy|claim|member|employee"
    r"|routing|swift|checksum|hash|ssn|social security|tax)\b\.?|#|p\.o\.)"
    r"[\s:#.\-]{0,3}(?:no\.?|nr\.?|number|num\.?|#)?[\s:#.\-]{0,3}$"
)
CONTEXT = 40  # characters before a candidate read for words


def _digits(value: str) -> str:
    return "".join(ch for ch in value if ch.isdigit())


def _national_patterns() -> tuple[tuple[str, re.Pattern[str]], ...]:
    """Each region's trunk prefix and the pattern all its national numbers match (libphonenumber metadata)."""
    out = []
    for region in sorted(phonenumbers.SUPPORTED_REGIONS):
        metadata = phonenumbers.PhoneMetadata.metadata_for_region(region)
        if metadata is None or metadata.general_desc is None or not metadata.general_desc.national_number_pattern:
            continue
        prefix = metadata.national_prefix or ""
        out.append((prefix, re.compile(metadata.general_desc.national_number_pattern)))
    return tuple(out)


_NATIONAL = _national_patterns()  # ~245 regions, built at import in well under 0.1 s


@functools.lru_cache(maxsize=4096)
def _valid_national(digits: str) -> bool:
    """Whether ``digits`` is a national number of some region, with or without its trunk prefix.

    One fullmatch per region against libphonenumber's own pattern: bounded, unlike
    ``phonenumbers.parse`` per region (~90 µs each), which hostile text could multiply.
    """
    for prefix, pattern in _NATIONAL:
        if pattern.fullmatch(digits) or (
            prefix and digits.startswith(prefix) and pattern.fullmatch(digits[len(prefix) :])
        ):
            return True
    return False


def _international(value: str) -> bool:
    """``+CC…``: a country code that exists and E.164's length; ``00CC…`` must also be a possible number there."""
    digits = _digits(value)
    if value.startswith("00"):
        try:
            return phonenumbers.is_possible_number(phonenumbers.parse("+" + digits[2:], None))
        except phonenumbers.NumberParseException:
            return False
    # Written with a "+", a number is meant as a phone number even when its digits are
    # not (yet) allocated: only the country code and E.164's 15 digits are checked.
    return any(digits[:n] and int(digits[:n]) in phonenumbers.COUNTRY_CODE_TO_REGION_CODE for n in (1, 2, 3))


def _phone_grouping(value: str) -> bool:
    """Written the way phone numbers are: parentheses, a trunk 0 with groups, or 3-3-4 / 2-2-2-2 groups."""
    if "(" in value:
        return True
    groups = re.split(r"[ \-./]+", value)
    if len(groups) == 1:
        digits = groups[0]
        # Unbroken: a trunk-prefixed national number or a Chinese/Indian style mobile.
        return (digits[0] == "0" and digits[1] != "0" and 9 <= len(digits) <= 12) or bool(
            re.fullmatch(r"1[3-9]\d{9}", digits)  # a Chinese mobile
        )
    if len(groups) == 2 and groups[0][0] != "0":
        return len(groups[0]) in (3, 4) and len(groups[1]) == 4  # a local number: 555-1234, 2212 3456
    longest = 8 if groups[0][0] == "0" else 5  # after a trunk 0 the subscriber part may be one group
    return all(1 <= len(g) <= longest for g in groups)


def ean13_valid(digits: str) -> bool:
    if len(digits) != 13:
        return False
    total = sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(digits[:12]))
    return (10 - total % 10) % 10 == int(digits[12])


def isbn10_valid(chars: str) -> bool:
    if len(chars) != 10:
        return False
    total = sum((10 - i) * (10 if ch in "xX" else int(ch)) for i, ch in enumerate(chars))
    return total % 11 == 0


def is_phone(text: str, start: int, value: str) -> bool:
    core = _EXTENSION.sub("", value)
    digits = _digits(core)
    if not 7 <= len(digits) <= 15:
        return False
    before = text[max(0, start - CONTEXT) : start]
    if core.startswith("00") and _REFERENCE_WORDS.search(before):
        return False  # "Invoice number: 0050-1476-1002"
    if core[0] == "+" or core.startswith("00"):
        if _DECIMAL.fullmatch(core.lstrip("+")):
            return False  # +35236450.6 is a signed decimal
        if core.startswith("00") and len(core) == 13 and core.isdigit() and ean13_valid(core):
            return False  # a UPC/EAN-13 barcode with leading zeros
        # 7 digits (+290 8999: St Helena) to 16 (15 of E.164 and a written trunk "(0)")
        if 7 <= len(digits) <= 16 and _international(core):
            return True
        if core[0] == "+":
            return False
    if _DATE.fullmatch(core) or _DOTTED_VERSION.fullmatch(core) or _YEARS.fullmatch(core) or _DECIMAL.fullmatch(core):
        return False
    if _EMBEDDED_DATE.search(core):
        return False  # "2005-05-26-10458", "v2.26 2000/09/07 22": a date inside
    if set(digits) <= {"0", "1"} or _DECIMALS.fullmatch(core):
        return False  # "1010 0000": bits; "0.00 1.00 2.00": a list of decimals
    if _ISBN13.fullmatch(core) and ean13_valid(digits):
        return False  # 978-1-59293-468-3
    if _ISBN10.fullmatch(core) and isbn10_valid(digits + ("X" if core[-1] in "xX" else "")):
        return False
    ref = _REFERENCE_WORDS.search(before)
    if ref is not None:
        # "Invoice no. 555-1234" is an invoice; "Tel. no. 555-1234" and "Phone #: …" are phones.
        return _PHONE_WORDS.search(before[max(0, ref.start() - 8) :]) is not None
    if _PHONE_WORDS.search(before):
        return True
    if core.isdigit() and _NUMBER_VALUE.search(before):
        return False  # "memory_total_bytes": 15032385536 — a number, not a string
    if len(digits) < 9:  # a local number: written as one, and valid somewhere
        if re.fullmatch(r"\d{3}-(?:19|20)\d\d", core):
            return False  # "IEEE 854-1987": a standard and its year
        return bool(_LOCAL.fullmatch(core)) and _valid_national(digits)
    return _phone_grouping(core) and _valid_national(digits)


# Where a run of digits may be cut in two: a separator run that is not part of a group.
_GROUP_END = re.compile(r"\d(?=[ \-./]{1,2}\d)")
# libphonenumber is asked at most this often per text (~40 µs each) when "+CC …" runs are cut:
# a hostile text costs at most ~40 ms more. Answers are remembered across texts.
MAX_ASKS = 1024
_VALID: dict[str, bool] = {}


def international_prefix(value: str, asks: list[int]) -> str | None:
    """The phone number that starts a "+" run too long to be one ("+1 201-555-0143 4111 1111 …"):
    the longest run of whole groups (of the four longest that may be one) libphonenumber calls valid."""
    tried = 0
    for m in reversed(list(_GROUP_END.finditer(value))):
        prefix = value[: m.end()]
        number = "+" + _digits(prefix)
        if not 8 <= len(number) <= 16:
            continue
        valid = _VALID.get(number)
        if valid is None:
            if asks[0] >= MAX_ASKS:
                return None
            asks[0] += 1
            try:
                valid = phonenumbers.is_valid_number(phonenumbers.parse(number, None))
            except phonenumbers.NumberParseException:
                valid = False
            if len(_VALID) >= 4096:
                _VALID.clear()
            _VALID[number] = valid
        if valid:
            return prefix
        tried += 1
        if tried == 4:
            return None
    return None


def find_phones(text: str) -> Iterator[Finding]:
    asks = [0]
    for m in _CANDIDATE.finditer(text):
        value = m.group().rstrip(" -./")
        if not is_phone(text, m.start(), value):
            if value[0] != "+" or len(_digits(value)) <= 15:
                continue
            # Another number written right after an international one ran into it: the phone
            # number is its valid beginning (the rest is left to the other detectors).
            value = international_prefix(value, asks)
            if value is None:
                continue
        yield Finding(m.start(), m.start() + len(value), "phone", masking.mask_phone(value))


# A loose RE2 superset of what is_phone accepts: a "+" or "00" number, seven digits
# after a phone word, or nine digits that are not a date and time ("2024-03-15 10:30").
PHONE_SEED = (
    r"\+\(?\d(?:[ \-./()]{0,3}\d){6}|00\d(?:[ \-./()]{0,3}\d){5}"
    # (no counted gap such as [\s\S]{0,40} after the word: in a set with other seeds
    # it makes RE2's DFA blow up and fall back to a hundred times slower matching)
    rf"|(?i:{_PHONE_WORD_LIST})[^\n]*\n?[^\n]*\d(?:[ \-./()]{{0,3}}\d){{6}}"
    r"|\d(?:[ \-./()]{0,3}\d){8}(?:[^:\d]|:\D|:?$)"
    r"|\b\d{3}-\d{4}\b|\b\d{4}[ \-]\d{4}\b|\b\d\d \d\d \d\d \d\d\b|\(\d{2,5}\) ?\d{3}"
)
