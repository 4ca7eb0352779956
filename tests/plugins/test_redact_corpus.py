"""redact: precision and recall per detector on a labelled corpus, and generated PII never leaks."""

from __future__ import annotations

import re
import time
from collections import Counter
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from router_plugins.redact.detectors import DETECTORS
from router_plugins.redact.redaction import Redaction, find_all
from router_plugins.redact.restore import restore_text

CORPUS = Path(__file__).resolve().parent.parent / "data" / "redact" / "corpus.txt"
MARKED = re.compile(r"\{\{(.+?)\}\}", re.DOTALL)
MIN_PRECISION = MIN_RECALL = 0.95


def load_corpus() -> list[tuple[str, str, list[tuple[int, int]]]]:
    """``(detector, text, expected spans)`` per line; ``\\n`` in a line is a newline."""
    cases = []
    for line in CORPUS.read_text().splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        detector, marked = line.split("\t", 1)
        marked = marked.replace("\\n", "\n")
        text, spans, pos = [], [], 0
        length = 0
        for m in MARKED.finditer(marked):
            text.append(marked[pos : m.start()])
            length += m.start() - pos
            spans.append((length, length + len(m.group(1))))
            text.append(m.group(1))
            length += len(m.group(1))
            pos = m.end()
        text.append(marked[pos:])
        cases.append((detector, "".join(text), spans))
    return cases


def score_corpus() -> dict[str, tuple[float, float, list[str]]]:
    tp, fp, fn = Counter(), Counter(), Counter()
    misses: dict[str, list[str]] = {name: [] for name in DETECTORS}
    for detector, text, expected in load_corpus():
        found = {(f.start, f.end) for f in find_all(text, [DETECTORS[detector]])}
        want = set(expected)
        tp[detector] += len(found & want)
        fp[detector] += len(found - want)
        fn[detector] += len(want - found)
        misses[detector] += [f"FP {text[s:e]!r} in {text!r}" for s, e in found - want]
        misses[detector] += [f"FN {text[s:e]!r} in {text!r}" for s, e in want - found]
    scores = {}
    for name in DETECTORS:
        precision = tp[name] / (tp[name] + fp[name]) if tp[name] + fp[name] else 1.0
        recall = tp[name] / (tp[name] + fn[name]) if tp[name] + fn[name] else 1.0
        scores[name] = (precision, recall, misses[name])
    return scores


def test_corpus_covers_every_detector_with_hits_and_near_misses():
    cases = load_corpus()
    for name in DETECTORS:
        positives = [c for c in cases if c[0] == name and c[2]]
        negatives = [c for c in cases if c[0] == name and not c[2]]
        assert len(positives) >= 5 and len(negatives) >= 5, name


@pytest.mark.parametrize("detector", list(DETECTORS))
def test_precision_and_recall(detector):
    precision, recall, misses = score_corpus()[detector]
    assert precision >= MIN_PRECISION, misses
    assert recall >= MIN_RECALL, misses


# ---------------------------------------------------------------- generated PII

LETTERS = "abcdefghijklmnopqrstuvwxyz"
ALNUM = LETTERS + LETTERS.upper() + "0123456789"


def luhn_complete(partial: str) -> str:
    for check in "0123456789":
        candidate = partial + check
        total = 0
        for i, ch in enumerate(reversed(candidate)):
            d = int(ch) * (2 if i % 2 else 1)
            total += d - 9 if d > 9 else d
        if total % 10 == 0:
            return candidate
    raise AssertionError("unreachable")


@st.composite
def emails(draw) -> str:
    local = draw(st.text(LETTERS + "0123456789", min_size=1, max_size=12))
    sep = draw(st.sampled_from(["", ".", "_", "+", "-"]))
    tail = draw(st.text(LETTERS, min_size=1, max_size=8))
    domain = draw(st.text(LETTERS, min_size=2, max_size=10))
    tld = draw(st.sampled_from(["com", "org", "io", "de", "co.uk", "travel"]))
    return f"{local}{sep}{tail}@{domain}.{tld}"


@st.composite
def cards(draw) -> str:
    prefix = draw(st.sampled_from(["4", "51", "55", "6011", "2221"]))
    body = draw(st.text("0123456789", min_size=15 - len(prefix), max_size=15 - len(prefix)))
    number = luhn_complete(prefix + body)
    sep = draw(st.sampled_from(["", " ", "-"]))
    return sep.join(number[i : i + 4] for i in range(0, 16, 4))


@st.composite
def ibans(draw) -> str:
    bban = draw(st.text("0123456789", min_size=18, max_size=18))
    check = 98 - int(bban + "131400") % 97  # D=13, E=14, then "00"
    compact = f"DE{check:02d}{bban}"
    return " ".join(compact[i : i + 4] for i in range(0, len(compact), 4)) if draw(st.booleans()) else compact


@st.composite
def ssns(draw) -> str:
    area = draw(st.integers(1, 899).filter(lambda a: a != 666))
    return f"{area:03d}-{draw(st.integers(1, 99)):02d}-{draw(st.integers(1, 9999)):04d}"


@st.composite
def phones(draw) -> str:
    """A number its country's numbering plan allows ("+1 000 000 000" is no phone number): the plan's
    example mobile or fixed-line number with its last three digits drawn, written internationally."""
    import phonenumbers

    region = draw(st.sampled_from(["US", "GB", "DE", "FR", "JP"]))
    kind = draw(st.sampled_from([phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]))
    example = phonenumbers.example_number_for_type(region, kind)
    digits = str(example.national_number)
    example.national_number = int(digits[:-3] + draw(st.text("0123456789", min_size=3, max_size=3)))
    assume(phonenumbers.is_valid_number(example))
    return phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.INTERNATIONAL)


# Three one-digit octets first (2.7.2.2) read as a version without an address word before.
ipv4s = st.tuples(*[st.integers(0, 255)] * 4).filter(lambda t: max(t[:3]) > 9).map(lambda t: ".".join(map(str, t)))
ipv6s = (
    st.ip_addresses(v=6)
    .filter(lambda a: a.ipv4_mapped is None and len([g for g in str(a).split(":") if g]) >= 2)
    .map(str)
)
uuids = st.uuids().map(str)
macs = st.binary(min_size=6, max_size=6).map(lambda b: ":".join(f"{x:02x}" for x in b))
tokens = st.one_of(
    st.text(ALNUM, min_size=30, max_size=40).map(lambda s: "sk-proj-" + s),
    st.text(ALNUM, min_size=40, max_size=48).map(lambda s: "sk-" + s),
    st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ234567", min_size=16, max_size=16).map(lambda s: "AKIA" + s),
    st.text(ALNUM, min_size=36, max_size=36).map(lambda s: "ghp_" + s),
    # A password has a digit: "password=undefined" / "=changeme" read as code or placeholders.
    st.text(ALNUM, min_size=7, max_size=19).map(lambda s: "password=" + s + "7"),
)
PII = {
    "email": emails(),
    "phone": phones(),
    "ip": st.one_of(ipv4s, ipv6s),
    "uuid": uuids,
    "token": tokens,
    "credit_card": cards(),
    "iban": ibans(),
    "ssn": ssns(),
    "mac": macs,
}
# Prose around the value: words and punctuation (digits next to a number make a longer number).
prose = st.text(LETTERS + LETTERS.upper() + " ,.;:!?()\n", max_size=40)
ALL = [DETECTORS[name] for name in DETECTORS]


def secret_part(value: str) -> str:
    """What must not survive: for ``password=x`` the password, else the whole value."""
    return value.split("=", 1)[1] if value.startswith("password=") else value


@settings(max_examples=150, deadline=None)
@given(st.sampled_from(list(PII)).flatmap(lambda name: st.tuples(st.just(name), PII[name])), prose, prose)
def test_generated_pii_is_always_masked(named, before, after):
    name, value = named
    assume(secret_part(value) not in before + after)  # prose may spell a short password itself
    text = f"{before} {value} {after}"
    redaction = Redaction(ALL)
    out = redaction.redact_text(text)
    assert secret_part(value) not in out
    # "Bearer <value>" is a bearer credential: masked and counted as a token, whatever the value looks like.
    bearer = before.rstrip().lower().endswith("bearer") and redaction.counts["token"] >= 1
    assert redaction.counts[name] >= 1 or bearer


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.sampled_from(list(PII)), prose), min_size=1, max_size=4), st.data())
def test_restore_round_trips_generated_pii(items, data):
    values = [data.draw(PII[name]) for name, _ in items]
    text = " ".join(f"{v} {p}" for v, (_, p) in zip(values, items, strict=True))
    assume(not any(secret_part(v) in p for v in values for _, p in items))
    redaction = Redaction(ALL, restore=True)
    out = redaction.redact_text(text)
    for value in values:
        assert secret_part(value) not in out
    assert restore_text(out, redaction.originals) == text


@pytest.mark.parametrize(
    "text, hidden, counts",
    [
        # found by HYPOTHESIS_PROFILE=explore: a "+" number run into the next number was no phone at all
        ("+1 201-555-0143  4111 1111 1111 1111", ["201-555-01", "4111 1111 1111"], {"phone": 1, "credit_card": 1}),
        ("call +44 20 7946 0958 123 456 789 012 now", ["20 7946 09"], {"phone": 1}),
        ("+1 201-555-0123  +1 201-555-0100  4111 1111 1111 1111", ["555-0123", "555-01", "1111 1111 11"], {"phone": 2}),
        # one space apart, the card was read as the tail of a 20-digit run and neither was found
        ("+1 201 555 0143 4111 1111 1111 1111 x", ["555 01", "1111 1111 11"], {"phone": 1, "credit_card": 1}),
        ("ref 0143 3782 822463 10005", ["822463", "3782"], {"credit_card": 1}),
    ],
)
def test_a_phone_number_run_into_another_number_is_still_found(text, hidden, counts):
    redaction = Redaction(ALL)
    out = redaction.redact_text(text)
    assert not any(h in out for h in hidden), out
    assert {k: redaction.counts[k] for k in counts} == counts


def test_a_long_number_is_not_searched_for_short_cards():
    """Only a 15+ digit card is looked for after a run's first group: a Luhn-valid 12 digits inside
    a long number is as likely chance."""
    redaction = Redaction(ALL)
    assert redaction.redact_text("1234 5678 9012 3456 7890") == "1234 5678 9012 3456 7890"


def test_a_value_overlapping_another_and_running_past_it_is_masked_to_its_end():
    """Overlaps keep the first value and grow it to the later one's end: no tail of either survives."""
    from router_plugins.redact.detectors import Detector
    from router_plugins.redact.finding import Finding

    def early(text):
        yield Finding(0, 8, "email", "E" * 8)

    def late(text):
        yield Finding(4, 14, "phone", "L" * 10)

    found = find_all("abcdefghijklmnop", [Detector("email", early, "a"), Detector("phone", late, "e")])
    assert found == [Finding(0, 14, "email", "E" * 8 + "******")]


# ---------------------------------------------------------------- linear time

ADVERSARIAL_SIZE = 65_536
# Generous: every input takes a few milliseconds; a quadratic pattern takes seconds.
MAX_SECONDS = 0.5


def _repeat(unit: str, suffix: str = "") -> str:
    body = unit * (ADVERSARIAL_SIZE // len(unit) + 1)
    return body[: ADVERSARIAL_SIZE - len(suffix)] + suffix


def _adversarial() -> dict[str, str]:
    rng = __import__("random").Random(7)
    return {
        "a_ password": _repeat("a_", " password=1"),
        "a- secret": _repeat("a-", " secret: x"),
        "a_ token": _repeat("a_", "token"),
        "dashes": _repeat("-"),
        "a@": _repeat("a@"),
        "1 ": _repeat("1 "),
        "::": _repeat("::"),
        "sk-": _repeat("sk-", "."),
        "-sk-": _repeat("-sk-a"),
        "xoxb-": _repeat("xoxb-", "_"),
        "github_pat_": _repeat("github_pat_", "-"),
        "-eyJ": _repeat("-eyJ"),
        "jwt payload": "eyJaaaaa.eyJ" + _repeat("-eyJ"),
        "zeros": _repeat("0"),
        "a. @": _repeat("a.", "@"),
        "@ a.": "x@" + _repeat("a."),
        "+1 digits": _repeat("+1" + "2" * 40 + " "),
        "+1(": _repeat("+1(2)"),
        "pem": _repeat("-----BEGIN A PRIVATE KEY-----"),
        "scheme run": _repeat("a.", "://b:c"),
        "url colons": "a://" + _repeat(":"),
        "bearer": "Bearer " + _repeat("a"),
        "password spaces": "password" + _repeat(" "),
        "1.": _repeat("1."),
        "ipv6 run": _repeat("1." * 500 + "1::1."),
        "key run": "sk-" + _repeat("a" * 1000 + "-sk-"),
        "iban": _repeat("DE12 "),
        "digits": _repeat("4"),
        "punctuation": "".join(rng.choice("-_.:@/+=' \"\\()") for _ in range(ADVERSARIAL_SIZE)),
    }


@pytest.mark.parametrize("name", list(_adversarial()))
def test_detectors_are_linear_on_adversarial_input(name):
    """Every built-in pattern runs on client text with a backtracking engine: no input may make it quadratic."""
    text = _adversarial()[name]
    slowest = []
    start = time.perf_counter()
    Redaction(list(DETECTORS.values())).redact_text(text)  # the seed set and the windows
    slowest.append((time.perf_counter() - start, "all"))
    for detector in DETECTORS.values():  # each finder over the whole text, without windows
        start = time.perf_counter()
        list(detector.find(text))
        slowest.append((time.perf_counter() - start, detector.name))
    seconds, detector = max(slowest)
    assert seconds < MAX_SECONDS, f"{detector} took {seconds:.2f} s on 64 KB of {name!r}"


# ---------------------------------------------------------------- text that must stay as it is

UNTOUCHED = [
    'api_key = os.environ["OPENAI_API_KEY"]',
    "client_secret: str",
    "if not api_key:\n    raise ValueError('missing key')",
    "password = getpass.getpass()",
    'token = request.headers.get("Authorization")',
    "SECRET_KEY = settings.SECRET_KEY",
    "def login(username: str, password: str) -> Token:",
    "the password is required",
    "set max_tokens=100 and sort(key=lambda x: x)",
    "Invoice no. 415-555-2671 is due",
    "EAN 4006381333931 on the box",
    "archived at 20240315103000, ts=1700000000004",  # both pass Luhn
    "see section 4.2.1.3 and versions 2.7.2.2, 3.1.1.6",
    "ISBN 978-1-59293-468-3",
    "IEEE standard 854-1987",
    "in binary 160 = 1010 0000",
]


@pytest.mark.parametrize("text", UNTOUCHED)
def test_near_misses_from_the_issue_stay_as_they_are(text):
    assert Redaction(ALL).redact_text(text) == text
