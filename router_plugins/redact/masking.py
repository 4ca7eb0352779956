"""Shape-keeping masks: deterministic, and no run of 4+ identifying characters survives.

What may stay is what says nothing of the person: an e-mail's top-level domain, a
phone's country code, an IPv4's first octet, a key's public prefix (``sk-proj-``).
Partial *display* masks (a card's last four) are an opt-in per detector, see
:func:`display_mask`.
"""

from __future__ import annotations

import re

STARS = "****"
SECRET = "*****"  # a secret's length is a hint too, so it always becomes five stars


def mask_middle(value: str) -> str:
    """``john.doe`` → ``jo****oe``; short values keep only their first character."""
    if len(value) >= 6:
        return value[:2] + STARS + value[-2:]
    if len(value) >= 2:
        return value[0] + STARS
    return STARS


def mask_email(value: str) -> str:
    """``john.doe@company.com`` → ``jo****oe@co****ny.com``: the top-level domain stays."""
    local, _, domain = value.rpartition("@")
    labels = domain.split(".")
    # Keep a two-part public suffix such as co.uk / com.au whole: it says nothing of the person.
    keep = 2 if len(labels) > 2 and len(labels[-1]) == 2 and len(labels[-2]) <= 3 else 1
    name = ".".join(labels[:-keep])
    return f"{mask_middle(local)}@{mask_middle(name)}.{'.'.join(labels[-keep:])}"


def mask_digits(value: str, keep_head: int, keep_tail: int) -> str:
    """Star every digit (or letter) except the first ``keep_head`` and last ``keep_tail``; separators stay."""
    positions = [i for i, ch in enumerate(value) if ch.isalnum()]
    hidden = set(positions[keep_head : len(positions) - keep_tail])
    return "".join("*" if i in hidden else ch for i, ch in enumerate(value))


def mask_card(value: str) -> str:
    """``4485 2847 3212 0399`` → ``44** **** **** ***9``: the brand's first two digits and the check digit."""
    return mask_digits(value, 2, 1)


def mask_iban(value: str) -> str:
    """``DE89 3704 0044 0532 0130 00`` → ``DE** **** **** **** **** 00``: the country stays."""
    return value[:2] + mask_digits(value[2:], 0, 2)


def mask_ssn(value: str) -> str:
    """``123-45-6789`` → ``***-**-****``."""
    return mask_digits(value, 0, 0)


_COUNTRY_CODE = re.compile(r"\+\d{1,3}(?=[\s.\-(])")


def mask_phone(value: str, keep_tail: int = 2) -> str:
    """``+1 (415) 555-2671`` → ``+1 (***) ***-**71``: the country code and the last two digits stay."""
    head = _COUNTRY_CODE.match(value)
    if head is None:
        return mask_digits(value, 0, keep_tail)
    return head.group() + mask_digits(value[head.end() :], 0, keep_tail)


def mask_ipv4(value: str) -> str:
    """``192.168.10.24`` → ``192.*.*.*``: the first octet tells public from private ranges."""
    return value.split(".", 1)[0] + ".*.*.*"


def mask_ipv6(value: str) -> str:
    """``2001:db8:85a3::8a2e:370:7334`` → ``****:****``."""
    return STARS + ":" + STARS


def mask_uuid(value: str) -> str:
    """``550e8400-e29b-41d4-a716-446655440000`` → ``********-****-****-****-************``."""
    return mask_digits(value, 0, 0)


def mask_mac(value: str) -> str:
    """``00:1A:2B:3C:4D:5E`` → ``**:**:**:**:**:**``."""
    return mask_digits(value, 0, 0)


def mask_token(prefix: str) -> str:
    """A provider key keeps its prefix so the model knows what it was: ``sk-proj-****``."""
    return prefix + STARS


# Opt-in partial masks ([plugins.redact] display = [...]): what a support agent sees.
DISPLAY = {
    "credit_card": lambda v: mask_digits(v, 0, 4),  # **** **** **** 1111
    "ssn": lambda v: mask_digits(v, 0, 4),  # ***-**-6789
    "iban": lambda v: mask_digits(v, 4, 4),  # DE89 **** **** **** **30 00
    "phone": lambda v: mask_phone(v, keep_tail=4),  # +1 (***) ***-2671
    "uuid": lambda v: mask_digits(v, 4, 0),  # 550e****-…
    "mac": lambda v: mask_digits(v, 6, 0),  # 00:1A:2B:**:**:** (the vendor)
    "ip": lambda v: v.split(":", 1)[0] + ":" + STARS if ":" in v else mask_ipv4(v),
}


def display_mask(detector: str, value: str) -> str:
    return DISPLAY[detector](value)
