"""The request's ``gateway`` object: one validator built at startup from the plugins' fields."""

from __future__ import annotations

from typing import Any

from .config import ConfigError, converter, validation_errors
from .context import GatewayField
from .errors import BadRequest


def deep_merge(base: Any, over: Any) -> Any:
    """``over`` on top of ``base``: objects merge key by key, anything else is replaced.

    ``None`` means "not given", so it never erases what lies below.
    """
    if over is None:
        return base
    if isinstance(base, dict) and isinstance(over, dict):
        merged = dict(base)
        for key, value in over.items():
            merged[key] = deep_merge(base.get(key), value)
        return merged
    return over


class GatewaySchema:
    """Validates a request's ``gateway`` object against the enabled plugins' fields.

    Server ``[gateway]`` defaults fill what the request leaves out and ``[policy]``
    values are laid over what it sends, so a request can never weaken a policy.
    """

    def __init__(
        self,
        fields: list[tuple[str, dict[str, Any]]],
        defaults: dict[str, Any],
        policy: dict[str, Any],
        plugin_names: list[str],
    ) -> None:
        self.types: dict[str, Any] = {}
        self.checks: dict[str, Any] = {}
        self.canonical: dict[str, str] = {}  # name or alias → canonical name
        owner: dict[str, str] = {}
        for plugin, declared in fields:
            for name, spec in declared.items():
                field = spec if isinstance(spec, GatewayField) else GatewayField(spec)
                for key in (name, *field.aliases):
                    if key in self.canonical:
                        raise ConfigError([f"gateway.{key}: claimed by both {owner[key]!r} and {plugin!r}"])
                    self.canonical[key] = name
                    owner[key] = plugin
                self.types[name] = field.type
                if field.check is not None:
                    self.checks[name] = field.check
        self.plugin_names = plugin_names
        self.defaults = self._startup_values(defaults, "gateway")
        self.policy = self._startup_values(policy, "policy")
        # What a request that sends no gateway object gets, computed once.
        self.base: dict[str, Any] = {}
        for name in self.defaults.keys() | self.policy.keys():
            raw = deep_merge(self.defaults.get(name), self.policy.get(name))
            self.base[name] = self._structure(name, raw, f"gateway.{name}", ConfigError)

    def _startup_values(self, raw: dict[str, Any], table: str) -> dict[str, Any]:
        out = {}
        for key, value in raw.items():
            if key not in self.canonical:
                raise ConfigError([f"{table}.{key}: no enabled plugin owns this field ({self._owners()})"])
            out[self.canonical[key]] = value
        return out

    def _owners(self) -> str:
        return "enabled plugins: " + (", ".join(self.plugin_names) or "none")

    def _structure(self, name: str, raw: Any, param: str, error: type[Exception]) -> Any:
        try:
            value = converter.structure(raw, self.types[name])
            if name in self.checks:
                self.checks[name](value)
            return value
        except Exception as exc:
            path, message = validation_errors(exc)[0]
            where = param + (path[1:] if path.startswith("$") else "")
            if error is ConfigError:
                raise ConfigError([f"{where}: {message}"]) from None
            raise BadRequest(
                f"Invalid value for '{where}': {message}.", param=where, code="invalid_gateway_field"
            ) from None

    def parse(self, raw: Any) -> dict[str, Any]:
        """A request's ``gateway`` value → ``{canonical field name: structured value}``."""
        if raw is None:
            return dict(self.base)
        if not isinstance(raw, dict):
            raise BadRequest("'gateway' must be an object.", param="gateway", code="invalid_type")
        values = dict(self.base)
        for key, value in raw.items():
            name = self.canonical.get(key)
            if name is None:
                raise BadRequest(
                    f"Unknown gateway field '{key}': no enabled plugin owns it ({self._owners()}).",
                    param=f"gateway.{key}",
                    code="unknown_gateway_field",
                )
            merged = deep_merge(deep_merge(self.defaults.get(name), value), self.policy.get(name))
            values[name] = self._structure(name, merged, f"gateway.{key}", BadRequest)
        return values

    def enforce(self, values: dict[str, Any], policy: dict[str, Any], param: str = "policy") -> dict[str, Any]:
        """``values`` (a parsed gateway object) with ``policy`` laid over it, as ``[policy]`` is.

        For policies narrower than the server's (a client key's own). A value no enabled
        plugin owns, or one that does not validate, is a ConfigError naming ``param``.
        """
        out = dict(values)
        for key, value in policy.items():
            name = self.canonical.get(key)
            if name is None:
                raise ConfigError([f"{param}.{key}: no enabled plugin owns this field ({self._owners()})"])
            current = converter.unstructure(out[name]) if name in out else None
            out[name] = self._structure(name, deep_merge(current, value), f"{param}.{key}", ConfigError)
        return out
