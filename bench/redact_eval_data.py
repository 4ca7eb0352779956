"""Evaluation data for the redact plugin, from generators and text nobody on this project wrote.

- Faker, every locale it ships: e-mails, phone numbers, IPv4/IPv6, UUIDs, MAC addresses,
  card numbers of every card type it knows, IBANs, US SSNs, passwords, and the
  near-misses (EAN-13/EAN-8 barcodes, ISBNs, hashes, dates, Unix times, post codes).
- libphonenumber's example numbers (``phonenumbers.example_number_for_type``) for every
  region and number type, written in its international, national and E.164 formats.
- Secret formats as the issuers document them (the shapes gitleaks' rules encode),
  with random bodies.
- Natural negatives: docstrings and comments of installed code — the standard library
  for the dev split, third-party packages in site-packages for the report split.

Two splits that share no seed, no template and no negative text: ``dev`` (tuned on)
and ``report`` (figures quoted). Values are placed in templates; a sample records
where its value is and which of its characters identify it (see ``Sample``).
"""

from __future__ import annotations

import ast
import base64
import io
import random
import string
import sys
import sysconfig
import tokenize
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import NamedTuple

import phonenumbers
from faker import Faker
from faker.config import AVAILABLE_LOCALES


class Sample(NamedTuple):
    """``text[start:end]`` is the value; ``ident`` its identifying characters (what may not leak)."""

    detector: str
    text: str
    start: int
    end: int
    ident: str
    kind: str  # the generator, for per-kind breakdowns


# ---------------------------------------------------------------- templates

GENERIC = {
    "dev": [
        "Please contact {v} about the order.",
        "{v}",
        "Customer record: name=Ana, value={v}, status=active",
        '{{"field": "{v}", "ok": true}}',
        "Hi team,\nthe value is {v}.\nThanks",
        "- {v}\n- another item",
    ],
    "report": [
        "Can you double-check {v} before Friday?",
        "| owner | {v} |",
        '{{"user": {{"contact": "{v}", "active": false}}}}',
        "log: user updated profile -> {v} (ok)",
        "<td>{v}</td>",
        "Notes: {v}; follow up next week.",
        "name,value\nx,{v}\n",
    ],
    "final": [
        "Forwarding this from {v}, see below.",
        "* contact: {v}",
        '[{{"k": "{v}"}}]',
        "Row 7 :: {v} :: pending",
        "Subject: update\n\n{v}\n-- \nregards",
        "Q: what is on file? A: {v}",
    ],
}
CONTEXT = {
    "phone": {
        "dev": ["Call me at {v}", "Tel: {v}", "mobile {v}, evenings only"],
        "report": ["You can reach our office on {v}.", "Phone number: {v}", "WhatsApp {v} if urgent", "fax {v}"],
        "final": ["Contact number: {v}", "please call {v} tomorrow", "Tel.: {v}"],
    },
    "ssn": {
        "dev": ["SSN: {v}", "social security number {v} on the form"],
        "report": ["Employee SSN {v} on file", "SS# {v}", "Taxpayer id (SSN) {v}"],
        "final": ["ssn={v}", "Social Security No. {v}"],
    },
}
SECRET_FORMS = {
    "dev": [
        ("export {NAME}={v}", ["PASSWORD", "DB_PASSWORD", "API_KEY", "SECRET_KEY", "AWS_SECRET_ACCESS_KEY"]),
        ('{{"{name}": "{v}"}}', ["password", "apiKey", "client_secret", "secretKey"]),
        ("{name}: {v}", ["password", "secret", "api_key", "db_password"]),
        ("the password is {v}", [""]),
    ],
    "report": [
        ("--{flag} {v}", ["password", "api-key", "secret", "token"]),
        ("{NAME}='{v}'", ["PGPASSWORD", "MYSQL_ROOT_PASSWORD", "STRIPE_API_KEY", "GITHUB_TOKEN", "JWT_SECRET"]),
        ('"{Name}": "{v}",', ["SecretAccessKey", "ClientSecret", "Password", "AccessToken"]),
        ("<{name}>{v}</{name}>", ["password", "apikey"]),
        ("My {name} is {v}, please keep it safe.", ["password", "api key", "passphrase"]),
    ],
    "final": [
        ('{name}: "{v}"', ["db_password", "SMTP_PASSWORD", "apiSecret"]),
        ("set {NAME}={v}", ["PASSWORD", "API_TOKEN", "CLIENT_SECRET"]),
        ("mysql -u root --{flag}={v} app", ["password"]),
        ("The Wi-Fi {name} is {v}", ["passphrase", "password"]),
        ('config.{name} = "{v}"', ["secret_key", "password", "api_token"]),
    ],
}


def _place(template: str, value: str, detector: str, ident: str, kind: str) -> Sample:
    marker = "\x00"
    text = template.replace("{v}", marker).replace("{{", "{").replace("}}", "}")
    start = text.index(marker)
    return Sample(detector, text.replace(marker, value), start, start + len(value), ident, kind)


def _alnum(value: str) -> str:
    return "".join(ch for ch in value if ch.isalnum())


# ---------------------------------------------------------------- values


def _fakers(rng: random.Random) -> list[Faker]:
    warnings.simplefilter("ignore")
    fakers = []
    for locale in AVAILABLE_LOCALES:
        fake = Faker(locale)
        fake.seed_instance(rng.randrange(1 << 30))
        fakers.append(fake)
    return fakers


def _call(fakers: list[Faker], rng: random.Random, method: str, *args: object, **kw: object) -> str:
    """``method`` of a random locale that has it (not every locale has every provider)."""
    while True:
        try:
            return getattr(rng.choice(fakers), method)(*args, **kw)
        except (AttributeError, NotImplementedError, KeyError):
            continue


def phone_ident(value: str) -> str:
    """A phone's digits without its country code (which may stay)."""
    digits = "".join(ch for ch in value if ch.isdigit())
    stripped = value.lstrip()
    if stripped.startswith(("+", "00")):
        try:
            number = phonenumbers.parse("+" + (digits[2:] if stripped.startswith("00") else digits), None)
            cc = str(number.country_code)
            return digits[len(cc) + (2 if stripped.startswith("00") else 0) :]
        except phonenumbers.NumberParseException:
            return digits
    return digits


def emails(fakers: list[Faker], rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    for _ in range(n):
        value = _call(fakers, rng, rng.choice(["email", "free_email", "company_email", "ascii_safe_email"]))
        yield value, value.rsplit("@", 1)[0], "faker"


def phones(fakers: list[Faker], rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    regions = sorted(phonenumbers.SUPPORTED_REGIONS)
    types = [phonenumbers.PhoneNumberType.MOBILE, phonenumbers.PhoneNumberType.FIXED_LINE]
    formats = [
        phonenumbers.PhoneNumberFormat.INTERNATIONAL,
        phonenumbers.PhoneNumberFormat.NATIONAL,
        phonenumbers.PhoneNumberFormat.E164,
    ]
    for i in range(n):
        if i % 2:
            value = _call(fakers, rng, "phone_number")
            kind = "faker"
        else:
            number = phonenumbers.example_number_for_type(rng.choice(regions), rng.choice(types))
            if number is None:
                continue
            value = phonenumbers.format_number(number, rng.choice(formats))
            kind = "libphonenumber"
        yield value, phone_ident(value), kind


def ips(fakers: list[Faker], rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    for i in range(n):
        if i % 3 == 2:
            value = _call(fakers, rng, "ipv6")
            yield value, _alnum(value), "ipv6"
        else:
            value = _call(fakers, rng, "ipv4_private" if i % 3 else "ipv4_public")
            yield value, "".join(value.split(".")[1:]), "ipv4"


def uuids(fakers: list[Faker], rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    for _ in range(n):
        value = _call(fakers, rng, "uuid4")
        yield (value.upper() if rng.random() < 0.2 else value), _alnum(value), "faker"


def macs(fakers: list[Faker], rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    for _ in range(n):
        value = _call(fakers, rng, "mac_address")
        yield (value.upper() if rng.random() < 0.3 else value), _alnum(value), "faker"


CARD_TYPES = ("amex", "diners", "discover", "jcb15", "jcb16", "maestro", "mastercard", "visa13", "visa16", "visa19")


def cards(fakers: list[Faker], rng: random.Random, n: int, grouping: str) -> Iterator[tuple[str, str, str]]:
    for _ in range(n):
        card_type = rng.choice(CARD_TYPES)
        digits = _call(fakers, rng, "credit_card_number", card_type)
        value = digits
        if rng.random() < 0.5:  # printed in groups of four, as on the card
            value = grouping.join(digits[i : i + 4] for i in range(0, len(digits), 4))
        yield value, digits, card_type


def ibans(fakers: list[Faker], rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    for _ in range(n):
        compact = _call(fakers, rng, "iban")
        value = compact
        if rng.random() < 0.5:
            value = " ".join(compact[i : i + 4] for i in range(0, len(compact), 4))
        yield value, compact[2:], compact[:2]


def ssns(fakers: list[Faker], rng: random.Random, n: int) -> Iterator[tuple[str, str, str]]:
    fake = Faker("en_US")
    fake.seed_instance(rng.randrange(1 << 30))
    for i in range(n):
        value = fake.ssn()
        if i % 4 == 3:
            value = value.replace("-", "")  # unseparated: only found with context words
        yield value, _alnum(value), "dashed" if "-" in value else "unseparated"


# Key formats as their issuers document them (prefix, alphabet, length); bodies random.
B62 = string.ascii_letters + string.digits
HEX = "0123456789abcdef"
KEY_FORMATS: tuple[tuple[str, str, str, int], ...] = (
    ("openai", "sk-proj-", B62 + "_-", 48),
    ("openai-legacy", "sk-", B62, 48),
    ("anthropic", "sk-ant-api03-", B62 + "_-", 93),
    ("aws-access-key", "AKIA", string.ascii_uppercase + "234567", 16),
    ("github-pat", "ghp_", B62, 36),
    ("github-fine", "github_pat_", B62 + "_", 82),
    ("gitlab", "glpat-", B62 + "_-", 20),
    ("slack-bot", "xoxb-", string.digits + "-", 24),
    ("google-api", "AIza", B62 + "_-", 35),
    ("stripe-live", "sk_live_", B62, 24),
    ("stripe-restricted", "rk_live_", B62, 24),
    ("huggingface", "hf_", B62, 34),
    ("npm", "npm_", B62, 36),
    ("sendgrid", "SG.", B62 + "_-", 22),
    ("digitalocean", "dop_v1_", HEX, 64),
    ("shopify", "shpat_", HEX, 32),
    ("groq", "gsk_", B62, 52),
    ("databricks", "dapi", HEX, 32),
    ("twilio", "SK", HEX, 32),
    ("mailgun", "key-", HEX, 32),
    ("vault", "hvs.", B62 + "_-", 90),
    ("doppler", "dp.pt.", B62, 43),
    ("linear", "lin_api_", B62, 40),
    ("postman", "PMAK-", HEX, 24),
)


def _random(rng: random.Random, alphabet: str, n: int) -> str:
    return "".join(rng.choice(alphabet) for _ in range(n))


def _key(rng: random.Random, name: str, prefix: str, alphabet: str, n: int) -> str:
    body = _random(rng, alphabet, n)
    if name == "sendgrid":
        body += "." + _random(rng, alphabet, 43)
    if name == "slack-bot":
        body = f"{rng.randrange(10**11, 10**12)}-{rng.randrange(10**12, 10**13)}-{_random(rng, B62, 24)}"
    if name == "postman":
        body += "-" + _random(rng, HEX, 34)
    return prefix + body


def _jwt(rng: random.Random, fake: Faker) -> str:
    def part(obj: str) -> str:
        return base64.urlsafe_b64encode(obj.encode()).decode().rstrip("=")

    header = '{"alg":"HS256","typ":"JWT"}'
    claims = f'{{"sub":"{fake.uuid4()}","name":"{fake.name()}","iat":{fake.unix_time():.0f}}}'
    return f"{part(header)}.{part(claims)}.{_random(rng, B62 + '_-', 43)}"


def secrets_(fakers: list[Faker], rng: random.Random, n: int, split: str) -> Iterator[tuple[str, str, str, str]]:
    """(value, ident, kind, template): known formats in generic templates, passwords in assignment forms."""
    forms = SECRET_FORMS[split]
    for i in range(n):
        fake = rng.choice(fakers)
        if i % 3 == 0:
            name, prefix, alphabet, length = rng.choice(KEY_FORMATS)
            value = _key(rng, name, prefix, alphabet, length)
            yield value, value[len(prefix) :], name, rng.choice(GENERIC[split])
        elif i % 6 == 1:
            value = _jwt(rng, fake)
            yield value, value[3:], "jwt", rng.choice(GENERIC[split])
        else:
            form, names = rng.choice(forms)
            name = rng.choice(names)
            choice = rng.random()
            if choice < 0.5:
                value = fake.password(length=rng.randrange(8, 20))
            elif choice < 0.8:
                value = _random(rng, HEX, 40) if "SECRET" in name.upper() else fake.password(length=14)
            else:  # an AWS-style secret access key
                value = _random(rng, B62 + "/+", 40)
            template = form.replace("{NAME}", name.upper()).replace("{Name}", name).replace("{name}", name)
            template = template.replace("{flag}", name)
            yield value, value, "assignment", template
    for _ in range(n // 6):  # HTTP Basic credentials
        fake = rng.choice(fakers)
        password = fake.password(length=12)
        token = base64.b64encode(f"{fake.user_name()}:{password}".encode()).decode()
        template = (
            "Authorization: Basic {v}"
            if split == "dev"
            else "curl -H 'Authorization: Basic {v}' https://api.example.com"
        )
        yield token, token, "basic", template


# ---------------------------------------------------------------- samples


SEEDS = {"dev": 1, "report": 2, "final": 3}


def positives(split: str, per_detector: int = 300) -> list[Sample]:
    rng = random.Random(SEEDS[split])
    fakers = _fakers(rng)
    generic = GENERIC[split]
    out: list[Sample] = []

    def add(detector: str, values: Iterator[tuple[str, str, str]]) -> None:
        for value, ident, kind in values:
            templates = generic + CONTEXT.get(detector, {}).get(split, [])
            if detector == "ssn" and "-" not in value:
                templates = CONTEXT["ssn"][split]  # nine bare digits are an SSN only when introduced as one
            out.append(_place(rng.choice(templates), value, detector, ident, kind))

    add("email", emails(fakers, rng, per_detector))
    add("phone", phones(fakers, rng, per_detector * 2))
    add("ip", ips(fakers, rng, per_detector))
    add("uuid", uuids(fakers, rng, per_detector))
    add("mac", macs(fakers, rng, per_detector))
    add("credit_card", cards(fakers, rng, per_detector, "-" if split == "report" else " "))
    add("iban", ibans(fakers, rng, per_detector))
    add("ssn", ssns(fakers, rng, per_detector))
    for value, ident, kind, template in secrets_(fakers, rng, per_detector * 2, split):
        out.append(_place(template, value, "token", ident, kind))
    return out


def near_misses(split: str, n: int = 1000) -> list[Sample]:
    """Values that look like PII and are not, each with the words it is written with.

    Digits alone cannot tell an invoice number from a phone number; people write
    "Invoice 602-919-3121". Each kind has its own wording per split.
    """
    rng = random.Random(10 + SEEDS[split])
    fakers = _fakers(rng)
    pick = {"dev": 0, "report": 1, "final": 2}[split]
    makers: list[tuple[str, str, Callable[[Faker], str]]] = [
        ("ean13", ("EAN {v}", "barcode: {v}", "EAN-13: {v}")[pick], lambda f: f.ean13()),
        ("ean8", ("EAN-8 {v}", "GTIN {v}", "ean8 {v}")[pick], lambda f: f.ean8()),
        ("isbn13", ("ISBN {v}", "ISBN-13: {v}", "isbn {v}")[pick], lambda f: f.isbn13(separator=rng.choice(["", "-"]))),
        ("isbn10", ("ISBN {v}", "(ISBN {v})", "ISBN-10 {v}")[pick], lambda f: f.isbn10()),
        ("sha1", ("commit {v}", "sha1 {v}", "hash {v}")[pick], lambda f: f.sha1()),
        ("md5", ("md5 {v}", "checksum: {v}", "MD5: {v}")[pick], lambda f: f.md5()),
        ("date", ("on {v}", "dated {v}", "due {v}")[pick], lambda f: f.date(pattern=rng.choice(DATE_FORMATS))),
        (
            "datetime",
            ("at {v}", "timestamp {v}", "logged {v}")[pick],
            lambda f: f.date_time().strftime(rng.choice(TIME_FORMATS)),
        ),
        ("unix-time", ("created_at={v}", "epoch {v}", "mtime {v}")[pick], lambda f: str(int(f.unix_time()))),
        (
            "unix-ms",
            ("ts={v}", "timestamp (ms): {v}", "Date.now() = {v}")[pick],
            lambda f: str(int(f.unix_time() * 1000)),
        ),
        (
            "invoice",
            ("Invoice {v} is due.", "Invoice number: {v}", "Inv. {v}")[pick],
            lambda f: f.numerify(rng.choice(REFS)),
        ),
        ("order", ("Order #{v}", "order no. {v}", "Order: {v}")[pick], lambda f: f.numerify(rng.choice(REFS))),
        ("reference", ("Ref: {v}", "reference {v}", "our ref. {v}")[pick], lambda f: f.numerify(rng.choice(REFS))),
        (
            "version",
            ("version {v}", "v{v}", "release {v}")[pick],
            lambda f: f.numerify(rng.choice(["#.##.#", "#.#.#.#", "%.%.%.%"])),
        ),
        (
            "section",
            ("section {v}", "see § {v}", "Section {v} applies")[pick],
            lambda f: f.numerify(rng.choice(["#.#.#.#", "%.%.%"])),
        ),
        ("postcode", ("postcode {v}", "ZIP {v}", "post code {v}")[pick], lambda f: f.postcode()),
        (
            "coordinates",
            ("at {v}", "location: {v}", "coords ({v})")[pick],
            lambda f: f"{f.latitude()}, {f.longitude()}",
        ),
        ("amount", ("total {v} EUR", "${v}", "amount: {v}")[pick], lambda f: f"{f.pyint(1000, 99_999_999):,}"),
        ("float", ("x = {v}", "score {v}", "p = {v}")[pick], lambda f: str(f.pyfloat(left_digits=3, right_digits=8))),
        ("code", "{v}", lambda f: rng.choice(CODE_NEAR_MISSES).format(name=rng.choice(CODE_NAMES))),
    ]
    out: list[Sample] = []
    for _ in range(n):
        kind, template, make = rng.choice(makers)
        fake = rng.choice(fakers)
        try:
            value = make(fake)
        except (AttributeError, NotImplementedError, KeyError, ValueError):
            continue
        out.append(_place(template, value, "none", "", kind))
    return out


DATE_FORMATS = ("%Y-%m-%d", "%d/%m/%Y", "%d.%m.%Y", "%Y%m%d", "%m/%d/%Y")
TIME_FORMATS = ("%Y-%m-%d %H:%M:%S", "%Y%m%d%H%M%S", "%d.%m.%Y %H:%M")
REFS = ("INV-####-######", "###-###-####", "##########", "## #### ####", "####-####-####", "#########")


CODE_NAMES = ("API_KEY", "OPENAI_API_KEY", "DB_PASSWORD", "SECRET_KEY", "client_secret", "auth_token")
CODE_NEAR_MISSES = (
    'api_key = os.environ["{name}"]',
    "client_secret: str",
    "if not api_key:\n    raise ValueError('missing key')",
    "password = getpass.getpass()",
    'token = request.headers.get("Authorization")',
    "{name} = settings.{name}",
    "def login(username: str, password: str) -> Token:",
    "secret = None",
    "{name}=${{{name}}}",
)


# ---------------------------------------------------------------- natural negatives

EXCLUDED_PACKAGES = {"faker", "phonenumbers", "hypothesis", "presidio_analyzer", "test", "tests"}


def natural_text(split: str, limit: int) -> str:
    """Docstrings and comments: the stdlib (dev), installed third-party packages (report: the
    first ``limit`` characters; final: the next ``limit``)."""
    if split == "final":
        return _natural_text("report", 2 * limit)[limit:]
    return _natural_text(split, limit)


def _natural_text(split: str, limit: int) -> str:
    if split == "dev":
        roots = [Path(sysconfig.get_paths()["stdlib"])]
    else:
        roots = [Path(p) for p in sys.path if p.endswith("site-packages")]
    pieces: list[str] = []
    size = 0
    for root in roots:
        for path in sorted(root.rglob("*.py")):
            if EXCLUDED_PACKAGES & set(path.parts) or ("site-packages" in path.parts and split == "dev"):
                continue
            try:
                source = path.read_text(encoding="utf-8")
                tree = ast.parse(source)
            except (OSError, UnicodeDecodeError, SyntaxError, ValueError):
                continue
            for node in ast.walk(tree):
                if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
                    doc = ast.get_docstring(node)
                    if doc:
                        pieces.append(doc)
                        size += len(doc)
            try:
                for tok in tokenize.generate_tokens(io.StringIO(source).readline):
                    if tok.type == tokenize.COMMENT:
                        pieces.append(tok.string)
                        size += len(tok.string)
            except (tokenize.TokenError, IndentationError, SyntaxError):
                pass
            if size >= limit:
                return "\n".join(pieces)[:limit]
    return "\n".join(pieces)[:limit]
