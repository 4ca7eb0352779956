"""The plugin host: loads the enabled plugins by entry point and calls hooks in config order."""

from __future__ import annotations

import inspect
import logging
from collections import Counter
from importlib.metadata import entry_points
from typing import Any

import pluggy

from . import hookspecs
from .config import Config, ConfigError
from .errors import GatewayError, PluginFailed

log = logging.getLogger("llm_router.plugins")

ENTRY_POINT_GROUP = "llm_router"
hookimpl = pluggy.HookimplMarker("llm_router")


async def await_me_maybe(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class PluginHost:
    """The enabled plugins, in call order, and the one way the core calls their hooks."""

    def __init__(self, config: Config, extra: list[tuple[str, object]] = ()) -> None:
        self.pm = pluggy.PluginManager(ENTRY_POINT_GROUP)
        self.pm.add_hookspecs(hookspecs)
        self.failures: Counter[str] = Counter()
        self._impls: dict[str, list[pluggy.HookImpl]] = {}
        installed = {ep.name: ep for ep in entry_points(group=ENTRY_POINT_GROUP)}
        for name in config.plugins.enabled:
            if name not in installed:
                known = ", ".join(sorted(installed)) or "none"
                raise ConfigError([f"plugins.enabled: no plugin named {name!r} is installed (installed: {known})"])
            self.register(installed[name].load(), name)
        for name, plugin in extra:
            self.register(plugin, name)
        unknown = set(config.plugins.settings) - set(self.names)
        if unknown:
            raise ConfigError([f"plugins.{n}: settings for a plugin that is not enabled" for n in sorted(unknown)])

    def register(self, plugin: object, name: str) -> None:
        if self.pm.has_plugin(name):
            raise ConfigError([f"plugins.enabled: {name!r} is listed twice"])
        self.pm.register(plugin, name=name)
        self._impls.clear()

    def unregister(self, name: str) -> None:
        self.pm.unregister(name=name)
        self._impls.clear()

    @property
    def names(self) -> list[str]:
        """Plugin names in call order."""
        return [name for name, _ in self.pm.list_name_plugin()]

    def impls(self, hook: str) -> list[pluggy.HookImpl]:
        """A hook's implementations in call order (registration order = plugins.toml order)."""
        impls = self._impls.get(hook)
        if impls is None:
            order = {name: i for i, name in enumerate(self.names)}
            impls = sorted(getattr(self.pm.hook, hook).get_hookimpls(), key=lambda i: order[i.plugin_name])
            self._impls[hook] = impls
        return impls

    def implements(self, hook: str) -> bool:
        return bool(self.impls(hook))

    async def run(self, impl: pluggy.HookImpl, kwargs: dict[str, Any]) -> Any:
        try:
            return await await_me_maybe(impl.function(*[kwargs[a] for a in impl.argnames]))
        except GatewayError:
            raise
        except Exception as exc:
            name = impl.plugin_name
            self.failures[name] += 1
            if getattr(impl.plugin, "FAIL_CLOSED", False):
                log.error("plugin %s failed in %s (%s); refusing the request", name, impl.function.__name__, type(exc).__name__)
                raise PluginFailed(f"The '{name}' plugin failed, so the request was refused rather than sent unprotected.") from exc
            log.warning(
                "plugin %s failed in %s (%s); skipped", name, impl.function.__name__, type(exc).__name__, exc_info=True
            )
            return None

    async def call(self, hook: str, **kwargs: Any) -> list[Any]:
        """Call every implementation in order; returns their non-None results."""
        results = []
        for impl in self.impls(hook):
            result = await self.run(impl, kwargs)
            if result is not None:
                results.append(result)
        return results

    async def first(self, hook: str, **kwargs: Any) -> Any:
        """Call implementations in order until one returns non-None (``firstresult``)."""
        for impl in self.impls(hook):
            result = await self.run(impl, kwargs)
            if result is not None:
                return result
        return None

    def call_startup(self, hook: str, **kwargs: Any) -> list[tuple[str, Any]]:
        """Call a synchronous startup hook; returns ``(plugin name, result)`` pairs. Errors propagate."""
        return [
            (impl.plugin_name, impl.function(*[kwargs[a] for a in impl.argnames]))
            for impl in self.impls(hook)
        ]

    def describe(self) -> list[tuple[str, list[str]]]:
        """``[(plugin name, [hooks it implements])]`` for ``llm-router check``."""
        out = []
        for name, plugin in self.pm.list_name_plugin():
            hooks = sorted(caller.name for caller in self.pm.get_hookcallers(plugin) or ())
            out.append((name, hooks))
        return out
