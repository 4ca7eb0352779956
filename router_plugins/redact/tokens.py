"""The ``token`` detector: provider API keys, JWTs, bearer tokens, private keys and passwords."""

from __future__ import annotations

import base64
import binascii
import math
import re
from collections.abc import Iterator
from typing import NamedTuple

import re2

from .finding import Finding
from .masking import SECRET, mask_token

# Where a key ends: the next character is not part of it.
END = r"(?![A-Za-z0-9_\-])"
# All key formats are searched at once by one RE2 pattern (a DFA: one linear pass,
# however many formats). RE2 has no look-around, so the start is one consumed
# character (or a JSON escape such as "\n") and the end is checked in Python.
START = r"(?:^|[^A-Za-z0-9_]|\\[nrtbf])"
_KEY_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")

# The bodies of the Python patterns below are possessive (``++``, ``{m,}+``): a run
# that fails is never re-split; and each is only tried where it can start.


class KeyPattern(NamedTuple):
    """A key format: its recognisable prefix (kept in the mask) and its body."""

    prefix: str
    body: str


def _key(trigger: str, prefix: str, body: str) -> KeyPattern:
    # RE2 is linear by construction: possessive marks and length caps (there for
    # Python's backtracking engine) are dropped; RE2 refuses repeats above 1000.
    return KeyPattern(prefix, body.replace("*+", "*").replace("++", "+").replace("}+", "}").replace("{5,1024}", "{5,}"))


KEYS: tuple[KeyPattern, ...] = (
    _key("sk-ant-", r"sk-ant-(?:api\d\d-|admin\d\d-)?", r"[A-Za-z0-9_\-]{20,}+"),
    _key("sk-", r"sk-(?:proj-|svcacct-|admin-)?", r"[A-Za-z0-9_\-]{20,}+"),
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
    _key("gsk_", r"gsk_", r"[A-Za-z0-9]{40,}+"),  # Groq
    _key("npm_", r"npm_", r"[A-Za-z0-9]{36}"),
    _key("pypi-", r"pypi-", r"AgE[A-Za-z0-9_\-]{50,}+"),
    _key("SG.", r"SG\.", r"[A-Za-z0-9_\-]{22}\.[A-Za-z0-9_\-]{43}"),  # SendGrid
    _key("ya29.", r"ya29\.", r"[A-Za-z0-9_\-]{20,}+"),  # Google OAuth access token
    _key("dop_v1_", r"do[opr]_v1_", r"[a-f0-9]{64}"),  # DigitalOcean
    _key("shp", r"shp(?:at|ca|pa|ss)_", r"[a-fA-F0-9]{32}"),  # Shopify
    _key("sq0", r"sq0(?:atp|csp)-", r"[A-Za-z0-9_\-]{22,}+"),  # Square
    _key("glptt-", r"gl(?:ptt|dt|rt|cbt|imt|agent|soat|ffct)-", r"[0-9A-Za-z_\-]{20,}+"),  # GitLab, other kinds
    _key("xapp-", r"xapp-", r"\d-[A-Z0-9]+-\d+-[a-z0-9]+"),  # Slack app token
    _key("hooks.slack.com", r"https://hooks\.slack\.com/(?:services|workflows)/", r"[A-Za-z0-9+/]{20,}+"),
    _key("discord", r"https://(?:ptb\.|canary\.)?discord(?:app)?\.com/api/webhooks/", r"\d+/[A-Za-z0-9_\-]{30,}+"),
    _key("AGE-SECRET-KEY-1", r"AGE-SECRET-KEY-1", r"[QPZRY9X8GF2TVDW0S3JN54KHCE6MUA7L]{58}"),
    _key("hvs.", r"hv[sb]\.", r"[A-Za-z0-9_\-]{24,}+"),  # HashiCorp Vault
    _key("dp.pt.", r"dp\.(?:pt|st|sa|ct|scim|audit)\.", r"[A-Za-z0-9]{40,}+"),  # Doppler
    _key("PMAK-", r"PMAK-", r"[a-f0-9]{24}-[a-f0-9]{34}"),  # Postman
    _key("NRAK-", r"NRAK-", r"[A-Z0-9]{27}"),  # New Relic
    _key("lin_api_", r"lin_api_", r"[A-Za-z0-9]{40}"),  # Linear
    _key("ntn_", r"ntn_", r"[A-Za-z0-9]{40,}+"),  # Notion
    _key("secret_", r"secret_", r"[A-Za-z0-9]{43}"),  # Notion (legacy)
    _key("figd_", r"figd_", r"[A-Za-z0-9_\-]{40,}+"),  # Figma
    _key("glc_", r"gl(?:c|sa)_", r"[A-Za-z0-9_+/=]{32,}+"),  # Grafana
    _key("sntry", r"sntr[ysu]s_", r"[A-Za-z0-9_+/=]{40,}+"),  # Sentry
    _key("dapi", r"dapi", r"[a-f0-9]{32}(?:-\d)?"),  # Databricks
    _key("r8_", r"r8_", r"[A-Za-z0-9]{37}"),  # Replicate
    _key("pplx-", r"pplx-", r"[A-Za-z0-9]{48}"),  # Perplexity
    _key("sbp_", r"sbp_", r"[a-f0-9]{40}"),  # Supabase
    _key("AC", r"AC", r"[0-9a-f]{32}"),  # Twilio account SID
    _key("SK", r"SK", r"[0-9a-f]{32}"),  # Twilio API key
    _key("key-", r"key-", r"[0-9a-f]{32}"),  # Mailgun
    _key("-us", r"", r"[0-9a-f]{32}-us\d{1,2}"),  # Mailchimp
    _key("sk_", r"sk_(?:live_|test_)?", r"[0-9A-Za-z]{24,}+"),  # Stripe and alike
    _key("pk_", r"pk_(?:live_|test_)?", r"[0-9A-Za-z]{24,}+"),
    _key("rk_", r"rk_(?:live_|test_)?", r"[0-9A-Za-z]{24,}+"),
    _key("whsec_", r"whsec_", r"[0-9A-Za-z]{24,}+"),
    _key(":AA", r"", r"\d{8,10}:AA[A-Za-z0-9_\-]{33}"),  # Telegram bot token
    _key("AKID", r"AKID", r"[A-Za-z0-9]{32}"),  # Tencent
    _key("LTAI", r"LTAI", r"[A-Za-z0-9]{20}"),  # Alibaba
    # JWT: the header is a short JSON object; bounded for the same reason as xox.
    _key("eyJ", r"eyJ", r"[A-Za-z0-9_\-]{5,1024}+\.eyJ[A-Za-z0-9_\-]{5,}+\.[A-Za-z0-9_\-]*+"),
)

# One alternative per format, most specific first (RE2 takes the first that matches).
KEYS_RE2 = re2.compile(START + "(?:" + "|".join(f"({k.prefix}){k.body}" for k in KEYS) + ")")

# Bearer credentials must contain a digit, so "a bearer authentication scheme" stays.
_BEARER = re.compile(r"\b([Bb]earer\s+)(?=[A-Za-z._~+/\-]*\d)([A-Za-z0-9._~+/\-]{16,}=*)")
# The body cannot contain "-----", so the search for its END stops at the first marker
# instead of running to the end of the text from every BEGIN.
_PEM_BODY = r"[A-Za-z0-9+/=\s:,\\]*+(?:-(?!----)[A-Za-z0-9+/=\s:,\\]*+)*+"
_PEM = re.compile(r"-----BEGIN ((?:[A-Z0-9]{1,20} ){0,4}PRIVATE KEY)-----" + _PEM_BODY + r"(?:-----END \1-----)?")
# scheme://user:PASSWORD@host: only the password goes.
# Searched from the "://" (a literal), not from every letter of a scheme-like run.
_URL_PASSWORD = re.compile(r"(?<=[A-Za-z0-9+.\-])://[^\s:/@\"'<>\[\]]*+:([^\s@/\"'<>\[\]]++)@")
# ---------------------------------------------------------------- secrets by context
# A name that says "secret" followed by an assignment, in any of the forms configs and
# code use: NAME=v (env), NAME: v (YAML), "NAME": "v" (JSON), NAME = "v" (code),
# --name v / --name=v (CLI), <name>v</name> (XML). What decides is the name and the
# value: a right-hand side that is an identifier, a call, a subscript or a type
# annotation (api_key = os.environ["X"], client_secret: str) is code, not a secret.

# The name: an identifier (dots and dashes allowed, as in YAML keys and CLI flags).
# RE2 (one linear pass): a name holding a secret-ish word, then its separator. The name
# starts where the identifier starts (leftmost match); which separator fits which form
# (a blank only after "--flag", ">" only after "<tag") is checked in Python.
_NAMED = re2.compile(
    r"(--?|<)?([A-Za-z0-9_.\-]*(?i:pass|pwd|secret|credential|key|token|auth|sig)[A-Za-z0-9_.\-]*)"
    r"([\"']?[ \t]*(?:=>|:=|=|:)[ \t]*|>|[ \t]+)"
)
# Names whose value is a secret whatever it looks like (once it is not code).
# A strong word must end the name ("PGPASSWORD", "client_secret", "SecretAccessKey"):
# "password_file", "GetPassWarning" and "secret_name" hold other things.
_STRONG = re.compile(
    r"(?:password|passwd|passphrase|passcode|pwd|secret|credentials?|privatekey|signingkey|encryptionkey|apikey"
    r"|(?:secret|password)(?:key|token|value)"
    r"|accesskey|secretaccesskey|(?:auth|access|api|refresh|bearer|session|bot|personalaccess)token)\d*$"
)
# Names whose value is a secret when it also looks like one (high entropy): *_KEY,
# *_TOKEN, AUTH … ("sort_key", "max_tokens", "token_count" hold ordinary values).
_WEAK = re.compile(
    r"(?:api|access|auth|account|master|client|app|service|private|signing|session|bearer|refresh|id)?(?:key|token|auth|sig|signature)$"
)
_NOT_SECRET_NAMES = re.compile(
    r"tokens|tokenizer|keyword|keyboard|keys$|monkey|turkey|hockey|donkey|jockey|passthrough|passenger|compass|bypass|passive|passed|passes|passing|password_?(?:reset|policy|hint|field|length|strength|prompt|change|expir)"
)
# The value: quoted, or up to a blank; "&next=" ends an unquoted value in a query string.
_QUOTED = re.compile(r"\"((?:[^\"\\\n]|\\.){1,256})\"|'([^'\n]{1,256})'|`([^`\n]{1,256})`")
_BARE = re.compile(r"[^\s\"'`,;<>]{1,256}")
# Code on the right-hand side: a dotted name, maybe called or subscripted; a type; a
# template or variable reference; a literal keyword.
# Code on the right-hand side, not a secret: a keyword or type, a template or variable
# reference, an attribute (settings.SECRET_KEY), or a call or subscript whose bracket
# closes on the same line (os.environ["X"], get_secret()); "i(eTnl1k" is a password.
_CODE_WORDS = re.compile(
    r"(?:str|bytes|int|bool|float|None|none|null|nil|true|false|True|False|SecretStr|Optional|string|undefined"
    r"|required|optional|self|this|os|env|getenv|input|getpass|raise|return|if|not|and|or|is|in|def|lambda"
    r"|redacted|REDACTED|changeme|xxx+|XXX+|\*+|\.\.\.|<[^>]*>?)$"
    r"|\$\{|\$\(|\$[A-Za-z_]\w*$|%\(\w+\)[sdr]|%[sdr]$|\{\{|\{[A-Za-z_]\w*\}$|.*\$\{"
)
_ATTRIBUTE = re.compile(r"(?:[A-Za-z_]\w*\.)+[A-Za-z_]\w*")
_CALL = re.compile(r"(?:[A-Za-z_]\w*\.)*[A-Za-z_]\w*([(\[])")


def is_code(text: str, start: int, value: str) -> bool:
    """Whether the right-hand side starting at ``text[start]`` (read as ``value``) is code."""
    if _CODE_WORDS.match(value) or _ATTRIBUTE.fullmatch(value):
        return True
    call = _CALL.match(text, start)
    if call is None:
        return False
    opener = call.group(1)
    closer = ")" if opener == "(" else "]"
    depth = 0
    for ch in text[call.end() - 1 : call.end() + 256]:
        if ch == "\n":
            return False
        depth += (ch == opener) - (ch == closer)
        if depth == 0:
            return True
    return False


# "the password is hunter2", "my api key was: X", "PIN is 1234": prose, not an assignment.
_PROSE = re2.compile(
    r"(?i)\b(password|passwd|passphrase|passcode|pwd|secret|api[ _\-]?key|access key|token|pin)"
    r"(?:\s+(?:for|of|to)\s+[\w.@\-]{1,64})?\s+(?:is|was|are|reads|remains|set to|changed to)\s*:?\s+"
)
_PROSE_STRONG = frozenset({"password", "passwd", "passphrase", "passcode", "pwd", "secret"})
_PROSE_VALUE = re.compile(r"[\"'`“‘]?([^\s\"'`”’]{4,128})")

# Basic credentials: "Authorization: Basic <base64 of user:password>", curl -u user:pass.
# Searched from the literal "asic" (fast); the "B"/"b" before it is checked in Python.
_BASIC = re.compile(r"asic\s++([A-Za-z0-9+/]{8,}+={0,2})(?![A-Za-z0-9+/=])")
_CURL_USER = re.compile(r"(?:^|\s)(?:-u|--user)\s+[\"']?[^\s:\"']{1,64}:([^\s\"']{1,128})")


def entropy(value: str) -> float:
    """Shannon entropy in bits per character."""
    counts: dict[str, int] = {}
    for ch in value:
        counts[ch] = counts.get(ch, 0) + 1
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def looks_random(value: str) -> bool:
    """A value shaped like a generated key or password: long enough, letters and digits, high entropy."""
    if len(value) < 12 or " " in value:
        return False
    has_digit = any(ch.isdigit() for ch in value)
    has_alpha = any(ch.isalpha() for ch in value)
    if not (has_digit and has_alpha):
        return False
    if len(value) < 16:  # short: it must also mix cases or carry a symbol, as passwords do
        if value.isalnum() and (value.islower() or value.isupper()):
            return False
        return entropy(value) >= 3.2
    hexadecimal = all(ch in "0123456789abcdefABCDEF" for ch in value)
    return entropy(value) >= (3.0 if hexadecimal else 3.5)


# Values that stand for a secret in documentation: "password", "TOKEN", "my_secret_key",
# "a secret", "hf_jwt_…". A real one has a digit (placeholders rarely do).
_PLACEHOLDER = re.compile(
    r"(?i).*(?:pass|pwd|secret|token|key|example|changeme|placeholder|your|xxx).*|[A-Z_]+|<.*>|\{.*\}"
)


def is_placeholder(value: str) -> bool:
    return (
        "…" in value
        or "..." in value
        or (not any(ch.isdigit() for ch in value) and bool(_PLACEHOLDER.fullmatch(value)))
    )


def _name_kind(name: str) -> str | None:
    """``strong``, ``weak`` or ``None`` for an assigned name (any casing, any separators)."""
    folded = name.lower().replace("_", "").replace("-", "").replace(".", "")
    if _NOT_SECRET_NAMES.search(folded):
        return None
    if _STRONG.search(folded):
        return "strong"
    tail = re.split(r"[_.\-]", name)[-1].lower() if re.search(r"[_.\-]", name) else folded
    if _WEAK.search(folded) and (_WEAK.fullmatch(tail) or folded.endswith(("key", "token"))):
        return "weak"
    return None


def _value_at(text: str, pos: int) -> tuple[int, int] | None:
    """The span of the value starting at ``text[pos]``: quoted content, or a bare run."""
    m = _QUOTED.match(text, pos)
    if m is not None:
        group = next(g for g in (1, 2, 3) if m.group(g) is not None)
        return m.start(group), m.end(group)
    m = _BARE.match(text, pos)
    if m is None:
        return None
    value = m.group()
    cut = re.search(r"&[A-Za-z_][\w.\-]*=", value)  # a query string's next parameter
    end = m.start() + (cut.start() if cut else len(value))
    while (
        end > m.start()
        and text[end - 1] in ")]}"
        and text.count("([{"[")]}".index(text[end - 1])], m.start(), end) < text.count(text[end - 1], m.start(), end)
    ):
        end -= 1  # a closer that the value did not open: "f(password=pw)"
    while end > m.start() and text[end - 1] in ".!?:":  # sentence punctuation
        end -= 1
    return (m.start(), end) if end > m.start() else None


def _secret_value(text: str, start: int, value: str, quoted: bool, kind: str) -> bool:
    if not value or len(value) > 256 or is_placeholder(value):
        return False
    if not quoted and is_code(text, start, value):
        return False
    if quoted and len(value) < 4 and _CODE_WORDS.fullmatch(value):
        return False
    if kind == "strong":
        return len(value) >= 3 and not value.startswith(("${", "{{", "%(", "$("))
    return looks_random(value)


def find_assignments(text: str) -> Iterator[tuple[int, int]]:
    """Spans of values assigned to secret-like names."""
    for m in _NAMED.finditer(text):
        flag, name, separator = m.group(1), m.group(2).lstrip("-."), m.group(3)
        if (separator == ">" and flag != "<") or (separator.isspace() and not (flag or "").startswith("-")):
            continue
        if m.start(2) > 0 and not flag and (text[m.start(2) - 1].isalnum() or text[m.start(2) - 1] in "_.-"):
            continue  # RE2 may start inside a longer run (after a character it consumed)
        if separator.rstrip().endswith(":") and text[m.end() : m.end() + 1] in ("/", ":"):
            continue  # a URL's "://" or C++'s "::"
        kind = _name_kind(name)
        if kind is None:
            continue
        if flag and flag.startswith("-") and re.search(r"(?i)(?:token|api.?key)$", name):
            kind = "strong"  # --token X, --api-key X: a flag's value is what it names
        span = _value_at(text, m.end())
        if span is None:
            continue
        start, end = span
        quoted = start > m.end()
        value = text[start:end]
        if not quoted and separator.rstrip().endswith(":") and value[:1].isalpha():
            # "client_secret: str = 'x'": a type annotation, then maybe the real value.
            after = re.match(r"[A-Za-z_][\w.\[\], |]*?[ \t]*=[ \t]*", text[start : start + 128])
            if after:
                span = _value_at(text, start + after.end())
                if span is None:
                    continue
                start, end = span
                quoted = start > 0 and text[start - 1] in "\"'`"
                value = text[start:end]
        if _secret_value(text, start, value, quoted, kind):
            yield start, end
    for m in _PROSE.finditer(text):
        v = _PROSE_VALUE.match(text, m.end())
        if v is None:
            continue
        value = v.group(1).rstrip(".,;:!?)")
        quoted = v.group().startswith(('"', "'", "`", "“", "‘"))
        if not quoted and is_code(text, v.start(1), value):
            continue
        word = m.group(1).lower()
        if word in _PROSE_STRONG:
            # A value that cannot be an ordinary word: quoted, or with a digit or symbol.
            found = quoted or any(not ch.isalpha() for ch in value)
        elif word == "pin":
            found = value.isdigit() and 4 <= len(value) <= 8
        else:  # "the token is …", "the api key was …": a key-shaped value
            found = len(value) >= 8 and any(ch.isdigit() for ch in value) and any(ch.isalpha() for ch in value)
        if found:
            yield v.start(1), v.start(1) + len(value)


def find_basic(text: str) -> Iterator[tuple[int, int]]:
    for m in _BASIC.finditer(text) if "asic" in text else ():
        if m.start() == 0 or text[m.start() - 1] not in "Bb" or (m.start() > 1 and text[m.start() - 2].isalnum()):
            continue
        try:
            decoded = base64.b64decode(m.group(1) + "=" * (-len(m.group(1)) % 4), validate=True)
        except (binascii.Error, ValueError):
            continue
        if b":" in decoded:
            yield m.start(1), m.end(1)
    if "-u" in text:
        for m in _CURL_USER.finditer(text):
            yield m.start(1), m.end(1)


# A loose RE2 superset of everything above (see detectors.Detector).
TOKEN_SEED = (
    r"sk-|AKIA|ASIA|gh[pousr]_|github_pat_|xox[abposre]-|AIza|[sr]k_(?:live|test)_|glpat-|hf_[A-Za-z0-9]{30}"
    r"|eyJ[A-Za-z0-9_\-]{5,}\.eyJ|(?i:bearer)\s|PRIVATE KEY-----|://[^\s:/@]*:[^\s@/]+@"
    r"|gsk_|npm_|pypi-|SG\.|ya29\.|do[opr]_v1_|shp(?:at|ca|pa|ss)_|sq0|gl(?:ptt|dt|rt|cbt|imt|agent|soat|ffct)-|xapp-"
    r"|hooks\.slack\.com|discord(?:app)?\.com/api/webhooks|AGE-SECRET-KEY|hv[sb]\.|dp\.[a-z]+\.|PMAK-|NRAK-|lin_api_"
    r"|ntn_|secret_|figd_|gl(?:c|sa)_|sntr[ysu]s_|dapi|r8_|pplx-|sbp_|AC[0-9a-f]{32}|SK[0-9a-f]{32}|key-[0-9a-f]{32}"
    r"|[0-9a-f]{32}-us|[psr]k_(?:live|test)?_?[0-9A-Za-z]{24}|whsec_|\d:AA|AKID|LTAI"
    # name = value, name: value, "name": "value": a name that takes any value …
    r"|(?i:pass(?:word|wd|phrase|code)|pwd|secret|credentials?"
    r"|(?:private|signing|encryption|api|access|secret)[_\-.]?key|(?:secret|password)[_\-.]?(?:token|value)"
    r"|(?:auth|access|api|refresh|bearer|session|bot|personal[_\-.]?access)[_\-.]?token)\d*[\"'>]?[ \t]*[:=]"
    # … or another *key/*token/*auth name, which takes only a generated-looking value (12+)
    r"|(?i:key|token|auth|sig)[\w.\-]*[\"'>]?[ \t]*(?:=>|:=|=|:)[ \t]*[\"'`]?[^\s\"'`]{12}"
    # prose: "the password (for x) is …" — strong words only
    r"|\b(?i:password|passwd|passphrase|passcode|pwd|secret|api[ _\-]?key|access key|token|pin)"
    r"(?:\s+(?:for|of|to)\s+\S{1,64})?\s+(?i:is|was|are|reads|remains|set to|changed to)\s"
    # --flag value, -u user:pass, Basic <base64 with a digit, a symbol or padding>
    r"|(?:^|\s)--?[\w.\-]*(?i:pass|pwd|secret|key|token|auth)[\w.\-]*[ =]|(?:^|\s)(?:-u|--user)\s"
    r"|[Bb]asic\s+[A-Za-z0-9+/]*[0-9+/=]|<[\w.\-]*(?i:pass|pwd|secret|key|token|auth)[\w.\-]*>"
)


def find_tokens(text: str) -> Iterator[Finding]:
    for m in KEYS_RE2.finditer(text):
        if m.end() < len(text) and text[m.end()] in _KEY_CHARS:
            continue  # the run goes on: part of a longer word, not a key
        group = next(i for i in range(1, len(KEYS) + 1) if m.group(i) is not None)
        yield Finding(m.start(group), m.end(), "token", mask_token(m.group(group)))
    if "earer" in text:
        for m in _BEARER.finditer(text):
            yield Finding(m.start(2), m.end(2), "token", SECRET)
    if "PRIVATE KEY-----" in text:
        for m in _PEM.finditer(text):
            label = m.group(1)
            yield Finding(m.start(), m.end(), "token", f"-----BEGIN {label}----- {SECRET} -----END {label}-----")
    if "://" in text:
        for m in _URL_PASSWORD.finditer(text):
            if not is_placeholder(m.group(1)):  # scheme://user:PASSWORD@host in documentation
                yield Finding(m.start(1), m.end(1), "token", SECRET)
    for start, end in find_assignments(text):
        yield Finding(start, end, "token", SECRET)
    for start, end in find_basic(text):
        yield Finding(start, end, "token", SECRET)
