"""Client keys: the ``[keys.<name>]`` tables, run-time key records, and what one key may do."""

from __future__ import annotations

import calendar
import fnmatch
import hashlib
import re
import secrets
import time
from typing import Any

import attrs

from router_core.config import ConfigError, converter, validation_errors
from router_lib.store import KeyRecord, Limits
from router_lib.store.base import NAME

PREFIX = "sk-router-"
# A shorter configured key is refused: it could be guessed.
MIN_KEY_LENGTH = 16

_positive = attrs.validators.optional(attrs.validators.ge(1))
_non_negative = attrs.validators.optional(attrs.validators.ge(0))


@attrs.frozen
class KeyTable:
    """One ``[keys.<name>]`` table of plugins.toml."""

    key: str | None = attrs.field(default=None, repr=False)  # literal or env:NAME, resolved by the config
    missing_key: str | None = None  # the env var named by ``key`` when it is unset
    rpm: int | None = attrs.field(default=None, validator=_positive)
    tpm: int | None = attrs.field(default=None, validator=_positive)
    max_parallel: int | None = attrs.field(default=None, validator=_positive)
    daily_budget_usd: float | None = attrs.field(default=None, validator=_non_negative)
    monthly_budget_usd: float | None = attrs.field(default=None, validator=_non_negative)
    models: list[str] = attrs.field(factory=list)
    providers: list[str] = attrs.field(factory=list)
    policy: dict[str, Any] = attrs.field(factory=dict)
    expires: str | None = None  # "2026-12-31" or "2026-12-31T18:00:00Z" (UTC)


def parse_expiry(text: str) -> float:
    """``YYYY-MM-DD`` (end of that UTC day) or ``YYYY-MM-DDTHH:MM[:SS][Z]`` → epoch seconds."""
    m = re.fullmatch(r"(\d{4})-(\d{2})-(\d{2})(?:[T ](\d{2}):(\d{2})(?::(\d{2}))?Z?)?", text.strip())
    if not m:
        raise ValueError(f"expected a UTC date like 2026-12-31 or 2026-12-31T18:00:00Z, got {text!r}")
    y, mo, d, h, mi, s = (int(g) if g else None for g in m.groups())
    if h is None:
        return calendar.timegm((y, mo, d, 0, 0, 0)) + 86400.0
    return float(calendar.timegm((y, mo, d, h, mi, s or 0)))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


def new_key() -> str:
    return PREFIX + secrets.token_urlsafe(32)


def _glob(patterns: tuple[str, ...]) -> re.Pattern[str] | None:
    return re.compile("|".join(fnmatch.translate(p) for p in patterns)) if patterns else None


@attrs.frozen
class ClientKey:
    """What one client key may do, whether it came from plugins.toml or from ``llm-router keys``."""

    name: str
    limits: Limits = attrs.field(factory=Limits)
    models: tuple[str, ...] = ()
    providers: tuple[str, ...] = ()
    policy: dict[str, Any] = attrs.field(factory=dict)
    expires_at: float | None = None
    source: str = "config"  # "config", "store" or "server.api_keys"
    broken: str | None = None  # why this key cannot be served (its policy no longer validates)
    _model_re: re.Pattern[str] | None = attrs.field(init=False, default=None, eq=False, repr=False)

    def __attrs_post_init__(self) -> None:
        object.__setattr__(self, "_model_re", _glob(self.models))

    def allows_model(self, model: str) -> bool:
        return self._model_re is None or self._model_re.fullmatch(model) is not None

    def expired(self, now: float) -> bool:
        return self.expires_at is not None and now >= self.expires_at

    @classmethod
    def from_record(cls, record: KeyRecord) -> ClientKey:
        return cls(
            record.name,
            record.limits,
            record.models,
            record.providers,
            record.policy,
            record.expires_at,
            source="store",
        )


def _limits(table: KeyTable) -> Limits:
    return Limits(table.rpm, table.tpm, table.max_parallel, table.daily_budget_usd, table.monthly_budget_usd)


def config_keys(raw: dict[str, dict[str, Any]]) -> dict[str, ClientKey]:
    """``[keys.*]`` → {sha256 hex of the key: ClientKey}; a ConfigError names every bad key path."""
    out: dict[str, ClientKey] = {}
    errors: list[str] = []
    for name, table in raw.items():
        where = f"keys.{name}"
        if not NAME.match(name):
            errors.append(f"{where}: a key name is letters, digits, '_', '.', '-' (at most 64)")
            continue
        try:
            parsed = converter.structure(table, KeyTable)
            expires_at = parse_expiry(parsed.expires) if parsed.expires else None
        except ValueError as exc:
            errors.append(f"{where}.expires: {exc}")
            continue
        except Exception as exc:
            errors += [f"{where}{path[1:]}: {message}" for path, message in validation_errors(exc)]
            continue
        if parsed.missing_key:
            errors.append(f"{where}.key: environment variable {parsed.missing_key} is unset")
        elif not parsed.key:
            errors.append(f"{where}.key: required (a literal or env:NAME)")
        elif len(parsed.key) < MIN_KEY_LENGTH:
            errors.append(f"{where}.key: shorter than {MIN_KEY_LENGTH} characters")
        else:
            key = ClientKey(
                name, _limits(parsed), tuple(parsed.models), tuple(parsed.providers), parsed.policy, expires_at
            )
            if digest(parsed.key) in out:
                errors.append(f"{where}.key: the same key as keys.{out[digest(parsed.key)].name}")
            out[digest(parsed.key)] = key
    if errors:
        raise ConfigError(errors)
    return out


def server_keys(api_keys: tuple[str, ...]) -> dict[str, ClientKey]:
    """``server.api_keys`` stay valid beside the plugin's keys, as one unlimited key named ``server``."""
    return {digest(k): ClientKey("server", source="server.api_keys") for k in api_keys}


def record(name: str, key: str, **fields: Any) -> KeyRecord:
    """A run-time key's record (what ``llm-router keys create`` stores)."""
    return KeyRecord(name=name, digest=digest(key), created_at=time.time(), **fields)
