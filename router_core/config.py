"""plugins.toml → frozen attrs config, through one cattrs converter; ``env:NAME`` resolved once."""

from __future__ import annotations

import os
import re
import tomllib
import typing
from pathlib import Path
from typing import Any

import attrs
import cattrs
from cattrs.cols import list_structure_factory
from cattrs.preconf.orjson import make_converter
from cattrs.v import format_exception

from .http1 import check_header

#: The one converter for config and for the request's gateway object.  Primitives are
#: strict: cattrs would otherwise turn "maybe" into True and 3 into "3".
converter = make_converter(forbid_extra_keys=True)


def _strict(kind: type, what: str):
    def structure(value: Any, _: type) -> Any:
        if type(value) is kind or (kind is float and type(value) is int):
            return kind(value)
        raise TypeError(f"expected {what}, got {type(value).__name__}")

    return structure


for _kind, _what in ((str, "a string"), (bool, "a boolean"), (int, "an integer"), (float, "a number")):
    converter.register_structure_hook(_kind, _strict(_kind, _what))


def _strict_list(type_: Any, conv: cattrs.Converter):
    """Lists must arrive as arrays: cattrs would happily turn "abc" into ["a", "b", "c"]."""
    inner = list_structure_factory(type_, conv)

    def structure(value: Any, t: Any) -> Any:
        if not isinstance(value, list | tuple):
            raise TypeError(f"expected an array, got {type(value).__name__}")
        return inner(value, t)

    return structure


converter.register_structure_hook_factory(lambda t: typing.get_origin(t) is list or t is list, _strict_list)


def _objects_only(cl: type, conv: cattrs.Converter):
    """An attrs class is built from a JSON object only (``true`` would fail deep inside cattrs)."""
    inner = conv.gen_structure_attrs_fromdict(cl)

    def structure(value: Any, t: Any) -> Any:
        if not isinstance(value, dict):
            raise TypeError(f"expected an object, got {type(value).__name__}")
        return inner(value, t)

    return structure


converter.register_structure_hook_factory(attrs.has, _objects_only)


#: Top-level tables read by plugins; a plugin claims one with ``CONFIG_TABLES = ("keys",)``.
PLUGIN_TABLES = ("store", "usage", "keys")


class ConfigError(Exception):
    """plugins.toml is wrong; each message names the key path."""

    def __init__(self, messages: list[str]) -> None:
        super().__init__("; ".join(messages))
        self.messages = messages


_positive = attrs.validators.gt(0)
# A client key shorter than this is guessable, and an empty one would make "Bearer " valid.
MIN_KEY_CHARS = 16


def _usable_keys(instance: Any, attribute: attrs.Attribute, keys: tuple[str, ...]) -> None:
    for i, key in enumerate(keys):
        if key.strip() != key or len(key) < MIN_KEY_CHARS or not key.isprintable() or not key.isascii():
            raise ValueError(
                f"'api_keys' must hold printable ASCII keys of at least {MIN_KEY_CHARS} characters "
                f"without surrounding spaces (key #{i + 1} is not)"
            )


@attrs.frozen
class ServerConfig:
    host: str = "127.0.0.1"
    port: int = attrs.field(
        default=8080, validator=attrs.validators.and_(attrs.validators.ge(0), attrs.validators.le(65535))
    )
    api_keys: tuple[str, ...] = attrs.field(default=(), repr=False, validator=_usable_keys)
    # A request body above this is refused with 413 before it is parsed.
    max_body_bytes: int = attrs.field(default=8 * 1024 * 1024, validator=_positive)
    # What a client controls is bounded (see docs/operations-hardening.md). A body must
    # arrive within body_timeout seconds and, after its first second, at least at
    # body_min_rate bytes a second on average: a stalled upload is cut (408), its memory freed.
    body_timeout: float = attrs.field(default=60.0, validator=_positive)
    body_min_rate: int = attrs.field(default=16 * 1024, validator=attrs.validators.ge(0))
    # One header line (request line or field) and the number of header fields.
    max_header_bytes: int = attrs.field(default=8190, validator=_positive)
    max_headers: int = attrs.field(default=100, validator=_positive)
    # A connection that sends no (next) request within this is closed; it also bounds the
    # time a client may take to send its headers.
    keepalive_timeout: float = attrs.field(default=15.0, validator=_positive)
    # Open client connections per worker; the next one gets a 503 and is closed. Unset: 768,
    # or as many as ``ulimit -n`` leaves room for (said at startup); a set value that does not
    # fit stops ``serve``.
    max_connections: int | None = attrs.field(default=None, validator=attrs.validators.optional(_positive))
    # Counts in one request; above them the request is a 400 naming the limit.
    max_messages: int = attrs.field(default=2048, validator=_positive)
    max_parts: int = attrs.field(default=256, validator=_positive)  # content parts in one message
    max_tools: int = attrs.field(default=128, validator=_positive)  # OpenAI's own limit
    max_tags: int = attrs.field(default=64, validator=_positive)  # gateway.tags
    # SIGTERM: stop accepting, give in-flight requests and streams this long, then exit.
    drain_timeout: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    # Processes serving the port (``serve --workers`` overrides); plugins that keep state check it.
    workers: int = attrs.field(default=1, validator=attrs.validators.ge(1))


def _sendable_headers(instance: Any, attribute: attrs.Attribute, headers: dict[str, str]) -> None:
    for name, value in headers.items():
        check_header(name, value)


@attrs.frozen
class ProviderConfig:
    kind: str
    base_url: str = ""
    api_key: str | None = attrs.field(default=None, repr=False)
    zdr: bool = False
    serves: dict[str, str] = attrs.field(factory=dict)
    headers: dict[str, str] = attrs.field(factory=dict, repr=False, validator=_sendable_headers)
    connect_timeout: float = 5.0
    first_byte_timeout: float = 60.0
    total_timeout: float = 600.0
    max_retries: int = 1  # extra attempts on the same route before falling back
    # Jittered exponential backoff between retries: base * 2**n seconds, never above max.
    backoff_base: float = attrs.field(default=0.25, validator=attrs.validators.ge(0))
    backoff_max: float = attrs.field(default=4.0, validator=attrs.validators.ge(0))
    # Circuit breaker: this many consecutive failures put the provider in cooldown.
    breaker_failures: int = attrs.field(default=5, validator=attrs.validators.ge(1))
    breaker_cooldown: float = attrs.field(default=30.0, validator=attrs.validators.ge(0))
    options: dict[str, Any] = attrs.field(factory=dict)  # kind-specific settings
    missing_key: str | None = None  # the env var named by api_key when it is unset


@attrs.frozen
class ModelConfig:
    input_per_mtok: float = 0.0
    output_per_mtok: float = 0.0
    context_window: int | None = None


@attrs.frozen
class PluginsConfig:
    enabled: tuple[str, ...] = ()
    settings: dict[str, dict[str, Any]] = attrs.field(factory=dict)  # [plugins.<name>] tables


@attrs.frozen
class Config:
    server: ServerConfig = attrs.field(factory=ServerConfig)
    plugins: PluginsConfig = attrs.field(factory=PluginsConfig)
    providers: dict[str, ProviderConfig] = attrs.field(factory=dict)
    models: dict[str, ModelConfig] = attrs.field(factory=dict)
    gateway: dict[str, Any] = attrs.field(factory=dict)  # defaults for the request's gateway object
    policy: dict[str, Any] = attrs.field(factory=dict)  # enforced over the request's gateway object
    # Top-level tables that belong to plugins (PLUGIN_TABLES): kept raw here, validated by
    # the plugin that claims them, refused at startup when no enabled plugin does.
    store: dict[str, Any] = attrs.field(factory=dict, repr=False)  # shared state (may hold a password)
    usage: dict[str, Any] = attrs.field(factory=dict, repr=False)  # the usage ledger
    keys: dict[str, dict[str, Any]] = attrs.field(factory=dict, repr=False)  # client keys with limits
    path: str | None = None

    def plugin_settings(self, name: str) -> dict[str, Any]:
        """A ``[plugins.<name>]`` table as written, for a plugin without a ``Manifest.settings``
        class (one with it gets the validated instance in ``router_startup``)."""
        return self.plugins.settings.get(name, {})


def resolve_secret(value: str | None, env: dict[str, str]) -> tuple[str | None, str | None]:
    """``env:NAME`` → (the variable's value or None, NAME if unset); a literal → (literal, None)."""
    if value is None or not value.startswith("env:"):
        return value, None
    name = value[4:]
    resolved = env.get(name)
    return (resolved or None), (None if resolved else name)


def _resolve(raw: dict[str, Any], env: dict[str, str]) -> dict[str, Any]:
    server = raw.get("server")
    if isinstance(server, dict) and isinstance(server.get("api_keys"), list):
        keys = [resolve_secret(k, env)[0] if isinstance(k, str) else k for k in server["api_keys"]]
        server["api_keys"] = [k for k in keys if k is not None]
    for provider in (raw.get("providers") or {}).values():
        if isinstance(provider, dict) and isinstance(provider.get("api_key"), str):
            provider["api_key"], provider["missing_key"] = resolve_secret(provider["api_key"], env)
    for table in (raw.get("keys") or {}).values():
        if isinstance(table, dict) and isinstance(table.get("key"), str):
            table["key"], table["missing_key"] = resolve_secret(table["key"], env)
    plugins = raw.get("plugins")
    if isinstance(plugins, dict):
        raw["plugins"] = {
            "enabled": plugins.get("enabled", []),
            "settings": {k: v for k, v in plugins.items() if k != "enabled"},
        }
    return raw


def parse_config(raw: dict[str, Any], env: dict[str, str] | None = None, path: str | None = None) -> Config:
    """A TOML document (as a dict) → Config, or ConfigError with key paths."""
    raw = _resolve(dict(raw), dict(os.environ) if env is None else env)
    raw["path"] = path
    try:
        return converter.structure(raw, Config)
    except Exception as exc:  # cattrs raises a ClassValidationError group
        raise ConfigError(_messages(exc)) from None


_FIELD_MARK = "\x00"
_ATTRS_MESSAGE = re.compile(r"'(\w+)' must ")


def describe(exc: BaseException, type_: Any) -> str:
    """cattrs' exception formatter, but a validator's own message wins over "invalid value".

    An attrs validator fails inside ``__init__``, so cattrs reports it at the class's
    path; the failing attribute rides along in the message, split off by the caller.
    """
    if isinstance(exc, (TypeError, ValueError)) and not isinstance(exc, cattrs.ForbiddenExtraKeysError) and str(exc):
        # attrs' in_ / gt … validators raise (message, attribute, …): the message is the first argument
        text = exc.args[0] if len(exc.args) > 1 and isinstance(exc.args[0], str) else str(exc)
        named = _ATTRS_MESSAGE.search(text)  # attrs' validators say "'name' must be …" (or "Length of 'name' must …")
        return f"{named[1]}{_FIELD_MARK}{text}" if named else text
    return format_exception(exc, type_)


def validation_errors(exc: Exception) -> list[tuple[str, str]]:
    """A cattrs failure → [(path like ``$.a.b[0]``, message)]."""
    if not isinstance(exc, cattrs.BaseValidationError):
        return [("$", str(exc))]
    out = []
    for line in cattrs.transform_error(exc, format_exception=describe):
        message, _, path = line.rpartition(" @ ")
        field, mark, rest = message.partition(_FIELD_MARK)
        out.append((f"{path}.{field}", rest) if mark else (path, message))
    return out


def _toml_path(path: str) -> str:
    return path[2:].replace("['", ".").replace("']", "") or "top level"


def _messages(exc: Exception) -> list[str]:
    """Paths as a TOML reader writes them: ``providers.x.zdr``, not ``$.providers['x'].zdr``."""
    return [f"{_toml_path(path)}: {message}" for path, message in validation_errors(exc)]


def load_config(path: str | Path, env: dict[str, str] | None = None) -> Config:
    try:
        raw = tomllib.loads(Path(path).read_text())
    except FileNotFoundError:
        raise ConfigError([f"{path}: no such file"]) from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError([f"{path}: {exc}"]) from None
    return parse_config(raw, env, str(path))
